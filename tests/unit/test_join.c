/* The join protocol: tokens, the certificate, the two messages, and a real
 * server and client on 127.0.0.1 (ephemeral ports, every wait bounded). */
#define _GNU_SOURCE
#include <check.h>

#include "check_main.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "membership/join.h"

static char dir[64];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof dir, "/tmp/vigil-join-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void rm_tmp(void)
{
    const char *files[] = {"key.pem", "cert.pem", ".lock", "key.pem.tmp", "cert.pem.tmp"};
    char p[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

static long elapsed_ms(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static struct join_token sample_token(const char *host, int port)
{
    struct join_token t;
    memset(&t, 0, sizeof t);
    snprintf(t.host, sizeof t.host, "%s", host);
    t.port = port;
    fill(t.secret, sizeof t.secret, 1);
    fill(t.fpr, sizeof t.fpr, 100);
    return t;
}

/* ---------------------------------------------------------------- tokens */

START_TEST(token_round_trip)
{
    const char *hosts[] = {"10.99.0.1", "192.168.1.254", "fd00::1", "2001:db8::42:1"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        struct join_token t = sample_token(hosts[i], 7405), back;
        char text[JOIN_TOKEN_TEXT_LEN + 1], err[256];
        ck_assert_int_eq(join_token_encode(&t, text, sizeof text), JOIN_TOKEN_TEXT_LEN);
        ck_assert_int_eq((int)strlen(text), JOIN_TOKEN_TEXT_LEN);
        ck_assert(!strncmp(text, "vigil1-", 7));
        ck_assert_msg(strspn(text + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 116,
                      "not base64url: %s", text);
        ck_assert_int_eq(join_token_decode(text, &back, err, sizeof err), 0);
        ck_assert_str_eq(back.host, hosts[i]);
        ck_assert_int_eq(back.port, 7405);
        ck_assert_mem_eq(back.secret, t.secret, JOIN_SECRET_LEN);
        ck_assert_mem_eq(back.fpr, t.fpr, JOIN_FPR_LEN);
        /* pasted with a newline and spaces around it */
        char padded[200];
        snprintf(padded, sizeof padded, "  %s\n", text);
        ck_assert_int_eq(join_token_decode(padded, &back, err, sizeof err), 0);
    }
}
END_TEST

START_TEST(token_encode_refuses)
{
    char text[JOIN_TOKEN_TEXT_LEN + 1];
    struct join_token t = sample_token("master.example", 7405);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL); /* names are not resolved */
    t = sample_token("0.0.0.0", 7405);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL);
    t = sample_token("::", 7405);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL);
    t = sample_token("239.1.1.1", 7405);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL);
    t = sample_token("10.0.0.1", 0);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL);
    t = sample_token("10.0.0.1", 65536);
    ck_assert_int_eq(join_token_encode(&t, text, sizeof text), -EINVAL);
    t = sample_token("10.0.0.1", 1);
    ck_assert_int_eq(join_token_encode(&t, text, JOIN_TOKEN_TEXT_LEN), -ENOSPC);
}
END_TEST

static void expect_token_error(const char *text, const char *want)
{
    struct join_token t, before;
    memset(&t, 0x5a, sizeof t);
    before = t;
    char err[256] = "";
    ck_assert_int_eq(join_token_decode(text, &t, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, want), "for '%s': got '%s', wanted '%s'", text, err, want);
    ck_assert_mem_eq(&t, &before, sizeof t); /* untouched */
}

/* Builds a token by hand from the documented layout: the test's own idea
 * of the format, independent of the encoder. */
