/* The heartbeat disk's block format and its bounded I/O (storage/hbdisk.h,
 * docs/heartbeat-disk.md).
 *
 * Block layout, little-endian, fixed offsets:
 *   0  magic u32, 4 version u16, 6 kind u8, 7 zero u8, 8 pool UUID [16],
 *   24 index u32, 28 block size u32, 32.. the kind's fields, then zeros;
 *   size-36 HMAC-SHA256 [32] over bytes 0..size-37 (zeros in the header,
 *   which is not authenticated); size-4 CRC-32 over bytes 0..size-5. */
#define _GNU_SOURCE
#include "storage/hbdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ha/bytes.h"
#include "membership/pooldb.h"

#define OFF_BODY 32u
#define MAC_LEN 32u
#define TAIL (MAC_LEN + 4u)

static const char *const kind_name[] = {"?", "header", "slot", "mailbox", "lease"};



static bool sector_ok(size_t s) { return s == 512 || s == 4096; }

void hbdisk_key_fingerprint(const uint8_t key[HBDISK_KEY_LEN], uint8_t fp[HBDISK_FP_LEN])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (!EVP_Digest(key, HBDISK_KEY_LEN, md, &n, EVP_sha256(), NULL) || n < HBDISK_FP_LEN)
        memset(md, 0, sizeof md); /* cannot happen with a working libcrypto */
    memcpy(fp, md, HBDISK_FP_LEN);
}

uint64_t hbdisk_block(enum hbdisk_kind kind, unsigned slot_count, unsigned index)
{
    switch (kind) {
    case HBDISK_SLOT: return 1 + (uint64_t)index;
    case HBDISK_MAILBOX: return 1 + (uint64_t)slot_count + index;
    case HBDISK_LEASE: return 1 + 2 * (uint64_t)slot_count;
    case HBDISK_HEADER: break;
    }
    return 0;
}

static bool mac(const uint8_t *key, const uint8_t *buf, size_t size, uint8_t out[MAC_LEN])
{
    unsigned n = 0;
    return HMAC(EVP_sha256(), key, HBDISK_KEY_LEN, buf, size - TAIL, out, &n) && n == MAC_LEN;
}

/* common prefix; the caller fills the body, then seal() */
static void start(uint8_t *buf, size_t size, enum hbdisk_kind kind, const uint8_t *uuid, unsigned index)
{
    memset(buf, 0, size);
    le_put32(buf, HBDISK_MAGIC);
    le_put16(buf + 4, HBDISK_VERSION);
    buf[6] = (uint8_t)kind;
    memcpy(buf + 8, uuid, HBDISK_UUID_LEN);
    le_put32(buf + 24, index);
    le_put32(buf + 28, (uint32_t)size);
}

static int seal(uint8_t *buf, size_t size, const uint8_t *key, char *err, size_t errlen)
{
    if (key && !mac(key, buf, size, buf + size - TAIL))
        return errf(err, errlen, -EINVAL, "HMAC-SHA256 failed");
    le_put32(buf + size - 4, pooldb_crc32(buf, size - 4));
    return 0;
}

