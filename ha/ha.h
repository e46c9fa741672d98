/* vigil HA core: the pure decision library.
 *
 * Nothing in ha/ does I/O, reads a clock or includes an adapter header.
 * A driver (vigild on real hosts, vigil-sim in virtual time) feeds events in
 * and carries actions out.  Every event carries the driver's notion of "now"
 * in milliseconds; the core only ever compares those numbers.
 *
 * Two kinds of state live here:
 *   struct ha_db    the replicated pool database: hosts, VMs, settings.
 *                   Changed only by ha_db_apply(), in the same order on every
 *                   member.  The core never writes it: it emits HA_ACT_COMMIT.
 *   struct ha_core  one host's runtime view: membership, disk slots, lease,
 *                   fencing progress, VM observations.  One per vigild.
 */
#ifndef VIGIL_HA_H
#define VIGIL_HA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HA_MAX_HOSTS 64 /* host sets are uint64_t bitmaps */
#define HA_NAME_MAX 64
#define HA_REASON_MAX 192
#define HA_NO_HOST (-1)

typedef int64_t ha_ms; /* milliseconds on the driver's clock */
typedef uint64_t ha_hostset;

#define HA_BIT(h) ((ha_hostset)1 << (h))

/* ---------------------------------------------------------------- settings */
struct ha_settings {
    ha_ms token_timeout;     /* corosync token: time to notice a lost member */
    ha_ms disk_interval;     /* heartbeat write/read period */
    ha_ms disk_timeout;      /* a slot unchanged this long is stale; lease expiry */
    ha_ms msgwait;           /* poison pill: time after which an armed watchdog fired */
    ha_ms fence_time;        /* simulator: how long a BMC takes to power off */
    ha_ms fence_timeout;     /* a fence device that has not answered by then failed */
    ha_ms vm_start;          /* simulator: time for a VM to boot */
    ha_ms vm_stop;           /* simulator: time for a VM to shut down */
    ha_ms migrate_time;      /* simulator: live migration duration */
    ha_ms op_timeout;        /* an agent operation unanswered this long failed */
    ha_ms recovery_bound;    /* simulator invariant: restart within this of a failure */
    int evacuate_concurrency;
    int max_restart;
    bool watchdog;           /* hosts arm a hardware watchdog */
    double cpu_overcommit;   /* vCPUs per physical CPU */
    int failures_to_tolerate; /* admission control: 0 = off */
    ha_ms balance_interval;  /* load balancer period: 0 = off */
    bool heartbeat_disk;     /* false: corosync-only mode (docs/pool.md): quorum decides,
                              * the lowest live host id is master, the BMC is the only fence */
};

void ha_settings_default(struct ha_settings *s);
/* Set one setting from its scenario/config spelling.  Returns 0, or -EINVAL
 * with a message in err for an unknown name or a bad value. */
int ha_settings_set(struct ha_settings *s, const char *name, const char *value, char *err,
                    size_t errlen);

/* ---------------------------------------------------------------- database */
enum ha_protect { HA_PROTECT_OFF, HA_PROTECT_RESTART, HA_PROTECT_BEST_EFFORT };

struct ha_db_host {
    char name[HA_NAME_MAX];
    uint64_t mem_mb;
    int cpus;
    bool fence_ipmi;   /* has device fencing (level 1 of the core: a BMC, an agent...): in a
                        * pool database, true iff ha_fence_topo_has_devices(db->fence[host]) */
    bool joined;       /* part of the pool (in the corosync nodelist) */
    bool maintenance;
    bool leaving;      /* pool leave --evacuate in progress */
    bool fenced;       /* fence confirmed; cleared when the host rejoins */
    char addr[64];     /* corosync ring0 / join address ("" in the simulator) */
    uint32_t nodeid;   /* corosync node id (0 in the simulator) */
};