static void craft_token(uint8_t bin[87], char *out, size_t outlen)
{
    uint8_t sum[32];
    unsigned int len;
    ck_assert(EVP_Digest(bin, 83, sum, &len, EVP_sha256(), NULL));
    memcpy(bin + 83, sum, 4);
    unsigned char b64[120];
    EVP_EncodeBlock(b64, bin, 87);
    for (unsigned char *c = b64; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    snprintf(out, outlen, "vigil1-%s", (char *)b64);
}

START_TEST(token_errors)
{
    struct join_token t = sample_token("10.99.0.1", 7405);
    char good[JOIN_TOKEN_TEXT_LEN + 1], bad[300];
    ck_assert_int_eq(join_token_encode(&t, good, sizeof good), JOIN_TOKEN_TEXT_LEN);

    expect_token_error("", "not a vigil join token");
    expect_token_error("hello", "not a vigil join token");
    expect_token_error("ab-", "not a vigil join token"); /* found by libFuzzer: read past a short input */
    expect_token_error("vigil-", "not a vigil join token");
    expect_token_error("vigil7", "not a vigil join token");
    snprintf(bad, sizeof bad, "VIGIL1-%s", good + 7);
    expect_token_error(bad, "not a vigil join token");
    snprintf(bad, sizeof bad, "vigil2-%s", good + 7);
    expect_token_error(bad, "made by another vigil version ('vigil2-')");

    snprintf(bad, sizeof bad, "%s", good);
    bad[40] = '+';
    expect_token_error(bad, "invalid character '+' at position 41");
    bad[40] = '=';
    expect_token_error(bad, "invalid character '=' at position 41");
    bad[40] = '\t';
    expect_token_error(bad, "invalid character (byte 0x09) at position 41");

    snprintf(bad, sizeof bad, "%.*s", JOIN_TOKEN_TEXT_LEN - 1, good);
    expect_token_error(bad, "truncated: it has 122 characters, a whole token has 123");
    snprintf(bad, sizeof bad, "%.60s", good);
    expect_token_error(bad, "truncated");
    expect_token_error("vigil1-", "truncated");
    snprintf(bad, sizeof bad, "%sA", good);
    expect_token_error(bad, "too long");

    /* every single-character typo is caught by the checksum */
    for (size_t i = 7; i < JOIN_TOKEN_TEXT_LEN; i++) {
        snprintf(bad, sizeof bad, "%s", good);
        bad[i] = bad[i] == 'x' ? 'y' : 'x';
        expect_token_error(bad, "checksum does not match");
    }
    /* and every swap of two neighbours */
    for (size_t i = 7; i + 1 < JOIN_TOKEN_TEXT_LEN; i++) {
        snprintf(bad, sizeof bad, "%s", good);
        if (bad[i] == bad[i + 1])
            continue;
        char c = bad[i];
        bad[i] = bad[i + 1];
        bad[i + 1] = c;
        expect_token_error(bad, "checksum does not match");
    }

    /* well-formed tokens with a bad address, port or version */
    uint8_t bin[87];
    memset(bin, 0, sizeof bin);
    bin[0] = 1;
    bin[11] = bin[12] = 0xff; /* ::ffff:0.0.0.0 */
    bin[17] = 0x1d;
    bin[18] = 0x1c;
    craft_token(bin, bad, sizeof bad);
    expect_token_error(bad, "invalid master address or port");
    memset(bin + 1, 0, 16);
    bin[1] = 0xff; /* ff00:: multicast */
    craft_token(bin, bad, sizeof bad);
    expect_token_error(bad, "invalid master address or port");
    memset(bin + 1, 0, 16);
    bin[11] = bin[12] = 0xff;
    bin[13] = 10;
    bin[16] = 1; /* 10.0.0.1 */
    struct join_token ok;
    char err[256];
    craft_token(bin, bad, sizeof bad);
    ck_assert_int_eq(join_token_decode(bad, &ok, err, sizeof err), 0);
    ck_assert_str_eq(ok.host, "10.0.0.1");
    ck_assert_int_eq(ok.port, 0x1c1d);
    bin[17] = bin[18] = 0; /* port 0 */
    craft_token(bin, bad, sizeof bad);
    expect_token_error(bad, "invalid master address or port");
    bin[17] = 1;
    bin[0] = 2;
    craft_token(bin, bad, sizeof bad);
    expect_token_error(bad, "layout version 2 is not supported");
}
END_TEST

START_TEST(secrets_and_hex)
{
    uint8_t s[JOIN_SECRET_LEN], s2[JOIN_SECRET_LEN], h[JOIN_HASH_LEN];
    ck_assert_int_eq(join_random(s, sizeof s), 0);
    ck_assert_int_eq(join_random(s2, sizeof s2), 0);
    ck_assert(memcmp(s, s2, sizeof s)); /* 2^-256 */
    join_secret_hash(s, h);
    ck_assert(memcmp(h, s, sizeof h));
    ck_assert_int_eq(join_secret_matches(s, h), 1);
    ck_assert_int_eq(join_secret_matches(s2, h), 0);
    /* SHA-256 of 32 zero bytes */
    memset(s, 0, sizeof s);
    join_secret_hash(s, h);
    ck_assert_int_eq(h[0], 0x66);
    ck_assert_int_eq(h[31], 0x25);

    uint8_t f[JOIN_FPR_LEN];
    fill(f, sizeof f, 0xab);
    char hex[JOIN_FPR_HEX_SIZE];
    ck_assert_int_eq(join_fpr_hex(f, hex, sizeof hex), 95);
    ck_assert_int_eq((int)strlen(hex), 95);
    ck_assert(!strncmp(hex, "AB:B2:B9:", 9));
    ck_assert_int_eq(join_fpr_hex(f, hex, sizeof hex - 1), -ENOSPC);
}
END_TEST

/* ---------------------------------------------------------------- the certificate */

START_TEST(cert_created_once)
{
    mkdir_tmp();
    char sub[128], p[160], err[256];
    snprintf(sub, sizeof sub, "%s/tls", dir); /* created by join_cert_ensure */
    uint8_t f1[JOIN_FPR_LEN], f2[JOIN_FPR_LEN];
    ck_assert_msg(join_cert_ensure(sub, "h1", f1, err, sizeof err) == 0, "%s", err);
    struct stat st;
    snprintf(p, sizeof p, "%s/key.pem", sub);
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    ck_assert_msg(join_cert_ensure(sub, "h1", f2, err, sizeof err) == 0, "%s", err);
    ck_assert_mem_eq(f1, f2, JOIN_FPR_LEN);

    /* a key others can read is refused, and nothing is regenerated */
    ck_assert_int_eq(chmod(p, 0644), 0);
    ck_assert_int_eq(join_cert_ensure(sub, "h1", f2, err, sizeof err), -EPERM);
    ck_assert_msg(strstr(err, "chmod 600"), "%s", err);
    ck_assert_int_eq(chmod(p, 0600), 0);

    /* a certificate without its key is an error, not a silent new identity */
    char keep[160];
    snprintf(keep, sizeof keep, "%s/key.keep", sub);
    ck_assert_int_eq(rename(p, keep), 0);
    ck_assert_int_eq(join_cert_ensure(sub, "h1", f2, err, sizeof err), -ENOENT);
    ck_assert_msg(strstr(err, "does not"), "%s", err);
    ck_assert_int_eq(rename(keep, p), 0);
    ck_assert_int_eq(join_cert_ensure(sub, "h1", f2, err, sizeof err), 0);
    ck_assert_mem_eq(f1, f2, JOIN_FPR_LEN);

    /* a second directory makes a different identity */
    ck_assert_int_eq(join_cert_ensure(dir, "h2", f2, err, sizeof err), 0);
    ck_assert(memcmp(f1, f2, JOIN_FPR_LEN));

    /* the server presents the same certificate */
    struct join_server *s = join_server_new(sub, "127.0.0.1", 0, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    join_server_fpr(s, f2);
    ck_assert_mem_eq(f1, f2, JOIN_FPR_LEN);
    join_server_free(s);

    const char *files[] = {"key.pem", "cert.pem", ".lock"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", sub, files[i]);
        unlink(p);
    }
    rmdir(sub);
    rm_tmp();
}
END_TEST

struct ensure_job {
    uint8_t fpr[JOIN_FPR_LEN];
    int rc;
};

static void *ensure_main(void *arg)
{
    struct ensure_job *j = arg;
    char err[256];
    j->rc = join_cert_ensure(dir, "h1", j->fpr, err, sizeof err);
    return NULL;
}

START_TEST(cert_first_use_race)
{
    /* several at once on first use: one identity, a key matching its cert */
    mkdir_tmp();
    struct ensure_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, ensure_main, &jobs[i]), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(jobs[i].rc, 0);
        ck_assert_mem_eq(jobs[i].fpr, jobs[0].fpr, JOIN_FPR_LEN);
    }
    char err[256];
    struct join_server *s = join_server_new(dir, "127.0.0.1", 0, err, sizeof err); /* checks the pair */
    ck_assert_msg(s != NULL, "%s", err);
    join_server_free(s);
    rm_tmp();
}
END_TEST

