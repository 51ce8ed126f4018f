/* transactions-service's cache of each user's newest page of transactions, in Redis.
 *
 *   txver:{user_id}            the version of the user's list: 16 random hex digits, made by
 *                              the first reader that misses (SET NX, before it reads the page)
 *                              and replaced (SET XX, EX 86400) after every posting that names the
 *                              user on either side, before that posting is answered. A user whose
 *                              list nobody reads has none, so such postings change and push
 *                              nothing, and the in-process layer remembers it ("-", dropped by
 *                              the push of a version being made): the next postings of that user
 *                              skip Redis altogether.
 *   txpage:{user_id}:{limit}   "{version}\n{page}": the answer to GET /api/transactions?limit=
 *                              {limit} with no cursor, filter, total or page (the hot read: a
 *                              user's latest activity), TTL TX_LIST_CACHE_TTL_S.
 *
 * A read that the local layer (below) cannot answer is one MGET of both keys: the stored page is the answer when it carries the current
 * version. Otherwise the page is read from PostgreSQL and stored under the version read BEFORE
 * that query, so a page that raced a posting is stored under the older version and is never
 * served after the posting's bump. Read-your-writes follows: a posting is answered only after
 * its bump, and every instance reads the same keys. Versions are random, not counters, so a
 * version key that expires and is created again cannot match an old page.
 *
 * In front of Redis sits an in-process layer (svc/tcache.h, tracking the prefix "txver:", entries
 * at most USER_LOCAL_CACHE_MS old, 0 = off): "txver:{user}" -> "{limit}\n{page}", one limit per
 * user, filled from either Redis path above with the epoch taken before it. A bump drops this
 * instance's entry, SETs the version (Redis pushes the key's name to every instance's layer) and
 * makes one more round trip (svc_tcache_barrier) before the posting is answered; a local get
 * answers only when every push that reached the process is applied, so the local layer keeps
 * read-your-writes too, and a hit costs no round trip at all.
 *
 * Limits: a bump that fails (Redis unreachable at that moment; logged and counted in
 * transactions_list_cache_bump_failures_total) or rows written outside this service leave a stale
 * page for at most TX_LIST_CACHE_TTL_S. Redis trouble is never an error: reads then go to
 * PostgreSQL. TX_LIST_CACHE_TTL_S=0 turns the cache off (reads and bumps alike).
 *
 * Thread-safe (the Redis pool is). Borrowed: cx and every string; txlist_cache_get's *page is
 * the caller's (free()). */
#ifndef TX_TXLIST_CACHE_H
#define TX_TXLIST_CACHE_H

#include <stdbool.h>

#include "ctx.h"

#define TXLIST_VERSION_LEN 16         /* hex digits of a version */
#define TXLIST_PAGE_MAX (64 * 1024)   /* larger pages are not stored */

/* A hit: true with *page (the page's JSON text, malloc'd). A miss: false with version set to the
 * current version and *epoch to the local layer's epoch, both to pass to txlist_cache_put after
 * reading the page; version "" when Redis could not be asked (then there is nothing to put). */
bool txlist_cache_get(struct tx_ctx *cx, const char *owner, int limit, char **page,
                      char version[TXLIST_VERSION_LEN + 1], unsigned long *epoch);

/* Stores page under version, in Redis and the local layer (no-op for version "" or a page over
 * TXLIST_PAGE_MAX). */
void txlist_cache_put(struct tx_ctx *cx, const char *owner, int limit, const char *version, const char *page,
                      unsigned long epoch);

/* Gives each non-NULL users[i] a new version: one pipelined round trip, then the barrier. With
 * cx->list_bumper (n <= 2), the bumps of postings answered at the same moment share that round
 * trip and barrier (svc/combiner.h): one write and one push per instance for the group instead
 * of one per posting, which cost tx_post a third of its throughput. */
void txlist_cache_bump(struct tx_ctx *cx, const char *cid, const char *const *users, int n);

/* The bump combiner's exec (svc/combiner.h); ctx is the struct tx_ctx. */
struct svc_combiner_item;
void txlist_cache_run_bumps(void *ctx, struct svc_combiner_item **items, int n);

#endif
