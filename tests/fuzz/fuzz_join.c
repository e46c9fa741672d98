/* Fuzz target: the join token and the two join messages, as they arrive
 * from a terminal or the network.  The decoders never crash, always say
 * why they refuse, and what they accept encodes back to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "membership/join.h"

static void token(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return;
    memcpy(text, data, size);
    text[size] = 0;
    struct join_token t, again;
    char err[256] = "", enc[JOIN_TOKEN_TEXT_LEN + 1];
    if (join_token_decode(text, &t, err, sizeof err) == 0) {
        if (join_token_encode(&t, enc, sizeof enc) != JOIN_TOKEN_TEXT_LEN ||
            join_token_decode(enc, &again, err, sizeof err) || memcmp(&t, &again, sizeof t))
            abort();
    } else if (!err[0])
        abort();
    free(text);
}

static void request(const uint8_t *data, size_t size)
{
    struct join_request r;
    char err[256] = "";
    uint8_t enc[JOIN_REQUEST_MAX];
    if (join_request_decode(data, size, &r, err, sizeof err) == 0) {
        int n = join_request_encode(&r, enc, sizeof enc, err, sizeof err);
        if (n < 0 || (size_t)n != size || memcmp(enc, data, size))
            abort();
    } else if (!err[0])
        abort();
}

static void reply(const uint8_t *data, size_t size)
{
    struct join_reply r;
    char err[256] = "";
    if (join_reply_decode(data, size, &r, err, sizeof err) == 0) {
        uint8_t *enc;
        size_t n;
        if (join_reply_encode(&r, &enc, &n, err, sizeof err) || n != size || memcmp(enc, data, size))
            abort();
        free(enc);
        join_reply_free(&r);
    } else {
        if (!err[0] || r.authkey || r.corosync_conf || r.snapshot)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    token(data, size);
    request(data, size);
    reply(data, size);
    /* Mutations rarely keep the length field right; fixing it up reaches
     * the field decoders far more often. */
    if (size >= JOIN_HEADER_LEN) {
        uint8_t *copy = malloc(size);
        if (!copy)
            return 0;
        memcpy(copy, data, size);
        for (int i = 0; i < 4; i++)
            copy[8 + i] = (uint8_t)(size >> (8 * i));
        request(copy, size);
        reply(copy, size);
        free(copy);
    }
    return 0;
}
