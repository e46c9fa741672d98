/* vigild: one per host.  One libqb main loop wires the corosync adapter
 * (membership/) to the decision core (ha/) with the real clock, and serves
 * the vigil CLI over libqb IPC.  Today it follows corosync membership and
 * quorum and answers `vigil status`; the replicated database, the
 * heartbeat disk, fencing and VMs come with their issues. */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <qb/qbipcs.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "../ha/ha.h"
#include "../membership/membership.h"
#include "config.h"
#include "protocol.h"

static struct {
    qb_loop_t *loop;
    struct membership *mem;
    struct ha_db db;
    struct ha_core *core;
    struct ha_actions acts;
    struct node_info nodes[MEMBERSHIP_MAX_NODES];
    int nnodes;
    int self;
    bool connected, quorate;
    ha_hostset members;
    qb_loop_timer_handle core_timer, wait_timer;
    bool db_event_queued; /* an HA_EV_DB waits in the loop */
    qb_ipcs_service_t *ipcs;
    gid_t vigil_gid;
    bool have_vigil_gid;
    struct vigil_config cfg;
} D = {.self = -1};

static ha_ms now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (ha_ms)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int host_of_nodeid(uint32_t id)
{
    for (int i = 0; i < D.nnodes; i++)
        if (D.nodes[i].nodeid == id)
            return i;
    return HA_NO_HOST;
}

static void step(struct ha_event *ev);

static void on_core_timer(void *data)
{
    (void)data;
    struct ha_event ev = {.type = HA_EV_TIMER};
    step(&ev);
}

/* The core acts on changes once they are applied (docs/core.md, driver
 * guarantee 1): one HA_EV_DB, from the loop, for any number of changes. */
static void on_db_applied(void *data)
{
    (void)data;
    D.db_event_queued = false;
    struct ha_event ev = {.type = HA_EV_DB};
    step(&ev);
}

static void run_actions(void)
{
    bool applied = false;
    for (size_t i = 0; i < D.acts.n; i++) {
        const struct ha_action *a = &D.acts.v[i];
        switch (a->type) {
        case HA_ACT_LOG:
            qb_log(LOG_NOTICE, "%s%s%s%s", a->what, a->why[0] ? " (" : "", a->why, a->why[0] ? ")" : "");
            break;
        case HA_ACT_TIMER: {
            ha_ms delay = a->at - now_ms();
            qb_loop_timer_del(D.loop, D.core_timer);
            qb_loop_timer_add(D.loop, QB_LOOP_MED, (uint64_t)(delay > 0 ? delay : 0) * 1000000ULL, NULL,
                              on_core_timer, &D.core_timer);
            break;
        }
        case HA_ACT_COMMIT:
            /* single copy until the replicated database exists ([pool]) */
            if (ha_db_apply(&D.db, &a->change) < 0)
                qb_log(LOG_ERR, "database change %d rejected", a->change.type);
            else
                applied = true;
            break;
        case HA_ACT_DISK_WRITE:
            break; /* no heartbeat disk yet ([disk]) */
        case HA_ACT_SELF_FENCE:
            /* not reached without a disk and VMs; the real path (watchdog,
             * reboot(2) only in a non-initial PID namespace) is [disk] */
            qb_log(LOG_CRIT, "self-fence requested (%s): not implemented yet, refusing to reboot", a->why);
            break;
        default:
            qb_log(LOG_WARNING, "action %d not implemented yet", a->type);
            break;
        }
    }
    if (applied && !D.db_event_queued && qb_loop_job_add(D.loop, QB_LOOP_MED, NULL, on_db_applied) == 0)
        D.db_event_queued = true;
}

static void step(struct ha_event *ev)
{
    if (!D.core)
        return;
    ev->now = now_ms();
    ha_actions_clear(&D.acts);
    ha_core_step(D.core, ev, &D.acts);
    run_actions();
}

static void on_membership(void *ctx, const uint32_t *ids, size_t n, bool quorate, bool connected)
{
    (void)ctx;
    D.connected = connected;
    D.quorate = quorate;
    D.members = 0;
    for (size_t i = 0; i < n; i++) {
        int h = host_of_nodeid(ids[i]);
        if (h >= 0)
            D.members |= HA_BIT(h);
    }
    struct ha_event ev = {.type = HA_EV_MEMBERSHIP};
    ev.u.membership.members = D.members;
    ev.u.membership.quorate = quorate;
    step(&ev);
}

