/* vigild's own messages on the pool's CPG group (beside the replica's):
 * commands forwarded to the master, its answers, and host sizes.  Pure
 * encoders and decoders; the decoders trust nothing (tests/fuzz/fuzz_dwire.c).
 *
 *   every message   the replica's 8-byte header (magic "VG", version, type, length)
 *   DREQ  (16)      u32 origin node id, u64 request id, u32 uid, u32 flags, u32 argc,
 *                   then argc NUL-terminated words filling the rest exactly
 *   DREP  (17)      u32 origin node id, u64 request id, i32 exit code (0..3), text, NUL
 *   DFACTS (18)     u32 node id, u64 memory in MiB, u32 CPUs (1..65536)
 *   DORDER (19)     the master to one host's VM agent: u32 host index, u64 the master's
 *                   epoch, u64 operation id, u8 kind (0 start, 1 stop, 2 migrate, 3 list),
 *                   i32 destination host index (migrate; else -1), VM name, NUL (list: "")
 *   DREPORT (20)    a host's agent to every core: u32 host index, u8 flags (1: the list is
 *                   the host's complete inventory), u32 count (0..DWIRE_MAX_REPORTS), then
 *                   count x {u8 state (enum ha_vm_obs), i32 destination or -1, u64 the last
 *                   operation id applied to it, VM name, NUL}
 *   DFAILED (21)    a host's agent to every core: u32 host index, u64 operation id, VM name,
 *                   NUL, reason, NUL
 * Integers are little-endian.  Host indices and VM names are those of the
 * pool database; the receiver judges them against its own copy. */
#ifndef VIGIL_DWIRE_H
#define VIGIL_DWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    WIRE_DREQ = 16,
    WIRE_DREP = 17,
    WIRE_DFACTS = 18,
    WIRE_DORDER = 19,
    WIRE_DREPORT = 20,
    WIRE_DFAILED = 21,
};

#define DWIRE_MAX_ARGS 64
#define DWIRE_MAX_TEXT 60000
#define DWIRE_MAX_REPORTS 4096
#define DWIRE_WHY_MAX 255 /* bytes of a failure reason */

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

enum dorder_kind { DORDER_START, DORDER_STOP, DORDER_MIGRATE, DORDER_LIST };
struct dorder {
    uint32_t host;
    uint64_t epoch, op;
    enum dorder_kind kind;
    int to;
    const char *vm; /* decoded: points into the message */
};

struct dreport_vm {
    int state; /* enum ha_vm_obs */
    int to;
    uint64_t op;
    const char *vm; /* decoded: points into the message */
};
struct dreport {
    uint32_t host;
    bool complete;
    int n;
    struct dreport_vm *v; /* encode: n entries; decode: the caller's array of DWIRE_MAX_REPORTS */
};

struct dfailed {
    uint32_t host;
    uint64_t op;
    const char *vm, *why; /* decoded: point into the message */
};

/* Encoders return a malloc'ed message and its length in *len, or NULL
 * (out of memory, too many words, text cut to DWIRE_MAX_TEXT). */
uint8_t *dreq_encode(const struct dreq *r, size_t *len);
uint8_t *drep_encode(const struct drep *r, size_t *len);
void dfacts_encode(const struct dfacts *f, uint8_t out[24]);
/* NULL also for a name or reason too long (names: HA_NAME_MAX - 1 bytes;
 * reasons are cut to DWIRE_WHY_MAX), or more than DWIRE_MAX_REPORTS entries */
uint8_t *dorder_encode(const struct dorder *o, size_t *len);
uint8_t *dreport_encode(const struct dreport *r, size_t *len);
uint8_t *dfailed_encode(const struct dfailed *f, size_t *len);

/* Decoders: 0, or -EINVAL when the message is not exactly one well-formed
 * message of that type (header included). */
int dreq_decode(const void *msg, size_t len, struct dreq *out);
int drep_decode(const void *msg, size_t len, struct drep *out);
int dfacts_decode(const void *msg, size_t len, struct dfacts *out);
/* Names must be valid pool names (ha_name_valid; "" only for a list order),
 * kinds and states known; out->v must hold DWIRE_MAX_REPORTS entries. */
int dorder_decode(const void *msg, size_t len, struct dorder *out);
int dreport_decode(const void *msg, size_t len, struct dreport *out);
int dfailed_decode(const void *msg, size_t len, struct dfailed *out);

#endif
