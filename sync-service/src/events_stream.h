/* The Redis side of event ingestion: one stream (EVENTS_STREAM_KEY) read by one consumer group
 * (EVENTS_GROUP) of every instance. Each function is one round trip on a context the caller
 * holds (a pooled one for handlers, a consumer's own one for consumers).
 *
 * Why a stream of its own and not svc/queue.h: the job queue runs a Lua script per enqueue and a
 * script plus a read per job (one job at a time, COUNT 1), which suits import batches of 2000
 * records and would cost an event-sized job three round trips. Here an event is one XADD (a batch
 * of them one MULTI … EXEC in one write), a consumer reads up to a whole batch with one
 * XREADGROUP, and acknowledges it after the COMMIT with one XACK + XDEL (the stream holds only
 * what is not yet written, so its length is the backlog). The semantics the queue gives and the
 * events need are kept: a consumer group, at-least-once delivery, entries of a dead consumer
 * taken over after a visibility timeout (XAUTOCLAIM), a heartbeat that keeps a long write's
 * entries from being taken over (XCLAIM … JUSTID), dead letters (in PostgreSQL, events_repo.h).
 * Never XADD … MAXLEN: trimming can drop entries no consumer has acknowledged.
 *
 * Errors: SVC_UNAVAILABLE (connection, or Redis refused: OOM, loading, read-only), SVC_TIMEOUT
 * (command timeout; the context is then dead), SVC_INTERNAL (an unexpected reply). A context
 * with err set must be dropped by the caller (the pool does so on release).
 * Ownership: contexts, ids and values are borrowed for the call; callbacks see values valid only
 * during the call. */
#ifndef EVENTS_STREAM_H
#define EVENTS_STREAM_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "svc/buf.h"
#include "svc/status.h"

#define EVENTS_ENTRY_ID_MAX 41   /* "<ms>-<seq>": 20 + 1 + 20 digits */

/* Encoded events waiting to be appended: values back to back in buf. */
struct events_outbox {
    struct svc_buf buf;
    size_t off[EVENTS_BATCH_CAP];
    size_t len[EVENTS_BATCH_CAP];
    int type[EVENTS_BATCH_CAP];
    int n;
};

/* Appends the outbox's events: one XADD, or MULTI + n XADD + EXEC (all or none). SVC_OK means
 * every event is in the stream. The same in two steps, so that several outboxes share one write
 * and one read (events_ingest.c combines concurrent requests): events_stream_queue puts the
 * commands in c's output buffer (nothing is sent yet), events_stream_collect sends what is
 * buffered (the first time) and reads this outbox's replies; outboxes are collected in the order
 * they were queued. After an I/O error (c->err set) the replies of the outboxes queued later
 * cannot be read: their outcome is that same error. */
svc_status events_stream_append(redisContext *c, const struct events_outbox *box);
void events_stream_queue(redisContext *c, const struct events_outbox *box);
svc_status events_stream_collect(redisContext *c, const struct events_outbox *box);

/* Creates the group (from the stream's start, so entries added before it are delivered) and the
 * stream when absent. SVC_OK also when they exist. */
svc_status events_stream_ensure_group(redisContext *c);

/* One delivered entry. value is NULL for an entry deleted while pending (nothing to write). */
typedef void (*events_entry_fn)(void *arg, const char *id, const char *value, size_t len);

/* XREADGROUP … COUNT count BLOCK block_ms STREAMS key ">" (new entries), or, with history set,
 * this consumer's own entries delivered before (e.g. to a previous run of the same instance) with
 * ids after *history (start with "0"; updated to the last id read; no blocking). *n gets the
 * number of entries. A missing group (Redis lost its data) is created and the read answers 0. */
svc_status events_stream_read(redisContext *c, const char *consumer, long count, long block_ms,
                              char history[EVENTS_ENTRY_ID_MAX + 1], events_entry_fn fn, void *arg, int *n);
/* XAUTOCLAIM: takes up to count entries idle for min_idle_ms from any consumer (a dead one's),
 * from *cursor (start with "0-0"; updated, wraps to "0-0"). */
svc_status events_stream_claim(redisContext *c, const char *consumer, long min_idle_ms, long count,
                               char cursor[EVENTS_ENTRY_ID_MAX + 1], events_entry_fn fn, void *arg, int *n);
/* Resets the idle time of entries this consumer holds (XCLAIM … 0 ids JUSTID). */
svc_status events_stream_touch(redisContext *c, const char *consumer, const char *const *ids, size_t n);

/* Counters that go with an acknowledgement (HINCRBY on EVENTS_STATS_KEY, zero values skipped). */
struct events_ack_counts {
    unsigned long written[EVENTS_NTYPES], duplicates[EVENTS_NTYPES], dead[EVENTS_NTYPES];
    unsigned long batches, rows, write_us;
};
/* XACK + XDEL of ids and the counters, in one MULTI … EXEC. */
svc_status events_stream_ack(redisContext *c, const char *const *ids, size_t n, const struct events_ack_counts *k);

/* Adds accepted counts (per type) to EVENTS_STATS_KEY and total to the second's rate key. */
svc_status events_stream_count_accepted(redisContext *c, const unsigned long accepted[EVENTS_NTYPES],
                                        int64_t unix_s);

/* What backpressure and the stats look at. */
struct events_stream_state {
    long long depth;            /* XLEN: accepted, not yet written */
    int64_t oldest_ms;          /* Unix ms of the oldest entry (its id), 0 when empty */
    long long used_memory, maxmemory;
};
svc_status events_stream_sample(redisContext *c, struct events_stream_state *out);

#endif
