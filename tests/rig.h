/* A one-core driver for unit tests and benchmarks: feeds events to one
 * ha_core, applies its commits to the database and its heartbeat writes to
 * an in-memory disk, and keeps the actions of the last step. */
#ifndef VIGIL_TESTS_RIG_H
#define VIGIL_TESTS_RIG_H

#include "ha/ha.h"

struct rig {
    struct ha_db db;
    struct ha_core *c;
    struct ha_actions acts; /* actions of the last step */
    struct ha_slot slot[HA_MAX_HOSTS];
    int lease_owner;
    uint64_t lease_counter;
    ha_ms now;
    int commit_errors;      /* commits the database rejected (should stay 0) */
};

void rig_init(struct rig *r);
/* Creates the core of host `self` (after the database is filled). */
int rig_start(struct rig *r, int self);
void rig_free(struct rig *r);
void rig_step(struct rig *r, struct ha_event *ev);
int rig_count(const struct rig *r, enum ha_action_type t);
void rig_membership(struct rig *r, ha_hostset members, bool quorate);
/* One heartbeat tick: hosts in `writing` (not ours) bump their slot with
 * `liveset`; then our core reads the disk (ok = the read works). */
void rig_tick(struct rig *r, ha_hostset writing, ha_hostset liveset, bool ok);
void rig_report(struct rig *r, int host, int vm, enum ha_vm_obs st);
void rig_inventory(struct rig *r, int host);

#endif
