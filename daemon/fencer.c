/* Fencing in vigild.  The master's HA_ACT_FENCE runs the host's fence
 * topology from the pool database (fencing/libfence.a: levels in order,
 * every device of a level verified off) in a worker thread; the outcome
 * comes back to the main loop through a pipe and becomes HA_EV_FENCE_DONE.
 * Before it reports a fence confirmed, it asks the devices once more: some
 * level must have every device reporting the host off (a BMC "off" is
 * re-checked before the core may recover the host's VMs).
 * `vigil fence-device test HOST` asks each of HOST's devices for the power
 * status, the same way.  Every libfence call is bounded in time, and the
 * main loop never waits for one. */
#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "../fencing/fence.h"
#include "vigild.h"

struct fence_job {
    bool test;                 /* status of every device, for a request */
    int host;
    uint64_t rq;               /* test: the request to answer */
    int disk_level;            /* test: the topology's disk level (1..), or 0 */
    struct fence_topology topo;
    int rc;
    char why[2048];
};

/* created once for the life of the process: a worker still running when
 * this host leaves its pool must never write into a reused descriptor */
static int pipefd[2] = {-1, -1};

static void to_lib(const struct ha_fence_topo *t, const char *host, struct fence_topology *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->host, sizeof out->host, "%s", host);
    /* the disk level (the poison pill) is the core's own next step after
     * these (ha/fence.c): the worker runs the levels that power a host off */
    for (int tl = 0; tl < t->nlevels && out->nlevels < FENCE_MAX_LEVELS; tl++) {
        if (t->level[tl].ndevs > 0 && t->level[tl].dev[0].type == HA_FENCE_DISK)
            continue;
        int l = out->nlevels++;
        out->levels[l].ndevices = t->level[tl].ndevs;
        for (int i = 0; i < t->level[tl].ndevs && i < FENCE_MAX_DEVICES; i++) {
            const struct ha_fence_dev *s = &t->level[tl].dev[i];
            struct fence_device *d = &out->levels[l].devices[i];
            snprintf(d->type, sizeof d->type, "%s", ha_fence_type_name(s->type));
            snprintf(d->address, sizeof d->address, "%s", s->addr);
            d->port = s->port;
            snprintf(d->user, sizeof d->user, "%s", s->user);
            memcpy(d->password, s->password, sizeof d->password < sizeof s->password ? sizeof d->password
                                                                                      : sizeof s->password);
            d->password[sizeof d->password - 1] = 0;
            d->cipher = s->cipher;
            snprintf(d->agent, sizeof d->agent, "%s", s->agent);
            d->noptions = s->nopts < FENCE_MAX_OPTIONS ? s->nopts : FENCE_MAX_OPTIONS;
            for (int k = 0; k < d->noptions; k++)
                snprintf(d->options[k], sizeof d->options[k], "%s", s->opt[k]);
            d->timeout_ms = s->timeout_ms;
            d->retries = s->retries;
        }
    }
}

/* Before the core may start a fenced host's VMs elsewhere, the power
 * state is asked once more: some level must have every device reporting
 * "off" now.  0, or -EIO with what each level said. */
static int recheck(const struct fence_topology *t, char *why, size_t whylen)
{
    size_t off = strlen(why);
    for (int l = 0; l < t->nlevels; l++) {
        bool all_off = t->levels[l].ndevices > 0;
        for (int i = 0; i < t->levels[l].ndevices && all_off; i++) {
            enum fence_power p = FENCE_POWER_UNKNOWN;
            char w[256];
            const struct fence_device *d = &t->levels[l].devices[i];
            if (strcmp(d->type, "ipmi") && strcmp(d->type, "agent"))
                all_off = false; /* no status to ask for */
            else if (fence_device_run(d, FENCE_STATUS, 0, &p, w, sizeof w) < 0 || p != FENCE_POWER_OFF)
                all_off = false;
        }
        if (all_off) {
            snprintf(why + off, whylen - off, "; re-checked: level %d reports it off", l + 1);
            return 0;
        }
    }
    snprintf(why + off, whylen - off, "; but on the re-check no level reports it off");
    return -EIO;
}

