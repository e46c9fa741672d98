/* The replicated pool database protocol (membership/replica.c) driven by a
 * simulated totem: one agreed order of messages, delivered to the members
 * of the view they were sent in; crashes lose a member's memory but not
 * what it stored; partitions and merges run sync rounds.  Checks: every
 * member in a view ends identical, nothing acknowledged is ever lost, a
 * non-master cannot write, and bad messages change nothing. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../membership/pooldb.h"
#include "../../membership/replica.h"
#include "check_main.h"

#define N 5

struct node {
    uint32_t id;
    bool up;
    int group;           /* network group: nodes of one group see each other */
    struct ha_db db;     /* memory */
    struct ha_db disk;   /* what persist_* stored */
    struct replica *r;
    int done_ok, done_fail, last_status;
    uint64_t acked_tags[512];
    int nacked;
};

struct msg {
    int from;
    int group;
    uint8_t *b;
    size_t len;
};

static struct node nd[N];
static struct msg q[100000];
static size_t nq;
static uint64_t ring;

static int t_send(void *ctx, const void *m, size_t len)
{
    struct node *x = ctx;
    ck_assert_uint_lt(nq, sizeof q / sizeof q[0]);
    q[nq].from = (int)(x - nd);
    q[nq].group = x->group;
    q[nq].b = malloc(len);
    memcpy(q[nq].b, m, len);
    q[nq].len = len;
    nq++;
    return 0;
}

static int t_persist_change(void *ctx, const struct ha_db *after, const struct ha_change *c)
{
    (void)c;
    struct node *x = ctx;
    ha_db_free(&x->disk);
    ck_assert_int_eq(ha_db_copy(&x->disk, after), 0);
    return 0;
}

static int t_persist_state(void *ctx, const struct ha_db *db) { return t_persist_change(ctx, db, NULL); }

static void t_done(void *ctx, uint64_t tag, int status, const char *why)
{
    (void)why;
    struct node *x = ctx;
    x->last_status = status;
    if (status == 0) {
        x->done_ok++;
        if (x->nacked < 512)
            x->acked_tags[x->nacked++] = tag;
    } else
        x->done_fail++;
}

static void t_log(void *ctx, int level, const char *fmt, ...)
{
    (void)ctx, (void)level, (void)fmt;
}

static const struct replica_ops ops_tmpl = {
    .send = t_send, .persist_change = t_persist_change, .persist_state = t_persist_state, .done = t_done, .log = t_log};

static void start(int i)
{
    struct node *x = &nd[i];
    ha_db_free(&x->db);
    ck_assert_int_eq(ha_db_copy(&x->db, &x->disk), 0); /* a restart reads what was stored */
    struct replica_ops o = ops_tmpl;
    o.ctx = x;
    x->r = replica_new(&x->db, x->id, &o);
    x->up = true;
}

static void crash(int i)
{
    replica_free(nd[i].r);
    nd[i].r = NULL;
    nd[i].up = false;
}

/* Deliver everything queued, in order, to the up members of the sender's
 * group (the view it was sent in). */
static void flush(void)
{
    for (size_t k = 0; k < nq; k++) {
        for (int i = 0; i < N; i++)
            if (nd[i].up && nd[i].group == q[k].group)
                replica_deliver(nd[i].r, nd[q[k].from].id, q[k].b, q[k].len);
        free(q[k].b);
        q[k].b = NULL;
    }
    nq = 0;
}

/* A new configuration in every group: what was sent in the old view is
 * delivered first (virtual synchrony), then the confchg, then the round. */
static void confchg(void)
{
    flush();
    ring++;
    for (int g = 0; g < N; g++) {
        uint32_t m[N];
        size_t n = 0;
        for (int i = 0; i < N; i++)
            if (nd[i].up && nd[i].group == g)
                m[n++] = nd[i].id;
        for (int i = 0; i < N; i++)
            if (nd[i].up && nd[i].group == g)
                replica_confchg(nd[i].r, m, n, ring);
    }
    flush();
}

