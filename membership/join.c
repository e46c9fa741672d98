/* The pool join protocol: tokens, the certificate, the two messages and
 * the TLS 1.3 exchange.  See join.h. */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "join.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "vigil's join protocol needs OpenSSL 3.0 or newer"
#endif

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* The most useful line of OpenSSL's error queue, and the queue emptied:
 * it is per thread and would otherwise leak into the next call's report. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown TLS error";
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sha256(const void *data, size_t n, uint8_t out[32])
{
    unsigned int len = 32;
    /* cannot fail for SHA-256 on memory; a failure would leave zeros, which
     * match no real fingerprint or hash */
    memset(out, 0, 32);
    if (!EVP_Digest(data, n, out, &len, EVP_sha256(), NULL))
        ERR_clear_error();
}

/* ---------------------------------------------------------------- secrets */

void join_secret_hash(const uint8_t secret[JOIN_SECRET_LEN], uint8_t out[JOIN_HASH_LEN])
{
    sha256(secret, JOIN_SECRET_LEN, out);
}

int join_secret_matches(const uint8_t secret[JOIN_SECRET_LEN], const uint8_t hash[JOIN_HASH_LEN])
{
    uint8_t h[JOIN_HASH_LEN];
    join_secret_hash(secret, h);
    return CRYPTO_memcmp(h, hash, JOIN_HASH_LEN) == 0;
}

int join_random(void *buf, size_t n)
{
    if (n > INT32_MAX || RAND_bytes(buf, (int)n) != 1) {
        ERR_clear_error();
        return -EIO;
    }
    return 0;
}

int join_fpr_hex(const uint8_t fpr[JOIN_FPR_LEN], char *out, size_t outlen)
{
    if (outlen < JOIN_FPR_HEX_SIZE)
        return -ENOSPC;
    for (int i = 0; i < JOIN_FPR_LEN; i++)
        snprintf(out + 3 * i, 4, i + 1 < JOIN_FPR_LEN ? "%02X:" : "%02X", fpr[i]);
    return JOIN_FPR_HEX_SIZE - 1;
}

/* ---------------------------------------------------------------- addresses */

/* 16 bytes, IPv4 as IPv4-mapped IPv6; false for anything that cannot be a
 * master's address (not an IP literal, unspecified, multicast). */
static bool addr_pack(const char *host, uint8_t out[16])
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        memcpy(&a6, out, 16);
    } else if (inet_pton(AF_INET6, host, &a6) == 1)
        memcpy(out, &a6, 16);
    else
        return false;
    if (IN6_IS_ADDR_V4MAPPED(&a6))
        return out[12] != 0 && out[12] < 224; /* not 0.x, multicast or broadcast */
    return !IN6_IS_ADDR_UNSPECIFIED(&a6) && !IN6_IS_ADDR_MULTICAST(&a6);
}

static bool addr_unpack(const uint8_t in[16], char *out, size_t outlen)
{
    struct in6_addr a6;
    memcpy(&a6, in, 16);
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
        if (in[12] == 0 || in[12] >= 224)
            return false;
        return inet_ntop(AF_INET, in + 12, out, (socklen_t)outlen) != NULL;
    }
    if (IN6_IS_ADDR_UNSPECIFIED(&a6) || IN6_IS_ADDR_MULTICAST(&a6))
        return false;
    return inet_ntop(AF_INET6, in, out, (socklen_t)outlen) != NULL;
}

/* "10.0.0.1:7405" or "[fd00::1]:7405" */
static void hostport(char *out, size_t outlen, const char *host, int port)
{
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* ---------------------------------------------------------------- tokens */

#define TOKEN_BIN_LEN 87
#define TOKEN_VERSION 1
#define TOKEN_B64_LEN 116 /* 87 bytes = 29 groups of 3: no padding bits */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

int join_token_encode(const struct join_token *t, char *out, size_t outlen)
{
    uint8_t b[TOKEN_BIN_LEN];
    if (t->port < 1 || t->port > 65535 || !memchr(t->host, 0, sizeof t->host) || !addr_pack(t->host, b + 1))
        return -EINVAL;
    if (outlen < JOIN_TOKEN_TEXT_LEN + 1)
        return -ENOSPC;
    b[0] = TOKEN_VERSION;
    put16(b + 17, (uint16_t)t->port);
    memcpy(b + 19, t->secret, JOIN_SECRET_LEN);
    memcpy(b + 51, t->fpr, JOIN_FPR_LEN);
    uint8_t sum[32];
    sha256(b, 83, sum);
    memcpy(b + 83, sum, 4);
    char *o = out + strlen(JOIN_TOKEN_PREFIX);
    memcpy(out, JOIN_TOKEN_PREFIX, strlen(JOIN_TOKEN_PREFIX));
    for (int i = 0; i < TOKEN_BIN_LEN; i += 3) {
        uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        for (int k = 0; k < 4; k++)
            *o++ = b64url[(v >> (18 - 6 * k)) & 63];
    }
    *o = 0;
    return JOIN_TOKEN_TEXT_LEN;
}

int join_token_decode(const char *text, struct join_token *out, char *err, size_t errlen)
{
    const size_t plen = strlen(JOIN_TOKEN_PREFIX);
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1]))
        n--;
    if (n < plen || memcmp(text, JOIN_TOKEN_PREFIX, plen)) {
        /* "vigilN-": another version's token, worth telling apart from junk */
        const char *dash = n > 6 ? memchr(text, '-', n < 12 ? n : 12) : NULL;
        if (dash && dash - text > 5 && !memcmp(text, "vigil", 5) && isdigit((unsigned char)text[5]))
            seterr(err, errlen, "this join token was made by another vigil version ('%.*s'); this vigil reads '%s' tokens",
                   (int)(dash - text + 1), text, JOIN_TOKEN_PREFIX);
        else
            seterr(err, errlen, "not a vigil join token: a token starts with '%s'", JOIN_TOKEN_PREFIX);
        return -EINVAL;
    }
    const char *p = text + plen;
    size_t m = n - plen;
    for (size_t i = 0; i < m; i++)
        if (b64url_value(p[i]) < 0) {
            unsigned char c = (unsigned char)p[i];
            if (isgraph(c))
                seterr(err, errlen, "the join token has an invalid character '%c' at position %zu (a token holds only letters, digits, '-' and '_')",
                       c, plen + i + 1);
            else
                seterr(err, errlen, "the join token has an invalid character (byte 0x%02x) at position %zu (a token holds only letters, digits, '-' and '_')",
                       c, plen + i + 1);
            return -EINVAL;
        }
    if (m < TOKEN_B64_LEN) {
        seterr(err, errlen, "the join token is truncated: it has %zu characters, a whole token has %d: copy all of it",
               n, JOIN_TOKEN_TEXT_LEN);
        return -EINVAL;
    }
    if (m > TOKEN_B64_LEN) {
        seterr(err, errlen, "the join token is too long: it has %zu characters, a token has %d (two tokens pasted together?)",
               n, JOIN_TOKEN_TEXT_LEN);
        return -EINVAL;
    }
    uint8_t b[TOKEN_BIN_LEN];
    for (size_t i = 0, j = 0; i < TOKEN_B64_LEN; i += 4, j += 3) {
        uint32_t v = 0;
        for (int k = 0; k < 4; k++)
            v = v << 6 | (uint32_t)b64url_value(p[i + (size_t)k]);
        b[j] = (uint8_t)(v >> 16);
        b[j + 1] = (uint8_t)(v >> 8);
        b[j + 2] = (uint8_t)v;
    }
    uint8_t sum[32];
    sha256(b, 83, sum);
    if (CRYPTO_memcmp(sum, b + 83, 4)) {
        seterr(err, errlen, "the join token's checksum does not match: it was mistyped or damaged in copying");
        return -EINVAL;
    }
    if (b[0] != TOKEN_VERSION) {
        seterr(err, errlen, "join token layout version %u is not supported (this vigil reads version %d)", b[0],
               TOKEN_VERSION);
        return -EINVAL;
    }
    struct join_token t;
    memset(&t, 0, sizeof t);
    t.port = get16(b + 17);
    if (!addr_unpack(b + 1, t.host, sizeof t.host) || t.port == 0) {
        seterr(err, errlen, "the join token holds an invalid master address or port");
        return -EINVAL;
    }
    memcpy(t.secret, b + 19, JOIN_SECRET_LEN);
    memcpy(t.fpr, b + 51, JOIN_FPR_LEN);
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------- the certificate */

