/* A consumer thread of the events stream (see events_service.h for the set of threads).
 *
 * Loop: read up to the batch's room with XREADGROUP (blocking at most until the batch's time
 * trigger, or 1 s while the buffer is empty), copy the entries into the batch, and once the
 * batcher says so (events_batcher.h) write the batch (events_writer.h over events_repo.h) and
 * acknowledge its entries with one XACK + XDEL, with the counters for /api/events/stats. The
 * acknowledgement comes only after the COMMIT; one that fails is tried again until it succeeds
 * (or the service stops: the entries are then delivered again, and their rows are duplicates).
 *
 * Its consumer name is "<instance>-<n>": a restarted instance is the same consumer, and first
 * reads its own pending entries (delivered to the previous run and never acknowledged: a
 * SIGKILL mid-batch). Entries of a consumer that does not come back are taken over by any other
 * with XAUTOCLAIM once idle for EVENTS_VISIBILITY_MS; while a write waits for PostgreSQL the
 * consumer resets its entries' idle time (XCLAIM … JUSTID) every third of that, so a live
 * consumer keeps them.
 *
 * Before writing, a batch is de-duplicated in memory: two entries with the same event id and day
 * (or a cross-day pair of checked rows) keep the first; the rest count as duplicates (the
 * database check cannot see rows of the same statement).
 *
 * Ownership: the consumer owns its connections and buffers; cx is borrowed. */
#ifndef EVENTS_CONSUMER_H
#define EVENTS_CONSUMER_H

#include <stddef.h>

#include "events_codec.h"

struct sync_ctx;

/* Starts consumer n; returns it, or NULL (logged). */
struct events_consumer *events_consumer_start(struct sync_ctx *cx, int n);
/* Joins it (the stop flag must be set) and frees it. NULL is fine. */
void events_consumer_join(struct events_consumer *c);

/* Marks rows that repeat an earlier row of the batch (same id and day; or the same id on
 * neighbouring days when either is checked): dup[i] = true. Returns how many. Exposed for tests. */
size_t events_batch_duplicates(const struct event_view *const *rows, size_t n, bool *dup);

#endif
