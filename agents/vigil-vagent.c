/* vigil-vagent: drives agents/libvagent.a by hand, the way vigild will: one
 * job submitted, the completion queue drained from a poll loop until its
 * result comes.  For operators checking a host's libvirt, and for the rig
 * tests, which run it against real libvirtd + QEMU. */
#include "agents/vagent.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_TIMEDOUT 3

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigil-vagent [--uri URI] [--timeout MS] [--json] COMMAND\n"
            "  list                                 every domain here, with state and use\n"
            "  query NAME                           one domain\n"
            "  start NAME [--xml FILE] [--peer URI]...\n"
            "                                       define from FILE if missing (or different), ask each peer\n"
            "                                       whether NAME runs there (refused if it does), then start\n"
            "  stop NAME [--stop-timeout MS]        graceful shutdown, destroy after MS (default 20000)\n"
            "  destroy NAME                         hard stop\n"
            "  dumpxml NAME                         the defined domain's XML (inactive form), as vigil stores it\n"
            "  migrate NAME DEST_URI [--bandwidth MIB_S] [--max-downtime MS]\n"
            "                                       live, peer-to-peer, persistent on DEST_URI, undefined here\n"
            "  events [--for S]                     print lifecycle events for S seconds (default 10)\n"
            "  check-xml FILE                       check a domain XML as vigil would store it (no connection)\n"
            "  --uri: the hypervisor (default qemu:///system); --timeout: the job's deadline (default: the\n"
            "  operation's own); --json: one JSON object per result or event (events and connection\n"
            "  changes with at_ms, when they were taken from the queue: ms since the epoch)\n"
            "exit: 0 done, 1 failed (the reason is printed), 2 bad arguments or input, 3 timed out\n");
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_vm(const struct vagent_vm *v)
{
    printf("{\"name\":");
    json_str(v->name);
    printf(",\"uuid\":");
    json_str(v->uuid);
    printf(",\"state\":\"%s\",\"persistent\":%s,\"mem_kib\":%llu,\"vcpus\":%d,\"cpu_time_ns\":%llu}",
           vagent_state_name(v->state), v->persistent ? "true" : "false", (unsigned long long)v->mem_kib, v->vcpus,
           (unsigned long long)v->cpu_time_ns);
}