/* Everything but the body's fields: returns 0 or -EINVAL with err. */
static int check(const uint8_t *buf, size_t len, size_t want, enum hbdisk_kind kind, const uint8_t *uuid,
                 unsigned index, size_t body_end, const uint8_t *key, char *err, size_t errlen)
{
    const char *k = kind_name[kind];
    if (!sector_ok(len))
        return errf(err, errlen, -EINVAL, "%s block: %zu bytes, not one 512- or 4096-byte sector", k, len);
    if (want && len != want)
        return errf(err, errlen, -EINVAL, "%s block: %zu bytes, the disk's sectors are %zu", k, len, want);
    if (le_get32(buf) != HBDISK_MAGIC)
        return errf(err, errlen, -EINVAL, "%s block: bad magic 0x%08x (not a vigil heartbeat disk)", k, le_get32(buf));
    if (le_get16(buf + 4) != HBDISK_VERSION)
        return errf(err, errlen, -EINVAL, "%s block: format version %u, this vigil reads %u", k, le_get16(buf + 4),
                    HBDISK_VERSION);
    if (buf[6] != kind)
        return errf(err, errlen, -EINVAL, "%s block: holds a block of kind %u", k, buf[6]);
    if (le_get32(buf + len - 4) != pooldb_crc32(buf, len - 4))
        return errf(err, errlen, -EINVAL, "%s block: bad CRC-32 (corrupted)", k);
    if (buf[7])
        return errf(err, errlen, -EINVAL, "%s block: reserved byte 7 is %u", k, buf[7]);
    if (le_get32(buf + 28) != len)
        return errf(err, errlen, -EINVAL, "%s block: says %u bytes, is %zu", k, le_get32(buf + 28), len);
    if (uuid && memcmp(buf + 8, uuid, HBDISK_UUID_LEN))
        return errf(err, errlen, -EINVAL, "%s block: belongs to another pool (foreign pool UUID)", k);
    if (le_get32(buf + 24) != index)
        return errf(err, errlen, -EINVAL, "%s block: index %u where %u belongs (misplaced write)", k, le_get32(buf + 24),
                    index);
    if (key) {
        uint8_t m[MAC_LEN];
        if (!mac(key, buf, len, m))
            return errf(err, errlen, -EINVAL, "%s block: HMAC-SHA256 failed", k);
        if (CRYPTO_memcmp(m, buf + len - TAIL, MAC_LEN))
            return errf(err, errlen, -EINVAL, "%s block: bad HMAC (written with another pool key, or forged)", k);
    }
    for (size_t i = body_end; i < len - TAIL; i++)
        if (buf[i])
            return errf(err, errlen, -EINVAL, "%s block: nonzero padding at byte %zu", k, i);
    if (!key)
        for (size_t i = len - TAIL; i < len - 4; i++)
            if (buf[i])
                return errf(err, errlen, -EINVAL, "%s block: nonzero byte %zu in the unused MAC field", k, i);
    return 0;
}

/* ---------------------------------------------------------------- header */

#define HDR_END 64u

static int header_fields(const struct hbdisk_header *h, char *err, size_t errlen)
{
    if (!sector_ok(h->sector_size))
        return errf(err, errlen, -EINVAL, "header: sector size %u (512 or 4096)", h->sector_size);
    if (h->slot_count < 1 || h->slot_count > HBDISK_MAX_HOSTS)
        return errf(err, errlen, -EINVAL, "header: slot count %u (1..%u)", h->slot_count, HBDISK_MAX_HOSTS);
    if (h->disk_interval_ms < 1 || h->disk_interval_ms > HBDISK_MAX_MS)
        return errf(err, errlen, -EINVAL, "header: disk_interval %ums out of range", h->disk_interval_ms);
    if (h->disk_timeout_ms < 2 * (uint64_t)h->disk_interval_ms || h->disk_timeout_ms > HBDISK_MAX_MS)
        return errf(err, errlen, -EINVAL, "header: disk_timeout %ums (2 x disk_interval..%ums)", h->disk_timeout_ms,
                    HBDISK_MAX_MS);
    if (h->msgwait_ms < 1 || h->msgwait_ms > HBDISK_MAX_MS)
        return errf(err, errlen, -EINVAL, "header: msgwait %ums out of range", h->msgwait_ms);
    return 0;
}

int hbdisk_encode_header(const struct hbdisk_header *h, uint8_t *buf, char *err, size_t errlen)
{
    if (header_fields(h, err, errlen) < 0)
        return -EINVAL;
    start(buf, h->sector_size, HBDISK_HEADER, h->uuid, 0);
    le_put32(buf + 32, h->slot_count);
    le_put32(buf + 36, h->disk_interval_ms);
    le_put32(buf + 40, h->disk_timeout_ms);
    le_put32(buf + 44, h->msgwait_ms);
    le_put64(buf + 48, h->created);
    memcpy(buf + 56, h->key_fp, HBDISK_FP_LEN);
    return seal(buf, h->sector_size, NULL, err, errlen);
}

