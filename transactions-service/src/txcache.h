/* transactions-service's Redis state: the user-existence cache and the idempotency in-flight
 * locks, read and taken together in ONE pipelined round trip before a write.
 *
 *   uexists:{user_id}      "active" | "deleted" | "missing", TTL USER_CHECK_CACHE_S (30 s), for
 *                          positive and negative answers of customers-service alike. A deletion
 *                          therefore takes up to that long to be noticed here (the deleted
 *                          user's own sessions are revoked at once by customers-service).
 *   idem:{user_id}:{key}   an in-flight lock (SET NX PX IDEMPOTENCY_LOCK_MS, random token value)
 *                          taken before the user check. A request that ends without a stored
 *                          result (refused, failed) releases it with a compare-and-delete script
 *                          (never deleting a lock that expired and was re-taken); one that stored
 *                          a result leaves it to expire, sparing the hot path a round trip. A
 *                          request meeting a held lock therefore looks for the key's stored
 *                          result in the database: found → replay (or 422 reused), not found →
 *                          the holder is still running → 409. The database row (user_id, key)
 *                          stays the durable record that decides replay / reuse.
 *
 * Redis down: preflight reports redis_ok = false and the request goes on without lock and cache
 * (a fresh customers-service check each time). Concurrent duplicates are then serialised by the
 * database instead: the second waits on the first's uncommitted key row and replays its result.
 *
 * Borrowed: cx, all strings. Thread-safe (uses the Redis pool). */
#ifndef TX_TXCACHE_H
#define TX_TXCACHE_H

#include <stdbool.h>

#include "customers_client.h"
#include "idempotency.h"

#define TXCACHE_MAX_USERS 2
#define TXCACHE_LOCK_KEY_MAX (sizeof "idem:" + SVC_UUID_LEN + 1 + IDEM_KEY_MAX + 1)

/* The lock release script and its SHA-1 (checked by a unit test). */
#define TXCACHE_UNLOCK_LUA "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
#define TXCACHE_UNLOCK_SHA "e9f69f2beb755be68b5e456ee2ce9aadfbc4ebf4"

struct txcache_preflight {
    bool redis_ok;                            /* false: Redis unreachable (no lock, no cache) */
    bool locked;                              /* we hold the lock below */
    bool busy;                                /* the lock is held by another request */
    enum user_state users[TXCACHE_MAX_USERS]; /* cached state, USER_UNKNOWN when not cached */
    char lock_key[TXCACHE_LOCK_KEY_MAX];
    char lock_token[33];
};

/* One round trip: GET uexists for each of ids (nids <= 2; an id may be NULL: not looked up) and
 * SET NX PX the lock of (user_id, key). Never fails: problems show in redis_ok. */
void txcache_preflight(struct tx_ctx *cx, const char *cid, const char *user_id, const char *key,
                       const char *const *ids, int nids, struct txcache_preflight *out);

/* Releases the lock when held (best effort: it expires anyway). Only for requests that stored
 * nothing under the key. */
void txcache_release(struct tx_ctx *cx, const char *cid, struct txcache_preflight *pf);

/* Caches customers-service's answers (USER_ACTIVE / DELETED / MISSING; others are skipped),
 * pipelined. */
void txcache_put_users(struct tx_ctx *cx, const char *const *ids, const enum user_state *states, int n);

/* Builds "idem:{user_id}:{key}" into out (TXCACHE_LOCK_KEY_MAX bytes). */
void txcache_lock_key(const char *user_id, const char *key, char *out);

/* "active"/"deleted"/"missing" <-> state; unknown text → USER_UNKNOWN. */
const char *txcache_state_str(enum user_state s);
enum user_state txcache_state_parse(const char *s, size_t len);

#endif