struct ha_db_vm {
    char name[HA_NAME_MAX];
    uint64_t mem_mb;
    int cpus;
    enum ha_protect protect;
    int priority;      /* 1 (first) .. 5 */
    int order;         /* within a priority, lower first */
    bool want_running; /* desired state */
    int after1;        /* 1 + the VM it starts after (only once that one runs); 0: none */
    int host;          /* where the pool last placed it, HA_NO_HOST if nowhere */
    int migrating_to;  /* a live migration there was ordered and its outcome is
                        * not recorded yet: the VM may be on either host */
    /* Its libvirt domain XML (vm import), so that any host can start it:
     * opaque to the core, which only copies, compares and frees it.  Owned;
     * xml_len bytes (no NUL among them, at most HA_VM_XML_MAX) and a NUL
     * after them; NULL (xml_len 0) when none is stored. */
    char *xml;
    uint32_t xml_len;
};
#define HA_VM_XML_MAX (256 * 1024)
/* Whether a domain XML blob may be stored: 1..HA_VM_XML_MAX bytes, no NUL. */
bool ha_vm_xml_ok(const char *xml, size_t len);

/* Placement rules (docs/scheduler.md).  A strict rule is never broken by
 * vigil; a soft one is kept when some placement allows it. */
enum ha_rule_type { HA_RULE_ANTI_AFFINITY, HA_RULE_AFFINITY, HA_RULE_PIN };
#define HA_RULE_MAX_VMS 32
struct ha_rule {
    char name[HA_NAME_MAX];
    enum ha_rule_type type;
    bool strict;
    int nvms;
    int vm[HA_RULE_MAX_VMS];
    ha_hostset hosts; /* PIN: the allowed hosts */
};

/* Fence devices (docs/fencing.md, "Configuring fence devices").  A host's
 * topology is an ordered list of levels; the device layer tries them in
 * order, and a level succeeds when every device of it does.  Strings are
 * NUL-terminated within their fields. */
enum ha_fence_type { HA_FENCE_IPMI, HA_FENCE_AGENT, HA_FENCE_DISK, HA_FENCE_SCSI_PR };
#define HA_FENCE_TYPE_LAST HA_FENCE_SCSI_PR
#define HA_FENCE_LEVELS 4    /* levels per host */
#define HA_FENCE_DEVS 4      /* devices per level, all of which must succeed */
#define HA_FENCE_OPTS 16     /* key=value options per device */
#define HA_FENCE_STR 64      /* address, user, agent, one option: 63 bytes */
#define HA_FENCE_SECRET 128  /* password: 127 bytes */
#define HA_FENCE_CIPHER_DEFAULT 3
#define HA_FENCE_TIMEOUT_DEFAULT 5000
#define HA_FENCE_RETRIES_DEFAULT 2
#define HA_IPMI_PORT 623
struct ha_fence_dev {
    enum ha_fence_type type;
    char addr[HA_FENCE_STR];       /* ipmi: BMC address; agent: its ip= (optional) */
    int port;                      /* 1..65535; 0: none given (ipmi stores 623) */
    char user[HA_FENCE_STR];
    char password[HA_FENCE_SECRET]; /* never logged nor printed */
    int cipher;                    /* ipmi: cipher suite 1..17; others 0 */
    char agent[HA_FENCE_STR];      /* agent: program name, fence_[A-Za-z0-9_-]+ */
    int nopts;
    char opt[HA_FENCE_OPTS][HA_FENCE_STR]; /* "key=value" */
    int timeout_ms;                /* 100..600000 */
    int retries;                   /* 0..10 */
};
struct ha_fence_level {
    int ndevs; /* 1..HA_FENCE_DEVS */
    struct ha_fence_dev dev[HA_FENCE_DEVS];
};
struct ha_fence_topo {
    int nlevels; /* 1..HA_FENCE_LEVELS (a host without levels has no topology) */
    struct ha_fence_level level[HA_FENCE_LEVELS];
};
const char *ha_fence_type_name(enum ha_fence_type t);
int ha_fence_type_parse(const char *s, enum ha_fence_type *out);
/* Whether a device may be stored: every field bounded, terminated and of the
 * right shape for its type.  0, or -EINVAL with the reason in err. */
