/* vigil: the command line.  It talks to the local vigild over libqb IPC.
 * Exit codes: 0 done, 1 refused (reason printed), 2 usage error,
 * 3 unavailable (vigild not running, or the capability not built yet). */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <qb/qbipcc.h>

#include "../daemon/protocol.h"

struct cmd {
    const char *words;  /* command words */
    const char *args;   /* argument synopsis */
    const char *what;   /* one line of help */
    const char *issue;  /* NULL: available now; else the issue that brings it */
    bool json;          /* takes --json */
};

static const struct cmd cmds[] = {
    {"status", "[--json]", "this host's view: corosync membership and quorum, master, database version", NULL, true},
    {"pool create", "NAME [--token-ms N]", "create a pool on this host", "[pool]", false},
    {"pool join-token", "", "print a one-time join token (on a member)", "[pool]", false},
    {"pool join", "MASTER_ADDRESS --token TOKEN", "join this host to a pool", "[pool]", false},
    {"pool leave", "[--evacuate]", "leave the pool", "[pool]", false},
    {"pool eject", "HOST", "remove a dead or fenced host (master only)", "[pool]", false},
    {"pool designate-master", "HOST", "make HOST the master", "[pool]", false},
    {"host list", "[--json]", "list hosts", "[pool]", true},
    {"host show", "HOST [--json]", "show one host", "[pool]", true},
    {"host maintenance", "HOST on|off", "enter or leave maintenance (evacuates VMs)", "[libvirt]", false},
    {"host evacuate", "HOST", "move every VM off HOST", "[libvirt]", false},
    {"host fence", "HOST --yes", "power HOST off through its fence devices", "[fencing]", false},
    {"fence-device set", "HOST --type ipmi|agent|disk ...", "configure a fence device", "[fencing]", false},
    {"fence-device list", "[--json]", "list fence devices", "[fencing]", true},
    {"fence-device test", "HOST", "check a fence device (status only)", "[fencing]", false},
    {"disk init", "DEV --hosts N", "format the heartbeat disk", "[disk]", false},
    {"disk dump", "DEV [--json]", "decode the heartbeat disk", "[disk]", true},
    {"disk list", "[--json]", "list heartbeat disks", "[disk]", true},
    {"vm import", "VM", "store a libvirt domain's XML in the pool", "[libvirt]", false},
    {"vm list", "[--json]", "list VMs", "[libvirt]", true},
    {"vm show", "VM [--json]", "show one VM", "[libvirt]", true},
    {"vm explain", "VM", "why a VM is where it is, or why it is not running", "[pool]", false},
    {"vm protect", "VM [--restart|--best-effort] [--priority N] [--order N] [--after VM]", "protect a VM", "[pool]", false},
    {"vm unprotect", "VM", "stop protecting a VM", "[pool]", false},
    {"vm start", "VM [--on HOST] [--force]", "start a VM", "[libvirt]", false},
    {"vm stop", "VM", "stop a VM", "[libvirt]", false},
    {"vm migrate", "VM HOST [--force]", "live-migrate a VM", "[libvirt]", false},
    {"rule add", "anti-affinity|affinity NAME VM... [--strict] | pin VM HOST... [--strict]", "add a placement rule", "[pool]", false},
    {"rule list", "[--json]", "list placement rules", "[pool]", true},
    {"rule del", "NAME", "delete a placement rule", "[pool]", false},
    {"ha plan", "[--json]", "how many host failures the pool tolerates, and the reserve per host", "[pool]", true},
    {"events", "[--follow] [--json]", "the audit log", "[pool]", true},
};
#define NCMDS (sizeof cmds / sizeof cmds[0])

static void usage(FILE *f)
{
    fprintf(f, "Usage: vigil COMMAND [ARGS] [--help]\n"
               "The command line of vigil, a high-availability manager for KVM virtual machines.\n"
               "It talks to vigild on this host. Exit status: 0 done, 1 refused (the reason is\n"
               "printed), 2 usage error, 3 unavailable (vigild not running, or not built yet).\n\nCommands:\n");
    for (size_t i = 0; i < NCMDS; i++)
        fprintf(f, "  vigil %s %s\n      %s%s%s\n", cmds[i].words, cmds[i].args, cmds[i].what,
                cmds[i].issue ? "  [not available yet: issue " : "", cmds[i].issue ? cmds[i].issue : "");
    fprintf(f, "%s", "");
}

/* the number of words of `c->words` that argv starts with, or 0 */
static int matches(const struct cmd *c, int argc, char **argv)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%s", c->words);
    int n = 0;
    for (char *w = strtok(buf, " "); w; w = strtok(NULL, " "), n++)
        if (n >= argc || strcmp(argv[n], w))
            return 0;
    return n;
}

static int do_status(bool json)
{
    qb_ipcc_connection_t *conn = qb_ipcc_connect(VIGIL_IPC_NAME, VIGIL_IPC_MAX);
    if (!conn) {
        int e = errno;
        if (e == EACCES || e == EPERM) {
            fprintf(stderr, "vigil: refused by vigild: only root and members of group vigil may use it\n");
            return 1;
        }
        fprintf(stderr, "vigil: cannot reach vigild on this host (%s): is it running?\n", strerror(e));
        return 3;
    }
    struct vigil_req rq = {.hdr = {.id = VIGIL_REQ_STATUS, .size = sizeof rq}, .flags = json ? VIGIL_REQ_JSON : 0};
    struct iovec iov = {.iov_base = &rq, .iov_len = sizeof rq};
    char *buf = malloc(VIGIL_IPC_MAX);
    if (!buf) {
        qb_ipcc_disconnect(conn);
        return 3;
    }
    ssize_t n = qb_ipcc_sendv_recv(conn, &iov, 1, buf, VIGIL_IPC_MAX, 5000);
    qb_ipcc_disconnect(conn);
    if (n < (ssize_t)sizeof(struct vigil_resp)) {
        fprintf(stderr, "vigil: no answer from vigild (%s)\n", n < 0 ? strerror((int)-n) : "short reply");
        free(buf);
        return 3;
    }
    struct vigil_resp *rs = (struct vigil_resp *)(void *)buf;
    buf[VIGIL_IPC_MAX - 1] = 0;
    fputs(rs->text, rs->hdr.error ? stderr : stdout);
    int rc = rs->hdr.error ? 1 : 0;
    free(buf);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct cmd *c = NULL;
    int nw = 0;
    for (size_t i = 0; i < NCMDS && !c; i++)
        if ((nw = matches(&cmds[i], argc - 1, argv + 1)))
            c = &cmds[i];
    if (!c) {
        fprintf(stderr, "vigil: unknown command '%s' (see vigil --help)\n", argv[1]);
        return 2;
    }
    bool json = false;
    for (int i = 1 + nw; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("Usage: vigil %s %s\n%s\n", c->words, c->args, c->what);
            if (c->issue)
                printf("Not available yet: it arrives with issue %s.\n", c->issue);
            return 0;
        }
        if (!strcmp(argv[i], "--json") && c->json)
            json = true;
        else if (!c->issue) {
            fprintf(stderr, "vigil %s: unexpected argument '%s'\n", c->words, argv[i]);
            return 2;
        }
    }
    if (c->issue) {
        fprintf(stderr, "vigil %s: not available yet (it arrives with issue %s)\n", c->words, c->issue);
        return 3;
    }
    return do_status(json);
}
