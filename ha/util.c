/* Settings, value parsing, names, and the action buffer. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ha.h"

void ha_settings_default(struct ha_settings *s)
{
    *s = (struct ha_settings){
        .token_timeout = 1000,
        .disk_interval = 1000,
        .disk_timeout = 4000,
        .msgwait = 10000,
        .fence_time = 200,
        .fence_timeout = 5000,
        .vm_start = 1000,
        .vm_stop = 500,
        .migrate_time = 2000,
        .op_timeout = 30000,
        .recovery_bound = 60000,
        .evacuate_concurrency = 2,
        .max_restart = 2,
        .watchdog = true,
        .cpu_overcommit = 4.0,
        .heartbeat_disk = true,
    };
}

int ha_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -EINVAL;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        if (v > LONG_MAX / 10 - 10)
            return -EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Splits "123unit" into a number and a unit; rejects empty or non-digit. */
static int split_number(const char *s, uint64_t *num, const char **unit)
{
    if (!s || !*s || *s < '0' || *s > '9')
        return -EINVAL;
    uint64_t v = 0;
    const char *p = s;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX / 10) - 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *num = v;
    *unit = p;
    return 0;
}

int ha_parse_duration(const char *s, ha_ms *out)
{
    uint64_t v;
    const char *u;
    if (split_number(s, &v, &u) < 0)
        return -EINVAL;
    uint64_t mul;
    if (!*u || !strcmp(u, "s"))
        mul = 1000;
    else if (!strcmp(u, "ms"))
        mul = 1;
    else if (!strcmp(u, "m"))
        mul = 60000;
    else if (!strcmp(u, "h"))
        mul = 3600000;
    else
        return -EINVAL;
    /* a week is more than any timing vigil needs; it keeps sums far from overflow */
    if (v > (uint64_t)7 * 24 * 3600 * 1000 / mul)
        return -EINVAL;
    *out = (ha_ms)(v * mul);
    return 0;
}

int ha_parse_size_mb(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *u;
    if (split_number(s, &v, &u) < 0)
        return -EINVAL;
    uint64_t mul;
    if (!*u || !strcmp(u, "M"))
        mul = 1;
    else if (!strcmp(u, "G"))
        mul = 1024;
    else if (!strcmp(u, "T"))
        mul = 1024 * 1024;
    else
        return -EINVAL;
    if (v == 0 || v > ((uint64_t)1 << 40) / mul)
        return -EINVAL;
    *out = v * mul;
    return 0;
}

void ha_format_time(ha_ms t, char *buf, size_t len)
{
    const char *sign = t < 0 ? "-" : "";
    if (t < 0)
        t = -t;
    snprintf(buf, len, "%s%" PRId64 ".%03ds", sign, t / 1000, (int)(t % 1000));
}

static int set_duration(ha_ms *dst, const char *value, ha_ms min, const char *name, char *err,
                        size_t errlen)
{
    ha_ms v;
    if (ha_parse_duration(value, &v) < 0) {
        snprintf(err, errlen, "setting %s: '%s' is not a duration (e.g. 500ms, 4s, 2m)", name, value);
        return -EINVAL;
    }
    if (v < min) {
        snprintf(err, errlen, "setting %s: '%s' is below the minimum of %lld ms", name, value, (long long)min);
        return -EINVAL;
    }
    *dst = v;
    return 0;
}

