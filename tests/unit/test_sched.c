/* The scheduler: the failure-tolerance plan against brute force on random
 * small pools, rule checks, and placement honouring strict rules. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/ha.h"
#include "tests/rig.h"

/* Makes host 0 the master of a healthy pool whose VMs run where the
 * database places them (VMs with host HA_NO_HOST are not running). */
static void become_master(struct rig *r)
{
    ck_assert_int_eq(rig_start(r, 0), 0);
    ha_hostset all = ha_db_joined(&r->db);
    rig_membership(r, all, true);
    for (int v = 0; v < r->db.nvms; v++)
        if (r->db.vm[v].host != HA_NO_HOST)
            rig_report(r, r->db.vm[v].host, v, HA_OBS_RUNNING);
    for (int h = 0; h < r->db.nhosts; h++)
        rig_inventory(r, h);
    for (int i = 0; i < 3; i++) {
        r->now += 1000;
        rig_tick(r, all, all, true);
    }
    ck_assert_int_eq(r->commit_errors, 0);
    ck_assert(ha_core_is_master(r->c));
}

static void teardown(struct rig *r) { rig_free(r); }

/* ---------------------------------------------------------------- brute force */

struct bf {
    const struct ha_db *db;
    int nd, d[16];
    uint64_t fm[HA_MAX_HOSTS];
    double fc[HA_MAX_HOSTS];
    ha_hostset failed;
};

static bool bf_place(struct bf *b, int i)
{
    if (i == b->nd)
        return true;
    const struct ha_db_vm *v = &b->db->vm[b->d[i]];
    for (int h = 0; h < b->db->nhosts; h++) {
        if ((b->failed & HA_BIT(h)) || b->fm[h] < v->mem_mb || b->fc[h] < v->cpus)
            continue;
        b->fm[h] -= v->mem_mb;
        b->fc[h] -= v->cpus;
        bool ok = bf_place(b, i + 1);
        b->fm[h] += v->mem_mb;
        b->fc[h] += v->cpus;
        if (ok)
            return true;
    }
    return false;
}

static bool bf_feasible(const struct ha_db *db, ha_hostset failed)
{
    struct bf b = {.db = db, .failed = failed};
    for (int h = 0; h < db->nhosts; h++) {
        b.fm[h] = db->host[h].mem_mb;
        b.fc[h] = db->host[h].cpus * db->set.cpu_overcommit;
    }
    for (int v = 0; v < db->nvms; v++) {
        const struct ha_db_vm *x = &db->vm[v];
        if (x->host != HA_NO_HOST && !(failed & HA_BIT(x->host))) {
            b.fm[x->host] -= x->mem_mb;
            b.fc[x->host] -= x->cpus;
        } else if (x->protect == HA_PROTECT_RESTART && x->want_running)
            b.d[b.nd++] = v;
    }
    return bf_place(&b, 0);
}

static int bf_tolerance(const struct ha_db *db)
{
    if (!bf_feasible(db, 0))
        return -1;
    int n = db->nhosts, tol = 0;
    for (int k = 1; k < n; k++) {
        for (ha_hostset f = 0; f < HA_BIT(n); f++) {
            if (ha_popcount(f) != k)
                continue;
            if (!bf_feasible(db, f))
                return tol;
        }
        tol = k;
    }
    return tol;
}

static unsigned rnd(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffff;
}

