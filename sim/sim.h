/* vigil-sim: drives one ha/ core per simulated host in virtual time against
 * a simulated world (power, network groups, the heartbeat LUN, BMCs,
 * hypervisors), and checks expectations and safety invariants. */
#ifndef VIGIL_SIM_H
#define VIGIL_SIM_H

#include <stdbool.h>
#include <stdio.h>

#include "../ha/ha.h"

enum scn_kind {
    SCN_START, SCN_CRASH, SCN_ISOLATE, SCN_STORAGE_LOSS, SCN_PARTITION, SCN_HEAL,
    SCN_FENCE_FAIL, SCN_FENCE_OK, SCN_POWER_ON, SCN_VM_CRASH, SCN_CMD, SCN_LOAD,
};

struct scn_event {
    ha_ms at;
    enum scn_kind kind;
    int host;              /* HA_NO_HOST: all (start) */
    int vm;
    int ngroups;
    ha_hostset group[HA_MAX_HOSTS]; /* partition */
    struct ha_cmd cmd;
    int cmd_host;          /* host the command is typed on, HA_NO_HOST: the master */
    double load;           /* SCN_LOAD: % of one physical CPU */
    char text[256];        /* the line as written, for the timeline */
    int line;
};

enum exp_when { EXP_AT, EXP_BY, EXP_NEVER };
enum exp_kind { EXP_VM_ON, EXP_VM_STOPPED, EXP_VM_STATE, EXP_HOST, EXP_MASTER, EXP_REFUSED, EXP_EXPLAIN, EXP_PLAN };

struct scn_expect {
    enum exp_when when;
    ha_ms at;
    enum exp_kind kind;
    int vm;
    int host;
    ha_hostset hosts; /* EXP_VM_ON: allowed hosts; 0 = any */
    int state;        /* EXP_HOST: ha_host_state; EXP_VM_STATE: ha_vm_state */
    char text[HA_REASON_MAX];
    char src[256];
    int line;
};

struct scn_vm_init {
    int host;
    bool running;
};

struct scenario {
    char file[256];
    struct ha_db db; /* initial database: settings, hosts, VMs */
    struct scn_vm_init *vminit;
    struct scn_event *ev;
    int nev, capev;
    struct scn_expect *ex;
    int nex, capex;
    ha_ms end;
};

/* Parses a scenario file.  Returns 0, or -EINVAL with "FILE:LINE: message"
 * in err (nothing is run on a bad file). */
int scenario_load(const char *path, struct scenario *s, char *err, size_t errlen);
int scenario_parse(const char *name, const char *text, struct scenario *s, char *err, size_t errlen);
void scenario_free(struct scenario *s);
int scenario_add_event(struct scenario *s, const struct scn_event *e);

struct sim_opts {
    bool json;
    bool quiet;        /* no timeline, only the verdict */
    bool plan;         /* print the master's failure-tolerance plan at the end */
    unsigned seed;
    int random_faults;
};

struct sim_result {
    int violations;    /* invariants broken */
    int failed_expect; /* expectations not met */
    ha_ms virtual_ms;  /* simulated time */
    long steps;        /* core steps */
};

/* Runs one scenario.  Returns 0 when every expectation and invariant held,
 * 1 otherwise.  Adds random faults first when opts->random_faults > 0. */
int sim_run(struct scenario *s, const struct sim_opts *opts, FILE *out, struct sim_result *res);

#endif
