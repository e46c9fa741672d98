/* Unit tests of fencing/ without any BMC: device specs, the agent's stdin
 * and exit codes, password scrubbing, topology order, retries and the
 * collapse of concurrent requests (through a fake device runner), and the
 * SCSI-3 reservation key logic.  The live parts are tests/rig/test-fence. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fencing/fence.h"
#include "tests/unit/check_main.h"

static struct fence_device dev(const char *spec)
{
    struct fence_device d;
    char err[256];
    int rc = fence_device_parse(spec, &d, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", spec, err);
    return d;
}

START_TEST(parse_ok)
{
    struct fence_device d = dev("type=ipmi,address=10.99.1.2,user=admin,password=s3cret,cipher=3,timeout_ms=2000,retries=2");
    ck_assert_str_eq(d.type, "ipmi");
    ck_assert_str_eq(d.address, "10.99.1.2");
    ck_assert_str_eq(d.password, "s3cret");
    ck_assert_int_eq(d.timeout_ms, 2000);
    ck_assert_int_eq(d.retries, 2);
    d = dev("type=agent,agent=fence_ipmilan,address=a,option=verbose=1,option=delay=0");
    ck_assert_int_eq(d.noptions, 2);
    ck_assert_str_eq(d.options[1], "delay=0");
}
END_TEST

START_TEST(parse_bad)
{
    static const char *const bad[] = {
        "type=ipmx,address=a", "type=ipmi", "type=ipmi,address=a,cipher=99", "type=ipmi,address=a,nokey=1",
        "type=agent,address=a,agent=/bin/sh", "type=agent,address=a,agent=fence_../x", "type=agent,address=a",
        "type=ipmi,address=a,retries=-1", "type=ipmi,address=a,,", "type=ipmi,address=a,option=novalue",
        "type=ipmi,address=a,password_file=/nonexistent/pw",
    };
    struct fence_device d;
    char err[256];
    size_t i;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        ck_assert_msg(fence_device_parse(bad[i], &d, err, sizeof err) == -EINVAL, "accepted %s", bad[i]);
        ck_assert_msg(err[0], "no reason for %s", bad[i]);
    }
}
END_TEST

START_TEST(password_file)
{
    char path[] = "/tmp/vigil-test-fence-XXXXXX";
    int fd = mkstemp(path);
    char spec[128];
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "from-file\nsecond line\n", 22), 22);
    close(fd);
    snprintf(spec, sizeof spec, "type=ipmi,address=a,user=u,password_file=%s", path);
    struct fence_device d = dev(spec);
    unlink(path);
    ck_assert_str_eq(d.password, "from-file");
}
END_TEST

START_TEST(agent_stdin)
{
    struct fence_device d = dev("type=agent,agent=fence_ipmilan,address=10.99.1.2,port=623,user=admin,password=pw");
    char buf[1024];
    int n = fence_agent_stdin(&d, FENCE_OFF, buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    ck_assert_str_eq(buf, "action=off\nip=10.99.1.2\nipport=623\nusername=admin\npassword=pw\nlanplus=1\ncipher=3\n"
                          "power_wait=0\n");
    fence_agent_stdin(&d, FENCE_CYCLE, buf, sizeof buf);
    ck_assert(strncmp(buf, "action=reboot\n", 14) == 0);
    /* not an ipmilan agent: no lanplus/cipher; an option overrides a default */
    d = dev("type=agent,agent=fence_redfish,address=r,user=u,password=p,option=power_wait=3,option=ssl_insecure=1");
    fence_agent_stdin(&d, FENCE_STATUS, buf, sizeof buf);
    ck_assert_str_eq(buf, "action=status\nip=r\nusername=u\npassword=p\npower_wait=3\nssl_insecure=1\n");
    ck_assert_int_eq(fence_agent_stdin(&d, FENCE_OFF, buf, 20), -ENOSPC);
}
END_TEST

