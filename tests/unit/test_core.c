/* The pure core, driven event by event: two-channel verdicts, the partition
 * contest, the master lease, fencing levels, and the rule that nothing is
 * recovered before its host's fence is confirmed. */
#include <check.h>

#include "check_main.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha/ha.h"
#include "tests/rig.h"

/* thin wrappers: every step must leave the database consistent */
static void step(struct rig *r, struct ha_event *ev)
{
    rig_step(r, ev);
    ck_assert_int_eq(r->commit_errors, 0);
}
static int count(const struct rig *r, enum ha_action_type t) { return rig_count(r, t); }
static void membership(struct rig *r, ha_hostset m, bool quorate)
{
    rig_membership(r, m, quorate);
    ck_assert_int_eq(r->commit_errors, 0);
}
static void tick(struct rig *r, ha_hostset writing, ha_hostset liveset, bool ok)
{
    rig_tick(r, writing, liveset, ok);
    ck_assert_int_eq(r->commit_errors, 0);
}
static void report(struct rig *r, int host, int vm, enum ha_vm_obs st) { rig_report(r, host, vm, st); }
static void inventory(struct rig *r, int host) { rig_inventory(r, host); }
static void teardown(struct rig *r) { rig_free(r); }
/* The master's explain sentence for VM v contains text. */
static void explains(const struct rig *r, int v, const char *text)
{
    char buf[512];
    ha_core_explain(r->c, v, buf, sizeof buf);
    ck_assert_msg(strstr(buf, text), "%s", buf);
}

/* h1..hN with one protected VM, web1, placed on the last host; our core is h1's. */
static void setup(struct rig *r, int nhosts, bool watchdog)
{
    rig_init(r);
    r->db.set.watchdog = watchdog;
    for (int i = 0; i < nhosts; i++) {
        struct ha_db_host h = {.mem_mb = 8192, .cpus = 4, .joined = true, .fence_ipmi = true};
        snprintf(h.name, sizeof h.name, "h%d", i + 1);
        ha_db_add_host(&r->db, &h);
    }
    struct ha_db_vm v = {.mem_mb = 1024, .cpus = 1, .priority = 3, .protect = HA_PROTECT_RESTART,
                         .want_running = true, .host = nhosts - 1};
    strcpy(v.name, "web1");
    ha_db_add_vm(&r->db, &v);
    ck_assert_int_eq(rig_start(r, 0), 0);
}

/* A healthy 3-host pool where our host (h1) became master. */
static void healthy_master(struct rig *r, bool watchdog)
{
    setup(r, 3, watchdog);
    membership(r, 7, true);
    report(r, 2, 0, HA_OBS_RUNNING);
    for (int h = 0; h < 3; h++)
        inventory(r, h);
    for (int i = 0; i < 3; i++) {
        r->now += 1000;
        tick(r, 6, 7, true);
    }
    ck_assert(ha_core_is_master(r->c));
    ck_assert_int_eq(r->lease_owner, 0);
    int where;
    ck_assert_int_eq(ha_core_vm_state(r->c, 0, &where), HA_VM_RUNNING);
    ck_assert_int_eq(where, 2);
}

START_TEST(verdict_table)
{
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 7, true);
    r.now = 1000;
    tick(&r, 6, 7, true);
    ck_assert_int_eq(ha_core_verdict(r.c, 1), HA_ALIVE);
    /* h3 leaves corosync but keeps writing: network-isolated */
    membership(&r, 3, true);
    r.now += 1000;
    tick(&r, 6, 7, true);
    ck_assert_int_eq(ha_core_verdict(r.c, 2), HA_NETWORK_ISOLATED);
    /* h2 stays a member but stops writing; h3 stops too */
    for (int i = 0; i < 4; i++) {
        r.now += 1000;
        tick(&r, 0, 0, true);
    }
    ck_assert_int_eq(ha_core_verdict(r.c, 1), HA_STORAGE_ISOLATED);
    ck_assert_int_eq(ha_core_verdict(r.c, 2), HA_DEAD);
    /* our own disk fails: we can no longer tell a gone host's disk state */
    for (int i = 0; i < 5; i++) {
        r.now += 1000;
        tick(&r, 0, 0, false);
    }
    ck_assert_int_eq(ha_core_verdict(r.c, 2), HA_UNKNOWN);
    ck_assert_int_eq(ha_core_verdict(r.c, 1), HA_ALIVE);
    teardown(&r);
}
END_TEST