int hbdisk_decode_header(const uint8_t *buf, size_t len, const uint8_t *uuid, const uint8_t *key,
                         struct hbdisk_header *out, char *err, size_t errlen)
{
    if (check(buf, len, 0, HBDISK_HEADER, uuid, 0, HDR_END, NULL, err, errlen) < 0)
        return -EINVAL;
    struct hbdisk_header h;
    memcpy(h.uuid, buf + 8, HBDISK_UUID_LEN);
    h.sector_size = (uint32_t)len;
    h.slot_count = le_get32(buf + 32);
    h.disk_interval_ms = le_get32(buf + 36);
    h.disk_timeout_ms = le_get32(buf + 40);
    h.msgwait_ms = le_get32(buf + 44);
    h.created = le_get64(buf + 48);
    memcpy(h.key_fp, buf + 56, HBDISK_FP_LEN);
    if (header_fields(&h, err, errlen) < 0)
        return -EINVAL;
    if (key) {
        uint8_t fp[HBDISK_FP_LEN];
        hbdisk_key_fingerprint(key, fp);
        if (memcmp(fp, h.key_fp, HBDISK_FP_LEN))
            return errf(err, errlen, -EINVAL, "header: the disk was set up with another pool key (key fingerprint differs)");
    }
    *out = h;
    return 0;
}

/* ---------------------------------------------------------------- slot */

#define SLOT_END 80u

static int pool_ok(const struct hbdisk_pool *p, const char *k, char *err, size_t errlen)
{
    if (!sector_ok(p->sector_size))
        return errf(err, errlen, -EINVAL, "%s block: sector size %u (512 or 4096)", k, p->sector_size);
    return 0;
}

static int slot_fields(unsigned index, const struct hbdisk_slot *s, char *err, size_t errlen)
{
    if (index >= HBDISK_MAX_HOSTS)
        return errf(err, errlen, -EINVAL, "slot block: index %u (0..%u)", index, HBDISK_MAX_HOSTS - 1);
    if (!s->host_id)
        return errf(err, errlen, -EINVAL, "slot block: host id 0");
    if (s->flags & ~HBDISK_F_ALL)
        return errf(err, errlen, -EINVAL, "slot block: unknown flags 0x%x", s->flags & ~HBDISK_F_ALL);
    if (!s->incarnation)
        return errf(err, errlen, -EINVAL, "slot block: incarnation 0");
    return 0;
}

int hbdisk_encode_slot(const struct hbdisk_pool *p, unsigned index, const struct hbdisk_slot *s, uint8_t *buf,
                       char *err, size_t errlen)
{
    if (pool_ok(p, "slot", err, errlen) < 0 || slot_fields(index, s, err, errlen) < 0)
        return -EINVAL;
    start(buf, p->sector_size, HBDISK_SLOT, p->uuid, index);
    le_put32(buf + 32, s->host_id);
    le_put32(buf + 36, s->flags);
    le_put64(buf + 40, s->incarnation);
    le_put64(buf + 48, s->seq);
    le_put64(buf + 56, s->timestamp_ms);
    le_put64(buf + 64, s->liveset);
    le_put64(buf + 72, s->poison_ack);
    return seal(buf, p->sector_size, p->key, err, errlen);
}

int hbdisk_decode_slot(const struct hbdisk_pool *p, unsigned index, const uint8_t *buf, size_t len,
                       struct hbdisk_slot *out, char *err, size_t errlen)
{
    if (pool_ok(p, "slot", err, errlen) < 0 ||
        check(buf, len, p->sector_size, HBDISK_SLOT, p->uuid, index, SLOT_END, p->key, err, errlen) < 0)
        return -EINVAL;
    struct hbdisk_slot s = {
        .host_id = le_get32(buf + 32),
        .flags = le_get32(buf + 36),
        .incarnation = le_get64(buf + 40),
        .seq = le_get64(buf + 48),
        .timestamp_ms = le_get64(buf + 56),
        .liveset = le_get64(buf + 64),
        .poison_ack = le_get64(buf + 72),
    };
    if (slot_fields(index, &s, err, errlen) < 0)
        return -EINVAL;
    *out = s;
    return 0;
}

