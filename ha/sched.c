/* The scheduler: where VMs go (capacity, eligibility, placement rules), how
 * many host failures the pool can absorb (admission control), and the load
 * balancer.  See docs/scheduler.md for the policies and their reasons. */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core_int.h"

/* ------------------------------------------------------------ usage */

static bool obs_present(enum ha_vm_obs o)
{
    return o == HA_OBS_STARTING || o == HA_OBS_RUNNING || o == HA_OBS_STOPPING || o == HA_OBS_MIGRATING;
}

void usage_add(const struct ha_core *c, struct usage *u, int v, int h)
{
    if (h < 0 || h >= c->db->nhosts)
        return;
    u->mem[h] += c->db->vm[v].mem_mb;
    u->cpus[h] += c->db->vm[v].cpus;
    u->vms[h]++;
}

/* Where each VM is, or is going: the destination of a start or migration,
 * else where it was last seen.  Rules are checked against this. */
static int intended(const struct vm_rt *rt)
{
    if (rt->op == OP_START)
        return rt->op_host;
    if (rt->op == OP_MIGRATE)
        return rt->op_to;
    return obs_present(rt->obs) ? rt->obs_host : HA_NO_HOST;
}

void usage_build(const struct ha_core *c, struct usage *u)
{
    memset(u->mem, 0, sizeof u->mem);
    memset(u->cpus, 0, sizeof u->cpus);
    memset(u->vms, 0, sizeof u->vms);
    int nv = c->nvm;
    u->place = malloc((size_t)(nv ? nv : 1) * sizeof *u->place);
    u->rstart = calloc((size_t)nv + 1, sizeof *u->rstart);
    if (!u->place || !u->rstart)
        abort();
    for (int v = 0; v < nv; v++) {
        const struct vm_rt *rt = &c->vm[v];
        int at = obs_present(rt->obs) ? rt->obs_host : HA_NO_HOST;
        usage_add(c, u, v, at);
        if (rt->op == OP_START && rt->op_host != at)
            usage_add(c, u, v, rt->op_host);
        if (rt->op == OP_MIGRATE && rt->op_to != at)
            usage_add(c, u, v, rt->op_to);
        u->place[v] = intended(rt);
    }
    /* VM -> rules, as a compressed list */
    const struct ha_db *db = c->db;
    for (int r = 0; r < db->nrules; r++)
        for (int k = 0; k < db->rule[r].nvms; k++)
            if (db->rule[r].vm[k] < nv)
                u->rstart[db->rule[r].vm[k] + 1]++;
    for (int v = 0; v < nv; v++)
        u->rstart[v + 1] += u->rstart[v];
    u->rlist = malloc((size_t)(u->rstart[nv] ? u->rstart[nv] : 1) * sizeof *u->rlist);
    int *fill = calloc((size_t)(nv ? nv : 1), sizeof *fill);
    if (!u->rlist || !fill)
        abort();
    for (int r = 0; r < db->nrules; r++)
        for (int k = 0; k < db->rule[r].nvms; k++) {
            int v = db->rule[r].vm[k];
            if (v < nv)
                u->rlist[u->rstart[v] + fill[v]++] = r;
        }
    free(fill);
}

void usage_free(struct usage *u)
{
    free(u->place);
    free(u->rstart);
    free(u->rlist);
    u->place = u->rstart = u->rlist = NULL;
}

/* ------------------------------------------------------------ eligibility and rules */

bool eligible(const struct ha_core *c, int h, const char **why)
{
    const struct ha_db_host *d = &c->db->host[h];
    if (!d->joined)
        *why = "not in the pool";
    else if (d->fenced || c->fence[h].phase != F_IDLE)
        *why = "fenced";
    else if (c->verdict[h] != HA_ALIVE)
        *why = ha_verdict_name(c->verdict[h]);
    else if (d->maintenance)
        *why = "in maintenance";
    else if (d->leaving)
        *why = "leaving the pool";
    else if (!(c->inventory & HA_BIT(h)))
        *why = "has not reported its VMs yet";
    else if (h != c->self && c->db->set.heartbeat_disk && !slot_fresh(c, h))
        *why = "its disk heartbeat is not seen yet";
    else
        return true;
    return false;
}

bool fits(const struct ha_core *c, const struct usage *u, int v, int h)
{
    const struct ha_db_vm *vm = &c->db->vm[v];
    const struct ha_db_host *d = &c->db->host[h];
    return u->mem[h] + vm->mem_mb <= d->mem_mb &&
           (double)(u->cpus[h] + vm->cpus) <= (double)d->cpus * c->db->set.cpu_overcommit;
}

