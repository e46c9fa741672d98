/* The replicated pool database over corosync CPG, as a pure state machine.
 *
 * Every member holds the same struct ha_db.  Changes travel as CPG messages
 * in agreed order; every member judges each one at the same point of that
 * stream with the same rule (ha_change_allowed: only the recorded master
 * writes; a takeover only when the recorded master is not in the view), so
 * all members apply the same changes in the same order.  A change is made
 * durable (ops->persist_change, fsync) before the member acknowledges it;
 * a proposal is "done" only when every member of the current view has
 * acknowledged it.
 *
 * After every configuration change the members run a sync round: each
 * sends its (master epoch, version, digest); if they differ, the member
 * with the greatest (epoch, version) (then the lowest node id) sends its
 * whole database and the others replace theirs.  Changes delivered before
 * the round completes are dropped by every member alike; proposals made
 * meanwhile wait and go out when it completes.
 *
 * No I/O here: the caller moves bytes (ops->send, replica_deliver) and
 * stores them, so tests drive several replicas through a simulated totem. */
#ifndef VIGIL_REPLICA_H
#define VIGIL_REPLICA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../ha/ha.h"

/* Wire header shared by every vigil CPG message; types below 16 belong to
 * the replica, the daemon uses the others. */
#define VIGIL_WIRE_MAGIC 0x5647u /* "VG" */
#define VIGIL_WIRE_VERSION 1
#define VIGIL_WIRE_MAX (16u << 20) /* a whole pool database (state transfer), domain XMLs included */
enum vigil_wire_type {
    WIRE_STATE = 1,  /* u64 view, u64 epoch, u64 version, u64 digest */
    WIRE_SNAP = 2,   /* u64 view, snapshot bytes (pooldb encoding) */
    WIRE_CHANGE = 3, /* u64 proposal number (the sender's own), u64 base version, change bytes */
    WIRE_ACK = 4,    /* u64 epoch, u64 version */
    WIRE_DAEMON = 16 /* first type of the daemon's own messages */
};
struct vigil_wire_hdr {
    uint16_t magic;
    uint8_t version;
    uint8_t type;
    uint32_t len; /* whole message, header included */
};
/* Checks the header of a received message.  Returns its type, or -EINVAL
 * with the reason in err. */
int vigil_wire_check(const void *msg, size_t len, char *err, size_t errlen);

struct replica_ops {
    void *ctx;
    /* multicast to the group in agreed order; 0 or -errno */
    int (*send)(void *ctx, const void *msg, size_t len);
    /* make the database after change c durable before we acknowledge it */
    int (*persist_change)(void *ctx, const struct ha_db *after, const struct ha_change *c);
    /* make a whole database (state transfer) durable */
    int (*persist_state)(void *ctx, const struct ha_db *db);
    /* a change was applied (sender: host index) */
    void (*applied)(void *ctx, int sender, const struct ha_change *c);
    /* the sync round completed: the database is the pool's */
    void (*synced)(void *ctx);
    /* outcome of a proposal with a non-zero tag: 0 = acknowledged by every
     * member of the view; otherwise -errno and why.  -ESTALE: it arrived
     * during a sync round and every member dropped it, so it may be
     * proposed again; -EPERM: refused (not the master, does not apply);
     * -EAGAIN: lost in a membership change (it may or may not be kept) */
    void (*done)(void *ctx, uint64_t tag, int status, const char *why);
    /* a line worth logging */
    void (*log)(void *ctx, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
};

struct replica;
/* db is the caller's database (kept up to date in place); self is this
 * host's corosync node id. */
struct replica *replica_new(struct ha_db *db, uint32_t self, const struct replica_ops *ops);
void replica_free(struct replica *r);
/* a CPG configuration change: the node ids now in the group, and the
 * totem ring sequence (the same on every member of the ring) */
void replica_confchg(struct replica *r, const uint32_t *members, size_t n, uint64_t ring);
/* a message delivered by CPG (any type below WIRE_DAEMON) */
void replica_deliver(struct replica *r, uint32_t sender, const void *msg, size_t len);
/* Proposes a change.  tag != 0 asks for ops->done.  Returns 0 (queued or
 * sent) or -errno. */
int replica_propose(struct replica *r, const struct ha_change *c, uint64_t tag);
bool replica_synced(const struct replica *r);
/* the members of the current view as host indices of the database */
ha_hostset replica_view(const struct replica *r);
/* fails every open proposal (e.g. when corosync went away) */
void replica_abort(struct replica *r, const char *why);

#endif