START_TEST(server_needs_cert)
{
    mkdir_tmp();
    char err[256];
    ck_assert_ptr_null(join_server_new(dir, "127.0.0.1", 0, err, sizeof err));
    ck_assert_msg(strstr(err, "cert.pem"), "%s", err);
    uint8_t f[JOIN_FPR_LEN];
    ck_assert_int_eq(join_cert_ensure(dir, "h1", f, err, sizeof err), 0);
    ck_assert_ptr_null(join_server_new(dir, "not-an-ip", 0, err, sizeof err));
    ck_assert_msg(strstr(err, "not an IP address"), "%s", err);
    ck_assert_ptr_null(join_server_new(dir, "127.0.0.1", 70000, err, sizeof err));
    rm_tmp();
}
END_TEST

/* ---------------------------------------------------------------- messages */

static struct join_request sample_request(void)
{
    struct join_request r;
    memset(&r, 0, sizeof r);
    strcpy(r.name, "h4");
    strcpy(r.address, "10.99.0.4");
    fill(r.secret, sizeof r.secret, 1);
    return r;
}

/* A reply the caller owns: payloads malloc'ed, freed by join_reply_free. */
static struct join_reply sample_reply(size_t snapshot_len)
{
    struct join_reply r;
    memset(&r, 0, sizeof r);
    r.nodeid = 4;
    r.authkey_len = 256;
    r.authkey = malloc(r.authkey_len);
    fill(r.authkey, r.authkey_len, 9);
    r.corosync_conf = strdup("totem {\n\tversion: 2\n\tcluster_name: demo\n}\nnodelist {\n\tnode {\n\t\tname: h4\n\t\tnodeid: 4\n\t\tring0_addr: 10.99.0.4\n\t}\n}\n");
    r.snapshot_len = snapshot_len;
    r.snapshot = snapshot_len ? malloc(snapshot_len) : NULL;
    if (snapshot_len)
        fill(r.snapshot, snapshot_len, 33);
    return r;
}

