/* The simulated world and the run loop.
 *
 * The world owns the truth: which hosts have power, which network group each
 * is in, what is on the heartbeat LUN, which VM runs where.  Each host that
 * runs vigild has its own ha_core, fed only what that host could observe:
 * its corosync view (token_timeout after a change), its reads of the LUN,
 * agent reports from hosts it can reach.  Invariants are checked against the
 * truth after every step. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

enum qtype { Q_SCN, Q_DISK, Q_MEMB, Q_DB, Q_TIMER, Q_FENCE, Q_VMDONE, Q_VMFAIL, Q_REPORT, Q_INV, Q_EXPECT, Q_BOUND, Q_END };

struct qent {
    ha_ms at;
    uint64_t seq;
    enum qtype type;
    int host, vm, arg;
    uint64_t id;
    uint64_t op; /* Q_REPORT: the VM operation the report follows */
};

enum wvm_state { W_OFF, W_STARTING, W_RUNNING, W_STOPPING, W_MIGRATING };

struct wvm {
    int host;
    enum wvm_state st;
    int to;
    uint64_t op;       /* id of the pending world operation */
    int op_master;     /* core that asked for it (gets failures) */
    uint64_t core_op;  /* the core's id for it */
    uint64_t to_boot;  /* boot id of the migration target when it began */
    int lost_from;     /* host whose failure took it down, or -1 */
    ha_ms lost_at;
};

struct whost {
    bool powered, vigild, storage_lost, bmc_fail, started_once;
    int group;
    uint64_t boot;
    struct ha_core *core;
    ha_ms timer_at;
    ha_hostset view;   /* last delivered membership */
    uint64_t view_boot[HA_MAX_HOSTS]; /* boot id of each member in that view */
    bool view_sent;
    ha_ms last_read_ok;
    ha_ms seen_change[HA_MAX_HOSTS]; /* per slot: our read time of its last new seq */
    uint64_t seen_seq[HA_MAX_HOSTS];
};

struct sim {
    struct scenario *s;
    struct ha_db db;
    const struct sim_opts *o;
    FILE *out;
    ha_ms now;
    struct qent *q;
    size_t nq, capq;
    uint64_t qseq, opseq;
    struct whost h[HA_MAX_HOSTS];
    struct wvm *vm;
    struct ha_slot disk[HA_MAX_HOSTS];
    uint64_t mailbox[HA_MAX_HOSTS];
    int lease_owner;
    uint64_t lease_counter;
    int next_group;
    ha_ms fenced_at[HA_MAX_HOSTS];   /* last confirmed fence (commit time) */
    ha_ms failed_at[HA_MAX_HOSTS];
    int cur_master;                  /* the host acting as master now (HA_NO_HOST: none) */
    ha_ms master_since;              /* since when that host (or no host) has been master */
    ha_ms booted_at[HA_MAX_HOSTS];   /* a host that booted runs nothing from before */
    ha_ms bmc_ok_at[HA_MAX_HOSTS];   /* last fence-ok */
    /* [rcv][from]: a message from `from` to `rcv` waits for retransmission
     * until then; later ones queue behind it (CPG is FIFO per sender) */
    ha_ms held[HA_MAX_HOSTS][HA_MAX_HOSTS];
    uint64_t db_ev_boot[HA_MAX_HOSTS]; /* boot id an HA_EV_DB is queued for (0: none) */
    bool last_cmd_refused;
    bool have_cmd;
    char last_cmd_msg[HA_REASON_MAX];
    struct sim_result *res;
    /* timeline kept for context on failure */
    char **tl;
    size_t ntl, captl;
    bool *never_failed; /* per expectation: already reported this run */
};

/* ------------------------------------------------------------ output */

