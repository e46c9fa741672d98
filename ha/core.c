/* One host's core: the two liveness channels, the partition contest, the
 * master lease and self-fencing.  Master decisions live in master.c and
 * fence.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------ small helpers */

struct ha_action *emit(struct ha_core *c, enum ha_action_type t)
{
    struct ha_actions *a = c->out;
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 16;
        struct ha_action *nv = realloc(a->v, cap * sizeof *nv);
        if (!nv)
            abort(); /* out of memory in the decision loop: nothing sane is left */
        a->v = nv;
        a->cap = cap;
    }
    struct ha_action *x = &a->v[a->n++];
    memset(x, 0, sizeof *x);
    x->type = t;
    x->host = c->self;
    x->vm = -1;
    x->to = HA_NO_HOST;
    x->epoch = c->lease_epoch;
    return x;
}

void logf_(struct ha_core *c, const char *why, const char *fmt, ...)
{
    struct ha_action *x = emit(c, HA_ACT_LOG);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->what, sizeof x->what, fmt, ap);
    va_end(ap);
    snprintf(x->why, sizeof x->why, "%s", why ? why : "");
}

void commit(struct ha_core *c, struct ha_change ch)
{
    struct ha_action *x = emit(c, HA_ACT_COMMIT);
    x->change = ch;
    x->for_cmd = c->in_cmd;
}

const char *hname(const struct ha_core *c, int h)
{
    return h >= 0 && h < c->db->nhosts ? c->db->host[h].name : "(none)";
}

const char *vname(const struct ha_core *c, int v)
{
    return v >= 0 && v < c->db->nvms ? c->db->vm[v].name : "(none)";
}

/* Our own disk works: a read succeeded within disk_timeout. */
bool disk_usable(const struct ha_core *c)
{
    return c->disk_seen && c->now - c->disk_last_ok < c->db->set.disk_timeout;
}

/* A slot is fresh when it changed within disk_timeout as measured over our
 * own successful reads: a slow or failing read of ours never makes a peer
 * look dead. */
bool slot_fresh(const struct ha_core *c, int h)
{
    const struct slot_view *s = &c->slot[h];
    if (!s->seen)
        return false;
    return c->disk_last_ok - s->changed_at < c->db->set.disk_timeout;
}

static enum ha_verdict compute_verdict(const struct ha_core *c, int h)
{
    if (h == c->self)
        return HA_ALIVE;
    if (!c->have_membership)
        return HA_UNKNOWN; /* booting: no opinion on others yet */
    bool net = (c->members & HA_BIT(h)) != 0;
    if (!c->db->set.heartbeat_disk)
        return net ? HA_ALIVE : HA_DEAD; /* corosync-only: gone means fence it */
    if (!disk_usable(c))
        return net ? HA_ALIVE : HA_UNKNOWN;
    bool fresh = slot_fresh(c, h);
    if (net && !fresh && c->now - c->member_since[h] < c->db->set.disk_timeout)
        return HA_ALIVE; /* it just joined: give it disk_timeout to show its heartbeat */
    if (net)
        return fresh ? HA_ALIVE : HA_STORAGE_ISOLATED;
    return fresh ? HA_NETWORK_ISOLATED : HA_DEAD;
}

/* Fenced and not back since: it runs nothing.  A host that entered corosync
 * again after we knew it fenced is back, even before the commit that clears
 * its flag has been applied. */
bool fenced_now(const struct ha_core *c, int h)
{
    const struct fence_state *f = &c->fence[h];
    if (!c->db->host[h].fenced && f->phase != F_DONE)
        return false;
    return !((c->members & HA_BIT(h)) && c->member_since[h] > f->done_at);
}

bool host_alive(const struct ha_core *c, int h)
{
    return h >= 0 && h < c->db->nhosts && c->db->host[h].joined && !c->db->host[h].fenced &&
           c->verdict[h] == HA_ALIVE && c->fence[h].phase == F_IDLE;
}

