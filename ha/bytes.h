/* Small helpers shared by every encoder and decoder of the project (the pool
 * database, CPG messages, disk blocks, configuration): little-endian
 * integers and the "fill err, return rc" idiom.  Plain C over libc. */
#ifndef VIGIL_BYTES_H
#define VIGIL_BYTES_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* whether the n bytes at b are all zero (a block never written) */
static inline int all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static inline void le_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void le_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void le_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t le_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t le_get32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t le_get64(const uint8_t *p) { return le_get32(p) | (uint64_t)le_get32(p + 4) << 32; }

/* For functions that return -errno and fill the caller's err buffer:
 *   return errf(err, errlen, -EINVAL, "host %s: ...", name);
 * err may be NULL or errlen 0 (then only rc is returned). */
__attribute__((format(printf, 4, 5))) static inline int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

#endif
