/* CPG + votequorum adapter.  See membership.h. */
#include <errno.h>
#include <stdint.h>
#include <sys/uio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corosync/corotypes.h>
#include <corosync/cpg.h>
#include <corosync/votequorum.h>
#include <qb/qblog.h>

#include "membership.h"

struct outmsg {
    struct outmsg *next;
    size_t len;
    uint8_t data[];
};

struct membership {
    qb_loop_t *loop;
    char group[CPG_MAX_NAME_LENGTH];
    struct membership_ops ops;
    cpg_handle_t cpg;
    votequorum_handle_t vq;
    int cpg_fd, vq_fd;
    bool connected;
    bool quorate;
    uint32_t local;
    qb_loop_timer_handle retry, flush;
    struct outmsg *out, **out_tail; /* waiting for corosync's flow control */
};

static struct membership *of(cpg_handle_t h)
{
    void *ctx = NULL;
    cpg_context_get(h, &ctx);
    return ctx;
}

static void on_confchg(cpg_handle_t h, const struct cpg_name *g, const struct cpg_address *mem, size_t nmem,
                       const struct cpg_address *left, size_t nleft, const struct cpg_address *joined, size_t njoined)
{
    (void)g, (void)left, (void)joined;
    struct membership *m = of(h);
    uint32_t ids[MEMBERSHIP_MAX_NODES], pids[MEMBERSHIP_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < nmem && n < MEMBERSHIP_MAX_NODES; i++) {
        ids[n] = mem[i].nodeid;
        pids[n++] = mem[i].pid;
    }
    qb_log(LOG_INFO, "cpg configuration change: %zu member(s), %zu left, %zu joined", n, nleft, njoined);
    if (m->ops.view)
        m->ops.view(m->ops.ctx, ids, pids, n);
}

static void on_deliver(cpg_handle_t h, const struct cpg_name *g, uint32_t nodeid, uint32_t pid, void *msg, size_t len)
{
    (void)g;
    struct membership *m = of(h);
    if (m->ops.deliver)
        m->ops.deliver(m->ops.ctx, nodeid, pid, msg, len);
}

static void on_quorum(votequorum_handle_t h, uint64_t context, uint32_t quorate, uint32_t n, votequorum_node_t nodes[])
{
    (void)h, (void)n, (void)nodes;
    struct membership *m = (struct membership *)(uintptr_t)context;
    if (m->quorate != (quorate != 0))
        qb_log(LOG_INFO, "votequorum: %s", quorate ? "quorate" : "not quorate");
    m->quorate = quorate != 0;
    if (m->ops.quorum)
        m->ops.quorum(m->ops.ctx, m->quorate);
}

static void disconnect(struct membership *m, const char *why);

static void drop_queue(struct membership *m)
{
    while (m->out) {
        struct outmsg *o = m->out;
        m->out = o->next;
        free(o);
    }
    m->out_tail = &m->out;
}

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
    if (m->ops.connection)
        m->ops.connection(m->ops.ctx, true, m->local);
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
    drop_queue(m);
    if (m->ops.connection)
        m->ops.connection(m->ops.ctx, false, 0);
    schedule_retry(m);
}

static void retry(void *data)
{
    struct membership *m = data;
    if (!m->connected && connect_all(m) < 0)
        schedule_retry(m);
}

struct membership *membership_start(qb_loop_t *loop, const char *group, const struct membership_ops *ops)
{
    struct membership *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->loop = loop;
    m->ops = *ops;
    m->out_tail = &m->out;
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
    qb_loop_timer_del(m->loop, m->flush);
    drop_queue(m);
    free(m);
}

bool membership_connected(const struct membership *m) { return m && m->connected; }

static void flush(void *data);

/* 0 sent, 1 corosync said try again, -errno */
static int send_now(struct membership *m, const void *msg, size_t len)
{
    struct iovec iov = {.iov_base = (void *)(uintptr_t)msg, .iov_len = len};
    cs_error_t e = cpg_mcast_joined(m->cpg, CPG_TYPE_AGREED, &iov, 1);
    if (e == CS_OK)
        return 0;
    if (e == CS_ERR_TRY_AGAIN)
        return 1;
    return e == CS_ERR_TOO_BIG ? -EMSGSIZE : -ENOTCONN;
}

static void flush(void *data)
{
    struct membership *m = data;
    while (m->connected && m->out) {
        int rc = send_now(m, m->out->data, m->out->len);
        if (rc == 1) {
            qb_loop_timer_add(m->loop, QB_LOOP_HIGH, 5ULL * 1000 * 1000, m, flush, &m->flush);
            return;
        }
        if (rc < 0)
            qb_log(LOG_WARNING, "cannot multicast a queued message of %zu bytes: %s", m->out->len, strerror(-rc));
        struct outmsg *o = m->out;
        m->out = o->next;
        if (!m->out)
            m->out_tail = &m->out;
        free(o);
    }
}

int membership_send(struct membership *m, const void *msg, size_t len)
{
    if (!m || !m->connected)
        return -ENOTCONN;
    if (!m->out) { /* nothing waiting: keep the order by sending at once */
        int rc = send_now(m, msg, len);
        if (rc <= 0)
            return rc;
    }
    struct outmsg *o = malloc(sizeof *o + len);
    if (!o)
        return -ENOMEM;
    o->next = NULL;
    o->len = len;
    memcpy(o->data, msg, len);
    *m->out_tail = o;
    m->out_tail = &o->next;
    if (!qb_loop_timer_is_running(m->loop, m->flush))
        qb_loop_timer_add(m->loop, QB_LOOP_HIGH, 5ULL * 1000 * 1000, m, flush, &m->flush);
    return 0;
}

uint32_t membership_local_nodeid(const struct membership *m) { return m && m->connected ? m->local : 0; }