/* ---------------------------------------------------------------- status */

static void json_str(char **p, size_t *left, const char *s)
{
    int n = snprintf(*p, *left, "\"");
    for (; *s && n >= 0 && (size_t)n < *left; s++)
        n += (*s == '"' || *s == '\\') ? snprintf(*p + n, *left - (size_t)n, "\\%c", *s)
             : (unsigned char)*s < 0x20 ? snprintf(*p + n, *left - (size_t)n, "\\u%04x", *s)
                                        : snprintf(*p + n, *left - (size_t)n, "%c", *s);
    if (n >= 0 && (size_t)n < *left)
        n += snprintf(*p + n, *left - (size_t)n, "\"");
    if (n > 0 && (size_t)n <= *left) {
        *p += n;
        *left -= (size_t)n;
    }
}

static void status_text(char *buf, size_t len, bool json)
{
    static const char *const sides[] = {"undecided", "winning", "losing"};
    const char *self = D.self >= 0 ? D.nodes[D.self].name : "(unknown)";
    const char *side = D.core ? sides[ha_core_side(D.core)] : "undecided";
    bool master = D.core && ha_core_is_master(D.core);
    char *p = buf;
    size_t left = len;
#define OUT(...)                                                                                        \
    do {                                                                                                \
        int n_ = snprintf(p, left, __VA_ARGS__);                                                        \
        if (n_ > 0 && (size_t)n_ < left) {                                                              \
            p += n_;                                                                                    \
            left -= (size_t)n_;                                                                         \
        }                                                                                               \
    } while (0)
    if (json) {
        OUT("{\"host\":");
        json_str(&p, &left, self);
        OUT(",\"nodeid\":%u,\"corosync\":\"%s\",\"quorate\":%s,\"members\":[", D.self >= 0 ? D.nodes[D.self].nodeid : 0,
            D.connected ? "connected" : "disconnected", D.quorate ? "true" : "false");
        int k = 0;
        for (int h = 0; h < D.nnodes; h++)
            if (D.members & HA_BIT(h)) {
                OUT("%s", k++ ? "," : "");
                json_str(&p, &left, D.nodes[h].name);
            }
        OUT("],\"pool_hosts\":%d,\"partition_side\":\"%s\",\"master\":%s,\"database_version\":%llu,"
            "\"heartbeat_disk\":\"not configured (not implemented yet)\"}\n",
            D.nnodes, side, master ? "true" : "false", (unsigned long long)D.db.version);
    } else {
        OUT("host:             %s (corosync node %u)\n", self, D.self >= 0 ? D.nodes[D.self].nodeid : 0);
        OUT("corosync:         %s, %s\n", D.connected ? "connected" : "not connected (retrying every second)",
            D.quorate ? "quorate" : "not quorate");
        OUT("members:          %d of %d:", ha_popcount(D.members), D.nnodes);
        for (int h = 0; h < D.nnodes; h++)
            if (D.members & HA_BIT(h))
                OUT(" %s", D.nodes[h].name);
        OUT("\npartition side:   %s\n", side);
        OUT("master:           %s\n", master ? "this host" : "none (the master lease needs the heartbeat disk, not implemented yet)");
        OUT("database version: %llu (local copy; replication not implemented yet)\n", (unsigned long long)D.db.version);
    }
#undef OUT
}

/* ---------------------------------------------------------------- IPC */

static int32_t ipc_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
    (void)c;
    if (uid == 0 || (D.have_vigil_gid && gid == D.vigil_gid))
        return 0;
    qb_log(LOG_NOTICE, "refused an IPC client with uid %u gid %u (root or group vigil only)", (unsigned)uid, (unsigned)gid);
    return -EACCES;
}

