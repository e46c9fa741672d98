/* agents/vagent.c: the VM agent over libvirt (see vagent.h).
 *
 * Threads, and why each exists:
 *  - libvirt's default event loop (one per process, started once, never
 *    stopped): keepalive, lifecycle events and close callbacks need it.
 *  - the supervisor (one per agent): owns deadlines and the reconnect
 *    schedule.  It never calls libvirt, so a hung libvirtd cannot keep it
 *    from failing a job at its deadline.
 *  - the link thread (at most one per agent at a time, detached): tears a
 *    lost connection down, opens the next one and registers its callbacks.
 *    An attempt that hangs is reported at connect_timeout_ms and no second
 *    one starts until it returns, so a hung libvirtd costs one thread.
 *  - workers (opts.workers): run jobs, one job per domain at a time.
 *  - short-lived detached helpers: peer probes before a START (in parallel,
 *    each bounded), the migration watcher (progress, abort at the deadline),
 *    and the closer of vagent_free.
 * Every thread holds a reference on the agent; the last one frees it.  So
 * vagent_free only waits a bounded time, and a thread still stuck inside
 * libvirt finds the memory it touches when it comes back. */
#define _GNU_SOURCE
#include "agents/vagent.h"
#include "agents/vagent_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "ha/bytes.h"
#include "ha/ha.h"

#define MAX_JOBS 1024        /* queued + running; submit says -EBUSY beyond */
#define MAX_QUEUED_EVENTS 4096 /* undrained lifecycle events beyond are counted, not kept */
#define MAX_PROBE_THREADS 128  /* peer probes still hanging, over all agents */
#define FREE_WAIT_MS 2000      /* vagent_free waits this long for its threads at most */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define POLL_MS 200            /* STOP polls the state this often */
#define MIG_POLL_MS 500        /* the migration watcher asks for job stats this often */

/* ------------------------------------------------------------------ names */

const char *vagent_state_name(enum vagent_state s)
{
    switch (s) {
    case VAGENT_ABSENT: return "absent";
    case VAGENT_RUNNING: return "running";
    case VAGENT_SHUTOFF: return "shutoff";
    case VAGENT_CRASHED: return "crashed";
    }
    return "invalid";
}

const char *vagent_ev_name(enum vagent_ev e)
{
    switch (e) {
    case VAGENT_EV_STARTED: return "started";
    case VAGENT_EV_STOPPED: return "stopped";
    case VAGENT_EV_CRASHED: return "crashed";
    case VAGENT_EV_MIGRATED_IN: return "migrated-in";
    case VAGENT_EV_MIGRATED_OUT: return "migrated-out";
    case VAGENT_EV_UNDEFINED: return "undefined";
    case VAGENT_EV_OTHER: return "other";
    }
    return "invalid";
}

const char *vagent_op_name(enum vagent_op o)
{
    switch (o) {
    case VAGENT_OP_START: return "start";
    case VAGENT_OP_STOP: return "stop";
    case VAGENT_OP_DESTROY: return "destroy";
    case VAGENT_OP_MIGRATE: return "migrate";
    case VAGENT_OP_LIST: return "list";
    case VAGENT_OP_QUERY: return "query";
    case VAGENT_OP_DUMPXML: return "dumpxml";
    }
    return "invalid";
}

/* libvirt's lifecycle event and detail -> ours (libvirt-domain.h,
 * virDomainEventType and its detail enums).  An incoming migration is
 * "started (migrated)" when the destination's QEMU is ready to receive,
 * paused, before the source has even stopped (seen on the rig: 25 ms before
 * the source's "suspended"); it runs here only at "resumed (migrated)".
 * Taking the first for the arrival told vigild's core the migration was
 * over while it was not, and evacuation ran every migration at once
 * whatever evacuate_concurrency said (docs/vm-agent.md "Events"). */
enum vagent_ev vagent_map_event(int event, int detail)
{
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
        return detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED ? VAGENT_EV_OTHER : VAGENT_EV_STARTED;
    case VIR_DOMAIN_EVENT_RESUMED:
        return detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED ? VAGENT_EV_MIGRATED_IN : VAGENT_EV_OTHER;
    case VIR_DOMAIN_EVENT_STOPPED:
        switch (detail) {
        case VIR_DOMAIN_EVENT_STOPPED_MIGRATED: return VAGENT_EV_MIGRATED_OUT;
        case VIR_DOMAIN_EVENT_STOPPED_CRASHED:
        case VIR_DOMAIN_EVENT_STOPPED_FAILED: return VAGENT_EV_CRASHED;
        default: return VAGENT_EV_STOPPED; /* shutdown, destroyed, saved, from snapshot */
        }
    case VIR_DOMAIN_EVENT_CRASHED: return VAGENT_EV_CRASHED; /* guest panic */
    case VIR_DOMAIN_EVENT_UNDEFINED: return VAGENT_EV_UNDEFINED;
    default: return VAGENT_EV_OTHER; /* defined, suspended, resumed, shutdown begun, pmsuspended */
    }
}

static enum vagent_state state_of(int st, int reason, int active)
{
    switch (st) {
    case VIR_DOMAIN_CRASHED: return VAGENT_CRASHED;
    case VIR_DOMAIN_SHUTOFF: return reason == VIR_DOMAIN_SHUTOFF_CRASHED ? VAGENT_CRASHED : VAGENT_SHUTOFF;
    case VIR_DOMAIN_NOSTATE: return active > 0 ? VAGENT_RUNNING : VAGENT_SHUTOFF;
    default: return VAGENT_RUNNING; /* running, blocked, paused, being shut down, pm-suspended */
    }
}

/* ------------------------------------------------------------------ clock, errors */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void abs_time(struct timespec *ts, uint64_t at_ms)
{
    ts->tv_sec = (time_t)(at_ms / 1000);
    ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

static void cond_init_mono(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

/* append to a why buffer, "; " between notes, never overflowing */
static void note(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(char *why, size_t len, const char *fmt, ...)
{
    size_t used = strnlen(why, len);
    va_list ap;
    if (used + 3 >= len)
        return;
    if (used) {
        memcpy(why + used, "; ", 3);
        used += 2;
    }
    va_start(ap, fmt);
    vsnprintf(why + used, len - used, fmt, ap);
    va_end(ap);
}

/* libvirt's last error in this thread -> -errno, and "what: message" noted in why */
static int lv_fail(char *why, size_t len, const char *what)
{
    virErrorPtr e = virGetLastError();
    int code = e ? e->code : VIR_ERR_INTERNAL_ERROR;
    int rc;
    switch (code) {
    case VIR_ERR_NO_DOMAIN: rc = -ENOENT; break;
    case VIR_ERR_XML_ERROR:
    case VIR_ERR_XML_DETAIL:
    case VIR_ERR_CONFIG_UNSUPPORTED:
    case VIR_ERR_INVALID_ARG:
    case VIR_ERR_OPERATION_INVALID: rc = -EINVAL; break;
    case VIR_ERR_OPERATION_TIMEOUT:
    case VIR_ERR_AGENT_UNRESPONSIVE: rc = -ETIMEDOUT; break;
    case VIR_ERR_OPERATION_ABORTED: rc = -ECANCELED; break;
    case VIR_ERR_NO_SUPPORT:
    case VIR_ERR_OPERATION_UNSUPPORTED:
    case VIR_ERR_ARGUMENT_UNSUPPORTED: rc = -EOPNOTSUPP; break;
    case VIR_ERR_NO_CONNECT: rc = -ECONNREFUSED; break;
    case VIR_ERR_RPC:
    case VIR_ERR_INVALID_CONN: rc = -ECONNRESET; break;
    case VIR_ERR_AUTH_FAILED:
    case VIR_ERR_AUTH_CANCELLED:
    case VIR_ERR_OPERATION_DENIED: rc = -EACCES; break;
    case VIR_ERR_DOM_EXIST: rc = -EEXIST; break;
    default: rc = -EIO; break;
    }
    note(why, len, "%s: %s", what, e && e->message ? e->message : "unknown libvirt error");
    virResetLastError();
    return rc;
}

static void quiet(void *opaque, virErrorPtr e)
{
    (void)opaque;
    (void)e; /* every error is returned with the job; libvirt must not print */
}

static void *event_loop(void *arg)
{
    (void)arg;
    for (;;)
        if (virEventRunDefaultImpl() < 0)
            usleep(100000);
    return NULL;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_rc;

static void global_init(void)
{
    pthread_t t;
    if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
        global_rc = -EIO;
        return;
    }
    virSetErrorFunc(NULL, quiet);
    /* libvirt's RPC writes to a socket whose libvirtd may just have died:
     * without this, that kills the whole process (vigild ignores SIGPIPE
     * anyway; a process that handles it itself keeps its handler) */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&t, NULL, event_loop, NULL) != 0) {
        global_rc = -EAGAIN;
        return;
    }
    pthread_detach(t);
}

/* a detached thread; 0 or -errno */
static int spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&t, &at, fn, arg);
    pthread_attr_destroy(&at);
    return -rc;
}

