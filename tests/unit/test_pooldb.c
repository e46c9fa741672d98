#define _GNU_SOURCE /* memmem */
/* The pool database encoding and its durable store.
 *
 * VIGIL_POOLDB_SEEDS=DIR also writes fuzzer seeds (a snapshot, changes) into
 * DIR: that is how tests/fuzz/corpus/pooldb-* were made. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "membership/pooldb.h"
#include "tests/pooldb_equal.h"

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int rnd_in(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }

/* ---------------------------------------------------------------- random databases */

static void rand_settings(struct ha_settings *s)
{
    char err[HA_REASON_MAX], v[32];
    ha_settings_default(s);
    const char *durs[] = {"token_timeout", "msgwait", "fence_time", "fence_timeout", "vm_start",
                          "vm_stop",       "migrate_time", "op_timeout", "recovery_bound"};
    for (size_t i = 0; i < sizeof durs / sizeof durs[0]; i++)
        if (rnd() % 2) {
            snprintf(v, sizeof v, "%dms", rnd_in(1000, 100000));
            ck_assert_int_eq(ha_settings_set(s, durs[i], v, err, sizeof err), 0);
        }
    snprintf(v, sizeof v, "%dms", rnd_in(20000, 40000));
    ck_assert_int_eq(ha_settings_set(s, "disk_timeout", v, err, sizeof err), 0);
    snprintf(v, sizeof v, "%dms", rnd_in(100, 10000));
    ck_assert_int_eq(ha_settings_set(s, "disk_interval", v, err, sizeof err), 0);
    snprintf(v, sizeof v, "%d", rnd_in(1, 64));
    ck_assert_int_eq(ha_settings_set(s, "evacuate_concurrency", v, err, sizeof err), 0);
    snprintf(v, sizeof v, "%d", rnd_in(0, 100));
    ck_assert_int_eq(ha_settings_set(s, "max_restart", v, err, sizeof err), 0);
    snprintf(v, sizeof v, "%d", rnd_in(0, 63));
    ck_assert_int_eq(ha_settings_set(s, "failures_to_tolerate", v, err, sizeof err), 0);
    if (rnd() % 2)
        snprintf(v, sizeof v, "off");
    else
        snprintf(v, sizeof v, "%ds", rnd_in(1, 600));
    ck_assert_int_eq(ha_settings_set(s, "balance_interval", v, err, sizeof err), 0);
    ck_assert_int_eq(ha_settings_set(s, "watchdog", rnd() % 2 ? "yes" : "no", err, sizeof err), 0);
    ck_assert_int_eq(ha_settings_set(s, "heartbeat_disk", rnd() % 2 ? "yes" : "no", err, sizeof err), 0);
    snprintf(v, sizeof v, "%.3f", 1.0 + (double)(rnd() % 63000) / 1000);
    ck_assert_int_eq(ha_settings_set(s, "cpu_overcommit", v, err, sizeof err), 0);
}

static void add_rule(struct ha_db *db, const struct ha_rule *r)
{
    db->rule = realloc(db->rule, (size_t)(db->nrules + 1) * sizeof *db->rule);
    ck_assert_ptr_nonnull(db->rule);
    db->rule[db->nrules++] = *r;
}

static void rand_str(char *dst, size_t field, const char *alphabet)
{
    size_t n = (size_t)rnd_in(1, (int)field - 1), k = strlen(alphabet);
    for (size_t i = 0; i < n; i++)
        dst[i] = alphabet[rnd() % k];
    dst[n] = 0;
}

/* A device that ha_fence_dev_check accepts; full: every string and list full. */
static void rand_dev(struct ha_fence_dev *d, bool full)
{
    static const char an[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static const char pw[] = "abcXYZ019 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\x80\xff";
    memset(d, 0, sizeof *d);
    d->type = (enum ha_fence_type)rnd_in(0, HA_FENCE_TYPE_LAST);
    d->timeout_ms = rnd_in(100, 600000);
    d->retries = rnd_in(0, 10);
    if (d->type == HA_FENCE_IPMI || d->type == HA_FENCE_AGENT) {
        rand_str(d->addr, full ? 2 : sizeof d->addr, "abc019.-_:");
        d->addr[0] = 'h'; /* never a leading '-' */
        if (full)
            memset(d->addr, 'a', sizeof d->addr - 1);
        d->port = rnd_in(1, 65535);
        rand_str(d->user, sizeof d->user, an);
        rand_str(d->password, sizeof d->password, pw);
        if (full) {
            memset(d->user, 'u', sizeof d->user - 1);
            memset(d->password, 'p', sizeof d->password - 1);
        }
    }
    if (d->type == HA_FENCE_IPMI) {
        d->cipher = rnd_in(1, 17);
        d->user[16] = 0;     /* IPMI 2.0: a user of at most 16 bytes, */
        d->password[20] = 0; /* a password of at most 20 */
    }
    if (d->type == HA_FENCE_AGENT) {
        snprintf(d->agent, sizeof d->agent, "fence_%c%d", 'a' + rnd_in(0, 25), rnd_in(0, 999));
        if (full)
            memset(d->agent + 6, 'x', sizeof d->agent - 7);
    }
    if (d->type == HA_FENCE_AGENT || d->type == HA_FENCE_SCSI_PR) {
        d->nopts = full ? HA_FENCE_OPTS : rnd_in(0, HA_FENCE_OPTS);
        for (int i = 0; i < d->nopts; i++) {
            int k = snprintf(d->opt[i], sizeof d->opt[i], "k%d=", i);
            if (full)
                memset(d->opt[i] + k, 'v', sizeof d->opt[i] - (size_t)k - 1);
            else
                rand_str(d->opt[i] + k, sizeof d->opt[i] - (size_t)k, pw);
        }
    }
}

static struct ha_fence_topo *rand_topo(void)
{
    struct ha_fence_topo *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->nlevels = rnd_in(1, HA_FENCE_LEVELS);
    for (int l = 0; l < t->nlevels; l++) {
        t->level[l].ndevs = rnd_in(1, HA_FENCE_DEVS);
        for (int k = 0; k < t->level[l].ndevs; k++)
            do
                rand_dev(&t->level[l].dev[k], rnd() % 8 == 0);
            while (t->level[l].dev[k].type == HA_FENCE_DISK);
    }
    /* the disk, when there is one, is alone in the last level */
    if (t->nlevels < HA_FENCE_LEVELS && rnd() % 3 == 0) {
        struct ha_fence_level *l = &t->level[t->nlevels++];
        l->ndevs = 1;
        l->dev[0] = (struct ha_fence_dev){.type = HA_FENCE_DISK, .timeout_ms = rnd_in(100, 600000),
                                          .retries = rnd_in(0, 10)};
    }
    return t;
}

/* A database as ha_db_apply could have made it: every field varied, every
 * invariant the decoder checks respected. */
/* Random XML-ish bytes (1..255, never NUL) of length n. */
static char *rand_xml(size_t n)
{
    char *x = malloc(n + 1);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++)
        x[i] = (char)rnd_in(1, 255);
    x[n] = 0;
    return x;
}

static void set_xml(struct ha_db_vm *v, size_t n)
{
    free(v->xml);
    v->xml = rand_xml(n);
    v->xml_len = (uint32_t)n;
}

static void rand_db(struct ha_db *db, uint64_t seed, int max_hosts, int max_vms)
{
    rng = seed * 0x9e3779b97f4a7c15ull + 1;
    ha_db_init(db);
    db->version = rnd() % 100000;
    if (rnd() % 4) {
        snprintf(db->pool_name, sizeof db->pool_name, "pool-%u", (unsigned)(rnd() % 1000));
        snprintf(db->pool_uuid, sizeof db->pool_uuid, "%08x-%04x-4%03x-8%03x-%012" PRIx64, (unsigned)rnd(),
                 (unsigned)(rnd() & 0xffff), (unsigned)(rnd() & 0xfff), (unsigned)(rnd() & 0xfff),
                 rnd() & (uint64_t)0xffffffffffff);
    }
    rand_settings(&db->set);
    db->ntokens = rnd_in(0, HA_MAX_TOKENS);
    for (int i = 0; i < db->ntokens; i++) {
        for (int k = 0; k < 32; k++)
            db->token[i].hash[k] = (uint8_t)rnd();
        db->token[i].expires = (int64_t)(rnd() % 4000000000u) - 1000;
        db->token[i].used = rnd() % 2;
    }
    int nh = rnd_in(0, max_hosts);
    for (int i = 0; i < nh; i++) {
        struct ha_db_host h = {.mem_mb = rnd() % (1u << 22), .cpus = rnd_in(0, 256), .fence_ipmi = rnd() % 3 == 0,
                               .joined = rnd() % 2, .maintenance = rnd() % 2, .leaving = rnd() % 2,
                               .fenced = rnd() % 2, .nodeid = (uint32_t)rnd()};
        snprintf(h.name, sizeof h.name, "host-%d.%c", i, 'a' + rnd_in(0, 25));
        if (rnd() % 3)
            snprintf(h.addr, sizeof h.addr, "10.%d.%d.%d", rnd_in(0, 255), rnd_in(0, 255), rnd_in(1, 254));
        ck_assert_int_eq(ha_db_add_host(db, &h), i);
        if (h.fence_ipmi) /* the flag says the host has fence devices */
            db->fence[i] = rand_topo();
    }
    db->preferred_master = nh && rnd() % 2 ? rnd_in(0, nh - 1) : HA_NO_HOST;
    int nv = rnd_in(0, max_vms);
    for (int i = 0; i < nv; i++) {
        struct ha_db_vm v = {.mem_mb = rnd() % (1u << 20), .cpus = rnd_in(0, 64),
                             .protect = (enum ha_protect)rnd_in(0, 2), .priority = rnd_in(1, 5),
                             .order = (int)(rnd() % 2000) - 1000, .want_running = rnd() % 2,
                             /* only earlier VMs: no after= cycle */
                             .after1 = i && rnd() % 2 ? rnd_in(1, i) : 0,
                             .host = nh ? rnd_in(-1, nh - 1) : HA_NO_HOST};
        snprintf(v.name, sizeof v.name, "vm_%d-%x", i, (unsigned)(rnd() % 4096));
        ck_assert_int_eq(ha_db_add_vm(db, &v), i);
        db->vm[i].migrating_to = nh && rnd() % 3 == 0 ? rnd_in(0, nh - 1) : HA_NO_HOST;
    }
    int nr = nv >= 2 ? rnd_in(0, 6) : 0;
    for (int i = 0; i < nr; i++) {
        struct ha_rule r = {.type = (enum ha_rule_type)(i % 3), .strict = rnd() % 2};
        if (r.type == HA_RULE_PIN && !nh)
            r.type = HA_RULE_AFFINITY;
        snprintf(r.name, sizeof r.name, "rule-%d", i);
        if (r.type == HA_RULE_PIN) {
            r.vm[r.nvms++] = rnd_in(0, nv - 1);
            while (!r.hosts)
                r.hosts = rnd() & (nh == 64 ? ~0ull : (1ull << nh) - 1);
        } else {
            int want = rnd_in(2, nv < HA_RULE_MAX_VMS ? nv : HA_RULE_MAX_VMS);
            for (int v = 0; v < nv && r.nvms < want; v++)
                if (rnd() % 2 || nv - v <= want - r.nvms)
                    r.vm[r.nvms++] = v;
        }
        add_rule(db, &r);
    }
    /* some VMs carry a domain XML: text of any byte but NUL, of any size */
    for (int i = 0; i < nv; i++)
        if (rnd() % 3 == 0)
            set_xml(&db->vm[i], rnd_in(1, rnd() % 8 ? 600 : 20000));
}

