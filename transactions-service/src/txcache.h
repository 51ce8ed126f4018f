/* transactions-service's user-existence cache, read before every write.
 *
 *   uexists:{user_id}   "active" | "deleted" | "missing" in Redis, TTL USER_CHECK_CACHE_S (30 s),
 *                       for positive and negative answers of customers-service alike.
 *
 * In front of Redis sits an in-process layer (svc/tcache.h) under the same key names, kept
 * coherent by Redis invalidation pushes and aged out after USER_LOCAL_CACHE_MS (<= 1 s): a hit
 * costs no round trip. A miss reads Redis (one pipelined round trip for both parties of a
 * transfer); a Redis miss asks customers-service and stores the answer. A deletion therefore
 * takes up to USER_CHECK_CACHE_S (+ the local age) to be noticed here; the deleted user's own
 * sessions are revoked at once by customers-service.
 *
 * Idempotency needs no Redis: the database decides replays and detects requests in flight
 * (db/transactions/003_single_row_postings.sql).
 *
 * Redis down: the local layer is flushed and disabled (svc/tcache.h) and every check asks
 * customers-service.
 *
 * Borrowed: cx, all strings. Thread-safe (tcache and the Redis pool are). */
#ifndef TX_TXCACHE_H
#define TX_TXCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "customers_client.h"

#define TXCACHE_MAX_USERS 2
#define TXCACHE_PREFIX "uexists:"

/* Fills states[i] for each non-NULL ids[i] (n <= TXCACHE_MAX_USERS) from the local layer, then
 * Redis; USER_UNKNOWN where neither knows. Never fails: Redis problems read as misses. */
void txcache_lookup(struct tx_ctx *cx, const char *cid, const char *const *ids, int n, enum user_state *states);

/* Caches customers-service's answers (USER_ACTIVE / DELETED / MISSING; others are skipped) in
 * Redis, pipelined. */
void txcache_put_users(struct tx_ctx *cx, const char *const *ids, const enum user_state *states, int n);

/* "active"/"deleted"/"missing" <-> state; unknown text → USER_UNKNOWN. */
const char *txcache_state_str(enum user_state s);
enum user_state txcache_state_parse(const char *s, size_t len);

#endif
