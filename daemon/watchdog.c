/* The hardware watchdog (vigil.conf watchdog_device, watchdog_timeout;
 * docs/heartbeat-disk.md "Watchdog").
 *
 * DESIGN.md invariant 3: a host that has lost quorum and its disk view
 * stops feeding its watchdog, so the machine resets even if vigild itself
 * hangs.  vigild opens the device only when it first has the right to run
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

static int fd = -1;
static bool failed; /* opening it failed: said once */
static uint64_t last_feed;
static bool starving; /* we stopped feeding it: said once */
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

/* The core's view: may this host keep running VMs? */
static bool may_run(void)
{
    if (!D.in_pool || !D.core)
        return false;
    if (D.quorate)
        return true;
    return D.db.set.heartbeat_disk && ha_core_side(D.core) == HA_SIDE_WIN && hb_fresh();
}

static void feed(void *data)
{
    (void)data;
    if (!D.cfg.watchdog_device[0])
        return;
    bool ok = may_run();
    if (ok && fd < 0)
        arm();
    if (fd >= 0) {
        if (ok) {
            if (write(fd, "k", 1) != 1 && errno != EAGAIN)
                qb_log(LOG_WARNING, "watchdog %s: keepalive: %s", D.cfg.watchdog_device, strerror(errno));
            last_feed = now_ms();
            if (starving)
                audit(LOG_NOTICE, "vigild", "quorate, or winning with a fresh heartbeat disk", "feeding the watchdog again");
            starving = false;
        } else if (!starving) {
            starving = true;
            audit(LOG_CRIT, "vigild", "not quorate and no winning side with a fresh heartbeat disk",
                  "no longer feeding the watchdog: this host resets in %d s unless that changes",
                  D.cfg.watchdog_timeout);
        }
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