int ha_fence_dev_check(const struct ha_fence_dev *d, char *err, size_t errlen);
/* Whether a device of this type may go to (level 1.., index 0..) of topology
 * t (NULL: none yet): a `disk` device (the heartbeat disk's poison pill) is
 * alone in the last level.  0, or -EINVAL with the reason. */
int ha_fence_place_check(const struct ha_fence_topo *t, int level, int index, enum ha_fence_type type, char *err,
                         size_t errlen);
/* Whether t has a level that powers the host off (any level but the disk):
 * what the core's level 1 (HA_ACT_FENCE) runs; ha_db_host.fence_ipmi. */
bool ha_fence_topo_has_devices(const struct ha_fence_topo *t);

/* A one-time join token: the pool keeps only the SHA-256 of its secret. */
#define HA_MAX_TOKENS 16
struct ha_token {
    uint8_t hash[32];
    int64_t expires; /* wall-clock seconds (the master's clock when issued) */
    bool used;
};

struct ha_db {
    uint64_t version; /* number of changes applied */
    char pool_name[HA_NAME_MAX]; /* "" until `pool create` */
    char pool_uuid[40];
    int ntokens;
    struct ha_token token[HA_MAX_TOKENS];
    struct ha_settings set;
    int preferred_master; /* HA_NO_HOST: lowest id wins */
    int master;            /* corosync-only mode: the host the pool last made master */
    uint64_t master_epoch; /* +1 at every HA_CHG_MASTER: orders those masters stamp, and the
                            * first key when members compare their copies */
    int nhosts;
    struct ha_db_host host[HA_MAX_HOSTS];
    int nvms;
    struct ha_db_vm *vm; /* nvms entries, owned */
    int nrules;
    struct ha_rule *rule; /* nrules entries, owned */
    struct ha_fence_topo *fence[HA_MAX_HOSTS]; /* per host: NULL (no device) or owned */
};

enum ha_change_type {
    HA_CHG_HOST_JOIN,
    HA_CHG_HOST_LEAVE,      /* leaves the pool (also eject) */
    HA_CHG_HOST_MAINT,      /* arg: on/off */
    HA_CHG_HOST_LEAVING,    /* arg: on/off */
    HA_CHG_HOST_FENCED,     /* arg: on/off */
    HA_CHG_VM_PROTECT,      /* protect, priority, order */
    HA_CHG_VM_WANT,         /* arg: want running */
    HA_CHG_VM_PLACE,        /* host; ends any migration */
    HA_CHG_VM_MIGRATING,    /* host = source, arg = destination */
    HA_CHG_PREFERRED_MASTER, /* host */
    HA_CHG_RULE_ADD,        /* rule */
    HA_CHG_RULE_DEL,        /* arg = rule index */
    HA_CHG_POOL_CREATE,     /* name = pool name, text = uuid */
    HA_CHG_HOST_ADD,        /* name, text = address, arg = nodeid, mem_mb, cpus: joins (again) */
    HA_CHG_VM_ADD,          /* name, mem_mb, cpus, xml (optional) (vm import) */
    HA_CHG_TOKEN_ADD,       /* blob = secret hash, when = expiry; drops tokens expired by then */
    HA_CHG_TOKEN_USE,       /* blob = secret hash */
    HA_CHG_SETTING,         /* name = setting, text = value (ha_settings_set spelling) */
    HA_CHG_MASTER,          /* host becomes master (a takeover or a handoff); epoch + 1 */
    HA_CHG_HOST_FACTS,      /* host's mem_mb and cpus, as it measured them */
    HA_CHG_FENCE_SET,       /* host, fence_level (1..), fence_index (0..): store dev there */
    HA_CHG_FENCE_CLEAR,     /* host, fence_level: that level (the highest), or 0: every level */
    HA_CHG_VM_XML,          /* vm, xml: replace the VM's domain XML (and mem_mb, cpus from it) */
};
#define HA_CHG_LAST HA_CHG_VM_XML