static bool lease_valid(const struct ha_core *c)
{
    if (c->lease_owner == HA_NO_HOST)
        return false;
    if (c->lease_owner == c->self)
        return c->lease == L_HELD;
    return c->disk_last_ok - c->lease_changed_at < c->db->set.disk_timeout;
}

/* ------------------------------------------------------------ partition contest */

/* Rank of a group of hosts in the contest: size first, then the lease, then
 * the lowest host id (a deterministic last resort everyone computes alike). */
static bool group_beats(const struct ha_core *c, ha_hostset a, ha_hostset b)
{
    int na = ha_popcount(a), nb = ha_popcount(b);
    if (na != nb)
        return na > nb;
    bool la = lease_valid(c) && (a & HA_BIT(c->lease_owner));
    bool lb = lease_valid(c) && (b & HA_BIT(c->lease_owner));
    if (la != lb)
        return la;
    return __builtin_ctzll(a) < __builtin_ctzll(b);
}

static enum ha_side compute_side(const struct ha_core *c, char *why, size_t len)
{
    const struct ha_db *db = c->db;
    ha_hostset joined = ha_db_joined(db);
    if (!(joined & HA_BIT(c->self))) {
        snprintf(why, len, "not a pool member");
        return HA_SIDE_UNDECIDED;
    }
    if (!c->have_membership) {
        snprintf(why, len, "no corosync membership yet");
        return HA_SIDE_UNDECIDED;
    }
    ha_hostset P = (c->members | HA_BIT(c->self)) & joined;

    if (!db->set.heartbeat_disk) {
        /* Corosync-only mode: votequorum admits one quorate partition at a
         * time, so quorum alone picks the side that runs. */
        snprintf(why, len, c->quorate ? "corosync quorum (no heartbeat disk in this pool)"
                                      : "no corosync quorum (no heartbeat disk in this pool)");
        return c->quorate ? HA_SIDE_WIN : HA_SIDE_LOSE;
    }
    if (!disk_usable(c)) {
        if (!c->disk_seen && c->now - c->started < db->set.disk_timeout) {
            snprintf(why, len, "heartbeat disk not read yet");
            return HA_SIDE_UNDECIDED;
        }
        /* Without the disk only a quorate partition that holds every
         * unfenced host may run: then no other side can exist. */
        ha_hostset need = 0;
        for (int h = 0; h < db->nhosts; h++)
            if ((joined & HA_BIT(h)) && !db->host[h].fenced)
                need |= HA_BIT(h);
        if (c->quorate && (P & need) == need) {
            snprintf(why, len, "heartbeat disk lost, but the whole pool is in our corosync partition");
            return HA_SIDE_WIN;
        }
        snprintf(why, len, "heartbeat disk lost and %s", c->quorate ? "some hosts are out of reach" : "no corosync quorum");
        return HA_SIDE_LOSE;
    }

    ha_hostset fresh_out = 0;
    for (int h = 0; h < db->nhosts; h++)
        if ((joined & HA_BIT(h)) && !(P & HA_BIT(h)) && slot_fresh(c, h) && !fenced_now(c, h))
            fresh_out |= HA_BIT(h); /* a confirmed-fenced host is off, whatever its last write */
    int np = ha_popcount(P), no = ha_popcount(fresh_out);
    bool lease_here = lease_valid(c) && (P & HA_BIT(c->lease_owner));
    if (np > no) {
        snprintf(why, len, "%d of %d live hosts on our side", np, np + no);
        return HA_SIDE_WIN;
    }
    if (np == no && lease_here) {
        snprintf(why, len, "tie %d|%d broken by the master lease (%s)", np, no, hname(c, c->lease_owner));
        return HA_SIDE_WIN;
    }
    /* The others might outnumber us: wait until every live outsider has
     * written the membership it sees now. */
    for (int h = 0; h < db->nhosts; h++) {
        if (!(fresh_out & HA_BIT(h)))
            continue;
        const struct ha_slot *s = &c->slot[h].last;
        if ((s->flags & HA_SLOT_JOINING) || (s->liveset & HA_BIT(c->self))) {
            snprintf(why, len, "waiting for %s to report its view of the split", hname(c, h));
            return HA_SIDE_UNDECIDED;
        }
    }
    ha_hostset left = fresh_out;
    while (left) {
        int h = __builtin_ctzll(left);
        ha_hostset g = (c->slot[h].last.liveset & fresh_out) | HA_BIT(h);
        left &= ~g;
        if (group_beats(c, g, P)) {
            snprintf(why, len, "the partition of %s (%d hosts%s) outranks ours (%d hosts)", hname(c, h),
                     ha_popcount(g),
                     lease_valid(c) && (g & HA_BIT(c->lease_owner)) ? ", holding the lease" : "", np);
            return HA_SIDE_LOSE;
        }
    }
    snprintf(why, len, "our partition (%d hosts) outranks every other live one", np);
    return HA_SIDE_WIN;
}