bool hbdisk_slot_newer(const struct hbdisk_slot *a, const struct hbdisk_slot *b)
{
    return a->incarnation > b->incarnation || (a->incarnation == b->incarnation && a->seq > b->seq);
}

/* ---------------------------------------------------------------- mailbox */

#define MBOX_END 56u

static int mailbox_fields(unsigned index, const struct hbdisk_mailbox *m, char *err, size_t errlen)
{
    if (index >= HBDISK_MAX_HOSTS)
        return errf(err, errlen, -EINVAL, "mailbox block: index %u (0..%u)", index, HBDISK_MAX_HOSTS - 1);
    if (m->master != HBDISK_NONE && m->master >= HBDISK_MAX_HOSTS)
        return errf(err, errlen, -EINVAL, "mailbox block: master %u is no host index", m->master);
    if (m->master == HBDISK_NONE && (m->poison || m->master_epoch))
        return errf(err, errlen, -EINVAL, "mailbox block: a fence request without a master");
    return 0;
}

int hbdisk_encode_mailbox(const struct hbdisk_pool *p, unsigned index, const struct hbdisk_mailbox *m,
                          uint8_t *buf, char *err, size_t errlen)
{
    if (pool_ok(p, "mailbox", err, errlen) < 0 || mailbox_fields(index, m, err, errlen) < 0)
        return -EINVAL;
    start(buf, p->sector_size, HBDISK_MAILBOX, p->uuid, index);
    le_put64(buf + 32, m->poison);
    le_put64(buf + 40, m->master_epoch);
    le_put32(buf + 48, m->master);
    return seal(buf, p->sector_size, p->key, err, errlen);
}

int hbdisk_decode_mailbox(const struct hbdisk_pool *p, unsigned index, const uint8_t *buf, size_t len,
                          struct hbdisk_mailbox *out, char *err, size_t errlen)
{
    if (pool_ok(p, "mailbox", err, errlen) < 0 ||
        check(buf, len, p->sector_size, HBDISK_MAILBOX, p->uuid, index, MBOX_END, p->key, err, errlen) < 0)
        return -EINVAL;
    struct hbdisk_mailbox m = {.poison = le_get64(buf + 32), .master_epoch = le_get64(buf + 40), .master = le_get32(buf + 48)};
    if (le_get32(buf + 52))
        return errf(err, errlen, -EINVAL, "mailbox block: reserved field is %u", le_get32(buf + 52));
    if (mailbox_fields(index, &m, err, errlen) < 0)
        return -EINVAL;
    *out = m;
    return 0;
}

/* ---------------------------------------------------------------- lease */

#define LEASE_END 56u

static int lease_fields(const struct hbdisk_lease *l, char *err, size_t errlen)
{
    if (l->owner == HBDISK_NONE) {
        if (l->expiry_ticks || l->owner_incarnation)
            return errf(err, errlen, -EINVAL, "lease block: free, yet with an expiry or an owner incarnation");
        return 0;
    }
    if (l->owner >= HBDISK_MAX_HOSTS)
        return errf(err, errlen, -EINVAL, "lease block: owner %u is no host index", l->owner);
    if (l->expiry_ticks < 1 || l->expiry_ticks > HBDISK_MAX_EXPIRY)
        return errf(err, errlen, -EINVAL, "lease block: expiry %u ticks (1..%u)", l->expiry_ticks, HBDISK_MAX_EXPIRY);
    if (!l->owner_incarnation)
        return errf(err, errlen, -EINVAL, "lease block: owner incarnation 0");
    return 0;
}

