/* bench/sched: the scheduler's speed, driven through the real core.
 *   placement:  place 10,000 VMs on 128 hosts with 50 rules (goal < 50 ms)
 *   plan:       failures_to_tolerate 2 for 64 hosts and 5,000 VMs (goal < 1 s)
 *   balancer:   one balancer cycle for 128 hosts and 10,000 VMs
 * Each figure is the median of 5 runs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ha/ha.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static unsigned seed = 42;
static unsigned rnd(void)
{
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) & 0xffffff;
}

struct pool {
    struct ha_db db;
    struct ha_core *c;
    struct ha_actions acts;
    struct ha_slot slot[HA_MAX_HOSTS];
    int lease_owner;
    uint64_t lease_counter;
    ha_ms now;
    long starts;
};

static void step(struct pool *p, struct ha_event *ev)
{
    ev->now = p->now;
    ha_actions_clear(&p->acts);
    ha_core_step(p->c, ev, &p->acts);
    for (size_t i = 0; i < p->acts.n; i++) {
        const struct ha_action *a = &p->acts.v[i];
        if (a->type == HA_ACT_COMMIT && ha_db_apply(&p->db, &a->change) < 0) {
            fprintf(stderr, "bench: a commit was rejected\n");
            exit(1);
        }
        if (a->type == HA_ACT_DISK_WRITE && a->lease_write) {
            p->lease_owner = a->lease_owner;
            p->lease_counter = a->lease_counter;
        }
        p->starts += a->type == HA_ACT_VM_START;
    }
}

static void disk_tick(struct pool *p)
{
    p->now += 1000;
    for (int h = 1; h < p->db.nhosts; h++) {
        p->slot[h].seq++;
        p->slot[h].liveset = ha_db_joined(&p->db);
    }
    struct ha_event *e = calloc(1, sizeof *e);
    e->type = HA_EV_DISK;
    e->u.disk.ok = true;
    e->u.disk.lease_owner = p->lease_owner;
    e->u.disk.lease_counter = p->lease_counter;
    memcpy(e->u.disk.slot, p->slot, sizeof p->slot);
    step(p, e);
    free(e);
}

static void make_pool(struct pool *p, int nh, uint64_t host_mb, int host_cpus, int nv, bool placed)
{
    memset(p, 0, sizeof *p);
    ha_db_init(&p->db);
    p->lease_owner = HA_NO_HOST;
    for (int h = 0; h < nh; h++) {
        struct ha_db_host x = {.mem_mb = host_mb, .cpus = host_cpus, .joined = true, .fence_ipmi = true};
        snprintf(x.name, sizeof x.name, "h%d", h);
        ha_db_add_host(&p->db, &x);
    }
    for (int v = 0; v < nv; v++) {
        struct ha_db_vm x = {.mem_mb = 1024u * (1 + rnd() % 4), .cpus = 1 + (int)(rnd() % 2), .priority = 1 + (int)(rnd() % 5),
                             .want_running = true, .protect = HA_PROTECT_RESTART,
                             .host = placed ? v % nh : HA_NO_HOST};
        snprintf(x.name, sizeof x.name, "v%d", v);
        ha_db_add_vm(&p->db, &x);
    }
}

static void add_rule(struct pool *p, enum ha_rule_type t, bool strict, int nvms, ha_hostset hosts)
{
    struct ha_rule r = {.type = t, .strict = strict, .nvms = nvms, .hosts = hosts};
    snprintf(r.name, sizeof r.name, "r%d", p->db.nrules);
    for (int k = 0; k < nvms; k++)
        r.vm[k] = (int)(rnd() % (unsigned)p->db.nvms);
    for (int k = 0; k < nvms; k++) /* distinct VMs */
        for (int m = 0; m < k; m++)
            if (r.vm[m] == r.vm[k]) {
                r.vm[k] = (r.vm[k] + 1) % p->db.nvms;
                m = -1;
            }
    char err[256];
    struct ha_change ch = {.type = HA_CHG_RULE_ADD, .rule = r};
    if (ha_rule_check(&p->db, &r, err, sizeof err) == 0)
        ha_db_apply(&p->db, &ch);
}

/* Everything but the final tick that makes host 0 master. */
static void prepare_master(struct pool *p, bool report_placed)
{
    p->c = ha_core_new(&p->db, 0);
    struct ha_event m = {.type = HA_EV_MEMBERSHIP};
    m.u.membership.members = ha_db_joined(&p->db);
    m.u.membership.quorate = true;
    step(p, &m);
    if (report_placed)
        for (int v = 0; v < p->db.nvms; v++) {
            struct ha_event e = {.type = HA_EV_VM_REPORT};
            e.u.report.host = p->db.vm[v].host;
            e.u.report.vm = v;
            e.u.report.state = HA_OBS_RUNNING;
            e.u.report.to = HA_NO_HOST;
            step(p, &e);
        }
    for (int h = 0; h < p->db.nhosts; h++) {
        struct ha_event e = {.type = HA_EV_INVENTORY};
        e.u.report.host = h;
        step(p, &e);
    }
    disk_tick(p);
}