/* ------------------------------------------------------------ master lease */

/* The host this partition wants as master: the live lease holder if it is
 * with us, else the designated master, else the lowest live host id. */
static int wanted_master(const struct ha_core *c)
{
    const struct ha_db *db = c->db;
    ha_hostset P = (c->members | HA_BIT(c->self)) & ha_db_joined(db);
    ha_hostset ok = 0;
    for (int h = 0; h < db->nhosts; h++)
        if ((P & HA_BIT(h)) && !db->host[h].leaving && !db->host[h].fenced &&
            (h == c->self || c->verdict[h] == HA_ALIVE))
            ok |= HA_BIT(h);
    if (db->preferred_master != HA_NO_HOST && (ok & HA_BIT(db->preferred_master)))
        return db->preferred_master;
    if (lease_valid(c) && (ok & HA_BIT(c->lease_owner)))
        return c->lease_owner;
    return ok ? __builtin_ctzll(ok) : HA_NO_HOST;
}

/* Corosync-only mode: the master is the host the pool database names, so
 * that every member agrees at the same point of the committed stream.  A
 * sitting master keeps the role while it is in the quorate partition (a
 * returning lower id does not preempt it); when it is gone, the host this
 * partition wants takes over by committing a MASTER change, which every
 * member accepts only if the recorded master is not in its view
 * (ha_change_allowed).  A designated master is handed the role. */
static bool corosync_only_master(struct ha_core *c, enum ha_side side)
{
    const struct ha_db *db = c->db;
    if (side != HA_SIDE_WIN || !db->host[c->self].joined)
        return false;
    int want = wanted_master(c);
    bool recorded_here = db->master != HA_NO_HOST && (c->members & HA_BIT(db->master)) && db->host[db->master].joined;
    if (!recorded_here && want == c->self && c->master_sent != db->master_epoch + 1) {
        c->master_sent = db->master_epoch + 1;
        logf_(c, db->master == HA_NO_HOST ? "the pool has no master" : "the recorded master is not in the quorate partition",
              "taking over as master (epoch %llu)", (unsigned long long)db->master_epoch + 1);
        commit(c, (struct ha_change){.type = HA_CHG_MASTER, .host = c->self, .vm = -1});
    } else if (db->master == c->self && want != c->self && want == db->preferred_master &&
               c->master_sent != db->master_epoch + 1) {
        c->master_sent = db->master_epoch + 1;
        logf_(c, "designated master", "handing the master role to %s", hname(c, want));
        commit(c, (struct ha_change){.type = HA_CHG_MASTER, .host = want, .vm = -1});
    } else if (db->master == c->self && c->office_epoch != db->master_epoch &&
               c->master_sent != db->master_epoch + 1) {
        /* The record names us from before vigild (re)started here: that
         * was another life of this host, with its own orders and operation
         * ids.  Take office in an epoch of our own, so that agents can tell
         * our orders from the old ones and no operation id is reused. */
        c->master_sent = db->master_epoch + 1;
        logf_(c, "the pool database names this host master from before vigild started here",
              "taking office again (epoch %llu)", (unsigned long long)db->master_epoch + 1);
        commit(c, (struct ha_change){.type = HA_CHG_MASTER, .host = c->self, .vm = -1});
    }
    return db->master == c->self && c->office_epoch == db->master_epoch;
}

