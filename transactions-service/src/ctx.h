/* transactions-service context: the shared svc_app (first member) plus this service's settings,
 * the resilient client towards customers-service and its service token. Built in main.c before
 * serving; afterwards only pools, atomics and the (internally synchronised) client change. */
#ifndef TX_CTX_H
#define TX_CTX_H

#include <stdatomic.h>
#include <stdint.h>

#include "svc/app.h"
#include "svc/auth.h"
#include "svc/customers.h"
#include "svc/tcache.h"

struct svc_combiner;

struct tx_ctx {
    struct svc_app app;            /* must stay first: handlers get it from svc_req */
    struct svc_auth auth;
    struct svc_customers customers; /* the client of customers-service (owns its httpc and token) */
    struct svc_tcache *ucache_l1;  /* owned; NULL when USER_LOCAL_CACHE_MS=0 (Redis only) */
    struct svc_tcache *list_l1;    /* owned; the newest pages' in-process layer (txlist_cache.h), or NULL */
    struct svc_combiner *list_bumper; /* owned; combines the postings' version bumps, or NULL */
    struct svc_combiner *batcher;    /* owned; NULL when POST_BATCH_MAX=1 (every posting alone) */
    struct svc_pg_pool *batch_pg;  /* owned; the batcher's connections (POST_BATCH_LEADERS), or NULL */

    /* settings */
    long user_cache_s;             /* uexists:{id} TTL */
    long idem_ttl_s;               /* idempotency record lifetime */
    long user_local_cache_ms;      /* in-process layer in front of uexists:{id} (0 = off) */
    long list_cache_ttl_s;         /* newest-page cache (txlist_cache.h) page TTL; 0 = off */
    int64_t max_amount_cents;
    long post_batch_max;           /* postings per batch statement; 1 = no batching */
    long post_batch_leaders;       /* batch statements at once per instance */

    /* metrics */
    atomic_ulong *created[4];      /* by enum tx_type */
    atomic_ulong *replays;
    atomic_ulong *key_reused;
    atomic_ulong *in_progress;
    atomic_ulong *insufficient;
    atomic_ulong *ucache_hit;
    atomic_ulong *ucache_miss;
    atomic_ulong *list_cache_hit;  /* newest-page cache lookups */
    atomic_ulong *list_cache_miss;
    atomic_ulong *list_cache_bump_failures;
    atomic_ulong *customers_unavailable;
    atomic_ulong *post_batches;    /* statements run by the batcher */
    atomic_ulong *post_batched;    /* postings in them */
    atomic_ulong *post_alone;      /* postings a batch left to the posting function */
};

static inline struct tx_ctx *tx_ctx_of(struct svc_app *app) { return svc_app_service(app, struct tx_ctx); }

#endif
