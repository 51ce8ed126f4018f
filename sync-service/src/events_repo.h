/* SQL of the events write path (sync.events, sync.event_dead_letters, sync.events_maintain) on a
 * consumer's own connection. The reads of the query API are in events_query.h.
 *
 * Two ways to store a batch (db/sync/005_events.sql says why the table looks as it does):
 *  - fast: one COPY of the batch's lines straight into sync.events, in its own transaction. A
 *    duplicate key fails it whole (EVENTS_W_DUPLICATE).
 *  - careful: BEGIN; COPY into a temporary staging table (created once per connection by
 *    events_repo_prepare); for the rows that need the cross-day check (the client chose the id
 *    but not the time), an advisory lock per id in id-hash order (two batches holding the same
 *    ids never deadlock), then INSERT … SELECT … ON CONFLICT DO NOTHING that also skips such a
 *    row when its id is stored on the neighbouring day; COMMIT. The lock makes a concurrent
 *    batch holding the same id wait until this one committed, and its INSERT (a new statement,
 *    a new snapshot) then sees the row. RETURNING event_type counts what was stored per type.
 * The fast COPY costs clearly less than the careful path (bench/README.md, "Measurements behind
 * the code"), so the careful path runs only for duplicates and checked rows.
 *
 * Errors are classified for events_writer.h: connection problems, shutdowns, lack of resources,
 * timeouts, lock failures, deadlocks, serialization failures and schema problems (class 42: a
 * deployment is broken, not the event) are transient; 23505 is a duplicate; "no partition …
 * found for row" (23514) asks for the maintenance; everything else is the data's fault.
 *
 * Ownership: the PGconn is borrowed; rows are borrowed for the call. Nothing here logs. */
#ifndef EVENTS_REPO_H
#define EVENTS_REPO_H

#include <libpq-fe.h>

#include "events_writer.h"

/* Creates the connection's staging table (call after every (re)connect). 0 or -1. */
int events_repo_prepare(PGconn *c);

enum events_outcome events_repo_write(PGconn *c, const struct event_view *const *rows, size_t n, bool careful,
                                      unsigned long written[EVENTS_NTYPES], struct events_write_error *err);

/* Inserts one dead letter per row (why[i], attempts), skipping events that already have an
 * outstanding one, in one transaction. */
enum events_outcome events_repo_dead(PGconn *c, const struct event_view *const *rows,
                                     const struct events_write_error *why, size_t n, int attempts,
                                     struct events_write_error *err);

/* SELECT sync.events_maintain(ahead, retention): partitions created and dropped. */
enum events_outcome events_repo_maintain(PGconn *c, long ahead_days, long retention_days, int *created, int *dropped,
                                         struct events_write_error *err);

/* The outcome class of a failed result (exposed for tests). */
enum events_outcome events_repo_classify(PGconn *c, const PGresult *r, struct events_write_error *err);

#endif
