/* vigild: one per host.  main(): configuration, logging, the libqb main
 * loop, the IPC service for the `vigil` CLI, and the requests waiting for
 * their answer.  The pool itself is pool.c; the commands are commands.c. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <qb/qbipcs.h>
#include <qb/qblog.h>
#include <qb/qbloop.h>

#include "events.h"
#include "protocol.h"
#include "vigild.h"

struct daemon D = {.self = HA_NO_HOST, .js_pipe = {-1, -1}};

uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

int64_t wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void json_fputs(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

void audit(int level, const char *actor, const char *why, const char *fmt, ...)
{
    struct vigil_event ev = {.time_ms = wall_ms()};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ev.what, sizeof ev.what, fmt, ap);
    va_end(ap);
    snprintf(ev.host, sizeof ev.host, "%s", D.cfg.name);
    snprintf(ev.actor, sizeof ev.actor, "%s", actor);
    snprintf(ev.why, sizeof ev.why, "%s", why ? why : "");
    qb_log(level, "%s: %s%s%s%s", actor, ev.what, ev.why[0] ? " (" : "", ev.why, ev.why[0] ? ")" : "");
    char err[256];
    if (D.events && events_append(D.events, &ev, err, sizeof err) < 0)
        qb_log(LOG_ERR, "cannot write the events log: %s", err);
}

/* ---------------------------------------------------------------- shell commands */

int run_command(const char *what, const char *cmd, int timeout_s, char *err, size_t errlen)
{
    qb_log(LOG_INFO, "running %s: %s", what, cmd);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "%s: fork: %s", what, strerror(errno));
        return -errno;
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDWR);
        if (fd >= 0) {
            dup2(fd, 0);
            if (fd > 2)
                close(fd);
        }
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    uint64_t end = now_ms() + (uint64_t)timeout_s * 1000;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR) {
            snprintf(err, errlen, "%s: waitpid: %s", what, strerror(errno));
            return -errno;
        }
        if (now_ms() > end) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            snprintf(err, errlen, "%s ('%s') did not finish within %d s", what, cmd, timeout_s);
            return -ETIMEDOUT;
        }
        usleep(20 * 1000);
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFEXITED(st))
        snprintf(err, errlen, "%s ('%s') failed with exit status %d", what, cmd, WEXITSTATUS(st));
    else
        snprintf(err, errlen, "%s ('%s') was killed by signal %d", what, cmd, WTERMSIG(st));
    return -EIO;
}

/* ---------------------------------------------------------------- requests */

static void request_timer(void *data);

static void arm_request_timer(void)
{
    if (!qb_loop_timer_is_running(D.loop, D.request_timer))
        qb_loop_timer_add(D.loop, QB_LOOP_LOW, 500ULL * 1000 * 1000, NULL, request_timer, &D.request_timer);
}

struct request *request_new(int kind)
{
    struct request *rq = calloc(1, sizeof *rq);
    if (!rq)
        return NULL;
    rq->id = ++D.next_request;
    rq->kind = kind;
    rq->deadline = now_ms() + 30000;
    rq->next = D.requests;
    D.requests = rq;
    arm_request_timer();
    return rq;
}

struct request *request_find(uint64_t id)
{
    for (struct request *rq = D.requests; rq; rq = rq->next)
        if (rq->id == id)
            return rq;
    return NULL;
}

static void respond(qb_ipcs_connection_t *c, int code, const char *text)
{
    size_t tl = strlen(text);
    if (tl > VIGIL_IPC_MAX - sizeof(struct vigil_resp) - 64)
        tl = VIGIL_IPC_MAX - sizeof(struct vigil_resp) - 64;
    struct vigil_resp *rs = malloc(sizeof *rs + tl + 1);
    if (!rs)
        return;
    rs->hdr.id = VIGIL_REQ_COMMAND;
    rs->hdr.error = 0;
    rs->code = code;
    memcpy(rs->text, text, tl);
    rs->text[tl] = 0;
    rs->hdr.size = (int32_t)(sizeof *rs + tl + 1);
    qb_ipcs_response_send(c, rs, (size_t)rs->hdr.size);
    free(rs);
}