struct ha_change {
    enum ha_change_type type;
    int host;
    int vm;
    int arg;
    enum ha_protect protect;
    int priority;
    int order;
    int after1;            /* VM_PROTECT: 1 + the VM to start after; 0 = none */
    struct ha_rule rule;   /* RULE_ADD */
    char name[HA_NAME_MAX]; /* POOL_CREATE, HOST_ADD, VM_ADD, SETTING */
    char text[128];         /* POOL_CREATE, HOST_ADD, SETTING */
    uint8_t blob[32];       /* TOKEN_ADD, TOKEN_USE */
    int64_t when;           /* TOKEN_ADD */
    uint64_t mem_mb;        /* HOST_ADD, VM_ADD, HOST_FACTS */
    int cpus;               /* HOST_ADD, VM_ADD, HOST_FACTS */
    int fence_level;        /* FENCE_SET: 1..4; FENCE_CLEAR: 0 (all) or 1..4 */
    int fence_index;        /* FENCE_SET: 0..3, the device within the level */
    struct ha_fence_dev dev; /* FENCE_SET */
    /* VM_ADD (optional), VM_XML: the domain XML, xml_len bytes.  Borrowed,
     * not owned: ha_db_apply copies it, and whoever keeps a change beyond
     * the buffer's life must copy it too (it is not NUL-terminated). */
    const char *xml;
    uint32_t xml_len;
};

void ha_db_init(struct ha_db *db);
void ha_db_free(struct ha_db *db);
/* Adds a host or VM definition while the pool is being described (scenario
 * or initial config).  Return the new index, or -EEXIST / -ENOSPC / -ENOMEM
 * (-EINVAL: v->xml is not a storable blob).  A VM's xml is copied. */
int ha_db_add_host(struct ha_db *db, const struct ha_db_host *h);
int ha_db_add_vm(struct ha_db *db, const struct ha_db_vm *v);
/* Deep copy (dst is initialised here; free it with ha_db_free).  -ENOMEM. */
int ha_db_copy(struct ha_db *dst, const struct ha_db *src);
/* Valid pool, host and VM names: [A-Za-z0-9._-], 1..63 characters. */
bool ha_name_valid(const char *s);
int ha_db_find_host(const struct ha_db *db, const char *name);
int ha_db_find_vm(const struct ha_db *db, const char *name);
/* Applies one committed change.  Pure and deterministic: every member that
 * applies the same sequence holds the same database. Returns 0 or -EINVAL. */
int ha_db_apply(struct ha_db *db, const struct ha_change *c);
ha_hostset ha_db_joined(const struct ha_db *db);
/* Whether a change sent by `sender` may be applied, judged by every member
 * at the same point of the agreed-order stream with the corosync view
 * `view` that holds there.  Only the master writes; a takeover (MASTER
 * naming its sender) is allowed when the recorded master is not in the view
 * (or left the pool) and the view holds a majority of the pool; a handoff
 * is the master naming another host. */
/* Whether a join token with this secret hash may be used at wall-clock
 * second `now`: 0, -ENOENT (not issued by this pool, or pruned), -EALREADY
 * (used), -ETIME (expired). */
int ha_token_check(const struct ha_db *db, const uint8_t hash[32], int64_t now);
bool ha_change_allowed(const struct ha_db *db, int sender, ha_hostset view, const struct ha_change *c);
int ha_db_find_rule(const struct ha_db *db, const char *name);
/* Whether a rule may be added: names, sizes, and no contradiction with the
 * rules already there.  Returns 0, or -EINVAL with the reason in err. */
