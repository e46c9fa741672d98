/* vigil.conf: parser, loader and canonical dump (config.h, vigil.conf(5)).
 *
 * One table lists every key with its kind and its place in the struct; the
 * parser, the dump and the equality test all walk it, so a new key is one
 * line here plus its validation. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"

#define SECOND ((ha_ms)1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)
#define DAY (24 * HOUR)
#define TTL_MIN MINUTE
#define TTL_MAX (30 * DAY)

enum kind { K_NAME, K_ADDRESS, K_PATH, K_COMMAND, K_PORT, K_TTL, K_LOG_LEVEL, K_BOOL, K_GROUP, K_SECTOR, K_SECONDS, K_URI,
                K_PEER_URI };

struct key {
    const char *name;
    enum kind kind;
    size_t off, size;
};

#define KEY(field, kind) {#field, kind, offsetof(struct vigil_config, field), sizeof(((struct vigil_config *)0)->field)}
/* In the man page's order, which is also the dump's. */
static const struct key keys[] = {
    KEY(name, K_NAME),
    KEY(address, K_ADDRESS),
    KEY(state_dir, K_PATH),
    KEY(corosync_conf, K_PATH),
    KEY(corosync_authkey, K_PATH),
    KEY(corosync_start, K_COMMAND),
    KEY(corosync_reload, K_COMMAND),
    KEY(corosync_stop, K_COMMAND),
    KEY(join_port, K_PORT),
    KEY(join_token_ttl, K_TTL),
    KEY(log_file, K_PATH),
    KEY(log_level, K_LOG_LEVEL),
    KEY(syslog, K_BOOL),
    KEY(heartbeat_disk, K_PATH),
    KEY(heartbeat_disk_sector_size, K_SECTOR),
    KEY(self_fence_reboot, K_BOOL),
    KEY(watchdog_device, K_PATH),
    KEY(watchdog_timeout, K_SECONDS),
    KEY(ipc_group, K_GROUP),
    KEY(libvirt_uri, K_URI),
    KEY(libvirt_peer_uri, K_PEER_URI),
};
#define NKEYS (sizeof keys / sizeof keys[0])

#define FIELD(c, k, type) ((type *)(void *)((char *)(c) + (k)->off))
#define CFIELD(c, k, type) ((const type *)(const void *)((const char *)(c) + (k)->off))

static const struct {
    const char *name;
    int prio;
} levels[] = {{"error", LOG_ERR}, {"warning", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG}};

static const struct {
    const char *word;
    bool value;
} bools[] = {{"yes", true}, {"no", false}, {"true", true}, {"false", false},
             {"on", true},  {"off", false}, {"1", true},   {"0", false}};

void vigil_config_default(struct vigil_config *c)
{
    /* zeroed first: unused tails of the strings are then always NUL, so two
     * structs built the same way are byte-identical too */
    memset(c, 0, sizeof *c);
    snprintf(c->state_dir, sizeof c->state_dir, "/var/lib/vigil");
    snprintf(c->corosync_conf, sizeof c->corosync_conf, "/etc/corosync/corosync.conf");
    snprintf(c->corosync_authkey, sizeof c->corosync_authkey, "/etc/corosync/authkey");
    snprintf(c->corosync_start, sizeof c->corosync_start, "corosync");
    snprintf(c->corosync_reload, sizeof c->corosync_reload, "corosync-cfgtool -R");
    snprintf(c->corosync_stop, sizeof c->corosync_stop, "corosync-cfgtool -H --force");
    c->join_port = 7405;
    c->join_token_ttl = HOUR;
    c->log_level = LOG_INFO;
    c->heartbeat_disk_sector_size = 512;
    c->watchdog_timeout = 10;
    snprintf(c->ipc_group, sizeof c->ipc_group, "vigil");
    snprintf(c->libvirt_uri, sizeof c->libvirt_uri, "qemu:///system");
    snprintf(c->libvirt_peer_uri, sizeof c->libvirt_peer_uri, "qemu+tcp://%%s/system");
    c->from_defaults = true;
}

/* ---------------------------------------------------------------- errors */

struct ctx {
    const char *file;
    int line;
    char *err;
    size_t errlen;
};