int hbdisk_encode_lease(const struct hbdisk_pool *p, const struct hbdisk_lease *l, uint8_t *buf, char *err,
                        size_t errlen)
{
    if (pool_ok(p, "lease", err, errlen) < 0 || lease_fields(l, err, errlen) < 0)
        return -EINVAL;
    start(buf, p->sector_size, HBDISK_LEASE, p->uuid, 0);
    le_put32(buf + 32, l->owner);
    le_put32(buf + 36, l->expiry_ticks);
    le_put64(buf + 40, l->counter);
    le_put64(buf + 48, l->owner_incarnation);
    return seal(buf, p->sector_size, p->key, err, errlen);
}

int hbdisk_decode_lease(const struct hbdisk_pool *p, const uint8_t *buf, size_t len, struct hbdisk_lease *out,
                        char *err, size_t errlen)
{
    if (pool_ok(p, "lease", err, errlen) < 0 ||
        check(buf, len, p->sector_size, HBDISK_LEASE, p->uuid, 0, LEASE_END, p->key, err, errlen) < 0)
        return -EINVAL;
    struct hbdisk_lease l = {.owner = le_get32(buf + 32),
                             .expiry_ticks = le_get32(buf + 36),
                             .counter = le_get64(buf + 40),
                             .owner_incarnation = le_get64(buf + 48)};
    if (lease_fields(&l, err, errlen) < 0)
        return -EINVAL;
    *out = l;
    return 0;
}

/* ---------------------------------------------------------------- I/O */

/* One worker thread per disk, one request slot.  The caller posts a request
 * (gen = ++gen) and waits on done_gen with a deadline; a request it gave up
 * on is still finished by the worker, whose completion then matches no
 * waiter and is dropped.  The I/O goes through the disk's own aligned
 * buffer, so a late completion never touches the caller's memory. */
struct hbdisk {
    int fd;
    unsigned sector;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* worker wakeups and completions */
    uint8_t *buf;
    bool pending, busy, stop, stall, orphan;
    bool write;
    uint64_t block;
    uint64_t gen, done_gen;
    int result;
};

