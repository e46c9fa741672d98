/* vigild and this host's VM agent (agents/vagent.h, docs/vm-agent.md).
 *
 * The decision core runs on every host but only the master's orders VMs
 * about.  Its orders for a host (HA_ACT_VM_START/STOP/MIGRATE and
 * HA_ACT_INVENTORY_QUERY) travel over the pool's CPG group as DORDER
 * messages stamped with the master's epoch, and only the host they name
 * carries them out, as agent jobs.  What the agent learns (a job's result,
 * a lifecycle event, the list of what runs here) travels back as DREPORT
 * and DFAILED messages to every host's core, so a master that takes over
 * already knows where each VM is.  CPG delivers each sender's messages in
 * the order it sent them, and all of them in one agreed order.
 *
 * A host refuses orders stamped with an epoch older than the newest it has
 * seen (a deposed master's late words), and orders from a host the
 * database does not name master.  Every report carries the id of the last
 * operation this host applied to the VM, so the core can tell a crash of
 * an earlier incarnation from news about its current order. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "../agents/vagent.h"
#include "dwire.h"
#include "vigild.h"

/* a job of ours in flight */
struct job {
    struct job *next;
    uint64_t tag;
    enum vagent_op op;
    int vm;       /* index in the database; -1 for a list */
    uint64_t order; /* the core's operation id (0: none, e.g. a list or a self-fence) */
    int to;       /* migrate: destination host */
    uint64_t rq;  /* dumpxml: the request (vigil vm import VM) waiting for it */
};

static struct vagent *A;
static struct job *jobs;
static uint64_t next_tag = 1;
static uint64_t epoch_seen;  /* newest master epoch on an order */
static uint64_t *last_op;    /* per VM: the last operation id applied here */
static int nlast_op;
static qb_loop_timer_handle list_timer;
static bool list_wanted;     /* an inventory is due once the agent answers */

static const char *vm_name(int v) { return v >= 0 && v < D.db.nvms ? D.db.vm[v].name : "?"; }

static uint64_t *op_of(int v)
{
    if (v < 0 || v >= D.db.nvms)
        return NULL;
    if (v >= nlast_op) {
        uint64_t *n = realloc(last_op, (size_t)D.db.nvms * sizeof *n);
        if (!n)
            return NULL;
        memset(n + nlast_op, 0, (size_t)(D.db.nvms - nlast_op) * sizeof *n);
        last_op = n;
        nlast_op = D.db.nvms;
    }
    return &last_op[v];
}

static uint64_t op_now(int v)
{
    uint64_t *p = op_of(v);
    return p ? *p : 0;
}

/* ---------------------------------------------------------------- messages out */

static void send_msg(uint8_t *m, size_t len, const char *what)
{
    int rc = m ? pool_send(m, len) : -ENOMEM;
    if (rc < 0)
        qb_log(LOG_WARNING, "cannot send %s to the pool: %s", what, strerror(-rc));
    free(m);
}

/* what this host's agent saw of VM v, to every core */
static void report(int v, enum ha_vm_obs st, int to, uint64_t op)
{
    struct dreport_vm e = {.state = (int)st, .to = to, .op = op, .vm = vm_name(v)};
    struct dreport r = {.host = (uint32_t)D.self, .n = 1, .v = &e};
    size_t len = 0;
    uint8_t *m = dreport_encode(&r, &len);
    send_msg(m, len, "a VM report");
}

static void failed(int v, uint64_t op, const char *why)
{
    struct dfailed f = {.host = (uint32_t)D.self, .op = op, .vm = vm_name(v), .why = why};
    size_t len = 0;
    uint8_t *m = dfailed_encode(&f, &len);
    send_msg(m, len, "a failed VM operation");
}

/* ---------------------------------------------------------------- jobs */