int ha_rule_check(const struct ha_db *db, const struct ha_rule *r, char *err, size_t errlen);
/* Whether "a starts after b" would close a cycle of after= dependencies. */
bool ha_after_cycle(const struct ha_db *db, int a, int b);
/* Parses rule words: `anti-affinity|affinity NAME VM VM... [strict|--strict]`
 * or `pin VM HOST[,HOST...] [HOST...] [strict|--strict]`. */
int ha_rule_parse(const struct ha_db *db, int argc, char **argv, struct ha_rule *out, char *err, size_t errlen);
const char *ha_rule_type_name(enum ha_rule_type t);

/* ---------------------------------------------------------------- admin commands */
enum ha_cmd_type {
    HA_CMD_NONE,
    HA_CMD_HOST_MAINT,     /* host maintenance H on|off */
    HA_CMD_HOST_EVACUATE,  /* host evacuate H */
    HA_CMD_HOST_FENCE,     /* host fence H --yes */
    HA_CMD_VM_START,       /* vm start VM [--on H] */
    HA_CMD_VM_STOP,        /* vm stop VM */
    HA_CMD_VM_MIGRATE,     /* vm migrate VM H */
    HA_CMD_VM_PROTECT,     /* vm protect VM [--restart|--best-effort] [--priority N] [--order N] */
    HA_CMD_VM_UNPROTECT,   /* vm unprotect VM */
    HA_CMD_POOL_JOIN,      /* pool join H (simulator spelling: the joining host) */
    HA_CMD_POOL_LEAVE,     /* pool leave [H] [--evacuate] */
    HA_CMD_POOL_EJECT,     /* pool eject H */
    HA_CMD_DESIGNATE,      /* pool designate-master H */
    HA_CMD_RULE_ADD,       /* rule add anti-affinity|affinity NAME VM... [--strict] | rule add pin VM HOST... [--strict] */
    HA_CMD_RULE_DEL,       /* rule del NAME */
};

struct ha_cmd {
    enum ha_cmd_type type;
    int host;  /* target host, HA_NO_HOST if none */
    int vm;    /* target VM, -1 if none */
    bool on;
    bool force;
    bool evacuate;
    bool yes;
    enum ha_protect protect; /* VM_PROTECT */
    int priority;            /* 0: unchanged */
    int order;               /* INT32_MIN: unchanged */
    bool has_order;
    int after;               /* VM_PROTECT --after: VM index; -1 none; -2 unchanged */
    struct ha_rule rule;     /* RULE_ADD; RULE_DEL: rule.name */
};

/* Parses the words of a `vigil` command line (without "vigil") against the
 * pool's names.  Returns 0, or -EINVAL with a message naming the bad word. */
int ha_cmd_parse(const struct ha_db *db, int argc, char **argv, struct ha_cmd *out, char *err,
                 size_t errlen);
const char *ha_cmd_name(enum ha_cmd_type t);

/* ---------------------------------------------------------------- events */
enum ha_vm_obs {
    HA_OBS_NONE,      /* not on this host */
    HA_OBS_STARTING,
    HA_OBS_RUNNING,
    HA_OBS_STOPPING,
    HA_OBS_MIGRATING, /* running here, moving to obs_to */
    HA_OBS_CRASHED,   /* stopped without being asked to */
};

/* One slot of the heartbeat disk as read by a host. */
#define HA_SLOT_SELF_FENCED 0x1u /* the host stopped its VMs and is rebooting */
#define HA_SLOT_WATCHDOG 0x2u    /* its watchdog is armed */
#define HA_SLOT_JOINING 0x4u     /* it has no corosync membership yet */
struct ha_slot {
    uint64_t seq;        /* bumped on every write; 0: never written */
    uint32_t flags;
    ha_hostset liveset;  /* the writer's corosync membership */
    uint64_t poison;     /* mailbox: fence request sequence from the master */
    uint64_t poison_ack; /* the mailbox value the slot's owner has acted on */
};