static void tl_add(struct sim *S, const char *line)
{
    if (S->ntl == S->captl) {
        size_t cap = S->captl ? S->captl * 2 : 256;
        char **n = realloc(S->tl, cap * sizeof *n);
        if (!n)
            abort();
        S->tl = n;
        S->captl = cap;
    }
    S->tl[S->ntl++] = strdup(line);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

static void say(struct sim *S, const char *actor, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void say(struct sim *S, const char *actor, const char *why, const char *fmt, ...)
{
    char what[512], t[32], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ha_format_time(S->now, t, sizeof t);
    snprintf(line, sizeof line, "%10s  %-8s %s%s%s%s", t, actor, what, why && *why ? "  (" : "", why ? why : "",
             why && *why ? ")" : "");
    tl_add(S, line);
    if (S->o->quiet)
        return;
    if (S->o->json) {
        fprintf(S->out, "{\"t_ms\":%" PRId64 ",\"actor\":", S->now);
        json_str(S->out, actor);
        fprintf(S->out, ",\"what\":");
        json_str(S->out, what);
        fprintf(S->out, ",\"why\":");
        json_str(S->out, why ? why : "");
        fprintf(S->out, "}\n");
    } else
        fprintf(S->out, "%s\n", line);
}

/* Failure reports: with --json they go to stderr, keeping stdout pure JSON. */
static FILE *rep(const struct sim *S) { return S->o->json ? stderr : S->out; }

static void violation(struct sim *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(struct sim *S, const char *fmt, ...)
{
    char msg[512], t[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ha_format_time(S->now, t, sizeof t);
    S->res->violations++;
    if (S->res->violations > 5)
        return;
    say(S, "CHECK", NULL, "INVARIANT VIOLATED: %s", msg);
    if (S->o->quiet || S->o->json) {
        fprintf(rep(S), "%s: INVARIANT VIOLATED at %s: %s\n  timeline before it:\n", S->s->file, t, msg);
        size_t from = S->ntl > 25 ? S->ntl - 25 : 0;
        for (size_t i = from; i < S->ntl; i++)
            fprintf(rep(S), "  | %s\n", S->tl[i]);
    }
}

static const char *H(const struct sim *S, int h) { return h >= 0 && h < S->db.nhosts ? S->db.host[h].name : "-"; }
static const char *V(const struct sim *S, int v) { return v >= 0 && v < S->db.nvms ? S->db.vm[v].name : "-"; }

/* ------------------------------------------------------------ queue */

static bool qless(const struct qent *a, const struct qent *b)
{
    return a->at != b->at ? a->at < b->at : a->seq < b->seq;
}

static void push_op(struct sim *S, ha_ms at, enum qtype t, int host, int vm, int arg, uint64_t id, uint64_t op)
{
    if (S->nq == S->capq) {
        size_t cap = S->capq ? S->capq * 2 : 1024;
        struct qent *n = realloc(S->q, cap * sizeof *n);
        if (!n)
            abort();
        S->q = n;
        S->capq = cap;
    }
    /* expectations are checked after everything else that happens at their time */
    uint64_t seq = ++S->qseq + (t == Q_EXPECT || t == Q_BOUND || t == Q_END ? ((uint64_t)1 << 62) : 0);
    struct qent e = {.at = at, .seq = seq, .type = t, .host = host, .vm = vm, .arg = arg, .id = id, .op = op};
    size_t i = S->nq++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!qless(&e, &S->q[p]))
            break;
        S->q[i] = S->q[p];
        i = p;
    }
    S->q[i] = e;
}

static void push(struct sim *S, ha_ms at, enum qtype t, int host, int vm, int arg, uint64_t id)
{
    push_op(S, at, t, host, vm, arg, id, 0);
}

static struct qent pop(struct sim *S)
{
    struct qent top = S->q[0];
    struct qent last = S->q[--S->nq];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct qent *best = &last;
        if (l < S->nq && qless(&S->q[l], best))
            m = l, best = &S->q[l];
        if (r < S->nq && qless(&S->q[r], best))
            m = r;
        if (m == i)
            break;
        S->q[i] = S->q[m];
        i = m;
    }
    if (S->nq)
        S->q[i] = last;
    return top;
}

/* ------------------------------------------------------------ world helpers */

static bool up(const struct sim *S, int h) { return S->h[h].powered && S->h[h].vigild; }
static bool linked(const struct sim *S, int a, int b)
{
    return a == b || (S->h[a].powered && S->h[b].powered && S->h[a].group == S->h[b].group);
}

static int master_host(const struct sim *S)
{
    for (int h = 0; h < S->db.nhosts; h++)
        if (up(S, h) && S->h[h].core && ha_core_is_master(S->h[h].core))
            return h;
    return HA_NO_HOST;
}

static void schedule_membership(struct sim *S, ha_ms delay) { push(S, S->now + delay, Q_MEMB, -1, -1, 0, 0); }

static void step(struct sim *S, int h, const struct ha_event *ev);

/* Agent reports and the inventory that completes them travel through the
 * queue, so every receiver gets one sender's messages in the order they were
 * sent (as over CPG): nothing overtakes a message held for retransmission. */
static ha_ms send_at(const struct sim *S, int rcv, int from)
{
    return from != rcv && S->held[rcv][from] > S->now ? S->held[rcv][from] : S->now;
}

static void report_to(struct sim *S, int rcv, int from, int v, enum ha_vm_obs st, int to)
{
    /* the agent tags it with the last operation it applied to the VM */
    push_op(S, send_at(S, rcv, from), Q_REPORT, rcv, v, (int)st | (from << 8) | ((to + 1) << 16), S->h[rcv].boot,
            S->vm[v].core_op);
}

/* Sent to every host that can hear `from` now, or that still has it in its
 * corosync view: totem retransmits within a view, so a message sent during
 * a cut shorter than the token timeout arrives late rather than never. */
static void report(struct sim *S, int from, int v, enum ha_vm_obs st, int to)
{
    for (int h = 0; h < S->db.nhosts; h++)
        if (up(S, h) && (linked(S, from, h) || (S->h[h].view_sent && (S->h[h].view & HA_BIT(from)))))
            report_to(S, h, from, v, st, to);
}

static void inventory_to(struct sim *S, int rcv, int from)
{
    push(S, send_at(S, rcv, from), Q_INV, rcv, -1, from, S->h[rcv].boot);
}

static void vm_gone_with_host(struct sim *S, int h, const char *how)
{
    int n = 0;
    for (int v = 0; v < S->db.nvms; v++) {
        struct wvm *w = &S->vm[v];
        if (w->st == W_OFF)
            continue;
        if (w->host == h) {
            w->st = W_OFF;
            w->host = -1;
            w->op = 0;
            w->lost_from = h;
            w->lost_at = S->now;
            n++;
        }
    }
    if (n)
        say(S, "world", NULL, "%d VM(s) on %s went down with it (%s)", n, H(S, h), how);
}

static void power_off(struct sim *S, int h, const char *how)
{
    struct whost *x = &S->h[h];
    if (!x->powered)
        return;
    x->powered = false;
    x->vigild = false;
    ha_core_free(x->core);
    x->core = NULL;
    x->view_sent = false;
    vm_gone_with_host(S, h, how);
    schedule_membership(S, S->db.set.token_timeout);
}

static void boot(struct sim *S, int h, bool first)
{
    struct whost *x = &S->h[h];
    if (x->powered)
        return;
    x->powered = true;
    x->vigild = true;
    x->boot++;
    S->booted_at[h] = S->now;
    x->core = ha_core_new(&S->db, h);
    if (!x->core)
        abort();
    x->timer_at = 0;
    x->view = 0;
    x->view_sent = false;
    x->last_read_ok = -1;
    memset(x->seen_change, 0, sizeof x->seen_change);
    memset(x->seen_seq, 0, sizeof x->seen_seq);
    memset(S->held[h], 0, sizeof S->held[h]);
    if (first && !x->started_once) {
        for (int v = 0; v < S->db.nvms; v++)
            if (S->s->vminit[v].host == h && S->s->vminit[v].running) {
                S->vm[v] = (struct wvm){.host = h, .st = W_RUNNING, .to = -1, .lost_from = -1};
            }
    }
    x->started_once = true;
    ha_ms phase = (ha_ms)((h * 137) % (S->db.set.disk_interval > 0 ? S->db.set.disk_interval : 1));
    push(S, S->now + phase, Q_DISK, h, -1, 0, x->boot);
    schedule_membership(S, S->db.set.token_timeout);
    /* the local agent tells vigild what already runs here */
    for (int v = 0; v < S->db.nvms; v++)
        if (S->vm[v].st == W_RUNNING && S->vm[v].host == h)
            report_to(S, h, h, v, HA_OBS_RUNNING, HA_NO_HOST);
    inventory_to(S, h, h);
}

/* ------------------------------------------------------------ actions */

static bool vm_active(const struct wvm *w) { return w->st != W_OFF; }

static void do_vm_start(struct sim *S, int master, const struct ha_action *a)
{
    int v = a->vm, h = a->host;
    struct wvm *w = &S->vm[v];
    say(S, H(S, master), a->why, "start %s on %s", V(S, v), H(S, h));
    if (!up(S, h) || !linked(S, master, h)) {
        push(S, S->now + 10, Q_VMFAIL, master, v, 0, a->op);
        return;
    }
    if (vm_active(w)) {
        if (w->host == h) { /* already there: the agent says so, for this operation */
            w->core_op = a->op;
            static const enum ha_vm_obs map[] = {[W_STARTING] = HA_OBS_STARTING, [W_RUNNING] = HA_OBS_RUNNING,
                                                 [W_STOPPING] = HA_OBS_STOPPING, [W_MIGRATING] = HA_OBS_MIGRATING};
            report(S, h, v, map[w->st], w->st == W_MIGRATING ? w->to : HA_NO_HOST);
            return;
        }
        violation(S, "%s started on %s while it runs on %s (double start)", V(S, v), H(S, h), H(S, w->host));
        return;
    }
    if (w->lost_from >= 0 && S->fenced_at[w->lost_from] < w->lost_at && S->booted_at[w->lost_from] < w->lost_at)
        violation(S, "%s recovered on %s before the fence of %s (which it was lost with) was confirmed", V(S, v),
                  H(S, h), H(S, w->lost_from));
    w->host = h;
    w->st = W_STARTING;
    w->to = -1;
    w->op = ++S->opseq;
    w->op_master = master;
    w->core_op = a->op;
    w->lost_from = -1;
    report(S, h, v, HA_OBS_STARTING, HA_NO_HOST);
    push(S, S->now + S->db.set.vm_start, Q_VMDONE, h, v, 0, w->op);
}

static void do_vm_stop(struct sim *S, int master, const struct ha_action *a)
{
    int v = a->vm, h = a->host;
    struct wvm *w = &S->vm[v];
    say(S, H(S, master), a->why, "stop %s on %s", V(S, v), H(S, h));
    if (!up(S, h) || !linked(S, master, h) || w->host != h || w->st != W_RUNNING) {
        push(S, S->now + 10, Q_VMFAIL, master, v, 0, a->op);
        return;
    }
    w->st = W_STOPPING;
    w->op = ++S->opseq;
    w->op_master = master;
    w->core_op = a->op;
    report(S, h, v, HA_OBS_STOPPING, HA_NO_HOST);
    push(S, S->now + S->db.set.vm_stop, Q_VMDONE, h, v, 0, w->op);
}

static void do_vm_migrate(struct sim *S, int master, const struct ha_action *a)
{
    int v = a->vm, from = a->host, to = a->to;
    struct wvm *w = &S->vm[v];
    say(S, H(S, master), a->why, "migrate %s from %s to %s", V(S, v), H(S, from), H(S, to));
    if (!up(S, from) || !linked(S, master, from) || w->host != from || w->st != W_RUNNING) {
        push(S, S->now + 10, Q_VMFAIL, master, v, 0, a->op);
        return;
    }
    w->st = W_MIGRATING;
    w->to = to;
    w->to_boot = S->h[to].boot;
    w->op = ++S->opseq;
    w->op_master = master;
    w->core_op = a->op;
    report(S, from, v, HA_OBS_MIGRATING, to);
    push(S, S->now + S->db.set.migrate_time, Q_VMDONE, from, v, 0, w->op);
}


/* Every member applied a change: each running core hears of it in this
 * instant (one HA_EV_DB for any number of changes), and acts on the new
 * database, as vigild does after its replica applies changes. */
static void db_changed(struct sim *S)
{
    for (int h = 0; h < S->db.nhosts; h++)
        if (up(S, h) && S->db_ev_boot[h] != S->h[h].boot) {
            S->db_ev_boot[h] = S->h[h].boot;
            push(S, S->now, Q_DB, h, -1, 0, S->h[h].boot);
        }
}

static void do_commit(struct sim *S, int master, const struct ha_change *c)
{
    if (!ha_change_allowed(&S->db, master, S->h[master].view | HA_BIT(master), c)) {
        /* every member drops it alike (vigild does the same on the CPG stream) */
        if (!S->o->quiet)
            fprintf(S->out, "%10.3fs  %-8s change type %d from a host that is not master: dropped by every member\n",
                    S->now / 1000.0, H(S, master), c->type);
        return;
    }
    if (ha_db_apply(&S->db, c) < 0) {
        violation(S, "%s committed a change the database rejects (type %d)", H(S, master), c->type);
        return;
    }
    db_changed(S);
    switch (c->type) {
    case HA_CHG_HOST_FENCED:
        if (c->arg)
            S->fenced_at[c->host] = S->now;
        break;
    case HA_CHG_HOST_JOIN:
        schedule_membership(S, S->db.set.token_timeout);
        break;
    case HA_CHG_HOST_LEAVE:
        /* vigild on the host stops and corosync leaves cleanly */
        if (S->h[c->host].powered && S->h[c->host].vigild) {
            S->h[c->host].vigild = false;
            ha_core_free(S->h[c->host].core);
            S->h[c->host].core = NULL;
            S->h[c->host].view_sent = false;
        }
        schedule_membership(S, 200);
        break;
    default:
        break;
    }
}

static void do_actions(struct sim *S, int h, struct ha_actions *acts)
{
    for (size_t i = 0; i < acts->n; i++) {
        const struct ha_action *a = &acts->v[i];
        switch (a->type) {
        case HA_ACT_LOG:
            say(S, H(S, h), a->why, "%s", a->what);
            break;
        case HA_ACT_TIMER:
            if (S->h[h].powered) {
                S->h[h].timer_at = a->at;
                push(S, a->at > S->now ? a->at : S->now, Q_TIMER, h, -1, 0, S->h[h].boot);
            }
            break;
        case HA_ACT_FENCE: {
            int t = a->host;
            say(S, H(S, h), NULL, "fence %s through its BMC (level 1: ipmi)", H(S, t));
            if (S->h[t].bmc_fail)
                push(S, S->now + S->db.set.fence_timeout, Q_FENCE, t, -1, 0, (uint64_t)h);
            else
                push(S, S->now + S->db.set.fence_time, Q_FENCE, t, -1, 1, (uint64_t)h);
            break;
        }
        case HA_ACT_POISON:
            if (!S->h[h].storage_lost && S->h[h].powered) {
                S->mailbox[a->host]++;
                say(S, H(S, h), NULL, "poison pill written into %s's disk mailbox", H(S, a->host));
            }
            break;
        case HA_ACT_SELF_FENCE:
            say(S, H(S, h), a->why, "SELF-FENCE: reboot");
            power_off(S, h, "self-fence");
            return; /* the host is gone: nothing after this happens */
        case HA_ACT_DISK_WRITE:
            if (!S->h[h].storage_lost && S->h[h].powered) {
                S->disk[h] = a->slot;
                if (a->lease_write) {
                    S->lease_owner = a->lease_owner;
                    S->lease_counter = a->lease_counter;
                }
            }
            break;
        case HA_ACT_VM_START:
            do_vm_start(S, h, a);
            break;
        case HA_ACT_VM_STOP:
            do_vm_stop(S, h, a);
            break;
        case HA_ACT_VM_MIGRATE:
            do_vm_migrate(S, h, a);
            break;
        case HA_ACT_COMMIT:
            do_commit(S, h, &a->change);
            break;
        case HA_ACT_INVENTORY_QUERY: {
            int q = a->host;
            if (up(S, q) && linked(S, h, q)) { /* its agent lists what runs there, then says it is complete */
                static const enum ha_vm_obs map[] = {[W_STARTING] = HA_OBS_STARTING, [W_RUNNING] = HA_OBS_RUNNING,
                                                     [W_STOPPING] = HA_OBS_STOPPING, [W_MIGRATING] = HA_OBS_MIGRATING};
                for (int v = 0; v < S->db.nvms; v++)
                    if (S->vm[v].st != W_OFF && S->vm[v].host == q)
                        report_to(S, h, q, v, map[S->vm[v].st], S->vm[v].st == W_MIGRATING ? S->vm[v].to : HA_NO_HOST);
                inventory_to(S, h, q);
            }
            break;
        }
        case HA_ACT_CMD_DONE:
            S->have_cmd = true;
            S->last_cmd_refused = !a->ok;
            snprintf(S->last_cmd_msg, sizeof S->last_cmd_msg, "%s", a->what);
            say(S, H(S, h), NULL, "%s: %s", a->ok ? "command done" : "command REFUSED", a->what);
            break;
        }
    }
}

static void check_dead_verdicts(struct sim *S, int h)
{
    struct whost *x = &S->h[h];
    if (!x->core)
        return;
    for (int t = 0; t < S->db.nhosts; t++) {
        if (t == h || ha_core_verdict(x->core, t) != HA_DEAD)
            continue;
        bool gone = x->view_sent ? !(x->view & HA_BIT(t)) : true;
        bool stale = !S->db.set.heartbeat_disk || /* corosync-only: leaving the membership is the death sign */
                     (x->last_read_ok >= 0 && x->last_read_ok - x->seen_change[t] >= S->db.set.disk_timeout);
        if (!gone || !stale)
            violation(S, "%s declared %s dead although %s", H(S, h), H(S, t),
                      !gone ? "corosync still lists it" : "its disk slot is still fresh");
    }
}

static void step(struct sim *S, int h, const struct ha_event *ev)
{
    struct whost *x = &S->h[h];
    if (!x->core)
        return;
    /* nested steps (reports triggered by actions) need their own buffer */
    struct ha_actions acts = {0};
    ha_core_step(x->core, ev, &acts);
    S->res->steps++;
    do_actions(S, h, &acts);
    check_dead_verdicts(S, h); /* after: a core that self-fenced is gone */
    ha_actions_free(&acts);
}

/* ------------------------------------------------------------ world events */

static void deliver_membership(struct sim *S)
{
    ha_hostset joined = ha_db_joined(&S->db);
    int expected = ha_popcount(joined);
    for (int h = 0; h < S->db.nhosts; h++) {
        struct whost *x = &S->h[h];
        if (!up(S, h) || !(joined & HA_BIT(h)))
            continue;
        ha_hostset view = 0;
        for (int o = 0; o < S->db.nhosts; o++)
            if (up(S, o) && (joined & HA_BIT(o)) && linked(S, h, o))
                view |= HA_BIT(o);
        /* a member that rebooted within one token timeout: corosync lists
         * it as left and joined; deliver that as two views */
        ha_hostset restarted = 0;
        for (int o = 0; o < S->db.nhosts; o++)
            if ((view & x->view & HA_BIT(o)) && x->view_boot[o] != S->h[o].boot && o != h)
                restarted |= HA_BIT(o);
        if (x->view_sent && view == x->view && !restarted)
            continue;
        for (int o = 0; o < S->db.nhosts; o++)
            x->view_boot[o] = S->h[o].boot;
        if (restarted && x->view_sent) {
            /* first the view of those that stayed: the old members still
             * here, less the ones that rebooted */
            ha_hostset stayed = x->view & view & ~restarted;
            struct ha_event lv = {.type = HA_EV_MEMBERSHIP, .now = S->now};
            lv.u.membership.members = stayed;
            lv.u.membership.quorate = ha_popcount(stayed) * 2 > expected;
            x->view = stayed;
            step(S, h, &lv);
            if (!x->core)
                continue;
        }
        ha_hostset gained = view & ~x->view;
        x->view = view;
        x->view_sent = true;
        struct ha_event ev = {.type = HA_EV_MEMBERSHIP, .now = S->now};
        ev.u.membership.members = view;
        ev.u.membership.quorate = ha_popcount(view) * 2 > expected;
        step(S, h, &ev);
        if (!x->core)
            continue;
        /* state transfer: what runs on hosts we just met */
        for (int v = 0; v < S->db.nvms; v++) {
            const struct wvm *w = &S->vm[v];
            if (vm_active(w) && w->host != h && (gained & HA_BIT(w->host))) {
                static const enum ha_vm_obs map[] = {[W_STARTING] = HA_OBS_STARTING, [W_RUNNING] = HA_OBS_RUNNING,
                                                     [W_STOPPING] = HA_OBS_STOPPING, [W_MIGRATING] = HA_OBS_MIGRATING};
                report_to(S, h, w->host, v, map[w->st], w->st == W_MIGRATING ? w->to : HA_NO_HOST);
            }
        }
        for (int g = 0; g < S->db.nhosts && x->core; g++)
            if ((gained & HA_BIT(g)) && g != h)
                inventory_to(S, h, g);
    }
}

static void disk_tick(struct sim *S, int h, uint64_t bootid)
{
    struct whost *x = &S->h[h];
    if (!up(S, h) || x->boot != bootid || !S->db.set.heartbeat_disk)
        return; /* no LUN in a corosync-only pool */
    push(S, S->now + S->db.set.disk_interval, Q_DISK, h, -1, 0, bootid);
    struct ha_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        abort();
    ev->type = HA_EV_DISK;
    ev->now = S->now;
    ev->u.disk.ok = !x->storage_lost;
    if (ev->u.disk.ok) {
        ev->u.disk.lease_owner = S->lease_owner;
        ev->u.disk.lease_counter = S->lease_counter;
        for (int o = 0; o < S->db.nhosts; o++) {
            ev->u.disk.slot[o] = S->disk[o];
            ev->u.disk.slot[o].poison = S->mailbox[o];
            if (x->last_read_ok < 0 || S->disk[o].seq != x->seen_seq[o]) {
                x->seen_change[o] = S->now;
                x->seen_seq[o] = S->disk[o].seq;
            }
        }
        x->last_read_ok = S->now;
    }
    step(S, h, ev);
    free(ev);
}

static void vm_done(struct sim *S, int h, int v, uint64_t op)
{
    struct wvm *w = &S->vm[v];
    if (w->op != op || w->st == W_OFF)
        return; /* the host died meanwhile */
    w->op = 0;
    switch (w->st) {
    case W_STARTING:
        w->st = W_RUNNING;
        say(S, "world", NULL, "%s is running on %s", V(S, v), H(S, h));
        report(S, h, v, HA_OBS_RUNNING, HA_NO_HOST);
        break;
    case W_STOPPING:
        w->st = W_OFF;
        w->host = -1;
        w->lost_from = -1;
        say(S, "world", NULL, "%s stopped on %s", V(S, v), H(S, h));
        report(S, h, v, HA_OBS_NONE, HA_NO_HOST);
        break;
    case W_MIGRATING:
        if (up(S, w->to) && linked(S, h, w->to) && S->h[w->to].boot == w->to_boot) {
            int from = w->host;
            w->host = w->to;
            w->to = -1;
            w->st = W_RUNNING;
            say(S, "world", NULL, "%s migrated from %s to %s", V(S, v), H(S, from), H(S, w->host));
            report(S, w->host, v, HA_OBS_RUNNING, HA_NO_HOST);
            report(S, from, v, HA_OBS_NONE, HA_NO_HOST);
        } else {
            say(S, "world", NULL, "migration of %s to %s failed: it stays on %s", V(S, v), H(S, w->to), H(S, h));
            w->to = -1;
            w->st = W_RUNNING;
            report(S, h, v, HA_OBS_RUNNING, HA_NO_HOST);
            push(S, S->now, Q_VMFAIL, w->op_master, v, 1, w->core_op);
        }
        break;
    case W_RUNNING:
    case W_OFF:
        break;
    }
}

/* ------------------------------------------------------------ scenario events */

static void note_failure(struct sim *S, int h) { S->failed_at[h] = S->now; push(S, S->now + S->db.set.recovery_bound, Q_BOUND, h, -1, 0, 0); }

static void run_cmd(struct sim *S, const struct scn_event *e)
{
    int m = master_host(S);
    int via = e->cmd_host != HA_NO_HOST ? e->cmd_host : m;
    S->have_cmd = true;
    S->last_cmd_refused = true;
    if (e->cmd.type == HA_CMD_POOL_JOIN) {
        int j = e->cmd.host;
        if (!S->h[j].powered) {
            snprintf(S->last_cmd_msg, sizeof S->last_cmd_msg, "%s is not running", H(S, j));
            say(S, "sim", NULL, "command REFUSED: %s", S->last_cmd_msg);
            return;
        }
        via = j;
        if (!S->h[j].vigild) { /* a host that left earlier runs vigild again to join */
            S->h[j].vigild = true;
            S->h[j].boot++;
            S->h[j].core = ha_core_new(&S->db, j);
            S->h[j].last_read_ok = -1;
            memset(S->held[j], 0, sizeof S->held[j]);
            push(S, S->now, Q_DISK, j, -1, 0, S->h[j].boot);
        }
    }
    if (via == HA_NO_HOST || m == HA_NO_HOST || !up(S, via) || !linked(S, via, m)) {
        snprintf(S->last_cmd_msg, sizeof S->last_cmd_msg, "%s",
                 m == HA_NO_HOST ? "no master: the pool has no quorum or nobody holds the master lease"
                                 : "the master cannot be reached from this host");
        say(S, via == HA_NO_HOST ? "sim" : H(S, via), NULL, "command REFUSED: %s", S->last_cmd_msg);
        return;
    }
    struct ha_event ev = {.type = HA_EV_CMD, .now = S->now};
    ev.u.cmd = e->cmd;
    if (ev.u.cmd.type == HA_CMD_POOL_LEAVE && ev.u.cmd.host == HA_NO_HOST)
        ev.u.cmd.host = via; /* typed on a host without a name: that host leaves */
    step(S, m, &ev);
}

static void scenario_event(struct sim *S, const struct scn_event *e)
{
    say(S, "sim", NULL, "%s", e->text);
    int h = e->host;
    switch (e->kind) {
    case SCN_START:
        for (int x = 0; x < S->db.nhosts; x++)
            if (h == HA_NO_HOST ? S->db.host[x].joined : x == h)
                boot(S, x, true);
        break;
    case SCN_POWER_ON:
        boot(S, h, false);
        break;
    case SCN_CRASH:
        power_off(S, h, "power loss");
        note_failure(S, h);
        break;
    case SCN_ISOLATE:
        S->h[h].group = ++S->next_group;
        schedule_membership(S, S->db.set.token_timeout);
        note_failure(S, h);
        break;
    case SCN_STORAGE_LOSS:
        S->h[h].storage_lost = true;
        note_failure(S, h);
        break;
    case SCN_PARTITION:
        for (int g = 0; g < e->ngroups; g++) {
            int id = ++S->next_group;
            for (int x = 0; x < S->db.nhosts; x++)
                if (e->group[g] & HA_BIT(x))
                    S->h[x].group = id;
        }
        for (int x = 0; x < S->db.nhosts; x++) {
            bool in = false;
            for (int g = 0; g < e->ngroups; g++)
                in |= (e->group[g] & HA_BIT(x)) != 0;
            if (!in)
                S->h[x].group = ++S->next_group;
            note_failure(S, x);
        }
        schedule_membership(S, S->db.set.token_timeout);
        break;
    case SCN_HEAL:
        for (int x = 0; x < S->db.nhosts; x++) {
            S->h[x].group = 0;
            S->h[x].storage_lost = false;
        }
        schedule_membership(S, S->db.set.token_timeout);
        break;
    case SCN_FENCE_FAIL:
        S->h[h].bmc_fail = true;
        break;
    case SCN_FENCE_OK:
        S->h[h].bmc_fail = false;
        S->bmc_ok_at[h] = S->now;
        break;
    case SCN_VM_CRASH: {
        struct wvm *w = &S->vm[e->vm];
        if (w->st == W_OFF)
            break;
        int at = w->host;
        w->st = W_OFF;
        w->host = -1;
        w->op = 0;
        w->lost_from = -1;
        say(S, "world", NULL, "%s crashed on %s", V(S, e->vm), H(S, at));
        report(S, at, e->vm, HA_OBS_CRASHED, HA_NO_HOST);
        break;
    }
    case SCN_CMD:
        run_cmd(S, e);
        break;
    case SCN_LOAD: {
        struct wvm *w = &S->vm[e->vm];
        if (w->st == W_OFF)
            break;
        /* the agent on its host measures it and tells every host it reaches */
        for (int x = 0; x < S->db.nhosts; x++) {
            if (!up(S, x) || !linked(S, w->host, x))
                continue;
            struct ha_event ev = {.type = HA_EV_VM_LOAD, .now = S->now};
            ev.u.load.vm = e->vm;
            ev.u.load.cpu_pct = e->load;
            step(S, x, &ev);
        }
        break;
    }
    }
}

/* ------------------------------------------------------------ expectations */

static bool expect_holds(struct sim *S, const struct scn_expect *e, char *got, size_t len)
{
    int m = master_host(S);
    const struct wvm *w = e->vm >= 0 ? &S->vm[e->vm] : NULL;
    bool running = w && (w->st == W_RUNNING || w->st == W_MIGRATING || w->st == W_STOPPING);
    switch (e->kind) {
    case EXP_VM_ON:
        snprintf(got, len, "%s is %s%s%s", V(S, e->vm), running ? "running on " : w->st == W_STARTING ? "starting on " : "not running",
                 w->st != W_OFF ? H(S, w->host) : "", "");
        return running && (!e->hosts || (e->hosts & HA_BIT(w->host)));
    case EXP_VM_STOPPED:
        snprintf(got, len, "%s is %s %s", V(S, e->vm), w->st == W_OFF ? "stopped" : "active on", w->st == W_OFF ? "" : H(S, w->host));
        return w->st == W_OFF;
    case EXP_VM_STATE: {
        if (m == HA_NO_HOST) {
            snprintf(got, len, "there is no master");
            return false;
        }
        int where;
        enum ha_vm_state st = ha_core_vm_state(S->h[m].core, e->vm, &where);
        snprintf(got, len, "the master sees %s %s", V(S, e->vm), ha_vm_state_name(st));
        return (int)st == e->state;
    }
    case EXP_HOST: {
        if (m == HA_NO_HOST) {
            snprintf(got, len, "there is no master");
            return false;
        }
        enum ha_host_state st = ha_core_host_state(S->h[m].core, e->host);
        snprintf(got, len, "the master (%s) sees %s %s", H(S, m), H(S, e->host), ha_host_state_name(st));
        return (int)st == e->state;
    }
    case EXP_MASTER:
        snprintf(got, len, "master is %s", m == HA_NO_HOST ? "nobody" : H(S, m));
        return m == e->host;
    case EXP_REFUSED:
        snprintf(got, len, "%s", !S->have_cmd ? "no command was run" : S->last_cmd_refused ? "refused" : "the last command was accepted");
        return S->have_cmd && S->last_cmd_refused;
    case EXP_PLAN: {
        if (m == HA_NO_HOST) {
            snprintf(got, len, "there is no master");
            return false;
        }
        struct ha_plan p;
        ha_core_plan(S->h[m].core, 0, &p);
        snprintf(got, len, "the plan tolerates %d (%s)", p.tolerates, p.method);
        return p.tolerates == e->state;
    }
    case EXP_EXPLAIN: {
        char buf[512];
        if (m == HA_NO_HOST) {
            snprintf(got, len, "there is no master");
            return false;
        }
        ha_core_explain(S->h[m].core, e->vm, buf, sizeof buf);
        snprintf(got, len, "explain says \"%s\"", buf);
        return strstr(buf, e->text) != NULL;
    }
    }
    return false;
}

static void check_expect(struct sim *S, int i)
{
    const struct scn_expect *e = &S->s->ex[i];
    char got[512];
    bool ok = expect_holds(S, e, got, sizeof got);
    if (ok) {
        say(S, "CHECK", NULL, "ok: %s", e->src);
        return;
    }
    S->res->failed_expect++;
    say(S, "CHECK", NULL, "FAILED: %s: %s", e->src, got);
    if (S->o->quiet || S->o->json) {
        char t[32];
        ha_format_time(S->now, t, sizeof t);
        fprintf(rep(S), "%s:%d: expectation failed at %s: %s\n  got: %s\n  timeline before it:\n", S->s->file, e->line, t,
                e->src, got);
        size_t from = S->ntl > 25 ? S->ntl - 25 : 0;
        for (size_t k = from; k < S->ntl; k++)
            fprintf(rep(S), "  | %s\n", S->tl[k]);
    }
}

static void check_never(struct sim *S)
{
    if (S->o->random_faults > 0)
        return; /* the file's expectations do not hold under random faults */
    for (int i = 0; i < S->s->nex; i++) {
        const struct scn_expect *e = &S->s->ex[i];
        if (e->when != EXP_NEVER || S->never_failed[i])
            continue;
        const struct wvm *w = &S->vm[e->vm];
        bool on = w->st != W_OFF && (!e->hosts || (e->hosts & HA_BIT(w->host)));
        if (on) {
            S->res->failed_expect++;
            say(S, "CHECK", NULL, "FAILED: %s: %s is on %s", e->src, V(S, e->vm), H(S, w->host));
            if (S->o->quiet || S->o->json)
                fprintf(rep(S), "%s:%d: expectation failed: %s (%s is on %s)\n", S->s->file, e->line, e->src,
                        V(S, e->vm), H(S, w->host));
            S->never_failed[i] = true; /* report once */
        }
    }
}

/* Whether host x, unreachable from master m, can be confirmed fenced. */
static bool fence_possible(const struct sim *S, int m, int x)
{
    if (x < 0 || !S->db.host[x].joined || S->db.host[x].fenced ||
        (up(S, x) && linked(S, m, x) && !S->h[x].storage_lost))
        return true; /* healthy, or nothing to fence */
    bool bmc = S->db.host[x].fence_ipmi && !S->h[x].bmc_fail;
    /* the disk proves nothing for a host still in corosync, nor without a
     * watchdog, nor when the master has no disk */
    bool disk = S->db.set.heartbeat_disk && S->db.set.watchdog && !S->h[m].storage_lost &&
                !(up(S, x) && linked(S, m, x));
    /* a BMC that answers again is retried after the fence backoff (<= 30 s) */
    bool settling = S->bmc_ok_at[x] >= 0 &&
                    S->now - S->bmc_ok_at[x] < 30000 + S->db.set.fence_timeout + S->db.set.vm_start + 3000;
    return (bmc || disk) && !settling;
}

/* Strict rules, from the world: no anti-affinity partner running on h, h
 * among its pinned hosts, and h where its running affinity partners are. */
static bool strict_rules_allow(const struct sim *S, int v, int h)
{
    for (int r = 0; r < S->db.nrules; r++) {
        const struct ha_rule *x = &S->db.rule[r];
        bool in = false;
        for (int k = 0; k < x->nvms; k++)
            in |= x->vm[k] == v;
        if (!in || !x->strict)
            continue;
        if (x->type == HA_RULE_PIN && !(x->hosts & HA_BIT(h)))
            return false;
        for (int k = 0; k < x->nvms; k++) {
            const struct wvm *w = &S->vm[x->vm[k]];
            if (x->vm[k] == v || w->st == W_OFF)
                continue;
            if (x->type == HA_RULE_ANTI_AFFINITY && w->host == h)
                return false;
            if (x->type == HA_RULE_AFFINITY && w->host != h)
                return false;
        }
    }
    return true;
}

/* Every ha=restart VM for which there is room runs within recovery_bound
 * of its host's failure, unless a host it may still run on cannot be
 * confirmed fenced (then waiting is the correct behaviour). */
static void check_bound(struct sim *S, int failed)
{
    int m = master_host(S);
    if (m == HA_NO_HOST)
        return; /* no side may run anything: nothing can be recovered */
    if (S->now - S->failed_at[failed] < S->db.set.recovery_bound)
        return; /* a later failure of the same host restarted the clock */
    if (S->master_since > S->failed_at[failed] && S->now - S->master_since < S->db.set.recovery_bound) {
        /* The master took office after the failure (the pool had none, or
         * another one): it gets the whole bound from then, since a new
         * master first has to fence the host (BMC timeout, then msgwait). */
        push(S, S->master_since + S->db.set.recovery_bound, Q_BOUND, failed, -1, 0, 0);
        return;
    }
    uint64_t used[HA_MAX_HOSTS] = {0};
    int cpus[HA_MAX_HOSTS] = {0};
    for (int v = 0; v < S->db.nvms; v++)
        if (S->vm[v].st != W_OFF) {
            used[S->vm[v].host] += S->db.vm[v].mem_mb;
            cpus[S->vm[v].host] += S->db.vm[v].cpus;
        }
    for (int v = 0; v < S->db.nvms; v++) {
        const struct wvm *w = &S->vm[v];
        const struct ha_db_vm *d = &S->db.vm[v];
        if (d->protect != HA_PROTECT_RESTART || !d->want_running || w->st != W_OFF || w->lost_from != failed ||
            w->lost_at < S->failed_at[failed] - S->db.set.recovery_bound)
            continue;
        if (!fence_possible(S, m, failed) || !fence_possible(S, m, d->host) || !fence_possible(S, m, d->migrating_to))
            continue;
        /* after=: it rightly waits while its dependency (wanted running) is down */
        if (d->after1 && S->db.vm[d->after1 - 1].want_running && S->vm[d->after1 - 1].st != W_RUNNING)
            continue;
        bool room = false;
        /* room: on a host the master itself counts as online, where the
         * VM's strict rules allow it (judged here from the world) */
        for (int h = 0; h < S->db.nhosts && !room; h++)
            room = up(S, h) && linked(S, h, m) && ha_core_host_state(S->h[m].core, h) == HA_HOST_ONLINE &&
                   !S->db.host[h].leaving && used[h] + d->mem_mb <= S->db.host[h].mem_mb &&
                   (double)(cpus[h] + d->cpus) <= S->db.host[h].cpus * S->db.set.cpu_overcommit &&
                   strict_rules_allow(S, v, h);
        if (room) {
            char buf[512];
            ha_core_explain(S->h[m].core, v, buf, sizeof buf);
            violation(S, "%s is not running %s after %s failed although there is room (%s)", V(S, v),
                      "within recovery_bound", H(S, failed), buf);
        }
    }
}

static void check_one_master(struct sim *S)
{
    int n = 0;
    for (int h = 0; h < S->db.nhosts; h++)
        n += up(S, h) && S->h[h].core && ha_core_is_master(S->h[h].core);
    if (n > 1)
        violation(S, "%d hosts act as master at once", n);
}

/* ------------------------------------------------------------ random faults */

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static void add_random_faults(struct sim *S, unsigned seed, int n)
{
    struct scenario *s = S->s;
    unsigned st = seed * 2654435761u + 1;
    ha_ms first = 0;
    for (int i = 0; i < s->nev; i++)
        if (s->ev[i].kind == SCN_START && (!first || s->ev[i].at < first))
            first = s->ev[i].at;
    ha_ms span = s->end > first + 10000 ? s->end - first - 5000 : 30000;
    ha_ms last = 0;
    int nh = S->db.nhosts;
    for (int i = 0; i < n; i++) {
        struct scn_event e = {.host = HA_NO_HOST, .vm = -1, .cmd_host = HA_NO_HOST};
        e.at = first + 5000 + (ha_ms)(rnd(&st) % (unsigned)span);
        int h = (int)(rnd(&st) % (unsigned)nh);
        int v = S->db.nvms ? (int)(rnd(&st) % (unsigned)S->db.nvms) : -1;
        unsigned k = rnd(&st) % 18;
        static const char *const names[] = {"crash", "isolate", "storage-loss", "partition", "heal", "fence-fail",
                                            "fence-ok", "power-on", "vm-crash", "cmd", "load"};
        int ki;
        switch (k) {
        case 0: case 1: e.kind = SCN_CRASH; ki = 0; break;
        case 2: e.kind = SCN_ISOLATE; ki = 1; break;
        case 3: e.kind = SCN_STORAGE_LOSS; ki = 2; break;
        case 4: e.kind = SCN_PARTITION; ki = 3; break;
        case 5: case 6: e.kind = SCN_HEAL; ki = 4; break;
        case 7: e.kind = SCN_FENCE_FAIL; ki = 5; break;
        case 8: e.kind = SCN_FENCE_OK; ki = 6; break;
        case 9: case 10: e.kind = SCN_POWER_ON; ki = 7; break;
        case 11: case 12: e.kind = v >= 0 ? SCN_VM_CRASH : SCN_HEAL; ki = v >= 0 ? 8 : 4; break;
        case 16: case 17: e.kind = v >= 0 ? SCN_LOAD : SCN_HEAL; ki = v >= 0 ? 10 : 4; e.load = (double)(rnd(&st) % 250); break;
        default: e.kind = SCN_CMD; ki = 9; break;
        }
        e.host = e.kind == SCN_HEAL ? HA_NO_HOST : h;
        e.vm = e.kind == SCN_VM_CRASH || e.kind == SCN_LOAD ? v : -1;
        char t[32];
        snprintf(t, sizeof t, "%lldms", (long long)e.at); /* as the parser reads it back */
        if (e.kind == SCN_PARTITION) {
            ha_hostset a = 0, b = 0;
            for (int x = 0; x < nh; x++)
                *(rnd(&st) & 1 ? &a : &b) |= HA_BIT(x);
            if (!a || !b) {
                e.kind = SCN_ISOLATE;
                ki = 1;
            } else {
                e.ngroups = 2;
                e.group[0] = a;
                e.group[1] = b;
                char ga[100] = "", gb[100] = "";
                for (int x = 0; x < nh; x++) {
                    char *g = (a & HA_BIT(x)) ? ga : gb;
                    snprintf(g + strlen(g), 100 - strlen(g), "%s%s", *g ? "," : "", H(S, x));
                }
                snprintf(e.text, sizeof e.text, "at %s partition %s | %s", t, ga, gb);
            }
        }
        if (e.kind == SCN_CMD) {
            unsigned c = rnd(&st) % 6;
            char *w[8];
            char hb[HA_NAME_MAX], vb[HA_NAME_MAX], h2[HA_NAME_MAX];
            snprintf(hb, sizeof hb, "%s", H(S, h));
            snprintf(vb, sizeof vb, "%s", v >= 0 ? V(S, v) : "");
            snprintf(h2, sizeof h2, "%s", H(S, (h + 1) % nh));
            int argc = 0;
            if (c == 0 || c == 1) {
                w[0] = "host"; w[1] = "maintenance"; w[2] = hb; w[3] = c == 0 ? "on" : "off"; argc = 4;
            } else if (c == 2 && v >= 0) {
                w[0] = "vm"; w[1] = "migrate"; w[2] = vb; w[3] = h2; argc = 4;
            } else if (c == 3 && v >= 0) {
                w[0] = "vm"; w[1] = "stop"; w[2] = vb; argc = 3;
            } else if (c == 4 && v >= 0) {
                w[0] = "vm"; w[1] = "start"; w[2] = vb; argc = 3;
            } else {
                w[0] = "host"; w[1] = "fence"; w[2] = hb; w[3] = "--yes"; argc = 4;
            }
            char err[128];
            if (ha_cmd_parse(&S->db, argc, w, &e.cmd, err, sizeof err) < 0)
                continue;
            char words[200] = "";
            for (int a = 0; a < argc; a++)
                snprintf(words + strlen(words), sizeof words - strlen(words), "%s%s", a ? " " : "", w[a]);
            snprintf(e.text, sizeof e.text, "at %s cmd %s", t, words);
        } else if (e.kind == SCN_LOAD) {
            snprintf(e.text, sizeof e.text, "at %s load %s %d%%", t, V(S, e.vm), (int)e.load);
        } else if (e.kind != SCN_PARTITION) {
            snprintf(e.text, sizeof e.text, "at %s %s%s%s", t, names[ki], e.kind == SCN_HEAL ? "" : " ",
                     e.kind == SCN_HEAL ? "" : e.kind == SCN_VM_CRASH ? V(S, e.vm) : H(S, e.host));
        }
        if (scenario_add_event(s, &e) < 0)
            abort();
        if (e.at > last)
            last = e.at;
    }
    /* leave time after the last fault for recovery to finish */
    ha_ms need = last + S->db.set.recovery_bound + 10000;
    if (s->end < need)
        s->end = need;
}

/* ------------------------------------------------------------ run */

int sim_run(struct scenario *s, const struct sim_opts *o, FILE *out, struct sim_result *res)
{
    struct sim *S = calloc(1, sizeof *S);
    if (!S)
        return 1;
    memset(res, 0, sizeof *res);
    S->s = s;
    S->o = o;
    S->out = out;
    S->res = res;
    S->lease_owner = HA_NO_HOST;
    S->db = s->db; /* shallow: copy the VM array below */
    S->db.vm = malloc((size_t)(s->db.nvms ? s->db.nvms : 1) * sizeof *S->db.vm);
    S->vm = calloc((size_t)(s->db.nvms ? s->db.nvms : 1), sizeof *S->vm);
    S->never_failed = calloc((size_t)(s->nex ? s->nex : 1), sizeof *S->never_failed);
    if (!S->db.vm || !S->vm || !S->never_failed)
        abort();
    if (s->db.nvms)
        memcpy(S->db.vm, s->db.vm, (size_t)s->db.nvms * sizeof *S->db.vm);
    /* the run changes its own rules (cmd rule add/del), never the scenario's */
    S->db.rule = NULL;
    if (s->db.nrules) {
        S->db.rule = malloc((size_t)s->db.nrules * sizeof *S->db.rule);
        if (!S->db.rule)
            abort();
        memcpy(S->db.rule, s->db.rule, (size_t)s->db.nrules * sizeof *S->db.rule);
    }
    for (int v = 0; v < s->db.nvms; v++)
        S->vm[v] = (struct wvm){.host = -1, .st = W_OFF, .to = -1, .lost_from = -1};
    S->cur_master = HA_NO_HOST;
    S->master_since = 0;
    for (int h = 0; h < HA_MAX_HOSTS; h++) {
        S->fenced_at[h] = -1;
        S->failed_at[h] = -1;
        S->booted_at[h] = -1;
        S->bmc_ok_at[h] = -1;
    }

    int nev_orig = s->nev;
    ha_ms end_orig = s->end;
    if (o->random_faults > 0)
        add_random_faults(S, o->seed, o->random_faults);
    for (int i = 0; i < s->nev; i++)
        push(S, s->ev[i].at, Q_SCN, -1, i, 0, 0);
    if (o->random_faults <= 0)
        for (int i = 0; i < s->nex; i++)
            if (s->ex[i].when != EXP_NEVER)
                push(S, s->ex[i].at, Q_EXPECT, -1, i, 0, 0);
    push(S, s->end, Q_END, -1, -1, 0, 0);

    while (S->nq) {
        struct qent e = pop(S);
        S->now = e.at;
        bool stop = false;
        switch (e.type) {
        case Q_SCN:
            scenario_event(S, &s->ev[e.vm]);
            break;
        case Q_DISK:
            disk_tick(S, e.host, e.id);
            break;
        case Q_MEMB:
            deliver_membership(S);
            break;
        case Q_DB:
            if (S->db_ev_boot[e.host] == e.id)
                S->db_ev_boot[e.host] = 0;
            if (up(S, e.host) && S->h[e.host].boot == e.id) {
                struct ha_event ev = {.type = HA_EV_DB, .now = S->now};
                step(S, e.host, &ev);
            }
            break;
        case Q_TIMER:
            if (up(S, e.host) && S->h[e.host].boot == e.id && S->h[e.host].timer_at == e.at) {
                struct ha_event ev = {.type = HA_EV_TIMER, .now = S->now};
                step(S, e.host, &ev);
            }
            break;
        case Q_FENCE: {
            int t = e.host, m = (int)e.id;
            bool ok = e.arg == 1 && !S->h[t].bmc_fail;
            if (ok) {
                say(S, "world", NULL, "BMC of %s: power off%s", H(S, t), S->h[t].powered ? "" : " (it was already off)");
                power_off(S, t, "fenced by its BMC");
            } else
                say(S, "world", NULL, "BMC of %s does not answer", H(S, t));
            struct ha_event ev = {.type = HA_EV_FENCE_DONE, .now = S->now};
            ev.u.fence.host = t;
            ev.u.fence.ok = ok;
            snprintf(ev.u.fence.why, sizeof ev.u.fence.why, "%s", ok ? "chassis power is off" : "no answer (timeout)");
            if (up(S, m))
                step(S, m, &ev);
            break;
        }
        case Q_VMDONE:
            vm_done(S, e.host, e.vm, e.id);
            break;
        case Q_VMFAIL:
            if (e.host >= 0 && up(S, e.host)) {
                struct ha_event ev = {.type = HA_EV_VM_FAILED, .now = S->now};
                ev.u.failed.vm = e.vm;
                ev.u.failed.op = e.id;
                snprintf(ev.u.failed.why, sizeof ev.u.failed.why, "%s",
                         e.arg ? "the destination went away during the migration" : "target host unreachable or VM not there");
                step(S, e.host, &ev);
            }
            break;
        case Q_REPORT:
        case Q_INV: {
            int from = e.type == Q_REPORT ? (e.arg >> 8) & 0xff : e.arg;
            if (!up(S, e.host) || S->h[e.host].boot != e.id)
                break; /* the receiver is gone or rebooted */
            if (!linked(S, from, e.host)) {
                /* cut off for now: retransmitted while the view lasts, and
                 * the inventory too, after the reports it completes */
                if (S->h[e.host].view & HA_BIT(from)) {
                    S->held[e.host][from] = S->now + 100;
                    push_op(S, S->now + 100, e.type, e.host, e.vm, e.arg, e.id, e.op);
                }
                break;
            }
            struct ha_event ev = {.type = e.type == Q_REPORT ? HA_EV_VM_REPORT : HA_EV_INVENTORY, .now = S->now};
            ev.u.report.host = from;
            ev.u.report.vm = e.vm;
            ev.u.report.state = (enum ha_vm_obs)(e.arg & 0xff);
            ev.u.report.to = (e.arg >> 16) - 1;
            ev.u.report.op = e.op;
            step(S, e.host, &ev);
            break;
        }
        case Q_EXPECT:
            check_expect(S, e.vm);
            break;
        case Q_BOUND:
            check_bound(S, e.host);
            break;
        case Q_END:
            stop = true;
            break;
        }
        check_never(S);
        check_one_master(S);
        int m = master_host(S);
        if (m != S->cur_master) {
            S->cur_master = m;
            S->master_since = S->now;
        }
        if (stop)
            break;
    }
    res->virtual_ms = S->now;
    if (o->plan) {
        int m = master_host(S);
        if (m == HA_NO_HOST)
            fprintf(out, "plan at %lld ms: there is no master\n", (long long)S->now);
        else {
            struct ha_plan p;
            ha_core_plan(S->h[m].core, 0, &p);
            char t[16];
            snprintf(t, sizeof t, p.tolerates < 0 ? "none" : "%d", p.tolerates);
            fprintf(out, "plan at %lld ms (master %s): tolerates %s host failure(s) (%s; failures_to_tolerate %d)\n",
                    (long long)S->now, H(S, m), t, p.method, S->db.set.failures_to_tolerate);
            for (int h = 0; h < S->db.nhosts; h++)
                if (S->db.host[h].joined)
                    fprintf(out, "  %-10s reserve %6llu MiB for %d failure(s)\n", H(S, h),
                            (unsigned long long)p.reserve_mb[h],
                            S->db.set.failures_to_tolerate ? S->db.set.failures_to_tolerate : 1);
        }
    }
    int rc = res->violations || res->failed_expect ? 1 : 0;
    if (rc && o->random_faults > 0) {
        FILE *ro = o->json ? stderr : out;
        fprintf(ro, "%s: seed %u: %d invariant violation(s). Replay: vigil-sim --seed %u --random-faults %d %s\n"
                     "fault schedule (scenario lines):\n",
                s->file, o->seed, res->violations, o->seed, o->random_faults, s->file);
        for (int i = nev_orig; i < s->nev; i++)
            fprintf(ro, "  %s\n", s->ev[i].text);
    }
    for (int h = 0; h < HA_MAX_HOSTS; h++)
        ha_core_free(S->h[h].core);
    for (size_t i = 0; i < S->ntl; i++)
        free(S->tl[i]);
    free(S->tl);
    free(S->q);
    free(S->vm);
    free(S->never_failed);
    free(S->db.vm);
    free(S->db.rule);
    s->nev = nev_orig;
    s->end = end_orig;
    free(S);
    return rc;
}
