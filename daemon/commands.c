/* What each `vigil` command does in vigild, and the text or JSON of its
 * answer.  Reading commands answer from this host's copy of the pool
 * database; changing ones are decided by the master: typed elsewhere, they
 * travel to it over the pool's CPG group and its answer travels back. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <qb/qblog.h>

#include "../agents/vagent.h"
#include "../membership/cconf.h"
#include "../membership/join.h"
#include "../membership/pooldb.h"
#include "../membership/replica.h"
#include "cmdtable.h"
#include "dwire.h"
#include "events.h"
#include "vigild.h"

const uint8_t *pool_join_fpr(uint8_t out[32]);

/* ---------------------------------------------------------------- output buffer */

struct out {
    char *p;
    size_t n, cap;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void outf(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0)
            return;
        if (o->p && o->n + (size_t)k < o->cap) {
            o->n += (size_t)k;
            return;
        }
        size_t cap = o->cap ? o->cap * 2 : 4096;
        while (cap < o->n + (size_t)k + 1)
            cap *= 2;
        if (cap > 900 * 1024)
            return; /* the answer is cut, never the daemon */
        char *np = realloc(o->p, cap);
        if (!np)
            return;
        o->p = np;
        o->cap = cap;
    }
}

/* text written to a FILE (hb.c's listings, JSON strings) appended to o */
static void out_file(struct out *o, void (*fn)(FILE *, const void *, bool), const void *arg, bool flag)
{
    char *t = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&t, &n);
    if (!f)
        return;
    fn(f, arg, flag);
    fclose(f);
    if (t)
        outf(o, "%s", t);
    free(t);
}

static void put_json_str(FILE *f, const void *s, bool unused)
{
    (void)unused;
    json_fputs(f, s);
}

static void out_json_str(struct out *o, const char *s) { out_file(o, put_json_str, s, false); }

static void put_disk_line(FILE *f, const void *unused, bool json)
{
    (void)unused;
    hb_status_line(f, json);
}

static void put_disk_list(FILE *f, const void *unused, bool json)
{
    (void)unused;
    hb_list(f, json);
}

static void finish_out(struct request *rq, int code, struct out *o)
{
    request_finish_text(rq, code, o->p ? o->p : "");
    free(o->p);
}

/* ---------------------------------------------------------------- status */

static const char *host_state(int h)
{
    if (!D.db.host[h].joined)
        return "left";
    if (D.core)
        return ha_host_state_name(ha_core_host_state(D.core, h));
    return "unknown";
}

static void status(struct out *o, bool json)
{
    static const char *const sides[] = {"undecided", "winning", "losing"};
    ha_hostset view = pool_view();
    char why[256] = "";
    int m = D.in_pool ? pool_master(why, sizeof why) : HA_NO_HOST;
    const char *cs = !D.in_pool ? "not started" : D.connected ? "connected" : "disconnected";
    if (json) {
        outf(o, "{\"host\":");
        out_json_str(o, D.cfg.name);
        outf(o, ",\"address\":");
        out_json_str(o, D.cfg.address);
        outf(o, ",\"nodeid\":%u,\"corosync\":\"%s\",\"quorate\":%s,\"members\":[", D.nodeid, cs,
             D.quorate ? "true" : "false");
        int k = 0;
        for (int h = 0; h < D.db.nhosts; h++)
            if (view & HA_BIT(h)) {
                outf(o, "%s", k++ ? "," : "");
                out_json_str(o, D.db.host[h].name);
            }
        outf(o, "],\"pool\":");
        if (D.in_pool)
            out_json_str(o, D.db.pool_name);
        else
            outf(o, "null");
        outf(o, ",\"pool_uuid\":");
        if (D.in_pool)
            out_json_str(o, D.db.pool_uuid);
        else
            outf(o, "null");
        outf(o, ",\"pool_hosts\":%d,\"master\":", D.in_pool ? ha_popcount(ha_db_joined(&D.db)) : 0);
        if (m != HA_NO_HOST)
            out_json_str(o, D.db.host[m].name);
        else
            outf(o, "null");
        outf(o, ",\"master_why\":");
        out_json_str(o, m == HA_NO_HOST ? why : "");
        outf(o, ",\"is_master\":%s,\"partition_side\":\"%s\",\"synced\":%s,\"database_version\":%" PRIu64
                ",\"database_epoch\":%" PRIu64 ",\"database_digest\":\"%016" PRIx64 "\","
                "\"heartbeat_disk\":\"%s\"}\n",
             pool_is_master() ? "true" : "false", D.core ? sides[ha_core_side(D.core)] : "undecided",
             D.synced ? "true" : "false", D.db.version, D.db.master_epoch, D.in_pool ? pool_digest() : 0,
             !D.in_pool ? "none" : D.db.set.heartbeat_disk ? "yes" : "none (corosync-only pool)");
        /* this host's disk, as one object (replacing the closing brace) */
        if (o->n >= 2 && o->p[o->n - 2] == '}') {
            o->n -= 2;
            outf(o, ",\"disk\":");
            out_file(o, put_disk_line, NULL, true);
            outf(o, "}\n");
        }
        return;
    }
    outf(o, "host:             %s (%s", D.cfg.name, D.cfg.address[0] ? D.cfg.address : "no address configured");
    if (D.nodeid)
        outf(o, ", corosync node %u", D.nodeid);
    outf(o, ")\n");
    if (!D.in_pool) {
        outf(o, "pool:             none: create one (vigil pool create NAME) or join one (vigil pool join ADDRESS "
                "--token TOKEN)\n");
        return;
    }
    outf(o, "pool:             %s (%s), %d host(s)\n", D.db.pool_name, D.db.pool_uuid, ha_popcount(ha_db_joined(&D.db)));
    outf(o, "corosync:         %s, %s\n", D.connected ? "connected" : "not connected (retrying every second)",
         D.quorate ? "quorate" : "not quorate");
    outf(o, "members:          %d of %d:", ha_popcount(view), ha_popcount(ha_db_joined(&D.db)));
    for (int h = 0; h < D.db.nhosts; h++)
        if (view & HA_BIT(h))
            outf(o, " %s", D.db.host[h].name);
    outf(o, "\nmaster:           %s%s%s\n", m != HA_NO_HOST ? D.db.host[m].name : "none (",
         m != HA_NO_HOST ? (m == D.self ? " (this host)" : "") : why, m != HA_NO_HOST ? "" : ")");
    outf(o, "partition side:   %s\n", D.core ? sides[ha_core_side(D.core)] : "undecided");
    outf(o, "database:         version %" PRIu64 ", epoch %" PRIu64 ", digest %016" PRIx64 ", %s\n", D.db.version,
         D.db.master_epoch, pool_digest(), D.synced ? "in sync with the members in view" : "not synchronised yet");
    outf(o, "heartbeat disk:   %s\nthis host's disk: ", D.db.set.heartbeat_disk ? "yes: the pool runs with its heartbeat disk"
                                                             : "no: the pool runs on corosync quorum (docs/pool.md)");
    out_file(o, put_disk_line, NULL, false);
    outf(o, "\n");
}

