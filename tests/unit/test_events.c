/* The audit log (daemon/events.c): the line format, appending and reading,
 * torn and damaged lines, rotation, and the CLI's text and JSON output.
 *
 * VIGIL_EVENTS_SEEDS=DIR also writes fuzzer seeds (lines) into DIR: that is
 * how tests/fuzz/corpus/events-* were made. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/events.h"
#include "tests/scratch.h"

/* 2026-11-22 01:30:00.123 UTC */
#define T0 INT64_C(1795311000123)

static struct vigil_event mk(int64_t t, const char *host, const char *actor, const char *what, const char *why)
{
    struct vigil_event e;
    memset(&e, 0, sizeof e);
    e.time_ms = t;
    snprintf(e.host, sizeof e.host, "%s", host);
    snprintf(e.actor, sizeof e.actor, "%s", actor);
    snprintf(e.what, sizeof e.what, "%s", what);
    snprintf(e.why, sizeof e.why, "%s", why);
    return e;
}

static void same_event(const struct vigil_event *a, const struct vigil_event *b)
{
    ck_assert_int_eq(a->seq, b->seq);
    ck_assert_int_eq(a->time_ms, b->time_ms);
    ck_assert_str_eq(a->host, b->host);
    ck_assert_str_eq(a->actor, b->actor);
    ck_assert_str_eq(a->what, b->what);
    ck_assert_str_eq(a->why, b->why);
}

/* Encodes, checks the line against `want` when given, decodes it back. */
static void round_trip(const struct vigil_event *e, const char *want)
{
    char line[EVENTS_LINE_MAX + 1];
    int n = events_encode_line(e, line, sizeof line);
    ck_assert_int_gt(n, 0);
    ck_assert_int_le(n, EVENTS_LINE_MAX);
    ck_assert_int_eq(n, (int)strlen(line));
    ck_assert_int_eq(line[n - 1], '\n');
    ck_assert_ptr_null(memchr(line, '\n', (size_t)n - 1)); /* one line */
    if (want)
        ck_assert_str_eq(line, want);
    struct vigil_event back;
    ck_assert_int_eq(events_decode_line(line, (size_t)n, &back), 0);
    same_event(e, &back);
    ck_assert_int_eq(events_decode_line(line, (size_t)n - 1, &back), 0); /* without its newline */
    same_event(e, &back);
}

/* ---------------------------------------------------------------- lines */

START_TEST(line_exact_and_round_trips)
{
    struct vigil_event e = mk(T0, "h1", "operator@h1", "pool created", "name prod");
    e.seq = 5;
    /* the CRC computed independently (Python's zlib.crc32) */
    round_trip(&e, "v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf5\n");

    e.seq = 1; /* the example in docs/events.md */
    round_trip(&e, "v1\t1\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf1869a2d\n");

    e = mk(-1, "h\\1", "a\tb", "line1\nline2 \x01\x7f \xc3\xa9 \xff", "");
    e.seq = 7;
    round_trip(&e, "v1\t7\t-1\th\\\\1\ta\\tb\tline1\\nline2 \\x01\\x7f \xc3\xa9 \\xff\t\t0ba4b093\n");

    /* UTF-8 stays as it is; what is not UTF-8 is escaped byte by byte */
    const char *texts[] = {
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5", /* 2-, 3- and 4-byte characters */
        "\xc3",                                                  /* cut short */
        "\x80\xbf",                                              /* lone continuation bytes */
        "\xc0\xaf \xe0\x80\xaf",                                 /* overlong */
        "\xed\xa0\x80",                                          /* a surrogate */
        "\xf4\x90\x80\x80",                                      /* above U+10FFFF */
        "\r\b\f\x1b[31m",                                        /* control characters */
        "\\t is not a tab, \\x41 not an A",                      /* backslashes */
        "",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        e = mk(T0 + (int64_t)i, texts[i], texts[i], texts[i], texts[i]);
        e.seq = i + 1;
        round_trip(&e, NULL);
    }
    char line[EVENTS_LINE_MAX + 1];
    e = mk(0, "x", "x", "caf\xc3\xa9", "\xc0\xaf");
    e.seq = 1;
    ck_assert_int_gt(events_encode_line(&e, line, sizeof line), 0);
    ck_assert_ptr_nonnull(strstr(line, "\tcaf\xc3\xa9\t\\xc0\\xaf\t"));

    /* the extremes: numbers, and every text byte escaped to four */
    e = mk(INT64_MIN, "", "", "", "");
    e.seq = UINT64_MAX;
    memset(e.host, 0xff, sizeof e.host - 1);
    memset(e.actor, 0x01, sizeof e.actor - 1);
    memset(e.what, 0x80, sizeof e.what - 1);
    memset(e.why, 0x7f, sizeof e.why - 1);
    round_trip(&e, NULL);
    ck_assert_int_eq(events_encode_line(&e, line, sizeof line), EVENTS_LINE_MAX);
    ck_assert_int_eq(events_encode_line(&e, line, EVENTS_LINE_MAX), -ENOSPC); /* no room for the NUL */
    e.time_ms = INT64_MAX;
    round_trip(&e, NULL);

    /* what the encoder refuses */
    e = mk(T0, "h1", "a", "w", "y");
    ck_assert_int_eq(events_encode_line(&e, line, sizeof line), -EINVAL); /* seq 0 */
    e.seq = 1;
    memset(e.why, 'y', sizeof e.why);
    ck_assert_int_eq(events_encode_line(&e, line, sizeof line), -EINVAL); /* no NUL */
}
END_TEST