/* Whether VM w's strict pins (if any) allow host h. */
static bool pin_allows(const struct ha_core *c, const struct usage *u, int w, int h)
{
    for (int i = u->rstart[w]; i < u->rstart[w + 1]; i++) {
        const struct ha_rule *r = &c->db->rule[u->rlist[i]];
        if (r->type == HA_RULE_PIN && r->strict && !(r->hosts & HA_BIT(h)))
            return false;
    }
    return true;
}

/* Checks VM v on host h against its rules.  Partners that are still on
 * `ignore` (the host being evacuated) are about to move too and do not
 * count.  Returns -1 on a strict violation (why says which), else the
 * number of soft rules broken. */
static int rules_check_g(const struct ha_core *c, const struct usage *u, int v, int h, int ignore, bool whole,
                         char *why, size_t len);

int rules_check(const struct ha_core *c, const struct usage *u, int v, int h, int ignore, char *why, size_t len)
{
    return rules_check_g(c, u, v, h, ignore, false, why, len);
}

/* whole: also ask for room for the strict affinity partners that still
 * have to come to h (a preference: without it, the members that fit run) */
static int rules_check_g(const struct ha_core *c, const struct usage *u, int v, int h, int ignore, bool whole,
                         char *why, size_t len)
{
    const struct ha_db *db = c->db;
    int soft = 0;
    for (int i = u->rstart[v]; i < u->rstart[v + 1]; i++) {
        const struct ha_rule *r = &db->rule[u->rlist[i]];
        char what[HA_REASON_MAX] = "";
        switch (r->type) {
        case HA_RULE_ANTI_AFFINITY:
            for (int k = 0; k < r->nvms && !what[0]; k++) {
                int w = r->vm[k];
                if (w != v && u->place[w] == h && h != ignore)
                    snprintf(what, sizeof what, "%s anti-affinity '%s': %s is on %s", r->strict ? "strict" : "soft",
                             r->name, vname(c, w), hname(c, h));
            }
            break;
        case HA_RULE_AFFINITY: {
            uint64_t mem = db->vm[v].mem_mb;
            int cpus = db->vm[v].cpus;
            for (int k = 0; k < r->nvms && !what[0]; k++) {
                int w = r->vm[k];
                if (w == v)
                    continue;
                if (u->place[w] != HA_NO_HOST && u->place[w] != ignore && u->place[w] != h)
                    snprintf(what, sizeof what, "%s affinity '%s': %s is on %s", r->strict ? "strict" : "soft",
                             r->name, vname(c, w), hname(c, u->place[w]));
                else if (r->strict && !pin_allows(c, u, w, h))
                    snprintf(what, sizeof what, "strict affinity '%s': %s is strictly pinned elsewhere", r->name,
                             vname(c, w));
                else if (r->strict && (u->place[w] == ignore || (u->place[w] == HA_NO_HOST && db->vm[w].want_running))) {
                    mem += db->vm[w].mem_mb; /* it has to come here too */
                    cpus += db->vm[w].cpus;
                }
            }
            if (!what[0] && r->strict && whole &&
                (u->mem[h] + mem > db->host[h].mem_mb ||
                 (double)(u->cpus[h] + cpus) > db->host[h].cpus * db->set.cpu_overcommit))
                snprintf(what, sizeof what, "strict affinity '%s': %s has no room for the whole group (%llu MiB, %d vCPU)",
                         r->name, hname(c, h), (unsigned long long)mem, cpus);
            break;
        }
        case HA_RULE_PIN:
            if (!(r->hosts & HA_BIT(h))) {
                int n = snprintf(what, sizeof what, "%s pin: %s may only run on", r->strict ? "strict" : "soft",
                                 vname(c, v));
                for (int x = 0; x < db->nhosts && n > 0 && (size_t)n < sizeof what; x++)
                    if (r->hosts & HA_BIT(x))
                        n += snprintf(what + n, sizeof what - (size_t)n, " %s", hname(c, x));
            }
            break;
        }
        if (!what[0])
            continue;
        if (r->strict) {
            if (why)
                snprintf(why, len, "%s", what);
            return -1;
        }
        soft++;
    }
    return soft;
}

/* Placement policy: among eligible hosts with room that break no strict
 * rule, the fewest soft rules broken, then the most free memory after
 * placement (keeps the pool balanced), then fewer VMs, then the lowest host
 * id.  Returns HA_NO_HOST and a reason. */
