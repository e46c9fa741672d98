/* Fuzz target: the decoders of fencing/ (fencing/fence.h): device specs,
 * an agent's output, a READ KEYS answer.  A spec either fails or gives a
 * device that passes fence_device_check and whose agent input holds one
 * key=value per line; scrubbing leaves no trace of the secret; nothing reads
 * outside the input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fencing/fence.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s, err[256], buf[4096], reason[128];
    struct fence_device d;
    uint64_t keys[8];
    uint32_t al;
    int n;

    if (size > 1 << 16)
        return 0;
    s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    /* password_file would read files of this machine */
    if (!strstr(s, "password_file") && fence_device_parse(s, &d, err, sizeof err) == 0) {
        if (fence_device_check(&d, err, sizeof err))
            abort();
        n = fence_agent_stdin(&d, FENCE_OFF, buf, sizeof buf);
        if (n >= 0) {
            const char *p = buf;
            if ((size_t)n != strlen(buf))
                abort();
            while (*p) { /* every line is key=value */
                const char *e = strchr(p, '\n');
                if (!e || !memchr(p, '=', (size_t)(e - p)))
                    abort();
                p = e + 1;
            }
        }
        fence_device_describe(&d, buf, sizeof buf);
    }
    fence_agent_reason(s, reason, sizeof reason);
    if (size >= 2) { /* the first bytes as a secret, the rest as text */
        char secret[8];
        size_t sl = data[0] % 7 + 1;
        if (sl < size) {
            memcpy(secret, data + 1, sl - 1 < size - 1 ? sl - 1 : 0);
            secret[sl - 1] = '\0';
            snprintf(buf, sizeof buf, "%s", s + sl);
            fence_scrub(buf, sizeof buf, secret);
            if (secret[0] && !strchr(secret, '*') && strstr(buf, secret))
                abort();
        }
    }
    if (size >= 4) {
        al = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 | data[3];
        al %= 128;
        n = fence_scsi_decode_keys(data + 4, size - 4, al, keys, 8);
        if (n > 8)
            abort();
    }
    free(s);
    return 0;
}
