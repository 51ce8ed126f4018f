/* An in-process cache of Redis string values under one key prefix, kept coherent with Redis by
 * server-assisted client-side caching.
 *
 * One background connection per cache enables CLIENT TRACKING ... BCAST PREFIX <prefix> with
 * invalidations redirected to itself and subscribes to __redis__:invalidate: whenever any client
 * changes or deletes a key under the prefix (on any instance), Redis pushes the key's name and the
 * local entry is dropped. Entries also expire after max_age_ms (at most 1000), which bounds how stale
 * an entry can be if a push is late. While that connection is down the cache is flushed and
 * disabled (every get misses), so a lost push can never leave a stale entry behind.
 *
 * A get answers only when every push that has reached this process is applied: the thread is
 * parked waiting for the next one and its socket holds no unread byte (one FIONREAD); otherwise it
 * misses. Redis writes a change's pushes to the tracking connections no later than its answer to
 * the next command of the client that made the change, so a writer that waits for one more round
 * trip after the change (svc_tcache_barrier) knows that no instance serves the old value after
 * that: read-your-writes across instances, not only "stale for at most max_age_ms".
 *
 * A reader that misses takes svc_tcache_epoch() BEFORE reading from Redis or the database and
 * passes it to svc_tcache_put: the put is ignored if any invalidation arrived in between, so a value
 * read just before a change is never cached after that change's push.
 *
 * Synchronisation: fixed, direct-mapped slots guarded by striped mutexes; the epoch and the
 * enabled flag are atomics; the invalidation thread owns its redisContext. Ownership: values are
 * copied in and copied out (svc_tcache_get returns a malloc'd string the caller frees). */
#ifndef SVC_TCACHE_H
#define SVC_TCACHE_H

#include <stdbool.h>
#include "svc/log.h"
#include "svc/redisx.h"

struct svc_tcache;

struct svc_tcache_stats { unsigned long hits, misses, invalidations, resyncs; bool enabled; };

/* Starts the invalidation thread (it connects in the background and retries every second).
 * redis is copied. Returns NULL when out of memory or the thread cannot start. */
struct svc_tcache *svc_tcache_new(const struct svc_redis_config *redis, const char *prefix, int slots,
                                  long max_age_ms, const struct svc_logger *log);
void svc_tcache_free(struct svc_tcache *c);

char *svc_tcache_get(struct svc_tcache *c, const char *key);
unsigned long svc_tcache_epoch(struct svc_tcache *c);
void svc_tcache_put(struct svc_tcache *c, const char *key, const char *value, unsigned long epoch);
void svc_tcache_drop(struct svc_tcache *c, const char *key);
bool svc_tcache_enabled(struct svc_tcache *c);
/* One round trip (PING) on pool, to run after a change to keys under a cache's prefix has been
 * answered and before the change is acknowledged to its client: afterwards every instance's
 * tracking connection holds the change's push (see above). false when Redis did not answer. */
bool svc_tcache_barrier(struct svc_redis_pool *pool);
void svc_tcache_stats(struct svc_tcache *c, struct svc_tcache_stats *out);

#endif
