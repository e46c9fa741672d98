#define _GNU_SOURCE /* pipe2 */
/* The pool on this host: the durable copy of the pool database, corosync
 * (its configuration, CPG and votequorum), the replica that keeps the copies
 * identical, the decision core, and the ways in and out of a pool (create,
 * join, leave) including the join server the members run. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <corosync/cmap.h>
#include <qb/qblog.h>

#include "../membership/cconf.h"
#include "../membership/join.h"
#include "../membership/pooldb.h"
#include "../membership/replica.h"
#include "vigild.h"

static void step(const struct ha_event *ev);
static void core_membership(void);
static void leave_now(void *data);

/* ---------------------------------------------------------------- small helpers */

static const char *host_name(int h)
{
    return h >= 0 && h < D.db.nhosts ? D.db.host[h].name : "?";
}

ha_hostset pool_view(void) { return D.rep && D.connected ? replica_view(D.rep) : 0; }

uint64_t pool_digest(void) { return pooldb_digest(D.db.master_epoch, &D.db); }

bool pool_is_master(void) { return D.in_pool && D.synced && D.core && ha_core_is_master(D.core); }

int pool_master(char *why, size_t len)
{
    if (!D.in_pool) {
        snprintf(why, len, "this host is in no pool");
        return HA_NO_HOST;
    }
    if (!D.connected) {
        snprintf(why, len, "corosync is not running or not reachable on this host");
        return HA_NO_HOST;
    }
    if (!D.synced) {
        snprintf(why, len, "this host has not synchronised its pool database with the other members yet");
        return HA_NO_HOST;
    }
    int m = D.db.master;
    if (D.db.set.heartbeat_disk) {
        /* disk mode: the master is the holder of the lease on the disk */
        m = hb_lease_owner();
        if (m == HA_NO_HOST) {
            snprintf(why, len, hb_running() ? "no host holds the master lease on the heartbeat disk (a master takes "
                                              "it within seconds)"
                                            : "the pool runs with a heartbeat disk and this host has none (vigil.conf "
                                              "heartbeat_disk)");
            return HA_NO_HOST;
        }
    }
    if (m == HA_NO_HOST) {
        snprintf(why, len, "the pool has no master right now (a successor takes over within seconds)");
        return HA_NO_HOST;
    }
    if (!(pool_view() & HA_BIT(m))) {
        snprintf(why, len, "the master %s is not reachable from this host", host_name(m));
        return HA_NO_HOST;
    }
    if (!D.quorate) {
        snprintf(why, len, "this host is not in a quorate partition");
        return HA_NO_HOST;
    }
    return m;
}

static bool corosync_running(void)
{
    cmap_handle_t h;
    if (cmap_initialize(&h) != CS_OK)
        return false;
    cmap_finalize(h);
    return true;
}

/* Is a corosync process there at all?  A stopping corosync no longer
 * answers (corosync_running() is false) but still holds its lock, and a new
 * one started meanwhile exits at once. */
static bool corosync_process(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(comm, sizeof comm, f) && !strcmp(comm, "corosync\n"))
            found = true;
        fclose(f);
    }
    closedir(d);
    return found;
}

/* corosync.conf from the database; reload a running corosync if it changed */
static int corosync_conf_refresh(bool reload, char *err, size_t errlen)
{
    char conf[65536];
    int n = cconf_render(&D.db, conf, sizeof conf, err, errlen);
    if (n < 0)
        return n;
    int rc = cconf_write_file(D.cfg.corosync_conf, conf, (size_t)n, 0644, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 1 && reload && corosync_running()) {
        char e2[512];
        if (run_command("corosync_reload", D.cfg.corosync_reload, 20, e2, sizeof e2) < 0)
            audit(LOG_ERR, "vigild", e2, "corosync did not reload its configuration");
        else
            qb_log(LOG_NOTICE, "corosync reloaded %s (%d host(s) in the nodelist)", D.cfg.corosync_conf,
                   ha_popcount(ha_db_joined(&D.db)));
    }
    return 0;
}

/* ---------------------------------------------------------------- the core */

#define QMAX 256
static struct ha_event queued[QMAX];
static int nqueued;

static void queue_event(const struct ha_event *ev)
{
    if (nqueued < QMAX)
        queued[nqueued++] = *ev;
    else
        qb_log(LOG_ERR, "core event queue full: dropped event %d", ev->type);
}

static void on_core_timer(void *data)
{
    (void)data;
    struct ha_event ev = {.type = HA_EV_TIMER};
    step(&ev);
}

static void run_actions(void)
{
    for (size_t i = 0; i < D.acts.n; i++) {
        const struct ha_action *a = &D.acts.v[i];
        struct request *rq = D.cmd_request ? request_find(D.cmd_request) : NULL;
        switch (a->type) {
        case HA_ACT_LOG:
            audit(LOG_NOTICE, "vigild", a->why, "%s", a->what);
            break;
        case HA_ACT_TIMER: {
            int64_t delay = a->at - (int64_t)now_ms();
            qb_loop_timer_del(D.loop, D.core_timer);
            qb_loop_timer_add(D.loop, QB_LOOP_MED, (uint64_t)(delay > 0 ? delay : 0) * 1000000ULL, NULL,
                              on_core_timer, &D.core_timer);
            break;
        }
        case HA_ACT_COMMIT:
            pool_propose(&a->change, a->for_cmd ? rq : NULL);
            break;
        case HA_ACT_CMD_DONE:
            if (!rq)
                break;
            rq->answered_core = true;
            rq->code = a->ok ? 0 : 1;
            snprintf(rq->text, sizeof rq->text, "%s\n", a->what);
            if (a->ok && rq->commits == 0 && rq->kind == RQ_LEAVE)
                pool_leave_accepted(rq, rq->text);
            else if (!a->ok || rq->commits == 0)
                request_finish(rq, rq->code, "%s", rq->text);
            break;
        case HA_ACT_FENCE: {
            /* the host's levels run in a worker thread; without a device the
             * core hears at once that this fence failed, and explains it */
            char why[256];
            if (fencer_fence(a->host, why, sizeof why) == 0) {
                audit(LOG_NOTICE, "vigild", a->why, "fencing %s through its fence devices", host_name(a->host));
                break;
            }
            audit(LOG_ERR, "vigild", why, "cannot fence %s", host_name(a->host));
            struct ha_event ev = {.type = HA_EV_FENCE_DONE};
            ev.u.fence.host = a->host;
            ev.u.fence.ok = false;
            snprintf(ev.u.fence.why, sizeof ev.u.fence.why, "%s", why);
            queue_event(&ev);
            break;
        }
        case HA_ACT_INVENTORY_QUERY:
            /* a pool without VMs: every host's list is complete, and empty */
            if (D.db.nvms == 0) {
                struct ha_event ev = {.type = HA_EV_INVENTORY};
                ev.u.report.host = a->host;
                queue_event(&ev);
                break;
            }
            vms_action(a);
            break;
        case HA_ACT_VM_START:
        case HA_ACT_VM_STOP:
        case HA_ACT_VM_MIGRATE:
            vms_action(a); /* to the host's agent, over CPG */
            break;
        case HA_ACT_DISK_WRITE:
        case HA_ACT_POISON:
            hb_write(a); /* the disk thread writes it at once */
            break;
        case HA_ACT_SELF_FENCE:
            hb_self_fence(a->why); /* the slot write above first; never returns */
        default:
            qb_log(LOG_WARNING, "action %d (%s) not implemented yet", a->type, a->what);
            break;
        }
    }
}