/* Each must be refused, leaving the event untouched. */
static void rejected(const char *line)
{
    struct vigil_event e, sentinel;
    memset(&e, 0x5a, sizeof e);
    sentinel = e;
    ck_assert_msg(events_decode_line(line, strlen(line), &e) == -EINVAL, "accepted: %s", line);
    ck_assert(!memcmp(&e, &sentinel, sizeof e));
}

/* body + its CRC-32 (computed here, bit by bit, independently of the
 * library) + newline: lets a bad body get past the CRC to the other checks. */
static const char *with_crc(const char *body)
{
    static char line[EVENTS_LINE_MAX * 2];
    uint32_t c = 0xffffffffu;
    for (const unsigned char *p = (const unsigned char *)body; *p; p++) {
        c ^= *p;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    snprintf(line, sizeof line, "%s%08x\n", body, ~c);
    return line;
}

START_TEST(line_rejects)
{
    struct vigil_event e;
    /* the CRC helper agrees with the encoder */
    const char *good = with_crc("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\t");
    ck_assert_str_eq(good, "v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf5\n");
    ck_assert_int_eq(events_decode_line(good, strlen(good), &e), 0);
    rejected("");
    rejected("\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf4\n"); /* CRC */
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tF7103CF5\n"); /* upper case */
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf5\n\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf5\r\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf5 \n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\tf7103cf\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\t\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod\n");
    rejected("v1\t5\t1795311000123\th1\toperator@h1\tpool created\tname prod");
    const char *bodies[] = {
        "v2\t5\t1\th\ta\tw\ty\t",              /* version */
        "v1\t0\t1\th\ta\tw\ty\t",              /* seq 0 */
        "v1\t05\t1\th\ta\tw\ty\t",             /* leading zero */
        "v1\t5\t01\th\ta\tw\ty\t",             /* leading zero */
        "v1\t5\t-0\th\ta\tw\ty\t",             /* minus zero */
        "v1\t5\t+1\th\ta\tw\ty\t",             /* plus */
        "v1\t5\t-\th\ta\tw\ty\t",              /* no digits */
        "v1\t\t1\th\ta\tw\ty\t",               /* no seq */
        "v1\t18446744073709551616\t1\th\ta\tw\ty\t", /* seq overflow */
        "v1\t5\t9223372036854775808\th\ta\tw\ty\t",  /* time overflow */
        "v1\t5\t-9223372036854775809\th\ta\tw\ty\t", /* time underflow */
        "v1\t5\t1\th\ta\tw\t",                 /* a field short */
        "v1\t5\t1\th\ta\tw\ty\tz\t",           /* a field more */
        "v1\t5\t1\th\\x09\ta\tw\ty\t",         /* \x09 where \t is the way */
        "v1\t5\t1\th\\x41\ta\tw\ty\t",         /* a printable escaped */
        "v1\t5\t1\th\\x0A\ta\tw\ty\t",         /* upper-case hex */
        "v1\t5\t1\th\\x0\ta\tw\ty\t",          /* one hex digit */
        "v1\t5\t1\th\\x00\ta\tw\ty\t",         /* a NUL */
        "v1\t5\t1\th\\q\ta\tw\ty\t",           /* no such escape */
        "v1\t5\t1\th\\\ta\tw\ty\t",            /* a backslash alone */
        "v1\t5\t1\th\x01\ta\tw\ty\t",          /* a raw control byte */
        "v1\t5\t1\th\x7f\ta\tw\ty\t",          /* a raw DEL */
        "v1\t5\t1\th\\xc3\\xa9\ta\tw\ty\t",    /* valid UTF-8 escaped */
        "v1\t5\t1\th\xff\ta\tw\ty\t",          /* raw bytes that are not UTF-8 */
        "v1\t5\t1\t1234567890123456789012345678901234567890123456789012345678901234\ta\tw\ty\t", /* 64 bytes */
        "v1 5 1 h a w y ",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        rejected(with_crc(bodies[i]));
    /* the longest host is fine, one more byte is not */
    char body[256];
    snprintf(body, sizeof body, "v1\t5\t1\t%.63s\ta\tw\ty\t",
             "123456789012345678901234567890123456789012345678901234567890123");
    const char *ok = with_crc(body);
    ck_assert_int_eq(events_decode_line(ok, strlen(ok), &e), 0);
    ck_assert_int_eq(strlen(e.host), 63);
    /* nothing past the length is read; nothing after the newline is allowed */
    ck_assert_int_eq(events_decode_line(ok, strlen(ok) - 1, &e), 0);
    ck_assert_int_eq(events_decode_line(ok, strlen(ok) - 2, &e), -EINVAL);
    char twice[600];
    snprintf(twice, sizeof twice, "%s%s", ok, ok);
    ck_assert_int_eq(events_decode_line(twice, strlen(twice), &e), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- the log */

static void setup(void) { scratch_make("test_events"); }
static void teardown(void) { scratch_remove(); }

static struct events_log *open_log(void)
{
    char err[512] = "x";
    struct events_log *l = events_open(scratch, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    ck_assert_msg(events_repaired(l) == (err[0] != 0), "repaired %d, err \"%s\"", events_repaired(l), err);
    return l;
}

static uint64_t append(struct events_log *l, int i)
{
    char err[512], what[64];
    snprintf(what, sizeof what, "event %d", i);
    struct vigil_event e = mk(T0 + i, "h1", "vigild", what, i % 2 ? "odd" : "");
    e.seq = 999; /* the log assigns it */
    int rc = events_append(l, &e, err, sizeof err);
    ck_assert_msg(rc == 0, "%d %s", rc, err);
    return e.seq;
}

/* All events now on disk; the caller frees. */
static struct vigil_event *read_all(uint64_t after, size_t max, size_t *n, size_t *damaged)
{
    char err[512] = "x";
    struct vigil_event *v;
    size_t dmg;
    ck_assert_int_eq(events_read(scratch, after, max, &v, n, &dmg, err, sizeof err), 0);
    ck_assert_msg((dmg != 0) == (err[0] != 0), "damaged %zu, err \"%s\"", dmg, err);
    if (damaged)
        *damaged = dmg;
    else
        ck_assert_msg(dmg == 0, "%s", err);
    ck_assert((*n == 0) == (v == NULL));
    for (size_t i = 1; i < *n; i++)
        ck_assert_int_gt(v[i].seq, v[i - 1].seq);
    return v;
}

/* events_read(after, max) gives exactly the events first..last (none when
 * last < first). */
static void expect_seqs(uint64_t after, size_t max, uint64_t first, uint64_t last)
{
    size_t n;
    struct vigil_event *v = read_all(after, max, &n, NULL);
    ck_assert_int_eq(n, last + 1 - first);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(v[i].seq, first + i);
    free(v);
}

/* A new log holding events 1..n; returns its bytes (up to cap) in buf,
 * when buf is not NULL. */
static size_t log_with(int n, char *buf, size_t cap)
{
    struct events_log *l = open_log();
    for (int i = 1; i <= n; i++)
        append(l, i);
    events_close(l);
    return buf ? scratch_slurp(scratch_path(EVENTS_FILE), buf, cap) : 0;
}

/* Reopened without a repair, the log goes on after `last`. */
static void goes_on_after(uint64_t last)
{
    struct events_log *l = open_log();
    ck_assert(!events_repaired(l));
    ck_assert_int_eq(events_last_seq(l), last);
    ck_assert_int_eq(append(l, (int)last + 1), last + 1);
    events_close(l);
}

static size_t file_size(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    return (size_t)st.st_size;
}

static void spit(const char *path, const char *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
    close(fd);
}

START_TEST(append_and_read)
{
    struct events_log *l = open_log();
    ck_assert_int_eq(events_last_seq(l), 0);
    struct stat st;
    ck_assert_int_eq(stat(scratch_path(EVENTS_FILE), &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    /* a second handle is refused while this one is open */
    char err[512];
    ck_assert_ptr_null(events_open(scratch, err, sizeof err));
    ck_assert_int_eq(errno, EBUSY);
    ck_assert_str_eq(strstr(err, "events.log: "), "events.log: the events log is open elsewhere (is vigild running?)");

    size_t n;
    struct vigil_event *v = read_all(0, 0, &n, NULL);
    ck_assert_int_eq(n, 0);
    for (int i = 1; i <= 5; i++) {
        ck_assert_int_eq(append(l, i), (uint64_t)i);
        /* on disk before the append returns: another reader sees it now */
        v = read_all(0, 0, &n, NULL);
        ck_assert_int_eq(n, (size_t)i);
        ck_assert_int_eq(v[i - 1].seq, (uint64_t)i);
        ck_assert_int_eq(v[i - 1].time_ms, T0 + i);
        free(v);
    }
    v = read_all(0, 0, &n, NULL);
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "event %zu", i + 1);
        ck_assert_str_eq(v[i].what, what);
        ck_assert_str_eq(v[i].why, i % 2 ? "" : "odd");
        ck_assert_str_eq(v[i].host, "h1");
        ck_assert_str_eq(v[i].actor, "vigild");
    }
    free(v);
    expect_seqs(3, 0, 4, 5);
    expect_seqs(5, 0, 6, 5);

    /* time 0: the log stamps the wall clock */
    struct vigil_event e = mk(0, "h2", "operator@h2", "host maintenance on", "");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ck_assert_int_eq(events_append(l, &e, err, sizeof err), 0);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    ck_assert_int_ge(e.time_ms, now);
    ck_assert_int_lt(e.time_ms, now + 10000);
    ck_assert_int_eq(e.seq, 6);

    /* an event the log cannot write */
    memset(e.host, 'x', sizeof e.host);
    ck_assert_int_eq(events_append(l, &e, err, sizeof err), -EINVAL);
    ck_assert_int_eq(events_last_seq(l), 6);
    events_close(l);

    /* the file is plain text, one event a line */
    char buf[4096];
    size_t k = scratch_slurp(scratch_path(EVENTS_FILE), buf, sizeof buf - 1);
    buf[k] = 0;
    ck_assert_ptr_nonnull(strstr(buf, "\thost maintenance on\t"));
    int lines = 0;
    for (size_t i = 0; i < k; i++)
        lines += buf[i] == '\n';
    ck_assert_int_eq(lines, 6);

    goes_on_after(6);
}
END_TEST

START_TEST(escaping_through_the_log)
{
    struct events_log *l = open_log();
    char err[512];
    struct vigil_event in[] = {
        mk(T0, "h1", "operator@h1", "vm start\tweb1", "line one\nline two"),
        mk(T0, "h\\2", "master h2", "path C:\\vm\\x41", "back\\slash\\"),
        mk(T0, "h\xc3\xa9", "op\xc3\xa9rateur@h3", "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\xa5", "\xff\xfe bytes"),
        mk(T0, "h4", "vigild", "\r\x1b[2J\x7f", ""),
    };
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
        ck_assert_int_eq(events_append(l, &in[i], err, sizeof err), 0);
        ck_assert_int_eq(in[i].seq, i + 1);
    }
    events_close(l);
    size_t n;
    struct vigil_event *v = read_all(0, 0, &n, NULL);
    ck_assert_int_eq(n, sizeof in / sizeof in[0]);
    for (size_t i = 0; i < n; i++)
        same_event(&in[i], &v[i]);
    free(v);
    /* and the file still has one line per event */
    char buf[4096];
    size_t k = scratch_slurp(scratch_path(EVENTS_FILE), buf, sizeof buf);
    int lines = 0;
    for (size_t i = 0; i < k; i++)
        lines += buf[i] == '\n';
    ck_assert_int_eq(lines, 4);
}
END_TEST

START_TEST(torn_last_line_at_every_byte)
{
    static char whole[8192];
    size_t total = log_with(3, whole, sizeof whole);
    struct events_log *l;
    size_t start = total - 1;
    while (start > 0 && whole[start - 1] != '\n')
        start--;
    ck_assert_int_gt(start, 0);
    for (size_t cut = start; cut <= total; cut++) {
        spit(scratch_path(EVENTS_FILE), whole, cut);
        char err[512] = "x";
        l = events_open(scratch, err, sizeof err);
        ck_assert_msg(l != NULL, "%s", err);
        bool torn = cut != start && cut != total;
        ck_assert_int_eq(events_repaired(l), torn);
        if (torn) {
            char want[256];
            snprintf(want, sizeof want,
                     "%s/events.log: cut off a torn last line (%zu bytes at offset %zu, left by a crash during an "
                     "append)",
                     scratch, cut - start, start);
            ck_assert_str_eq(err, want);
        } else
            ck_assert_str_eq(err, "");
        ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), torn ? start : cut);
        uint64_t last = cut == total ? 3 : 2;
        ck_assert_int_eq(events_last_seq(l), last);
        size_t n;
        expect_seqs(0, 0, 1, last);
        /* the next event takes the torn one's seq and ends up whole */
        ck_assert_int_eq(append(l, 9), last + 1);
        events_close(l);
        struct vigil_event *v = read_all(0, 0, &n, NULL);
        ck_assert_int_eq(n, last + 1);
        ck_assert_str_eq(v[n - 1].what, "event 9");
        free(v);
    }
    /* a tail of zeros (a crash after the size grew but before the data
     * reached the disk) goes the same way */
    spit(scratch_path(EVENTS_FILE), whole, total);
    int fd = open(scratch_path(EVENTS_FILE), O_WRONLY | O_APPEND);
    ck_assert_int_eq(write(fd, "\0\0\0\0\0\0\0\0", 8), 8);
    close(fd);
    l = open_log();
    ck_assert(events_repaired(l));
    ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), total);
    ck_assert_int_eq(events_last_seq(l), 3);
    events_close(l);
}
END_TEST