__attribute__((format(printf, 2, 3))) static int fail(const struct ctx *x, const char *fmt, ...)
{
    if (!x->err || !x->errlen)
        return -EINVAL;
    int n = snprintf(x->err, x->errlen, "%s:%d: ", x->file, x->line);
    if (n >= 0 && (size_t)n < x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Edit distance between a mistyped key and a known one (insert, delete or
 * change one byte).  Only "2 or less" matters for the hint, so anything
 * further apart is cut short and reported as 3. */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > lb + 2 || lb > la + 2 || lb >= 32)
        return 3;
    int prev[32], cur[32];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof prev[0]);
    }
    return prev[lb] < 3 ? prev[lb] : 3;
}

static int unknown_key(const struct ctx *x, const char *key)
{
    const char *best = NULL;
    int best_d = 3;
    for (size_t i = 0; i < NKEYS; i++) {
        int d = edit_distance(key, keys[i].name);
        if (d < best_d) {
            best_d = d;
            best = keys[i].name;
        }
    }
    if (best)
        return fail(x, "unknown key '%.64s' (did you mean '%s'?)", key, best);
    return fail(x, "unknown key '%.64s'", key);
}

/* ---------------------------------------------------------------- values */

static bool is_space(char c) { return c == ' ' || c == '\t'; }

/* 1..max bytes of [A-Za-z0-9._-]: safe in file names, logs and corosync.conf. */
static bool valid_word(const char *s, size_t max)
{
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    return n > 0 && n <= max && !s[n];
}

/* ha_parse_duration knows ms, s, m and h up to one week; a join token may
 * live up to 30 days, so whole days ("30d") are read here. */
static int parse_ttl(const struct ctx *x, const char *v, ha_ms *out)
{
    size_t n = strlen(v);
    ha_ms ms;
    if (n >= 2 && n < 16 && v[n - 1] == 'd') {
        char num[16];
        long days;
        memcpy(num, v, n - 1);
        num[n - 1] = 0;
        if (ha_parse_int(num, 0, 1000000, &days) < 0)
            return fail(x, "join_token_ttl: '%.80s' is not a duration (e.g. 30m, 12h, 7d)", v);
        ms = days * DAY;
    } else if (ha_parse_duration(v, &ms) < 0) {
        return fail(x, "join_token_ttl: '%.80s' is not a duration (e.g. 30m, 12h, 7d; more than a week in whole days)",
                    v);
    }
    if (ms < TTL_MIN || ms > TTL_MAX)
        return fail(x, "join_token_ttl: '%.80s' is outside 1m..30d", v);
    *out = ms;
    return 0;
}

/* Checks `v` for key `k` and stores it into `c`. */
static int set_value(const struct ctx *x, const struct key *k, const char *v, struct vigil_config *c)
{
    switch (k->kind) {
    case K_NAME:
        if (!valid_word(v, k->size - 1))
            return fail(x, "name: '%.80s' is not a host name (1..%zu of A-Z a-z 0-9 . _ -)", v, k->size - 1);
        break;
    case K_ADDRESS: {
        unsigned char bin[16];
        if (inet_pton(AF_INET, v, bin) != 1 && inet_pton(AF_INET6, v, bin) != 1)
            return fail(x, "address: '%.80s' is not an IPv4 or IPv6 address", v);
        break;
    }
    case K_PATH:
        if (v[0] != '/')
            return fail(x, "%s: '%.80s' is not an absolute path", k->name, v);
        break;
    case K_COMMAND:
        break; /* any non-empty text: /bin/sh -c reads it */
    case K_PORT: {
        long port;
        if (ha_parse_int(v, 1, 65535, &port) < 0)
            return fail(x, "join_port: '%.80s' is not a port number (1..65535)", v);
        *FIELD(c, k, int) = (int)port;
        return 0;
    }
    case K_TTL:
        return parse_ttl(x, v, FIELD(c, k, ha_ms));
    case K_SECTOR:
        if (strcmp(v, "512") && strcmp(v, "4096"))
            return fail(x, "%s: '%.80s' is not 512 or 4096", k->name, v);
        *FIELD(c, k, int) = atoi(v);
        return 0;
    case K_SECONDS: {
        ha_ms ms;
        if (ha_parse_duration(v, &ms) < 0 || ms % SECOND || ms < SECOND || ms > HOUR)
            return fail(x, "%s: '%.80s' is not a whole number of seconds in 1s..1h (e.g. 10 or 10s)", k->name, v);
        *FIELD(c, k, int) = (int)(ms / SECOND);
        return 0;
    }
    case K_LOG_LEVEL:
        for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
            if (!strcasecmp(v, levels[i].name)) {
                *FIELD(c, k, int) = levels[i].prio;
                return 0;
            }
        return fail(x, "log_level: '%.80s' is not one of error, warning, notice, info, debug", v);
    case K_BOOL:
        for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
            if (!strcasecmp(v, bools[i].word)) {
                *FIELD(c, k, bool) = bools[i].value;
                return 0;
            }
        return fail(x, "%s: '%.80s' is not yes or no (or true/false, on/off, 1/0)", k->name, v);
    case K_URI:
    case K_PEER_URI: {
        /* a libvirt URI (driver[+transport]://[host]/path...): one word;
         * the peer template names a host's address with one %s */
        const char *colon = strstr(v, "://"), *pct = strchr(v, '%');
        bool word = true;
        for (const char *p = v; *p; p++)
            word &= (unsigned char)*p > 0x20 && *p != 0x7f && *p != '\'' && *p != '"';
        if (!colon || colon == v || !word)
            return fail(x, "%s: '%.80s' is not a libvirt URI (e.g. qemu:///system)", k->name, v);
        if (k->kind == K_PEER_URI && (!pct || pct[1] != 's' || strchr(pct + 1, '%')))
            return fail(x, "libvirt_peer_uri: '%.80s' must hold exactly one %%s, where a host's address goes (e.g. "
                           "qemu+tcp://%%s/system)", v);
        if (k->kind == K_URI && pct)
            return fail(x, "libvirt_uri: '%.80s' holds a %%", v);
        break;
    }
    case K_GROUP:
        /* the length limit of shadow's groupadd; no leading '-', which
         * tools would read as an option */
        if (!valid_word(v, k->size - 1) || v[0] == '-')
            return fail(x, "ipc_group: '%.80s' is not a group name (1..%zu of A-Z a-z 0-9 . _ -, not starting with -)", v,
                        k->size - 1);
        break;
    }
    /* the string kinds */
    if (strlen(v) >= k->size)
        return fail(x, "%s: value longer than %zu bytes", k->name, k->size - 1);
    memcpy(FIELD(c, k, char), v, strlen(v) + 1);
    return 0;
}

