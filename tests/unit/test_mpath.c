/* The pure part of storage/mpath.h: path states -> counts, verdict, text,
 * JSON; and the arguments mpath_check() refuses before asking anyone.
 * libdmmp against a multipathd socket is tests/rig/test-mpath. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/mpath.h"

/* a map "hb0" with groups given as strings of path states:
 * 'u' ready, 'f' faulty, 'g' ghost, 'p' pending, 't' i/o timeout, 's' shaky,
 * 'd' delayed, '?' undef */
static struct mpath_summary map_of(const char *groups[], unsigned n)
{
    struct mpath_summary s;
    memset(&s, 0, sizeof s);
    snprintf(s.map, sizeof s.map, "hb0");
    snprintf(s.wwid, sizeof s.wwid, "36001405aaaa");
    s.ngroups = n;
    for (unsigned g = 0; g < n; g++) {
        struct mpath_group *pg = &s.groups[g];
        pg->id = g + 1;
        pg->state = g == 0 ? MPATH_PG_ACTIVE : MPATH_PG_ENABLED;
        for (const char *c = groups[g]; *c; c++) {
            struct mpath_path *p = &pg->paths[pg->npaths++];
            snprintf(p->dev, sizeof p->dev, "sd%c", (char)('a' + g * 4 + (unsigned)(c - groups[g])));
            switch (*c) {
            case 'u': p->state = MPATH_PS_UP; break;
            case 'f': p->state = MPATH_PS_DOWN; break;
            case 'g': p->state = MPATH_PS_GHOST; break;
            case 'p': p->state = MPATH_PS_PENDING; break;
            case 't': p->state = MPATH_PS_TIMEOUT; break;
            case 's': p->state = MPATH_PS_SHAKY; break;
            case 'd': p->state = MPATH_PS_DELAYED; break;
            default: p->state = MPATH_PS_UNKNOWN; break;
            }
        }
        pg->paths_total = pg->npaths;
    }
    mpath_summarize(&s);
    return s;
}

START_TEST(all_up)
{
    const char *g[] = {"uu", "uu"};
    struct mpath_summary s = map_of(g, 2);
    ck_assert_int_eq(s.verdict, MPATH_ALL_UP);
    ck_assert_uint_eq(s.paths_total, 4);
    ck_assert_uint_eq(s.paths_up, 4);
    ck_assert_uint_eq(s.paths_failed, 0);
    ck_assert_uint_eq(s.groups_failed, 0);
    ck_assert_str_eq(s.desc, "multipath map hb0: 4 of 4 paths up; 2 path groups");
}
END_TEST

START_TEST(one_group_failed)
{
    const char *g[] = {"uu", "ff"};
    struct mpath_summary s = map_of(g, 2);
    ck_assert_int_eq(s.verdict, MPATH_DEGRADED);
    ck_assert_uint_eq(s.paths_up, 2);
    ck_assert_uint_eq(s.paths_failed, 2);
    ck_assert_uint_eq(s.groups_failed, 1);
    ck_assert_uint_eq(s.groups[1].paths_up, 0);
    ck_assert_uint_eq(s.groups[1].paths_failed, 2);
    ck_assert_ptr_nonnull(strstr(s.desc, "2 of 4 paths up, 2 failed"));
    ck_assert_ptr_nonnull(strstr(s.desc, "1 without a usable path"));
    ck_assert_ptr_nonnull(strstr(s.desc, "lost sde (faulty), sdf (faulty)"));
}
END_TEST

START_TEST(all_failed)
{
    const char *g[] = {"ft", "ff"};
    struct mpath_summary s = map_of(g, 2);
    ck_assert_int_eq(s.verdict, MPATH_ALL_FAILED);
    ck_assert_uint_eq(s.paths_up, 0);
    ck_assert_uint_eq(s.paths_failed, 4);
    ck_assert_uint_eq(s.groups_failed, 2);
    ck_assert_ptr_nonnull(strstr(s.desc, "storage lost"));
}
END_TEST

START_TEST(no_paths_is_storage_loss)
{
    struct mpath_summary s = map_of(NULL, 0);
    ck_assert_int_eq(s.verdict, MPATH_ALL_FAILED);
    ck_assert_ptr_nonnull(strstr(s.desc, "no paths at all"));
    const char *g[] = {""};
    s = map_of(g, 1);   /* a group without paths */
    ck_assert_int_eq(s.verdict, MPATH_ALL_FAILED);
}
END_TEST