static void pool_show(struct out *o, bool json)
{
    const struct ha_settings *s = &D.db.set;
    struct {
        const char *k;
        long long v;
        bool ms;
    } f[] = {{"token_timeout", s->token_timeout, true},      {"disk_interval", s->disk_interval, true},
             {"disk_timeout", s->disk_timeout, true},        {"msgwait", s->msgwait, true},
             {"fence_timeout", s->fence_timeout, true},      {"op_timeout", s->op_timeout, true},
             {"evacuate_concurrency", s->evacuate_concurrency, false},
             {"max_restart", s->max_restart, false},         {"failures_to_tolerate", s->failures_to_tolerate, false},
             {"balance_interval", s->balance_interval, true}};
    size_t nf = sizeof f / sizeof f[0];
    if (json) {
        outf(o, "{\"name\":");
        out_json_str(o, D.db.pool_name);
        outf(o, ",\"uuid\":");
        out_json_str(o, D.db.pool_uuid);
        outf(o, ",\"database_version\":%" PRIu64 ",\"database_epoch\":%" PRIu64 ",\"settings\":{", D.db.version,
             D.db.master_epoch);
        for (size_t i = 0; i < nf; i++)
            outf(o, "%s\"%s\":\"%lld%s\"", i ? "," : "", f[i].k, f[i].v, f[i].ms ? "ms" : "");
        outf(o, ",\"heartbeat_disk\":\"%s\",\"cpu_overcommit\":\"%g\"}}\n", s->heartbeat_disk ? "yes" : "no",
             s->cpu_overcommit);
        return;
    }
    outf(o, "pool %s (%s), database version %" PRIu64 ", epoch %" PRIu64 "\n", D.db.pool_name, D.db.pool_uuid,
         D.db.version, D.db.master_epoch);
    for (size_t i = 0; i < nf; i++)
        outf(o, "  %-22s %lld%s\n", f[i].k, f[i].v, f[i].ms ? "ms" : "");
    outf(o, "  %-22s %s\n  %-22s %g\n", "heartbeat_disk", s->heartbeat_disk ? "yes" : "no", "cpu_overcommit",
         s->cpu_overcommit);
}

static void host_json(struct out *o, int h)
{
    const struct ha_db_host *x = &D.db.host[h];
    outf(o, "{\"name\":");
    out_json_str(o, x->name);
    outf(o, ",\"address\":");
    out_json_str(o, x->addr);
    outf(o, ",\"nodeid\":%u,\"joined\":%s,\"member\":%s,\"master\":%s,\"state\":\"%s\",\"maintenance\":%s,"
            "\"leaving\":%s,\"fenced\":%s,\"mem_mb\":%" PRIu64 ",\"cpus\":%d}",
         x->nodeid, x->joined ? "true" : "false", pool_view() & HA_BIT(h) ? "true" : "false",
         D.db.master == h ? "true" : "false", host_state(h), x->maintenance ? "true" : "false",
         x->leaving ? "true" : "false", x->fenced ? "true" : "false", x->mem_mb, x->cpus);
}

static void host_list(struct out *o, bool json)
{
    if (json) {
        outf(o, "[");
        int k = 0;
        for (int h = 0; h < D.db.nhosts; h++)
            if (D.db.host[h].joined) {
                outf(o, "%s", k++ ? "," : "");
                host_json(o, h);
            }
        outf(o, "]\n");
        return;
    }
    outf(o, "%-16s %-24s %6s %-12s %-7s %s\n", "HOST", "ADDRESS", "NODE", "STATE", "MEMBER", "ROLE");
    for (int h = 0; h < D.db.nhosts; h++)
        if (D.db.host[h].joined)
            outf(o, "%-16s %-24s %6u %-12s %-7s %s%s\n", D.db.host[h].name, D.db.host[h].addr, D.db.host[h].nodeid,
                 host_state(h), pool_view() & HA_BIT(h) ? "yes" : "no", D.db.master == h ? "master" : "",
                 D.db.host[h].maintenance ? " maintenance" : "");
}

static void rule_list(struct out *o, bool json)
{
    outf(o, json ? "[" : "");
    if (!json && !D.db.nrules)
        outf(o, "no rules\n");
    for (int i = 0; i < D.db.nrules; i++) {
        const struct ha_rule *r = &D.db.rule[i];
        if (json) {
            outf(o, "%s{\"name\":", i ? "," : "");
            out_json_str(o, r->name);
            outf(o, ",\"type\":\"%s\",\"strict\":%s,\"vms\":[", ha_rule_type_name(r->type), r->strict ? "true" : "false");
            for (int k = 0; k < r->nvms; k++) {
                outf(o, "%s", k ? "," : "");
                out_json_str(o, D.db.vm[r->vm[k]].name);
            }
            outf(o, "],\"hosts\":[");
            int n = 0;
            for (int h = 0; h < D.db.nhosts; h++)
                if (r->type == HA_RULE_PIN && (r->hosts & HA_BIT(h))) {
                    outf(o, "%s", n++ ? "," : "");
                    out_json_str(o, D.db.host[h].name);
                }
            outf(o, "]}");
        } else {
            outf(o, "%-20s %-14s %-7s", r->name, ha_rule_type_name(r->type), r->strict ? "strict" : "soft");
            for (int k = 0; k < r->nvms; k++)
                outf(o, " %s", D.db.vm[r->vm[k]].name);
            for (int h = 0; h < D.db.nhosts; h++)
                if (r->type == HA_RULE_PIN && (r->hosts & HA_BIT(h)))
                    outf(o, " @%s", D.db.host[h].name);
            outf(o, "\n");
        }
    }
    outf(o, json ? "]\n" : "");
}

static void plan(struct out *o, bool json)
{
    struct ha_plan p;
    ha_core_plan(D.core, 0, &p);
    if (json) {
        outf(o, "{\"tolerates\":%d,\"exact\":%s,\"hosts_considered\":%d,\"method\":", p.tolerates,
             p.exact ? "true" : "false", p.hosts_considered);
        out_json_str(o, p.method);
        outf(o, ",\"reserve_mb\":{");
        int k = 0;
        for (int h = 0; h < D.db.nhosts; h++)
            if (D.db.host[h].joined) {
                outf(o, "%s", k++ ? "," : "");
                out_json_str(o, D.db.host[h].name);
                outf(o, ":%" PRIu64, p.reserve_mb[h]);
            }
        outf(o, "}}\n");
        return;
    }
    outf(o, "the pool tolerates %d simultaneous host failure(s)%s (%d live eligible host(s); %s)\n", p.tolerates,
         p.exact ? "" : " at least", p.hosts_considered, p.method);
    for (int h = 0; h < D.db.nhosts; h++)
        if (D.db.host[h].joined)
            outf(o, "  %-16s keeps %" PRIu64 " MiB free for failover\n", D.db.host[h].name, p.reserve_mb[h]);
}

static int events(struct out *o, int argc, char **argv, bool json, char *err, size_t errlen)
{
    uint64_t after = 0;
    long last = 50;
    bool follow = false;
    for (int i = 0; i < argc; i++) {
        long v;
        if (!strcmp(argv[i], "--after") && i + 1 < argc && ha_parse_int(argv[i + 1], 0, 1L << 62, &v) == 0) {
            after = (uint64_t)v;
            i++;
        } else if (!strcmp(argv[i], "--last") && i + 1 < argc && ha_parse_int(argv[i + 1], 1, 100000, &v) == 0) {
            last = v;
            i++;
        } else if (!strcmp(argv[i], "--follow")) {
            follow = true; /* the CLI polls with --after */
        } else {
            snprintf(err, errlen, "events: unexpected argument '%s' (usage: vigil events [--follow] [--json] [--last N])",
                     argv[i]);
            return 2;
        }
    }
    struct vigil_event *ev = NULL;
    size_t n = 0;
    char why[256] = "";
    if (events_read(D.cfg.state_dir, after, (size_t)last, &ev, &n, NULL, why, sizeof why) < 0) {
        snprintf(err, errlen, "cannot read the events log: %s", why);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char line[2048];
        if (json)
            events_format_json(&ev[i], line, sizeof line);
        else
            events_format_text(&ev[i], line, sizeof line);
        outf(o, "%s\n", line);
        if (ev[i].seq > after)
            after = ev[i].seq;
    }
    if (follow) /* for the CLI, which strips it: where to go on from */
        outf(o, "#after %" PRIu64 "\n", after);
    free(ev);
    return 0;
}

/* ---------------------------------------------------------------- fence devices */

