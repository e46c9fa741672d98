/* CPG + votequorum adapter.  See membership.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corosync/cmap.h>
#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>
#include <qb/qblog.h>

#include "membership.h"

struct membership {
    qb_loop_t *loop;
    char group[CPG_MAX_NAME_LENGTH];
    membership_fn fn;
    void *ctx;
    cpg_handle_t cpg;
    votequorum_handle_t vq;
    int cpg_fd, vq_fd;
    bool connected;
    bool quorate;
    uint32_t local;
    uint32_t members[MEMBERSHIP_MAX_NODES];
    size_t nmembers;
    qb_loop_timer_handle retry;
};

int membership_nodelist(struct node_info *out, int max, char *err, size_t errlen)
{
    cmap_handle_t h;
    cs_error_t e = cmap_initialize(&h);
    if (e != CS_OK) {
        snprintf(err, errlen, "cannot reach corosync (cmap: error %d): is corosync running?", e);
        return -ENOTCONN;
    }
    int n = 0;
    for (int i = 0; i < max; i++) {
        char key[128];
        uint32_t id;
        char *name = NULL;
        snprintf(key, sizeof key, "nodelist.node.%d.nodeid", i);
        if (cmap_get_uint32(h, key, &id) != CS_OK)
            break;
        snprintf(key, sizeof key, "nodelist.node.%d.name", i);
        out[n].nodeid = id;
        if (cmap_get_string(h, key, &name) == CS_OK) {
            snprintf(out[n].name, sizeof out[n].name, "%s", name);
            free(name);
        } else
            snprintf(out[n].name, sizeof out[n].name, "node%u", id);
        n++;
    }
    cmap_finalize(h);
    if (!n) {
        snprintf(err, errlen, "corosync's nodelist is empty");
        return -ENOENT;
    }
    return n;
}

static void report(struct membership *m)
{
    m->fn(m->ctx, m->members, m->nmembers, m->connected && m->quorate, m->connected);
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g, const struct cpg_address *mem, size_t nmem,
                       const struct cpg_address *left, size_t nleft, const struct cpg_address *joined, size_t njoined)
{
    (void)g, (void)left, (void)nleft, (void)joined, (void)njoined;
    void *ctx = NULL;
    cpg_context_get(h, &ctx);
    struct membership *m = ctx;
    m->nmembers = 0;
    for (size_t i = 0; i < nmem && m->nmembers < MEMBERSHIP_MAX_NODES; i++) {
        bool dup = false; /* one vigild per node; ignore a second process */
        for (size_t k = 0; k < m->nmembers; k++)
            dup |= m->members[k] == mem[i].nodeid;
        if (!dup)
            m->members[m->nmembers++] = mem[i].nodeid;
    }
    qb_log(LOG_INFO, "cpg configuration change: %zu member(s), %zu left, %zu joined", m->nmembers, nleft, njoined);
    report(m);
}

static void on_deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
    (void)h, (void)g, (void)nodeid, (void)pid, (void)msg, (void)len; /* the replicated database comes here ([pool]) */
}

static void on_quorum(votequorum_handle_t h, uint64_t context, uint32_t quorate, uint32_t n, votequorum_node_t nodes[])
{
    (void)h, (void)n, (void)nodes;
    struct membership *m = (struct membership *)(uintptr_t)context;
    if (m->quorate != (quorate != 0))
        qb_log(LOG_INFO, "votequorum: %s", quorate ? "quorate" : "not quorate");
    m->quorate = quorate != 0;
    report(m);
}

static void disconnect(struct membership *m, const char *why);

static int32_t cpg_ready(int32_t fd, int32_t revents, void *data)
{
    (void)fd, (void)revents;
    struct membership *m = data;
    if (cpg_dispatch(m->cpg, CS_DISPATCH_ALL) != CS_OK)
        disconnect(m, "cpg_dispatch failed: corosync went away");
    return 0;
}

