/* The VM agent: everything vigil does to a VM goes through libvirt, here.
 *
 * One struct vagent = one connection to this host's hypervisor (default
 * qemu:///system) with libvirt keepalive and automatic reconnect.  libvirt
 * calls block, and a hung libvirtd must never freeze vigild's main loop, so
 * every operation is a *job*: vagent_submit() queues it and returns at once;
 * worker threads run it; its result, and every lifecycle event libvirt
 * reports, come back through a completion queue that the caller drains from
 * its own loop when vagent_fd() becomes readable.  A job that has not ended
 * by its deadline completes with -ETIMEDOUT at the deadline (a worker still
 * stuck inside libvirt finishes later and its late result is dropped).
 *
 * The caller (vigild) maps results and events to ha/ events; this library
 * knows nothing of the pool.  Thread-safe: submit/drain from one thread (the
 * main loop), the library's own threads do the rest.
 */
#ifndef VIGIL_VAGENT_H
#define VIGIL_VAGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VAGENT_NAME_MAX 64
#define VAGENT_WHY_MAX 256
#define VAGENT_URI_MAX 256
#define VAGENT_XML_MAX (256 * 1024) /* a domain XML larger than this is refused */
#define VAGENT_MAX_PEERS 64

struct vagent;

struct vagent_opts {
    const char *uri;          /* NULL: "qemu:///system" */
    int keepalive_interval_s; /* 0: 5 */
    int keepalive_count;      /* 0: 3 */
    int workers;              /* threads running jobs; 0: 4 */
    int connect_timeout_ms;   /* 0: 5000; also bounds each reconnect attempt */
};

enum vagent_state {
    VAGENT_ABSENT,   /* no such domain here (neither running nor defined) */
    VAGENT_RUNNING,  /* active, including paused / being migrated */
    VAGENT_SHUTOFF,  /* defined, not running */
    VAGENT_CRASHED,
};

struct vagent_vm {
    char name[VAGENT_NAME_MAX];
    char uuid[37];
    enum vagent_state state;
    bool persistent;
    uint64_t mem_kib;     /* current memory */
    int vcpus;
    uint64_t cpu_time_ns; /* cumulative: the caller derives load from two samples */
};

enum vagent_op {
    VAGENT_OP_START,   /* define from xml if not defined (or if xml differs), then start */
    VAGENT_OP_STOP,    /* graceful shutdown, destroy after stop_timeout_ms */
    VAGENT_OP_DESTROY, /* hard stop at once (self-fence, double-start repair) */
    VAGENT_OP_MIGRATE, /* live, peer-to-peer, persistent on the destination, undefine source */
    VAGENT_OP_LIST,    /* every domain here (running or defined), with its use */
    VAGENT_OP_QUERY,   /* one domain by name */
    VAGENT_OP_DUMPXML, /* a defined domain's XML, inactive form (what `vigil vm import VM` stores) */
};

struct vagent_job {
    enum vagent_op op;
    uint64_t tag;               /* the caller's id, echoed in the result */
    char name[VAGENT_NAME_MAX]; /* the domain (all but LIST) */
    const char *xml;            /* START: the domain XML (copied by submit); NULL: must be defined */
    int timeout_ms;             /* the whole job; 0: 30000 (START/STOP), 120000 (MIGRATE), 10000 (others) */
    int stop_timeout_ms;        /* STOP: graceful shutdown before destroy; 0: 20000 */
    /* START: before starting, each of these hypervisors is asked whether the
     * domain runs there (defence in depth against a double start): running on
     * one -> the job fails with -EEXIST and says where; unreachable -> noted
     * in the result's why, not an error */
    int npeers;
    char peer_uri[VAGENT_MAX_PEERS][VAGENT_URI_MAX]; /* copied by submit */
    /* MIGRATE */
    char dest_uri[VAGENT_URI_MAX]; /* e.g. qemu+tcp://10.99.0.2/system */
    unsigned long bandwidth_mib;   /* MiB/s; 0: unlimited */
    uint64_t max_downtime_ms;      /* 0: libvirt's default */
};