enum ha_event_type {
    HA_EV_MEMBERSHIP, /* corosync view changed */
    HA_EV_DISK,       /* one heartbeat tick: read of every slot and the lease */
    HA_EV_FENCE_DONE, /* a fence device answered */
    HA_EV_VM_REPORT,  /* an agent reported a VM's state on a host */
    HA_EV_INVENTORY,  /* u.report.host has now reported every VM it runs */
    HA_EV_VM_FAILED,  /* an operation the core asked for failed */
    HA_EV_VM_LOAD,    /* the agent measured a VM's CPU load */
    HA_EV_CMD,        /* admin command */
    HA_EV_TIMER,      /* the timer the core armed fired */
    HA_EV_DB,         /* the driver applied committed changes to the database */
};

struct ha_event {
    enum ha_event_type type;
    ha_ms now;
    union {
        struct {
            ha_hostset members;
            bool quorate;
        } membership;
        struct {
            bool ok;                         /* the read (and last write) worked */
            int lease_owner;                 /* HA_NO_HOST: free */
            uint64_t lease_counter;
            struct ha_slot slot[HA_MAX_HOSTS];
        } disk;
        struct {
            int host;
            bool ok;
            char why[HA_REASON_MAX];
        } fence;
        struct { /* VM_REPORT; INVENTORY uses host only */
            int host;
            int vm;
            enum ha_vm_obs state;
            int to;      /* MIGRATING: destination */
            uint64_t op; /* id of the last operation the agent applied to this VM (0: none known) */
        } report;
        struct {
            int vm;
            double cpu_pct; /* percent of one physical CPU (100 = one core busy) */
        } load;
        struct {
            int vm;
            uint64_t op; /* the op id of the failed VM_START/STOP/MIGRATE */
            char why[HA_REASON_MAX];
        } failed;
        struct ha_cmd cmd;
    } u;
};

/* ---------------------------------------------------------------- actions */
enum ha_action_type {
    HA_ACT_LOG,        /* a state change or decision worth a timeline line */
    HA_ACT_TIMER,      /* call back with HA_EV_TIMER at `at` (replaces any earlier one) */
    HA_ACT_FENCE,      /* power off `host` through its level-1 fence device */
    HA_ACT_POISON,     /* write a fence request into `host`'s disk mailbox */
    HA_ACT_SELF_FENCE, /* stop local VMs hard and reboot this host */
    HA_ACT_DISK_WRITE, /* write our slot (and the lease block when lease_write) */
    HA_ACT_VM_START,   /* start `vm` on `host` */
    HA_ACT_VM_STOP,    /* stop `vm` on `host` */
    HA_ACT_VM_MIGRATE, /* live-migrate `vm` from `host` to `to` */
    HA_ACT_COMMIT,     /* replicate a database change to every member */
    HA_ACT_CMD_DONE,   /* answer to an admin command: ok or refused with why */
    HA_ACT_INVENTORY_QUERY, /* ask `host` to report every VM it runs, then HA_EV_INVENTORY */
};

struct ha_action {
    enum ha_action_type type;
    int host;
    int vm;
    int to;
    ha_ms at;
    bool ok;
    uint64_t op;                /* VM_START/STOP/MIGRATE: id to quote in HA_EV_VM_FAILED */
    uint64_t epoch;             /* orders: the lease counter when this master took the lease;
                                 * an agent rejects orders older than the newest epoch it saw */
    struct ha_slot slot;        /* DISK_WRITE */
    bool lease_write;           /* DISK_WRITE: also write the lease block */
    bool for_cmd;               /* COMMIT: made by the admin command of this step */
    int lease_owner;
    uint64_t lease_counter;
    struct ha_change change;    /* COMMIT */
    char what[HA_REASON_MAX];   /* LOG: what happened; CMD_DONE: refusal */
    char why[HA_REASON_MAX];    /* LOG: why */
};

struct ha_actions {
    struct ha_action *v;
    size_t n, cap;
};
void ha_actions_clear(struct ha_actions *a);
void ha_actions_free(struct ha_actions *a);