static void request_unlink(struct request *rq)
{
    for (struct request **p = &D.requests; *p; p = &(*p)->next)
        if (*p == rq) {
            *p = rq->next;
            break;
        }
    pool_request_gone(rq);
    if (rq->argbuf) { /* it may hold a fence device's password */
        size_t n = 0;
        for (int i = 0; i < rq->argc; i++)
            n += strlen(rq->argbuf + n) + 1;
        explicit_bzero(rq->argbuf, n);
    }
    free(rq->argbuf);
    free(rq->last_xml);
    rq->last_xml = NULL;
    rq->argbuf = NULL;
    explicit_bzero(&rq->last, sizeof rq->last);
}

/* A long answer (a host list, events) is sent as it is; request_finish
 * is for the short ones. */
void request_finish_text(struct request *rq, int code, const char *text)
{
    request_unlink(rq);
    if (rq->conn) {
        respond(rq->conn, code, text);
        qb_ipcs_connection_unref(rq->conn);
    } else if (rq->origin) {
        command_send_reply(rq->origin, rq->origin_id, code, text);
    }
    free(rq);
}

void request_finish(struct request *rq, int code, const char *fmt, ...)
{
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    request_finish_text(rq, code, text);
}

static void request_timer(void *data)
{
    (void)data;
    uint64_t now = now_ms();
    for (struct request *rq = D.requests, *next; rq; rq = next) {
        next = rq->next;
        if (now < rq->deadline)
            continue;
        switch (rq->kind) {
        case RQ_FORWARD:
            request_finish(rq, 1, "no answer from the master within 30 s: the command may or may not have been "
                                  "carried out; check `vigil status` and `vigil events`\n");
            break;
        case RQ_CREATE:
        case RQ_JOIN:
            request_finish(rq, 1, "%s\ncorosync did not form a membership with this host within 30 s; the pool "
                                  "database is stored here and vigild keeps trying (see its log and `vigil status`)\n",
                           rq->text);
            break;
        case RQ_PARKED:
            request_finish(rq, 1, "%s\n", rq->text);
            break;
        case RQ_LEAVE:
            if (rq->answered_core || rq->text[0])
                request_finish(rq, 1, "%sthis host has not left the pool within 60 s: the master has not removed it "
                                      "yet (see `vigil status` and `vigil events`)\n", rq->text);
            else
                request_finish(rq, 1, "no answer from the master within 30 s: the leave may or may not have been "
                                      "accepted; check `vigil status` and `vigil events`\n");
            break;
        default:
            request_finish(rq, 1, "not confirmed within 30 s: not every member has stored the change; it may still "
                                  "be applied when the pool's members reach each other again (check `vigil status`)\n");
        }
    }
    if (D.requests)
        arm_request_timer();
}

/* ---------------------------------------------------------------- IPC */

static int32_t ipc_accept(qb_ipcs_connection_t *c, uid_t uid, gid_t gid)
{
    if (uid == 0 || (D.have_vigil_gid && gid == D.vigil_gid)) {
        qb_ipcs_context_set(c, (void *)(uintptr_t)(uid + 1));
        return 0;
    }
    qb_log(LOG_NOTICE, "refused an IPC client with uid %u gid %u (root or group vigil only)", (unsigned)uid, (unsigned)gid);
    return -EACCES;
}

