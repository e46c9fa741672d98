/* storage/mpath.c: the heartbeat LUN's multipath path health through
 * libdmmp (see mpath.h).  Part one is pure (states -> verdict, text, JSON);
 * part two finds the map (sysfs, then multipathd through libdmmp). */
#define _GNU_SOURCE
#include "storage/mpath.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libdmmp/libdmmp.h>

/* ------------------------------------------------------------------ pure part */

int mpath_path_usable(int state)
{
    return state == MPATH_PS_UP || state == MPATH_PS_GHOST || state == MPATH_PS_SHAKY;
}

int mpath_path_failed(int state)
{
    return state == MPATH_PS_DOWN || state == MPATH_PS_TIMEOUT;
}

const char *mpath_verdict_str(enum mpath_verdict v)
{
    switch (v) {
    case MPATH_NOT_MULTIPATH: return "not-multipath";
    case MPATH_ALL_UP: return "all-up";
    case MPATH_DEGRADED: return "degraded";
    case MPATH_ALL_FAILED: return "all-failed";
    case MPATH_NO_DAEMON: return "no-daemon";
    }
    return "invalid";
}

const char *mpath_path_state_str(int state)
{
    switch (state) {
    case MPATH_PS_UNKNOWN: return "undef";
    case MPATH_PS_DOWN: return "faulty";
    case MPATH_PS_UP: return "ready";
    case MPATH_PS_SHAKY: return "shaky";
    case MPATH_PS_GHOST: return "ghost";
    case MPATH_PS_PENDING: return "i/o pending";
    case MPATH_PS_TIMEOUT: return "i/o timeout";
    case MPATH_PS_DELAYED: return "delayed";
    }
    return "invalid";
}

const char *mpath_group_state_str(int state)
{
    switch (state) {
    case MPATH_PG_UNKNOWN: return "undef";
    case MPATH_PG_ENABLED: return "enabled";
    case MPATH_PG_DISABLED: return "disabled";
    case MPATH_PG_ACTIVE: return "active";
    }
    return "invalid";
}

