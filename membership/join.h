/* The pool join protocol: how a new host gets what it needs to become a
 * pool member, over TLS 1.3 (OpenSSL), without a certificate authority.
 *
 * `vigil pool join-token` on the master makes a one-time token: the
 * master's IP address and join port, a random secret, and the SHA-256
 * fingerprint of the master's self-signed certificate.  The new host
 * connects, accepts the server only if its certificate has that exact
 * fingerprint (the fingerprint proves the master), then sends the secret
 * (the secret proves the joiner).  The master answers with one reply: the
 * corosync authkey, corosync.conf, the new host's nodeid and an opaque
 * pool-database snapshot -- or a refusal with its reason.  docs/join.md has
 * the operator's view and the threat model.
 *
 * Conventions: functions return 0 (or a length) on success and -errno on
 * failure; those taking `err, errlen` then leave a one-line human message
 * there.  Nothing here keeps global state, so separate objects may be used
 * from separate threads.  Network calls are blocking, bounded by the
 * timeout they are given, and never raise SIGPIPE in the caller.
 *
 * Wire format (inside TLS; all integers little-endian):
 *   header   magic[4] ("VGJQ" request, "VGJR" reply), u16 version (1),
 *            u16 reserved (0), u32 total length including the header
 *   request  u8 len + name, u8 len + address, secret[32]
 *   reply    i32 status, u16 len + reason, u32 nodeid,
 *            u32 len + authkey, u32 len + corosync.conf, u32 len + snapshot
 * Decoders accept exactly one canonical encoding: encode(decode(b)) == b. */
#ifndef VIGIL_JOIN_H
#define VIGIL_JOIN_H

#include <stddef.h>
#include <stdint.h>

#define JOIN_SECRET_LEN 32
#define JOIN_FPR_LEN 32  /* SHA-256 of the DER certificate */
#define JOIN_HASH_LEN 32 /* SHA-256 of the secret */
#define JOIN_PORT_DEFAULT 7405

#define JOIN_TOKEN_PREFIX "vigil1-"
#define JOIN_TOKEN_TEXT_LEN 123 /* characters, without the NUL */
#define JOIN_FPR_HEX_SIZE (JOIN_FPR_LEN * 3) /* "AB:CD:..." and the NUL */

#define JOIN_NAME_MAX 63
#define JOIN_REASON_MAX 255
#define JOIN_AUTHKEY_MAX 4096
#define JOIN_CONF_MAX (64 * 1024)
#define JOIN_SNAPSHOT_MAX (16 * 1024 * 1024)
#define JOIN_HEADER_LEN 12
#define JOIN_REQUEST_MAX (JOIN_HEADER_LEN + 1 + JOIN_NAME_MAX + 1 + JOIN_NAME_MAX + JOIN_SECRET_LEN)
#define JOIN_REPLY_MAX                                                                                      \
    (JOIN_HEADER_LEN + 4 + 2 + JOIN_REASON_MAX + 4 + 4 + JOIN_AUTHKEY_MAX + 4 + JOIN_CONF_MAX + 4 +        \
     JOIN_SNAPSHOT_MAX)

/* ---------------------------------------------------------------- tokens */

/* host is an IPv4 or IPv6 literal, never a name: a join must finish within
 * its timeout, and name resolution cannot be bounded. */
struct join_token {
    char host[64];
    int port; /* 1..65535 */
    uint8_t secret[JOIN_SECRET_LEN];
    uint8_t fpr[JOIN_FPR_LEN];
};

/* Text form: "vigil1-" + base64url without padding of 87 bytes:
 * version (1), address (16, IPv4 as ::ffff:a.b.c.d), port (u16),
 * secret (32), fingerprint (32), checksum (first 4 bytes of the SHA-256 of
 * everything before it, so that a mistyped token is told apart from a
 * wrong one).  out needs JOIN_TOKEN_TEXT_LEN + 1 bytes.  Returns the text
 * length, -EINVAL for a host that is not a usable IP address or a bad
 * port, -ENOSPC if out is too small. */
int join_token_encode(const struct join_token *t, char *out, size_t outlen);
/* Surrounding white space is ignored.  Distinct messages for: not a
 * token (prefix), another version, a bad character, truncated, too long,
 * checksum mismatch, bad address or port.  *out is untouched on error. */
int join_token_decode(const char *text, struct join_token *out, char *err, size_t errlen);

/* The pool keeps only this hash of a token's secret. */
void join_secret_hash(const uint8_t secret[JOIN_SECRET_LEN], uint8_t out[JOIN_HASH_LEN]);
/* 1 if secret hashes to hash, else 0; constant time. */
int join_secret_matches(const uint8_t secret[JOIN_SECRET_LEN], const uint8_t hash[JOIN_HASH_LEN]);
/* Cryptographically strong random bytes (RAND_bytes): 0 or -EIO. */
int join_random(void *buf, size_t n);

/* ---------------------------------------------------------------- the certificate */

/* Loads dir/key.pem + dir/cert.pem, or on first use creates them (and dir,
 * mode 0700): an EC P-256 key (mode 0600) and a self-signed certificate
 * for CN=cn valid for 100 years (only the fingerprint is ever checked).
 * Fills fpr with the SHA-256 of the DER certificate.  Refuses a key.pem
 * that group or others can read, and a cert.pem without its key. */