/* ------------------------------------------------------------------ the agent */

/* a connection and the callbacks registered on it (each holding a
 * reference on the agent) */
struct lconn {
    virConnectPtr c;
    int cb_id;    /* lifecycle events: released by libvirt through agent_unref */
    bool closecb; /* close callback: released by teardown (libvirt 9's local
                   * drivers accept one and never call, nor free, it) */
};

struct job {
    struct job *next;
    struct vagent_job j; /* j.xml points to xml */
    char *xml;
    uint64_t deadline;   /* monotonic ms */
    bool running, reaped;
};

struct qitem {
    struct qitem *next;
    struct vagent_result r;
};

struct vagent {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* jobs queued, connection changes, deadlines reaped, threads gone */
    int refs;          /* the caller, threads, registered libvirt callbacks */
    int threads;       /* threads of ours still running (vagent_free waits for them) */
    bool closing;
    struct vagent_opts o;
    char uri[VAGENT_URI_MAX];
    int efd;

    struct qitem *qhead, *qtail;
    int nevents;           /* events in the queue */
    unsigned long dropped; /* events dropped since the last one queued */

    struct job *jobs; /* submit order; queued and running */
    int njobs;

    virConnectPtr conn;    /* NULL while disconnected; workers take references */
    struct lconn cur;      /* conn and what is registered on it */
    struct lconn to_close; /* a lost connection the next link thread tears down */
    virConnectPtr closed_early; /* closed before it was published (on_close) */
    bool link_busy, lost, overdue;
    int reported;          /* last VAGENT_CONN: -1 none yet, 0 down, 1 up */
    uint64_t link_started, next_attempt;
    int backoff;
    int last_rc;
    char last_why[VAGENT_WHY_MAX];
};

static void agent_ref(struct vagent *a)
{
    pthread_mutex_lock(&a->mu);
    a->refs++;
    pthread_mutex_unlock(&a->mu);
}