static void assert_reply_eq(const struct join_reply *a, const struct join_reply *b)
{
    ck_assert_int_eq(a->status, b->status);
    ck_assert_str_eq(a->reason, b->reason);
    ck_assert_uint_eq(a->nodeid, b->nodeid);
    ck_assert_uint_eq(a->authkey_len, b->authkey_len);
    if (a->authkey_len)
        ck_assert_mem_eq(a->authkey, b->authkey, a->authkey_len);
    ck_assert_int_eq(!a->corosync_conf, !b->corosync_conf);
    if (a->corosync_conf)
        ck_assert_str_eq(a->corosync_conf, b->corosync_conf);
    ck_assert_uint_eq(a->snapshot_len, b->snapshot_len);
    if (a->snapshot_len)
        ck_assert_mem_eq(a->snapshot, b->snapshot, a->snapshot_len);
}

START_TEST(request_codec)
{
    struct join_request r = sample_request(), back;
    uint8_t b[JOIN_REQUEST_MAX];
    char err[256];
    int n = join_request_encode(&r, b, sizeof b, err, sizeof err);
    ck_assert_int_eq(n, 12 + 1 + 2 + 1 + 9 + 32);
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), 0);
    ck_assert_mem_eq(&back, &r, sizeof r);
    ck_assert(!memcmp(b, "VGJQ\1\0\0\0", 8));

    ck_assert_int_eq(join_request_decode(b, (size_t)n - 1, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "announces"), "%s", err);
    ck_assert_int_eq(join_request_decode(b, 5, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "truncated"), "%s", err);
    b[0] = 'X';
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "bad magic"), "%s", err);
    b[0] = 'V';
    b[4] = 2;
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "version 2.0 is not supported"), "%s", err);
    b[4] = 1;
    b[12] = 3; /* name length now overlaps the address */
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), -EBADMSG);
    b[12] = 2;
    b[13] = '-'; /* "-4" */
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "bad host name"), "%s", err);
    b[13] = 'h';
    b[17] = 'x'; /* "1x.99.0.4" */
    ck_assert_int_eq(join_request_decode(b, (size_t)n, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "bad address"), "%s", err);

    /* the encoder refuses what the decoder would */
    strcpy(r.name, "h4\nnodeid: 1"); /* corosync.conf injection */
    ck_assert_int_eq(join_request_encode(&r, b, sizeof b, err, sizeof err), -EBADMSG);
    r = sample_request();
    strcpy(r.address, "h4.example");
    ck_assert_int_eq(join_request_encode(&r, b, sizeof b, err, sizeof err), -EBADMSG);
    r = sample_request();
    ck_assert_int_eq(join_request_encode(&r, b, 20, err, sizeof err), -ENOSPC);
}
END_TEST