static int submit(struct vagent_job *j, int vm, uint64_t order, int to)
{
    struct job *x = calloc(1, sizeof *x);
    if (!x)
        return -ENOMEM;
    j->tag = x->tag = next_tag++;
    x->op = j->op;
    x->vm = vm;
    x->order = order;
    x->to = to;
    char err[256] = "";
    int rc = A ? vagent_submit(A, j, err, sizeof err) : -ENOTCONN;
    if (rc < 0) {
        free(x);
        qb_log(LOG_ERR, "the VM agent refused a %s job for %s: %s", vagent_op_name(j->op), vm >= 0 ? vm_name(vm) : "-",
               err[0] ? err : strerror(-rc));
        return rc;
    }
    x->next = jobs;
    jobs = x;
    return 0;
}

static struct job *take_job(uint64_t tag)
{
    for (struct job **p = &jobs; *p; p = &(*p)->next)
        if ((*p)->tag == tag) {
            struct job *x = *p;
            *p = x->next;
            return x;
        }
    return NULL;
}

/* a job of ours that stops or moves the VM: its own events are not news */
static bool moving(int v)
{
    for (struct job *x = jobs; x; x = x->next)
        if (x->vm == v && (x->op == VAGENT_OP_STOP || x->op == VAGENT_OP_DESTROY || x->op == VAGENT_OP_MIGRATE))
            return true;
    return false;
}

/* libvirt URI of another host, from vigil.conf's libvirt_peer_uri */
static void peer_uri(int h, char *buf, size_t len)
{
    char tmpl[sizeof D.cfg.libvirt_peer_uri];
    snprintf(tmpl, sizeof tmpl, "%s", D.cfg.libvirt_peer_uri);
    char *s = strstr(tmpl, "%s");
    if (!s) { /* vigil.conf's parser makes sure there is one */
        snprintf(buf, len, "%s", tmpl);
        return;
    }
    *s = 0;
    snprintf(buf, len, "%s%s%s", tmpl, D.db.host[h].addr, s + 2);
}

static void list_now(void)
{
    struct vagent_job j = {.op = VAGENT_OP_LIST};
    list_wanted = submit(&j, -1, 0, HA_NO_HOST) < 0;
}

static void on_list_timer(void *data)
{
    (void)data;
    if (list_wanted && A)
        list_now();
}

/* ---------------------------------------------------------------- orders in */

static void run_order(const struct dorder *o)
{
    if (o->kind == DORDER_LIST) {
        list_now();
        return;
    }
    int v = ha_db_find_vm(&D.db, o->vm);
    if (v < 0) {
        qb_log(LOG_WARNING, "an order for VM %s, which this host's pool database does not have", o->vm);
        return; /* the core's operation deadline takes it from here */
    }
    uint64_t *lo = op_of(v);
    if (lo)
        *lo = o->op;
    struct vagent_job *j = calloc(1, sizeof *j);
    if (!j) {
        failed(v, o->op, "vigild is out of memory");
        return;
    }
    snprintf(j->name, sizeof j->name, "%s", o->vm);
    j->timeout_ms = (int)(D.db.set.op_timeout > 1000 && D.db.set.op_timeout < 3600000 ? D.db.set.op_timeout : 0);
    switch (o->kind) {
    case DORDER_START:
        j->op = VAGENT_OP_START;
        j->xml = D.db.vm[v].xml;
        if (!j->xml) {
            free(j);
            failed(v, o->op, "the pool database has no domain XML for it (vigil vm import --replace --xml FILE)");
            return;
        }
        /* defence in depth: the other live hosts must not be running it */
        for (int h = 0; h < D.db.nhosts && j->npeers < VAGENT_MAX_PEERS; h++)
            if (h != D.self && D.db.host[h].joined && (pool_view() & HA_BIT(h)) && D.db.host[h].addr[0])
                peer_uri(h, j->peer_uri[j->npeers++], VAGENT_URI_MAX);
        break;
    case DORDER_STOP:
        j->op = VAGENT_OP_STOP;
        break;
    case DORDER_MIGRATE:
        j->op = VAGENT_OP_MIGRATE;
        if (o->to >= D.db.nhosts || !D.db.host[o->to].addr[0]) {
            free(j);
            failed(v, o->op, "the destination host has no address in the pool database");
            return;
        }
        peer_uri(o->to, j->dest_uri, sizeof j->dest_uri);
        j->timeout_ms = 0; /* migrations get the agent's longer default */
        break;
    case DORDER_LIST:
        break;
    }
    audit(LOG_NOTICE, "vigild", "ordered by the master", "%s %s%s%s (operation %" PRIu64 ")", vagent_op_name(j->op),
          o->vm, o->kind == DORDER_MIGRATE ? " to " : "", o->kind == DORDER_MIGRATE ? j->dest_uri : "", o->op);
    if (submit(j, v, o->op, o->kind == DORDER_MIGRATE ? o->to : HA_NO_HOST) < 0)
        failed(v, o->op, "the VM agent refused the job (see vigild's log)");
    else if (o->kind == DORDER_MIGRATE) /* until it ends the VM may be on either host */
        report(v, HA_OBS_MIGRATING, o->to, o->op);
    free(j);
}

