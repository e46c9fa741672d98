#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ha/bytes.h"
#include "../ha/ha.h"
#include "../membership/replica.h"
#include "dwire.h"


static void put_hdr(uint8_t *m, int type, size_t len)
{
    m[0] = VIGIL_WIRE_MAGIC & 0xff;
    m[1] = VIGIL_WIRE_MAGIC >> 8;
    m[2] = VIGIL_WIRE_VERSION;
    m[3] = (uint8_t)type;
    le_put32(m + 4, (uint32_t)len);
}

static int check_hdr(const uint8_t *m, size_t len, int type)
{
    if (len < 8 || m[0] != (VIGIL_WIRE_MAGIC & 0xff) || m[1] != VIGIL_WIRE_MAGIC >> 8 || m[2] != VIGIL_WIRE_VERSION ||
        m[3] != type || le_get32(m + 4) != len)
        return -EINVAL;
    return 0;
}

#define DREQ_FIXED (8 + 4 + 8 + 4 + 4 + 4)
#define DREP_FIXED (8 + 4 + 8 + 4)

uint8_t *dreq_encode(const struct dreq *r, size_t *len)
{
    if (r->argc < 1 || r->argc > DWIRE_MAX_ARGS)
        return NULL;
    size_t n = DREQ_FIXED;
    for (int i = 0; i < r->argc; i++)
        n += strlen(r->argv[i]) + 1;
    if (n > VIGIL_WIRE_MAX)
        return NULL;
    uint8_t *m = malloc(n);
    if (!m)
        return NULL;
    put_hdr(m, WIRE_DREQ, n);
    le_put32(m + 8, r->origin);
    le_put64(m + 12, r->id);
    le_put32(m + 20, r->uid);
    le_put32(m + 24, r->flags);
    le_put32(m + 28, (uint32_t)r->argc);
    size_t off = DREQ_FIXED;
    for (int i = 0; i < r->argc; i++) {
        size_t l = strlen(r->argv[i]) + 1;
        memcpy(m + off, r->argv[i], l);
        off += l;
    }
    *len = n;
    return m;
}

int dreq_decode(const void *msg, size_t len, struct dreq *out)
{
    const uint8_t *m = msg;
    if (check_hdr(m, len, WIRE_DREQ) < 0 || len < DREQ_FIXED + 1 || m[len - 1])
        return -EINVAL;
    uint32_t argc = le_get32(m + 28);
    if (argc < 1 || argc > DWIRE_MAX_ARGS)
        return -EINVAL;
    struct dreq r = {.origin = le_get32(m + 8), .id = le_get64(m + 12), .uid = le_get32(m + 20), .flags = le_get32(m + 24)};
    const char *s = (const char *)m + DREQ_FIXED, *end = (const char *)m + len;
    while (s < end && r.argc < (int)argc) {
        r.argv[r.argc++] = s;
        s += strlen(s) + 1; /* stays within: the message ends with a NUL */
    }
    if (r.argc != (int)argc || s != end)
        return -EINVAL;
    r.argv[r.argc] = NULL;
    *out = r;
    return 0;
}

uint8_t *drep_encode(const struct drep *r, size_t *len)
{
    size_t tl = strlen(r->text);
    if (tl > DWIRE_MAX_TEXT)
        tl = DWIRE_MAX_TEXT;
    size_t n = DREP_FIXED + tl + 1;
    uint8_t *m = malloc(n);
    if (!m)
        return NULL;
    put_hdr(m, WIRE_DREP, n);
    le_put32(m + 8, r->origin);
    le_put64(m + 12, r->id);
    le_put32(m + 20, (uint32_t)(r->code >= 0 && r->code <= 3 ? r->code : 1));
    memcpy(m + DREP_FIXED, r->text, tl);
    m[n - 1] = 0;
    *len = n;
    return m;
}

int drep_decode(const void *msg, size_t len, struct drep *out)
{
    const uint8_t *m = msg;
    if (check_hdr(m, len, WIRE_DREP) < 0 || len < DREP_FIXED + 1 || m[len - 1] ||
        memchr(m + DREP_FIXED, 0, len - DREP_FIXED) != m + len - 1 || len - DREP_FIXED - 1 > DWIRE_MAX_TEXT)
        return -EINVAL;
    uint32_t code = le_get32(m + 20);
    if (code > 3)
        return -EINVAL;
    *out = (struct drep){.origin = le_get32(m + 8), .id = le_get64(m + 12), .code = (int)code,
                         .text = (const char *)m + DREP_FIXED};
    return 0;
}