static void free_pool(struct pool *p)
{
    ha_core_free(p->c);
    ha_actions_free(&p->acts);
    ha_db_free(&p->db);
}

static int cmpd(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmpd);
    return v[n / 2];
}

int main(void)
{
    enum { RUNS = 5 };
    double place[RUNS], plan2[RUNS], planfull[RUNS], bal[RUNS], base[RUNS];
    long placed = 0;
    int tol = 0;
    bool exact = false;
    for (int r = 0; r < RUNS; r++) {
        /* placement: 10,000 VMs, 128 hosts, 50 rules */
        struct pool p;
        seed = 42 + (unsigned)r;
        make_pool(&p, 128, 512 * 1024, 128, 10000, false);
        for (int k = 0; k < 20; k++)
            add_rule(&p, HA_RULE_ANTI_AFFINITY, false, 4, 0);
        for (int k = 0; k < 10; k++)
            add_rule(&p, HA_RULE_ANTI_AFFINITY, true, 3, 0);
        for (int k = 0; k < 10; k++)
            add_rule(&p, HA_RULE_AFFINITY, false, 2, 0);
        for (int k = 0; k < 10; k++)
            add_rule(&p, HA_RULE_PIN, true, 1, 0xffffULL << (16 * (k % 4)));
        prepare_master(&p, false);
        p.starts = 0;
        double t0 = now_ms();
        disk_tick(&p); /* becomes master and places every VM */
        place[r] = now_ms() - t0;
        placed = p.starts;
        if (!ha_core_is_master(p.c)) {
            fprintf(stderr, "bench: the core did not become master\n");
            return 1;
        }
        free_pool(&p);

        /* plan: 64 hosts, 5,000 placed VMs, failures_to_tolerate 2 */
        seed = 4242 + (unsigned)r;
        make_pool(&p, 64, 256 * 1024, 64, 5000, true);
        p.db.set.failures_to_tolerate = 2;
        prepare_master(&p, true);
        disk_tick(&p);
        struct ha_plan pl;
        t0 = now_ms();
        ha_core_plan(p.c, 2, &pl);
        plan2[r] = now_ms() - t0;
        tol = pl.tolerates;
        t0 = now_ms();
        ha_core_plan(p.c, 0, &pl);
        planfull[r] = now_ms() - t0;
        exact = pl.exact;
        free_pool(&p);

        /* balancer: 128 hosts, 10,000 running VMs with loads */
        seed = 777 + (unsigned)r;
        make_pool(&p, 128, 512 * 1024, 128, 10000, true);
        prepare_master(&p, true);
        for (int v = 0; v < p.db.nvms; v++) {
            struct ha_event e = {.type = HA_EV_VM_LOAD};
            e.u.load.vm = v;
            e.u.load.cpu_pct = (double)(rnd() % 200);
            step(&p, &e);
        }
        disk_tick(&p); /* becomes master */
        /* a heartbeat tick without balancing, then one with a balancing pass */
        t0 = now_ms();
        disk_tick(&p);
        base[r] = now_ms() - t0;
        p.db.set.balance_interval = 10000;
        long before = p.acts.n;
        (void)before;
        t0 = now_ms();
        disk_tick(&p);
        bal[r] = now_ms() - t0;
        bool moved = false;
        for (size_t i = 0; i < p.acts.n; i++)
            moved |= p.acts.v[i].type == HA_ACT_VM_MIGRATE;
        if (!moved) {
            fprintf(stderr, "bench: the balancing pass moved nothing\n");
            return 1;
        }
        free_pool(&p);
    }
    printf("bench: place_10000vms_128hosts_50rules = %.1f ms (goal < 50 ms; %ld VMs placed)\n", median(place, RUNS), placed);
    printf("bench: plan_ftt2_64hosts_5000vms = %.1f ms (goal < 1000 ms; tolerates >= %d)\n", median(plan2, RUNS), tol);
    printf("bench: plan_full_64hosts_5000vms = %.1f ms (%s)\n", median(planfull, RUNS), exact ? "exact" : "lower bound beyond k=2");
    printf("bench: balancer_cycle_128hosts_10000vms = %.1f ms (heartbeat tick with a balancing pass; %.1f ms without)\n",
           median(bal, RUNS), median(base, RUNS));
    return 0;
}
