/* Scenario parser: good files load, every kind of bad input is refused with
 * FILE:LINE and a reason. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

static const char *good =
    "# a comment\n"
    "set token_timeout 1s\n"
    "set watchdog no\n"
    "host h1 mem=16G cpus=8\n"
    "host h2 mem=16G cpus=8 fence=none\n"
    "host h3 mem=8G cpus=4 member=no\n"
    "vm db1 on=h1 mem=4G cpus=2 ha=restart priority=1 order=2\n"
    "vm web1 on=h2 mem=1G cpus=1 ha=best-effort state=stopped\n"
    "at 0 start all\n"
    "at 1500ms partition h1 | h2,h3   # trailing comment\n"
    "at 2m cmd vm migrate db1 h2\n"
    "at 2m cmd h2 pool leave --evacuate\n"
    "expect by 30s vm db1 running on h1|h2\n"
    "expect at 30 host h2 online\n"
    "expect never vm db1 running on h3\n"
    "expect at 3m explain db1 \"no # comment here\"\n"
    "end 5m\n";

START_TEST(loads_good)
{
    struct scenario s;
    char err[512] = "";
    ck_assert_msg(scenario_parse("good", good, &s, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(s.db.nhosts, 3);
    ck_assert_int_eq(s.db.nvms, 2);
    ck_assert(!s.db.set.watchdog);
    ck_assert(!s.db.host[1].fence_ipmi);
    ck_assert(!s.db.host[2].joined);
    ck_assert_int_eq(s.db.vm[0].priority, 1);
    ck_assert_int_eq(s.db.vm[1].protect, HA_PROTECT_BEST_EFFORT);
    ck_assert(!s.db.vm[1].want_running);
    ck_assert_int_eq(s.nev, 4);
    ck_assert_int_eq(s.ev[1].at, 1500);
    ck_assert_int_eq(s.ev[1].ngroups, 2);
    ck_assert_uint_eq(s.ev[1].group[1], 6);
    ck_assert_int_eq(s.ev[3].cmd_host, 1);
    ck_assert_int_eq(s.nex, 4);
    ck_assert_uint_eq(s.ex[0].hosts, 3);
    ck_assert_str_eq(s.ex[3].text, "no # comment here");
    ck_assert_int_eq(s.end, 300000);
    scenario_free(&s);
}
END_TEST

START_TEST(rejects_bad)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"bogus\n", "t:1: unknown keyword 'bogus'"},
        {"host h1 mem=1G cpus=1\nend 1\nset nosuch 1\n", "t:3: unknown setting 'nosuch'"},
        {"host h1 mem=1G\nend 1\n", "t:1: host h1: cpus=<n> is required"},
        {"host h1 mem=1X cpus=1\nend 1\n", "t:1: host h1: mem=<size> is required"},
        {"host h1 mem=1G cpus=1 color=red\n", "t:1: unknown option 'color'"},
        {"host h1 mem=1G cpus=1\nhost h1 mem=1G cpus=1\n", "t:2: host h1 defined twice"},
        {"host h1 mem=1G cpus=1\nvm a on=h9 mem=1G cpus=1\n", "t:2: undefined host 'h9'"},
        {"host h1 mem=1G cpus=1\nvm a on=h1 mem=1G cpus=1 priority=7\n", "t:2: vm a: priority must be 1..5"},
        {"host h1 mem=1G cpus=1\nat 1x crash h1\n", "t:2: bad time '1x'"},
        {"host h1 mem=1G cpus=1\nat 1 crash\n", "t:2: 'crash' takes one host"},
        {"host h1 mem=1G cpus=1\nat 1 explode h1\n", "t:2: unknown event 'explode'"},
        {"host h1 mem=1G cpus=1\nat 1 partition h1\n", "t:2: partition needs at least two groups"},
        {"host h1 mem=1G cpus=1\nhost h2 mem=1G cpus=1\nat 1 partition h1 | h1,h2\n", "t:3: host h1 is in two groups"},
        {"host h1 mem=1G cpus=1\nat 1 cmd vm start nosuch\n", "t:2: cmd: unknown VM 'nosuch'"},
        {"host h1 mem=1G cpus=1\nexpect soon master h1\n", "t:2: expect needs at, by or never"},
        {"host h1 mem=1G cpus=1\nexpect at 1 host h1 sleepy\n", "t:2: unknown host state 'sleepy'"},
        {"host h1 mem=1G cpus=1\nexpect never master h1\n", "t:2: expect never only takes"},
        {"host h1 mem=1G cpus=1\n", "t:0: no 'end <time>' line"},
        {"end 1\n", "t:0: no host defined"},
        {"host h1 mem=1G cpus=1\nat 10 crash h1\nend 5\n", "t:2: event after the end time"},
        {"host h1 mem=1G cpus=1\nend 5\nend 6\n", "t:3: end given twice"},
        {"host h1 mem=1G cpus=1\nvm a on=h1 mem=1G cpus=1\nhost h2 mem=1G cpus=1\n", "t:3: host lines must come before vm lines"},
        {"host all mem=1G cpus=1\n", "t:1: 'all' cannot be a host name"},
        {"host h1 mem=1G cpus=1\nat 1 start h1\x01\n", "t:2: "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct scenario s;
        char err[512] = "";
        ck_assert_msg(scenario_parse("t", cases[i].text, &s, err, sizeof err) != 0, "accepted case %zu", i);
        ck_assert_msg(!strncmp(err, cases[i].err, strlen(cases[i].err)), "case %zu: got '%s', want '%s'", i, err,
                      cases[i].err);
    }
}
END_TEST

START_TEST(runs_deterministically)
{
    /* the same file and seed give the same timeline, byte for byte */
    char *out[2];
    size_t len[2];
    for (int k = 0; k < 2; k++) {
        struct scenario s;
        char err[512];
        ck_assert(scenario_parse("det", good, &s, err, sizeof err) == 0);
        FILE *f = open_memstream(&out[k], &len[k]);
        struct sim_opts o = {.seed = 7, .random_faults = 10};
        struct sim_result r;
        sim_run(&s, &o, f, &r);
        fclose(f);
        scenario_free(&s);
    }
    ck_assert_uint_eq(len[0], len[1]);
    ck_assert(len[0] > 1000);
    ck_assert_mem_eq(out[0], out[1], len[0]);
    free(out[0]);
    free(out[1]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("scenario");
    TCase *t = tcase_create("scenario");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, loads_good);
    tcase_add_test(t, rejects_bad);
    tcase_add_test(t, runs_deterministically);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
