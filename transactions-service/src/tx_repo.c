/* SQL of transactions-service; see tx_repo.h.
 *
 * The POST statements are prepared when a pooled connection opens (tx_repo_prepare). That hook
 * also runs for the connection that applies the migrations, before the functions exist, so it
 * may fail there; executing an unknown prepared statement fails with SQLSTATE 26000 and changes
 * nothing (autocommit), so tx_repo_post then prepares and executes again.
 *
 * Deposits and withdrawals first try ONE plain statement (below), without the plpgsql function,
 * whose own interpretation (expressions, statement set-up inside SPI) was a large share of the
 * machine at full POST load. The statement does the common case exactly as the function does —
 * the key's advisory lock, the row with its legs and key, the balance — and returns the new row's
 * timestamp, from which tx_json.c writes the 201 body. Anything else (a key in flight, a used or
 * expired key, insufficient funds) does nothing in it and is then decided by
 * transactions.post_transaction, which knows every case. No speculative insertion (ON CONFLICT),
 * no lock CTE, no JSON built in SQL, and the deposit's credit is a plain UPDATE: each does less
 * work per posting. The measurements behind these choices are in bench/README.md (*Measurements
 * behind the code*). */
#include "tx_repo.h"

#include "svc/pg.h"
#include "svc/pg_array.h"
#include "svc/pgbin.h"

#include "tx_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POST_STMT "tx_post_v2"
#define POST_SQL                                                                                   \
    "SELECT verdict, status, body FROM transactions.post_transaction($1::uuid, $2::uuid, $3, $4, $5, " \
    "$6::numeric, $7, $8, $9::uuid, $10::int)"

/* The columns of a new row, in the order the fast statements give them. */
#define TX_COLUMNS                                                                                 \
    "id, type, status, amount, currency, description, user_id, to_user_id, reverses_id, reversed_by, " \
    "created_by, created_at, updated_at, debit_account, credit_account, idem_key, request_hash, key_expires_at"
#define EXTERNAL_ACCOUNT "'00000000-0000-0000-0000-000000000000'::uuid"
/* $1 id, $2 user, $3 key, $4 hash, $5 amount, $6 currency, $7 description, $8 key TTL (s) */
#define TRY_KEY_LOCK "pg_try_advisory_xact_lock(1, hashtext($2::uuid::text || '/' || $3))"
#define NEW_ROW(type, debit, credit)                                                               \
    "SELECT $1::uuid, '" type "', 'completed', $5::numeric(20,2), $6, $7, $2::uuid, NULL, NULL, NULL, $2::uuid, " \
    "now(), now(), " debit ", " credit ", $3, $4, now() + make_interval(secs => $8::int)"
/* The new row's created_at as extract(epoch …) text; the body is built from it in C (tx_json.h). */
#define ANSWER " SELECT extract(epoch FROM t.created_at)::text FROM t"

/* The credit first, as a plain UPDATE of an existing balance row (taking the key's lock in its
 * WHERE), then the row from the credit. A user's first deposit in a currency finds no balance
 * row and does nothing here: the posting function inserts it. No ON CONFLICT anywhere: should the
 * key be used already, the unique index fails the whole statement and the credit with it (23505,
 * rare: the replay path), which costs less per posting than speculative insertion. */
#define DEPOSIT_STMT "tx_deposit_v3"
static const char DEPOSIT_SQL[] =
    "WITH c AS (UPDATE transactions.balances SET balance = balance + $5::numeric(20,2), updated_at = now()"
    "        WHERE user_id = $2::uuid AND currency = $6 AND " TRY_KEY_LOCK
    "        RETURNING 1),"
    " t AS (INSERT INTO transactions.transactions AS x (" TX_COLUMNS ") "
    NEW_ROW("deposit", EXTERNAL_ACCOUNT, "$2::uuid") " FROM c RETURNING x.created_at)"
    ANSWER;

/* The conditional debit first (taking the key's lock), then the row from the debit. Should the
 * key be used already, the unique index fails the whole statement and the debit with it. */
#define WITHDRAW_STMT "tx_withdraw_v2"
static const char WITHDRAW_SQL[] =
    "WITH d AS (UPDATE transactions.balances SET balance = balance - $5::numeric(20,2), updated_at = now()"
    "        WHERE user_id = $2::uuid AND currency = $6 AND balance >= $5::numeric(20,2) AND " TRY_KEY_LOCK
    "        RETURNING 1),"
    " t AS (INSERT INTO transactions.transactions AS x (" TX_COLUMNS ") "
    NEW_ROW("withdrawal", "$2::uuid", EXTERNAL_ACCOUNT) " FROM d RETURNING x.created_at)"
    ANSWER;