static int choose_pass(const struct ha_core *c, const struct usage *u, int v, int avoid, int only, int ignore,
                       bool whole, char *why, size_t len)
{
    int best = HA_NO_HOST, best_soft = 0;
    uint64_t best_free = 0;
    int ncand = 0, nroom = 0;
    char blocked[HA_REASON_MAX] = "";
    for (int h = 0; h < c->db->nhosts; h++) {
        const char *w;
        if (h == avoid || (only != HA_NO_HOST && h != only) || !eligible(c, h, &w))
            continue;
        ncand++;
        if (!fits(c, u, v, h))
            continue;
        nroom++;
        char rw[HA_REASON_MAX];
        int soft = rules_check_g(c, u, v, h, ignore, whole, rw, sizeof rw);
        if (soft < 0) {
            if (!blocked[0])
                snprintf(blocked, sizeof blocked, "%s", rw);
            continue;
        }
        uint64_t free_after = c->db->host[h].mem_mb - u->mem[h] - c->db->vm[v].mem_mb;
        if (best == HA_NO_HOST || soft < best_soft ||
            (soft == best_soft && (free_after > best_free || (free_after == best_free && u->vms[h] < u->vms[best])))) {
            best = h;
            best_free = free_after;
            best_soft = soft;
        }
    }
    if (best != HA_NO_HOST || !why)
        return best;
    const struct ha_db_vm *vm = &c->db->vm[v];
    if (nroom) {
        snprintf(why, len, "every host with room is ruled out: %s", blocked);
    } else if (only != HA_NO_HOST) {
        const char *w = "no room";
        if (only == avoid)
            snprintf(why, len, "%s cannot take it: it just failed there", hname(c, only));
        else if (!eligible(c, only, &w))
            snprintf(why, len, "%s cannot take it: %s", hname(c, only), w);
        else
            snprintf(why, len, "%s has not %llu MiB and %d vCPU free", hname(c, only), (unsigned long long)vm->mem_mb,
                     vm->cpus);
    } else {
        if (!ncand)
            snprintf(why, len, "no eligible host");
        else
            snprintf(why, len, "no host has %llu MiB and %d vCPU free", (unsigned long long)vm->mem_mb, vm->cpus);
        size_t l = strlen(why);
        int n = 0;
        for (int h = 0; h < c->db->nhosts && l + 40 < len; h++) {
            const char *w = "it just failed there";
            if (!c->db->host[h].joined || (h != avoid && eligible(c, h, &w)))
                continue;
            snprintf(why + l, len - l, "%s%s %s", n++ ? ", " : " (not eligible: ", hname(c, h), w);
            l = strlen(why);
        }
        if (n && l + 1 < len)
            snprintf(why + l, len - l, ")");
    }
    return HA_NO_HOST;
}

int choose_host(const struct ha_core *c, const struct usage *u, int v, int avoid, int only, int ignore, char *why,
                size_t len)
{
    /* first a host with room for its whole strict affinity group; failing
     * that, one for itself (its partners then wait for room there) */
    int h = choose_pass(c, u, v, avoid, only, ignore, true, NULL, 0);
    return h != HA_NO_HOST ? h : choose_pass(c, u, v, avoid, only, ignore, false, why, len);
}

/* ------------------------------------------------------------ the failure-tolerance plan */

#define ENUM_LIMIT 20000     /* failure sets enumerated per k before using the bound */
#define SEARCH_NODES 200000  /* exact search budget per failure set */

struct pvm {
    int vm;
    int at;        /* index into hosts, -1: not placed */
    uint64_t mem;
    int cpus;
    ha_hostset allowed; /* strict pins, as host indices (bit = index into hosts) */
    int grp;       /* strict affinity group (a VM id), -1: none */
};

/* What must be placed together: one VM, or the displaced members of a
 * strict affinity group. */
struct item {
    uint64_t mem;
    int cpus;
    ha_hostset allowed;
    int first, n;  /* members: order[first .. first+n) */
};

struct plan_ctx {
    const struct ha_core *c;
    int n;                    /* hosts considered */
    int host[HA_MAX_HOSTS];   /* their ids */
    int64_t free_mem[HA_MAX_HOSTS];
    double free_cpu[HA_MAX_HOSTS];
    struct pvm *p;            /* protected VMs, by decreasing memory */
    int np;
    int *anti;                /* per protected VM: its strict anti-affinity rule ids, -1 terminated */
    int *anti_start;
    int *place_idx;           /* per VM id: host index or -1 (for anti-affinity with unprotected VMs) */
    int *grp_of;              /* per VM id: its strict affinity group (a VM id), -1: none */
    uint64_t reserve[HA_MAX_HOSTS];
    long nodes;
    bool has_rules;           /* strict pins or anti-affinity among them: hosts are not interchangeable */
};

