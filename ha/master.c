/* What the master decides: which hosts to fence, where VMs go after a
 * failure, evacuation for maintenance and leave, and admin commands. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* Operation ids grow across masters: the lease epoch (the lease counter
 * when this master took the lease, which only grows) in the high half. */
static uint64_t next_op_id(struct ha_core *c)
{
    return (c->lease_epoch << 32) | (++c->op_seq & 0xffffffffu);
}

static bool obs_present(enum ha_vm_obs o)
{
    return o == HA_OBS_STARTING || o == HA_OBS_RUNNING || o == HA_OBS_STOPPING || o == HA_OBS_MIGRATING;
}

static void set_reason(struct vm_rt *rt, const char *s) { snprintf(rt->reason, sizeof rt->reason, "%s", s); }

static void start_vm(struct ha_core *c, struct usage *u, int v, int h, const char *why)
{
    struct vm_rt *rt = &c->vm[v];
    /* the placement is durable before the start is ordered */
    if (c->db->vm[v].host != h || c->db->vm[v].migrating_to != HA_NO_HOST)
        commit(c, (struct ha_change){.type = HA_CHG_VM_PLACE, .vm = v, .host = h});
    struct ha_action *x = emit(c, HA_ACT_VM_START);
    x->vm = v;
    x->host = h;
    x->op = rt->op_id = next_op_id(c);
    snprintf(x->why, sizeof x->why, "%s", why);
    rt->op = OP_START;
    rt->op_host = h;
    rt->op_deadline = c->now + c->db->set.op_timeout;
    if (rt->obs_host == h && rt->obs == HA_OBS_CRASHED)
        rt->restarts++;
    else
        rt->restarts = 0;
    rt->attempts++;
    rt->on_host = HA_NO_HOST;
    rt->on_force = false;
    snprintf(rt->placed, sizeof rt->placed, "started on %s: %s", hname(c, h), why);
    snprintf(rt->reason, sizeof rt->reason, "starting on %s: %s", hname(c, h), why);
    usage_add(c, u, v, h);
    u->place[v] = h;
}

void migrate_vm(struct ha_core *c, struct usage *u, int v, int from, int to, const char *why)
{
    struct vm_rt *rt = &c->vm[v];
    /* until its outcome is recorded the VM may be on either host: a master
     * that takes over must account for both */
    commit(c, (struct ha_change){.type = HA_CHG_VM_MIGRATING, .vm = v, .host = from, .arg = to});
    struct ha_action *x = emit(c, HA_ACT_VM_MIGRATE);
    x->vm = v;
    x->host = from;
    x->to = to;
    x->op = rt->op_id = next_op_id(c);
    snprintf(x->why, sizeof x->why, "%s", why);
    rt->op = OP_MIGRATE;
    rt->op_host = from;
    rt->op_to = to;
    rt->op_deadline = c->now + c->db->set.op_timeout;
    snprintf(rt->reason, sizeof rt->reason, "migrating from %s to %s: %s", hname(c, from), hname(c, to), why);
    usage_add(c, u, v, to);
    u->place[v] = to;
}

static void stop_vm(struct ha_core *c, int v, int h, const char *why)
{
    struct vm_rt *rt = &c->vm[v];
    struct ha_action *x = emit(c, HA_ACT_VM_STOP);
    x->vm = v;
    x->host = h;
    x->op = rt->op_id = next_op_id(c);
    snprintf(x->why, sizeof x->why, "%s", why);
    rt->op = OP_STOP;
    rt->op_host = h;
    rt->op_deadline = c->now + c->db->set.op_timeout;
    snprintf(rt->reason, sizeof rt->reason, "stopping on %s: %s", hname(c, h), why);
}

/* ------------------------------------------------------------ agent reports */

void vm_report(struct ha_core *c, int host, int v, enum ha_vm_obs st, int to, uint64_t op)
{
    struct vm_rt *rt = &c->vm[v];
    if (fenced_now(c, host))
        return; /* sent before it was fenced and delivered late: it runs nothing now */
    if (!obs_present(st) && rt->op != OP_NONE && op != rt->op_id && (rt->op_host == host || rt->op_to == host))
        return; /* a stop or crash of an earlier incarnation, delivered after our new operation */
    if (obs_present(st) && rt->obs_host != HA_NO_HOST && rt->obs_host != host && op && op < rt->obs_op)
        return; /* an older incarnation elsewhere, delivered late: it has moved on since */
    rt->obs_seq = ++c->report_seq;
    if (obs_present(st)) {
        rt->obs_op = op > rt->obs_op ? op : rt->obs_op;
        rt->arriving = HA_NO_HOST;
        rt->query_seq = 0; /* seen: no question pending */
        rt->obs_host = host;
        rt->obs_placed = c->db->vm[v].host;
        rt->obs = st;
        rt->obs_to = st == HA_OBS_MIGRATING ? to : HA_NO_HOST;
        if (st == HA_OBS_RUNNING) {
            rt->lost_from = HA_NO_HOST;
            if ((rt->op == OP_START && rt->op_host == host) || (rt->op == OP_MIGRATE && rt->op_to == host)) {
                rt->op = OP_NONE;
                rt->avoid_host = HA_NO_HOST;
            }
            rt->failed = false;
            rt->attempts = 0;
        }
        return;
    }
    if (rt->obs_host != host && rt->obs_host != HA_NO_HOST)
        return; /* a late report from where it no longer is */
    if (st == HA_OBS_NONE && rt->obs == HA_OBS_MIGRATING && rt->obs_to != HA_NO_HOST)
        rt->arriving = rt->obs_to; /* the destination may hold it now: prove it before restarting */
    rt->obs_host = st == HA_OBS_CRASHED ? host : HA_NO_HOST;
    rt->obs = st;
    if (rt->op == OP_STOP && rt->op_host == host)
        rt->op = OP_NONE;
    if (rt->op == OP_START && rt->op_host == host && st == HA_OBS_CRASHED) {
        rt->op = OP_NONE;
        rt->avoid_host = host;
    }
    if (st == HA_OBS_CRASHED && c->master)
        logf_(c, "agent reported an unexpected stop", "%s crashed on %s", vname(c, v), hname(c, host));
}

