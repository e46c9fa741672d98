/* The heartbeat disk's on-disk format (docs/heartbeat-disk.md) and its
 * bounded, aligned I/O.
 *
 * Every block is one sector (512 or 4096 bytes).  Block 0 is the header,
 * then one slot per host, one mailbox per host and one lease block.  The
 * encoders write exactly one sector; the decoders check every byte and
 * return -EINVAL with a reason in err for anything they refuse.  Pure C over
 * libc and OpenSSL (HMAC-SHA256, SHA-256); the I/O part adds a worker thread
 * per disk so that a hung LUN costs a caller at most its timeout.
 *
 * The daemon does not use this yet: the simulator's in-memory LUN is the
 * only disk the core sees today. */
#ifndef VIGIL_HBDISK_H
#define VIGIL_HBDISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HBDISK_MAGIC 0x42484756u /* "VGHB" on disk */
#define HBDISK_VERSION 1u
#define HBDISK_MAX_HOSTS 64u
#define HBDISK_NONE 0xffffffffu /* no owner / no master */
#define HBDISK_UUID_LEN 16
#define HBDISK_KEY_LEN 32
#define HBDISK_FP_LEN 8
#define HBDISK_MAX_MS 86400000u /* timing settings: at most one day */
#define HBDISK_MAX_EXPIRY 1000000u /* lease expiry: at most this many ticks */

enum hbdisk_kind { HBDISK_HEADER = 1, HBDISK_SLOT = 2, HBDISK_MAILBOX = 3, HBDISK_LEASE = 4 };

/* slot flags; the first three are ha.h's HA_SLOT_* values */
#define HBDISK_F_SELF_FENCED 0x1u
#define HBDISK_F_WATCHDOG 0x2u
#define HBDISK_F_JOINING 0x4u
#define HBDISK_F_FENCED_ACK 0x8u
#define HBDISK_F_ALL 0xfu

/* What every block but the header is checked against. */
struct hbdisk_pool {
    uint8_t uuid[HBDISK_UUID_LEN];
    uint8_t key[HBDISK_KEY_LEN]; /* HMAC-SHA256 key */
    unsigned sector_size;        /* 512 or 4096 */
};

struct hbdisk_header {
    uint8_t uuid[HBDISK_UUID_LEN];
    uint32_t sector_size;     /* 512 or 4096 */
    uint32_t slot_count;      /* 1..64 */
    uint32_t disk_interval_ms; /* 1..HBDISK_MAX_MS */
    uint32_t disk_timeout_ms; /* 2*disk_interval_ms..HBDISK_MAX_MS */
    uint32_t msgwait_ms;      /* 1..HBDISK_MAX_MS */
    uint64_t created;         /* unix seconds, informative */
    uint8_t key_fp[HBDISK_FP_LEN]; /* hbdisk_key_fingerprint() of the pool key */
};

struct hbdisk_slot {
    uint32_t host_id;     /* the writer's host id (nonzero) */
    uint32_t flags;       /* HBDISK_F_* */
    uint64_t incarnation; /* >= 1, bumped at every vigild start */
    uint64_t seq;         /* bumped at every write */
    uint64_t timestamp_ms; /* the writer's monotonic clock: informative only */
    uint64_t liveset;     /* bit i: host index i in the writer's view */
    uint64_t poison_ack;  /* the mailbox value the owner has acted on */
};

struct hbdisk_mailbox {
    uint64_t poison;       /* fence requests from the master (a counter) */
    uint64_t master_epoch; /* the lease counter the master held when it wrote */
    uint32_t master;       /* the writing master's host index, or HBDISK_NONE */
};

struct hbdisk_lease {
    uint32_t owner;        /* host index, or HBDISK_NONE when free */
    uint32_t expiry_ticks; /* 0 when free, else 1..HBDISK_MAX_EXPIRY */
    uint64_t counter;      /* bumped by every claim, renewal and release */
    uint64_t owner_incarnation; /* the owner's slot incarnation; 0 when free */
};