START_TEST(agent_exit)
{
    enum fence_power st;
    ck_assert_int_eq(fence_agent_map_exit(FENCE_STATUS, 0, &st), 0);
    ck_assert_int_eq(st, FENCE_POWER_ON);
    ck_assert_int_eq(fence_agent_map_exit(FENCE_STATUS, 2, &st), 0);
    ck_assert_int_eq(st, FENCE_POWER_OFF);
    ck_assert_int_eq(fence_agent_map_exit(FENCE_STATUS, 1, &st), -EIO);
    ck_assert_int_eq(st, FENCE_POWER_UNKNOWN);
    ck_assert_int_eq(fence_agent_map_exit(FENCE_OFF, 0, &st), 0);
    ck_assert_int_eq(st, FENCE_POWER_OFF);
    ck_assert_int_eq(fence_agent_map_exit(FENCE_OFF, 2, &st), -EIO);
    ck_assert_int_eq(fence_agent_map_exit(FENCE_ON, 0, &st), 0);
    ck_assert_int_eq(st, FENCE_POWER_ON);
}
END_TEST

START_TEST(agent_reason)
{
    char r[128];
    fence_agent_reason("/usr/sbin/fence_ipmilan:5: DeprecationWarning: 'pipes' is deprecated\n"
                       "  from pipes import quote\n"
                       "2026-11-22 02:06:01,445 ERROR: Failed: Unable to obtain correct plug status\n",
                       r, sizeof r);
    ck_assert_str_eq(r, "ERROR: Failed: Unable to obtain correct plug status");
    fence_agent_reason("Status: OFF\n\n", r, sizeof r);
    ck_assert_str_eq(r, "Status: OFF");
    fence_agent_reason("", r, sizeof r);
    ck_assert_str_eq(r, "");
}
END_TEST

START_TEST(scrub)
{
    char s[64] = "password=hunter2 and hunter2 again";
    fence_scrub(s, sizeof s, "hunter2");
    ck_assert_str_eq(s, "password=*** and *** again");
    char t[8] = "a:b:c:d"; /* a 1-byte secret near the end of a full buffer */
    fence_scrub(t, sizeof t, ":");
    ck_assert(strchr(t, ':') == NULL);
    char u[16] = "nothing";
    fence_scrub(u, sizeof u, "");
    ck_assert_str_eq(u, "nothing");
    struct fence_device d = dev("type=ipmi,address=10.99.1.2,user=admin,password=hunter2");
    char desc[256];
    fence_device_describe(&d, desc, sizeof desc);
    ck_assert_str_eq(desc, "ipmi 10.99.1.2:623");
}
END_TEST

/* ---- topology through a fake runner ---- */
static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static char fake_calls[1024];
static int fake_runs;
static int fake_delay_ms;
/* address "ok", "fail", "flaky" (fails once), "timeout", "on" (claims done, not off), "leak" (error naming the password) */
static int flaky_seen;
static int fake_run(const struct fence_device *d, enum fence_action a, int timeout_ms, enum fence_power *st,
                    char *why, size_t whylen)
{
    (void)timeout_ms;
    pthread_mutex_lock(&fake_mu);
    fake_runs++;
    size_t n = strlen(fake_calls);
    snprintf(fake_calls + n, sizeof fake_calls - n, "%s%s:%s", n ? " " : "", d->address, fence_action_name(a));
    pthread_mutex_unlock(&fake_mu);
    if (fake_delay_ms)
        usleep((useconds_t)fake_delay_ms * 1000);
    *st = FENCE_POWER_UNKNOWN;
    if (!strcmp(d->address, "ok") || (!strcmp(d->address, "flaky") && flaky_seen++)) {
        *st = FENCE_POWER_OFF;
        snprintf(why, whylen, "off");
        return 0;
    }
    if (!strcmp(d->address, "on")) {
        *st = FENCE_POWER_ON;
        return 0;
    }
    if (!strcmp(d->address, "leak")) {
        snprintf(why, whylen, "bad password %s", d->password);
        return -EACCES;
    }
    snprintf(why, whylen, "BMC %s did not answer within 1 s", d->address);
    return -ETIMEDOUT;
}

static void reset_fake(void)
{
    fake_calls[0] = '\0';
    fake_runs = 0;
    fake_delay_ms = 0;
    flaky_seen = 0;
    fence_runner = fake_run;
}