static void step(const struct ha_event *ev0)
{
    if (!D.core)
        return;
    struct ha_event ev = *ev0;
    for (;;) {
        ev.now = (ha_ms)now_ms();
        ha_actions_clear(&D.acts);
        ha_core_step(D.core, &ev, &D.acts);
        run_actions();
        if (!nqueued)
            break;
        ev = queued[0];
        memmove(queued, queued + 1, (size_t)--nqueued * sizeof queued[0]);
        D.cmd_request = 0;
    }
    pool_check_waiters(); /* e.g. a create waiting for this host to become master */
}

void pool_event(const struct ha_event *ev)
{
    if (D.core && D.synced)
        step(ev);
}

void pool_core_command(struct request *rq, const struct ha_cmd *cmd)
{
    struct ha_event ev = {.type = HA_EV_CMD};
    ev.u.cmd = *cmd;
    uint64_t id = rq->id; /* the step may answer, and free, rq */
    D.cmd_request = id;
    step(&ev);
    D.cmd_request = 0;
    struct request *r = request_find(id);
    if (r && !r->answered_core)
        request_finish(r, 1, "the decision core gave no answer (a bug: please report it)\n");
}

void pool_disk_event(const struct ha_event *ev) { step(ev); }

/* The core is built for one mode (with or without a heartbeat disk): the
 * master's role, the lease and the verdicts rest on it.  When the pool
 * switches, this host starts a fresh core in the new mode, as after a
 * restart of vigild. */
/* how often a change a sync round dropped everywhere is proposed again */
#define PROPOSE_AGAIN_MAX 3

static bool core_disk_mode;

static void warn_no_disk(void)
{
    audit(LOG_ERR, "vigild", "set heartbeat_disk in vigil.conf and restart vigild",
          "the pool uses a heartbeat disk, but this host has none: it cannot win a partition contest");
}

static void check_mode(void)
{
    if (!D.core || core_disk_mode == D.db.set.heartbeat_disk)
        return;
    struct ha_core *c = ha_core_new(&D.db, D.self);
    if (!c) {
        qb_log(LOG_CRIT, "out of memory: cannot restart the decision core in the pool's new mode");
        return;
    }
    ha_core_free(D.core);
    D.core = c;
    core_disk_mode = D.db.set.heartbeat_disk;
    vms_mode_changed();
    qb_loop_timer_del(D.loop, D.core_timer);
    audit(LOG_NOTICE, "vigild", core_disk_mode ? "pool setting heartbeat_disk = yes" : "pool setting heartbeat_disk = no",
          core_disk_mode ? "the pool now runs with its heartbeat disk: decision core restarted in disk mode"
                         : "the pool now runs on corosync quorum alone: decision core restarted in corosync-only mode");
    if (core_disk_mode && !hb_running())
        warn_no_disk();
}

void pool_fence_done(int host, bool ok, const char *why)
{
    if (!D.in_pool || host < 0 || host >= D.db.nhosts)
        return; /* this host left the pool meanwhile */
    audit(ok ? LOG_NOTICE : LOG_ERR, "vigild", why, ok ? "fence of %s confirmed: its fence devices report it off"
                                                      : "fence of %s failed", host_name(host));
    struct ha_event ev = {.type = HA_EV_FENCE_DONE};
    ev.u.fence.host = host;
    ev.u.fence.ok = ok;
    snprintf(ev.u.fence.why, sizeof ev.u.fence.why, "%s", why);
    step(&ev);
}

static void core_membership(void)
{
    if (!D.core || (D.connected && !D.synced))
        return; /* the view reaches the core once the database is the pool's */
    struct ha_event ev = {.type = HA_EV_MEMBERSHIP};
    ev.u.membership.members = D.connected ? pool_view() : HA_BIT(D.self);
    ev.u.membership.quorate = D.connected && D.quorate;
    step(&ev);
    /* With VMs, each host's agent sends its list after every membership
     * change (vms.c).  A pool without VMs needs no agent: every host in
     * view has told all it runs, nothing.  Without this, a host whose
     * vigild restarted would stay "fencing" on the master. */
    vms_membership();
    if (D.db.nvms == 0)
        for (int h = 0; h < D.db.nhosts; h++)
            if (ev.u.membership.members & HA_BIT(h)) {
                struct ha_event inv = {.type = HA_EV_INVENTORY};
                inv.u.report.host = h;
                step(&inv);
            }
}

static void step_db(void *data)
{
    (void)data;
    D.step_db_pending = false;
    if (!D.core)
        return;
    hb_db_changed();
    if (core_disk_mode != D.db.set.heartbeat_disk) {
        check_mode();
        core_membership();
        return;
    }
    struct ha_event ev = {.type = HA_EV_DB};
    step(&ev);
}

/* ---------------------------------------------------------------- the replica */

static int ops_send(void *ctx, const void *msg, size_t len)
{
    (void)ctx;
    return membership_send(D.mem, msg, len);
}

static int ops_persist_change(void *ctx, const struct ha_db *after, const struct ha_change *c)
{
    (void)ctx;
    char err[512];
    int rc = pooldb_append(D.store, after->master_epoch, after->version, c, after, err, sizeof err);
    if (rc < 0)
        qb_log(LOG_CRIT, "cannot store a pool database change: %s", err);
    return rc;
}

static int ops_persist_state(void *ctx, const struct ha_db *db)
{
    (void)ctx;
    char err[512];
    int rc = pooldb_replace(D.store, db->master_epoch, db, err, sizeof err);
    if (rc < 0)
        qb_log(LOG_CRIT, "cannot store the pool database received from the pool: %s", err);
    return rc;
}