static void encode(uint64_t epoch, const struct ha_db *db, uint8_t **buf, size_t *len)
{
    ck_assert_int_eq(pooldb_encode_snapshot(epoch, db, buf, len), 0);
}

START_TEST(crc32_check_value)
{
    ck_assert_uint_eq(pooldb_crc32("123456789", 9), 0xcbf43926u);
    ck_assert_uint_eq(pooldb_crc32("", 0), 0);
}
END_TEST

START_TEST(snapshot_round_trip)
{
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct ha_db db, back;
        if (seed == 1)
            ha_db_init(&db); /* the empty pool */
        else
            rand_db(&db, seed, seed % 10 == 0 ? HA_MAX_HOSTS : 8, seed % 7 == 0 ? 300 : 40);
        uint64_t epoch = seed * 7919, e = 0;
        uint8_t *buf, *again;
        size_t len, len2;
        char err[256] = "";
        encode(epoch, &db, &buf, &len);
        ck_assert_msg(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err) == 0, "seed %" PRIu64 ": %s",
                      seed, err);
        ck_assert_uint_eq(e, epoch);
        const char *d = db_diff(&db, &back);
        ck_assert_msg(!d, "seed %" PRIu64 ": %s differs", seed, d ? d : "");
        encode(e, &back, &again, &len2);
        ck_assert_uint_eq(len, len2);
        ck_assert_mem_eq(buf, again, len);
        ck_assert_uint_eq(pooldb_digest(epoch, &db), pooldb_digest(e, &back));
        /* the decoded VM array grows like any other */
        struct ha_db_vm extra = {.priority = 3, .cpus = 1, .mem_mb = 1};
        strcpy(extra.name, "one-more");
        ck_assert_int_eq(ha_db_add_vm(&back, &extra), db.nvms);
        free(buf);
        free(again);
        ha_db_free(&db);
        ha_db_free(&back);
    }
}
END_TEST

/* The topology of the first host with fence devices. */
static struct ha_fence_topo *fence_of(struct ha_db *db)
{
    for (int i = 0; i < db->nhosts; i++)
        if (db->fence[i])
            return db->fence[i];
    ck_abort_msg("no host with fence devices");
    return NULL;
}

/* One field changed at a time: the digest must notice every one. */
static void mutate(struct ha_db *db, int which)
{
    switch (which) {
    case 0: db->version++; break;
    case 1: db->pool_name[0] ^= 1; break;
    case 2: db->pool_uuid[3] ^= 1; break;
    case 3: db->set.token_timeout++; break;
    case 4: db->set.cpu_overcommit += 0.5; break;
    case 5: db->set.watchdog = !db->set.watchdog; break;
    case 6: db->set.balance_interval += 1000; break;
    case 7: db->preferred_master = db->preferred_master == 0 ? 1 : 0; break;
    case 8: db->token[0].hash[31] ^= 0x80; break;
    case 9: db->token[1].used = !db->token[1].used; break;
    case 10: db->token[1].expires--; break;
    case 11: db->ntokens--; break;
    case 12: db->host[1].name[1] ^= 1; break;
    case 13: db->host[1].mem_mb++; break;
    case 14: db->host[1].fenced = !db->host[1].fenced; break;
    case 15: db->host[1].addr[0] = db->host[1].addr[0] ? 0 : 'x'; break;
    case 16: db->host[1].nodeid ^= 4; break;
    case 17: db->nhosts--; break;
    case 18: db->vm[2].name[0] ^= 1; break;
    case 19: db->vm[2].priority = db->vm[2].priority % 5 + 1; break;
    case 20: db->vm[2].order ^= 1 << 20; break;
    case 21: db->vm[2].after1 = db->vm[2].after1 ? 0 : 1; break;
    case 22: db->vm[2].host = db->vm[2].host == 0 ? 1 : 0; break;
    case 23: db->vm[2].migrating_to = db->vm[2].migrating_to == 0 ? 1 : 0; break;
    case 24: db->vm[2].want_running = !db->vm[2].want_running; break;
    case 25: db->vm[2].protect = (enum ha_protect)((db->vm[2].protect + 1) % 3); break;
    case 26: free(db->vm[db->nvms - 1].xml); db->nvms--; break;
    case 27: db->rule[0].strict = !db->rule[0].strict; break;
    case 28: db->rule[0].vm[1] ^= 1; break;
    case 29: db->rule[2].hosts ^= 1; break;
    case 30: db->nrules--; break;
    case 31: db->set.heartbeat_disk = !db->set.heartbeat_disk; break;
    case 32: db->host[0].maintenance = !db->host[0].maintenance; break;
    case 33: fence_of(db)->level[0].dev[0].password[0] ^= 1; break;
    case 34: fence_of(db)->level[0].dev[0].retries ^= 1; break;
    case 35: fence_of(db)->level[0].dev[0].timeout_ms ^= 1; break;
    case 36: fence_of(db)->level[0].dev[0].type ^= 1; break;
    case 37: fence_of(db)->nlevels--; break;
    case 38: fence_of(db)->level[0].dev[0].port ^= 1; break;
    case 39: fence_of(db)->level[0].dev[0].user[0] ^= 1; break;
    case 40: /* one byte of a domain XML */
        if (!db->vm[3].xml)
            set_xml(&db->vm[3], 100);
        else
            db->vm[3].xml[db->vm[3].xml_len - 1] = db->vm[3].xml[db->vm[3].xml_len - 1] == 'a' ? 'b' : 'a';
        break;
    case 41: /* a domain XML gone, or one more */
        if (db->vm[3].xml) {
            free(db->vm[3].xml);
            db->vm[3].xml = NULL;
            db->vm[3].xml_len = 0;
        } else
            set_xml(&db->vm[3], 1);
        break;
    }
}
#define NMUTATIONS 42

/* A database with at least 3 hosts, 4 VMs, 3 rules and 2 tokens. */
static void big_db(struct ha_db *db, uint64_t seed)
{
    for (;; seed += 1000) {
        rand_db(db, seed, 8, 40);
        bool fenced = false; /* one host with 2 levels or more, so that one can go */
        for (int i = 0; i < db->nhosts; i++)
            fenced |= db->fence[i] && db->fence[i]->nlevels >= 2 && db->fence[i] == fence_of(db);
        if (db->nhosts >= 3 && db->nvms >= 4 && db->nrules >= 3 && db->ntokens >= 2 && fenced)
            return;
        ha_db_free(db);
    }
}

START_TEST(digest_equal_iff_equal)
{
    struct ha_db base, copy;
    big_db(&base, 11);
    ck_assert_int_eq(ha_db_copy(&copy, &base), 0);
    uint64_t d = pooldb_digest(5, &base);
    ck_assert_uint_eq(pooldb_digest(5, &copy), d);
    ck_assert_uint_ne(pooldb_digest(6, &base), d);
    /* bytes after a string's NUL are not part of the state */
    size_t l = strlen(copy.vm[0].name);
    memset(copy.vm[0].name + l + 1, 'z', sizeof copy.vm[0].name - l - 1);
    ck_assert_uint_eq(pooldb_digest(5, &copy), d);
    ck_assert_ptr_null(db_diff(&base, &copy));
    ha_db_free(&copy);
    for (int m = 0; m < NMUTATIONS; m++) {
        ck_assert_int_eq(ha_db_copy(&copy, &base), 0);
        mutate(&copy, m);
        ck_assert_msg(db_diff(&base, &copy) != NULL, "mutation %d changes nothing", m);
        ck_assert_msg(pooldb_digest(5, &copy) != d, "mutation %d: digest unchanged", m);
        ha_db_free(&copy);
    }
    ha_db_free(&base);
}
END_TEST

/* ---------------------------------------------------------------- changes */

static void rand_change(struct ha_change *c, enum ha_change_type type)
{
    memset(c, 0, sizeof *c);
    c->type = type;
    c->host = (int)rnd();
    c->vm = rnd_in(-1, 5000);
    c->arg = (int)rnd();
    c->protect = (enum ha_protect)rnd_in(0, 2);
    c->priority = rnd_in(-3, 9);
    c->order = (int)rnd();
    c->after1 = rnd_in(0, 100);
    c->rule.type = (enum ha_rule_type)rnd_in(0, 2);
    c->rule.strict = rnd() % 2;
    c->rule.nvms = rnd_in(0, HA_RULE_MAX_VMS);
    for (int i = 0; i < c->rule.nvms; i++)
        c->rule.vm[i] = (int)rnd();
    c->rule.hosts = rnd();
    int n = rnd_in(0, HA_NAME_MAX - 1);
    for (int i = 0; i < n; i++)
        c->rule.name[i] = (char)rnd_in(1, 255);
    n = rnd_in(0, HA_NAME_MAX - 1);
    for (int i = 0; i < n; i++)
        c->name[i] = (char)rnd_in('a', 'z');
    n = rnd_in(0, (int)sizeof c->text - 1);
    for (int i = 0; i < n; i++)
        c->text[i] = (char)rnd_in(1, 255);
    for (int i = 0; i < 32; i++)
        c->blob[i] = (uint8_t)rnd();
    c->when = (int64_t)rnd();
    c->mem_mb = rnd();
    c->cpus = (int)rnd();
    if (type == HA_CHG_FENCE_SET || type == HA_CHG_FENCE_CLEAR) {
        c->fence_level = rnd_in(0, 255);
        c->fence_index = rnd_in(0, 255);
    }
    if (type == HA_CHG_FENCE_SET)
        rand_dev(&c->dev, false);
    if (type == HA_CHG_VM_XML || (type == HA_CHG_VM_ADD && rnd() % 2)) {
        static char *xml; /* borrowed by the change, as the type says */
        free(xml);
        c->xml_len = (uint32_t)rnd_in(1, 3000);
        c->xml = xml = rand_xml(c->xml_len);
    }
}