static void agent_unref(void *opaque)
{
    struct vagent *a = opaque;
    pthread_mutex_lock(&a->mu);
    bool last = --a->refs == 0;
    pthread_mutex_unlock(&a->mu);
    if (!last)
        return;
    for (struct qitem *q = a->qhead, *n; q; q = n) {
        n = q->next;
        vagent_result_free(&q->r);
        free(q);
    }
    for (struct job *j = a->jobs, *n; j; j = n) {
        n = j->next;
        free(j->xml);
        free(j);
    }
    close(a->efd);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* queues a result (mutex held); events beyond MAX_QUEUED_EVENTS are counted
 * and the count is told in the next event that fits */
static void push_locked(struct vagent *a, const struct vagent_result *r)
{
    if (a->closing)
        return;
    if (r->kind == VAGENT_EVENT && a->nevents >= MAX_QUEUED_EVENTS) {
        a->dropped++;
        return;
    }
    struct qitem *q = calloc(1, sizeof *q);
    if (!q) {
        if (r->kind == VAGENT_EVENT)
            a->dropped++;
        return; /* a result lost to ENOMEM: the caller's job times out on its side */
    }
    q->r = *r;
    if (r->kind == VAGENT_EVENT) {
        a->nevents++;
        if (a->dropped) {
            note(q->r.why, sizeof q->r.why, "%lu earlier events dropped (queue full): list again", a->dropped);
            a->dropped = 0;
        }
    }
    if (a->qtail)
        a->qtail->next = q;
    else
        a->qhead = q;
    a->qtail = q;
    uint64_t one = 1;
    if (write(a->efd, &one, sizeof one) < 0) {
        /* the counter cannot overflow at one per result; nothing to do */
    }
}

static void conn_report_locked(struct vagent *a, bool up, const char *why)
{
    if (a->reported == (int)up)
        return;
    a->reported = up;
    struct vagent_result r = {.kind = VAGENT_CONN, .connected = up};
    snprintf(r.why, sizeof r.why, "%s", why);
    push_locked(a, &r);
}

int vagent_fd(const struct vagent *a) { return a->efd; }

bool vagent_connected(const struct vagent *a)
{
    struct vagent *m = (struct vagent *)a; /* the mutex only */
    pthread_mutex_lock(&m->mu);
    bool up = a->conn != NULL;
    pthread_mutex_unlock(&m->mu);
    return up;
}

int vagent_next(struct vagent *a, struct vagent_result *r)
{
    pthread_mutex_lock(&a->mu);
    struct qitem *q = a->qhead;
    if (q) {
        a->qhead = q->next;
        if (!a->qhead)
            a->qtail = NULL;
        if (q->r.kind == VAGENT_EVENT)
            a->nevents--;
    }
    if (!a->qhead) {
        uint64_t n;
        if (read(a->efd, &n, sizeof n) < 0) {
            /* EAGAIN: nothing was pending */
        }
    }
    pthread_mutex_unlock(&a->mu);
    if (!q)
        return 0;
    *r = q->r;
    free(q);
    return 1;
}

void vagent_result_free(struct vagent_result *r)
{
    if (!r)
        return;
    free(r->vms);
    r->vms = NULL;
    r->nvms = 0;
    free(r->xml);
    r->xml = NULL;
}

/* ------------------------------------------------------------------ libvirt callbacks (event loop thread) */

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail, void *opaque)
{
    struct vagent *a = opaque;
    struct vagent_result r = {.kind = VAGENT_EVENT, .ev = vagent_map_event(event, detail), .detail = detail};
    (void)c;
    /* names and UUIDs are held by the handle: no call to libvirtd here */
    snprintf(r.name, sizeof r.name, "%s", virDomainGetName(d) ? virDomainGetName(d) : "");
    memcpy(r.vm.name, r.name, sizeof r.name);
    if (virDomainGetUUIDString(d, r.vm.uuid) < 0)
        r.vm.uuid[0] = 0;
    /* the state the event implies; absent where it implies none (QUERY tells) */
    switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:
    case VIR_DOMAIN_EVENT_SUSPENDED:
    case VIR_DOMAIN_EVENT_RESUMED:
    case VIR_DOMAIN_EVENT_SHUTDOWN:
    case VIR_DOMAIN_EVENT_PMSUSPENDED: r.vm.state = VAGENT_RUNNING; break;
    case VIR_DOMAIN_EVENT_STOPPED: r.vm.state = r.ev == VAGENT_EV_CRASHED ? VAGENT_CRASHED : VAGENT_SHUTOFF; break;
    case VIR_DOMAIN_EVENT_CRASHED: r.vm.state = VAGENT_CRASHED; break;
    default: r.vm.state = VAGENT_ABSENT; break;
    }
    static const char *const events[] = {"defined", "undefined", "started", "suspended", "resumed",
                                         "stopped", "shutdown", "pmsuspended", "crashed"};
    static const char *const started[] = {"booted", "migrated", "restored", "from snapshot", "woken up"};
    static const char *const stopped[] = {"shut down", "destroyed", "crashed", "migrated",
                                          "saved", "failed", "from snapshot"};
    const char *en = event >= 0 && event < 9 ? events[event] : "unknown";
    const char *dn = event == VIR_DOMAIN_EVENT_STARTED && detail >= 0 && detail < 5   ? started[detail]
                     : event == VIR_DOMAIN_EVENT_STOPPED && detail >= 0 && detail < 7 ? stopped[detail]
                                                                                       : NULL;
    if (dn)
        snprintf(r.why, sizeof r.why, "libvirt: %s (%s)", en, dn);
    else
        snprintf(r.why, sizeof r.why, "libvirt: %s (detail %d)", en, detail);
    pthread_mutex_lock(&a->mu);
    push_locked(a, &r);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static void on_close(virConnectPtr c, int reason, void *opaque)
{
    static const char *const reasons[] = {"I/O error", "end of file from libvirtd",
                                          "keepalive timeout (libvirtd does not answer)", "closed by us"};
    struct vagent *a = opaque;
    pthread_mutex_lock(&a->mu);
    if (c == a->conn && !a->lost) {
        a->lost = true;
        snprintf(a->last_why, sizeof a->last_why, "connection to %s lost: %s", a->uri,
                 reason >= 0 && reason < 4 ? reasons[reason] : "unknown reason");
        a->last_rc = -ECONNRESET;
        pthread_cond_broadcast(&a->cv);
    } else if (c != a->conn) {
        a->closed_early = c; /* lost before the link thread published it */
    }
    pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------------ the link thread */

static void teardown(struct vagent *a, struct lconn *l)
{
    if (!l->c)
        return;
    if (l->cb_id >= 0)
        virConnectDomainEventDeregisterAny(l->c, l->cb_id);
    if (l->closecb) {
        virConnectUnregisterCloseCallback(l->c, on_close);
        agent_unref(a); /* after unregistering, the callback runs no more */
    }
    virConnectClose(l->c);
    virResetLastError();
    *l = (struct lconn){.cb_id = -1};
}

struct link {
    struct vagent *a;
    struct lconn old;
};

static void *link_run(void *arg)
{
    struct link *l = arg;
    struct vagent *a = l->a;
    char why[VAGENT_WHY_MAX] = "";
    int rc = 0;

    teardown(a, &l->old);
    free(l);
    virConnectPtr c = virConnectOpen(a->uri);
    struct lconn nc = {.c = c, .cb_id = -1};
    if (!c) {
        rc = lv_fail(why, sizeof why, a->uri);
        if (rc == -EIO || rc == -ECONNRESET)
            rc = -ECONNREFUSED;
    } else {
        if (virConnectSetKeepAlive(c, a->o.keepalive_interval_s, a->o.keepalive_count) < 0)
            virResetLastError(); /* drivers in this process (test://) need none */
        agent_ref(a);
        nc.closecb = virConnectRegisterCloseCallback(c, on_close, a, NULL) == 0;
        if (!nc.closecb) {
            virResetLastError();
            agent_unref(a);
        }
        agent_ref(a);
        nc.cb_id = virConnectDomainEventRegisterAny(c, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                    VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), a, agent_unref);
        if (nc.cb_id < 0) {
            agent_unref(a);
            rc = lv_fail(why, sizeof why, "lifecycle events");
            teardown(a, &nc);
            c = NULL;
        }
    }

    pthread_mutex_lock(&a->mu);
    a->link_busy = false;
    if (a->closing) {
        pthread_mutex_unlock(&a->mu);
        teardown(a, &nc);
        pthread_mutex_lock(&a->mu);
    } else if (c) {
        a->conn = c;
        a->cur = nc;
        a->lost = a->closed_early == c;
        a->closed_early = NULL;
        a->backoff = BACKOFF_MIN_MS;
        a->last_rc = 0;
        snprintf(a->last_why, sizeof a->last_why, "connected to %s", a->uri);
        conn_report_locked(a, true, a->last_why);
        if (a->lost)
            snprintf(a->last_why, sizeof a->last_why, "connection to %s lost at once", a->uri);
    } else {
        a->last_rc = rc;
        snprintf(a->last_why, sizeof a->last_why, "%s", why);
        a->next_attempt = now_ms() + (uint64_t)a->backoff;
        a->backoff = a->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : a->backoff * 2;
        conn_report_locked(a, false, why);
    }
    a->threads--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    agent_unref(a);
    return NULL;
}

/* ------------------------------------------------------------------ the supervisor */

static void reap_locked(struct vagent *a, struct job *j)
{
    struct vagent_result r = {.kind = VAGENT_RESULT, .op = j->j.op, .tag = j->j.tag, .rc = -ETIMEDOUT};
    memcpy(r.name, j->j.name, sizeof r.name);
    memcpy(r.vm.name, j->j.name, sizeof r.vm.name);
    snprintf(r.why, sizeof r.why, "%s%s%s: not done within %d ms", vagent_op_name(j->j.op), j->j.name[0] ? " " : "",
             j->j.name, j->j.timeout_ms);
    if (!a->conn)
        note(r.why, sizeof r.why, "not connected: %s", a->last_why);
    else if (j->j.op == VAGENT_OP_MIGRATE && j->running)
        note(r.why, sizeof r.why, "libvirt may still finish or fail it: ask both hosts where %s runs", j->j.name);
    j->reaped = true;
    push_locked(a, &r);
}

static void unlink_job_locked(struct vagent *a, struct job *j)
{
    for (struct job **p = &a->jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            a->njobs--;
            break;
        }
    free(j->xml);
    free(j);
}