static void describe_change(const struct ha_change *c, char *buf, size_t len)
{
    switch (c->type) {
    case HA_CHG_POOL_CREATE: snprintf(buf, len, "pool %s created", c->name); break;
    case HA_CHG_HOST_ADD: snprintf(buf, len, "host %s (%s, node %d) joined the pool", c->name, c->text, c->arg); break;
    case HA_CHG_HOST_LEAVE: snprintf(buf, len, "host %s left the pool", host_name(c->host)); break;
    case HA_CHG_HOST_LEAVING: snprintf(buf, len, "host %s %s", host_name(c->host), c->arg ? "is leaving" : "stays"); break;
    case HA_CHG_HOST_MAINT: snprintf(buf, len, "host %s maintenance %s", host_name(c->host), c->arg ? "on" : "off"); break;
    case HA_CHG_HOST_FENCED: snprintf(buf, len, "host %s %s", host_name(c->host), c->arg ? "fenced" : "no longer fenced"); break;
    case HA_CHG_MASTER: snprintf(buf, len, "%s became master (epoch %" PRIu64 ")", host_name(c->host), D.db.master_epoch); break;
    case HA_CHG_PREFERRED_MASTER: snprintf(buf, len, "%s designated as preferred master", host_name(c->host)); break;
    case HA_CHG_SETTING: snprintf(buf, len, "setting %s = %s", c->name, c->text); break;
    case HA_CHG_HOST_FACTS: snprintf(buf, len, "host %s has %" PRIu64 " MiB and %d CPU(s)", host_name(c->host), c->mem_mb, c->cpus); break;
    case HA_CHG_TOKEN_ADD: snprintf(buf, len, "join token issued"); break;
    case HA_CHG_TOKEN_USE: snprintf(buf, len, "join token used"); break;
    case HA_CHG_RULE_ADD: snprintf(buf, len, "rule %s added", c->rule.name); break;
    case HA_CHG_RULE_DEL: snprintf(buf, len, "rule deleted"); break;
    case HA_CHG_VM_PROTECT: snprintf(buf, len, "VM protection: %s", ha_protect_name(c->protect)); break;
    case HA_CHG_VM_ADD:
        snprintf(buf, len, "VM %s imported (%" PRIu64 " MiB, %d vCPU(s), %s)", c->name, c->mem_mb, c->cpus,
                 c->xml ? "with its domain XML" : "no domain XML");
        break;
    case HA_CHG_VM_XML:
        snprintf(buf, len, "VM %s: domain XML replaced (%" PRIu32 " bytes, %" PRIu64 " MiB, %d vCPU(s))",
                 c->vm >= 0 && c->vm < D.db.nvms ? D.db.vm[c->vm].name : "?", c->xml_len, c->mem_mb, c->cpus);
        break;
    case HA_CHG_FENCE_SET: {
        /* never the password */
        char what[160];
        const struct ha_fence_dev *d = &c->dev;
        snprintf(what, sizeof what, "%s%s%s%s%s", ha_fence_type_name(d->type), d->agent[0] ? " " : "", d->agent,
                 d->addr[0] ? " " : "", d->addr);
        if (c->fence_index)
            snprintf(buf, len, "fence device %s set for %s (level %d, device %d)", what, host_name(c->host),
                     c->fence_level, c->fence_index + 1);
        else
            snprintf(buf, len, "fence device %s set for %s (level %d)", what, host_name(c->host), c->fence_level);
        break;
    }
    case HA_CHG_FENCE_CLEAR:
        if (c->fence_level)
            snprintf(buf, len, "fence devices of %s cleared (level %d)", host_name(c->host), c->fence_level);
        else
            snprintf(buf, len, "fence devices of %s cleared (all levels)", host_name(c->host));
        break;
    default: snprintf(buf, len, "database change of type %d", c->type); break;
    }
}

static void conf_job(void *data)
{
    (void)data;
    char err[512];
    if (D.in_pool && corosync_conf_refresh(true, err, sizeof err) < 0)
        audit(LOG_ERR, "vigild", err, "cannot rewrite %s", D.cfg.corosync_conf);
}

static void ops_applied(void *ctx, int sender, const struct ha_change *c)
{
    (void)ctx;
    char what[256], actor[96];
    describe_change(c, what, sizeof what);
    snprintf(actor, sizeof actor, "%s %s", sender == D.db.master ? "master" : "host", host_name(sender));
    char why[64];
    snprintf(why, sizeof why, "database version %" PRIu64, D.db.version);
    audit(LOG_INFO, actor, why, "%s", what);
    if (c->type == HA_CHG_HOST_LEAVE && c->host == D.self) {
        D.leaving_now = true;
        qb_loop_job_add(D.loop, QB_LOOP_HIGH, NULL, leave_now);
        return;
    }
    if (c->type == HA_CHG_HOST_ADD || c->type == HA_CHG_HOST_LEAVE ||
        (c->type == HA_CHG_SETTING && !strcmp(c->name, "token_timeout")))
        /* after this delivery: the acknowledgement must not wait for corosync */
        qb_loop_job_add(D.loop, QB_LOOP_MED, NULL, conf_job);
    if (!D.step_db_pending) {
        D.step_db_pending = true;
        qb_loop_job_add(D.loop, QB_LOOP_MED, NULL, step_db);
    }
}

static void ops_synced(void *ctx)
{
    (void)ctx;
    bool first = !D.synced;
    D.synced = true;
    if (first)
        qb_log(LOG_INFO, "pool database synchronised: version %" PRIu64 ", epoch %" PRIu64 ", %d member(s) in view",
               D.db.version, D.db.master_epoch, ha_popcount(pool_view()));
    int self = -1;
    for (int h = 0; h < D.db.nhosts; h++)
        if (!strcmp(D.db.host[h].name, D.cfg.name))
            self = h;
    if (self < 0 || !D.db.host[self].joined) {
        /* the pool removed us while we were away */
        audit(LOG_WARNING, "vigild", "the pool's database no longer lists this host",
              "this host is no longer a member of pool %s", D.db.pool_name);
        D.leaving_now = true;
        qb_loop_job_add(D.loop, QB_LOOP_HIGH, NULL, leave_now);
        return;
    }
    char err[512];
    if (corosync_conf_refresh(true, err, sizeof err) < 0)
        audit(LOG_ERR, "vigild", err, "cannot rewrite %s", D.cfg.corosync_conf);
    hb_db_changed();
    check_mode();
    struct ha_event ev = {.type = HA_EV_DB};
    step(&ev);
    core_membership();
    pool_check_waiters();
    command_retry_parked();
    command_send_facts();
}

static void ops_done(void *ctx, uint64_t tag, int status, const char *why);

static void ops_log(void *ctx, int level, const char *fmt, ...)
{
    (void)ctx;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    qb_log(level, "%s", buf);
}

int pool_propose(const struct ha_change *c, struct request *rq)
{
    if (!D.rep)
        return -ENOTCONN;
    int rc = replica_propose(D.rep, c, rq ? rq->id : 0);
    if (rc < 0) {
        if (rq)
            request_finish(rq, 1, "the change could not be sent to the pool: %s\n",
                           rc == -ENOTCONN ? "corosync is not reachable" : strerror(-rc));
        return rc;
    }
    if (rq) {
        /* kept to propose again: with its own copy of a borrowed domain XML */
        char *xml = c->xml && c->xml_len ? strndup(c->xml, c->xml_len) : NULL;
        free(rq->last_xml);
        rq->last_xml = xml;
        rq->last = *c;
        rq->last.xml = xml;
        if (c->xml_len && !xml)
            rq->retries = PROPOSE_AGAIN_MAX; /* no copy to propose again */
        if (++rq->commits > rq->inflight_max)
            rq->inflight_max = rq->commits;
    }
    return 0;
}

int pool_send(const void *msg, size_t len) { return D.mem ? membership_send(D.mem, msg, len) : -ENOTCONN; }

/* ---------------------------------------------------------------- membership */

