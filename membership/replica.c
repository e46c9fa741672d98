/* The replicated pool database: sync rounds, ordered changes, acks.  See
 * replica.h for the protocol. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h> /* level numbers only: replica.c does no I/O */

#include "../ha/bytes.h"
#include "pooldb.h"
#include "replica.h"


struct pending {
    uint64_t tag;
    uint64_t version; /* 0: sent, not delivered yet */
    uint64_t seq;     /* our send sequence, matched on delivery */
    ha_hostset pool;  /* the hosts joined both before and after the change: a
                       * majority of these must hold it.  Any later majority
                       * of the pool, old or new, meets that one. */
};

struct queued {
    struct ha_change c; /* its domain XML, if any, is xml below */
    char *xml;          /* owned copy of c.xml */
    uint64_t tag;
};

struct replica {
    struct ha_db *db;
    uint32_t self;
    struct replica_ops ops;
    uint32_t members[HA_MAX_HOSTS];
    size_t nmembers;
    uint64_t view;     /* digest of the member list: names the sync round */
    bool in_view;      /* a configuration change has been seen */
    bool complete;     /* the sync round of this view completed */
    bool got_state[HA_MAX_HOSTS];
    uint64_t st_epoch[HA_MAX_HOSTS], st_version[HA_MAX_HOSTS], st_digest[HA_MAX_HOSTS];
    uint64_t acked[HA_MAX_HOSTS]; /* per member slot: highest version acknowledged */
    uint64_t send_seq; /* proposals sent: the next one is send_seq + 1 on the wire */
    struct pending *pend;
    size_t npend, cappend;
    struct queued *queue;
    size_t nqueue, capqueue;
};

/* ------------------------------------------------------------ wire */



static void put_hdr(uint8_t *p, int type, size_t len)
{
    p[0] = VIGIL_WIRE_MAGIC & 0xff;
    p[1] = VIGIL_WIRE_MAGIC >> 8;
    p[2] = VIGIL_WIRE_VERSION;
    p[3] = (uint8_t)type;
    for (int i = 0; i < 4; i++)
        p[4 + i] = (uint8_t)(len >> (8 * i));
}

#define HDR 8

int vigil_wire_check(const void *msg, size_t len, char *err, size_t errlen)
{
    const uint8_t *p = msg;
    if (len < HDR) {
        snprintf(err, errlen, "message of %zu bytes is shorter than its header", len);
        return -EINVAL;
    }
    if ((p[0] | p[1] << 8) != VIGIL_WIRE_MAGIC) {
        snprintf(err, errlen, "not a vigil message (bad magic)");
        return -EINVAL;
    }
    if (p[2] != VIGIL_WIRE_VERSION) {
        snprintf(err, errlen, "vigil message format %u, this vigild speaks %u", p[2], VIGIL_WIRE_VERSION);
        return -EINVAL;
    }
    uint32_t l = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    if (l != len || l > VIGIL_WIRE_MAX) {
        snprintf(err, errlen, "message length field %u does not match its %zu bytes", l, len);
        return -EINVAL;
    }
    if (p[3] == 0) {
        snprintf(err, errlen, "message type 0");
        return -EINVAL;
    }
    return p[3];
}

/* ------------------------------------------------------------ helpers */

static int slot_of(const struct replica *r, uint32_t nodeid)
{
    for (size_t i = 0; i < r->nmembers; i++)
        if (r->members[i] == nodeid)
            return (int)i;
    return -1;
}

static int host_of(const struct replica *r, uint32_t nodeid)
{
    for (int h = 0; h < r->db->nhosts; h++)
        if (r->db->host[h].nodeid == nodeid && r->db->host[h].joined)
            return h;
    return HA_NO_HOST;
}

ha_hostset replica_view(const struct replica *r)
{
    ha_hostset s = 0;
    for (size_t i = 0; i < r->nmembers; i++) {
        int h = host_of(r, r->members[i]);
        if (h >= 0)
            s |= HA_BIT(h);
    }
    return s;
}

static void finish(struct replica *r, size_t i, int status, const char *why)
{
    uint64_t tag = r->pend[i].tag;
    r->pend[i] = r->pend[--r->npend];
    if (r->ops.done)
        r->ops.done(r->ops.ctx, tag, status, why);
}

void replica_abort(struct replica *r, const char *why)
{
    while (r->npend)
        finish(r, r->npend - 1, -EAGAIN, why);
    while (r->nqueue) {
        r->nqueue--;
        free(r->queue[r->nqueue].xml);
        r->queue[r->nqueue].xml = NULL;
        if (r->queue[r->nqueue].tag && r->ops.done)
            r->ops.done(r->ops.ctx, r->queue[r->nqueue].tag, -EAGAIN, why);
    }
}

