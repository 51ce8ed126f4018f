/* SQL of transactions-service; see tx_repo.h.
 *
 * The POST statement is prepared when a pooled connection opens (tx_repo_prepare). That hook
 * also runs for the connection that applies the migrations, before the functions exist, so it
 * may fail there; executing an unknown prepared statement fails with SQLSTATE 26000 and changes
 * nothing (autocommit), so tx_repo_post then prepares and executes again. */
#include "tx_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POST_STMT "tx_post_v2"
#define POST_SQL                                                                                   \
    "SELECT verdict, status, body FROM transactions.post_transaction($1::uuid, $2::uuid, $3, $4, $5, " \
    "$6::numeric, $7, $8, $9::uuid, $10::int)"

static svc_status map_error(PGconn *c, PGresult *res, struct tx_repo_err *err) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (!state) return PQstatus(c) == CONNECTION_OK ? SVC_INTERNAL : SVC_UNAVAILABLE;
    if (!strcmp(state, "TX001")) { err->rule = "insufficient_funds"; return SVC_UNPROCESSABLE; }
    if (!strcmp(state, "TX002")) { err->rule = "already_reversed"; return SVC_CONFLICT; }
    if (!strcmp(state, "TX003")) { err->rule = "transaction_not_reversible"; return SVC_UNPROCESSABLE; }
    if (!strcmp(state, "57014")) return SVC_TIMEOUT;                  /* statement timeout */
    if (!strncmp(state, "08", 2) || !strcmp(state, "57P01")) return SVC_UNAVAILABLE;
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state);
    return SVC_INTERNAL;
}

static bool is_state(PGresult *res, const char *code) {
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s && !strcmp(s, code);
}

static svc_status posting_result(PGconn *c, PGresult *res, struct tx_posting *out, struct tx_repo_err *err) {
    svc_status st;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = map_error(c, res, err);
    } else if (PQntuples(res) != 1 || PQnfields(res) != 3 || PQgetisnull(res, 0, 0)) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "XXSHP");
        st = SVC_INTERNAL;
    } else {
        snprintf(out->verdict, sizeof out->verdict, "%s", PQgetvalue(res, 0, 0));
        out->status = atoi(PQgetvalue(res, 0, 1));
        st = SVC_OK;
        if (!PQgetisnull(res, 0, 2) && !(out->body = strdup(PQgetvalue(res, 0, 2)))) st = SVC_INTERNAL;
    }
    PQclear(res);
    return st;
}

int tx_repo_prepare(PGconn *c, void *unused) {
    PGresult *res = PQprepare(c, POST_STMT, POST_SQL, 10, NULL);
    PQclear(res);
    return 0;
}

svc_status tx_repo_post(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                        const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                        struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_s);
    const char *v[10] = {tx_id, user_id, key, hash, tx_type_name(rq->type), rq->amount, rq->currency,
                        rq->description, rq->to_user_id[0] ? rq->to_user_id : NULL, ttl};
    PGresult *res = PQexecPrepared(c, POST_STMT, 10, v, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR && is_state(res, "26000")) {
        PQclear(res);
        res = PQprepare(c, POST_STMT, POST_SQL, 10, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            svc_status st = map_error(c, res, err);
            PQclear(res);
            return st;
        }
        PQclear(res);
        res = PQexecPrepared(c, POST_STMT, 10, v, NULL, NULL, 0);
    }
    return posting_result(c, res, out, err);
}

svc_status tx_repo_reverse(PGconn *c, const char *rev_id, const char *admin_id, const char *key, const char *hash,
                           const char *tx_id, long ttl_s, struct tx_posting *out, struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_s);
    const char *v[6] = {rev_id, admin_id, key, hash, tx_id, ttl};
    PGresult *res = PQexecParams(c,
                                 "SELECT verdict, status, body FROM transactions.reverse_transaction("
                                 "$1::uuid, $2::uuid, $3, $4, $5::uuid, $6::int)",
                                 6, NULL, v, NULL, NULL, 0);
    return posting_result(c, res, out, err);
}