/* Runs once per successful disk read; returns whether to write the lease. */
static bool lease_step(struct ha_core *c, int *owner, uint64_t *counter)
{
    bool candidate = c->side == HA_SIDE_WIN && wanted_master(c) == c->self;
    bool expired = c->lease_owner == HA_NO_HOST ||
                   c->disk_last_ok - c->lease_changed_at >= c->db->set.disk_timeout;
    switch (c->lease) {
    case L_HELD:
        if (c->lease_owner != c->self) {
            c->lease = L_NONE;
            logf_(c, "another host wrote the lease block", "lost the master lease to %s",
                  hname(c, c->lease_owner));
            return false;
        }
        /* an undecided holder keeps it: in a split the lease is what breaks
         * the tie, so giving it up while waiting would hand the tie away */
        if (!candidate && !(c->side == HA_SIDE_UNDECIDED && wanted_master(c) == c->self)) {
            c->lease = L_NONE;
            logf_(c, c->side == HA_SIDE_WIN ? "another host is to be master" : "our partition lost",
                  "released the master lease");
            *owner = HA_NO_HOST;
            *counter = c->lease_counter + 1;
            return true;
        }
        c->lease_renewed_at = c->now;
        *owner = c->self;
        *counter = c->lease_counter + 1;
        return true;
    case L_CLAIMING:
        if (c->lease_owner == c->self && candidate) {
            c->lease = L_HELD;
            c->lease_renewed_at = c->now;
            c->lease_epoch = c->lease_counter;
            logf_(c, "our claim survived a full disk interval", "acquired the master lease");
            *owner = c->self;
            *counter = c->lease_counter + 1;
            return true;
        }
        c->lease = L_NONE;
        return false;
    case L_NONE:
        if (candidate && expired) {
            c->lease = L_CLAIMING;
            *owner = c->self;
            *counter = c->lease_counter + 1;
            return true;
        }
        return false;
    }
    return false;
}

/* The end of a term as master.  Fence records (running, confirmed) are the
 * master's working state for its own term; the pool database keeps what
 * outlives it (the fenced flags).  Kept across terms, a fence confirmed
 * long ago would be taken, when this host is master again, as proof that
 * the host is off now, although it may have come back and failed again
 * meanwhile (only a master's reconcile notices that a host is back).  A new
 * term starts from the database, like any other new master. */
static void step_down(struct ha_core *c)
{
    c->master = false;
    for (int h = 0; h < c->db->nhosts; h++)
        c->fence[h] = (struct fence_state){0};
}

/* ------------------------------------------------------------ self-fence */

static bool runs_vms_here(const struct ha_core *c)
{
    for (int v = 0; v < c->nvm; v++)
        if (c->vm[v].obs_host == c->self && c->vm[v].obs != HA_OBS_NONE && c->vm[v].obs != HA_OBS_CRASHED)
            return true;
    return false;
}

static void self_fence(struct ha_core *c, const char *why)
{
    if (c->self_fenced)
        return;
    logf_(c, why, "self-fencing: stopping local VMs hard and rebooting");
    struct ha_action *w = emit(c, HA_ACT_DISK_WRITE);
    if (c->slot[c->self].last.poison > c->poison_base)
        c->poison_base = c->slot[c->self].last.poison; /* acknowledged by this self-fence */
    w->slot = (struct ha_slot){.seq = ++c->my_seq,
                               .flags = HA_SLOT_SELF_FENCED | (c->db->set.watchdog ? HA_SLOT_WATCHDOG : 0),
                               .liveset = c->members | HA_BIT(c->self),
                               .poison_ack = c->poison_base};
    w->lease_write = c->lease != L_NONE;
    w->lease_owner = HA_NO_HOST;
    w->lease_counter = c->lease_counter + 1;
    struct ha_action *x = emit(c, HA_ACT_SELF_FENCE);
    snprintf(x->why, sizeof x->why, "%s", why);
    c->self_fenced = true;
    c->master = false;
    c->lease = L_NONE;
}