/* append to s->desc, never overflowing */
static void desc_add(struct mpath_summary *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void desc_add(struct mpath_summary *s, const char *fmt, ...)
{
    size_t used = strnlen(s->desc, sizeof s->desc);
    va_list ap;

    if (used >= sizeof s->desc - 1)
        return;
    va_start(ap, fmt);
    vsnprintf(s->desc + used, sizeof s->desc - used, fmt, ap);
    va_end(ap);
}

void mpath_summarize(struct mpath_summary *s)
{
    unsigned total = 0, up = 0, failed = 0, gfailed = 0;

    if (s->ngroups > MPATH_MAX_GROUPS)
        s->ngroups = MPATH_MAX_GROUPS;
    for (unsigned g = 0; g < s->ngroups; g++) {
        struct mpath_group *pg = &s->groups[g];

        if (pg->npaths > MPATH_MAX_PATHS)
            pg->npaths = MPATH_MAX_PATHS;
        if (pg->npaths == pg->paths_total) {
            pg->paths_up = pg->paths_failed = 0;
            for (unsigned i = 0; i < pg->npaths; i++) {
                pg->paths_up += mpath_path_usable(pg->paths[i].state) != 0;
                pg->paths_failed += mpath_path_failed(pg->paths[i].state) != 0;
            }
        }
        if (pg->paths_up > pg->paths_total)   /* inconsistent input: trust nothing it says is up */
            pg->paths_up = 0;
        if (pg->paths_failed > pg->paths_total - pg->paths_up)
            pg->paths_failed = pg->paths_total - pg->paths_up;
        total += pg->paths_total;
        up += pg->paths_up;
        failed += pg->paths_failed;
        gfailed += pg->paths_up == 0;
    }
    s->paths_total = total;
    s->paths_up = up;
    s->paths_failed = failed;
    s->paths_other = total - up - failed;
    s->groups_failed = gfailed;
    if (total == 0 || up == 0)
        s->verdict = MPATH_ALL_FAILED;
    else if (up == total)
        s->verdict = MPATH_ALL_UP;
    else
        s->verdict = MPATH_DEGRADED;

    s->desc[0] = '\0';
    desc_add(s, "multipath map %s", s->map[0] ? s->map : "?");
    if (s->kdev[0])
        desc_add(s, " (%s)", s->kdev);
    if (total == 0) {
        desc_add(s, ": no paths at all: storage lost");
        return;
    }
    desc_add(s, ": %u of %u paths up", up, total);
    if (failed)
        desc_add(s, ", %u failed", failed);
    if (s->paths_other)
        desc_add(s, ", %u not checked yet (pending/delayed/undef)", s->paths_other);
    desc_add(s, "; %u path group%s", s->ngroups, s->ngroups == 1 ? "" : "s");
    if (gfailed)
        desc_add(s, ", %u without a usable path", gfailed);
    if (s->verdict == MPATH_ALL_FAILED) {
        desc_add(s, ": storage lost");
    } else if (s->verdict == MPATH_DEGRADED) {
        const char *sep = ": lost";

        for (unsigned g = 0; g < s->ngroups; g++)
            for (unsigned i = 0; i < s->groups[g].npaths; i++)
                if (!mpath_path_usable(s->groups[g].paths[i].state)) {
                    desc_add(s, "%s %s (%s)", sep, s->groups[g].paths[i].dev,
                             mpath_path_state_str(s->groups[g].paths[i].state));
                    sep = ",";
                }
    }
}

/* snprintf-style appending: `n` counts what was needed, `buf` is always
 * terminated when `len` > 0 */
struct out {
    char *buf;
    size_t len, n;
    int err;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int r;

    va_start(ap, fmt);
    r = vsnprintf(o->len > o->n ? o->buf + o->n : NULL, o->len > o->n ? o->len - o->n : 0, fmt, ap);
    va_end(ap);
    if (r < 0)
        o->err = 1;
    else
        o->n += (size_t)r;
}

/* a JSON string: printable ASCII kept, the rest escaped */
static void put_str(struct out *o, const char *str)
{
    put(o, "\"");
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\')
            put(o, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            put(o, "\\u%04x", *p);
        else
            put(o, "%c", *p);
    }
    put(o, "\"");
}

int mpath_summary_json(const struct mpath_summary *s, char *buf, size_t len)
{
    struct out o = { buf, len, 0, 0 };

    if (buf && len)
        buf[0] = '\0';
    put(&o, "{\"verdict\":\"%s\",\"map\":", mpath_verdict_str(s->verdict));
    put_str(&o, s->map);
    put(&o, ",\"wwid\":");
    put_str(&o, s->wwid);
    put(&o, ",\"kdev\":");
    put_str(&o, s->kdev);
    put(&o, ",\"paths_total\":%u,\"paths_up\":%u,\"paths_failed\":%u,\"paths_other\":%u,\"groups_failed\":%u,\"groups\":[",
        s->paths_total, s->paths_up, s->paths_failed, s->paths_other, s->groups_failed);
    for (unsigned g = 0; g < s->ngroups && g < MPATH_MAX_GROUPS; g++) {
        const struct mpath_group *pg = &s->groups[g];

        put(&o, "%s{\"id\":%u,\"priority\":%u,\"state\":\"%s\",\"paths_total\":%u,\"paths_up\":%u,\"paths_failed\":%u,\"paths\":[",
            g ? "," : "", pg->id, pg->priority, mpath_group_state_str(pg->state), pg->paths_total, pg->paths_up,
            pg->paths_failed);
        for (unsigned i = 0; i < pg->npaths && i < MPATH_MAX_PATHS; i++) {
            put(&o, "%s{\"dev\":", i ? "," : "");
            put_str(&o, pg->paths[i].dev);
            put(&o, ",\"state\":\"%s\"}", mpath_path_state_str(pg->paths[i].state));
        }
        put(&o, "]}");
    }
    put(&o, "],\"dmmp_rc\":%d,\"desc\":", s->dmmp_rc);
    put_str(&o, s->desc);
    put(&o, "}");
    if (o.err || o.n > INT_MAX)
        return -1;
    return (int)o.n;
}

/* ------------------------------------------------------------------ finding the map */

/* What sysfs says about a block device. */
enum dev_kind { DEV_ABSENT, DEV_NOT_MPATH, DEV_MPATH };

static void copy(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "");
}

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    int ok;

    if (!f)
        return -1;
    ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* Classify `dev` (a path) through sysfs: absent (no such device here), not a
 * multipath map (with the reason in s->desc), or a multipath map (kdev, map
 * and wwid filled from sysfs). */
static enum dev_kind classify(const char *dev, struct mpath_summary *s, int *err)
{
    struct stat st;
    char sys[PATH_MAX], link[PATH_MAX], uuid[256], name[MPATH_NAME_MAX];
    ssize_t n;
    const char *base;