static int cmp_pvm(const void *a, const void *b)
{
    const struct pvm *x = a, *y = b;
    if (x->mem != y->mem)
        return x->mem > y->mem ? -1 : 1;
    if (x->cpus != y->cpus)
        return y->cpus - x->cpus;
    return x->vm - y->vm;
}

/* whether displaced VM i may go to host index j given the others already
 * placed there in this attempt (strict anti-affinity) */
static bool plan_rules_ok(const struct plan_ctx *P, const int *assign, int i, int j)
{
    const struct pvm *x = &P->p[i];
    if (!(x->allowed & HA_BIT(j)))
        return false;
    const struct ha_db *db = P->c->db;
    for (int k = P->anti_start[i]; k < P->anti_start[i + 1]; k++) {
        const struct ha_rule *r = &db->rule[P->anti[k]];
        for (int m = 0; m < r->nvms; m++) {
            int w = r->vm[m];
            if (w == x->vm)
                continue;
            if (P->place_idx[w] == j)
                return false; /* a rule partner stays there */
            for (int q = 0; q < P->np; q++)
                if (P->p[q].vm == w && assign[q] == j)
                    return false;
        }
    }
    return true;
}

static bool item_ok(const struct plan_ctx *P, const int *assign, const struct item *it, const int *order, int j)
{
    if (!(it->allowed & HA_BIT(j)))
        return false;
    for (int m = 0; m < it->n; m++)
        if (!plan_rules_ok(P, assign, order[it->first + m], j))
            return false;
    return true;
}

static void item_put(const struct item *it, const int *order, int *assign, int j)
{
    for (int m = 0; m < it->n; m++)
        assign[order[it->first + m]] = j;
}

/* Exact search: can the items (big first) be placed on the survivors?
 * 1 yes, 0 no, -1 out of budget. */
static int search(struct plan_ctx *P, const struct item *items, int ni, const int *order, int pos, int64_t *fm,
                  double *fc, int *assign, ha_hostset failed)
{
    if (pos == ni)
        return 1;
    if (++P->nodes > SEARCH_NODES)
        return -1;
    const struct item *x = &items[pos];
    int tried_same = -1;
    for (int j = 0; j < P->n; j++) {
        if (failed & HA_BIT(j) || fm[j] < (int64_t)x->mem || fc[j] < x->cpus || !item_ok(P, assign, x, order, j))
            continue;
        /* hosts with identical room are interchangeable when no rule tells them apart */
        if (tried_same >= 0 && fm[j] == fm[tried_same] && fc[j] == fc[tried_same] && !P->has_rules)
            continue;
        tried_same = j;
        fm[j] -= (int64_t)x->mem;
        fc[j] -= x->cpus;
        item_put(x, order, assign, j);
        int r = search(P, items, ni, order, pos + 1, fm, fc, assign, failed);
        item_put(x, order, assign, -1);
        fm[j] += (int64_t)x->mem;
        fc[j] += x->cpus;
        if (r != 0)
            return r;
    }
    return 0;
}

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    if (x->mem != y->mem)
        return x->mem > y->mem ? -1 : 1;
    return y->cpus - x->cpus;
}

