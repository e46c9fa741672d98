/* fencing/fence.c: device specs, dispatch by type, and fence topologies
 * (levels in order, retries with backoff, one fence per host at a time). */
#include "fencing/fence_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int (*fence_runner)(const struct fence_device *d, enum fence_action a, int timeout_ms,
                    enum fence_power *state_out, char *why, size_t whylen);

static void (*log_fn)(void *arg, const char *line);
static void *log_arg;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void fence_set_log(void (*log)(void *arg, const char *line), void *arg)
{
    pthread_mutex_lock(&log_mu);
    log_fn = log;
    log_arg = arg;
    pthread_mutex_unlock(&log_mu);
}

void fence_logf(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    pthread_mutex_lock(&log_mu);
    if (log_fn) {
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        log_fn(log_arg, line);
    }
    pthread_mutex_unlock(&log_mu);
}

void fence_setf(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    if (!why || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

long fence_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void fence_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const char *fence_action_name(enum fence_action a)
{
    switch (a) {
    case FENCE_STATUS: return "status";
    case FENCE_ON: return "on";
    case FENCE_OFF: return "off";
    case FENCE_CYCLE: return "cycle";
    }
    return "?";
}

const char *fence_power_name(enum fence_power p)
{
    switch (p) {
    case FENCE_POWER_ON: return "on";
    case FENCE_POWER_OFF: return "off";
    case FENCE_POWER_UNKNOWN: break;
    }
    return "unknown";
}

void fence_scrub(char *s, size_t len, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0, at, tail;
    char *p;
    if (!s || !len || !sl)
        return;
    s[len - 1] = '\0';
    while ((p = strstr(s, secret)) != NULL) {
        at = (size_t)(p - s);
        if (at + 3 >= len) { /* no room for "***": cut the text there */
            *p = '\0';
            break;
        }
        tail = strlen(p + sl);
        /* "***" may be longer than a 1- or 2-byte secret: keep within len */
        if (at + 3 + tail + 1 > len)
            tail = len - at - 4;
        memmove(p + 3, p + sl, tail);
        p[3 + tail] = '\0';
        memcpy(p, "***", 3);
    }
}

static int default_port(const struct fence_device *d)
{
    if (d->port)
        return d->port;
    return strcmp(d->type, "ipmi") == 0 ? 623 : 0;
}

void fence_device_describe(const struct fence_device *d, char *buf, size_t len)
{
    const char *what = strcmp(d->type, "agent") == 0 ? d->agent : "";
    if (default_port(d))
        snprintf(buf, len, "%s%s%s %s:%d", d->type, *what ? " " : "", what, d->address, default_port(d));
    else
        snprintf(buf, len, "%s%s%s %s", d->type, *what ? " " : "", what, d->address);
}

static int has_newline(const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    return n == max || strpbrk(s, "\r\n") != NULL;
}

int fence_device_check(const struct fence_device *d, char *err, size_t errlen)
{
    int i;
    const char *p;
    if (has_newline(d->type, sizeof d->type) || has_newline(d->address, sizeof d->address) ||
        has_newline(d->user, sizeof d->user) || has_newline(d->password, sizeof d->password) ||
        has_newline(d->agent, sizeof d->agent)) {
        fence_setf(err, errlen, "a field is too long or holds a line break");
        return -EINVAL;
    }
    if (strcmp(d->type, "ipmi") && strcmp(d->type, "agent") && strcmp(d->type, "disk") && strcmp(d->type, "scsi-pr")) {
        fence_setf(err, errlen, "unknown device type '%s' (ipmi, agent, disk or scsi-pr)", d->type);
        return -EINVAL;
    }
    if (d->port < 0 || d->port > 65535 || d->cipher < 0 || d->cipher > 17 || d->timeout_ms < 0 ||
        d->timeout_ms > 600000 || d->retries < 0 || d->retries > 10 || d->noptions < 0 ||
        d->noptions > FENCE_MAX_OPTIONS) {
        fence_setf(err, errlen, "port, cipher, timeout_ms, retries or options out of range");
        return -EINVAL;
    }
    for (i = 0; i < d->noptions; i++) {
        if (has_newline(d->options[i], sizeof d->options[i]) || !strchr(d->options[i], '=') ||
            d->options[i][0] == '=') {
            fence_setf(err, errlen, "option %d is not key=value on one line", i + 1);
            return -EINVAL;
        }
    }
    if ((!strcmp(d->type, "ipmi") || !strcmp(d->type, "agent") || !strcmp(d->type, "scsi-pr")) && !d->address[0]) {
        fence_setf(err, errlen, "a %s device needs an address", d->type);
        return -EINVAL;
    }
    if (!strcmp(d->type, "ipmi") && (strlen(d->user) > 16 || strlen(d->password) > 20)) {
        fence_setf(err, errlen, "IPMI 2.0 allows a user of at most 16 bytes and a password of at most 20");
        return -EINVAL;
    }
    if (!strcmp(d->type, "agent")) {
        if (strncmp(d->agent, "fence_", 6) != 0 || !d->agent[6]) {
            fence_setf(err, errlen, "agent must be a fence-agents program name (fence_...)");
            return -EINVAL;
        }
        for (p = d->agent; *p; p++) {
            if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
                fence_setf(err, errlen, "agent name '%s' has a character other than a-z, 0-9 and _", d->agent);
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int copy_field(char *dst, size_t size, const char *v, size_t vlen)
{
    if (vlen >= size)
        return -1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
    return 0;
}

static int parse_int(const char *v, size_t vlen, int lo, int hi, int *out)
{
    char buf[16], *end;
    long x;
    if (vlen == 0 || vlen >= sizeof buf)
        return -1;
    memcpy(buf, v, vlen);
    buf[vlen] = '\0';
    errno = 0;
    x = strtol(buf, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static int read_password_file(const char *path, char *pw, size_t len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[256];
    size_t n;
    if (!f) {
        fence_setf(err, errlen, "cannot read password_file %s: %s", path, strerror(errno));
        return -EINVAL;
    }
    if (!fgets(line, sizeof line, f))
        line[0] = '\0';
    fclose(f);
    n = strcspn(line, "\r\n");
    line[n] = '\0';
    if (n >= len) {
        fence_setf(err, errlen, "the password in %s is longer than %zu bytes", path, len - 1);
        return -EINVAL;
    }
    memcpy(pw, line, n + 1);
    memset(line, 0, sizeof line);
    return 0;
}

int fence_device_parse(const char *spec, struct fence_device *d, char *err, size_t errlen)
{
    const char *p = spec, *comma, *eq, *v;
    size_t klen, vlen;
    char key[32], path[256];
    int bad;

    memset(d, 0, sizeof *d);
    while (*p) {
        comma = strchr(p, ',');
        if (!comma)
            comma = p + strlen(p);
        eq = memchr(p, '=', (size_t)(comma - p));
        if (!eq || eq == p || (size_t)(eq - p) >= sizeof key) {
            fence_setf(err, errlen, "expected key=value at '%.*s'", (int)(comma - p) > 40 ? 40 : (int)(comma - p), p);
            return -EINVAL;
        }
        klen = (size_t)(eq - p);
        memcpy(key, p, klen);
        key[klen] = '\0';
        v = eq + 1;
        vlen = (size_t)(comma - v);
        bad = 0;
        if (!strcmp(key, "type")) bad = copy_field(d->type, sizeof d->type, v, vlen);
        else if (!strcmp(key, "address")) bad = copy_field(d->address, sizeof d->address, v, vlen);
        else if (!strcmp(key, "user")) bad = copy_field(d->user, sizeof d->user, v, vlen);
        else if (!strcmp(key, "password")) bad = copy_field(d->password, sizeof d->password, v, vlen);
        else if (!strcmp(key, "agent")) bad = copy_field(d->agent, sizeof d->agent, v, vlen);
        else if (!strcmp(key, "port")) bad = parse_int(v, vlen, 0, 65535, &d->port);
        else if (!strcmp(key, "cipher")) bad = parse_int(v, vlen, 0, 17, &d->cipher);
        else if (!strcmp(key, "timeout_ms")) bad = parse_int(v, vlen, 0, 600000, &d->timeout_ms);
        else if (!strcmp(key, "retries")) bad = parse_int(v, vlen, 0, 10, &d->retries);
        else if (!strcmp(key, "option")) {
            if (d->noptions >= FENCE_MAX_OPTIONS)
                bad = 1;
            else
                bad = copy_field(d->options[d->noptions++], sizeof d->options[0], v, vlen);
        } else if (!strcmp(key, "password_file")) {
            if (copy_field(path, sizeof path, v, vlen)) {
                bad = 1;
            } else if (read_password_file(path, d->password, sizeof d->password, err, errlen)) {
                memset(d->password, 0, sizeof d->password);
                return -EINVAL;
            }
        } else {
            fence_setf(err, errlen, "unknown key '%s'", key);
            memset(d->password, 0, sizeof d->password);
            return -EINVAL;
        }
        if (bad) {
            fence_setf(err, errlen, "bad value for '%s'", key);
            memset(d->password, 0, sizeof d->password);
            return -EINVAL;
        }
        p = *comma ? comma + 1 : comma;
    }
    if (fence_device_check(d, err, errlen)) {
        memset(d->password, 0, sizeof d->password);
        return -EINVAL;
    }
    return 0;
}

int fence_device_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                     enum fence_power *state_out, char *why, size_t whylen)
{
    enum fence_power st = FENCE_POWER_UNKNOWN;
    int rc;

    if (state_out)
        *state_out = FENCE_POWER_UNKNOWN;
    if ((rc = fence_device_check(d, why, whylen)) != 0)
        return rc;
    if (timeout_ms <= 0)
        timeout_ms = d->timeout_ms > 0 ? d->timeout_ms : 5000;
    if (!strcmp(d->type, "ipmi"))
        rc = fence_ipmi_run(d, a, timeout_ms, &st, why, whylen);
    else if (!strcmp(d->type, "agent"))
        rc = fence_agent_run(d, a, timeout_ms, &st, why, whylen);
    else if (!strcmp(d->type, "scsi-pr"))
        rc = fence_scsi_run(d, a, timeout_ms, &st, why, whylen);
    else {
        fence_setf(why, whylen, "disk fencing (the poison pill) is not available yet: issue [disk]");
        rc = -ENOSYS;
    }
    fence_scrub(why, whylen, d->password);
    if (state_out)
        *state_out = st;
    return rc;
}

/* ---- topology ------------------------------------------------------- */

static int run_device_off(const struct fence_device *d, char *why, size_t whylen)
{
    char desc[160], err[512];
    int attempt, rc = -EIO;
    long backoff = 250;
    enum fence_power st;
    int (*run)(const struct fence_device *, enum fence_action, int, enum fence_power *, char *, size_t) =
        fence_runner ? fence_runner : fence_device_run;

    fence_device_describe(d, desc, sizeof desc);
    for (attempt = 0; attempt <= d->retries; attempt++) {
        if (attempt) {
            fence_logf("%s: retry %d in %ld ms", desc, attempt, backoff);
            fence_sleep_ms(backoff);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        }
        err[0] = '\0';
        st = FENCE_POWER_UNKNOWN;
        rc = run(d, FENCE_OFF, d->timeout_ms, &st, err, sizeof err);
        fence_scrub(err, sizeof err, d->password);
        if (rc == 0 && st != FENCE_POWER_OFF) {
            fence_setf(err, sizeof err, "the device did not report the host off");
            rc = -EIO;
        }
        fence_logf("%s: off: %s", desc, rc == 0 ? "verified off" : err);
        if (rc == 0 || rc == -ENOSYS || rc == -EINVAL)
            break; /* nothing to gain from trying again */
    }
    if (!err[0])
        fence_setf(err, sizeof err, "%s", rc == 0 ? "off" : "failed");
    /* the device's own reason names its address already, most of the time */
    if (d->address[0] && strstr(err, d->address))
        fence_setf(why, whylen, "%s", err);
    else
        fence_setf(why, whylen, "%s: %s", desc, err);
    return rc;
}

static int topology_off_now(const struct fence_topology *t, char *why, size_t whylen)
{
    char all[2048] = "", one[600];
    int l, i, rc = -ENODEV, lrc;
    size_t used;

    if (t->nlevels <= 0 || t->nlevels > FENCE_MAX_LEVELS) {
        fence_setf(why, whylen, "%s has no fence levels", t->host);
        return -ENODEV;
    }
    for (l = 0; l < t->nlevels; l++) {
        const struct fence_level *lv = &t->levels[l];
        lrc = lv->ndevices > 0 && lv->ndevices <= FENCE_MAX_DEVICES ? 0 : -ENODEV;
        if (lrc)
            fence_setf(one, sizeof one, "no devices");
        for (i = 0; lrc == 0 && i < lv->ndevices; i++)
            lrc = run_device_off(&lv->devices[i], one, sizeof one);
        if (lrc == 0) {
            if (all[0])
                fence_setf(why, whylen, "%s off: level %d confirmed (%s) after %s", t->host, l + 1, one, all);
            else
                fence_setf(why, whylen, "%s off: level %d confirmed (%s)", t->host, l + 1, one);
            fence_logf("%s: level %d confirmed off", t->host, l + 1);
            return 0;
        }
        fence_logf("%s: level %d failed: %s", t->host, l + 1, one);
        used = strlen(all);
        snprintf(all + used, sizeof all - used, "%slevel %d failed: %s", used ? "; " : "", l + 1, one);
        rc = lrc;
    }
    fence_setf(why, whylen, "%s not fenced: %s", t->host, all);
    return rc;
}

/* one entry per host being fenced; later requests wait for the first */
struct inflight {
    struct inflight *next;
    char host[64];
    int waiters;
    int done;
    int rc;
    char why[2048];
    pthread_cond_t cond;
};
static pthread_mutex_t fl_mu = PTHREAD_MUTEX_INITIALIZER;
static struct inflight *fl_head;

int fence_topology_off(const struct fence_topology *t, char *why, size_t whylen)
{
    struct inflight *f, **pp;
    int rc;

    pthread_mutex_lock(&fl_mu);
    for (f = fl_head; f; f = f->next) {
        if (!strcmp(f->host, t->host))
            break;
    }
    if (f) { /* joins the fence that runs */
        f->waiters++;
        fence_logf("%s: a fence runs already: waiting for its result", t->host);
        while (!f->done)
            pthread_cond_wait(&f->cond, &fl_mu);
        rc = f->rc;
        fence_setf(why, whylen, "%s", f->why);
        if (--f->waiters == 0) {
            pthread_cond_destroy(&f->cond);
            free(f);
        }
        pthread_mutex_unlock(&fl_mu);
        return rc;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        pthread_mutex_unlock(&fl_mu);
        fence_setf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    snprintf(f->host, sizeof f->host, "%s", t->host);
    f->waiters = 1;
    pthread_cond_init(&f->cond, NULL);
    f->next = fl_head;
    fl_head = f;
    pthread_mutex_unlock(&fl_mu);

    rc = topology_off_now(t, f->why, sizeof f->why);

    pthread_mutex_lock(&fl_mu);
    for (pp = &fl_head; *pp; pp = &(*pp)->next) {
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    }
    f->rc = rc;
    f->done = 1;
    fence_setf(why, whylen, "%s", f->why);
    pthread_cond_broadcast(&f->cond);
    if (--f->waiters == 0) {
        pthread_cond_destroy(&f->cond);
        free(f);
    }
    pthread_mutex_unlock(&fl_mu);
    return rc;
}