static void setup(void)
{
    memset(q, 0, sizeof q);
    nq = 0;
    ring = 0;
    struct ha_db base;
    ha_db_init(&base);
    base.set.heartbeat_disk = false;
    for (int i = 0; i < N; i++) {
        struct ha_change c = {.type = HA_CHG_HOST_ADD, .arg = i + 1, .mem_mb = 16384, .cpus = 8};
        snprintf(c.name, sizeof c.name, "h%d", i + 1);
        snprintf(c.text, sizeof c.text, "10.99.0.%d", i + 1);
        ck_assert_int_eq(ha_db_apply(&base, &c), 0);
    }
    struct ha_change mc = {.type = HA_CHG_MASTER, .host = 0};
    ck_assert_int_eq(ha_db_apply(&base, &mc), 0);
    for (int i = 0; i < N; i++) {
        memset(&nd[i], 0, sizeof nd[i]);
        nd[i].id = (uint32_t)i + 1;
        ha_db_init(&nd[i].db);
        ck_assert_int_eq(ha_db_copy(&nd[i].disk, &base), 0);
        start(i);
    }
    ha_db_free(&base);
    confchg();
}

static void teardown(void)
{
    flush();
    for (int i = 0; i < N; i++) {
        if (nd[i].r)
            crash(i);
        ha_db_free(&nd[i].db);
        ha_db_free(&nd[i].disk);
    }
}

static struct ha_change vm_add(int k)
{
    struct ha_change c = {.type = HA_CHG_VM_ADD, .mem_mb = 512, .cpus = 1, .vm = -1};
    snprintf(c.name, sizeof c.name, "vm%d", k);
    return c;
}

static void assert_group_identical(int g)
{
    int first = -1;
    for (int i = 0; i < N; i++) {
        if (!nd[i].up || nd[i].group != g)
            continue;
        ck_assert(replica_synced(nd[i].r));
        if (first < 0)
            first = i;
        else
            ck_assert_uint_eq(pooldb_digest(nd[i].db.master_epoch, &nd[i].db),
                              pooldb_digest(nd[first].db.master_epoch, &nd[first].db));
        /* memory and disk agree: nothing acknowledged is only in memory */
        ck_assert_uint_eq(pooldb_digest(nd[i].db.master_epoch, &nd[i].db),
                          pooldb_digest(nd[i].disk.master_epoch, &nd[i].disk));
    }
}

START_TEST(commits_reach_everyone)
{
    for (int k = 0; k < 100; k++) {
        struct ha_change c = vm_add(k);
        ck_assert_int_eq(replica_propose(nd[0].r, &c, (uint64_t)k + 1), 0);
    }
    flush();
    ck_assert_int_eq(nd[0].done_ok, 100);
    ck_assert_int_eq(nd[0].done_fail, 0);
    assert_group_identical(0);
    ck_assert_int_eq(nd[3].db.nvms, 100);
}
END_TEST

START_TEST(only_the_master_writes)
{
    struct ha_change c = vm_add(1);
    ck_assert_int_eq(replica_propose(nd[2].r, &c, 7), 0);
    flush();
    ck_assert_int_eq(nd[2].done_fail, 1);
    ck_assert_int_eq(nd[0].db.nvms, 0);
    /* a takeover while the master is in the view is refused too */
    struct ha_change m = {.type = HA_CHG_MASTER, .host = 2};
    ck_assert_int_eq(replica_propose(nd[2].r, &m, 8), 0);
    flush();
    ck_assert_int_eq(nd[2].done_fail, 2);
    ck_assert_int_eq(nd[4].db.master, 0);
    assert_group_identical(0);
}
END_TEST

START_TEST(master_crash_takeover_and_rejoin)
{
    for (int k = 0; k < 10; k++) {
        struct ha_change c = vm_add(k);
        replica_propose(nd[0].r, &c, (uint64_t)k + 1);
    }
    flush();
    crash(0);
    confchg();
    struct ha_change m = {.type = HA_CHG_MASTER, .host = 1};
    ck_assert_int_eq(replica_propose(nd[1].r, &m, 100), 0);
    flush();
    ck_assert_int_eq(nd[1].done_ok, 1);
    for (int k = 10; k < 20; k++) {
        struct ha_change c = vm_add(k);
        replica_propose(nd[1].r, &c, (uint64_t)k + 1);
    }
    flush();
    start(0); /* the old master comes back with its stored copy (10 VMs) */
    confchg();
    assert_group_identical(0);
    ck_assert_int_eq(nd[0].db.nvms, 20);
    ck_assert_int_eq(nd[0].db.master, 1);
    ck_assert_uint_eq(nd[0].db.master_epoch, 2);
}
END_TEST