struct cert_paths {
    char dir[4096], key[4096], cert[4096], lock[4096], key_tmp[4096], cert_tmp[4096];
};

static int cert_paths(const char *dir, struct cert_paths *p, char *err, size_t errlen)
{
    size_t n = strlen(dir);
    if (!n || n + sizeof "/cert.pem.tmp" > sizeof p->key) {
        seterr(err, errlen, "bad certificate directory '%.200s'", dir);
        return -ENAMETOOLONG;
    }
    snprintf(p->dir, sizeof p->dir, "%s", dir);
    snprintf(p->key, sizeof p->key, "%s/key.pem", dir);
    snprintf(p->cert, sizeof p->cert, "%s/cert.pem", dir);
    snprintf(p->lock, sizeof p->lock, "%s/.lock", dir);
    snprintf(p->key_tmp, sizeof p->key_tmp, "%s/key.pem.tmp", dir);
    snprintf(p->cert_tmp, sizeof p->cert_tmp, "%s/cert.pem.tmp", dir);
    return 0;
}

static int cert_fpr(X509 *x, uint8_t fpr[JOIN_FPR_LEN], char *err, size_t errlen)
{
    unsigned int len = 0;
    if (!X509_digest(x, EVP_sha256(), fpr, &len) || len != JOIN_FPR_LEN) {
        seterr(err, errlen, "cannot compute the certificate's fingerprint: %s", ssl_reason());
        return -EIO;
    }
    return 0;
}

static int cert_load(const struct cert_paths *p, X509 **xo, EVP_PKEY **ko, char *err, size_t errlen)
{
    *xo = NULL;
    *ko = NULL;
    FILE *f = fopen(p->cert, "re");
    if (!f) {
        int e = errno;
        seterr(err, errlen, "cannot open %s: %s", p->cert, strerror(e));
        return -e;
    }
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x) {
        seterr(err, errlen, "%s is not a PEM certificate: %s", p->cert, ssl_reason());
        return -EINVAL;
    }
    struct stat st;
    if (stat(p->key, &st)) {
        int e = errno;
        if (e == ENOENT)
            seterr(err, errlen, "%s exists but its key %s does not: remove %s to make a new pair (outstanding join tokens stop working)",
                   p->cert, p->key, p->cert);
        else
            seterr(err, errlen, "cannot stat %s: %s", p->key, strerror(e));
        X509_free(x);
        return -e;
    }
    if (st.st_mode & 077) {
        seterr(err, errlen, "%s can be read by group or others (mode %04o): chmod 600 it", p->key,
               (unsigned)(st.st_mode & 07777));
        X509_free(x);
        return -EPERM;
    }
    f = fopen(p->key, "re");
    if (!f) {
        int e = errno;
        seterr(err, errlen, "cannot open %s: %s", p->key, strerror(e));
        X509_free(x);
        return -e;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k) {
        seterr(err, errlen, "%s is not a PEM private key: %s", p->key, ssl_reason());
        X509_free(x);
        return -EINVAL;
    }
    if (X509_check_private_key(x, k) != 1) {
        seterr(err, errlen, "%s does not belong to %s: %s", p->key, p->cert, ssl_reason());
        EVP_PKEY_free(k);
        X509_free(x);
        return -EINVAL;
    }
    *xo = x;
    *ko = k;
    return 0;
}

static X509 *cert_make(EVP_PKEY *k, const char *cn)
{
    X509 *x = X509_new();
    uint8_t serial[16];
    BIGNUM *bn = NULL;
    if (!x || join_random(serial, sizeof serial))
        goto fail;
    serial[0] &= 0x7f; /* serial numbers are positive */
    bn = BN_bin2bn(serial, sizeof serial, NULL);
    X509_NAME *name = X509_get_subject_name(x);
    /* Validity is never checked (the fingerprint is the identity), so it is
     * long: an expiring certificate would break joins years later. */
    if (!bn || !X509_set_version(x, X509_VERSION_3) || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), 36500, 0, NULL) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0) ||
        !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, k) || !X509_sign(x, k, EVP_sha256()))
        goto fail;
    BN_free(bn);
    return x;