/* ------------------------------------------------------------ events */

static void on_disk(struct ha_core *c, const struct ha_event *ev)
{
    const struct ha_db *db = c->db;
    if (!ev->u.disk.ok) {
        if (c->disk_seen && c->now - c->disk_last_ok >= db->set.disk_timeout &&
            c->now - c->disk_last_ok < db->set.disk_timeout + db->set.disk_interval)
            logf_(c, "no successful heartbeat I/O for disk_timeout", "lost the heartbeat disk");
        return;
    }
    bool first = !c->disk_seen;
    c->disk_seen = true;
    c->disk_last_ok = c->now;
    for (int h = 0; h < db->nhosts; h++) {
        struct slot_view *s = &c->slot[h];
        const struct ha_slot *n = &ev->u.disk.slot[h];
        bool changed = !s->seen || n->seq != s->last.seq;
        if (changed)
            s->changed_at = c->now;
        if (!(n->flags & HA_SLOT_SELF_FENCED))
            s->sf_valid = false;
        else if (changed)
            s->sf_valid = true;
        s->seen = true;
        s->last = *n;
    }
    if (ev->u.disk.lease_owner != c->lease_owner || ev->u.disk.lease_counter != c->lease_counter ||
        first)
        c->lease_changed_at = c->now;
    c->lease_owner = ev->u.disk.lease_owner >= 0 && ev->u.disk.lease_owner < db->nhosts
                         ? ev->u.disk.lease_owner
                         : HA_NO_HOST;
    c->lease_counter = ev->u.disk.lease_counter;

    /* The mailbox against the value our slot says we acted on: a request
     * that arrived while vigild was down is not silently absorbed. */
    uint64_t poison = ev->u.disk.slot[c->self].poison;
    if (!c->poison_base_set) {
        c->poison_base = ev->u.disk.slot[c->self].poison_ack;
        c->poison_base_set = true;
        c->pill_at_start = poison > c->poison_base && db->host[c->self].joined;
    } else if (poison > c->poison_base && db->host[c->self].joined && !c->pill_at_start) {
        self_fence(c, "the master wrote a fence request into our disk mailbox");
    }
}

static void write_slot(struct ha_core *c)
{
    if (c->self_fenced || !c->disk_seen || c->now != c->disk_last_ok)
        return;
    int owner = HA_NO_HOST;
    uint64_t counter = 0;
    bool lw = c->db->host[c->self].joined && lease_step(c, &owner, &counter);
    struct ha_action *w = emit(c, HA_ACT_DISK_WRITE);
    w->slot = (struct ha_slot){
        .seq = ++c->my_seq,
        .flags = (c->db->set.watchdog ? HA_SLOT_WATCHDOG : 0) | (c->have_membership ? 0 : HA_SLOT_JOINING),
        .liveset = (c->members | HA_BIT(c->self)),
        .poison_ack = c->poison_base,
    };
    w->lease_write = lw;
    w->lease_owner = owner;
    w->lease_counter = counter;
}

/* ------------------------------------------------------------ evaluation */