/* Many deposits and withdrawals in one statement (tx_repo_post_batch), as arrays unnested into
 * rows: $1 ids, $2 users, $3 keys, $4 request hashes, $5 amounts, $6 currencies, $7 descriptions,
 * $8 deposit (true) or withdrawal (false), $9 key TTL (s). Per posting it does what the
 * one-posting statements do, with two additions that let one posting be left out without failing
 * the others:
 * - l locks the batch's balance rows in (user_id, currency) order, the order every posting path
 *   locks balances in, so two batches (two instances) or a batch and a transfer cannot deadlock;
 * - a posting whose key is already used is left out (NOT EXISTS) instead of failing the unique
 *   index, which would roll the whole batch back. A key used by a commit racing this statement
 *   still fails it (23505): the caller then posts each item alone.
 * The credit/debit, the key's advisory lock (tried, never waited for) and the row are as in
 * DEPOSIT_SQL / WITHDRAW_SQL; what is not posted (no balance row yet, not enough funds, key in
 * flight or used) returns no row and is decided by the posting function afterwards. */
#define BATCH_STMT "tx_post_batch_v1"
static const char BATCH_SQL[] =
    "WITH i AS MATERIALIZED (SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[],"
    "        $5::numeric(20,2)[], $6::text[], $7::text[], $8::bool[])"
    "        AS u(id, user_id, key, hash, amount, currency, description, deposit)),"
    " l AS (SELECT b.user_id, b.currency FROM transactions.balances b"
    "         JOIN i ON b.user_id = i.user_id AND b.currency = i.currency"
    "        ORDER BY b.user_id, b.currency FOR UPDATE OF b),"
    " c AS (UPDATE transactions.balances b"
    "          SET balance = CASE WHEN i.deposit THEN b.balance + i.amount ELSE b.balance - i.amount END,"
    "              updated_at = now()"
    "         FROM l JOIN i ON i.user_id = l.user_id AND i.currency = l.currency"
    "        WHERE b.user_id = l.user_id AND b.currency = l.currency AND (i.deposit OR b.balance >= i.amount)"
    "          AND NOT EXISTS (SELECT 1 FROM transactions.transactions k"
    "                           WHERE k.created_by = i.user_id AND k.idem_key = i.key)"
    "          AND pg_try_advisory_xact_lock(1, hashtext(i.user_id::text || '/' || i.key))"
    "        RETURNING i.*),"
    " t AS (INSERT INTO transactions.transactions AS x (" TX_COLUMNS ")"
    "       SELECT c.id, CASE WHEN c.deposit THEN 'deposit' ELSE 'withdrawal' END, 'completed', c.amount,"
    "              c.currency, c.description, c.user_id, NULL, NULL, NULL, c.user_id, now(), now(),"
    "              CASE WHEN c.deposit THEN " EXTERNAL_ACCOUNT " ELSE c.user_id END,"
    "              CASE WHEN c.deposit THEN c.user_id ELSE " EXTERNAL_ACCOUNT " END,"
    "              c.key, c.hash, now() + make_interval(secs => $9::int)"
    "         FROM c RETURNING x.id, x.created_at)"
    " SELECT t.id::text, extract(epoch FROM t.created_at)::text FROM t";

PGconn *tx_repo_open(struct svc_pg_pool *pool, svc_status *st) { return svc_pg_acquire(pool, -1, st); }

void tx_repo_close(struct svc_pg_pool *pool, PGconn *c) { svc_pg_release(pool, c); }

/* The ledger's own SQLSTATEs (raised by the posting functions) name a rule; everything else is
 * the shared classification (svc/pg.h), where only an outage or a timeout is not a bug here. */
