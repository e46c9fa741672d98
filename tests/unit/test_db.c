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

int main(void)
{
    Suite *s = suite_create("db");
    TCase *t = tcase_create("db");
    tcase_add_test(t, add_and_find);
    tcase_add_test(t, apply_is_deterministic);
    tcase_add_test(t, apply_rejects_bad_changes);
    tcase_add_test(t, commands);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
