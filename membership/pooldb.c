/* The replicated pool database: its byte encoding and its durable store.
 * The formats are described in docs/pool-database.md; keep the two in step. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha/bytes.h"
#include "membership/pooldb.h"

/* The enums are written as numbers, so their values are part of the format:
 * renumbering one must break the build, not old pool databases. */
_Static_assert(HA_CHG_HOST_JOIN == 0 && HA_CHG_HOST_LEAVE == 1 && HA_CHG_HOST_MAINT == 2 &&
                   HA_CHG_HOST_LEAVING == 3 && HA_CHG_HOST_FENCED == 4 && HA_CHG_VM_PROTECT == 5 &&
                   HA_CHG_VM_WANT == 6 && HA_CHG_VM_PLACE == 7 && HA_CHG_VM_MIGRATING == 8 &&
                   HA_CHG_PREFERRED_MASTER == 9 && HA_CHG_RULE_ADD == 10 && HA_CHG_RULE_DEL == 11 &&
                   HA_CHG_POOL_CREATE == 12 && HA_CHG_HOST_ADD == 13 && HA_CHG_VM_ADD == 14 &&
                   HA_CHG_TOKEN_ADD == 15 && HA_CHG_TOKEN_USE == 16 && HA_CHG_SETTING == 17 &&
                   HA_CHG_MASTER == 18 && HA_CHG_HOST_FACTS == 19 && HA_CHG_FENCE_SET == 20 &&
                   HA_CHG_FENCE_CLEAR == 21 && HA_CHG_VM_XML == 22 && HA_CHG_LAST == HA_CHG_VM_XML,
               "enum ha_change_type is on disk: append new types at the end");
_Static_assert(HA_PROTECT_OFF == 0 && HA_PROTECT_RESTART == 1 && HA_PROTECT_BEST_EFFORT == 2,
               "enum ha_protect is on disk");
_Static_assert(HA_RULE_ANTI_AFFINITY == 0 && HA_RULE_AFFINITY == 1 && HA_RULE_PIN == 2,
               "enum ha_rule_type is on disk");
_Static_assert(HA_FENCE_IPMI == 0 && HA_FENCE_AGENT == 1 && HA_FENCE_DISK == 2 && HA_FENCE_SCSI_PR == 3 &&
                   HA_FENCE_TYPE_LAST == HA_FENCE_SCSI_PR,
               "enum ha_fence_type is on disk");
_Static_assert(HA_FENCE_LEVELS <= 255 && HA_FENCE_DEVS <= 255 && HA_FENCE_OPTS <= 255 && HA_FENCE_SECRET <= 256,
               "fence counts and strings are written with one length byte");
_Static_assert(HA_MAX_HOSTS == 64, "host bitmaps are written as 64 bits");

#define PROTECT_LAST HA_PROTECT_BEST_EFFORT
#define RULE_TYPE_LAST HA_RULE_PIN

#define SNAP_MAGIC "VGDB"
#define SNAP_FORMAT 4 /* 2: the recorded master and its epoch; 3: fence devices; 4: VMs' domain XML */
#define SNAP_FORMAT_OLDEST 2 /* still read: pools made before fence devices, before domain XML */
#define SNAP_HDR 12 /* magic, format, reserved, total length */
#define CHANGE_FORMAT 1     /* every change without a domain XML */
#define CHANGE_FORMAT_XML 2 /* VM_ADD with a domain XML, VM_XML: the XML follows */
#define MAX_VMS 1000000 /* ha_db_add_vm's limit */


uint32_t pooldb_crc32(const void *buf, size_t len)
{
    /* reflected polynomial 0xedb88320, four bits at a time: a 16-entry
     * table is small enough to write out and fast enough for our sizes */
    static const uint32_t t[16] = {0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
                                   0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
                                   0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c};
    const uint8_t *p = buf;
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < len; i++) {
        c ^= p[i];
        c = (c >> 4) ^ t[c & 15];
        c = (c >> 4) ^ t[c & 15];
    }
    return ~c;
}

/* ---------------------------------------------------------------- writing */

/* One writer serves three passes: counting (p == NULL), writing into p, and
 * hashing (for the digest, without a buffer). */
struct wr {
    uint8_t *p;
    size_t n, cap;
    bool overflow; /* p was too small */
    bool bad;      /* a value that cannot be encoded (unterminated string, ...) */
    bool hash;
    uint64_t h;
};

static void put(struct wr *w, const void *src, size_t k)
{
    const uint8_t *b = src;
    if (w->hash)
        for (size_t i = 0; i < k; i++) {
            w->h ^= b[i];
            w->h *= 0x100000001b3ull; /* FNV-1a 64 prime */
        }
    if (w->p) {
        if (w->overflow || k > w->cap - w->n)
            w->overflow = true;
        else
            memcpy(w->p + w->n, b, k);
    }
    w->n += k;
}

static void put_u8(struct wr *w, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(w, &b, 1);
}

static void put_u16(struct wr *w, unsigned v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(w, b, 2);
}

static void put_u32(struct wr *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 4);
}

static void put_u64(struct wr *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, 8);
}

static void put_i32(struct wr *w, int v) { put_u32(w, (uint32_t)v); }
static void put_i64(struct wr *w, int64_t v) { put_u64(w, (uint64_t)v); }
static void put_bool(struct wr *w, bool v) { put_u8(w, v ? 1 : 0); }

/* Enums go out as one byte; a value that does not fit is written as 255,
 * which no decoder accepts, rather than silently wrapped to a valid one. */
static void put_enum(struct wr *w, unsigned v) { put_u8(w, v <= 255 ? v : 255); }

/* Strings: one length byte, then the bytes without the NUL.  Only the
 * string counts, never what sits after its NUL in the field: equal states
 * must encode (and digest) the same. */
static void put_str(struct wr *w, const char *s, size_t field)
{
    size_t len = strnlen(s, field);
    if (len == field || len > 255) {
        w->bad = true;
        len = len > 255 ? 255 : len;
    }
    put_u8(w, (unsigned)len);
    put(w, s, len);
}

static void put_rule(struct wr *w, const struct ha_rule *r)
{
    put_str(w, r->name, sizeof r->name);
    put_enum(w, (unsigned)r->type);
    put_bool(w, r->strict);
    int n = r->nvms;
    if (n < 0 || n > HA_RULE_MAX_VMS) {
        w->bad = true;
        n = n < 0 ? 0 : HA_RULE_MAX_VMS;
    }
    put_u8(w, (unsigned)n);
    for (int i = 0; i < n; i++)
        put_i32(w, r->vm[i]);
    put_u64(w, r->hosts);
}

/* A small count or number: one byte, or the encoding fails. */
static void put_small(struct wr *w, int v)
{
    if (v < 0 || v > 255)
        w->bad = true;
    put_u8(w, (unsigned)v & 0xff);
}

static void put_dev(struct wr *w, const struct ha_fence_dev *d)
{
    if ((unsigned)d->type > HA_FENCE_TYPE_LAST)
        w->bad = true;
    put_enum(w, (unsigned)d->type);
    put_str(w, d->addr, sizeof d->addr);
    if (d->port < 0 || d->port > 65535)
        w->bad = true;
    put_u16(w, (unsigned)d->port & 0xffff);
    put_str(w, d->user, sizeof d->user);
    put_str(w, d->password, sizeof d->password);
    put_small(w, d->cipher);
    put_str(w, d->agent, sizeof d->agent);
    int n = d->nopts;
    if (n < 0 || n > HA_FENCE_OPTS) {
        w->bad = true;
        n = n < 0 ? 0 : HA_FENCE_OPTS;
    }
    put_u8(w, (unsigned)n);
    for (int i = 0; i < n; i++)
        put_str(w, d->opt[i], sizeof d->opt[i]);
    if (d->timeout_ms < 0)
        w->bad = true;
    put_u32(w, (uint32_t)d->timeout_ms);
    put_small(w, d->retries);
}

/* A domain XML: u32 length, then its bytes (no NUL).  Length 0 stands for
 * "none" where none is allowed. */
static void put_xml(struct wr *w, const char *xml, uint32_t len, bool required)
{
    if ((xml || len || required) && !ha_vm_xml_ok(xml, len)) {
        w->bad = true;
        len = 0;
    }
    put_u32(w, len);
    if (len)
        put(w, xml, len);
}

static void put_settings(struct wr *w, const struct ha_settings *s)
{
    put_i64(w, s->token_timeout);
    put_i64(w, s->disk_interval);
    put_i64(w, s->disk_timeout);
    put_i64(w, s->msgwait);
    put_i64(w, s->fence_time);
    put_i64(w, s->fence_timeout);
    put_i64(w, s->vm_start);
    put_i64(w, s->vm_stop);
    put_i64(w, s->migrate_time);
    put_i64(w, s->op_timeout);
    put_i64(w, s->recovery_bound);
    put_i32(w, s->evacuate_concurrency);
    put_i32(w, s->max_restart);
    put_bool(w, s->watchdog);
    uint64_t bits;
    memcpy(&bits, &s->cpu_overcommit, sizeof bits); /* IEEE 754 binary64 */
    put_u64(w, bits);
    put_i32(w, s->failures_to_tolerate);
    put_i64(w, s->balance_interval);
    put_bool(w, s->heartbeat_disk);
}