    *err = 0;
    if (stat(dev, &st) != 0) {
        *err = errno;
        return DEV_ABSENT;
    }
    if (!S_ISBLK(st.st_mode)) {
        *err = ENOTBLK;
        return DEV_ABSENT;
    }
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u", major(st.st_rdev), minor(st.st_rdev));
    n = readlink(sys, link, sizeof link - 1);
    if (n > 0) {
        link[n] = '\0';
        base = strrchr(link, '/');
        copy(s->kdev, sizeof s->kdev, base ? base + 1 : link);
    }
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u/dm/uuid", major(st.st_rdev), minor(st.st_rdev));
    if (read_line(sys, uuid, sizeof uuid) != 0) {
        snprintf(s->desc, sizeof s->desc, "%s (%s) is not a device-mapper device: no multipath paths to watch", dev,
                 s->kdev[0] ? s->kdev : "?");
        return DEV_NOT_MPATH;
    }
    if (strncmp(uuid, "mpath-", 6) != 0) {
        snprintf(s->desc, sizeof s->desc,
                 "%s (%s) is a device-mapper device but not a multipath map (uuid '%.64s'): no paths to watch", dev,
                 s->kdev[0] ? s->kdev : "?", uuid);
        return DEV_NOT_MPATH;
    }
    copy(s->wwid, sizeof s->wwid, uuid + 6);
    snprintf(sys, sizeof sys, "/sys/dev/block/%u:%u/dm/name", major(st.st_rdev), minor(st.st_rdev));
    if (read_line(sys, name, sizeof name) == 0)
        copy(s->map, sizeof s->map, name);
    return DEV_MPATH;
}

/* libdmmp's log goes here, never to stderr.  The message is formatted from a
 * copy of `args`: libdmmp formats the same va_list again after this returns
 * (for dmmp_last_error_msg) and must find it unconsumed. */
struct dmmp_log_buf {
    char last_error[256];
};

static void dmmp_log(struct dmmp_context *ctx, int priority, const char *file, int line, const char *func,
                     const char *format, va_list args)
{
    struct dmmp_log_buf *lb = dmmp_context_userdata_get(ctx);
    va_list copy_args;

    (void)file;
    (void)line;
    (void)func;
    if (!lb || priority > DMMP_LOG_PRIORITY_ERROR)
        return;
    va_copy(copy_args, args);
    vsnprintf(lb->last_error, sizeof lb->last_error, format, copy_args);
    va_end(copy_args);
}

/* one libdmmp map into s (groups, paths, names) */
static void take_map(struct dmmp_mpath *mp, struct mpath_summary *s)
{
    struct dmmp_path_group **pgs = NULL;
    uint32_t npg = 0;

    copy(s->map, sizeof s->map, dmmp_mpath_name_get(mp));
    copy(s->wwid, sizeof s->wwid, dmmp_mpath_wwid_get(mp));
    if (dmmp_mpath_kdev_name_get(mp) && strcmp(dmmp_mpath_kdev_name_get(mp), "undef") != 0)
        copy(s->kdev, sizeof s->kdev, dmmp_mpath_kdev_name_get(mp));
    dmmp_path_group_array_get(mp, &pgs, &npg);
    s->ngroups = 0;
    for (uint32_t g = 0; g < npg; g++) {
        struct mpath_group *pg;
        struct dmmp_path **ps = NULL;
        uint32_t np = 0;

        if (s->ngroups < MPATH_MAX_GROUPS) {
            pg = &s->groups[s->ngroups++];
            memset(pg, 0, sizeof *pg);
            pg->id = dmmp_path_group_id_get(pgs[g]);
            pg->priority = dmmp_path_group_priority_get(pgs[g]);
            pg->state = (int)dmmp_path_group_status_get(pgs[g]);
        } else {   /* fold the rest into the last entry (see mpath.h) */
            pg = &s->groups[MPATH_MAX_GROUPS - 1];
            pg->id = 0;
            pg->priority = 0;
            pg->state = MPATH_PG_UNKNOWN;
        }
        dmmp_path_array_get(pgs[g], &ps, &np);
        for (uint32_t i = 0; i < np; i++) {
            int st = (int)dmmp_path_status_get(ps[i]);

            pg->paths_total++;
            pg->paths_up += mpath_path_usable(st) != 0;
            pg->paths_failed += mpath_path_failed(st) != 0;
            if (pg->npaths < MPATH_MAX_PATHS) {
                copy(pg->paths[pg->npaths].dev, sizeof pg->paths[0].dev, dmmp_path_blk_name_get(ps[i]));
                pg->paths[pg->npaths].state = st;
                pg->npaths++;
            }
        }
    }
    mpath_summarize(s);
}