static int32_t vq_ready(int32_t fd, int32_t revents, void *data)
{
    (void)fd, (void)revents;
    struct membership *m = data;
    if (votequorum_dispatch(m->vq, CS_DISPATCH_ALL) != CS_OK)
        disconnect(m, "votequorum_dispatch failed: corosync went away");
    return 0;
}

static void retry(void *data);

static void schedule_retry(struct membership *m)
{
    qb_loop_timer_add(m->loop, QB_LOOP_MED, 1000ULL * 1000 * 1000, m, retry, &m->retry);
}

static int connect_all(struct membership *m)
{
    cpg_model_v1_data_t model = {.model = CPG_MODEL_V1, .cpg_deliver_fn = on_deliver, .cpg_confchg_fn = on_confchg};
    if (cpg_model_initialize(&m->cpg, CPG_MODEL_V1, (cpg_model_data_t *)&model, m) != CS_OK)
        return -ENOTCONN;
    struct cpg_name name;
    name.length = (uint32_t)strlen(m->group);
    memcpy(name.value, m->group, name.length);
    votequorum_callbacks_t cb = {.votequorum_quorum_notify_fn = on_quorum};
    if (cpg_local_get(m->cpg, &m->local) != CS_OK || cpg_join(m->cpg, &name) != CS_OK ||
        cpg_fd_get(m->cpg, &m->cpg_fd) != CS_OK || votequorum_initialize(&m->vq, &cb) != CS_OK) {
        cpg_finalize(m->cpg);
        return -ENOTCONN;
    }
    if (votequorum_trackstart(m->vq, (uint64_t)(uintptr_t)m, CS_TRACK_CHANGES | CS_TRACK_CURRENT) != CS_OK ||
        votequorum_fd_get(m->vq, &m->vq_fd) != CS_OK) {
        votequorum_finalize(m->vq);
        cpg_finalize(m->cpg);
        return -ENOTCONN;
    }
    qb_loop_poll_add(m->loop, QB_LOOP_HIGH, m->cpg_fd, POLLIN | POLLERR | POLLHUP, m, cpg_ready);
    qb_loop_poll_add(m->loop, QB_LOOP_HIGH, m->vq_fd, POLLIN | POLLERR | POLLHUP, m, vq_ready);
    m->connected = true;
    qb_log(LOG_INFO, "connected to corosync as node %u, group %s", m->local, m->group);
    return 0;
}

static void disconnect(struct membership *m, const char *why)
{
    if (!m->connected)
        return;
    qb_log(LOG_WARNING, "%s: treating this host as not quorate; reconnecting", why);
    qb_loop_poll_del(m->loop, m->cpg_fd);
    qb_loop_poll_del(m->loop, m->vq_fd);
    cpg_finalize(m->cpg);
    votequorum_finalize(m->vq);
    m->connected = false;
    m->quorate = false;
    m->nmembers = 0;
    report(m);
    schedule_retry(m);
}

static void retry(void *data)
{
    struct membership *m = data;
    if (!m->connected && connect_all(m) < 0)
        schedule_retry(m);
}

struct membership *membership_start(qb_loop_t *loop, const char *group, membership_fn fn, void *ctx)
{
    struct membership *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->loop = loop;
    m->fn = fn;
    m->ctx = ctx;
    snprintf(m->group, sizeof m->group, "%s", group);
    if (connect_all(m) < 0) {
        qb_log(LOG_WARNING, "corosync is not reachable yet; retrying every second");
        schedule_retry(m);
    }
    return m;
}

void membership_stop(struct membership *m)
{
    if (!m)
        return;
    if (m->connected) {
        qb_loop_poll_del(m->loop, m->cpg_fd);
        qb_loop_poll_del(m->loop, m->vq_fd);
        cpg_finalize(m->cpg);
        votequorum_finalize(m->vq);
    }
    qb_loop_timer_del(m->loop, m->retry);
    free(m);
}

uint32_t membership_local_nodeid(const struct membership *m) { return m->connected ? m->local : 0; }