/* Wait before trying a failed start or migration again: a failing target
 * must not be hammered, and the state it reports needs time to arrive. */
#define RETRY_DELAY 2000

void vm_failed(struct ha_core *c, int v, uint64_t op, const char *why)
{
    struct vm_rt *rt = &c->vm[v];
    if (rt->op == OP_NONE || op != rt->op_id)
        return; /* an answer about an earlier (or unnamed) operation */
    int where = rt->op == OP_MIGRATE ? rt->op_to : rt->op_host;
    bool was_start = rt->op == OP_START;
    const char *what = was_start ? "start" : rt->op == OP_STOP ? "stop" : "migration";
    logf_(c, why, "%s of %s on %s failed", what, vname(c, v), hname(c, where));
    snprintf(rt->reason, sizeof rt->reason, "%s on %s failed: %s", what, hname(c, where), why);
    if (rt->op != OP_STOP) {
        rt->avoid_host = where;
        rt->retry_at = c->now + RETRY_DELAY;
    }
    rt->op = OP_NONE;
    if (c->db->vm[v].protect == HA_PROTECT_BEST_EFFORT && was_start && rt->attempts >= 1) {
        rt->failed = true;
        snprintf(rt->failed_why, sizeof rt->failed_why, "failed: best-effort start on %s failed (%s); it gets one try",
                 hname(c, where), why);
    }
}

/* h entered our view again.  What we saw running there is from before it
 * left: since then it may have crashed, been fenced, rebooted, or the VM
 * may have been restarted elsewhere by another master.  Such a sighting
 * proves neither that the VM runs there (so it is never written into the
 * database as its placement, nor migrated or stopped from there) nor that
 * it does not: the VM may be there until h's new inventory says. */
void vms_unconfirm(struct ha_core *c, int h)
{
    for (int v = 0; v < c->nvm; v++) {
        struct vm_rt *rt = &c->vm[v];
        if (rt->obs_host == h && obs_present(rt->obs)) {
            rt->unconfirmed = h;
            rt->unc_placed = rt->obs_placed;
            rt->obs_host = HA_NO_HOST;
            rt->obs = HA_OBS_NONE;
            rt->obs_to = HA_NO_HOST;
        }
    }
}

/* Everything that ran on h is off now. */
void vms_host_fenced(struct ha_core *c, int h)
{
    for (int v = 0; v < c->nvm; v++) {
        struct vm_rt *rt = &c->vm[v];
        bool was_here = (rt->obs_host == h && obs_present(rt->obs)) || rt->unconfirmed == h;
        if (rt->obs_host == h) {
            rt->obs_host = HA_NO_HOST;
            rt->obs = HA_OBS_NONE;
        }
        if (rt->unconfirmed == h)
            rt->unconfirmed = HA_NO_HOST;
        if ((rt->op == OP_START && rt->op_host == h) || (rt->op == OP_MIGRATE && rt->op_host == h)) {
            rt->op = OP_NONE;
            was_here = true;
        }
        if (rt->op == OP_MIGRATE && rt->op_to == h)
            rt->op = OP_NONE; /* stays on the source; the source's report says so */
        if (was_here || c->db->vm[v].host == h) {
            if (rt->lost_from == HA_NO_HOST)
                rt->lost_from = h; /* the first failure is the one an operator asks about */
            rt->restarts = 0;
            rt->attempts = 0;
        }
    }
}

/* ------------------------------------------------------------ reconcile */

static bool owns_vms(const struct ha_core *c, int h)
{
    for (int v = 0; v < c->nvm; v++)
        if ((c->vm[v].obs_host == h && obs_present(c->vm[v].obs)) || c->vm[v].unconfirmed == h ||
            (c->db->vm[v].host == h && c->db->vm[v].want_running) || c->db->vm[v].migrating_to == h ||
            (c->vm[v].op != OP_NONE && (c->vm[v].op_host == h || c->vm[v].op_to == h)))
            return true;
    return false;
}

static void reconcile_hosts(struct ha_core *c)
{
    const struct ha_db *db = c->db;
    for (int h = 0; h < db->nhosts; h++) {
        if (h == c->self || !db->host[h].joined)
            continue;
        struct fence_state *f = &c->fence[h];
        /* back only if it entered corosync again after we knew it fenced:
         * right after a fence it may still be listed for a token timeout */
        bool back = f->phase == F_DONE && !fenced_now(c, h);
        if (db->host[h].fenced || f->phase == F_DONE) {
            if (back) {
                /* a new life: if it is unhealthy it is fenced again below */
                logf_(c, "it is a corosync member again", "%s rejoined after its fence", hname(c, h));
                if (db->host[h].fenced)
                    commit(c, (struct ha_change){.type = HA_CHG_HOST_FENCED, .host = h, .vm = -1, .arg = 0});
                *f = (struct fence_state){0};
            } else if (f->phase != F_DONE) {
                /* another master confirmed it.  If the host is in corosync
                 * now it came back before we took over: its own reports
                 * are the truth (worst case it is off and leaves corosync
                 * soon, and is fenced again).  Otherwise what ran there is off. */
                bool member = (c->members & HA_BIT(h)) != 0;
                *f = (struct fence_state){.phase = F_DONE, .done_at = member ? c->member_since[h] - 1 : c->now};
                snprintf(f->how, sizeof f->how, "confirmed by an earlier master (pool database)");
                if (!member)
                    vms_host_fenced(c, h);
            }
            continue;
        }
        if (f->phase != F_IDLE && !db->set.heartbeat_disk && (c->members & HA_BIT(h)) &&
            (!f->member_at_start || c->member_since[h] > f->started) && (c->inventory & HA_BIT(h))) {
            /* Corosync-only: it came back into our quorate partition before
             * its fence was confirmed (its BMC did not answer), and has
             * listed every VM it runs since.  Nothing lost with it was
             * started elsewhere (that waits for the confirmation), and its
             * list now says what runs there: the fence has nothing left to
             * protect, and without a disk level it might never end. */
            logf_(c, "it is back in the quorate partition and has listed the VMs it runs",
                  "fence of %s called off", hname(c, h));
            *f = (struct fence_state){0};
        }
        if (f->phase != F_IDLE || c->verdict[h] == HA_ALIVE)
            continue;
        if (!(c->seen_alive & HA_BIT(h)) && !owns_vms(c, h))
            continue; /* never seen and owns nothing: nothing to protect against */
        char why[HA_REASON_MAX];
        snprintf(why, sizeof why, "%s (corosync: %s, disk slot: %s)", ha_verdict_name(c->verdict[h]),
                 (c->members & HA_BIT(h)) ? "member" : "gone",
                 !c->db->set.heartbeat_disk ? "none" : slot_fresh(c, h) ? "fresh" : "stale");
        fence_start(c, h, why);
    }
}

