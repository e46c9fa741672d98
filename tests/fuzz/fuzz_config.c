/* Fuzz target: the vigil.conf parser never crashes, refuses with a message
 * and an untouched struct, and whatever it accepts dumps to a text that
 * parses back to an equal struct. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* static: a struct is several KiB and so is the dump */
    static struct vigil_config c, back, sentinel;
    static char dump[VIGIL_CONFIG_DUMP_MAX];
    char err[512];
    memset(&sentinel, 0x5a, sizeof sentinel);
    c = sentinel;
    err[0] = 0;
    if (vigil_config_parse((const char *)data, size, "fuzz.conf", &c, err, sizeof err) < 0) {
        if (!err[0] || strncmp(err, "fuzz.conf:", 10))
            abort(); /* a refusal always says where and why */
        if (memcmp(&c, &sentinel, sizeof c))
            abort(); /* and leaves the caller's struct alone */
        return 0;
    }
    int n = vigil_config_dump(&c, dump, sizeof dump);
    if (n < 0 || (size_t)n != strlen(dump))
        abort();
    if (vigil_config_parse(dump, (size_t)n, "dump", &back, err, sizeof err) < 0)
        abort(); /* the canonical text of an accepted file is accepted */
    if (!vigil_config_equal(&c, &back))
        abort();
    /* and canonical means a fixed point: dumping again changes nothing */
    static char again[VIGIL_CONFIG_DUMP_MAX];
    if (vigil_config_dump(&back, again, sizeof again) != n || memcmp(dump, again, (size_t)n))
        abort();
    return 0;
}