static void *supervise(void *arg)
{
    struct vagent *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->closing) {
        uint64_t now = now_ms(), wake = now + 60000;

        if (a->lost && a->conn) {
            a->to_close = a->cur;
            a->cur = (struct lconn){.cb_id = -1};
            a->conn = NULL;
            a->lost = false;
            a->next_attempt = now;
            conn_report_locked(a, false, a->last_why);
        }
        if (!a->conn && !a->link_busy && now >= a->next_attempt) {
            struct link *l = malloc(sizeof *l);
            if (l) {
                *l = (struct link){.a = a, .old = a->to_close};
                a->refs++;
                a->threads++;
                a->link_busy = true;
                a->overdue = false;
                a->link_started = now;
                if (spawn(link_run, l) == 0) {
                    a->to_close = (struct lconn){.cb_id = -1};
                } else {
                    free(l);
                    a->refs--;
                    a->threads--;
                    a->link_busy = false;
                    a->next_attempt = now + (uint64_t)a->backoff;
                }
            }
        }
        if (a->link_busy && !a->overdue) {
            uint64_t due = a->link_started + (uint64_t)a->o.connect_timeout_ms;
            if (now >= due) {
                a->overdue = true;
                a->last_rc = -ETIMEDOUT;
                snprintf(a->last_why, sizeof a->last_why, "%s: no answer within %d ms", a->uri,
                         a->o.connect_timeout_ms);
                conn_report_locked(a, false, a->last_why); /* jobs waiting for it wait on to their deadline */
            } else if (due < wake)
                wake = due;
        }
        if (!a->conn && !a->link_busy && a->next_attempt < wake)
            wake = a->next_attempt;

        for (struct job *j = a->jobs, *n; j; j = n) {
            n = j->next;
            if (j->reaped)
                continue;
            if (now >= j->deadline) {
                reap_locked(a, j);
                if (!j->running)
                    unlink_job_locked(a, j);
                else
                    pthread_cond_broadcast(&a->cv);
            } else if (j->deadline < wake)
                wake = j->deadline;
        }
        struct timespec ts;
        abs_time(&ts, wake);
        pthread_cond_timedwait(&a->cv, &a->mu, &ts);
    }
    a->threads--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    agent_unref(a);
    return NULL;
}

/* ------------------------------------------------------------------ jobs: helpers */

/* whether the job should go on (not reaped, agent not closing) */
static bool job_live(struct vagent *a, struct job *j)
{
    pthread_mutex_lock(&a->mu);
    bool live = !j->reaped && !a->closing;
    pthread_mutex_unlock(&a->mu);
    return live;
}

/* sleeps up to ms, less when the job is reaped or the agent closes; false then */
static bool job_sleep(struct vagent *a, struct job *j, int ms)
{
    struct timespec ts;
    abs_time(&ts, now_ms() + (uint64_t)ms);
    pthread_mutex_lock(&a->mu);
    while (!j->reaped && !a->closing && pthread_cond_timedwait(&a->cv, &a->mu, &ts) == 0) {
    }
    bool live = !j->reaped && !a->closing;
    pthread_mutex_unlock(&a->mu);
    return live;
}

static int fill_vm(virDomainPtr d, struct vagent_vm *vm, char *why, size_t len)
{
    virDomainInfo info;
    int st = 0, reason = 0;
    memset(vm, 0, sizeof *vm);
    snprintf(vm->name, sizeof vm->name, "%s", virDomainGetName(d) ? virDomainGetName(d) : "");
    if (virDomainGetUUIDString(d, vm->uuid) < 0)
        vm->uuid[0] = 0;
    if (virDomainGetState(d, &st, &reason, 0) < 0)
        return lv_fail(why, len, "state");
    if (virDomainGetInfo(d, &info) < 0)
        return lv_fail(why, len, "info");
    int active = virDomainIsActive(d), persistent = virDomainIsPersistent(d);
    virResetLastError();
    vm->state = state_of(st, reason, active);
    vm->persistent = persistent > 0;
    vm->mem_kib = info.memory;
    vm->vcpus = info.nrVirtCpu;
    vm->cpu_time_ns = info.cpuTime;
    return 0;
}

/* the domain by name: the handle, or NULL with rc -ENOENT (unknown) or another error */
static virDomainPtr lookup(virConnectPtr c, const char *name, int *rc, char *why, size_t len)
{
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d)
        *rc = lv_fail(why, len, name);
    return d;
}

/* the state at the end of START/STOP/DESTROY/MIGRATE, for the result */
static void final_state(virConnectPtr c, const char *name, struct vagent_vm *vm)
{
    char ignore[64] = "";
    int rc;
    virDomainPtr d = virDomainLookupByName(c, name);
    if (!d) {
        virResetLastError();
        memset(vm, 0, sizeof *vm);
        snprintf(vm->name, sizeof vm->name, "%s", name);
        vm->state = VAGENT_ABSENT;
        return;
    }
    rc = fill_vm(d, vm, ignore, sizeof ignore);
    (void)rc;
    virDomainFree(d);
}

/* ------------------------------------------------------------------ START: the double-start check */

enum { PROBE_PENDING, PROBE_NOT_THERE, PROBE_RUNNING, PROBE_UNREACHABLE };

struct probes {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs, pending;
    char name[VAGENT_NAME_MAX];
    int n;
    struct probe {
        char uri[VAGENT_URI_MAX];
        int state;
        char why[160];
    } p[VAGENT_MAX_PEERS];
};

static pthread_mutex_t probe_mu = PTHREAD_MUTEX_INITIALIZER;
static int probe_threads; /* over all agents */

static void probes_unref(struct probes *ps)
{
    pthread_mutex_lock(&ps->mu);
    bool last = --ps->refs == 0;
    pthread_mutex_unlock(&ps->mu);
    if (!last)
        return;
    pthread_cond_destroy(&ps->cv);
    pthread_mutex_destroy(&ps->mu);
    free(ps);
}

struct probe_arg {
    struct probes *ps;
    int i;
};

static void *probe_run(void *arg)
{
    struct probe_arg pa = *(struct probe_arg *)arg;
    struct probes *ps = pa.ps;
    char uri[VAGENT_URI_MAX], why[160] = "";
    int state = PROBE_UNREACHABLE;
    free(arg);

    pthread_mutex_lock(&ps->mu);
    memcpy(uri, ps->p[pa.i].uri, sizeof uri);
    pthread_mutex_unlock(&ps->mu);
    virConnectPtr c = virConnectOpenReadOnly(uri);
    if (!c) {
        lv_fail(why, sizeof why, "unreachable");
    } else {
        virDomainPtr d = virDomainLookupByName(c, ps->name);
        if (d) {
            int act = virDomainIsActive(d);
            if (act < 0)
                lv_fail(why, sizeof why, "cannot tell");
            else
                state = act ? PROBE_RUNNING : PROBE_NOT_THERE;
            virDomainFree(d);
        } else {
            virErrorPtr e = virGetLastError();
            if (e && e->code == VIR_ERR_NO_DOMAIN) {
                state = PROBE_NOT_THERE;
                virResetLastError();
            } else
                lv_fail(why, sizeof why, "cannot tell");
        }
        virConnectClose(c);
        virResetLastError();
    }
    pthread_mutex_lock(&ps->mu);
    ps->p[pa.i].state = state;
    snprintf(ps->p[pa.i].why, sizeof ps->p[pa.i].why, "%s", why);
    ps->pending--;
    pthread_cond_broadcast(&ps->cv);
    pthread_mutex_unlock(&ps->mu);
    probes_unref(ps);
    pthread_mutex_lock(&probe_mu);
    probe_threads--;
    pthread_mutex_unlock(&probe_mu);
    return NULL;
}

/* asks every peer at once, waiting until `until` (monotonic ms) at most:
 * -EEXIST when the domain runs on one, else 0 with unreachable peers noted */