static int32_t ipc_msg(qb_ipcs_connection_t *c, void *data, size_t size)
{
    const struct vigil_req *rq = data;
    static char buf[VIGIL_IPC_MAX - sizeof(struct vigil_resp)];
    struct vigil_resp *rs = (struct vigil_resp *)(void *)malloc(sizeof *rs + sizeof buf);
    if (!rs)
        return 0;
    rs->hdr.id = size >= sizeof *rq ? rq->hdr.id : 0;
    rs->hdr.error = 0;
    if (size < sizeof *rq || rq->hdr.size != (int32_t)size) {
        rs->hdr.error = -EINVAL;
        snprintf(rs->text, sizeof buf, "malformed request\n");
    } else if (rq->hdr.id == VIGIL_REQ_STATUS) {
        status_text(rs->text, sizeof buf, rq->flags & VIGIL_REQ_JSON);
    } else {
        rs->hdr.error = -EOPNOTSUPP;
        snprintf(rs->text, sizeof buf, "unknown request %d\n", rq->hdr.id);
    }
    rs->hdr.size = (int32_t)(sizeof *rs + strlen(rs->text) + 1);
    qb_ipcs_response_send(c, rs, (size_t)rs->hdr.size);
    free(rs);
    return 0;
}

static int32_t job_add(enum qb_loop_priority p, void *data, qb_loop_job_dispatch_fn fn)
{
    return qb_loop_job_add(D.loop, p, data, fn);
}
static int32_t poll_add(enum qb_loop_priority p, int32_t fd, int32_t ev, void *data, qb_ipcs_dispatch_fn_t fn)
{
    return qb_loop_poll_add(D.loop, p, fd, ev, data, fn);
}
static int32_t poll_mod(enum qb_loop_priority p, int32_t fd, int32_t ev, void *data, qb_ipcs_dispatch_fn_t fn)
{
    return qb_loop_poll_mod(D.loop, p, fd, ev, data, fn);
}
static int32_t poll_del(int32_t fd) { return qb_loop_poll_del(D.loop, fd); }

