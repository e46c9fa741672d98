/* The `vigil` command table, shared by the CLI (help, local usage checks)
 * and vigild (which parses and runs the commands). */
#ifndef VIGIL_CMDTABLE_H
#define VIGIL_CMDTABLE_H

#include <stdbool.h>

enum vigil_cmd_id {
    C_STATUS, C_POOL_CREATE, C_POOL_TOKEN, C_POOL_JOIN, C_POOL_LEAVE, C_POOL_EJECT, C_POOL_DESIGNATE, C_POOL_SET,
    C_POOL_SHOW, C_HOST_LIST, C_HOST_SHOW, C_HOST_MAINT, C_HOST_EVACUATE, C_HOST_FENCE, C_FD_SET, C_FD_CLEAR, C_FD_LIST,
    C_FD_TEST, C_DISK_INIT, C_DISK_DUMP, C_DISK_LIST, C_VM_IMPORT, C_VM_LIST, C_VM_SHOW, C_VM_EXPLAIN,
    C_VM_PROTECT, C_VM_UNPROTECT, C_VM_START, C_VM_STOP, C_VM_MIGRATE, C_RULE_ADD, C_RULE_LIST, C_RULE_DEL,
    C_HA_PLAN, C_EVENTS,
};

struct vigil_cmd {
    enum vigil_cmd_id id;
    const char *words; /* command words */
    const char *args;  /* argument synopsis */
    const char *what;  /* one line of help */
    const char *issue; /* NULL: available now; else the issue that brings it */
    bool json;         /* takes --json */
};

extern const struct vigil_cmd vigil_cmds[];
extern const int vigil_ncmds;

/* The command argv starts with (the longest match), and how many words it
 * took; NULL if none. */
const struct vigil_cmd *vigil_cmd_match(int argc, char **argv, int *nwords);

#endif