svc_status tx_repo_find_key(PGconn *c, const char *user_id, const char *key, const char *hash,
                            struct tx_posting *out, struct tx_repo_err *err) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    const char *v[3] = {user_id, key, hash};
    PGresult *res = PQexecParams(c,
                                 "SELECT CASE WHEN t.request_hash = $3 THEN 'replayed' ELSE 'idempotency_key_reused' END,"
                                 "       CASE WHEN t.request_hash = $3 THEN 201 ELSE 422 END,"
                                 "       CASE WHEN t.request_hash = $3 THEN transactions.tx_json_original(t)::text END"
                                 "  FROM transactions.transactions t"
                                 " WHERE t.created_by = $1::uuid AND t.idem_key = $2 AND t.key_expires_at > now()",
                                 3, NULL, v, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 0) {
        PQclear(res);
        return SVC_NOT_FOUND;
    }
    return posting_result(c, res, out, err);
}

static svc_status one_text(PGconn *c, const char *sql, int n, const char *const *v, char **out,
                           struct tx_repo_err *err) {
    *out = NULL;
    memset(err, 0, sizeof *err);
    PGresult *res = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    svc_status st;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) st = map_error(c, res, err);
    else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) st = SVC_NOT_FOUND;
    else st = (*out = strdup(PQgetvalue(res, 0, 0))) ? SVC_OK : SVC_INTERNAL;
    PQclear(res);
    return st;
}

svc_status tx_repo_get(PGconn *c, const char *tx_id, const char *viewer_id, bool as_admin, char **json_out,
                       struct tx_repo_err *err) {
    const char *v[3] = {tx_id, as_admin ? "t" : "f", viewer_id};
    return one_text(c,
                    "SELECT transactions.tx_json(t)::text FROM transactions.transactions t "
                    "WHERE t.id = $1::uuid AND ($2::bool OR t.user_id = $3::uuid OR t.to_user_id = $3::uuid)",
                    3, v, json_out, err);
}

/* Time filter shared by list and summary: $from inclusive; $to inclusive (a date covers its day). */
#define TIME_FILTER(col, from, to, to_is_date)                                                     \
    "(" from "::timestamptz IS NULL OR " col " >= " from "::timestamptz) AND (" to                 \
    "::timestamptz IS NULL OR CASE WHEN " to_is_date "::bool THEN " col " < " to                   \
    "::timestamptz + interval '1 day' ELSE " col " <= " to "::timestamptz END)"

/* Both sides of a transfer are indexed separately ((user_id, created_at, id) and
 * (to_user_id, created_at, id)), so a page is the merge of two index-ordered scans that each read
 * at most offset + limit rows, and the total is two index counts; a user never appears on both
 * sides of one transaction (no transfers to oneself), so nothing is counted twice. */
#define LIST_FILTER                                                                                \
    "($2::text IS NULL OR t.type = $2) AND ($3::text IS NULL OR t.status = $3) AND "               \
    TIME_FILTER("t.created_at", "$4", "$5", "$6")

