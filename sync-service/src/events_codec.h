/* The form of an accepted event in the Redis stream: encoded once by the handler, written by the
 * consumer without being parsed again.
 *
 * A stream entry has one field, "e", whose value is a header and a line of PostgreSQL's COPY
 * text format:
 *     1<f><received_ms>\t<event_id>\t<event_day>\t<event_type>\t<user_id>\t<session_id>\t<event_data>\t<occurred_at>\t<received_at>\n
 * "1" is the format version; <f> is 'c' when the event needs the cross-day duplicate check (the
 * client chose its id but not its time: a retry after midnight lands on another day, see
 * events_repo.h) and 'n' otherwise. The part after the first tab is exactly the COPY line of the
 * columns in EVENTS_COPY_COLUMNS, so a consumer concatenates lines into COPY data as they are.
 * Text fields are COPY-escaped with the shared encoder (svc/copy_text.h); ids, days, types and
 * times need no escaping.
 *
 * Pure functions; no allocation except the caller's buffer. */
#ifndef EVENTS_CODEC_H
#define EVENTS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events_validate.h"
#include "svc/buf.h"

#define EVENTS_COPY_COLUMNS \
    "event_id, event_day, event_type, user_id, session_id, event_data, occurred_at, received_at"
#define EVENTS_COPY_NCOLS 8

/* Appends the entry value of rec to out (check out->oom once at the end). */
void events_encode(const struct event_rec *rec, struct svc_buf *out);

/* An entry value taken apart; pointers into the value (borrowed). */
struct event_view {
    bool check;                /* flag 'c' */
    int64_t received_ms;
    const char *line;          /* the COPY line, with its '\n' */
    size_t line_len;
    char id[37];
    int64_t day;               /* days since 1970-01-01 */
    int type;                  /* index into events_type_names */
};
/* False when v is not a well-formed entry (unknown version, missing columns, bad id/day/type). */
bool events_decode(const char *v, size_t len, struct event_view *out);

/* Splits a view's COPY line into its EVENTS_COPY_NCOLS columns, unescaped, as NUL-terminated
 * strings in buf (cap >= line_len + EVENTS_COPY_NCOLS). False when the line is malformed. */
bool events_columns(const struct event_view *v, char *buf, size_t cap, const char *cols[EVENTS_COPY_NCOLS]);

/* "YYYY-MM-DD" of a day number (out >= 11 bytes); "YYYY-MM-DD HH:MM:SS.mmm+00" of a Unix ms time
 * (out >= 30 bytes). */
void events_format_day(int64_t day, char *out);
void events_format_time(int64_t ms, char *out);

#endif
