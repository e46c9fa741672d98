/* `vigil disk init|dump|list`: the heartbeat disk's blocks, written and read
 * with storage/libhbdisk.a.  These commands prepare and inspect it; vigild's
 * heartbeat on it is hb.c.
 *
 * The blocks are authenticated with a key every member can derive and no
 * one else can: SHA-256 of a label and corosync's authkey (which only pool
 * members hold, root-only).  Every I/O is bounded (5 s); the first failure
 * stops the command. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <qb/qblog.h>

#include "../ha/bytes.h"
#include "../storage/hbdisk.h"
#include "vigild.h"

#define IO_MS 5000

int disk_pool_key(struct hbdisk_pool *p, char *err, size_t errlen)
{
    int fd = open(D.cfg.corosync_authkey, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot read corosync's authkey %s: %s", D.cfg.corosync_authkey, strerror(errno));
        return -errno;
    }
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "corosync's authkey %s is empty", D.cfg.corosync_authkey);
        return -EIO;
    }
    static const char label[] = "vigil heartbeat disk key v1";
    uint8_t in[sizeof label + sizeof buf];
    memcpy(in, label, sizeof label);
    memcpy(in + sizeof label, buf, (size_t)n);
    SHA256(in, sizeof label + (size_t)n, p->key);
    explicit_bzero(buf, sizeof buf);
    explicit_bzero(in, sizeof in);
    /* the pool UUID, "xxxxxxxx-xxxx-..." -> 16 bytes */
    const char *u = D.db.pool_uuid;
    for (int i = 0; i < HBDISK_UUID_LEN; i++) {
        while (*u == '-')
            u++;
        unsigned v;
        if (sscanf(u, "%2x", &v) != 1) {
            snprintf(err, errlen, "the pool's UUID '%s' is malformed", D.db.pool_uuid);
            return -EINVAL;
        }
        p->uuid[i] = (uint8_t)v;
        u += 2;
    }
    return 0;
}


static void usage(struct request *rq, const char *what)
{
    request_finish(rq, 2, "usage: vigil %s\n", what);
}

