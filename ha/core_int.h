/* Private to ha/: the runtime state of one host's core. */
#ifndef VIGIL_HA_CORE_INT_H
#define VIGIL_HA_CORE_INT_H

#include "ha.h"

struct slot_view {
    struct ha_slot last;
    ha_ms changed_at; /* our time when seq last changed (or first read) */
    bool sf_valid; /* it carries a self-fence record and has not entered
                    * corosync since we first read that record */
    bool seen;
};

enum fence_phase { F_IDLE, F_DEVICE, F_DISK, F_BACKOFF, F_DONE };

struct fence_state {
    enum fence_phase phase;
    int rounds;        /* completed failed rounds */
    ha_ms started;
    ha_ms next_at;     /* deadline of the current phase */
    ha_ms done_at;     /* when we learned it is fenced */
    uint64_t seq_at_pill; /* its slot seq when we wrote the pill: msgwait needs it unchanged */
    bool disk_can_confirm;
    bool member_at_pill;  /* it was in our corosync view when we wrote the pill */
    bool member_at_start; /* it was in our corosync view when the fence began */
    char last_error[HA_REASON_MAX];
    char how[HA_REASON_MAX];
};

enum vm_op { OP_NONE, OP_START, OP_STOP, OP_MIGRATE };

struct vm_rt {
    int obs_host; /* last host that reported it, HA_NO_HOST if none */
    enum ha_vm_obs obs;
    int obs_to;
    enum vm_op op;
    int op_host, op_to;
    ha_ms op_deadline;
    uint64_t op_id;
    ha_ms retry_at;   /* after a failed start/migration, not before this */
    int restarts;     /* in-place restarts since it last ran elsewhere */
    int attempts;     /* best-effort: tries used since the failure */
    bool failed;
    int avoid_host;   /* where the last start/migration failed */
    int on_host;      /* admin vm start --on */
    bool on_force;    /* ... --force: strict rules do not apply to that start */
    uint64_t obs_seq; /* report counter when obs was last set */
    uint64_t obs_op;  /* operation id carried by the report that set obs */
    int arriving;     /* its source reported it gone mid-migration: it may be on this host */
    int unconfirmed;  /* seen on this host before the host left our view; it came back and its
                       * new inventory has not arrived: the VM may or may not still be there */
    int obs_placed;   /* the database's placement of it when obs was last set */
    int unc_placed;   /* ... when the sighting now `unconfirmed` was made */
    uint64_t query_seq; /* report_seq when we asked `arriving`/migration target for its list */
    ha_ms query_at;
    int lost_from;    /* the host whose fence made it need recovery */
    double load;      /* CPU load reported by the agent, % of one physical CPU */
    int eprio;        /* priority for recovery order: its own, or a dependent's if higher */
    char reason[HA_REASON_MAX];
    char placed[HA_REASON_MAX];
    char failed_why[HA_REASON_MAX];
};

enum lease_state { L_NONE, L_CLAIMING, L_HELD };

struct ha_core {
    bool in_cmd; /* master_command() runs: its commits belong to the command */
    const struct ha_db *db;
    int self;
    ha_ms now;
    struct ha_actions *out;

    bool have_membership;
    ha_hostset members;
    bool quorate;

    bool disk_seen;
    ha_ms disk_last_ok;
    ha_ms started;
    struct slot_view slot[HA_MAX_HOSTS];
    uint64_t my_seq;
    uint64_t poison_base;
    bool poison_base_set;

    int lease_owner;
    uint64_t lease_counter;
    ha_ms lease_changed_at;
    enum lease_state lease;
    ha_ms lease_renewed_at;