START_TEST(change_round_trip)
{
    rng = 77;
    for (int round = 0; round < 50; round++)
        for (int t = 0; t <= HA_CHG_LAST; t++) {
            struct ha_change c, back;
            rand_change(&c, (enum ha_change_type)t);
            if (round == 0) { /* the extremes: all strings full */
                memset(c.name, 'n', sizeof c.name - 1);
                memset(c.text, 't', sizeof c.text - 1);
                memset(c.rule.name, 'r', sizeof c.rule.name - 1);
                c.rule.nvms = HA_RULE_MAX_VMS;
                if (t == HA_CHG_FENCE_SET) {
                    while (c.dev.type != HA_FENCE_AGENT) /* the one type with every field */
                        rand_dev(&c.dev, true);
                    rand_dev(&c.dev, true);
                    c.dev.type = HA_FENCE_AGENT;
                    memset(c.dev.agent, 'a', sizeof c.dev.agent - 1);
                    memset(c.dev.addr, 'd', sizeof c.dev.addr - 1);
                    memset(c.dev.user, 'u', sizeof c.dev.user - 1);
                    memset(c.dev.password, 'p', sizeof c.dev.password - 1);
                    c.dev.nopts = HA_FENCE_OPTS;
                    for (int k = 0; k < HA_FENCE_OPTS; k++)
                        memset(c.dev.opt[k], 'o', sizeof c.dev.opt[k] - 1);
                    c.dev.cipher = 255;
                }
            }
            static uint8_t buf[POOLDB_CHANGE_MAX], again[POOLDB_CHANGE_MAX];
            char err[256] = "";
            int n = pooldb_encode_change(&c, buf, sizeof buf);
            ck_assert_int_gt(n, 0);
            ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), 0);
            const char *d = change_diff(&c, &back);
            ck_assert_msg(!d, "type %d: %s differs", t, d ? d : "");
            ck_assert_int_eq(pooldb_encode_change(&back, again, sizeof again), n);
            ck_assert_mem_eq(buf, again, (size_t)n);
            /* a buffer one byte short, every truncation, one byte too many */
            ck_assert_int_eq(pooldb_encode_change(&c, again, (size_t)n - 1), -ENOSPC);
            for (int k = 0; k < n; k++) {
                err[0] = 0;
                ck_assert_int_eq(pooldb_decode_change(buf, (size_t)k, &back, err, sizeof err), -EINVAL);
                ck_assert(err[0]);
            }
            buf[n] = 0;
            ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n + 1, &back, err, sizeof err), -EINVAL);
            ck_assert(strstr(err, "unexpected bytes"));
        }
}
END_TEST

START_TEST(change_rejects)
{
    struct ha_change c = {.type = HA_CHG_VM_WANT, .vm = 3, .arg = 1, .priority = 3}, back;
    static uint8_t buf[POOLDB_CHANGE_MAX];
    char err[256];
    int n = pooldb_encode_change(&c, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    /* the type is the second byte, the protection the 15th */
    buf[1] = HA_CHG_LAST + 1;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
    char want[64];
    snprintf(want, sizeof want, "type %d is unknown", HA_CHG_LAST + 1);
    ck_assert_msg(strstr(err, want), "%s", err);
    buf[1] = HA_CHG_VM_WANT;
    buf[14] = 3;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "protection 3"), "%s", err);
    buf[14] = 0;
    buf[0] = 2;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "format 2"), "%s", err);
    buf[0] = 1;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), 0);

    /* what no decoder would take is not encoded either */
    struct ha_change bad = c;
    memset(bad.name, 'x', sizeof bad.name); /* no NUL */
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);
    bad = c;
    bad.type = (enum ha_change_type)(HA_CHG_LAST + 1);
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);
    bad = c;
    bad.rule.nvms = HA_RULE_MAX_VMS + 1;
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);
    bad = c;
    bad.protect = (enum ha_protect)7;
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);

    /* a string with a NUL inside: the name is "ab" here, patched to "a\0" */
    struct ha_change named = {.type = HA_CHG_VM_ADD, .mem_mb = 1, .cpus = 1};
    strcpy(named.name, "ab");
    n = pooldb_encode_change(&named, buf, sizeof buf);
    uint8_t *p = NULL;
    for (int i = 0; i + 3 <= n && !p; i++)
        if (!memcmp(buf + i, "\002ab", 3))
            p = buf + i;
    ck_assert_ptr_nonnull(p);
    p[2] = 0;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "contains a NUL byte"), "%s", err);
    p[2] = 'b';
    p[0] = HA_NAME_MAX; /* longer than the field can hold */
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- snapshot damage */

START_TEST(snapshot_truncations)
{
    struct ha_db db;
    big_db(&db, 3);
    uint8_t *buf;
    size_t len;
    encode(42, &db, &buf, &len);
    for (size_t k = 0; k < len; k++) {
        char err[256] = "";
        uint64_t e = 99;
        struct ha_db out;
        memset(&out, 0xa5, sizeof out);
        struct ha_db untouched = out;
        uint8_t *copy = malloc(k ? k : 1); /* exactly k bytes, so ASan sees any overread */
        memcpy(copy, buf, k);
        ck_assert_int_eq(pooldb_decode_snapshot(copy, k, &e, &out, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "truncated at byte"), "%zu: %s", k, err);
        ck_assert_uint_eq(e, 99);
        ck_assert_mem_eq(&out, &untouched, sizeof out);
        free(copy);
    }
    free(buf);
    ha_db_free(&db);
}
END_TEST

START_TEST(snapshot_bit_flips)
{
    struct ha_db db;
    big_db(&db, 4);
    uint8_t *buf;
    size_t len;
    encode(1, &db, &buf, &len);
    int by_crc = 0;
    for (size_t i = 0; i < len; i++)
        for (int b = 0; b < 8; b++) {
            char err[256] = "";
            uint64_t e;
            struct ha_db out;
            buf[i] ^= (uint8_t)(1 << b);
            ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
            ck_assert(err[0]);
            by_crc += strstr(err, "bad CRC") != NULL;
            buf[i] ^= (uint8_t)(1 << b);
        }
    ck_assert_int_ge(by_crc, (int)(len - 12) * 8); /* all but the header's */
    free(buf);
    ha_db_free(&db);
}
END_TEST

/* The offset of the first byte where two encodings differ: finds a field
 * without the test knowing the layout. */