static int check_peers(const struct vagent_job *j, uint64_t until, char *why, size_t len)
{
    struct probes *ps = calloc(1, sizeof *ps);
    if (!ps)
        return errf(why, len, -ENOMEM, "out of memory");
    pthread_mutex_init(&ps->mu, NULL);
    cond_init_mono(&ps->cv);
    ps->refs = 1;
    ps->n = j->npeers;
    memcpy(ps->name, j->name, sizeof ps->name);
    for (int i = 0; i < j->npeers; i++) {
        memcpy(ps->p[i].uri, j->peer_uri[i], sizeof ps->p[i].uri);
        struct probe_arg *pa = malloc(sizeof *pa);
        bool room;
        pthread_mutex_lock(&probe_mu);
        room = probe_threads < MAX_PROBE_THREADS;
        if (room)
            probe_threads++;
        pthread_mutex_unlock(&probe_mu);
        if (!pa || !room) {
            free(pa);
            if (room) {
                pthread_mutex_lock(&probe_mu);
                probe_threads--;
                pthread_mutex_unlock(&probe_mu);
            }
            ps->p[i].state = PROBE_UNREACHABLE;
            snprintf(ps->p[i].why, sizeof ps->p[i].why, "not asked: %s",
                     room ? "out of memory" : "too many earlier probes still hanging");
            continue;
        }
        *pa = (struct probe_arg){.ps = ps, .i = i};
        ps->p[i].state = PROBE_PENDING;
        pthread_mutex_lock(&ps->mu);
        ps->refs++;
        ps->pending++;
        pthread_mutex_unlock(&ps->mu);
        if (spawn(probe_run, pa) != 0) {
            free(pa);
            pthread_mutex_lock(&ps->mu);
            ps->refs--;
            ps->pending--;
            pthread_mutex_unlock(&ps->mu);
            pthread_mutex_lock(&probe_mu);
            probe_threads--;
            pthread_mutex_unlock(&probe_mu);
            ps->p[i].state = PROBE_UNREACHABLE;
            snprintf(ps->p[i].why, sizeof ps->p[i].why, "not asked: cannot start a thread");
        }
    }
    struct timespec ts;
    abs_time(&ts, until);
    pthread_mutex_lock(&ps->mu);
    while (ps->pending > 0 && pthread_cond_timedwait(&ps->cv, &ps->mu, &ts) == 0) {
    }
    int rc = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].state == PROBE_RUNNING && rc == 0) {
            why[0] = 0;
            rc = errf(why, len, -EEXIST, "%s already runs on %s: not started here", j->name, ps->p[i].uri);
        }
    for (int i = 0; i < ps->n && rc == 0; i++) {
        if (ps->p[i].state == PROBE_PENDING)
            note(why, len, "peer %s unreachable: no answer in time", ps->p[i].uri);
        else if (ps->p[i].state == PROBE_UNREACHABLE)
            note(why, len, "peer %s %.72s", ps->p[i].uri, ps->p[i].why);
    }
    pthread_mutex_unlock(&ps->mu);
    probes_unref(ps);
    return rc;
}

/* ------------------------------------------------------------------ the operations */

static int do_start(struct vagent *a, virConnectPtr c, struct job *jb, struct vagent_result *r)
{
    const struct vagent_job *j = &jb->j;
    bool defined_now = false;
    int rc = 0;

    if (j->npeers > 0) {
        /* leave half the job's time to the start itself, at least a second */
        uint64_t now = now_ms(), left = jb->deadline > now ? jb->deadline - now : 0;
        uint64_t wait = left / 2 > (uint64_t)a->o.connect_timeout_ms ? (uint64_t)a->o.connect_timeout_ms : left / 2;
        rc = check_peers(j, now + (wait < 1000 ? 1000 : wait), r->why, sizeof r->why);
        if (rc < 0 || !job_live(a, jb))
            return rc;
    }
    virDomainPtr d = virDomainLookupByName(c, j->name);
    if (!d) {
        virErrorPtr e = virGetLastError();
        if (!e || e->code != VIR_ERR_NO_DOMAIN)
            return lv_fail(r->why, sizeof r->why, j->name);
        virResetLastError();
        if (!j->xml) {
            note(r->why, sizeof r->why, "%s is not defined here and the job has no XML", j->name);
            return -ENOENT;
        }
        if (!(d = virDomainDefineXML(c, j->xml)))
            return lv_fail(r->why, sizeof r->why, "define");
        defined_now = true;
        note(r->why, sizeof r->why, "defined");
    } else if (j->xml && virDomainIsActive(d) == 0) {
        char *before = virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE), uuid[VIR_UUID_STRING_BUFLEN];
        char *xml = virDomainGetUUIDString(d, uuid) == 0 ? vagent_xml_with_uuid(j->xml, uuid) : NULL;
        virDomainPtr nd = virDomainDefineXML(c, xml ? xml : j->xml);
        free(xml);
        if (!nd) {
            rc = lv_fail(r->why, sizeof r->why, "redefine");
        } else {
            char *after = virDomainGetXMLDesc(nd, VIR_DOMAIN_XML_INACTIVE);
            if (!before || !after || strcmp(before, after) != 0)
                note(r->why, sizeof r->why, "definition updated from the XML");
            free(after);
            virDomainFree(d);
            d = nd;
        }
        free(before);
        if (rc < 0) {
            virDomainFree(d);
            return rc;
        }
    }
    int active = virDomainIsActive(d);
    if (active > 0) {
        note(r->why, sizeof r->why, "already running");
    } else if (!job_live(a, jb)) {
        rc = -ETIMEDOUT;
    } else if (virDomainCreate(d) < 0) {
        rc = lv_fail(r->why, sizeof r->why, "start");
        if (defined_now && virDomainUndefine(d) == 0)
            note(r->why, sizeof r->why, "the definition made for it was removed again");
        virResetLastError();
    }
    virDomainFree(d);
    return rc;
}

static int do_stop(struct vagent *a, virConnectPtr c, struct job *jb, struct vagent_result *r, bool hard)
{
    const struct vagent_job *j = &jb->j;
    int rc = 0;
    virDomainPtr d = lookup(c, j->name, &rc, r->why, sizeof r->why);
    if (!d)
        return rc;
    if (virDomainIsActive(d) == 0) {
        note(r->why, sizeof r->why, "already stopped");
        virDomainFree(d);
        return 0;
    }
    if (!hard) {
        /* the destroy must still fit in the job's time: the graceful wait
         * ends a quarter of the time left (at most 2 s) before the deadline */
        uint64_t now = now_ms(), left = jb->deadline > now ? jb->deadline - now : 0;
        uint64_t margin = left / 4 < 2000 ? left / 4 : 2000;
        uint64_t wait = (uint64_t)j->stop_timeout_ms < left - margin ? (uint64_t)j->stop_timeout_ms : left - margin;
        uint64_t give_up = now + wait;
        if (virDomainShutdown(d) < 0) {
            /* no ACPI, no agent, or refused: go straight to destroy, say so */
            lv_fail(r->why, sizeof r->why, "graceful shutdown refused");
            give_up = 0;
        }
        while (now_ms() < give_up) {
            int act = virDomainIsActive(d);
            if (act == 0) {
                note(r->why, sizeof r->why, "shut down");
                virDomainFree(d);
                return 0;
            }
            if (!job_sleep(a, jb, POLL_MS)) {
                virDomainFree(d);
                return -ETIMEDOUT;
            }
        }
        if (give_up)
            note(r->why, sizeof r->why, "no shutdown within %llu ms: destroyed", (unsigned long long)wait);
    }
    if (virDomainDestroy(d) < 0 && virDomainIsActive(d) != 0)
        rc = lv_fail(r->why, sizeof r->why, "destroy");
    else if (hard)
        note(r->why, sizeof r->why, "destroyed");
    virResetLastError();
    virDomainFree(d);
    return rc;
}