START_TEST(our_failing_reads_never_make_peers_dead)
{
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 1, false);
    r.now = 1000;
    tick(&r, 6, 6, true);
    /* three failed reads in a row, then one good read: peers stay fresh */
    for (int i = 0; i < 3; i++) {
        r.now += 1000;
        tick(&r, 6, 6, false);
    }
    r.now += 1000;
    tick(&r, 6, 6, true);
    ck_assert_int_eq(ha_core_verdict(r.c, 1), HA_NETWORK_ISOLATED);
    teardown(&r);
}
END_TEST

START_TEST(minority_with_vms_self_fences)
{
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 7, true);
    r.now = 1000;
    tick(&r, 6, 7, true);
    report(&r, 0, 0, HA_OBS_RUNNING); /* a VM runs on us */
    membership(&r, 1, false);         /* we are cut off */
    r.now += 1000;
    tick(&r, 6, 7, true); /* the others have not noticed yet: wait */
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_UNDECIDED);
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 0);
    r.now += 1000;
    tick(&r, 6, 6, true); /* they report {h2,h3}: we lost */
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_LOSE);
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 1);
    ck_assert(r.slot[0].flags & HA_SLOT_SELF_FENCED); /* recorded on the disk first */
    teardown(&r);
}
END_TEST

START_TEST(minority_without_vms_stays_passive)
{
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 1, false);
    r.now = 1000;
    tick(&r, 6, 6, true);
    r.now += 1000;
    tick(&r, 6, 6, true);
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_LOSE);
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 0);
    ck_assert(!ha_core_is_master(r.c));
    teardown(&r);
}
END_TEST

START_TEST(tie_goes_to_lease_holder)
{
    struct rig r;
    setup(&r, 2, true);
    membership(&r, 1, false);
    r.lease_owner = 1; /* h2 holds the lease and keeps renewing it */
    for (int i = 0; i < 3; i++) {
        r.now += 1000;
        r.lease_counter++;
        tick(&r, 2, 2, true);
    }
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_LOSE);
    teardown(&r);

    setup(&r, 2, true);
    membership(&r, 3, true);
    for (int i = 0; i < 3; i++) {
        r.now += 1000;
        tick(&r, 2, 3, true);
    }
    ck_assert(ha_core_is_master(r.c));
    membership(&r, 1, false);
    r.now += 1000;
    tick(&r, 2, 2, true);
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_WIN);
    ck_assert(ha_core_is_master(r.c));
    teardown(&r);
}
END_TEST

START_TEST(survivor_of_two_failures_keeps_running)
{
    /* h3 then h2 die: h1 alone is not corosync-quorate, but both peers are
     * dead on both channels, so it keeps the right to run. */
    struct rig r;
    healthy_master(&r, true);
    membership(&r, 3, true);
    for (int i = 0; i < 6; i++) {
        r.now += 1000;
        tick(&r, 2, 3, true);
    }
    membership(&r, 1, false);
    for (int i = 0; i < 6; i++) {
        r.now += 1000;
        tick(&r, 0, 0, true);
    }
    ck_assert_int_eq(ha_core_side(r.c), HA_SIDE_WIN);
    ck_assert(ha_core_is_master(r.c));
    ck_assert_int_eq(ha_core_verdict(r.c, 1), HA_DEAD);
    teardown(&r);
}
END_TEST