static void *worker(void *arg)
{
    struct fence_job *j = arg;
    if (!j->test) {
        j->rc = fence_topology_off(&j->topo, j->why, sizeof j->why);
        if (j->rc == 0)
            j->rc = recheck(&j->topo, j->why, sizeof j->why);
    } else {
        size_t off = 0;
        j->rc = 0;
        for (int l = 0; l < j->topo.nlevels; l++)
            for (int i = 0; i < j->topo.levels[l].ndevices; i++) {
                const struct fence_device *d = &j->topo.levels[l].devices[i];
                enum fence_power p = FENCE_POWER_UNKNOWN;
                char why[512] = "", desc[256];
                int rc = fence_device_run(d, FENCE_STATUS, 0, &p, why, sizeof why);
                fence_device_describe(d, desc, sizeof desc);
                if (rc < 0)
                    j->rc = rc;
                int n = snprintf(j->why + off, sizeof j->why - off, "level %d device %d (%s): %s%s%s\n", l + 1,
                                 i + 1, desc, rc < 0 ? "FAILED: " : "power ", rc < 0 ? why : fence_power_name(p),
                                 "");
                if (n > 0 && (size_t)n < sizeof j->why - off)
                    off += (size_t)n;
            }
        if (j->disk_level)
            snprintf(j->why + off, sizeof j->why - off,
                     "level %d device 1 (disk): the poison pill has no power status; its mailbox and the "
                     "host's slot are in 'vigil disk list'\n",
                     j->disk_level);
    }
    explicit_bzero(&j->topo, sizeof j->topo); /* the passwords */
    if (write(pipefd[1], &j, sizeof j) != (ssize_t)sizeof j)
        free(j); /* cannot happen with a pipe this empty; never block the worker */
    return NULL;
}

static int32_t done(int32_t fd, int32_t revents, void *data)
{
    (void)revents, (void)data;
    struct fence_job *j;
    while (read(fd, &j, sizeof j) == (ssize_t)sizeof j) {
        if (j->test) {
            struct request *rq = request_find(j->rq);
            if (rq)
                request_finish_text(rq, j->rc < 0 ? 1 : 0, j->why);
        } else {
            pool_fence_done(j->host, j->rc == 0, j->why);
        }
        free(j);
    }
    return 0;
}

int fencer_init(qb_loop_t *loop)
{
    if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    return qb_loop_poll_add(loop, QB_LOOP_MED, pipefd[0], POLLIN, NULL, done);
}

static int launch(struct fence_job *j)
{
    pthread_t t;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &a, worker, j);
    pthread_attr_destroy(&a);
    return -rc;
}

int fencer_fence(int host, char *why, size_t whylen)
{
    const struct ha_fence_topo *t = host >= 0 && host < D.db.nhosts ? D.db.fence[host] : NULL;
    if (!ha_fence_topo_has_devices(t)) {
        snprintf(why, whylen, "%s has no fence device that powers it off (vigil fence-device set %s ...)",
                 host >= 0 && host < D.db.nhosts ? D.db.host[host].name : "?",
                 host >= 0 && host < D.db.nhosts ? D.db.host[host].name : "?");
        return -ENODEV;
    }
    struct fence_job *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    j->host = host;
    to_lib(t, D.db.host[host].name, &j->topo);
    int rc = launch(j);
    if (rc < 0) {
        explicit_bzero(&j->topo, sizeof j->topo);
        free(j);
        snprintf(why, whylen, "cannot start a fencing thread: %s", strerror(-rc));
    }
    return rc;
}

void fencer_test(struct request *rq, int host)
{
    const struct ha_fence_topo *t = D.db.fence[host];
    if (!t || t->nlevels < 1)
        return request_finish(rq, 1, "%s has no fence device: set one with 'vigil fence-device set %s ...'\n",
                              D.db.host[host].name, D.db.host[host].name);
    if (!ha_fence_topo_has_devices(t))
        return request_finish(rq, 0,
                              "level 1 device 1 (disk): the poison pill has no power status; its mailbox and "
                              "the host's slot are in 'vigil disk list'\n");
    struct fence_job *j = calloc(1, sizeof *j);
    if (!j)
        return request_finish(rq, 1, "vigild is out of memory\n");
    j->test = true;
    j->host = host;
    if (t->level[t->nlevels - 1].dev[0].type == HA_FENCE_DISK)
        j->disk_level = t->nlevels;
    j->rq = rq->id;
    rq->deadline = now_ms() + 120000; /* a few devices, each bounded */
    to_lib(t, D.db.host[host].name, &j->topo);
    int rc = launch(j);
    if (rc < 0) {
        explicit_bzero(&j->topo, sizeof j->topo);
        free(j);
        request_finish(rq, 1, "cannot start a thread: %s\n", strerror(-rc));
    }
}