/* One failure set: 1 feasible (with a placement), 0 infeasible, -1 unknown. */
static int try_failure(struct plan_ctx *P, ha_hostset failed, bool track)
{
    int64_t fm[HA_MAX_HOSTS];
    double fc[HA_MAX_HOSTS];
    memcpy(fm, P->free_mem, sizeof fm);
    memcpy(fc, P->free_cpu, sizeof fc);
    size_t np = (size_t)(P->np ? P->np : 1);
    int *assign = malloc(np * sizeof *assign);
    int *order = malloc(np * sizeof *order);
    struct item *items = malloc(np * sizeof *items);
    if (!assign || !order || !items)
        abort();
    /* displaced VMs, grouped: members of one strict affinity group form
     * one item, bound to the host where a surviving member stays */
    int ni = 0, no = 0;
    for (int i = 0; i < P->np; i++)
        assign[i] = -1;
    for (int i = 0; i < P->np; i++) {
        if (!(P->p[i].at < 0 || (failed & HA_BIT(P->p[i].at))) || assign[i] == -2)
            continue;
        struct item *it = &items[ni++];
        *it = (struct item){.allowed = ~(ha_hostset)0, .first = no};
        for (int k = i; k < P->np; k++) {
            bool displaced = P->p[k].at < 0 || (failed & HA_BIT(P->p[k].at));
            if (!displaced || assign[k] == -2 || (k != i && (P->p[i].grp < 0 || P->p[k].grp != P->p[i].grp)))
                continue;
            assign[k] = -2; /* taken into an item */
            order[no++] = k;
            it->n++;
            it->mem += P->p[k].mem;
            it->cpus += P->p[k].cpus;
            it->allowed &= P->p[k].allowed;
            if (P->p[i].grp < 0)
                break;
        }
        if (P->p[i].grp >= 0)
            for (int v = 0; v < P->c->nvm; v++)
                if (P->grp_of[v] == P->p[i].grp && P->place_idx[v] >= 0 && !(failed & HA_BIT(P->place_idx[v])))
                    it->allowed &= HA_BIT(P->place_idx[v]); /* join the members that stay */
    }
    for (int i = 0; i < P->np; i++)
        if (assign[i] == -2)
            assign[i] = -1;
    qsort(items, (size_t)ni, sizeof *items, cmp_item);
    /* greedy first: decreasing size, onto the survivor with most free
     * memory (as placement does) */
    bool ok = true;
    for (int k = 0; k < ni && ok; k++) {
        const struct item *x = &items[k];
        int best = -1;
        for (int j = 0; j < P->n; j++)
            if (!(failed & HA_BIT(j)) && fm[j] >= (int64_t)x->mem && fc[j] >= x->cpus &&
                item_ok(P, assign, x, order, j) && (best < 0 || fm[j] > fm[best]))
                best = j;
        if (best < 0)
            ok = false;
        else {
            fm[best] -= (int64_t)x->mem;
            fc[best] -= x->cpus;
            item_put(x, order, assign, best);
        }
    }
    int r = 1;
    if (ok) {
        if (track)
            for (int j = 0; j < P->n; j++) {
                uint64_t took = (uint64_t)(P->free_mem[j] - fm[j]);
                if (took > P->reserve[j])
                    P->reserve[j] = took;
            }
    } else {
        memcpy(fm, P->free_mem, sizeof fm);
        memcpy(fc, P->free_cpu, sizeof fc);
        for (int i = 0; i < P->np; i++)
            assign[i] = -1;
        P->nodes = 0;
        r = search(P, items, ni, order, 0, fm, fc, assign, failed);
    }
    free(assign);
    free(order);
    free(items);
    return r;
}

/* C(n, k), saturating */
static long choose(int n, int k)
{
    long r = 1;
    for (int i = 1; i <= k; i++) {
        r = r * (n - k + i) / i;
        if (r > 100000000L)
            return r;
    }
    return r;
}

/* Proven sufficient condition for every k-host failure, without
 * enumeration (capacity only): a host with room for s items of the
 * largest displaced size takes any s displaced VMs, so if the survivors'
 * slots outnumber the VMs the k busiest hosts can displace, any-fit
 * placement succeeds. */
static bool slot_bound(const struct plan_ctx *P, int k)
{
    uint64_t mmax = 1;
    int cmax = 1;
    int count[HA_MAX_HOSTS] = {0}, unplaced = 0;
    for (int i = 0; i < P->np; i++) {
        if (P->p[i].mem > mmax)
            mmax = P->p[i].mem;
        if (P->p[i].cpus > cmax)
            cmax = P->p[i].cpus;
        if (P->p[i].at < 0)
            unplaced++;
        else
            count[P->p[i].at]++;
    }
    long slots[HA_MAX_HOSTS], total = 0;
    for (int j = 0; j < P->n; j++) {
        long a = P->free_mem[j] > 0 ? (long)((uint64_t)P->free_mem[j] / mmax) : 0;
        long b = P->free_cpu[j] > 0 ? (long)(P->free_cpu[j] / cmax) : 0;
        slots[j] = a < b ? a : b;
        total += slots[j];
    }
    /* worst case: the k hosts with the most VMs fail, and the k hosts with
     * the most slots are among the failed (both taken as the maximum) */
    int cs[HA_MAX_HOSTS];
    long ss[HA_MAX_HOSTS];
    memcpy(cs, count, sizeof cs);
    memcpy(ss, slots, sizeof ss);
    long lost_slots = 0, displaced = unplaced;
    for (int t = 0; t < k; t++) {
        int bc = 0, bs = 0;
        for (int j = 1; j < P->n; j++) {
            if (cs[j] > cs[bc])
                bc = j;
            if (ss[j] > ss[bs])
                bs = j;
        }
        displaced += cs[bc];
        lost_slots += ss[bs];
        cs[bc] = -1;
        ss[bs] = -1;
    }
    return total - lost_slots >= displaced && !P->has_rules;
}