/* A VM others start after inherits their priority if it is higher: the
 * dependency of a priority-1 VM is needed as urgently as that VM. */
static int eprio(const struct ha_core *c, int v)
{
    return c->vm[v].eprio ? c->vm[v].eprio : c->db->vm[v].priority;
}

static void compute_eprio(struct ha_core *c)
{
    const struct ha_db *db = c->db;
    for (int v = 0; v < c->nvm; v++)
        c->vm[v].eprio = db->vm[v].priority;
    for (int v = 0; v < c->nvm; v++) /* walk each dependent's chain; chains have no cycles */
        for (int d = db->vm[v].after1 - 1, steps = 0; d >= 0 && steps < c->nvm; d = db->vm[d].after1 - 1, steps++)
            if (c->vm[d].eprio > db->vm[v].priority)
                c->vm[d].eprio = db->vm[v].priority;
}

static int cmp_prio(const struct ha_core *c, int a, int b)
{
    const struct ha_db_vm *x = &c->db->vm[a], *y = &c->db->vm[b];
    if (eprio(c, a) != eprio(c, b))
        return eprio(c, a) - eprio(c, b);
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return a - b;
}

static int sort_cb(const void *a, const void *b, void *c) { return cmp_prio(c, *(const int *)a, *(const int *)b); }
static void sort_vms(const struct ha_core *c, int *v, int n)
{
    qsort_r(v, (size_t)n, sizeof *v, sort_cb, (void *)c);
}

static void wait_for_fence_reason(struct ha_core *c, int v, int h)
{
    char buf[HA_REASON_MAX];
    fence_describe(c, h, buf, sizeof buf);
    set_reason(&c->vm[v], buf);
}

/* A sighting of VM v on host x, made when the database placed v on `placed`,
 * that the database has overtaken: a master has since placed v elsewhere (not
 * as a migration from x), which it did only after making sure v was not on
 * x any more.  Only for a host we cannot hear now: the reports of a host in
 * our view are current, and they win. */
static bool sighting_overtaken(const struct ha_core *c, int v, int x, int placed)
{
    const struct ha_db_vm *d = &c->db->vm[v];
    return !host_alive(c, x) && !(c->members & HA_BIT(x)) && d->host != HA_NO_HOST && d->host != x &&
           d->host != placed && d->migrating_to != x;
}

/* A VM not seen running anywhere may still run where the pool last put it
 * (or, mid-migration, at either end, or where we saw it before that host
 * left our view and came back).  It may start elsewhere only once each such
 * host is fenced, or alive and has listed every VM it runs. */
#define QUERY_RETRY 5000

static bool may_be_elsewhere_ok(struct ha_core *c, int v)
{
    const struct ha_db *db = c->db;
    const struct ha_db_vm *d = &db->vm[v];
    struct vm_rt *rt = &c->vm[v];
    int where[4] = {d->host, rt->unconfirmed, d->migrating_to, rt->arriving};
    for (int i = 0; i < 4; i++) {
        int x = where[i];
        if (x == HA_NO_HOST || !db->host[x].joined)
            continue;
        if (fenced_now(c, x) || (i == 1 && sighting_overtaken(c, v, x, rt->unc_placed)))
            continue;
        /* Corosync-only: a host in our view whose full list we hold since
         * it entered it says what runs there (its reports reach us in
         * order), even while a fence of it is pending.  Without a disk
         * level such a fence ends only when the BMC answers: an operator's
         * fence of a live host whose BMC is broken would otherwise hold
         * its VMs forever.  (With a heartbeat disk the pill ends it.) */
        bool listed = !db->set.heartbeat_disk && (c->members & HA_BIT(x)) && (c->inventory & HA_BIT(x));
        if (!host_alive(c, x) && !listed) {
            /* even a VM seen crashed there may have been restarted there since */
            wait_for_fence_reason(c, v, x);
            return false;
        }
        if (!(c->inventory & HA_BIT(x))) {
            snprintf(rt->reason, sizeof rt->reason, "waiting for %s to report the VMs it runs", hname(c, x));
            return false;
        }
        if (i <= 1)
            continue; /* its full list since it (re)entered our view says where the VM is not */
        /* A migration whose outcome is unknown: the destination may hold
         * it, and its reports may cross the source's.  Ask it for its full
         * list, and go on only with a list newer than the question. */
        if (!rt->query_seq || c->inv_seq[x] <= rt->query_seq) {
            if (!rt->query_seq || c->now - rt->query_at >= QUERY_RETRY) {
                struct ha_action *q = emit(c, HA_ACT_INVENTORY_QUERY);
                q->host = x;
                rt->query_seq = ++c->report_seq;
                rt->query_at = c->now;
            }
            snprintf(rt->reason, sizeof rt->reason, "waiting for %s to say whether %s arrived there (migration outcome unknown)",
                     hname(c, x), vname(c, v));
            return false;
        }
    }
    if (rt->query_seq) { /* proven: it is not at the destination */
        rt->query_seq = 0;
        rt->arriving = HA_NO_HOST;
        if (d->migrating_to != HA_NO_HOST)
            commit(c, (struct ha_change){.type = HA_CHG_VM_PLACE, .vm = v, .host = d->host});
    }
    return true;
}

