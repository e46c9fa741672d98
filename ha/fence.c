/* Fencing, as the master runs it: level 1 is the host's BMC (when it has
 * one), level 2 is the heartbeat disk (self-fence record, or poison pill and
 * msgwait while the target's watchdog is armed).  Failed rounds back off and
 * start again from level 1.  Nothing of a host is recovered before a round
 * confirms. */
#include <stdio.h>
#include <string.h>

#include "core_int.h"

#define BACKOFF_MAX 30000

static void confirm(struct ha_core *c, int h, const char *how)
{
    struct fence_state *f = &c->fence[h];
    f->phase = F_DONE;
    /* a host already back in corosync was powered off before it came back:
     * count the fence from its request, so the host counts as rejoined */
    f->done_at = (c->members & HA_BIT(h)) ? f->started : c->now;
    snprintf(f->how, sizeof f->how, "%s", how);
    logf_(c, how, "fence of %s confirmed", hname(c, h));
    commit(c, (struct ha_change){.type = HA_CHG_HOST_FENCED, .host = h, .vm = -1, .arg = 1});
    vms_host_fenced(c, h);
}

/* A self-fence record proves the host is down only if it was written after
 * we last saw the host in corosync, and the host has not come back since:
 * a host that rebooted without access to the disk leaves an old record in
 * its slot. */
static bool slot_says_self_fenced(const struct ha_core *c, int h)
{
    const struct slot_view *s = &c->slot[h];
    return s->seen && s->sf_valid && !(c->members & HA_BIT(h));
}

static void disk_level(struct ha_core *c, int h)
{
    struct fence_state *f = &c->fence[h];
    if (slot_says_self_fenced(c, h)) {
        confirm(c, h, "its disk slot records that it self-fenced");
        return;
    }
    f->phase = F_DISK;
    if (!disk_usable(c)) {
        f->disk_can_confirm = false;
        f->next_at = c->now; /* fails at once: no disk to write the pill to */
        return;
    }
    bool member = (c->members & HA_BIT(h)) != 0;
    f->member_at_pill = member;
    f->disk_can_confirm = (c->slot[h].last.flags & HA_SLOT_WATCHDOG) && !member;
    struct ha_action *x = emit(c, HA_ACT_POISON);
    x->host = h;
    f->seq_at_pill = c->slot[h].last.seq;
    f->next_at = c->now + c->db->set.msgwait;
    logf_(c, f->disk_can_confirm ? "its watchdog is armed: msgwait proves it is down"
          : member ? "it is still a corosync member: only its own acknowledgement can confirm"
                   : "its slot shows no armed watchdog: only its own acknowledgement can confirm",
          "poison pill written for %s", hname(c, h));
}

static void round_start(struct ha_core *c, int h)
{
    struct fence_state *f = &c->fence[h];
    f->last_error[0] = 0; /* a new round: the previous one's error is history */
    if (c->db->host[h].fence_ipmi) {
        f->phase = F_DEVICE;
        f->next_at = c->now + c->db->set.fence_timeout + 1000;
        struct ha_action *x = emit(c, HA_ACT_FENCE);
        x->host = h;
        return;
    }
    disk_level(c, h);
}

void fence_start(struct ha_core *c, int h, const char *why)
{
    struct fence_state *f = &c->fence[h];
    if (f->phase != F_IDLE)
        return; /* two requests for one host collapse into one */
    *f = (struct fence_state){.phase = F_IDLE, .started = c->now, .member_at_start = (c->members & HA_BIT(h)) != 0};
    logf_(c, why, "fencing %s", hname(c, h));
    round_start(c, h);
}

static void round_failed(struct ha_core *c, int h, const char *why)
{
    struct fence_state *f = &c->fence[h];
    f->rounds++;
    ha_ms backoff = 1000;
    for (int i = 1; i < f->rounds && backoff < BACKOFF_MAX; i++)
        backoff *= 2;
    if (backoff > BACKOFF_MAX)
        backoff = BACKOFF_MAX;
    f->phase = F_BACKOFF;
    f->next_at = c->now + backoff;
    char b[32];
    ha_format_time(backoff, b, sizeof b);
    logf_(c, why, "fence of %s failed (round %d), retrying in %s", hname(c, h), f->rounds, b);
}