/* fence-device list: every device, passwords as "***" (or "" when none). */
static void fence_list(struct out *o, bool json)
{
    int k = 0;
    if (json)
        outf(o, "[");
    else
        outf(o, "%-12s %-5s %-6s %-7s %-24s %-5s %-12s %-8s %-6s %-8s %-7s %s\n", "HOST", "LEVEL", "DEVICE", "TYPE",
             "ADDRESS", "PORT", "USER", "PASSWORD", "CIPHER", "TIMEOUT", "RETRIES", "AGENT/OPTIONS");
    for (int h = 0; h < D.db.nhosts; h++) {
        const struct ha_fence_topo *t = D.db.fence[h];
        for (int l = 0; t && l < t->nlevels; l++)
            for (int i = 0; i < t->level[l].ndevs; i++) {
                const struct ha_fence_dev *d = &t->level[l].dev[i];
                const char *pw = d->password[0] ? "***" : "";
                if (json) {
                    outf(o, "%s{\"host\":", k ? "," : "");
                    out_json_str(o, D.db.host[h].name);
                    outf(o, ",\"level\":%d,\"device\":%d,\"type\":\"%s\",\"address\":", l + 1, i + 1,
                         ha_fence_type_name(d->type));
                    out_json_str(o, d->addr);
                    outf(o, ",\"port\":%d,\"user\":", d->port);
                    out_json_str(o, d->user);
                    outf(o, ",\"password\":\"%s\",\"cipher\":%d,\"agent\":", pw, d->cipher);
                    out_json_str(o, d->agent);
                    outf(o, ",\"options\":[");
                    for (int j = 0; j < d->nopts; j++) {
                        outf(o, "%s", j ? "," : "");
                        out_json_str(o, d->opt[j]);
                    }
                    outf(o, "],\"timeout_ms\":%d,\"retries\":%d}", d->timeout_ms, d->retries);
                } else {
                    char port[8] = "-", cipher[8] = "-", tmo[32];
                    if (d->port)
                        snprintf(port, sizeof port, "%d", d->port);
                    if (d->cipher)
                        snprintf(cipher, sizeof cipher, "%d", d->cipher);
                    ha_format_time(d->timeout_ms, tmo, sizeof tmo);
                    outf(o, "%-12s %-5d %-6d %-7s %-24s %-5s %-12s %-8s %-6s %-8s %-7d %s", D.db.host[h].name, l + 1,
                         i + 1, ha_fence_type_name(d->type), d->addr[0] ? d->addr : "-", port,
                         d->user[0] ? d->user : "-", pw[0] ? pw : "-", cipher, tmo, d->retries, d->agent);
                    for (int j = 0; j < d->nopts; j++)
                        outf(o, " %s", d->opt[j]);
                    outf(o, "\n");
                }
                k++;
            }
    }
    if (json)
        outf(o, "]\n");
    else if (!k)
        outf(o, "%s", D.db.set.heartbeat_disk
                          ? "no fence devices: a failed host is fenced through the heartbeat disk only (vigil "
                            "fence-device set)\n"
                          : "no fence devices: a failed host cannot be fenced, so its VMs are not restarted "
                            "elsewhere (vigil fence-device set)\n");
}

#define FD_SET_USAGE                                                                                              \
    "usage: vigil fence-device set HOST --type ipmi|agent|disk|scsi-pr [--address A] [--port P] [--user U "      \
    "--password-file F] [--cipher N] [--agent fence_x] [--option KEY=VALUE]... [--level N] [--device N] "         \
    "[--timeout S] [--retries N]\n"

/* fence-device set, on the master.  The password arrives as `--password
 * SECRET`: the vigil command read it from --password-file on the host it
 * was typed on (it never appears in a log or an answer). */
static void fence_set(struct request *rq, int argc, char **argv, int nw)
{
    struct ha_change ch = {.type = HA_CHG_FENCE_SET, .host = HA_NO_HOST, .vm = -1, .fence_level = 1};
    struct ha_fence_dev *d = &ch.dev;
    const char *host = NULL, *type = NULL;
    long port = -1, cipher = -1, level = 1, dev = 1, retries = HA_FENCE_RETRIES_DEFAULT;
    ha_ms timeout = HA_FENCE_TIMEOUT_DEFAULT;
    bool have_pw = false;
    char err[256];
    for (int i = nw; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            if (host)
                return request_finish(rq, 2, "fence-device set: unexpected argument '%s'\n" FD_SET_USAGE, a);
            host = a;
            continue;
        }
        if (!strcmp(a, "--password-file"))
            return request_finish(rq, 2, "fence-device set: --password-file is read by the vigil command; use it\n");
        if (!v)
            return request_finish(rq, 2, "fence-device set: %s needs a value\n" FD_SET_USAGE, a);
        i++;
        char *field = NULL;
        size_t cap = 0;
        if (!strcmp(a, "--type"))
            type = v;
        else if (!strcmp(a, "--address"))
            field = d->addr, cap = sizeof d->addr;
        else if (!strcmp(a, "--user"))
            field = d->user, cap = sizeof d->user;
        else if (!strcmp(a, "--agent"))
            field = d->agent, cap = sizeof d->agent;
        else if (!strcmp(a, "--password")) {
            field = d->password, cap = sizeof d->password;
            have_pw = true;
        } else if (!strcmp(a, "--option")) {
            if (d->nopts == HA_FENCE_OPTS)
                return request_finish(rq, 2, "fence-device set: at most %d options\n", HA_FENCE_OPTS);
            field = d->opt[d->nopts++], cap = sizeof d->opt[0];
        } else if (!strcmp(a, "--port")) {
            if (ha_parse_int(v, 1, 65535, &port) < 0)
                return request_finish(rq, 2, "fence-device set: --port '%s' is not in 1..65535\n", v);
        } else if (!strcmp(a, "--cipher")) {
            if (ha_parse_int(v, 1, 17, &cipher) < 0)
                return request_finish(rq, 2, "fence-device set: --cipher '%s' is not an IPMI cipher suite in 1..17 "
                                             "(0 has no authentication)\n", v);
        } else if (!strcmp(a, "--level")) {
            if (ha_parse_int(v, 1, HA_FENCE_LEVELS, &level) < 0)
                return request_finish(rq, 2, "fence-device set: --level '%s' is not in 1..%d\n", v, HA_FENCE_LEVELS);
        } else if (!strcmp(a, "--device")) {
            if (ha_parse_int(v, 1, HA_FENCE_DEVS, &dev) < 0)
                return request_finish(rq, 2, "fence-device set: --device '%s' is not in 1..%d\n", v, HA_FENCE_DEVS);
        } else if (!strcmp(a, "--retries")) {
            if (ha_parse_int(v, 0, 10, &retries) < 0)
                return request_finish(rq, 2, "fence-device set: --retries '%s' is not in 0..10\n", v);
        } else if (!strcmp(a, "--timeout")) {
            if (ha_parse_duration(v, &timeout) < 0 || timeout < 100 || timeout > 600000)
                return request_finish(rq, 2, "fence-device set: --timeout '%s' is not a duration from 100ms to 600s "
                                             "(e.g. 5, 5s, 1500ms)\n", v);
        } else
            return request_finish(rq, 2, "fence-device set: unknown option '%s'\n" FD_SET_USAGE, a);
        if (field) {
            if (strlen(v) >= cap)
                return request_finish(rq, 2, "fence-device set: the value of %s is longer than %zu bytes\n", a,
                                      cap - 1);
            snprintf(field, cap, "%s", v);
        }
    }
    if (!host || !type)
        return request_finish(rq, 2, "fence-device set: %s\n" FD_SET_USAGE, !host ? "which host?" : "--type is missing");
    if (ha_fence_type_parse(type, &d->type) < 0)
        return request_finish(rq, 2, "fence-device set: --type '%s' is not ipmi, agent, disk or scsi-pr\n", type);
    if (d->type == HA_FENCE_IPMI && !have_pw)
        return request_finish(rq, 2, "fence-device set: an ipmi device needs --password-file F\n");
    if (d->type == HA_FENCE_IPMI) {
        d->port = port < 0 ? HA_IPMI_PORT : (int)port;
        d->cipher = cipher < 0 ? HA_FENCE_CIPHER_DEFAULT : (int)cipher;
    } else {
        if (cipher >= 0)
            return request_finish(rq, 2, "fence-device set: --cipher is for ipmi devices\n");
        d->port = port < 0 ? 0 : (int)port;
    }
    d->timeout_ms = (int)timeout;
    d->retries = (int)retries;
    if (ha_fence_dev_check(d, err, sizeof err) < 0)
        return request_finish(rq, 2, "fence-device set: %s\n", err);
    ch.host = ha_db_find_host(&D.db, host);
    if (ch.host < 0 || !D.db.host[ch.host].joined)
        return request_finish(rq, 1, "no host named '%s' in pool %s\n", host, D.db.pool_name);
    const struct ha_fence_topo *t = D.db.fence[ch.host];
    int nlevels = t ? t->nlevels : 0;
    if (level > nlevels + 1)
        return request_finish(rq, 1, "%s has %d fence level(s): the next one is level %d\n", host, nlevels,
                              nlevels + 1);
    int ndevs = level <= nlevels ? t->level[level - 1].ndevs : 0;
    if (dev > ndevs + 1)
        return request_finish(rq, 1, "level %ld of %s has %d device(s): the next one is device %d\n", level, host,
                              ndevs, ndevs + 1);
    if (d->type == HA_FENCE_DISK && !D.db.set.heartbeat_disk)
        return request_finish(rq, 1,
                              "fence-device set: pool %s has no heartbeat disk, and the disk device is its poison "
                              "pill: set up the heartbeat disk first (docs/heartbeat-disk.md)\n",
                              D.db.pool_name);
    if (ha_fence_place_check(t, (int)level, (int)dev - 1, d->type, err, sizeof err) < 0)
        return request_finish(rq, 1, "fence-device set: %s\n", err);
    ch.fence_level = (int)level;
    ch.fence_index = (int)dev - 1;
    snprintf(rq->text, sizeof rq->text, "fence device %s%s%s%s%s set for %s (level %ld%s)\n",
             ha_fence_type_name(d->type), d->agent[0] ? " " : "", d->agent, d->addr[0] ? " " : "", d->addr, host,
             level, dev > 1 ? (dev == 2 ? ", device 2" : dev == 3 ? ", device 3" : ", device 4") : "");
    rq->answered_core = true;
    pool_propose(&ch, rq);
    explicit_bzero(&ch, sizeof ch);
}