static int32_t ipc_msg(qb_ipcs_connection_t *c, void *data, size_t size)
{
    const struct vigil_req *rq = data;
    if (size < sizeof *rq || rq->hdr.size != (int32_t)size || rq->hdr.id != VIGIL_REQ_COMMAND || rq->argc == 0 ||
        rq->argc > 256 || size - sizeof *rq > VIGIL_ARGS_MAX || ((const char *)data)[size - 1] != 0) {
        respond(c, 2, "malformed request (is this vigil from the same version as vigild?)\n");
        return 0;
    }
    char *argv[257];
    const char *p = rq->args, *end = (const char *)data + size;
    uint32_t n = 0;
    while (p < end && n < rq->argc) {
        argv[n++] = (char *)(uintptr_t)p;
        p += strlen(p) + 1;
    }
    if (n != rq->argc || p != end) {
        respond(c, 2, "malformed request: the words do not match their count\n");
        return 0;
    }
    argv[n] = NULL;
    struct request *r = request_new(RQ_COMMIT);
    if (!r) {
        respond(c, 1, "vigild is out of memory\n");
        return 0;
    }
    r->conn = c;
    qb_ipcs_connection_ref(c);
    r->uid = (uid_t)((uintptr_t)qb_ipcs_context_get(c) - 1);
    snprintf(r->from, sizeof r->from, "%s", D.cfg.name);
    command_run(r, (int)n, argv, rq->flags, false);
    return 0;
}

static int32_t ipc_closed(qb_ipcs_connection_t *c)
{
    /* a client that went away does not wait any more; the work goes on */
    for (struct request *rq = D.requests; rq; rq = rq->next)
        if (rq->conn == c) {
            qb_ipcs_connection_unref(c);
            rq->conn = NULL;
        }
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
    static struct qb_ipcs_service_handlers h = {
        .connection_accept = ipc_accept, .msg_process = ipc_msg, .connection_closed = ipc_closed};
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
               "Runs vigil's per-host daemon in the foreground: keeps this host's copy of the pool\n"
               "database, follows corosync membership and quorum, and answers the vigil CLI on this\n"
               "host (IPC service '%s', root or the configured group only).\n"
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
    snprintf(D.config_path, sizeof D.config_path, "%s", config ? config : VIGIL_CONFIG_PATH);
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
        qb_log(LOG_NOTICE, "configuration read from %s (host name %s)", D.config_path, D.cfg.name);
    signal(SIGPIPE, SIG_IGN);
    /* request ids go out in forwarded commands: a restarted vigild must not
     * take an answer meant for its previous life */
    if (getrandom(&D.next_request, sizeof D.next_request, 0) != sizeof D.next_request)
        D.next_request = (uint64_t)wall_ms() << 16;
    D.next_request &= ~0ULL >> 2;
    D.events = events_open(D.cfg.state_dir, err, sizeof err);
    if (!D.events) {
        qb_log(LOG_ERR, "cannot open the events log in %s: %s", D.cfg.state_dir, err);
        return 1;
    } else if (err[0])
        qb_log(LOG_WARNING, "events log: %s", err);
    D.loop = qb_loop_create();
    if (!D.loop || ipc_start() < 0) {
        qb_log(LOG_ERR, "cannot start the IPC service '%s' (is another vigild running on this host?)", VIGIL_IPC_NAME);
        return 1;
    }
    qb_loop_signal_handle sh;
    qb_loop_signal_add(D.loop, QB_LOOP_HIGH, SIGTERM, NULL, on_signal, &sh);
    qb_loop_signal_add(D.loop, QB_LOOP_HIGH, SIGINT, NULL, on_signal, &sh);
    if (fencer_init(D.loop) < 0) {
        qb_log(LOG_ERR, "cannot set up the fencing workers' pipe");
        return 1;
    }
    if (pool_load(err, sizeof err) < 0) {
        qb_log(LOG_ERR, "%s", err);
        qb_ipcs_destroy(D.ipcs);
        return 1;
    }
    audit(LOG_NOTICE, "vigild", D.config_path, "vigild started (%s)", D.in_pool ? "member of a pool" : "in no pool");
    qb_loop_run(D.loop);
    while (D.requests)
        request_finish(D.requests, 3, "vigild is stopping\n");
    pool_shutdown();
    qb_ipcs_destroy(D.ipcs);
    events_close(D.events);
    qb_log_fini();
    return 0;
}