void dfacts_encode(const struct dfacts *f, uint8_t out[24])
{
    put_hdr(out, WIRE_DFACTS, 24);
    le_put32(out + 8, f->nodeid);
    le_put64(out + 12, f->mem_mb);
    le_put32(out + 20, f->cpus);
}

int dfacts_decode(const void *msg, size_t len, struct dfacts *out)
{
    const uint8_t *m = msg;
    if (check_hdr(m, len, WIRE_DFACTS) < 0 || len != 24)
        return -EINVAL;
    struct dfacts f = {.nodeid = le_get32(m + 8), .mem_mb = le_get64(m + 12), .cpus = le_get32(m + 20)};
    if (!f.nodeid || f.cpus < 1 || f.cpus > 65536)
        return -EINVAL;
    *out = f;
    return 0;
}

/* ---------------------------------------------------------------- the VM agent's messages */

/* A growing message: header space first, fields appended; NULL-safe. */
struct msg {
    uint8_t *p;
    size_t n, cap;
    bool bad;
};

static void m_put(struct msg *m, const void *src, size_t k)
{
    if (m->bad)
        return;
    if (m->n + k > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        while (cap < m->n + k)
            cap *= 2;
        uint8_t *np = cap <= VIGIL_WIRE_MAX ? realloc(m->p, cap) : NULL;
        if (!np) {
            m->bad = true;
            return;
        }
        m->p = np;
        m->cap = cap;
    }
    memcpy(m->p + m->n, src, k);
    m->n += k;
}

static void m_u8(struct msg *m, unsigned v)
{
    uint8_t b = (uint8_t)v;
    m_put(m, &b, 1);
}

static void m_u32(struct msg *m, uint32_t v)
{
    uint8_t b[4];
    le_put32(b, v);
    m_put(m, b, 4);
}

static void m_u64(struct msg *m, uint64_t v)
{
    uint8_t b[8];
    le_put64(b, v);
    m_put(m, b, 8);
}

/* a string and its NUL; max: its longest length */
static void m_str(struct msg *m, const char *s, size_t max)
{
    size_t l = strlen(s);
    if (l > max)
        m->bad = true;
    m_put(m, s, l + 1);
}

static uint8_t *m_finish(struct msg *m, int type, size_t *len)
{
    if (m->bad || m->n > VIGIL_WIRE_MAX) {
        free(m->p);
        return NULL;
    }
    put_hdr(m->p, type, m->n);
    *len = m->n;
    return m->p;
}

static void m_start(struct msg *m)
{
    static const uint8_t zero[8];
    m_put(m, zero, sizeof zero); /* the header, written at the end */
}

/* A reader over one message; the first problem makes every later read fail. */
struct rdr {
    const uint8_t *p;
    size_t n, off;
    bool bad;
};

static const uint8_t *r_take(struct rdr *r, size_t k)
{
    if (r->bad || k > r->n - r->off) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += k;
    return q;
}

static uint8_t r_u8(struct rdr *r)
{
    const uint8_t *q = r_take(r, 1);
    return q ? q[0] : 0;
}

static uint32_t r_u32(struct rdr *r)
{
    const uint8_t *q = r_take(r, 4);
    return q ? le_get32(q) : 0;
}

static uint64_t r_u64(struct rdr *r)
{
    const uint8_t *q = r_take(r, 8);
    return q ? le_get64(q) : 0;
}

static int r_i32(struct rdr *r)
{
    uint32_t u = r_u32(r);
    return u <= INT32_MAX ? (int)u : -(int)(~u) - 1;
}

/* a NUL-terminated string of at most max bytes, within the message */
static const char *r_str(struct rdr *r, size_t max)
{
    if (r->bad)
        return NULL;
    const uint8_t *z = memchr(r->p + r->off, 0, r->n - r->off);
    if (!z || (size_t)(z - (r->p + r->off)) > max) {
        r->bad = true;
        return NULL;
    }
    const char *s = (const char *)r->p + r->off;
    r->off = (size_t)(z - r->p) + 1;
    return s;
}

static bool host_ok(int h) { return h >= 0 && h < HA_MAX_HOSTS; }

uint8_t *dorder_encode(const struct dorder *o, size_t *len)
{
    struct msg m = {0};
    if ((unsigned)o->kind > DORDER_LIST || !host_ok((int)o->host))
        return NULL;
    m_start(&m);
    m_u32(&m, o->host);
    m_u64(&m, o->epoch);
    m_u64(&m, o->op);
    m_u8(&m, (unsigned)o->kind);
    m_u32(&m, (uint32_t)o->to);
    m_str(&m, o->vm, HA_NAME_MAX - 1);
    return m_finish(&m, WIRE_DORDER, len);
}