START_TEST(states_classified)
{
    /* ghost and shaky carry I/O; pending/delayed/undef are neither up nor failed */
    const char *g1[] = {"ug", "s"};
    ck_assert_int_eq(map_of(g1, 2).verdict, MPATH_ALL_UP);
    const char *g2[] = {"up", "d?"};
    struct mpath_summary s = map_of(g2, 2);
    ck_assert_int_eq(s.verdict, MPATH_DEGRADED);
    ck_assert_uint_eq(s.paths_other, 3);
    ck_assert_uint_eq(s.paths_failed, 0);
    ck_assert_ptr_nonnull(strstr(s.desc, "3 not checked yet"));
    /* nothing usable, nothing faulty: still no path to the LUN */
    const char *g3[] = {"pp"};
    ck_assert_int_eq(map_of(g3, 1).verdict, MPATH_ALL_FAILED);
    ck_assert(mpath_path_failed(MPATH_PS_TIMEOUT));
    ck_assert(!mpath_path_usable(42) && !mpath_path_failed(42));
    ck_assert_str_eq(mpath_path_state_str(42), "invalid");
    ck_assert_str_eq(mpath_path_state_str(MPATH_PS_PENDING), "i/o pending");
}
END_TEST

START_TEST(counters_trusted_when_not_listed)
{
    /* a group listing fewer paths than it counts keeps its counters */
    const char *g[] = {"uu"};
    struct mpath_summary s = map_of(g, 1);
    s.groups[0].paths_total = 40;
    s.groups[0].paths_up = 39;
    s.groups[0].paths_failed = 1;
    mpath_summarize(&s);
    ck_assert_int_eq(s.verdict, MPATH_DEGRADED);
    ck_assert_uint_eq(s.paths_total, 40);
    ck_assert_uint_eq(s.paths_up, 39);
    /* inconsistent counters never make a map look healthier */
    s.groups[0].paths_up = 41;
    mpath_summarize(&s);
    ck_assert_int_eq(s.verdict, MPATH_ALL_FAILED);
    ck_assert_uint_le(s.paths_failed, s.paths_total);
    /* out-of-range list sizes are clamped, not read past */
    s.ngroups = 1000;
    s.groups[0].npaths = 1000;
    mpath_summarize(&s);
    ck_assert_uint_eq(s.ngroups, MPATH_MAX_GROUPS);
    ck_assert_uint_eq(s.groups[0].npaths, MPATH_MAX_PATHS);
}
END_TEST

START_TEST(json)
{
    const char *g[] = {"uf"};
    struct mpath_summary s = map_of(g, 1);
    snprintf(s.map, sizeof s.map, "hb\"0\\\n");
    char buf[4096];
    int n = mpath_summary_json(&s, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq((int)strlen(buf), n);
    ck_assert_ptr_nonnull(strstr(buf, "\"verdict\":\"degraded\""));
    ck_assert_ptr_nonnull(strstr(buf, "\"map\":\"hb\\\"0\\\\\\u000a\""));
    ck_assert_ptr_nonnull(strstr(buf, "{\"dev\":\"sdb\",\"state\":\"faulty\"}"));
    /* a short buffer: truncated, terminated, the needed length returned */
    char small[20];
    ck_assert_int_eq(mpath_summary_json(&s, small, sizeof small), n);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    ck_assert_int_eq(mpath_summary_json(&s, NULL, 0), n);
    ck_assert_str_eq(mpath_verdict_str(MPATH_NO_DAEMON), "no-daemon");
}
END_TEST

START_TEST(bad_arguments)
{
    struct mpath_summary s;
    ck_assert_int_eq(mpath_check(NULL, 0, &s), -EINVAL);
    ck_assert_int_eq(mpath_check("", 0, &s), -EINVAL);
    ck_assert_int_eq(mpath_check("/dev/null", 0, &s), -EINVAL);   /* a character device */
    ck_assert_ptr_nonnull(strstr(s.desc, "not a block device"));
    ck_assert_int_eq(mpath_check("/nonexistent-vigil/disk", 0, &s), -ENOENT);
    ck_assert_int_eq(mpath_check("/dev/mapper/a/b", 0, &s), -ENOENT);
    char longname[300];
    memset(longname, 'w', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    ck_assert_int_eq(mpath_check(longname, 0, &s), -EINVAL);
    ck_assert_int_eq(mpath_check("x", 0, NULL), -EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mpath");
    TCase *tc = tcase_create("summary");
    tcase_add_test(tc, all_up);
    tcase_add_test(tc, one_group_failed);
    tcase_add_test(tc, all_failed);
    tcase_add_test(tc, no_paths_is_storage_loss);
    tcase_add_test(tc, states_classified);
    tcase_add_test(tc, counters_trusted_when_not_listed);
    tcase_add_test(tc, json);
    tcase_add_test(tc, bad_arguments);
    suite_add_tcase(s, tc);
    return vigil_run_suite(s);
}