START_TEST(no_recovery_before_fence_confirmed)
{
    struct rig r;
    healthy_master(&r, true);
    /* h3 (running web1) vanishes from corosync */
    membership(&r, 3, true);
    ck_assert_int_eq(count(&r, HA_ACT_FENCE), 1);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    ck_assert_int_eq(ha_core_host_state(r.c, 2), HA_HOST_FENCING);
    /* a second reason to fence collapses into the running request */
    r.now += 1000;
    tick(&r, 2, 3, true);
    ck_assert_int_eq(count(&r, HA_ACT_FENCE), 0);
    /* the BMC fails: escalate to the disk; still nothing started */
    struct ha_event f = {.type = HA_EV_FENCE_DONE};
    f.u.fence.host = 2;
    f.u.fence.ok = false;
    strcpy(f.u.fence.why, "timeout");
    step(&r, &f);
    ck_assert_int_eq(count(&r, HA_ACT_POISON), 1);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    char buf[512];
    ha_core_explain(r.c, 0, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "waiting for fence of h3") && strstr(buf, "disk confirmation in"), "%s", buf);
    /* msgwait (10 s) not elapsed: nothing */
    for (int i = 0; i < 9; i++) {
        r.now += 1000;
        tick(&r, 2, 3, true);
        ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    }
    r.now += 1000;
    tick(&r, 2, 3, true);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    ck_assert(r.db.host[2].fenced);
    ck_assert_int_eq(ha_core_host_state(r.c, 2), HA_HOST_FENCED);
    teardown(&r);
}
END_TEST

START_TEST(no_watchdog_means_disk_cannot_confirm)
{
    struct rig r;
    healthy_master(&r, false);
    membership(&r, 3, true);
    struct ha_event f = {.type = HA_EV_FENCE_DONE};
    f.u.fence.host = 2;
    f.u.fence.ok = false;
    step(&r, &f);
    for (int i = 0; i < 40; i++) {
        r.now += 1000;
        tick(&r, 2, 3, true);
        ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
        for (size_t k = 0; k < r.acts.n; k++)
            if (r.acts.v[k].type == HA_ACT_FENCE) { /* retried rounds fail too */
                step(&r, &f);
            }
    }
    ck_assert(!r.db.host[2].fenced);
    char buf[512];
    ha_core_explain(r.c, 0, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "waiting for fence of h3"), "%s", buf);
    /* the BMC answers again: the next round confirms and recovery starts */
    f.u.fence.ok = true;
    for (int i = 0; i < 40 && !r.db.host[2].fenced; i++) {
        r.now += 1000;
        tick(&r, 2, 3, true);
        for (size_t k = 0; k < r.acts.n; k++)
            if (r.acts.v[k].type == HA_ACT_FENCE)
                step(&r, &f);
    }
    ck_assert(r.db.host[2].fenced);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    teardown(&r);
}
END_TEST

START_TEST(self_fence_record_confirms)
{
    struct rig r;
    healthy_master(&r, false);
    r.db.host[2].fence_ipmi = false; /* no BMC: disk only */
    membership(&r, 3, true);
    ck_assert_int_eq(count(&r, HA_ACT_POISON), 1);
    r.slot[2].flags |= HA_SLOT_SELF_FENCED;
    r.slot[2].seq++; /* h3 writes its record after it left corosync */
    r.now += 1000;
    tick(&r, 0, 0, true);
    ck_assert(r.db.host[2].fenced);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    teardown(&r);
}
END_TEST

START_TEST(stale_self_fence_record_is_not_proof)
{
    /* h3 self-fenced once; it is back in corosync but cannot write its slot
     * (no storage): the old record must not confirm a new fence */
    struct rig r;
    healthy_master(&r, false);
    r.db.host[2].fence_ipmi = false;
    r.slot[2].flags |= HA_SLOT_SELF_FENCED;
    for (int i = 0; i < 6; i++) { /* h3 stays a member, its slot goes stale */
        r.now += 1000;
        tick(&r, 2, 7, true);
    }
    ck_assert_int_eq(ha_core_verdict(r.c, 2), HA_STORAGE_ISOLATED);
    for (int i = 0; i < 30; i++) {
        r.now += 1000;
        tick(&r, 2, 7, true);
        ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    }
    ck_assert(!r.db.host[2].fenced);
    teardown(&r);
}
END_TEST

