/* Fuzz target: the verdict from path states (storage/mpath.h's pure part).
 * The bytes describe a map as libdmmp could hand it over: byte 0 the number
 * of groups (may exceed MPATH_MAX_GROUPS), then per group a path count
 * (may exceed MPATH_MAX_PATHS), a group state, a flag byte (bit 0: counters
 * given instead of listed paths: then total, up, failed bytes follow), then
 * one state byte per path; the rest is the map's name.  Whatever it gets,
 * mpath_summarize() keeps counts consistent, never calls a map with no
 * usable path anything but all-failed, and the text and JSON stay bounded
 * and terminated. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/mpath.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int next(const uint8_t *data, size_t size, size_t *at)
{
    return *at < size ? data[(*at)++] : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mpath_summary *s = calloc(1, sizeof *s);
    size_t at = 0;
    if (!s)
        return 0;
    s->ngroups = (unsigned)next(data, size, &at);
    for (unsigned g = 0; g < s->ngroups && g < MPATH_MAX_GROUPS; g++) {
        struct mpath_group *pg = &s->groups[g];
        unsigned n = (unsigned)next(data, size, &at);
        pg->id = g + 1;
        pg->state = next(data, size, &at);
        if (next(data, size, &at) & 1) {
            pg->paths_total = (unsigned)next(data, size, &at);
            pg->paths_up = (unsigned)next(data, size, &at);
            pg->paths_failed = (unsigned)next(data, size, &at);
        } else {
            pg->paths_total = n;
        }
        pg->npaths = n;
        for (unsigned i = 0; i < n && i < MPATH_MAX_PATHS; i++) {
            snprintf(pg->paths[i].dev, sizeof pg->paths[i].dev, "sd%u", i);
            pg->paths[i].state = next(data, size, &at);
        }
    }
    size_t name = size - (at < size ? at : size);
    if (name >= sizeof s->map)
        name = sizeof s->map - 1;
    memcpy(s->map, data + (at < size ? at : size), name);
    mpath_summarize(s);

    if (s->ngroups > MPATH_MAX_GROUPS || s->paths_up + s->paths_failed + s->paths_other != s->paths_total ||
        s->paths_up > s->paths_total || s->groups_failed > s->ngroups)
        abort();
    if ((s->paths_up == 0) != (s->verdict == MPATH_ALL_FAILED))
        abort();
    if (s->verdict == MPATH_ALL_UP && s->paths_up != s->paths_total)
        abort();
    if (strnlen(s->desc, sizeof s->desc) >= sizeof s->desc)
        abort();
    int need = mpath_summary_json(s, NULL, 0);
    char *buf = need > 0 ? malloc((size_t)need + 1) : NULL;
    if (!buf || mpath_summary_json(s, buf, (size_t)need + 1) != need || strlen(buf) != (size_t)need)
        abort();
    free(buf);
    free(s);
    return 0;
}