int join_cert_ensure(const char *dir, const char *cn, uint8_t fpr[JOIN_FPR_LEN], char *err, size_t errlen);
/* "AB:CD:...:EF" (95 characters): out needs JOIN_FPR_HEX_SIZE bytes.
 * Returns the length or -ENOSPC. */
int join_fpr_hex(const uint8_t fpr[JOIN_FPR_LEN], char *out, size_t outlen);

/* ---------------------------------------------------------------- messages */

struct join_request {
    char name[JOIN_NAME_MAX + 1];    /* host name: [A-Za-z0-9._-], starts alphanumeric */
    char address[JOIN_NAME_MAX + 1]; /* its IPv4/IPv6 address for corosync */
    uint8_t secret[JOIN_SECRET_LEN];
};

struct join_reply {
    int status;                         /* 0 accepted; otherwise refused */
    char reason[JOIN_REASON_MAX + 1];   /* refusal reason (required if refused); no control characters */
    uint32_t nodeid;                    /* accepted: non-zero */
    uint8_t *authkey;                   /* accepted: 1..JOIN_AUTHKEY_MAX bytes */
    size_t authkey_len;
    char *corosync_conf;                /* accepted: 1..JOIN_CONF_MAX bytes of text, NUL-terminated */
    uint8_t *snapshot;                  /* opaque, 0..JOIN_SNAPSHOT_MAX bytes */
    size_t snapshot_len;
};
/* A refusal carries no payload: nodeid 0 and no authkey, conf or snapshot. */

/* Frees the payloads a decoder or join_client allocated and zeroes *r. */
void join_reply_free(struct join_reply *r);

/* Encoders check the message as the decoder would, so nothing is sent that
 * the other side must refuse.  join_request_encode writes at most
 * JOIN_REQUEST_MAX bytes and returns the length; join_reply_encode
 * allocates *out (free() it). */
int join_request_encode(const struct join_request *r, uint8_t *buf, size_t buflen, char *err, size_t errlen);
int join_reply_encode(const struct join_reply *r, uint8_t **out, size_t *outlen, char *err, size_t errlen);
/* Pure decoders of one whole message: 0, or -EBADMSG with the reason.  On
 * error *out holds nothing to free (zeroed for the reply). */
int join_request_decode(const uint8_t *buf, size_t len, struct join_request *out, char *err, size_t errlen);
int join_reply_decode(const uint8_t *buf, size_t len, struct join_reply *out, char *err, size_t errlen);

/* ---------------------------------------------------------------- the master's side */

/* Meant for one helper thread of the daemon; calls block, bounded. */
struct join_server;
struct join_conn;

/* Listens on bind_addr (an IP literal; NULL: every IPv6 and IPv4 address)
 * port (0: an ephemeral port, see join_server_port) with the key and
 * certificate join_cert_ensure made in dir.  TLS 1.3 only, no session
 * tickets. */
struct join_server *join_server_new(const char *dir, const char *bind_addr, int port, char *err, size_t errlen);
int join_server_fd(const struct join_server *s); /* the listening socket, for poll() */
int join_server_port(const struct join_server *s);
/* The fingerprint of the certificate this server presents: put this one in tokens. */
void join_server_fpr(const struct join_server *s, uint8_t fpr[JOIN_FPR_LEN]);
void join_server_free(struct join_server *s);

/* Waits up to timeout_ms for a host to connect, then gives that host up to
 * timeout_ms more for the TLS handshake and its whole request (so a caller
 * looping on this never cuts off a host that arrived late).  Returns 0
 * with *out and *req set; -EAGAIN if nobody connected (err says so; not
 * worth logging); -ETIMEDOUT, -EBADMSG, -EPROTO, -ECONNRESET... if a host
 * connected but failed (err names it: worth logging).  The secret is not
 * checked here: compare join_secret_hash(req->secret) with the pool's. */
int join_server_accept(struct join_server *s, int timeout_ms, struct join_conn **out, struct join_request *req,
                       char *err, size_t errlen);
/* "203.0.113.7:50122": who this connection comes from. */
const char *join_conn_peer(const struct join_conn *c);
/* Sends the reply and closes the connection, within timeout_ms.  Returns
 * 0 only once the joiner confirmed (TLS close_notify) that it received a
 * well-formed reply; otherwise -errno with the reason, and the joiner may
 * or may not have it (make joins idempotent: see docs/join.md).  The
 * connection is closed in both cases; free it with join_conn_free. */
int join_server_reply(struct join_conn *c, const struct join_reply *r, int timeout_ms, char *err, size_t errlen);
/* Closes (without replying, if join_server_reply was not called) and frees. */
void join_conn_free(struct join_conn *c);

/* ---------------------------------------------------------------- the joiner's side */

/* Connects to t->host:t->port (the caller may first replace t->host with
 * the address the operator typed: the fingerprint still decides), speaks
 * TLS 1.3 only, checks in constant time that the server's certificate has
 * the fingerprint t->fpr and only then sends req, reads the reply and
 * confirms it.  Everything within timeout_ms.  Returns 0 with *out filled
 * (out->status may be a refusal: its reason is in out->reason; free with
 * join_reply_free), or -errno with a message such as
 *   cannot reach the master at 10.99.0.1:7405: Connection refused
 *   the master's certificate does not match the token (...): wrong address or a man in the middle
 *   timed out after 10 s waiting for the master at 10.99.0.1:7405 (during the TLS handshake)
 * and *out zeroed. */
int join_client(const struct join_token *t, const struct join_request *req, int timeout_ms, struct join_reply *out,
                char *err, size_t errlen);

#endif
