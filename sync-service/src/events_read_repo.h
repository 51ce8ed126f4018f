/* SQL of the events query and administration API (GET /api/events, the dead letters and their
 * replay, the dead-letter count of the stats). The write path is in events_repo.h.
 *
 * Lists are keyset-paged with the shared parser (svc/paging.h), newest first, 50 items by default
 * and up to 500: events by (occurred_at, event_id) — in SQL (event_day, occurred_at, event_id),
 * the order of the indexes, event_day being a function of occurred_at —, dead letters by
 * (failed_at, id). Items are built as JSON in SQL, so every read path answers the same shape.
 * Filters on time also bound event_day, the partition key, so PostgreSQL prunes partitions at
 * plan time; the total is counted only when asked for (include_total).
 *
 * Errors: SVC_UNAVAILABLE (connection), SVC_TIMEOUT (statement timeout), SVC_INTERNAL.
 * Ownership: the PGconn is borrowed; a returned PGresult belongs to the caller (PQclear). */
#ifndef EVENTS_READ_REPO_H
#define EVENTS_READ_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "svc/paging.h"
#include "svc/status.h"

extern const struct svc_list events_list_kind;   /* V */
extern const struct svc_list events_dead_kind;   /* D */

/* Filters as SQL text parameters; NULL = not filtered. Times as timestamptz literals. */
struct events_filter {
    const char *type, *user_id, *session_id;
    const char *from, *to;               /* occurred_at >= from, < to */
};
/* *json: the page (new text). */
svc_status events_read_list(PGconn *c, const struct events_filter *f, const struct svc_page *page, char **json);

/* status: "outstanding" (not replayed), "replayed" or "all". from/to bound failed_at. */
struct events_dead_filter {
    const char *type, *from, *to, *status;
};
svc_status events_read_dead(PGconn *c, const struct events_dead_filter *f, const struct svc_page *page, char **json);

/* Outstanding dead letters per type: fills dead[type index]; *total their sum. */
svc_status events_read_dead_count(PGconn *c, long long dead[], long long *total);

/* Opens a transaction and marks up to limit outstanding dead letters replayed — those of the
 * event ids in ids_literal (a uuid[] literal), or else those matching type/from/to (each may be
 * NULL) — oldest first, skipping rows another replay holds. *out: rows (event_id, entry). The
 * caller appends the entries to the stream and then calls events_read_replay_end with commit
 * true, or false to undo the marks (the transaction stays open in between). */
svc_status events_read_replay_begin(PGconn *c, const char *ids_literal, const char *type, const char *from,
                                    const char *to, int limit, PGresult **out);
svc_status events_read_replay_end(PGconn *c, bool commit);

#endif
