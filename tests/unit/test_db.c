/* The replicated database and the command parser. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/ha.h"

static void mkdb(struct ha_db *db)
{
    ha_db_init(db);
    struct ha_db_host h = {.mem_mb = 8192, .cpus = 4, .joined = true, .fence_ipmi = true};
    for (int i = 0; i < 3; i++) {
        snprintf(h.name, sizeof h.name, "h%d", i + 1);
        ck_assert_int_eq(ha_db_add_host(db, &h), i);
    }
    struct ha_db_vm v = {.mem_mb = 1024, .cpus = 1, .priority = 3, .protect = HA_PROTECT_RESTART,
                         .want_running = true, .host = 0};
    for (int i = 0; i < 40; i++) {
        snprintf(v.name, sizeof v.name, "vm%d", i);
        ck_assert_int_eq(ha_db_add_vm(db, &v), i);
    }
}

START_TEST(add_and_find)
{
    struct ha_db db;
    mkdb(&db);
    ck_assert_int_eq(ha_db_find_host(&db, "h2"), 1);
    ck_assert_int_eq(ha_db_find_host(&db, "h9"), -ENOENT);
    ck_assert_int_eq(ha_db_find_vm(&db, "vm39"), 39);
    struct ha_db_host dup = {.mem_mb = 1, .cpus = 1};
    strcpy(dup.name, "h1");
    ck_assert_int_eq(ha_db_add_host(&db, &dup), -EEXIST);
    ck_assert_uint_eq(ha_db_joined(&db), 7);
    ha_db_free(&db);
}
END_TEST

START_TEST(apply_is_deterministic)
{
    struct ha_db a, b;
    mkdb(&a);
    mkdb(&b);
    struct ha_change log[] = {
        {.type = HA_CHG_HOST_MAINT, .host = 1, .arg = 1},
        {.type = HA_CHG_VM_PLACE, .vm = 3, .host = 2},
        {.type = HA_CHG_VM_PROTECT, .vm = 4, .protect = HA_PROTECT_BEST_EFFORT, .priority = 1, .order = 9},
        {.type = HA_CHG_HOST_FENCED, .host = 2, .arg = 1},
        {.type = HA_CHG_HOST_LEAVE, .host = 2},
        {.type = HA_CHG_PREFERRED_MASTER, .host = 1},
    };
    for (size_t i = 0; i < sizeof log / sizeof log[0]; i++) {
        ck_assert_int_eq(ha_db_apply(&a, &log[i]), 0);
        ck_assert_int_eq(ha_db_apply(&b, &log[i]), 0);
    }
    ck_assert_uint_eq(a.version, 6);
    ck_assert_mem_eq(a.host, b.host, sizeof a.host);
    ck_assert_mem_eq(a.vm, b.vm, (size_t)a.nvms * sizeof *a.vm);
    ck_assert(a.host[1].maintenance);
    ck_assert(!a.host[2].joined);
    ck_assert(!a.host[2].fenced);
    ck_assert_int_eq(a.vm[3].host, HA_NO_HOST); /* leaving host takes its placements with it */
    ck_assert_int_eq(a.vm[4].protect, HA_PROTECT_BEST_EFFORT);
    ck_assert_int_eq(a.preferred_master, 1);
    ha_db_free(&a);
    ha_db_free(&b);
}
END_TEST

START_TEST(apply_rejects_bad_changes)
{
    struct ha_db db;
    mkdb(&db);
    struct ha_change bad[] = {
        {.type = HA_CHG_HOST_MAINT, .host = 7, .arg = 1},
        {.type = HA_CHG_HOST_MAINT, .host = -2, .arg = 1},
        {.type = HA_CHG_VM_PLACE, .vm = 40, .host = 1},
        {.type = HA_CHG_VM_PLACE, .vm = 1, .host = 5},
        {.type = HA_CHG_VM_PROTECT, .vm = 1, .priority = 0},
        {.type = HA_CHG_VM_PROTECT, .vm = 1, .priority = 6},
        {.type = (enum ha_change_type)99},
    };
    struct ha_db_host hosts[HA_MAX_HOSTS];
    memcpy(hosts, db.host, sizeof hosts);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_int_eq(ha_db_apply(&db, &bad[i]), -EINVAL);
    ck_assert_uint_eq(db.version, 0);
    ck_assert_mem_eq(hosts, db.host, sizeof hosts);
    ha_db_free(&db);
}
END_TEST

