/* The durable audit log (events.h, docs/events.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../ha/bytes.h"
#include "events.h"
#include "membership/pooldb.h" /* pooldb_crc32 */

#define EVENTS_FILE_NEW "events.log.new" /* a rotation in progress */

/* ---------------------------------------------------------------- output buffers */

/* Appends whole pieces only: once one does not fit (with the NUL after
 * it), nothing more is written, so no escape or UTF-8 character is ever
 * cut in two. */
struct buf {
    char *p;
    size_t cap, n;
    bool full;
};

static void put(struct buf *b, const char *s, size_t k)
{
    if (b->full || b->cap - b->n <= k) {
        b->full = true;
        return;
    }
    memcpy(b->p + b->n, s, k);
    b->n += k;
    b->p[b->n] = 0;
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct buf *b, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof tmp)
        put(b, tmp, (size_t)k);
    else
        b->full = true;
}

static void buf_init(struct buf *b, char *p, size_t cap)
{
    *b = (struct buf){p, cap, 0, cap == 0};
    if (cap)
        p[0] = 0;
}

/* ---------------------------------------------------------------- escaping */

/* Length of the valid UTF-8 character at s (2..4 bytes), 0 if none. */
static size_t utf8_char(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf)
        k = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        k = 3;
        if (c == 0xe0)
            lo = 0xa0; /* no overlong forms */
        if (c == 0xed)
            hi = 0x9f; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f; /* nothing above U+10FFFF */
    } else
        return 0;
    if (n < k || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < k; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return k;
}

enum esc_style { ESC_LOG, ESC_JSON };

/* Writes the NUL-terminated text s (at most field bytes) escaped:
 *   ESC_LOG   \\ \t \n \r, other control bytes and bytes outside valid
 *             UTF-8 as \xHH (the log format, and the CLI's text lines);
 *   ESC_JSON  \" \\ \n \t \r \b \f, other control bytes as \u00XX, bytes
 *             outside valid UTF-8 as \ufffd. */
static void put_escaped(struct buf *b, const char *text, size_t field, enum esc_style style)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strnlen(text, field);
    char e[8];
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t u = c >= 0x80 ? utf8_char(s + i, n - i) : 0;
        if (u) {
            put(b, (const char *)s + i, u);
            i += u;
            continue;
        }
        i++;
        const char *named = NULL;
        switch (c) {
        case '\\': named = "\\\\"; break;
        case '\t': named = "\\t"; break;
        case '\n': named = "\\n"; break;
        case '\r': named = "\\r"; break;
        case '"': named = style == ESC_JSON ? "\\\"" : NULL; break;
        case '\b': named = style == ESC_JSON ? "\\b" : NULL; break;
        case '\f': named = style == ESC_JSON ? "\\f" : NULL; break;
        default: break;
        }
        if (named)
            put(b, named, strlen(named));
        else if (c >= 0x20 && c < 0x7f)
            put(b, (const char *)s + i - 1, 1);
        else if (style == ESC_LOG) {
            snprintf(e, sizeof e, "\\x%02x", c);
            put(b, e, 4);
        } else if (c < 0x80) {
            snprintf(e, sizeof e, "\\u%04x", c);
            put(b, e, 6);
        } else
            put(b, "\\ufffd", 6);
    }
}

/* ---------------------------------------------------------------- lines */

static bool fields_ok(const struct vigil_event *ev)
{
    return memchr(ev->host, 0, sizeof ev->host) && memchr(ev->actor, 0, sizeof ev->actor) &&
           memchr(ev->what, 0, sizeof ev->what) && memchr(ev->why, 0, sizeof ev->why);
}

int events_encode_line(const struct vigil_event *ev, char *out, size_t cap)
{
    if (!ev->seq || !fields_ok(ev))
        return -EINVAL;
    char line[EVENTS_LINE_MAX + 1];
    struct buf b;
    buf_init(&b, line, sizeof line);
    putf(&b, "v1\t%" PRIu64 "\t%" PRId64 "\t", ev->seq, ev->time_ms);
    put_escaped(&b, ev->host, sizeof ev->host, ESC_LOG);
    put(&b, "\t", 1);
    put_escaped(&b, ev->actor, sizeof ev->actor, ESC_LOG);
    put(&b, "\t", 1);
    put_escaped(&b, ev->what, sizeof ev->what, ESC_LOG);
    put(&b, "\t", 1);
    put_escaped(&b, ev->why, sizeof ev->why, ESC_LOG);
    put(&b, "\t", 1);
    putf(&b, "%08" PRIx32 "\n", pooldb_crc32(line, b.n));
    if (b.full) /* cannot happen: EVENTS_LINE_MAX is the worst case */
        return -EINVAL;
    if (b.n >= cap)
        return -ENOSPC;
    memcpy(out, line, b.n + 1);
    return (int)b.n;
}