static void reconcile_vms(struct ha_core *c, struct usage *u)
{
    const struct ha_db *db = c->db;
    int *todo = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *todo);
    if (!todo)
        abort();
    int ntodo = 0;
    compute_eprio(c);

    for (int v = 0; v < c->nvm; v++) {
        struct vm_rt *rt = &c->vm[v];
        const struct ha_db_vm *d = &db->vm[v];
        if (rt->op != OP_NONE) {
            if (c->now >= rt->op_deadline)
                vm_failed(c, v, rt->op_id, "no answer from the agent in time");
            else {
                int h = rt->op_host; /* START/STOP target, MIGRATE source */
                if (rt->op == OP_MIGRATE && host_alive(c, h))
                    h = rt->op_to;
                if (!host_alive(c, h) && db->host[h].joined)
                    wait_for_fence_reason(c, v, h);
                continue;
            }
        }
        int at = obs_present(rt->obs) ? rt->obs_host : HA_NO_HOST;
        if (at != HA_NO_HOST) {
            if (!db->host[at].joined) {
                snprintf(rt->reason, sizeof rt->reason, "running on %s, which is not in the pool", hname(c, at));
                continue;
            }
            if (fenced_now(c, at) || sighting_overtaken(c, v, at, rt->obs_placed)) {
                /* its host is off, or a later master moved it away: not there */
                rt->obs = HA_OBS_NONE;
                rt->obs_host = HA_NO_HOST;
                at = HA_NO_HOST;
            } else if (!host_alive(c, at)) {
                wait_for_fence_reason(c, v, at);
                continue;
            }
        }
        if (at != HA_NO_HOST) {
            if (d->host != at || (d->migrating_to != HA_NO_HOST && rt->obs == HA_OBS_RUNNING))
                commit(c, (struct ha_change){.type = HA_CHG_VM_PLACE, .vm = v, .host = at});
            if (rt->placed[0] && strstr(rt->placed, hname(c, at)))
                snprintf(rt->reason, sizeof rt->reason, "running on %s (%s)", hname(c, at), rt->placed);
            else
                snprintf(rt->reason, sizeof rt->reason, "running on %s", hname(c, at));
            continue;
        }
        if (!d->want_running) {
            set_reason(rt, "stopped: its desired state is stopped");
            continue;
        }
        if (!may_be_elsewhere_ok(c, v))
            continue;
        if (rt->failed) {
            set_reason(rt, rt->failed_why[0] ? rt->failed_why : "failed");
            continue;
        }
        if (d->protect == HA_PROTECT_OFF) {
            set_reason(rt, "stopped: not protected (ha=off), so vigil does not restart it");
            continue;
        }
        if (d->protect == HA_PROTECT_BEST_EFFORT && rt->attempts >= 1) {
            rt->failed = true;
            snprintf(rt->failed_why, sizeof rt->failed_why, "failed: best-effort gets one try after a failure, and it was used");
            set_reason(rt, rt->failed_why);
            continue;
        }
        if (c->now < rt->retry_at)
            continue; /* its reason still says what failed */
        todo[ntodo++] = v;
    }

    sort_vms(c, todo, ntodo);
    for (int i = 0; i < ntodo; i++) {
        int v = todo[i];
        struct vm_rt *rt = &c->vm[v];
        const struct ha_db_vm *d = &db->vm[v];
        char why[HA_REASON_MAX];
        int first = d->after1 - 1;
        /* wait only for a dependency vigil itself will bring up */
        if (first >= 0 && db->vm[first].want_running && c->vm[first].obs != HA_OBS_RUNNING &&
            (db->vm[first].protect != HA_PROTECT_OFF || obs_present(c->vm[first].obs) ||
             c->vm[first].op == OP_START) && !c->vm[first].failed) {
            snprintf(rt->reason, sizeof rt->reason, "waiting for %s to run first (after=%s)", vname(c, first),
                     vname(c, first));
            /* keep its room in this pass, so that a VM of lower priority
             * does not take it while it waits */
            int rh = choose_host(c, u, v, HA_NO_HOST, HA_NO_HOST, HA_NO_HOST, NULL, 0);
            if (rh != HA_NO_HOST)
                usage_add(c, u, v, rh);
            continue;
        }
        bool crashed_here = rt->obs == HA_OBS_CRASHED && rt->obs_host != HA_NO_HOST && host_alive(c, rt->obs_host);
        int h;
        if (rt->on_host != HA_NO_HOST) {
            const char *nw = "";
            if (rt->on_force && eligible(c, rt->on_host, &nw) && fits(c, u, v, rt->on_host))
                h = rt->on_host; /* forced: the administrator overrode the rules */
            else
                h = choose_host(c, u, v, HA_NO_HOST, rt->on_host, HA_NO_HOST, why, sizeof why);
            if (h != HA_NO_HOST)
                start_vm(c, u, v, h, rt->on_force ? "administrator asked for this host (--force)"
                                                  : "administrator asked for this host");
        } else if (crashed_here && rt->restarts < db->set.max_restart && d->protect == HA_PROTECT_RESTART &&
                   rt->avoid_host != rt->obs_host && eligible(c, rt->obs_host, &(const char *){0}) &&
                   fits(c, u, v, rt->obs_host) && rules_check(c, u, v, rt->obs_host, HA_NO_HOST, NULL, 0) >= 0) {
            h = rt->obs_host;
            snprintf(why, sizeof why, "crashed; restart %d of %d in place", rt->restarts + 1, db->set.max_restart);
            start_vm(c, u, v, h, why);
        } else {
            int avoid = crashed_here ? rt->obs_host : rt->avoid_host;
            h = choose_host(c, u, v, avoid, HA_NO_HOST, HA_NO_HOST, why, sizeof why);
            if (h != HA_NO_HOST) {
                char w2[HA_REASON_MAX];
                const char *nw = "";
                if (crashed_here && !eligible(c, rt->obs_host, &nw))
                    snprintf(w2, sizeof w2, "crashed on %s, which is %s: relocating", hname(c, rt->obs_host), nw);
                else if (crashed_here)
                    snprintf(w2, sizeof w2, "crashed %d times on %s: relocating", rt->restarts + 1, hname(c, rt->obs_host));
                else if (rt->lost_from != HA_NO_HOST)
                    snprintf(w2, sizeof w2, "recovery after %s was fenced (priority %d)", hname(c, rt->lost_from), d->priority);
                else
                    snprintf(w2, sizeof w2, "desired running (priority %d)", d->priority);
                start_vm(c, u, v, h, w2);
            }
        }
        if (h == HA_NO_HOST) {
            snprintf(rt->reason, sizeof rt->reason, "waiting: %s", why);
            if (rt->avoid_host != HA_NO_HOST) {
                rt->avoid_host = HA_NO_HOST; /* give the failed host another chance next time */
                /* and make sure there is a next time: without a heartbeat
                 * disk no periodic event would wake us */
                rt->retry_at = c->now + RETRY_DELAY;
            }
        }
    }
    free(todo);
}