static int parse(struct ha_db *db, const char *line, struct ha_cmd *c, char *err)
{
    char buf[256], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "))
        argv[argc++] = w;
    return ha_cmd_parse(db, argc, argv, c, err, 256);
}

START_TEST(commands)
{
    struct ha_db db;
    mkdb(&db);
    struct ha_cmd c;
    char err[256];
    ck_assert_int_eq(parse(&db, "host maintenance h2 on", &c, err), 0);
    ck_assert_int_eq(c.type, HA_CMD_HOST_MAINT);
    ck_assert_int_eq(c.host, 1);
    ck_assert(c.on);
    ck_assert_int_eq(parse(&db, "vm migrate vm3 h3", &c, err), 0);
    ck_assert_int_eq(c.vm, 3);
    ck_assert_int_eq(c.host, 2);
    ck_assert_int_eq(parse(&db, "vm protect vm1 --best-effort --priority 1 --order 4", &c, err), 0);
    ck_assert_int_eq(c.protect, HA_PROTECT_BEST_EFFORT);
    ck_assert_int_eq(c.priority, 1);
    ck_assert_int_eq(c.order, 4);
    ck_assert_int_eq(parse(&db, "pool leave h3 --evacuate", &c, err), 0);
    ck_assert(c.evacuate);
    ck_assert_int_eq(c.host, 2);
    ck_assert_int_eq(parse(&db, "vm start vm2 --on h1", &c, err), 0);
    ck_assert_int_eq(c.host, 0);

    struct {
        const char *line, *err;
    } bad[] = {
        {"", "empty command"},
        {"frobnicate", "unknown command 'frobnicate'"},
        {"host maintenance h9 on", "unknown host 'h9'"},
        {"host maintenance h1 maybe", "'maybe': expected on or off"},
        {"host fence h2", "confirm with --yes"},
        {"vm migrate nosuch h1", "unknown VM 'nosuch'"},
        {"vm protect vm1 --priority 9", "--priority takes 1 to 5, not '9'"},
        {"vm protect vm1 --order", "--order takes a whole number, not 'nothing'"},
        {"vm stop vm1 now", "unexpected word 'now'"},
        {"pool", "'pool' needs a subcommand"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.type = HA_CMD_VM_STOP;
        err[0] = 0;
        ck_assert_msg(parse(&db, bad[i].line, &c, err) == -EINVAL, "accepted '%s'", bad[i].line);
        ck_assert_msg(strstr(err, bad[i].err), "'%s': error '%s' lacks '%s'", bad[i].line, err, bad[i].err);
        ck_assert_int_eq(c.type, HA_CMD_VM_STOP); /* output untouched on error */
    }
    ha_db_free(&db);
}
END_TEST

/* The changes of a live pool: each bad one is refused and changes nothing. */
static void apply_refused(struct ha_db *db, const struct ha_change *c)
{
    uint64_t v = db->version;
    int nh = db->nhosts, nv = db->nvms, nt = db->ntokens;
    ck_assert_int_eq(ha_db_apply(db, c), -EINVAL);
    ck_assert_uint_eq(db->version, v);
    ck_assert_int_eq(db->nhosts, nh);
    ck_assert_int_eq(db->nvms, nv);
    ck_assert_int_eq(db->ntokens, nt);
}

START_TEST(pool_changes)
{
    struct ha_db db;
    ha_db_init(&db);
    struct ha_change c = {.type = HA_CHG_HOST_ADD, .arg = 1, .mem_mb = 8192, .cpus = 4};
    strcpy(c.name, "h1");
    strcpy(c.text, "10.99.0.1");
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    apply_refused(&db, &c); /* already a member */
    strcpy(c.name, "h2");
    apply_refused(&db, &c); /* node id 1 is h1's */
    c.arg = 2;
    apply_refused(&db, &c); /* so is the address */
    strcpy(c.text, "10.99.0.2");
    strcpy(c.name, "bad name");
    apply_refused(&db, &c);
    strcpy(c.name, "h2");
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_uint_eq(db.host[1].nodeid, 2);
    /* a host that left comes back under its name with a new address */
    struct ha_change leave = {.type = HA_CHG_HOST_LEAVE, .host = 1};
    ck_assert_int_eq(ha_db_apply(&db, &leave), 0);
    strcpy(c.text, "10.99.0.9");
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_int_eq(db.nhosts, 2);
    ck_assert_str_eq(db.host[1].addr, "10.99.0.9");
    ck_assert(db.host[1].joined);

    struct ha_change vm = {.type = HA_CHG_VM_ADD, .mem_mb = 512, .cpus = 1};
    strcpy(vm.name, "web1");
    ck_assert_int_eq(ha_db_apply(&db, &vm), 0);
    apply_refused(&db, &vm); /* the name exists */
    strcpy(vm.name, "web2");
    vm.cpus = 0;
    apply_refused(&db, &vm);

    struct ha_change set = {.type = HA_CHG_SETTING};
    strcpy(set.name, "heartbeat_disk");
    strcpy(set.text, "maybe");
    apply_refused(&db, &set);
    ck_assert(db.set.heartbeat_disk);
    strcpy(set.text, "no");
    ck_assert_int_eq(ha_db_apply(&db, &set), 0);
    ck_assert(!db.set.heartbeat_disk);
    ha_db_free(&db);
}
END_TEST

/* A host's own measure of its size replaces what the pool had; a host not
 * in the pool, or no CPU, is refused and changes nothing. */
START_TEST(host_facts)
{
    struct ha_db db;
    mkdb(&db);
    struct ha_change f = {.type = HA_CHG_HOST_FACTS, .host = 1, .vm = -1, .mem_mb = 24000, .cpus = 2};
    ck_assert_int_eq(ha_db_apply(&db, &f), 0);
    ck_assert_uint_eq(db.host[1].mem_mb, 24000);
    ck_assert_int_eq(db.host[1].cpus, 2);
    f.cpus = 0;
    apply_refused(&db, &f);
    f.cpus = 2;
    f.host = db.nhosts;
    apply_refused(&db, &f);
    db.host[2].joined = false;
    f.host = 2;
    apply_refused(&db, &f);
    ck_assert_uint_eq(db.host[1].mem_mb, 24000);
    ha_db_free(&db);
}
END_TEST

START_TEST(join_tokens)
{
    struct ha_db db;
    ha_db_init(&db);
    struct ha_change add = {.type = HA_CHG_TOKEN_ADD, .when = 1000000};
    memset(add.blob, 1, sizeof add.blob);
    ck_assert_int_eq(ha_db_apply(&db, &add), 0);
    apply_refused(&db, &add); /* the same secret twice */
    /* what the master checks before it lets a host in */
    uint8_t h1[32], h2[32];
    memset(h1, 1, sizeof h1);
    memset(h2, 2, sizeof h2);
    ck_assert_int_eq(ha_token_check(&db, h1, 999999), 0);
    ck_assert_int_eq(ha_token_check(&db, h1, 1000000), 0);     /* valid up to its expiry second */
    ck_assert_int_eq(ha_token_check(&db, h1, 1000001), -ETIME); /* expired */
    ck_assert_int_eq(ha_token_check(&db, h2, 0), -ENOENT);      /* never issued */
    struct ha_change use = {.type = HA_CHG_TOKEN_USE};
    memset(use.blob, 2, sizeof use.blob);
    apply_refused(&db, &use); /* unknown */
    memset(use.blob, 1, sizeof use.blob);
    ck_assert_int_eq(ha_db_apply(&db, &use), 0);
    ck_assert_int_eq(ha_token_check(&db, h1, 0), -EALREADY);    /* used */
    apply_refused(&db, &use); /* works once */
    /* the next token drops the used one */
    struct ha_change next = {.type = HA_CHG_TOKEN_ADD, .when = 2000000};
    memset(next.blob, 3, sizeof next.blob);
    ck_assert_int_eq(ha_db_apply(&db, &next), 0);
    ck_assert_int_eq(db.ntokens, 1);
    /* and one issued 31 days later drops it: expired 30 days before */
    struct ha_change later = {.type = HA_CHG_TOKEN_ADD, .when = 2000000 + 31 * 86400};
    memset(later.blob, 4, sizeof later.blob);
    ck_assert_int_eq(ha_db_apply(&db, &later), 0);
    ck_assert_int_eq(db.ntokens, 1);
    ck_assert_int_eq(memcmp(db.token[0].hash, later.blob, 32), 0);
    ha_db_free(&db);
}
END_TEST

/* Corosync-only mode: who may write, judged from a view. */
START_TEST(change_allowed)
{
    struct ha_db db;
    mkdb(&db);
    db.set.heartbeat_disk = false;
    ha_hostset all = 7;
    struct ha_change take1 = {.type = HA_CHG_MASTER, .host = 1};
    ck_assert(ha_change_allowed(&db, 1, all, &take1)); /* no master yet */
    ck_assert_int_eq(ha_db_apply(&db, &take1), 0);
    ck_assert_uint_eq(db.master_epoch, 1);
    struct ha_change want = {.type = HA_CHG_VM_WANT, .vm = 0, .arg = 1};
    ck_assert(ha_change_allowed(&db, 1, all, &want));
    ck_assert(!ha_change_allowed(&db, 0, all, &want)); /* not the master */
    struct ha_change take0 = {.type = HA_CHG_MASTER, .host = 0};
    ck_assert(!ha_change_allowed(&db, 0, all, &take0)); /* the master is in the view */
    ck_assert(ha_change_allowed(&db, 0, 1 | 4, &take0)); /* gone: a majority takes over */
    ck_assert(!ha_change_allowed(&db, 0, 1, &take0));    /* not a minority */
    ck_assert(!ha_change_allowed(&db, 1, 2, &take0));    /* nor a handoff from one */
    ck_assert(ha_change_allowed(&db, 1, all, &take0));   /* a handoff */
    struct ha_change take2 = {.type = HA_CHG_MASTER, .host = 2};
    ck_assert(!ha_change_allowed(&db, 0, 1 | 4, &take2)); /* a takeover names its sender */
    ha_db_free(&db);
}
END_TEST

START_TEST(pin_rule_names_known_hosts)
{
    struct ha_db db;
    mkdb(&db);
    struct ha_rule r = {.type = HA_RULE_PIN, .nvms = 1, .vm = {0}, .hosts = HA_BIT(5)};
    strcpy(r.name, "p");
    char err[HA_REASON_MAX];
    ck_assert_int_eq(ha_rule_check(&db, &r, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "does not have"), "%s", err);
    r.hosts = HA_BIT(2);
    ck_assert_int_eq(ha_rule_check(&db, &r, err, sizeof err), 0);
    ha_db_free(&db);
}
END_TEST

static struct ha_change fence_set(int host, int level, int index, enum ha_fence_type type)
{
    struct ha_change c = {.type = HA_CHG_FENCE_SET, .host = host, .fence_level = level, .fence_index = index};
    c.dev = (struct ha_fence_dev){.type = type, .timeout_ms = 5000, .retries = 2};
    if (type == HA_FENCE_IPMI) {
        strcpy(c.dev.addr, "10.99.1.2");
        strcpy(c.dev.user, "admin");
        strcpy(c.dev.password, "s3cret");
        c.dev.port = 623;
        c.dev.cipher = 3;
    } else if (type == HA_FENCE_AGENT) {
        strcpy(c.dev.agent, "fence_apc");
        c.dev.nopts = 1;
        strcpy(c.dev.opt[0], "plug=4");
    }
    return c;
}

/* A refused change changes nothing: not even the version. */
static void refused(struct ha_db *db, const struct ha_change *c, const char *what)
{
    struct ha_db before;
    ck_assert_int_eq(ha_db_copy(&before, db), 0);
    ck_assert_msg(ha_db_apply(db, c) == -EINVAL, "%s: accepted", what);
    ck_assert_uint_eq(db->version, before.version);
    for (int h = 0; h < db->nhosts; h++) {
        ck_assert_int_eq(db->host[h].fence_ipmi, before.host[h].fence_ipmi);
        ck_assert_int_eq(!db->fence[h], !before.fence[h]);
        if (db->fence[h])
            ck_assert_msg(!memcmp(db->fence[h], before.fence[h], sizeof *db->fence[h]), "%s: changed", what);
    }
    ha_db_free(&before);
}

START_TEST(fence_devices)
{
    struct ha_db db;
    mkdb(&db);
    /* mkdb's hosts claim a BMC the old way; a clear with nothing to clear is refused */
    struct ha_change clr = {.type = HA_CHG_FENCE_CLEAR, .host = 1};
    refused(&db, &clr, "clear without devices");

    struct ha_change c = fence_set(1, 1, 0, HA_FENCE_IPMI);
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_ptr_nonnull(db.fence[1]);
    ck_assert_int_eq(db.fence[1]->nlevels, 1);
    ck_assert_int_eq(db.fence[1]->level[0].ndevs, 1);
    ck_assert_str_eq(db.fence[1]->level[0].dev[0].password, "s3cret");
    ck_assert(db.host[1].fence_ipmi);
    /* replace device 1, add device 2, then level 2 */
    strcpy(c.dev.password, "other");
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    ck_assert_str_eq(db.fence[1]->level[0].dev[0].password, "other");
    ck_assert_int_eq(db.fence[1]->level[0].ndevs, 1);
    struct ha_change c2 = fence_set(1, 1, 1, HA_FENCE_AGENT);
    ck_assert_int_eq(ha_db_apply(&db, &c2), 0);
    ck_assert_int_eq(db.fence[1]->level[0].ndevs, 2);
    struct ha_change c3 = fence_set(1, 2, 0, HA_FENCE_DISK);
    ck_assert_int_eq(ha_db_apply(&db, &c3), 0);
    ck_assert_int_eq(db.fence[1]->nlevels, 2);
    ck_assert(db.host[1].fence_ipmi);

    /* the disk (poison pill) is alone in the last level */
    struct ha_change p;
    char perr[HA_REASON_MAX];
    p = fence_set(1, 2, 1, HA_FENCE_AGENT); refused(&db, &p, "a device beside the disk");
    ck_assert_int_eq(ha_fence_place_check(db.fence[1], 2, 1, HA_FENCE_AGENT, perr, sizeof perr), -EINVAL);
    ck_assert_msg(strstr(perr, "alone in its level"), "%s", perr);
    p = fence_set(1, 3, 0, HA_FENCE_IPMI); refused(&db, &p, "a level after the disk");
    ck_assert_int_eq(ha_fence_place_check(db.fence[1], 3, 0, HA_FENCE_IPMI, perr, sizeof perr), -EINVAL);
    ck_assert_msg(strstr(perr, "level 2 is the disk"), "%s", perr);
    p = fence_set(1, 1, 1, HA_FENCE_DISK); refused(&db, &p, "the disk beside a BMC");
    p = fence_set(1, 1, 0, HA_FENCE_DISK); refused(&db, &p, "the disk before another level");
    ck_assert_int_eq(ha_fence_place_check(db.fence[1], 1, 0, HA_FENCE_DISK, perr, sizeof perr), -EINVAL);
    ck_assert_msg(strstr(perr, "is the last level"), "%s", perr);
    /* the disk may be replaced by a device, and come back */
    p = fence_set(1, 2, 0, HA_FENCE_AGENT);
    ck_assert_int_eq(ha_db_apply(&db, &p), 0);
    ck_assert_int_eq(ha_db_apply(&db, &c3), 0);
    ck_assert_int_eq(db.fence[1]->level[1].dev[0].type, HA_FENCE_DISK);
    /* a host whose only level is the disk has no device that powers it off */
    p = fence_set(2, 1, 0, HA_FENCE_DISK);
    ck_assert_int_eq(ha_db_apply(&db, &p), 0);
    ck_assert(!db.host[2].fence_ipmi);
    ck_assert(!ha_fence_topo_has_devices(db.fence[2]));
    p = fence_set(2, 2, 0, HA_FENCE_IPMI); refused(&db, &p, "a BMC after the only level, the disk");
    p = fence_set(2, 1, 0, HA_FENCE_IPMI);
    ck_assert_int_eq(ha_db_apply(&db, &p), 0);
    ck_assert(db.host[2].fence_ipmi);

    /* copies are deep */
    struct ha_db copy;
    ck_assert_int_eq(ha_db_copy(&copy, &db), 0);
    ck_assert_ptr_ne(copy.fence[1], db.fence[1]);
    ck_assert(!memcmp(copy.fence[1], db.fence[1], sizeof *db.fence[1]));
    ha_db_free(&copy);

    /* refused: holes, bounds, unknown hosts, bad devices */
    struct ha_change bad;
    bad = fence_set(1, 4, 0, HA_FENCE_IPMI); refused(&db, &bad, "level 4 after 2");
    bad = fence_set(1, 0, 0, HA_FENCE_IPMI); refused(&db, &bad, "level 0");
    bad = fence_set(1, 5, 0, HA_FENCE_IPMI); refused(&db, &bad, "level 5");
    bad = fence_set(1, 1, 3, HA_FENCE_IPMI); refused(&db, &bad, "device 4 after 2");
    bad = fence_set(1, 1, -1, HA_FENCE_IPMI); refused(&db, &bad, "device 0");
    bad = fence_set(7, 1, 0, HA_FENCE_IPMI); refused(&db, &bad, "unknown host");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.cipher = 0; refused(&db, &bad, "cipher 0");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.password[0] = 0; refused(&db, &bad, "no password");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); memset(bad.dev.password, 'p', sizeof bad.dev.password);
    refused(&db, &bad, "unterminated password");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); strcpy(bad.dev.addr, "a b"); refused(&db, &bad, "address with a space");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); strcpy(bad.dev.addr, "-oProxy"); refused(&db, &bad, "leading -");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.timeout_ms = 99; refused(&db, &bad, "timeout");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.retries = 11; refused(&db, &bad, "retries");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.port = 70000; refused(&db, &bad, "port");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); bad.dev.type = (enum ha_fence_type)9; refused(&db, &bad, "type");
    bad = fence_set(1, 1, 0, HA_FENCE_IPMI); strcpy(bad.dev.user, "a\nb"); refused(&db, &bad, "control byte");
    bad = fence_set(1, 1, 0, HA_FENCE_AGENT); strcpy(bad.dev.agent, "/bin/sh"); refused(&db, &bad, "agent path");
    bad = fence_set(1, 1, 0, HA_FENCE_AGENT); strcpy(bad.dev.opt[0], "plug"); refused(&db, &bad, "option");
    bad = fence_set(1, 1, 0, HA_FENCE_AGENT); strcpy(bad.dev.opt[0], "password=x"); refused(&db, &bad, "secret option");
    bad = fence_set(1, 1, 0, HA_FENCE_AGENT); bad.dev.nopts = 2; strcpy(bad.dev.opt[1], "plug=5");
    refused(&db, &bad, "option twice");
    bad = fence_set(1, 1, 0, HA_FENCE_AGENT); bad.dev.nopts = 17; refused(&db, &bad, "17 options");
    bad = fence_set(1, 1, 0, HA_FENCE_DISK); strcpy(bad.dev.addr, "x"); refused(&db, &bad, "disk with address");
    char err[HA_REASON_MAX];
    ck_assert_int_eq(ha_fence_dev_check(&bad.dev, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "disk device: it takes no address"), "%s", err);

    /* clear: only the highest level alone, or all */
    clr = (struct ha_change){.type = HA_CHG_FENCE_CLEAR, .host = 1, .fence_level = 1};
    refused(&db, &clr, "clear level 1 under level 2");
    clr.fence_level = 3;
    refused(&db, &clr, "clear level 3");
    clr.fence_level = 2;
    ck_assert_int_eq(ha_db_apply(&db, &clr), 0);
    ck_assert_int_eq(db.fence[1]->nlevels, 1);
    ck_assert(db.host[1].fence_ipmi);
    clr.fence_level = 0;
    ck_assert_int_eq(ha_db_apply(&db, &clr), 0);
    ck_assert_ptr_null(db.fence[1]);
    ck_assert(!db.host[1].fence_ipmi);
    /* and the last level alone clears the host too */
    ck_assert_int_eq(ha_db_apply(&db, &c), 0);
    clr.fence_level = 1;
    ck_assert_int_eq(ha_db_apply(&db, &clr), 0);
    ck_assert_ptr_null(db.fence[1]);
    ck_assert(!db.host[1].fence_ipmi);
    ck_assert_str_eq(ha_fence_type_name(HA_FENCE_SCSI_PR), "scsi-pr");
    enum ha_fence_type t;
    ck_assert_int_eq(ha_fence_type_parse("agent", &t), 0);
    ck_assert_int_eq(t, HA_FENCE_AGENT);
    ck_assert_int_eq(ha_fence_type_parse("bmc", &t), -EINVAL);
    ha_db_free(&db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("db");
    TCase *t = tcase_create("db");
    tcase_add_test(t, add_and_find);
    tcase_add_test(t, pool_changes);
    tcase_add_test(t, join_tokens);
    tcase_add_test(t, host_facts);
    tcase_add_test(t, change_allowed);
    tcase_add_test(t, pin_rule_names_known_hosts);
    tcase_add_test(t, apply_is_deterministic);
    tcase_add_test(t, apply_rejects_bad_changes);
    tcase_add_test(t, commands);
    tcase_add_test(t, fence_devices);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
