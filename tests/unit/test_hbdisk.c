/* The heartbeat disk's block format and bounded I/O (storage/hbdisk.h).
 *
 * VIGIL_HBDISK_SEEDS=DIR also writes fuzzer seeds into DIR: that is how
 * tests/fuzz/corpus/hbdisk-* were made (first byte: tests/fuzz/fuzz_hbdisk.c's
 * selector). */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/hbdisk.h"

static const unsigned sizes[] = {512, 4096};

static struct hbdisk_pool pool(unsigned sector)
{
    struct hbdisk_pool p = {.sector_size = sector};
    memset(p.uuid, 0xa5, sizeof p.uuid);
    for (unsigned i = 0; i < sizeof p.key; i++)
        p.key[i] = (uint8_t)(i * 7 + 1);
    return p;
}

static struct hbdisk_header header(unsigned sector)
{
    struct hbdisk_pool p = pool(sector);
    struct hbdisk_header h = {.sector_size = sector,
                              .slot_count = 16,
                              .disk_interval_ms = 1000,
                              .disk_timeout_ms = 4000,
                              .msgwait_ms = 10000,
                              .created = 1700000000};
    memcpy(h.uuid, p.uuid, sizeof h.uuid);
    hbdisk_key_fingerprint(p.key, h.key_fp);
    return h;
}

static const struct hbdisk_slot slot0 = {.host_id = 3,
                                         .flags = HBDISK_F_WATCHDOG | HBDISK_F_FENCED_ACK,
                                         .incarnation = 7,
                                         .seq = 12345,
                                         .timestamp_ms = 987654321,
                                         .liveset = 0x8000000000000005ull,
                                         .poison_ack = 2};
static const struct hbdisk_mailbox mbox0 = {.poison = 3, .master_epoch = 99, .master = 1};
static const struct hbdisk_lease lease0 = {.owner = 2, .expiry_ticks = 4, .counter = 41, .owner_incarnation = 7};

/* Encodes block kind k (index 5 for slots and mailboxes) for sector size s. */
static void encode(unsigned k, unsigned s, uint8_t *buf)
{
    char err[256] = "";
    struct hbdisk_pool p = pool(s);
    struct hbdisk_header h = header(s);
    int rc = k == HBDISK_HEADER    ? hbdisk_encode_header(&h, buf, err, sizeof err)
             : k == HBDISK_SLOT    ? hbdisk_encode_slot(&p, 5, &slot0, buf, err, sizeof err)
             : k == HBDISK_MAILBOX ? hbdisk_encode_mailbox(&p, 5, &mbox0, buf, err, sizeof err)
                                   : hbdisk_encode_lease(&p, &lease0, buf, err, sizeof err);
    ck_assert_msg(rc == 0, "encode: %s", err);
}

/* Decodes kind k with pool p; 0 or -EINVAL, err filled. */
static int decode(unsigned k, const struct hbdisk_pool *p, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    struct hbdisk_header h;
    struct hbdisk_slot s;
    struct hbdisk_mailbox m;
    struct hbdisk_lease l;
    switch (k) {
    case HBDISK_HEADER: return hbdisk_decode_header(buf, len, p->uuid, p->key, &h, err, errlen);
    case HBDISK_SLOT: return hbdisk_decode_slot(p, 5, buf, len, &s, err, errlen);
    case HBDISK_MAILBOX: return hbdisk_decode_mailbox(p, 5, buf, len, &m, err, errlen);
    default: return hbdisk_decode_lease(p, buf, len, &l, err, errlen);
    }
}

START_TEST(round_trip)
{
    for (unsigned si = 0; si < 2; si++) {
        unsigned s = sizes[si];
        struct hbdisk_pool p = pool(s);
        uint8_t *buf = calloc(1, s), *again = calloc(1, s);
        char err[256] = "";

        struct hbdisk_header h = header(s), h2;
        encode(HBDISK_HEADER, s, buf);
        ck_assert_msg(hbdisk_decode_header(buf, s, p.uuid, p.key, &h2, err, sizeof err) == 0, "%s", err);
        ck_assert(memcmp(&h, &h2, sizeof h) == 0);
        ck_assert_int_eq(hbdisk_encode_header(&h2, again, err, sizeof err), 0);
        ck_assert(memcmp(buf, again, s) == 0);

        struct hbdisk_slot sl;
        encode(HBDISK_SLOT, s, buf);
        ck_assert_msg(hbdisk_decode_slot(&p, 5, buf, s, &sl, err, sizeof err) == 0, "%s", err);
        ck_assert(memcmp(&sl, &slot0, sizeof sl) == 0);

        struct hbdisk_mailbox m;
        encode(HBDISK_MAILBOX, s, buf);
        ck_assert_msg(hbdisk_decode_mailbox(&p, 5, buf, s, &m, err, sizeof err) == 0, "%s", err);
        ck_assert(memcmp(&m, &mbox0, sizeof m) == 0);

        struct hbdisk_lease l;
        encode(HBDISK_LEASE, s, buf);
        ck_assert_msg(hbdisk_decode_lease(&p, buf, s, &l, err, sizeof err) == 0, "%s", err);
        ck_assert(memcmp(&l, &lease0, sizeof l) == 0);
        struct hbdisk_lease free_lease = {.owner = HBDISK_NONE, .counter = 42};
        ck_assert_int_eq(hbdisk_encode_lease(&p, &free_lease, buf, err, sizeof err), 0);
        ck_assert_int_eq(hbdisk_decode_lease(&p, buf, s, &l, err, sizeof err), 0);
        ck_assert(memcmp(&l, &free_lease, sizeof l) == 0);
        free(buf);
        free(again);
    }
}
END_TEST