static void fence_clear(struct request *rq, int argc, char **argv, int nw)
{
    const char *host = NULL;
    long level = 0;
    for (int i = nw; i < argc; i++) {
        if (!strcmp(argv[i], "--level") && i + 1 < argc) {
            if (ha_parse_int(argv[++i], 1, HA_FENCE_LEVELS, &level) < 0)
                return request_finish(rq, 2, "fence-device clear: --level '%s' is not in 1..%d\n", argv[i],
                                      HA_FENCE_LEVELS);
        } else if (argv[i][0] != '-' && !host)
            host = argv[i];
        else
            return request_finish(rq, 2, "usage: vigil fence-device clear HOST [--level N] ('%s'?)\n", argv[i]);
    }
    if (!host)
        return request_finish(rq, 2, "usage: vigil fence-device clear HOST [--level N]\n");
    int h = ha_db_find_host(&D.db, host);
    if (h < 0 || !D.db.host[h].joined)
        return request_finish(rq, 1, "no host named '%s' in pool %s\n", host, D.db.pool_name);
    const struct ha_fence_topo *t = D.db.fence[h];
    if (!t)
        return request_finish(rq, 1, "%s has no fence devices\n", host);
    if (level && level != t->nlevels)
        return request_finish(rq, 1, "%s has %d fence level(s): only the highest (%d) can be cleared alone, so that "
                                     "the others keep their order (or clear them all without --level)\n",
                              host, t->nlevels, t->nlevels);
    struct ha_change ch = {.type = HA_CHG_FENCE_CLEAR, .host = h, .vm = -1, .fence_level = (int)level};
    if (level)
        snprintf(rq->text, sizeof rq->text, "fence devices of %s cleared (level %ld)\n", host, level);
    else
        snprintf(rq->text, sizeof rq->text, "fence devices of %s cleared (all levels)\n", host);
    rq->answered_core = true;
    pool_propose(&ch, rq);
}

/* ---------------------------------------------------------------- VMs */

/* vm import, on the master.  The XML arrives as `--xml-data XML`: the vigil
 * command read it from --xml FILE on the host it was typed on.  It is
 * checked again here (the master decides): it must name a domain vigil can
 * call by that name, with memory and vCPUs. */
static void vm_import(struct request *rq, int argc, char **argv, int nw)
{
    const char *want = NULL, *xml = NULL;
    bool replace = false;
    for (int i = nw; i < argc; i++) {
        if (!strcmp(argv[i], "--xml-data") && i + 1 < argc && !xml)
            xml = argv[++i];
        else if (!strcmp(argv[i], "--replace"))
            replace = true;
        else if (!strcmp(argv[i], "--xml"))
            return request_finish(rq, 2, "vm import: --xml FILE is read by the vigil command; use it\n");
        else if (argv[i][0] != '-' && !want)
            want = argv[i];
        else
            return request_finish(rq, 2, "usage: vigil vm import [VM] [--xml FILE] [--replace] ('%s'?)\n", argv[i]);
    }
    if (!xml)
        return request_finish(rq, 2, "usage: vigil vm import [VM] [--xml FILE] [--replace]\n");
    char name[VAGENT_NAME_MAX], err[256];
    uint64_t mem_kib;
    int vcpus;
    size_t len = strlen(xml);
    if (vagent_xml_check(xml, len, name, &mem_kib, &vcpus, err, sizeof err) < 0)
        return request_finish(rq, 1, "vm import: refused: not a domain XML vigil can store: %s\n", err);
    if (want && strcmp(want, name))
        return request_finish(rq, 1, "vm import: refused: the XML defines the domain '%s', not '%s'\n", name, want);
    if (!ha_name_valid(name))
        return request_finish(rq, 1, "vm import: refused: the domain is named '%s'; vigil names VMs with 1..%d of "
                                     "[A-Za-z0-9._-] (rename the domain in its XML)\n", name, HA_NAME_MAX - 1);
    if (!ha_vm_xml_ok(xml, len))
        return request_finish(rq, 1, "vm import: refused: the XML is larger than %d bytes\n", HA_VM_XML_MAX);
    uint64_t mem_mb = (mem_kib + 1023) / 1024;
    struct ha_change ch = {.type = HA_CHG_VM_ADD, .host = HA_NO_HOST, .vm = -1, .mem_mb = mem_mb ? mem_mb : 1,
                           .cpus = vcpus, .xml = xml, .xml_len = (uint32_t)len};
    snprintf(ch.name, sizeof ch.name, "%s", name);
    int v = ha_db_find_vm(&D.db, name);
    if (v >= 0 && !replace)
        return request_finish(rq, 1, "vm import: refused: pool %s already has a VM named '%s' (vm import --replace "
                                     "stores a new XML for it)\n", D.db.pool_name, name);
    if (v < 0 && replace)
        return request_finish(rq, 1, "vm import --replace: no VM named '%s' in pool %s (import it without "
                                     "--replace)\n", name, D.db.pool_name);
    /* the whole database travels in one CPG message at state transfer */
    size_t slen = pooldb_snapshot_size(D.db.master_epoch, &D.db);
    if (!slen)
        return request_finish(rq, 1, "vm import: cannot measure the pool database\n");
    uint32_t old = v >= 0 ? D.db.vm[v].xml_len : 0;
    if (slen + len - old + 1024 > VIGIL_WIRE_MAX - 64)
        return request_finish(rq, 1, "vm import: refused: the pool database would grow past %u MiB (it holds %zu "
                                     "bytes)\n", VIGIL_WIRE_MAX >> 20, slen);
    if (v >= 0) {
        ch.type = HA_CHG_VM_XML;
        ch.vm = v;
        ch.name[0] = 0;
        snprintf(rq->text, sizeof rq->text, "VM %s: domain XML replaced (%" PRIu64 " MiB, %d vCPU(s)); a running "
                 "VM uses it from its next start\n", name, ch.mem_mb, vcpus);
    } else
        snprintf(rq->text, sizeof rq->text, "VM %s imported (%" PRIu64 " MiB, %d vCPU(s)); vigil protects it "
                 "once you say so (vigil vm protect %s) and starts it with vigil vm start %s\n",
                 name, ch.mem_mb, vcpus, name, name);
    rq->answered_core = true;
    pool_propose(&ch, rq); /* copies the XML it keeps */
}