static void on_view(void *ctx, const uint32_t *ids, const uint32_t *pids, size_t n)
{
    (void)ctx;
    /* the same on every member of this configuration, and new when a
     * vigild restarts (new pid) even if corosync's ring did not change */
    uint64_t ring = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        ring = ((ring ^ ids[i]) * 1099511628211ull ^ pids[i]) * 1099511628211ull;
    D.synced = false;
    replica_confchg(D.rep, ids, n, ring);
}

static void on_quorum(void *ctx, bool quorate)
{
    (void)ctx;
    if (D.quorate != quorate)
        audit(LOG_NOTICE, "corosync", "votequorum", "this host is %s", quorate ? "in a quorate partition" : "not quorate");
    D.quorate = quorate;
    core_membership();
}

/* corosync went away: the pool needs it, so start it again (vigild started
 * it in the first place); a corosync that is still stopping is left alone */
static void corosync_watch(void *data)
{
    (void)data;
    if (!D.in_pool || D.connected)
        return;
    if (!corosync_process()) {
        char err[512];
        if (run_command("corosync_start", D.cfg.corosync_start, 30, err, sizeof err) < 0)
            audit(LOG_ERR, "vigild", err, "corosync did not start again");
        else
            audit(LOG_NOTICE, "vigild", "it had stopped", "started corosync again");
    }
    qb_loop_timer_add(D.loop, QB_LOOP_LOW, 5000ULL * 1000 * 1000, NULL, corosync_watch, &D.corosync_timer);
}

static void on_connection(void *ctx, bool connected, uint32_t id)
{
    (void)ctx;
    D.connected = connected;
    if (connected) {
        if (id != D.nodeid)
            audit(LOG_ERR, "vigild", "corosync.conf and the pool database disagree",
                  "corosync runs this host as node %u, the pool knows it as node %u", id, D.nodeid);
        return;
    }
    D.synced = false;
    D.quorate = false;
    audit(LOG_WARNING, "corosync", "vigild reconnects every second, and starts corosync again if it is gone",
          "lost the connection to corosync");
    qb_loop_timer_add(D.loop, QB_LOOP_LOW, 3000ULL * 1000 * 1000, NULL, corosync_watch, &D.corosync_timer);
    replica_abort(D.rep, "corosync went away on this host");
    core_membership();
}

static void on_deliver(void *ctx, uint32_t nodeid, uint32_t pid, const void *msg, size_t len)
{
    (void)ctx, (void)pid;
    char err[128];
    int type = vigil_wire_check(msg, len, err, sizeof err);
    if (type < 0) {
        qb_log(LOG_WARNING, "ignored a message from node %u: %s", nodeid, err);
        return;
    }
    if (type < WIRE_DAEMON)
        replica_deliver(D.rep, nodeid, msg, len);
    else
        command_deliver(nodeid, msg, len);
}

/* ---------------------------------------------------------------- the join server */

struct join_job {
    struct join_job *next;
    struct join_conn *conn;    /* NULL: only a line to log */
    struct join_request req;
    struct join_reply reply;
    char peer[80];
    char log[512];
    bool undo;                 /* log job: the answer to an admitted host may not have arrived */
    uint64_t rq;               /* request driving the commits */
    int stage;                 /* 0 token use pending, 1 host add pending */
    bool ready;
};

static pthread_t js_thread;
static pthread_mutex_t js_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t js_cond = PTHREAD_COND_INITIALIZER;
static struct join_job *js_jobs; /* handed to the loop, not answered yet */

/* 0, or -1 when the pipe is full: the caller keeps j (and its connection) */
static int js_post(struct join_job *j)
{
    return write(D.js_pipe[1], &j, sizeof j) == (ssize_t)sizeof j ? 0 : -1;
}

static void *js_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&js_lock);
        bool run = D.js_running;
        pthread_mutex_unlock(&js_lock);
        if (!run)
            break;
        struct join_job *j = calloc(1, sizeof *j);
        if (!j) {
            sleep(1);
            continue;
        }
        char err[256];
        int rc = join_server_accept(D.js, 500, &j->conn, &j->req, err, sizeof err);
        if (rc == -EAGAIN) {
            free(j);
            continue;
        }
        if (rc < 0) {
            j->conn = NULL;
            snprintf(j->log, sizeof j->log, "a joining host failed before its request: %s", err);
            if (js_post(j) < 0)
                free(j); /* the loop is busy: this line is not worth waiting for */
            continue;
        }
        snprintf(j->peer, sizeof j->peer, "%s", join_conn_peer(j->conn));
        struct join_conn *conn = j->conn;
        if (js_post(j) < 0) { /* the loop is stalled: drop this host, it may retry */
            join_conn_free(conn);
            free(j);
            continue;
        }
        /* wait for the loop's answer (or for the server to stop) */
        pthread_mutex_lock(&js_lock);
        while (!j->ready && D.js_running)
            pthread_cond_wait(&js_cond, &js_lock);
        bool ready = j->ready;
        pthread_mutex_unlock(&js_lock);
        if (!ready) { /* stopping: the loop forgets the job */
            join_conn_free(conn);
            continue;
        }
        rc = join_server_reply(conn, &j->reply, 5000, err, sizeof err);
        join_conn_free(conn);
        struct join_job *done = calloc(1, sizeof *done);
        if (done) {
            if (rc < 0) {
                snprintf(done->log, sizeof done->log, "the answer to %s (%s) may not have arrived: %s", j->req.name,
                         j->peer, err);
                done->undo = j->reply.status == 0;
                done->req = j->req;
            }
            else
                snprintf(done->log, sizeof done->log, "answered %s (%s): %s", j->req.name, j->peer,
                         j->reply.status ? j->reply.reason : "accepted");
            if (js_post(done) < 0)
                free(done);
        }
        join_reply_free(&j->reply);
        free(j);
    }
    return NULL;
}

static void js_answer(struct join_job *j, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void js_answer(struct join_job *j, int status, const char *fmt, ...)
{
    for (struct join_job **p = &js_jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            break;
        }
    if (status) {
        join_reply_free(&j->reply);
        j->reply.status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->reply.reason, sizeof j->reply.reason, fmt, ap);
        va_end(ap);
        audit(LOG_NOTICE, "vigild", j->reply.reason, "refused the join of %s from %s", j->req.name, j->peer);
    }
    pthread_mutex_lock(&js_lock);
    j->ready = true;
    pthread_cond_broadcast(&js_cond);
    pthread_mutex_unlock(&js_lock);
}

static uint32_t next_nodeid(const char *name)
{
    uint32_t max = 0;
    for (int h = 0; h < D.db.nhosts; h++) {
        if (!strcmp(D.db.host[h].name, name) && D.db.host[h].nodeid)
            return D.db.host[h].nodeid; /* a host that comes back keeps its id */
        if (D.db.host[h].nodeid > max)
            max = D.db.host[h].nodeid;
    }
    return max + 1;
}