static struct fence_topology topo(const char *host, const char *l1a, const char *l1b, const char *l2)
{
    struct fence_topology t;
    char spec[128];
    memset(&t, 0, sizeof t);
    snprintf(t.host, sizeof t.host, "%s", host);
    t.nlevels = l2 ? 2 : 1;
    snprintf(spec, sizeof spec, "type=ipmi,address=%s,password=pw1234", l1a);
    t.levels[0].devices[t.levels[0].ndevices++] = dev(spec);
    if (l1b) {
        snprintf(spec, sizeof spec, "type=ipmi,address=%s,password=pw1234", l1b);
        t.levels[0].devices[t.levels[0].ndevices++] = dev(spec);
    }
    if (l2) {
        snprintf(spec, sizeof spec, "type=agent,agent=fence_ipmilan,address=%s,password=pw1234", l2);
        t.levels[1].devices[t.levels[1].ndevices++] = dev(spec);
    }
    return t;
}

START_TEST(levels_in_order)
{
    char why[2048];
    reset_fake();
    struct fence_topology t = topo("h2", "ok", NULL, "ok");
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), 0);
    ck_assert_str_eq(fake_calls, "ok:off");
    ck_assert(strstr(why, "level 1 confirmed"));
    /* level 1 fails (second device), level 2 confirms */
    reset_fake();
    t = topo("h2", "ok", "down", "ok");
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), 0);
    ck_assert_str_eq(fake_calls, "ok:off down:off ok:off");
    ck_assert_msg(strstr(why, "level 2 confirmed") && strstr(why, "level 1 failed") && strstr(why, "did not answer"), "%s", why);
    /* every level fails: the error names each */
    reset_fake();
    t = topo("h2", "down", NULL, "down2");
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), -ETIMEDOUT);
    ck_assert_msg(strstr(why, "h2 not fenced") && strstr(why, "level 1 failed") && strstr(why, "level 2 failed"), "%s", why);
    /* a device that answers without reporting off does not confirm */
    reset_fake();
    t = topo("h2", "on", NULL, NULL);
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), -EIO);
    ck_assert_msg(strstr(why, "did not report the host off"), "%s", why);
    /* no levels */
    memset(&t, 0, sizeof t);
    snprintf(t.host, sizeof t.host, "h9");
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), -ENODEV);
}
END_TEST

START_TEST(retries)
{
    char why[2048];
    reset_fake();
    struct fence_topology t = topo("h3", "flaky", NULL, NULL);
    t.levels[0].devices[0].retries = 2;
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), 0);
    ck_assert_int_eq(fake_runs, 2);
    reset_fake();
    t = topo("h3", "down", NULL, NULL);
    t.levels[0].devices[0].retries = 2;
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), -ETIMEDOUT);
    ck_assert_int_eq(fake_runs, 3); /* 1 + 2 retries, 250 + 500 ms apart */
}
END_TEST

START_TEST(no_password_in_reason)
{
    char why[2048];
    reset_fake();
    struct fence_topology t = topo("h4", "leak", NULL, NULL);
    ck_assert_int_eq(fence_topology_off(&t, why, sizeof why), -EACCES);
    ck_assert_msg(!strstr(why, "pw1234") && strstr(why, "bad password ***"), "%s", why);
}
END_TEST

struct req {
    const struct fence_topology *t;
    int rc;
    char why[2048];
};
static void *req_run(void *arg)
{
    struct req *r = arg;
    r->rc = fence_topology_off(r->t, r->why, sizeof r->why);
    return NULL;
}

START_TEST(collapse)
{
    pthread_t th[6];
    struct req r[6];
    int i;
    reset_fake();
    fake_delay_ms = 300;
    struct fence_topology t = topo("h5", "ok", NULL, NULL);
    struct fence_topology other = topo("h6", "ok", NULL, NULL);
    for (i = 0; i < 6; i++) {
        r[i].t = i == 5 ? &other : &t;
        pthread_create(&th[i], NULL, req_run, &r[i]);
        if (i == 0)
            usleep(50 * 1000); /* the first one runs when the others arrive */
    }
    for (i = 0; i < 6; i++)
        pthread_join(th[i], NULL);
    for (i = 0; i < 6; i++)
        ck_assert_msg(r[i].rc == 0, "%d: %s", i, r[i].why);
    ck_assert_int_eq(fake_runs, 2); /* one run for h5's five requests, one for h6 */
    ck_assert_str_eq(r[1].why, r[0].why);
    /* after it ended, a new request runs again */
    ck_assert_int_eq(fence_topology_off(&t, r[0].why, sizeof r[0].why), 0);
    ck_assert_int_eq(fake_runs, 3);
}
END_TEST

