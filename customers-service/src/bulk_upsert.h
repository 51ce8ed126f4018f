/* Legacy user import: POST /internal/users/bulk-upsert use case (validation and orchestration;
 * the SQL lives in bulk_repo.c).
 *
 * Body {"users":[{user_name, email, name, legacy_id, deleted, updated_at}, ...]}, at most
 * cx->bulk_max_rows users (more, a missing/non-array "users" or another top-level field → 400
 * validation_failed). Each record is checked on its own; a bad one is reported and skipped:
 *   user_name  string, users_check_user_name        → "invalid_user_name"
 *   email      string (users_check_email), null or absent → "invalid_email"
 *   name       string of at most 200 characters, may be empty (legacy data) → "invalid_name"
 *   legacy_id  JSON integer >= 0                    → "invalid_legacy_id"
 *   deleted    JSON boolean                         → "invalid_deleted"
 *   updated_at ISO 8601 date-time with seconds and a Z or ±HH:MM offset, optional fraction
 *              (kept to microseconds)               → "invalid_updated_at"
 *   a record that is not an object → "not_an_object"; any other field → "unknown_field";
 *   a record whose email another user holds, or that an earlier record of the batch claims for a
 *   different user → "email_taken" (decided in the database, inside the transaction).
 * Several records of one user_name (case-insensitive) in a batch: the newest updated_at wins (on
 * a tie the later record); the others are superseded before anything reaches SQL.
 *
 * 200 {"inserted","updated","deleted","unchanged","invalid":[{"index","reason"}]}: every record
 * is counted exactly once, so inserted + updated + deleted + unchanged + len(invalid) = len(users).
 *   inserted   new users (not deleted)          updated  existing users rewritten (incl. un-delete)
 *   deleted    users soft-deleted by this batch (new users that arrive deleted included)
 *   unchanged  records not newer than the stored user, and superseded in-batch duplicates
 * Stored users keep password_hash, role, permissions and source; new ones get source "legacy",
 * role "user". Re-applying a batch changes nothing and rewrites no row.
 *
 * The same records may come as Content-Type text/tab-separated-values (what sync-service sends:
 * no JSON to build or parse on either side; the reader is bulk_tsv.c). One record per line, each
 * line ended by LF (optional after the last), six fields separated by one TAB:
 *   user_name  email  name  legacy_id  deleted  updated_at
 * Field text is escaped as in PostgreSQL's COPY text format: \\ backslash, \t TAB, \n LF, \r CR;
 * a field that is exactly \N is null (meaningful for email; elsewhere it fails that field). Any
 * other backslash sequence, bytes that are not UTF-8, and NUL bytes fail the field they are in.
 * legacy_id is decimal digits (0 .. 2^63-1), deleted is t or f, updated_at as above. The index of
 * a record is its line number from 0; a line without exactly six fields is "malformed_line".
 * An empty body holds no records. The same rules and the same 200 answer as for JSON apply.
 *
 * Borrowed: cx, cid, body (not modified). The result is answered with svc_respond_result. */
#ifndef CUSTOMERS_BULK_UPSERT_H
#define CUSTOMERS_BULK_UPSERT_H

#include <jansson.h>
#include <stdint.h>

#include "bulk_repo.h"
#include "ctx.h"

#define BULK_DEFAULT_MAX_ROWS 5000

struct svc_result users_bulk_upsert(struct customers_ctx *cx, const char *cid, const json_t *body);
/* The TSV form: body is len bytes (no terminator needed). */
struct svc_result users_bulk_upsert_tsv(struct customers_ctx *cx, const char *cid, const char *body, size_t len);

/* ---- building blocks, exposed for unit tests ---- */

struct bulk_invalid {
    int index;
    const char *reason;         /* static string */
};

/* A validated, de-duplicated batch. Everything it points to is owned by the plan (free with
 * bulk_plan_free) except, for a JSON body, the strings inside rows, borrowed from the body; for a
 * TSV body they point into text, the plan's decoded copy of the body. */
struct bulk_plan {
    char *text;                 /* TSV only: decoded body the rows point into; owned */
    size_t n_total;             /* records in the request */
    struct bulk_row *rows;      /* valid records, request order */
    size_t n_valid;
    const struct bulk_row **winners; /* newest record per user_name, ordered by key */
    size_t n_winners;
    struct bulk_invalid *invalid;    /* ascending index */
    size_t n_invalid;
};

/* Parses an ISO 8601 date-time (see above) into microseconds since the epoch, UTC.
 * Returns 0, or -1 when s is not such a timestamp (or outside years 0001..9999 in UTC). */
int bulk_parse_timestamp(const char *s, int64_t *us_out);
/* Validates one record into *out (strings borrowed from row). Returns NULL or a reason above. */
const char *bulk_check_row(const json_t *row, struct bulk_row *out);
/* The string rules both formats share, on decoded text (em NULL: no email; un or name NULL: the
 * field was absent or unreadable): fills user_name, key, email and name of *out (zeroed by the
 * caller). Returns NULL, "invalid_user_name", "invalid_email" or "invalid_name". */
const char *bulk_check_strings(const char *un, const char *em, const char *name, struct bulk_row *out);
/* Validates the body and de-duplicates. Returns SVC_OK, SVC_INVALID with *fields_out set to a new
 * {"<field>":"<reason>"} object (caller owns it) when the body as a whole is unacceptable, or
 * SVC_INTERNAL on allocation failure. max_rows <= 0 means BULK_DEFAULT_MAX_ROWS. */
svc_status bulk_plan_build(const json_t *body, long max_rows, struct bulk_plan *plan, json_t **fields_out);
/* The same from a TSV body of len bytes (copied into plan->text; body is not modified). More
 * than max_rows lines → SVC_INVALID with {"body": "at most N records per request"}. */
svc_status bulk_plan_build_tsv(const char *body, size_t len, long max_rows, struct bulk_plan *plan,
                               json_t **fields_out);
/* Records the verdict on record index, checked into rows[n_valid]: valid (reason NULL) keeps that
 * row, else the reason is listed (invalid is allocated for n records on first use). false when
 * out of memory. */
bool bulk_plan_note(struct bulk_plan *plan, size_t n, int index, const char *reason);
/* Fills winners from rows (n_valid of them): the newest record per key, ordered by key. */
void bulk_plan_pick_winners(struct bulk_plan *plan);
void bulk_plan_free(struct bulk_plan *plan);
/* The 200 body for a plan and what the database did (NULL outcome: nothing was sent, e.g. no
 * valid record). Returns a new reference or NULL on allocation failure. */
json_t *bulk_result_json(const struct bulk_plan *plan, const struct bulk_outcome *outcome);

#endif