START_TEST(every_bit_flip_and_truncation_refused)
{
    for (unsigned si = 0; si < 2; si++)
        for (unsigned k = HBDISK_HEADER; k <= HBDISK_LEASE; k++) {
            unsigned s = sizes[si];
            struct hbdisk_pool p = pool(s);
            uint8_t *buf = calloc(1, s);
            char err[256];
            encode(k, s, buf);
            for (unsigned bit = 0; bit < s * 8; bit++) {
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
                err[0] = 0;
                ck_assert_msg(decode(k, &p, buf, s, err, sizeof err) == -EINVAL, "kind %u size %u bit %u accepted", k, s,
                              bit);
                ck_assert(err[0]);
                buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            }
            for (size_t len = 0; len < s; len++) {
                /* a copy of exactly len bytes, so ASan sees any read past it */
                uint8_t *cut = malloc(len ? len : 1);
                memcpy(cut, buf, len);
                err[0] = 0;
                ck_assert_int_eq(decode(k, &p, cut, len, err, sizeof err), -EINVAL);
                ck_assert(err[0]);
                free(cut);
            }
            ck_assert_msg(decode(k, &p, buf, s, err, sizeof err) == 0, "%s", err);
            free(buf);
        }
}
END_TEST

START_TEST(foreign_pool_wrong_key_wrong_place)
{
    char err[256];
    for (unsigned si = 0; si < 2; si++)
        for (unsigned k = HBDISK_HEADER; k <= HBDISK_LEASE; k++) {
            unsigned s = sizes[si];
            uint8_t *buf = calloc(1, s);
            encode(k, s, buf);
            struct hbdisk_pool other = pool(s);
            other.uuid[15] ^= 1;
            ck_assert_int_eq(decode(k, &other, buf, s, err, sizeof err), -EINVAL);
            ck_assert_msg(strstr(err, "foreign pool"), "%s", err);
            other = pool(s);
            other.key[0] ^= 0x80;
            ck_assert_int_eq(decode(k, &other, buf, s, err, sizeof err), -EINVAL);
            ck_assert_msg(strstr(err, k == HBDISK_HEADER ? "another pool key" : "bad HMAC"), "%s", err);
            /* a block read with the wrong sector size */
            other = pool(sizes[1 - si]);
            if (k != HBDISK_HEADER) {
                ck_assert_int_eq(decode(k, &other, buf, s, err, sizeof err), -EINVAL);
                ck_assert(err[0]);
            }
            free(buf);
        }
    /* a slot or mailbox found at another host's place */
    struct hbdisk_pool p = pool(512);
    uint8_t buf[512];
    struct hbdisk_slot sl;
    struct hbdisk_mailbox m;
    encode(HBDISK_SLOT, 512, buf);
    ck_assert_int_eq(hbdisk_decode_slot(&p, 6, buf, sizeof buf, &sl, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "misplaced"), "%s", err);
    ck_assert_int_eq(hbdisk_decode_mailbox(&p, 5, buf, sizeof buf, &m, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "kind"), "%s", err);
}
END_TEST