/* The words of a command kept with its request (a parked one, or an import
 * waiting for libvirt's XML); 0 or -ENOMEM. */
static int keep_args(struct request *rq, int argc, char **argv, uint32_t flags)
{
    size_t len = 0;
    for (int i = 0; i < argc; i++)
        len += strlen(argv[i]) + 1;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    size_t off = 0;
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]) + 1;
        memcpy(buf + off, argv[i], l);
        off += l;
    }
    free(rq->argbuf);
    rq->argbuf = buf;
    rq->argc = argc;
    rq->flags = flags;
    return 0;
}

/* vm import VM without --xml, on the host it was typed on: the domain as
 * this host's libvirt defines it.  The agent is asked for its XML (a job,
 * so a hung libvirtd costs this command 10 s, never the loop); the import
 * then goes on as if --xml FILE had given it (command_import_xml). */
static void vm_import_here(struct request *rq, int argc, char **argv, uint32_t flags, int nw)
{
    const char *vm = NULL;
    for (int i = nw; i < argc; i++) {
        if (!strcmp(argv[i], "--replace"))
            continue;
        if (argv[i][0] != '-' && !vm)
            vm = argv[i];
        else
            return request_finish(rq, 2, "usage: vigil vm import [VM] [--xml FILE] [--replace] ('%s'?)\n",
                                  argv[i]);
    }
    if (!vm)
        return request_finish(rq, 2, "vigil vm import: name the VM (its XML comes from this host's libvirt), or "
                                     "give its XML with --xml FILE\n");
    if (!ha_name_valid(vm))
        return request_finish(rq, 1, "vm import: refused: '%s' is not a VM name vigil can use (1..%d of "
                                     "[A-Za-z0-9._-])\n", vm, HA_NAME_MAX - 1);
    char err[256];
    if (keep_args(rq, argc, argv, flags) < 0)
        return request_finish(rq, 1, "vigild is out of memory\n");
    if (vms_dumpxml(rq->id, vm, err, sizeof err) < 0)
        return request_finish(rq, 1, "vm import: cannot ask libvirt on %s for %s: %s\n", D.cfg.name, vm, err);
}

void command_import_xml(uint64_t id, int rc, const char *xml, const char *why)
{
    struct request *rq = request_find(id);
    if (!rq || !rq->argbuf || rq->kind != RQ_COMMIT)
        return; /* answered meanwhile (its deadline) */
    char *kept = rq->argbuf, *argv[262];
    int argc = 0;
    rq->argbuf = NULL;
    for (char *p = kept; argc < rq->argc && argc < 256; p += strlen(p) + 1)
        argv[argc++] = p;
    const char *vm = NULL;
    for (int i = 2; i < argc && !vm; i++)
        if (argv[i][0] != '-')
            vm = argv[i];
    char name[VAGENT_NAME_MAX], err[256];
    if (rc == -ENOENT)
        request_finish(rq, 1, "vm import: refused: libvirt on %s (%s) has no domain named '%s': define it there "
                              "(virsh define FILE), type the command on the host that has it, or give its XML with "
                              "--xml FILE\n", D.cfg.name, D.cfg.libvirt_uri, vm);
    else if (rc < 0)
        request_finish(rq, 1, "vm import: refused: cannot get the XML of %s from libvirt on %s (%s): %s\n", vm,
                       D.cfg.name, D.cfg.libvirt_uri, why && why[0] ? why : strerror(-rc));
    else if (!xml || vagent_xml_check(xml, strlen(xml), name, NULL, NULL, err, sizeof err) < 0)
        request_finish(rq, 1, "vm import: refused: libvirt's XML of %s on %s is not one vigil can store: %s\n", vm,
                       D.cfg.name, xml ? err : "none");
    else {
        argv[argc++] = "--xml-data";
        argv[argc++] = (char *)(uintptr_t)xml;
        argv[argc] = NULL;
        command_run(rq, argc, argv, rq->flags, false); /* as with --xml FILE from here on */
    }
    free(kept);
}

/* explain: the core's sentence, or NULL (vm list leaves it out) */
static void vm_json(struct out *o, int v, const char *explain)
{
    const struct ha_db_vm *x = &D.db.vm[v];
    int h = HA_NO_HOST;
    enum ha_vm_state st = D.core ? ha_core_vm_state(D.core, v, &h) : HA_VM_STOPPED;
    if (h == HA_NO_HOST)
        h = x->host;
    outf(o, "{\"name\":");
    out_json_str(o, x->name);
    outf(o, ",\"state\":\"%s\",\"host\":", ha_vm_state_name(st));
    if (h >= 0 && h < D.db.nhosts)
        out_json_str(o, D.db.host[h].name);
    else
        outf(o, "null");
    outf(o, ",\"placed\":");
    if (x->host >= 0 && x->host < D.db.nhosts)
        out_json_str(o, D.db.host[x->host].name);
    else
        outf(o, "null");
    outf(o, ",\"migrating_to\":");
    if (x->migrating_to >= 0 && x->migrating_to < D.db.nhosts)
        out_json_str(o, D.db.host[x->migrating_to].name);
    else
        outf(o, "null");
    outf(o, ",\"want_running\":%s,\"protect\":\"%s\",\"priority\":%d,\"order\":%d,\"after\":",
         x->want_running ? "true" : "false", ha_protect_name(x->protect), x->priority, x->order);
    if (x->after1 > 0 && x->after1 <= D.db.nvms)
        out_json_str(o, D.db.vm[x->after1 - 1].name);
    else
        outf(o, "null");
    outf(o, ",\"mem_mb\":%" PRIu64 ",\"cpus\":%d,\"xml_bytes\":%" PRIu32, x->mem_mb, x->cpus, x->xml_len);
    if (explain) {
        outf(o, ",\"explain\":");
        out_json_str(o, explain);
    }
    outf(o, "}");
}

static void vm_list(struct out *o, bool json)
{
    if (json) {
        outf(o, "[");
        for (int v = 0; v < D.db.nvms; v++) {
            outf(o, "%s", v ? "," : "");
            vm_json(o, v, NULL);
        }
        outf(o, "]\n");
        return;
    }
    if (!D.db.nvms) {
        outf(o, "no VMs in pool %s (vigil vm import --xml FILE)\n", D.db.pool_name);
        return;
    }
    outf(o, "%-20s %-11s %-16s %-11s %-4s %-5s %8s %4s\n", "VM", "STATE", "HOST", "PROTECT", "PRIO", "WANT", "MEM_MB",
         "CPUS");
    for (int v = 0; v < D.db.nvms; v++) {
        const struct ha_db_vm *x = &D.db.vm[v];
        int h = HA_NO_HOST;
        enum ha_vm_state st = D.core ? ha_core_vm_state(D.core, v, &h) : HA_VM_STOPPED;
        if (h == HA_NO_HOST)
            h = x->host;
        outf(o, "%-20s %-11s %-16s %-11s %-4d %-5s %8" PRIu64 " %4d\n", x->name, ha_vm_state_name(st),
             h >= 0 && h < D.db.nhosts ? D.db.host[h].name : "-", ha_protect_name(x->protect), x->priority,
             x->want_running ? "run" : "stop", x->mem_mb, x->cpus);
    }
}