/* ---------------------------------------------------------------- lines */

/* Length of the valid UTF-8 sequence at p (n bytes available), or 0:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xbf;
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/* A line is UTF-8 text without control characters (tabs are fine). */
static int check_bytes(const struct ctx *x, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        if (p[i] == 0)
            return fail(x, "NUL byte (not a text file)");
        if ((p[i] < 0x20 && p[i] != '\t') || p[i] == 0x7f)
            return fail(x, "control character 0x%02x", p[i]);
        size_t l = utf8_len(p + i, n - i);
        if (!l)
            return fail(x, "not valid UTF-8");
        i += l;
    }
    return 0;
}

/* The value after '=': "quoted" (with \" and \\) or bare up to a comment,
 * trimmed either way.  Writes at most VIGIL_CONFIG_VALUE_MAX bytes. */
static int read_value(const struct ctx *x, const char *key, const char *p, char *out)
{
    size_t n = 0;
    while (is_space(*p))
        p++;
    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (!*p)
                return fail(x, "%s: no closing '\"'", key);
            if (*p == '\\') {
                p++;
                if (!*p)
                    return fail(x, "%s: no closing '\"'", key);
                if (*p != '"' && *p != '\\')
                    return fail(x, "%s: unknown escape in a quoted value (only \\\" and \\\\)", key);
            }
            if (n + 1 >= VIGIL_CONFIG_VALUE_MAX)
                return fail(x, "%s: value longer than %d bytes", key, VIGIL_CONFIG_VALUE_MAX - 1);
            out[n++] = *p;
        }
        p++;
        while (is_space(*p))
            p++;
        if (*p && !(*p == '#' && is_space(p[-1])))
            return fail(x, "%s: unexpected text after the closing '\"'", key);
    } else {
        const char *start = p;
        /* p starts after the '=', so p[-1] always exists */
        while (*p && !(*p == '#' && is_space(p[-1])))
            p++;
        while (p > start && is_space(p[-1]))
            p--;
        if ((size_t)(p - start) >= VIGIL_CONFIG_VALUE_MAX)
            return fail(x, "%s: value longer than %d bytes", key, VIGIL_CONFIG_VALUE_MAX - 1);
        n = (size_t)(p - start);
        memcpy(out, start, n);
    }
    out[n] = 0;
    if (!n)
        return fail(x, "empty value for '%s' (leave the key out to use the default)", key);
    return 0;
}

/* One line, NUL-terminated, already checked for bytes.  seen[] holds the
 * line each key was set on, to name it in a duplicate's error. */