/* ---------------------------------------------------------------- the core */
enum ha_host_state {
    HA_HOST_OFFLINE,     /* never seen alive; owns nothing */
    HA_HOST_ONLINE,
    HA_HOST_MAINTENANCE,
    HA_HOST_SUSPECT,     /* one channel lost */
    HA_HOST_FENCING,
    HA_HOST_FENCED,
    HA_HOST_LEFT,
};

enum ha_vm_state {
    HA_VM_STOPPED,
    HA_VM_STARTING,
    HA_VM_RUNNING,
    HA_VM_STOPPING,
    HA_VM_MIGRATING,
    HA_VM_RECOVERING,
    HA_VM_FAILED,
};

/* The two-channel liveness verdict (DESIGN.md table). */
enum ha_verdict {
    HA_ALIVE,
    HA_STORAGE_ISOLATED, /* member, stale slot */
    HA_NETWORK_ISOLATED, /* gone, fresh slot */
    HA_DEAD,             /* gone, stale slot */
    HA_UNKNOWN,          /* gone, and our own disk is unusable */
};

/* Outcome of the partition contest, from this host's side. */
enum ha_side { HA_SIDE_UNDECIDED, HA_SIDE_WIN, HA_SIDE_LOSE };

struct ha_core;

struct ha_core *ha_core_new(const struct ha_db *db, int self);
void ha_core_free(struct ha_core *c);
/* Feeds one event; appends the resulting actions to out.  Never fails: bad
 * events (unknown host or VM index, ...) are ignored. */
void ha_core_step(struct ha_core *c, const struct ha_event *ev, struct ha_actions *out);

/* Read-only queries for status output, `explain`, and simulator checks. */
bool ha_core_is_master(const struct ha_core *c);
int ha_core_self(const struct ha_core *c);
enum ha_side ha_core_side(const struct ha_core *c);
enum ha_host_state ha_core_host_state(const struct ha_core *c, int host);
enum ha_verdict ha_core_verdict(const struct ha_core *c, int host);
enum ha_vm_state ha_core_vm_state(const struct ha_core *c, int vm, int *host);
/* Writes a sentence saying why the VM is where it is or why it is not
 * running. */
void ha_core_explain(const struct ha_core *c, int vm, char *buf, size_t len);

/* The admission-control plan: how many simultaneous host failures every
 * ha=restart VM survives, and the room each host keeps for that. */
struct ha_plan {
    int tolerates;          /* largest k such that every k-host failure leaves room */
    bool exact;             /* true: proven for every failure set; false: a lower bound */
    int hosts_considered;   /* live, eligible hosts */
    uint64_t reserve_mb[HA_MAX_HOSTS]; /* memory a host must keep free for ftt failures */
    char method[HA_REASON_MAX];
};
/* Computes the plan from the master's view (up to max_k failures; 0 means
 * up to the pool size). */
void ha_core_plan(const struct ha_core *c, int max_k, struct ha_plan *out);

const char *ha_host_state_name(enum ha_host_state s);
const char *ha_vm_state_name(enum ha_vm_state s);
const char *ha_verdict_name(enum ha_verdict v);
const char *ha_protect_name(enum ha_protect p);
const char *ha_obs_name(enum ha_vm_obs o);

/* ---------------------------------------------------------------- parsing helpers */
/* "30", "30s", "1500ms", "2m", "1h" -> ms.  Returns 0 or -EINVAL. */
int ha_parse_duration(const char *s, ha_ms *out);
/* "512M", "4G", "1T", plain number = MiB -> MiB.  Returns 0 or -EINVAL. */
int ha_parse_size_mb(const char *s, uint64_t *out);
/* Non-negative decimal integer within [min,max].  Returns 0 or -EINVAL. */
int ha_parse_int(const char *s, long min, long max, long *out);
/* Formats ms as "12.345s". */
void ha_format_time(ha_ms t, char *buf, size_t len);

static inline int ha_popcount(ha_hostset s) { return __builtin_popcountll(s); }

#endif