static void js_handle(struct join_job *j)
{
    char why[256];
    if (!pool_is_master()) {
        int m = pool_master(why, sizeof why);
        if (m != HA_NO_HOST)
            return js_answer(j, 1, "%s is not the master: ask %s (%s) for a join token", D.cfg.name, host_name(m),
                             D.db.host[m].addr);
        return js_answer(j, 1, "%s is not the master and cannot join hosts: %s", D.cfg.name, why);
    }
    uint8_t hash[JOIN_HASH_LEN];
    join_secret_hash(j->req.secret, hash);
    switch (ha_token_check(&D.db, hash, (int64_t)time(NULL))) {
    case 0:
        break;
    case -EALREADY:
        return js_answer(j, 1, "this token was used already: a token works once; ask for a new one with 'vigil "
                               "pool join-token'");
    case -ETIME:
        return js_answer(j, 1, "this token expired: ask for a new one with 'vigil pool join-token'");
    default:
        return js_answer(j, 1, "this token was not issued by pool %s (or it was pruned): ask for a new one with "
                               "'vigil pool join-token'", D.db.pool_name);
    }
    int h = ha_db_find_host(&D.db, j->req.name);
    if (h >= 0 && D.db.host[h].joined)
        return js_answer(j, 1, "a host named %s is already in pool %s", j->req.name, D.db.pool_name);
    for (int o = 0; o < D.db.nhosts; o++)
        if (D.db.host[o].joined && !strcmp(D.db.host[o].addr, j->req.address))
            return js_answer(j, 1, "address %s belongs to %s, already in the pool", j->req.address,
                             D.db.host[o].name);
    /* everything the answer needs is checked before the token is spent, so
     * that a refusal changes nothing: the database takes the host, corosync
     * takes the configuration, the key is readable */
    struct ha_change add = {.type = HA_CHG_HOST_ADD, .host = HA_NO_HOST, .vm = -1};
    snprintf(add.name, sizeof add.name, "%s", j->req.name);
    snprintf(add.text, sizeof add.text, "%s", j->req.address);
    add.arg = (int)next_nodeid(j->req.name);
    struct ha_db copy;
    if (ha_db_copy(&copy, &D.db) < 0)
        return js_answer(j, 1, "the master is out of memory");
    char err[512] = "", conf[CCONF_RENDER_MAX];
    int bad = ha_db_apply(&copy, &add) < 0 ? 1 : cconf_render(&copy, conf, sizeof conf, err, sizeof err) < 0 ? 2 : 0;
    ha_db_free(&copy);
    if (bad == 1)
        return js_answer(j, 1, "the pool database refuses host %s at %s (node %d)", j->req.name, j->req.address,
                         add.arg);
    if (bad == 2)
        return js_answer(j, 1, "corosync would not take the pool with this host: %s", err);
    if (access(D.cfg.corosync_authkey, R_OK) < 0)
        return js_answer(j, 1, "the master cannot read corosync's authkey %s: %s", D.cfg.corosync_authkey,
                         strerror(errno));
    struct request *rq = request_new(RQ_JOINSRV);
    if (!rq)
        return js_answer(j, 1, "the master is out of memory");
    j->rq = rq->id;
    j->stage = 0;
    snprintf(rq->from, sizeof rq->from, "%s", j->req.name);
    /* first the token is spent (a second host racing with the same token
     * fails here), then the host is added */
    struct ha_change c = {.type = HA_CHG_TOKEN_USE, .host = HA_NO_HOST, .vm = -1};
    memcpy(c.blob, hash, sizeof c.blob);
    pool_propose(&c, rq); /* on failure it ends rq, and pool_request_gone answers j */
}

/* the join-server request rq finished a stage */
static struct join_job *js_of(uint64_t id)
{
    for (struct join_job *j = js_jobs; j; j = j->next)
        if (j->rq == id)
            return j;
    return NULL;
}

static int read_file(const char *path, uint8_t **out, size_t *len, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint8_t *b = malloc(max);
    if (!b) {
        close(fd);
        return -ENOMEM;
    }
    ssize_t n = read(fd, b, max);
    close(fd);
    if (n <= 0) {
        free(b);
        return n < 0 ? -errno : -ENODATA;
    }
    *out = b;
    *len = (size_t)n;
    return 0;
}

static void js_stage_done(struct join_job *j, struct request *rq, int status, const char *why)
{
    if (status < 0) {
        js_answer(j, 1, "the pool did not store the change: %s", why);
        request_finish(rq, 1, "%s\n", why);
        return;
    }
    if (j->stage == 0) {
        j->stage = 1;
        struct ha_change c = {.type = HA_CHG_HOST_ADD, .host = HA_NO_HOST, .vm = -1};
        snprintf(c.name, sizeof c.name, "%s", j->req.name);
        snprintf(c.text, sizeof c.text, "%s", j->req.address);
        c.arg = (int)next_nodeid(j->req.name);
        pool_propose(&c, rq); /* on failure it ends rq, and pool_request_gone answers j */
        return;
    }
    /* the host is in the database everywhere: hand over what it needs */
    int h = ha_db_find_host(&D.db, j->req.name);
    struct join_reply *r = &j->reply;
    char err[512] = "";
    int rc;
    if (h < 0)
        js_answer(j, 1, "the host vanished from the database before the answer");
    else if ((rc = read_file(D.cfg.corosync_authkey, &r->authkey, &r->authkey_len, JOIN_AUTHKEY_MAX)) < 0)
        js_answer(j, 1, "the master cannot read corosync's authkey %s: %s", D.cfg.corosync_authkey, strerror(-rc));
    else if (!(r->corosync_conf = malloc(JOIN_CONF_MAX)) ||
             cconf_render(&D.db, r->corosync_conf, JOIN_CONF_MAX, err, sizeof err) < 0)
        js_answer(j, 1, "the master cannot render corosync.conf: %s", err);
    else if (pooldb_encode_snapshot(D.db.master_epoch, &D.db, &r->snapshot, &r->snapshot_len) < 0)
        js_answer(j, 1, "the master cannot encode the pool database");
    else {
        r->nodeid = D.db.host[h].nodeid;
        r->status = 0;
        audit(LOG_NOTICE, "vigild", "its token was valid and the pool stored it", "%s (%s, node %u) admitted to pool %s; sending it the pool's keys and database",
              j->req.name, j->req.address, r->nodeid, D.db.pool_name);
        js_answer(j, 0, "%s", "");
    }
    request_finish(rq, 0, "done\n"); /* no client: just forgets it */
}

static int32_t js_ready(int32_t fd, int32_t revents, void *data)
{
    (void)revents, (void)data;
    struct join_job *j;
    if (read(fd, &j, sizeof j) != (ssize_t)sizeof j)
        return 0;
    if (!j->conn) {
        qb_log(LOG_NOTICE, "join server: %s", j->log);
        int h = j->undo ? ha_db_find_host(&D.db, j->req.name) : HA_NO_HOST;
        if (h >= 0 && D.db.host[h].joined && !(pool_view() & HA_BIT(h)) && pool_is_master()) {
            /* it was added but may not know it: take it out again, so the
             * pool does not count a host that will never come (a host that
             * did get everything finds itself removed and stops) */
            audit(LOG_WARNING, "vigild", j->log, "removing %s from the pool again: its join did not complete",
                  j->req.name);
            struct ha_change c = {.type = HA_CHG_HOST_LEAVE, .host = h, .vm = -1};
            pool_propose(&c, NULL);
        }
        explicit_bzero(&j->req, sizeof j->req);
        free(j);
        return 0;
    }
    audit(LOG_NOTICE, "vigild", "a join request on the join port", "host %s (%s) asks to join from %s",
          j->req.name, j->req.address, j->peer);
    j->next = js_jobs;
    js_jobs = j;
    js_handle(j);
    return 0;
}

