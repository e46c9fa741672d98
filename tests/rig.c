#include <stdlib.h>
#include <string.h>

#include "rig.h"

void rig_init(struct rig *r)
{
    memset(r, 0, sizeof *r);
    ha_db_init(&r->db);
    r->lease_owner = HA_NO_HOST;
}

int rig_start(struct rig *r, int self)
{
    r->c = ha_core_new(&r->db, self);
    return r->c ? 0 : -1;
}

void rig_free(struct rig *r)
{
    ha_core_free(r->c);
    ha_actions_free(&r->acts);
    ha_db_free(&r->db);
    r->c = NULL;
}

void rig_step(struct rig *r, struct ha_event *ev)
{
    ev->now = r->now;
    ha_actions_clear(&r->acts);
    ha_core_step(r->c, ev, &r->acts);
    for (size_t i = 0; i < r->acts.n; i++) {
        const struct ha_action *a = &r->acts.v[i];
        if (a->type == HA_ACT_COMMIT && ha_db_apply(&r->db, &a->change) < 0)
            r->commit_errors++;
        if (a->type == HA_ACT_DISK_WRITE) {
            int self = a->host;
            uint64_t mailbox = r->slot[self].poison; /* the mailbox is not ours to write */
            r->slot[self] = a->slot;
            r->slot[self].poison = mailbox;
            if (a->lease_write) {
                r->lease_owner = a->lease_owner;
                r->lease_counter = a->lease_counter;
            }
        }
    }
}

int rig_count(const struct rig *r, enum ha_action_type t)
{
    int n = 0;
    for (size_t i = 0; i < r->acts.n; i++)
        n += r->acts.v[i].type == t;
    return n;
}

void rig_membership(struct rig *r, ha_hostset members, bool quorate)
{
    struct ha_event ev = {.type = HA_EV_MEMBERSHIP};
    ev.u.membership.members = members;
    ev.u.membership.quorate = quorate;
    rig_step(r, &ev);
}

void rig_tick(struct rig *r, ha_hostset writing, ha_hostset liveset, bool ok)
{
    for (int h = 0; h < r->db.nhosts; h++)
        if ((writing & HA_BIT(h)) && h != ha_core_self(r->c)) {
            r->slot[h].seq++;
            r->slot[h].liveset = liveset;
            r->slot[h].flags = r->db.set.watchdog ? HA_SLOT_WATCHDOG : 0;
        }
    struct ha_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        abort();
    ev->type = HA_EV_DISK;
    ev->u.disk.ok = ok;
    ev->u.disk.lease_owner = r->lease_owner;
    ev->u.disk.lease_counter = r->lease_counter;
    memcpy(ev->u.disk.slot, r->slot, sizeof r->slot);
    rig_step(r, ev);
    free(ev);
}

void rig_report(struct rig *r, int host, int vm, enum ha_vm_obs st)
{
    struct ha_event ev = {.type = HA_EV_VM_REPORT};
    ev.u.report.host = host;
    ev.u.report.vm = vm;
    ev.u.report.state = st;
    ev.u.report.to = HA_NO_HOST;
    rig_step(r, &ev);
}

void rig_inventory(struct rig *r, int host)
{
    struct ha_event ev = {.type = HA_EV_INVENTORY};
    ev.u.report.host = host;
    rig_step(r, &ev);
}
