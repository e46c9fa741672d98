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
#include "tests/rig.h"

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

static void tick(struct rig *p)
{
    p->now += 1000;
    ha_hostset all = ha_db_joined(&p->db);
    rig_tick(p, all, all, true);
    if (p->commit_errors) {
        fprintf(stderr, "bench: a commit was rejected\n");
        exit(1);
    }
}

static void make_pool(struct rig *p, int nh, uint64_t host_mb, int host_cpus, int nv, bool placed)
{
    rig_init(p);
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

static void add_rule(struct rig *p, enum ha_rule_type t, bool strict, int nvms, ha_hostset hosts)
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
static void prepare_master(struct rig *p, bool report_placed)
{
    if (rig_start(p, 0) < 0)
        exit(1);
    rig_membership(p, ha_db_joined(&p->db), true);
    if (report_placed)
        for (int v = 0; v < p->db.nvms; v++)
            rig_report(p, p->db.vm[v].host, v, HA_OBS_RUNNING);
    for (int h = 0; h < p->db.nhosts; h++)
        rig_inventory(p, h);
    tick(p);
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
        struct rig p;
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
        double t0 = now_ms();
        tick(&p); /* becomes master and places every VM */
        place[r] = now_ms() - t0;
        placed = rig_count(&p, HA_ACT_VM_START);
        if (!ha_core_is_master(p.c)) {
            fprintf(stderr, "bench: the core did not become master\n");
            return 1;
        }
        rig_free(&p);

        /* plan: 64 hosts, 5,000 placed VMs, failures_to_tolerate 2 */
        seed = 4242 + (unsigned)r;
        make_pool(&p, 64, 256 * 1024, 64, 5000, true);
        p.db.set.failures_to_tolerate = 2;
        prepare_master(&p, true);
        tick(&p);
        struct ha_plan pl;
        t0 = now_ms();
        ha_core_plan(p.c, 2, &pl);
        plan2[r] = now_ms() - t0;
        tol = pl.tolerates;
        t0 = now_ms();
        ha_core_plan(p.c, 0, &pl);
        planfull[r] = now_ms() - t0;
        exact = pl.exact;
        rig_free(&p);

        /* balancer: 128 hosts, 10,000 running VMs with loads */
        seed = 777 + (unsigned)r;
        make_pool(&p, 128, 512 * 1024, 128, 10000, true);
        prepare_master(&p, true);
        for (int v = 0; v < p.db.nvms; v++) {
            struct ha_event e = {.type = HA_EV_VM_LOAD};
            e.u.load.vm = v;
            e.u.load.cpu_pct = (double)(rnd() % 200);
            rig_step(&p, &e);
        }
        tick(&p); /* becomes master */
        /* a heartbeat tick without balancing, then one with a balancing pass */
        t0 = now_ms();
        tick(&p);
        base[r] = now_ms() - t0;
        p.db.set.balance_interval = 10000;
        t0 = now_ms();
        tick(&p);
        bal[r] = now_ms() - t0;
        bool moved = false;
        for (size_t i = 0; i < p.acts.n; i++)
            moved |= p.acts.v[i].type == HA_ACT_VM_MIGRATE;
        if (!moved) {
            fprintf(stderr, "bench: the balancing pass moved nothing\n");
            return 1;
        }
        rig_free(&p);
    }
    printf("bench: place_10000vms_128hosts_50rules = %.1f ms (goal < 50 ms; %ld VMs placed)\n", median(place, RUNS), placed);
    printf("bench: plan_ftt2_64hosts_5000vms = %.1f ms (goal < 1000 ms; tolerates >= %d)\n", median(plan2, RUNS), tol);
    printf("bench: plan_full_64hosts_5000vms = %.1f ms (%s)\n", median(planfull, RUNS), exact ? "exact" : "lower bound beyond k=2");
    printf("bench: balancer_cycle_128hosts_10000vms = %.1f ms (heartbeat tick with a balancing pass; %.1f ms without)\n",
           median(bal, RUNS), median(base, RUNS));
    return 0;
}