enum { HOST_FENCE_IPMI = 1, HOST_JOINED = 2, HOST_MAINT = 4, HOST_LEAVING = 8, HOST_FENCED = 16, HOST_FLAGS = 31 };

/* A count to write: one out of 0..max cannot be encoded (max < 0: no limit). */
static int count(struct wr *w, int n, int max)
{
    if (n < 0 || (max >= 0 && n > max)) {
        w->bad = true;
        return 0;
    }
    return n;
}

/* Everything but the trailing CRC; total is the length with the CRC. */
static void put_snapshot(struct wr *w, uint64_t epoch, const struct ha_db *db, uint32_t total)
{
    put(w, SNAP_MAGIC, 4);
    put_u16(w, SNAP_FORMAT);
    put_u16(w, 0);
    put_u32(w, total);
    put_u64(w, epoch);
    put_u64(w, db->version);
    put_str(w, db->pool_name, sizeof db->pool_name);
    put_str(w, db->pool_uuid, sizeof db->pool_uuid);
    put_settings(w, &db->set);
    put_i32(w, db->preferred_master);
    put_i32(w, db->master);
    put_u64(w, db->master_epoch);

    int nt = count(w, db->ntokens, HA_MAX_TOKENS);
    put_u32(w, (uint32_t)nt);
    for (int i = 0; i < nt; i++) {
        put(w, db->token[i].hash, sizeof db->token[i].hash);
        put_i64(w, db->token[i].expires);
        put_bool(w, db->token[i].used);
    }

    int nh = count(w, db->nhosts, HA_MAX_HOSTS);
    put_u32(w, (uint32_t)nh);
    for (int i = 0; i < nh; i++) {
        const struct ha_db_host *h = &db->host[i];
        put_str(w, h->name, sizeof h->name);
        put_u64(w, h->mem_mb);
        put_i32(w, h->cpus);
        put_u8(w, (h->fence_ipmi ? HOST_FENCE_IPMI : 0) | (h->joined ? HOST_JOINED : 0) |
                      (h->maintenance ? HOST_MAINT : 0) | (h->leaving ? HOST_LEAVING : 0) |
                      (h->fenced ? HOST_FENCED : 0));
        put_str(w, h->addr, sizeof h->addr);
        put_u32(w, h->nodeid);
    }

    int nv = count(w, db->nvms, -1);
    put_u32(w, (uint32_t)nv);
    for (int i = 0; i < nv; i++) {
        const struct ha_db_vm *v = &db->vm[i];
        put_str(w, v->name, sizeof v->name);
        put_u64(w, v->mem_mb);
        put_i32(w, v->cpus);
        put_enum(w, (unsigned)v->protect);
        put_i32(w, v->priority);
        put_i32(w, v->order);
        put_bool(w, v->want_running);
        put_i32(w, v->after1);
        put_i32(w, v->host);
        put_i32(w, v->migrating_to);
        put_xml(w, v->xml, v->xml_len, false); /* format 4 */
    }

    int nr = count(w, db->nrules, -1);
    put_u32(w, (uint32_t)nr);
    for (int i = 0; i < nr; i++)
        put_rule(w, &db->rule[i]);

    /* format 3: the hosts with fence devices, by ascending index */
    uint32_t nf = 0;
    for (int i = 0; i < HA_MAX_HOSTS; i++)
        if (db->fence[i]) {
            nf++;
            if (i >= nh)
                w->bad = true; /* a topology for a host the pool does not have */
        }
    put_u32(w, nf);
    for (int i = 0; i < nh; i++) {
        const struct ha_fence_topo *t = db->fence[i];
        if (!t)
            continue;
        put_i32(w, i);
        int nl = count(w, t->nlevels, HA_FENCE_LEVELS);
        if (!nl)
            w->bad = true;
        put_u8(w, (unsigned)nl);
        for (int l = 0; l < nl; l++) {
            int nd = count(w, t->level[l].ndevs, HA_FENCE_DEVS);
            if (!nd)
                w->bad = true;
            put_u8(w, (unsigned)nd);
            for (int k = 0; k < nd; k++)
                put_dev(w, &t->level[l].dev[k]);
        }
    }
}

size_t pooldb_snapshot_size(uint64_t epoch, const struct ha_db *db)
{
    struct wr sizing = {0};
    put_snapshot(&sizing, epoch, db, 0);
    return sizing.bad ? 0 : sizing.n + 4;
}

int pooldb_encode_snapshot(uint64_t epoch, const struct ha_db *db, uint8_t **out, size_t *len)
{
    struct wr sizing = {0};
    put_snapshot(&sizing, epoch, db, 0);
    if (sizing.bad)
        return -EINVAL;
    if (sizing.n + 4 > UINT32_MAX)
        return -EFBIG;
    uint32_t total = (uint32_t)(sizing.n + 4);
    uint8_t *buf = malloc(total);
    if (!buf)
        return -ENOMEM;
    struct wr w = {.p = buf, .cap = total};
    put_snapshot(&w, epoch, db, total);
    put_u32(&w, pooldb_crc32(buf, total - 4));
    if (w.overflow || w.n != total) { /* the two passes disagree: a bug here, not bad input */
        free(buf);
        return -EFAULT;
    }
    *out = buf;
    *len = total;
    return 0;
}

uint64_t pooldb_digest(uint64_t epoch, const struct ha_db *db)
{
    struct wr sizing = {0};
    put_snapshot(&sizing, epoch, db, 0);
    struct wr w = {.hash = true, .h = 0xcbf29ce484222325ull}; /* FNV-1a 64 offset basis */
    put_snapshot(&w, epoch, db, (uint32_t)(sizing.n + 4));
    return w.h;
}

/* Whether a change carries a domain XML (and so is written in format 2). */
static bool change_has_xml(const struct ha_change *c)
{
    return c->type == HA_CHG_VM_XML || (c->type == HA_CHG_VM_ADD && (c->xml || c->xml_len));
}

static void put_change(struct wr *w, const struct ha_change *c)
{
    bool xml = change_has_xml(c);
    if (!xml && (c->xml || c->xml_len))
        w->bad = true; /* only VM_ADD and VM_XML carry one */
    put_u8(w, xml ? CHANGE_FORMAT_XML : CHANGE_FORMAT);
    put_enum(w, (unsigned)c->type);
    put_i32(w, c->host);
    put_i32(w, c->vm);
    put_i32(w, c->arg);
    put_enum(w, (unsigned)c->protect);
    put_i32(w, c->priority);
    put_i32(w, c->order);
    put_i32(w, c->after1);
    put_rule(w, &c->rule);
    put_str(w, c->name, sizeof c->name);
    put_str(w, c->text, sizeof c->text);
    put(w, c->blob, sizeof c->blob);
    put_i64(w, c->when);
    put_u64(w, c->mem_mb);
    put_i32(w, c->cpus);
    /* the fence changes carry a tail: where, and for FENCE_SET the device */
    if (c->type == HA_CHG_FENCE_SET || c->type == HA_CHG_FENCE_CLEAR) {
        put_small(w, c->fence_level);
        put_small(w, c->fence_index);
    }
    if (c->type == HA_CHG_FENCE_SET)
        put_dev(w, &c->dev);
    if (xml)
        put_xml(w, c->xml, c->xml_len, true);
}

/* The largest device and change: every string full, a full rule. */
#define DEV_ENC_MAX                                                                                               \
    (1 + HA_FENCE_STR + 2 + HA_FENCE_STR + HA_FENCE_SECRET + 1 + HA_FENCE_STR + 1 + HA_FENCE_OPTS * HA_FENCE_STR + \
     4 + 1)
#define CHANGE_ENC_MAX                                                                                            \
    (2 + 3 * 4 + 1 + 3 * 4 + (1 + (HA_NAME_MAX - 1) + 3 + 4 * HA_RULE_MAX_VMS + 8) + (1 + HA_NAME_MAX - 1) +    \
     (1 + sizeof(((struct ha_change *)0)->text) - 1) + 32 + 8 + 8 + 4 + 2 + DEV_ENC_MAX)
_Static_assert(CHANGE_ENC_MAX + 4 + HA_VM_XML_MAX <= POOLDB_CHANGE_MAX, "POOLDB_CHANGE_MAX is too small");

int pooldb_encode_change(const struct ha_change *c, uint8_t *out, size_t cap)
{
    if ((unsigned)c->type > HA_CHG_LAST || (unsigned)c->protect > PROTECT_LAST ||
        (unsigned)c->rule.type > RULE_TYPE_LAST)
        return -EINVAL;
    struct wr w = {.p = out, .cap = cap};
    put_change(&w, c);
    if (w.bad)
        return -EINVAL;
    if (w.overflow)
        return -ENOSPC;
    return (int)w.n;
}

