#define _GNU_SOURCE /* pipe2 */
/* The heartbeat disk driver of vigild (docs/heartbeat-disk.md).
 *
 * One thread per vigild owns the LUN: every disk_interval it reads the
 * header, every slot, every mailbox and the lease block, decodes them, and
 * posts the result to the main loop through a pipe; the loop turns it into
 * HA_EV_DISK for the core.  The core's writes (HA_ACT_DISK_WRITE,
 * HA_ACT_POISON) are handed back to the thread, which performs them at once.
 * Every I/O goes through libhbdisk's bounded worker, so a hung LUN costs the
 * thread one I/O timeout per tick and never blocks the main loop: `vigil
 * status` keeps answering while the core hears ok=false.
 *
 * The thread never logs: its messages travel with the tick and the loop logs
 * them, at most once a minute for the same block and reason.
 *
 * In a corosync-only pool (heartbeat_disk = no in the pool database) the
 * thread runs all the same when vigil.conf names a LUN: the loop writes this
 * host's slot every tick itself, so that the master can see, before it
 * switches the pool to disk mode, that every member reads and writes the
 * disk with the pool key (hb_ready_check). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

#include <qb/qblog.h>

#include "../ha/bytes.h"
#include "../storage/hbdisk.h"
#include "../storage/mpath.h"
#include "pidns.h"
#include "vigild.h"

#define MSG_MAX 24       /* log lines carried by one tick */
#define RELOG_MS 60000   /* the same reason for the same block: logged again after this */
#define MPATH_EVERY 5    /* ticks between two multipath checks */

struct blockinfo {
    bool have;           /* a valid block was accepted */
    uint64_t accepted;   /* how many newer blocks were accepted (the core's seq) */
    uint64_t at_ms;      /* when the last one was accepted (our clock) */
};

struct tick {
    bool ok;
    char why[256];       /* !ok: the reason */
    int lease_owner;
    uint64_t lease_counter;
    struct ha_slot slot[HA_MAX_HOSTS];
    int nmsg;
    char msg[MSG_MAX][300];
    char mpath_msg[MPATH_DESC_MAX + 64]; /* a multipath change to audit, or "" */
};

struct hb {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;     /* wakes the thread: a write, a stop */
    pthread_cond_t flushed;  /* wakes hb_flush: the writes are done */
    int pipe[2];             /* thread -> loop: struct tick * */
    bool stop, exited, orphan;

    /* set by the loop */
    char path[VIGIL_CONFIG_VALUE_MAX];
    unsigned open_flags;
    struct hbdisk_pool pool;
    int self;
    uint32_t nodeid[HA_MAX_HOSTS];
    int nhosts;
    unsigned interval_ms, io_ms;
    char inc_file[4400];

    /* the thread's view of the disk */
    struct hbdisk *d;
    unsigned ss;
    uint8_t *buf;
    bool header_ok;
    struct hbdisk_header hdr;
    char open_err[256];
    struct hbdisk_slot slot[HA_MAX_HOSTS];
    struct blockinfo sinfo[HA_MAX_HOSTS];
    struct hbdisk_mailbox mbox[HA_MAX_HOSTS];
    struct blockinfo minfo[HA_MAX_HOSTS];
    struct hbdisk_lease lease;
    struct blockinfo linfo;
    uint64_t incarnation, seq;
    uint64_t ticks, reads, writes;
    char last_err[256];
    unsigned mpath_n;
    enum mpath_verdict mpath, mpath_prev;
    char mpath_desc[MPATH_DESC_MAX];
    bool mpath_said;

    /* writes waiting for the thread */
    bool w_slot, w_lease;
    struct hbdisk_slot ws;
    struct hbdisk_lease wl;
    uint64_t w_poison;       /* bit h: write mailbox h */
    struct hbdisk_mailbox wm[HA_MAX_HOSTS];
    bool writing, write_failed;
    char write_err[256];
};

static struct hb *H;
/* the loop's copy of the last tick, for status and the master's address */
static struct tick last;
static bool have_last;
static uint64_t last_at;
static uint64_t last_ok_at; /* the last tick that worked, or hb_start */
/* rate limit of the loop's log lines */
static struct {
    char text[300];
    uint64_t at;
} seen[4 * HA_MAX_HOSTS];

/* the slot flags the core knows are the disk's, bit for bit */
_Static_assert(HA_SLOT_SELF_FENCED == HBDISK_F_SELF_FENCED && HA_SLOT_WATCHDOG == HBDISK_F_WATCHDOG &&
                   HA_SLOT_JOINING == HBDISK_F_JOINING,
               "ha.h's HA_SLOT_* and hbdisk.h's HBDISK_F_* must agree");

/* ---------------------------------------------------------------- the thread */