static void js_start(void)
{
    char err[512];
    char dir[4300];
    snprintf(dir, sizeof dir, "%s/tls", D.cfg.state_dir);
    uint8_t fpr[JOIN_FPR_LEN];
    if (join_cert_ensure(dir, D.cfg.name, fpr, err, sizeof err) < 0) {
        audit(LOG_ERR, "vigild", err, "the join server cannot start: no TLS certificate");
        return;
    }
    D.js = join_server_new(dir, D.cfg.address, D.cfg.join_port, err, sizeof err);
    if (!D.js) {
        audit(LOG_ERR, "vigild", err, "the join server cannot listen on %s port %d", D.cfg.address, D.cfg.join_port);
        return;
    }
    if (pipe2(D.js_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        join_server_free(D.js);
        D.js = NULL;
        return;
    }
    qb_loop_poll_add(D.loop, QB_LOOP_MED, D.js_pipe[0], POLLIN, NULL, js_ready);
    D.js_running = true;
    if (pthread_create(&js_thread, NULL, js_main, NULL) != 0) {
        D.js_running = false;
        qb_log(LOG_ERR, "cannot start the join server thread");
        return;
    }
    char hex[JOIN_FPR_HEX_SIZE];
    join_fpr_hex(fpr, hex, sizeof hex);
    qb_log(LOG_INFO, "join server on %s port %d, certificate %s", D.cfg.address, D.cfg.join_port, hex);
}

static void js_stop(void)
{
    if (!D.js)
        return;
    pthread_mutex_lock(&js_lock);
    bool was = D.js_running;
    D.js_running = false;
    pthread_cond_broadcast(&js_cond);
    pthread_mutex_unlock(&js_lock);
    if (was)
        pthread_join(js_thread, NULL);
    /* jobs the thread gave up on: the thread freed their connections */
    while (js_jobs) {
        struct join_job *j = js_jobs;
        js_jobs = j->next;
        join_reply_free(&j->reply);
        free(j);
    }
    qb_loop_poll_del(D.loop, D.js_pipe[0]);
    /* jobs still in the pipe (the thread freed their connections) */
    struct join_job *j;
    while (read(D.js_pipe[0], &j, sizeof j) == (ssize_t)sizeof j)
        free(j);
    close(D.js_pipe[0]);
    close(D.js_pipe[1]);
    D.js_pipe[0] = D.js_pipe[1] = -1;
    join_server_free(D.js);
    D.js = NULL;
}

const uint8_t *pool_join_fpr(uint8_t out[32]);
const uint8_t *pool_join_fpr(uint8_t out[32])
{
    if (!D.js)
        return NULL;
    join_server_fpr(D.js, out);
    return out;
}

static void ops_done(void *ctx, uint64_t tag, int status, const char *why)
{
    (void)ctx;
    struct request *rq = request_find(tag);
    if (!rq)
        return;
    rq->commits--;
    /* a sync round dropped it everywhere: propose it again, if it was the
     * only one in flight (so the order of a request's changes holds) */
    if (status == -ESTALE && rq->inflight_max == 1 && rq->retries < PROPOSE_AGAIN_MAX && D.rep &&
        replica_propose(D.rep, &rq->last, rq->id) == 0) {
        rq->retries++;
        rq->commits++;
        qb_log(LOG_INFO, "a change arrived during a sync round and was dropped by every member: proposed again");
        return;
    }
    struct join_job *j = js_of(tag);
    if (j) {
        js_stage_done(j, rq, status, why);
        return;
    }
    if (status == -EAGAIN) {
        request_finish(rq, 1, "%snot confirmed: %s; it may or may not be kept: check `vigil status` and `vigil "
                              "events` once the pool is stable\n", rq->text, why);
        return;
    }
    if (status < 0) {
        request_finish(rq, 1, "%snot done: %s\n", rq->text, why);
        return;
    }
    if (rq->commits > 0)
        return;
    if (rq->kind == RQ_TOKEN)
        request_finish(rq, 0, "%s\n", rq->token);
    else if (rq->kind == RQ_LEAVE && rq->answered_core && rq->code == 0)
        pool_leave_accepted(rq, rq->text);
    else if (rq->answered_core || rq->text[0])
        request_finish(rq, rq->code, "%s", rq->text);
}

void pool_request_gone(struct request *rq)
{
    struct join_job *j = js_of(rq->id);
    if (j)
        js_answer(j, 1, "the pool did not confirm the join in time");
}

/* ---------------------------------------------------------------- entering and leaving */

static const struct replica_ops rops = {
    .send = ops_send, .persist_change = ops_persist_change, .persist_state = ops_persist_state,
    .applied = ops_applied, .synced = ops_synced, .done = ops_done, .log = ops_log};

static int pool_enter(char *err, size_t errlen)
{
    int self = ha_db_find_host(&D.db, D.cfg.name);
    if (self < 0 || !D.db.host[self].joined || !D.db.host[self].nodeid) {
        snprintf(err, errlen, "this host (%s) is not a member of pool %s", D.cfg.name, D.db.pool_name);
        return -ENOENT;
    }
    D.self = self;
    D.nodeid = D.db.host[self].nodeid;
    if (access(D.cfg.corosync_authkey, R_OK) < 0) {
        snprintf(err, errlen, "corosync's authkey %s is missing: this host cannot talk to the pool; move %s aside, "
                              "start vigild, eject this host on the master and join again (docs/pool-database.md)",
                 D.cfg.corosync_authkey, D.pool_dir);
        return -ENOENT;
    }
    int rc = corosync_conf_refresh(true, err, errlen);
    if (rc < 0)
        return rc;
    if (!corosync_running()) {
        char e2[512];
        for (int i = 0; i < 50 && corosync_process(); i++)
            usleep(100 * 1000); /* one still stopping would make the new one exit */
        if (run_command("corosync_start", D.cfg.corosync_start, 30, e2, sizeof e2) < 0)
            audit(LOG_ERR, "vigild", e2, "corosync did not start; vigild keeps trying to reach it");
        else
            audit(LOG_NOTICE, "vigild", "this host is in a pool and corosync was not running", "started corosync (%s)", D.cfg.corosync_start);
    }
    D.core = ha_core_new(&D.db, D.self);
    core_disk_mode = D.db.set.heartbeat_disk;
    D.rep = replica_new(&D.db, D.nodeid, &rops);
    if (!D.core || !D.rep) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char e3[256];
    if (vms_start(e3, sizeof e3) < 0) /* its connection comes and goes on its own */
        audit(LOG_ERR, "vigild", e3, "the VM agent did not start: this host runs no VM for the pool");
    D.in_pool = true;
    D.synced = D.connected = D.quorate = false;
    static const struct membership_ops mops = {
        .view = on_view, .quorum = on_quorum, .connection = on_connection, .deliver = on_deliver};
    char group[128];
    snprintf(group, sizeof group, "vigil-%.36s", D.db.pool_uuid);
    D.mem = membership_start(D.loop, group, &mops);
    js_start();
    char e4[512];
    if (hb_start(e4, sizeof e4) < 0)
        audit(LOG_ERR, "vigild", e4, "the heartbeat disk %s cannot be used", D.cfg.heartbeat_disk);
    else if (D.db.set.heartbeat_disk && !hb_running())
        warn_no_disk();
    watchdog_start();
    core_membership();
    qb_log(LOG_NOTICE, "member of pool %s as %s (node %u); database version %" PRIu64 ", epoch %" PRIu64,
           D.db.pool_name, D.cfg.name, D.nodeid, D.db.version, D.db.master_epoch);
    return 0;
}

static void pool_exit(void)
{
    watchdog_stop(true);
    hb_stop();
    vms_stop();
    js_stop();
    membership_stop(D.mem);
    D.mem = NULL;
    if (D.rep) {
        replica_abort(D.rep, "this host left the pool");
        replica_free(D.rep);
    }
    D.rep = NULL;
    ha_core_free(D.core);
    D.core = NULL;
    qb_loop_timer_del(D.loop, D.core_timer);
    qb_loop_timer_del(D.loop, D.corosync_timer);
    pooldb_close(D.store);
    D.store = NULL;
    ha_db_free(&D.db);
    ha_db_init(&D.db);
    D.in_pool = D.synced = D.connected = D.quorate = false;
    D.self = HA_NO_HOST;
    D.nodeid = 0;
}

static void leave_now(void *data)
{
    (void)data;
    if (!D.in_pool || !D.leaving_now)
        return;
    D.leaving_now = false;
    char name[HA_NAME_MAX];
    snprintf(name, sizeof name, "%s", D.db.pool_name);
    pool_exit();
    char err[512];
    if (pooldb_destroy(D.pool_dir, err, sizeof err) < 0)
        audit(LOG_ERR, "vigild", err, "cannot remove the pool database copy");
    if (run_command("corosync_stop", D.cfg.corosync_stop, 30, err, sizeof err) < 0)
        audit(LOG_ERR, "vigild", err, "corosync did not stop");
    for (int i = 0; i < 150 && corosync_process(); i++)
        usleep(100 * 1000); /* the command returns before corosync is gone */
    if (corosync_process())
        audit(LOG_ERR, "vigild", "a corosync process is still there 15 s after corosync_stop", "corosync did not stop");
    /* the key opens the pool's network: a host that left keeps none */
    if (unlink(D.cfg.corosync_authkey) < 0 && errno != ENOENT)
        qb_log(LOG_WARNING, "cannot remove %s: %s", D.cfg.corosync_authkey, strerror(errno));
    audit(LOG_NOTICE, "vigild", "the master removed it from the pool database", "this host left pool %s; corosync stopped",
          name);
    pool_check_waiters();
}

void pool_leave_accepted(struct request *rq, const char *text)
{
    rq->code = 0;
    rq->deadline = now_ms() + 60000;
    if (text != rq->text)
        snprintf(rq->text, sizeof rq->text, "%s", text);
    pool_check_waiters();
}

void pool_check_waiters(void)
{
    for (struct request *rq = D.requests, *next; rq; rq = next) {
        next = rq->next;
        if (rq->kind == RQ_CREATE && pool_is_master())
            request_finish(rq, 0, "pool %s created; this host (%s) is its master\n", D.db.pool_name, D.cfg.name);
        else if (rq->kind == RQ_JOIN && D.synced && (pool_view() & HA_BIT(D.self)) && D.db.master != HA_NO_HOST &&
                 (pool_view() & HA_BIT(D.db.master)))
            request_finish(rq, 0, "%s joined pool %s (node %u); %d member(s) in view\n", D.cfg.name, D.db.pool_name,
                           D.nodeid, ha_popcount(pool_view()));
        else if (rq->kind == RQ_JOIN && !D.in_pool)
            request_finish(rq, 1, "the master removed this host again: its join did not complete (the answer or its "
                                  "confirmation was lost); ask for a new token and join again\n");
        else if (rq->kind == RQ_LEAVE && rq->code == 0 && !D.in_pool)
            request_finish(rq, 0, "%s left the pool\n", D.cfg.name);
    }
}

int pool_load(char *err, size_t errlen)
{
    snprintf(D.pool_dir, sizeof D.pool_dir, "%s/pool", D.cfg.state_dir);
    ha_db_init(&D.db);
    uint64_t epoch;
    bool repaired = false;
    struct ha_db db;
    int rc = pooldb_open(D.pool_dir, &D.store, &epoch, &db, &repaired, err, errlen);
    if (rc == -ENOENT) {
        qb_log(LOG_NOTICE, "this host is in no pool (%s holds none): waiting for 'vigil pool create' or 'vigil pool "
                           "join'", D.pool_dir);
        return 0;
    }
    if (rc < 0)
        return rc;
    if (repaired)
        qb_log(LOG_WARNING, "pool database: %s", err);
    ha_db_free(&D.db);
    D.db = db;
    if (epoch != D.db.master_epoch)
        qb_log(LOG_WARNING, "pool database: store epoch %" PRIu64 " differs from the master epoch %" PRIu64, epoch,
               D.db.master_epoch);
    char e2[512];
    rc = pool_enter(e2, sizeof e2);
    if (rc == -ENOENT && ha_db_find_host(&D.db, D.cfg.name) >= 0 &&
        !D.db.host[ha_db_find_host(&D.db, D.cfg.name)].joined) {
        audit(LOG_WARNING, "vigild", e2, "this host left pool %s: removing its stale copy", D.db.pool_name);
        pool_exit();
        pooldb_destroy(D.pool_dir, err, errlen);
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", e2);
        return rc;
    }
    return 0;
}

void pool_shutdown(void)
{
    if (D.in_pool)
        pool_exit();
    ha_actions_free(&D.acts);
    ha_db_free(&D.db);
}

/* ---------------------------------------------------------------- create and join */

void host_facts(uint64_t *mem_mb, int *cpus)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE), n = sysconf(_SC_NPROCESSORS_ONLN);
    *mem_mb = pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz / (1024 * 1024) : 0;
    *cpus = n > 0 ? (int)n : 1;
}