int dorder_decode(const void *msg, size_t len, struct dorder *out)
{
    if (check_hdr(msg, len, WIRE_DORDER) < 0)
        return -EINVAL;
    struct rdr r = {.p = msg, .n = len, .off = 8};
    struct dorder o = {0}; /* one read a statement: the reader's order is the wire's */
    o.host = r_u32(&r);
    o.epoch = r_u64(&r);
    o.op = r_u64(&r);
    unsigned kind = r_u8(&r);
    o.kind = (enum dorder_kind)kind;
    o.to = r_i32(&r);
    o.vm = r_str(&r, HA_NAME_MAX - 1);
    if (r.bad || r.off != len || kind > DORDER_LIST || !host_ok((int)o.host) ||
        (o.kind == DORDER_MIGRATE ? !host_ok(o.to) || o.to == (int)o.host : o.to != -1) ||
        (o.kind == DORDER_LIST ? o.vm[0] != 0 : !ha_name_valid(o.vm)))
        return -EINVAL;
    *out = o;
    return 0;
}

uint8_t *dreport_encode(const struct dreport *rp, size_t *len)
{
    if (rp->n < 0 || rp->n > DWIRE_MAX_REPORTS || !host_ok((int)rp->host))
        return NULL;
    struct msg m = {0};
    m_start(&m);
    m_u32(&m, rp->host);
    m_u8(&m, rp->complete ? 1 : 0);
    m_u32(&m, (uint32_t)rp->n);
    for (int i = 0; i < rp->n; i++) {
        m_u8(&m, (unsigned)rp->v[i].state);
        m_u32(&m, (uint32_t)rp->v[i].to);
        m_u64(&m, rp->v[i].op);
        m_str(&m, rp->v[i].vm, HA_NAME_MAX - 1);
    }
    return m_finish(&m, WIRE_DREPORT, len);
}

int dreport_decode(const void *msg, size_t len, struct dreport *out)
{
    if (check_hdr(msg, len, WIRE_DREPORT) < 0)
        return -EINVAL;
    struct rdr r = {.p = msg, .n = len, .off = 8};
    uint32_t host = r_u32(&r);
    unsigned flags = r_u8(&r);
    uint32_t n = r_u32(&r);
    if (r.bad || flags > 1 || n > DWIRE_MAX_REPORTS || !host_ok((int)host))
        return -EINVAL;
    for (uint32_t i = 0; i < n; i++) {
        struct dreport_vm *v = &out->v[i];
        v->state = r_u8(&r);
        v->to = r_i32(&r);
        v->op = r_u64(&r);
        v->vm = r_str(&r, HA_NAME_MAX - 1);
        if (r.bad || v->state > HA_OBS_CRASHED || !ha_name_valid(v->vm) ||
            (v->state == HA_OBS_MIGRATING ? !host_ok(v->to) : v->to != -1))
            return -EINVAL;
    }
    if (r.off != len)
        return -EINVAL;
    out->host = host;
    out->complete = flags == 1;
    out->n = (int)n;
    return 0;
}

uint8_t *dfailed_encode(const struct dfailed *f, size_t *len)
{
    if (!host_ok((int)f->host))
        return NULL;
    char why[DWIRE_WHY_MAX + 1];
    snprintf(why, sizeof why, "%s", f->why);
    struct msg m = {0};
    m_start(&m);
    m_u32(&m, f->host);
    m_u64(&m, f->op);
    m_str(&m, f->vm, HA_NAME_MAX - 1);
    m_str(&m, why, DWIRE_WHY_MAX);
    return m_finish(&m, WIRE_DFAILED, len);
}

int dfailed_decode(const void *msg, size_t len, struct dfailed *out)
{
    if (check_hdr(msg, len, WIRE_DFAILED) < 0)
        return -EINVAL;
    struct rdr r = {.p = msg, .n = len, .off = 8};
    struct dfailed f = {0};
    f.host = r_u32(&r);
    f.op = r_u64(&r);
    f.vm = r_str(&r, HA_NAME_MAX - 1);
    f.why = r_str(&r, DWIRE_WHY_MAX);
    if (r.bad || r.off != len || !host_ok((int)f.host) || !ha_name_valid(f.vm))
        return -EINVAL;
    *out = f;
    return 0;
}
