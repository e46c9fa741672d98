/* vigil-sim FILE...: runs scenario files through the HA core in virtual time. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vigil-sim [OPTIONS] FILE...\n"
            "Runs vigil scenario files in virtual time through the same HA core vigild uses,\n"
            "prints the timeline, and checks each file's expectations and the safety invariants:\n"
            "  no VM on two hosts; no VM recovered before its host's fence is confirmed;\n"
            "  no host declared dead unless corosync and the disk agree; at most one master;\n"
            "  every ha=restart VM with room runs within recovery_bound of its host's failure.\n"
            "\n"
            "Options:\n"
            "  --json               timeline as JSON lines\n"
            "  -q, --quiet          no timeline; print only failures and a summary\n"
            "  --seed N             seed for --random-faults (default 1)\n"
            "  --seed A..B, --seeds A..B\n"
            "                       run every seed from A to B\n"
            "  --random-faults M    add M random faults to each scenario and check the invariants\n"
            "                       (the file's own expectations are not checked then)\n"
            "  --bench              print run statistics (virtual seconds per real second)\n"
            "  --plan               at the end, print the master's failure-tolerance plan and\n"
            "                       the memory each host keeps in reserve for it\n"
            "  -h, --help           this help\n"
            "\n"
            "Exit status: 0 all held, 1 an expectation or invariant failed, 2 bad scenario file or usage.\n"
            "Scenario format: see docs/scenarios.md.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct sim_opts o = {.seed = 1};
    unsigned seed_from = 0, seed_to = 0;
    bool seeds = false, bench = false;
    static const struct option lo[] = {
        {"json", no_argument, 0, 'j'},          {"quiet", no_argument, 0, 'q'},
        {"seed", required_argument, 0, 's'},    {"seeds", required_argument, 0, 'S'},
        {"random-faults", required_argument, 0, 'r'}, {"bench", no_argument, 0, 'b'},
        {"plan", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "qh", lo, NULL)) != -1) {
        long n;
        switch (ch) {
        case 'j':
            o.json = true;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 's':
            if (!strstr(optarg, "..")) {
                if (ha_parse_int(optarg, 0, 4000000000L, &n) < 0) {
                    fprintf(stderr, "vigil-sim: --seed takes a whole number or A..B, not '%s'\n", optarg);
                    return 2;
                }
                o.seed = (unsigned)n;
                break;
            }
            /* --seed A..B is --seeds A..B */
            __attribute__((fallthrough));
        case 'S': {
            char a[32], b[32];
            long x, y;
            const char *dots = strstr(optarg, "..");
            if (!dots || (size_t)(dots - optarg) >= sizeof a || strlen(dots + 2) >= sizeof b) {
                fprintf(stderr, "vigil-sim: --seeds takes A..B, not '%s'\n", optarg);
                return 2;
            }
            snprintf(a, sizeof a, "%.*s", (int)(dots - optarg), optarg);
            snprintf(b, sizeof b, "%s", dots + 2);
            if (ha_parse_int(a, 0, 4000000000L, &x) < 0 || ha_parse_int(b, 0, 4000000000L, &y) < 0 || y < x) {
                fprintf(stderr, "vigil-sim: --seeds takes A..B with A <= B, not '%s'\n", optarg);
                return 2;
            }
            seed_from = (unsigned)x;
            seed_to = (unsigned)y;
            seeds = true;
            break;
        }
        case 'r':
            if (ha_parse_int(optarg, 0, 10000, &n) < 0) {
                fprintf(stderr, "vigil-sim: --random-faults takes 0..10000, not '%s'\n", optarg);
                return 2;
            }
            o.random_faults = (int)n;
            break;
        case 'b':
            bench = true;
            break;
        case 'p':
            o.plan = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "vigil-sim: no scenario file given (see --help)\n");
        return 2;
    }
    if (!seeds) {
        seed_from = seed_to = o.seed;
    } else if (o.random_faults <= 0) {
        fprintf(stderr, "vigil-sim: --seeds needs --random-faults\n");
        return 2;
    }

    /* Load every file first: a bad file means nothing runs. */
    int nf = argc - optind;
    struct scenario *sc = calloc((size_t)nf, sizeof *sc);
    if (!sc)
        return 2;
    for (int i = 0; i < nf; i++) {
        char err[1024];
        if (scenario_load(argv[optind + i], &sc[i], err, sizeof err) < 0) {
            fprintf(stderr, "vigil-sim: %s\n", err);
            for (int k = 0; k < i; k++)
                scenario_free(&sc[k]);
            free(sc);
            return 2;
        }
    }

    int failed = 0, runs = 0;
    double vsec = 0, t0 = now_s();
    long steps = 0;
    for (int i = 0; i < nf; i++) {
        for (unsigned sd = seed_from;; sd++) {
            o.seed = sd;
            struct sim_result r;
            int rc = sim_run(&sc[i], &o, stdout, &r);
            runs++;
            vsec += (double)r.virtual_ms / 1000.0;
            steps += r.steps;
            if (rc) {
                failed++;
                if (o.random_faults <= 0 || !o.quiet)
                    fprintf(o.json ? stderr : stdout, "%s: FAILED (%d expectation(s), %d invariant violation(s))\n", sc[i].file,
                            r.failed_expect, r.violations);
            } else if (!o.json && (!o.quiet || nf == 1) && o.random_faults <= 0)
                fprintf(stdout, "%s: ok (%d expectations, invariants held)\n", sc[i].file, sc[i].nex);
            if (sd == seed_to)
                break;
        }
    }
    double dt = now_s() - t0;
    if (o.random_faults > 0 && !o.json)
        fprintf(stdout, "random faults: %d run(s), %d failed (seeds %u..%u, %d faults each)\n", runs, failed,
                seed_from, seed_to, o.random_faults);
    if (bench)
        fprintf(stdout, "stats: runs=%d virtual_s=%.1f real_s=%.4f steps=%ld\n", runs, vsec, dt, steps);
    for (int i = 0; i < nf; i++)
        scenario_free(&sc[i]);
    free(sc);
    return failed ? 1 : 0;
}