/* first 8 bytes of SHA-256(key): tells a wrong key from a corrupted block */
void hbdisk_key_fingerprint(const uint8_t key[HBDISK_KEY_LEN], uint8_t fp[HBDISK_FP_LEN]);

/* The block number of a kind's index-th block (0 for the header and lease
 * index) on a disk of slot_count slots; blocks = 2 * slot_count + 2. */
uint64_t hbdisk_block(enum hbdisk_kind kind, unsigned slot_count, unsigned index);

/* Encoders fill buf with exactly one sector (the header's sector_size, or
 * p->sector_size).  They return 0, or -EINVAL (with err) for values a decoder
 * would refuse. */
int hbdisk_encode_header(const struct hbdisk_header *h, uint8_t *buf, char *err, size_t errlen);
int hbdisk_encode_slot(const struct hbdisk_pool *p, unsigned index, const struct hbdisk_slot *s, uint8_t *buf,
                       char *err, size_t errlen);
int hbdisk_encode_mailbox(const struct hbdisk_pool *p, unsigned index, const struct hbdisk_mailbox *m,
                          uint8_t *buf, char *err, size_t errlen);
int hbdisk_encode_lease(const struct hbdisk_pool *p, const struct hbdisk_lease *l, uint8_t *buf, char *err,
                        size_t errlen);

/* Decoders read at most len bytes and return 0, or -EINVAL with err saying
 * what is wrong; *out is written only on success.  The header decoder checks
 * the UUID against uuid and the key fingerprint against key unless they are
 * NULL. */
int hbdisk_decode_header(const uint8_t *buf, size_t len, const uint8_t *uuid, const uint8_t *key,
                         struct hbdisk_header *out, char *err, size_t errlen);
int hbdisk_decode_slot(const struct hbdisk_pool *p, unsigned index, const uint8_t *buf, size_t len,
                       struct hbdisk_slot *out, char *err, size_t errlen);
int hbdisk_decode_mailbox(const struct hbdisk_pool *p, unsigned index, const uint8_t *buf, size_t len,
                          struct hbdisk_mailbox *out, char *err, size_t errlen);
int hbdisk_decode_lease(const struct hbdisk_pool *p, const uint8_t *buf, size_t len, struct hbdisk_lease *out,
                        char *err, size_t errlen);

/* Whether slot a is newer than b: a later incarnation, or the same one with a
 * higher seq.  A read that is not newer than the last one accepted (a stale
 * incarnation, a replayed block) is ignored by the reader. */
bool hbdisk_slot_newer(const struct hbdisk_slot *a, const struct hbdisk_slot *b);

/* ---------------------------------------------------------------- I/O */

#define HBDISK_OPEN_FILE_4K 0x1u /* a regular file is taken as 4096-byte sectors (else 512) */

struct hbdisk;

/* Opens path O_RDWR|O_DIRECT|O_DSYNC and starts its I/O thread.  The sector
 * size is BLKSSZGET's for a block device (512 or 4096, else refused), or
 * chosen by flags for a regular file.  NULL with err on failure. */
struct hbdisk *hbdisk_open(const char *path, unsigned flags, unsigned *sector_size, char *err, size_t errlen);

/* Reads or writes one sector-sized block through the I/O thread and waits at
 * most timeout_ms: 0, a negative errno, or -ETIMEDOUT when the I/O did not
 * finish in time (its late completion is discarded; buf is not touched after
 * the call returns).  At most one I/O is in flight per disk: a call made
 * while a timed-out one still hangs waits for it within its own timeout. */
int hbdisk_io_read(struct hbdisk *d, uint64_t block, void *buf, unsigned timeout_ms);
int hbdisk_io_write(struct hbdisk *d, uint64_t block, const void *buf, unsigned timeout_ms);

/* Stops the I/O thread; one stuck in the kernel is left to finish alone and
 * frees the disk then. */
void hbdisk_close(struct hbdisk *d);

/* A zeroed buffer aligned for O_DIRECT (free() it), or NULL. */
void *hbdisk_alloc(unsigned sector_size);

/* Test hook: while stalled, the I/O thread holds every request as a hung
 * LUN would. */
void hbdisk_test_stall(struct hbdisk *d, bool stall);

#endif