static svc_status failure(PGconn *c, PGresult *res, struct tx_repo_err *err) {
    struct svc_pg_error e;
    svc_status st = svc_pg_status(c, res, &e);
    memcpy(err->sqlstate, e.sqlstate, sizeof err->sqlstate);
    if (!strcmp(e.sqlstate, "TX001")) { err->rule = "insufficient_funds"; return SVC_UNPROCESSABLE; }
    if (!strcmp(e.sqlstate, "TX002")) { err->rule = "already_reversed"; return SVC_CONFLICT; }
    if (!strcmp(e.sqlstate, "TX003")) { err->rule = "transaction_not_reversible"; return SVC_UNPROCESSABLE; }
    return st == SVC_UNAVAILABLE || st == SVC_TIMEOUT ? st : SVC_INTERNAL;
}

static bool is_state(PGresult *res, const char *code) {
    const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return s && !strcmp(s, code);
}

static svc_status posting_result(PGconn *c, PGresult *res, struct tx_posting *out, struct tx_repo_err *err) {
    svc_status st;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = failure(c, res, err);
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

static void prepare_list(PGconn *c);

int tx_repo_prepare(PGconn *c, void *unused) {
    PGresult *res = PQexec(c, "SET plan_cache_mode = force_generic_plan");
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    PQclear(res);
    if (rc) return rc;
    PQclear(PQprepare(c, POST_STMT, POST_SQL, 10, NULL));
    PQclear(PQprepare(c, DEPOSIT_STMT, DEPOSIT_SQL, 8, NULL));
    PQclear(PQprepare(c, WITHDRAW_STMT, WITHDRAW_SQL, 8, NULL));
    PQclear(PQprepare(c, BATCH_STMT, BATCH_SQL, 9, NULL));
    prepare_list(c);
    return 0;
}

/* Executes a prepared statement, preparing it first when this session does not know it.
 * binary: the result in binary format (svc/pgbin.h). */
static PGresult *exec_prepared_as(PGconn *c, const char *name, const char *sql, int n, const char *const *v,
                                  int binary) {
    PGresult *res = PQexecPrepared(c, name, n, v, NULL, NULL, binary);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR && is_state(res, "26000")) {
        PQclear(res);
        res = PQprepare(c, name, sql, n, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) return res;
        PQclear(res);
        res = PQexecPrepared(c, name, n, v, NULL, NULL, binary);
    }
    return res;
}

static PGresult *exec_prepared(PGconn *c, const char *name, const char *sql, int n, const char *const *v) {
    return exec_prepared_as(c, name, sql, n, v, 0);
}

/* The "created" answer of a deposit or withdrawal the fast statements posted, from the epoch
 * text of its created_at. */
static svc_status created(const char *tx_id, const char *user_id, const struct tx_create_req *rq, const char *epoch,
                          struct tx_posting *out, struct tx_repo_err *err) {
    struct tx_json_row row = {.id = tx_id, .type = tx_type_name(rq->type), .amount = rq->amount,
                              .currency = rq->currency, .description = rq->description, .user_id = user_id};
    if (!tx_json_epoch_us(epoch, &row.created_us)) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "XXTS");
        return SVC_INTERNAL;
    }
    snprintf(out->verdict, sizeof out->verdict, "created");
    out->status = 201;
    return (out->body = tx_json_created(&row)) ? SVC_OK : SVC_INTERNAL;
}

/* The one-statement deposit or withdrawal. SVC_OK with out filled when it posted; SVC_NOT_FOUND
 * when it did nothing (key in flight or used, insufficient funds, no balance row yet) and the
 * function must decide; else an error. */
static svc_status post_fast(PGconn *c, const char *const *v, const struct tx_create_req *rq, struct tx_posting *out,
                            struct tx_repo_err *err) {
    bool deposit = rq->type == TX_DEPOSIT;
    PGresult *res = exec_prepared(c, deposit ? DEPOSIT_STMT : WITHDRAW_STMT, deposit ? DEPOSIT_SQL : WITHDRAW_SQL,
                                  8, v);
    svc_status st = SVC_NOT_FOUND;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) == 1) {
        st = created(v[0], v[1], rq, PQgetvalue(res, 0, 0), out, err);
    } else if (PQresultStatus(res) != PGRES_TUPLES_OK && !is_state(res, "23505")) {
        st = failure(c, res, err);
    }
    PQclear(res);
    return st;
}

/* Clears a posting's answer and error and writes the key TTL as the text parameter. */
static void start_posting(struct tx_posting *out, struct tx_repo_err *err, long ttl_s, char ttl[24]) {
    memset(out, 0, sizeof *out);
    memset(err, 0, sizeof *err);
    snprintf(ttl, 24, "%ld", ttl_s);
}