fail:
    BN_free(bn);
    X509_free(x);
    return NULL;
}

/* Writes one PEM file through a temporary name, mode 0600 whatever the umask. */
static int pem_write(const char *tmp, const char *path, EVP_PKEY *k, X509 *x, char *err, size_t errlen)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || fchmod(fd, k ? 0600 : 0644)) {
        int e = errno;
        seterr(err, errlen, "cannot create %s: %s", tmp, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        seterr(err, errlen, "cannot write %s: %s", tmp, strerror(e));
        return -e;
    }
    errno = 0;
    int ok = k ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) && ok) {
        ok = 0;
        e = errno;
    }
    if (!ok) {
        seterr(err, errlen, "cannot write %s: %s", tmp, e ? strerror(e) : ssl_reason());
        unlink(tmp);
        return e ? -e : -EIO;
    }
    if (rename(tmp, path)) {
        e = errno;
        seterr(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(e));
        unlink(tmp);
        return -e;
    }
    return 0;
}

static int cert_create(const struct cert_paths *p, const char *cn, char *err, size_t errlen)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = k ? cert_make(k, cn) : NULL;
    if (!x) {
        seterr(err, errlen, "cannot make the join key and certificate: %s", ssl_reason());
        EVP_PKEY_free(k);
        return -EIO;
    }
    /* key first: a cert.pem on disk always has its key next to it */
    int rc = pem_write(p->key_tmp, p->key, k, NULL, err, errlen);
    if (!rc)
        rc = pem_write(p->cert_tmp, p->cert, NULL, x, err, errlen);
    if (!rc) {
        int dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        /* the renames must survive a crash as well as the files */
        if (dfd < 0 || fsync(dfd)) {
            rc = -errno;
            seterr(err, errlen, "cannot sync %s: %s", p->dir, strerror(-rc));
        }
        if (dfd >= 0)
            close(dfd);
    }
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

static int cert_load_fpr(const struct cert_paths *p, uint8_t fpr[JOIN_FPR_LEN], char *err, size_t errlen)
{
    X509 *x;
    EVP_PKEY *k;
    int rc = cert_load(p, &x, &k, err, errlen);
    if (rc)
        return rc;
    rc = cert_fpr(x, fpr, err, errlen);
    X509_free(x);
    EVP_PKEY_free(k);
    return rc;
}

int join_cert_ensure(const char *dir, const char *cn, uint8_t fpr[JOIN_FPR_LEN], char *err, size_t errlen)
{
    struct cert_paths p;
    int rc = cert_paths(dir, &p, err, errlen);
    if (rc)
        return rc;
    if (!cn || !*cn || strlen(cn) > 64) {
        seterr(err, errlen, "bad certificate common name: 1 to 64 characters");
        return -EINVAL;
    }
    /* the common case needs only read access */
    if (access(p.cert, F_OK) == 0)
        return cert_load_fpr(&p, fpr, err, errlen);
    if (errno != ENOENT) {
        rc = -errno;
        seterr(err, errlen, "cannot access %s: %s", p.cert, strerror(-rc));
        return rc;
    }
    if (mkdir(dir, 0700) && errno != EEXIST) {
        rc = -errno;
        seterr(err, errlen, "cannot create %s: %s", dir, strerror(-rc));
        return rc;
    }
    /* Two processes making the pair at once could leave one's key with the
     * other's certificate; the lock is held only while generating. */
    int lfd = open(p.lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lfd < 0) {
        rc = -errno;
        seterr(err, errlen, "cannot open %s: %s", p.lock, strerror(-rc));
        return rc;
    }
    while (flock(lfd, LOCK_EX) && errno == EINTR)
        ;
    if (access(p.cert, F_OK)) { /* nobody made it while we waited */
        if (errno != ENOENT) {
            rc = -errno;
            seterr(err, errlen, "cannot access %s: %s", p.cert, strerror(-rc));
        } else
            rc = cert_create(&p, cn, err, errlen);
    }
    close(lfd);
    return rc ? rc : cert_load_fpr(&p, fpr, err, errlen);
}

/* ---------------------------------------------------------------- messages */

static const uint8_t MAGIC_REQ[4] = {'V', 'G', 'J', 'Q'};
static const uint8_t MAGIC_REP[4] = {'V', 'G', 'J', 'R'};
#define WIRE_VERSION 1

static void header_put(uint8_t *b, const uint8_t magic[4], size_t total)
{
    memcpy(b, magic, 4);
    put16(b + 4, WIRE_VERSION);
    put16(b + 6, 0);
    put32(b + 8, (uint32_t)total);
}

/* Checks a header (the first JOIN_HEADER_LEN bytes) and returns the total
 * length it announces. */
static int header_check(const uint8_t *b, const uint8_t magic[4], const char *what, size_t min, size_t max,
                        size_t *total, char *err, size_t errlen)
{
    if (memcmp(b, magic, 4)) {
        seterr(err, errlen, "not a vigil join %s (bad magic)", what);
        return -EBADMSG;
    }
    if (get16(b + 4) != WIRE_VERSION || get16(b + 6) != 0) {
        seterr(err, errlen, "join %s version %u.%u is not supported (this vigil speaks %d.0)", what, get16(b + 4),
               get16(b + 6), WIRE_VERSION);
        return -EBADMSG;
    }
    *total = get32(b + 8);
    if (*total < min || *total > max) {
        seterr(err, errlen, "join %s announces %zu bytes (must be %zu to %zu)", what, *total, min, max);
        return -EBADMSG;
    }
    return 0;
}

/* A bounds-checked reader: any short read sets `bad` and yields zeros. */
struct rd {
    const uint8_t *p;
    size_t n, off;
    bool bad;
};

static const uint8_t *rd_take(struct rd *r, size_t n)
{
    if (r->bad || n > r->n - r->off) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p + r->off;
    r->off += n;
    return p;
}