START_TEST(plan_matches_brute_force)
{
    unsigned seed = 12345;
    int exact_runs = 0, checked = 0;
    for (int iter = 0; iter < 300; iter++) {
        struct rig r;
        rig_init(&r);
        r.db.set.cpu_overcommit = 1.0 + (rnd(&seed) % 3);
        int nh = 2 + (int)(rnd(&seed) % 4); /* 2..5 hosts */
        for (int h = 0; h < nh; h++) {
            struct ha_db_host x = {.mem_mb = 1024u * (4 + rnd(&seed) % 9), .cpus = 1 + (int)(rnd(&seed) % 4),
                                   .joined = true, .fence_ipmi = true};
            snprintf(x.name, sizeof x.name, "h%d", h);
            ha_db_add_host(&r.db, &x);
        }
        int nv = 1 + (int)(rnd(&seed) % 9); /* 1..9 VMs */
        uint64_t used[HA_MAX_HOSTS] = {0};
        int ucpu[HA_MAX_HOSTS] = {0};
        for (int v = 0; v < nv; v++) {
            struct ha_db_vm x = {.mem_mb = 512u * (1 + rnd(&seed) % 8), .cpus = 1 + (int)(rnd(&seed) % 2),
                                 .priority = 3, .want_running = true, .host = HA_NO_HOST,
                                 .protect = rnd(&seed) % 4 ? HA_PROTECT_RESTART : HA_PROTECT_OFF};
            snprintf(x.name, sizeof x.name, "v%d", v);
            int h = (int)(rnd(&seed) % (unsigned)nh);
            if (used[h] + x.mem_mb <= r.db.host[h].mem_mb &&
                ucpu[h] + x.cpus <= r.db.host[h].cpus * r.db.set.cpu_overcommit) {
                x.host = h;
                used[h] += x.mem_mb;
                ucpu[h] += x.cpus;
            } else if (x.protect == HA_PROTECT_OFF) {
                x.want_running = false; /* an unprotected VM with no room just is not running */
            }
            ha_db_add_vm(&r.db, &x);
        }
        int want = bf_tolerance(&r.db);
        if (want < 0) { /* a protected VM has no room even now: the core would place or wait */
            ha_db_free(&r.db);
            continue;
        }
        become_master(&r);
        /* the master may have placed VMs that had no host: compare on the
         * state the plan sees (its starts are committed placements) */
        want = bf_tolerance(&r.db);
        struct ha_plan p;
        ha_core_plan(r.c, 0, &p);
        ck_assert_msg(p.tolerates == want, "iteration %d: plan says %d (%s), brute force %d", iter, p.tolerates,
                      p.method, want);
        exact_runs += p.exact;
        checked++;
        teardown(&r);
    }
    ck_assert_int_gt(checked, 150);
    ck_assert_int_eq(exact_runs, checked); /* small pools are always exact */
}
END_TEST

START_TEST(plan_honours_strict_anti_affinity)
{
    /* two 8G hosts with room for both 4G VMs on either; but they must stay
     * apart, so losing a host leaves no place for one of them */
    struct rig r;
    rig_init(&r);
    for (int h = 0; h < 2; h++) {
        struct ha_db_host x = {.mem_mb = 8192, .cpus = 4, .joined = true};
        snprintf(x.name, sizeof x.name, "h%d", h);
        ha_db_add_host(&r.db, &x);
    }
    for (int v = 0; v < 2; v++) {
        struct ha_db_vm x = {.mem_mb = 4096, .cpus = 1, .priority = 3, .want_running = true, .host = v,
                             .protect = HA_PROTECT_RESTART};
        snprintf(x.name, sizeof x.name, "db%d", v);
        ha_db_add_vm(&r.db, &x);
    }
    become_master(&r);
    struct ha_plan p;
    ha_core_plan(r.c, 0, &p);
    ck_assert_int_eq(p.tolerates, 1);
    /* each host must keep room for the other's 4 GiB VM */
    ck_assert_uint_eq(p.reserve_mb[0], 4096);
    ck_assert_uint_eq(p.reserve_mb[1], 4096);
    struct ha_rule rule = {.type = HA_RULE_ANTI_AFFINITY, .strict = true, .nvms = 2, .vm = {0, 1}};
    strcpy(rule.name, "dbs");
    char err[256];
    ck_assert_int_eq(ha_rule_check(&r.db, &rule, err, sizeof err), 0);
    struct ha_change ch = {.type = HA_CHG_RULE_ADD, .rule = rule};
    ck_assert_int_eq(ha_db_apply(&r.db, &ch), 0);
    ha_core_plan(r.c, 0, &p);
    ck_assert_int_eq(p.tolerates, 0);
    ck_assert(p.exact);
    teardown(&r);
}
END_TEST