    enum ha_side side;
    bool self_fenced;
    bool master;
    ha_hostset seen_alive;
    ha_hostset inventory; /* hosts whose full VM list we hold since they joined our view */
    uint64_t report_seq;  /* counts VM reports */
    uint64_t inv_seq[HA_MAX_HOSTS]; /* report_seq value of each host's latest full inventory */
    bool pill_at_start;   /* a fence request was pending in our mailbox at our first read */
    uint64_t master_sent; /* corosync-only: 1 + the epoch a MASTER change of ours was sent for */
    uint64_t epoch_seen;  /* corosync-only: the master epoch at our last step */
    uint64_t office_epoch; /* corosync-only: an epoch that named us and began while this core ran
                            * (0: none); only then do we act as master */
    uint64_t lease_epoch; /* lease counter when we took the lease: stamped on our orders */
    uint64_t op_seq;      /* VM operation ids */
    ha_ms member_since[HA_MAX_HOSTS]; /* when the host last entered our corosync view */
    uint64_t gain_seq[HA_MAX_HOSTS]; /* report_seq when the host (re)entered our view */
    enum ha_verdict verdict[HA_MAX_HOSTS];
    enum ha_host_state hstate[HA_MAX_HOSTS];

    struct fence_state fence[HA_MAX_HOSTS];

    struct vm_rt *vm;
    int nvm;
    ha_ms timer_at;
    ha_ms next_balance;
};

/* Capacity in use per host, and where each VM is or is going (sched.c). */
struct usage {
    uint64_t mem[HA_MAX_HOSTS];
    int cpus[HA_MAX_HOSTS];
    int vms[HA_MAX_HOSTS];
    int *place;          /* per VM: host it is on or going to, HA_NO_HOST */
    int *rstart, *rlist; /* VM -> rule ids */
};

/* A hypothetical change for admission control: VM `vm` (-1: none) moves to
 * `to` (HA_NO_HOST: nowhere) with the given protection; hosts in `out`
 * leave service (maintenance, leave) and their VMs must find room. */
struct plan_mod {
    int vm;
    int to;
    bool protect;
    bool running;
    ha_hostset out;
};

/* core.c */
struct ha_action *emit(struct ha_core *c, enum ha_action_type t);
void logf_(struct ha_core *c, const char *why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void commit(struct ha_core *c, struct ha_change ch);
bool disk_usable(const struct ha_core *c);
bool slot_fresh(const struct ha_core *c, int h);
bool host_alive(const struct ha_core *c, int h);
bool fenced_now(const struct ha_core *c, int h);
const char *hname(const struct ha_core *c, int h);
const char *vname(const struct ha_core *c, int v);

/* fence.c */
void fence_start(struct ha_core *c, int h, const char *why);
void fence_device_done(struct ha_core *c, int h, bool ok, const char *why);
void fence_tick(struct ha_core *c);
void fence_describe(const struct ha_core *c, int h, char *buf, size_t len);
ha_ms fence_next_deadline(const struct ha_core *c);

/* sched.c */
void usage_build(const struct ha_core *c, struct usage *u);
void usage_free(struct usage *u);
void usage_add(const struct ha_core *c, struct usage *u, int v, int h);
bool eligible(const struct ha_core *c, int h, const char **why);
bool fits(const struct ha_core *c, const struct usage *u, int v, int h);
int rules_check(const struct ha_core *c, const struct usage *u, int v, int h, int ignore, char *why, size_t len);
int choose_host(const struct ha_core *c, const struct usage *u, int v, int avoid, int only, int ignore, char *why,
                size_t len);
int plan_tolerance(const struct ha_core *c, const struct plan_mod *mod, int max_k);
void balance_tick(struct ha_core *c, struct usage *u);
ha_ms balance_next(const struct ha_core *c);

/* master.c */
void migrate_vm(struct ha_core *c, struct usage *u, int v, int from, int to, const char *why);
void master_reconcile(struct ha_core *c);
void master_command(struct ha_core *c, const struct ha_cmd *cmd);
void vm_report(struct ha_core *c, int host, int vm, enum ha_vm_obs st, int to, uint64_t op);
void vm_failed(struct ha_core *c, int vm, uint64_t op, const char *why);
void vms_host_fenced(struct ha_core *c, int h);
void vms_unconfirm(struct ha_core *c, int h);
ha_ms ops_next_deadline(const struct ha_core *c);

#endif