/* The reading side of a line: p moves, end stays. */
struct rd {
    const char *p, *end;
};

static bool take_u64(struct rd *r, uint64_t *v)
{
    const char *start = r->p;
    *v = 0;
    for (; r->p < r->end && *r->p >= '0' && *r->p <= '9'; r->p++) {
        unsigned d = (unsigned)(*r->p - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return false;
        *v = *v * 10 + d;
    }
    return r->p > start;
}

static bool take_tab(struct rd *r)
{
    if (r->p >= r->end || *r->p != '\t')
        return false;
    r->p++;
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* One text field up to the next tab, unescaped into dst (field bytes with
 * the NUL).  Syntax only: whether it was written the one canonical way is
 * checked by encoding again. */
static bool take_text(struct rd *r, char *dst, size_t field)
{
    size_t n = 0;
    while (r->p < r->end && *r->p != '\t') {
        unsigned char c = (unsigned char)*r->p++;
        if (c == '\\') {
            if (r->p >= r->end)
                return false;
            char k = *r->p++;
            if (k == '\\')
                c = '\\';
            else if (k == 't')
                c = '\t';
            else if (k == 'n')
                c = '\n';
            else if (k == 'r')
                c = '\r';
            else if (k == 'x' && r->end - r->p >= 2 && hexval(r->p[0]) >= 0 && hexval(r->p[1]) >= 0) {
                c = (unsigned char)(hexval(r->p[0]) * 16 + hexval(r->p[1]));
                r->p += 2;
            } else
                return false;
            if (!c)
                return false; /* a NUL would end the string early */
        } else if (c < 0x20 || c == 0x7f)
            return false;
        if (n + 1 >= field)
            return false;
        dst[n++] = (char)c;
    }
    dst[n] = 0;
    return true;
}

int events_decode_line(const char *line, size_t len, struct vigil_event *ev)
{
    if (len > EVENTS_LINE_MAX)
        return -EINVAL;
    struct rd r = {line, line + len};
    struct vigil_event e;
    memset(&e, 0, sizeof e);
    uint64_t t;
    if (len < 3 || memcmp(line, "v1\t", 3))
        return -EINVAL;
    r.p += 3;
    if (!take_u64(&r, &e.seq) || !take_tab(&r))
        return -EINVAL;
    bool neg = r.p < r.end && *r.p == '-';
    r.p += neg;
    if (!take_u64(&r, &t) || t > (uint64_t)INT64_MAX + neg || !take_tab(&r))
        return -EINVAL;
    e.time_ms = neg ? (int64_t)(0 - t) : (int64_t)t;
    if (!take_text(&r, e.host, sizeof e.host) || !take_tab(&r) || !take_text(&r, e.actor, sizeof e.actor) ||
        !take_tab(&r) || !take_text(&r, e.what, sizeof e.what) || !take_tab(&r) ||
        !take_text(&r, e.why, sizeof e.why) || !take_tab(&r))
        return -EINVAL;
    /* The rest is the CRC.  Encoding the event again must give this very
     * line: that checks the CRC, and that every number and escape was
     * written the one way the encoder writes it. */
    char again[EVENTS_LINE_MAX + 1];
    int n = events_encode_line(&e, again, sizeof again);
    size_t body = len && line[len - 1] == '\n' ? len : len + 1; /* the length with a newline */
    if (n < 0 || (size_t)n != body || memcmp(again, line, body - 1))
        return -EINVAL;
    *ev = e;
    return 0;
}

/* ---------------------------------------------------------------- reading files line by line */

struct scan {
    int fd;
    size_t have, pos; /* buf[pos..have) is not consumed yet */
    uint64_t base;    /* file offset of buf[0] */
    uint64_t lineno;  /* of the last line returned */
    bool eof;
    char buf[1 << 16];
};

enum { SCAN_END, SCAN_LINE, SCAN_LONG };

static struct scan *scan_new(int fd)
{
    struct scan *s = malloc(sizeof *s);
    if (s) {
        s->fd = fd;
        s->have = s->pos = 0;
        s->base = s->lineno = 0;
        s->eof = false;
    }
    return s;
}

/* SCAN_LINE: *p, *len is the next line without its newline, *start its
 * offset.  SCAN_LONG: the next line is too long to be an event (it was
 * skipped), *start its offset.  SCAN_END: no complete line is left; *start
 * is where the unfinished rest begins (the file size if there is none).
 * -errno when read fails. */
static int scan_next(struct scan *s, const char **p, size_t *len, uint64_t *start)
{
    bool skipping = false;
    uint64_t long_start = 0;
    for (;;) {
        char *nl = memchr(s->buf + s->pos, '\n', s->have - s->pos);
        if (nl) {
            size_t end = (size_t)(nl - s->buf);
            s->lineno++;
            *start = skipping ? long_start : s->base + s->pos;
            *p = s->buf + s->pos;
            *len = end - s->pos;
            s->pos = end + 1;
            return skipping ? SCAN_LONG : SCAN_LINE;
        }
        if (!skipping && s->have - s->pos > EVENTS_LINE_MAX) {
            skipping = true;
            long_start = s->base + s->pos;
        }
        if (skipping) { /* drop what was read of the long line */
            s->base += s->have;
            s->have = s->pos = 0;
        } else {
            memmove(s->buf, s->buf + s->pos, s->have - s->pos);
            s->base += s->pos;
            s->have -= s->pos;
            s->pos = 0;
        }
        if (s->eof) {
            *start = skipping ? long_start : s->base;
            return SCAN_END;
        }
        ssize_t k = read(s->fd, s->buf + s->have, sizeof s->buf - s->have);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            s->eof = true;
        s->have += (size_t)k;
    }
}

/* One pass over a file from where fd is: every whole line goes to fn,
 * decoded (ev) or not (ev == NULL: it is damaged), with its line number.
 * fn returns 0 to go on, or a negative number to stop the pass with.
 * *end (may be NULL) gets where the whole lines end. */
typedef int (*line_fn)(void *ctx, const struct vigil_event *ev, uint64_t lineno);

static int each_line(int fd, line_fn fn, void *ctx, uint64_t *end)
{
    struct scan *s = scan_new(fd);
    if (!s)
        return -ENOMEM;
    const char *p = NULL;
    size_t len = 0;
    uint64_t start = 0;
    struct vigil_event ev;
    int rc;
    while ((rc = scan_next(s, &p, &len, &start)) > 0) {
        bool good = rc == SCAN_LINE && !events_decode_line(p, len, &ev);
        if ((rc = fn(ctx, good ? &ev : NULL, s->lineno)) < 0)
            break;
    }
    free(s);
    if (end)
        *end = start;
    return rc;
}

/* ctx: a uint64_t, raised to the greatest seq seen */
static int max_seq(void *ctx, const struct vigil_event *ev, uint64_t lineno)
{
    (void)lineno;
    uint64_t *max = ctx;
    if (ev && ev->seq > *max)
        *max = ev->seq;
    return 0;
}

/* ---------------------------------------------------------------- the log */

struct events_log {
    char *dir;
    int dfd; /* the directory: renames, fsync */
    int fd;  /* events.log, O_APPEND, flock'ed */
    uint64_t size;  /* of events.log: whole lines only */
    bool dirty;     /* bytes past size may be there (a failed write): cut them first */
    uint64_t limit;
    uint64_t seq;   /* the last one used */
    bool repaired;
};

/* The greatest seq of a good line in the file, 0 if none; -errno. */
static int last_seq_in(int dfd, const char *name, uint64_t *seq)
{
    *seq = 0;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    int rc = each_line(fd, max_seq, seq, NULL);
    close(fd);
    return rc;
}

void events_close(struct events_log *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd); /* every line was fdatasync'ed: nothing to lose */
    if (l->dfd >= 0)
        close(l->dfd);
    free(l->dir);
    free(l);
}

static struct events_log *open_fail(struct events_log *l, int rc)
{
    events_close(l);
    errno = -rc;
    return NULL;
}

struct events_log *events_open(const char *dir, char *err, size_t errlen)
{
    errf(err, errlen, 0, "%s", "");
    struct events_log *l = calloc(1, sizeof *l);
    if (!l || !(l->dir = strdup(dir))) {
        free(l);
        return open_fail(NULL, errf(err, errlen, -ENOMEM, "out of memory"));
    }
    l->dfd = l->fd = -1;
    l->limit = EVENTS_DEFAULT_LIMIT;
    if (mkdir(dir, 0700) < 0 && errno != EEXIST)
        return open_fail(l, errf(err, errlen, -errno, "%s: mkdir failed: %s", dir, strerror(errno)));
    if ((l->dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        return open_fail(l, errf(err, errlen, -errno, "%s: open failed: %s", dir, strerror(errno)));
    l->fd = openat(l->dfd, EVENTS_FILE, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (l->fd < 0)
        return open_fail(l, errf(err, errlen, -errno, "%s/" EVENTS_FILE ": open failed: %s", dir, strerror(errno)));
    if (flock(l->fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
        return open_fail(l, errf(err, errlen, e, "%s/" EVENTS_FILE ": %s", dir,
                                 e == -EBUSY ? "the events log is open elsewhere (is vigild running?)"
                                             : strerror(-e)));
    }
    struct stat st;
    if (fstat(l->fd, &st) < 0 || !S_ISREG(st.st_mode))
        return open_fail(l, errf(err, errlen, -EINVAL, "%s/" EVENTS_FILE ": not a regular file", dir));

    /* the last good seq, and where the whole lines end */
    uint64_t end;
    int rc = each_line(l->fd, max_seq, &l->seq, &end);
    if (rc < 0)
        return open_fail(l, errf(err, errlen, rc, "%s/" EVENTS_FILE ": read failed: %s", dir, strerror(-rc)));
    if (end < (uint64_t)st.st_size) {
        if (ftruncate(l->fd, (off_t)end) < 0 || fsync(l->fd) < 0)
            return open_fail(l, errf(err, errlen, -errno, "%s/" EVENTS_FILE ": cutting off a torn last line failed: %s",
                                     dir, strerror(errno)));
        l->repaired = true;
        errf(err, errlen, 0,
             "%s/" EVENTS_FILE ": cut off a torn last line (%" PRIu64 " bytes at offset %" PRIu64
             ", left by a crash during an append)",
             dir, (uint64_t)st.st_size - end, end);
    }
    l->size = end;
    uint64_t old = 0;
    if (!l->seq && (rc = last_seq_in(l->dfd, EVENTS_FILE_OLD, &old)) < 0)
        return open_fail(l, errf(err, errlen, rc, "%s/" EVENTS_FILE_OLD ": read failed: %s", dir, strerror(-rc)));
    if (old > l->seq)
        l->seq = old;
    /* a rotation cut short by a crash leaves an empty events.log.new */
    if (unlinkat(l->dfd, EVENTS_FILE_NEW, 0) < 0 && errno != ENOENT)
        return open_fail(l, errf(err, errlen, -errno, "%s/" EVENTS_FILE_NEW ": unlink failed: %s", dir,
                                 strerror(errno)));
    if (fsync(l->dfd) < 0) /* events.log may be new */
        return open_fail(l, errf(err, errlen, -errno, "%s: fsync failed: %s", dir, strerror(errno)));
    return l;
}

void events_set_limit(struct events_log *l, uint64_t bytes) { l->limit = bytes ? bytes : EVENTS_DEFAULT_LIMIT; }

uint64_t events_last_seq(const struct events_log *l) { return l->seq; }

bool events_repaired(const struct events_log *l) { return l->repaired; }

/* events.log becomes events.log.1 and an empty events.log takes its place.
 * The new file is made (and locked) first under another name, so that a
 * failure before the renames changes nothing. */
static int rotate(struct events_log *l, char *err, size_t errlen)
{
    int nfd = openat(l->dfd, EVENTS_FILE_NEW, O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (nfd < 0)
        return errf(err, errlen, -errno, "%s/" EVENTS_FILE_NEW ": open failed: %s", l->dir, strerror(errno));
    const char *step = NULL;
    int rc = 0;
    if (flock(nfd, LOCK_EX | LOCK_NB) < 0)
        rc = -errno, step = "flock of " EVENTS_FILE_NEW;
    else if (renameat(l->dfd, EVENTS_FILE, l->dfd, EVENTS_FILE_OLD) < 0)
        rc = -errno, step = "rename of " EVENTS_FILE " to " EVENTS_FILE_OLD;
    else if (renameat(l->dfd, EVENTS_FILE_NEW, l->dfd, EVENTS_FILE) < 0) {
        rc = -errno, step = "rename of " EVENTS_FILE_NEW " to " EVENTS_FILE;
        /* put the file back where readers look (the previous .1 is gone) */
        renameat(l->dfd, EVENTS_FILE_OLD, l->dfd, EVENTS_FILE);
    }
    if (rc) {
        close(nfd);
        unlinkat(l->dfd, EVENTS_FILE_NEW, 0);
        return errf(err, errlen, rc, "%s: rotating the events log: %s failed: %s", l->dir, step, strerror(-rc));
    }
    close(l->fd);
    l->fd = nfd;
    l->size = 0;
    l->dirty = false;
    if (fsync(l->dfd) < 0)
        return errf(err, errlen, -errno, "%s: fsync after rotating the events log failed: %s", l->dir,
                    strerror(errno));
    return 0;
}

int events_append(struct events_log *l, struct vigil_event *ev, char *err, size_t errlen)
{
    if (!fields_ok(ev))
        return errf(err, errlen, -EINVAL, "event has a text field without its NUL");
    if (l->dirty) { /* a failed write may have left part of a line */
        if (ftruncate(l->fd, (off_t)l->size) < 0)
            return errf(err, errlen, -errno, "%s/" EVENTS_FILE ": cutting off a failed write failed: %s", l->dir,
                        strerror(errno));
        l->dirty = false;
    }
    struct vigil_event e = *ev;
    e.seq = l->seq + 1;
    if (!e.time_ms) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        e.time_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    char line[EVENTS_LINE_MAX + 1];
    int n = events_encode_line(&e, line, sizeof line);
    if (n < 0)
        return errf(err, errlen, n, "event cannot be encoded");
    l->seq = e.seq; /* used from here on, even if the write fails */
    ev->seq = e.seq;
    ev->time_ms = e.time_ms;
    ssize_t k;
    do
        k = write(l->fd, line, (size_t)n);
    while (k < 0 && errno == EINTR);
    if (k != n) {
        int e2 = k < 0 ? -errno : -ENOSPC; /* a short write: the disk is full */
        l->dirty = true;
        if (ftruncate(l->fd, (off_t)l->size) == 0)
            l->dirty = false;
        return errf(err, errlen, e2, "%s/" EVENTS_FILE ": write failed: %s", l->dir, strerror(-e2));
    }
    l->size += (uint64_t)n;
    if (fdatasync(l->fd) < 0)
        return errf(err, errlen, -errno, "%s/" EVENTS_FILE ": fdatasync failed: %s", l->dir, strerror(errno));
    if (l->size >= l->limit && rotate(l, err, errlen) < 0)
        return 1;
    return 0;
}

/* ---------------------------------------------------------------- reading */

/* The newest `max` events pushed, oldest first once unrolled. */
struct ring {
    struct vigil_event *v;
    size_t cap, n, head, max;
};

static int ring_push(struct ring *r, const struct vigil_event *ev)
{
    if (r->max && r->n == r->max) {
        r->v[r->head] = *ev;
        r->head = (r->head + 1) % r->max;
        return 0;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        if (r->max && cap > r->max)
            cap = r->max;
        if (cap > SIZE_MAX / sizeof *r->v)
            return -ENOMEM;
        struct vigil_event *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = *ev;
    return 0;
}

static int ring_unroll(struct ring *r)
{
    if (!r->head)
        return 0;
    struct vigil_event *v = malloc(r->n * sizeof *v);
    if (!v)
        return -ENOMEM;
    size_t tail = r->n - r->head;
    memcpy(v, r->v + r->head, tail * sizeof *v);
    memcpy(v + tail, r->v, r->head * sizeof *v);
    free(r->v);
    r->v = v;
    r->head = 0;
    return 0;
}

struct reader {
    uint64_t after, last;
    struct ring ring;
    const char *name; /* of the file being read */
    size_t damaged;
    char first[80]; /* where the first damaged line is */
};

static int read_line(void *ctx, const struct vigil_event *ev, uint64_t lineno)
{
    struct reader *rd = ctx;
    if (ev && ev->seq > rd->last) {
        rd->last = ev->seq;
        return ev->seq > rd->after ? ring_push(&rd->ring, ev) : 0;
    }
    if (!rd->damaged++)
        snprintf(rd->first, sizeof rd->first, "%s line %" PRIu64, rd->name, lineno);
    return 0;
}

int events_read(const char *dir, uint64_t after_seq, size_t max, struct vigil_event **out, size_t *n,
                size_t *damaged, char *err, size_t errlen)
{
    errf(err, errlen, 0, "%s", "");
    *out = NULL;
    *n = 0;
    if (damaged)
        *damaged = 0;
    static const char *const names[2] = {EVENTS_FILE_OLD, EVENTS_FILE};
    int fd[2] = {-1, -1}, rc = 0;
    char path[4096];
    /* events.log first: a rotation between the two opens then shows the
     * same file twice (skipped below), never loses one */
    for (int i = 1; i >= 0 && !rc; i--) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if ((fd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno != ENOENT)
            rc = errf(err, errlen, -errno, "%s: open failed: %s", path, strerror(errno));
    }
    struct stat a, b;
    if (!rc && fd[0] >= 0 && fd[1] >= 0 && !fstat(fd[0], &a) && !fstat(fd[1], &b) && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        close(fd[0]);
        fd[0] = -1;
    }
    struct reader rd = {.after = after_seq, .ring = {.max = max}};
    for (int i = 0; i < 2 && !rc; i++)
        if (fd[i] >= 0 && (rd.name = names[i], rc = each_line(fd[i], read_line, &rd, NULL)) < 0)
            errf(err, errlen, rc, "%s/%s: read failed: %s", dir, names[i], strerror(-rc));
    for (int i = 0; i < 2; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    if (!rc && (rc = ring_unroll(&rd.ring)) < 0)
        errf(err, errlen, rc, "out of memory");
    if (rc < 0) {
        free(rd.ring.v);
        return rc;
    }
    if (rd.damaged)
        errf(err, errlen, 0, "%s: %zu damaged line%s skipped, the first at %s", dir, rd.damaged,
             rd.damaged == 1 ? "" : "s", rd.first);
    if (damaged)
        *damaged = rd.damaged;
    *n = rd.ring.n;
    *out = rd.ring.n ? rd.ring.v : NULL;
    if (!rd.ring.n)
        free(rd.ring.v);
    return 0;
}

/* ---------------------------------------------------------------- output for the CLI */

/* "2026-11-22<sep>01:30:00.123" in UTC; false outside years 0..9999. */
static bool put_time(struct buf *b, int64_t ms, char sep)
{
    int64_t sec = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return false;
    putf(b, "%04d-%02d-%02d%c%02d:%02d:%02d.%03d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, sep, tm.tm_hour,
         tm.tm_min, tm.tm_sec, (int)frac);
    return true;
}

void events_format_text(const struct vigil_event *ev, char *buf, size_t len)
{
    struct buf b;
    buf_init(&b, buf, len);
    if (!put_time(&b, ev->time_ms, ' '))
        putf(&b, "@%" PRId64 "ms", ev->time_ms);
    put(&b, " ", 1);
    put_escaped(&b, ev->host, sizeof ev->host, ESC_LOG);
    put(&b, " ", 1);
    put_escaped(&b, ev->actor, sizeof ev->actor, ESC_LOG);
    put(&b, ": ", 2);
    put_escaped(&b, ev->what, sizeof ev->what, ESC_LOG);
    if (ev->why[0]) {
        put(&b, " (", 2);
        put_escaped(&b, ev->why, sizeof ev->why, ESC_LOG);
        put(&b, ")", 1);
    }
}

static void put_json_string(struct buf *b, const char *key, const char *s, size_t field)
{
    putf(b, ",\"%s\":\"", key);
    put_escaped(b, s, field, ESC_JSON);
    put(b, "\"", 1);
}

void events_format_json(const struct vigil_event *ev, char *buf, size_t len)
{
    struct buf b;
    buf_init(&b, buf, len);
    put(&b, "{\"time\":", 8);
    struct buf t = b; /* the time string, or null */
    put(&t, "\"", 1);
    if (put_time(&t, ev->time_ms, 'T')) {
        put(&t, "Z\"", 2);
        b = t;
    } else {
        if (b.cap)
            b.p[b.n] = 0; /* drop the quote */
        put(&b, "null", 4);
    }
    putf(&b, ",\"time_ms\":%" PRId64 ",\"seq\":%" PRIu64, ev->time_ms, ev->seq);
    put_json_string(&b, "host", ev->host, sizeof ev->host);
    put_json_string(&b, "actor", ev->actor, sizeof ev->actor);
    put_json_string(&b, "what", ev->what, sizeof ev->what);
    put_json_string(&b, "why", ev->why, sizeof ev->why);
    put(&b, "}", 1);
}
