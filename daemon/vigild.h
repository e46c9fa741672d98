/* vigild's shared state and the functions its parts call on each other.
 *
 *   vigild.c    main: configuration, logging, the libqb loop, the IPC service
 *               and the requests waiting for an answer
 *   pool.c      the pool on this host: its durable database, corosync (CPG,
 *               votequorum, corosync.conf), the replica, the decision core,
 *               pool create / join / leave and the join server
 *   commands.c  what each `vigil` command does, and the answers' text/JSON
 */
#ifndef VIGIL_VIGILD_H
#define VIGIL_VIGILD_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <qb/qbipcs.h>
#include <qb/qbloop.h>

#include "../ha/ha.h"
#include "../membership/membership.h"
#include "config.h"

struct pooldb_store;
struct replica;
struct events_log;
struct join_server;

/* A `vigil` command waiting for its answer.  Either a local CLI client
 * (conn) or a command another member forwarded to us, the master (origin). */
struct request {
    struct request *next;
    uint64_t id;                /* ours; also the tag of the commits it waits for */
    qb_ipcs_connection_t *conn; /* local client (referenced), or NULL */
    uint32_t origin;            /* forwarded: the node id that asked */
    uint64_t origin_id;         /* forwarded: its request id */
    uid_t uid;
    char from[HA_NAME_MAX];     /* host name the command came from */
    uint64_t deadline;          /* ms (monotonic): answer "not confirmed" then */
    int commits;                /* proposals not done yet */
    int inflight_max;           /* most proposals in flight at once */
    int retries;                /* proposals made again after a sync round dropped them */
    struct ha_change last;      /* the latest proposal (its domain XML is last_xml) */
    char *last_xml;             /* owned copy of last.xml */
    int code;                   /* exit code so far: 0 ok, 1 refused */
    bool answered_core;         /* the core gave its CMD_DONE */
    enum { RQ_COMMIT, RQ_FORWARD, RQ_CREATE, RQ_JOIN, RQ_LEAVE, RQ_TOKEN, RQ_JOINSRV, RQ_PARKED } kind;
    char text[1024];            /* answer so far */
    char token[160];            /* RQ_TOKEN: the token to print once committed */
    /* RQ_PARKED: a command for the master while the pool settles (a sync
     * round after a membership change): run again once synced */
    char *argbuf;
    int argc;
    uint32_t flags;
    bool forwarded;
};

struct daemon {
    qb_loop_t *loop;
    struct vigil_config cfg;
    char config_path[4096];
    qb_ipcs_service_t *ipcs;
    gid_t vigil_gid;
    bool have_vigil_gid;
    struct request *requests;
    uint64_t next_request;
    qb_loop_timer_handle request_timer;
    struct events_log *events;

    /* the pool (in_pool false: this host is in no pool) */
    bool in_pool;
    char pool_dir[4200]; /* state_dir/pool */
    struct pooldb_store *store;
    struct ha_db db;
    struct replica *rep;
    struct membership *mem;
    struct ha_core *core;
    struct ha_actions acts;
    int self;              /* this host's index in db */
    uint32_t nodeid;       /* this host's corosync node id */
    bool connected, quorate, synced;
    bool step_db_pending;  /* a HA_EV_DB step is queued */
    bool leaving_now;      /* our HOST_LEAVE was applied: tear down */
    uint64_t cmd_request;  /* request id the current core step answers, or 0 */
    qb_loop_timer_handle core_timer;
    qb_loop_timer_handle corosync_timer; /* starts corosync again when it is gone */

    /* the join server (every member runs one; only the master accepts) */
    struct join_server *js;
    int js_pipe[2];        /* thread -> loop: a join request arrived */
    bool js_running;
};

extern struct daemon D;

