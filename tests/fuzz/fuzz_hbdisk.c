/* Fuzz target: the heartbeat disk's block decoders (storage/hbdisk.h).
 * The first byte picks the decoder (bits 0-1: header, slot, mailbox,
 * lease), bit 2 the sector size (4096 if set, else 512) and bit 3 a fix-up
 * mode: the rest is padded or cut to one sector and given a valid HMAC and
 * CRC, so that mutations get past them and reach the field checks.  The
 * block index is the second byte of the rest modulo 64 (for slots and
 * mailboxes).  Whatever a decoder accepts must encode back to exactly the
 * same bytes; whatever it refuses must come with a reason and leave the
 * output untouched. */
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "membership/pooldb.h"
#include "storage/hbdisk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    data++;
    size--;
    struct hbdisk_pool p = {.sector_size = sel & 4 ? 4096 : 512};
    memset(p.uuid, 0xa5, sizeof p.uuid);
    for (unsigned i = 0; i < sizeof p.key; i++)
        p.key[i] = (uint8_t)(i * 7 + 1);
    unsigned kind = (sel & 3) + 1;
    unsigned index = size > 24 ? data[24] % HBDISK_MAX_HOSTS : 0;

    uint8_t *fixed = NULL;
    if (sel & 8) {
        fixed = calloc(1, p.sector_size);
        if (!fixed)
            abort();
        memcpy(fixed, data, size < p.sector_size ? size : p.sector_size);
        size = p.sector_size;
        if (kind != HBDISK_HEADER) {
            unsigned n = 0;
            if (!HMAC(EVP_sha256(), p.key, sizeof p.key, fixed, size - 36, fixed + size - 36, &n))
                abort();
        }
        put32(fixed + size - 4, pooldb_crc32(fixed, size - 4));
        data = fixed;
    }

    char err[256] = "";
    uint8_t *enc = calloc(1, 4096);
    if (!enc)
        abort();
    int rc, erc = -1;
    union {
        struct hbdisk_header h;
        struct hbdisk_slot s;
        struct hbdisk_mailbox m;
        struct hbdisk_lease l;
    } u, untouched;
    memset(&u, 0x5e, sizeof u);
    untouched = u;
    switch (kind) {
    case HBDISK_HEADER:
        rc = hbdisk_decode_header(data, size, p.uuid, NULL, &u.h, err, sizeof err);
        if (rc == 0)
            erc = hbdisk_encode_header(&u.h, enc, err, sizeof err);
        break;
    case HBDISK_SLOT:
        rc = hbdisk_decode_slot(&p, index, data, size, &u.s, err, sizeof err);
        if (rc == 0)
            erc = hbdisk_encode_slot(&p, index, &u.s, enc, err, sizeof err);
        break;
    case HBDISK_MAILBOX:
        rc = hbdisk_decode_mailbox(&p, index, data, size, &u.m, err, sizeof err);
        if (rc == 0)
            erc = hbdisk_encode_mailbox(&p, index, &u.m, enc, err, sizeof err);
        break;
    default:
        rc = hbdisk_decode_lease(&p, data, size, &u.l, err, sizeof err);
        if (rc == 0)
            erc = hbdisk_encode_lease(&p, &u.l, enc, err, sizeof err);
        break;
    }
    if (rc < 0) {
        if (!err[0] || memcmp(&u, &untouched, sizeof u))
            abort();
    } else if (erc < 0 || memcmp(enc, data, size)) {
        abort();
    }
    free(enc);
    free(fixed);
    return 0;
}
