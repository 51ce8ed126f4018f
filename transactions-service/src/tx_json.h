/* The body of a transaction this service has just posted, rendered in C.
 *
 * The text is exactly what transactions.tx_json_original (db/transactions/001_ledger.sql) makes of
 * the same row, and tx_json_append what transactions.tx_json makes of a stored row (the list
 * renders its rows here, from binary columns, instead of asking PostgreSQL to): json_build_object's layout ("key" : value, ", " between members), PostgreSQL's
 * escape_json for strings, created_at = updated_at as "YYYY-MM-DDTHH:MM:SS.mmmZ" (milliseconds
 * truncated, as to_char's MS). A replay, built by PostgreSQL from the stored row, therefore says
 * the same thing in the same bytes. Built here so the posting statement returns one timestamp
 * instead of formatting JSON inside PostgreSQL (two to_char calls and a json_build_object per
 * posting, on the database's CPU).
 *
 * Pure functions; the returned string is owned by the caller (free()). */
#ifndef TX_JSON_H
#define TX_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/buf.h"

struct tx_json_row {
    const char *id;             /* uuid text */
    const char *type;           /* "deposit", "withdrawal", "transfer", "reversal" */
    const char *status;         /* tx_json_append only ("completed", "reversed"); created: "completed" */
    const char *amount;         /* canonical "123.45" */
    const char *currency;
    const char *description;    /* NULL → null */
    const char *user_id;
    const char *to_user_id;     /* NULL → null */
    const char *reverses_id;    /* tx_json_append only; NULL → null */
    const char *reversed_by;    /* tx_json_append only; NULL → null */
    int64_t created_us;         /* microseconds since the Unix epoch */
    int64_t updated_us;         /* tx_json_append only; created: = created_us */
};

/* Parses the text of extract(epoch FROM timestamptz) ("1796211393.978123", fewer or no
 * decimals, a '-' before 1970) into microseconds. Returns false when it is not such a number. */
bool tx_json_epoch_us(const char *s, int64_t *us_out);

/* Appends s as a JSON string the way PostgreSQL's escape_json writes it. */
void tx_json_append_string(struct svc_buf *b, const char *s);

/* The body of a transaction just posted (status completed, not reversed, updated = created);
 * NULL when out of memory. */
char *tx_json_created(const struct tx_json_row *row);

/* Appends row as transactions.tx_json (the stored row as GET /api/transactions/{id} and the
 * list show it) writes it: every field as given. False when a time is out of range. */
bool tx_json_append(struct svc_buf *b, const struct tx_json_row *row);

#endif