/* Done when every member of the view acknowledged the version. */
static void check_pending(struct replica *r)
{
    for (size_t i = 0; i < r->npend;) {
        /* a minority's copy may be overwritten when the partitions merge:
         * only a majority of the pool makes a change safe to report */
        ha_hostset pool = r->pend[i].pool;
        bool all = r->pend[i].version != 0 && r->complete &&
                   2 * ha_popcount(replica_view(r) & pool) > ha_popcount(pool);
        for (size_t k = 0; all && k < r->nmembers; k++)
            all = r->acked[k] >= r->pend[i].version;
        if (all)
            finish(r, i, 0, "");
        else
            i++;
    }
}

static void send_msg(struct replica *r, const uint8_t *m, size_t len)
{
    int e = r->ops.send(r->ops.ctx, m, len);
    if (e < 0 && r->ops.log)
        r->ops.log(r->ops.ctx, LOG_WARNING, "cannot send a pool database message (type %u): %s", m[3], strerror(-e));
}

static void send_ack(struct replica *r)
{
    uint8_t m[HDR + 16];
    put_hdr(m, WIRE_ACK, sizeof m);
    le_put64(m + HDR, r->db->master_epoch);
    le_put64(m + HDR + 8, r->db->version);
    send_msg(r, m, sizeof m);
}

static int send_change(struct replica *r, const struct ha_change *c, uint64_t tag)
{
    uint8_t *m = malloc(HDR + 16 + POOLDB_CHANGE_MAX);
    if (!m)
        return -ENOMEM;
    int n = pooldb_encode_change(c, m + HDR + 16, POOLDB_CHANGE_MAX);
    if (n < 0) {
        free(m);
        return n;
    }
    size_t len = HDR + 16 + (size_t)n;
    put_hdr(m, WIRE_CHANGE, len);
    /* our own number for this proposal: its delivery is matched by it, so a
     * message lost on the way (corosync died) shifts nothing */
    le_put64(m + HDR, r->send_seq + 1);
    le_put64(m + HDR + 8, r->db->version);
    if (tag) {
        if (r->npend == r->cappend) {
            size_t cap = r->cappend ? r->cappend * 2 : 8;
            struct pending *np = realloc(r->pend, cap * sizeof *np);
            if (!np) {
                free(m);
                return -ENOMEM;
            }
            r->pend = np;
            r->cappend = cap;
        }
        r->pend[r->npend++] = (struct pending){.tag = tag, .seq = r->send_seq + 1};
    }
    int e = r->ops.send(r->ops.ctx, m, len);
    free(m);
    if (e < 0) {
        if (tag)
            r->npend--;
        return e;
    }
    r->send_seq++;
    return 0;
}

static void complete_round(struct replica *r)
{
    r->complete = true;
    send_ack(r);
    /* proposals made while the round ran go out now, in order, before
     * anything the synced callback proposes */
    size_t n = r->nqueue;
    struct queued *q = r->queue;
    r->queue = NULL;
    r->nqueue = r->capqueue = 0;
    for (size_t i = 0; i < n; i++) {
        int e = send_change(r, &q[i].c, q[i].tag);
        if (e < 0 && q[i].tag && r->ops.done)
            r->ops.done(r->ops.ctx, q[i].tag, e, "cannot send the change to the pool");
        free(q[i].xml);
    }
    free(q);
    if (r->ops.synced)
        r->ops.synced(r->ops.ctx);
}

/* ------------------------------------------------------------ API */

struct replica *replica_new(struct ha_db *db, uint32_t self, const struct replica_ops *ops)
{
    struct replica *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->db = db;
    r->self = self;
    r->ops = *ops;
    return r;
}

void replica_free(struct replica *r)
{
    if (!r)
        return;
    free(r->pend);
    for (size_t i = 0; i < r->nqueue; i++)
        free(r->queue[i].xml);
    free(r->queue);
    free(r);
}

bool replica_synced(const struct replica *r) { return r->in_view && r->complete; }