/* Builds the inputs from the master's view, with the hypothetical change
 * `mod` applied (NULL: as things are). */
static void plan_build(const struct ha_core *c, const struct plan_mod *mod, struct plan_ctx *P)
{
    const struct ha_db *db = c->db;
    memset(P, 0, sizeof *P);
    P->c = c;
    struct usage u;
    usage_build(c, &u);
    int idx[HA_MAX_HOSTS];
    for (int h = 0; h < db->nhosts; h++) {
        const char *w;
        idx[h] = -1;
        if (!eligible(c, h, &w) || (mod && (mod->out & HA_BIT(h))))
            continue;
        idx[h] = P->n;
        P->host[P->n++] = h;
    }
    P->place_idx = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *P->place_idx);
    P->p = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *P->p);
    P->grp_of = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *P->grp_of);
    if (!P->place_idx || !P->p || !P->grp_of)
        abort();
    /* strict affinity groups: union-find, the root names the group */
    for (int v = 0; v < c->nvm; v++)
        P->grp_of[v] = v;
    bool grouped = false;
    for (int r = 0; r < db->nrules; r++) {
        const struct ha_rule *x = &db->rule[r];
        if (!x->strict || x->type != HA_RULE_AFFINITY)
            continue;
        grouped = true;
        for (int k = 1; k < x->nvms; k++) {
            int ra = x->vm[0], rb = x->vm[k];
            while (P->grp_of[ra] != ra)
                ra = P->grp_of[ra];
            while (P->grp_of[rb] != rb)
                rb = P->grp_of[rb];
            P->grp_of[rb] = ra;
        }
    }
    for (int v = 0; v < c->nvm; v++) {
        int r = v;
        while (P->grp_of[r] != r)
            r = P->grp_of[r];
        P->grp_of[v] = r;
    }
    if (grouped) {
        /* a VM alone in its group is no group */
        int *size = calloc((size_t)(c->nvm ? c->nvm : 1), sizeof *size);
        if (!size)
            abort();
        for (int v = 0; v < c->nvm; v++)
            size[P->grp_of[v]]++;
        for (int v = 0; v < c->nvm; v++)
            if (size[P->grp_of[v]] < 2)
                P->grp_of[v] = -1;
        free(size);
    } else
        for (int v = 0; v < c->nvm; v++)
            P->grp_of[v] = -1;
    /* apply the hypothetical change to where VMs are */
    for (int v = 0; v < c->nvm; v++) {
        int at = u.place[v];
        if (mod && v == mod->vm) {
            if (at != HA_NO_HOST) { /* take it out of its old place */
                u.mem[at] -= db->vm[v].mem_mb;
                u.cpus[at] -= db->vm[v].cpus;
            }
            at = mod->to;
            if (at != HA_NO_HOST) {
                u.mem[at] += db->vm[v].mem_mb;
                u.cpus[at] += db->vm[v].cpus;
            }
        }
        P->place_idx[v] = at != HA_NO_HOST ? idx[at] : -1;
        bool prot = mod && v == mod->vm ? mod->protect : (db->vm[v].protect == HA_PROTECT_RESTART && db->vm[v].want_running);
        bool wants = mod && v == mod->vm ? mod->running : db->vm[v].want_running;
        /* VMs on a host taken out (maintenance, leave) must find room too */
        bool evacuated = at != HA_NO_HOST && mod && (mod->out & HA_BIT(at));
        if (!(prot && wants) && !evacuated)
            continue;
        struct pvm *x = &P->p[P->np++];
        x->vm = v;
        x->at = at != HA_NO_HOST ? idx[at] : -1;
        x->mem = db->vm[v].mem_mb;
        x->cpus = db->vm[v].cpus;
        x->allowed = 0;
        x->grp = P->grp_of[v];
        if (x->grp >= 0)
            P->has_rules = true;
        for (int j = 0; j < P->n; j++)
            x->allowed |= HA_BIT(j);
    }
    for (int j = 0; j < P->n; j++) {
        int h = P->host[j];
        P->free_mem[j] = (int64_t)db->host[h].mem_mb - (int64_t)u.mem[h];
        P->free_cpu[j] = db->host[h].cpus * db->set.cpu_overcommit - u.cpus[h];
    }
    qsort(P->p, (size_t)P->np, sizeof *P->p, cmp_pvm);
    /* strict rules: pins restrict hosts; anti-affinity forbids sharing */
    P->anti_start = calloc((size_t)P->np + 1, sizeof *P->anti_start);
    int cap = 0;
    for (int r = 0; r < db->nrules; r++)
        if (db->rule[r].strict && db->rule[r].type == HA_RULE_ANTI_AFFINITY)
            cap += db->rule[r].nvms;
    P->anti = malloc((size_t)(cap ? cap : 1) * sizeof *P->anti);
    if (!P->anti_start || !P->anti)
        abort();
    int fill = 0;
    for (int i = 0; i < P->np; i++) {
        P->anti_start[i] = fill;
        for (int k = u.rstart[P->p[i].vm]; k < u.rstart[P->p[i].vm + 1]; k++) {
            const struct ha_rule *r = &db->rule[u.rlist[k]];
            if (!r->strict)
                continue;
            if (r->type == HA_RULE_PIN) {
                ha_hostset a = 0;
                for (int j = 0; j < P->n; j++)
                    if (r->hosts & HA_BIT(P->host[j]))
                        a |= HA_BIT(j);
                P->p[i].allowed &= a;
                P->has_rules = true;
            } else if (r->type == HA_RULE_ANTI_AFFINITY && fill < cap) {
                P->anti[fill++] = u.rlist[k];
            }
        }
    }
    P->anti_start[P->np] = fill;
    if (fill)
        P->has_rules = true;
    usage_free(&u);
}