START_TEST(encoders_refuse_what_decoders_would)
{
    char err[256];
    struct hbdisk_pool p = pool(512);
    uint8_t buf[4096];
    struct hbdisk_slot s = slot0;
    s.flags = 0x10;
    ck_assert_int_eq(hbdisk_encode_slot(&p, 0, &s, buf, err, sizeof err), -EINVAL);
    s = slot0;
    s.incarnation = 0;
    ck_assert_int_eq(hbdisk_encode_slot(&p, 0, &s, buf, err, sizeof err), -EINVAL);
    ck_assert_int_eq(hbdisk_encode_slot(&p, 64, &slot0, buf, err, sizeof err), -EINVAL);
    struct hbdisk_lease l = lease0;
    l.expiry_ticks = 0;
    ck_assert_int_eq(hbdisk_encode_lease(&p, &l, buf, err, sizeof err), -EINVAL);
    l = (struct hbdisk_lease){.owner = HBDISK_NONE, .expiry_ticks = 3};
    ck_assert_int_eq(hbdisk_encode_lease(&p, &l, buf, err, sizeof err), -EINVAL);
    struct hbdisk_mailbox m = {.master = 64};
    ck_assert_int_eq(hbdisk_encode_mailbox(&p, 0, &m, buf, err, sizeof err), -EINVAL);
    struct hbdisk_header h = header(512);
    h.disk_timeout_ms = 1999;
    ck_assert_int_eq(hbdisk_encode_header(&h, buf, err, sizeof err), -EINVAL);
    h = header(512);
    h.slot_count = 65;
    ck_assert_int_eq(hbdisk_encode_header(&h, buf, err, sizeof err), -EINVAL);
    h = header(512);
    h.sector_size = 1024;
    ck_assert_int_eq(hbdisk_encode_header(&h, buf, err, sizeof err), -EINVAL);
    p.sector_size = 2048;
    ck_assert_int_eq(hbdisk_encode_slot(&p, 0, &slot0, buf, err, sizeof err), -EINVAL);
    ck_assert(err[0]);
}
END_TEST

START_TEST(stale_incarnation)
{
    struct hbdisk_slot a = slot0, b = slot0;
    ck_assert(!hbdisk_slot_newer(&a, &b));
    b.seq++;
    ck_assert(hbdisk_slot_newer(&b, &a));
    ck_assert(!hbdisk_slot_newer(&a, &b));
    /* a restarted host: new incarnation, seq starting over */
    b.incarnation++;
    b.seq = 1;
    ck_assert(hbdisk_slot_newer(&b, &a));
    ck_assert(!hbdisk_slot_newer(&a, &b)); /* the old incarnation is stale */
    ck_assert_uint_eq(hbdisk_block(HBDISK_HEADER, 16, 0), 0);
    ck_assert_uint_eq(hbdisk_block(HBDISK_SLOT, 16, 3), 4);
    ck_assert_uint_eq(hbdisk_block(HBDISK_MAILBOX, 16, 3), 20);
    ck_assert_uint_eq(hbdisk_block(HBDISK_LEASE, 16, 0), 33);
}
END_TEST

/* ---------------------------------------------------------------- I/O */

/* A file in a temp dir that takes O_DIRECT: $TMPDIR, /tmp, then /var/tmp
 * (tmpfs refuses O_DIRECT with EINVAL).  NULL if none does. */
static struct hbdisk *open_scratch(unsigned flags, unsigned *sector, char *path, size_t pathlen)
{
    const char *dirs[] = {getenv("TMPDIR"), "/tmp", "/var/tmp"};
    for (unsigned i = 0; i < 3; i++) {
        if (!dirs[i])
            continue;
        snprintf(path, pathlen, "%s/test_hbdisk.XXXXXX", dirs[i]);
        int fd = mkstemp(path);
        if (fd < 0)
            continue;
        int rc = ftruncate(fd, 66 * 4096);
        close(fd);
        char err[256];
        struct hbdisk *d = rc == 0 ? hbdisk_open(path, flags, sector, err, sizeof err) : NULL;
        if (d)
            return d;
        printf("test_hbdisk: %s\n", err);
        unlink(path);
    }
    return NULL;
}

START_TEST(io_round_trip)
{
    for (unsigned si = 0; si < 2; si++) {
        char path[256];
        unsigned sector = 0;
        struct hbdisk *d = open_scratch(si ? HBDISK_OPEN_FILE_4K : 0, &sector, path, sizeof path);
        if (!d) {
            printf("test_hbdisk: skipping O_DIRECT I/O: no temp dir takes O_DIRECT\n");
            return;
        }
        ck_assert_uint_eq(sector, sizes[si]);
        struct hbdisk_pool p = pool(sector);
        uint8_t *w = hbdisk_alloc(sector), *r = hbdisk_alloc(sector);
        char err[256];
        for (unsigned k = HBDISK_HEADER; k <= HBDISK_LEASE; k++) {
            encode(k, sector, w);
            uint64_t blk = hbdisk_block(k, 16, 5);
            ck_assert_int_eq(hbdisk_io_write(d, blk, w, 5000), 0);
            memset(r, 0, sector);
            ck_assert_int_eq(hbdisk_io_read(d, blk, r, 5000), 0);
            ck_assert(memcmp(w, r, sector) == 0);
            ck_assert_msg(decode(k, &p, r, sector, err, sizeof err) == 0, "%s", err);
        }
        /* a never-written block decodes as refused, not as a crash */
        ck_assert_int_eq(hbdisk_io_read(d, 60, r, 5000), 0);
        ck_assert_int_eq(decode(HBDISK_SLOT, &p, r, sector, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "magic"), "%s", err);
        /* past the end of the file: a short read */
        ck_assert_int_lt(hbdisk_io_read(d, 1000000, r, 5000), 0);
        free(w);
        free(r);
        hbdisk_close(d);
        unlink(path);
    }
}
END_TEST