static int do_list(virConnectPtr c, struct vagent_result *r)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(c, &doms, 0);
    if (n < 0)
        return lv_fail(r->why, sizeof r->why, "list");
    r->vms = calloc(n > 0 ? (size_t)n : 1, sizeof *r->vms);
    int rc = r->vms ? 0 : -ENOMEM;
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            /* a domain that vanished between the list and this call is left out */
            if (fill_vm(doms[i], &r->vms[r->nvms], r->why, sizeof r->why) == 0)
                r->nvms++;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    if (rc < 0)
        return errf(r->why, sizeof r->why, rc, "out of memory");
    return 0;
}

/* The definition the pool stores for `vigil vm import VM`: only a defined
 * (persistent) domain has one that survives it being stopped, and the
 * inactive form leaves out what only a running guest has (its id, device
 * aliases, the live security labels, the migration cookie's leftovers). */
static int do_dumpxml(virConnectPtr c, const struct vagent_job *j, struct vagent_result *r)
{
    int rc = 0;
    virDomainPtr d = lookup(c, j->name, &rc, r->why, sizeof r->why);
    if (!d)
        return rc;
    rc = fill_vm(d, &r->vm, r->why, sizeof r->why);
    if (rc == 0 && !r->vm.persistent)
        rc = errf(r->why, sizeof r->why, -EINVAL, "%s runs here as a transient domain (it has no definition to "
                  "store): define it first (virsh define)", j->name);
    char *x = rc == 0 ? virDomainGetXMLDesc(d, VIR_DOMAIN_XML_INACTIVE) : NULL;
    if (rc == 0 && !x)
        rc = lv_fail(r->why, sizeof r->why, "XML");
    else if (x && strlen(x) > VAGENT_XML_MAX)
        rc = errf(r->why, sizeof r->why, -EFBIG, "the XML of %s has %zu bytes: vigil stores at most %d", j->name,
                  strlen(x), VAGENT_XML_MAX);
    if (rc == 0)
        r->xml = x;
    else
        free(x);
    virDomainFree(d);
    return rc;
}

/* ------------------------------------------------------------------ MIGRATE */

/* The watcher runs beside virDomainMigrateToURI3 (which blocks for the
 * whole migration): it reads progress from the job stats and aborts the
 * migration when the job's time is nearly up, so that the job can still say
 * so itself; the worker then checks the VM stayed on the source. */
struct migwatch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    bool done, aborted;
    virDomainPtr d;
    uint64_t abort_at;
    uint64_t total, processed;
};