static void evaluate(struct ha_core *c)
{
    const struct ha_db *db = c->db;
    if (c->pill_at_start && (c->inventory & HA_BIT(c->self))) {
        /* A fence request was waiting when we started.  If VMs run here,
         * vigild restarted under them: obey.  If none do, this is a fresh
         * boot that already did what the request asked: acknowledge it. */
        c->pill_at_start = false;
        if (runs_vms_here(c)) {
            self_fence(c, "a fence request was waiting in our disk mailbox and VMs run here");
            return;
        }
        logf_(c, "this host runs no VMs: a fresh start already did what it asked",
              "acknowledged a fence request found in our disk mailbox at start");
        c->poison_base = c->slot[c->self].last.poison;
    }
    for (int h = 0; h < db->nhosts; h++) {
        if (!db->host[h].joined) {
            /* a host that left owns nothing; if it joins again it is new */
            c->seen_alive &= ~HA_BIT(h);
            c->fence[h] = (struct fence_state){0};
        }
        enum ha_verdict v = compute_verdict(c, h);
        if (v == HA_ALIVE && (c->members & HA_BIT(h)))
            c->seen_alive |= HA_BIT(h);
        if (v != c->verdict[h] && db->host[h].joined && h != c->self) {
            char why[HA_REASON_MAX];
            snprintf(why, sizeof why, "corosync: %s, disk slot: %s",
                     (c->members & HA_BIT(h)) ? "member" : "gone",
                     !db->set.heartbeat_disk ? "none (no heartbeat disk)"
                     : !disk_usable(c)       ? "unknown (our disk is unusable)"
                     : slot_fresh(c, h)      ? "fresh"
                                             : "stale");
            logf_(c, why, "%s is %s", hname(c, h), ha_verdict_name(v));
        }
        c->verdict[h] = v;
    }

    char why[HA_REASON_MAX];
    enum ha_side side = compute_side(c, why, sizeof why);
    if (side != c->side) {
        static const char *const names[] = {"undecided", "winning", "losing"};
        logf_(c, why, "partition side: %s", names[side]);
        c->side = side;
    }
    if (side == HA_SIDE_LOSE) {
        if (runs_vms_here(c) || c->lease != L_NONE)
            self_fence(c, why);
        else if (c->master)
            step_down(c);
    }
    if (c->self_fenced)
        return;

    bool lease_ok = c->lease == L_HELD && c->now - c->lease_renewed_at < db->set.disk_timeout / 2 + 1;
    if (!db->set.heartbeat_disk)
        lease_ok = corosync_only_master(c, side);
    bool master = side == HA_SIDE_WIN && lease_ok && db->host[c->self].joined;
    if (master != c->master) {
        if (master && !db->set.heartbeat_disk)
            c->lease_epoch = db->master_epoch; /* orders of a later master outrank ours */
        logf_(c,
              !db->set.heartbeat_disk ? (master ? "the pool database names this host master, in the quorate partition"
                                                : "quorum lost or another host is master")
              : master ? "holding the master lease on the winning side"
                       : "lease or partition lost",
              master ? "became master" : "no longer master");
        if (master)
            c->master = true;
        else
            step_down(c);
    }
    if (c->master)
        master_reconcile(c);
}

static void arm_timer(struct ha_core *c)
{
    if (!c->master || c->self_fenced)
        return;
    ha_ms t = fence_next_deadline(c);
    ha_ms o = ops_next_deadline(c);
    if (o && (!t || o < t))
        t = o;
    if (t && t <= c->now)
        t = c->now + 1; /* due now but not handled in this step: never arm in the past */
    if (t && t != c->timer_at) {
        c->timer_at = t;
        struct ha_action *x = emit(c, HA_ACT_TIMER);
        x->at = t;
    }
}

static void sync_vms(struct ha_core *c)
{
    if (c->nvm == c->db->nvms)
        return;
    struct vm_rt *nv = realloc(c->vm, (size_t)(c->db->nvms ? c->db->nvms : 1) * sizeof *nv);
    if (!nv)
        abort();
    for (int v = c->nvm; v < c->db->nvms; v++)
        nv[v] = (struct vm_rt){.obs_host = HA_NO_HOST, .obs_to = HA_NO_HOST, .op_host = HA_NO_HOST,
                               .op_to = HA_NO_HOST, .avoid_host = HA_NO_HOST, .on_host = HA_NO_HOST,
                               .lost_from = HA_NO_HOST, .arriving = HA_NO_HOST, .unconfirmed = HA_NO_HOST,
                               .obs_placed = HA_NO_HOST, .unc_placed = HA_NO_HOST};
    c->vm = nv;
    c->nvm = c->db->nvms;
}