START_TEST(io_hung_lun_times_out)
{
    char path[256];
    unsigned sector = 0;
    struct hbdisk *d = open_scratch(0, &sector, path, sizeof path);
    if (!d) {
        printf("test_hbdisk: skipping the hung-LUN test: no temp dir takes O_DIRECT\n");
        return;
    }
    uint8_t *buf = hbdisk_alloc(sector);
    uint8_t *w = hbdisk_alloc(sector);
    memset(w, 0x77, sector);
    hbdisk_test_stall(d, true);
    memset(buf, 0x11, sector);
    ck_assert_int_eq(hbdisk_io_read(d, 1, buf, 100), -ETIMEDOUT);
    ck_assert_uint_eq(buf[0], 0x11); /* untouched */
    /* the LUN still hangs: the next call times out too, never blocks */
    ck_assert_int_eq(hbdisk_io_write(d, 1, w, 50), -ETIMEDOUT);
    /* it comes back: the late read completes and is discarded; I/O works */
    hbdisk_test_stall(d, false);
    ck_assert_int_eq(hbdisk_io_write(d, 2, w, 5000), 0);
    ck_assert_int_eq(hbdisk_io_read(d, 2, buf, 5000), 0);
    ck_assert(memcmp(buf, w, sector) == 0);
    /* closing with an I/O stuck returns at once */
    hbdisk_test_stall(d, true);
    ck_assert_int_eq(hbdisk_io_read(d, 1, buf, 20), -ETIMEDOUT);
    hbdisk_close(d);
    free(buf);
    free(w);
    unlink(path);
}
END_TEST

START_TEST(open_refuses)
{
    char err[256] = "";
    unsigned s;
    ck_assert_ptr_null(hbdisk_open("/nonexistent/hbdisk", 0, &s, err, sizeof err));
    ck_assert(err[0]);
    err[0] = 0;
    ck_assert_ptr_null(hbdisk_open("/dev/null", 0, &s, err, sizeof err));
    ck_assert(err[0]);
}
END_TEST

/* ---------------------------------------------------------------- seeds */

static void write_seeds(const char *dir)
{
    static const char *names[] = {"", "header", "slot", "mailbox", "lease"};
    for (unsigned si = 0; si < 2; si++)
        for (unsigned k = HBDISK_HEADER; k <= HBDISK_LEASE; k++) {
            unsigned s = sizes[si];
            uint8_t *buf = calloc(1, s + 1);
            buf[0] = (uint8_t)((k - 1) | (si ? 4 : 0));
            encode(k, s, buf + 1);
            /* the fuzzer takes the index from byte 24 of the block: 5 */
            char path[512];
            snprintf(path, sizeof path, "%s/hbdisk-%s-%u", dir, names[k], s);
            FILE *f = fopen(path, "wb");
            ck_assert_ptr_nonnull(f);
            ck_assert_uint_eq(fwrite(buf, 1, s + 1, f), s + 1);
            fclose(f);
            if (s == 512) { /* the fix-up mode: mutations reach the field checks */
                buf[0] |= 8;
                snprintf(path, sizeof path, "%s/hbdisk-%s-fixup", dir, names[k]);
                f = fopen(path, "wb");
                ck_assert_ptr_nonnull(f);
                ck_assert_uint_eq(fwrite(buf, 1, s + 1, f), s + 1);
                fclose(f);
            }
            free(buf);
        }
}

START_TEST(seeds)
{
    const char *dir = getenv("VIGIL_HBDISK_SEEDS");
    if (dir)
        write_seeds(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("hbdisk");
    TCase *tc = tcase_create("hbdisk");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, round_trip);
    tcase_add_test(tc, every_bit_flip_and_truncation_refused);
    tcase_add_test(tc, foreign_pool_wrong_key_wrong_place);
    tcase_add_test(tc, encoders_refuse_what_decoders_would);
    tcase_add_test(tc, stale_incarnation);
    tcase_add_test(tc, io_round_trip);
    tcase_add_test(tc, io_hung_lun_times_out);
    tcase_add_test(tc, open_refuses);
    tcase_add_test(tc, seeds);
    suite_add_tcase(s, tc);
    return vigil_run_suite(s);
}
