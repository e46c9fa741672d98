/* The corosync adapter: CPG group membership, ordered messages and
 * votequorum, reported through callbacks.  When corosync goes away the
 * adapter reports it, retries every second, and never exits the daemon. */
#ifndef VIGIL_MEMBERSHIP_H
#define VIGIL_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qb/qbloop.h>

#define MEMBERSHIP_MAX_NODES 64

/* What the adapter reports, from the daemon's main loop.  After a
 * disconnect (connection(false)) nothing else is reported until the adapter
 * has reconnected; the first report then is view() with the group as it is. */
struct membership_ops {
    void *ctx;
    /* CPG group membership: node ids and process ids, in CPG's order */
    void (*view)(void *ctx, const uint32_t *nodeids, const uint32_t *pids, size_t n);
    /* votequorum: this node is in a quorate partition or not */
    void (*quorum)(void *ctx, bool quorate);
    /* connected to corosync (CPG and votequorum) as node `local`, or not
     * (local 0); may come from within membership_start */
    void (*connection)(void *ctx, bool connected, uint32_t local);
    /* a message multicast to the group, in agreed order */
    void (*deliver)(void *ctx, uint32_t nodeid, uint32_t pid, const void *msg, size_t len);
};

struct membership;
/* Joins CPG group `group` and follows votequorum, dispatching from `loop`;
 * connects in the background (every second) while corosync is not there. */
struct membership *membership_start(qb_loop_t *loop, const char *group, const struct membership_ops *ops);
void membership_stop(struct membership *m);
/* 0 until connected */
uint32_t membership_local_nodeid(const struct membership *m);
bool membership_connected(const struct membership *m);
/* Multicasts msg to the group in agreed order.  When corosync pushes back
 * (flow control) the message waits in a queue, in order, and goes out
 * shortly.  0, or -ENOTCONN (not connected: dropped), -ENOMEM, -EMSGSIZE. */
int membership_send(struct membership *m, const void *msg, size_t len);

#endif