START_TEST(disk_not_yet)
{
    struct fence_device d = dev("type=disk");
    enum fence_power st;
    char why[256];
    fence_runner = NULL;
    ck_assert_int_eq(fence_device_run(&d, FENCE_OFF, 100, &st, why, sizeof why), -ENOSYS);
    ck_assert_msg(strstr(why, "not available yet"), "%s", why);
}
END_TEST

START_TEST(scsi_keys)
{
    uint64_t k1 = fence_scsi_key(1), k2 = fence_scsi_key(2), k, keys[4];
    ck_assert(k1 != 0 && k2 != 0 && k1 != k2);
    ck_assert_int_eq((int)(k1 >> 48), 0x7667);
    uint64_t reg[] = { k1, k2 };
    ck_assert_int_eq(fence_scsi_plan(reg, 2, k1, k2), 1);      /* preempt h2 */
    ck_assert_int_eq(fence_scsi_plan(reg, 1, k1, k2), 0);      /* h2 not registered: fenced already */
    ck_assert_int_eq(fence_scsi_plan(reg + 1, 1, k1, k2), -EPERM); /* we are not registered */
    ck_assert_int_eq(fence_scsi_plan(reg, 2, k1, k1), -EPERM);  /* never preempt ourselves */
    ck_assert_int_eq(fence_scsi_parse_key("0x7667000000000101", &k), 0);
    ck_assert(k == fence_scsi_key(1));
    ck_assert_int_eq(fence_scsi_parse_key("0", &k), -EINVAL);
    ck_assert_int_eq(fence_scsi_parse_key("12x", &k), -EINVAL);
    ck_assert_int_eq(fence_scsi_parse_key(NULL, &k), -EINVAL);
    static const uint8_t list[16] = { 0x76, 0x67, 0, 0, 0, 0, 1, 1, 0x76, 0x67, 0, 0, 0, 0, 2, 1 };
    ck_assert_int_eq(fence_scsi_decode_keys(list, sizeof list, 16, keys, 4), 2);
    ck_assert(keys[0] == k1 && keys[1] == k2);
    ck_assert_int_eq(fence_scsi_decode_keys(list, sizeof list, 12, keys, 4), -EINVAL);
    ck_assert_int_eq(fence_scsi_decode_keys(list, sizeof list, 24, keys, 4), -EINVAL);
    ck_assert_int_eq(fence_scsi_decode_keys(list, sizeof list, 16, keys, 1), 1);
    ck_assert_int_eq(fence_scsi_decode_keys(list, sizeof list, 0, keys, 4), 0);
}
END_TEST

START_TEST(scsi_live_skipped)
{
    /* no SCSI target on this machine: the device reports why it cannot run */
    struct fence_device d = dev("type=scsi-pr,address=/nonexistent/lun,option=key=0x7667000000000101,"
                                "option=victim_key=0x7667000000000201");
    enum fence_power st;
    char why[256];
    fence_runner = NULL;
    ck_assert_int_lt(fence_device_run(&d, FENCE_OFF, 100, &st, why, sizeof why), 0);
    ck_assert_msg(strstr(why, "cannot open /nonexistent/lun"), "%s", why);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fence");
    TCase *c = tcase_create("fence");
    tcase_set_timeout(c, 30);
    tcase_add_test(c, parse_ok);
    tcase_add_test(c, parse_bad);
    tcase_add_test(c, password_file);
    tcase_add_test(c, agent_stdin);
    tcase_add_test(c, agent_exit);
    tcase_add_test(c, agent_reason);
    tcase_add_test(c, scrub);
    tcase_add_test(c, levels_in_order);
    tcase_add_test(c, retries);
    tcase_add_test(c, no_password_in_reason);
    tcase_add_test(c, collapse);
    tcase_add_test(c, disk_not_yet);
    tcase_add_test(c, scsi_keys);
    tcase_add_test(c, scsi_live_skipped);
    suite_add_tcase(s, c);
    return vigil_run_suite(s);
}