static uint32_t rd_u(struct rd *r, size_t width)
{
    const uint8_t *p = rd_take(r, width);
    return !p ? 0 : width == 1 ? p[0] : width == 2 ? get16(p) : get32(p);
}

static bool name_ok(const char *s)
{
    if (!isalnum((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("._-", *s))
            return false;
    return true;
}

static bool ip_ok(const char *s)
{
    uint8_t b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* Text sent to a terminal or into corosync.conf: no NUL, no control
 * characters but tab and newline (and only where allowed). */
static bool text_ok(const uint8_t *s, size_t n, bool multiline)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] < 0x20 && !(multiline && (s[i] == '\n' || s[i] == '\t'))) || s[i] == 0x7f)
            return false;
    return true;
}

static int request_check(const struct join_request *r, char *err, size_t errlen)
{
    if (!memchr(r->name, 0, sizeof r->name) || !name_ok(r->name)) {
        seterr(err, errlen, "bad host name in the join request: 1 to %d letters, digits, '.', '_' or '-', starting with a letter or digit",
               JOIN_NAME_MAX);
        return -EBADMSG;
    }
    if (!memchr(r->address, 0, sizeof r->address) || !ip_ok(r->address)) {
        seterr(err, errlen, "bad address in the join request: it must be an IPv4 or IPv6 address");
        return -EBADMSG;
    }
    return 0;
}

int join_request_encode(const struct join_request *r, uint8_t *buf, size_t buflen, char *err, size_t errlen)
{
    int rc = request_check(r, err, errlen);
    if (rc)
        return rc;
    size_t nl = strlen(r->name), al = strlen(r->address);
    size_t total = JOIN_HEADER_LEN + 1 + nl + 1 + al + JOIN_SECRET_LEN;
    if (buflen < total) {
        seterr(err, errlen, "join request buffer too small");
        return -ENOSPC;
    }
    header_put(buf, MAGIC_REQ, total);
    uint8_t *p = buf + JOIN_HEADER_LEN;
    *p++ = (uint8_t)nl;
    memcpy(p, r->name, nl);
    p += nl;
    *p++ = (uint8_t)al;
    memcpy(p, r->address, al);
    p += al;
    memcpy(p, r->secret, JOIN_SECRET_LEN);
    return (int)total;
}

int join_request_decode(const uint8_t *buf, size_t len, struct join_request *out, char *err, size_t errlen)
{
    size_t total;
    if (len < JOIN_HEADER_LEN) {
        seterr(err, errlen, "join request truncated: %zu bytes", len);
        return -EBADMSG;
    }
    int rc = header_check(buf, MAGIC_REQ, "request", JOIN_HEADER_LEN, JOIN_REQUEST_MAX, &total, err, errlen);
    if (rc)
        return rc;
    if (total != len) {
        seterr(err, errlen, "join request announces %zu bytes but has %zu", total, len);
        return -EBADMSG;
    }
    struct rd r = {.p = buf, .n = len, .off = JOIN_HEADER_LEN};
    struct join_request q;
    memset(&q, 0, sizeof q);
    size_t nl = rd_u(&r, 1);
    const uint8_t *name = rd_take(&r, nl);
    size_t al = rd_u(&r, 1);
    const uint8_t *addr = rd_take(&r, al);
    const uint8_t *secret = rd_take(&r, JOIN_SECRET_LEN);
    if (r.bad || r.off != len) {
        seterr(err, errlen, "join request malformed: its fields do not fill its %zu bytes exactly", len);
        return -EBADMSG;
    }
    if (nl > JOIN_NAME_MAX || al > JOIN_NAME_MAX || memchr(name, 0, nl) || memchr(addr, 0, al)) {
        seterr(err, errlen, "join request malformed: host name or address too long or holding a NUL");
        return -EBADMSG;
    }
    memcpy(q.name, name, nl);
    memcpy(q.address, addr, al);
    memcpy(q.secret, secret, JOIN_SECRET_LEN);
    rc = request_check(&q, err, errlen);
    if (rc)
        return rc;
    *out = q;
    return 0;
}

static int reply_check(const struct join_reply *r, size_t conf_len, char *err, size_t errlen)
{
    size_t rl = strnlen(r->reason, sizeof r->reason);
    if (rl > JOIN_REASON_MAX || !text_ok((const uint8_t *)r->reason, rl, false)) {
        seterr(err, errlen, "join reply malformed: the reason is too long or holds control characters");
        return -EBADMSG;
    }
    if (r->status) {
        if (!rl || r->nodeid || r->authkey_len || conf_len || r->snapshot_len) {
            seterr(err, errlen, "join reply malformed: a refusal carries a reason and nothing else");
            return -EBADMSG;
        }
        return 0;
    }
    if (!r->nodeid) {
        seterr(err, errlen, "join reply malformed: accepted without a node id");
        return -EBADMSG;
    }
    if (r->authkey_len < 1 || r->authkey_len > JOIN_AUTHKEY_MAX || !r->authkey) {
        seterr(err, errlen, "join reply malformed: the corosync authkey has %zu bytes (must be 1 to %d)",
               r->authkey_len, JOIN_AUTHKEY_MAX);
        return -EBADMSG;
    }
    if (conf_len < 1 || conf_len > JOIN_CONF_MAX ||
        !text_ok((const uint8_t *)r->corosync_conf, conf_len, true)) {
        seterr(err, errlen, "join reply malformed: corosync.conf must be 1 to %d bytes of text", JOIN_CONF_MAX);
        return -EBADMSG;
    }
    if (r->snapshot_len > JOIN_SNAPSHOT_MAX || (r->snapshot_len && !r->snapshot)) {
        seterr(err, errlen, "join reply malformed: the pool snapshot has %zu bytes (at most %d)", r->snapshot_len,
               JOIN_SNAPSHOT_MAX);
        return -EBADMSG;
    }
    return 0;
}