static int host_of(uint32_t nodeid)
{
    for (int h = 0; h < D.db.nhosts; h++)
        if (D.db.host[h].joined && D.db.host[h].nodeid == nodeid)
            return h;
    return HA_NO_HOST;
}

static void step_report(int host, const struct dreport_vm *e)
{
    int v = ha_db_find_vm(&D.db, e->vm);
    if (v < 0)
        return; /* a VM imported meanwhile, or removed: not one the core knows */
    struct ha_event ev = {.type = HA_EV_VM_REPORT};
    ev.u.report.host = host;
    ev.u.report.vm = v;
    ev.u.report.state = (enum ha_vm_obs)e->state;
    ev.u.report.to = e->to;
    ev.u.report.op = e->op;
    pool_event(&ev);
}

/* Who may order VMs: the master the database names, or in a pool with a
 * heartbeat disk the holder of the master lease as this host last read it
 * (a new master's first orders may come before this host's next read: they
 * are refused, and the core's operation deadline orders them again). */
static bool orders_from(int sender)
{
    return sender == (D.db.set.heartbeat_disk ? hb_lease_owner() : D.db.master);
}

/* The pool switched between corosync-only and disk mode: the masters'
 * epochs restart from another counter (the database's master epoch, the
 * lease counter), so the newest one seen no longer compares. */
void vms_mode_changed(void) { epoch_seen = 0; }

void vms_deliver(uint32_t nodeid, const void *msg, size_t len, int type)
{
    int sender = host_of(nodeid);
    if (sender == HA_NO_HOST || !D.core)
        return;
    if (type == WIRE_DORDER) {
        struct dorder o;
        if (dorder_decode(msg, len, &o) < 0)
            goto bad;
        if (o.kind == DORDER_MIGRATE && o.to == D.self && orders_from(sender) && o.epoch >= epoch_seen) {
            /* it arrives here: what this host reports of it is about this operation */
            uint64_t *lo = op_of(ha_db_find_vm(&D.db, o.vm));
            if (lo)
                *lo = o.op;
        }
        if ((int)o.host != D.self)
            return; /* another host's order */
        if (!orders_from(sender)) {
            audit(LOG_WARNING, "vigild", "only the master orders VMs", "refused an order from %s, which is not the "
                  "master (%s %s)", D.db.host[sender].name, o.kind == DORDER_LIST ? "list" : "order for", o.vm);
            return;
        }
        if (o.epoch < epoch_seen) {
            audit(LOG_WARNING, "vigild", "a newer master has given orders since", "refused an order of epoch %" PRIu64
                  " for %s (this host has seen epoch %" PRIu64 ")", o.epoch, o.vm[0] ? o.vm : "the VM list",
                  epoch_seen);
            return;
        }
        epoch_seen = o.epoch;
        run_order(&o);
        return;
    }
    if (type == WIRE_DREPORT) {
        static struct dreport_vm v[DWIRE_MAX_REPORTS];
        struct dreport r = {.v = v};
        if (dreport_decode(msg, len, &r) < 0 || (int)r.host != sender)
            goto bad;
        for (int i = 0; i < r.n; i++)
            step_report(sender, &r.v[i]);
        if (r.complete) {
            struct ha_event ev = {.type = HA_EV_INVENTORY};
            ev.u.report.host = sender;
            pool_event(&ev);
        }
        return;
    }
    if (type == WIRE_DFAILED) {
        struct dfailed f;
        if (dfailed_decode(msg, len, &f) < 0 || (int)f.host != sender)
            goto bad;
        int vm = ha_db_find_vm(&D.db, f.vm);
        if (vm < 0)
            return;
        struct ha_event ev = {.type = HA_EV_VM_FAILED};
        ev.u.failed.vm = vm;
        ev.u.failed.op = f.op;
        snprintf(ev.u.failed.why, sizeof ev.u.failed.why, "%s", f.why);
        pool_event(&ev);
        return;
    }
bad:
    qb_log(LOG_WARNING, "ignored a malformed VM message (type %d, %zu bytes) from node %u", type, len, nodeid);
}