int ha_settings_set(struct ha_settings *s, const char *name, const char *value, char *err,
                    size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        ha_ms min;
    } durations[] = {
        {"token_timeout", offsetof(struct ha_settings, token_timeout), 100},
        {"disk_interval", offsetof(struct ha_settings, disk_interval), 100},
        {"disk_timeout", offsetof(struct ha_settings, disk_timeout), 200},
        {"msgwait", offsetof(struct ha_settings, msgwait), 200},
        {"fence_time", offsetof(struct ha_settings, fence_time), 0},
        {"fence_timeout", offsetof(struct ha_settings, fence_timeout), 100},
        {"vm_start", offsetof(struct ha_settings, vm_start), 0},
        {"vm_stop", offsetof(struct ha_settings, vm_stop), 0},
        {"migrate_time", offsetof(struct ha_settings, migrate_time), 0},
        {"op_timeout", offsetof(struct ha_settings, op_timeout), 1000},
        {"recovery_bound", offsetof(struct ha_settings, recovery_bound), 1000},
    };
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        if (!strcmp(name, durations[i].name)) {
            ha_ms tmp;
            int r = set_duration(&tmp, value, durations[i].min, name, err, errlen);
            if (r < 0)
                return r;
            if ((!strcmp(name, "disk_timeout") && tmp < 2 * s->disk_interval) ||
                (!strcmp(name, "disk_interval") && s->disk_timeout < 2 * tmp)) {
                snprintf(err, errlen, "setting %s: disk_timeout must be at least twice disk_interval", name);
                return -EINVAL;
            }
            memcpy((char *)s + durations[i].off, &tmp, sizeof tmp);
            return 0;
        }
    }
    long v;
    if (!strcmp(name, "evacuate_concurrency")) {
        if (ha_parse_int(value, 1, 64, &v) < 0)
            goto bad_int;
        s->evacuate_concurrency = (int)v;
        return 0;
    }
    if (!strcmp(name, "failures_to_tolerate")) {
        if (ha_parse_int(value, 0, HA_MAX_HOSTS - 1, &v) < 0)
            goto bad_int;
        s->failures_to_tolerate = (int)v;
        return 0;
    }
    if (!strcmp(name, "balance_interval")) {
        ha_ms t;
        if (!strcmp(value, "off") || !strcmp(value, "0")) {
            s->balance_interval = 0;
            return 0;
        }
        if (ha_parse_duration(value, &t) < 0 || t < 1000) {
            snprintf(err, errlen, "setting balance_interval: '%s' must be off or a duration of at least 1s", value);
            return -EINVAL;
        }
        s->balance_interval = t;
        return 0;
    }
    if (!strcmp(name, "max_restart")) {
        if (ha_parse_int(value, 0, 100, &v) < 0)
            goto bad_int;
        s->max_restart = (int)v;
        return 0;
    }
    if (!strcmp(name, "watchdog") || !strcmp(name, "heartbeat_disk")) {
        bool *b = !strcmp(name, "watchdog") ? &s->watchdog : &s->heartbeat_disk;
        if (!strcmp(value, "yes"))
            *b = true;
        else if (!strcmp(value, "no"))
            *b = false;
        else {
            snprintf(err, errlen, "setting %s: '%s' must be yes or no", name, value);
            return -EINVAL;
        }
        return 0;
    }
    if (!strcmp(name, "cpu_overcommit")) {
        char *end;
        double d = strtod(value, &end);
        if (end == value || *end || !(d >= 1.0 && d <= 64.0)) {
            snprintf(err, errlen, "setting cpu_overcommit: '%s' must be a number from 1 to 64",
                     value);
            return -EINVAL;
        }
        s->cpu_overcommit = d;
        return 0;
    }
    snprintf(err, errlen, "unknown setting '%s'", name);
    return -EINVAL;
bad_int:
    snprintf(err, errlen, "setting %s: '%s' is not a whole number in range", name, value);
    return -EINVAL;
}

void ha_actions_clear(struct ha_actions *a) { a->n = 0; }

void ha_actions_free(struct ha_actions *a)
{
    free(a->v);
    *a = (struct ha_actions){0};
}

const char *ha_host_state_name(enum ha_host_state s)
{
    static const char *const n[] = {"offline", "online", "maintenance", "suspect",
                                    "fencing", "fenced", "left"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

const char *ha_vm_state_name(enum ha_vm_state s)
{
    static const char *const n[] = {"stopped",   "starting",   "running", "stopping",
                                    "migrating", "recovering", "failed"};
    return (unsigned)s < sizeof n / sizeof n[0] ? n[s] : "?";
}

const char *ha_verdict_name(enum ha_verdict v)
{
    static const char *const n[] = {"alive", "storage-isolated", "network-isolated", "dead",
                                    "unknown"};
    return (unsigned)v < sizeof n / sizeof n[0] ? n[v] : "?";
}

const char *ha_protect_name(enum ha_protect p)
{
    static const char *const n[] = {"off", "restart", "best-effort"};
    return (unsigned)p < sizeof n / sizeof n[0] ? n[p] : "?";
}

const char *ha_obs_name(enum ha_vm_obs o)
{
    static const char *const n[] = {"none", "starting", "running", "stopping", "migrating",
                                    "crashed"};
    return (unsigned)o < sizeof n / sizeof n[0] ? n[o] : "?";
}
