/* fencing/fence.h: fence devices and fence topologies (issue [fencing]).
 *
 * Every call here is blocking and bounded in time: vigild runs them in a
 * worker thread or a child process.  A call answers 0 or -errno, and writes
 * a one-line reason into `why` (never a password: credentials show as ***).
 * See docs/fencing.md ("Fence devices") for the operator's view.
 */
#ifndef VIGIL_FENCE_H
#define VIGIL_FENCE_H

#include <stddef.h>
#include <stdint.h>

enum fence_action { FENCE_STATUS, FENCE_ON, FENCE_OFF, FENCE_CYCLE };
enum fence_power { FENCE_POWER_UNKNOWN, FENCE_POWER_ON, FENCE_POWER_OFF };

#define FENCE_MAX_OPTIONS 16
#define FENCE_MAX_DEVICES 4 /* per level */
#define FENCE_MAX_LEVELS 4

/* One device: a plain struct the pool database can store as it is. */
struct fence_device {
    char type[16];       /* ipmi | agent | disk | scsi-pr */
    char address[64];    /* ipmi, agent: the BMC/PDU address; scsi-pr: the LUN's device path */
    int port;            /* 0: the type's default (623 for ipmi); agent: passed as ipport= when set */
    char user[64];
    char password[128];  /* never logged, never shown */
    int cipher;          /* ipmi and ipmilan-family agents: RMCP+ cipher suite (0: default 3) */
    char agent[64];      /* agent: the fence-agents program, e.g. fence_ipmilan */
    char options[FENCE_MAX_OPTIONS][128]; /* agent: extra key=value lines; scsi-pr: key=, victim_key= */
    int noptions;
    int timeout_ms;      /* one attempt (0: 5000) */
    int retries;         /* further attempts after a failure, with backoff */
};

/* The levels of one host, tried in order; a level succeeds when all its
 * devices power the host off. */
struct fence_level {
    int ndevices;
    struct fence_device devices[FENCE_MAX_DEVICES];
};
struct fence_topology {
    char host[64];       /* requests for the same host collapse into one */
    int nlevels;
    struct fence_level levels[FENCE_MAX_LEVELS];
};

/* One action on one device, bounded by timeout_ms (<= 0: d->timeout_ms).
 * FENCE_OFF returns only when the device reports the host off (verified), or
 * fails; an already-off host succeeds.  FENCE_ON waits until it reports on.
 * *state_out (may be NULL) gets the power state last seen. */
int fence_device_run(const struct fence_device *d, enum fence_action a, int timeout_ms,
                     enum fence_power *state_out, char *why, size_t whylen);

/* Powers t->host off: level after level until one has every device verified
 * off; each device gets d->retries further attempts after a failure, waiting
 * 250 ms, 500 ms, 1 s, ... (at most 2 s) between them.  A second call for the
 * same host while one runs (any thread) waits for it and returns its result.
 * 0: off and verified (why names the level that did it); else the last
 * error, with every level's reason in why. */
int fence_topology_off(const struct fence_topology *t, char *why, size_t whylen);

/* Progress lines (one per attempt, no password), e.g. for vigild's log.
 * NULL: silent (the default). */
void fence_set_log(void (*log)(void *arg, const char *line), void *arg);

/* ---- parts exposed for tests and the CLI ------------------------------ */

const char *fence_action_name(enum fence_action a);
const char *fence_power_name(enum fence_power p);
/* "type=ipmi,address=10.99.1.2,user=admin,password=x,cipher=3,timeout_ms=2000,
 * retries=1,agent=fence_ipmilan,option=k=v,port=623" into *d (zeroed first);
 * password_file=PATH reads the password from the file's first line.
 * 0 or -EINVAL with the reason in err. */
int fence_device_parse(const char *spec, struct fence_device *d, char *err, size_t errlen);
/* 0 if d is usable (type known, fields within limits, no newline anywhere,
 * agent a bare fence_* name); else -EINVAL with the reason. */
int fence_device_check(const struct fence_device *d, char *err, size_t errlen);
/* "ipmi 10.99.1.2:623 user admin password ***" style, for logs */
void fence_device_describe(const struct fence_device *d, char *buf, size_t len);
/* Replaces every occurrence of secret (when non-empty) in s by ***, in place
 * (s is NUL-terminated with room for len bytes). */
void fence_scrub(char *s, size_t len, const char *secret);

/* agent: the key=value lines written to the agent's stdin; length or -ENOSPC */
int fence_agent_stdin(const struct fence_device *d, enum fence_action a, char *buf, size_t len);
/* agent: exit status to result, per the fence-agents convention (status:
 * 0 on, 2 off, else error; other actions: 0 done, else error) */
int fence_agent_map_exit(enum fence_action a, int exit_code, enum fence_power *state_out);
/* agent: the most telling line of the agent's output (an ERROR/Failed line,
 * else the last non-empty line that is not a Python warning) into out */
void fence_agent_reason(const char *output, char *out, size_t len);

/* scsi-pr: the 8-byte reservation key of a host id (never 0) */
uint64_t fence_scsi_key(uint32_t host_id);
/* scsi-pr: what to do with the registered keys of a LUN: 1 = preempt the
 * victim's key, 0 = the victim is not registered (already fenced),
 * -EPERM = we are not registered ourselves (cannot preempt) */
int fence_scsi_plan(const uint64_t *keys, int nkeys, uint64_t ours, uint64_t victim);
/* scsi-pr: the keys of a READ KEYS answer (additional_length bytes of
 * big-endian 8-byte keys in list, at most listlen); count, or -EINVAL when
 * the length is not a multiple of 8 or runs past the list */
int fence_scsi_decode_keys(const uint8_t *list, size_t listlen, uint32_t additional_length, uint64_t *keys,
                           int maxkeys);
/* scsi-pr: parse "0x..." / decimal key text; 0 or -EINVAL */
int fence_scsi_parse_key(const char *s, uint64_t *key);

/* for tests: replaces fence_device_run inside fence_topology_off (NULL: the real one) */
extern int (*fence_runner)(const struct fence_device *d, enum fence_action a, int timeout_ms,
                           enum fence_power *state_out, char *why, size_t whylen);

#endif