void disk_command(struct request *rq, int id_init, int argc, char **argv, bool json)
{
    char err[512] = "";
    const char *dev = NULL;
    long hosts = 0, sector = 512;
    bool force = false;
    for (int i = 0; i < argc; i++) {
        if (id_init && !strcmp(argv[i], "--hosts") && i + 1 < argc) {
            if (ha_parse_int(argv[++i], 1, HBDISK_MAX_HOSTS, &hosts) < 0)
                return request_finish(rq, 2, "--hosts: '%s' is not a number of hosts in 1..64\n", argv[i]);
        } else if (!strcmp(argv[i], "--sector-size") && i + 1 < argc) {
            if (ha_parse_int(argv[++i], 512, 4096, &sector) < 0 || (sector != 512 && sector != 4096))
                return request_finish(rq, 2, "--sector-size: 512 or 4096 (regular files only; a block device "
                                             "has its own)\n");
        } else if (id_init && !strcmp(argv[i], "--force"))
            force = true;
        else if (argv[i][0] != '-' && !dev)
            dev = argv[i];
        else
            return usage(rq, id_init ? "disk init DEV --hosts N [--sector-size 512|4096] [--force]"
                                     : "disk dump DEV [--sector-size 512|4096] [--json]");
    }
    if (!dev || (id_init && !hosts))
        return usage(rq, id_init ? "disk init DEV --hosts N [--sector-size 512|4096] [--force]"
                                 : "disk dump DEV [--sector-size 512|4096] [--json]");
    if (id_init && hosts < ha_popcount(ha_db_joined(&D.db)))
        return request_finish(rq, 1, "--hosts %ld is fewer than the %d hosts of pool %s\n", hosts,
                              ha_popcount(ha_db_joined(&D.db)), D.db.pool_name);
    struct hbdisk_pool p = {0};
    if (disk_pool_key(&p, err, sizeof err) < 0)
        return request_finish(rq, 1, "%s\n", err);
    unsigned ss = 0;
    struct hbdisk *d = hbdisk_open(dev, sector == 4096 ? HBDISK_OPEN_FILE_4K : 0, &ss, err, sizeof err);
    if (!d) {
        explicit_bzero(&p, sizeof p);
        return request_finish(rq, 1, "%s\n", err);
    }
    p.sector_size = ss;
    uint8_t *b = hbdisk_alloc(ss);
    struct {
        char *p;
        size_t n, cap;
    } o = {0};
    int code = 0;
    if (!b) {
        code = 1;
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    int rc = hbdisk_io_read(d, 0, b, IO_MS);
    if (rc < 0) {
        code = 1;
        snprintf(err, sizeof err, "%s: cannot read block 0: %s", dev, strerror(-rc));
        goto out;
    }
    struct hbdisk_header h;
    char why[256] = "";
    bool is_header = hbdisk_decode_header(b, ss, NULL, NULL, &h, why, sizeof why) == 0;
    if (id_init) {
        if (is_header && !force) {
            bool ours = !memcmp(h.uuid, p.uuid, sizeof h.uuid);
            code = 1;
            snprintf(err, sizeof err, "%s already holds a heartbeat disk of %s (%u slots): --force overwrites it", dev,
                     ours ? "this pool" : "another pool", h.slot_count);
            goto out;
        }
        if (!is_header && !all_zero(b, ss) && !force) {
            code = 1;
            snprintf(err, sizeof err, "%s holds other data (its first block is not empty and not a vigil heartbeat "
                                      "disk): --force overwrites it", dev);
            goto out;
        }
        struct hbdisk_header nh = {.sector_size = ss, .slot_count = (uint32_t)hosts,
                                   .disk_interval_ms = (uint32_t)D.db.set.disk_interval,
                                   .disk_timeout_ms = (uint32_t)D.db.set.disk_timeout,
                                   .msgwait_ms = (uint32_t)D.db.set.msgwait, .created = (uint64_t)time(NULL)};
        memcpy(nh.uuid, p.uuid, sizeof nh.uuid);
        hbdisk_key_fingerprint(p.key, nh.key_fp);
        /* slots and mailboxes empty (never written), the lease free, the
         * header last: a disk is a heartbeat disk only once all is there */
        memset(b, 0, ss);
        for (unsigned i = 0; i < (unsigned)hosts && !rc; i++) {
            rc = hbdisk_io_write(d, hbdisk_block(HBDISK_SLOT, (unsigned)hosts, i), b, IO_MS);
            if (!rc)
                rc = hbdisk_io_write(d, hbdisk_block(HBDISK_MAILBOX, (unsigned)hosts, i), b, IO_MS);
        }
        struct hbdisk_lease free_lease = {.owner = HBDISK_NONE};
        if (!rc && hbdisk_encode_lease(&p, &free_lease, b, why, sizeof why) < 0)
            rc = -EINVAL;
        if (!rc)
            rc = hbdisk_io_write(d, hbdisk_block(HBDISK_LEASE, (unsigned)hosts, 0), b, IO_MS);
        if (!rc && hbdisk_encode_header(&nh, b, why, sizeof why) < 0)
            rc = -EINVAL;
        if (!rc)
            rc = hbdisk_io_write(d, 0, b, IO_MS);
        if (rc < 0) {
            code = 1;
            snprintf(err, sizeof err, "%s: writing the heartbeat disk failed: %s%s%s", dev, strerror(-rc),
                     why[0] ? ": " : "", why);
            goto out;
        }
        audit(LOG_NOTICE, "operator", "vigil disk init", "heartbeat disk %s initialised for pool %s: %ld slots, %u-byte "
              "sectors", dev, D.db.pool_name, hosts, ss);
        request_finish(rq, 0, "%s: heartbeat disk of pool %s, %ld slots, %u-byte sectors (name it as heartbeat_disk in "
                              "every member's vigil.conf, then: vigil pool set heartbeat_disk yes)\n", dev, D.db.pool_name, hosts, ss);
        goto close;
    }
    /* dump */
    if (!is_header) {
        code = 1;
        snprintf(err, sizeof err, "%s is not a vigil heartbeat disk: %s", dev, why);
        goto out;
    }
    FILE *f = open_memstream(&o.p, &o.n);
    if (!f) {
        code = 1;
        snprintf(err, sizeof err, "out of memory");
        goto out;
    }
    bool ours = !memcmp(h.uuid, p.uuid, sizeof h.uuid);
    uint8_t fp[HBDISK_FP_LEN];
    hbdisk_key_fingerprint(p.key, fp);
    bool key_ok = !memcmp(fp, h.key_fp, sizeof fp);
    if (json)
        fprintf(f, "{\"device\":\"%s\",\"sector_size\":%u,\"slots\":%u,\"this_pool\":%s,\"key_matches\":%s,"
                   "\"disk_interval_ms\":%u,\"disk_timeout_ms\":%u,\"msgwait_ms\":%u,\"created\":%" PRIu64 ",\"blocks\":[",
                dev, ss, h.slot_count, ours ? "true" : "false", key_ok ? "true" : "false", h.disk_interval_ms,
                h.disk_timeout_ms, h.msgwait_ms, h.created);
    else
        fprintf(f, "%s: vigil heartbeat disk, %u-byte sectors, %u slots, %s, key %s\n"
                   "  timing: disk_interval %ums, disk_timeout %ums, msgwait %ums; created %" PRIu64 "\n",
                dev, ss, h.slot_count, ours ? "this pool" : "ANOTHER POOL", key_ok ? "matches" : "DOES NOT MATCH",
                h.disk_interval_ms, h.disk_timeout_ms, h.msgwait_ms, h.created);
    int k = 0;
    for (unsigned i = 0; i < h.slot_count && !rc; i++)
        for (int kind = HBDISK_SLOT; kind <= HBDISK_MAILBOX && !rc; kind++) {
            rc = hbdisk_io_read(d, hbdisk_block((enum hbdisk_kind)kind, h.slot_count, i), b, IO_MS);
            if (rc < 0)
                break;
            const char *kn = kind == HBDISK_SLOT ? "slot" : "mailbox";
            char line[512];
            why[0] = 0;
            if (all_zero(b, ss))
                snprintf(line, sizeof line, "never written");
            else if (kind == HBDISK_SLOT) {
                struct hbdisk_slot s;
                if (hbdisk_decode_slot(&p, i, b, ss, &s, why, sizeof why) < 0)
                    snprintf(line, sizeof line, "BAD: %s", why);
                else
                    snprintf(line, sizeof line, "host %u incarnation %" PRIu64 " seq %" PRIu64 " flags 0x%x liveset "
                             "0x%" PRIx64 " poison_ack %" PRIu64, s.host_id, s.incarnation, s.seq, s.flags, s.liveset,
                             s.poison_ack);
            } else {
                struct hbdisk_mailbox m;
                if (hbdisk_decode_mailbox(&p, i, b, ss, &m, why, sizeof why) < 0)
                    snprintf(line, sizeof line, "BAD: %s", why);
                else
                    snprintf(line, sizeof line, "poison %" PRIu64 " from master %d (epoch %" PRIu64 ")", m.poison,
                             m.master == HBDISK_NONE ? -1 : (int)m.master, m.master_epoch);
            }
            if (json)
                fprintf(f, "%s{\"kind\":\"%s\",\"index\":%u,\"state\":\"%s\"}", k++ ? "," : "", kn, i, line);
            else
                fprintf(f, "  %-8s %2u  %s\n", kn, i, line);
        }
    if (!rc)
        rc = hbdisk_io_read(d, hbdisk_block(HBDISK_LEASE, h.slot_count, 0), b, IO_MS);
    if (!rc) {
        struct hbdisk_lease l;
        char line[256];
        why[0] = 0;
        if (hbdisk_decode_lease(&p, b, ss, &l, why, sizeof why) < 0)
            snprintf(line, sizeof line, "BAD: %s", why);
        else if (l.owner == HBDISK_NONE)
            snprintf(line, sizeof line, "free (counter %" PRIu64 ")", l.counter);
        else
            snprintf(line, sizeof line, "held by host %u (counter %" PRIu64 ", expiry %u ticks)", l.owner, l.counter,
                     l.expiry_ticks);
        if (json)
            fprintf(f, "%s{\"kind\":\"lease\",\"index\":0,\"state\":\"%s\"}]}\n", k ? "," : "", line);
        else
            fprintf(f, "  lease        %s\n", line);
    }
    fclose(f);
    if (rc < 0) {
        code = 1;
        snprintf(err, sizeof err, "%s: a read failed: %s", dev, strerror(-rc));
        goto out;
    }
    request_finish_text(rq, 0, o.p);
    goto close;
out:
    request_finish(rq, code ? code : 1, "%s\n", err);
close:
    free(o.p);
    free(b);
    explicit_bzero(&p, sizeof p);
    hbdisk_close(d);
}
