/* vigil-fence: run fence devices by hand (tests, benchmarks, an operator's
 * debugging).  Not the product's CLI: `vigil fence-device ...` is vigild's.
 *
 *   vigil-fence [-v] status|on|off|cycle DEVICE
 *   vigil-fence [-v] [--requests N] fence HOST --level DEVICE [DEVICE...] [--level ...]
 *
 * DEVICE is type=ipmi,address=A,user=U,password_file=F[,cipher=3,port=623,
 * timeout_ms=5000,retries=0] or type=agent,agent=fence_ipmilan,... (see
 * fencing/fence.h).  Prints "ok: REASON" or "error: REASON" and the time it
 * took; exit 0 when it worked, 1 when not, 2 on bad usage. */
#include "fencing/fence.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void log_line(void *arg, const char *line)
{
    (void)arg;
    fprintf(stderr, "vigil-fence: %s\n", line);
}

static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;
static int device_runs;
static int counting_runner(const struct fence_device *d, enum fence_action a, int timeout_ms,
                           enum fence_power *st, char *why, size_t whylen)
{
    pthread_mutex_lock(&count_mu);
    device_runs++;
    pthread_mutex_unlock(&count_mu);
    return fence_device_run(d, a, timeout_ms, st, why, whylen);
}

static struct fence_topology topo;
struct req {
    pthread_t th;
    int rc;
    char why[2048];
};
static void *request(void *arg)
{
    struct req *r = arg;
    r->rc = fence_topology_off(&topo, r->why, sizeof r->why);
    return NULL;
}

static int usage(void)
{
    fprintf(stderr, "usage: vigil-fence [-v] status|on|off|cycle DEVICE\n"
                    "       vigil-fence [-v] [--requests N] fence HOST --level DEVICE [DEVICE...] [--level ...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int i = 1, requests = 1, rc, k;
    char err[256], why[2048];
    long t0;

    if (i < argc && !strcmp(argv[i], "-v")) {
        fence_set_log(log_line, NULL);
        i++;
    }
    if (i + 1 < argc && !strcmp(argv[i], "--requests")) {
        requests = atoi(argv[i + 1]);
        if (requests < 1 || requests > 64)
            return usage();
        i += 2;
    }
    if (i >= argc)
        return usage();
    if (!strcmp(argv[i], "fence")) {
        struct req *reqs;
        if (++i >= argc)
            return usage();
        snprintf(topo.host, sizeof topo.host, "%s", argv[i++]);
        for (; i < argc; i++) {
            if (!strcmp(argv[i], "--level")) {
                if (topo.nlevels == FENCE_MAX_LEVELS) {
                    fprintf(stderr, "vigil-fence: at most %d levels\n", FENCE_MAX_LEVELS);
                    return 2;
                }
                topo.nlevels++;
                continue;
            }
            struct fence_level *lv = &topo.levels[topo.nlevels ? topo.nlevels - 1 : 0];
            if (!topo.nlevels || lv->ndevices == FENCE_MAX_DEVICES)
                return usage();
            if (fence_device_parse(argv[i], &lv->devices[lv->ndevices], err, sizeof err)) {
                fprintf(stderr, "vigil-fence: device %d of level %d: %s\n", lv->ndevices + 1, topo.nlevels, err);
                return 2;
            }
            lv->ndevices++;
        }
        if (!topo.nlevels)
            return usage();
        fence_runner = counting_runner;
        reqs = calloc((size_t)requests, sizeof *reqs);
        if (!reqs)
            return 1;
        t0 = now_ms();
        for (k = 0; k < requests; k++)
            pthread_create(&reqs[k].th, NULL, request, &reqs[k]);
        rc = 0;
        for (k = 0; k < requests; k++) {
            pthread_join(reqs[k].th, NULL);
            printf("%s: %s\n", reqs[k].rc ? "error" : "ok", reqs[k].why);
            if (reqs[k].rc)
                rc = 1;
        }
        printf("elapsed_ms %ld device_runs %d\n", now_ms() - t0, device_runs);
        free(reqs);
        return rc;
    }
    {
        static const char *const names[] = { "status", "on", "off", "cycle" };
        enum fence_action a;
        enum fence_power st;
        struct fence_device d;
        for (a = FENCE_STATUS; a <= FENCE_CYCLE; a++) {
            if (!strcmp(argv[i], names[a]))
                break;
        }
        if (a > FENCE_CYCLE || i + 2 != argc)
            return usage();
        if (fence_device_parse(argv[i + 1], &d, err, sizeof err)) {
            fprintf(stderr, "vigil-fence: %s\n", err);
            return 2;
        }
        t0 = now_ms();
        rc = fence_device_run(&d, a, 0, &st, why, sizeof why);
        printf("%s: %s\npower %s elapsed_ms %ld\n", rc ? "error" : "ok", why, fence_power_name(st), now_ms() - t0);
        return rc ? 1 : 0;
    }
}