static int vm_show(struct out *o, int argc, char **argv, int nw, bool json, char *err, size_t errlen)
{
    const char *name = NULL;
    bool xml = false;
    for (int i = nw; i < argc; i++) {
        if (!strcmp(argv[i], "--xml"))
            xml = true;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            snprintf(err, errlen, "usage: vigil vm show VM [--json|--xml] ('%s'?)", argv[i]);
            return 2;
        }
    }
    if (!name || (xml && json)) {
        snprintf(err, errlen, "usage: vigil vm show VM [--json|--xml]");
        return 2;
    }
    int v = ha_db_find_vm(&D.db, name);
    if (v < 0) {
        snprintf(err, errlen, "no VM named '%s' in pool %s (vigil vm list)", name, D.db.pool_name);
        return 1;
    }
    const struct ha_db_vm *x = &D.db.vm[v];
    if (xml) {
        if (!x->xml) {
            snprintf(err, errlen, "VM %s has no domain XML in the pool (vigil vm import --replace --xml FILE)", name);
            return 1;
        }
        outf(o, "%s%s", x->xml, x->xml_len && x->xml[x->xml_len - 1] == '\n' ? "" : "\n");
        return 0;
    }
    char why[1024];
    if (D.core)
        ha_core_explain(D.core, v, why, sizeof why);
    else
        snprintf(why, sizeof why, "no decision core on this host");
    if (json) {
        vm_json(o, v, why);
        outf(o, "\n");
        return 0;
    }
    int h = HA_NO_HOST;
    enum ha_vm_state st = D.core ? ha_core_vm_state(D.core, v, &h) : HA_VM_STOPPED;
    if (h == HA_NO_HOST)
        h = x->host;
    outf(o, "VM %s\n  state        %s\n  host         %s\n  placed on    %s%s%s\n  wanted       %s\n"
            "  protection   %s, priority %d, order %d%s%s\n  memory       %" PRIu64 " MiB\n  vcpus        %d\n"
            "  domain XML   %s\n  why          %s\n",
         x->name, ha_vm_state_name(st), h >= 0 && h < D.db.nhosts ? D.db.host[h].name : "none",
         x->host >= 0 && x->host < D.db.nhosts ? D.db.host[x->host].name : "nowhere",
         x->migrating_to >= 0 && x->migrating_to < D.db.nhosts ? ", migrating to " : "",
         x->migrating_to >= 0 && x->migrating_to < D.db.nhosts ? D.db.host[x->migrating_to].name : "",
         x->want_running ? "running" : "stopped", ha_protect_name(x->protect), x->priority, x->order,
         x->after1 ? ", after " : "", x->after1 > 0 && x->after1 <= D.db.nvms ? D.db.vm[x->after1 - 1].name : "",
         x->mem_mb, x->cpus, x->xml ? "stored" : "none (vigil vm import --replace --xml FILE)", why);
    if (x->xml)
        outf(o, "  xml bytes    %" PRIu32 " (vigil vm show %s --xml)\n", x->xml_len, x->name);
    return 0;
}

/* ---------------------------------------------------------------- forwarding */

static void forward(struct request *rq, int argc, char **argv, uint32_t flags)
{
    struct dreq r = {.origin = D.nodeid, .id = rq->id, .uid = (uint32_t)rq->uid, .flags = flags, .argc = argc};
    if (argc > DWIRE_MAX_ARGS)
        return request_finish(rq, 2, "too many words\n");
    for (int i = 0; i < argc; i++)
        r.argv[i] = argv[i];
    size_t len;
    uint8_t *m = dreq_encode(&r, &len);
    if (!m)
        return request_finish(rq, 1, "vigild is out of memory\n");
    int rc = pool_send(m, len);
    free(m);
    if (rc < 0)
        return request_finish(rq, 3, "cannot reach the master: corosync is not reachable on this host\n");
    if (rq->kind != RQ_LEAVE)
        rq->kind = RQ_FORWARD;
}

void command_send_reply(uint32_t origin, uint64_t origin_id, int code, const char *text)
{
    struct drep r = {.origin = origin, .id = origin_id, .code = code, .text = text};
    size_t len;
    uint8_t *m = drep_encode(&r, &len);
    if (m)
        pool_send(m, len);
    free(m);
}

void command_send_facts(void)
{
    uint64_t mem;
    int cpus;
    host_facts(&mem, &cpus);
    if (D.self < 0 || (D.db.host[D.self].mem_mb == mem && D.db.host[D.self].cpus == cpus))
        return;
    uint8_t m[24];
    dfacts_encode(&(struct dfacts){.nodeid = D.nodeid, .mem_mb = mem, .cpus = (uint32_t)cpus}, m);
    pool_send(m, sizeof m);
}

static int host_of_node(uint32_t nodeid)
{
    for (int i = 0; i < D.db.nhosts; i++)
        if (D.db.host[i].nodeid == nodeid && D.db.host[i].joined)
            return i;
    return HA_NO_HOST;
}

void command_deliver(uint32_t nodeid, const void *msg, size_t len)
{
    int type = ((const uint8_t *)msg)[3];
    struct dfacts f;
    struct drep rp;
    struct dreq rq_in;
    if (type == WIRE_DFACTS && dfacts_decode(msg, len, &f) == 0) {
        int h = host_of_node(nodeid);
        if (f.nodeid != nodeid || !pool_is_master() || h == HA_NO_HOST ||
            (D.db.host[h].mem_mb == f.mem_mb && D.db.host[h].cpus == (int)f.cpus))
            return;
        struct ha_change c = {.type = HA_CHG_HOST_FACTS, .host = h, .vm = -1, .mem_mb = f.mem_mb, .cpus = (int)f.cpus};
        pool_propose(&c, NULL);
        return;
    }
    if (type == WIRE_DREP && drep_decode(msg, len, &rp) == 0) {
        if (rp.origin != D.nodeid)
            return;
        struct request *rq = request_find(rp.id);
        if (!rq || (rq->kind != RQ_FORWARD && rq->kind != RQ_LEAVE))
            return;
        if (rq->kind == RQ_LEAVE && rp.code == 0)
            pool_leave_accepted(rq, rp.text); /* the answer waits until this host is out */
        else
            request_finish_text(rq, rp.code, rp.text);
        return;
    }
    if (type == WIRE_DORDER || type == WIRE_DREPORT || type == WIRE_DFAILED) {
        vms_deliver(nodeid, msg, len, type);
        return;
    }
    if (type == WIRE_DREQ && dreq_decode(msg, len, &rq_in) == 0) {
        /* the master answers; so does the host the database names master
         * while it settles after a membership change (it parks the command) */
        if (!pool_is_master() && !(D.db.master == D.self && D.connected && !D.synced))
            return;
        int h = host_of_node(rq_in.origin);
        if (rq_in.origin != nodeid || h == HA_NO_HOST) {
            qb_log(LOG_WARNING, "ignored a command from node %u: not a member, or not its own", nodeid);
            return;
        }
        struct request *rq = request_new(RQ_COMMIT);
        if (!rq)
            return;
        rq->origin = rq_in.origin;
        rq->origin_id = rq_in.id;
        rq->uid = (uid_t)rq_in.uid;
        snprintf(rq->from, sizeof rq->from, "%s", D.db.host[h].name);
        command_run(rq, rq_in.argc, (char **)(uintptr_t)rq_in.argv, rq_in.flags, true);
        return;
    }
    qb_log(LOG_WARNING, "ignored a malformed vigild message (type %d, %zu bytes) from node %u", type, len, nodeid);
}

/* ---------------------------------------------------------------- running commands */

