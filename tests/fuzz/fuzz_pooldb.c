/* Fuzz target: the pool database decoders.  The first byte picks one:
 *   0  pooldb_decode_snapshot on the rest as is
 *   1  pooldb_decode_change on the rest
 *   2  the snapshot decoder after fixing up the length and CRC, so that
 *      mutations get past the CRC and reach the field checks
 * Whatever a decoder accepts must encode back to exactly the same bytes
 * (the encoding is canonical; a format 2 or 3 snapshot comes back as format
 * 4) and decode again to an equal value; whatever
 * it refuses must come with a reason and leave the output untouched. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "membership/pooldb.h"
#include "tests/pooldb_equal.h"

static void snapshot(const uint8_t *data, size_t size)
{
    char err[256] = "";
    uint64_t epoch = 0x5e5e5e5e;
    struct ha_db db;
    memset(&db, 0x5e, sizeof db);
    struct ha_db untouched = db;
    if (pooldb_decode_snapshot(data, size, &epoch, &db, err, sizeof err) < 0) {
        if (!err[0] || epoch != 0x5e5e5e5e || memcmp(&db, &untouched, sizeof db))
            abort();
        return;
    }
    uint8_t *enc;
    size_t len;
    if (pooldb_encode_snapshot(epoch, &db, &enc, &len) < 0)
        abort();
    /* a format 2 or 3 snapshot (a pool made before fence devices, before
     * domain XML) is written back as format 4: the same state, not the same
     * bytes */
    if (data[4] == 4 && (len != size || memcmp(enc, data, size)))
        abort();
    uint64_t epoch2;
    struct ha_db db2;
    if (pooldb_decode_snapshot(enc, len, &epoch2, &db2, err, sizeof err) < 0)
        abort();
    if (epoch2 != epoch || db_diff(&db, &db2) || pooldb_digest(epoch, &db) != pooldb_digest(epoch2, &db2))
        abort();
    /* a decoded database is one the rest of vigil can copy and apply to */
    struct ha_db copy;
    if (ha_db_copy(&copy, &db) == 0) {
        if (db_diff(&copy, &db))
            abort();
        ha_db_free(&copy);
    }
    free(enc);
    ha_db_free(&db);
    ha_db_free(&db2);
}

static void change(const uint8_t *data, size_t size)
{
    char err[256] = "";
    struct ha_change c;
    memset(&c, 0x5e, sizeof c);
    struct ha_change untouched = c;
    if (pooldb_decode_change(data, size, &c, err, sizeof err) < 0) {
        if (!err[0] || memcmp(&c, &untouched, sizeof c))
            abort();
        return;
    }
    static uint8_t enc[POOLDB_CHANGE_MAX];
    int n = pooldb_encode_change(&c, enc, sizeof enc);
    if (n < 0 || (size_t)n != size || memcmp(enc, data, size))
        abort();
    struct ha_change c2;
    if (pooldb_decode_change(enc, (size_t)n, &c2, err, sizeof err) < 0 || change_diff(&c, &c2))
        abort();
    /* whatever it applies to, a change leaves a database the encoder takes
     * (an XML it copied is a storable one) or is refused with it unchanged */
    struct ha_db db;
    ha_db_init(&db);
    struct ha_db_vm v = {.name = "v0", .priority = 3, .cpus = 1, .mem_mb = 1};
    if (ha_db_add_vm(&db, &v) == 0) {
        uint64_t d = pooldb_digest(1, &db);
        uint8_t *snap;
        size_t len;
        if (ha_db_apply(&db, &c) < 0 ? pooldb_digest(1, &db) != d
                                     : pooldb_encode_snapshot(1, &db, &snap, &len) == 0 ? (free(snap), false) : true)
            abort();
    }
    ha_db_free(&db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1 << 20))
        return 0;
    unsigned mode = data[0] % 3;
    data++;
    size--;
    if (mode == 0)
        snapshot(data, size);
    else if (mode == 1)
        change(data, size);
    else if (size >= 16) {
        uint8_t *fixed = malloc(size);
        if (!fixed)
            return 0;
        memcpy(fixed, data, size);
        uint32_t total = (uint32_t)size, crc;
        for (int i = 0; i < 4; i++)
            fixed[8 + i] = (uint8_t)(total >> (8 * i));
        crc = pooldb_crc32(fixed, size - 4);
        for (int i = 0; i < 4; i++)
            fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        snapshot(fixed, size);
        free(fixed);
    }
    return 0;
}
