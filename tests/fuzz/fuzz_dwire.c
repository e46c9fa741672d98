/* Fuzz target: vigild's own CPG messages (daemon/dwire.c).  Any bytes
 * either fail to decode or decode to a message whose encoding is exactly
 * those bytes (one message, one encoding), and nothing reads outside them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/dwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20)
        return 0;
    /* a private copy, so that a read past the end is caught by ASan */
    uint8_t *m = malloc(size ? size : 1);
    if (!m)
        return 0;
    memcpy(m, data, size);
    struct dreq q;
    struct drep p;
    struct dfacts f;
    size_t len;
    if (dreq_decode(m, size, &q) == 0) {
        uint8_t *e = dreq_encode(&q, &len);
        if (!e || len != size || memcmp(e, m, size))
            abort();
        free(e);
    }
    if (drep_decode(m, size, &p) == 0) {
        uint8_t *e = drep_encode(&p, &len);
        if (!e || len != size || memcmp(e, m, size))
            abort();
        free(e);
    }
    struct dorder o;
    if (dorder_decode(m, size, &o) == 0) {
        uint8_t *e = dorder_encode(&o, &len);
        if (!e || len != size || memcmp(e, m, size))
            abort();
        free(e);
    }
    static struct dreport_vm rv[DWIRE_MAX_REPORTS];
    struct dreport r = {.v = rv};
    if (dreport_decode(m, size, &r) == 0) {
        uint8_t *e = dreport_encode(&r, &len);
        if (!e || len != size || memcmp(e, m, size))
            abort();
        free(e);
    }
    struct dfailed x;
    if (dfailed_decode(m, size, &x) == 0) {
        uint8_t *e = dfailed_encode(&x, &len);
        if (!e || len != size || memcmp(e, m, size))
            abort();
        free(e);
    }
    if (dfacts_decode(m, size, &f) == 0) {
        uint8_t e[24];
        dfacts_encode(&f, e);
        if (size != 24 || memcmp(e, m, 24))
            abort();
    }
    free(m);
    return 0;
}