START_TEST(reply_codec)
{
    struct join_reply r = sample_reply(5000), back;
    uint8_t *b;
    size_t n;
    char err[256];
    ck_assert_int_eq(join_reply_encode(&r, &b, &n, err, sizeof err), 0);
    ck_assert_int_eq(join_reply_decode(b, n, &back, err, sizeof err), 0);
    assert_reply_eq(&r, &back);
    join_reply_free(&back);
    ck_assert_ptr_null(back.authkey);

    ck_assert_int_eq(join_reply_decode(b, n - 1, &back, err, sizeof err), -EBADMSG);
    ck_assert_ptr_null(back.snapshot);
    b[11] = 0x7f; /* announces ~2 GB */
    ck_assert_int_eq(join_reply_decode(b, n, &back, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "announces"), "%s", err);
    free(b);

    /* a refusal carries its reason and nothing else */
    struct join_reply no;
    memset(&no, 0, sizeof no);
    no.status = 1;
    ck_assert_int_eq(join_reply_encode(&no, &b, &n, err, sizeof err), -EBADMSG); /* no reason */
    strcpy(no.reason, "the token was already used");
    ck_assert_int_eq(join_reply_encode(&no, &b, &n, err, sizeof err), 0);
    ck_assert_int_eq(join_reply_decode(b, n, &back, err, sizeof err), 0);
    assert_reply_eq(&no, &back);
    free(b);
    no.nodeid = 3;
    ck_assert_int_eq(join_reply_encode(&no, &b, &n, err, sizeof err), -EBADMSG);
    no.nodeid = 0;
    strcpy(no.reason, "bad\033[2Jreason"); /* terminal escapes from the wire */
    ck_assert_int_eq(join_reply_encode(&no, &b, &n, err, sizeof err), -EBADMSG);

    /* an acceptance needs a node id, an authkey and a corosync.conf, within bounds */
    r.nodeid = 0;
    ck_assert_int_eq(join_reply_encode(&r, &b, &n, err, sizeof err), -EBADMSG);
    r.nodeid = 4;
    r.authkey_len = JOIN_AUTHKEY_MAX + 1;
    ck_assert_int_eq(join_reply_encode(&r, &b, &n, err, sizeof err), -EBADMSG);
    ck_assert_msg(strstr(err, "authkey has 4097 bytes"), "%s", err);
    r.authkey_len = 256;
    r.snapshot_len = JOIN_SNAPSHOT_MAX + 1;
    ck_assert_int_eq(join_reply_encode(&r, &b, &n, err, sizeof err), -EBADMSG);
    r.snapshot_len = 5000;
    r.corosync_conf[3] = '\001';
    ck_assert_int_eq(join_reply_encode(&r, &b, &n, err, sizeof err), -EBADMSG);
    join_reply_free(&r);
}
END_TEST

/* ---------------------------------------------------------------- over the network */

struct srv_job {
    struct join_server *s;
    int timeout_ms;
    const struct join_reply *reply; /* NULL: close without replying */
    int accept_rc, reply_rc;
    struct join_request req;
    char peer[80];
    char err[512], reply_err[512];
};

static void *srv_main(void *arg)
{
    struct srv_job *j = arg;
    struct join_conn *c = NULL;
    j->accept_rc = join_server_accept(j->s, j->timeout_ms, &c, &j->req, j->err, sizeof j->err);
    if (j->accept_rc == 0) {
        snprintf(j->peer, sizeof j->peer, "%s", join_conn_peer(c));
        if (j->reply)
            j->reply_rc = join_server_reply(c, j->reply, j->timeout_ms, j->reply_err, sizeof j->reply_err);
        join_conn_free(c);
    }
    return NULL;
}