START_TEST(damaged_lines_are_skipped)
{
    static char buf[65536];
    size_t k = log_with(6, buf, sizeof buf);
    /* a flipped bit in line 3 */
    char *line3 = buf;
    for (int i = 0; i < 2; i++)
        line3 = strchr(line3, '\n') + 1;
    char *what = strstr(line3, "event 3");
    ck_assert_ptr_nonnull(what);
    what[1] ^= 0x04;
    spit(scratch_path(EVENTS_FILE), buf, k);
    size_t n, damaged;
    char err[512];
    struct vigil_event *v;
    ck_assert_int_eq(events_read(scratch, 0, 0, &v, &n, &damaged, err, sizeof err), 0);
    ck_assert_int_eq(n, 5);
    ck_assert_int_eq(damaged, 1);
    char want[256];
    snprintf(want, sizeof want, "%s: 1 damaged line skipped, the first at events.log line 3", scratch);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(v[2].seq, 4);
    free(v);
    /* a damaged line is not a torn one: open leaves it, the count goes on */
    goes_on_after(6);

    /* garbage, an endless line and a repeated event in the middle */
    what[1] ^= 0x04;
    char *line5 = strstr(buf, "event 5");
    while (line5[-1] != '\n')
        line5--;
    size_t head = (size_t)(line5 - buf);
    static char edited[65536 + 20000];
    size_t m = 0;
    memcpy(edited, buf, head);
    m = head;
    memcpy(edited + m, "garbage\n", 8);
    m += 8;
    memset(edited + m, 'x', 20000 - 10);
    m += 20000 - 10;
    edited[m++] = '\n';
    char *line2 = strchr(buf, '\n') + 1;
    size_t l2 = (size_t)(strchr(line2, '\n') + 1 - line2);
    memcpy(edited + m, line2, l2); /* seq 2 again: out of order */
    m += l2;
    memcpy(edited + m, line5, k - head);
    m += k - head;
    spit(scratch_path(EVENTS_FILE), edited, m);
    v = read_all(0, 0, &n, &damaged);
    ck_assert_int_eq(n, 6);
    ck_assert_int_eq(damaged, 3);
    ck_assert_int_eq(v[5].seq, 6);
    free(v);
    ck_assert_int_eq(events_read(scratch, 0, 0, &v, &n, NULL, err, sizeof err), 0); /* damaged may be NULL */
    snprintf(want, sizeof want, "%s: 3 damaged lines skipped, the first at events.log line 5", scratch);
    ck_assert_str_eq(err, want);
    free(v);
    goes_on_after(6);
}
END_TEST