/* vigild.c */
uint64_t now_ms(void);
void json_fputs(FILE *f, const char *s); /* s as a JSON string */
int64_t wall_ms(void);
/* an event in the audit log and in the daemon's log */
void audit(int level, const char *actor, const char *why, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
struct request *request_new(int kind);
struct request *request_find(uint64_t id);
/* answers the request (exit code and text) and frees it */
void request_finish(struct request *rq, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void request_finish_text(struct request *rq, int code, const char *text); /* any length */
/* runs a shell command from the configuration, bounded in time; 0 or -errno
 * with the reason in err */
int run_command(const char *what, const char *cmd, int timeout_s, char *err, size_t errlen);

/* pool.c */
int pool_load(char *err, size_t errlen);      /* at start: open the pool if state_dir holds one */
void pool_shutdown(void);
int pool_create(struct request *rq, const char *name, long token_ms, char *err, size_t errlen);
int pool_join(struct request *rq, const char *addr, const char *token, char *err, size_t errlen);
/* proposes a database change for a request (rq may be NULL) */
int pool_propose(const struct ha_change *c, struct request *rq);
/* feeds an admin command to the core (master only); the answer comes later */
void pool_core_command(struct request *rq, const struct ha_cmd *cmd);
int pool_send(const void *msg, size_t len);
bool pool_is_master(void);
/* where the master is: its host index, or HA_NO_HOST with why */
int pool_master(char *why, size_t len);
/* this host's view (host indices of the database) */
ha_hostset pool_view(void);
uint64_t pool_digest(void);
void pool_request_gone(struct request *rq);   /* a request ended: forget it in pending joins */
void pool_check_waiters(void);                /* create/join/leave requests waiting for a state */
/* a leave the master accepted: the answer waits until this host is out */
void pool_leave_accepted(struct request *rq, const char *text);

/* fencer.c: fencing through the devices in the pool database */
int fencer_init(qb_loop_t *loop);
/* starts fencing host (master); the outcome comes as pool_fence_done */
int fencer_fence(int host, char *why, size_t whylen);
/* status of every device of host, as the answer to rq */
void fencer_test(struct request *rq, int host);
void pool_fence_done(int host, bool ok, const char *why);
/* pool.c: a heartbeat tick for the core (disk mode) */
void pool_disk_event(const struct ha_event *ev);

/* vms.c: this host's VM agent, driven by the master's orders */
int vms_start(char *err, size_t errlen); /* when this host is in a pool */
void vms_stop(void);
/* an order of the core for some host's agent (VM_START/STOP/MIGRATE, INVENTORY_QUERY) */
void vms_action(const struct ha_action *a);
/* DORDER, DREPORT, DFAILED from the pool's CPG group */
void vms_deliver(uint32_t nodeid, const void *msg, size_t len, int type);
void vms_membership(void);   /* the view changed: tell every core what runs here */
int vms_destroy_all_wait(int timeout_ms, char *why, size_t whylen);
void vms_mode_changed(void); /* the pool switched to or from its heartbeat disk */
/* vigil vm import VM without --xml: asks this host's agent for the domain's
 * definition; command_import_xml(rq, ...) gets the answer (within the
 * agent job's 10 s).  0, or -errno with the reason. */
int vms_dumpxml(uint64_t rq, const char *name, char *err, size_t errlen);
/* pool.c: feeds an event to the core (and carries out its actions) */
void pool_event(const struct ha_event *ev);

/* disk.c: vigil disk init (id_init) and dump, on this host */
void disk_command(struct request *rq, int id_init, int argc, char **argv, bool json);
struct hbdisk_pool;
/* the heartbeat disk's HMAC key (from corosync's authkey) and the pool's
 * UUID; 0 or -errno with the reason */
int disk_pool_key(struct hbdisk_pool *p, char *err, size_t errlen);

/* hb.c: the heartbeat disk driver (a thread; the loop gets its ticks) */
int hb_start(char *err, size_t errlen); /* in a pool, when vigil.conf names a LUN */
void hb_stop(void);
void hb_db_changed(void);               /* hosts, node ids or timings may have changed */
bool hb_running(void);
void hb_write(const struct ha_action *a); /* HA_ACT_DISK_WRITE or HA_ACT_POISON */
/* waits until the writes handed over are done: 0, -ETIMEDOUT or -EIO */
int hb_flush(unsigned timeout_ms, char *err, size_t errlen);
unsigned hb_io_ms(void);
int hb_lease_owner(void);               /* as last read, HA_NO_HOST if none or not fresh */
bool hb_fresh(void);                    /* the last tick worked, within disk_timeout */
bool hb_disk_lost(void);                /* disk mode, and no tick worked for disk_timeout: storage loss */
/* may the pool switch to disk mode: this host reads the disk and every
 * member's slot is fresh there; 0, or -errno with the reason */
int hb_ready_check(char *why, size_t len);
void hb_status_line(FILE *f, bool json);         /* the disk line of vigil status */
void hb_list(FILE *f, bool json);       /* vigil disk list */
void hb_self_fence(const char *why) __attribute__((noreturn));

/* watchdog.c: the hardware watchdog, fed while this host may run */
void watchdog_start(void);
void watchdog_stop(bool clean);         /* clean: magic close (disarm) */
bool watchdog_armed(void);
const char *watchdog_state(void);

/* commands.c */
/* Runs one command line from the CLI (local) or forwarded from a member. */
void command_run(struct request *rq, int argc, char **argv, uint32_t flags, bool forwarded);
void command_deliver(uint32_t nodeid, const void *msg, size_t len);
/* parked commands: try again (the pool may have settled) */
void command_retry_parked(void);
/* the agent's answer to vms_dumpxml: the import goes on as with --xml */
void command_import_xml(uint64_t rq, int rc, const char *xml, const char *why);
/* tells the master this host's size when the database has another one */
void command_send_facts(void);
void host_facts(uint64_t *mem_mb, int *cpus);
/* the master's answer to a forwarded command, sent to the group */
void command_send_reply(uint32_t origin, uint64_t origin_id, int code, const char *text);

#define VIGIL_FLAG_JSON 0x1u
#define VIGIL_FLAG_YES 0x2u

#endif