static int parse_line(const struct ctx *x, char *line, struct vigil_config *c, int *seen)
{
    char *p = line;
    while (is_space(*p))
        p++;
    if (!*p || *p == '#')
        return 0;
    char *key = p;
    /* the key runs to '='; a '#' after whitespace before that is a comment */
    while (*p && *p != '=' && !(*p == '#' && is_space(p[-1])))
        p++;
    if (*p != '=')
        return fail(x, "expected 'key = value', found no '='");
    const char *rest = p + 1;
    while (p > key && is_space(p[-1]))
        p--;
    *p = 0;
    if (!*key)
        return fail(x, "missing key before '='");
    const struct key *k = NULL;
    for (size_t i = 0; i < NKEYS && !k; i++)
        if (!strcmp(key, keys[i].name))
            k = &keys[i];
    if (!k)
        return unknown_key(x, key);
    size_t idx = (size_t)(k - keys);
    if (seen[idx])
        return fail(x, "duplicate key '%s' (first set on line %d)", k->name, seen[idx]);
    seen[idx] = x->line;
    char value[VIGIL_CONFIG_VALUE_MAX];
    int r = read_value(x, k->name, rest, value);
    if (r < 0)
        return r;
    return set_value(x, k, value, c);
}

int vigil_config_parse(const char *text, size_t len, const char *name_for_errors, struct vigil_config *out,
                       char *err, size_t errlen)
{
    struct ctx x = {name_for_errors ? name_for_errors : "config", 0, err, errlen};
    struct vigil_config c;
    vigil_config_default(&c);
    c.from_defaults = false;
    int seen[NKEYS] = {0};
    char line[VIGIL_CONFIG_LINE_MAX + 1];
    const char *p = text, *end = text + len;
    if (len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3))
        p += 3; /* a byte order mark some editors write */
    while (p < end) {
        x.line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = (size_t)((nl ? nl : end) - p);
        if (n && p[n - 1] == '\r')
            n--; /* CRLF files from Windows editors read the same */
        if (n > VIGIL_CONFIG_LINE_MAX)
            return fail(&x, "line longer than %d bytes", VIGIL_CONFIG_LINE_MAX);
        int r = check_bytes(&x, p, n);
        if (r < 0)
            return r;
        memcpy(line, p, n);
        line[n] = 0;
        r = parse_line(&x, line, &c, seen);
        if (r < 0)
            return r;
        p = nl ? nl + 1 : end;
    }
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------- load */

/* name defaults to the hostname, which must then be a valid name too. */
static int fill_hostname(struct vigil_config *c, const char *path, char *err, size_t errlen)
{
    char host[256];
    if (gethostname(host, sizeof host) < 0) {
        int e = errno;
        snprintf(err, errlen, "name is not set in %s and the hostname cannot be read: %s", path, strerror(e));
        return -e;
    }
    host[sizeof host - 1] = 0;
    if (!valid_word(host, sizeof c->name - 1)) {
        snprintf(err, errlen,
                 "name is not set in %s and the hostname '%.80s' is not a valid host name (1..%zu of A-Z a-z 0-9 . _ -); "
                 "set name in %s",
                 path, host, sizeof c->name - 1, path);
        return -EINVAL;
    }
    memcpy(c->name, host, strlen(host) + 1); /* valid_word() kept it short enough */
    return 0;
}

/* Reads a whole regular file of at most VIGIL_CONFIG_FILE_MAX bytes. */
static int read_config_file(int fd, const char *path, char **text, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(e));
        return -e;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return -EISDIR;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        return -EINVAL;
    }
    /* it names commands vigild runs as root: only root (or whoever runs
     * vigild, for tests) may be able to change it */
    if (st.st_mode & S_IWOTH) {
        snprintf(err, errlen, "%s: writable by every user, refused (it names commands vigild runs): chmod o-w %s",
                 path, path);
        return -EPERM;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(err, errlen, "%s: owned by uid %u, refused (it names commands vigild runs): chown root %s", path,
                 (unsigned)st.st_uid, path);
        return -EPERM;
    }
    char *buf = malloc(VIGIL_CONFIG_FILE_MAX + 1);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, VIGIL_CONFIG_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
            free(buf);
            return -e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
        if (n > VIGIL_CONFIG_FILE_MAX) {
            snprintf(err, errlen, "%s: larger than %d bytes (not a vigil.conf)", path, VIGIL_CONFIG_FILE_MAX);
            free(buf);
            return -EFBIG;
        }
    }
    *text = buf;
    *len = n;
    return 0;
}