static struct join_server *start_server(uint8_t fpr[JOIN_FPR_LEN])
{
    char err[256];
    mkdir_tmp();
    ck_assert_msg(join_cert_ensure(dir, "master", fpr, err, sizeof err) == 0, "%s", err);
    struct join_server *s = join_server_new(dir, "127.0.0.1", 0, err, sizeof err);
    ck_assert_msg(s != NULL, "%s", err);
    ck_assert_int_gt(join_server_port(s), 0);
    ck_assert_int_ge(join_server_fd(s), 0);
    return s;
}

static void run_join(const struct join_reply *reply, struct srv_job *j, struct join_reply *got, int *client_rc,
                     char *err, size_t errlen)
{
    uint8_t fpr[JOIN_FPR_LEN];
    memset(j, 0, sizeof *j);
    j->s = start_server(fpr);
    j->timeout_ms = 5000;
    j->reply = reply;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, srv_main, j), 0);
    struct join_token t = sample_token("127.0.0.1", join_server_port(j->s));
    memcpy(t.fpr, fpr, JOIN_FPR_LEN);
    struct join_request req = sample_request();
    *client_rc = join_client(&t, &req, 5000, got, err, errlen);
    pthread_join(th, NULL);
    join_server_free(j->s);
    rm_tmp();
}

START_TEST(join_accepted)
{
    struct join_reply r = sample_reply(200 * 1024), got;
    struct srv_job j;
    int rc;
    char err[512];
    run_join(&r, &j, &got, &rc, err, sizeof err);
    ck_assert_msg(rc == 0, "client: %s", err);
    ck_assert_msg(j.accept_rc == 0, "server: %s", j.err);
    ck_assert_msg(j.reply_rc == 0, "server reply: %s", j.reply_err); /* the client confirmed */
    struct join_request want = sample_request();
    ck_assert_mem_eq(&j.req, &want, sizeof want);
    ck_assert(!strncmp(j.peer, "127.0.0.1:", 10));
    assert_reply_eq(&got, &r);
    join_reply_free(&got);
    join_reply_free(&r);
}
END_TEST

START_TEST(join_refused)
{
    struct join_reply r, got;
    memset(&r, 0, sizeof r);
    r.status = 2;
    strcpy(r.reason, "this join token expired at 12:04; make a new one with 'vigil pool join-token'");
    struct srv_job j;
    int rc;
    char err[512];
    run_join(&r, &j, &got, &rc, err, sizeof err);
    ck_assert_msg(rc == 0, "client: %s", err);
    ck_assert_int_eq(j.reply_rc, 0);
    ck_assert_int_eq(got.status, 2);
    ck_assert_str_eq(got.reason, r.reason);
    ck_assert_ptr_null(got.authkey);
    ck_assert_ptr_null(got.corosync_conf);
    join_reply_free(&got);
}
END_TEST

START_TEST(join_dropped_without_reply)
{
    struct srv_job j;
    struct join_reply got;
    int rc;
    char err[512];
    run_join(NULL, &j, &got, &rc, err, sizeof err);
    ck_assert_int_eq(j.accept_rc, 0);
    ck_assert_int_eq(rc, -ECONNRESET);
    ck_assert_msg(strstr(err, "the master at 127.0.0.1:") && strstr(err, "closed the connection"), "%s", err);
    ck_assert_ptr_null(got.authkey);
}
END_TEST

START_TEST(wrong_fingerprint)
{
    uint8_t fpr[JOIN_FPR_LEN];
    struct srv_job j;
    memset(&j, 0, sizeof j);
    j.s = start_server(fpr);
    j.timeout_ms = 5000;
    struct join_reply r = sample_reply(10);
    j.reply = &r;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, srv_main, &j), 0);
    struct join_token t = sample_token("127.0.0.1", join_server_port(j.s));
    memcpy(t.fpr, fpr, JOIN_FPR_LEN);
    t.fpr[31] ^= 1;
    struct join_request req = sample_request();
    struct join_reply got;
    char err[512];
    ck_assert_int_eq(join_client(&t, &req, 5000, &got, err, sizeof err), -EPERM);
    pthread_join(th, NULL);
    ck_assert_msg(strstr(err, "the master's certificate does not match the token (token fingerprint ") &&
                      strstr(err, "wrong address or a man in the middle"),
                  "%s", err);
    ck_assert_ptr_null(got.authkey);
    /* the server never got a request, so never saw the secret */
    ck_assert_int_ne(j.accept_rc, 0);
    ck_assert_msg(strstr(err, "presented"), "%s", err);
    ck_assert_msg(strstr(j.err, "closed the connection"), "server: %s", j.err);
    ck_assert_str_eq(j.req.name, "");
    join_server_free(j.s);
    join_reply_free(&r);
    rm_tmp();
}
END_TEST

