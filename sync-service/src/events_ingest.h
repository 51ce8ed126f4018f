/* Use cases of POST /api/events and POST /api/events/batch: no HTTP, no SQL.
 *
 * Order of checks, cheapest first, so that an overloaded or abusive moment costs little:
 *   1. backpressure (the maintenance thread's flag: stream or Redis memory over a high-water
 *      mark) → 503 events_backlogged, Retry-After EVENTS_BUSY_RETRY_AFTER_S;
 *   2. the client's rate limit, one unit per event → 429 rate_limited, Retry-After;
 *   3. validation (events_validate.h) → 422 validation_failed, 403 forbidden;
 *   4. one round trip to Redis (events_stream_append; a batch is one MULTI … EXEC, all or
 *      none) → 503 queue_unavailable, Retry-After 1, when Redis is down or refuses (OOM).
 *      Requests that arrive while such a round trip is in flight are combined into the next one
 *      (svc/combiner.h, up to EVENTS_APPEND_BATCH_MAX requests per pipeline): one write and one
 *      read for all of them, in the service and in Redis, instead of one each — the syscalls and
 *      context switches of a round trip were most of an event's cost. Each request still gets
 *      its own outcome, and an idle service sends a lone request at once.
 * Only then 202: the event is in the stream (written to Redis's append-only file before Redis
 * answered; see docs/operations.md for what a crash can still lose).
 *
 * A batch answers 202 whenever its envelope is valid ({"events": [1..500 items]}), with a result
 * per item: the valid ones are accepted even when others are rejected. Nothing is queued for a
 * request answered 4xx or 503.
 *
 * Results: on success raw/body holds the JSON (the route answers 202); 429 and 503 carry their
 * Retry-After in retry_after_s. Borrowed: cx, who, body. */
#ifndef EVENTS_INGEST_H
#define EVENTS_INGEST_H

#include <jansson.h>

#include "svc/auth.h"
#include "svc/status.h"

struct sync_ctx;
struct svc_combiner_item;

struct svc_result events_ingest_one(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                    const json_t *body);
struct svc_result events_ingest_batch(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                      const json_t *body);

/* The combiner's exec (ctx: struct sync_ctx): one pooled Redis connection, every item's
 * commands queued, then every item's replies read. */
void events_ingest_append_exec(void *ctx, struct svc_combiner_item **items, int n);

#endif