int join_reply_encode(const struct join_reply *r, uint8_t **out, size_t *outlen, char *err, size_t errlen)
{
    *out = NULL;
    *outlen = 0;
    size_t cl = r->corosync_conf ? strlen(r->corosync_conf) : 0;
    int rc = reply_check(r, cl, err, errlen);
    if (rc)
        return rc;
    size_t rl = strlen(r->reason);
    size_t total = JOIN_HEADER_LEN + 4 + 2 + rl + 4 + 4 + r->authkey_len + 4 + cl + 4 + r->snapshot_len;
    uint8_t *b = malloc(total);
    if (!b) {
        seterr(err, errlen, "out of memory for a %zu-byte join reply", total);
        return -ENOMEM;
    }
    header_put(b, MAGIC_REP, total);
    uint8_t *p = b + JOIN_HEADER_LEN;
    put32(p, (uint32_t)r->status);
    put16(p + 4, (uint16_t)rl);
    memcpy(p + 6, r->reason, rl);
    p += 6 + rl;
    put32(p, r->nodeid);
    put32(p + 4, (uint32_t)r->authkey_len);
    if (r->authkey_len)
        memcpy(p + 8, r->authkey, r->authkey_len);
    p += 8 + r->authkey_len;
    put32(p, (uint32_t)cl);
    if (cl)
        memcpy(p + 4, r->corosync_conf, cl);
    p += 4 + cl;
    put32(p, (uint32_t)r->snapshot_len);
    if (r->snapshot_len)
        memcpy(p + 4, r->snapshot, r->snapshot_len);
    *out = b;
    *outlen = total;
    return 0;
}

void join_reply_free(struct join_reply *r)
{
    free(r->authkey);
    free(r->corosync_conf);
    free(r->snapshot);
    memset(r, 0, sizeof *r);
}

/* A length-prefixed field of at most max bytes. */
static const uint8_t *rd_field(struct rd *r, size_t width, size_t max, size_t *len)
{
    *len = rd_u(r, width);
    if (*len > max) {
        r->bad = true;
        return NULL;
    }
    return rd_take(r, *len);
}

int join_reply_decode(const uint8_t *buf, size_t len, struct join_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t total;
    if (len < JOIN_HEADER_LEN) {
        seterr(err, errlen, "join reply truncated: %zu bytes", len);
        return -EBADMSG;
    }
    int rc = header_check(buf, MAGIC_REP, "reply", JOIN_HEADER_LEN, JOIN_REPLY_MAX, &total, err, errlen);
    if (rc)
        return rc;
    if (total != len) {
        seterr(err, errlen, "join reply announces %zu bytes but has %zu", total, len);
        return -EBADMSG;
    }
    struct rd r = {.p = buf, .n = len, .off = JOIN_HEADER_LEN};
    struct join_reply q;
    memset(&q, 0, sizeof q);
    size_t rl, cl;
    q.status = (int)(int32_t)rd_u(&r, 4);
    const uint8_t *reason = rd_field(&r, 2, JOIN_REASON_MAX, &rl);
    q.nodeid = rd_u(&r, 4);
    const uint8_t *key = rd_field(&r, 4, JOIN_AUTHKEY_MAX, &q.authkey_len);
    const uint8_t *conf = rd_field(&r, 4, JOIN_CONF_MAX, &cl);
    const uint8_t *snap = rd_field(&r, 4, JOIN_SNAPSHOT_MAX, &q.snapshot_len);
    if (r.bad || r.off != len) {
        seterr(err, errlen, "join reply malformed: a field is too long or they do not fill its %zu bytes exactly", len);
        return -EBADMSG;
    }
    if (memchr(reason, 0, rl)) {
        seterr(err, errlen, "join reply malformed: the reason holds a NUL");
        return -EBADMSG;
    }
    memcpy(q.reason, reason, rl);
    /* point at the buffer to check, copy only what is good */
    q.authkey = (uint8_t *)(uintptr_t)key;
    q.corosync_conf = (char *)(uintptr_t)conf;
    q.snapshot = (uint8_t *)(uintptr_t)snap;
    rc = reply_check(&q, cl, err, errlen);
    if (rc)
        return rc;
    q.authkey = q.authkey_len ? malloc(q.authkey_len) : NULL;
    q.corosync_conf = cl ? malloc(cl + 1) : NULL;
    q.snapshot = q.snapshot_len ? malloc(q.snapshot_len) : NULL;
    if ((q.authkey_len && !q.authkey) || (cl && !q.corosync_conf) || (q.snapshot_len && !q.snapshot)) {
        join_reply_free(&q);
        seterr(err, errlen, "out of memory for a %zu-byte join reply", len);
        return -ENOMEM;
    }
    if (q.authkey_len)
        memcpy(q.authkey, key, q.authkey_len);
    if (cl) {
        memcpy(q.corosync_conf, conf, cl);
        q.corosync_conf[cl] = 0;
    }
    if (q.snapshot_len)
        memcpy(q.snapshot, snap, q.snapshot_len);
    *out = q;
    return 0;
}

/* ---------------------------------------------------------------- bounded TLS I/O */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writing to a socket the peer closed raises SIGPIPE, which would kill the
 * daemon; OpenSSL's socket BIO cannot pass MSG_NOSIGNAL.  So SIGPIPE is
 * blocked in the calling thread for the duration of a call and one raised
 * meanwhile is consumed: the caller's signal setup is left as it was. */
struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t s, pend;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    sigpending(&pend);
    g->was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &s, &g->old);
}

