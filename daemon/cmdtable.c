#include <stdio.h>
#include <string.h>

#include "cmdtable.h"

const struct vigil_cmd vigil_cmds[] = {
    {C_STATUS, "status", "[--json]", "this host's view: pool, corosync membership and quorum, master, database", NULL, true},
    {C_POOL_CREATE, "pool create", "NAME [--token-ms N]", "create a pool with this host as its master", NULL, false},
    {C_POOL_TOKEN, "pool join-token", "", "print a one-time join token (on a member; issued by the master)", NULL, false},
    {C_POOL_JOIN, "pool join", "MASTER_ADDRESS --token TOKEN", "join this host to the pool of that master", NULL, false},
    {C_POOL_LEAVE, "pool leave", "[--evacuate]", "take this host out of its pool", NULL, false},
    {C_POOL_EJECT, "pool eject", "HOST", "remove a dead or fenced host from the pool", NULL, false},
    {C_POOL_DESIGNATE, "pool designate-master", "HOST", "make HOST the master", NULL, false},
    {C_POOL_SET, "pool set", "SETTING VALUE", "change a pool setting (see vigil pool show)", NULL, false},
    {C_POOL_SHOW, "pool show", "[--json]", "the pool: name, uuid, settings, database version", NULL, true},
    {C_HOST_LIST, "host list", "[--json]", "list the pool's hosts", NULL, true},
    {C_HOST_SHOW, "host show", "HOST [--json]", "show one host", NULL, true},
    {C_HOST_MAINT, "host maintenance", "HOST on|off", "enter or leave maintenance (evacuates VMs)", NULL, false},
    {C_HOST_EVACUATE, "host evacuate", "HOST", "move every VM off HOST", NULL, false},
    {C_HOST_FENCE, "host fence", "HOST --yes", "power HOST off through its fence devices (decided by the master)", NULL, false},
    {C_FD_SET, "fence-device set",
     "HOST --type ipmi --address A [--port P] --user U --password-file F [--cipher N] | --type agent --agent fence_x "
     "[--address A] [--port P] [--user U --password-file F] [--option KEY=VALUE]... | --type disk | --type scsi-pr "
     "[--option KEY=VALUE]... ; and [--level N] [--device N] [--timeout S] [--retries N]",
     "store a fence device of HOST in the pool (levels 1..4, up to 4 devices each)", NULL, false},
    {C_FD_CLEAR, "fence-device clear", "HOST [--level N]", "remove HOST's fence devices (all, or its highest level)", NULL, false},
    {C_FD_LIST, "fence-device list", "[--json]", "list fence devices (passwords show as ***)", NULL, true},
    {C_FD_TEST, "fence-device test", "HOST", "ask each fence device of HOST for the power status (never powers anything)", NULL, false},
    {C_DISK_INIT, "disk init", "DEV --hosts N [--sector-size 512|4096] [--force]",
     "write an empty heartbeat disk for this pool on DEV (refuses other data without --force)", NULL, false},
    {C_DISK_DUMP, "disk dump", "DEV [--sector-size 512|4096] [--json]", "decode every block of the heartbeat disk", NULL, true},
    {C_DISK_LIST, "disk list", "[--json]", "this host's heartbeat disk: slots fresh or stale, the lease, multipath, the watchdog", NULL, true},
    {C_VM_IMPORT, "vm import", "[VM] [--xml FILE] [--replace]",
     "store a libvirt domain XML in the pool (its name, memory and vCPUs come from it): FILE, or without --xml VM's "
     "definition in this host's libvirt; --replace: a new XML for a VM already there", NULL, false},
    {C_VM_LIST, "vm list", "[--json]", "list the pool's VMs: where each runs, its state and protection", NULL, true},
    {C_VM_SHOW, "vm show", "VM [--json|--xml]", "show one VM and why it is where it is (--xml: its stored domain XML)",
     NULL, true},
    {C_VM_EXPLAIN, "vm explain", "VM", "why a VM is where it is, or why it is not running", NULL, false},
    {C_VM_PROTECT, "vm protect", "VM [--restart|--best-effort] [--priority N] [--order N] [--after VM]", "protect a VM", NULL, false},
    {C_VM_UNPROTECT, "vm unprotect", "VM", "stop protecting a VM", NULL, false},
    {C_VM_START, "vm start", "VM [--on HOST] [--force]", "start a VM", NULL, false},
    {C_VM_STOP, "vm stop", "VM", "stop a VM", NULL, false},
    {C_VM_MIGRATE, "vm migrate", "VM HOST [--force]", "live-migrate a VM", NULL, false},
    {C_RULE_ADD, "rule add", "anti-affinity|affinity NAME VM... [--strict] | pin VM HOST... [--strict]", "add a placement rule", NULL, false},
    {C_RULE_LIST, "rule list", "[--json]", "list placement rules", NULL, true},
    {C_RULE_DEL, "rule del", "NAME", "delete a placement rule", NULL, false},
    {C_HA_PLAN, "ha plan", "[--json]", "how many host failures the pool tolerates, and the reserve per host", NULL, true},
    {C_EVENTS, "events", "[--follow] [--json] [--last N]", "the audit log of this host", NULL, true},
};
const int vigil_ncmds = (int)(sizeof vigil_cmds / sizeof vigil_cmds[0]);

const struct vigil_cmd *vigil_cmd_match(int argc, char **argv, int *nwords)
{
    const struct vigil_cmd *best = NULL;
    int bestn = 0;
    for (int i = 0; i < vigil_ncmds; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", vigil_cmds[i].words);
        int n = 0;
        bool ok = true;
        for (char *save = NULL, *w = strtok_r(buf, " ", &save); w && ok; w = strtok_r(NULL, " ", &save), n++)
            ok = n < argc && !strcmp(argv[n], w);
        if (ok && n > bestn) {
            best = &vigil_cmds[i];
            bestn = n;
        }
    }
    *nwords = bestn;
    return best;
}
