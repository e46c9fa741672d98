/* storage/mpath.h: path health of the heartbeat LUN's multipath map.
 *
 * The heartbeat LUN is usually reached through dm-multipath.  multipathd
 * knows the state of every path; this asks it through libdmmp (multipathd's
 * socket, command "show maps json") and reduces the answer to one verdict:
 *
 *   MPATH_NOT_MULTIPATH  the device is not a multipath map (a plain disk, a
 *                        loop LUN, an LVM volume): fine, nothing to watch.
 *   MPATH_ALL_UP         every path of the map is usable.
 *   MPATH_DEGRADED       some paths are lost, at least one is usable: log it
 *                        and show it in `vigil status`; I/O still flows.
 *   MPATH_ALL_FAILED     no usable path (or the map has no path at all): the
 *                        caller counts this as storage loss, like a heartbeat
 *                        write that misses its deadline.
 *   MPATH_NO_DAEMON      multipathd did not answer (not running, timed out,
 *                        refused, spoke a format libdmmp does not know);
 *                        `desc` says why.  Path health is unknown, the disk
 *                        I/O itself is still the judge.
 *
 * Intended use (vigild, issue [disk]; daemon/ is not wired yet): the disk I/O
 * thread calls mpath_check() on the configured heartbeat device every few
 * heartbeat ticks, never the main loop, because the call BLOCKS on
 * multipathd's socket for up to `timeout_ms` (plus connect(), which on a
 * local socket does not wait unless multipathd's listen backlog is full).
 * It posts the summary to the main loop, which logs a change of verdict,
 * shows `desc` in `vigil status`, and treats MPATH_ALL_FAILED as storage
 * loss.
 *
 * Thread safety: mpath_check() keeps no state between calls; every call
 * makes its own libdmmp context, socket and buffers, and captures libdmmp's
 * log into its own summary (nothing goes to stderr).  Calls from several
 * threads at once are safe.  mpath_summarize() is pure.
 *
 * Tests: tests/unit/test_mpath.c (the verdict from path states) and
 * tests/rig/test-mpath (libdmmp against tests/rig/fake-multipathd serving
 * recorded replies in a network namespace). */
#ifndef VIGIL_STORAGE_MPATH_H
#define VIGIL_STORAGE_MPATH_H

#include <stddef.h>
#include <stdint.h>

enum mpath_verdict {
    MPATH_NOT_MULTIPATH = 0,
    MPATH_ALL_UP,
    MPATH_DEGRADED,
    MPATH_ALL_FAILED,
    MPATH_NO_DAEMON,
};

/* A path's checker state, as multipathd reports it (libdmmp's
 * DMMP_PATH_STATUS_* values, kept here so the pure part needs no libdmmp). */
enum mpath_path_state {
    MPATH_PS_UNKNOWN = 0, /* "undef" */
    MPATH_PS_DOWN = 2,    /* "faulty" */
    MPATH_PS_UP = 3,      /* "ready" */
    MPATH_PS_SHAKY = 4,   /* "shaky": up but flapping */
    MPATH_PS_GHOST = 5,   /* "ghost": passive path of an active/passive array */
    MPATH_PS_PENDING = 6, /* "i/o pending": the checker has not finished */
    MPATH_PS_TIMEOUT = 7, /* "i/o timeout" */
    MPATH_PS_DELAYED = 9, /* "delayed": back, but held back by delay_checks */
};

/* usable: UP, GHOST (can take I/O after a group switch), SHAKY (answers);
 * failed: DOWN, TIMEOUT; neither (counted in paths_other): UNKNOWN, PENDING,
 * DELAYED, and any value this header does not know. */
int mpath_path_usable(int state);
int mpath_path_failed(int state);

enum mpath_group_state {
    MPATH_PG_UNKNOWN = 0, /* DMMP_PATH_GROUP_STATUS_* */
    MPATH_PG_ENABLED = 1,
    MPATH_PG_DISABLED = 2,
    MPATH_PG_ACTIVE = 3,
};

/* A map with more groups than MPATH_MAX_GROUPS has the rest folded into the
 * last entry (id 0, state unknown: "the other groups"); a group lists at most
 * MPATH_MAX_PATHS paths but counts all of them.  Counts stay exact. */
#define MPATH_MAX_GROUPS 16
#define MPATH_MAX_PATHS 32
#define MPATH_NAME_MAX 128
#define MPATH_DESC_MAX 512

struct mpath_path {
    char dev[32];   /* "sdb" */
    int state;      /* enum mpath_path_state */
};

struct mpath_group {
    uint32_t id;       /* multipathd's group number, from 1 */
    uint32_t priority;
    int state;         /* enum mpath_group_state */
    unsigned paths_total, paths_up, paths_failed;
    unsigned npaths;   /* listed in paths[], <= MPATH_MAX_PATHS */
    struct mpath_path paths[MPATH_MAX_PATHS];
};

struct mpath_summary {
    enum mpath_verdict verdict;
    char map[MPATH_NAME_MAX];   /* multipathd's name (alias) of the map, or "" */
    char wwid[MPATH_NAME_MAX];  /* "" when not known */
    char kdev[32];              /* "dm-3", or "" */
    unsigned paths_total, paths_up, paths_failed, paths_other;
    unsigned groups_failed;     /* a group is failed when none of its paths is usable */
    unsigned ngroups;           /* entries in groups[], <= MPATH_MAX_GROUPS */
    struct mpath_group groups[MPATH_MAX_GROUPS];
    int dmmp_rc;                /* libdmmp's return code (0 when not asked or OK) */
    char desc[MPATH_DESC_MAX];  /* one line for logs and `vigil status` */
};

#define MPATH_DEFAULT_TIMEOUT_MS 5000u

/* Find the multipath map of `dev` and summarize its paths into *out.
 * `dev` is a /dev/mapper/NAME, a /dev/dm-N, any other path to a block device
 * (a /dev/disk/by-id link), or a bare WWID or map name.  A block device that
 * exists here is classified through sysfs first: a device that is not a
 * dm-multipath map is MPATH_NOT_MULTIPATH without asking multipathd.
 * `timeout_ms` bounds the exchange with multipathd (0: the default above).
 * BLOCKS: call it off the main loop (see the top of this file).
 * Returns 0 with out->verdict set; -EINVAL for a bad argument, -ENOENT when
 * multipathd answered but has no map for `dev` (out->desc says which maps it
 * has), -ENOMEM.  On error out->desc still says why. */
int mpath_check(const char *dev, unsigned timeout_ms, struct mpath_summary *out);

/* The pure part: from the path states listed in s->groups[] (paths_* of each
 * group are recounted from paths[] when npaths == paths_total, otherwise
 * trusted as given) compute the map-wide counts, groups_failed, the verdict
 * (ALL_UP, DEGRADED or ALL_FAILED) and desc.  Expects map (and wwid) and
 * groups[0..ngroups) filled. */
void mpath_summarize(struct mpath_summary *s);

const char *mpath_verdict_str(enum mpath_verdict v);   /* "all-up", ... */
const char *mpath_path_state_str(int state);           /* "ready", "faulty", ... */
const char *mpath_group_state_str(int state);          /* "active", ... */

/* Write *s as one JSON object (no newline) into buf; returns the length it
 * needed, like snprintf. */
int mpath_summary_json(const struct mpath_summary *s, char *buf, size_t len);

#endif