static bool needs_master(enum vigil_cmd_id id)
{
    switch (id) {
    case C_POOL_TOKEN: case C_POOL_LEAVE: case C_POOL_EJECT: case C_POOL_DESIGNATE: case C_POOL_SET:
    case C_RULE_ADD: case C_RULE_DEL: case C_VM_PROTECT: case C_VM_UNPROTECT: case C_FD_SET: case C_FD_CLEAR:
    case C_HOST_FENCE: case C_VM_IMPORT: case C_VM_START: case C_VM_STOP: case C_VM_MIGRATE: case C_HOST_MAINT:
    case C_HOST_EVACUATE:
        return true;
    default:
        return false;
    }
}

static void master_run(struct request *rq, const struct vigil_cmd *c, int argc, char **argv, int nw)
{
    char actor[160], line[512] = "";
    for (int i = 0; i < argc; i++) { /* a password is never written anywhere, nor a whole XML */
        char xml[48];
        bool is_xml = i && !strcmp(argv[i - 1], "--xml-data");
        if (is_xml)
            snprintf(xml, sizeof xml, "(%zu bytes)", strlen(argv[i]));
        snprintf(line + strlen(line), sizeof line - strlen(line), "%s%s", i ? " " : "",
                 i && !strcmp(argv[i - 1], "--password") ? "***" : is_xml ? xml : argv[i]);
    }
    snprintf(actor, sizeof actor, "operator (uid %u) on %s", (unsigned)rq->uid, rq->from);
    audit(LOG_NOTICE, actor, "an operator command, carried out by the master", "vigil %s", line);
    char err[256];
    switch (c->id) {
    case C_POOL_TOKEN: {
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil pool join-token\n");
        struct join_token t = {.port = D.cfg.join_port};
        snprintf(t.host, sizeof t.host, "%s", D.cfg.address);
        if (!pool_join_fpr(t.fpr))
            return request_finish(rq, 1, "the join server does not run on the master (see its log): no token\n");
        if (join_random(t.secret, sizeof t.secret) < 0)
            return request_finish(rq, 1, "no random numbers for a token\n");
        if (join_token_encode(&t, rq->token, sizeof rq->token) < 0)
            return request_finish(rq, 1, "cannot encode a token for address %s\n", t.host);
        struct ha_change ch = {.type = HA_CHG_TOKEN_ADD, .host = HA_NO_HOST, .vm = -1};
        join_secret_hash(t.secret, ch.blob);
        ch.when = (int64_t)time(NULL) + D.cfg.join_token_ttl / 1000;
        rq->kind = RQ_TOKEN;
        pool_propose(&ch, rq);
        return;
    }
    case C_POOL_SET: {
        if (argc != nw + 2)
            return request_finish(rq, 2, "usage: vigil pool set SETTING VALUE (see vigil pool show)\n");
        const char *k = argv[nw], *v = argv[nw + 1];
        struct ha_settings s = D.db.set;
        if (ha_settings_set(&s, k, v, err, sizeof err) < 0)
            return request_finish(rq, 2, "%s\n", err);
        if (!strcmp(k, "heartbeat_disk") && s.heartbeat_disk == D.db.set.heartbeat_disk)
            return request_finish(rq, 1, "heartbeat_disk is %s already: nothing changed\n",
                                  s.heartbeat_disk ? "yes" : "no");
        /* disk mode only when every member heartbeats on the disk with the
         * pool key already (docs/heartbeat-disk.md "Switching a pool") */
        if (!strcmp(k, "heartbeat_disk") && s.heartbeat_disk && hb_ready_check(err, sizeof err) < 0)
            return request_finish(rq, 1, "the pool stays on corosync quorum: %s\n", err);
        if (s.token_timeout < CCONF_TOKEN_MIN_MS || s.token_timeout > CCONF_TOKEN_MAX_MS)
            return request_finish(rq, 2, "token_timeout: corosync takes %d ms to %d ms\n", CCONF_TOKEN_MIN_MS,
                                  CCONF_TOKEN_MAX_MS);
        struct ha_change ch = {.type = HA_CHG_SETTING, .host = HA_NO_HOST, .vm = -1};
        if (strlen(k) >= sizeof ch.name || strlen(v) >= sizeof ch.text)
            return request_finish(rq, 2, "setting name or value too long\n");
        snprintf(ch.name, sizeof ch.name, "%s", k);
        snprintf(ch.text, sizeof ch.text, "%s", v);
        snprintf(rq->text, sizeof rq->text, "%s = %s\n", k, v);
        rq->answered_core = true;
        pool_propose(&ch, rq);
        return;
    }
    case C_FD_SET:
        return fence_set(rq, argc, argv, nw);
    case C_VM_IMPORT:
        return vm_import(rq, argc, argv, nw);
    case C_FD_CLEAR:
        return fence_clear(rq, argc, argv, nw);
    default:
        break;
    }
    /* the rest is the decision core's: same words as the simulator's */
    char *words[80];
    int n = 0;
    for (int i = 0; i < argc && n < 76; i++)
        words[n++] = argv[i];
    if (c->id == C_POOL_LEAVE) { /* pool leave [--evacuate] leaves the host it was typed on */
        n = 0;
        words[n++] = "pool";
        words[n++] = "leave";
        words[n++] = rq->from;
        for (int i = nw; i < argc && n < 76; i++)
            words[n++] = argv[i];
    }
    words[n] = NULL;
    struct ha_cmd cmd;
    if (ha_cmd_parse(&D.db, n, words, &cmd, err, sizeof err) < 0)
        return request_finish(rq, 2, "%s\n", err);
    if (cmd.type == HA_CMD_POOL_EJECT && cmd.host >= 0 && (pool_view() & HA_BIT(cmd.host)))
        return request_finish(rq, 1, "%s is in the pool's corosync view right now (its vigild answers): run 'vigil "
                                     "pool leave' on it instead\n", D.db.host[cmd.host].name);
    pool_core_command(rq, &cmd);
}

/* The pool is settling (a sync round follows every membership change and
 * lasts a few milliseconds): wait for it, up to 10 s, rather than refuse. */
static void park(struct request *rq, int argc, char **argv, uint32_t flags, const struct vigil_cmd *c,
                 const char *why, bool forwarded)
{
    rq->forwarded = forwarded;
    if (keep_args(rq, argc, argv, flags) < 0)
        return request_finish(rq, 1, "vigil %s needs the master, and %s\n", c->words, why);
    rq->kind = RQ_PARKED;
    rq->deadline = now_ms() + 10000;
    snprintf(rq->text, sizeof rq->text, "vigil %s needs the master, and %s (waited 10 s)", c->words, why);
}

void command_retry_parked(void)
{
    for (struct request *rq = D.requests, *next; rq; rq = next) {
        next = rq->next;
        if (rq->kind != RQ_PARKED || !rq->argbuf)
            continue;
        char *argv[260];
        char *p = rq->argbuf;
        for (int i = 0; i < rq->argc && i < 256; i++) {
            argv[i] = p;
            p += strlen(p) + 1;
        }
        argv[rq->argc] = NULL;
        /* argv points into rq->argbuf, freed with rq: command_run uses argv
         * only before it answers */
        command_run(rq, rq->argc, argv, rq->flags, rq->forwarded);
    }
}

