/* Value parsers and settings. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "ha/ha.h"

START_TEST(durations)
{
    ha_ms v;
    ck_assert_int_eq(ha_parse_duration("30", &v), 0);
    ck_assert_int_eq(v, 30000);
    ck_assert_int_eq(ha_parse_duration("30s", &v), 0);
    ck_assert_int_eq(v, 30000);
    ck_assert_int_eq(ha_parse_duration("1500ms", &v), 0);
    ck_assert_int_eq(v, 1500);
    ck_assert_int_eq(ha_parse_duration("2m", &v), 0);
    ck_assert_int_eq(v, 120000);
    ck_assert_int_eq(ha_parse_duration("1h", &v), 0);
    ck_assert_int_eq(v, 3600000);
    const char *bad[] = {"", "s", "-1", "1.5s", "10x", "1 s", "99999999999999999999", "9999999999h", "ms", " 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        ck_assert_msg(ha_parse_duration(bad[i], &v) == -EINVAL, "accepted '%s'", bad[i]);
        ck_assert_int_eq(v, 42); /* unchanged on error */
    }
}
END_TEST

START_TEST(sizes)
{
    uint64_t v;
    ck_assert_int_eq(ha_parse_size_mb("512M", &v), 0);
    ck_assert_uint_eq(v, 512);
    ck_assert_int_eq(ha_parse_size_mb("4G", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(ha_parse_size_mb("1T", &v), 0);
    ck_assert_uint_eq(v, 1048576);
    ck_assert_int_eq(ha_parse_size_mb("100", &v), 0);
    ck_assert_uint_eq(v, 100);
    const char *bad[] = {"", "0", "0G", "4g", "4GB", "-4G", "G", "4.5G", "99999999999999999999G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(ha_parse_size_mb(bad[i], &v) == -EINVAL, "accepted '%s'", bad[i]);
}
END_TEST

START_TEST(ints)
{
    long v;
    ck_assert_int_eq(ha_parse_int("5", 1, 5, &v), 0);
    ck_assert_int_eq(v, 5);
    ck_assert_int_eq(ha_parse_int("6", 1, 5, &v), -EINVAL);
    ck_assert_int_eq(ha_parse_int("0", 1, 5, &v), -EINVAL);
    ck_assert_int_eq(ha_parse_int("+1", 0, 5, &v), -EINVAL);
    ck_assert_int_eq(ha_parse_int("99999999999999999999999", 0, 5, &v), -EINVAL);
}
END_TEST

START_TEST(settings)
{
    struct ha_settings s, before;
    char err[256];
    ha_settings_default(&s);
    ck_assert_int_eq(s.disk_timeout, 4000);
    ck_assert_int_eq(s.max_restart, 2);
    ck_assert_int_eq(s.evacuate_concurrency, 2);
    ck_assert_int_eq(ha_settings_set(&s, "msgwait", "12s", err, sizeof err), 0);
    ck_assert_int_eq(s.msgwait, 12000);
    ck_assert_int_eq(ha_settings_set(&s, "watchdog", "no", err, sizeof err), 0);
    ck_assert(!s.watchdog);
    before = s;
    ck_assert_int_eq(ha_settings_set(&s, "nosuch", "1", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "unknown setting 'nosuch'");
    ck_assert_int_eq(ha_settings_set(&s, "watchdog", "maybe", err, sizeof err), -EINVAL);
    ck_assert_int_eq(ha_settings_set(&s, "disk_timeout", "1s", err, sizeof err), -EINVAL); /* < 2 x interval */
    ck_assert_int_eq(ha_settings_set(&s, "evacuate_concurrency", "0", err, sizeof err), -EINVAL);
    ck_assert_int_eq(ha_settings_set(&s, "token_timeout", "5ms", err, sizeof err), -EINVAL);
    ck_assert_int_eq(ha_settings_set(&s, "cpu_overcommit", "abc", err, sizeof err), -EINVAL);
    ck_assert_mem_eq(&s, &before, sizeof s); /* a refused setting changes nothing */
}
END_TEST

START_TEST(format_time)
{
    char b[32];
    ha_format_time(1500, b, sizeof b);
    ck_assert_str_eq(b, "1.500s");
    ha_format_time(-20, b, sizeof b);
    ck_assert_str_eq(b, "-0.020s");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("parse");
    TCase *t = tcase_create("parse");
    tcase_add_test(t, durations);
    tcase_add_test(t, sizes);
    tcase_add_test(t, ints);
    tcase_add_test(t, settings);
    tcase_add_test(t, format_time);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