struct ha_core *ha_core_new(const struct ha_db *db, int self)
{
    if (self < 0 || self >= db->nhosts)
        return NULL;
    struct ha_core *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->db = db;
    c->self = self;
    c->lease_owner = HA_NO_HOST;
    c->members = HA_BIT(self);
    c->started = -1;
    c->epoch_seen = db->master_epoch; /* an epoch older than this core is not its own */
    for (int h = 0; h < HA_MAX_HOSTS; h++)
        c->verdict[h] = HA_UNKNOWN;
    sync_vms(c);
    return c;
}

void ha_core_free(struct ha_core *c)
{
    if (!c)
        return;
    free(c->vm);
    free(c);
}

static bool valid_host(const struct ha_core *c, int h) { return h >= 0 && h < c->db->nhosts; }
static bool valid_vm(const struct ha_core *c, int v) { return v >= 0 && v < c->db->nvms; }

void ha_core_step(struct ha_core *c, const struct ha_event *ev, struct ha_actions *out)
{
    c->out = out;
    if (ev->now >= c->now)
        c->now = ev->now;
    if (c->started < 0)
        c->started = c->now;
    sync_vms(c);
    if (c->self_fenced)
        return;
    if (c->db->master_epoch != c->epoch_seen) {
        /* a MASTER change applied while we run: if it names us, this core
         * took office in it (a takeover or a handoff seen live) */
        c->epoch_seen = c->db->master_epoch;
        if (c->db->master == c->self)
            c->office_epoch = c->epoch_seen;
    }
    if (c->master && !c->db->set.heartbeat_disk && c->db->master != c->self) {
        /* the pool made another host master: not one more order from us */
        step_down(c);
        logf_(c, "the pool database names another master", "no longer master");
    }

    switch (ev->type) {
    case HA_EV_MEMBERSHIP: {
        ha_hostset m = ev->u.membership.members | HA_BIT(c->self);
        if (c->db->nhosts < HA_MAX_HOSTS)
            m &= HA_BIT(c->db->nhosts) - 1;
        if (!c->have_membership || m != c->members || c->quorate != ev->u.membership.quorate)
            logf_(c, "corosync configuration change", "membership: %d host(s), %s", ha_popcount(m),
                  ev->u.membership.quorate ? "quorate" : "not quorate");
        c->inventory &= m; /* a host that left must send its full list again */
        for (int h = 0; h < c->db->nhosts; h++)
            if (m & ~c->members & HA_BIT(h)) {
                c->slot[h].sf_valid = false; /* it came back: an older record proves nothing */
                if (h != c->self)
                    vms_unconfirm(c, h);
            }
        for (int h = 0; h < c->db->nhosts; h++)
            if ((m & ~c->members & HA_BIT(h)) || !c->have_membership) {
                c->gain_seq[h] = c->report_seq;
                c->member_since[h] = c->now;
            }
        if (m != c->members)
            c->master_sent = 0; /* a MASTER change sent in the old view may have been dropped */
        c->members = m;
        c->quorate = ev->u.membership.quorate;
        c->have_membership = true;
        break;
    }
    case HA_EV_DISK:
        if (!c->db->set.heartbeat_disk)
            return; /* the pool has no heartbeat disk: a stray tick proves nothing */
        on_disk(c, ev);
        break;
    case HA_EV_FENCE_DONE:
        if (valid_host(c, ev->u.fence.host))
            fence_device_done(c, ev->u.fence.host, ev->u.fence.ok, ev->u.fence.why);
        break;
    case HA_EV_VM_REPORT:
        /* an unknown state is not "gone": drop the report rather than guess */
        if (valid_host(c, ev->u.report.host) && valid_vm(c, ev->u.report.vm) &&
            (unsigned)ev->u.report.state <= HA_OBS_CRASHED &&
            (ev->u.report.state != HA_OBS_MIGRATING || valid_host(c, ev->u.report.to)))
            vm_report(c, ev->u.report.host, ev->u.report.vm, ev->u.report.state, ev->u.report.to, ev->u.report.op);
        break;
    case HA_EV_VM_LOAD:
        if (valid_vm(c, ev->u.load.vm) && ev->u.load.cpu_pct >= 0 && ev->u.load.cpu_pct < 1e6)
            c->vm[ev->u.load.vm].load = ev->u.load.cpu_pct;
        break;
    case HA_EV_INVENTORY:
        /* a list from a host outside our view was sent before it left: it
         * must send a new one when it comes back */
        if (valid_host(c, ev->u.report.host) && (c->members & HA_BIT(ev->u.report.host))) {
            int h = ev->u.report.host;
            c->inventory |= HA_BIT(h);
            c->inv_seq[h] = ++c->report_seq;
            for (int v = 0; v < c->nvm; v++)
                if (c->vm[v].unconfirmed == h)
                    c->vm[v].unconfirmed = HA_NO_HOST; /* its list says where it is now */
            /* the list is complete: what we knew of h from before it
             * (re)joined and it did not report again is not there */
            for (int v = 0; v < c->nvm; v++)
                if (c->vm[v].obs_host == h && c->vm[v].obs_seq <= c->gain_seq[h] && h != c->self) {
                    c->vm[v].obs_host = HA_NO_HOST;
                    c->vm[v].obs = HA_OBS_NONE;
                }
        }
        break;
    case HA_EV_VM_FAILED:
        if (valid_vm(c, ev->u.failed.vm))
            vm_failed(c, ev->u.failed.vm, ev->u.failed.op, ev->u.failed.why);
        break;
    case HA_EV_CMD:
        if (!c->master) {
            struct ha_action *x = emit(c, HA_ACT_CMD_DONE);
            x->ok = false;
            snprintf(x->what, sizeof x->what, "%s is not the master: commands are decided by the master",
                     hname(c, c->self));
        }
        break;
    case HA_EV_TIMER:
        c->timer_at = 0;
        break;
    case HA_EV_DB:
        break; /* evaluate() below looks at the new database */
    }
    if (c->self_fenced)
        return;
    evaluate(c);
    if (ev->type == HA_EV_CMD && c->master) {
        c->in_cmd = true;
        master_command(c, &ev->u.cmd);
        c->in_cmd = false;
    }
    if (ev->type == HA_EV_DISK) {
        write_slot(c);
        if (c->lease == L_HELD && !c->master && !c->self_fenced)
            evaluate(c); /* act on a lease acquired this tick, not a tick later */
    }
    arm_timer(c);
}