svc_status tx_repo_list(PGconn *c, const char *owner_id, const struct tx_list_query *q, char **json_out,
                        struct tx_repo_err *err) {
    char page[24], limit[24], offset[24];
    snprintf(page, sizeof page, "%ld", q->page);
    snprintf(limit, sizeof limit, "%ld", q->limit);
    snprintf(offset, sizeof offset, "%ld", (q->page - 1) * q->limit);
    const char *v[9] = {owner_id, q->type, q->status, q->from.set ? q->from.text : NULL,
                        q->to.set ? q->to.text : NULL, q->to.date_only ? "t" : "f", page, limit, offset};
    return one_text(c,
                    "WITH p AS ("
                    "  SELECT * FROM ("
                    "    (SELECT t.* FROM transactions.transactions t WHERE t.user_id = $1::uuid AND " LIST_FILTER
                    "      ORDER BY t.created_at DESC, t.id DESC LIMIT $8::bigint + $9::bigint)"
                    "    UNION ALL"
                    "    (SELECT t.* FROM transactions.transactions t WHERE t.to_user_id = $1::uuid AND " LIST_FILTER
                    "      ORDER BY t.created_at DESC, t.id DESC LIMIT $8::bigint + $9::bigint)"
                    "  ) u ORDER BY u.created_at DESC, u.id DESC LIMIT $8::bigint OFFSET $9::bigint) "
                    "SELECT json_build_object("
                    "  'data', COALESCE((SELECT json_agg(transactions.tx_json(p::transactions.transactions)"
                    "                                     ORDER BY p.created_at DESC, p.id DESC) FROM p), '[]'::json),"
                    "  'page', $7::bigint, 'limit', $8::int,"
                    "  'total', (SELECT count(*) FROM transactions.transactions t WHERE t.user_id = $1::uuid AND " LIST_FILTER ")"
                    "         + (SELECT count(*) FROM transactions.transactions t WHERE t.to_user_id = $1::uuid AND " LIST_FILTER "))::text",
                    9, v, json_out, err);
}

/* The account's legs: each transaction naming the owner on either side (user_id or to_user_id,
 * both indexed; reversals copy the parties of their original) contributes +amount when the owner
 * is its credit account and -amount when the debit account. */
svc_status tx_repo_summary(PGconn *c, const char *owner_id, const struct tx_summary_query *q, char **json_out,
                           struct tx_repo_err *err) {
    const char *v[6] = {owner_id, q->from.set ? q->from.text : NULL, q->to.set ? q->to.text : NULL,
                        q->to.date_only ? "t" : "f", tx_group_by_name(q->group_by), q->currency};
    return one_text(c,
                    "WITH e AS ("
                    "  SELECT t.type, t.created_at,"
                    "         CASE WHEN t.credit_account = $1::uuid THEN t.amount ELSE -t.amount END AS amount"
                    "    FROM transactions.transactions t"
                    "   WHERE t.user_id = $1::uuid AND t.currency = $6 AND " TIME_FILTER("t.created_at", "$2", "$3", "$4")
                    "  UNION ALL"
                    "  SELECT t.type, t.created_at,"
                    "         CASE WHEN t.credit_account = $1::uuid THEN t.amount ELSE -t.amount END"
                    "    FROM transactions.transactions t"
                    "   WHERE t.to_user_id = $1::uuid AND t.currency = $6 AND " TIME_FILTER("t.created_at", "$2", "$3", "$4")
                    "), g AS ("
                    "  SELECT CASE $5::text"
                    "           WHEN 'day' THEN to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
                    "           WHEN 'month' THEN to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM')"
                    "           ELSE e.type END AS key,"
                    "         count(*) AS n,"
                    "         round(COALESCE(sum(e.amount) FILTER (WHERE e.amount > 0), 0), 2) AS total_in,"
                    "         round(COALESCE(-sum(e.amount) FILTER (WHERE e.amount < 0), 0), 2) AS total_out"
                    "    FROM e GROUP BY 1) "
                    "SELECT COALESCE(json_agg(json_build_object('key', key, 'count', n, 'total_in', total_in::text,"
                    "                                          'total_out', total_out::text) ORDER BY key),"
                    "                '[]'::json)::text FROM g",
                    6, v, json_out, err);
}

svc_status tx_repo_balance(PGconn *c, const char *user_id, char **json_out, struct tx_repo_err *err) {
    const char *v[1] = {user_id};
    return one_text(c,
                    "SELECT json_build_object('user_id', $1::uuid, 'balances', COALESCE("
                    "  (SELECT json_agg(json_build_object('currency', b.currency, 'balance', b.balance::text)"
                    "                   ORDER BY b.currency)"
                    "     FROM transactions.balances b WHERE b.user_id = $1::uuid), '[]'::json))::text",
                    1, v, json_out, err);
}