/* post_fast with tx_repo_post's arguments (a deposit or withdrawal); out and err cleared first. */
static svc_status post_one_fast(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                                const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                                struct tx_repo_err *err) {
    char ttl[24];
    start_posting(out, err, ttl_s, ttl);
    const char *fv[8] = {tx_id, user_id, key, hash, rq->amount, rq->currency, rq->description, ttl};
    return post_fast(c, fv, rq, out, err);
}

svc_status tx_repo_post(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                        const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                        struct tx_repo_err *err) {
    if (rq->type == TX_DEPOSIT || rq->type == TX_WITHDRAWAL) {
        svc_status st = post_one_fast(c, tx_id, user_id, key, hash, rq, ttl_s, out, err);
        if (st != SVC_NOT_FOUND) return st;
    }
    return tx_repo_post_alone(c, tx_id, user_id, key, hash, rq, ttl_s, out, err);
}

svc_status tx_repo_post_alone(PGconn *c, const char *tx_id, const char *user_id, const char *key, const char *hash,
                              const struct tx_create_req *rq, long ttl_s, struct tx_posting *out,
                              struct tx_repo_err *err) {
    char ttl[24];
    start_posting(out, err, ttl_s, ttl);
    const char *v[10] = {tx_id, user_id, key, hash, tx_type_name(rq->type), rq->amount, rq->currency,
                        rq->description, rq->to_user_id[0] ? rq->to_user_id : NULL, ttl};
    return posting_result(c, exec_prepared(c, POST_STMT, POST_SQL, 10, v), out, err);
}

/* Sets every item still undecided (SVC_NOT_FOUND) to st with *err. */
static void batch_settle(struct tx_batch_item *const *items, int n, svc_status st, const struct tx_repo_err *err) {
    for (int i = 0; i < n; i++) {
        if (items[i]->st != SVC_NOT_FOUND) continue;
        items[i]->st = st;
        items[i]->err = *err;
    }
}

/* The nine array parameters of BATCH_SQL, in bufs[0..8]. */
static bool batch_params(struct tx_batch_item *const *items, int n, long ttl_s, struct svc_buf *bufs) {
    const char *col[8][TX_BATCH_MAX];
    for (int i = 0; i < n; i++) {
        const struct tx_batch_item *it = items[i];
        col[0][i] = it->tx_id;
        col[1][i] = it->user_id;
        col[2][i] = it->key;
        col[3][i] = it->hash;
        col[4][i] = it->rq->amount;
        col[5][i] = it->rq->currency;
        col[6][i] = it->rq->description;
        col[7][i] = it->rq->type == TX_DEPOSIT ? "t" : "f";
    }
    bool ok = true;
    for (int k = 0; k < 8; k++) {
        svc_buf_init(&bufs[k]);
        svc_pg_array_of(&bufs[k], col[k], n);
        svc_buf_append(&bufs[k], "", 1);
        ok = ok && !bufs[k].oom;
    }
    svc_buf_init(&bufs[8]);
    svc_buf_printf(&bufs[8], "%ld", ttl_s);
    svc_buf_append(&bufs[8], "", 1);
    return ok && !bufs[8].oom;
}