struct vagent_migstats {
    uint64_t total_ms;     /* job time as libvirt reports it at the end */
    uint64_t downtime_ms;  /* guest paused time (VIR_DOMAIN_JOB_DOWNTIME) */
    uint64_t data_total;   /* bytes */
    uint64_t data_processed;
};

enum vagent_kind { VAGENT_RESULT, VAGENT_EVENT, VAGENT_CONN };

/* lifecycle events, from virConnectDomainEventRegisterAny(LIFECYCLE) */
enum vagent_ev {
    VAGENT_EV_STARTED,
    VAGENT_EV_STOPPED,     /* shut down or destroyed (detail tells which) */
    VAGENT_EV_CRASHED,     /* stopped without being asked: crashed, killed, failed */
    VAGENT_EV_MIGRATED_IN, /* now running here after an incoming migration (resumed, migrated);
                            * also a source resumed after a failed one */
    VAGENT_EV_MIGRATED_OUT,
    VAGENT_EV_UNDEFINED,
    VAGENT_EV_OTHER,       /* suspended/resumed/defined, an incoming migration begun...: informative */
};

struct vagent_result {
    enum vagent_kind kind;
    /* VAGENT_RESULT */
    enum vagent_op op;
    uint64_t tag;
    int rc;                      /* 0 or -errno (-ETIMEDOUT, -ENOENT unknown domain,
                                  * -EEXIST running elsewhere, -EINVAL bad XML, -ECONNREFUSED...) */
    char why[VAGENT_WHY_MAX];    /* failure reason, or a note on success */
    char name[VAGENT_NAME_MAX];
    struct vagent_vm vm;         /* QUERY; START/STOP: the state at the end */
    struct vagent_vm *vms;       /* LIST: nvms entries, freed by vagent_result_free */
    int nvms;
    struct vagent_migstats mig;  /* MIGRATE */
    char *xml;                   /* DUMPXML: the domain's persistent definition (VIR_DOMAIN_XML_INACTIVE:
                                  * no runtime-only elements), at most VAGENT_XML_MAX bytes, freed by
                                  * vagent_result_free; -ENOENT unknown, -EINVAL transient (not defined),
                                  * -EFBIG larger than VAGENT_XML_MAX */
    /* VAGENT_EVENT: name, vm.name, vm.uuid, and vm.state as the event implies
     * it (running, shutoff, crashed; absent where it implies none) */
    enum vagent_ev ev;
    int detail;                  /* libvirt's event detail, for logs */
    /* VAGENT_CONN: connected went up (true) or down (false); why says why */
    bool connected;
};

/* Opens the agent and starts its threads; the first connection is attempted
 * at once, failures are retried in the background (a VAGENT_CONN result
 * reports every change).  NULL with err on a bad option or no memory.
 * The first call sets up libvirt for the process: its default event loop in
 * a thread of the library, its error printing off, and SIGPIPE ignored if
 * it had the default action (a libvirtd dying under a write must not kill
 * the caller). */
struct vagent *vagent_new(const struct vagent_opts *o, char *err, size_t errlen);
void vagent_free(struct vagent *a); /* never blocks on a hung libvirtd for long */

/* readable when results are waiting */
int vagent_fd(const struct vagent *a);
/* Queues a job; 0, or -EINVAL (bad job or bad START XML: reason in err),
 * -EBUSY (1024 jobs already waiting or running), -ENOMEM.  Jobs on one
 * domain run one at a time, in submit order. */
int vagent_submit(struct vagent *a, const struct vagent_job *j, char *err, size_t errlen);
/* Takes the next result; 1 = one taken, 0 = none waiting. */
int vagent_next(struct vagent *a, struct vagent_result *r);
void vagent_result_free(struct vagent_result *r);
bool vagent_connected(const struct vagent *a);

/* Checks a domain XML the pool would store: parses, has <name>, a <uuid>
 * is optional, memory and vcpu readable; fills name/mem/vcpus.  Pure (no
 * connection).  0, or -EINVAL with the reason. */
int vagent_xml_check(const char *xml, size_t len, char name[VAGENT_NAME_MAX], uint64_t *mem_kib, int *vcpus,
                     char *err, size_t errlen);

const char *vagent_state_name(enum vagent_state s);
const char *vagent_ev_name(enum vagent_ev e);
const char *vagent_op_name(enum vagent_op o);

#endif