static size_t field_offset(const struct ha_db *a, const struct ha_db *b)
{
    uint8_t *x, *y;
    size_t lx, ly, i = 0;
    encode(1, a, &x, &lx);
    encode(1, b, &y, &ly);
    while (i < lx && i < ly && x[i] == y[i])
        i++;
    free(x);
    free(y);
    return i;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void fix_crc(uint8_t *buf, size_t len) { put_le32(buf + len - 4, pooldb_crc32(buf, len - 4)); }

/* A topology of one level with one IPMI device (calloc'ed: the db owns it). */
static struct ha_fence_topo *one_ipmi(void)
{
    struct ha_fence_topo *t = calloc(1, sizeof *t);
    ck_assert_ptr_nonnull(t);
    t->nlevels = 1;
    t->level[0].ndevs = 1;
    t->level[0].dev[0] = (struct ha_fence_dev){.type = HA_FENCE_IPMI, .addr = "10.99.1.2", .port = 623, .user = "admin",
                                               .password = "s3cret", .cipher = 3, .timeout_ms = 5000, .retries = 2};
    return t;
}

START_TEST(snapshot_semantic_errors)
{
    struct ha_db base;
    ha_db_init(&base);
    for (int i = 0; i < 3; i++) {
        struct ha_db_host h = {.cpus = 4, .mem_mb = 1024, .joined = true};
        snprintf(h.name, sizeof h.name, "h%d", i);
        ck_assert_int_eq(ha_db_add_host(&base, &h), i);
    }
    for (int i = 0; i < 6; i++) {
        struct ha_db_vm v = {.cpus = 1, .mem_mb = 512, .priority = 3, .host = i % 3};
        snprintf(v.name, sizeof v.name, "vm%d", i);
        ck_assert_int_eq(ha_db_add_vm(&base, &v), i);
    }
    struct ha_rule pin = {.type = HA_RULE_PIN, .nvms = 1, .vm = {2}, .hosts = 3};
    strcpy(pin.name, "pin-vm2");
    add_rule(&base, &pin);
    struct ha_rule anti = {.type = HA_RULE_ANTI_AFFINITY, .nvms = 2, .vm = {0, 1}};
    strcpy(anti.name, "apart");
    add_rule(&base, &anti);

    /* byte level: VM 4's host patched to 70 and the CRC recomputed */
    struct ha_db other;
    ck_assert_int_eq(ha_db_copy(&other, &base), 0);
    other.vm[4].host = 2; /* base has 1: the first differing byte is the low byte of the field */
    size_t off = field_offset(&base, &other);
    ha_db_free(&other);
    uint8_t *buf;
    size_t len;
    encode(1, &base, &buf, &len);
    ck_assert_uint_eq(buf[off], 1);
    buf[off] = 70;
    fix_crc(buf, len);
    char err[256] = "";
    uint64_t e;
    struct ha_db out;
    ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "snapshot: VM 4 names host 70 but the pool has 3 hosts");
    free(buf);

    /* a count far beyond the input: refused before any allocation */
    struct ha_db empty;
    ha_db_init(&empty);
    encode(1, &empty, &buf, &len);
    put_le32(buf + len - 16, 0xffffffffu); /* the VM count: VMs, rules, fenced hosts are the last counts */
    fix_crc(buf, len);
    ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "claims 4294967295 VMs"), "%s", err);
    put_le32(buf + len - 16, 0);
    put_le32(buf + len - 12, 0x10000000u);
    fix_crc(buf, len);
    ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "claims 268435456 rules"), "%s", err);
    put_le32(buf + len - 12, 0);
    put_le32(buf + len - 8, 1);
    fix_crc(buf, len);
    ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "1 hosts have fence devices but the pool has 0 hosts"), "%s", err);
    free(buf);

    /* field level: a bad database encodes (the encoder does not judge)
     * and the decoder names the problem */
    static const struct {
        int what;
        const char *msg;
    } cases[] = {
        {0, "VM 5 names host 3 but the pool has 3 hosts"},
        {1, "VM 1 migrates to host -2 but the pool has 3 hosts"},
        {2, "VM 0 ('vm0') has priority 0, not 1..5"},
        {3, "VM 3 ('vm3') starts after VM 3, which is itself"},
        {4, "VM 3 ('vm3') starts after VM 6, which is not in the pool"},
        {5, "is in a cycle of after= dependencies"},
        {6, "the preferred master is host 3 but the pool has 3 hosts"},
        {7, "host 1 has no valid name ('h 1')"},
        {8, "hosts 0 and 2 are both named 'h0'"},
        {9, "two VMs are named 'vm0'"},
        {10, "rule 'apart' names VM 6 but the pool has 6 VMs"},
        {11, "pin rule 'pin-vm2' allows hosts 0x8 but the pool has 3 hosts"},
        {12, "pin rule 'pin-vm2' allows hosts 0x0"},
        {13, "anti-affinity rule 'apart' has 1 VMs"},
        {14, "disk_timeout must be at least twice disk_interval"},
        {15, "setting token_timeout: '5ms' is below the minimum"},
        {16, "cpu_overcommit: '0.5' must be a number from 1 to 64"},
        {17, "cpu_overcommit: 'nan' must be a number"},
        {18, "evacuate_concurrency: '0' is not a whole number in range"},
        {19, "balance_interval: '500ms' must be off or a duration of at least 1s"},
        {20, "pool name 'bad name' is not a valid name"},
        {21, "VM 2 ('vm2') has unknown protection 9"},
        {22, "VM 2 ('vm2') has -1 CPUs"},
        {23, "host 2 ('h2') has -4 CPUs"},
        {24, "VM 1 has no valid name ('')"},
        {25, "rule 1 has no name"},
        {26, "setting msgwait: '-200ms' is not a duration"},
        {27, "failures_to_tolerate: '64' is not a whole number in range"},
        {28, "setting vm_start: '604800001ms' is not a duration"},
        {29, "host 0 ('h0') has no fence devices but its flag says yes"},
        {30, "host 1 ('h1') has fence devices but its flag says no"},
        {31, "host 2 ('h2') level 1 device 1: ipmi device: cipher suite is not in 1..17"},
        {32, "host 2 ('h2') level 1 device 1: ipmi device: it needs an address, a user and a password"},
        {33, "host 2 ('h2') level 1 device 1: agent device: option 'k' is not key=value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ha_db d;
        ck_assert_int_eq(ha_db_copy(&d, &base), 0);
        switch (cases[i].what) {
        case 0: d.vm[5].host = 3; break;
        case 1: d.vm[1].migrating_to = -2; break;
        case 2: d.vm[0].priority = 0; break;
        case 3: d.vm[3].after1 = 4; break;
        case 4: d.vm[3].after1 = 7; break;
        case 5: d.vm[0].after1 = 2, d.vm[1].after1 = 3, d.vm[2].after1 = 1; break;
        case 6: d.preferred_master = 3; break;
        case 7: strcpy(d.host[1].name, "h 1"); break;
        case 8: strcpy(d.host[2].name, "h0"); break;
        case 9: strcpy(d.vm[4].name, "vm0"); break;
        case 10: d.rule[1].vm[1] = 6; break;
        case 11: d.rule[0].hosts = 8; break;
        case 12: d.rule[0].hosts = 0; break;
        case 13: d.rule[1].nvms = 1; break;
        case 14: d.set.disk_timeout = 2 * d.set.disk_interval - 1; break;
        case 15: d.set.token_timeout = 5; break;
        case 16: d.set.cpu_overcommit = 0.5; break;
        case 17: d.set.cpu_overcommit = NAN; break;
        case 18: d.set.evacuate_concurrency = 0; break;
        case 19: d.set.balance_interval = 500; break;
        case 20: strcpy(d.pool_name, "bad name"); break;
        case 21: d.vm[2].protect = (enum ha_protect)9; break;
        case 22: d.vm[2].cpus = -1; break;
        case 23: d.host[2].cpus = -4; break;
        case 24: d.vm[1].name[0] = 0; break;
        case 25: d.rule[1].name[0] = 0; break;
        case 26: d.set.msgwait = -200; break;
        case 27: d.set.failures_to_tolerate = 64; break;
        case 28: d.set.vm_start = 604800001; break;
        case 29: d.host[0].fence_ipmi = true; break;
        case 30: d.fence[1] = one_ipmi(); break;
        case 31: d.fence[2] = one_ipmi(), d.host[2].fence_ipmi = true, d.fence[2]->level[0].dev[0].cipher = 0; break;
        case 32: d.fence[2] = one_ipmi(), d.host[2].fence_ipmi = true, d.fence[2]->level[0].dev[0].password[0] = 0; break;
        case 33:
            d.fence[2] = one_ipmi(), d.host[2].fence_ipmi = true;
            d.fence[2]->level[0].dev[0] = (struct ha_fence_dev){.type = HA_FENCE_AGENT, .agent = "fence_x", .nopts = 1,
                                                                .opt = {"k"}, .timeout_ms = 5000};
            break;
        }
        encode(1, &d, &buf, &len);
        err[0] = 0;
        struct ha_db sentinel;
        memset(&out, 0x3c, sizeof out);
        sentinel = out;
        ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, cases[i].msg), "case %d: got '%s', want '%s'", cases[i].what, err, cases[i].msg);
        ck_assert_mem_eq(&out, &sentinel, sizeof out);
        free(buf);
        ha_db_free(&d);
    }
    /* and the base itself is fine */
    encode(1, &base, &buf, &len);
    ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &out, err, sizeof err), 0);
    ha_db_free(&out);
    free(buf);
    /* what cannot be encoded at all */
    strcpy(base.pool_uuid, "x");
    memset(base.host[0].addr, 'a', sizeof base.host[0].addr);
    ck_assert_int_eq(pooldb_encode_snapshot(1, &base, &buf, &len), -EINVAL);
    ha_db_free(&base);
}
END_TEST

/* ---------------------------------------------------------------- the store */

static char tmpdir[64];
static char dir[96];

static void rm_rf(const char *path)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
    strcpy(tmpdir, "/tmp/vigil-pooldb-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(dir, sizeof dir, "%s/pool", tmpdir);
}

static void teardown(void) { rm_rf(tmpdir); }