static void plan_free(struct plan_ctx *P)
{
    free(P->p);
    free(P->anti);
    free(P->anti_start);
    free(P->place_idx);
    free(P->grp_of);
}

/* Largest k with room for every protected VM after any k failures. */
static int plan_run(struct plan_ctx *P, int max_k, int reserve_k, bool *exact, char *method, size_t len)
{
    *exact = true;
    if (try_failure(P, 0, reserve_k == 0) != 1) {
        snprintf(method, len, "some protected VMs have no place even now");
        return -1;
    }
    int kmax = max_k > 0 && max_k < P->n ? max_k : P->n - 1;
    int tol = 0;
    long sets = 0;
    for (int k = 1; k <= kmax; k++) {
        if (choose(P->n, k) > ENUM_LIMIT) {
            if (slot_bound(P, k)) {
                tol = k;
                *exact = false;
                continue;
            }
            *exact = false;
            break;
        }
        /* every k-subset of the hosts, in lexicographic order */
        int s[HA_MAX_HOSTS];
        for (int i = 0; i < k; i++)
            s[i] = i;
        int verdict = 1;
        for (;;) {
            ha_hostset f = 0;
            for (int i = 0; i < k; i++)
                f |= HA_BIT(s[i]);
            int r = try_failure(P, f, k == reserve_k);
            sets++;
            if (r != 1) {
                verdict = r;
                break;
            }
            int i = k - 1;
            while (i >= 0 && s[i] == P->n - k + i)
                i--;
            if (i < 0)
                break;
            s[i]++;
            for (int j = i + 1; j < k; j++)
                s[j] = s[j - 1] + 1;
        }
        if (verdict == 1) {
            tol = k;
            continue;
        }
        if (verdict < 0)
            *exact = false;
        break;
    }
    snprintf(method, len, "%s: %ld failure set(s) checked by placement%s", *exact ? "exact" : "lower bound", sets,
             *exact ? "" : "; beyond that a capacity bound or a search budget was used");
    return tol;
}

void ha_core_plan(const struct ha_core *c, int max_k, struct ha_plan *out)
{
    memset(out, 0, sizeof *out);
    struct plan_ctx P;
    plan_build(c, NULL, &P);
    int ftt = c->db->set.failures_to_tolerate;
    out->tolerates = plan_run(&P, max_k, ftt ? ftt : 1, &out->exact, out->method, sizeof out->method);
    out->hosts_considered = P.n;
    for (int j = 0; j < P.n; j++)
        out->reserve_mb[P.host[j]] = P.reserve[j];
    plan_free(&P);
}

int plan_tolerance(const struct ha_core *c, const struct plan_mod *mod, int max_k)
{
    struct plan_ctx P;
    plan_build(c, mod, &P);
    bool exact;
    char method[HA_REASON_MAX];
    int t = plan_run(&P, max_k, -1, &exact, method, sizeof method);
    plan_free(&P);
    return t;
}

/* ------------------------------------------------------------ load balancer */

/* Extended Assign-U with exponential cost a^load, loads as a fraction of a
 * host's CPUs.  A VM moves when its marginal cost where it is exceeds
 * twice its marginal cost elsewhere; with equal VM load on both sides that
 * is a load gap above log_a(2) = BALANCE_DEADBAND.  a = 2^(1/0.15). */
#define BALANCE_DEADBAND 0.15