static void reconcile_evacuation(struct ha_core *c, struct usage *u)
{
    const struct ha_db *db = c->db;
    int *list = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *list);
    if (!list)
        abort();
    for (int x = 0; x < db->nhosts; x++) {
        const struct ha_db_host *d = &db->host[x];
        if (!d->joined || !(d->maintenance || d->leaving) || c->verdict[x] != HA_ALIVE || d->fenced)
            continue;
        int inflight = 0, n = 0;
        for (int v = 0; v < c->nvm; v++) {
            const struct vm_rt *rt = &c->vm[v];
            if (rt->op == OP_MIGRATE && rt->op_host == x)
                inflight++;
            else if (rt->op == OP_NONE && rt->obs_host == x && rt->obs == HA_OBS_RUNNING && c->now >= rt->retry_at)
                list[n++] = v;
        }
        sort_vms(c, list, n);
        for (int i = 0; i < n && inflight < db->set.evacuate_concurrency; i++) {
            int v = list[i];
            char why[HA_REASON_MAX];
            int to = choose_host(c, u, v, x, HA_NO_HOST, x, why, sizeof why);
            if (to == HA_NO_HOST) {
                snprintf(c->vm[v].reason, sizeof c->vm[v].reason, "cannot leave %s (%s): %s", hname(c, x),
                         d->leaving ? "leaving the pool" : "maintenance", why);
                continue;
            }
            snprintf(why, sizeof why, "evacuating %s (%s)", hname(c, x), d->leaving ? "leaving the pool" : "maintenance");
            migrate_vm(c, u, v, x, to, why);
            inflight++;
        }
    }
    free(list);
}

static void reconcile_leaving(struct ha_core *c)
{
    const struct ha_db *db = c->db;
    for (int x = 0; x < db->nhosts; x++) {
        if (!db->host[x].joined || !db->host[x].leaving)
            continue;
        if (x == c->self) {
            /* hand mastership over before leaving */
            int next = HA_NO_HOST;
            for (int h = 0; h < db->nhosts && next == HA_NO_HOST; h++)
                if (h != x && host_alive(c, h) && !db->host[h].leaving && (c->members & HA_BIT(h)))
                    next = h;
            if (next != HA_NO_HOST && db->preferred_master != next) {
                logf_(c, "the master is leaving the pool", "handing mastership over to %s", hname(c, next));
                commit(c, (struct ha_change){.type = HA_CHG_PREFERRED_MASTER, .host = next, .vm = -1});
            }
            continue;
        }
        bool busy = false;
        for (int v = 0; v < c->nvm && !busy; v++) {
            const struct vm_rt *rt = &c->vm[v];
            busy = (rt->obs_host == x && obs_present(rt->obs) && db->vm[v].protect != HA_PROTECT_OFF) ||
                   (rt->op != OP_NONE && (rt->op_host == x || rt->op_to == x));
        }
        if (!busy) {
            logf_(c, "no protected VM is left on it", "%s left the pool", hname(c, x));
            commit(c, (struct ha_change){.type = HA_CHG_HOST_LEAVE, .host = x, .vm = -1});
        }
    }
}

void master_reconcile(struct ha_core *c)
{
    reconcile_hosts(c);
    fence_tick(c);
    struct usage u;
    usage_build(c, &u);
    reconcile_vms(c, &u);
    reconcile_evacuation(c, &u);
    reconcile_leaving(c);
    balance_tick(c, &u);
    usage_free(&u);
}

ha_ms ops_next_deadline(const struct ha_core *c)
{
    ha_ms t = 0;
    for (int v = 0; v < c->nvm; v++) {
        if (c->vm[v].op != OP_NONE && (!t || c->vm[v].op_deadline < t))
            t = c->vm[v].op_deadline;
        if (c->vm[v].retry_at > c->now && (!t || c->vm[v].retry_at < t))
            t = c->vm[v].retry_at;
        ha_ms q = c->vm[v].query_at + QUERY_RETRY;
        if (c->vm[v].query_seq && q > c->now && (!t || q < t))
            t = q;
    }
    ha_ms b = balance_next(c);
    if (b && (!t || b < t))
        t = b;
    return t;
}

/* ------------------------------------------------------------ admin commands */

static int answer(struct ha_core *c, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int answer(struct ha_core *c, bool ok, const char *fmt, ...)
{
    struct ha_action *x = emit(c, HA_ACT_CMD_DONE);
    x->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->what, sizeof x->what, fmt, ap);
    va_end(ap);
    return 0;
}

static int count_protected_on(const struct ha_core *c, int h, char *names, size_t len)
{
    int n = 0;
    names[0] = 0;
    for (int v = 0; v < c->nvm; v++) {
        const struct vm_rt *rt = &c->vm[v];
        if (rt->obs_host == h && obs_present(rt->obs) && c->db->vm[v].protect != HA_PROTECT_OFF) {
            size_t l = strlen(names);
            if (n < 4)
                snprintf(names + l, len - l, "%s%s", n ? ", " : "", vname(c, v));
            else if (n == 4)
                snprintf(names + l, len - l, ", ...");
            n++;
        }
    }
    return n;
}

/* Admission control: would this change leave fewer tolerated host failures
 * than the pool's setting (and fewer than now)?  Writes the refusal. */