START_TEST(poison_pill_in_our_mailbox)
{
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 7, true);
    r.now = 1000;
    tick(&r, 6, 7, true);
    r.slot[0].poison = 1;
    r.now += 1000;
    tick(&r, 6, 7, true);
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 1);
    /* a dead core ignores everything afterwards */
    r.now += 1000;
    tick(&r, 6, 7, true);
    ck_assert_uint_eq(r.acts.n, 0);
    teardown(&r);
}
END_TEST

START_TEST(crash_restarts_in_place_then_relocates)
{
    struct rig r;
    healthy_master(&r, true);
    for (int round = 0; round < 3; round++) {
        report(&r, 2, 0, HA_OBS_CRASHED);
        ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
        int target = -1;
        for (size_t k = 0; k < r.acts.n; k++)
            if (r.acts.v[k].type == HA_ACT_VM_START)
                target = r.acts.v[k].host;
        ck_assert_int_eq(target, round < 2 ? 2 : 0); /* 2 restarts on h3, then elsewhere */
        report(&r, target, 0, HA_OBS_RUNNING);
        if (target != 2)
            break;
    }
    teardown(&r);
}
END_TEST

START_TEST(new_master_waits_for_inventory)
{
    /* web1 is placed on h3, which is alive but has not listed its VMs yet:
     * starting it elsewhere could run it twice. */
    struct rig r;
    setup(&r, 3, true);
    membership(&r, 7, true);
    inventory(&r, 0);
    inventory(&r, 1);
    int starts = 0;
    for (int i = 0; i < 5; i++) {
        r.now += 1000;
        tick(&r, 6, 7, true);
        starts += count(&r, HA_ACT_VM_START);
    }
    ck_assert(ha_core_is_master(r.c));
    ck_assert_int_eq(starts, 0);
    explains(&r, 0, "waiting for h3 to report the VMs it runs");
    /* h3's list is complete and web1 is not on it: now it may start */
    inventory(&r, 2);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    teardown(&r);
}
END_TEST

static bool started_anything(const struct rig *r)
{
    return count(r, HA_ACT_VM_START) > 0;
}

START_TEST(unknown_report_state_is_not_gone)
{
    struct rig r;
    healthy_master(&r, true);
    struct ha_event ev = {.type = HA_EV_VM_REPORT};
    ev.u.report.host = 2;
    ev.u.report.vm = 0;
    ev.u.report.state = (enum ha_vm_obs)6; /* say, a newer agent's "paused" */
    step(&r, &ev);
    ck_assert(!started_anything(&r));
    int where;
    ck_assert_int_eq(ha_core_vm_state(r.c, 0, &where), HA_VM_RUNNING);
    ck_assert_int_eq(where, 2);
    teardown(&r);
}
END_TEST

START_TEST(migration_reports_crossing)
{
    /* web1 migrates h3 -> h2 under an earlier master (the database holds
     * the intent); the source's "gone" arrives before the destination's
     * "running": nothing may start it elsewhere before h2 has answered. */
    struct rig r;
    healthy_master(&r, true);
    struct ha_change mig = {.type = HA_CHG_VM_MIGRATING, .vm = 0, .host = 2, .arg = 1};
    ck_assert_int_eq(ha_db_apply(&r.db, &mig), 0);
    struct ha_event ev = {.type = HA_EV_VM_REPORT};
    ev.u.report.host = 2;
    ev.u.report.vm = 0;
    ev.u.report.state = HA_OBS_MIGRATING;
    ev.u.report.to = 1;
    step(&r, &ev);
    ev.u.report.state = HA_OBS_NONE;
    ev.u.report.to = HA_NO_HOST;
    step(&r, &ev);
    ck_assert(!started_anything(&r));
    ck_assert_int_eq(count(&r, HA_ACT_INVENTORY_QUERY), 1); /* it asks h2 */
    char buf[512];
    ha_core_explain(r.c, 0, buf, sizeof buf);
    ck_assert_msg(strstr(buf, "migration outcome unknown"), "%s", buf);
    /* h2 answers: it runs web1 */
    report(&r, 1, 0, HA_OBS_RUNNING);
    inventory(&r, 1);
    ck_assert(!started_anything(&r));
    int where;
    ck_assert_int_eq(ha_core_vm_state(r.c, 0, &where), HA_VM_RUNNING);
    ck_assert_int_eq(where, 1);
    teardown(&r);

    /* the same, but h2 answers that it does not have it: then it restarts */
    healthy_master(&r, true);
    ck_assert_int_eq(ha_db_apply(&r.db, &mig), 0);
    ev.u.report.state = HA_OBS_MIGRATING;
    ev.u.report.to = 1;
    step(&r, &ev);
    ev.u.report.state = HA_OBS_NONE;
    step(&r, &ev);
    ck_assert(!started_anything(&r));
    inventory(&r, 1);
    ck_assert(started_anything(&r));
    teardown(&r);
}
END_TEST