START_TEST(closed_port_fails_fast)
{
    uint8_t fpr[JOIN_FPR_LEN];
    struct join_server *s = start_server(fpr);
    int port = join_server_port(s);
    join_server_free(s);
    rm_tmp();
    struct join_token t = sample_token("127.0.0.1", port);
    struct join_request req = sample_request();
    struct join_reply got;
    char err[512], want[128];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(join_client(&t, &req, 10000, &got, err, sizeof err), -ECONNREFUSED);
    ck_assert_int_lt(elapsed_ms(&t0), 1000);
    snprintf(want, sizeof want, "cannot reach the master at 127.0.0.1:%d: Connection refused", port);
    ck_assert_str_eq(err, want);

    strcpy(t.host, "master.example");
    ck_assert_int_eq(join_client(&t, &req, 10000, &got, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "not an IP address"), "%s", err);
}
END_TEST

static int listen_raw(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_raw(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    ck_assert_int_ge(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

START_TEST(client_times_out)
{
    /* a port that completes TCP connections but never speaks TLS */
    int port, lfd = listen_raw(&port);
    struct join_token t = sample_token("127.0.0.1", port);
    struct join_request req = sample_request();
    struct join_reply got;
    char err[512], want[128];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(join_client(&t, &req, 300, &got, err, sizeof err), -ETIMEDOUT);
    long ms = elapsed_ms(&t0);
    ck_assert_int_ge(ms, 290);
    ck_assert_int_lt(ms, 2000);
    snprintf(want, sizeof want, "timed out after 0.3 s waiting for the master at 127.0.0.1:%d (during the TLS handshake)",
             port);
    ck_assert_str_eq(err, want);
    close(lfd);
}
END_TEST

static void *garbage_server(void *arg)
{
    int lfd = *(int *)arg;
    int fd = accept(lfd, NULL, NULL);
    if (fd >= 0) {
        const char banner[] = "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
        if (write(fd, banner, sizeof banner - 1) < 0)
            perror("write");
        char b[512];
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (read(fd, b, sizeof b) > 0)
            ;
        close(fd);
    }
    return NULL;
}

START_TEST(client_meets_another_service)
{
    int port, lfd = listen_raw(&port);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, garbage_server, &lfd), 0);
    struct join_token t = sample_token("127.0.0.1", port);
    struct join_request req = sample_request();
    struct join_reply got;
    char err[512];
    ck_assert_int_eq(join_client(&t, &req, 3000, &got, err, sizeof err), -EPROTO);
    ck_assert_msg(strstr(err, "TLS error with the master at 127.0.0.1:") &&
                      strstr(err, "is a vigil master listening there?"),
                  "%s", err);
    pthread_join(th, NULL);
    close(lfd);
}
END_TEST

START_TEST(accept_times_out)
{
    uint8_t fpr[JOIN_FPR_LEN];
    struct join_server *s = start_server(fpr);
    struct join_conn *c = (struct join_conn *)1;
    struct join_request req;
    char err[256];
    struct timespec t0;

    /* nobody comes */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(join_server_accept(s, 200, &c, &req, err, sizeof err), -EAGAIN);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(err, "no host connected to the join port within 0.2 s");
    ck_assert_int_eq(join_server_accept(s, 0, &c, &req, err, sizeof err), -EINVAL);
    ck_assert_int_lt(elapsed_ms(&t0), 2000);

    /* a host connects and says nothing */
    int fd = connect_raw(join_server_port(s));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(join_server_accept(s, 300, &c, &req, err, sizeof err), -ETIMEDOUT);
    long ms = elapsed_ms(&t0);
    ck_assert_int_ge(ms, 290);
    ck_assert_int_lt(ms, 2000);
    ck_assert_msg(strstr(err, "timed out after 0.3 s waiting for the joining host 127.0.0.1:") &&
                      strstr(err, "(during the TLS handshake)"),
                  "%s", err);
    ck_assert_ptr_null(c);
    close(fd);
    join_server_free(s);
    rm_tmp();
}
END_TEST

START_TEST(tls12_refused)
{
    uint8_t fpr[JOIN_FPR_LEN];
    struct srv_job j;
    memset(&j, 0, sizeof j);
    j.s = start_server(fpr);
    j.timeout_ms = 5000;
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, srv_main, &j), 0);
    int fd = connect_raw(join_server_port(j.s));
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION));
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ck_assert_int_le(SSL_connect(ssl), 0);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    pthread_join(th, NULL);
    ck_assert_int_eq(j.accept_rc, -EPROTO);
    ck_assert_msg(strstr(j.err, "TLS error with the joining host 127.0.0.1:") &&
                      strstr(j.err, "unsupported protocol"),
                  "%s", j.err);
    join_server_free(j.s);
    rm_tmp();
}
END_TEST