static char *path_of(const char *name)
{
    static char p[160];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static uint8_t *slurp(const char *name, size_t *len)
{
    FILE *f = fopen(path_of(name), "rb");
    ck_assert_msg(f != NULL, "%s: %s", name, strerror(errno));
    uint8_t *buf = malloc(1 << 22);
    ck_assert_ptr_nonnull(buf);
    *len = fread(buf, 1, 1 << 22, f);
    ck_assert_int_eq(fclose(f), 0);
    return buf;
}

static void spill(const char *name, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path_of(name), "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
    ck_assert_int_eq(fclose(f), 0);
}

static long file_size(const char *name)
{
    struct stat st;
    return stat(path_of(name), &st) == 0 ? (long)st.st_size : -1;
}

/* A history of records, and the state after each: what a member would
 * append.  rec[i].c == NULL is an epoch record. */
#define MAX_HIST 400
struct hist {
    int n;
    struct {
        bool epoch_rec;
        struct ha_change c;
        uint64_t epoch;
        struct ha_db after;
        long log_end; /* pool.log size once it is appended (no compaction) */
    } rec[MAX_HIST];
    struct ha_db start;
    uint64_t start_epoch;
};

static void hist_free(struct hist *h)
{
    for (int i = 0; i < h->n; i++)
        ha_db_free(&h->rec[i].after);
    ha_db_free(&h->start);
    free(h);
}

static const struct ha_db *hist_db(const struct hist *h, int i) { return i ? &h->rec[i - 1].after : &h->start; }
static uint64_t hist_epoch(const struct hist *h, int i) { return i ? h->rec[i - 1].epoch : h->start_epoch; }

static void hist_push(struct hist *h, const struct ha_change *c)
{
    ck_assert_int_lt(h->n, MAX_HIST);
    const struct ha_db *prev = hist_db(h, h->n);
    uint64_t e = hist_epoch(h, h->n);
    ck_assert_int_eq(ha_db_copy(&h->rec[h->n].after, prev), 0);
    if (c) {
        h->rec[h->n].c = *c;
        ck_assert_msg(ha_db_apply(&h->rec[h->n].after, c) == 0, "record %d (type %d) does not apply", h->n, c->type);
    } else
        e++;
    h->rec[h->n].epoch_rec = !c;
    h->rec[h->n].epoch = e;
    h->n++;
}

/* Every kind of change, a few epoch records, then n_extra small ones. */
static struct hist *make_hist(int n_extra)
{
    struct hist *h = calloc(1, sizeof *h);
    ck_assert_ptr_nonnull(h);
    ha_db_init(&h->start);
    h->start_epoch = 1;
    struct ha_change c = {.type = HA_CHG_POOL_CREATE};
    strcpy(c.name, "prod");
    strcpy(c.text, "6f1c2d6e-5b1e-4a5e-9c43-3f2a1b0c9d8e");
    hist_push(h, &c);
    for (int i = 0; i < 3; i++) {
        c = (struct ha_change){.type = HA_CHG_HOST_ADD, .arg = 10 + i, .mem_mb = 65536, .cpus = 16};
        snprintf(c.name, sizeof c.name, "node%d", i);
        snprintf(c.text, sizeof c.text, "192.168.1.%d", 10 + i);
        hist_push(h, &c);
    }
    hist_push(h, NULL);
    for (int i = 0; i < 5; i++) {
        c = (struct ha_change){.type = HA_CHG_VM_ADD, .mem_mb = 2048, .cpus = 2};
        snprintf(c.name, sizeof c.name, "db%d", i);
        if (i >= 3) { /* imported with their domain XML */
            c.xml = i == 3 ? "<domain type='kvm'><name>db3</name></domain>" : "<domain><name>db4</name></domain>";
            c.xml_len = (uint32_t)strlen(c.xml);
        }
        hist_push(h, &c);
    }
    struct ha_change more[] = {
        {.type = HA_CHG_VM_PROTECT, .vm = 1, .protect = HA_PROTECT_RESTART, .priority = 1, .order = -4, .after1 = 1},
        {.type = HA_CHG_VM_WANT, .vm = 1, .arg = 1},
        {.type = HA_CHG_VM_PLACE, .vm = 1, .host = 2},
        {.type = HA_CHG_VM_MIGRATING, .vm = 1, .host = 2, .arg = 0},
        {.type = HA_CHG_HOST_MAINT, .host = 2, .arg = 1},
        {.type = HA_CHG_HOST_LEAVING, .host = 2, .arg = 1},
        {.type = HA_CHG_HOST_FENCED, .host = 1, .arg = 1},
        {.type = HA_CHG_HOST_JOIN, .host = 1},
        {.type = HA_CHG_PREFERRED_MASTER, .host = 0},
        {.type = HA_CHG_RULE_ADD, .rule = {.name = "spread", .type = HA_RULE_ANTI_AFFINITY, .nvms = 3, .vm = {0, 1, 2}}},
        {.type = HA_CHG_RULE_ADD, .rule = {.name = "pin-db4", .type = HA_RULE_PIN, .strict = true, .nvms = 1,
                                           .vm = {4}, .hosts = 5}},
        {.type = HA_CHG_RULE_DEL, .arg = 0},
        {.type = HA_CHG_TOKEN_ADD, .blob = {1, 2, 3}, .when = 1700000000},
        {.type = HA_CHG_TOKEN_USE, .blob = {1, 2, 3}},
        {.type = HA_CHG_SETTING, .name = "disk_timeout", .text = "8s"},
        {.type = HA_CHG_HOST_LEAVE, .host = 2},
        {.type = HA_CHG_FENCE_SET, .host = 0, .fence_level = 1,
         .dev = {.type = HA_FENCE_IPMI, .addr = "10.99.1.2", .port = 623, .user = "admin", .password = "s3cret",
                 .cipher = 3, .timeout_ms = 5000, .retries = 2}},
        {.type = HA_CHG_FENCE_SET, .host = 0, .fence_level = 2,
         .dev = {.type = HA_FENCE_AGENT, .agent = "fence_apc", .addr = "pdu1", .user = "apc", .password = "x",
                 .nopts = 2, .opt = {"plug=3", "ssh=1"}, .timeout_ms = 20000, .retries = 1}},
        {.type = HA_CHG_FENCE_SET, .host = 0, .fence_level = 3,
         .dev = {.type = HA_FENCE_DISK, .timeout_ms = 10000}},
        {.type = HA_CHG_FENCE_CLEAR, .host = 0, .fence_level = 3},
        {.type = HA_CHG_FENCE_SET, .host = 1, .fence_level = 1, .dev = {.type = HA_FENCE_SCSI_PR, .timeout_ms = 100}},
        {.type = HA_CHG_VM_XML, .vm = 0, .mem_mb = 4096, .cpus = 4, .xml = "<domain><name>db0</name></domain>",
         .xml_len = 33},
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        hist_push(h, &more[i]);
        if (i == 7)
            hist_push(h, NULL);
    }
    for (int i = 0; i < n_extra; i++) {
        c = (struct ha_change){.type = HA_CHG_VM_WANT, .vm = i % 5, .arg = i % 2};
        hist_push(h, i % 17 == 16 ? NULL : &c);
    }
    return h;
}

static int store_append(struct pooldb_store *s, struct hist *h, int i)
{
    char err[512] = "";
    int rc = pooldb_append(s, h->rec[i].epoch, h->rec[i].after.version, h->rec[i].epoch_rec ? NULL : &h->rec[i].c,
                           &h->rec[i].after, err, sizeof err);
    ck_assert_msg(rc == 0, "append %d: %s", i, err);
    h->rec[i].log_end = file_size("pool.log");
    return rc;
}

/* Opens the store and checks it holds the state after `records` records. */
static void expect_state(const struct hist *h, int records, bool want_repaired)
{
    struct ha_db db;
    uint64_t e;
    bool repaired = !want_repaired;
    char err[512] = "";
    int rc = pooldb_open(dir, NULL, &e, &db, &repaired, err, sizeof err);
    ck_assert_msg(rc == 0, "open (expecting %d records): %s", records, err);
    ck_assert_msg(repaired == want_repaired, "repaired %d, want %d (%s)", repaired, want_repaired, err);
    if (want_repaired)
        ck_assert_msg(strstr(err, "cut a torn record"), "%s", err);
    ck_assert_uint_eq(e, hist_epoch(h, records));
    const char *d = db_diff(&db, hist_db(h, records));
    ck_assert_msg(!d, "after %d records: %s differs", records, d ? d : "");
    ha_db_free(&db);
}

/* Opens the store for more appends (the state itself is checked elsewhere). */
static struct pooldb_store *reopen(void)
{
    struct pooldb_store *s = NULL;
    struct ha_db db;
    uint64_t e;
    bool repaired;
    char err[512] = "";
    ck_assert_msg(pooldb_open(dir, &s, &e, &db, &repaired, err, sizeof err) == 0, "%s", err);
    ha_db_free(&db);
    return s;
}

static struct pooldb_store *create_store(const struct hist *h)
{
    struct pooldb_store *s = NULL;
    char err[512] = "";
    ck_assert_msg(pooldb_create(dir, h->start_epoch, &h->start, &s, err, sizeof err) == 0, "%s", err);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    return s;
}

START_TEST(store_round_trip)
{
    struct hist *h = make_hist(10);
    struct pooldb_store *s = create_store(h);
    pooldb_close(s);
    expect_state(h, 0, false);
    s = reopen();
    for (int i = 0; i < h->n; i++)
        store_append(s, h, i);
    pooldb_close(s);
    expect_state(h, h->n, false);

    /* reopened, it goes on where it stopped */
    struct ha_db db;
    uint64_t e;
    bool repaired;
    char err[512];
    ck_assert_int_eq(pooldb_open(dir, &s, &e, &db, &repaired, err, sizeof err), 0);
    struct ha_change c = {.type = HA_CHG_VM_WANT, .vm = 0, .arg = 1};
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_int_eq(pooldb_append(s, e, db.version, &c, &db, err, sizeof err), 0);
    /* out of sequence: refused, nothing written */
    long size = file_size("pool.log");
    ck_assert_int_eq(pooldb_append(s, e, db.version, &c, &db, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "does not follow"), "%s", err);
    db.version += 2;
    ck_assert_int_eq(pooldb_append(s, e, db.version, &c, &db, err, sizeof err), -EINVAL);
    db.version--;
    ck_assert_int_eq(pooldb_append(s, e + 1, db.version, &c, &db, err, sizeof err), -EINVAL);
    db.version--;
    ck_assert_int_eq(pooldb_append(s, e, db.version, NULL, &db, err, sizeof err), -EINVAL); /* epoch must rise */
    ck_assert_int_eq(pooldb_append(s, e + 1, db.version + 1, &c, &db, err, sizeof err), -EINVAL);
    ck_assert_int_eq(file_size("pool.log"), size);
    /* a second handle on the same directory is refused */
    struct ha_db db2;
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db2, &repaired, err, sizeof err), -EBUSY);
    ck_assert_int_eq(pooldb_destroy(dir, err, sizeof err), -EBUSY);
    ck_assert_int_eq(pooldb_create(dir, 1, &db, NULL, err, sizeof err), -EBUSY);
    pooldb_close(s);
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db2, &repaired, err, sizeof err), 0);
    ck_assert_ptr_null(db_diff(&db, &db2));
    ck_assert_int_eq(pooldb_create(dir, 1, &db, NULL, err, sizeof err), -EEXIST);
    ha_db_free(&db);
    ha_db_free(&db2);
    hist_free(h);
}
END_TEST

START_TEST(store_torn_at_every_byte)
{
    struct hist *h = make_hist(0);
    struct pooldb_store *s = create_store(h);
    for (int i = 0; i < h->n; i++)
        store_append(s, h, i);
    pooldb_close(s);
    size_t len;
    uint8_t *log = slurp("pool.log", &len);
    ck_assert_int_eq((long)len, h->rec[h->n - 1].log_end);
    int whole = 0; /* records entirely inside the prefix */
    for (size_t cut = 0; cut <= len; cut++) {
        while (whole < h->n && (size_t)h->rec[whole].log_end <= cut)
            whole++;
        size_t boundary = whole ? (size_t)h->rec[whole - 1].log_end : 0;
        spill("pool.log", log, cut);
        expect_state(h, whole, cut != boundary);
        ck_assert_int_eq(file_size("pool.log"), (long)boundary); /* cut back to the last whole record */
    }
    /* what ext4 can leave: the size grew but the data is zeros */
    uint8_t *zeros = calloc(1, len + 300);
    memcpy(zeros, log, len);
    spill("pool.log", zeros, len + 300);
    expect_state(h, h->n, true);
    expect_state(h, h->n, false);
    free(zeros);
    free(log);
    hist_free(h);
}
END_TEST

/* Opens expecting -EUCLEAN with `want` in the message and no file changed. */
static void expect_corrupt(const char *want)
{
    size_t ls, ll;
    uint8_t *snap = slurp("pool.snap", &ls), *log = slurp("pool.log", &ll);
    struct ha_db db;
    uint64_t e;
    bool repaired;
    char err[512] = "";
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db, &repaired, err, sizeof err), -EUCLEAN);
    ck_assert_msg(strstr(err, want), "got '%s', want '%s'", err, want);
    size_t ls2, ll2;
    uint8_t *snap2 = slurp("pool.snap", &ls2), *log2 = slurp("pool.log", &ll2);
    ck_assert_uint_eq(ls, ls2);
    ck_assert_uint_eq(ll, ll2);
    ck_assert_mem_eq(snap, snap2, ls);
    ck_assert_mem_eq(log, log2, ll);
    free(snap);
    free(log);
    free(snap2);
    free(log2);
}