START_TEST(rotation_keeps_order)
{
    struct events_log *l = open_log();
    events_set_limit(l, 1000); /* about ten events a file */
    for (int i = 1; i <= 95; i++)
        append(l, i);
    ck_assert_int_lt(file_size(scratch_path(EVENTS_FILE)), 1000);
    ck_assert_int_ge(file_size(scratch_path(EVENTS_FILE_OLD)), 1000);
    ck_assert_int_lt(file_size(scratch_path(EVENTS_FILE_OLD)), 1100);
    size_t n;
    struct vigil_event *v = read_all(0, 0, &n, NULL);
    ck_assert_int_gt(n, 15);
    ck_assert_int_lt(n, 45);
    for (size_t i = 0; i < n; i++) /* the newest, without a gap */
        ck_assert_int_eq(v[i].seq, 95 - n + 1 + i);
    free(v);
    expect_seqs(90, 3, 93, 95);
    events_close(l);

    /* the count goes on after a reopen, and after a crash that left
     * events.log missing (between the renames) or empty */
    goes_on_after(95);
    ck_assert_int_eq(rename(scratch_path(EVENTS_FILE), scratch_path(EVENTS_FILE_OLD)), 0);
    spit(scratch_path("events.log.new"), "", 0);
    l = open_log();
    ck_assert_int_eq(events_last_seq(l), 96);
    ck_assert_int_eq(access(scratch_path("events.log.new"), F_OK), -1);
    ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), 0);
    ck_assert_int_eq(append(l, 97), 97);
    events_close(l);
    v = read_all(0, 0, &n, NULL);
    ck_assert_int_eq(v[n - 1].seq, 97);
    ck_assert_int_eq(v[n - 2].seq, 96);
    free(v);

    /* the default limit comes back with 0; a limit of 1 rotates every time */
    l = open_log();
    events_set_limit(l, 1);
    append(l, 98);
    append(l, 99);
    ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), 0);
    expect_seqs(0, 0, 99, 99);
    events_set_limit(l, 0);
    append(l, 100);
    append(l, 101);
    expect_seqs(0, 0, 99, 101);
    events_close(l);
}
END_TEST

