/* daemon/pidns.c: the rule that decides whether a self-fence may call
 * reboot(2), on fake /proc trees: the machine's initial PID namespace
 * (kthreadd at PID 2), a nested one seen through the machine's /proc (NSpid
 * with two PIDs), a nested one with its own /proc (the rig: no kthreadd),
 * and the doubtful cases, which must count as initial. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../daemon/pidns.h"
#include "check_main.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char p[256], d[256];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    snprintf(d, sizeof d, "%s", p);
    *strrchr(d, '/') = 0;
    mkdir(d, 0755);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void fresh(void)
{
    if (root[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", root);
        ck_assert_int_eq(system(cmd), 0);
    }
    snprintf(root, sizeof root, "/tmp/vigil-pidns-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
}

static void cleanup(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    ck_assert_int_eq(system(cmd), 0);
    root[0] = 0;
}

static bool initial(char *why)
{
    return pidns_initial(root, why, 256);
}

START_TEST(machine)
{
    char why[256];
    fresh();
    put("self/status", "Name:\tvigild\nPid:\t4242\nNSpid:\t4242\n");
    put("2/status", "Name:\tkthreadd\nState:\tS (sleeping)\nPid:\t2\nPPid:\t0\n");
    ck_assert(initial(why));
    ck_assert_ptr_nonnull(strstr(why, "kthreadd"));
    cleanup();
}
END_TEST

START_TEST(nested_machine_proc)
{
    char why[256];
    fresh();
    /* the machine's /proc, seen from a nested namespace: NSpid says it */
    put("self/status", "Name:\tvigild\nNSpid:\t4242\t17\n");
    put("2/status", "Name:\tkthreadd\nPPid:\t0\n");
    ck_assert(!initial(why));
    ck_assert_ptr_nonnull(strstr(why, "2 PIDs"));
    cleanup();
}
END_TEST

START_TEST(nested_own_proc)
{
    char why[256];
    fresh();
    /* the rig: unshare --pid --mount-proc; PID 2 is the host's own */
    put("self/status", "Name:\tvigild\nNSpid:\t17\n");
    put("2/status", "Name:\tcorosync\nPPid:\t1\n");
    ck_assert(!initial(why));
    fresh();
    put("self/status", "Name:\tvigild\nNSpid:\t17\n");
    ck_assert(!initial(why)); /* no PID 2 at all */
    ck_assert_ptr_nonnull(strstr(why, "no PID 2"));
    cleanup();
}
END_TEST

START_TEST(doubt_is_initial)
{
    char why[256];
    fresh();
    ck_assert(initial(why)); /* no /proc/self/status */
    ck_assert_ptr_nonnull(strstr(why, "in doubt"));
    /* a process calling itself kthreadd at PID 2 with PPid 0 (entered from
     * outside): taken as initial, the safe side */
    put("self/status", "Name:\tvigild\nNSpid:\t3\n");
    put("2/status", "Name:\tkthreadd\nPPid:\t0\n");
    ck_assert(initial(why));
    cleanup();
}
END_TEST

START_TEST(this_process)
{
    /* the real /proc: whatever it says, it says it with a reason, and a
     * kthreadd at PID 2 with PPid 0 means initial */
    char why[256] = "";
    bool init = pidns_initial("/proc", why, sizeof why);
    ck_assert(why[0]);
    FILE *f = fopen("/proc/2/status", "r");
    bool kthreadd = false;
    if (f) {
        char line[256], name[64] = "";
        int ppid = -1;
        while (fgets(line, sizeof line, f)) {
            sscanf(line, "Name:\t%63s", name);
            sscanf(line, "PPid:\t%d", &ppid);
        }
        fclose(f);
        kthreadd = !strcmp(name, "kthreadd") && ppid == 0;
    }
    if (kthreadd)
        ck_assert(init);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("pidns");
    TCase *t = tcase_create("rule");
    tcase_add_test(t, machine);
    tcase_add_test(t, nested_machine_proc);
    tcase_add_test(t, nested_own_proc);
    tcase_add_test(t, doubt_is_initial);
    tcase_add_test(t, this_process);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