static int map_matches(struct dmmp_mpath *mp, const struct mpath_summary *s, const char *want)
{
    const char *name = dmmp_mpath_name_get(mp), *wwid = dmmp_mpath_wwid_get(mp);
    const char *kdev = dmmp_mpath_kdev_name_get(mp);

    if (s->wwid[0])   /* known from sysfs: the WWID decides */
        return wwid && strcmp(wwid, s->wwid) == 0;
    if (s->kdev[0] && kdev && strcmp(kdev, s->kdev) == 0)
        return 1;
    return want[0] && ((name && strcmp(name, want) == 0) || (wwid && strcmp(wwid, want) == 0));
}

int mpath_check(const char *dev, unsigned timeout_ms, struct mpath_summary *s)
{
    struct dmmp_context *ctx;
    struct dmmp_mpath **mps = NULL;
    struct dmmp_log_buf lb = { "" };
    uint32_t nmp = 0;
    char want[MPATH_NAME_MAX] = "";
    int rc, err, found = 0;

    if (!s)
        return -EINVAL;
    memset(s, 0, sizeof *s);
    if (!dev || !dev[0] || strlen(dev) >= PATH_MAX) {
        snprintf(s->desc, sizeof s->desc, "no device given");
        return -EINVAL;
    }
    if (dev[0] == '/') {
        switch (classify(dev, s, &err)) {
        case DEV_NOT_MPATH:
            s->verdict = MPATH_NOT_MULTIPATH;
            return 0;
        case DEV_MPATH:
            break;
        case DEV_ABSENT:
            /* not here (no device-mapper on this machine, or not yet
             * created): a /dev/mapper/NAME or /dev/dm-N can still be asked
             * of multipathd by its name */
            if (strncmp(dev, "/dev/mapper/", 12) == 0 && dev[12] && !strchr(dev + 12, '/')) {
                copy(want, sizeof want, dev + 12);
            } else if (strncmp(dev, "/dev/dm-", 8) == 0 && dev[8] && strspn(dev + 8, "0123456789") == strlen(dev + 8)) {
                copy(s->kdev, sizeof s->kdev, dev + 5);
            } else {
                snprintf(s->desc, sizeof s->desc, "%s: %s", dev,
                         err == ENOTBLK ? "not a block device" : strerror(err));
                return err == ENOTBLK ? -EINVAL : -err;
            }
            break;
        }
    } else {
        if (strlen(dev) >= sizeof want) {
            snprintf(s->desc, sizeof s->desc, "map name or WWID too long (%zu bytes)", strlen(dev));
            return -EINVAL;
        }
        copy(want, sizeof want, dev);   /* a WWID or a map name */
    }

    ctx = dmmp_context_new();
    if (!ctx) {
        snprintf(s->desc, sizeof s->desc, "out of memory");
        return -ENOMEM;
    }
    dmmp_context_userdata_set(ctx, &lb);
    dmmp_context_log_func_set(ctx, dmmp_log);
    dmmp_context_log_priority_set(ctx, DMMP_LOG_PRIORITY_ERROR);
    dmmp_context_timeout_set(ctx, timeout_ms ? timeout_ms : MPATH_DEFAULT_TIMEOUT_MS);
    rc = dmmp_mpath_array_get(ctx, &mps, &nmp);
    s->dmmp_rc = rc;
    if (rc != DMMP_OK) {
        s->verdict = MPATH_NO_DAEMON;
        if (rc == DMMP_ERR_NO_MEMORY) {
            snprintf(s->desc, sizeof s->desc, "out of memory asking multipathd");
            dmmp_context_free(ctx);
            return -ENOMEM;
        }
        snprintf(s->desc, sizeof s->desc, "no usable answer from multipathd for %s: %s%s%s", dev, dmmp_strerror(rc),
                 lb.last_error[0] ? ": " : "", lb.last_error);
        dmmp_context_free(ctx);
        return 0;
    }
    for (uint32_t i = 0; i < nmp && !found; i++)
        if (map_matches(mps[i], s, want)) {
            take_map(mps[i], s);
            found = 1;
        }
    if (!found) {
        char known[256] = "";
        size_t used = 0;

        for (uint32_t i = 0; i < nmp && used < sizeof known - 1; i++)
            used += (size_t)snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "",
                                     dmmp_mpath_name_get(mps[i]));
        snprintf(s->desc, sizeof s->desc, "multipathd has no map for %s (its maps: %s)", dev,
                 nmp ? known : "none");
    }
    dmmp_mpath_array_free(mps, nmp);
    dmmp_context_free(ctx);
    return found ? 0 : -ENOENT;
}