START_TEST(store_corruption)
{
    struct hist *h = make_hist(0);
    struct pooldb_store *s = create_store(h);
    for (int i = 0; i < h->n; i++)
        store_append(s, h, i);
    pooldb_close(s);
    size_t len;
    uint8_t *log = slurp("pool.log", &len);
    char want[128];
    long r5 = h->rec[4].log_end, r6 = h->rec[5].log_end; /* record 5 spans [r5, r6) */

    /* a flipped bit in record 5's body, good records after it */
    log[r5 + 20] ^= 4;
    spill("pool.log", log, len);
    snprintf(want, sizeof want, "record at byte %ld has bad CRC, and a valid record follows at byte %ld", r5, r6);
    expect_corrupt(want);
    log[r5 + 20] ^= 4;
    /* its magic damaged */
    log[r5] = 'X';
    spill("pool.log", log, len);
    snprintf(want, sizeof want, "record at byte %ld has bad magic", r5);
    expect_corrupt(want);
    log[r5] = 'V';
    /* its length damaged */
    uint8_t keep = log[r5 + 6]; /* 4 MiB: more than any record (a change with the largest XML) */
    log[r5 + 6] = 0x40;
    spill("pool.log", log, len);
    snprintf(want, sizeof want, "record at byte %ld has bad length", r5);
    expect_corrupt(want);
    log[r5 + 6] = keep;
    /* record 5 missing: a version gap */
    uint8_t *gap = malloc(len);
    memcpy(gap, log, (size_t)r5);
    memcpy(gap + r5, log + r6, len - (size_t)r6);
    spill("pool.log", gap, len - (size_t)(r6 - r5));
    snprintf(want, sizeof want, "change record at byte %ld (epoch 2, version 6) does not follow epoch 2, version 4",
             r5);
    expect_corrupt(want);
    /* record 5 twice */
    memcpy(gap, log, (size_t)r6);
    memcpy(gap + r6, log + r5, (size_t)(r6 - r5));
    spill("pool.log", gap, (size_t)(r6 + r6 - r5));
    expect_corrupt("does not follow");
    free(gap);
    /* a bad snapshot */
    spill("pool.log", log, 0);
    size_t sl;
    uint8_t *snap = slurp("pool.snap", &sl);
    snap[sl / 2] ^= 1;
    spill("pool.snap", snap, sl);
    expect_corrupt("pool.snap is corrupt: snapshot: bad CRC");
    snap[sl / 2] ^= 1;
    spill("pool.snap", snap, sl);
    spill("pool.log", log, len);
    expect_state(h, h->n, false);

    /* a whole record (good CRC) that ha_db_apply refuses: the append
     * contract says the caller applied it first; here it did not */
    s = reopen();
    struct ha_db after;
    ck_assert_int_eq(ha_db_copy(&after, hist_db(h, h->n)), 0);
    after.version++;
    struct ha_change bad = {.type = HA_CHG_VM_PLACE, .vm = 999, .host = 0};
    ck_assert_int_eq(pooldb_append(s, hist_epoch(h, h->n), after.version, &bad, &after, want, sizeof want), 0);
    pooldb_close(s);
    snprintf(want, sizeof want, "the database refuses the change at byte %zu (version %" PRIu64 ", type %d)", len,
             after.version, HA_CHG_VM_PLACE);
    expect_corrupt(want);
    ha_db_free(&after);
    free(snap);
    free(log);
    hist_free(h);
}
END_TEST

START_TEST(store_compaction)
{
    struct hist *h = make_hist(100);
    struct pooldb_store *s = create_store(h);
    pooldb_set_compaction(s, 10, 1 << 20);
    long snap0 = file_size("pool.snap");
    int compactions = 0;
    for (int i = 0; i < h->n; i++) {
        store_append(s, h, i);
        if (file_size("pool.log") == 0)
            compactions++;
        ck_assert_int_lt(file_size("pool.log"), 10 * (12 + 17 + POOLDB_CHANGE_MAX));
        if (i % 23 == 0) { /* every so often: what is on disk is the state so far */
            pooldb_close(s);
            expect_state(h, i + 1, false);
            s = reopen();
            pooldb_set_compaction(s, 10, 1 << 20);
        }
    }
    ck_assert_int_ge(compactions, h->n / 10 - 3);
    ck_assert_int_ne(file_size("pool.snap"), snap0);
    pooldb_close(s);
    expect_state(h, h->n, false);

    /* by size: the log may not outgrow the snapshot once past max_bytes */
    rm_rf(dir);
    s = create_store(h);
    pooldb_set_compaction(s, 100000, 1);
    compactions = 0;
    for (int i = 0; i < h->n; i++) {
        store_append(s, h, i);
        compactions += file_size("pool.log") == 0;
        ck_assert_int_le(file_size("pool.log"), file_size("pool.snap") + 12 + 17 + POOLDB_CHANGE_MAX);
    }
    ck_assert_int_gt(compactions, 0);
    pooldb_close(s);
    expect_state(h, h->n, false);
    hist_free(h);
}
END_TEST

START_TEST(store_crash_between_rename_and_truncation)
{
    struct hist *h = make_hist(20);
    struct pooldb_store *s = create_store(h);
    for (int i = 0; i < h->n; i++)
        store_append(s, h, i);
    pooldb_close(s);
    size_t len;
    uint8_t *log = slurp("pool.log", &len), *snap;
    size_t sl;

    /* compaction: the new snapshot is the current state, the log not yet cut */
    encode(hist_epoch(h, h->n), hist_db(h, h->n), &snap, &sl);
    spill("pool.snap", snap, sl);
    expect_state(h, h->n, false);
    free(snap);
    /* a snapshot from the middle of the log: the records after it replay */
    int mid = h->n / 2;
    encode(hist_epoch(h, mid), hist_db(h, mid), &snap, &sl);
    spill("pool.snap", snap, sl);
    expect_state(h, h->n, false);
    free(snap);

    /* state transfer: a newer epoch at a lower version (the log's tail came
     * from a deposed master) -- the old records must not be replayed on it */
    struct ha_db other;
    ck_assert_int_eq(ha_db_copy(&other, hist_db(h, h->n - 5)), 0);
    struct ha_change c = {.type = HA_CHG_SETTING, .name = "max_restart", .text = "7"};
    ck_assert_int_eq(ha_db_apply(&other, &c), 0);
    uint64_t e2 = hist_epoch(h, h->n) + 1;
    encode(e2, &other, &snap, &sl);
    spill("pool.snap", snap, sl);
    spill("pool.log", log, len);
    struct ha_db db;
    uint64_t e;
    bool repaired;
    char err[512];
    ck_assert_msg(pooldb_open(dir, &s, &e, &db, &repaired, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(e, e2);
    ck_assert_ptr_null(db_diff(&db, &other));
    /* and new records after the stale ones are read back */
    c = (struct ha_change){.type = HA_CHG_VM_WANT, .vm = 2, .arg = 1};
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_int_eq(pooldb_append(s, e, db.version, &c, &db, err, sizeof err), 0);
    pooldb_close(s);
    struct ha_db db2;
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db2, &repaired, err, sizeof err), 0);
    ck_assert_ptr_null(db_diff(&db, &db2));
    ha_db_free(&db2);
    ha_db_free(&db);
    free(snap);

    /* pooldb_replace itself: refuses to go back, then goes forward */
    ck_assert_int_eq(pooldb_open(dir, &s, &e, &db, &repaired, err, sizeof err), 0);
    ck_assert_int_eq(pooldb_replace(s, e - 1, &db, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "by the older"), "%s", err);
    ck_assert_int_eq(pooldb_replace(s, e + 3, &other, err, sizeof err), 0);
    ck_assert_int_eq(file_size("pool.log"), 0);
    /* a state that would not load is not written */
    size_t before_len;
    uint8_t *before = slurp("pool.snap", &before_len);
    int keep = other.vm[0].host;
    other.vm[0].host = 63;
    ck_assert_int_eq(pooldb_replace(s, e + 3, &other, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "refusing to write a snapshot that would not load: snapshot: VM 0 names host 63"),
                  "%s", err);
    other.vm[0].host = keep;
    size_t after_len;
    uint8_t *after = slurp("pool.snap", &after_len);
    ck_assert_uint_eq(before_len, after_len);
    ck_assert_mem_eq(before, after, after_len);
    pooldb_close(s);
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db2, &repaired, err, sizeof err), 0);
    ck_assert_uint_eq(e, e2 + 3);
    ck_assert_ptr_null(db_diff(&db2, &other));
    ha_db_free(&db2);
    ha_db_free(&db);
    ha_db_free(&other);
    free(before);
    free(after);
    free(log);
    hist_free(h);
}
END_TEST

START_TEST(store_destroy_and_leftovers)
{
    struct hist *h = make_hist(0);
    struct ha_db db;
    uint64_t e;
    bool repaired;
    char err[512] = "";
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db, &repaired, err, sizeof err), -ENOENT); /* no directory */
    ck_assert_int_eq(pooldb_destroy(dir, err, sizeof err), 0);
    struct pooldb_store *s = create_store(h);
    for (int i = 0; i < 10; i++)
        store_append(s, h, i);
    pooldb_close(s);
    size_t len;
    uint8_t *log = slurp("pool.log", &len);
    ck_assert_int_eq(pooldb_destroy(dir, err, sizeof err), 0);
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db, &repaired, err, sizeof err), -ENOENT);
    ck_assert_msg(strstr(err, "no pool database"), "%s", err);
    ck_assert_int_eq(pooldb_destroy(dir, err, sizeof err), 0);

    /* a destroy interrupted after pool.snap went: still no pool, and a
     * create does not pick up the old log */
    spill("pool.log", log, len);
    spill("pool.snap.tmp", log, 10);
    ck_assert_int_eq(pooldb_open(dir, NULL, &e, &db, &repaired, err, sizeof err), -ENOENT);
    s = create_store(h);
    pooldb_close(s);
    ck_assert_int_eq(file_size("pool.log"), 0);
    ck_assert_int_eq(file_size("pool.snap.tmp"), -1);
    expect_state(h, 0, false);

    /* a create interrupted after the snapshot, before the log */
    ck_assert_int_eq(unlink(path_of("pool.log")), 0);
    spill("pool.snap.tmp", log, 10); /* and a replace interrupted before its rename */
    expect_state(h, 0, false);
    ck_assert_int_eq(file_size("pool.log"), 0);
    ck_assert_int_eq(file_size("pool.snap.tmp"), -1);
    free(log);
    hist_free(h);
}
END_TEST

