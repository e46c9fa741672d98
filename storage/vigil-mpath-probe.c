/* vigil-mpath-probe: ask multipathd (through storage/libmpath.a) about the
 * multipath map behind a device, the way vigild's disk thread will.  For
 * tests (tests/rig/test-mpath) and for an operator checking a LUN by hand. */
#include "storage/mpath.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --threads T: T threads each call mpath_check() CHECKS_PER_THREAD times at
 * once; every answer must equal the first (the thread-safety test). */
#define CHECKS_PER_THREAD 20
#define MAX_THREADS 32

struct worker {
    pthread_t tid;
    const char *dev;
    unsigned timeout;
    const struct mpath_summary *want;
    int rc_want, mismatches;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    struct mpath_summary s;

    for (int i = 0; i < CHECKS_PER_THREAD; i++) {
        int rc = mpath_check(w->dev, w->timeout, &s);

        if (rc != w->rc_want || memcmp(&s, w->want, sizeof s) != 0)
            w->mismatches++;
    }
    return NULL;
}

static int run_threads(const char *dev, unsigned timeout, unsigned nthreads, const struct mpath_summary *want,
                       int rc_want)
{
    struct worker w[MAX_THREADS];
    int mismatches = 0;
    unsigned started = 0;

    for (unsigned t = 0; t < nthreads; t++) {
        w[t] = (struct worker){ .dev = dev, .timeout = timeout, .want = want, .rc_want = rc_want };
        if (pthread_create(&w[t].tid, NULL, worker_run, &w[t]) != 0) {
            fprintf(stderr, "vigil-mpath-probe: cannot start thread %u\n", t);
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++) {
        pthread_join(w[t].tid, NULL);
        mismatches += w[t].mismatches;
    }
    if (started < nthreads || mismatches) {
        fprintf(stderr, "vigil-mpath-probe: %d of %u concurrent checks in %u threads differed from the first\n",
                mismatches, started * CHECKS_PER_THREAD, started);
        return -1;
    }
    fprintf(stderr, "vigil-mpath-probe: %u concurrent checks in %u threads all gave the same answer\n",
            started * CHECKS_PER_THREAD, started);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigil-mpath-probe DEV [--json] [--timeout MS] [--threads T]\n"
            "  DEV: /dev/mapper/NAME, /dev/dm-N, another path to a block device, a WWID or a map name\n"
            "  Asks multipathd (libdmmp, \"show maps json\") for the paths of DEV's multipath map and prints\n"
            "  the verdict: not-multipath, all-up, degraded, all-failed or no-daemon.\n"
            "  --timeout MS: bound on the exchange with multipathd (default %u)\n"
            "  --threads T: then check again from T threads at once (%d checks each, T <= %d); all answers\n"
            "               must equal the first (a thread-safety test)\n"
            "exit: 0 not-multipath or all-up, 1 degraded, 2 all-failed, 3 no-daemon, 4 error (no such map, bad argument)\n",
            MPATH_DEFAULT_TIMEOUT_MS, CHECKS_PER_THREAD, MAX_THREADS);
}

int main(int argc, char **argv)
{
    const char *dev = NULL;
    unsigned long timeout = 0, threads = 0;
    int json = 0, rc;
    struct mpath_summary s;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;

            errno = 0;
            timeout = strtoul(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || timeout == 0 || timeout > 600000) {
                fprintf(stderr, "vigil-mpath-probe: --timeout wants milliseconds from 1 to 600000, not '%s'\n",
                        argv[i]);
                return 4;
            }
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            char *end;

            errno = 0;
            threads = strtoul(argv[++i], &end, 10);
            if (errno || *end || end == argv[i] || threads == 0 || threads > MAX_THREADS) {
                fprintf(stderr, "vigil-mpath-probe: --threads wants 1 to %d, not '%s'\n", MAX_THREADS, argv[i]);
                return 4;
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "vigil-mpath-probe: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 4;
        } else if (!dev) {
            dev = argv[i];
        } else {
            fprintf(stderr, "vigil-mpath-probe: one device only ('%s' and '%s')\n", dev, argv[i]);
            return 4;
        }
    }
    if (!dev) {
        usage(stderr);
        return 4;
    }
    rc = mpath_check(dev, (unsigned)timeout, &s);
    if (threads && run_threads(dev, (unsigned)timeout, (unsigned)threads, &s, rc) != 0)
        return 4;
    if (rc < 0) {
        if (json)
            printf("{\"error\":\"%s\",\"errno\":%d}\n", strerror(-rc), -rc);
        fprintf(stderr, "vigil-mpath-probe: %s\n", s.desc);
        return 4;
    }
    if (json) {
        char buf[16384];
        int n = mpath_summary_json(&s, buf, sizeof buf);

        if (n < 0 || (size_t)n >= sizeof buf) {
            fprintf(stderr, "vigil-mpath-probe: summary too large for JSON output\n");
            return 4;
        }
        printf("%s\n", buf);
    } else {
        printf("%s: %s\n", mpath_verdict_str(s.verdict), s.desc);
        for (unsigned g = 0; g < s.ngroups; g++) {
            printf("  group %u (%s, priority %u): %u of %u paths up\n", s.groups[g].id,
                   mpath_group_state_str(s.groups[g].state), s.groups[g].priority, s.groups[g].paths_up,
                   s.groups[g].paths_total);
            for (unsigned i = 0; i < s.groups[g].npaths; i++)
                printf("    %s %s\n", s.groups[g].paths[i].dev, mpath_path_state_str(s.groups[g].paths[i].state));
        }
    }
    switch (s.verdict) {
    case MPATH_NOT_MULTIPATH:
    case MPATH_ALL_UP: return 0;
    case MPATH_DEGRADED: return 1;
    case MPATH_ALL_FAILED: return 2;
    case MPATH_NO_DAEMON: return 3;
    }
    return 4;
}
