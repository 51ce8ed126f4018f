/* SQL of transactions-service and nothing else.
 *
 * Writes are one statement each (one round trip, one commit): a deposit or withdrawal is first
 * tried as a plain data-modifying statement, alone or combined with others (tx_repo_post_batch);
 * whatever that cannot decide, and every transfer and reversal, is one call of the posting
 * functions (db/transactions/003_single_row_postings.sql). The hot statements are prepared on a
 * connection when it opens, or the first time they are used there. Reads return their JSON
 * already built by PostgreSQL (transactions.tx_json) as text the caller owns (free()).
 *
 * Every function takes a borrowed PGconn (the caller acquires and releases it) and uses
 * parameters only. Status results: SVC_OK, SVC_NOT_FOUND, SVC_UNPROCESSABLE / SVC_CONFLICT (a
 * ledger rule; *rule names it: "insufficient_funds", "already_reversed",
 * "transaction_not_reversible"), SVC_TIMEOUT / SVC_UNAVAILABLE (as svc_pg_status classifies
 * them: a timeout; a lost connection or a server that cannot work), SVC_INTERNAL (anything else).
 * err->sqlstate always receives the failure's SQLSTATE ("" when none) for the caller's log. */
#ifndef TX_REPO_H
#define TX_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "svc/pg.h"
#include "svc/status.h"
#include "tx_request.h"

/* The connection a use case works on: borrowed from pool (svc_pg_acquire with its default
 * wait; NULL with *st SVC_UNAVAILABLE or SVC_TIMEOUT) and given back with tx_repo_close on every
 * path. transactions.c reaches the database only through this file, so its rules can be tested
 * with an in-memory tx_repo linked in its place (tests/unit/test_transactions_rules.c). */
PGconn *tx_repo_open(struct svc_pg_pool *pool, svc_status *st);
void tx_repo_close(struct svc_pg_pool *pool, PGconn *c);

/* Pool connect hook (svc_pg_on_connect) of both pools, the main one and the batcher's: sets
 * plan_cache_mode=force_generic_plan for the session, then prepares the posting and list
 * statements. Generic plans only, because PostgreSQL's own choice kept custom plans where the
 * generic one is as good and planning cost more than running (bench/README.md): the batch
 * statement's custom plan (estimated from each batch's array lengths) always looked cheaper, so
 * it was re-planned on every execution; the list's generic plan is costed from an average user
 * (a transfer recipient column with few distinct values looks like half the table), so it was
 * never chosen and every page was planned at bind. Every statement on these connections is
 * written to plan well without its values
 * (key lookups; index ranges, with absent bounds as ±infinity, never "$n IS NULL OR …" on an
 * indexed column). Returns -1 when the SET fails; a statement that cannot be prepared yet (before
 * the migrations) is prepared again on first use. */
int tx_repo_prepare(PGconn *c, void *unused);

/* What a posting function answered. verdict: "created", "replayed", "idempotency_key_reused",
 * "in_progress" (a request with the same key is being posted right now), "not_found". body is
 * owned (free()) and NULL unless created/replayed. */
struct tx_posting {
    char verdict[32];
    int status;
    char *body;
};

struct tx_repo_err {
    const char *rule;      /* static; set with SVC_UNPROCESSABLE / SVC_CONFLICT */
    char sqlstate[6];      /* of any failure, "" when the server sent none */
};

/* tx_id / rev_id: the id a new transaction gets (svc_uuid7); unused when the key replays. */
svc_status tx_repo_post(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                        const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                        struct tx_repo_err *err);

/* The posting function alone (transactions.post_transaction), which decides every case: for a
 * posting a batch left to be posted on its own. Same contract as tx_repo_post. */
svc_status tx_repo_post_alone(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                              const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                              struct tx_repo_err *err);

/* The most postings tx_repo_post_batch takes at once. */
#define TX_BATCH_MAX 64

/* One deposit or withdrawal of a batch (tx_repo_post_batch): its input, then what became of it. */
struct tx_batch_item {
    const char *tx_id, *user_id, *key, *hash;    /* borrowed */
    const struct tx_create_req *rq;              /* borrowed; TX_DEPOSIT or TX_WITHDRAWAL */
    /* out: SVC_OK posted (out filled, out.body owned by the item's caller); SVC_NOT_FOUND not
     * posted here, post it with tx_repo_post_alone (key in flight, used or expired, insufficient
     * funds, first posting in the currency, or the batch was rolled back); else a failure as in
     * tx_repo_post (SVC_UNAVAILABLE when the connection failed: the outcome is unknown, as with
     * any lost connection, and a retry with the same key replays or posts). */
    svc_status st;
    struct tx_posting out;
    struct tx_repo_err err;
};

/* Posts items[0..n-1] (1 <= n <= TX_BATCH_MAX) in ONE statement and one commit. The users of
 * the items must all differ. Every item's result is set. Returns SVC_OK when the statement ran
 * (some items may still be SVC_NOT_FOUND); otherwise what went wrong with the batch as a whole,
 * with err->sqlstate for the caller's log. The items then say what to do: SVC_NOT_FOUND when it
 * was rolled back for a reason of its own (post each alone); SVC_TIMEOUT / SVC_UNAVAILABLE when
 * the database timed out, is overloaded or the connection was lost (answer 503). One item runs
 * as the one-posting statement, cheaper than the batch form. */
svc_status tx_repo_post_batch(PGconn *c, struct tx_batch_item *const *items, int n, long ttl_s,
                              struct tx_repo_err *err);

svc_status tx_repo_reverse(PGconn *c, const char *rev_id, const char *admin_id, const char *key, const char *hash,
                           const char *tx_id, long ttl_s, struct tx_posting *out, struct tx_repo_err *err);

/* The stored, unexpired result of (user_id, key) without posting anything: verdict "replayed"
 * (same hash; status and body filled) or "idempotency_key_reused"; SVC_NOT_FOUND when none. */
svc_status tx_repo_find_key(PGconn *c, const char *user_id, const char *key, const char *hash,
                            struct tx_posting *out, struct tx_repo_err *err);

/* One transaction visible to viewer_id (either side of it), or any when as_admin. */
svc_status tx_repo_get(PGconn *c, const char *tx_id, const char *viewer_id, bool as_admin, char **json_out,
                       struct tx_repo_err *err);

/* One page of owner_id's transactions (either side), as svc_page_render makes it. */
svc_status tx_repo_list(PGconn *c, const char *owner_id, const struct tx_list_query *q, char **json_out,
                        struct tx_repo_err *err);

/* [{key, count, total_in, total_out}] over owner_id's entries. */
svc_status tx_repo_summary(PGconn *c, const char *owner_id, const struct tx_summary_query *q, char **json_out,
                           struct tx_repo_err *err);

/* {user_id, balances:[{currency, balance}]}. */
svc_status tx_repo_balance(PGconn *c, const char *user_id, char **json_out, struct tx_repo_err *err);

#endif