struct bal_cand {
    int vm, to;
    double ratio, ci, cj;
};

static int cmp_cand(const void *a, const void *b)
{
    const struct bal_cand *x = a, *y = b;
    if (x->ratio != y->ratio)
        return x->ratio > y->ratio ? -1 : 1;
    return y->vm - x->vm; /* on a tie, the most recently defined VM */
}

void balance_tick(struct ha_core *c, struct usage *u)
{
    const struct ha_db *db = c->db;
    if (!db->set.balance_interval)
        return;
    if (c->now < c->next_balance)
        return;
    for (int v = 0; v < c->nvm; v++)
        if (c->vm[v].op == OP_MIGRATE) {
            /* no decision while a migration is in flight; look again soon
             * rather than a whole interval later */
            c->next_balance = c->now + db->set.disk_interval;
            return;
        }
    c->next_balance = c->now + db->set.balance_interval;
    const double lna = log(2.0) / BALANCE_DEADBAND; /* a = 2^(1/deadband) */
    double load[HA_MAX_HOSTS] = {0}, base[HA_MAX_HOSTS];
    bool ok[HA_MAX_HOSTS];
    for (int v = 0; v < c->nvm; v++)
        if (u->place[v] != HA_NO_HOST)
            load[u->place[v]] += c->vm[v].load / (100.0 * db->host[u->place[v]].cpus);
    for (int h = 0; h < db->nhosts; h++) {
        const char *w;
        ok[h] = eligible(c, h, &w);
        base[h] = exp(lna * load[h]); /* a^load */
    }
    struct bal_cand *cand = malloc((size_t)(c->nvm ? c->nvm : 1) * sizeof *cand);
    if (!cand)
        abort();
    int nc = 0;
    for (int v = 0; v < c->nvm; v++) {
        const struct vm_rt *rt = &c->vm[v];
        int i = rt->obs_host;
        if (rt->op != OP_NONE || rt->obs != HA_OBS_RUNNING || rt->load <= 0 || i == HA_NO_HOST || !ok[i])
            continue;
        /* marginal cost of v where it is: a^(h_i + p) - a^(h_i), h_i = load without v */
        double pi = rt->load / (100.0 * db->host[i].cpus);
        double ci = base[i] - exp(lna * (load[i] - pi));
        int to = HA_NO_HOST;
        double cj_best = 0;
        for (int j = 0; j < db->nhosts; j++) {
            if (j == i || !ok[j])
                continue;
            double pj = rt->load / (100.0 * db->host[j].cpus);
            double cj = base[j] * expm1(lna * pj); /* a^(l_j + p) - a^(l_j) */
            if (to != HA_NO_HOST && cj >= cj_best)
                continue;
            if (!fits(c, u, v, j) || rules_check(c, u, v, j, HA_NO_HOST, NULL, 0) != 0)
                continue; /* never onto a host that breaks any rule */
            to = j;
            cj_best = cj;
        }
        if (to == HA_NO_HOST || cj_best <= 0 || ci <= 2.0 * cj_best)
            continue;
        cand[nc++] = (struct bal_cand){.vm = v, .to = to, .ratio = ci / cj_best, .ci = ci, .cj = cj_best};
    }
    qsort(cand, (size_t)nc, sizeof *cand, cmp_cand);
    /* the largest gain that admission control allows (the rule commands
     * follow: not below the setting, unless already below and not worse);
     * one move per cycle */
    int ftt = db->set.failures_to_tolerate, cur = ftt && nc ? plan_tolerance(c, NULL, ftt) : 0;
    for (int k = 0; k < nc && k < 8; k++) {
        const struct bal_cand *x = &cand[k];
        if (ftt) {
            struct plan_mod m = {.vm = x->vm, .to = x->to, .protect = db->vm[x->vm].protect == HA_PROTECT_RESTART,
                                 .running = db->vm[x->vm].want_running};
            int t = plan_tolerance(c, &m, ftt);
            if (t < ftt && t < cur)
                continue;
        }
        int from = c->vm[x->vm].obs_host;
        char why[HA_REASON_MAX];
        snprintf(why, sizeof why, "balancing: cost %.2f on %s (load %.0f%%) > 2 x %.2f on %s (load %.0f%%)", x->ci,
                 hname(c, from), load[from] * 100, x->cj, hname(c, x->to), load[x->to] * 100);
        migrate_vm(c, u, x->vm, from, x->to, why);
        break;
    }
    free(cand);
}

ha_ms balance_next(const struct ha_core *c)
{
    return c->db->set.balance_interval && c->master ? c->next_balance : 0;
}