/* ---------------------------------------------------------------- fuzz seeds */

/* The seeds in tests/fuzz/corpus/ are these encodings; this test keeps them
 * current.  VIGIL_WRITE_SEEDS=1 rewrites them after a format change. */
START_TEST(fuzz_seeds_current)
{
    const char *top = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
    struct join_token t = sample_token("10.99.0.1", 7405);
    char tok[JOIN_TOKEN_TEXT_LEN + 2], err[256];
    ck_assert_int_eq(join_token_encode(&t, tok, sizeof tok), JOIN_TOKEN_TEXT_LEN);
    strcat(tok, "\n");
    struct join_request q = sample_request();
    uint8_t qb[JOIN_REQUEST_MAX];
    int qn = join_request_encode(&q, qb, sizeof qb, err, sizeof err);
    ck_assert_int_gt(qn, 0);
    struct join_reply r = sample_reply(300), no;
    uint8_t *rb, *nb;
    size_t rn, nn;
    ck_assert_int_eq(join_reply_encode(&r, &rb, &rn, err, sizeof err), 0);
    memset(&no, 0, sizeof no);
    no.status = 1;
    strcpy(no.reason, "this join token was already used");
    ck_assert_int_eq(join_reply_encode(&no, &nb, &nn, err, sizeof err), 0);
    struct {
        const char *name;
        const void *data;
        size_t len;
    } seeds[] = {{"join-token.txt", tok, strlen(tok)},
                 {"join-request.bin", qb, (size_t)qn},
                 {"join-reply.bin", rb, rn},
                 {"join-refusal.bin", nb, nn}};
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/%s", top, seeds[i].name);
        if (getenv("VIGIL_WRITE_SEEDS")) {
            FILE *f = fopen(path, "wb");
            ck_assert_msg(f != NULL, "%s", path);
            ck_assert_uint_eq(fwrite(seeds[i].data, 1, seeds[i].len, f), seeds[i].len);
            ck_assert_int_eq(fclose(f), 0);
            continue;
        }
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "%s missing: run VIGIL_WRITE_SEEDS=1 tests/unit/test_join", path);
        static uint8_t buf[8192];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        ck_assert_msg(n == seeds[i].len && !memcmp(buf, seeds[i].data, n),
                      "%s is stale: run VIGIL_WRITE_SEEDS=1 tests/unit/test_join", path);
    }
    free(rb);
    free(nb);
    join_reply_free(&r);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("join");
    TCase *t = tcase_create("join");
    tcase_set_timeout(t, 30);
    tcase_add_test(t, token_round_trip);
    tcase_add_test(t, token_encode_refuses);
    tcase_add_test(t, token_errors);
    tcase_add_test(t, secrets_and_hex);
    tcase_add_test(t, cert_created_once);
    tcase_add_test(t, cert_first_use_race);
    tcase_add_test(t, server_needs_cert);
    tcase_add_test(t, request_codec);
    tcase_add_test(t, reply_codec);
    tcase_add_test(t, join_accepted);
    tcase_add_test(t, join_refused);
    tcase_add_test(t, join_dropped_without_reply);
    tcase_add_test(t, wrong_fingerprint);
    tcase_add_test(t, closed_port_fails_fast);
    tcase_add_test(t, client_times_out);
    tcase_add_test(t, client_meets_another_service);
    tcase_add_test(t, accept_times_out);
    tcase_add_test(t, tls12_refused);
    tcase_add_test(t, fuzz_seeds_current);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
