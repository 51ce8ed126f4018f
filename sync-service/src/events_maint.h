/* The maintenance thread of event ingestion (one per instance).
 *
 *  - Every 200 ms: XLEN, the oldest entry and Redis's used_memory (one pipelined round trip on
 *    a pooled connection) → the queue gauges, and the backpressure flag the handlers read: over
 *    EVENTS_QUEUE_HIGH_WATER events waiting, or used_memory over EVENTS_REDIS_MEMORY_HIGH_WATER
 *    (default 90 % of Redis's maxmemory when it has one), new events are answered 503 with
 *    Retry-After instead of being queued. Sampling keeps the check off the request path; the
 *    mark is soft by at most 200 ms of traffic, and Redis's own maxmemory refusal stays the hard
 *    limit (an XADD refused with OOM is a 503 as well).
 *  - Every second: the accepted counters collected by the handlers are added to the Redis stats
 *    hash and to the second's rate key (one round trip instead of one per request; a SIGKILL
 *    loses at most a second of these counts, never an event).
 *  - At start and every EVENTS_MAINTENANCE_INTERVAL_S: sync.events_maintain creates the
 *    partitions ahead and drops those past the retention.
 *
 * Ownership: cx is borrowed; the thread is joined by events_service_stop. */
#ifndef EVENTS_MAINT_H
#define EVENTS_MAINT_H

struct sync_ctx;

/* One partition maintenance pass on a pooled connection; 0, or -1 when the database is away. */
int events_maintain_partitions(struct sync_ctx *cx);
/* The thread body (arg: struct sync_ctx *). */
void *events_maint_main(void *arg);
/* Adds the accepted counters collected so far to Redis (also called at stop). */
void events_report_accepted(struct sync_ctx *cx);

#endif