/* ---------------------------------------------------------------- fuzzer seeds */

static void write_seed(const char *seeddir, const char *name, uint8_t mode, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", seeddir, name);
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
    ck_assert_uint_eq(fwrite(&mode, 1, 1, f), 1);
    ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* A MASTER change raises the epoch by itself (vigild keeps the store's epoch
 * equal to the database's master_epoch): its record may carry epoch + 1,
 * any other change may not, and replay accepts exactly that. */
START_TEST(store_master_change_raises_epoch)
{
    struct ha_db db;
    ha_db_init(&db);
    struct ha_db_host hh = {.joined = true, .nodeid = 1};
    snprintf(hh.name, sizeof hh.name, "h1");
    snprintf(hh.addr, sizeof hh.addr, "10.0.0.1");
    ck_assert_int_eq(ha_db_add_host(&db, &hh), 0);
    snprintf(hh.name, sizeof hh.name, "h2");
    hh.nodeid = 2;
    ck_assert_int_eq(ha_db_add_host(&db, &hh), 1);
    char err[512] = "";
    struct pooldb_store *s = NULL;
    ck_assert_msg(pooldb_create(dir, db.master_epoch, &db, &s, err, sizeof err) == 0, "%s", err);
    struct ha_change m = {.type = HA_CHG_MASTER, .host = 1};
    ck_assert_int_eq(ha_db_apply(&db, &m), 0);
    uint64_t e = db.master_epoch;
    struct ha_change w = {.type = HA_CHG_PREFERRED_MASTER, .host = 0};
    /* another change may not raise the epoch */
    ck_assert_int_eq(pooldb_append(s, e, db.version, &w, &db, err, sizeof err), -EINVAL);
    ck_assert_msg(pooldb_append(s, e, db.version, &m, &db, err, sizeof err) == 0, "%s", err);
    /* nor may a master change raise it by two */
    ck_assert_int_eq(ha_db_apply(&db, &m), 0);
    ck_assert_int_eq(pooldb_append(s, e + 2, db.version, &m, &db, err, sizeof err), -EINVAL);
    ck_assert_msg(pooldb_append(s, db.master_epoch, db.version, &m, &db, err, sizeof err) == 0, "%s", err);
    pooldb_close(s);
    struct ha_db back;
    uint64_t eb;
    bool repaired;
    ck_assert_msg(pooldb_open(dir, NULL, &eb, &back, &repaired, err, sizeof err) == 0, "%s", err);
    ck_assert_uint_eq(eb, db.master_epoch);
    ck_assert_uint_eq(back.master_epoch, db.master_epoch);
    ck_assert_uint_eq(back.version, db.version);
    ck_assert_int_eq(back.master, 1);
    ha_db_free(&back);
    ha_db_free(&db);
}
END_TEST

static void no_fences(struct ha_db *db)
{
    for (int i = 0; i < db->nhosts; i++) {
        free(db->fence[i]);
        db->fence[i] = NULL;
        db->host[i].fence_ipmi = false;
    }
}

static void no_xml(struct ha_db *db)
{
    for (int i = 0; i < db->nvms; i++) {
        free(db->vm[i].xml);
        db->vm[i].xml = NULL;
        db->vm[i].xml_len = 0;
    }
}

/* The snapshot of db (whose VMs hold no XML) in format 3, the format before
 * domain XML: each VM's XML length (a 0 after its migrating_to) goes.  Where
 * a VM's migrating_to lies is where the encoding of db and of db with that
 * field changed start to differ. */
static void encode_format_3(uint64_t epoch, const struct ha_db *db, uint8_t **buf, size_t *len)
{
    encode(epoch, db, buf, len);
    ck_assert_uint_eq((*buf)[4], 4);
    for (int i = db->nvms - 1; i >= 0; i--) {
        ck_assert_ptr_null(db->vm[i].xml);
        struct ha_db other;
        ck_assert_int_eq(ha_db_copy(&other, db), 0);
        other.vm[i].migrating_to = db->vm[i].migrating_to == HA_NO_HOST ? 0 : HA_NO_HOST;
        size_t off = field_offset(db, &other) + 4; /* the first byte of the field differs */
        ha_db_free(&other);
        ck_assert_mem_eq(*buf + off, "\0\0\0\0", 4);
        memmove(*buf + off, *buf + off + 4, *len - off - 4);
        *len -= 4;
    }
    (*buf)[4] = 3;
    put_le32(*buf + 8, (uint32_t)*len);
    fix_crc(*buf, *len);
}

/* A format 3 snapshot without fence devices, made format 2: the section of
 * the hosts with fence devices (a count, 0) goes. */
static void to_format_2(uint8_t *buf, size_t *len)
{
    ck_assert_mem_eq(buf + *len - 8, "\0\0\0\0", 4);
    memmove(buf + *len - 8, buf + *len - 4, 4);
    *len -= 4;
    buf[4] = 2;
    put_le32(buf + 8, (uint32_t)*len);
    fix_crc(buf, *len);
}

/* A pool made before fence devices: its pool.snap is format 2, which is
 * format 3 without the last section (the hosts with fence devices).  It
 * loads; it is written back as format 3. */
START_TEST(snapshot_format_2_loads)
{
    for (uint64_t seed = 1; seed <= 40; seed++) {
        struct ha_db db;
        rand_db(&db, seed, 8, 20);
        no_fences(&db); /* what a format 2 pool holds */
        no_xml(&db);
        uint8_t *buf;
        size_t len;
        encode_format_3(9, &db, &buf, &len);
        to_format_2(buf, &len);
        struct ha_db back;
        uint64_t e;
        char err[256] = "";
        ck_assert_msg(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err) == 0, "%s", err);
        ck_assert_uint_eq(e, 9);
        ck_assert_ptr_null(db_diff(&db, &back));
        /* a host flagged with a device that format 2 cannot describe: refused */
        if (db.nhosts) {
            struct ha_db other;
            ck_assert_int_eq(ha_db_copy(&other, &db), 0);
            other.host[0].fence_ipmi = true;
            size_t off = field_offset(&db, &other);
            ha_db_free(&other);
            buf[off] |= 1;
            fix_crc(buf, len);
            ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err), -EINVAL);
            ck_assert_msg(strstr(err, "has no fence devices but its flag says yes"), "%s", err);
            buf[off] &= (uint8_t)~1u;
        }
        /* formats before 2 and after 4 are not read */
        buf[4] = 1;
        fix_crc(buf, len);
        ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "format 1 is not supported (this vigil reads 2 to 4)"), "%s", err);
        buf[4] = 5;
        fix_crc(buf, len);
        ck_assert_int_eq(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err), -EINVAL);
        free(buf);
        ha_db_free(&db);
        ha_db_free(&back);
    }
}
END_TEST