/* The master's core wants something done by a host's agent. */
void vms_action(const struct ha_action *a)
{
    struct dorder o = {.host = (uint32_t)a->host, .epoch = a->epoch, .op = a->op, .to = -1, .vm = ""};
    switch (a->type) {
    case HA_ACT_VM_START: o.kind = DORDER_START; break;
    case HA_ACT_VM_STOP: o.kind = DORDER_STOP; break;
    case HA_ACT_VM_MIGRATE: o.kind = DORDER_MIGRATE; o.to = a->to; break;
    case HA_ACT_INVENTORY_QUERY: o.kind = DORDER_LIST; break;
    default: return;
    }
    if (o.kind != DORDER_LIST) {
        if (a->vm < 0 || a->vm >= D.db.nvms)
            return;
        o.vm = D.db.vm[a->vm].name;
        audit(LOG_NOTICE, "vigild", a->why, "ordered %s to %s %s%s%s", a->host >= 0 && a->host < D.db.nhosts ?
              D.db.host[a->host].name : "?", o.kind == DORDER_START ? "start" : o.kind == DORDER_STOP ? "stop" :
              "migrate", o.vm, o.kind == DORDER_MIGRATE ? " to " : "", o.kind == DORDER_MIGRATE && a->to >= 0 &&
              a->to < D.db.nhosts ? D.db.host[a->to].name : "");
    }
    size_t len = 0;
    uint8_t *m = dorder_encode(&o, &len);
    send_msg(m, len, "an order for a VM agent");
}

/* ---------------------------------------------------------------- the agent's news */

static enum ha_vm_obs obs_of(enum vagent_state s)
{
    return s == VAGENT_RUNNING ? HA_OBS_RUNNING : s == VAGENT_CRASHED ? HA_OBS_CRASHED : HA_OBS_NONE;
}

static void on_list(const struct vagent_result *r)
{
    if (r->rc < 0) {
        qb_log(LOG_WARNING, "cannot list the VMs on this host: %s (trying again)", r->why);
        list_wanted = true;
        qb_loop_timer_del(D.loop, list_timer);
        qb_loop_timer_add(D.loop, QB_LOOP_MED, 2000ULL * 1000000ULL, NULL, on_list_timer, &list_timer);
        return;
    }
    struct dreport_vm *e = calloc((size_t)(r->nvms ? r->nvms : 1), sizeof *e);
    if (!e)
        return;
    int n = 0;
    for (int i = 0; i < r->nvms && n < DWIRE_MAX_REPORTS; i++) {
        int v = ha_db_find_vm(&D.db, r->vms[i].name);
        enum ha_vm_obs st = obs_of(r->vms[i].state);
        if (v >= 0 && st != HA_OBS_NONE)
            e[n++] = (struct dreport_vm){.state = (int)st, .to = -1, .op = op_now(v), .vm = D.db.vm[v].name};
    }
    struct dreport rp = {.host = (uint32_t)D.self, .complete = true, .n = n, .v = e};
    size_t len = 0;
    uint8_t *m = dreport_encode(&rp, &len);
    send_msg(m, len, "this host's VM list");
    free(e);
}

