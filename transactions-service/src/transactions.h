/* Transaction use cases: validation, authorization, user checks, idempotency and the calls into
 * the ledger. No HTTP and no SQL text.
 *
 * Write path (POST /api/transactions), in order:
 *   1. the caller must be a user (service tokens are refused), the Idempotency-Key valid and the
 *      body valid (400s: nothing is remembered for the key, the client may fix and retry);
 *   2. the user-existence check of caller and recipient: the in-process cache, then Redis (one
 *      pipelined round trip), see txcache.h;
 *   3. cache misses are looked up in customers-service (503 customers_unavailable with
 *      Retry-After when it cannot answer: nothing written), answers cached;
 *   4. the posting, one database statement: deposits and withdrawals are combined with those
 *      arriving at the same moment into one statement and one commit (svc/combiner.h,
 *      tx_repo_post_batch); what a batch leaves (a key in flight or used, insufficient funds, a
 *      first posting in a currency) and transfers go to transactions.post_transaction, which
 *      replays, refuses a reused key (422) or one in flight (409), or posts, atomically.
 * When step 3 refuses the request (customers down, recipient gone, caller gone), the key's
 * stored result is looked up first: a request that already succeeded is replayed, as Stripe
 * does, instead of being refused because the world changed since.
 *
 * Authorization: reads are limited to the caller's own transactions (either side of a transfer);
 * anything else is 404, so ids cannot be probed. Admins may read any and name user_id=.
 * Reversal is admin-only (403 otherwise).
 *
 * Results carry their own headers (Retry-After, Idempotent-Replayed: true on a replay).
 * Ownership: results own their bodies (handed to svc_respond_result). Borrowed: everything else. */
#ifndef TX_TRANSACTIONS_H
#define TX_TRANSACTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"
#include "svc/paging.h"

struct svc_combiner_item;

/* The batcher's exec (svc/combiner.h) over struct tx_batch_item data: one pooled connection, one
 * tx_repo_post_batch. ctx is the struct tx_ctx. */
void tx_run_batch(void *ctx, struct svc_combiner_item **items, int n);

struct svc_result tx_create(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                           const char *idem_key, const json_t *body);
struct svc_result tx_reverse(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *idem_key, const char *tx_id);
struct svc_result tx_get(struct tx_ctx *cx, const char *cid, const struct svc_principal *who, const char *tx_id);
struct svc_result tx_list(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                         const struct svc_page_params *paging, const char *type, const char *status,
                         const char *from, const char *to, const char *user_id);
struct svc_result tx_summary(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *group_by, const char *from, const char *to, const char *user_id,
                            const char *currency);
struct svc_result tx_balance(struct tx_ctx *cx, const char *cid, const struct svc_principal *who);

#endif