static int ipc_start(void)
{
    static struct qb_ipcs_service_handlers h = {.connection_accept = ipc_accept, .msg_process = ipc_msg};
    static struct qb_ipcs_poll_handlers ph = {
        .job_add = job_add, .dispatch_add = poll_add, .dispatch_mod = poll_mod, .dispatch_del = poll_del};
    struct group *g = getgrnam(D.cfg.ipc_group);
    if (g) {
        D.vigil_gid = g->gr_gid;
        D.have_vigil_gid = true;
    }
    D.ipcs = qb_ipcs_create(VIGIL_IPC_NAME, 0, QB_IPC_SOCKET, &h);
    if (!D.ipcs)
        return -1;
    qb_ipcs_poll_handlers_set(D.ipcs, &ph);
    return qb_ipcs_run(D.ipcs) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- start */

static void try_start(void *data)
{
    (void)data;
    char err[256];
    D.nnodes = membership_nodelist(D.nodes, MEMBERSHIP_MAX_NODES, err, sizeof err);
    if (D.nnodes < 0) {
        qb_log(LOG_WARNING, "%s; retrying in 1 s", err);
        qb_loop_timer_add(D.loop, QB_LOOP_MED, 1000000000ULL, NULL, try_start, &D.wait_timer);
        return;
    }
    ha_db_init(&D.db);
    for (int i = 0; i < D.nnodes; i++) {
        struct ha_db_host h = {.joined = true};
        snprintf(h.name, sizeof h.name, "%s", D.nodes[i].name);
        ha_db_add_host(&D.db, &h);
    }
    D.mem = membership_start(D.loop, "vigil", on_membership, NULL);
    uint32_t local = membership_local_nodeid(D.mem);
    if (!local) { /* corosync went away between the two calls */
        membership_stop(D.mem);
        D.mem = NULL;
        ha_db_free(&D.db);
        qb_log(LOG_WARNING, "corosync not reachable; retrying in 1 s");
        qb_loop_timer_add(D.loop, QB_LOOP_MED, 1000000000ULL, NULL, try_start, &D.wait_timer);
        return;
    }
    D.self = host_of_nodeid(local);
    if (D.self < 0) {
        qb_log(LOG_ERR, "this node (id %u) is not in corosync's nodelist", local);
        qb_loop_stop(D.loop);
        return;
    }
    D.core = ha_core_new(&D.db, D.self);
    qb_log(LOG_NOTICE, "vigild running on %s (corosync node %u), %d host(s) in the nodelist", D.nodes[D.self].name,
           local, D.nnodes);
    on_membership(NULL, NULL, 0, false, D.connected); /* first event; the real view follows */
}

static int32_t on_signal(int32_t sig, void *data)
{
    (void)data;
    qb_log(LOG_NOTICE, "signal %d: stopping", sig);
    qb_loop_stop(D.loop);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "Usage: vigild [--config FILE] [--log FILE] [--debug]\n"
               "Runs vigil's per-host daemon in the foreground: follows corosync membership and quorum\n"
               "and answers the vigil CLI on this host (IPC service '%s', root or the configured group only).\n"
               "  --config FILE  configuration (default %s; see vigil.conf(5)); a bad key or value\n"
               "                 stops vigild before it does anything\n"
               "  --log FILE     also log to FILE (overrides log_file)\n"
               "  --debug        log debug messages (overrides log_level)\n"
               "  -h, --help     this help\n",
            VIGIL_IPC_NAME, VIGIL_CONFIG_PATH);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"log", required_argument, 0, 'l'}, {"debug", no_argument, 0, 'd'},
                                       {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
    const char *logfile = NULL, *config = NULL;
    bool debug = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (ch == 'l')
            logfile = optarg;
        else if (ch == 'd')
            debug = true;
        else if (ch == 'c')
            config = optarg;
        else if (ch == 'h') {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigild: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    char err[512];
    if (vigil_config_load(config, &D.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "vigild: %s\n", err);
        return 2; /* never start half-configured */
    }
    int level = debug ? LOG_DEBUG : D.cfg.log_level;
    if (!logfile && D.cfg.log_file[0])
        logfile = D.cfg.log_file;
    qb_log_init("vigild", LOG_DAEMON, LOG_INFO);
    qb_log_ctl(QB_LOG_SYSLOG, QB_LOG_CONF_ENABLED, D.cfg.syslog ? QB_TRUE : QB_FALSE);
    if (D.cfg.syslog)
        qb_log_filter_ctl(QB_LOG_SYSLOG, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", level);
    qb_log_ctl(QB_LOG_STDERR, QB_LOG_CONF_ENABLED, QB_TRUE);
    qb_log_filter_ctl(QB_LOG_STDERR, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", level);
    qb_log_format_set(QB_LOG_STDERR, "%t %p: %b");
    if (logfile) {
        int fd = qb_log_file_open(logfile);
        if (fd < 0) {
            fprintf(stderr, "vigild: cannot open log file %s: %s\n", logfile, strerror(-fd));
            return 1;
        }
        qb_log_ctl(fd, QB_LOG_CONF_ENABLED, QB_TRUE);
        qb_log_filter_ctl(fd, QB_LOG_FILTER_ADD, QB_LOG_FILTER_FILE, "*", level);
        qb_log_format_set(fd, "%t %p: %b");
    }
    if (D.cfg.from_defaults)
        qb_log(LOG_NOTICE, "no %s: running with the default configuration", VIGIL_CONFIG_PATH);
    else
        qb_log(LOG_NOTICE, "configuration read from %s (host name %s)", config ? config : VIGIL_CONFIG_PATH, D.cfg.name);
    D.loop = qb_loop_create();
    if (!D.loop || ipc_start() < 0) {
        qb_log(LOG_ERR, "cannot start the IPC service '%s' (is another vigild running on this host?)", VIGIL_IPC_NAME);
        return 1;
    }
    qb_loop_signal_handle sh;
    qb_loop_signal_add(D.loop, QB_LOOP_HIGH, SIGTERM, NULL, on_signal, &sh);
    qb_loop_signal_add(D.loop, QB_LOOP_HIGH, SIGINT, NULL, on_signal, &sh);
    try_start(NULL);
    qb_loop_run(D.loop);
    membership_stop(D.mem);
    qb_ipcs_destroy(D.ipcs);
    ha_core_free(D.core);
    ha_actions_free(&D.acts);
    ha_db_free(&D.db);
    qb_log_fini();
    return 0;
}