static void sigpipe_restore(struct sigpipe_guard *g)
{
    sigset_t s, pend;
    sigemptyset(&s);
    sigaddset(&s, SIGPIPE);
    sigpending(&pend);
    if (!g->was_pending && sigismember(&pend, SIGPIPE)) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&s, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* One side of a connection: who the peer is, for messages, and when we stop. */
struct tls_io {
    SSL *ssl;
    int fd;
    int64_t deadline;
    int timeout_ms;
    const char *peer; /* "the master at 10.0.0.1:7405" */
};

static void fmt_secs(char *out, size_t outlen, int ms)
{
    if (ms % 1000 == 0)
        snprintf(out, outlen, "%d s", ms / 1000);
    else
        snprintf(out, outlen, "%.1f s", ms / 1000.0);
}

static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, left > INT32_MAX ? INT32_MAX : (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

static int io_timeout(struct tls_io *io, const char *phase, char *err, size_t errlen)
{
    char t[32];
    fmt_secs(t, sizeof t, io->timeout_ms);
    seterr(err, errlen, "timed out after %s waiting for %s (%s)", t, io->peer, phase);
    return -ETIMEDOUT;
}

/* After an SSL call returned ret <= 0: 0 once the socket is ready for the
 * retry OpenSSL asks for, else -errno with the reason. */
static int io_retry(struct tls_io *io, int ret, const char *phase, char *err, size_t errlen)
{
    int e = errno;
    int se = SSL_get_error(io->ssl, ret);
    if (se == SSL_ERROR_WANT_READ || se == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        int rc = wait_fd(io->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, io->deadline);
        if (rc == -ETIMEDOUT)
            return io_timeout(io, phase, err, errlen);
        if (rc)
            seterr(err, errlen, "cannot wait for %s (%s): %s", io->peer, phase, strerror(-rc));
        return rc;
    }
    unsigned long last = ERR_peek_last_error();
    if (se == SSL_ERROR_ZERO_RETURN || (se == SSL_ERROR_SYSCALL && !e) ||
        (se == SSL_ERROR_SSL && ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        ERR_clear_error();
        seterr(err, errlen, "%s closed the connection (%s)", io->peer, phase);
        return -ECONNRESET;
    }
    if (se == SSL_ERROR_SYSCALL) {
        ERR_clear_error();
        seterr(err, errlen, "connection to %s failed (%s): %s", io->peer, phase, strerror(e));
        return -e;
    }
    seterr(err, errlen, "TLS error with %s (%s): %s", io->peer, phase, ssl_reason());
    return -EPROTO;
}

static int io_handshake(struct tls_io *io, char *err, size_t errlen)
{
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_do_handshake(io->ssl);
        if (r == 1)
            return 0;
        int rc = io_retry(io, r, "during the TLS handshake", err, errlen);
        if (rc)
            return rc;
    }
}

static int io_read(struct tls_io *io, void *buf, size_t n, const char *phase, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < n) {
        size_t got = 0;
        ERR_clear_error();
        errno = 0;
        int r = SSL_read_ex(io->ssl, (uint8_t *)buf + off, n - off, &got);
        if (r == 1) {
            off += got;
            continue;
        }
        int rc = io_retry(io, r, phase, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static int io_write(struct tls_io *io, const void *buf, size_t n, const char *phase, char *err, size_t errlen)
{
    size_t off = 0;
    while (off < n) {
        size_t put = 0;
        ERR_clear_error();
        errno = 0;
        int r = SSL_write_ex(io->ssl, (const uint8_t *)buf + off, n - off, &put);
        if (r == 1) {
            off += put;
            continue;
        }
        int rc = io_retry(io, r, phase, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Sends our close_notify (*sent tells whether it left), then waits for the
 * peer's.  A close_notify after a message says "I have read all of it". */
static int io_close(struct tls_io *io, bool *sent, const char *phase, char *err, size_t errlen)
{
    *sent = false;
    for (;;) {
        ERR_clear_error();
        errno = 0;
        int r = SSL_shutdown(io->ssl);
        if (r == 1) {
            *sent = true;
            return 0;
        }
        if (r == 0) {
            *sent = true;
            continue; /* ours is out; the next call reads theirs */
        }
        if (SSL_get_shutdown(io->ssl) & SSL_SENT_SHUTDOWN)
            *sent = true;
        int rc = io_retry(io, r, phase, err, errlen);
        if (rc)
            return rc;
    }
}

/* ---------------------------------------------------------------- the master's side */

struct join_server {
    SSL_CTX *ctx;
    int fd;
    int port;
    uint8_t fpr[JOIN_FPR_LEN];
};

struct join_conn {
    SSL *ssl;
    int fd;
    char peer[80];  /* "203.0.113.7:50122" */
    char who[100];  /* "the joining host 203.0.113.7:50122" */
};

static int listen_on(const char *addr, int port, int family, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = family, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    int g = getaddrinfo(addr, ps, &hints, &ai);
    if (g) {
        seterr(err, errlen, "cannot listen on '%s': not an IP address (%s)", addr, gai_strerror(g));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    if (fd < 0) {
        int e = errno;
        freeaddrinfo(ai);
        seterr(err, errlen, "cannot make a socket for the join port: %s", strerror(e));
        return -e;
    }
    /* SO_REUSEADDR: a restarted daemon must get its port back at once */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (ai->ai_family == AF_INET6 && !strcmp(addr, "::") &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero)) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 16)) {
        int e = errno;
        char hp[80];
        hostport(hp, sizeof hp, addr, port);
        seterr(err, errlen, "cannot listen on %s for joins: %s", hp, strerror(e));
        close(fd);
        freeaddrinfo(ai);
        return -e;
    }
    freeaddrinfo(ai);
    return fd;
}

struct join_server *join_server_new(const char *dir, const char *bind_addr, int port, char *err, size_t errlen)
{
    struct cert_paths p;
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    if (port < 0 || port > 65535) {
        seterr(err, errlen, "bad join port %d", port);
        return NULL;
    }
    if (cert_paths(dir, &p, err, errlen) || cert_load(&p, &x, &k, err, errlen))
        return NULL;
    struct join_server *s = calloc(1, sizeof *s);
    if (!s) {
        seterr(err, errlen, "out of memory");
        goto fail;
    }
    s->fd = -1;
    if (cert_fpr(x, s->fpr, err, errlen))
        goto fail;
    s->ctx = SSL_CTX_new(TLS_server_method());
    /* No tickets and no cache: every join is one full handshake, and a
     * resumed session could not be told apart by fingerprint. */
    if (!s->ctx || !SSL_CTX_set_min_proto_version(s->ctx, TLS1_3_VERSION) || !SSL_CTX_use_certificate(s->ctx, x) ||
        !SSL_CTX_use_PrivateKey(s->ctx, k) || !SSL_CTX_check_private_key(s->ctx) ||
        !SSL_CTX_set_num_tickets(s->ctx, 0)) {
        seterr(err, errlen, "cannot set up TLS for the join port: %s", ssl_reason());
        goto fail;
    }
    SSL_CTX_set_session_cache_mode(s->ctx, SSL_SESS_CACHE_OFF);
    if (bind_addr && *bind_addr)
        s->fd = listen_on(bind_addr, port, AF_UNSPEC, err, errlen);
    else {
        s->fd = listen_on("::", port, AF_INET6, err, errlen);
        if (s->fd == -EAFNOSUPPORT) /* IPv6 disabled on this host */
            s->fd = listen_on("0.0.0.0", port, AF_INET, err, errlen);
    }
    if (s->fd < 0)
        goto fail;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &sl)) {
        seterr(err, errlen, "cannot read the join port's address: %s", strerror(errno));
        goto fail;
    }
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    X509_free(x);
    EVP_PKEY_free(k);
    return s;
fail:
    X509_free(x);
    EVP_PKEY_free(k);
    join_server_free(s);
    return NULL;
}

int join_server_fd(const struct join_server *s)
{
    return s->fd;
}

int join_server_port(const struct join_server *s)
{
    return s->port;
}

void join_server_fpr(const struct join_server *s, uint8_t fpr[JOIN_FPR_LEN])
{
    memcpy(fpr, s->fpr, JOIN_FPR_LEN);
}

void join_server_free(struct join_server *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    SSL_CTX_free(s->ctx);
    free(s);
}

static void conn_close(struct join_conn *c)
{
    SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void join_conn_free(struct join_conn *c)
{
    if (!c)
        return;
    conn_close(c);
    free(c);
}

const char *join_conn_peer(const struct join_conn *c)
{
    return c->peer;
}

static void peer_name(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            inet_ntop(AF_INET, a->sin6_addr.s6_addr + 12, host, sizeof host);
        else
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    hostport(out, outlen, host, port);
}

static int accept_one(struct join_server *s, struct join_conn *c, int timeout_ms, struct join_request *req,
                      char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    struct sockaddr_storage ss;
    for (;;) {
        socklen_t sl = sizeof ss;
        c->fd = accept4(s->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c->fd >= 0)
            break;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            int e = errno;
            seterr(err, errlen, "cannot accept on the join port: %s", strerror(e));
            return -e;
        }
        int rc = wait_fd(s->fd, POLLIN, deadline);
        if (rc == -ETIMEDOUT) {
            char t[32];
            fmt_secs(t, sizeof t, timeout_ms);
            seterr(err, errlen, "no host connected to the join port within %s", t);
            return -EAGAIN;
        }
        if (rc) {
            seterr(err, errlen, "cannot wait on the join port: %s", strerror(-rc));
            return rc;
        }
    }
    peer_name(&ss, c->peer, sizeof c->peer);
    snprintf(c->who, sizeof c->who, "the joining host %s", c->peer);
    c->ssl = SSL_new(s->ctx);
    if (!c->ssl || !SSL_set_fd(c->ssl, c->fd)) {
        seterr(err, errlen, "cannot set up TLS for %s: %s", c->who, ssl_reason());
        return -ENOMEM;
    }
    SSL_set_accept_state(c->ssl);
    struct tls_io io = {.ssl = c->ssl, .fd = c->fd, .deadline = now_ms() + timeout_ms, .timeout_ms = timeout_ms,
                        .peer = c->who};
    uint8_t buf[JOIN_REQUEST_MAX];
    size_t total;
    int rc = io_handshake(&io, err, errlen);
    if (!rc)
        rc = io_read(&io, buf, JOIN_HEADER_LEN, "reading its request", err, errlen);
    if (!rc && (rc = header_check(buf, MAGIC_REQ, "request", JOIN_HEADER_LEN, JOIN_REQUEST_MAX, &total, err,
                                  errlen)) != 0) {
        char m[200];
        snprintf(m, sizeof m, "%s", err);
        seterr(err, errlen, "%s sent a bad request: %s", c->who, m);
    }
    if (!rc)
        rc = io_read(&io, buf + JOIN_HEADER_LEN, total - JOIN_HEADER_LEN, "reading its request", err, errlen);
    if (!rc && (rc = join_request_decode(buf, total, req, err, errlen)) != 0) {
        char m[200];
        snprintf(m, sizeof m, "%s", err);
        seterr(err, errlen, "%s sent a bad request: %s", c->who, m);
    }
    return rc;
}

int join_server_accept(struct join_server *s, int timeout_ms, struct join_conn **out, struct join_request *req,
                       char *err, size_t errlen)
{
    *out = NULL;
    if (timeout_ms <= 0) {
        seterr(err, errlen, "bad join timeout %d ms", timeout_ms);
        return -EINVAL;
    }
    struct join_conn *c = calloc(1, sizeof *c);
    if (!c) {
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->fd = -1;
    struct join_request q;
    struct sigpipe_guard g;
    sigpipe_block(&g);
    int rc = accept_one(s, c, timeout_ms, &q, err, errlen);
    sigpipe_restore(&g);
    if (rc) {
        join_conn_free(c);
        return rc;
    }
    *req = q;
    *out = c;
    return 0;
}

int join_server_reply(struct join_conn *c, const struct join_reply *r, int timeout_ms, char *err, size_t errlen)
{
    if (!c->ssl) {
        seterr(err, errlen, "the connection from %s is already closed", c->peer);
        return -EBADF;
    }
    if (timeout_ms <= 0) {
        seterr(err, errlen, "bad join timeout %d ms", timeout_ms);
        conn_close(c);
        return -EINVAL;
    }
    uint8_t *msg;
    size_t len;
    int rc = join_reply_encode(r, &msg, &len, err, errlen);
    if (rc) {
        conn_close(c);
        return rc;
    }
    struct tls_io io = {.ssl = c->ssl, .fd = c->fd, .deadline = now_ms() + timeout_ms, .timeout_ms = timeout_ms,
                        .peer = c->who};
    struct sigpipe_guard g;
    sigpipe_block(&g);
    rc = io_write(&io, msg, len, "sending the reply", err, errlen);
    if (!rc) {
        bool sent;
        char m[200];
        rc = io_close(&io, &sent, "waiting for it to confirm the reply", m, sizeof m);
        if (rc)
            seterr(err, errlen, "the reply was sent but not confirmed: %s", m);
    }
    sigpipe_restore(&g);
    free(msg);
    conn_close(c);
    return rc;
}

/* ---------------------------------------------------------------- the joiner's side */

static int connect_to(const char *host, int port, const char *who, int64_t deadline, int timeout_ms, char *err,
                      size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        seterr(err, errlen, "'%s' is not an IP address: give the master's IPv4 or IPv6 address", host);
        return -EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        seterr(err, errlen, "cannot make a socket: %s", strerror(e));
        return -e;
    }
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS)
        rc = -errno;
    else if ((rc = wait_fd(fd, POLLOUT, deadline)) == 0) {
        int soerr = 0;
        socklen_t el = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &el))
            rc = -errno;
        else
            rc = -soerr;
    }
    if (rc == -ETIMEDOUT) {
        char t[32];
        fmt_secs(t, sizeof t, timeout_ms);
        seterr(err, errlen, "timed out after %s waiting for %s (connecting)", t, who);
    } else if (rc)
        seterr(err, errlen, "cannot reach %s: %s", who, strerror(-rc));
    if (rc) {
        close(fd);
        return rc;
    }
    return fd;
}

