/* The replicated pool database on the wire and on disk.
 *
 * The replicated state is (epoch, struct ha_db).  db.version counts applied
 * changes; the epoch rises when a new master takes office (an epoch record).
 * This module has two halves:
 *
 *   encoding  pure functions: a whole state (snapshot) or one change to and
 *             from bytes.  Explicit little-endian, field by field, canonical
 *             (one state has exactly one encoding), and decoders that trust
 *             nothing they read.
 *   store     the durable copy in a directory: pool.snap (a snapshot) and
 *             pool.log (records appended after it, each fdatasync'ed).
 *
 * Formats and crash behaviour: docs/pool-database.md.  Every function that
 * can fail returns 0 (or a length) or -errno, with a message in err when it
 * takes one.
 */
#ifndef VIGIL_POOLDB_H
#define VIGIL_POOLDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ha/ha.h"

/* ---------------------------------------------------------------- encoding */

/* Largest encoding of one change (a VM's domain XML takes up to
 * HA_VM_XML_MAX of it): a buffer this big always suffices. */
#define POOLDB_CHANGE_MAX (2048 + 4 + HA_VM_XML_MAX)

/* The whole state.  *out is malloc'ed (caller frees); -EINVAL if a string
 * in db is not NUL-terminated within its field, -ENOMEM, -EFBIG past 4 GiB.
 * Encoding does not judge the state: the decoder does (see pooldb_replace). */
int pooldb_encode_snapshot(uint64_t epoch, const struct ha_db *db, uint8_t **out, size_t *len);
/* The length pooldb_encode_snapshot() would give, without writing it; 0 for
 * a database it would refuse. */
size_t pooldb_snapshot_size(uint64_t epoch, const struct ha_db *db);
/* Checks everything before touching *epoch and *db: on error (-EINVAL, or
 * -ENOMEM) they are untouched and err says what is wrong.  On success *db is
 * a fresh database (free it with ha_db_free) that the core can use safely:
 * every index in range, every string terminated, settings in range. */
int pooldb_decode_snapshot(const uint8_t *buf, size_t len, uint64_t *epoch, struct ha_db *db, char *err,
                           size_t errlen);

/* One change.  Returns the encoded length, -ENOSPC if cap is too small, or
 * -EINVAL for a change no decoder would accept (unterminated string, enum out
 * of range, rule.nvms out of 0..HA_RULE_MAX_VMS). */
int pooldb_encode_change(const struct ha_change *c, uint8_t *out, size_t cap);
/* Checks the form only (type, enums, strings, sizes); whether the change
 * makes sense for a database is ha_db_apply's business.  -EINVAL.  A domain
 * XML in the change (c->xml) points into buf: it lives as long as buf. */
int pooldb_decode_change(const uint8_t *buf, size_t len, struct ha_change *c, char *err, size_t errlen);

/* FNV-1a 64 over the snapshot encoding (without its trailing CRC): equal
 * states give equal digests on every member and every build. */
uint64_t pooldb_digest(uint64_t epoch, const struct ha_db *db);

/* CRC-32 (IEEE 802.3, the zlib one): pooldb_crc32("123456789", 9) == 0xcbf43926. */
uint32_t pooldb_crc32(const void *buf, size_t len);

/* ---------------------------------------------------------------- durable store */

struct pooldb_store;

/* Loads pool.snap, then replays pool.log with ha_db_apply.
 *  - A torn last record (what a crash during an append leaves) is cut off:
 *    *repaired = true and err says what was cut (for the caller's log).
 *  - Anything else wrong (a bad record with a good one after it, a version or
 *    epoch out of sequence, a record ha_db_apply refuses, a bad pool.snap):
 *    -EUCLEAN with the file and byte offset in err; nothing on disk changes.
 *  - -ENOENT: dir holds no pool (no pool.snap).
 *  - -EBUSY: another handle (in this or another process) has it open.
 * out may be NULL (the store is closed again after loading). */
int pooldb_open(const char *dir, struct pooldb_store **out, uint64_t *epoch, struct ha_db *db, bool *repaired,
                char *err, size_t errlen);
/* Creates dir (0700) if missing and a store holding exactly this state.
 * -EEXIST if dir already holds a pool: pooldb_destroy it first (a crash in
 * the middle of a create leaves no pool, never a mix).  out may be NULL. */
int pooldb_create(const char *dir, uint64_t epoch, const struct ha_db *db, struct pooldb_store **out, char *err,
                  size_t errlen);
/* Replaces the whole state (state transfer, compaction): new pool.snap
 * first, then an empty pool.log.  The state must not be older than the
 * store's: (epoch, db->version) >= the current ones, else -EINVAL.  The
 * encoding is decoded again before it is written, so a state that would not
 * load is refused (-EINVAL) instead of written. */
int pooldb_replace(struct pooldb_store *s, uint64_t epoch, const struct ha_db *db, char *err, size_t errlen);
/* Appends one record and fdatasync()s it: the caller acknowledges only after
 * 0.  c == NULL: an epoch record (epoch > the current one, version_after ==
 * the current version); else a change record (epoch == the current one,
 * version_after == the current version + 1).  db_after is the database with
 * the record applied (db_after->version == version_after); it becomes the new
 * snapshot when the log has grown past the compaction limits.  If the
 * compaction fails the record is durable but the error is returned.
 *
 * After an I/O error in append or replace the handle refuses further writes
 * (-EIO): the disk holds the state before or after the failed call, and only
 * pooldb_close + pooldb_open can tell which. */
int pooldb_append(struct pooldb_store *s, uint64_t epoch, uint64_t version_after, const struct ha_change *c,
                  const struct ha_db *db_after, char *err, size_t errlen);
/* Compaction limits: a snapshot is written when the log holds max_records
 * records, or max_bytes bytes and more bytes than pool.snap.  Defaults
 * 4096 records, 4 MiB. */
void pooldb_set_compaction(struct pooldb_store *s, unsigned max_records, uint64_t max_bytes);
void pooldb_close(struct pooldb_store *s);
/* Removes pool.snap (the commit point), then pool.log: afterwards
 * pooldb_open returns -ENOENT.  The directory stays.  -EBUSY while a handle
 * is open (close it first).  0 if there was no pool. */
int pooldb_destroy(const char *dir, char *err, size_t errlen);

#endif
