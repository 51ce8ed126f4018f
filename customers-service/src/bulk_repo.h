/* SQL for the legacy bulk upsert of customers.users, and nothing else.
 *
 * One call of bulk_repo_apply is one database transaction:
 *   BEGIN → pg_advisory_xact_lock_shared → SAVEPOINT → ONE COPY of the rows straight into
 *   customers.users (ids are UUIDv7 made here, source 'legacy', deleted_at = now() for deleted
 *   records). COPY inserts rows in bulk, about twice as cheap per row for PostgreSQL as
 *   INSERT … ON CONFLICT, and in a first import no row exists yet → COMMIT.
 *   When a unique index refuses the COPY (a name or an email is stored already):
 *   ROLLBACK TO SAVEPOINT, then the staged path:
 *     CREATE TEMP TABLE … ON COMMIT DROP → COPY FROM STDIN (text format) of the staged rows
 *     → triage: drop staged rows that are not newer than the stored user (unchanged), whose email
 *     another user holds, or whose email an earlier staged row claims (email_taken)
 *     → one INSERT … SELECT … ON CONFLICT ((lower(user_name))) DO UPDATE … WHERE newer → COMMIT.
 *   With `exclusive` (a retry) the staged path is taken directly, under pg_advisory_xact_lock.
 * Any failure rolls back before returning.
 *
 * The caller hands over rows already validated and already de-duplicated by lower(user_name)
 * (an INSERT … ON CONFLICT cannot touch one row twice, and a COPY would fail on the unique index).
 *
 * Ownership: PGconn is borrowed (the caller acquires and releases it). struct bulk_outcome owns
 * its arrays; release them with bulk_outcome_free. Nothing here logs: the caller logs failures
 * with its correlation id, using outcome->sqlstate and the failing step name (no row data). */
#ifndef CUSTOMERS_BULK_REPO_H
#define CUSTOMERS_BULK_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/buf.h"
#include "svc/status.h"

/* One validated legacy record. Strings are borrowed (from the request JSON). */
struct bulk_row {
    const char *user_name;
    const char *email;          /* NULL when absent or null */
    const char *name;           /* may be "" */
    long long legacy_id;        /* >= 0 */
    int64_t updated_us;         /* updated_at, microseconds since the Unix epoch (UTC) */
    int index;                  /* position in the request's users array */
    bool deleted;
    char key[65];               /* lower-cased user_name: the upsert key */
};

/* A pre-existing user the upsert rewrote: its cached copies must go, and when it was just
 * soft-deleted while able to log in (has a password), its sessions too. */
struct bulk_touched {
    char id[37];
    char user_name_lower[65];
    bool revoke_sessions;
};

struct bulk_outcome {
    long inserted;              /* new rows, not deleted */
    long updated;               /* existing rows rewritten, not newly deleted */
    long deleted;               /* rows now soft-deleted that were not before (new or existing) */
    long written;               /* inserted + updated + deleted */
    int *email_taken;           /* request indices dropped for email conflicts, ascending */
    size_t n_email_taken;
    struct bulk_touched *touched;
    size_t n_touched;
    const char *step;           /* on failure: which step failed ("copy", "upsert", ...) */
    char sqlstate[6];           /* on failure: SQLSTATE when the server sent one, else "" */
};

void bulk_outcome_free(struct bulk_outcome *o);

/* "YYYY-MM-DD HH:MM:SS.ffffff+00" (UTC) for us microseconds since the epoch; out >= 32 bytes.
 * Valid for years 0001..9999. */
void bulk_repo_format_timestamp(int64_t us, char *out);
/* Appends one COPY text line per row (the staging table's column order). Check b->oom after. */
void bulk_repo_encode_rows(struct svc_buf *b, const struct bulk_row *const *rows, size_t n);
/* Appends one COPY text line per row for customers.users (id, user_name, email, name, source,
 * legacy_id, source_updated_at, deleted, deleted_at): a fresh UUIDv7 id, source legacy, and
 * deleted_at = now_text for deleted rows (\N otherwise). Check b->oom after (also set when the
 * OS gives no randomness for the ids). */
void bulk_repo_encode_new_users(struct svc_buf *b, const struct bulk_row *const *rows, size_t n,
                                const char *now_text);


/* Applies rows[0..n) in one transaction (see the top comment). On SVC_OK *out holds the
 * counts, the indices dropped as email_taken and the touched users. Errors: SVC_CONFLICT on a
 * unique violation, deadlock or serialization failure (a concurrent write won a race: retry once
 * with exclusive = true, which waits for every other bulk upsert and keeps new ones out),
 * SVC_UNAVAILABLE when the connection broke, SVC_TIMEOUT on statement/lock timeout, SVC_INTERNAL
 * otherwise. The transaction is rolled back on every error. */
svc_status bulk_repo_apply(PGconn *c, const struct bulk_row *const *rows, size_t n, bool exclusive,
                           struct bulk_outcome *out);

#endif
