/* Fuzz target: the events log's line decoder.  Whatever it refuses leaves
 * the event untouched; whatever it accepts is an event that encodes back to
 * exactly the same line (one encoding per event) and decodes again to an
 * equal event, and that the CLI's text and JSON output can show.
 *
 * Each input is tried as it is, and again with the CRC after its last tab
 * recomputed, so that mutations get past the CRC to the field checks. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/events.h"
#include "membership/pooldb.h"

static bool same(const struct vigil_event *a, const struct vigil_event *b)
{
    return a->seq == b->seq && a->time_ms == b->time_ms && !strcmp(a->host, b->host) &&
           !strcmp(a->actor, b->actor) && !strcmp(a->what, b->what) && !strcmp(a->why, b->why);
}

/* a formatted event is one line, NUL-terminated inside the buffer */
static void one_line(const char *buf, size_t len)
{
    const char *nul = memchr(buf, 0, len);
    if (!nul || memchr(buf, '\n', (size_t)(nul - buf)))
        abort();
}

static void check(const uint8_t *data, size_t size)
{
    struct vigil_event ev, untouched, back;
    memset(&ev, 0x5e, sizeof ev);
    untouched = ev;
    if (events_decode_line((const char *)data, size, &ev) < 0) {
        if (memcmp(&ev, &untouched, sizeof ev))
            abort();
        return;
    }
    char line[EVENTS_LINE_MAX + 1];
    int n = events_encode_line(&ev, line, sizeof line);
    size_t body = size && data[size - 1] == '\n' ? size - 1 : size;
    if (n < 1 || (size_t)n != body + 1 || memcmp(line, data, body) || line[body] != '\n')
        abort();
    if (events_decode_line(line, (size_t)n, &back) < 0 || !same(&ev, &back))
        abort();
    static char text[EVENTS_FORMAT_MAX], json[EVENTS_FORMAT_MAX];
    events_format_text(&ev, text, sizeof text);
    one_line(text, sizeof text);
    events_format_json(&ev, json, sizeof json);
    one_line(json, sizeof json);
    size_t jl = strlen(json);
    if (jl < 2 || json[0] != '{' || json[jl - 1] != '}')
        abort(); /* EVENTS_FORMAT_MAX always holds the whole object */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(data, size);
    if (size > EVENTS_LINE_MAX)
        return 0;
    const uint8_t *tab = NULL;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '\t')
            tab = data + i;
    if (!tab)
        return 0;
    static char fixed[EVENTS_LINE_MAX + 16];
    size_t body = (size_t)(tab - data) + 1;
    memcpy(fixed, data, body);
    snprintf(fixed + body, sizeof fixed - body, "%08x\n", (unsigned)pooldb_crc32(fixed, body));
    check((const uint8_t *)fixed, body + 9);
    return 0;
}