/* ------------------------------------------------------------ queries */

bool ha_core_is_master(const struct ha_core *c)
{
    return c->master && !c->self_fenced && (c->db->set.heartbeat_disk || c->db->master == c->self);
}
int ha_core_self(const struct ha_core *c) { return c->self; }
enum ha_side ha_core_side(const struct ha_core *c) { return c->side; }

enum ha_verdict ha_core_verdict(const struct ha_core *c, int h)
{
    return valid_host(c, h) ? c->verdict[h] : HA_UNKNOWN;
}

enum ha_host_state ha_core_host_state(const struct ha_core *c, int h)
{
    if (!valid_host(c, h))
        return HA_HOST_OFFLINE;
    const struct ha_db_host *d = &c->db->host[h];
    if (!d->joined)
        return HA_HOST_LEFT;
    enum fence_phase f = c->fence[h].phase;
    if (f == F_DEVICE || f == F_DISK || f == F_BACKOFF)
        return HA_HOST_FENCING;
    if (d->fenced)
        return HA_HOST_FENCED;
    if (c->verdict[h] == HA_ALIVE)
        return d->maintenance ? HA_HOST_MAINTENANCE : HA_HOST_ONLINE;
    if (!(c->seen_alive & HA_BIT(h)))
        return HA_HOST_OFFLINE;
    return HA_HOST_SUSPECT;
}