/* The database holds passwords: opening it makes it root-only again. */
START_TEST(store_permissions)
{
    struct hist *h = make_hist(0);
    struct pooldb_store *s = create_store(h);
    for (int i = 0; i < h->n; i++)
        store_append(s, h, i);
    pooldb_close(s);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chmod(path_of("pool.snap"), 0644), 0);
    ck_assert_int_eq(chmod(path_of("pool.log"), 0666), 0);
    expect_state(h, h->n, false);
    struct stat st;
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    ck_assert_int_eq(stat(path_of("pool.snap"), &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    ck_assert_int_eq(stat(path_of("pool.log"), &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0600);
    /* and a create in an existing, open directory closes it too */
    ck_assert_int_eq(pooldb_destroy(dir, NULL, 0), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    s = create_store(h);
    pooldb_close(s);
    ck_assert_int_eq(stat(dir, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0700);
    hist_free(h);
}
END_TEST

/* A pool made before domain XML: its pool.snap is format 3, which is format
 * 4 without each VM's XML length.  It loads (no VM has an XML); it is
 * written back as format 4. */
START_TEST(snapshot_format_3_loads)
{
    for (uint64_t seed = 1; seed <= 40; seed++) {
        struct ha_db db, back;
        rand_db(&db, seed, 8, 20);
        no_xml(&db);
        uint8_t *buf, *again;
        size_t len, len2;
        uint64_t e;
        char err[256] = "";
        encode_format_3(4, &db, &buf, &len);
        ck_assert_msg(pooldb_decode_snapshot(buf, len, &e, &back, err, sizeof err) == 0, "seed %" PRIu64 ": %s",
                      seed, err);
        ck_assert_uint_eq(e, 4);
        ck_assert_ptr_null(db_diff(&db, &back));
        encode(e, &back, &again, &len2);
        ck_assert_uint_eq(again[4], 4);
        ck_assert_uint_eq(len2, len + 4u * (unsigned)db.nvms);
        ck_assert_uint_eq(pooldb_digest(4, &db), pooldb_digest(e, &back));
        free(buf);
        free(again);
        ha_db_free(&db);
        ha_db_free(&back);
    }
}
END_TEST

/* A domain XML is 1..HA_VM_XML_MAX bytes without a NUL.  Anything else is
 * refused by ha_db_apply (and the database is unchanged), by the encoders
 * (nothing is written) and by the decoders. */
START_TEST(xml_limits)
{
    struct ha_db db;
    ha_db_init(&db);
    char *big = rand_xml(HA_VM_XML_MAX + 1);
    struct ha_change add = {.type = HA_CHG_VM_ADD, .vm = -1, .mem_mb = 64, .cpus = 1, .name = "g1"};
    /* oversized, empty with a pointer, with a NUL: refused, nothing changed */
    uint64_t d = pooldb_digest(1, &db);
    add.xml = big;
    add.xml_len = HA_VM_XML_MAX + 1;
    ck_assert_int_eq(ha_db_apply(&db, &add), -EINVAL);
    add.xml_len = 0;
    ck_assert_int_eq(ha_db_apply(&db, &add), -EINVAL);
    big[10] = 0;
    add.xml_len = 100;
    ck_assert_int_eq(ha_db_apply(&db, &add), -EINVAL);
    ck_assert_int_eq(db.nvms, 0);
    ck_assert_uint_eq(pooldb_digest(1, &db), d);
    big[10] = 'x';
    struct ha_db_vm v = {.name = "g0", .priority = 3, .cpus = 1, .mem_mb = 1, .xml = big, .xml_len = HA_VM_XML_MAX + 1};
    ck_assert_int_eq(ha_db_add_vm(&db, &v), -EINVAL);
    ck_assert_int_eq(db.nvms, 0);

    /* the largest one goes everywhere: apply, change, snapshot, copy */
    add.xml_len = HA_VM_XML_MAX;
    ck_assert_int_eq(ha_db_apply(&db, &add), 0);
    ck_assert_int_eq(db.nvms, 1);
    ck_assert_uint_eq(db.vm[0].xml_len, HA_VM_XML_MAX);
    ck_assert_mem_eq(db.vm[0].xml, big, HA_VM_XML_MAX);
    ck_assert_int_eq(db.vm[0].xml[HA_VM_XML_MAX], 0);
    ck_assert_ptr_ne(db.vm[0].xml, big); /* a copy */
    static uint8_t buf[POOLDB_CHANGE_MAX];
    char err[256] = "";
    int n = pooldb_encode_change(&add, buf, sizeof buf);
    ck_assert_int_gt(n, HA_VM_XML_MAX);
    struct ha_change back;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), 0);
    ck_assert_ptr_null(change_diff(&add, &back));
    ck_assert_ptr_eq(back.xml, (const char *)buf + n - HA_VM_XML_MAX); /* left in the buffer */
    /* a NUL inside, on the wire: refused */
    buf[n - 5] = 0;
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n, &back, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "domain XML"), "%s", err);
    /* a length past the end */
    buf[n - 5] = 'x';
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n - 1, &back, err, sizeof err), -EINVAL);
    /* a length of 0 in format 2 */
    struct ha_change small = add;
    small.xml = "<domain/>";
    small.xml_len = 9;
    n = pooldb_encode_change(&small, buf, sizeof buf);
    ck_assert_int_gt(n, 13);
    memset(buf + n - 13, 0, 4);
    ck_assert_int_eq(pooldb_decode_change(buf, (size_t)n - 9, &back, err, sizeof err), -EINVAL);
    /* the encoders: oversized, NUL, or an XML where the type takes none */
    struct ha_change bad = add;
    bad.xml_len = HA_VM_XML_MAX + 1;
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);
    bad = (struct ha_change){.type = HA_CHG_VM_XML, .vm = 0, .mem_mb = 1, .cpus = 1};
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL); /* VM_XML without one */
    ck_assert_int_eq(ha_db_apply(&db, &bad), -EINVAL);
    bad = (struct ha_change){.type = HA_CHG_VM_WANT, .vm = 0, .arg = 1, .xml = "<domain/>", .xml_len = 9};
    ck_assert_int_eq(pooldb_encode_change(&bad, buf, sizeof buf), -EINVAL);

    /* snapshots: the largest XML round-trips; one with a NUL is refused */
    uint8_t *snap;
    size_t slen;
    encode(2, &db, &snap, &slen);
    struct ha_db out;
    uint64_t e;
    ck_assert_int_eq(pooldb_decode_snapshot(snap, slen, &e, &out, err, sizeof err), 0);
    ck_assert_ptr_null(db_diff(&db, &out));
    ha_db_free(&out);
    uint8_t *p = memmem(snap, slen, big, 64);
    ck_assert_ptr_nonnull(p);
    p[1] = 0;
    fix_crc(snap, slen);
    ck_assert_int_eq(pooldb_decode_snapshot(snap, slen, &e, &out, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "domain XML"), "%s", err);
    free(snap);
    db.vm[0].xml[5] = 0; /* a state holding one is not encoded */
    ck_assert_int_eq(pooldb_encode_snapshot(2, &db, &snap, &slen), -EINVAL);
    db.vm[0].xml[5] = 'y';

    /* VM_XML replaces it, with the VM's size; a bad one changes nothing */
    struct ha_change repl = {.type = HA_CHG_VM_XML, .vm = 0, .mem_mb = 128, .cpus = 2, .xml = "<domain/>",
                             .xml_len = 9};
    uint64_t version = db.version;
    d = pooldb_digest(1, &db);
    repl.vm = 1;
    ck_assert_int_eq(ha_db_apply(&db, &repl), -EINVAL); /* no such VM */
    repl.vm = 0;
    repl.xml_len = 0;
    ck_assert_int_eq(ha_db_apply(&db, &repl), -EINVAL);
    ck_assert_uint_eq(pooldb_digest(1, &db), d);
    ck_assert_uint_eq(db.version, version);
    repl.xml_len = 9;
    ck_assert_int_eq(ha_db_apply(&db, &repl), 0);
    ck_assert_str_eq(db.vm[0].xml, "<domain/>");
    ck_assert_uint_eq(db.vm[0].xml_len, 9);
    ck_assert_uint_eq(db.vm[0].mem_mb, 128);
    ck_assert_int_eq(db.vm[0].cpus, 2);
    /* copies are deep */
    struct ha_db copy;
    ck_assert_int_eq(ha_db_copy(&copy, &db), 0);
    ck_assert_ptr_ne(copy.vm[0].xml, db.vm[0].xml);
    ck_assert_ptr_null(db_diff(&db, &copy));
    ha_db_free(&copy);
    free(big);
    ha_db_free(&db);
}
END_TEST

START_TEST(fuzz_seeds)
{
    const char *seeddir = getenv("VIGIL_POOLDB_SEEDS");
    if (!seeddir)
        return;
    struct ha_db db;
    ha_db_init(&db);
    for (uint64_t seed = 1;; seed++) { /* small, but with a bit of everything */
        rand_db(&db, seed, 3, 4);
        bool after = false;
        for (int i = 0; i < db.nvms; i++)
            after |= db.vm[i].after1 != 0;
        if (db.nhosts >= 2 && db.nvms >= 3 && db.nrules >= 3 && db.ntokens >= 1 && db.ntokens <= 2 && after &&
            !db.set.balance_interval)
            break;
        ha_db_free(&db);
    }
    uint8_t *buf;
    size_t len;
    encode(3, &db, &buf, &len);
    write_seed(seeddir, "pooldb-snapshot", 0, buf, len);
    write_seed(seeddir, "pooldb-snapshot-fixup", 2, buf, len);
    free(buf);
    /* the same pool as a format 3 snapshot (before domain XML), and 2
     * (before fence devices) */
    no_xml(&db);
    encode_format_3(3, &db, &buf, &len);
    write_seed(seeddir, "pooldb-snapshot-format3", 0, buf, len);
    free(buf);
    no_fences(&db);
    encode_format_3(3, &db, &buf, &len);
    to_format_2(buf, &len);
    write_seed(seeddir, "pooldb-snapshot-format2", 0, buf, len);
    free(buf);
    ha_db_free(&db);
    struct hist *h = make_hist(0);
    const int picks[] = {0, 1, 9, 10, 13, 20, 21, 23, 25, 28, 30, 35}; /* one of each kind of change */
    for (size_t i = 0; i < sizeof picks / sizeof picks[0]; i++) {
        static uint8_t cb[POOLDB_CHANGE_MAX];
        ck_assert(!h->rec[picks[i]].epoch_rec);
        int n = pooldb_encode_change(&h->rec[picks[i]].c, cb, sizeof cb);
        ck_assert_int_gt(n, 0);
        char name[64];
        snprintf(name, sizeof name, "pooldb-change-%d", picks[i]);
        write_seed(seeddir, name, 1, cb, (size_t)n);
    }
    /* fuzz_wire: the master (node 1) sends a VM_ADD with its domain XML as a
     * replica CHANGE message (header, proposal number, base version) */
    static uint8_t wm[8 + 16 + POOLDB_CHANGE_MAX];
    struct ha_change imp = {.type = HA_CHG_VM_ADD, .vm = -1, .mem_mb = 64, .cpus = 1, .name = "guest1",
                            .xml = "<domain type='qemu'><name>guest1</name><memory unit='MiB'>64</memory>"
                                   "<vcpu>1</vcpu><os><type>hvm</type></os></domain>"};
    imp.xml_len = (uint32_t)strlen(imp.xml);
    int n = pooldb_encode_change(&imp, wm + 24, POOLDB_CHANGE_MAX);
    ck_assert_int_gt(n, 0);
    size_t wl = 24 + (size_t)n;
    const uint8_t hdr[8] = {0x47, 0x56, 1, 3, (uint8_t)wl, (uint8_t)(wl >> 8), 0, 0}; /* "VG", v1, CHANGE */
    memcpy(wm, hdr, sizeof hdr);
    memset(wm + 8, 0, 16);
    wm[8] = 1;  /* proposal 1 */
    wm[16] = 4; /* base version: the pool of three hosts and a master */
    write_seed(seeddir, "wire-change-vm-xml", 1, wm, wl);
    hist_free(h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pooldb");
    TCase *enc = tcase_create("encoding");
    tcase_set_timeout(enc, 120);
    tcase_add_test(enc, crc32_check_value);
    tcase_add_test(enc, snapshot_round_trip);
    tcase_add_test(enc, digest_equal_iff_equal);
    tcase_add_test(enc, change_round_trip);
    tcase_add_test(enc, change_rejects);
    tcase_add_test(enc, snapshot_truncations);
    tcase_add_test(enc, snapshot_bit_flips);
    tcase_add_test(enc, snapshot_semantic_errors);
    tcase_add_test(enc, snapshot_format_2_loads);
    tcase_add_test(enc, snapshot_format_3_loads);
    tcase_add_test(enc, xml_limits);
    tcase_add_test(enc, fuzz_seeds);
    suite_add_tcase(s, enc);
    TCase *store = tcase_create("store");
    tcase_set_timeout(store, 600);
    tcase_add_checked_fixture(store, setup, teardown);
    tcase_add_test(store, store_round_trip);
    tcase_add_test(store, store_torn_at_every_byte);
    tcase_add_test(store, store_corruption);
    tcase_add_test(store, store_compaction);
    tcase_add_test(store, store_crash_between_rename_and_truncation);
    tcase_add_test(store, store_destroy_and_leftovers);
    tcase_add_test(store, store_master_change_raises_epoch);
    tcase_add_test(store, store_permissions);
    suite_add_tcase(s, store);
    return vigil_run_suite(s);
}