/* ---------------------------------------------------------------- reading */

/* A reader over untrusted bytes.  The first problem is recorded in err and
 * makes every later read fail, so a decoder can read a run of fields and
 * check once. */
struct rd {
    const uint8_t *p;
    size_t n, off;
    const char *what; /* "snapshot", "change": for messages */
    char *err;
    size_t errlen;
    bool failed;
    bool nomem; /* failed for lack of memory, not because of the input */
};

static bool rd_fail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool rd_fail(struct rd *r, const char *fmt, ...)
{
    if (!r->failed && r->err && r->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, r->errlen, fmt, ap);
        va_end(ap);
    }
    r->failed = true;
    return false;
}

static bool take(struct rd *r, void *dst, size_t k)
{
    if (r->failed)
        return false;
    if (k > r->n - r->off)
        return rd_fail(r, "%s truncated at byte %zu", r->what, r->n);
    memcpy(dst, r->p + r->off, k);
    r->off += k;
    return true;
}

static uint8_t get_u8(struct rd *r)
{
    uint8_t b = 0;
    take(r, &b, 1);
    return b;
}

static uint32_t get_u32(struct rd *r)
{
    uint8_t b[4] = {0};
    take(r, b, 4);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t get_u64(struct rd *r)
{
    uint8_t b[8] = {0};
    take(r, b, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

/* Two's complement back to signed without implementation-defined casts. */
static int get_i32(struct rd *r)
{
    uint32_t u = get_u32(r);
    return u <= INT32_MAX ? (int)u : -(int)(~u) - 1;
}

static int64_t get_i64(struct rd *r)
{
    uint64_t u = get_u64(r);
    return u <= INT64_MAX ? (int64_t)u : -(int64_t)(~u) - 1;
}

static bool get_bool(struct rd *r, const char *field)
{
    uint8_t b = get_u8(r);
    if (b > 1)
        rd_fail(r, "%s: %s is %u, not 0 or 1", r->what, field, b);
    return b == 1;
}

/* A string into a field of `field` bytes: it must leave room for the NUL
 * and hold no NUL itself, so the result is terminated within the field. */
static void get_str(struct rd *r, char *dst, size_t field, const char *name)
{
    memset(dst, 0, field);
    size_t len = get_u8(r);
    if (r->failed)
        return;
    if (len >= field) {
        rd_fail(r, "%s: %s is %zu bytes, longer than its field (%zu)", r->what, name, len, field - 1);
        return;
    }
    if (!take(r, dst, len))
        return;
    if (memchr(dst, 0, len)) {
        memset(dst, 0, field);
        rd_fail(r, "%s: %s contains a NUL byte", r->what, name);
    }
}

/* A domain XML, left in the buffer (*xml points into it): 1..HA_VM_XML_MAX
 * bytes without a NUL; or length 0 for none where none is allowed. */
static void get_xml(struct rd *r, const char **xml, uint32_t *len, bool required)
{
    *xml = NULL;
    *len = 0;
    uint32_t n = get_u32(r);
    if (r->failed || (!n && !required))
        return;
    if (n > r->n - r->off) {
        rd_fail(r, "%s: a domain XML of %" PRIu32 " bytes, but only %zu are left", r->what, n, r->n - r->off);
        return;
    }
    const char *p = (const char *)r->p + r->off;
    if (!ha_vm_xml_ok(p, n)) {
        rd_fail(r, "%s: a domain XML of %" PRIu32 " bytes: empty, larger than %d bytes, or holding a NUL", r->what, n,
                HA_VM_XML_MAX);
        return;
    }
    r->off += n;
    *xml = p;
    *len = n;
}

static void get_rule(struct rd *r, struct ha_rule *x)
{
    memset(x, 0, sizeof *x);
    get_str(r, x->name, sizeof x->name, "rule name");
    unsigned type = get_u8(r);
    if (!r->failed && type > RULE_TYPE_LAST)
        rd_fail(r, "%s: rule type %u is unknown", r->what, type);
    x->type = (enum ha_rule_type)type;
    x->strict = get_bool(r, "rule strict flag");
    unsigned n = get_u8(r);
    if (!r->failed && n > HA_RULE_MAX_VMS)
        rd_fail(r, "%s: rule '%s' has %u VMs, more than %d", r->what, x->name, n, HA_RULE_MAX_VMS);
    if (r->failed)
        return;
    x->nvms = (int)n;
    for (unsigned i = 0; i < n; i++)
        x->vm[i] = get_i32(r);
    x->hosts = get_u64(r);
}

/* A device's form; whether it makes sense is ha_fence_dev_check's call. */
static void get_dev(struct rd *r, struct ha_fence_dev *d)
{
    memset(d, 0, sizeof *d);
    unsigned type = get_u8(r);
    if (!r->failed && type > HA_FENCE_TYPE_LAST)
        rd_fail(r, "%s: fence device type %u is unknown", r->what, type);
    d->type = (enum ha_fence_type)type;
    get_str(r, d->addr, sizeof d->addr, "fence device address");
    uint8_t b[2] = {0};
    take(r, b, 2);
    d->port = b[0] | b[1] << 8;
    get_str(r, d->user, sizeof d->user, "fence device user");
    get_str(r, d->password, sizeof d->password, "fence device password");
    d->cipher = get_u8(r);
    get_str(r, d->agent, sizeof d->agent, "fence agent");
    unsigned n = get_u8(r);
    if (!r->failed && n > HA_FENCE_OPTS)
        rd_fail(r, "%s: a fence device has %u options, more than %d", r->what, n, HA_FENCE_OPTS);
    if (r->failed)
        return;
    d->nopts = (int)n;
    for (unsigned i = 0; i < n; i++)
        get_str(r, d->opt[i], sizeof d->opt[i], "fence device option");
    uint32_t t = get_u32(r);
    if (!r->failed && t > INT32_MAX)
        rd_fail(r, "%s: fence device timeout %" PRIu32 " ms is out of range", r->what, t);
    d->timeout_ms = (int)(t & INT32_MAX);
    d->retries = get_u8(r);
}

int pooldb_decode_change(const uint8_t *buf, size_t len, struct ha_change *c, char *err, size_t errlen)
{
    struct rd r = {.p = buf, .n = len, .what = "change", .err = err, .errlen = errlen};
    struct ha_change t;
    memset(&t, 0, sizeof t);
    unsigned format = get_u8(&r);
    if (!r.failed && format != CHANGE_FORMAT && format != CHANGE_FORMAT_XML)
        return errf(err, errlen, -EINVAL, "change format %u is not supported (this vigil reads %d and %d)", format,
                    CHANGE_FORMAT, CHANGE_FORMAT_XML);
    unsigned type = get_u8(&r);
    if (!r.failed && type > HA_CHG_LAST)
        rd_fail(&r, "change type %u is unknown (the last known is %d)", type, HA_CHG_LAST);
    t.type = (enum ha_change_type)type;
    t.host = get_i32(&r);
    t.vm = get_i32(&r);
    t.arg = get_i32(&r);
    unsigned protect = get_u8(&r);
    if (!r.failed && protect > PROTECT_LAST)
        rd_fail(&r, "change: protection %u is unknown", protect);
    t.protect = (enum ha_protect)protect;
    t.priority = get_i32(&r);
    t.order = get_i32(&r);
    t.after1 = get_i32(&r);
    get_rule(&r, &t.rule);
    get_str(&r, t.name, sizeof t.name, "name");
    get_str(&r, t.text, sizeof t.text, "text");
    take(&r, t.blob, sizeof t.blob);
    t.when = get_i64(&r);
    t.mem_mb = get_u64(&r);
    t.cpus = get_i32(&r);
    if (t.type == HA_CHG_FENCE_SET || t.type == HA_CHG_FENCE_CLEAR) {
        t.fence_level = get_u8(&r);
        t.fence_index = get_u8(&r);
    }
    if (t.type == HA_CHG_FENCE_SET)
        get_dev(&r, &t.dev);
    /* format 2 is exactly the changes that carry a domain XML */
    bool want_xml = t.type == HA_CHG_VM_XML || (t.type == HA_CHG_VM_ADD && format == CHANGE_FORMAT_XML);
    if (!r.failed && (format == CHANGE_FORMAT_XML) != want_xml)
        rd_fail(&r, "change: type %u in change format %u (a domain XML goes with VM_ADD and VM_XML only)", type,
                format);
    if (format == CHANGE_FORMAT_XML)
        get_xml(&r, &t.xml, &t.xml_len, true); /* points into buf */
    if (r.failed)
        return -EINVAL;
    if (r.off != len)
        return errf(err, errlen, -EINVAL, "change: %zu unexpected bytes after its end at byte %zu", len - r.off,
                    r.off);
    *c = t;
    return 0;
}

static void get_settings(struct rd *r, struct ha_settings *s)
{
    s->token_timeout = get_i64(r);
    s->disk_interval = get_i64(r);
    s->disk_timeout = get_i64(r);
    s->msgwait = get_i64(r);
    s->fence_time = get_i64(r);
    s->fence_timeout = get_i64(r);
    s->vm_start = get_i64(r);
    s->vm_stop = get_i64(r);
    s->migrate_time = get_i64(r);
    s->op_timeout = get_i64(r);
    s->recovery_bound = get_i64(r);
    s->evacuate_concurrency = get_i32(r);
    s->max_restart = get_i32(r);
    s->watchdog = get_bool(r, "setting watchdog");
    uint64_t bits = get_u64(r);
    memcpy(&s->cpu_overcommit, &bits, sizeof bits);
    s->failures_to_tolerate = get_i32(r);
    s->balance_interval = get_i64(r);
    s->heartbeat_disk = get_bool(r, "setting heartbeat_disk");
}

/* Settings are judged by ha_settings_set itself: each value is spelled out
 * and set on top of the defaults, and the result must be exactly what was
 * read.  So a snapshot holds only what SETTING changes can produce, and the
 * rules live in one place. */
static int check_settings(const struct ha_settings *in, char *err, size_t errlen)
{
    struct ha_settings s;
    ha_settings_default(&s);
    static const struct {
        const char *name;
        size_t off;
    } dur[] = {
        /* disk_interval goes to its minimum first so that any valid
         * disk_timeout can follow; then it takes its real value */
        {"disk_interval", (size_t)-1},
        {"token_timeout", offsetof(struct ha_settings, token_timeout)},
        {"disk_timeout", offsetof(struct ha_settings, disk_timeout)},
        {"disk_interval", offsetof(struct ha_settings, disk_interval)},
        {"msgwait", offsetof(struct ha_settings, msgwait)},
        {"fence_time", offsetof(struct ha_settings, fence_time)},
        {"fence_timeout", offsetof(struct ha_settings, fence_timeout)},
        {"vm_start", offsetof(struct ha_settings, vm_start)},
        {"vm_stop", offsetof(struct ha_settings, vm_stop)},
        {"migrate_time", offsetof(struct ha_settings, migrate_time)},
        {"op_timeout", offsetof(struct ha_settings, op_timeout)},
        {"recovery_bound", offsetof(struct ha_settings, recovery_bound)},
        {"balance_interval", offsetof(struct ha_settings, balance_interval)},
    };
    char val[64], why[HA_REASON_MAX];
    for (size_t i = 0; i < sizeof dur / sizeof dur[0]; i++) {
        ha_ms v = 100;
        if (dur[i].off != (size_t)-1)
            memcpy(&v, (const char *)in + dur[i].off, sizeof v);
        if (v == 0 && !strcmp(dur[i].name, "balance_interval"))
            snprintf(val, sizeof val, "off"); /* "0ms" would be a too-short period */
        else
            snprintf(val, sizeof val, "%" PRId64 "ms", v);
        if (ha_settings_set(&s, dur[i].name, val, why, sizeof why) < 0)
            return errf(err, errlen, -EINVAL, "snapshot: %s", why);
    }
    const struct {
        const char *name;
        int v;
    } ints[] = {{"evacuate_concurrency", in->evacuate_concurrency},
                {"max_restart", in->max_restart},
                {"failures_to_tolerate", in->failures_to_tolerate}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(val, sizeof val, "%d", ints[i].v);
        if (ha_settings_set(&s, ints[i].name, val, why, sizeof why) < 0)
            return errf(err, errlen, -EINVAL, "snapshot: %s", why);
    }
    if (ha_settings_set(&s, "watchdog", in->watchdog ? "yes" : "no", why, sizeof why) < 0 ||
        ha_settings_set(&s, "heartbeat_disk", in->heartbeat_disk ? "yes" : "no", why, sizeof why) < 0)
        return errf(err, errlen, -EINVAL, "snapshot: %s", why);
    snprintf(val, sizeof val, "%.17g", in->cpu_overcommit); /* 17 digits give the same double back */
    if (ha_settings_set(&s, "cpu_overcommit", val, why, sizeof why) < 0)
        return errf(err, errlen, -EINVAL, "snapshot: %s", why);
    if (memcmp(&s.cpu_overcommit, &in->cpu_overcommit, sizeof s.cpu_overcommit) || s.watchdog != in->watchdog ||
        s.heartbeat_disk != in->heartbeat_disk || s.token_timeout != in->token_timeout ||
        s.disk_interval != in->disk_interval || s.disk_timeout != in->disk_timeout || s.msgwait != in->msgwait ||
        s.fence_time != in->fence_time || s.fence_timeout != in->fence_timeout || s.vm_start != in->vm_start ||
        s.vm_stop != in->vm_stop || s.migrate_time != in->migrate_time || s.op_timeout != in->op_timeout ||
        s.recovery_bound != in->recovery_bound || s.balance_interval != in->balance_interval ||
        s.evacuate_concurrency != in->evacuate_concurrency || s.max_restart != in->max_restart ||
        s.failures_to_tolerate != in->failures_to_tolerate)
        return errf(err, errlen, -EINVAL, "snapshot: the settings do not read back as written");
    return 0;
}

/* Whether an index is a host of the pool or "none". */
static bool host_or_none(int h, int nhosts) { return h == HA_NO_HOST || (h >= 0 && h < nhosts); }

/* What the rest of vigil relies on without checking again. */
static int check_db(const struct ha_db *db, char *err, size_t errlen)
{
    if (db->pool_name[0] && !ha_name_valid(db->pool_name))
        return errf(err, errlen, -EINVAL, "snapshot: pool name '%s' is not a valid name", db->pool_name);
    int r = check_settings(&db->set, err, errlen);
    if (r < 0)
        return r;
    if (!host_or_none(db->master, db->nhosts))
        return errf(err, errlen, -EINVAL, "snapshot: the master is host %d but the pool has %d hosts", db->master,
                    db->nhosts);
    if (!host_or_none(db->preferred_master, db->nhosts))
        return errf(err, errlen, -EINVAL, "snapshot: the preferred master is host %d but the pool has %d hosts",
                    db->preferred_master, db->nhosts);
    for (int i = 0; i < db->nhosts; i++) {
        const struct ha_db_host *h = &db->host[i];
        if (!ha_name_valid(h->name))
            return errf(err, errlen, -EINVAL, "snapshot: host %d has no valid name ('%s')", i, h->name);
        for (int j = 0; j < i; j++)
            if (!strcmp(db->host[j].name, h->name))
                return errf(err, errlen, -EINVAL, "snapshot: hosts %d and %d are both named '%s'", j, i, h->name);
        if (h->cpus < 0)
            return errf(err, errlen, -EINVAL, "snapshot: host %d ('%s') has %d CPUs", i, h->name, h->cpus);
        /* the flag is what the core reads; the topology is what it means */
        if (h->fence_ipmi != ha_fence_topo_has_devices(db->fence[i]))
            return errf(err, errlen, -EINVAL, "snapshot: host %d ('%s') %s fence devices but its flag says %s", i,
                        h->name, ha_fence_topo_has_devices(db->fence[i]) ? "has" : "has no",
                        h->fence_ipmi ? "yes" : "no");
        const struct ha_fence_topo *t = db->fence[i];
        for (int l = 0; t && l < t->nlevels; l++)
            for (int k = 0; k < t->level[l].ndevs; k++) {
                char why[HA_REASON_MAX];
                if (ha_fence_dev_check(&t->level[l].dev[k], why, sizeof why) < 0 ||
                    ha_fence_place_check(t, l + 1, k, t->level[l].dev[k].type, why, sizeof why) < 0)
                    return errf(err, errlen, -EINVAL, "snapshot: host %d ('%s') level %d device %d: %s", i,
                                h->name, l + 1, k + 1, why);
            }
    }
    for (int i = 0; i < db->nvms; i++) {
        const struct ha_db_vm *v = &db->vm[i];
        if (!ha_name_valid(v->name))
            return errf(err, errlen, -EINVAL, "snapshot: VM %d has no valid name ('%s')", i, v->name);
        if (v->cpus < 0)
            return errf(err, errlen, -EINVAL, "snapshot: VM %d ('%s') has %d CPUs", i, v->name, v->cpus);
        if ((unsigned)v->protect > PROTECT_LAST)
            return errf(err, errlen, -EINVAL, "snapshot: VM %d ('%s') has unknown protection %u", i, v->name,
                        (unsigned)v->protect);
        if (v->priority < 1 || v->priority > 5)
            return errf(err, errlen, -EINVAL, "snapshot: VM %d ('%s') has priority %d, not 1..5", i, v->name,
                        v->priority);
        if (v->after1 < 0 || v->after1 > db->nvms || v->after1 == i + 1)
            return errf(err, errlen, -EINVAL, "snapshot: VM %d ('%s') starts after VM %d, which is %s", i,
                        v->name, v->after1 - 1, v->after1 == i + 1 ? "itself" : "not in the pool");
        if (!host_or_none(v->host, db->nhosts))
            return errf(err, errlen, -EINVAL, "snapshot: VM %d names host %d but the pool has %d hosts", i,
                        v->host, db->nhosts);
        if (!host_or_none(v->migrating_to, db->nhosts))
            return errf(err, errlen, -EINVAL, "snapshot: VM %d migrates to host %d but the pool has %d hosts", i,
                        v->migrating_to, db->nhosts);
    }
    /* VM names are unique already: the decoder adds them with ha_db_add_vm */
    if (db->nvms > 0) {
        /* after= chains must end: colour 1 = on the path being walked, 2 = known to end */
        uint8_t *colour = calloc((size_t)db->nvms, 1);
        if (!colour)
            return errf(err, errlen, -ENOMEM, "snapshot: out of memory");
        int cycle = -1;
        for (int v = 0; v < db->nvms && cycle < 0; v++) {
            int x = v;
            while (x >= 0 && colour[x] == 0) {
                colour[x] = 1;
                x = db->vm[x].after1 - 1;
            }
            if (x >= 0 && colour[x] == 1)
                cycle = x;
            for (int y = v; y >= 0 && colour[y] == 1; y = db->vm[y].after1 - 1)
                colour[y] = 2;
        }
        free(colour);
        if (cycle >= 0)
            return errf(err, errlen, -EINVAL, "snapshot: VM %d ('%s') is in a cycle of after= dependencies", cycle,
                        db->vm[cycle].name);
    }
    ha_hostset pool = db->nhosts >= HA_MAX_HOSTS ? ~(ha_hostset)0 : HA_BIT(db->nhosts) - 1;
    for (int i = 0; i < db->nrules; i++) {
        const struct ha_rule *x = &db->rule[i];
        if (!x->name[0])
            return errf(err, errlen, -EINVAL, "snapshot: rule %d has no name", i);
        /* the shapes ha_rule_check lets in */
        if (x->type == HA_RULE_PIN ? x->nvms != 1 : x->nvms < 2)
            return errf(err, errlen, -EINVAL, "snapshot: %s rule '%s' has %d VMs", ha_rule_type_name(x->type),
                        x->name, x->nvms);
        for (int k = 0; k < x->nvms; k++)
            if (x->vm[k] < 0 || x->vm[k] >= db->nvms)
                return errf(err, errlen, -EINVAL, "snapshot: rule '%s' names VM %d but the pool has %d VMs", x->name,
                            x->vm[k], db->nvms);
        if (x->type == HA_RULE_PIN && (!x->hosts || (x->hosts & ~pool)))
            return errf(err, errlen, -EINVAL,
                        "snapshot: pin rule '%s' allows hosts 0x%" PRIx64 " but the pool has %d hosts", x->name,
                        x->hosts, db->nhosts);
    }
    return 0;
}

/* Smallest encodings, to bound counts by the bytes left before allocating. */
#define VM_MIN_BYTES (1 + 8 + 4 + 1 + 4 + 4 + 1 + 4 + 4 + 4)
#define RULE_MIN_BYTES (1 + 1 + 1 + 1 + 8)

static void get_snapshot_body(struct rd *r, struct ha_db *t, unsigned format)
{
    get_str(r, t->pool_name, sizeof t->pool_name, "pool name");
    get_str(r, t->pool_uuid, sizeof t->pool_uuid, "pool uuid");
    get_settings(r, &t->set);
    t->preferred_master = get_i32(r);
    t->master = get_i32(r);
    t->master_epoch = get_u64(r);

    uint32_t nt = get_u32(r);
    if (!r->failed && nt > HA_MAX_TOKENS) {
        rd_fail(r, "snapshot has %" PRIu32 " join tokens, more than %d", nt, HA_MAX_TOKENS);
        return;
    }
    for (uint32_t i = 0; i < nt && !r->failed; i++) {
        take(r, t->token[i].hash, sizeof t->token[i].hash);
        t->token[i].expires = get_i64(r);
        t->token[i].used = get_bool(r, "token used flag");
    }
    t->ntokens = r->failed ? 0 : (int)nt;

    uint32_t nh = get_u32(r);
    if (!r->failed && nh > HA_MAX_HOSTS) {
        rd_fail(r, "snapshot has %" PRIu32 " hosts, more than %d", nh, HA_MAX_HOSTS);
        return;
    }
    for (uint32_t i = 0; i < nh && !r->failed; i++) {
        struct ha_db_host *h = &t->host[i];
        get_str(r, h->name, sizeof h->name, "host name");
        h->mem_mb = get_u64(r);
        h->cpus = get_i32(r);
        unsigned f = get_u8(r);
        if (!r->failed && (f & ~(unsigned)HOST_FLAGS))
            rd_fail(r, "snapshot: host %" PRIu32 " has unknown flag bits 0x%02x", i, f);
        h->fence_ipmi = f & HOST_FENCE_IPMI;
        h->joined = f & HOST_JOINED;
        h->maintenance = f & HOST_MAINT;
        h->leaving = f & HOST_LEAVING;
        h->fenced = f & HOST_FENCED;
        get_str(r, h->addr, sizeof h->addr, "host address");
        h->nodeid = get_u32(r);
    }
    t->nhosts = r->failed ? 0 : (int)nh;

    uint32_t nv = get_u32(r);
    if (r->failed)
        return;
    if (nv > MAX_VMS || nv > (r->n - r->off) / VM_MIN_BYTES) {
        rd_fail(r, "snapshot claims %" PRIu32 " VMs but only %zu bytes are left", nv, r->n - r->off);
        return;
    }
    for (uint32_t i = 0; i < nv && !r->failed; i++) {
        struct ha_db_vm v;
        memset(&v, 0, sizeof v);
        get_str(r, v.name, sizeof v.name, "VM name");
        v.mem_mb = get_u64(r);
        v.cpus = get_i32(r);
        v.protect = (enum ha_protect)get_u8(r);
        v.priority = get_i32(r);
        v.order = get_i32(r);
        v.want_running = get_bool(r, "VM want_running flag");
        v.after1 = get_i32(r);
        v.host = get_i32(r);
        v.migrating_to = get_i32(r);
        if (format >= 4) {
            const char *xml;
            get_xml(r, &xml, &v.xml_len, false);
            v.xml = (char *)(uintptr_t)xml; /* ha_db_add_vm copies it */
        }
        if (r->failed)
            return;
        /* through ha_db_add_vm, so the array grows the way the core expects */
        int k = ha_db_add_vm(t, &v);
        if (k == -EEXIST) {
            rd_fail(r, "snapshot: two VMs are named '%s'", v.name);
            return;
        }
        if (k < 0) {
            r->nomem = k == -ENOMEM;
            rd_fail(r, "snapshot: cannot add VM %" PRIu32 ": %s", i, strerror(-k));
            return;
        }
        t->vm[k].migrating_to = v.migrating_to;
    }

    uint32_t nr = get_u32(r);
    if (r->failed)
        return;
    if (nr > (r->n - r->off) / RULE_MIN_BYTES) {
        rd_fail(r, "snapshot claims %" PRIu32 " rules but only %zu bytes are left", nr, r->n - r->off);
        return;
    }
    if (nr) {
        t->rule = calloc(nr, sizeof *t->rule);
        if (!t->rule) {
            r->nomem = true;
            rd_fail(r, "snapshot: out of memory for %" PRIu32 " rules", nr);
            return;
        }
    }
    for (uint32_t i = 0; i < nr && !r->failed; i++) {
        get_rule(r, &t->rule[i]);
        t->nrules = (int)i + 1;
    }
    if (format < 3 || r->failed)
        return;

    uint32_t nf = get_u32(r);
    if (!r->failed && nf > (uint32_t)t->nhosts)
        rd_fail(r, "snapshot: %" PRIu32 " hosts have fence devices but the pool has %d hosts", nf, t->nhosts);
    int prev = -1;
    for (uint32_t i = 0; i < nf && !r->failed; i++) {
        int h = get_i32(r);
        if (!r->failed && (h <= prev || h >= t->nhosts)) {
            rd_fail(r, "snapshot: fence devices of host %d: not a host, or out of order", h);
            return;
        }
        prev = h;
        unsigned nl = get_u8(r);
        if (!r->failed && (nl < 1 || nl > HA_FENCE_LEVELS)) {
            rd_fail(r, "snapshot: host %d has %u fence levels, not 1..%d", h, nl, HA_FENCE_LEVELS);
            return;
        }
        if (r->failed)
            return;
        struct ha_fence_topo *x = calloc(1, sizeof *x);
        if (!x) {
            r->nomem = true;
            rd_fail(r, "snapshot: out of memory for fence devices");
            return;
        }
        t->fence[h] = x;
        x->nlevels = (int)nl;
        for (unsigned l = 0; l < nl && !r->failed; l++) {
            unsigned nd = get_u8(r);
            if (!r->failed && (nd < 1 || nd > HA_FENCE_DEVS)) {
                rd_fail(r, "snapshot: host %d level %u has %u fence devices, not 1..%d", h, l + 1, nd,
                        HA_FENCE_DEVS);
                return;
            }
            x->level[l].ndevs = (int)nd;
            for (unsigned k = 0; k < nd && !r->failed; k++)
                get_dev(r, &x->level[l].dev[k]);
        }
    }
}

int pooldb_decode_snapshot(const uint8_t *buf, size_t len, uint64_t *epoch, struct ha_db *db, char *err,
                           size_t errlen)
{
    if (len < SNAP_HDR + 4)
        return errf(err, errlen, -EINVAL, "snapshot truncated at byte %zu (header and CRC take %d)", len,
                    SNAP_HDR + 4);
    if (memcmp(buf, SNAP_MAGIC, 4))
        return errf(err, errlen, -EINVAL, "not a vigil pool snapshot (magic is not " SNAP_MAGIC ")");
    struct rd h = {.p = buf, .n = SNAP_HDR, .off = 4, .what = "snapshot"};
    uint32_t head = get_u32(&h); /* format, then reserved: two 16-bit fields */
    unsigned format = head & 0xffff, reserved = head >> 16;
    uint32_t total = get_u32(&h);
    if (format < SNAP_FORMAT_OLDEST || format > SNAP_FORMAT)
        return errf(err, errlen, -EINVAL, "snapshot format %u is not supported (this vigil reads %d to %d)", format,
                    SNAP_FORMAT_OLDEST, SNAP_FORMAT);
    if (reserved)
        return errf(err, errlen, -EINVAL, "snapshot header: reserved field is %u, not 0", reserved);
    if (total < SNAP_HDR + 4)
        return errf(err, errlen, -EINVAL, "snapshot header: length %" PRIu32 " is too small", total);
    if (len < total)
        return errf(err, errlen, -EINVAL, "snapshot truncated at byte %zu (its header says %" PRIu32 " bytes)",
                    len, total);
    if (len > total)
        return errf(err, errlen, -EINVAL, "snapshot has %zu bytes after its end at byte %" PRIu32, len - total,
                    total);
    struct rd crc = {.p = buf, .n = total, .off = total - 4, .what = "snapshot"};
    uint32_t stored = get_u32(&crc), computed = pooldb_crc32(buf, total - 4);
    if (stored != computed)
        return errf(err, errlen, -EINVAL, "snapshot: bad CRC (stored %08" PRIx32 ", computed %08" PRIx32 ")",
                    stored, computed);

    struct rd r = {.p = buf, .n = total - 4, .off = SNAP_HDR, .what = "snapshot", .err = err, .errlen = errlen};
    struct ha_db t;
    ha_db_init(&t);
    uint64_t e = get_u64(&r);
    t.version = get_u64(&r);
    get_snapshot_body(&r, &t, format);
    int rc = -EINVAL;
    if (!r.failed && r.off != r.n)
        rd_fail(&r, "snapshot: %zu unexpected bytes after its last section at byte %zu", r.n - r.off, r.off);
    if (r.nomem)
        rc = -ENOMEM;
    if (!r.failed && (rc = check_db(&t, err, errlen)) == 0) {
        *epoch = e;
        *db = t;
        return 0;
    }
    ha_db_free(&t);
    return rc;
}

/* ---------------------------------------------------------------- the store */

#define SNAP_FILE "pool.snap"
#define SNAP_TMP "pool.snap.tmp"
#define LOG_FILE "pool.log"

/* Log record: header {magic, body length, CRC-32 of the body}, then the body
 * {kind, epoch, version_after, [encoded change]}. */
#define REC_MAGIC "VGLR"
#define REC_HDR 12
#define REC_BODY_MIN 17
#define REC_BODY_MAX (REC_BODY_MIN + POOLDB_CHANGE_MAX)
enum { REC_CHANGE = 1, REC_EPOCH = 2 };

struct pooldb_store {
    char *dir;
    int dfd;          /* the directory: fsync'ed after renames; flock'ed while open */
    int logfd;        /* pool.log, O_APPEND */
    uint64_t epoch;   /* the state after the last record */
    uint64_t version;
    uint64_t log_bytes;
    unsigned log_records;
    uint64_t snap_bytes;
    unsigned max_records;
    uint64_t max_bytes;
    bool broken; /* an I/O error left the disk in a state only a reopen can read */
};

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Reads a whole file; *buf is malloc'ed (never NULL on success). */
static int read_all(int fd, uint8_t **buf, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    size_t cap = (size_t)st.st_size, n = 0;
    uint8_t *p = malloc(cap ? cap : 1);
    if (!p)
        return -ENOMEM;
    while (n < cap) {
        ssize_t k = pread(fd, p + n, cap - n, (off_t)n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int e = k < 0 ? -errno : -EIO; /* shorter than fstat said: changed under us */
            free(p);
            return e;
        }
        n += (size_t)k;
    }
    *buf = p;
    *len = n;
    return 0;
}

/* Takes group and other permissions away from fd (name NULL) or from the
 * file name in the directory fd: the database holds secrets. */
static int tighten(int fd, const char *name, mode_t mode)
{
    struct stat st;
    if ((name ? fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) : fstat(fd, &st)) < 0)
        return -errno;
    if ((st.st_mode & 07777) == mode)
        return 0;
    if ((name ? fchmodat(fd, name, mode, 0) : fchmod(fd, mode)) < 0)
        return -errno;
    return 0;
}

static int unlink_if_there(int dfd, const char *name)
{
    if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* Opens (and locks) the directory: one handle at a time, or the two would
 * interleave records. */
static int store_new(const char *dir, struct pooldb_store **out, char *err, size_t errlen)
{
    struct pooldb_store *s = calloc(1, sizeof *s);
    if (!s || !(s->dir = strdup(dir))) {
        free(s);
        return errf(err, errlen, -ENOMEM, "out of memory");
    }
    s->logfd = -1;
    s->max_records = 4096;
    s->max_bytes = 4u << 20;
    s->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dfd < 0) {
        int e = -errno;
        free(s->dir);
        free(s);
        return errf(err, errlen, e, "%s: %s", dir, strerror(-e));
    }
    if (flock(s->dfd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
        pooldb_close(s);
        return errf(err, errlen, e, "%s: %s", dir,
                    e == -EBUSY ? "the pool database is open elsewhere (is vigild running?)" : strerror(-e));
    }
    *out = s;
    return 0;
}

void pooldb_close(struct pooldb_store *s)
{
    if (!s)
        return;
    /* Nothing is left to flush: every write was fdatasync'ed, so a close
     * error could not lose anything. */
    if (s->logfd >= 0)
        close(s->logfd);
    if (s->dfd >= 0)
        close(s->dfd);
    free(s->dir);
    free(s);
}

void pooldb_set_compaction(struct pooldb_store *s, unsigned max_records, uint64_t max_bytes)
{
    s->max_records = max_records;
    s->max_bytes = max_bytes;
}

/* pool.snap.tmp, fsync, rename over pool.snap, fsync the directory.  The
 * rename is the commit point: *committed says whether it happened. */
static int write_snapshot(struct pooldb_store *s, const uint8_t *buf, size_t len, bool *committed, char *err,
                          size_t errlen)
{
    *committed = false;
    const char *step = "create";
    int rc = 0;
    int fd = openat(s->dfd, SNAP_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = -errno;
    if (!rc && (rc = write_all(fd, buf, len)) < 0)
        step = "write";
    if (!rc && fsync(fd) < 0) {
        rc = -errno;
        step = "fsync";
    }
    if (fd >= 0 && close(fd) < 0 && !rc) {
        rc = -errno;
        step = "close";
    }
    if (!rc && renameat(s->dfd, SNAP_TMP, s->dfd, SNAP_FILE) < 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc) {
        int u = fd >= 0 ? unlink_if_there(s->dfd, SNAP_TMP) : 0;
        return errf(err, errlen, rc, "%s/" SNAP_TMP ": %s failed: %s%s%s", s->dir, step, strerror(-rc),
                    u ? "; and it could not be removed: " : "", u ? strerror(-u) : "");
    }
    *committed = true;
    if (fsync(s->dfd) < 0)
        return errf(err, errlen, -errno, "%s: fsync of the directory after the rename failed: %s", s->dir,
                    strerror(errno));
    return 0;
}

/* Encodes a state and decodes it again: a snapshot that would not load must
 * never replace one that does. */
static int encode_checked(uint64_t epoch, const struct ha_db *db, uint8_t **buf, size_t *len, char *err,
                          size_t errlen)
{
    int rc = pooldb_encode_snapshot(epoch, db, buf, len);
    if (rc < 0)
        return errf(err, errlen, rc, "cannot encode the pool database: %s", strerror(-rc));
    char why[256];
    uint64_t e;
    struct ha_db back;
    rc = pooldb_decode_snapshot(*buf, *len, &e, &back, why, sizeof why);
    if (rc < 0) {
        free(*buf);
        *buf = NULL;
        return errf(err, errlen, rc == -ENOMEM ? rc : -EINVAL, "refusing to write a snapshot that would not load: %s",
                    why);
    }
    ha_db_free(&back);
    return 0;
}

int pooldb_replace(struct pooldb_store *s, uint64_t epoch, const struct ha_db *db, char *err, size_t errlen)
{
    if (s->broken)
        return errf(err, errlen, -EIO, "%s: an earlier write failed; close and reopen the pool database", s->dir);
    /* Log replay skips records up to the snapshot's (epoch, version); going
     * back would make records of the old history look like new ones. */
    if (epoch < s->epoch || (epoch == s->epoch && db->version < s->version))
        return errf(err, errlen, -EINVAL,
                    "refusing to replace state (epoch %" PRIu64 ", version %" PRIu64 ") by the older (%" PRIu64
                    ", %" PRIu64 ")",
                    s->epoch, s->version, epoch, db->version);
    uint8_t *buf;
    size_t len;
    int rc = encode_checked(epoch, db, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    bool committed;
    rc = write_snapshot(s, buf, len, &committed, err, errlen);
    free(buf);
    if (rc < 0) {
        s->broken = committed;
        return rc;
    }
    s->epoch = epoch;
    s->version = db->version;
    s->snap_bytes = len;
    /* Only now may the log go: until the new snapshot is durable it is the
     * old snapshot plus this log that hold the state. */
    if (ftruncate(s->logfd, 0) < 0 || fsync(s->logfd) < 0) {
        s->broken = true;
        return errf(err, errlen, -errno, "%s/" LOG_FILE ": truncation failed: %s", s->dir, strerror(errno));
    }
    s->log_bytes = 0;
    s->log_records = 0;
    return 0;
}

int pooldb_append(struct pooldb_store *s, uint64_t epoch, uint64_t version_after, const struct ha_change *c,
                  const struct ha_db *db_after, char *err, size_t errlen)
{
    if (s->broken)
        return errf(err, errlen, -EIO, "%s: an earlier write failed; close and reopen the pool database", s->dir);
    if (!db_after || db_after->version != version_after)
        return errf(err, errlen, -EINVAL, "append: the database after the record must be at version %" PRIu64,
                    version_after);
    /* the same rules replay enforces: never write a log that will not open */
    /* a change record keeps the epoch, except a new master's record, which
     * raises it by one (the change itself carries the new epoch) */
    bool follows = c ? (epoch == s->epoch || (c->type == HA_CHG_MASTER && epoch == s->epoch + 1)) &&
                           version_after == s->version + 1
                     : epoch > s->epoch && version_after == s->version;
    if (!follows)
        return errf(err, errlen, -EINVAL,
                    "append: %s record (epoch %" PRIu64 ", version %" PRIu64 ") does not follow (%" PRIu64
                    ", %" PRIu64 ")",
                    c ? "change" : "epoch", epoch, version_after, s->epoch, s->version);
    size_t cap = REC_HDR + REC_BODY_MIN + (c ? POOLDB_CHANGE_MAX : 0);
    uint8_t *rec = malloc(cap);
    if (!rec)
        return errf(err, errlen, -ENOMEM, "append: out of memory");
    size_t blen = REC_BODY_MIN;
    if (c) {
        int n = pooldb_encode_change(c, rec + REC_HDR + REC_BODY_MIN, POOLDB_CHANGE_MAX);
        if (n < 0) {
            free(rec);
            return errf(err, errlen, -EINVAL, "append: the change cannot be encoded (%s)", strerror(-n));
        }
        blen += (size_t)n;
    }
    struct wr w = {.p = rec, .cap = cap};
    put(&w, REC_MAGIC, 4);
    put_u32(&w, (uint32_t)blen);
    w.n += 4; /* the CRC, below, once the body is there */
    put_u8(&w, c ? REC_CHANGE : REC_EPOCH);
    put_u64(&w, epoch);
    put_u64(&w, version_after);
    struct wr crc = {.p = rec + 8, .cap = 4};
    put_u32(&crc, pooldb_crc32(rec + REC_HDR, blen));

    int rc = write_all(s->logfd, rec, REC_HDR + blen);
    free(rec);
    if (!rc && fdatasync(s->logfd) < 0)
        rc = -errno;
    if (rc) {
        /* a part of the record may be on disk: appending after it would
         * turn a torn tail into corruption */
        s->broken = true;
        return errf(err, errlen, rc, "%s/" LOG_FILE ": append failed: %s", s->dir, strerror(-rc));
    }
    s->epoch = epoch;
    s->version = version_after;
    s->log_bytes += REC_HDR + blen;
    s->log_records++;
    if (s->log_records >= s->max_records || (s->log_bytes >= s->max_bytes && s->log_bytes > s->snap_bytes)) {
        char why[512];
        rc = pooldb_replace(s, epoch, db_after, why, sizeof why);
        if (rc < 0)
            return errf(err, errlen, rc, "the record is durable, but compaction failed: %s", why);
    }
    return 0;
}

/* A record frame: magic, a plausible length, all of it there, CRC right. */
struct rec {
    size_t size; /* header + body */
    const uint8_t *body;
    size_t blen;
};

static const char *parse_frame(const uint8_t *p, size_t n, struct rec *r)
{
    if (n < REC_HDR)
        return "incomplete header";
    if (memcmp(p, REC_MAGIC, 4))
        return "bad magic";
    struct rd h = {.p = p, .n = REC_HDR, .off = 4};
    uint32_t blen = get_u32(&h), crc = get_u32(&h);
    if (blen < REC_BODY_MIN || blen > REC_BODY_MAX)
        return "bad length";
    if (blen > n - REC_HDR)
        return "incomplete record";
    if (pooldb_crc32(p + REC_HDR, blen) != crc)
        return "bad CRC";
    r->size = REC_HDR + blen;
    r->body = p + REC_HDR;
    r->blen = blen;
    return NULL;
}

struct replay {
    size_t good_end; /* bytes of whole records */
    unsigned records;
    bool torn;
    const char *torn_why;
};

/* Replays a log onto the snapshot's state (epoch, db).  Records up to the
 * snapshot's (epoch, version) are left over from before the last snapshot
 * replace (a crash before the log was truncated) and skipped.  Returns
 * -EUCLEAN with the offset for anything but a torn tail. */
static int replay_log(const uint8_t *buf, size_t n, uint64_t *epoch, struct ha_db *db, struct replay *out,
                      char *err, size_t errlen)
{
    const uint64_t snap_epoch = *epoch, snap_version = db->version;
    bool fresh = false;
    size_t off = 0;
    memset(out, 0, sizeof *out);
    while (off < n) {
        struct rec r;
        const char *why = parse_frame(buf + off, n - off, &r);
        if (why) {
            /* torn only if nothing valid follows: a crash tears the end */
            for (size_t p = off + 1; p < n; p++)
                if (!parse_frame(buf + p, n - p, &r))
                    return errf(err, errlen, -EUCLEAN,
                                "pool.log is corrupt: record at byte %zu has %s, and a valid record follows at "
                                "byte %zu",
                                off, why, p);
            out->torn = true;
            out->torn_why = why;
            break;
        }
        struct rd b = {.p = r.body, .n = r.blen, .what = "record"};
        unsigned kind = get_u8(&b);
        uint64_t e = get_u64(&b), v = get_u64(&b);
        struct ha_change c;
        char why2[256];
        if (kind == REC_CHANGE) {
            if (pooldb_decode_change(r.body + REC_BODY_MIN, r.blen - REC_BODY_MIN, &c, why2, sizeof why2) < 0)
                return errf(err, errlen, -EUCLEAN, "pool.log is corrupt: record at byte %zu: %s", off, why2);
        } else if (kind != REC_EPOCH || r.blen != REC_BODY_MIN)
            return errf(err, errlen, -EUCLEAN, "pool.log is corrupt: record at byte %zu is of unknown kind %u", off,
                        kind);
        if (!fresh && (e < snap_epoch || (e == snap_epoch && v <= snap_version))) {
            off += r.size;
            out->records++;
            continue;
        }
        fresh = true;
        if (kind == REC_EPOCH && (e <= *epoch || v != db->version))
            return errf(err, errlen, -EUCLEAN,
                        "pool.log is corrupt: epoch record at byte %zu (epoch %" PRIu64 ", version %" PRIu64
                        ") does not follow epoch %" PRIu64 ", version %" PRIu64,
                        off, e, v, *epoch, db->version);
        if (kind == REC_CHANGE) {
            if ((e != *epoch && !(c.type == HA_CHG_MASTER && e == *epoch + 1)) || v != db->version + 1)
                return errf(err, errlen, -EUCLEAN,
                            "pool.log is corrupt: change record at byte %zu (epoch %" PRIu64 ", version %" PRIu64
                            ") does not follow epoch %" PRIu64 ", version %" PRIu64,
                            off, e, v, *epoch, db->version);
            int rc = ha_db_apply(db, &c);
            if (rc == -ENOMEM)
                return errf(err, errlen, rc, "out of memory replaying pool.log");
            if (rc < 0)
                return errf(err, errlen, -EUCLEAN,
                            "pool.log is corrupt: the database refuses the change at byte %zu (version %" PRIu64
                            ", type %d)",
                            off, v, (int)c.type);
        }
        *epoch = e;
        off += r.size;
        out->records++;
    }
    out->good_end = off;
    return 0;
}

int pooldb_open(const char *dir, struct pooldb_store **out, uint64_t *epoch, struct ha_db *db, bool *repaired,
                char *err, size_t errlen)
{
    struct pooldb_store *s;
    int rc = store_new(dir, &s, err, errlen);
    if (rc < 0)
        return rc == -ENOENT ? errf(err, errlen, rc, "%s: no pool database here", dir) : rc;

    uint8_t *snap = NULL, *log = NULL;
    size_t snap_len = 0, log_len = 0;
    struct ha_db t;
    bool have_db = false;
    uint64_t e;
    char why[512];

    int fd = openat(s->dfd, SNAP_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        errf(err, errlen, rc, "%s/" SNAP_FILE ": %s", dir, rc == -ENOENT ? "no pool database here" : strerror(-rc));
        goto out;
    }
    rc = read_all(fd, &snap, &snap_len);
    if (close(fd) < 0 && !rc)
        rc = -errno;
    if (rc < 0) {
        errf(err, errlen, rc, "%s/" SNAP_FILE ": cannot read it: %s", dir, strerror(-rc));
        goto out;
    }
    rc = pooldb_decode_snapshot(snap, snap_len, &e, &t, why, sizeof why);
    if (rc < 0) {
        /* a rename installs pool.snap whole: a bad one is damage, not a crash */
        rc = rc == -ENOMEM ? rc : -EUCLEAN;
        errf(err, errlen, rc, "%s/" SNAP_FILE " is corrupt: %s", dir, why);
        goto out;
    }
    have_db = true;

    bool created = false;
    s->logfd = openat(s->dfd, LOG_FILE, O_RDWR | O_APPEND | O_CLOEXEC);
    if (s->logfd < 0 && errno == ENOENT) {
        /* a crash in pooldb_create after the snapshot: an empty log */
        s->logfd = openat(s->dfd, LOG_FILE, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        created = s->logfd >= 0;
    }
    if (s->logfd < 0 || (rc = read_all(s->logfd, &log, &log_len)) < 0) {
        rc = rc < 0 ? rc : -errno;
        errf(err, errlen, rc, "%s/" LOG_FILE ": %s", dir, strerror(-rc));
        goto out;
    }
    struct replay rp;
    rc = replay_log(log, log_len, &e, &t, &rp, why, sizeof why);
    if (rc < 0) {
        errf(err, errlen, rc, "%s/%s", dir, why);
        goto out;
    }
    /* Everything checked out: only now touch the disk. */
    if (rp.torn) {
        if (ftruncate(s->logfd, (off_t)rp.good_end) < 0 || fsync(s->logfd) < 0) {
            rc = -errno;
            errf(err, errlen, rc, "%s/" LOG_FILE ": cutting the torn record failed: %s", dir, strerror(-rc));
            goto out;
        }
        errf(err, errlen, 0, "%s/" LOG_FILE ": cut a torn record at byte %zu (%zu bytes, %s), left by a crash", dir,
             rp.good_end, log_len - rp.good_end, rp.torn_why);
    }
    /* the database holds fence device passwords: root only */
    if ((rc = tighten(s->dfd, NULL, 0700)) < 0 || (rc = tighten(s->dfd, SNAP_FILE, 0600)) < 0 ||
        (rc = tighten(s->logfd, NULL, 0600)) < 0) {
        errf(err, errlen, rc, "%s: cannot make the pool database root-only (0700, files 0600): %s", dir,
             strerror(-rc));
        goto out;
    }
    if ((rc = unlink_if_there(s->dfd, SNAP_TMP)) < 0) {
        errf(err, errlen, rc, "%s/" SNAP_TMP ": cannot remove this leftover: %s", dir, strerror(-rc));
        goto out;
    }
    if (created && fsync(s->dfd) < 0) {
        rc = errf(err, errlen, -errno, "%s: fsync after creating " LOG_FILE " failed: %s", dir, strerror(errno));
        goto out;
    }
    s->epoch = e;
    s->version = t.version;
    s->snap_bytes = snap_len;
    s->log_bytes = rp.good_end;
    s->log_records = rp.records;
    if (repaired)
        *repaired = rp.torn;
    *epoch = e;
    *db = t;
    have_db = false;
    rc = 0;
    if (out) {
        *out = s;
        s = NULL;
    }
out:
    if (have_db)
        ha_db_free(&t);
    free(snap);
    free(log);
    pooldb_close(s);
    return rc;
}

/* After mkdir: the new directory entry must survive a crash too. */
static int sync_parent(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy)
        return -ENOMEM;
    char *slash = strrchr(copy, '/');
    const char *parent = ".";
    if (slash == copy)
        parent = "/";
    else if (slash) {
        *slash = 0;
        parent = copy;
    }
    int rc = 0, fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0 && close(fd) < 0 && !rc)
        rc = -errno;
    free(copy);
    return rc;
}

int pooldb_create(const char *dir, uint64_t epoch, const struct ha_db *db, struct pooldb_store **out, char *err,
                  size_t errlen)
{
    int rc;
    if (mkdir(dir, 0700) == 0) {
        if ((rc = sync_parent(dir)) < 0)
            return errf(err, errlen, rc, "%s: syncing its parent directory failed: %s", dir, strerror(-rc));
    } else if (errno != EEXIST)
        return errf(err, errlen, -errno, "%s: cannot create it: %s", dir, strerror(errno));

    uint8_t *buf = NULL;
    size_t len;
    rc = encode_checked(epoch, db, &buf, &len, err, errlen);
    if (rc < 0)
        return rc;
    struct pooldb_store *s;
    rc = store_new(dir, &s, err, errlen);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    if ((rc = tighten(s->dfd, NULL, 0700)) < 0) {
        errf(err, errlen, rc, "%s: cannot make it root-only (0700): %s", dir, strerror(-rc));
        goto out;
    }
    struct stat st;
    if (fstatat(s->dfd, SNAP_FILE, &st, 0) == 0) {
        rc = errf(err, errlen, -EEXIST, "%s already holds a pool database; destroy it first", dir);
        goto out;
    }
    if (errno != ENOENT) {
        rc = errf(err, errlen, -errno, "%s/" SNAP_FILE ": %s", dir, strerror(errno));
        goto out;
    }
    /* Leftovers of an interrupted destroy or create go first, durably: an
     * old log must never sit next to the new snapshot. */
    if ((rc = unlink_if_there(s->dfd, LOG_FILE)) < 0 || (rc = unlink_if_there(s->dfd, SNAP_TMP)) < 0) {
        errf(err, errlen, rc, "%s: removing leftovers failed: %s", dir, strerror(-rc));
        goto out;
    }
    s->logfd = openat(s->dfd, LOG_FILE, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (s->logfd < 0 || fsync(s->dfd) < 0) {
        rc = errf(err, errlen, -errno, "%s/" LOG_FILE ": cannot create it: %s", dir, strerror(errno));
        goto out;
    }
    bool committed;
    rc = write_snapshot(s, buf, len, &committed, err, errlen);
    if (rc < 0)
        goto out;
    s->epoch = epoch;
    s->version = db->version;
    s->snap_bytes = len;
    if (out) {
        *out = s;
        s = NULL;
    }
out:
    free(buf);
    pooldb_close(s);
    return rc;
}

int pooldb_destroy(const char *dir, char *err, size_t errlen)
{
    struct pooldb_store *s;
    int rc = store_new(dir, &s, err, errlen);
    if (rc == -ENOENT)
        return 0;
    if (rc < 0)
        return rc;
    /* pool.snap first, durably: without it there is no pool, whatever else
     * a crash leaves behind (pooldb_create clears such leftovers) */
    const char *const order[] = {SNAP_FILE, NULL, LOG_FILE, SNAP_TMP, NULL};
    for (size_t i = 0; i < sizeof order / sizeof order[0] && !rc; i++) {
        if (order[i])
            rc = unlink_if_there(s->dfd, order[i]);
        else if (fsync(s->dfd) < 0)
            rc = -errno;
        if (rc)
            errf(err, errlen, rc, "%s: removing the pool database failed at %s: %s", dir,
                 order[i] ? order[i] : "fsync", strerror(-rc));
    }
    pooldb_close(s);
    return rc;
}