static bool admission_refuses(struct ha_core *c, const struct ha_cmd *cmd, const struct plan_mod *m, char *buf,
                              size_t len)
{
    int ftt = c->db->set.failures_to_tolerate;
    if (!ftt || cmd->force)
        return false;
    int after = plan_tolerance(c, m, ftt);
    if (after >= ftt)
        return false;
    int now = plan_tolerance(c, NULL, ftt);
    if (after >= now)
        return false; /* already below the setting; this does not make it worse */
    char a[16], n[16];
    snprintf(a, sizeof a, after < 0 ? "no" : "%d", after);
    snprintf(n, sizeof n, now < 0 ? "none" : "%d", now);
    snprintf(buf, len, "the pool would tolerate %s host failure(s) instead of the %d it is set to (now %s); use --force to do it anyway",
             a, ftt, n);
    return true;
}

static int do_command(struct ha_core *c, const struct ha_cmd *cmd, struct usage *up)
{
    const struct ha_db *db = c->db;
    struct usage u = *up; /* the same arrays: changes below are recorded in place */
    int h = cmd->host, v = cmd->vm;
    const char *w = "";
    char buf[HA_REASON_MAX];
    if ((h != HA_NO_HOST && (h < 0 || h >= db->nhosts)) || (v != -1 && (v < 0 || v >= db->nvms))) {
        return answer(c, false, "unknown host or VM");
    }

    switch (cmd->type) {
    case HA_CMD_HOST_MAINT:
    case HA_CMD_HOST_EVACUATE: {
        bool on = cmd->type == HA_CMD_HOST_EVACUATE || cmd->on;
        if (!db->host[h].joined)
            return answer(c, false, "%s is not in the pool", hname(c, h));
        if (on && !host_alive(c, h))
            return answer(c, false, "%s is %s: only a live host can enter maintenance", hname(c, h),
                          ha_host_state_name(ha_core_host_state(c, h)));
        struct plan_mod m = {.vm = -1, .to = HA_NO_HOST, .out = HA_BIT(h)};
        if (on && !db->host[h].maintenance && admission_refuses(c, cmd, &m, buf, sizeof buf))
            return answer(c, false, "maintenance of %s refused: %s", hname(c, h), buf);
        if (db->host[h].maintenance != on)
            commit(c, (struct ha_change){.type = HA_CHG_HOST_MAINT, .host = h, .vm = -1, .arg = on});
        logf_(c, "administrator command", "%s maintenance %s", hname(c, h), on ? "on" : "off");
        return answer(c, true, "%s maintenance %s", hname(c, h), on ? "on" : "off");
    }
    case HA_CMD_HOST_FENCE:
        if (!db->host[h].joined)
            return answer(c, false, "%s is not in the pool", hname(c, h));
        if (h == c->self)
            return answer(c, false, "%s is the master: designate another master first (pool designate-master)",
                          hname(c, h));
        if (c->fence[h].phase == F_DONE || db->host[h].fenced)
            return answer(c, true, "%s is already fenced", hname(c, h));
        fence_start(c, h, "administrator command: host fence");
        return answer(c, true, "fencing %s", hname(c, h));
    case HA_CMD_VM_START: {
        struct vm_rt *rt = &c->vm[v];
        if (obs_present(rt->obs) || rt->op == OP_START)
            return answer(c, true, "%s is already %s on %s", vname(c, v), ha_obs_name(rt->obs),
                          hname(c, rt->obs_host != HA_NO_HOST ? rt->obs_host : rt->op_host));
        if (h != HA_NO_HOST && !eligible(c, h, &w))
            return answer(c, false, "%s cannot take %s: %s", hname(c, h), vname(c, v), w);
        if (h != HA_NO_HOST && !fits(c, &u, v, h))
            return answer(c, false, "%s has not %llu MiB and %d vCPU free for %s", hname(c, h),
                          (unsigned long long)db->vm[v].mem_mb, db->vm[v].cpus, vname(c, v));
        if (h != HA_NO_HOST && !cmd->force && rules_check(c, &u, v, h, HA_NO_HOST, buf, sizeof buf) < 0)
            return answer(c, false, "%s on %s breaks a rule: %s (use --force to do it anyway)", vname(c, v),
                          hname(c, h), buf);
        int target = h != HA_NO_HOST ? h : choose_host(c, &u, v, HA_NO_HOST, HA_NO_HOST, HA_NO_HOST, buf, sizeof buf);
        if (target == HA_NO_HOST)
            return answer(c, false, "cannot start %s: %s", vname(c, v), buf);
        struct plan_mod m = {.vm = v, .to = target, .protect = db->vm[v].protect == HA_PROTECT_RESTART, .running = true};
        if (!db->vm[v].want_running && admission_refuses(c, cmd, &m, buf, sizeof buf))
            return answer(c, false, "starting %s refused: %s", vname(c, v), buf);
        /* same rule as recovery: never start what may still run elsewhere */
        bool safe = may_be_elsewhere_ok(c, v);
        if (!safe && db->vm[v].protect == HA_PROTECT_OFF)
            return answer(c, false, "cannot start %s yet: %s", vname(c, v), rt->reason);
        rt->failed = false;
        rt->attempts = 0;
        rt->restarts = 0;
        rt->avoid_host = HA_NO_HOST;
        rt->on_host = h;
        rt->on_force = h != HA_NO_HOST && cmd->force;
        if (!db->vm[v].want_running)
            commit(c, (struct ha_change){.type = HA_CHG_VM_WANT, .vm = v, .host = HA_NO_HOST, .arg = 1});
        if (!safe)
            return answer(c, true, "%s will start once it is safe: %s", vname(c, v), rt->reason);
        if (db->vm[v].protect == HA_PROTECT_OFF)
            start_vm(c, &u, v, target, "administrator command: vm start");
        return answer(c, true, "starting %s", vname(c, v));
    }
    case HA_CMD_VM_STOP: {
        struct vm_rt *rt = &c->vm[v];
        if (rt->op == OP_MIGRATE || rt->op == OP_START)
            return answer(c, false, "%s is %s: stop it once that ends", vname(c, v),
                          rt->op == OP_MIGRATE ? "migrating" : "starting");
        if (db->vm[v].want_running)
            commit(c, (struct ha_change){.type = HA_CHG_VM_WANT, .vm = v, .host = HA_NO_HOST, .arg = 0});
        rt->failed = false;
        if (obs_present(rt->obs) && host_alive(c, rt->obs_host) && rt->op != OP_STOP)
            stop_vm(c, v, rt->obs_host, "administrator command: vm stop");
        return answer(c, true, "stopping %s", vname(c, v));
    }
    case HA_CMD_VM_MIGRATE: {
        struct vm_rt *rt = &c->vm[v];
        if (rt->op != OP_NONE)
            return answer(c, false, "%s has an operation in progress", vname(c, v));
        if (rt->obs != HA_OBS_RUNNING || !host_alive(c, rt->obs_host))
            return answer(c, false, "%s is not running on a live host", vname(c, v));
        if (rt->obs_host == h)
            return answer(c, true, "%s already runs on %s", vname(c, v), hname(c, h));
        if (!eligible(c, h, &w))
            return answer(c, false, "%s cannot take %s: %s", hname(c, h), vname(c, v), w);
        if (!fits(c, &u, v, h))
            return answer(c, false, "%s has not %llu MiB and %d vCPU free for %s", hname(c, h),
                          (unsigned long long)db->vm[v].mem_mb, db->vm[v].cpus, vname(c, v));
        if (!cmd->force && rules_check(c, &u, v, h, HA_NO_HOST, buf, sizeof buf) < 0)
            return answer(c, false, "%s on %s breaks a rule: %s (use --force to do it anyway)", vname(c, v),
                          hname(c, h), buf);
        struct plan_mod m = {.vm = v, .to = h, .protect = db->vm[v].protect == HA_PROTECT_RESTART,
                             .running = db->vm[v].want_running};
        if (admission_refuses(c, cmd, &m, buf, sizeof buf))
            return answer(c, false, "migrating %s to %s refused: %s", vname(c, v), hname(c, h), buf);
        migrate_vm(c, &u, v, rt->obs_host, h, "administrator command: vm migrate");
        return answer(c, true, "migrating %s to %s", vname(c, v), hname(c, h));
    }
    case HA_CMD_VM_PROTECT:
    case HA_CMD_VM_UNPROTECT: {
        struct ha_change ch = {.type = HA_CHG_VM_PROTECT, .vm = v, .host = HA_NO_HOST,
                               .protect = cmd->type == HA_CMD_VM_UNPROTECT ? HA_PROTECT_OFF : cmd->protect,
                               .priority = cmd->priority ? cmd->priority : db->vm[v].priority,
                               .order = cmd->has_order ? cmd->order : db->vm[v].order,
                               .after1 = cmd->after == -2 ? db->vm[v].after1 : cmd->after + 1};
        if (ch.after1 && ha_after_cycle(db, v, ch.after1 - 1))
            return answer(c, false, "%s cannot start after %s: %s already waits for %s (a cycle)", vname(c, v),
                          vname(c, ch.after1 - 1), vname(c, ch.after1 - 1), vname(c, v));
        struct plan_mod m = {.vm = v, .to = u.place[v], .protect = ch.protect == HA_PROTECT_RESTART,
                             .running = db->vm[v].want_running};
        if (ch.protect == HA_PROTECT_RESTART && db->vm[v].protect != HA_PROTECT_RESTART &&
            admission_refuses(c, cmd, &m, buf, sizeof buf))
            return answer(c, false, "protecting %s refused: %s", vname(c, v), buf);
        commit(c, ch);
        c->vm[v].attempts = 0;
        c->vm[v].failed = false;
        return answer(c, true, "%s protection: %s, priority %d, order %d", vname(c, v), ha_protect_name(ch.protect),
                      ch.priority, ch.order);
    }
    case HA_CMD_POOL_JOIN:
        if (db->host[h].joined)
            return answer(c, false, "%s is already in the pool", hname(c, h));
        commit(c, (struct ha_change){.type = HA_CHG_HOST_JOIN, .host = h, .vm = -1});
        logf_(c, "administrator command", "%s joined the pool", hname(c, h));
        return answer(c, true, "%s joined the pool", hname(c, h));
    case HA_CMD_POOL_LEAVE: {
        if (h == HA_NO_HOST)
            h = c->self;
        if (!db->host[h].joined)
            return answer(c, false, "%s is not in the pool", hname(c, h));
        if (!host_alive(c, h))
            return answer(c, false, "%s is %s: a host that is down cannot leave; eject it instead", hname(c, h),
                          ha_host_state_name(ha_core_host_state(c, h)));
        int others = 0;
        for (int x = 0; x < db->nhosts; x++)
            others += x != h && host_alive(c, x);
        if (!others)
            return answer(c, false, "%s is the last live host of the pool", hname(c, h));
        int n = count_protected_on(c, h, buf, sizeof buf);
        if (n && !cmd->evacuate)
            return answer(c, false, "%s runs %d protected VM(s) (%s): use --evacuate or move them first", hname(c, h),
                          n, buf);
        struct plan_mod m = {.vm = -1, .to = HA_NO_HOST, .out = HA_BIT(h)};
        if (admission_refuses(c, cmd, &m, buf, sizeof buf))
            return answer(c, false, "%s leaving refused: %s", hname(c, h), buf);
        commit(c, (struct ha_change){.type = HA_CHG_HOST_LEAVING, .host = h, .vm = -1, .arg = 1});
        logf_(c, "administrator command", "%s is leaving the pool%s", hname(c, h), n ? " after evacuating" : "");
        return answer(c, true, "%s is leaving the pool", hname(c, h));
    }
    case HA_CMD_POOL_EJECT:
        if (!db->host[h].joined)
            return answer(c, false, "%s is not in the pool", hname(c, h));
        if (host_alive(c, h))
            return answer(c, false, "%s is alive: run pool leave on it instead", hname(c, h));
        if (!db->host[h].fenced && c->fence[h].phase != F_DONE && owns_vms(c, h))
            return answer(c, false, "%s is not fenced and may still run VMs: fence it first (host fence %s --yes)",
                          hname(c, h), hname(c, h));
        commit(c, (struct ha_change){.type = HA_CHG_HOST_LEAVE, .host = h, .vm = -1});
        c->fence[h] = (struct fence_state){0};
        logf_(c, "administrator command", "%s ejected from the pool", hname(c, h));
        return answer(c, true, "%s ejected", hname(c, h));
    case HA_CMD_DESIGNATE:
        if (!host_alive(c, h) || db->host[h].leaving)
            return answer(c, false, "%s is not a live pool member: it cannot be master", hname(c, h));
        commit(c, (struct ha_change){.type = HA_CHG_PREFERRED_MASTER, .host = h, .vm = -1});
        return answer(c, true, "%s designated as master", hname(c, h));
    case HA_CMD_RULE_ADD: {
        if (ha_rule_check(db, &cmd->rule, buf, sizeof buf) < 0)
            return answer(c, false, "rule refused: %s", buf);
        commit(c, (struct ha_change){.type = HA_CHG_RULE_ADD, .host = HA_NO_HOST, .vm = -1, .rule = cmd->rule});
        logf_(c, "administrator command", "rule %s added (%s%s)", cmd->rule.name, cmd->rule.strict ? "strict " : "",
              ha_rule_type_name(cmd->rule.type));
        /* vigil does not move running VMs to satisfy a new rule: say so */
        const struct ha_rule *r = &cmd->rule;
        char broken[HA_REASON_MAX] = "";
        for (int a = 0; a < r->nvms && !broken[0]; a++) {
            int pa = u.place[r->vm[a]];
            if (pa == HA_NO_HOST)
                continue;
            if (r->type == HA_RULE_PIN && !(r->hosts & HA_BIT(pa)))
                snprintf(broken, sizeof broken, "%s runs on %s", vname(c, r->vm[a]), hname(c, pa));
            for (int b = a + 1; b < r->nvms && !broken[0]; b++) {
                int pb = u.place[r->vm[b]];
                if (pb == HA_NO_HOST)
                    continue;
                if (r->type == HA_RULE_ANTI_AFFINITY && pa == pb)
                    snprintf(broken, sizeof broken, "%s and %s share %s", vname(c, r->vm[a]), vname(c, r->vm[b]), hname(c, pa));
                if (r->type == HA_RULE_AFFINITY && pa != pb)
                    snprintf(broken, sizeof broken, "%s is on %s and %s on %s", vname(c, r->vm[a]), hname(c, pa),
                             vname(c, r->vm[b]), hname(c, pb));
            }
        }
        if (broken[0])
            return answer(c, true, "rule %s added, but it is broken now (%s): running VMs are not moved to satisfy it; migrate them",
                          cmd->rule.name, broken);
        return answer(c, true, "rule %s added", cmd->rule.name);
    }
    case HA_CMD_RULE_DEL: {
        int r = ha_db_find_rule(db, cmd->rule.name);
        if (r < 0)
            return answer(c, false, "no rule named '%s'", cmd->rule.name);
        logf_(c, "administrator command", "rule %s deleted", db->rule[r].name);
        commit(c, (struct ha_change){.type = HA_CHG_RULE_DEL, .host = HA_NO_HOST, .vm = -1, .arg = r});
        return answer(c, true, "rule %s deleted", cmd->rule.name);
    }
    case HA_CMD_NONE:
        break;
    }
    return answer(c, false, "unsupported command");
}