/* ms from now on CLOCK_MONOTONIC (the conditions' clock) */
static struct timespec deadline(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

__attribute__((format(printf, 2, 3))) static void tmsg(struct tick *t, const char *fmt, ...)
{
    if (t->nmsg >= MSG_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->msg[t->nmsg++], sizeof t->msg[0], fmt, ap);
    va_end(ap);
}

/* The incarnation of this vigild: above both what our slot on the disk and
 * our state file say, so a restart is always a new incarnation. */
static void set_incarnation(struct hb *h, uint64_t on_disk)
{
    uint64_t file = 0;
    FILE *f = fopen(h->inc_file, "r");
    if (f) {
        if (fscanf(f, "%" SCNu64, &file) != 1)
            file = 0;
        fclose(f);
    }
    h->incarnation = (file > on_disk ? file : on_disk) + 1;
    h->seq = 0;
    char tmp[4500];
    snprintf(tmp, sizeof tmp, "%s.tmp", h->inc_file);
    f = fopen(tmp, "w");
    if (f) {
        fprintf(f, "%" PRIu64 "\n", h->incarnation);
        fflush(f);
        fsync(fileno(f));
        fclose(f);
        rename(tmp, h->inc_file);
    }
}

static int io_read(struct hb *h, uint64_t block)
{
    __atomic_fetch_add(&h->reads, 1, __ATOMIC_RELAXED); /* counters: read by hb_list under the lock */
    return hbdisk_io_read(h->d, block, h->buf, h->io_ms);
}

/* One heartbeat read: header, slots, mailboxes, lease.  Called unlocked
 * for the I/O; takes the lock to update what it accepted. */
static void do_tick(struct hb *h, struct tick *t)
{
    char why[256];
    t->lease_owner = HA_NO_HOST;
    if (!h->d) {
        h->d = hbdisk_open(h->path, h->open_flags, &h->ss, why, sizeof why);
        if (!h->d) {
            t->ok = false;
            snprintf(t->why, sizeof t->why, "cannot open %s: %s", h->path, why);
            return;
        }
        free(h->buf);
        h->buf = hbdisk_alloc(h->ss);
        if (!h->buf) {
            hbdisk_close(h->d);
            h->d = NULL;
            t->ok = false;
            snprintf(t->why, sizeof t->why, "out of memory");
            return;
        }
        h->pool.sector_size = h->ss;
    }
    int rc = io_read(h, 0);
    struct hbdisk_header hdr;
    if (rc < 0) {
        t->ok = false;
        snprintf(t->why, sizeof t->why, "%s: reading the header: %s", h->path, strerror(-rc));
        return;
    }
    if (hbdisk_decode_header(h->buf, h->ss, h->pool.uuid, h->pool.key, &hdr, why, sizeof why) < 0) {
        t->ok = false;
        snprintf(t->why, sizeof t->why, "%s is not this pool's heartbeat disk: %s", h->path, why);
        return;
    }
    if ((int)hdr.slot_count < h->nhosts) {
        t->ok = false;
        snprintf(t->why, sizeof t->why, "%s has %u slots, fewer than the pool's %d host indices (vigil disk init "
                 "--hosts N --force, on a disk no host uses yet)", h->path, hdr.slot_count, h->nhosts);
        return;
    }
    unsigned n = hdr.slot_count;
    /* read everything first, then decode under the lock */
    size_t nb = 2 * (size_t)n + 1;
    uint8_t *all = malloc(nb * h->ss);
    if (!all) {
        t->ok = false;
        snprintf(t->why, sizeof t->why, "out of memory");
        return;
    }
    for (size_t i = 0; i < nb; i++) {
        rc = io_read(h, 1 + i);
        if (rc < 0) {
            free(all);
            t->ok = false;
            snprintf(t->why, sizeof t->why, "%s: reading block %zu: %s", h->path, 1 + i, strerror(-rc));
            return;
        }
        memcpy(all + i * h->ss, h->buf, h->ss);
    }
    uint64_t now = now_ms();
    pthread_mutex_lock(&h->lock);
    h->hdr = hdr;
    h->header_ok = true;
    for (unsigned i = 0; i < n && (int)i < HA_MAX_HOSTS; i++) {
        const uint8_t *b = all + (hbdisk_block(HBDISK_SLOT, n, i) - 1) * h->ss;
        struct hbdisk_slot s;
        why[0] = 0;
        if (all_zero(b, h->ss))
            continue; /* never written */
        if (hbdisk_decode_slot(&h->pool, i, b, h->ss, &s, why, sizeof why) < 0) {
            tmsg(t, "slot %u: ignored: %s", i, why);
            continue;
        }
        if ((int)i < h->nhosts && h->nodeid[i] && s.host_id != h->nodeid[i]) {
            tmsg(t, "slot %u: ignored: written by node %u, but the pool has node %u at index %u", i, s.host_id,
                 h->nodeid[i], i);
            continue;
        }
        if (h->sinfo[i].have && !hbdisk_slot_newer(&s, &h->slot[i])) {
            if (s.incarnation != h->slot[i].incarnation || s.seq != h->slot[i].seq)
                tmsg(t, "slot %u: ignored: stale (incarnation %" PRIu64 " seq %" PRIu64 " after incarnation %" PRIu64
                     " seq %" PRIu64 "): an old or replayed block", i, s.incarnation, s.seq, h->slot[i].incarnation,
                     h->slot[i].seq);
            continue;
        }
        if ((int)i == h->self && !h->incarnation)
            set_incarnation(h, s.incarnation);
        h->slot[i] = s;
        h->sinfo[i].have = true;
        h->sinfo[i].accepted++;
        h->sinfo[i].at_ms = now;
    }
    for (unsigned i = 0; i < n && (int)i < HA_MAX_HOSTS; i++) {
        const uint8_t *b = all + (hbdisk_block(HBDISK_MAILBOX, n, i) - 1) * h->ss;
        struct hbdisk_mailbox m;
        if (all_zero(b, h->ss))
            continue;
        if (hbdisk_decode_mailbox(&h->pool, i, b, h->ss, &m, why, sizeof why) < 0) {
            tmsg(t, "mailbox %u: ignored: %s", i, why);
            continue;
        }
        if (h->minfo[i].have && m.poison < h->mbox[i].poison) {
            tmsg(t, "mailbox %u: ignored: stale (poison %" PRIu64 " after %" PRIu64 ")", i, m.poison, h->mbox[i].poison);
            continue;
        }
        h->mbox[i] = m;
        h->minfo[i].have = true;
    }
    {
        const uint8_t *b = all + (hbdisk_block(HBDISK_LEASE, n, 0) - 1) * h->ss;
        struct hbdisk_lease l;
        if (hbdisk_decode_lease(&h->pool, b, h->ss, &l, why, sizeof why) < 0)
            tmsg(t, "lease: ignored: %s", why);
        else if (h->linfo.have && l.counter < h->lease.counter)
            tmsg(t, "lease: ignored: stale (counter %" PRIu64 " after %" PRIu64 ")", l.counter, h->lease.counter);
        else {
            if (!h->linfo.have || memcmp(&l, &h->lease, sizeof l))
                h->linfo.at_ms = now;
            h->lease = l;
            h->linfo.have = true;
        }
    }
    free(all);
    if (!h->incarnation)
        set_incarnation(h, 0); /* our slot was never written (or unreadable) */
    t->ok = !h->write_failed;
    if (h->write_failed)
        snprintf(t->why, sizeof t->why, "the last write failed: %s", h->write_err);
    h->write_failed = false;
    for (int i = 0; i < HA_MAX_HOSTS && i < (int)n; i++) {
        struct ha_slot *o = &t->slot[i];
        if (h->sinfo[i].have) {
            o->seq = h->sinfo[i].accepted;
            o->flags = h->slot[i].flags & (HA_SLOT_SELF_FENCED | HA_SLOT_WATCHDOG | HA_SLOT_JOINING);
            o->liveset = h->slot[i].liveset;
            o->poison_ack = h->slot[i].poison_ack;
        }
        if (h->minfo[i].have)
            o->poison = h->mbox[i].poison;
    }
    if (h->linfo.have && h->lease.owner != HBDISK_NONE && (int)h->lease.owner < h->nhosts)
        t->lease_owner = (int)h->lease.owner;
    t->lease_counter = h->linfo.have ? h->lease.counter : 0;
    pthread_mutex_unlock(&h->lock);
}

/* every few ticks: the LUN's multipath paths; all failed is storage loss */
static void do_mpath(struct hb *h, struct tick *t)
{
    if (h->mpath_n++ % MPATH_EVERY)
        return;
    struct mpath_summary s;
    mpath_check(h->path, h->io_ms, &s);
    pthread_mutex_lock(&h->lock);
    enum mpath_verdict prev = h->mpath;
    /* a change is reported when two checks in a row agree */
    if (s.verdict != prev && s.verdict == h->mpath_prev) {
        h->mpath = s.verdict;
        snprintf(t->mpath_msg, sizeof t->mpath_msg, "multipath of %s: %s: %s", h->path, mpath_verdict_str(s.verdict),
                 s.desc);
    } else if (!h->mpath_said) {
        h->mpath = s.verdict;
        snprintf(t->mpath_msg, sizeof t->mpath_msg, "multipath of %s: %s: %s%s", h->path,
                 mpath_verdict_str(s.verdict), s.desc,
                 s.verdict == MPATH_NOT_MULTIPATH ? " (path health is not watched)" : "");
    }
    h->mpath_said = true;
    h->mpath_prev = s.verdict;
    snprintf(h->mpath_desc, sizeof h->mpath_desc, "%s", s.desc);
    pthread_mutex_unlock(&h->lock);
}

static int do_write(struct hb *h, uint64_t block, const char *what, char *err, size_t errlen)
{
    __atomic_fetch_add(&h->writes, 1, __ATOMIC_RELAXED);
    int rc = hbdisk_io_write(h->d, block, h->buf, h->io_ms);
    if (rc < 0)
        snprintf(err, errlen, "writing %s: %s", what, strerror(-rc));
    return rc;
}

/* The pending writes, in order: mailboxes (the master's pills), our slot,
 * the lease.  Called unlocked with a copy of what to write. */
static void do_writes(struct hb *h, bool w_slot, struct hbdisk_slot *ws, bool w_lease, const struct hbdisk_lease *wl,
                      uint64_t w_poison, const struct hbdisk_mailbox *wm)
{
    char err[256] = "", why[200];
    int rc = 0;
    unsigned n = h->hdr.slot_count;
    if (!h->d || !h->header_ok || !h->incarnation) {
        rc = -ENODEV;
        snprintf(err, sizeof err, "the heartbeat disk has not been read yet");
    }
    for (int i = 0; !rc && i < HA_MAX_HOSTS && (unsigned)i < n; i++) {
        if (!(w_poison & HA_BIT(i)))
            continue;
        if (hbdisk_encode_mailbox(&h->pool, (unsigned)i, &wm[i], h->buf, why, sizeof why) < 0) {
            rc = -EINVAL;
            snprintf(err, sizeof err, "mailbox %d: %s", i, why);
        } else
            rc = do_write(h, hbdisk_block(HBDISK_MAILBOX, n, (unsigned)i), "a mailbox", err, sizeof err);
    }
    if (!rc && w_slot) {
        ws->incarnation = h->incarnation;
        ws->seq = ++h->seq;
        ws->host_id = h->nodeid[h->self];
        ws->timestamp_ms = now_ms();
        if (hbdisk_encode_slot(&h->pool, (unsigned)h->self, ws, h->buf, why, sizeof why) < 0) {
            rc = -EINVAL;
            snprintf(err, sizeof err, "our slot: %s", why);
        } else
            rc = do_write(h, hbdisk_block(HBDISK_SLOT, n, (unsigned)h->self), "our slot", err, sizeof err);
    }
    if (!rc && w_lease) {
        if (hbdisk_encode_lease(&h->pool, wl, h->buf, why, sizeof why) < 0) {
            rc = -EINVAL;
            snprintf(err, sizeof err, "the lease: %s", why);
        } else
            rc = do_write(h, hbdisk_block(HBDISK_LEASE, n, 0), "the lease", err, sizeof err);
    }
    pthread_mutex_lock(&h->lock);
    if (rc < 0) {
        h->write_failed = true;
        snprintf(h->write_err, sizeof h->write_err, "%s", err);
    }
    pthread_mutex_unlock(&h->lock);
}

static void hb_free(struct hb *h)
{
    if (h->d)
        hbdisk_close(h->d);
    free(h->buf);
    close(h->pipe[1]);
    explicit_bzero(&h->pool, sizeof h->pool);
    free(h);
}

static void *hb_main(void *arg)
{
    struct hb *h = arg;
    uint64_t next = 0;
    pthread_mutex_lock(&h->lock);
    while (!h->stop) {
        if (h->w_slot || h->w_lease || h->w_poison) {
            bool w_slot = h->w_slot, w_lease = h->w_lease;
            struct hbdisk_slot ws = h->ws;
            struct hbdisk_lease wl = h->wl;
            uint64_t w_poison = h->w_poison;
            struct hbdisk_mailbox wm[HA_MAX_HOSTS];
            memcpy(wm, h->wm, sizeof wm);
            h->w_slot = h->w_lease = false;
            h->w_poison = 0;
            h->writing = true;
            pthread_mutex_unlock(&h->lock);
            do_writes(h, w_slot, &ws, w_lease, &wl, w_poison, wm);
            pthread_mutex_lock(&h->lock);
            h->writing = false;
            pthread_cond_broadcast(&h->flushed);
            continue;
        }
        uint64_t now = now_ms();
        if (now >= next) {
            next = now + h->interval_ms;
            h->ticks++;
            pthread_mutex_unlock(&h->lock);
            struct tick *t = calloc(1, sizeof *t);
            if (t) {
                do_tick(h, t);
                if (h->d)
                    do_mpath(h, t);
                pthread_mutex_lock(&h->lock);
                if (!t->ok)
                    snprintf(h->last_err, sizeof h->last_err, "%s", t->why);
                if (h->mpath == MPATH_ALL_FAILED && t->ok) {
                    t->ok = false;
                    snprintf(t->why, sizeof t->why, "every multipath path of %s has failed", h->path);
                }
                bool orphan = h->orphan;
                pthread_mutex_unlock(&h->lock);
                if (orphan || write(h->pipe[1], &t, sizeof t) != (ssize_t)sizeof t)
                    free(t); /* the loop is stalled or gone: this tick is lost */
            }
            pthread_mutex_lock(&h->lock);
            continue;
        }
        struct timespec ts = deadline(next - now);
        pthread_cond_timedwait(&h->cond, &h->lock, &ts);
    }
    h->exited = true;
    pthread_cond_broadcast(&h->flushed);
    bool orphan = h->orphan;
    pthread_mutex_unlock(&h->lock);
    if (orphan)
        hb_free(h); /* hb_stop gave up waiting for us: we clean up */
    return NULL;
}

/* ---------------------------------------------------------------- the loop's side */

static bool log_once(int slot, const char *text)
{
    uint64_t now = now_ms();
    int n = (int)(sizeof seen / sizeof seen[0]);
    int i = slot >= 0 && slot < n ? slot : n - 1;
    if (!strcmp(seen[i].text, text) && now - seen[i].at < RELOG_MS)
        return false;
    snprintf(seen[i].text, sizeof seen[i].text, "%s", text);
    seen[i].at = now;
    return true;
}

/* the rate-limit bucket of a message: its block kind and index */
static int bucket(const char *m)
{
    unsigned i = 0;
    if (sscanf(m, "slot %u", &i) == 1)
        return (int)(i % HA_MAX_HOSTS);
    if (sscanf(m, "mailbox %u", &i) == 1)
        return HA_MAX_HOSTS + (int)(i % HA_MAX_HOSTS);
    if (!strncmp(m, "lease", 5))
        return 2 * HA_MAX_HOSTS;
    return 2 * HA_MAX_HOSTS + 1;
}

static void on_tick(struct tick *t)
{
    for (int i = 0; i < t->nmsg; i++)
        if (log_once(bucket(t->msg[i]), t->msg[i]))
            qb_log(LOG_WARNING, "heartbeat disk: %s", t->msg[i]);
    if (!t->ok && log_once(2 * HA_MAX_HOSTS + 2, t->why))
        audit(LOG_ERR, "vigild", t->why, "heartbeat disk I/O failed");
    if (t->ok && have_last && !last.ok)
        audit(LOG_NOTICE, "vigild", D.cfg.heartbeat_disk, "heartbeat disk readable again");
    if (t->mpath_msg[0])
        audit(strstr(t->mpath_msg, ": all-up") || strstr(t->mpath_msg, ": not-multipath") ? LOG_NOTICE : LOG_WARNING,
              "vigild", "multipathd's path states", "%s", t->mpath_msg);
    if (t->ok)
        seen[2 * HA_MAX_HOSTS + 2].text[0] = 0;
    last = *t;
    have_last = true;
    last_at = now_ms();
    if (t->ok)
        last_ok_at = last_at;
    if (!D.in_pool || !D.core)
        return;
    if (D.db.set.heartbeat_disk) {
        struct ha_event ev = {.type = HA_EV_DISK};
        ev.u.disk.ok = t->ok;
        ev.u.disk.lease_owner = t->lease_owner;
        ev.u.disk.lease_counter = t->lease_counter;
        memcpy(ev.u.disk.slot, t->slot, sizeof ev.u.disk.slot);
        pool_disk_event(&ev);
    } else if (t->ok) {
        /* corosync-only pool: our slot says we can use the disk (the master
         * checks that before it switches the pool to disk mode) */
        struct ha_action a = {.type = HA_ACT_DISK_WRITE};
        a.slot.flags = D.connected ? 0 : HA_SLOT_JOINING;
        a.slot.liveset = pool_view() | HA_BIT(D.self);
        a.slot.poison_ack = D.self >= 0 && D.self < HA_MAX_HOSTS ? t->slot[D.self].poison_ack : 0;
        hb_write(&a);
    }
}

static int32_t on_pipe(int32_t fd, int32_t revents, void *data)
{
    (void)revents, (void)data;
    struct tick *t;
    while (read(fd, &t, sizeof t) == (ssize_t)sizeof t) {
        on_tick(t);
        free(t);
    }
    return 0;
}

/* what the thread needs from the pool database: host indices and node ids,
 * the timings */
static void load_db(struct hb *h)
{
    h->self = D.self;
    h->nhosts = D.db.nhosts < HA_MAX_HOSTS ? D.db.nhosts : HA_MAX_HOSTS;
    for (int i = 0; i < h->nhosts; i++)
        h->nodeid[i] = D.db.host[i].joined ? D.db.host[i].nodeid : 0;
    h->interval_ms = (unsigned)D.db.set.disk_interval;
    /* one I/O may take at most a quarter of disk_timeout (and one interval):
     * a tick that fails still reaches the core well before the lease ages */
    ha_ms io = D.db.set.disk_timeout / 4;
    if (io > D.db.set.disk_interval)
        io = D.db.set.disk_interval;
    h->io_ms = io < 50 ? 50 : (unsigned)io;
}

int hb_start(char *err, size_t errlen)
{
    if (H || !D.cfg.heartbeat_disk[0])
        return 0;
    struct hb *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (disk_pool_key(&h->pool, err, errlen) < 0) {
        free(h);
        return -EINVAL;
    }
    snprintf(h->path, sizeof h->path, "%s", D.cfg.heartbeat_disk);
    h->open_flags = D.cfg.heartbeat_disk_sector_size == 4096 ? HBDISK_OPEN_FILE_4K : 0;
    snprintf(h->inc_file, sizeof h->inc_file, "%s/hb-incarnation", D.cfg.state_dir);
    load_db(h);
    h->mpath = h->mpath_prev = MPATH_NOT_MULTIPATH;
    pthread_mutex_init(&h->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&h->cond, &ca);
    pthread_cond_init(&h->flushed, &ca);
    pthread_condattr_destroy(&ca);
    if (pipe2(h->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        free(h);
        return -errno;
    }
    if (pthread_create(&h->thread, NULL, hb_main, h) != 0) {
        snprintf(err, errlen, "cannot start the heartbeat disk thread");
        close(h->pipe[0]);
        close(h->pipe[1]);
        free(h);
        return -EAGAIN;
    }
    qb_loop_poll_add(D.loop, QB_LOOP_HIGH, h->pipe[0], POLLIN, NULL, on_pipe);
    H = h;
    have_last = false;
    last_ok_at = now_ms();
    memset(seen, 0, sizeof seen);
    qb_log(LOG_NOTICE, "heartbeat disk %s: reading it every %u ms (I/O timeout %u ms)%s", h->path, h->interval_ms,
           h->io_ms, D.db.set.heartbeat_disk ? "" : "; the pool runs on corosync quorum until it is switched to disk mode");
    return 0;
}

void hb_stop(void)
{
    struct hb *h = H;
    if (!h)
        return;
    H = NULL;
    have_last = false;
    qb_loop_poll_del(D.loop, h->pipe[0]);
    pthread_mutex_lock(&h->lock);
    h->stop = true;
    pthread_cond_broadcast(&h->cond);
    struct timespec ts = deadline(3000);
    while (!h->exited && pthread_cond_timedwait(&h->flushed, &h->lock, &ts) == 0)
        ;
    bool exited = h->exited;
    if (!exited)
        h->orphan = true; /* stuck in open(2) on a hung LUN: it frees itself */
    pthread_mutex_unlock(&h->lock);
    struct tick *t;
    while (read(h->pipe[0], &t, sizeof t) == (ssize_t)sizeof t)
        free(t);
    close(h->pipe[0]);
    if (!exited) {
        pthread_detach(h->thread);
        qb_log(LOG_WARNING, "heartbeat disk: its thread is stuck in the kernel; left to finish alone");
        return;
    }
    pthread_join(h->thread, NULL);
    hb_free(h);
}

void hb_db_changed(void)
{
    if (!H)
        return;
    pthread_mutex_lock(&H->lock);
    load_db(H);
    pthread_mutex_unlock(&H->lock);
}

bool hb_running(void) { return H != NULL; }

void hb_write(const struct ha_action *a)
{
    struct hb *h = H;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    if (a->type == HA_ACT_POISON) {
        if (a->host >= 0 && a->host < h->nhosts) {
            struct hbdisk_mailbox *m = &h->wm[a->host];
            uint64_t base = h->w_poison & HA_BIT(a->host) ? m->poison : h->mbox[a->host].poison;
            m->poison = base + 1;
            m->master = (uint32_t)h->self;
            m->master_epoch = a->epoch ? a->epoch : h->lease.counter;
            if (!m->master_epoch)
                m->master_epoch = 1;
            h->w_poison |= HA_BIT(a->host);
        }
    } else {
        h->ws = (struct hbdisk_slot){.flags = a->slot.flags & (HBDISK_F_SELF_FENCED | HBDISK_F_JOINING),
                                     .liveset = a->slot.liveset,
                                     .poison_ack = a->slot.poison_ack};
        /* the watchdog flag says what is true of this host, not the pool
         * setting: set only while a watchdog is armed for real */
        if (watchdog_armed())
            h->ws.flags |= HBDISK_F_WATCHDOG;
        h->w_slot = true;
        if (a->lease_write) {
            bool free_ = a->lease_owner == HA_NO_HOST;
            ha_ms t = D.db.set.disk_timeout, iv = D.db.set.disk_interval > 0 ? D.db.set.disk_interval : 1;
            h->wl = (struct hbdisk_lease){
                .owner = free_ ? HBDISK_NONE : (uint32_t)a->lease_owner,
                .expiry_ticks = free_ ? 0 : (uint32_t)((t + iv - 1) / iv),
                .counter = a->lease_counter,
                .owner_incarnation = free_ ? 0 : (h->incarnation ? h->incarnation : 1)};
            if (!free_ && h->wl.expiry_ticks > HBDISK_MAX_EXPIRY)
                h->wl.expiry_ticks = HBDISK_MAX_EXPIRY;
            if (!free_ && !h->wl.expiry_ticks)
                h->wl.expiry_ticks = 1;
            h->w_lease = true;
        }
    }
    pthread_cond_broadcast(&h->cond);
    pthread_mutex_unlock(&h->lock);
}

int hb_flush(unsigned timeout_ms, char *err, size_t errlen)
{
    struct hb *h = H;
    if (!h) {
        snprintf(err, errlen, "no heartbeat disk on this host");
        return -ENODEV;
    }
    struct timespec ts = deadline(timeout_ms);
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    while ((h->w_slot || h->w_lease || h->w_poison || h->writing) && !h->exited && rc == 0)
        rc = pthread_cond_timedwait(&h->flushed, &h->lock, &ts);
    int out = 0;
    if (h->w_slot || h->w_lease || h->w_poison || h->writing) {
        snprintf(err, errlen, "the writes did not finish within %u ms", timeout_ms);
        out = -ETIMEDOUT;
    } else if (h->write_failed) {
        snprintf(err, errlen, "%s", h->write_err);
        out = -EIO;
    }
    pthread_mutex_unlock(&h->lock);
    return out;
}

unsigned hb_io_ms(void) { return H ? H->io_ms : 1000; }

bool hb_fresh(void)
{
    return H && have_last && last.ok && now_ms() - last_at <= (uint64_t)D.db.set.disk_timeout;
}

int hb_lease_owner(void) { return hb_fresh() ? last.lease_owner : HA_NO_HOST; }

bool hb_disk_lost(void)
{
    return H && D.db.set.heartbeat_disk && now_ms() - last_ok_at > (uint64_t)D.db.set.disk_timeout;
}

int hb_ready_check(char *why, size_t len)
{
    struct hb *h = H;
    if (!h) {
        snprintf(why, len, "this host (%s) has no heartbeat disk: set heartbeat_disk in its vigil.conf and restart "
                           "vigild", D.cfg.name);
        return -ENODEV;
    }
    if (!hb_fresh()) {
        pthread_mutex_lock(&h->lock);
        snprintf(why, len, "this host (%s) cannot use its heartbeat disk %s: %s", D.cfg.name, h->path,
                 h->last_err[0] ? h->last_err : "not read yet");
        pthread_mutex_unlock(&h->lock);
        return -EIO;
    }
    int rc = 0;
    uint64_t now = now_ms();
    pthread_mutex_lock(&h->lock);
    char missing[512] = "";
    for (int i = 0; i < D.db.nhosts && i < HA_MAX_HOSTS; i++) {
        if (!D.db.host[i].joined)
            continue;
        if (i >= (int)h->hdr.slot_count || !h->sinfo[i].have || h->slot[i].host_id != D.db.host[i].nodeid ||
            now - h->sinfo[i].at_ms > (uint64_t)D.db.set.disk_timeout)
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "",
                     D.db.host[i].name);
    }
    if (missing[0]) {
        snprintf(why, len, "no fresh heartbeat on %s from %s: each member must name the LUN as heartbeat_disk in its "
                           "vigil.conf (and run vigild with it) before the pool can use it", h->path, missing);
        rc = -EAGAIN;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

/* ---------------------------------------------------------------- status */

void hb_status_line(FILE *f, bool json)
{
    struct hb *h = H;
    if (!h) {
        if (json)
            fprintf(f, "{\"device\":null,\"state\":\"%s\"}", D.cfg.heartbeat_disk[0] ? "stopped" : "none");
        else
            fprintf(f, "%s%s", D.cfg.heartbeat_disk[0] ? "not started" : "none: no heartbeat_disk in vigil.conf",
                    D.in_pool && !D.db.set.heartbeat_disk ? "; the pool runs on corosync quorum" : "");
        return;
    }
    bool fresh = hb_fresh();
    pthread_mutex_lock(&h->lock);
    const char *mp = mpath_verdict_str(h->mpath);
    if (json) {
        fprintf(f, "{\"device\":");
        json_fputs(f, h->path);
        int lo = have_last ? last.lease_owner : HA_NO_HOST;
        fprintf(f, ",\"state\":\"%s\",\"mode\":\"%s\",\"sector_size\":%u,\"incarnation\":%" PRIu64
                   ",\"lease_owner\":%s%s%s,\"multipath\":\"%s\",\"watchdog\":\"%s\",\"error\":",
                fresh ? "ok" : "failing", D.db.set.heartbeat_disk ? "heartbeat" : "probe", h->ss, h->incarnation,
                lo >= 0 && lo < D.db.nhosts ? "\"" : "", lo >= 0 && lo < D.db.nhosts ? D.db.host[lo].name : "null",
                lo >= 0 && lo < D.db.nhosts ? "\"" : "", mp, watchdog_state());
        json_fputs(f, fresh ? "" : h->last_err);
        fprintf(f, "}");
    } else
        fprintf(f, "%s, %s, %s; multipath %s; watchdog %s%s%s", h->path, fresh ? "ok" : "FAILING",
                D.db.set.heartbeat_disk ? "heartbeat" : "probe (corosync-only pool)", mp, watchdog_state(),
                fresh ? "" : ": ", fresh ? "" : h->last_err);
    pthread_mutex_unlock(&h->lock);
}

void hb_list(FILE *f, bool json)
{
    struct hb *h = H;
    if (!h) {
        if (json)
            fprintf(f, "{\"device\":null,\"reason\":\"%s\"}\n",
                    D.cfg.heartbeat_disk[0] ? "vigild has not started the disk (no pool?)" : "no heartbeat_disk in vigil.conf");
        else
            fprintf(f, "no heartbeat disk on this host: %s\n",
                    D.cfg.heartbeat_disk[0] ? "vigild starts it once the host is in a pool"
                                            : "set heartbeat_disk in vigil.conf (vigil.conf(5))");
        return;
    }
    bool fresh = hb_fresh();
    uint64_t now = now_ms();
    pthread_mutex_lock(&h->lock);
    unsigned n = h->header_ok ? h->hdr.slot_count : 0;
    ha_ms tmo = D.db.set.disk_timeout;
    if (json) {
        fprintf(f, "{\"device\":");
        json_fputs(f, h->path);
        fprintf(f, ",\"state\":\"%s\",\"mode\":\"%s\",\"sector_size\":%u,\"slots\":%u,\"incarnation\":%" PRIu64
                   ",\"ticks\":%" PRIu64 ",\"reads\":%" PRIu64 ",\"writes\":%" PRIu64 ",\"multipath\":\"%s\","
                   "\"multipath_detail\":",
                fresh ? "ok" : "failing", D.db.set.heartbeat_disk ? "heartbeat" : "probe", h->ss, n, h->incarnation,
                h->ticks, __atomic_load_n(&h->reads, __ATOMIC_RELAXED), __atomic_load_n(&h->writes, __ATOMIC_RELAXED),
                mpath_verdict_str(h->mpath));
        json_fputs(f, h->mpath_desc);
        fprintf(f, ",\"watchdog\":\"%s\",\"error\":", watchdog_state());
        json_fputs(f, fresh ? "" : h->last_err);
        fprintf(f, ",\"lease\":");
        if (!h->linfo.have)
            fprintf(f, "null");
        else
            fprintf(f, "{\"owner\":%s%s%s,\"counter\":%" PRIu64 ",\"age_ms\":%" PRIu64 "}",
                    h->lease.owner == HBDISK_NONE ? "null" : "\"",
                    h->lease.owner == HBDISK_NONE ? ""
                    : (int)h->lease.owner < D.db.nhosts ? D.db.host[h->lease.owner].name : "?",
                    h->lease.owner == HBDISK_NONE ? "" : "\"", h->lease.counter, now - h->linfo.at_ms);
        fprintf(f, ",\"hosts\":[");
    } else {
        fprintf(f, "%s: %s, %s, %u-byte sectors, %u slots, incarnation %" PRIu64 "\n", h->path,
                fresh ? "ok" : "FAILING", D.db.set.heartbeat_disk ? "heartbeat mode" : "probe mode (corosync-only pool)",
                h->ss, n, h->incarnation);
        if (!fresh)
            fprintf(f, "  error:     %s\n", h->last_err);
        fprintf(f, "  multipath: %s%s%s\n  watchdog:  %s\n", mpath_verdict_str(h->mpath), h->mpath_desc[0] ? ": " : "",
                h->mpath_desc, watchdog_state());
        if (h->linfo.have && h->lease.owner != HBDISK_NONE)
            fprintf(f, "  lease:     held by %s (counter %" PRIu64 ", changed %.1f s ago)\n",
                    (int)h->lease.owner < D.db.nhosts ? D.db.host[h->lease.owner].name : "?", h->lease.counter,
                    (double)(now - h->linfo.at_ms) / 1000);
        else
            fprintf(f, "  lease:     %s\n", h->linfo.have ? "free" : "not read");
    }
    int k = 0;
    for (int i = 0; i < D.db.nhosts && i < HA_MAX_HOSTS; i++) {
        if (!D.db.host[i].joined)
            continue;
        const struct blockinfo *b = &h->sinfo[i];
        double age = b->have ? (double)(now - b->at_ms) / 1000 : -1;
        const char *st = !b->have ? "never" : now - b->at_ms < (uint64_t)tmo ? "fresh" : "stale";
        if (json) {
            fprintf(f, "%s{\"host\":", k++ ? "," : "");
            json_fputs(f, D.db.host[i].name);
            fprintf(f, ",\"index\":%d,\"slot\":\"%s\",\"age_ms\":%lld,\"flags\":%u,\"incarnation\":%" PRIu64
                       ",\"poison\":%" PRIu64 ",\"poison_ack\":%" PRIu64 "}",
                    i, st, b->have ? (long long)(now - b->at_ms) : -1LL, b->have ? h->slot[i].flags : 0,
                    b->have ? h->slot[i].incarnation : 0, h->minfo[i].have ? h->mbox[i].poison : 0,
                    b->have ? h->slot[i].poison_ack : 0);
        } else {
            char flags[64] = "";
            if (b->have && (h->slot[i].flags & HBDISK_F_SELF_FENCED))
                strcat(flags, " self-fenced");
            if (b->have && (h->slot[i].flags & HBDISK_F_WATCHDOG))
                strcat(flags, " watchdog");
            if (b->have && (h->slot[i].flags & HBDISK_F_JOINING))
                strcat(flags, " joining");
            if (b->have)
                fprintf(f, "  slot %2d  %-16s %s, %.1f s ago, incarnation %" PRIu64 "%s%s\n", i, D.db.host[i].name, st,
                        age, h->slot[i].incarnation, flags[0] ? "," : "", flags);
            else
                fprintf(f, "  slot %2d  %-16s never written\n", i, D.db.host[i].name);
        }
    }
    if (json)
        fprintf(f, "]}\n");
    pthread_mutex_unlock(&h->lock);
}

/* HA_ACT_SELF_FENCE: the core has just asked for our last slot write (the
 * self-fenced flag, the lease freed).  Make sure it is on the disk, stop the
 * local VMs hard, then reboot, or refuse to and exit.  Never returns. */
#define SELF_FENCE_DESTROY_MS 10000 /* the watchdog fires anyway if this hangs */
void hb_self_fence(const char *why)
{
    char err[256] = "", nswhy[256];
    int rc = hb_flush(2 * hb_io_ms() + 500, err, sizeof err);
    if (rc < 0)
        audit(LOG_CRIT, "vigild", err, "self-fence (%s): our self-fenced record may not be on the heartbeat disk", why);
    else
        audit(LOG_CRIT, "vigild", why, "self-fence: our slot on the heartbeat disk says self-fenced");
    /* the VMs next: this host lost the right to run them, and a refused
     * reboot below must not leave them running */
    int left = vms_destroy_all_wait(SELF_FENCE_DESTROY_MS, err, sizeof err);
    if (left)
        audit(LOG_CRIT, "vigild", err, "self-fence: %d VM(s) here not confirmed destroyed", left);
    else
        audit(LOG_CRIT, "vigild", err[0] ? err : "no pool VM runs here", "self-fence: every pool VM here is stopped");
    bool initial = pidns_initial("/proc", nswhy, sizeof nswhy);
    if (!initial || D.cfg.self_fence_reboot) {
        audit(LOG_CRIT, "vigild", initial ? "self_fence_reboot = yes in vigil.conf" : nswhy,
              "self-fence: rebooting (reboot(2))");
        sync();
        reboot(RB_AUTOBOOT);
        audit(LOG_CRIT, "vigild", strerror(errno), "self-fence: reboot(2) failed: vigild exits instead");
    } else
        audit(LOG_CRIT, "vigild", nswhy,
              "self-fence: REFUSING to reboot this machine (vigil.conf does not say self_fence_reboot = yes): "
              "vigild exits, leaving the watchdog armed and the pool's membership without this host");
    _exit(1);
}