static int apply_all(struct ha_db *db, const struct ha_change *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ha_db_apply(db, &c[i]) < 0)
            return -EINVAL;
    return 0;
}

int pool_create(struct request *rq, const char *name, long token_ms, char *err, size_t errlen)
{
    if (!D.cfg.address[0]) {
        snprintf(err, errlen, "this host has no address: set 'address' (corosync's ring0 address) in %s first",
                 D.config_path);
        return -EINVAL;
    }
    struct ha_db db;
    ha_db_init(&db);
    struct ha_change c[5] = {{.type = HA_CHG_POOL_CREATE, .host = HA_NO_HOST, .vm = -1},
                             {.type = HA_CHG_SETTING, .host = HA_NO_HOST, .vm = -1},
                             {.type = HA_CHG_SETTING, .host = HA_NO_HOST, .vm = -1},
                             {.type = HA_CHG_HOST_ADD, .host = HA_NO_HOST, .vm = -1, .arg = 1},
                             {.type = HA_CHG_MASTER, .host = 0, .vm = -1}};
    snprintf(c[0].name, sizeof c[0].name, "%s", name);
    uint8_t u[16];
    if (join_random(u, sizeof u) < 0) {
        snprintf(err, errlen, "no random numbers for the pool's UUID");
        return -EIO;
    }
    u[6] = (uint8_t)((u[6] & 0x0f) | 0x40);
    u[8] = (uint8_t)((u[8] & 0x3f) | 0x80);
    snprintf(c[0].text, sizeof c[0].text,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4],
             u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    /* no heartbeat disk yet: the pool runs on corosync quorum (docs/pool.md) */
    snprintf(c[1].name, sizeof c[1].name, "heartbeat_disk");
    snprintf(c[1].text, sizeof c[1].text, "no");
    snprintf(c[2].name, sizeof c[2].name, "token_timeout");
    snprintf(c[2].text, sizeof c[2].text, "%ldms", token_ms);
    snprintf(c[3].name, sizeof c[3].name, "%s", D.cfg.name);
    snprintf(c[3].text, sizeof c[3].text, "%s", D.cfg.address);
    host_facts(&c[3].mem_mb, &c[3].cpus);
    if (!ha_name_valid(name)) {
        snprintf(err, errlen, "'%s' is not a valid pool name: 1..63 of A-Z a-z 0-9 . _ -", name);
        return -EINVAL;
    }
    if (apply_all(&db, c, 5) < 0) {
        ha_db_free(&db);
        snprintf(err, errlen, "the new pool's database refused its first changes (a bug)");
        return -EINVAL;
    }
    char conf[65536];
    int n = cconf_render(&db, conf, sizeof conf, err, errlen);
    if (n < 0) {
        ha_db_free(&db);
        return n;
    }
    if (corosync_running()) {
        ha_db_free(&db);
        snprintf(err, errlen, "corosync already runs on this host (outside any vigil pool): stop it first");
        return -EBUSY;
    }
    /* the key and corosync.conf first, the database last: a crash in
     * between leaves no pool, and files the next create overwrites */
    int rc = cconf_authkey_create(D.cfg.corosync_authkey, err, errlen);
    if (rc >= 0)
        rc = cconf_write_file(D.cfg.corosync_conf, conf, (size_t)n, 0644, err, errlen);
    if (rc >= 0)
        rc = pooldb_create(D.pool_dir, db.master_epoch, &db, &D.store, err, errlen);
    if (rc < 0) {
        ha_db_free(&db);
        return rc;
    }
    ha_db_free(&D.db);
    D.db = db;
    char actor[96];
    snprintf(actor, sizeof actor, "operator (uid %u) on %s", (unsigned)rq->uid, D.cfg.name);
    audit(LOG_NOTICE, actor, "vigil pool create", "pool %s created on %s (uuid %s, no heartbeat disk)", name,
          D.cfg.name, D.db.pool_uuid);
    rc = pool_enter(err, errlen);
    if (rc < 0) {
        pool_exit(); /* closes the store: the next attempt finds a pool and says so */
        return rc;
    }
    rq->kind = RQ_CREATE;
    snprintf(rq->text, sizeof rq->text, "pool %s created", name);
    pool_check_waiters();
    return 0;
}