START_TEST(msgwait_needs_a_silent_target)
{
    /* h3 leaves corosync, its BMC fails, but it keeps heartbeating and
     * ignores the pill: msgwait must not confirm. */
    struct rig r;
    healthy_master(&r, true);
    membership(&r, 3, true);
    struct ha_event f = {.type = HA_EV_FENCE_DONE};
    f.u.fence.host = 2;
    f.u.fence.ok = false;
    step(&r, &f);
    ck_assert_int_eq(count(&r, HA_ACT_POISON), 1);
    for (int i = 0; i < 15; i++) {
        r.now += 1000;
        tick(&r, 6, 4, true); /* h3 still writes, seeing only itself */
        ck_assert(!started_anything(&r));
    }
    ck_assert(!r.db.host[2].fenced);
    teardown(&r);
}
END_TEST

static void pill_at_start(struct rig *r, bool runs_vms)
{
    setup(r, 3, true);
    r->slot[0].poison = 1; /* written while vigild was not running; never acknowledged */
    membership(r, 7, true);
    if (runs_vms)
        report(r, 0, 0, HA_OBS_RUNNING);
    r->now = 1000;
    tick(r, 6, 7, true);
    ck_assert_int_eq(count(r, HA_ACT_SELF_FENCE), 0); /* waits for its own VM list */
    inventory(r, 0);
}

START_TEST(pending_pill_at_start)
{
    struct rig r;
    pill_at_start(&r, true); /* vigild restarted under running VMs: obey */
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 1);
    teardown(&r);
    pill_at_start(&r, false); /* a fresh boot that runs nothing: acknowledge */
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 0);
    r.now += 1000;
    tick(&r, 6, 7, true);
    ck_assert_int_eq(count(&r, HA_ACT_SELF_FENCE), 0);
    ck_assert_uint_eq(r.slot[0].poison_ack, 1); /* written back in our slot */
    teardown(&r);
}
END_TEST

START_TEST(commands_refused_with_reasons)
{
    struct rig r;
    healthy_master(&r, true);
    struct ha_event ev = {.type = HA_EV_CMD};
    ev.u.cmd = (struct ha_cmd){.type = HA_CMD_POOL_LEAVE, .host = 2, .vm = -1};
    step(&r, &ev);
    ck_assert_int_eq(count(&r, HA_ACT_CMD_DONE), 1);
    const struct ha_action *a = &r.acts.v[r.acts.n - 1];
    ck_assert(!a->ok);
    ck_assert_msg(strstr(a->what, "runs 1 protected VM(s) (web1)"), "%s", a->what);
    ck_assert(!r.db.host[2].leaving);
    ev.u.cmd = (struct ha_cmd){.type = HA_CMD_HOST_FENCE, .host = 0, .vm = -1, .yes = true};
    step(&r, &ev);
    a = &r.acts.v[r.acts.n - 1];
    ck_assert(!a->ok);
    ck_assert_msg(strstr(a->what, "is the master"), "%s", a->what);
    ev.u.cmd = (struct ha_cmd){.type = HA_CMD_POOL_EJECT, .host = 1, .vm = -1};
    step(&r, &ev);
    a = &r.acts.v[r.acts.n - 1];
    ck_assert(!a->ok);
    ck_assert_msg(strstr(a->what, "h2 is alive"), "%s", a->what);
    teardown(&r);
}
END_TEST