int vigil_config_load(const char *path, struct vigil_config *out, char *err, size_t errlen)
{
    bool explicit_path = path != NULL;
    if (!path)
        path = VIGIL_CONFIG_PATH;
    struct vigil_config c;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int e = errno;
        if (e != ENOENT || explicit_path) {
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
            return -e;
        }
        vigil_config_default(&c); /* no file where it usually is: defaults */
    } else {
        char *text = NULL;
        size_t len = 0;
        int r = read_config_file(fd, path, &text, &len, err, errlen);
        close(fd);
        if (r < 0)
            return r;
        r = vigil_config_parse(text, len, path, &c, err, errlen);
        free(text);
        if (r < 0)
            return r;
    }
    if (!c.name[0]) {
        int r = fill_hostname(&c, path, err, errlen);
        if (r < 0)
            return r;
    }
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------- dump */

struct out {
    char *buf;
    size_t len, used;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->used + n >= o->len) {
        o->full = true;
        return;
    }
    memcpy(o->buf + o->used, s, n);
    o->used += n;
}

static void put_str(struct out *o, const char *s) { put(o, s, strlen(s)); }

/* Quoted only when bare text would read differently: a space or tab (which
 * trimming or a comment could eat), '#', or the quoting characters. */
static void put_value(struct out *o, const char *v)
{
    if (!strpbrk(v, " \t#\"\\")) {
        put_str(o, v);
        return;
    }
    put(o, "\"", 1);
    for (; *v; v++) {
        if (*v == '"' || *v == '\\')
            put(o, "\\", 1);
        put(o, v, 1);
    }
    put(o, "\"", 1);
}

/* The largest unit that states ttl exactly.  A parsed ttl over a week is
 * whole days, so the text always parses back. */
static void format_ttl(ha_ms ms, char *buf, size_t len)
{
    static const struct {
        ha_ms ms;
        const char *unit;
    } units[] = {{DAY, "d"}, {HOUR, "h"}, {MINUTE, "m"}, {SECOND, "s"}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%lld%s", (long long)(ms / units[i].ms), units[i].unit);
            return;
        }
    snprintf(buf, len, "%lldms", (long long)ms);
}

int vigil_config_dump(const struct vigil_config *c, char *buf, size_t len)
{
    struct out o = {buf, len, 0, false};
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        char num[32];
        const char *v = num;
        switch (k->kind) {
        case K_PORT:
        case K_SECTOR:
            snprintf(num, sizeof num, "%d", *CFIELD(c, k, int));
            break;
        case K_SECONDS:
            snprintf(num, sizeof num, "%ds", *CFIELD(c, k, int));
            break;
        case K_TTL:
            format_ttl(*CFIELD(c, k, ha_ms), num, sizeof num);
            break;
        case K_LOG_LEVEL:
            snprintf(num, sizeof num, "%d", *CFIELD(c, k, int)); /* not a level: parse refuses it */
            for (size_t l = 0; l < sizeof levels / sizeof levels[0]; l++)
                if (levels[l].prio == *CFIELD(c, k, int))
                    v = levels[l].name;
            break;
        case K_BOOL:
            v = *CFIELD(c, k, bool) ? "yes" : "no";
            break;
        default:
            v = CFIELD(c, k, char);
            break;
        }
        if (!*v) { /* an optional string left unset: say so, as a comment */
            put_str(&o, "# ");
            put_str(&o, k->name);
            put_str(&o, " is not set\n");
            continue;
        }
        put_str(&o, k->name);
        put_str(&o, " = ");
        put_value(&o, v);
        put_str(&o, "\n");
    }
    if (len)
        buf[o.full ? 0 : o.used] = 0;
    return o.full ? -ENOSPC : (int)o.used;
}

bool vigil_config_equal(const struct vigil_config *a, const struct vigil_config *b)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        switch (k->kind) {
        case K_PORT:
        case K_LOG_LEVEL:
        case K_SECTOR:
        case K_SECONDS:
            if (*CFIELD(a, k, int) != *CFIELD(b, k, int))
                return false;
            break;
        case K_TTL:
            if (*CFIELD(a, k, ha_ms) != *CFIELD(b, k, ha_ms))
                return false;
            break;
        case K_BOOL:
            if (*CFIELD(a, k, bool) != *CFIELD(b, k, bool))
                return false;
            break;
        default:
            if (strncmp(CFIELD(a, k, char), CFIELD(b, k, char), k->size))
                return false;
            break;
        }
    }
    return true;
}
