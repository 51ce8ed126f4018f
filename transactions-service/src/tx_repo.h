/* SQL of transactions-service and nothing else.
 *
 * Writes are one call each to the posting functions of db/transactions/002_posting.sql (one round
 * trip; the hot one is a prepared statement, prepared on a connection the first time it is used
 * there). Reads return their JSON already built by PostgreSQL (transactions.tx_json) as text the
 * caller owns (free()).
 *
 * Every function takes a borrowed PGconn (the caller acquires and releases it) and uses
 * parameters only. Status results: SVC_OK, SVC_NOT_FOUND, SVC_UNPROCESSABLE / SVC_CONFLICT (a
 * ledger rule; *rule names it: "insufficient_funds", "already_reversed",
 * "transaction_not_reversible"), SVC_TIMEOUT (statement timeout), SVC_UNAVAILABLE (connection
 * lost), SVC_INTERNAL (anything else; *sqlstate receives the code for the caller's log). */
#ifndef TX_REPO_H
#define TX_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "svc/status.h"
#include "tx_request.h"

/* Pool connect hook (svc_pg_on_connect): prepares the POST statement on a new connection. Always
 * returns 0: on a database whose migrations have not run yet the function does not exist, and
 * tx_repo_post prepares lazily instead. */
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
    char sqlstate[6];      /* set with SVC_INTERNAL */
};

/* tx_id / rev_id: the id a new transaction gets (svc_uuid7); unused when the key replays. */
svc_status tx_repo_post(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                        const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
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

/* {data:[...], page, limit, total} for owner_id (either side). */
svc_status tx_repo_list(PGconn *c, const char *owner_id, const struct tx_list_query *q, char **json_out,
                        struct tx_repo_err *err);

/* [{key, count, total_in, total_out}] over owner_id's entries. */
svc_status tx_repo_summary(PGconn *c, const char *owner_id, const struct tx_summary_query *q, char **json_out,
                           struct tx_repo_err *err);

/* {user_id, balances:[{currency, balance}]}. */
svc_status tx_repo_balance(PGconn *c, const char *user_id, char **json_out, struct tx_repo_err *err);

#endif
