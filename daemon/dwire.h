/* vigild's own messages on the pool's CPG group (beside the replica's):
 * commands forwarded to the master, its answers, and host sizes.  Pure
 * encoders and decoders; the decoders trust nothing (tests/fuzz/fuzz_dwire.c).
 *
 *   every message   the replica's 8-byte header (magic "VG", version, type, length)
 *   DREQ  (16)      u32 origin node id, u64 request id, u32 uid, u32 flags, u32 argc,
 *                   then argc NUL-terminated words filling the rest exactly
 *   DREP  (17)      u32 origin node id, u64 request id, i32 exit code (0..3), text, NUL
 *   DFACTS (18)     u32 node id, u64 memory in MiB, u32 CPUs (1..65536)
 * Integers are little-endian. */
#ifndef VIGIL_DWIRE_H
#define VIGIL_DWIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    WIRE_DREQ = 16,
    WIRE_DREP = 17,
    WIRE_DFACTS = 18,
};

#define DWIRE_MAX_ARGS 64
#define DWIRE_MAX_TEXT 60000

struct dreq {
    uint32_t origin;
    uint64_t id;
    uint32_t uid, flags;
    int argc;
    const char *argv[DWIRE_MAX_ARGS + 1]; /* decoded: point into the message */
};

struct drep {
    uint32_t origin;
    uint64_t id;
    int code;
    const char *text; /* decoded: points into the message */
};

struct dfacts {
    uint32_t nodeid;
    uint64_t mem_mb;
    uint32_t cpus;
};

/* Encoders return a malloc'ed message and its length in *len, or NULL
 * (out of memory, too many words, text cut to DWIRE_MAX_TEXT). */
uint8_t *dreq_encode(const struct dreq *r, size_t *len);
uint8_t *drep_encode(const struct drep *r, size_t *len);
void dfacts_encode(const struct dfacts *f, uint8_t out[24]);

/* Decoders: 0, or -EINVAL when the message is not exactly one well-formed
 * message of that type (header included). */
int dreq_decode(const void *msg, size_t len, struct dreq *out);
int drep_decode(const void *msg, size_t len, struct drep *out);
int dfacts_decode(const void *msg, size_t len, struct dfacts *out);

#endif