void replica_confchg(struct replica *r, const uint32_t *members, size_t n, uint64_t ring)
{
    r->nmembers = 0;
    for (size_t i = 0; i < n && r->nmembers < HA_MAX_HOSTS; i++)
        if (slot_of(r, members[i]) < 0)
            r->members[r->nmembers++] = members[i];
    /* sorted, so every member computes the same view id */
    for (size_t i = 1; i < r->nmembers; i++)
        for (size_t k = i; k > 0 && r->members[k - 1] > r->members[k]; k--) {
            uint32_t t = r->members[k];
            r->members[k] = r->members[k - 1];
            r->members[k - 1] = t;
        }
    uint64_t v = 1469598103934665603ull;
    for (size_t i = 0; i < r->nmembers; i++)
        v = (v ^ r->members[i]) * 1099511628211ull;
    r->view = v ^ (ring * 0x9e3779b97f4a7c15ull); /* same members in a later ring: a new round */
    /* Acknowledgements count only within one view: a version number from
     * before a state transfer may name another history.  Every member
     * acknowledges again when the round completes. */
    memset(r->acked, 0, sizeof r->acked);
    memset(r->got_state, 0, sizeof r->got_state);
    r->in_view = true;
    r->complete = false;

    uint8_t m[HDR + 32];
    put_hdr(m, WIRE_STATE, sizeof m);
    le_put64(m + HDR, r->view);
    le_put64(m + HDR + 8, r->db->master_epoch);
    le_put64(m + HDR + 16, r->db->version);
    le_put64(m + HDR + 24, pooldb_digest(r->db->master_epoch, r->db));
    send_msg(r, m, sizeof m);
}

static bool better(uint64_t e1, uint64_t v1, uint32_t n1, uint64_t e2, uint64_t v2, uint32_t n2)
{
    if (e1 != e2)
        return e1 > e2;
    if (v1 != v2)
        return v1 > v2;
    return n1 < n2;
}

static void on_state(struct replica *r, uint32_t sender, const uint8_t *p, size_t len)
{
    int s = slot_of(r, sender);
    if (len != 32 || s < 0 || le_get64(p) != r->view || r->complete)
        return; /* from another round */
    r->got_state[s] = true;
    r->st_epoch[s] = le_get64(p + 8);
    r->st_version[s] = le_get64(p + 16);
    r->st_digest[s] = le_get64(p + 24);
    for (size_t i = 0; i < r->nmembers; i++)
        if (!r->got_state[i])
            return;
    size_t best = 0;
    bool same = true;
    for (size_t i = 1; i < r->nmembers; i++) {
        same &= r->st_epoch[i] == r->st_epoch[0] && r->st_version[i] == r->st_version[0] &&
                r->st_digest[i] == r->st_digest[0];
        if (better(r->st_epoch[i], r->st_version[i], r->members[i], r->st_epoch[best], r->st_version[best],
                   r->members[best]))
            best = i;
    }
    if (same) {
        complete_round(r);
        return;
    }
    if (r->members[best] != r->self)
        return; /* wait for its snapshot */
    uint8_t *snap = NULL;
    size_t slen = 0;
    if (pooldb_encode_snapshot(r->db->master_epoch, r->db, &snap, &slen) < 0 || HDR + 8 + slen > VIGIL_WIRE_MAX) {
        free(snap);
        if (r->ops.log)
            r->ops.log(r->ops.ctx, LOG_ERR, "cannot encode the pool database for state transfer");
        return;
    }
    uint8_t *m = malloc(HDR + 8 + slen);
    if (m) {
        put_hdr(m, WIRE_SNAP, HDR + 8 + slen);
        le_put64(m + HDR, r->view);
        memcpy(m + HDR + 8, snap, slen);
        send_msg(r, m, HDR + 8 + slen);
    }
    free(m);
    free(snap);
}

static void on_snap(struct replica *r, uint32_t sender, const uint8_t *p, size_t len)
{
    if (len < 8 || le_get64(p) != r->view || r->complete || slot_of(r, sender) < 0)
        return;
    uint64_t epoch = 0;
    struct ha_db nd;
    char err[256];
    if (pooldb_decode_snapshot(p + 8, len - 8, &epoch, &nd, err, sizeof err) < 0) {
        if (r->ops.log)
            r->ops.log(r->ops.ctx, LOG_ERR, "state transfer from node %u rejected: %s", sender, err);
        return; /* stays unsynced; the next configuration change retries */
    }
    if (pooldb_digest(nd.master_epoch, &nd) != pooldb_digest(r->db->master_epoch, r->db)) {
        if (r->ops.persist_state && r->ops.persist_state(r->ops.ctx, &nd) < 0) {
            ha_db_free(&nd);
            if (r->ops.log)
                r->ops.log(r->ops.ctx, LOG_ERR, "cannot store the transferred pool database: staying out of sync");
            return;
        }
        if (r->ops.log)
            r->ops.log(r->ops.ctx, LOG_NOTICE,
                       "pool database replaced by node %u's copy (epoch %llu, version %llu; ours was %llu, %llu)", sender,
                       (unsigned long long)nd.master_epoch, (unsigned long long)nd.version,
                       (unsigned long long)r->db->master_epoch, (unsigned long long)r->db->version);
        ha_db_free(r->db);
        *r->db = nd;
        /* what we proposed and nobody kept is gone */
        while (r->npend)
            finish(r, r->npend - 1, -EAGAIN, "the pool membership changed during the commit and the change was not kept");
    } else {
        ha_db_free(&nd);
    }
    complete_round(r);
}