static void text_vm(const struct vagent_vm *v)
{
    printf("%-24s %-8s %10llu %5d %16llu %s\n", v->name, vagent_state_name(v->state), (unsigned long long)v->mem_kib,
           v->vcpus, (unsigned long long)v->cpu_time_ns, v->persistent ? "persistent" : "transient");
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void print(const struct vagent_result *r, bool json)
{
    if (json) {
        if (r->kind == VAGENT_CONN) {
            printf("{\"kind\":\"conn\",\"at_ms\":%llu,\"connected\":%s,\"why\":", (unsigned long long)wall_ms(),
                   r->connected ? "true" : "false");
        } else if (r->kind == VAGENT_EVENT) {
            printf("{\"kind\":\"event\",\"at_ms\":%llu,\"name\":", (unsigned long long)wall_ms());
            json_str(r->name);
            printf(",\"event\":\"%s\",\"detail\":%d,\"why\":", vagent_ev_name(r->ev), r->detail);
        } else {
            printf("{\"kind\":\"result\",\"op\":\"%s\",\"name\":", vagent_op_name(r->op));
            json_str(r->name);
            printf(",\"rc\":%d,\"error\":", r->rc);
            json_str(r->rc ? strerror(-r->rc) : "");
            if (r->op == VAGENT_OP_LIST) {
                printf(",\"vms\":[");
                for (int i = 0; i < r->nvms; i++) {
                    printf(i ? "," : "");
                    json_vm(&r->vms[i]);
                }
                printf("]");
            } else {
                printf(",\"vm\":");
                json_vm(&r->vm);
            }
            if (r->op == VAGENT_OP_DUMPXML) {
                printf(",\"xml\":");
                json_str(r->xml ? r->xml : "");
            }
            if (r->op == VAGENT_OP_MIGRATE)
                printf(",\"total_ms\":%llu,\"downtime_ms\":%llu,\"data_total\":%llu,\"data_processed\":%llu",
                       (unsigned long long)r->mig.total_ms, (unsigned long long)r->mig.downtime_ms,
                       (unsigned long long)r->mig.data_total, (unsigned long long)r->mig.data_processed);
            printf(",\"why\":");
        }
        json_str(r->why);
        printf("}\n");
        fflush(stdout);
        return;
    }
    if (r->kind == VAGENT_CONN) {
        if (!r->connected)
            fprintf(stderr, "vigil-vagent: disconnected: %s\n", r->why);
        return;
    }
    if (r->kind == VAGENT_EVENT) {
        printf("event %s %s (detail %d)\n", r->name, vagent_ev_name(r->ev), r->detail);
        fflush(stdout);
        return;
    }
    if (r->rc) {
        fprintf(stderr, "vigil-vagent: %s%s%s: %s: %s\n", vagent_op_name(r->op), r->name[0] ? " " : "", r->name,
                strerror(-r->rc), r->why);
        return;
    }
    if (r->op == VAGENT_OP_LIST) {
        printf("%-24s %-8s %10s %5s %16s %s\n", "NAME", "STATE", "MEM_KIB", "VCPUS", "CPU_NS", "CONFIG");
        for (int i = 0; i < r->nvms; i++)
            text_vm(&r->vms[i]);
    } else if (r->op == VAGENT_OP_QUERY) {
        text_vm(&r->vm);
    } else if (r->op == VAGENT_OP_DUMPXML) {
        fputs(r->xml ? r->xml : "", stdout);
    } else {
        printf("%s %s: done, now %s%s%s\n", vagent_op_name(r->op), r->name, vagent_state_name(r->vm.state),
               r->why[0] ? ": " : "", r->why);
        if (r->op == VAGENT_OP_MIGRATE)
            printf("migration: total %llu ms, downtime %llu ms, %llu of %llu bytes\n",
                   (unsigned long long)r->mig.total_ms, (unsigned long long)r->mig.downtime_ms,
                   (unsigned long long)r->mig.data_processed, (unsigned long long)r->mig.data_total);
    }
}

static long number(const char *opt, const char *s, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < 0 || v > max) {
        fprintf(stderr, "vigil-vagent: %s wants a number from 0 to %ld, not '%s'\n", opt, max, s);
        exit(EXIT_USAGE);
    }
    return v;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "vigil-vagent: %s: %s\n", path, strerror(errno));
        exit(EXIT_USAGE);
    }
    char *buf = malloc(VAGENT_XML_MAX + 2);
    size_t n = buf ? fread(buf, 1, VAGENT_XML_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > VAGENT_XML_MAX) {
        fprintf(stderr, "vigil-vagent: %s: %s\n", path, buf ? "larger than the 256 KiB a domain XML may have" : "out of memory");
        exit(EXIT_USAGE);
    }
    buf[n] = 0;
    return buf;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
    struct vagent_opts o = {0};
    static struct vagent_job j;
    bool json = false, events = false;
    long watch_s = 10;
    const char *cmd = NULL, *xml_file = NULL;
    const char *pos[2] = {NULL, NULL};
    int npos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--uri") && more) {
            o.uri = argv[++i];
        } else if (!strcmp(a, "--timeout") && more) {
            j.timeout_ms = (int)number(a, argv[++i], 3600000);
        } else if (!strcmp(a, "--stop-timeout") && more) {
            j.stop_timeout_ms = (int)number(a, argv[++i], 3600000);
        } else if (!strcmp(a, "--xml") && more) {
            xml_file = argv[++i];
        } else if (!strcmp(a, "--peer") && more) {
            if (j.npeers >= VAGENT_MAX_PEERS || strlen(argv[i + 1]) >= VAGENT_URI_MAX) {
                fprintf(stderr, "vigil-vagent: at most %d peers of %d characters\n", VAGENT_MAX_PEERS, VAGENT_URI_MAX - 1);
                return EXIT_USAGE;
            }
            snprintf(j.peer_uri[j.npeers++], VAGENT_URI_MAX, "%s", argv[++i]);
        } else if (!strcmp(a, "--bandwidth") && more) {
            j.bandwidth_mib = (unsigned long)number(a, argv[++i], 1L << 30);
        } else if (!strcmp(a, "--max-downtime") && more) {
            j.max_downtime_ms = (uint64_t)number(a, argv[++i], 3600000);
        } else if (!strcmp(a, "--for") && more) {
            watch_s = number(a, argv[++i], 86400);
        } else if (a[0] == '-') {
            fprintf(stderr, "vigil-vagent: unknown option '%s' (or its value is missing)\n", a);
            usage(stderr);
            return EXIT_USAGE;
        } else if (!cmd) {
            cmd = a;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "vigil-vagent: unexpected '%s'\n", a);
            return EXIT_USAGE;
        }
    }
    static const struct {
        const char *name;
        enum vagent_op op;
        int npos;
    } cmds[] = {{"list", VAGENT_OP_LIST, 0}, {"query", VAGENT_OP_QUERY, 1}, {"start", VAGENT_OP_START, 1},
                {"stop", VAGENT_OP_STOP, 1}, {"destroy", VAGENT_OP_DESTROY, 1}, {"migrate", VAGENT_OP_MIGRATE, 2},
                {"dumpxml", VAGENT_OP_DUMPXML, 1}};
    if (!cmd) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(cmd, "check-xml")) {
        if (npos != 1) {
            fprintf(stderr, "vigil-vagent: check-xml FILE\n");
            return EXIT_USAGE;
        }
        char *xml = slurp(pos[0]), name[VAGENT_NAME_MAX], err[VAGENT_WHY_MAX];
        uint64_t mem = 0;
        int vcpus = 0, rc = vagent_xml_check(xml, strlen(xml), name, &mem, &vcpus, err, sizeof err);
        free(xml);
        if (rc < 0) {
            fprintf(stderr, "vigil-vagent: %s: %s\n", pos[0], err);
            return EXIT_USAGE;
        }
        printf("%s: %llu KiB, %d vCPUs\n", name, (unsigned long long)mem, vcpus);
        return 0;
    }
    events = !strcmp(cmd, "events");
    size_t c = 0;
    while (!events && c < sizeof cmds / sizeof cmds[0] && strcmp(cmds[c].name, cmd))
        c++;
    if (!events && c == sizeof cmds / sizeof cmds[0]) {
        fprintf(stderr, "vigil-vagent: unknown command '%s'\n", cmd);
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((events && npos) || (!events && npos != cmds[c].npos)) {
        fprintf(stderr, "vigil-vagent: %s takes %d argument(s)\n", cmd, events ? 0 : cmds[c].npos);
        return EXIT_USAGE;
    }

    char err[VAGENT_WHY_MAX];
    struct vagent *a = vagent_new(&o, err, sizeof err);
    if (!a) {
        fprintf(stderr, "vigil-vagent: %s\n", err);
        return EXIT_USAGE;
    }
    char *xml = NULL;
    if (!events) {
        j.op = cmds[c].op;
        j.tag = 1;
        if (npos > 0 && strlen(pos[0]) >= VAGENT_NAME_MAX) {
            fprintf(stderr, "vigil-vagent: name too long\n");
            vagent_free(a);
            return EXIT_USAGE;
        }
        if (npos > 0)
            snprintf(j.name, sizeof j.name, "%s", pos[0]);
        if (npos > 1)
            snprintf(j.dest_uri, sizeof j.dest_uri, "%s", pos[1]);
        if (xml_file)
            j.xml = xml = slurp(xml_file);
        int rc = vagent_submit(a, &j, err, sizeof err);
        free(xml);
        if (rc < 0) {
            fprintf(stderr, "vigil-vagent: %s\n", err);
            vagent_free(a);
            return EXIT_USAGE;
        }
    }
    uint64_t until = mono_ms() + (uint64_t)watch_s * 1000;
    int status = -1;
    while (status < 0) {
        struct pollfd p = {.fd = vagent_fd(a), .events = POLLIN};
        int wait = 1000;
        if (events) {
            uint64_t now = mono_ms();
            if (now >= until)
                break;
            wait = (int)(until - now);
        }
        if (poll(&p, 1, wait) < 0 && errno != EINTR)
            break;
        struct vagent_result r;
        while (vagent_next(a, &r) == 1) {
            if (r.kind == VAGENT_RESULT || json || r.kind == VAGENT_CONN || events)
                print(&r, json);
            if (r.kind == VAGENT_RESULT && r.tag == 1)
                status = r.rc == 0 ? 0 : r.rc == -ETIMEDOUT ? EXIT_TIMEDOUT : EXIT_FAILED;
            vagent_result_free(&r);
        }
    }
    vagent_free(a);
    return status < 0 ? 0 : status;
}