static void disk_free(struct hbdisk *d)
{
    close(d->fd);
    free(d->buf);
    pthread_cond_destroy(&d->cv);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static void *worker(void *arg)
{
    struct hbdisk *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->stop && (!d->pending || d->stall))
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->stop)
            break;
        d->pending = false;
        d->busy = true;
        bool wr = d->write;
        off_t off = (off_t)(d->block * d->sector);
        uint64_t gen = d->gen;
        pthread_mutex_unlock(&d->mu);
        ssize_t n = wr ? pwrite(d->fd, d->buf, d->sector, off) : pread(d->fd, d->buf, d->sector, off);
        int rc = n < 0 ? -errno : (size_t)n == d->sector ? 0 : -EIO;
        pthread_mutex_lock(&d->mu);
        d->busy = false;
        if (d->orphan) {
            pthread_mutex_unlock(&d->mu);
            disk_free(d);
            return NULL;
        }
        d->result = rc;
        d->done_gen = gen;
        pthread_cond_broadcast(&d->cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static void deadline(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static int io(struct hbdisk *d, bool wr, uint64_t block, void *rbuf, const void *wbuf, unsigned timeout_ms)
{
    if (block > (uint64_t)INT64_MAX / d->sector)
        return -EINVAL;
    struct timespec ts;
    deadline(&ts, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&d->mu);
    /* a timed-out I/O still in flight (or queued) holds the buffer */
    while ((d->busy || d->pending) && rc == 0)
        rc = pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    if (rc) {
        pthread_mutex_unlock(&d->mu);
        return -ETIMEDOUT;
    }
    if (wr)
        memcpy(d->buf, wbuf, d->sector);
    d->write = wr;
    d->block = block;
    uint64_t gen = ++d->gen;
    d->pending = true;
    pthread_cond_broadcast(&d->cv);
    while (d->done_gen != gen && rc == 0)
        rc = pthread_cond_timedwait(&d->cv, &d->mu, &ts);
    int result = -ETIMEDOUT;
    if (d->done_gen == gen) {
        result = d->result;
        if (!wr && result == 0)
            memcpy(rbuf, d->buf, d->sector);
    }
    pthread_mutex_unlock(&d->mu);
    return result;
}

int hbdisk_io_read(struct hbdisk *d, uint64_t block, void *buf, unsigned timeout_ms)
{
    return io(d, false, block, buf, NULL, timeout_ms);
}

int hbdisk_io_write(struct hbdisk *d, uint64_t block, const void *buf, unsigned timeout_ms)
{
    return io(d, true, block, NULL, buf, timeout_ms);
}

void *hbdisk_alloc(unsigned sector_size)
{
    void *p = NULL;
    if (!sector_ok(sector_size) || posix_memalign(&p, 4096, sector_size))
        return NULL;
    memset(p, 0, sector_size);
    return p;
}

struct hbdisk *hbdisk_open(const char *path, unsigned flags, unsigned *sector_size, char *err, size_t errlen)
{
    /* O_DSYNC: each write's data is on stable storage when it returns (a
     * block device: FUA or a cache flush).  Not O_SYNC: a heartbeat needs
     * no timestamp on disk, and on a LUN that is a file (tests) O_SYNC
     * costs a journal commit per write, seconds on a busy machine. */
    int fd = open(path, O_RDWR | O_DIRECT | O_DSYNC | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        errf(err, errlen, -EINVAL, "%s: %s", path, strerror(e));
        return NULL;
    }
    struct stat st;
    unsigned sector = flags & HBDISK_OPEN_FILE_4K ? 4096 : 512;
    if (fstat(fd, &st) < 0) {
        errf(err, errlen, -EINVAL, "%s: %s", path, strerror(errno));
        goto bad;
    }
    if (S_ISBLK(st.st_mode)) {
        int ss = 0;
        if (ioctl(fd, BLKSSZGET, &ss) < 0) {
            errf(err, errlen, -EINVAL, "%s: BLKSSZGET: %s", path, strerror(errno));
            goto bad;
        }
        if (!sector_ok((size_t)ss)) {
            errf(err, errlen, -EINVAL, "%s: logical sector size %d (512 or 4096)", path, ss);
            goto bad;
        }
        sector = (unsigned)ss;
    } else if (!S_ISREG(st.st_mode)) {
        errf(err, errlen, -EINVAL, "%s: neither a block device nor a regular file", path);
        goto bad;
    }
    struct hbdisk *d = calloc(1, sizeof *d);
    if (!d || !(d->buf = hbdisk_alloc(sector))) {
        free(d);
        errf(err, errlen, -EINVAL, "out of memory");
        goto bad;
    }
    d->fd = fd;
    d->sector = sector;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&d->thread, NULL, worker, d);
    if (rc) {
        errf(err, errlen, -EINVAL, "I/O thread: %s", strerror(rc));
        disk_free(d);
        return NULL;
    }
    if (sector_size)
        *sector_size = sector;
    return d;
bad:
    close(fd);
    return NULL;
}

void hbdisk_test_stall(struct hbdisk *d, bool stall)
{
    pthread_mutex_lock(&d->mu);
    d->stall = stall;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void hbdisk_close(struct hbdisk *d)
{
    if (!d)
        return;
    /* A worker stuck in the kernel returns when the LUN does; joining it
     * would freeze the caller as long.  So a busy worker is detached and
     * frees the disk itself when its I/O returns. */
    pthread_t t = d->thread;
    pthread_mutex_lock(&d->mu);
    d->stop = true;
    bool busy = d->busy;
    d->orphan = busy;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    if (busy) {
        pthread_detach(t);
        return;
    }
    pthread_join(t, NULL);
    disk_free(d);
}
