/* The corosync adapter: CPG group membership and votequorum, turned into
 * one callback "these node ids are members; quorate or not".  When
 * corosync goes away the adapter reports no quorum, retries every second,
 * and never exits the daemon. */
#ifndef VIGIL_MEMBERSHIP_H
#define VIGIL_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <qb/qbloop.h>

#define MEMBERSHIP_MAX_NODES 64

struct node_info {
    uint32_t nodeid;
    char name[64];
};

/* Reads corosync's nodelist (cmap nodelist.node.N.nodeid/name).  Returns the
 * number of nodes, or -errno with a message in err. */
int membership_nodelist(struct node_info *out, int max, char *err, size_t errlen);

typedef void (*membership_fn)(void *ctx, const uint32_t *nodeids, size_t n, bool quorate, bool connected);

struct membership;
/* Joins CPG group `group` and follows votequorum, dispatching from `loop`. */
struct membership *membership_start(qb_loop_t *loop, const char *group, membership_fn fn, void *ctx);
void membership_stop(struct membership *m);
/* 0 until connected */
uint32_t membership_local_nodeid(const struct membership *m);

#endif
