/* Use case of GET /api/events/stats (admin): what the whole service (every instance) has
 * processed, from the counters in Redis, the stream itself and the dead-letter table.
 *
 *   {"types": {"view": {"accepted", "written", "duplicates", "dead"}, …},
 *    "events_per_s_1m": events accepted per second over the last 60 whole seconds,
 *    "batches": {"written", "avg_size", "avg_write_ms"},
 *    "queue": {"depth": accepted and not yet written, "lag_ms": age of the oldest of them},
 *    "dead": outstanding dead letters (null when the database is away)}
 *
 * types.*.dead counts every event ever dead-lettered; "dead" those not replayed yet. Accepted
 * counts reach Redis within a second (events_maint.h). Redis down → 503. */
#ifndef EVENTS_STATS_H
#define EVENTS_STATS_H

#include "svc/auth.h"
#include "svc/status.h"

struct sync_ctx;

struct svc_result events_stats(struct sync_ctx *cx, const char *cid, const struct svc_principal *who);

#endif