/* Corosync-only pool of three, web1 on h3, our core h1's; `master` is
 * recorded as master (epoch 1) before our core starts, or none (-1). */
static void setup_nodisk(struct rig *r, int master)
{
    rig_init(r);
    r->db.set.heartbeat_disk = false;
    for (int i = 0; i < 3; i++) {
        struct ha_db_host h = {.mem_mb = 8192, .cpus = 4, .joined = true, .fence_ipmi = true};
        snprintf(h.name, sizeof h.name, "h%d", i + 1);
        ha_db_add_host(&r->db, &h);
    }
    struct ha_db_vm v = {.mem_mb = 1024, .cpus = 1, .priority = 3, .protect = HA_PROTECT_RESTART,
                         .want_running = true, .host = 2};
    strcpy(v.name, "web1");
    ha_db_add_vm(&r->db, &v);
    if (master >= 0)
        ck_assert_int_eq(ha_db_apply(&r->db, &(struct ha_change){.type = HA_CHG_MASTER, .host = master, .vm = -1}), 0);
    ck_assert_int_eq(rig_start(r, 0), 0);
}

static void db_event(struct rig *r)
{
    struct ha_event ev = {.type = HA_EV_DB};
    step(r, &ev);
}

static const struct ha_action *find_commit(const struct rig *r, enum ha_change_type t)
{
    for (size_t i = 0; i < r->acts.n; i++)
        if (r->acts.v[i].type == HA_ACT_COMMIT && r->acts.v[i].change.type == t)
            return &r->acts.v[i];
    return NULL;
}

START_TEST(nodisk_restarted_master_takes_a_new_epoch)
{
    /* The database names h1 master from a life before this core: it takes
     * office in an epoch of its own before it orders anything. */
    struct rig r;
    setup_nodisk(&r, 0);
    membership(&r, 7, true);
    const struct ha_action *a = find_commit(&r, HA_CHG_MASTER);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(a->change.host, 0);
    ck_assert(!ha_core_is_master(r.c));
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    ck_assert_uint_eq(r.db.master_epoch, 2);
    db_event(&r);
    ck_assert(ha_core_is_master(r.c));
    for (int h = 0; h < 3; h++)
        inventory(&r, h);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    for (size_t i = 0; i < r.acts.n; i++)
        if (r.acts.v[i].type == HA_ACT_VM_START) {
            ck_assert_uint_eq(r.acts.v[i].epoch, 2);
            ck_assert_uint_eq(r.acts.v[i].op >> 32, 2); /* no id of the old life is reused */
        }
    db_event(&r);
    ck_assert_ptr_null(find_commit(&r, HA_CHG_MASTER)); /* once in office, it stays */
    teardown(&r);
    /* a takeover seen live is this core's own office */
    setup_nodisk(&r, -1);
    membership(&r, 7, true);
    ck_assert_ptr_nonnull(find_commit(&r, HA_CHG_MASTER));
    db_event(&r);
    ck_assert(ha_core_is_master(r.c));
    ck_assert_uint_eq(r.db.master_epoch, 1);
    teardown(&r);
}
END_TEST