void master_command(struct ha_core *c, const struct ha_cmd *cmd)
{
    struct usage u;
    usage_build(c, &u);
    (void)do_command(c, cmd, &u);
    usage_free(&u);
}

/* ------------------------------------------------------------ queries */

enum ha_vm_state ha_core_vm_state(const struct ha_core *c, int v, int *host)
{
    int dummy;
    if (!host)
        host = &dummy;
    *host = HA_NO_HOST;
    if (v < 0 || v >= c->nvm)
        return HA_VM_STOPPED;
    const struct vm_rt *rt = &c->vm[v];
    const struct ha_db_vm *d = &c->db->vm[v];
    switch (rt->op) {
    case OP_START:
        *host = rt->op_host;
        return HA_VM_STARTING;
    case OP_MIGRATE:
        *host = rt->op_host;
        if (c->master && !host_alive(c, rt->op_host) && d->protect != HA_PROTECT_OFF)
            return HA_VM_RECOVERING; /* its source is down: it is lost unless the move finished */
        return HA_VM_MIGRATING;
    case OP_STOP:
        *host = rt->op_host;
        return HA_VM_STOPPING;
    case OP_NONE:
        break;
    }
    if (obs_present(rt->obs)) {
        *host = rt->obs_host;
        if (c->master && !host_alive(c, rt->obs_host) && c->db->host[rt->obs_host].joined)
            return d->protect != HA_PROTECT_OFF ? HA_VM_RECOVERING : HA_VM_RUNNING;
        static const enum ha_vm_state map[] = {
            [HA_OBS_STARTING] = HA_VM_STARTING, [HA_OBS_RUNNING] = HA_VM_RUNNING,
            [HA_OBS_STOPPING] = HA_VM_STOPPING, [HA_OBS_MIGRATING] = HA_VM_MIGRATING};
        return map[rt->obs];
    }
    if (rt->failed)
        return HA_VM_FAILED;
    if (d->want_running && d->protect != HA_PROTECT_OFF)
        return HA_VM_RECOVERING;
    return HA_VM_STOPPED;
}

void ha_core_explain(const struct ha_core *c, int v, char *buf, size_t len)
{
    if (v < 0 || v >= c->nvm) {
        snprintf(buf, len, "unknown VM");
        return;
    }
    int h;
    enum ha_vm_state s = ha_core_vm_state(c, v, &h);
    const struct vm_rt *rt = &c->vm[v];
    if (!c->master)
        snprintf(buf, len, "%s: %s (this host is not the master; the master knows why)", vname(c, v),
                 ha_vm_state_name(s));
    else
        snprintf(buf, len, "%s: %s: %s", vname(c, v), ha_vm_state_name(s),
                 rt->reason[0] ? rt->reason : "no decision taken yet");
}