START_TEST(contradictions_refused)
{
    struct ha_db db;
    ha_db_init(&db);
    for (int h = 0; h < 2; h++) {
        struct ha_db_host x = {.mem_mb = 8192, .cpus = 4, .joined = true};
        snprintf(x.name, sizeof x.name, "h%d", h);
        ha_db_add_host(&db, &x);
    }
    for (int v = 0; v < 3; v++) {
        struct ha_db_vm x = {.mem_mb = 1024, .cpus = 1, .priority = 3};
        snprintf(x.name, sizeof x.name, "v%d", v);
        ha_db_add_vm(&db, &x);
    }
    char err[256];
    struct ha_rule r;
    char *aff[] = {"affinity", "together", "v0", "v1", "strict"};
    ck_assert_int_eq(ha_rule_parse(&db, 5, aff, &r, err, sizeof err), 0);
    ck_assert_int_eq(ha_rule_check(&db, &r, err, sizeof err), 0);
    struct ha_change ch = {.type = HA_CHG_RULE_ADD, .rule = r};
    ck_assert_int_eq(ha_db_apply(&db, &ch), 0);

    char *anti[] = {"anti-affinity", "apart", "v1", "v0"};
    ck_assert_int_eq(ha_rule_parse(&db, 4, anti, &r, err, sizeof err), 0);
    ck_assert_int_ne(ha_rule_check(&db, &r, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "contradiction"), "%s", err);

    char *pin0[] = {"pin", "v0", "h0", "--strict"};
    ck_assert_int_eq(ha_rule_parse(&db, 4, pin0, &r, err, sizeof err), 0);
    ck_assert_int_eq(ha_rule_check(&db, &r, err, sizeof err), 0);
    ch.rule = r;
    ck_assert_int_eq(ha_db_apply(&db, &ch), 0);
    char *pin1[] = {"pin", "v1", "h1", "strict"};
    ck_assert_int_eq(ha_rule_parse(&db, 4, pin1, &r, err, sizeof err), 0);
    ck_assert_int_ne(ha_rule_check(&db, &r, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "no host in common"), "%s", err);

    char *big[] = {"anti-affinity", "spread", "v0", "v1", "v2", "strict"};
    ck_assert_int_eq(ha_rule_parse(&db, 6, big, &r, err, sizeof err), 0);
    ck_assert_int_ne(ha_rule_check(&db, &r, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "needs 3 hosts"), "%s", err);

    char *dup[] = {"affinity", "together", "v1", "v2"};
    ck_assert_int_eq(ha_rule_parse(&db, 4, dup, &r, err, sizeof err), 0);
    ck_assert_int_ne(ha_rule_check(&db, &r, err, sizeof err), 0);

    char *bad1[] = {"pin", "v0", "h9"};
    ck_assert_int_ne(ha_rule_parse(&db, 3, bad1, &r, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "unknown host 'h9'"), "%s", err);
    char *bad2[] = {"affinity", "x", "v0"};
    ck_assert_int_ne(ha_rule_parse(&db, 3, bad2, &r, err, sizeof err), 0);
    ck_assert_int_eq(db.nrules, 2);
    /* a refused rule changes nothing, even when applied directly */
    ck_assert_int_ne(ha_db_apply(&db, &(struct ha_change){.type = HA_CHG_RULE_ADD, .rule = r}), 0);
    ck_assert_int_eq(db.nrules, 2);
    ha_db_free(&db);
}
END_TEST

START_TEST(after_cycles_refused)
{
    struct ha_db db;
    ha_db_init(&db);
    struct ha_db_host hx = {.mem_mb = 8192, .cpus = 4, .joined = true};
    strcpy(hx.name, "h0");
    ha_db_add_host(&db, &hx);
    for (int v = 0; v < 3; v++) {
        struct ha_db_vm x = {.mem_mb = 1024, .cpus = 1, .priority = 3, .after1 = v};
        snprintf(x.name, sizeof x.name, "v%d", v);
        ha_db_add_vm(&db, &x); /* v1 after v0, v2 after v1 */
    }
    ck_assert(ha_after_cycle(&db, 0, 2));  /* v0 after v2 would close v0<-v1<-v2<-v0 */
    ck_assert(!ha_after_cycle(&db, 2, 0));
    struct ha_change ch = {.type = HA_CHG_VM_PROTECT, .vm = 0, .priority = 3, .after1 = 3};
    ck_assert_int_ne(ha_db_apply(&db, &ch), 0);
    ch.after1 = 1; /* itself */
    ck_assert_int_ne(ha_db_apply(&db, &ch), 0);
    ck_assert_int_eq(db.vm[0].after1, 0);
    ha_db_free(&db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sched");
    TCase *t = tcase_create("sched");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, plan_matches_brute_force);
    tcase_add_test(t, plan_honours_strict_anti_affinity);
    tcase_add_test(t, contradictions_refused);
    tcase_add_test(t, after_cycles_refused);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