svc_status tx_repo_post_batch(PGconn *c, struct tx_batch_item *const *items, int n, long ttl_s,
                              struct tx_repo_err *err) {
    memset(err, 0, sizeof *err);
    for (int i = 0; i < n; i++) {
        memset(&items[i]->out, 0, sizeof items[i]->out);
        memset(&items[i]->err, 0, sizeof items[i]->err);
        items[i]->st = SVC_NOT_FOUND;
    }
    if (n < 1 || n > TX_BATCH_MAX) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "XXBAT");
        batch_settle(items, n, SVC_INTERNAL, err);
        return SVC_INTERNAL;
    }
    if (n == 1) {
        struct tx_batch_item *it = items[0];
        it->st = post_one_fast(c, it->tx_id, it->user_id, it->key, it->hash, it->rq, ttl_s, &it->out, &it->err);
        *err = it->err;
        return it->st == SVC_OK || it->st == SVC_NOT_FOUND ? SVC_OK : it->st;
    }

    struct svc_buf bufs[9];
    svc_status st = SVC_OK;
    if (!batch_params(items, n, ttl_s, bufs)) {
        st = SVC_INTERNAL;
        snprintf(err->sqlstate, sizeof err->sqlstate, "XXOOM");
        batch_settle(items, n, SVC_INTERNAL, err);
    } else {
        const char *v[9];
        for (int k = 0; k < 9; k++) v[k] = bufs[k].data;
        PGresult *res = exec_prepared(c, BATCH_STMT, BATCH_SQL, 9, v);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQnfields(res) == 2) {
            for (int r = 0; r < PQntuples(res); r++) {
                const char *id = PQgetvalue(res, r, 0);
                for (int i = 0; i < n; i++) {
                    struct tx_batch_item *it = items[i];
                    if (it->st != SVC_NOT_FOUND || strcmp(it->tx_id, id)) continue;
                    it->st = created(it->tx_id, it->user_id, it->rq, PQgetvalue(res, r, 1), &it->out, &it->err);
                    break;
                }
            }
        } else {
            /* A statement that failed with an SQLSTATE was rolled back, whatever the code.
             * - Without one, or with a lost connection, nobody knows whether it committed:
             *   every item is SVC_UNAVAILABLE, as one posting would be.
             * - A timeout, a server out of resources or not accepting work (svc_pg_status's
             *   SVC_TIMEOUT / SVC_UNAVAILABLE): the items answer 503 too. Posting them one by
             *   one would multiply the load on a database that is already overloaded.
             * - Anything else (a key used by a racing commit, a deadlock, a bad value): the
             *   items stay SVC_NOT_FOUND and are each posted on their own, which reports its
             *   own outcome. */
            st = failure(c, res, err);
            if (!err->sqlstate[0] || st == SVC_UNAVAILABLE)
                batch_settle(items, n, SVC_UNAVAILABLE, err);
            else if (st == SVC_TIMEOUT)
                batch_settle(items, n, SVC_TIMEOUT, err);
        }
        PQclear(res);
    }
    for (int k = 0; k < 9; k++) svc_buf_free(&bufs[k]);
    return st;
}