START_TEST(changes_during_a_round_wait)
{
    crash(4);
    confchg();
    /* proposals before the next round completes are queued, not lost */
    start(4);
    flush();
    ring++;
    uint32_t m[N] = {1, 2, 3, 4, 5};
    for (int i = 0; i < N; i++)
        replica_confchg(nd[i].r, m, N, ring);
    struct ha_change c = vm_add(1);
    ck_assert_int_eq(replica_propose(nd[0].r, &c, 5), 0);
    flush();
    flush();
    ck_assert_int_eq(nd[0].done_ok, 1);
    assert_group_identical(0);
    ck_assert_int_eq(nd[4].db.nvms, 1);
}
END_TEST

/* A VM imported with its domain XML while a round runs: the queued proposal
 * keeps its own copy of the XML (the caller's buffer is gone by the time it
 * is sent), and every member, and every member's disk, ends up with it. */
START_TEST(a_queued_change_keeps_its_xml)
{
    ring++;
    uint32_t m[N] = {1, 2, 3, 4, 5};
    for (int i = 0; i < N; i++)
        replica_confchg(nd[i].r, m, N, ring);
    struct ha_change c = vm_add(7);
    char *xml = strdup("<domain type='qemu'><name>vm7</name></domain>");
    c.xml = xml;
    c.xml_len = (uint32_t)strlen(xml);
    ck_assert_int_eq(replica_propose(nd[0].r, &c, 11), 0);
    memset(xml, 'x', c.xml_len); /* the caller's buffer changes, then goes */
    free(xml);
    flush();
    flush();
    ck_assert_int_eq(nd[0].done_ok, 1);
    assert_group_identical(0);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(nd[i].db.nvms, 1);
        ck_assert_str_eq(nd[i].db.vm[0].xml, "<domain type='qemu'><name>vm7</name></domain>");
        ck_assert_str_eq(nd[i].disk.vm[0].xml, "<domain type='qemu'><name>vm7</name></domain>");
    }
}
END_TEST

/* A change sent just before a configuration change and delivered after it,
 * before the round completes, is dropped by every member alike: its
 * proposer hears -ESTALE (safe to propose again), and no copy has it. */
START_TEST(a_change_dropped_by_a_round_says_estale)
{
    struct ha_change c = vm_add(1);
    ck_assert_int_eq(replica_propose(nd[0].r, &c, 9), 0); /* in the queue, not delivered yet */
    ring++;
    uint32_t m[N] = {1, 2, 3, 4, 5};
    for (int i = 0; i < N; i++)
        replica_confchg(nd[i].r, m, N, ring);
    flush(); /* the change arrives first, then the round's states */
    ck_assert_int_eq(nd[0].done_fail, 1);
    ck_assert_int_eq(nd[0].last_status, -ESTALE);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(nd[i].db.nvms, 0);
    ck_assert_int_eq(replica_propose(nd[0].r, &c, 10), 0); /* proposed again: kept */
    flush();
    ck_assert_int_eq(nd[0].done_ok, 1);
    ck_assert_uint_eq(nd[0].acked_tags[0], 10);
    assert_group_identical(0);
}
END_TEST

/* A proposal lost on the way (corosync died with it) shifts no other
 * answer: the next proposal is answered as itself. */
START_TEST(a_lost_proposal_shifts_nothing)
{
    struct ha_change a = vm_add(1), b = vm_add(2);
    ck_assert_int_eq(replica_propose(nd[0].r, &a, 1), 0);
    ck_assert_uint_eq(nq, 1);
    free(q[0].b); /* lost */
    nq = 0;
    ck_assert_int_eq(replica_propose(nd[0].r, &b, 2), 0);
    flush();
    ck_assert_int_eq(nd[0].done_ok, 1);
    ck_assert_uint_eq(nd[0].acked_tags[0], 2);
    ck_assert_int_eq(nd[3].db.nvms, 1);
    ck_assert_str_eq(nd[3].db.vm[0].name, b.name);
}
END_TEST