static void on_result(const struct vagent_result *r)
{
    struct job *x = take_job(r->tag);
    if (!x)
        return;
    int v = x->vm;
    if (x->op == VAGENT_OP_DUMPXML) {
        command_import_xml(x->rq, r->rc, r->xml, r->why);
    } else if (x->op == VAGENT_OP_LIST) {
        on_list(r);
    } else if (v < 0 || v >= D.db.nvms || strcmp(D.db.vm[v].name, r->name)) {
        /* the database changed under the job: nothing to say about it */
    } else if (x->op == VAGENT_OP_START) {
        if (r->rc == 0)
            report(v, HA_OBS_RUNNING, -1, x->order);
        else
            failed(v, x->order, r->why);
        audit(r->rc ? LOG_ERR : LOG_NOTICE, "vigild", r->why[0] ? r->why : "the agent's job ended",
              r->rc ? "start of %s failed" : "%s started", r->name);
    } else if (x->op == VAGENT_OP_STOP || x->op == VAGENT_OP_DESTROY) {
        if (r->rc == 0 || r->rc == -ENOENT)
            report(v, HA_OBS_NONE, -1, x->order);
        else if (x->order)
            failed(v, x->order, r->why);
        audit(r->rc && r->rc != -ENOENT ? LOG_ERR : LOG_NOTICE, "vigild", r->why[0] ? r->why : "the agent's job ended",
              r->rc && r->rc != -ENOENT ? "stop of %s failed" : "%s stopped", r->name);
    } else if (x->op == VAGENT_OP_MIGRATE) {
        if (r->rc == 0) {
            /* gone from here; the destination says it runs there (its
             * lifecycle event), or its list does */
            report(v, HA_OBS_NONE, -1, x->order);
            audit(LOG_NOTICE, "vigild", r->why[0] ? r->why : "live migration",
                  "%s migrated to %s in %" PRIu64 " ms (paused %" PRIu64 " ms)", r->name,
                  x->to >= 0 && x->to < D.db.nhosts ? D.db.host[x->to].name : "?", r->mig.total_ms,
                  r->mig.downtime_ms);
        } else {
            failed(v, x->order, r->why);
            report(v, HA_OBS_RUNNING, -1, x->order); /* a failed migration leaves it here */
            audit(LOG_ERR, "vigild", r->why, "migration of %s failed: it stays on this host", r->name);
        }
    }
    free(x);
}

static void on_event(const struct vagent_result *r)
{
    int v = ha_db_find_vm(&D.db, r->name);
    if (v < 0)
        return; /* not a VM of the pool */
    switch (r->ev) {
    case VAGENT_EV_MIGRATED_IN:
        /* the end of a live migration as the core counts it (evacuate_concurrency) */
        audit(LOG_NOTICE, "vigild", "libvirt's lifecycle event", "%s runs here after a live migration", r->name);
        report(v, HA_OBS_RUNNING, -1, op_now(v));
        break;
    case VAGENT_EV_STARTED:
        report(v, HA_OBS_RUNNING, -1, op_now(v));
        break;
    case VAGENT_EV_CRASHED:
        audit(LOG_WARNING, "vigild", "libvirt's lifecycle event", "%s stopped on this host without being asked "
              "(detail %d)", r->name, r->detail);
        report(v, HA_OBS_CRASHED, -1, op_now(v));
        break;
    case VAGENT_EV_STOPPED:
        if (!moving(v))
            report(v, HA_OBS_NONE, -1, op_now(v));
        break;
    default:
        break;
    }
}

static int32_t on_agent(int32_t fd, int32_t revents, void *data)
{
    (void)fd, (void)revents, (void)data;
    struct vagent_result r;
    for (int i = 0; A && i < 256 && vagent_next(A, &r) == 1; i++) {
        if (r.kind == VAGENT_RESULT)
            on_result(&r);
        else if (r.kind == VAGENT_EVENT && D.core)
            on_event(&r);
        else if (r.kind == VAGENT_CONN) {
            audit(r.connected ? LOG_NOTICE : LOG_WARNING, "vigild", r.why, "the VM agent %s %s",
                  r.connected ? "reached" : "lost", D.cfg.libvirt_uri);
            if (r.connected && D.core && D.db.nvms)
                list_now(); /* events may have been missed meanwhile */
        }
        vagent_result_free(&r);
    }
    return 0;
}

