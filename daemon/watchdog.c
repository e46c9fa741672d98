/* The hardware watchdog (vigil.conf watchdog_device, watchdog_timeout;
 * docs/heartbeat-disk.md "Watchdog").
 *
 * DESIGN.md invariant 3: a host that has lost quorum and its disk view
 * stops feeding its watchdog, so the machine resets even if vigild itself
 * hangs.  So does a host that lost its heartbeat disk in disk mode (storage
 * loss, quorate or not): the master fences it, and where its poison pill
 * cannot be read the watchdog is what makes that fence true; reboot(2) is
 * the backstop when the watchdog did not act.  vigild opens the device only when it first has the right to run
 * (armed at the first keepalive), feeds it every second while the core says
 * this host may run (quorate, or on the winning side with a fresh disk), and
 * disarms it with the magic close ('V') only on a clean stop.  A self-fence
 * or a crash leaves it armed: the machine resets.
 *
 * The Linux watchdog API: any write() is a keepalive; WDIOC_SETTIMEOUT sets
 * the timeout (a device that is not a real watchdog, such as the rig's FIFO,
 * answers ENOTTY and keeps its own); writing 'V' before close() disarms it
 * when the driver allows (nowayout off). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/watchdog.h>
#include <qb/qblog.h>

#include "vigild.h"

#define FEED_MS 1000
#define BACKSTOP_S 5 /* after the watchdog's timeout: reboot(2) ourselves */

static int fd = -1;
static bool failed; /* opening it failed: said once */
static bool starving; /* we stopped feeding it: said once */
static uint64_t starving_since;
static qb_loop_timer_handle timer;

bool watchdog_armed(void) { return fd >= 0; }

const char *watchdog_state(void)
{
    if (!D.cfg.watchdog_device[0])
        return "none";
    if (fd < 0)
        return failed ? "failed to open" : "not armed yet";
    return starving ? "armed, NOT FED" : "armed";
}

static int arm(void)
{
    /* O_NONBLOCK: a FIFO without a reader, or a device that is busy, fails
     * at once instead of holding the loop */
    int f = open(D.cfg.watchdog_device, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) {
        if (!failed)
            audit(LOG_ERR, "vigild", strerror(errno), "cannot open the watchdog %s: this host runs without one",
                  D.cfg.watchdog_device);
        failed = true;
        return -errno;
    }
    int t = D.cfg.watchdog_timeout;
    if (ioctl(f, WDIOC_SETTIMEOUT, &t) < 0) {
        if (errno == ENOTTY || errno == EINVAL)
            qb_log(LOG_NOTICE, "watchdog %s does not take WDIOC_SETTIMEOUT (%s): its own timeout applies",
                   D.cfg.watchdog_device, strerror(errno));
        else
            qb_log(LOG_WARNING, "watchdog %s: WDIOC_SETTIMEOUT %d s: %s", D.cfg.watchdog_device, t, strerror(errno));
    } else if (t != D.cfg.watchdog_timeout)
        qb_log(LOG_NOTICE, "watchdog %s: the driver chose a %d s timeout", D.cfg.watchdog_device, t);
    fd = f;
    failed = false;
    audit(LOG_NOTICE, "vigild", "this host may run: quorate, or winning with a fresh heartbeat disk",
          "watchdog %s armed (%d s)", D.cfg.watchdog_device, D.cfg.watchdog_timeout);
    return 0;
}

/* May this host keep running VMs?  If not, why (for the log). */
static bool may_run(const char **why)
{
    *why = "not in a pool";
    if (!D.in_pool || !D.core)
        return false;
    /* storage loss in disk mode: the master calls a member whose slot went
     * stale storage-isolated and fences it; when its poison pill cannot be
     * read here, only our watchdog makes that fence true (and only an armed
     * one lets msgwait confirm it) */
    *why = "storage loss: no heartbeat disk I/O worked for disk_timeout";
    if (hb_disk_lost())
        return false;
    *why = "not quorate and no winning side with a fresh heartbeat disk";
    if (D.quorate)
        return true;
    return D.db.set.heartbeat_disk && ha_core_side(D.core) == HA_SIDE_WIN && hb_fresh();
}

/* The backstop of a storage loss: the watchdog should have reset this
 * machine by now.  Our self-fenced record is tried (it fails on a lost
 * LUN), then hb_self_fence reboots (or exits where it may not). */
static void backstop(void)
{
    struct ha_action a = {.type = HA_ACT_DISK_WRITE};
    a.slot.flags = HA_SLOT_SELF_FENCED;
    a.slot.liveset = pool_view() | HA_BIT(D.self);
    hb_write(&a);
    char why[160];
    snprintf(why, sizeof why, "storage loss, and the watchdog %s did not reset this host within %d s",
             D.cfg.watchdog_device, D.cfg.watchdog_timeout + BACKSTOP_S);
    hb_self_fence(why);
}

static void feed(void *data)
{
    (void)data;
    if (!D.cfg.watchdog_device[0])
        return;
    const char *why;
    bool ok = may_run(&why);
    if (ok && fd < 0)
        arm();
    if (fd >= 0) {
        if (ok) {
            if (write(fd, "k", 1) != 1 && errno != EAGAIN)
                qb_log(LOG_WARNING, "watchdog %s: keepalive: %s", D.cfg.watchdog_device, strerror(errno));
            if (starving)
                audit(LOG_NOTICE, "vigild", "quorate, or winning with a fresh heartbeat disk", "feeding the watchdog again");
            starving = false;
        } else if (!starving) {
            starving = true;
            starving_since = now_ms();
            audit(LOG_CRIT, "vigild", why, "no longer feeding the watchdog: this host resets in %d s unless that changes",
                  D.cfg.watchdog_timeout);
        } else if (hb_disk_lost() &&
                   now_ms() - starving_since > (uint64_t)(D.cfg.watchdog_timeout + BACKSTOP_S) * 1000)
            backstop();
    }
    qb_loop_timer_add(D.loop, QB_LOOP_HIGH, FEED_MS * 1000000ULL, NULL, feed, &timer);
}

void watchdog_start(void)
{
    if (!D.cfg.watchdog_device[0])
        return;
    qb_log(LOG_NOTICE, "watchdog %s: armed once this host may run (%d s timeout)", D.cfg.watchdog_device,
           D.cfg.watchdog_timeout);
    feed(NULL);
}

void watchdog_stop(bool clean)
{
    qb_loop_timer_del(D.loop, timer);
    if (fd < 0)
        return;
    if (clean) {
        /* the magic close: the driver disarms (unless nowayout) */
        if (write(fd, "V", 1) != 1)
            qb_log(LOG_WARNING, "watchdog %s: magic close: %s", D.cfg.watchdog_device, strerror(errno));
        close(fd);
        fd = -1;
        audit(LOG_NOTICE, "vigild", "vigild stops cleanly", "watchdog %s disarmed", D.cfg.watchdog_device);
    }
    /* otherwise left open and armed: the process ends, the machine resets */
}
