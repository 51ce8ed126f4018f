/* Transaction use cases: validation, authorization, user checks, idempotency and the calls into
 * the ledger. No HTTP and no SQL text.
 *
 * Write path (POST /api/transactions), in order:
 *   1. the caller must be a user (service tokens are refused), the Idempotency-Key valid and the
 *      body valid (400s: nothing is remembered for the key, the client may fix and retry);
 *   2. ONE Redis round trip: the user-existence cache for caller and recipient + the key's
 *      in-flight lock; when another request holds it, the key's stored result is the answer if
 *      there is one, else 409 idempotency_request_in_progress;
 *   3. cache misses are looked up in customers-service (503 customers_unavailable with
 *      Retry-After when it cannot answer: nothing written), answers cached;
 *   4. ONE database call (transactions.post_transaction) that replays, refuses a reused key,
 *      or posts the transaction and stores its response under the key, atomically;
 *   5. the lock is released unless a result was stored (then it simply expires: see txcache.h).
 * When step 3 refuses the request (customers down, recipient gone, caller gone), the key's
 * stored result is looked up first: a request that already succeeded is replayed, as Stripe
 * does, instead of being refused because the world changed since.
 *
 * Authorization: reads are limited to the caller's own transactions (either side of a transfer);
 * anything else is 404, so ids cannot be probed. Admins may read any and name user_id=.
 * Reversal is admin-only (403 otherwise).
 *
 * Ownership: results own their bodies (handed to svc_respond_result). Borrowed: everything else. */
#ifndef TX_TRANSACTIONS_H
#define TX_TRANSACTIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctx.h"

struct tx_answer {
    struct svc_result res;
    bool replayed;              /* answer with Idempotent-Replayed: true */
    uint32_t retry_after_s;     /* > 0: answer with Retry-After */
};

struct tx_answer tx_create(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                           const char *idem_key, const json_t *body);
struct tx_answer tx_reverse(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *idem_key, const char *tx_id);
struct tx_answer tx_get(struct tx_ctx *cx, const char *cid, const struct svc_principal *who, const char *tx_id);
struct tx_answer tx_list(struct tx_ctx *cx, const char *cid, const struct svc_principal *who, const char *page,
                         const char *limit, const char *type, const char *status, const char *from,
                         const char *to, const char *user_id);
struct tx_answer tx_summary(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *group_by, const char *from, const char *to, const char *user_id,
                            const char *currency);
struct tx_answer tx_balance(struct tx_ctx *cx, const char *cid, const struct svc_principal *who);

#endif