START_TEST(rotation_failure_keeps_the_event)
{
    struct events_log *l = open_log();
    events_set_limit(l, 100);
    append(l, 1);
    /* a directory where the new file would be made: the rotation fails */
    ck_assert_int_eq(mkdir(scratch_path("events.log.new"), 0700), 0);
    char err[512];
    struct vigil_event e = mk(T0, "h1", "vigild", "a longer event, to pass the limit", "because");
    ck_assert_int_eq(events_append(l, &e, err, sizeof err), 1);
    ck_assert_int_eq(e.seq, 2);
    char want[256];
    snprintf(want, sizeof want, "%s/events.log.new: open failed: Is a directory", scratch);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(access(scratch_path(EVENTS_FILE_OLD), F_OK), -1);
    expect_seqs(0, 0, 1, 2); /* the event is there */
    /* the next append tries again */
    ck_assert_int_eq(rmdir(scratch_path("events.log.new")), 0);
    ck_assert_int_eq(append(l, 3), 3);
    events_close(l);
    ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), 0);
    expect_seqs(0, 0, 1, 3);
}
END_TEST

START_TEST(short_write_is_cut_back)
{
    struct events_log *l = open_log();
    append(l, 1);
    size_t size = file_size(scratch_path(EVENTS_FILE));
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = size + 10; /* room for part of a line */
    char err[512];
    struct vigil_event e = mk(T0, "h1", "vigild", "this line does not fit", "");
    /* no assertion while the limit holds: Check writes files of its own */
    int set = setrlimit(RLIMIT_FSIZE, &lim);
    int rc = set == 0 ? events_append(l, &e, err, sizeof err) : 0;
    int reset = setrlimit(RLIMIT_FSIZE, &old);
    ck_assert_int_eq(set, 0);
    ck_assert_int_eq(reset, 0);
    ck_assert_msg(rc < 0, "appended past RLIMIT_FSIZE");
    ck_assert_ptr_nonnull(strstr(err, "events.log: write failed: No space left on device"));
    ck_assert_int_eq(file_size(scratch_path(EVENTS_FILE)), size); /* no torn line stays */
    ck_assert_int_eq(append(l, 3), 3); /* seq 2 was spent */
    events_close(l);
    size_t n;
    struct vigil_event *v = read_all(0, 0, &n, NULL);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(v[1].seq, 3);
    free(v);
}
END_TEST