START_TEST(nodisk_stale_sighting_proves_nothing)
{
    /* h1 saw web1 on h3, then sat alone.  Meanwhile the master h2 moved
     * web1 to itself and died.  When h1 takes over with h3, its old
     * sighting must neither be recorded as web1's placement nor let web1
     * start before h2 is fenced. */
    struct rig r;
    setup_nodisk(&r, 1);
    membership(&r, 7, true);
    ck_assert(!ha_core_is_master(r.c));
    report(&r, 2, 0, HA_OBS_RUNNING);
    membership(&r, 1, false);
    ck_assert_int_eq(ha_db_apply(&r.db, &(struct ha_change){.type = HA_CHG_VM_PLACE, .vm = 0, .host = 1}), 0);
    r.now += 5000;
    membership(&r, 5, true); /* h1 and h3; h2 is gone */
    ck_assert_ptr_nonnull(find_commit(&r, HA_CHG_MASTER));
    db_event(&r);
    ck_assert(ha_core_is_master(r.c));
    ck_assert_ptr_null(find_commit(&r, HA_CHG_VM_PLACE));
    ck_assert_int_eq(r.db.vm[0].host, 1);
    ck_assert_int_eq(count(&r, HA_ACT_FENCE), 1);
    explains(&r, 0, "waiting for fence of h2");
    inventory(&r, 0);
    inventory(&r, 2); /* web1 is not on h3 */
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    ck_assert_int_eq(r.db.vm[0].host, 1);
    struct ha_event ev = {.type = HA_EV_FENCE_DONE};
    ev.u.fence.host = 1;
    ev.u.fence.ok = true;
    step(&r, &ev);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    teardown(&r);
}
END_TEST

START_TEST(nodisk_sighting_waits_for_the_new_inventory)
{
    /* h1 (not master) saw web1 on h3; h3 left h1's view and came back.
     * When h1 takes over, web1 may or may not still be on h3 until h3's new
     * list arrives: it is neither placed there nor started elsewhere.  A
     * list h3 sent before it left, delivered late, does not count. */
    struct rig r;
    setup_nodisk(&r, 1);
    membership(&r, 7, true);
    report(&r, 2, 0, HA_OBS_RUNNING);
    membership(&r, 3, true); /* h3 leaves; h2 is master, not us */
    inventory(&r, 2);        /* late: sent before h3 left */
    membership(&r, 7, true); /* h3 is back */
    membership(&r, 5, true); /* h2 is gone: we take over with h3 */
    ck_assert_ptr_nonnull(find_commit(&r, HA_CHG_MASTER));
    db_event(&r);
    ck_assert(ha_core_is_master(r.c));
    inventory(&r, 0);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 0);
    ck_assert_ptr_null(find_commit(&r, HA_CHG_VM_PLACE));
    explains(&r, 0, "waiting for h3 to report the VMs it runs");
    /* h3's new list does not hold web1: it is not anywhere */
    inventory(&r, 2);
    ck_assert_int_eq(count(&r, HA_ACT_VM_START), 1);
    teardown(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core");
    TCase *t = tcase_create("core");
    tcase_add_test(t, verdict_table);
    tcase_add_test(t, our_failing_reads_never_make_peers_dead);
    tcase_add_test(t, minority_with_vms_self_fences);
    tcase_add_test(t, minority_without_vms_stays_passive);
    tcase_add_test(t, tie_goes_to_lease_holder);
    tcase_add_test(t, survivor_of_two_failures_keeps_running);
    tcase_add_test(t, no_recovery_before_fence_confirmed);
    tcase_add_test(t, no_watchdog_means_disk_cannot_confirm);
    tcase_add_test(t, self_fence_record_confirms);
    tcase_add_test(t, stale_self_fence_record_is_not_proof);
    tcase_add_test(t, poison_pill_in_our_mailbox);
    tcase_add_test(t, crash_restarts_in_place_then_relocates);
    tcase_add_test(t, new_master_waits_for_inventory);
    tcase_add_test(t, unknown_report_state_is_not_gone);
    tcase_add_test(t, migration_reports_crossing);
    tcase_add_test(t, msgwait_needs_a_silent_target);
    tcase_add_test(t, pending_pill_at_start);
    tcase_add_test(t, commands_refused_with_reasons);
    tcase_add_test(t, nodisk_restarted_master_takes_a_new_epoch);
    tcase_add_test(t, nodisk_stale_sighting_proves_nothing);
    tcase_add_test(t, nodisk_sighting_waits_for_the_new_inventory);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