int pool_join(struct request *rq, const char *addr, const char *token, char *err, size_t errlen)
{
    if (!D.cfg.address[0]) {
        snprintf(err, errlen, "this host has no address: set 'address' (corosync's ring0 address) in %s first",
                 D.config_path);
        return -EINVAL;
    }
    struct join_token t;
    char why[256];
    if (join_token_decode(token, &t, why, sizeof why) < 0) {
        snprintf(err, errlen, "bad join token: %s", why);
        return -EINVAL;
    }
    if (strlen(addr) >= sizeof t.host) {
        snprintf(err, errlen, "'%s' is not an IP address", addr);
        return -EINVAL;
    }
    snprintf(t.host, sizeof t.host, "%s", addr); /* the fingerprint still decides */
    struct join_request req = {0};
    snprintf(req.name, sizeof req.name, "%s", D.cfg.name);
    snprintf(req.address, sizeof req.address, "%s", D.cfg.address);
    memcpy(req.secret, t.secret, sizeof req.secret);
    if (corosync_running()) {
        snprintf(err, errlen, "corosync already runs on this host (outside any vigil pool): stop it first");
        return -EBUSY;
    }
    struct join_reply r;
    qb_log(LOG_NOTICE, "joining the pool of the master at %s port %d", t.host, t.port);
    /* blocking, bounded: this host is in no pool, nothing else waits on it */
    int rc = join_client(&t, &req, 15000, &r, err, errlen);
    if (rc < 0)
        return rc;
    if (r.status) {
        snprintf(err, errlen, "the master refused: %s", r.reason);
        join_reply_free(&r);
        return -EPERM;
    }
    struct ha_db db;
    uint64_t epoch;
    rc = pooldb_decode_snapshot(r.snapshot, r.snapshot_len, &epoch, &db, why, sizeof why);
    if (rc < 0) {
        snprintf(err, errlen, "the master sent a pool database this host cannot read: %s", why);
        join_reply_free(&r);
        return -EPROTO;
    }
    int h = ha_db_find_host(&db, D.cfg.name);
    if (h < 0 || !db.host[h].joined || db.host[h].nodeid != r.nodeid) {
        snprintf(err, errlen, "the master's database does not list this host as node %u", r.nodeid);
        ha_db_free(&db);
        join_reply_free(&r);
        return -EPROTO;
    }
    rc = cconf_write_file(D.cfg.corosync_authkey, r.authkey, r.authkey_len, 0400, err, errlen);
    if (rc >= 0)
        rc = cconf_write_file(D.cfg.corosync_conf, r.corosync_conf, strlen(r.corosync_conf), 0644, err, errlen);
    if (rc >= 0)
        rc = pooldb_create(D.pool_dir, db.master_epoch, &db, &D.store, err, errlen);
    join_reply_free(&r);
    if (rc < 0) {
        ha_db_free(&db);
        return rc;
    }
    ha_db_free(&D.db);
    D.db = db;
    char actor[96], reason[160];
    snprintf(actor, sizeof actor, "operator (uid %u) on %s", (unsigned)rq->uid, D.cfg.name);
    snprintf(reason, sizeof reason, "vigil pool join, with a token of the master at %s", addr);
    audit(LOG_NOTICE, actor, reason, "host %s joined pool %s (node %u)", D.cfg.name, D.db.pool_name,
          D.db.host[h].nodeid);
    rc = pool_enter(err, errlen);
    if (rc < 0) {
        pool_exit(); /* closes the store: the next attempt finds a pool and says so */
        return rc;
    }
    rq->kind = RQ_JOIN;
    snprintf(rq->text, sizeof rq->text, "joined pool %s", D.db.pool_name);
    pool_check_waiters();
    return 0;
}