START_TEST(max_returns_the_newest)
{
    log_with(300, NULL, 0);
    expect_seqs(0, 5, 296, 300);
    expect_seqs(297, 5, 298, 300);
    expect_seqs(0, 100, 201, 300); /* more than the first buffer, fewer than there are */
    expect_seqs(0, 1000, 1, 300);
    expect_seqs(0, 0, 1, 300);
    expect_seqs(0, 1, 300, 300);
    expect_seqs(300, 1, 301, 300);
}
END_TEST

START_TEST(open_and_read_errors)
{
    char err[512], sub[128];
    size_t n, damaged = 99;
    struct vigil_event *v = (struct vigil_event *)1;
    /* nothing there: no events */
    snprintf(sub, sizeof sub, "%s/none", scratch);
    ck_assert_int_eq(events_read(sub, 0, 0, &v, &n, &damaged, err, sizeof err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(damaged, 0);
    ck_assert_ptr_null(v);
    /* open creates the directory */
    struct events_log *l = events_open(sub, err, sizeof err);
    ck_assert_msg(l != NULL, "%s", err);
    events_close(l);
    struct stat st;
    ck_assert_int_eq(stat(sub, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0700);
    /* a file where the directory should be */
    snprintf(sub, sizeof sub, "%s/afile", scratch);
    spit(sub, "x", 1);
    ck_assert_ptr_null(events_open(sub, err, sizeof err));
    ck_assert_int_eq(errno, ENOTDIR);
    ck_assert_ptr_nonnull(strstr(err, "afile: open failed: Not a directory"));
    ck_assert_int_eq(events_read(sub, 0, 0, &v, &n, &damaged, err, sizeof err), -ENOTDIR);
    /* a directory where events.log should be */
    ck_assert_int_eq(mkdir(scratch_path(EVENTS_FILE), 0700), 0);
    ck_assert_ptr_null(events_open(scratch, err, sizeof err));
    ck_assert_int_eq(events_read(scratch, 0, 0, &v, &n, &damaged, err, sizeof err), -EISDIR);
    ck_assert_ptr_nonnull(strstr(err, "events.log: read failed: Is a directory"));
}
END_TEST

/* Any bytes in the files: reading and opening never crash (ASan and UBSan
 * watch in `make check-sanitizers`) and what they return is in order. */
START_TEST(any_bytes)
{
    static char good[16384], bad[16384 + 64];
    size_t k = log_with(40, good, sizeof good);
    struct events_log *l;
    uint64_t r = 88172645463325252ull;
    for (int round = 0; round < 300; round++) {
        memcpy(bad, good, k);
        size_t m = k;
        int edits = 1 + round % 8;
        for (int e = 0; e < edits; e++) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            size_t pos = r % m;
            switch ((r >> 20) % 4) {
            case 0: bad[pos] ^= (char)(1u << ((r >> 30) % 8)); break;
            case 1: bad[pos] = "\n\t\\x0a"[(r >> 30) % 6]; break;
            case 2: m = pos; break; /* cut */
            default: memmove(bad + pos + 1, bad + pos, m - pos), bad[pos] = (char)(r >> 40), m++; break;
            }
            if (!m)
                m = 1;
        }
        spit(scratch_path(round % 2 ? EVENTS_FILE : EVENTS_FILE_OLD), bad, m);
        size_t n, damaged;
        struct vigil_event *v = read_all(round % 7, round % 5, &n, &damaged);
        for (size_t i = 0; i < n; i++)
            ck_assert_int_gt(v[i].seq, (uint64_t)(round % 7));
        free(v);
        char err[512];
        l = events_open(scratch, err, sizeof err);
        ck_assert_msg(l != NULL, "%s", err);
        uint64_t last = events_last_seq(l);
        struct vigil_event ev = mk(T0, "h", "a", "w", "y");
        ck_assert_int_eq(events_append(l, &ev, err, sizeof err), 0);
        ck_assert_int_eq(ev.seq, last + 1);
        events_close(l);
    }
}
END_TEST

/* ---------------------------------------------------------------- output */

START_TEST(text_output)
{
    char buf[EVENTS_FORMAT_MAX];
    struct vigil_event e = mk(T0, "h1", "operator@h1", "pool created", "name prod");
    e.seq = 1;
    events_format_text(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-11-22 01:30:00.123 h1 operator@h1: pool created (name prod)");
    e = mk(-1, "h2", "master h2", "host h3 fenced", "");
    events_format_text(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "1969-12-31 23:59:59.999 h2 master h2: host h3 fenced");
    e = mk(0, "h\t2", "a", "two\nlines \xc3\xa9\x1b", "why\\");
    events_format_text(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "1970-01-01 00:00:00.000 h\\t2 a: two\\nlines \xc3\xa9\\x1b (why\\\\)");
    e.time_ms = INT64_MAX;
    events_format_text(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "@9223372036854775807ms h\\t2 a: two\\nlines \xc3\xa9\\x1b (why\\\\)");
    /* cut short between pieces, never inside one */
    e = mk(T0, "h1", "a", "x\xc3\xa9\t", "");
    char small[40];
    /* where the pieces end: the time, " ", "h", "1", " ", "a", ": ", "x", "é", "\t" */
    static const size_t ends[] = {0, 23, 24, 25, 26, 27, 28, 30, 31, 33, 35};
    for (size_t len = 0; len < sizeof small; len++) {
        memset(small, '#', sizeof small);
        events_format_text(&e, small, len);
        if (!len) {
            ck_assert_int_eq(small[0], '#');
            continue;
        }
        size_t want = 0;
        for (size_t i = 0; i < sizeof ends / sizeof ends[0]; i++)
            if (ends[i] < len)
                want = ends[i];
        ck_assert_int_eq(strlen(small), want);
        ck_assert(!strncmp(small, "2026-11-22 01:30:00.123 h1 a: x\xc3\xa9\\t", want));
    }
    /* the worst case fits */
    memset(e.host, 0x01, sizeof e.host - 1);
    memset(e.actor, 0x01, sizeof e.actor - 1);
    memset(e.what, 0x01, sizeof e.what - 1);
    memset(e.why, 0x01, sizeof e.why - 1);
    events_format_text(&e, buf, sizeof buf);
    ck_assert_int_eq(strlen(buf), 24 + 63 * 4 + 1 + 63 * 4 + 2 + 191 * 4 + 2 + 191 * 4 + 1);
}
END_TEST

static bool have_python(void) { return system("python3 -c 'import json' >/dev/null 2>&1") == 0; }

START_TEST(json_output)
{
    char buf[EVENTS_FORMAT_MAX];
    struct vigil_event e = mk(T0, "h1", "operator@h1", "pool created", "name prod");
    e.seq = 1;
    events_format_json(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"time\":\"2026-11-22T01:30:00.123Z\",\"time_ms\":1795311000123,\"seq\":1,\"host\":\"h1\","
                          "\"actor\":\"operator@h1\",\"what\":\"pool created\",\"why\":\"name prod\"}");
    e = mk(-1, "h\"1\"", "a\\b", "tab\there\nnl\r\b\f\x01\x1f\x7f \xc3\xa9", "bad \xff\xc3 end");
    e.seq = UINT64_MAX;
    events_format_json(&e, buf, sizeof buf);
    ck_assert_str_eq(buf, "{\"time\":\"1969-12-31T23:59:59.999Z\",\"time_ms\":-1,\"seq\":18446744073709551615,"
                          "\"host\":\"h\\\"1\\\"\",\"actor\":\"a\\\\b\","
                          "\"what\":\"tab\\there\\nnl\\r\\b\\f\\u0001\\u001f\\u007f \xc3\xa9\","
                          "\"why\":\"bad \\ufffd\\ufffd end\"}");
    e.time_ms = INT64_MIN;
    events_format_json(&e, buf, sizeof buf);
    const char *head = "{\"time\":null,\"time_ms\":-9223372036854775808,";
    ck_assert(!strncmp(buf, head, strlen(head)));

    /* Python's json module agrees */
    if (!have_python()) {
        printf("test_events: SKIP the JSON check with python3: python3 is not installed\n");
        return;
    }
    char path[128];
    snprintf(path, sizeof path, "/tmp/test_events_json.%d", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    struct vigil_event all[] = {
        mk(T0, "h1", "operator@h1", "pool created", "name prod"),
        mk(-1, "h\"1\"", "a\\b", "tab\there\nnl\r\b\f\x01\x1f\x7f \xc3\xa9", "bad \xff\xc3 end"),
        mk(INT64_MAX, "\xf0\x9f\x94\xa5", "</script>", "\xed\xa0\x80", "\xe6\x97\xa5"),
        mk(0, "", "", "", ""),
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        all[i].seq = i + 1;
        events_format_json(&all[i], buf, sizeof buf);
        fprintf(f, "%s\n", buf);
    }
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import json,sys\n"
             "for l in open(sys.argv[1], encoding=\"utf-8\"):\n"
             "    print(json.dumps(json.loads(l), sort_keys=True))' %s",
             path);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    static char got[8192];
    size_t k = fread(got, 1, sizeof got - 1, p);
    got[k] = 0;
    ck_assert_int_eq(pclose(p), 0);
    unlink(path);
    ck_assert_str_eq(got,
                     "{\"actor\": \"operator@h1\", \"host\": \"h1\", \"seq\": 1, \"time\": \"2026-11-22T01:30:00.123Z\", "
                     "\"time_ms\": 1795311000123, \"what\": \"pool created\", \"why\": \"name prod\"}\n"
                     "{\"actor\": \"a\\\\b\", \"host\": \"h\\\"1\\\"\", \"seq\": 2, \"time\": "
                     "\"1969-12-31T23:59:59.999Z\", \"time_ms\": -1, \"what\": "
                     "\"tab\\there\\nnl\\r\\b\\f\\u0001\\u001f\\u007f \\u00e9\", \"why\": \"bad \\ufffd\\ufffd end\"}\n"
                     "{\"actor\": \"</script>\", \"host\": \"\\ud83d\\udd25\", \"seq\": 3, \"time\": null, "
                     "\"time_ms\": 9223372036854775807, \"what\": \"\\ufffd\\ufffd\\ufffd\", \"why\": \"\\u65e5\"}\n"
                     "{\"actor\": \"\", \"host\": \"\", \"seq\": 4, \"time\": \"1970-01-01T00:00:00.000Z\", "
                     "\"time_ms\": 0, \"what\": \"\", \"why\": \"\"}\n");
}
END_TEST

START_TEST(json_worst_case_fits)
{
    char buf[EVENTS_FORMAT_MAX];
    struct vigil_event e = mk(INT64_MIN + 1, "", "", "", "");
    e.seq = UINT64_MAX;
    memset(e.host, 0x01, sizeof e.host - 1);
    memset(e.actor, 0xff, sizeof e.actor - 1);
    memset(e.what, 0x02, sizeof e.what - 1);
    memset(e.why, 0x80, sizeof e.why - 1);
    events_format_json(&e, buf, sizeof buf);
    size_t n = strlen(buf);
    ck_assert_int_eq(buf[n - 1], '}');
    ck_assert_int_eq(n, 12 + (11 + 20) + (7 + 20) + (9 + 6 * 63 + 1) + (10 + 6 * 63 + 1) + (9 + 6 * 191 + 1) +
                            (8 + 6 * 191 + 1) + 1);
    ck_assert_int_lt(n, EVENTS_FORMAT_MAX);
    char small[9];
    events_format_json(&e, small, sizeof small);
    ck_assert_str_eq(small, "{\"time\":"); /* the null does not fit, and is left out whole */
}
END_TEST

/* ---------------------------------------------------------------- fuzzer seeds */

START_TEST(fuzz_seeds)
{
    const char *dir = getenv("VIGIL_EVENTS_SEEDS");
    if (!dir)
        return;
    struct vigil_event seeds[] = {
        mk(T0, "h1", "operator@h1", "pool created", "name prod"),
        mk(-1, "h\\1", "a\tb", "line1\nline2 \x01\x7f \xc3\xa9 \xff", ""),
        mk(T0, "h2", "master h2", "vm web1 restarted on h3", "h1 fenced (BMC confirmed power off)"),
    };
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char line[EVENTS_LINE_MAX + 1], path[512];
        seeds[i].seq = 1 + i * 1000;
        int n = events_encode_line(&seeds[i], line, sizeof line);
        ck_assert_int_gt(n, 0);
        snprintf(path, sizeof path, "%s/events-%zu", dir, i);
        FILE *f = fopen(path, "wb");
        ck_assert_ptr_nonnull(f);
        fwrite(line, 1, (size_t)n, f);
        fclose(f);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("events");
    TCase *lines = tcase_create("lines");
    tcase_add_test(lines, line_exact_and_round_trips);
    tcase_add_test(lines, line_rejects);
    tcase_add_test(lines, text_output);
    tcase_add_test(lines, json_output);
    tcase_add_test(lines, json_worst_case_fits);
    tcase_add_test(lines, fuzz_seeds);
    suite_add_tcase(s, lines);
    TCase *log = tcase_create("log");
    tcase_set_timeout(log, 120);
    tcase_add_checked_fixture(log, setup, teardown);
    tcase_add_test(log, append_and_read);
    tcase_add_test(log, escaping_through_the_log);
    tcase_add_test(log, torn_last_line_at_every_byte);
    tcase_add_test(log, damaged_lines_are_skipped);
    tcase_add_test(log, rotation_keeps_order);
    tcase_add_test(log, rotation_failure_keeps_the_event);
    tcase_add_test(log, short_write_is_cut_back);
    tcase_add_test(log, max_returns_the_newest);
    tcase_add_test(log, open_and_read_errors);
    tcase_add_test(log, any_bytes);
    suite_add_tcase(s, log);
    return vigil_run_suite(s);
}