/* ---------------------------------------------------------------- life */

int vms_start(char *err, size_t errlen)
{
    if (A)
        return 0;
    struct vagent_opts o = {.uri = D.cfg.libvirt_uri};
    A = vagent_new(&o, err, errlen);
    if (!A)
        return -EINVAL;
    qb_loop_poll_add(D.loop, QB_LOOP_MED, vagent_fd(A), POLLIN, NULL, on_agent);
    qb_log(LOG_INFO, "VM agent started for %s", D.cfg.libvirt_uri);
    return 0;
}

void vms_stop(void)
{
    if (!A)
        return;
    qb_loop_poll_del(D.loop, vagent_fd(A));
    qb_loop_timer_del(D.loop, list_timer);
    vagent_free(A);
    A = NULL;
    while (jobs) {
        struct job *x = jobs;
        jobs = x->next;
        free(x);
    }
    free(last_op);
    last_op = NULL;
    nlast_op = 0;
    epoch_seen = 0;
    list_wanted = false;
}

int vms_dumpxml(uint64_t rq, const char *name, char *err, size_t errlen)
{
    if (!A) {
        snprintf(err, errlen, "the VM agent does not run on this host (see vigild's log)");
        return -ENOTCONN;
    }
    struct vagent_job j = {.op = VAGENT_OP_DUMPXML, .timeout_ms = 10000};
    snprintf(j.name, sizeof j.name, "%s", name);
    int rc = submit(&j, -1, 0, HA_NO_HOST);
    if (rc < 0) {
        snprintf(err, errlen, "the VM agent refused the job: %s", strerror(-rc));
        return rc;
    }
    jobs->rq = rq; /* submit put it first */
    return 0;
}

/* After every membership change each host tells every core all it runs. */
void vms_membership(void)
{
    if (A && D.db.nvms)
        list_now();
}

/* HA_ACT_SELF_FENCE: every VM of the pool here is stopped hard, and we wait
 * for libvirt to confirm it, at most timeout_ms: the host reboots (or vigild
 * exits) next, so nothing else has to run meanwhile.  Returns how many VMs
 * are not confirmed stopped; why says what went wrong (or how many were). */
int vms_destroy_all_wait(int timeout_ms, char *why, size_t whylen)
{
    why[0] = 0;
    if (!A || !D.db.nvms)
        return 0;
    uint64_t first = next_tag;
    int pending = 0, bad = 0, done = 0;
    for (int v = 0; v < D.db.nvms; v++) {
        struct vagent_job j = {.op = VAGENT_OP_DESTROY, .timeout_ms = timeout_ms};
        snprintf(j.name, sizeof j.name, "%s", D.db.vm[v].name);
        if (submit(&j, v, 0, HA_NO_HOST) == 0)
            pending++;
        else
            bad++;
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    while (pending > 0) {
        uint64_t now = now_ms();
        if (now >= deadline)
            break;
        struct pollfd p = {.fd = vagent_fd(A), .events = POLLIN};
        if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            break;
        struct vagent_result r;
        while (vagent_next(A, &r) == 1) {
            if (r.kind == VAGENT_RESULT && r.op == VAGENT_OP_DESTROY && r.tag >= first) {
                pending--;
                if (r.rc == 0 || r.rc == -ENOENT)
                    done += r.rc == 0;
                else {
                    bad++;
                    snprintf(why, whylen, "%s: %s", r.name, r.why[0] ? r.why : strerror(-r.rc));
                }
            }
            vagent_result_free(&r);
        }
    }
    if (pending && !why[0])
        snprintf(why, whylen, "libvirt did not answer within %d ms", timeout_ms);
    else if (!pending && !bad)
        snprintf(why, whylen, "%d pool VM(s) known to libvirt here, none left running", done);
    return pending + bad;
}
