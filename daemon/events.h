/* The durable audit log behind `vigil events` (docs/events.md).
 *
 * Every state change vigild makes or sees is one event: when, where, who,
 * what and why.  Events are lines of text in <state_dir>/events.log, each
 * with a sequence number and a CRC-32, appended with one write(2) and
 * fdatasync'ed before events_append returns.  Past a size limit the file
 * becomes events.log.1 (replacing the previous one) and a new events.log
 * starts; sequence numbers go on counting.
 *
 * One line:
 *
 *   v1 TAB seq TAB time_ms TAB host TAB actor TAB what TAB why TAB crc LF
 *
 * seq and time_ms in decimal, crc the CRC-32 (IEEE) of everything before it
 * (up to and including the last TAB) as 8 lowercase hex digits.  In the four
 * text fields a backslash is written \\, a tab \t, a line feed \n, a
 * carriage return \r, any other byte below 0x20, 0x7f, and any byte that is
 * not part of valid UTF-8 as \xHH (lowercase); everything else (printable
 * ASCII, valid UTF-8) as it is.  Each event has exactly one encoding, and
 * the decoder accepts nothing else.
 *
 * Functions that can fail return 0 (or a length) or -errno, with a message
 * in err.
 */
#ifndef VIGIL_EVENTS_H
#define VIGIL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vigil_event {
    int64_t time_ms; /* wall clock, ms since epoch */
    uint64_t seq;    /* per-file sequence, assigned by the log */
    char host[64];   /* where it happened */
    char actor[64];  /* who: "vigild", "operator@h1", "master h2" ... */
    char what[192];
    char why[192];
};

#define EVENTS_FILE "events.log"
#define EVENTS_FILE_OLD "events.log.1"
#define EVENTS_DEFAULT_LIMIT (8u << 20)
/* The longest line the encoder writes (every text byte escaped to \xHH),
 * newline included; a longer line is damaged. */
#define EVENTS_LINE_MAX (3 + 2 * 21 + 4 * (63 + 63 + 191 + 191) + 4 + 8 + 1)
/* events_format_text and events_format_json never need more. */
#define EVENTS_FORMAT_MAX 4096

/* ---------------------------------------------------------------- lines (pure) */

/* Encodes one event as a line, newline included (out is NUL-terminated).
 * Returns the length, -ENOSPC if cap cannot hold it and a NUL, or -EINVAL
 * if seq is 0 or a text field is not NUL-terminated within its array. */
int events_encode_line(const struct vigil_event *ev, char *out, size_t cap);

/* Decodes one line (with or without its final newline; nothing else may
 * follow).  Returns 0, or -EINVAL for anything that is not exactly the
 * encoding of an event (then *ev is untouched). */
int events_decode_line(const char *line, size_t len, struct vigil_event *ev);

/* ---------------------------------------------------------------- the log */

struct events_log;

/* Opens <dir>/events.log for appending, creating dir (0700) and the file
 * (0600) when missing, and finds the last sequence number used (in
 * events.log, or in events.log.1 when events.log holds no event yet).
 * A torn last line (the bytes after the last newline, which a crash during
 * an append leaves) is cut off: events_repaired() is then true and err says
 * what was cut, for the daemon's log; otherwise err is "".  Lines damaged
 * in the middle stay where they are (readers skip them).
 * Returns NULL with errno set and err filled on failure; -EBUSY when
 * another handle holds the log. */
struct events_log *events_open(const char *dir, char *err, size_t errlen);

/* Appends one event.  Assigns ev->seq (the last one + 1) and, when
 * ev->time_ms is 0, the current wall-clock time.  The line goes out with one
 * write(2) and is fdatasync'ed: 0 means it is on disk.  Then, if the file
 * has reached the size limit, it is rotated: 1 means the event is on disk
 * but the rotation failed (err says why; the next append tries again).
 * -EINVAL for an event with an unterminated text field; -errno when the
 * event could not be written (a short write is cut off again, so the file
 * stays a sequence of whole lines; after a failed fdatasync the line may or
 * may not be on disk; seq is not reused either way). */
int events_append(struct events_log *l, struct vigil_event *ev, char *err, size_t errlen);

/* Size at which events.log is rotated; 0 restores EVENTS_DEFAULT_LIMIT. */
void events_set_limit(struct events_log *l, uint64_t bytes);

/* The sequence number of the last event appended or found (0: none yet). */
uint64_t events_last_seq(const struct events_log *l);

/* Whether events_open cut off a torn last line. */
bool events_repaired(const struct events_log *l);

void events_close(struct events_log *l);

/* ---------------------------------------------------------------- reading */

/* Reads <dir>/events.log.1, then <dir>/events.log, and returns the events
 * with seq > after_seq in order: *out is malloc'ed (caller frees; NULL when
 * *n is 0).  At most max events, the newest ones (max 0: no limit).
 * A line that does not decode, or whose seq is not above the one before it,
 * is skipped and counted in *damaged (may be NULL); err then names the first
 * one (file and line number), else err is "".  An unfinished last line (an
 * append in progress, or a torn line the next events_open cuts off) is
 * ignored.  Missing files are empty.  Never trusts the content: any bytes
 * give 0 and some events, or -errno for an I/O error or -ENOMEM. */
int events_read(const char *dir, uint64_t after_seq, size_t max, struct vigil_event **out, size_t *n,
                size_t *damaged, char *err, size_t errlen);

/* ---------------------------------------------------------------- output for the CLI */

/* "2026-11-22 01:30:00.123 h1 operator@h1: pool created (name prod)": UTC,
 * "(why)" only when there is a why, control characters escaped as in the
 * log so that one event is one line.  Always NUL-terminated; cut short
 * (never inside an escape or a UTF-8 character) if len is too small. */
void events_format_text(const struct vigil_event *ev, char *buf, size_t len);

/* One JSON object, no newline:
 * {"time":"2026-11-22T01:30:00.123Z","time_ms":...,"seq":...,"host":"...",
 *  "actor":"...","what":"...","why":"..."}.  Strings are escaped for JSON
 * (quotes, backslashes, control characters as \uXXXX or \n \t ...); bytes
 * that are not valid UTF-8 become U+FFFD.  A time outside years 0..9999 is
 * given as time_ms only ("time":null).  Always NUL-terminated; with less
 * than EVENTS_FORMAT_MAX bytes the object may be cut short (invalid). */
void events_format_json(const struct vigil_event *ev, char *buf, size_t len);

#endif
