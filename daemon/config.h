/* vigild's configuration file, /etc/vigil/vigil.conf (vigil.conf(5)).
 *
 * One `key = value` per line.  The parser fills a fresh struct and hands it
 * over only when the whole file is valid, so vigild never starts half
 * configured: on any error `out` is left exactly as it was.
 *
 * Every string field is a fixed array, so a struct can be copied by value
 * and compared with vigil_config_equal(); an empty string means "not set".
 */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "../ha/ha.h"

#define VIGIL_CONFIG_PATH "/etc/vigil/vigil.conf"
#define VIGIL_CONFIG_LINE_MAX 4096  /* bytes per line, without the line ending */
#define VIGIL_CONFIG_VALUE_MAX 1024 /* a value is at most 1023 bytes (plus NUL) */
#define VIGIL_CONFIG_FILE_MAX (1 << 20)
/* vigil_config_dump() never needs more: 21 keys, each value at most 1023
 * bytes, at worst doubled by escaping. */
#define VIGIL_CONFIG_DUMP_MAX 40960

struct vigil_config {
    char name[HA_NAME_MAX];                        /* this host in the pool; load() defaults it to the hostname */
    char address[64];                              /* IPv4/IPv6 literal for ring0 and the join port; "" = not set */
    char state_dir[VIGIL_CONFIG_VALUE_MAX];        /* pool database, events log, TLS key and certificate */
    char corosync_conf[VIGIL_CONFIG_VALUE_MAX];
    char corosync_authkey[VIGIL_CONFIG_VALUE_MAX];
    char corosync_start[VIGIL_CONFIG_VALUE_MAX];   /* run with /bin/sh -c */
    char corosync_reload[VIGIL_CONFIG_VALUE_MAX];  /* run with /bin/sh -c */
    char corosync_stop[VIGIL_CONFIG_VALUE_MAX];    /* run with /bin/sh -c when this host leaves */
    int join_port;                                 /* 1..65535 */
    ha_ms join_token_ttl;                          /* milliseconds, 1m..30d */
    char log_file[VIGIL_CONFIG_VALUE_MAX];         /* "" = no log file */
    int log_level;                                 /* a syslog priority: LOG_ERR..LOG_DEBUG */
    bool syslog;
    char heartbeat_disk[VIGIL_CONFIG_VALUE_MAX];   /* the LUN device; "" = none */
    int heartbeat_disk_sector_size;                /* 512 or 4096: a regular file's (a device has its own) */
    bool self_fence_reboot;                        /* self-fencing may reboot(2) in the initial PID namespace */
    char watchdog_device[VIGIL_CONFIG_VALUE_MAX];  /* "" = no watchdog */
    int watchdog_timeout;                          /* seconds, 1..3600 */
    char ipc_group[33];                            /* group allowed on the CLI socket besides root */
    char libvirt_uri[256];                         /* this host's hypervisor, for the VM agent */
    char libvirt_peer_uri[256];                    /* another host's hypervisor: %s = its address */
    bool from_defaults;                            /* no file was read: everything is a default */
};

/* Fills every default.  `name` stays empty (only load() asks the system for
 * its hostname, so parse() stays pure); from_defaults is true. */
void vigil_config_default(struct vigil_config *c);

/* Parses `len` bytes of `text` (need not be NUL-terminated) on top of the
 * defaults.  Errors read "NAME:LINE: reason" with NAME = name_for_errors.
 * Returns 0, or -EINVAL with `out` untouched. */
int vigil_config_parse(const char *text, size_t len, const char *name_for_errors, struct vigil_config *out,
                       char *err, size_t errlen);

/* Reads and parses the file at `path`, then fills `name` from the hostname
 * if the file did not set it.  path == NULL means the default path, which
 * may be missing (defaults apply, from_defaults is set); a missing file
 * named explicitly (vigild --config FILE) is an error.  A file writable by
 * other users, or owned by anyone but root or the caller, is refused: it
 * names commands vigild runs as root.  Returns 0 or -errno with `out`
 * untouched. */
int vigil_config_load(const char *path, struct vigil_config *out, char *err, size_t errlen);

/* Writes the canonical text of `c` (every key, in the man page's order;
 * unset optional keys as comments), which parses back to an equal struct
 * for anything parse() or load() produced.  Returns the length written
 * (without the NUL), or -ENOSPC if `len` is too small. */
int vigil_config_dump(const struct vigil_config *c, char *buf, size_t len);

/* Field-by-field equality (from_defaults excluded: it says where the values
 * came from, not what they are). */
bool vigil_config_equal(const struct vigil_config *a, const struct vigil_config *b);

#endif
