/* corosync's configuration and authkey for a pool, made by vigild from the
 * pool database.
 *
 * vigild owns /etc/corosync/corosync.conf and /etc/corosync/authkey on a
 * pool member: the nodelist is the pool's joined hosts, the timing comes
 * from the pool's settings, and every member renders the same bytes from
 * the same database.  corosync 3 with knet, encrypted (aes256 + sha256)
 * with the pool's authkey; votequorum without two_node (a 2-host pool needs
 * the heartbeat disk to survive a host loss, docs/pool.md).
 *
 * Every function that can fail returns a length, 0 or 1, or -errno with a
 * message in err.
 */
#ifndef VIGIL_CCONF_H
#define VIGIL_CCONF_H

#include <stddef.h>
#include <sys/types.h>

#include "ha/ha.h"

/* A buffer this big always holds cconf_render's output for HA_MAX_HOSTS
 * hosts with the longest names and addresses (tests/unit/test_cconf.c
 * checks it). */
#define CCONF_RENDER_MAX 16384

/* corosync's limits that cconf_render enforces (found with corosync 3.1.7's
 * `corosync -t`, see docs/corosync.md):
 *   - knet node ids are 16 bits: nodeid 1..65535;
 *   - totem.token is at least 126 ms: corosync derives the token
 *     retransmit timeout as token / 4.2 and wants at least 30 ms of it
 *     (vigil's token_timeout setting allows 100 ms, so 100..125 ms pools
 *     are refused here);
 *   - every ring0_addr of one link has the same IP family.
 * And one of vigil's: corosync takes any 32-bit token, but it derives
 * consensus (1.2 x token) as a signed 32-bit number; vigil stops at 10^9 ms
 * (11.5 days), far below where that breaks. */
#define CCONF_NODEID_MAX 65535u
#define CCONF_TOKEN_MIN_MS 126
#define CCONF_TOKEN_MAX_MS 1000000000

/* The size of the key cconf_authkey_create writes (corosync needs at least
 * 128 bytes and reads at most 4096). */
#define CCONF_AUTHKEY_LEN 256

/* Writes the whole corosync.conf for the pool into out (NUL-terminated).
 * The nodelist holds every host with joined == true, in host index order.
 * Returns the length (without the NUL), -ENOSPC if out cannot hold it and
 * its NUL (err says how much is needed), or -EINVAL with the reason:
 *   - no joined host;
 *   - a pool name corosync would not take as cluster_name, or that is not
 *     a vigil name ([A-Za-z0-9._-], 1..63 characters);
 *   - a joined host whose address is not an IPv4 or IPv6 literal (no
 *     brackets, no zone), whose nodeid is 0 or above 65535, or whose name is
 *     not a vigil name;
 *   - two joined hosts sharing a nodeid or an address, or mixing IPv4 and
 *     IPv6;
 *   - a token_timeout outside CCONF_TOKEN_MIN_MS..CCONF_TOKEN_MAX_MS.
 * Deterministic: the same database gives the same bytes (the database's
 * version is not in the text, so changes that leave the corosync settings
 * alone leave the file alone). */
int cconf_render(const struct ha_db *db, char *out, size_t cap, char *err, size_t errlen);

/* Replaces the file at path with exactly `len` bytes of `data` and the
 * permission bits `mode` (not masked by the umask), crash-safe: a crash
 * leaves either the old file or the new one, never a mix.  It writes
 * path.tmp (a leftover from a crash is removed first; O_EXCL, so a link
 * planted there is not followed), fsyncs it, renames it over path and
 * fsyncs the directory.
 * Returns 1 if the file was written, 0 if path already was a regular file
 * holding exactly these bytes with these permission bits (then nothing is
 * written), or -errno with err naming the file and the call that failed.
 * After a failure path is untouched and path.tmp is gone, except when only
 * the final directory fsync failed: then the new file is in place but may
 * not survive a crash.  One writer per path at a time. */
int cconf_write_file(const char *path, const void *data, size_t len, mode_t mode, char *err, size_t errlen);

/* A new corosync authkey at path: CCONF_AUTHKEY_LEN bytes from getrandom(2),
 * written with cconf_write_file, mode 0400.  Replaces any key there (this is
 * for `pool create`; joining hosts receive the pool's key instead).
 * Returns 0 or -errno. */
int cconf_authkey_create(const char *path, char *err, size_t errlen);

#endif