static int client_run(const struct join_token *t, const uint8_t *reqmsg, size_t reqlen, int timeout_ms,
                      struct join_reply *out, char *err, size_t errlen)
{
    int64_t deadline = now_ms() + timeout_ms;
    char hp[96], who[128];
    hostport(hp, sizeof hp, t->host, t->port);
    snprintf(who, sizeof who, "the master at %s", hp);
    int fd = connect_to(t->host, t->port, who, deadline, timeout_ms, err, errlen);
    if (fd < 0)
        return fd;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    uint8_t *msg = NULL;
    int rc;
    /* No CA: SSL_VERIFY_NONE skips only the chain check.  TLS 1.3 still
     * makes the server prove it holds the certificate's key, and the
     * certificate itself is pinned by fingerprint below. */
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !(ssl = SSL_new(ctx)) ||
        !SSL_set_fd(ssl, fd)) {
        seterr(err, errlen, "cannot set up TLS: %s", ssl_reason());
        rc = -ENOMEM;
        goto out;
    }
    SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
    SSL_set_connect_state(ssl);
    struct tls_io io = {.ssl = ssl, .fd = fd, .deadline = deadline, .timeout_ms = timeout_ms, .peer = who};
    rc = io_handshake(&io, err, errlen);
    if (rc) {
        if (rc == -EPROTO && strlen(err) + 40 < errlen)
            strcat(err, ": is a vigil master listening there?");
        goto out;
    }
    X509 *peer = SSL_get0_peer_certificate(ssl);
    uint8_t fpr[JOIN_FPR_LEN];
    if (!peer || cert_fpr(peer, fpr, err, errlen)) {
        seterr(err, errlen, "%s presented no usable certificate", who);
        rc = -EPROTO;
        goto out;
    }
    if (CRYPTO_memcmp(fpr, t->fpr, JOIN_FPR_LEN)) {
        /* 8 bytes of each tell them apart; the full ones would not fit a line */
        char want[JOIN_FPR_HEX_SIZE], got[JOIN_FPR_HEX_SIZE];
        join_fpr_hex(t->fpr, want, sizeof want);
        join_fpr_hex(fpr, got, sizeof got);
        seterr(err, errlen, "the master's certificate does not match the token (token fingerprint %.23s..., %s presented %.23s...): wrong address or a man in the middle",
               want, hp, got);
        rc = -EPERM;
        goto out;
    }
    rc = io_write(&io, reqmsg, reqlen, "sending the request", err, errlen);
    uint8_t head[JOIN_HEADER_LEN];
    size_t total = 0;
    if (!rc)
        rc = io_read(&io, head, sizeof head, "waiting for the reply", err, errlen);
    if (!rc && header_check(head, MAGIC_REP, "reply", JOIN_HEADER_LEN, JOIN_REPLY_MAX, &total, err, errlen)) {
        char m[200];
        snprintf(m, sizeof m, "%s", err);
        seterr(err, errlen, "%s sent a bad reply: %s", who, m);
        rc = -EBADMSG;
    }
    if (!rc && !(msg = malloc(total))) {
        seterr(err, errlen, "out of memory for a %zu-byte reply", total);
        rc = -ENOMEM;
    }
    if (!rc) {
        memcpy(msg, head, sizeof head);
        rc = io_read(&io, msg + JOIN_HEADER_LEN, total - JOIN_HEADER_LEN, "reading the reply", err, errlen);
    }
    if (!rc && (rc = join_reply_decode(msg, total, out, err, errlen)) != 0) {
        char m[200];
        snprintf(m, sizeof m, "%s", err);
        seterr(err, errlen, "%s sent a bad reply: %s", who, m);
    }
    if (!rc) {
        /* Our close_notify tells the master the reply arrived whole; its own
         * close_notify is read too, so that no unread data turns our close
         * into a reset. */
        bool sent;
        char e2[256];
        if (io.deadline > now_ms() + 2000) /* the join is done: do not hold the operator long */
            io.deadline = now_ms() + 2000;
        io_close(&io, &sent, "closing", e2, sizeof e2);
        if (!sent) {
            seterr(err, errlen, "got the reply but could not confirm it to %s: %s", who, e2);
            join_reply_free(out);
            rc = -ECONNRESET;
        }
    }
out:
    free(msg);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}

int join_client(const struct join_token *t, const struct join_request *req, int timeout_ms, struct join_reply *out,
                char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    uint8_t reqmsg[JOIN_REQUEST_MAX];
    int n = join_request_encode(req, reqmsg, sizeof reqmsg, err, errlen);
    if (n < 0)
        return n;
    if (t->port < 1 || t->port > 65535 || !memchr(t->host, 0, sizeof t->host)) {
        seterr(err, errlen, "bad master address or port");
        return -EINVAL;
    }
    if (timeout_ms <= 0) {
        seterr(err, errlen, "bad join timeout %d ms", timeout_ms);
        return -EINVAL;
    }
    struct sigpipe_guard g;
    sigpipe_block(&g);
    int rc = client_run(t, reqmsg, (size_t)n, timeout_ms, out, err, errlen);
    sigpipe_restore(&g);
    OPENSSL_cleanse(reqmsg, sizeof reqmsg);
    return rc;
}
