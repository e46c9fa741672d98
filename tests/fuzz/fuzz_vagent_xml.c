/* Fuzz target: vagent_xml_check (agents/vxml.c), the gate every domain XML
 * passes before the pool stores it.  Whatever it gets: a refusal says why
 * (a terminated, non-empty reason) and leaves the outputs alone; an
 * acceptance gives a valid vigil name, memory of at least 1 KiB and 1 to
 * 4096 vCPUs, and the same answer twice (it is pure). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agents/vagent.h"
#include "ha/ha.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char name[VAGENT_NAME_MAX], name2[VAGENT_NAME_MAX], err[VAGENT_WHY_MAX];
    uint64_t mem = 7, mem2 = 0;
    int vcpus = -7, vcpus2 = 0;

    memset(name, 0x5a, sizeof name);
    memset(err, 0x5a, sizeof err);
    int rc = vagent_xml_check((const char *)data, size, name, &mem, &vcpus, err, sizeof err);
    if (rc < 0) {
        if (rc != -EINVAL && rc != -ENOMEM)
            abort();
        if (!memchr(err, 0, sizeof err) || !err[0])
            abort();
        if (mem != 7 || vcpus != -7 || (unsigned char)name[0] != 0x5a)
            abort();
        return 0;
    }
    if (!memchr(name, 0, sizeof name) || !ha_name_valid(name) || mem == 0 || vcpus < 1 || vcpus > 4096)
        abort();
    if (vagent_xml_check((const char *)data, size, name2, &mem2, &vcpus2, err, sizeof err) != 0 ||
        strcmp(name, name2) || mem != mem2 || vcpus != vcpus2)
        abort();
    return 0;
}
