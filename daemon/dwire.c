#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../ha/bytes.h"
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