svc_status tx_repo_reverse(PGconn *c, const char *rev_id, const char *admin_id, const char *key, const char *hash,
                           const char *tx_id, long ttl_s, struct tx_posting *out, struct tx_repo_err *err) {
    char ttl[24];
    start_posting(out, err, ttl_s, ttl);
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
    if (PQresultStatus(res) != PGRES_TUPLES_OK) st = failure(c, res, err);
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

/* Time filter shared by list and summary: $from inclusive; $to inclusive (a date covers its day;
 * an instant is included by "< to + 1 µs", timestamps having microseconds). Written as one range
 * on col with unbounded ends for absent bounds, so that even a generic plan (these connections
 * use only generic plans, see tx_repo_prepare) scans the (…, created_at, id) index over the
 * range instead of filtering all of the user's rows. */
#define TIME_FILTER(col, from, to, to_is_date)                                                     \
    col " >= COALESCE(" from "::timestamptz, '-infinity') AND " col " < COALESCE(" to              \
    "::timestamptz + CASE WHEN " to_is_date "::bool THEN interval '1 day' ELSE interval '1 microsecond' END," \
    " 'infinity')"

/* Both sides of a transfer are indexed separately ((user_id, created_at, id) and
 * (to_user_id, created_at, id)), so a page is the merge of two index-ordered scans, each starting
 * right after the cursor's (created_at, id) and read only as far as the page needs (the inner
 * LIMIT is the most a page can need; the merge stops pulling at the outer one), and the total,
 * when asked for, is two index counts; a user never appears on both sides of one transaction (no
 * transfers to oneself), so nothing is counted twice.
 *
 * Keyset pages are two prepared statements, the first page and a page after a cursor, each with
 * one generic plan (tx_repo_prepare), the cursor an index condition: planning a page cost more
 * than running it. The rows come back in binary and are rendered in C (tx_json_append):
 * PostgreSQL's to_char, json_build_object and output functions were most of the rest (figures:
 * bench/README.md, "the transactions list"). The deprecated page= (an offset) is an unnamed
 * statement, as before. */
#define LIST_FILTER                                                                                \
    "($2::text IS NULL OR t.type = $2) AND ($3::text IS NULL OR t.status = $3) AND "               \
    TIME_FILTER("t.created_at", "$4", "$5", "$6")
#define LIST_COLUMNS                                                                               \
    "t.id, t.type, t.status, t.amount, t.currency, t.description, t.user_id, t.to_user_id, "      \
    "t.reverses_id, t.reversed_by, t.created_at, t.updated_at"
/* One side's rows (only the columns shown: deforming all of a row was a visible cost). inner: the
 * side's LIMIT; after: the cursor condition or "". */
#define LIST_SIDE(side, after, inner)                                                              \
    "(SELECT " LIST_COLUMNS " FROM transactions.transactions t WHERE t." side " = $1::uuid AND "   \
    LIST_FILTER after " ORDER BY t.created_at DESC, t.id DESC LIMIT " inner ")"
/* The page's rows in order; outer: its LIMIT (and OFFSET). */
#define LIST_ROWS(after, inner, outer)                                                             \
    "SELECT * FROM (" LIST_SIDE("user_id", after, inner) " UNION ALL " LIST_SIDE("to_user_id", after, inner) \
    ") u ORDER BY u.created_at DESC, u.id DESC " outer
_Static_assert(SVC_PAGE_LIMIT_MAX + 1 == 101, "the keyset statements' inner LIMIT is the most rows a page reads");
/* Keyset pages without a total, the hot path, prepared: $1 owner, $2-$6 filters, $7 fetch, and
 * after a cursor $8/$9 its (created_at, id). Their rows have no total column. */
#define LIST_FIRST_STMT "tx_list_v2"
static const char LIST_FIRST_SQL[] = LIST_ROWS("", "101", "LIMIT $7::bigint");
#define LIST_AFTER_STMT "tx_list_after_v2"
static const char LIST_AFTER_SQL[] =
    LIST_ROWS(" AND (t.created_at, t.id) < ($8::timestamptz, $9::uuid)", "101", "LIMIT $7::bigint");
/* A page with its total (include_total=true, or the deprecated page=, an offset), unnamed: $1
 * owner, $2-$6 filters, $7 fetch, $8 offset, $9 whether to count, $10/$11 the cursor or NULL.
 * The rows are LEFT JOINed to the count so that an empty page still carries it. */
static const char LIST_COUNTED_SQL[] =
    "WITH n AS (SELECT CASE WHEN $9::bool THEN"
    "    (SELECT count(*) FROM transactions.transactions t WHERE t.user_id = $1::uuid AND " LIST_FILTER ")"
    "  + (SELECT count(*) FROM transactions.transactions t WHERE t.to_user_id = $1::uuid AND " LIST_FILTER ")"
    "  END AS total),"
    " p AS (" LIST_ROWS(" AND ($10::timestamptz IS NULL OR (t.created_at, t.id) < ($10::timestamptz, $11::uuid))",
                        "$7::bigint + $8::bigint", "LIMIT $7::bigint OFFSET $8::bigint") ") "
    "SELECT p.*, n.total FROM n LEFT JOIN p ON true ORDER BY p.created_at DESC, p.id DESC";
enum { L_ID, L_TYPE, L_STATUS, L_AMOUNT, L_CURRENCY, L_DESCRIPTION, L_USER, L_TO_USER, L_REVERSES, L_REVERSED_BY,
       L_CREATED, L_UPDATED, L_TOTAL, L_COLUMNS };

static void prepare_list(PGconn *c) {
    PQclear(PQprepare(c, LIST_FIRST_STMT, LIST_FIRST_SQL, 7, NULL));
    PQclear(PQprepare(c, LIST_AFTER_STMT, LIST_AFTER_SQL, 9, NULL));
}

/* A text column (NULL → NULL); binary text is the bytes themselves, NUL-terminated by libpq. */
static const char *text_or_null(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

/* Appends row i of the list result to b as JSON; fills key with its (created_at, id). */
static bool list_row(const PGresult *r, int i, struct svc_buf *b, struct svc_cursor *key) {
    char id[SVC_UUID_LEN + 1], user[SVC_UUID_LEN + 1], to[SVC_UUID_LEN + 1], rev[SVC_UUID_LEN + 1],
        rev_by[SVC_UUID_LEN + 1], amount[MONEY_STR_MAX + 8];
    struct tx_json_row row = {.id = id, .user_id = user, .amount = amount};
    if (!svc_pgbin_uuid(r, i, L_ID, id) || !svc_pgbin_uuid(r, i, L_USER, user) ||
        !svc_pgbin_numeric(r, i, L_AMOUNT, amount, sizeof amount) ||
        !svc_pgbin_timestamptz(r, i, L_CREATED, &row.created_us) ||
        !svc_pgbin_timestamptz(r, i, L_UPDATED, &row.updated_us) || !(row.type = text_or_null(r, i, L_TYPE)) ||
        !(row.status = text_or_null(r, i, L_STATUS)) || !(row.currency = text_or_null(r, i, L_CURRENCY)))
        return false;
    row.description = text_or_null(r, i, L_DESCRIPTION);
    row.to_user_id = svc_pgbin_uuid(r, i, L_TO_USER, to) ? to : NULL;
    row.reverses_id = svc_pgbin_uuid(r, i, L_REVERSES, rev) ? rev : NULL;
    row.reversed_by = svc_pgbin_uuid(r, i, L_REVERSED_BY, rev_by) ? rev_by : NULL;
    key->time_us = row.created_us;
    memcpy(key->id, id, sizeof id);
    return tx_json_append(b, &row);
}

/* The page from the list result: each shown row rendered into one buffer (NUL after each), then
 * svc_page_render around them. */
static svc_status list_page(const PGresult *r, const struct svc_page *page, char **json_out) {
    int nf = PQnfields(r);
    if (nf != L_COLUMNS && nf != L_TOTAL) return SVC_INTERNAL;  /* with or without the total */
    int n = PQntuples(r);
    long long total = -1;
    int64_t t;
    if (nf == L_COLUMNS && n > 0 && svc_pgbin_int8(r, 0, L_TOTAL, &t)) total = t;
    if (page->include_total && total < 0) return SVC_INTERNAL;
    struct svc_buf b;
    svc_buf_init(&b);
    svc_buf_reserve(&b, (size_t)(n < page->limit ? n : page->limit) * 512);  /* a row is ~400 bytes */
    size_t start[SVC_PAGE_LIMIT_MAX + 1];
    int rows = 0;
    bool more = false;
    struct svc_cursor last = {0}, key;
    for (int i = 0; i < n; i++) {
        if (PQgetisnull(r, i, L_ID)) continue;  /* the empty page's row, carrying only the total */
        if (rows == page->limit) {
            more = true;
            break;
        }
        start[rows] = b.len;
        if (!list_row(r, i, &b, &key)) {
            svc_buf_free(&b);
            return SVC_INTERNAL;
        }
        svc_buf_append(&b, "", 1);
        if (++rows == page->limit) last = key;
    }
    const char *texts[SVC_PAGE_LIMIT_MAX + 1];
    for (int i = 0; i < rows && !b.oom; i++) texts[i] = b.data + start[i];
    texts[rows] = "";  /* stands for the row after the page: svc_page_render reads only its count */
    *json_out = b.oom ? NULL : svc_page_render(&tx_list_kind, page, texts, rows + (more ? 1 : 0), &last,
                                               page->include_total ? total : -1);
    svc_buf_free(&b);
    return *json_out ? SVC_OK : SVC_INTERNAL;
}

svc_status tx_repo_list(PGconn *c, const char *owner_id, const struct tx_list_query *q, char **json_out,
                        struct tx_repo_err *err) {
    *json_out = NULL;
    memset(err, 0, sizeof *err);
    struct svc_page_sql pg;
    svc_page_sql(&q->page, &pg);
    const char *v[11] = {owner_id, q->type, q->status, q->from.set ? q->from.text : NULL,
                         q->to.set ? q->to.text : NULL, q->to.date_only ? "t" : "f", pg.fetch};
    PGresult *res;
    if (q->page.include_total) {  /* also every deprecated page= */
        v[7] = pg.offset;
        v[8] = pg.total;
        v[9] = pg.time;
        v[10] = pg.id;
        res = PQexecParams(c, LIST_COUNTED_SQL, 11, NULL, v, NULL, NULL, 1);
    } else if (q->page.after) {
        v[7] = pg.time;
        v[8] = pg.id;
        res = exec_prepared_as(c, LIST_AFTER_STMT, LIST_AFTER_SQL, 9, v, 1);
    } else {
        res = exec_prepared_as(c, LIST_FIRST_STMT, LIST_FIRST_SQL, 7, v, 1);
    }
    svc_status st = PQresultStatus(res) == PGRES_TUPLES_OK ? list_page(res, &q->page, json_out) : failure(c, res, err);
    PQclear(res);
    return st;
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