void fence_device_done(struct ha_core *c, int h, bool ok, const char *why)
{
    struct fence_state *f = &c->fence[h];
    if (f->phase != F_DEVICE)
        return; /* a late answer after we moved on */
    if (ok) {
        char how[HA_REASON_MAX];
        snprintf(how, sizeof how, "BMC reports power off%s%s", why && *why ? ": " : "", why ? why : "");
        confirm(c, h, how);
        return;
    }
    snprintf(f->last_error, sizeof f->last_error, "BMC: %s", why && *why ? why : "failed");
    logf_(c, f->last_error, "level 1 (ipmi) failed for %s, escalating to the disk", hname(c, h));
    disk_level(c, h);
}

void fence_tick(struct ha_core *c)
{
    for (int h = 0; h < c->db->nhosts; h++) {
        struct fence_state *f = &c->fence[h];
        switch (f->phase) {
        case F_DEVICE:
            if (c->now >= f->next_at)
                fence_device_done(c, h, false, "no answer from the fence device");
            break;
        case F_DISK:
            if (slot_says_self_fenced(c, h)) {
                confirm(c, h, "it acknowledged the poison pill and self-fenced (disk slot)");
            } else if (f->member_at_pill && !(c->members & HA_BIT(h)) &&
                       (c->slot[h].last.flags & HA_SLOT_WATCHDOG) && disk_usable(c)) {
                /* a storage-isolated host whose watchdog has just reset it:
                 * this pill went out while it was a member and can never
                 * confirm; a new one, written now that it is gone, can */
                logf_(c, "it left corosync after the poison pill was written, and its watchdog was armed",
                      "writing a new poison pill for %s", hname(c, h));
                disk_level(c, h);
            } else if (c->now >= f->next_at) {
                bool writing = c->slot[h].last.seq != f->seq_at_pill;
                if (f->disk_can_confirm && !(c->members & HA_BIT(h)) && disk_usable(c) && !writing)
                    confirm(c, h, "msgwait elapsed after the poison pill while its watchdog was armed");
                else
                    round_failed(c, h, !c->db->set.heartbeat_disk ? "this pool has no heartbeat disk (level 2 unavailable)"
                                       : !disk_usable(c) ? "our heartbeat disk is unusable"
                                       : (c->members & HA_BIT(h)) ? "it is still a corosync member"
                                       : writing ? "it kept writing its heartbeat without acknowledging the pill"
                                       : !(c->slot[h].last.flags & HA_SLOT_WATCHDOG) ? "no armed watchdog: the disk cannot confirm"
                                       : f->member_at_pill ? "it was a corosync member when the pill was written"
                                                 : "its watchdog was not armed when the pill was written");
            }
            break;
        case F_BACKOFF:
            if (c->now >= f->next_at)
                round_start(c, h);
            break;
        case F_IDLE:
        case F_DONE:
            break;
        }
    }
}

ha_ms fence_next_deadline(const struct ha_core *c)
{
    ha_ms t = 0;
    for (int h = 0; h < c->db->nhosts; h++) {
        const struct fence_state *f = &c->fence[h];
        if ((f->phase == F_DEVICE || f->phase == F_DISK || f->phase == F_BACKOFF) && (!t || f->next_at < t))
            t = f->next_at;
    }
    return t;
}

void fence_describe(const struct ha_core *c, int h, char *buf, size_t len)
{
    const struct fence_state *f = &c->fence[h];
    char t[32];
    ha_format_time(f->next_at > c->now ? f->next_at - c->now : 0, t, sizeof t);
    const char *err = f->last_error[0] ? f->last_error : "";
    switch (f->phase) {
    case F_IDLE:
        snprintf(buf, len, "waiting for %s to be fenced (not started: %s is %s)", hname(c, h), hname(c, h),
                 ha_verdict_name(c->verdict[h]));
        break;
    case F_DEVICE:
        snprintf(buf, len, "waiting for fence of %s: BMC power-off requested (round %d)", hname(c, h),
                 f->rounds + 1);
        break;
    case F_DISK:
        if (f->disk_can_confirm)
            snprintf(buf, len, "waiting for fence of %s: %s%sdisk confirmation in %s", hname(c, h), err,
                     *err ? ", " : "", t);
        else
            snprintf(buf, len, "waiting for fence of %s: %s%spoison pill written, %s: waiting for its acknowledgement (%s left this round)",
                     hname(c, h), err, *err ? ", " : "",
                     (c->members & HA_BIT(h)) ? "it is still a corosync member" : "no armed watchdog", t);
        break;
    case F_BACKOFF:
        snprintf(buf, len, "waiting for fence of %s: %s%s%d failed round(s), next try in %s", hname(c, h), err,
                 *err ? ", " : "", f->rounds, t);
        break;
    case F_DONE:
        snprintf(buf, len, "%s fenced: %s", hname(c, h), f->how);
        break;
    }
}