static void on_change(struct replica *r, uint32_t sender, const uint8_t *p, size_t len)
{
    bool mine = sender == r->self;
    uint64_t seq = mine && len >= 8 ? le_get64(p) : 0;
    size_t pi = r->npend;
    if (mine)
        for (size_t i = 0; i < r->npend; i++)
            if (r->pend[i].seq == seq)
                pi = i;
    const char *why = NULL;
    struct ha_change c;
    char err[256];
    int host = host_of(r, sender);
    if (len < 16)
        why = "malformed change message";
    else if (!r->complete)
        why = "the pool membership changed during the commit; nothing was changed";
    else if (pooldb_decode_change(p + 16, len - 16, &c, err, sizeof err) < 0)
        why = "malformed change";
    else if (host < 0 || !ha_change_allowed(r->db, host, replica_view(r), &c))
        why = "only the master changes the pool database (the master moved)";
    ha_hostset pool_before = ha_db_joined(r->db);
    if (!why) {
        struct ha_db before;
        if (ha_db_copy(&before, r->db) < 0)
            why = "out of memory";
        else if (ha_db_apply(r->db, &c) < 0) {
            why = "the change does not apply to the pool database";
            ha_db_free(&before);
        } else if (r->ops.persist_change && r->ops.persist_change(r->ops.ctx, r->db, &c) < 0) {
            /* never acknowledge what is not on disk: undo it here */
            ha_db_free(r->db);
            *r->db = before;
            why = "a member could not store the change";
            if (r->ops.log)
                r->ops.log(r->ops.ctx, LOG_ERR, "cannot store a pool database change: not acknowledging it");
            if (pi < r->npend)
                finish(r, pi, -EIO, why);
            return;
        } else {
            ha_db_free(&before);
        }
    }
    if (why) {
        if (r->ops.log && !mine && r->complete)
            r->ops.log(r->ops.ctx, LOG_INFO, "dropped a change from node %u: %s", sender, why);
        /* -ESTALE: every member dropped it alike, so proposing it again is safe */
        if (pi < r->npend)
            finish(r, pi, r->complete ? -EPERM : -ESTALE, why);
        return;
    }
    if (r->ops.applied)
        r->ops.applied(r->ops.ctx, host, &c);
    if (pi < r->npend) {
        r->pend[pi].version = r->db->version;
        /* the hosts in the pool both before and after: a host being added
         * has no copy yet, a host being removed will not count any more */
        r->pend[pi].pool = pool_before & ha_db_joined(r->db);
    }
    send_ack(r);
    check_pending(r);
}

static void on_ack(struct replica *r, uint32_t sender, const uint8_t *p, size_t len)
{
    int s = slot_of(r, sender);
    if (len != 16 || s < 0)
        return;
    if (le_get64(p) == r->db->master_epoch && le_get64(p + 8) > r->acked[s])
        r->acked[s] = le_get64(p + 8);
    check_pending(r);
}

void replica_deliver(struct replica *r, uint32_t sender, const void *msg, size_t len)
{
    char err[128];
    int t = vigil_wire_check(msg, len, err, sizeof err);
    if (t < 0) {
        if (r->ops.log)
            r->ops.log(r->ops.ctx, LOG_WARNING, "ignored a message from node %u: %s", sender, err);
        return;
    }
    const uint8_t *p = (const uint8_t *)msg + HDR;
    len -= HDR;
    switch (t) {
    case WIRE_STATE:
        on_state(r, sender, p, len);
        break;
    case WIRE_SNAP:
        on_snap(r, sender, p, len);
        break;
    case WIRE_CHANGE:
        on_change(r, sender, p, len);
        break;
    case WIRE_ACK:
        on_ack(r, sender, p, len);
        break;
    default:
        break;
    }
}

int replica_propose(struct replica *r, const struct ha_change *c, uint64_t tag)
{
    if (r->in_view && r->complete)
        return send_change(r, c, tag);
    if (r->nqueue == r->capqueue) {
        size_t cap = r->capqueue ? r->capqueue * 2 : 8;
        struct queued *nq = realloc(r->queue, cap * sizeof *nq);
        if (!nq)
            return -ENOMEM;
        r->queue = nq;
        r->capqueue = cap;
    }
    /* the change's domain XML is borrowed: the queue keeps its own copy */
    char *xml = NULL;
    if (c->xml && c->xml_len) {
        if (!(xml = malloc(c->xml_len)))
            return -ENOMEM;
        memcpy(xml, c->xml, c->xml_len);
    }
    r->queue[r->nqueue] = (struct queued){.c = *c, .xml = xml, .tag = tag};
    r->queue[r->nqueue++].c.xml = xml;
    return 0;
}