/* Random crashes, partitions, merges and proposals from everyone: at the
 * end, with everybody merged, all copies are identical and every change
 * that was reported done is in them. */
START_TEST(random_faults_never_diverge)
{
    unsigned seed = 12345u + (unsigned)_i;
    int next_vm = 0;
    for (int step = 0; step < 400; step++) {
        seed = seed * 1103515245u + 12345u;
        int r = (int)((seed >> 8) % 100);
        int i = (int)((seed >> 20) % N);
        if (r < 55) {
            /* every up node proposes; only the master of its view succeeds */
            if (nd[i].up) {
                struct ha_change c = vm_add(next_vm);
                replica_propose(nd[i].r, &c, (uint64_t)next_vm + 1);
                next_vm++;
            }
        } else if (r < 65) {
            /* a takeover attempt by whoever is lowest in its group */
            if (nd[i].up) {
                struct ha_change mc = {.type = HA_CHG_MASTER, .host = i};
                replica_propose(nd[i].r, &mc, 0);
            }
        } else if (r < 72) {
            flush(); /* what was sent in the old view is delivered in it */
            if (nd[i].up)
                crash(i);
            else
                start(i);
            confchg();
        } else if (r < 80) {
            flush();
            nd[i].group = (int)((seed >> 12) % 2);
            confchg();
        } else if (r < 85) {
            flush();
            for (int k = 0; k < N; k++)
                nd[k].group = 0;
            confchg();
        } else {
            flush();
        }
    }
    flush();
    for (int k = 0; k < N; k++) {
        nd[k].group = 0;
        if (!nd[k].up)
            start(k);
    }
    confchg();
    flush();
    assert_group_identical(0);
    /* nothing reported done was lost */
    for (int k = 0; k < N; k++)
        for (int t = 0; t < nd[k].nacked; t++) {
            char name[HA_NAME_MAX];
            snprintf(name, sizeof name, "vm%llu", (unsigned long long)nd[k].acked_tags[t] - 1);
            ck_assert_msg(ha_db_find_vm(&nd[0].db, name) >= 0, "acknowledged %s was lost (seed run %d)", name, _i);
        }
}
END_TEST

START_TEST(bad_messages_change_nothing)
{
    uint64_t d = pooldb_digest(nd[1].db.master_epoch, &nd[1].db);
    uint8_t junk[64];
    for (int k = 0; k < 2000; k++) {
        for (size_t b = 0; b < sizeof junk; b++)
            junk[b] = (uint8_t)(rand() & 0xff);
        size_t len = (size_t)(rand() % (int)sizeof junk);
        if (k % 3 == 0 && len >= 8) { /* a valid header around garbage */
            junk[0] = 0x47, junk[1] = 0x56, junk[2] = 1, junk[3] = (uint8_t)(1 + k % 4);
            junk[4] = (uint8_t)len, junk[5] = junk[6] = junk[7] = 0;
        }
        replica_deliver(nd[1].r, 1, junk, len);
    }
    ck_assert_uint_eq(pooldb_digest(nd[1].db.master_epoch, &nd[1].db), d);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("replica");
    TCase *t = tcase_create("replica");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, a_change_dropped_by_a_round_says_estale);
    tcase_add_test(t, a_lost_proposal_shifts_nothing);
    tcase_add_test(t, commits_reach_everyone);
    tcase_add_test(t, only_the_master_writes);
    tcase_add_test(t, master_crash_takeover_and_rejoin);
    tcase_add_test(t, changes_during_a_round_wait);
    tcase_add_test(t, a_queued_change_keeps_its_xml);
    tcase_add_loop_test(t, random_faults_never_diverge, 0, 300);
    tcase_add_test(t, bad_messages_change_nothing);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return vigil_run_suite(suite()); }
