/* The global rate limit of ERP sync jobs, shared by every sync-service instance through Redis:
 * at most ERP_SYNC_RATE_MAX job starts in any window of ERP_SYNC_RATE_WINDOW_MS (a sliding
 * window, not fixed buckets, so two windows' worth can never start around a bucket boundary).
 *
 * One sorted set holds the start times (Redis server clock, ms) of the jobs admitted in the last
 * window. One Lua script drops the entries older than the window, admits the caller when fewer
 * than max remain (adding its member) or answers how long until the oldest leaves the window. A
 * job that is not admitted waits that long (the queue defers it, no attempt spent) instead of
 * failing, and, because the limit is one counter for all instances rather than a share per
 * instance, under a backlog every admission slot is used by whichever instance asks first.
 *
 * Keys: erp:rate (one hash slot). Thread-safe: each call borrows a pooled connection. */
#ifndef ERP_RATELIMIT_H
#define ERP_RATELIMIT_H

#include <stdbool.h>

#include "svc/redisx.h"

#define ERP_RATE_KEY "erp:rate"

/* max <= 0: no limit (always admitted, Redis not asked). member: unique per admission (e.g. the
 * job id and attempt). On SVC_OK, *admitted tells; when not, *wait_ms (> 0) is how long until a
 * slot frees; when admitted, *at_ms (may be NULL) is the admission's time on the Redis clock (Unix
 * ms; 0 without a limit). Errors: SVC_UNAVAILABLE / SVC_TIMEOUT (Redis), SVC_INTERNAL. */
svc_status erp_rate_take(struct svc_redis_pool *pool, const char *key, long max, long window_ms, const char *member,
                         bool *admitted, long *wait_ms, long long *at_ms);

#endif