static void migwatch_unref(struct migwatch *w)
{
    pthread_mutex_lock(&w->mu);
    bool last = --w->refs == 0;
    pthread_mutex_unlock(&w->mu);
    if (!last)
        return;
    virDomainFree(w->d);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static uint64_t param_ull(virTypedParameterPtr p, int n, const char *name)
{
    unsigned long long v = 0;
    if (virTypedParamsGetULLong(p, n, name, &v) <= 0)
        v = 0;
    return v;
}

static void *migwatch_run(void *arg)
{
    struct migwatch *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->done) {
        struct timespec ts;
        uint64_t now = now_ms(), at = now + MIG_POLL_MS;
        if (!w->aborted && w->abort_at < at)
            at = w->abort_at > now ? w->abort_at : now; /* on time, not a poll later */
        abs_time(&ts, at);
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
        if (w->done)
            break;
        if (!w->aborted && now_ms() >= w->abort_at) {
            /* at once (the progress is the last poll's): cancelling takes
             * QEMU and both libvirtds a moment, the deadline is near */
            w->aborted = true;
            pthread_mutex_unlock(&w->mu);
            virDomainAbortJob(w->d);
            virResetLastError();
            pthread_mutex_lock(&w->mu);
            continue;
        }
        if (w->aborted)
            continue;
        pthread_mutex_unlock(&w->mu);
        virTypedParameterPtr p = NULL;
        int n = 0, type = 0;
        if (virDomainGetJobStats(w->d, &type, &p, &n, 0) == 0 && type != VIR_DOMAIN_JOB_NONE) {
            uint64_t total = param_ull(p, n, VIR_DOMAIN_JOB_DATA_TOTAL);
            uint64_t processed = param_ull(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
            pthread_mutex_lock(&w->mu);
            w->total = total;
            w->processed = processed;
            pthread_mutex_unlock(&w->mu);
        }
        virTypedParamsFree(p, n);
        virResetLastError();
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    migwatch_unref(w);
    return NULL;
}

/* the completed job's figures; 0 when libvirt kept them */
static int completed_stats(virDomainPtr d, struct vagent_migstats *m)
{
    virTypedParameterPtr p = NULL;
    int n = 0, type = 0;
    if (virDomainGetJobStats(d, &type, &p, &n, VIR_DOMAIN_JOB_STATS_COMPLETED) < 0 || n == 0) {
        virResetLastError();
        virTypedParamsFree(p, n);
        return -1;
    }
    m->total_ms = param_ull(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
    m->downtime_ms = param_ull(p, n, VIR_DOMAIN_JOB_DOWNTIME);
    m->data_total = param_ull(p, n, VIR_DOMAIN_JOB_DATA_TOTAL);
    m->data_processed = param_ull(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
    virTypedParamsFree(p, n);
    return 0;
}

/* after success: the source usually forgets the domain (undefine source), the
 * destination keeps the incoming job's figures */
static void migration_stats(virDomainPtr src, const struct vagent_job *j, uint64_t elapsed, struct vagent_result *r)
{
    if (completed_stats(src, &r->mig) == 0)
        return;
    virConnectPtr dc = virConnectOpenReadOnly(j->dest_uri);
    virDomainPtr dd = dc ? virDomainLookupByName(dc, j->name) : NULL;
    int rc = dd ? completed_stats(dd, &r->mig) : -1;
    if (dd)
        virDomainFree(dd);
    if (dc)
        virConnectClose(dc);
    virResetLastError();
    if (rc < 0) {
        r->mig.total_ms = elapsed;
        note(r->why, sizeof r->why, "libvirt kept no job statistics: total time measured here, downtime unknown");
    }
}

static int do_migrate(struct vagent *a, virConnectPtr c, struct job *jb, struct vagent_result *r)
{
    const struct vagent_job *j = &jb->j;
    int rc = 0;
    virDomainPtr d = lookup(c, j->name, &rc, r->why, sizeof r->why);
    if (!d)
        return rc;
    if (virDomainIsActive(d) <= 0) {
        virDomainFree(d);
        virResetLastError();
        return errf(r->why, sizeof r->why, -EINVAL, "%s is not running here: nothing to migrate", j->name);
    }
    if (j->max_downtime_ms && virDomainMigrateSetMaxDowntime(d, j->max_downtime_ms, 0) < 0)
        lv_fail(r->why, sizeof r->why, "maximum downtime not set");

    virTypedParameterPtr params = NULL;
    int np = 0, maxp = 0;
    if (j->bandwidth_mib &&
        virTypedParamsAddULLong(&params, &np, &maxp, VIR_MIGRATE_PARAM_BANDWIDTH, j->bandwidth_mib) < 0) {
        virDomainFree(d);
        return lv_fail(r->why, sizeof r->why, "bandwidth");
    }
    struct migwatch *w = calloc(1, sizeof *w);
    if (w) {
        /* abort early enough for the job to say so itself, with its progress
         * (a fifth of the time, from 1 to 5 s; the deadline still holds) */
        uint64_t t = (uint64_t)j->timeout_ms, grace = t / 5 < 1000 ? 1000 : t / 5 > 5000 ? 5000 : t / 5;
        grace = grace < t ? grace : t / 2;
        pthread_mutex_init(&w->mu, NULL);
        cond_init_mono(&w->cv);
        w->refs = 2;
        w->d = d;
        virDomainRef(d);
        w->abort_at = jb->deadline - grace;
        if (spawn(migwatch_run, w) != 0) {
            w->refs = 1;
            migwatch_unref(w);
            w = NULL;
        }
    }
    if (!w)
        note(r->why, sizeof r->why, "no progress watcher (out of threads): the job's deadline alone bounds it");

    unsigned flags = VIR_MIGRATE_LIVE | VIR_MIGRATE_PEER2PEER | VIR_MIGRATE_PERSIST_DEST | VIR_MIGRATE_UNDEFINE_SOURCE;
    uint64_t t0 = now_ms();
    int mrc = job_live(a, jb) ? virDomainMigrateToURI3(d, j->dest_uri, params, (unsigned)np, flags) : -2;
    uint64_t elapsed = now_ms() - t0;
    bool aborted = false;
    uint64_t total = 0, processed = 0;
    if (w) {
        pthread_mutex_lock(&w->mu);
        w->done = true;
        aborted = w->aborted;
        total = w->total;
        processed = w->processed;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        migwatch_unref(w);
    }
    virTypedParamsFree(params, np);

    if (mrc == 0) {
        migration_stats(d, j, elapsed, r);
        note(r->why, sizeof r->why, "migrated to %s", j->dest_uri);
    } else {
        if (mrc == -2)
            rc = -ETIMEDOUT;
        else
            rc = lv_fail(r->why, sizeof r->why, "migration");
        if (aborted) {
            rc = -ETIMEDOUT;
            note(r->why, sizeof r->why, "aborted: not done within %d ms (%llu of %llu MiB sent)", j->timeout_ms,
                 (unsigned long long)(processed >> 20), (unsigned long long)(total >> 20));
        }
        r->mig.data_total = total;
        r->mig.data_processed = processed;
        /* libvirt resumes the source after a failed live migration; make sure */
        int st = 0, reason = 0;
        if (virDomainGetState(d, &st, &reason, 0) == 0 && st == VIR_DOMAIN_PAUSED &&
            (reason == VIR_DOMAIN_PAUSED_MIGRATION || reason == VIR_DOMAIN_PAUSED_POSTCOPY) && virDomainResume(d) == 0)
            note(r->why, sizeof r->why, "resumed here");
        virResetLastError();
        int act = virDomainIsActive(d);
        virResetLastError();
        note(r->why, sizeof r->why, act > 0 ? "the VM stays on the source, running" : "the VM is not running on the source");
    }
    virDomainFree(d);
    return rc;
}

/* ------------------------------------------------------------------ workers */

static void run_job(struct vagent *a, virConnectPtr c, struct job *jb, struct vagent_result *r)
{
    const struct vagent_job *j = &jb->j;
    int rc = 0;
    switch (j->op) {
    case VAGENT_OP_START: rc = do_start(a, c, jb, r); break;
    case VAGENT_OP_STOP: rc = do_stop(a, c, jb, r, false); break;
    case VAGENT_OP_DESTROY: rc = do_stop(a, c, jb, r, true); break;
    case VAGENT_OP_MIGRATE: rc = do_migrate(a, c, jb, r); break;
    case VAGENT_OP_LIST: rc = do_list(c, r); break;
    case VAGENT_OP_DUMPXML: rc = do_dumpxml(c, j, r); break;
    case VAGENT_OP_QUERY: {
        virDomainPtr d = lookup(c, j->name, &rc, r->why, sizeof r->why);
        if (d) {
            rc = fill_vm(d, &r->vm, r->why, sizeof r->why);
            virDomainFree(d);
        }
        break;
    }
    }
    r->rc = rc;
    if ((j->op == VAGENT_OP_QUERY || j->op == VAGENT_OP_DUMPXML) && rc == 0)
        return;
    if (j->op != VAGENT_OP_LIST && (rc != -ETIMEDOUT || job_live(a, jb)))
        final_state(c, j->name, &r->vm);
    if (rc == -ENOENT)
        r->vm.state = VAGENT_ABSENT;
}

/* the first queued job whose domain has no job running (one job per domain at a time) */
static struct job *next_job_locked(struct vagent *a)
{
    for (struct job *j = a->jobs; j; j = j->next) {
        if (j->running || j->reaped)
            continue;
        bool busy = false;
        if (j->j.op != VAGENT_OP_LIST)
            for (struct job *o = a->jobs; o && !busy; o = o->next)
                busy = o->running && o->j.op != VAGENT_OP_LIST && strcmp(o->j.name, j->j.name) == 0;
        if (!busy)
            return j;
    }
    return NULL;
}

static void *work(void *arg)
{
    struct vagent *a = arg;
    struct job *jb;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        while (!a->closing && !(jb = next_job_locked(a)))
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->closing)
            break;
        jb->running = true;
        /* a connection being made is waited for (up to the deadline); a
         * failed one fails the job at once with the reason */
        while (!a->closing && !jb->reaped && !a->conn && (a->link_busy || a->reported < 0))
            pthread_cond_wait(&a->cv, &a->mu); /* a hung libvirtd: the deadline ends the wait */
        struct vagent_result r = {.kind = VAGENT_RESULT, .op = jb->j.op, .tag = jb->j.tag};
        memcpy(r.name, jb->j.name, sizeof r.name);
        if (!a->closing && !jb->reaped) {
            virConnectPtr c = a->conn;
            if (!c) {
                r.rc = a->last_rc ? a->last_rc : -ENOTCONN;
                snprintf(r.why, sizeof r.why, "not connected: %s", a->last_why);
                memcpy(r.vm.name, jb->j.name, sizeof r.vm.name);
            } else {
                virConnectRef(c);
                pthread_mutex_unlock(&a->mu);
                run_job(a, c, jb, &r);
                virConnectClose(c);
                virResetLastError();
                pthread_mutex_lock(&a->mu);
            }
        }
        if (!jb->reaped && !a->closing)
            push_locked(a, &r);
        else
            vagent_result_free(&r); /* too late: -ETIMEDOUT was said at the deadline */
        unlink_job_locked(a, jb);
        pthread_cond_broadcast(&a->cv); /* the domain is free for its next job */
    }
    a->threads--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    agent_unref(a);
    return NULL;
}

/* ------------------------------------------------------------------ the API */

struct vagent *vagent_new(const struct vagent_opts *o, char *err, size_t errlen)
{
    struct vagent_opts d = o ? *o : (struct vagent_opts){0};
    const char *uri = d.uri ? d.uri : "qemu:///system";
    if (!*uri || strlen(uri) >= VAGENT_URI_MAX) {
        errf(err, errlen, -EINVAL, "uri: 1 to %d characters", VAGENT_URI_MAX - 1);
        return NULL;
    }
    if (d.keepalive_interval_s < 0 || d.keepalive_count < 0 || d.workers < 0 || d.workers > 64 ||
        d.connect_timeout_ms < 0) {
        errf(err, errlen, -EINVAL, "options: negative values, or more than 64 workers");
        return NULL;
    }
    d.keepalive_interval_s = d.keepalive_interval_s ? d.keepalive_interval_s : 5;
    d.keepalive_count = d.keepalive_count ? d.keepalive_count : 3;
    d.workers = d.workers ? d.workers : 4;
    d.connect_timeout_ms = d.connect_timeout_ms ? d.connect_timeout_ms : 5000;

    pthread_once(&global_once, global_init);
    if (global_rc < 0) {
        errf(err, errlen, global_rc, "libvirt: cannot initialise it or its event loop");
        return NULL;
    }
    struct vagent *a = calloc(1, sizeof *a);
    if (!a) {
        errf(err, errlen, -ENOMEM, "out of memory");
        return NULL;
    }
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (a->efd < 0) {
        errf(err, errlen, -errno, "eventfd: %s", strerror(errno));
        free(a);
        return NULL;
    }
    pthread_mutex_init(&a->mu, NULL);
    cond_init_mono(&a->cv);
    a->o = d;
    snprintf(a->uri, sizeof a->uri, "%s", uri);
    a->o.uri = a->uri;
    a->refs = 1;
    a->cur.cb_id = a->to_close.cb_id = -1;
    a->reported = -1;
    a->backoff = BACKOFF_MIN_MS;
    a->next_attempt = now_ms();
    snprintf(a->last_why, sizeof a->last_why, "connecting to %s", a->uri);

    pthread_mutex_lock(&a->mu);
    int started = 0;
    for (int i = 0; i <= d.workers; i++) {
        a->refs++;
        a->threads++;
        if (spawn(i == 0 ? supervise : work, a) != 0) {
            a->refs--;
            a->threads--;
            break;
        }
        started++;
    }
    pthread_mutex_unlock(&a->mu);
    if (started <= d.workers) {
        errf(err, errlen, -EAGAIN, "cannot start the agent's threads");
        vagent_free(a);
        return NULL;
    }
    return a;
}

static void *close_run(void *arg)
{
    struct link *l = arg;
    struct vagent *a = l->a;
    teardown(a, &l->old);
    free(l);
    pthread_mutex_lock(&a->mu);
    a->threads--;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    agent_unref(a);
    return NULL;
}

void vagent_free(struct vagent *a)
{
    if (!a)
        return;
    struct timespec ts;
    abs_time(&ts, now_ms() + FREE_WAIT_MS);
    pthread_mutex_lock(&a->mu);
    a->closing = true;
    pthread_cond_broadcast(&a->cv);
    /* the connection(s) are closed by a thread of their own: closing one
     * means a call to libvirtd, which may not answer */
    a->conn = NULL;
    for (int k = 0; k < 2; k++) {
        struct lconn *lc = k == 0 ? &a->cur : &a->to_close;
        if (!lc->c)
            continue;
        struct link *l = malloc(sizeof *l);
        if (!l)
            continue; /* leaves the connection open: the process is short of memory anyway */
        *l = (struct link){.a = a, .old = *lc};
        *lc = (struct lconn){.cb_id = -1};
        a->refs++;
        a->threads++;
        if (spawn(close_run, l) != 0) {
            a->refs--;
            a->threads--;
            free(l);
        }
    }
    while (a->threads > 0 && pthread_cond_timedwait(&a->cv, &a->mu, &ts) == 0) {
    }
    pthread_mutex_unlock(&a->mu);
    agent_unref(a);
}

int vagent_submit(struct vagent *a, const struct vagent_job *j, char *err, size_t errlen)
{
    if (!j || j->op < VAGENT_OP_START || j->op > VAGENT_OP_DUMPXML)
        return errf(err, errlen, -EINVAL, "unknown operation");
    const char *op = vagent_op_name(j->op);
    if (j->op != VAGENT_OP_LIST) {
        if (!memchr(j->name, 0, sizeof j->name) || !ha_name_valid(j->name))
            return errf(err, errlen, -EINVAL, "%s: the domain name must be 1 to %d letters, digits, '.', '_' or '-'",
                        op, VAGENT_NAME_MAX - 1);
    }
    if (j->timeout_ms < 0 || j->stop_timeout_ms < 0)
        return errf(err, errlen, -EINVAL, "%s %s: negative timeout", op, j->name);
    if (j->op == VAGENT_OP_START) {
        if (j->npeers < 0 || j->npeers > VAGENT_MAX_PEERS)
            return errf(err, errlen, -EINVAL, "start %s: %d peers (0 to %d)", j->name, j->npeers, VAGENT_MAX_PEERS);
        for (int i = 0; i < j->npeers; i++)
            if (!memchr(j->peer_uri[i], 0, VAGENT_URI_MAX) || !j->peer_uri[i][0])
                return errf(err, errlen, -EINVAL, "start %s: peer %d has no URI (or one too long)", j->name, i + 1);
    }
    if (j->op == VAGENT_OP_MIGRATE && (!memchr(j->dest_uri, 0, VAGENT_URI_MAX) || !j->dest_uri[0]))
        return errf(err, errlen, -EINVAL, "migrate %s: no destination URI (or one too long)", j->name);

    struct job *jb = calloc(1, sizeof *jb);
    if (!jb)
        return errf(err, errlen, -ENOMEM, "out of memory");
    jb->j = *j;
    jb->j.xml = NULL;
    if (j->op == VAGENT_OP_START && j->xml) {
        char xname[VAGENT_NAME_MAX], why[VAGENT_WHY_MAX];
        size_t len = strnlen(j->xml, VAGENT_XML_MAX + 1);
        int rc = vagent_xml_check(j->xml, len, xname, NULL, NULL, why, sizeof why);
        if (rc == 0 && strcmp(xname, j->name) != 0)
            rc = errf(why, sizeof why, -EINVAL, "the XML names the domain '%s'", xname);
        if (rc < 0) {
            free(jb);
            return errf(err, errlen, rc, "start %s: bad domain XML: %s", j->name, why);
        }
        if (!(jb->xml = strdup(j->xml))) {
            free(jb);
            return errf(err, errlen, -ENOMEM, "out of memory");
        }
        jb->j.xml = jb->xml;
    }
    if (!jb->j.timeout_ms)
        jb->j.timeout_ms = j->op == VAGENT_OP_START || j->op == VAGENT_OP_STOP ? 30000
                           : j->op == VAGENT_OP_MIGRATE                       ? 120000
                                                                               : 10000;
    if (!jb->j.stop_timeout_ms)
        jb->j.stop_timeout_ms = 20000;
    if (j->op == VAGENT_OP_LIST)
        jb->j.name[0] = 0;
    jb->deadline = now_ms() + (uint64_t)jb->j.timeout_ms;

    pthread_mutex_lock(&a->mu);
    if (a->njobs >= MAX_JOBS) {
        pthread_mutex_unlock(&a->mu);
        free(jb->xml);
        free(jb);
        return errf(err, errlen, -EBUSY, "%s: %d jobs already waiting or running", op, MAX_JOBS);
    }
    struct job **p = &a->jobs;
    while (*p)
        p = &(*p)->next;
    *p = jb;
    a->njobs++;
    pthread_cond_broadcast(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}