void command_run(struct request *rq, int argc, char **argv, uint32_t flags, bool forwarded)
{
    int nw;
    const struct vigil_cmd *c = vigil_cmd_match(argc, argv, &nw);
    bool json = flags & VIGIL_FLAG_JSON;
    char err[512] = "";
    struct out o = {0};
    if (!c)
        return request_finish(rq, 2, "unknown command '%s' (see vigil --help)\n", argv[0]);
    if (c->issue)
        return request_finish(rq, 3, "vigil %s: not available yet (it arrives with issue %s)\n", c->words, c->issue);
    if (forwarded && !needs_master(c->id))
        return request_finish(rq, 2, "vigil %s is not a command for the master\n", c->words);
    if (c->id == C_STATUS) {
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil status [--json]\n");
        status(&o, json);
        return finish_out(rq, 0, &o);
    }
    if (c->id == C_POOL_CREATE || c->id == C_POOL_JOIN) {
        if (D.in_pool)
            return request_finish(rq, 1, "this host is already in pool %s: leave it first (vigil pool leave)\n",
                                  D.db.pool_name);
        int rc;
        if (c->id == C_POOL_CREATE) {
            long tok = 1000;
            const char *name = NULL;
            for (int i = nw; i < argc; i++) {
                if (!strcmp(argv[i], "--token-ms") && i + 1 < argc) {
                    if (ha_parse_int(argv[++i], 200, 60000, &tok) < 0)
                        return request_finish(rq, 2, "--token-ms: '%s' is not a number of milliseconds in 200..60000\n",
                                              argv[i]);
                } else if (argv[i][0] != '-' && !name)
                    name = argv[i];
                else
                    return request_finish(rq, 2, "usage: vigil pool create NAME [--token-ms N] ('%s'?)\n", argv[i]);
            }
            if (!name)
                return request_finish(rq, 2, "usage: vigil pool create NAME [--token-ms N]\n");
            rc = pool_create(rq, name, tok, err, sizeof err);
        } else {
            const char *addr = NULL, *tok = NULL;
            for (int i = nw; i < argc; i++) {
                if (!strcmp(argv[i], "--token") && i + 1 < argc)
                    tok = argv[++i];
                else if (argv[i][0] != '-' && !addr)
                    addr = argv[i];
                else
                    return request_finish(rq, 2, "usage: vigil pool join MASTER_ADDRESS --token TOKEN ('%s'?)\n",
                                          argv[i]);
            }
            if (!addr || !tok)
                return request_finish(rq, 2, "usage: vigil pool join MASTER_ADDRESS --token TOKEN\n");
            rc = pool_join(rq, addr, tok, err, sizeof err);
        }
        if (rc < 0)
            request_finish(rq, 1, "%s\n", err);
        return;
    }
    if (c->id == C_EVENTS) { /* this host's log: in a pool or not */
        int rc = events(&o, argc - nw, argv + nw, json, err, sizeof err);
        if (rc) {
            free(o.p);
            return request_finish(rq, rc, "%s\n", err);
        }
        return finish_out(rq, 0, &o);
    }
    if (!D.in_pool)
        return request_finish(rq, 1, "this host is in no pool: create one (vigil pool create NAME) or join one "
                                     "(vigil pool join ADDRESS --token TOKEN)\n");
    if (c->id == C_VM_IMPORT && !forwarded && rq->kind != RQ_PARKED) {
        bool has_xml = false;
        for (int i = nw; i < argc; i++)
            has_xml |= !strcmp(argv[i], "--xml-data") || !strcmp(argv[i], "--xml");
        if (!has_xml)
            return vm_import_here(rq, argc, argv, flags, nw);
    }
    if (needs_master(c->id)) {
        bool master = pool_is_master();
        char why[256] = "";
        if (!master && (forwarded || pool_master(why, sizeof why) == HA_NO_HOST)) {
            if (forwarded)
                snprintf(why, sizeof why, "%s is not the master any more", D.cfg.name);
            /* the pool is settling (a sync round follows every membership
             * change): wait for it rather than refuse; a forwarded command
             * waits on the host the database names master */
            bool settling = D.connected && !D.synced && (!forwarded || D.db.master == D.self);
            if (settling && rq->kind != RQ_PARKED)
                return park(rq, argc, argv, flags, c, why, forwarded);
            if (rq->kind != RQ_PARKED || now_ms() >= rq->deadline || D.synced)
                return request_finish(rq, 1, "vigil %s needs the master, and %s\n", c->words, why);
            return; /* still parked */
        }
        if (rq->kind == RQ_PARKED) { /* it runs now: never again from the park */
            rq->kind = RQ_COMMIT;
            rq->deadline = now_ms() + 30000;
        }
        if (c->id == C_POOL_LEAVE && !forwarded)
            rq->kind = RQ_LEAVE; /* answered once this host is out */
        return master ? master_run(rq, c, argc, argv, nw) : forward(rq, argc, argv, flags);
    }
    switch (c->id) {
    case C_POOL_SHOW:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil pool show [--json]\n");
        pool_show(&o, json);
        break;
    case C_HOST_LIST:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil host list [--json]\n");
        host_list(&o, json);
        break;
    case C_HOST_SHOW: {
        if (argc != nw + 1)
            return request_finish(rq, 2, "usage: vigil host show HOST [--json]\n");
        int h = ha_db_find_host(&D.db, argv[nw]);
        if (h < 0)
            return request_finish(rq, 1, "no host named '%s' in pool %s\n", argv[nw], D.db.pool_name);
        if (json) {
            host_json(&o, h);
            outf(&o, "\n");
        } else {
            const struct ha_db_host *x = &D.db.host[h];
            outf(&o, "host %s\n  address      %s\n  node id      %u\n  in the pool  %s\n  state        %s\n"
                     "  member now   %s\n  role         %s\n  maintenance  %s\n  memory       %" PRIu64 " MiB\n"
                     "  cpus         %d\n",
                 x->name, x->addr, x->nodeid, x->joined ? "yes" : "no (left)", host_state(h),
                 pool_view() & HA_BIT(h) ? "yes" : "no", D.db.master == h ? "master" : "member",
                 x->maintenance ? "on" : "off", x->mem_mb, x->cpus);
        }
        break;
    }
    case C_DISK_LIST: {
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil disk list [--json]\n");
        out_file(&o, put_disk_list, NULL, json);
        break;
    }
    case C_DISK_INIT:
    case C_DISK_DUMP:
        for (int i = nw; i < argc; i++)
            for (const char *q = argv[i]; *q; q++)
                if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20)
                    return request_finish(rq, 2, "vigil %s: '%s' holds a character a device path does not\n",
                                          c->words, argv[i]);
        free(o.p);
        return disk_command(rq, c->id == C_DISK_INIT, argc - nw, argv + nw, json);
    case C_FD_TEST: {
        if (argc != nw + 1)
            return request_finish(rq, 2, "usage: vigil fence-device test HOST\n");
        int h = ha_db_find_host(&D.db, argv[nw]);
        if (h < 0 || !D.db.host[h].joined)
            return request_finish(rq, 1, "no host named '%s' in pool %s\n", argv[nw], D.db.pool_name);
        free(o.p);
        return fencer_test(rq, h); /* answered when every device did */
    }
    case C_FD_LIST:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil fence-device list [--json]\n");
        fence_list(&o, json);
        break;
    case C_RULE_LIST:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil rule list [--json]\n");
        rule_list(&o, json);
        break;
    case C_HA_PLAN:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil ha plan [--json]\n");
        plan(&o, json);
        break;
    case C_VM_LIST:
        if (argc != nw)
            return request_finish(rq, 2, "usage: vigil vm list [--json]\n");
        vm_list(&o, json);
        break;
    case C_VM_SHOW: {
        int rc = vm_show(&o, argc, argv, nw, json, err, sizeof err);
        if (rc) {
            free(o.p);
            return request_finish(rq, rc, "%s\n", err);
        }
        break;
    }
    case C_VM_EXPLAIN: {
        if (argc != nw + 1)
            return request_finish(rq, 2, "usage: vigil vm explain VM\n");
        int v = ha_db_find_vm(&D.db, argv[nw]);
        if (v < 0)
            return request_finish(rq, 1, "no VM named '%s' in pool %s (VMs enter the pool with vigil vm import)\n",
                                  argv[nw], D.db.pool_name);
        char buf[1024];
        ha_core_explain(D.core, v, buf, sizeof buf);
        outf(&o, "%s\n", buf);
        break;
    }
    default:
        return request_finish(rq, 3, "vigil %s: not available yet\n", c->words);
    }
    finish_out(rq, 0, &o);
}
