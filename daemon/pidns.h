/* Is this process in the machine's initial PID namespace?  Self-fencing
 * reboots with reboot(2); in a PID namespace other than the initial one
 * that only ends the namespace (the test rig's hosts), in the initial one
 * it reboots the machine.  vigild reboots the machine only when vigil.conf
 * says self_fence_reboot = yes (docs/heartbeat-disk.md "Self-fencing").
 *
 * The rule, on the /proc mounted at `proc`:
 *   - /proc/self/status unreadable: in doubt, initial;
 *   - its NSpid line lists more than one PID: a nested namespace (this is
 *     seen when /proc is the machine's);
 *   - PID 2 is kthreadd with PPid 0: initial (kthreadd exists only in the
 *     initial namespace, and only a namespace's PID 1 has PPid 0 in it);
 *   - otherwise (no PID 2, or another process): a nested namespace whose
 *     own /proc is mounted (the rig: unshare --pid --mount-proc).
 * Returns true (initial, or in doubt) or false, with the reason in why. */
#ifndef VIGIL_PIDNS_H
#define VIGIL_PIDNS_H

#include <stdbool.h>
#include <stddef.h>

bool pidns_initial(const char *proc, char *why, size_t len);

#endif
