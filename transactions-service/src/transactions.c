/* Transaction use cases; see transactions.h. */
#include "transactions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "customers_client.h"
#include "idempotency.h"
#include "svc/combiner.h"
#include "svc/json_text.h"
#include "tx_repo.h"
#include "tx_request.h"
#include "txcache.h"
#include "txlist_cache.h"

#define ERR(st, code, msg) SVC_RESULT_ERR((st), (code), (msg))

static struct svc_result validation_failed(json_t *fields) {
    struct svc_result a = ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
    a.details = json_pack("{s:o}", "fields", fields);
    return a;
}

static struct svc_result raw(svc_status st, char *json) {
    return (struct svc_result){.st = st, .raw = json};
}

static struct svc_result internal(struct tx_ctx *cx, const char *cid, const char *what, const char *sqlstate) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "transaction operation failed", "{s:s,s:s}", "operation", what,
             "sqlstate", sqlstate && *sqlstate ? sqlstate : "-");
    return ERR(SVC_INTERNAL, "internal_error", "internal error");
}

/* Maps a repository failure (not SVC_OK / SVC_NOT_FOUND) to an answer. */
static struct svc_result repo_failure(struct tx_ctx *cx, const char *cid, const char *what, svc_status st,
                                     const struct tx_repo_err *err) {
    if (st == SVC_UNPROCESSABLE || st == SVC_CONFLICT) {
        if (!strcmp(err->rule, "insufficient_funds")) {
            atomic_fetch_add_explicit(cx->insufficient, 1, memory_order_relaxed);
            return ERR(st, err->rule, "the balance is not enough for this transaction");
        }
        if (!strcmp(err->rule, "already_reversed")) return ERR(st, err->rule, "the transaction was already reversed");
        return ERR(st, err->rule, "a reversal cannot itself be reversed");
    }
    if (st == SVC_TIMEOUT || st == SVC_UNAVAILABLE) return svc_pg_result(st);
    return internal(cx, cid, what, err->sqlstate);
}

/* Users act on their own accounts; a service token names no account. */
static bool is_user(const struct svc_principal *who) { return !who->is_service && svc_uuid_is_valid(who->sub); }

static struct svc_result not_a_user(void) {
    return ERR(SVC_FORBIDDEN, "user_token_required", "this endpoint needs a user's access token");
}

static bool check_key(const char *key, struct svc_result *a) {
    switch (idem_key_check(key)) {
    case IDEM_KEY_OK: return true;
    case IDEM_KEY_MISSING:
        *a = ERR(SVC_INVALID, "idempotency_key_required", "the Idempotency-Key header is required");
        return false;
    default:
        *a = validation_failed(json_pack("{s:s}", "Idempotency-Key", "must be 1 to 255 printable ASCII characters"));
        return false;
    }
}

static struct svc_result in_progress(struct tx_ctx *cx) {
    atomic_fetch_add_explicit(cx->in_progress, 1, memory_order_relaxed);
    struct svc_result a = ERR(SVC_CONFLICT, "idempotency_request_in_progress",
                             "a request with this Idempotency-Key is still being processed");
    a.retry_after_s = 1;
    return a;
}

/* Turns a posting function's verdict into the answer. Takes ownership of p->body. */
static struct svc_result from_posting(struct tx_ctx *cx, struct tx_posting *p, enum tx_type type) {
    if (!strcmp(p->verdict, "created") || !strcmp(p->verdict, "replayed")) {
        struct svc_result a = raw(p->status == 201 ? SVC_CREATED : SVC_OK, p->body);
        p->body = NULL;
        bool replayed = p->verdict[0] == 'r';
        if (replayed) svc_result_header(&a, "Idempotent-Replayed", "true");
        atomic_fetch_add_explicit(replayed ? cx->replays : cx->created[type], 1, memory_order_relaxed);
        return a;
    }
    free(p->body);
    p->body = NULL;
    if (!strcmp(p->verdict, "in_progress")) return in_progress(cx);
    if (!strcmp(p->verdict, "idempotency_key_reused")) {
        atomic_fetch_add_explicit(cx->key_reused, 1, memory_order_relaxed);
        return ERR(SVC_UNPROCESSABLE, "idempotency_key_reused",
                   "this Idempotency-Key was used for a different request");
    }
    return ERR(SVC_NOT_FOUND, "transaction_not_found", "transaction not found");
}

/* A request refused before posting may still be one that succeeded earlier: replay it. */
static bool stored_result(struct tx_ctx *cx, const char *user, const char *key, const char *hash,
                          struct svc_result *a) {
    svc_status st;
    PGconn *c = tx_repo_open(cx->app.pg, &st);
    if (!c) return false;
    struct tx_posting p;
    struct tx_repo_err err;
    st = tx_repo_find_key(c, user, key, hash, &p, &err);
    tx_repo_close(cx->app.pg, c);
    if (st != SVC_OK) return false;
    *a = from_posting(cx, &p, TX_DEPOSIT);
    return true;
}

/* Fills states[] for ids[] from the cache or customers-service. Returns false with *a set when
 * customers-service could not answer. */
static bool check_users(struct tx_ctx *cx, const char *cid, const char *const *ids, int n,
                        enum user_state *states, struct svc_result *a) {
    enum user_state fresh[TXCACHE_MAX_USERS] = {USER_UNKNOWN, USER_UNKNOWN};
    bool looked_up = false;
    for (int i = 0; i < n; i++) {
        if (!ids[i] || states[i] != USER_UNKNOWN) continue;
        uint32_t retry_after = 1;
        states[i] = fresh[i] = customers_user_state(cx, cid, ids[i], &retry_after);
        looked_up = true;
        if (states[i] == USER_UNAVAILABLE) {
            atomic_fetch_add_explicit(cx->customers_unavailable, 1, memory_order_relaxed);
            *a = ERR(SVC_UNAVAILABLE, "customers_unavailable",
                     "user validation is unavailable (customers-service); retry later");
            a->retry_after_s = retry_after;
            fresh[i] = USER_UNKNOWN;
            txcache_put_users(cx, ids, fresh, n);
            return false;
        }
    }
    if (looked_up) txcache_put_users(cx, ids, fresh, n);
    return true;
}

void tx_run_batch(void *ctx, struct svc_combiner_item **items, int n) {
    struct tx_ctx *cx = ctx;
    struct tx_batch_item *bi[SVC_COMBINER_BATCH_CAP];
    for (int i = 0; i < n; i++) bi[i] = items[i]->data;
    svc_status st;
    PGconn *c = tx_repo_open(cx->batch_pg, &st);
    if (!c) {
        for (int i = 0; i < n; i++) {
            memset(&bi[i]->out, 0, sizeof bi[i]->out);
            memset(&bi[i]->err, 0, sizeof bi[i]->err);
            bi[i]->st = st;
        }
        return;
    }
    struct tx_repo_err err;
    st = tx_repo_post_batch(c, bi, n, cx->idem_ttl_s, &err);
    tx_repo_close(cx->batch_pg, c);
    atomic_fetch_add_explicit(cx->post_batches, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(cx->post_batched, (unsigned long)n, memory_order_relaxed);
    if (st != SVC_OK && n > 1)
        svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "posting batch failed; its postings run one by one",
                 "{s:i,s:s}", "postings", n, "sqlstate", err.sqlstate[0] ? err.sqlstate : "-");
}

/* Posts a validated request. Deposits and withdrawals go through the batcher when it is on, and
 * what a batch leaves (SVC_NOT_FOUND) to the posting function; transfers (and everything when
 * the batcher is off) go to tx_repo_post. */
static svc_status post(struct tx_ctx *cx, const char *tx_id, const char *me, const char *key, const char *hash,
                       const struct tx_create_req *rq, struct tx_posting *p, struct tx_repo_err *err) {
    bool alone = false;
    if (cx->batcher && (rq->type == TX_DEPOSIT || rq->type == TX_WITHDRAWAL)) {
        struct tx_batch_item bi = {.tx_id = tx_id, .user_id = me, .key = key, .hash = hash, .rq = rq};
        struct svc_combiner_item it = {.data = &bi, .group = me};
        svc_combiner_submit(cx->batcher, &it);
        if (bi.st != SVC_NOT_FOUND) {
            *p = bi.out;
            *err = bi.err;
            return bi.st;
        }
        atomic_fetch_add_explicit(cx->post_alone, 1, memory_order_relaxed);
        alone = true;
    }
    svc_status st;
    PGconn *c = tx_repo_open(cx->app.pg, &st);
    if (!c) {
        memset(p, 0, sizeof *p);
        memset(err, 0, sizeof *err);
        return st;
    }
    st = alone ? tx_repo_post_alone(c, tx_id, me, key, hash, rq, cx->idem_ttl_s, p, err)
               : tx_repo_post(c, tx_id, me, key, hash, rq, cx->idem_ttl_s, p, err);
    tx_repo_close(cx->app.pg, c);
    return st;
}

struct svc_result tx_create(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                           const char *idem_key, const json_t *body) {
    struct svc_result a;
    if (!is_user(who)) return not_a_user();
    if (!check_key(idem_key, &a)) return a;
    char me[SVC_UUID_LEN + 1];
    tx_uuid_lower(who->sub, me);
    struct tx_create_req rq;
    json_t *fields = NULL;
    if (!tx_parse_create(body, me, cx->max_amount_cents, &rq, &fields)) return validation_failed(fields);
    char hash[IDEM_HASH_HEX_LEN + 1];
    if (idem_request_hash("POST", "/api/transactions", body, hash) != 0) return internal(cx, cid, "hash", NULL);

    const char *ids[TXCACHE_MAX_USERS] = {me, rq.type == TX_TRANSFER ? rq.to_user_id : NULL};
    enum user_state users[TXCACHE_MAX_USERS];
    txcache_lookup(cx, cid, ids, TXCACHE_MAX_USERS, users);
    if (!check_users(cx, cid, ids, TXCACHE_MAX_USERS, users, &a)) goto refused;
    if (users[0] != USER_ACTIVE) {
        a = ERR(SVC_FORBIDDEN, "user_inactive", "the caller's account does not exist or was deleted");
        goto refused;
    }
    if (ids[1] && users[1] != USER_ACTIVE) {
        a = ERR(SVC_UNPROCESSABLE, "recipient_not_found", "the recipient does not exist or was deleted");
        goto refused;
    }

    struct tx_posting p;
    struct tx_repo_err err;
    char tx_id[SVC_UUID_LEN + 1];
    svc_uuid7(tx_id);
    svc_status st = post(cx, tx_id, me, idem_key, hash, &rq, &p, &err);
    if (st == SVC_OK && !strcmp(p.verdict, "created")) {
        /* the parties' newest pages are out of date before the posting is answered; here, in the
         * request's thread, not in the batch leader's, whose next batch would wait for it */
        const char *parties[2] = {me, rq.type == TX_TRANSFER ? rq.to_user_id : NULL};
        txlist_cache_bump(cx, cid, parties, 2);
    }
    return st == SVC_OK ? from_posting(cx, &p, rq.type) : repo_failure(cx, cid, "post", st, &err);

refused:
    {
        struct svc_result stored;
        if (stored_result(cx, me, idem_key, hash, &stored)) {
            svc_result_clear(&a);
            a = stored;
        }
    }
    return a;
}

/* A reversal names the original's parties (user_id, to_user_id in its JSON, the repository's
 * own text): both lists changed, the reversal added and the original's status. */
static void bump_parties_of(struct tx_ctx *cx, const char *cid, const char *body) {
    json_t *j = body ? svc_json_load(body, strlen(body), 0, NULL) : NULL;
    const char *parties[2] = {json_string_value(json_object_get(j, "user_id")),
                              json_string_value(json_object_get(j, "to_user_id"))};
    if (parties[0]) txlist_cache_bump(cx, cid, parties, 2);
    else svc_log(&cx->app.log, SVC_LOG_ERROR, cid, "a reversal's parties are unknown: list pages may be stale", NULL);
    json_decref(j);
}

struct svc_result tx_reverse(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *idem_key, const char *tx_id) {
    struct svc_result a;
    if (!is_user(who) || !who->is_admin) return ERR(SVC_FORBIDDEN, "forbidden", "only an admin may reverse a transaction");
    if (!check_key(idem_key, &a)) return a;
    char me[SVC_UUID_LEN + 1], id[SVC_UUID_LEN + 1];
    tx_uuid_lower(who->sub, me);
    if (!tx_uuid_lower(tx_id, id)) return ERR(SVC_NOT_FOUND, "transaction_not_found", "transaction not found");
    char path[96], hash[IDEM_HASH_HEX_LEN + 1];
    snprintf(path, sizeof path, "/api/transactions/%s/reverse", id);
    if (idem_request_hash("POST", path, NULL, hash) != 0) return internal(cx, cid, "hash", NULL);

    svc_status st;
    PGconn *c = tx_repo_open(cx->app.pg, &st);
    if (!c) return svc_pg_result(st);
    struct tx_posting p;
    struct tx_repo_err err;
    char rev_id[SVC_UUID_LEN + 1];
    svc_uuid7(rev_id);
    st = tx_repo_reverse(c, rev_id, me, idem_key, hash, id, cx->idem_ttl_s, &p, &err);
    tx_repo_close(cx->app.pg, c);
    if (st == SVC_OK && !strcmp(p.verdict, "created")) bump_parties_of(cx, cid, p.body);
    if (st == SVC_OK && !strcmp(p.verdict, "created"))
        svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "transaction reversed", "{s:s,s:s}", "transaction_id", id,
                 "admin_id", me);
    return st == SVC_OK ? from_posting(cx, &p, TX_REVERSAL) : repo_failure(cx, cid, "reverse", st, &err);
}

/* Read helpers: one pooled connection around one repository call. */
typedef svc_status (*read_fn)(PGconn *c, const void *arg, char **json_out, struct tx_repo_err *err);

static struct svc_result read_one(struct tx_ctx *cx, const char *cid, const char *what, read_fn fn, const void *arg,
                                 char **json_out) {
    svc_status st;
    PGconn *c = tx_repo_open(cx->app.pg, &st);
    if (!c) return svc_pg_result(st);
    struct tx_repo_err err;
    st = fn(c, arg, json_out, &err);
    tx_repo_close(cx->app.pg, c);
    if (st == SVC_OK) return (struct svc_result){.st = SVC_OK};
    if (st == SVC_NOT_FOUND) return ERR(SVC_NOT_FOUND, "transaction_not_found", "transaction not found");
    return repo_failure(cx, cid, what, st, &err);
}

struct get_args { const char *id, *viewer; bool admin; };
static svc_status get_fn(PGconn *c, const void *arg, char **out, struct tx_repo_err *err) {
    const struct get_args *g = arg;
    return tx_repo_get(c, g->id, g->viewer, g->admin, out, err);
}

struct svc_result tx_get(struct tx_ctx *cx, const char *cid, const struct svc_principal *who, const char *tx_id) {
    char id[SVC_UUID_LEN + 1];
    if (!tx_uuid_lower(tx_id, id)) return ERR(SVC_NOT_FOUND, "transaction_not_found", "transaction not found");
    char me[SVC_UUID_LEN + 1] = "00000000-0000-0000-0000-000000000000";
    if (is_user(who)) tx_uuid_lower(who->sub, me);
    else if (!who->is_admin) return not_a_user();
    struct get_args g = {id, me, who->is_admin};
    char *json = NULL;
    struct svc_result a = read_one(cx, cid, "get", get_fn, &g, &json);
    if (a.st == SVC_OK) a.raw = json;
    return a;
}

/* Whose transactions a read covers: the caller, or user_id= for an admin. */
static bool owner_of(const struct svc_principal *who, const char *user_id, char out[SVC_UUID_LEN + 1],
                     struct svc_result *a) {
    char me[SVC_UUID_LEN + 1] = "";
    if (is_user(who)) tx_uuid_lower(who->sub, me);
    if (user_id) {
        tx_uuid_lower(user_id, out);
        if (who->is_admin || !strcmp(out, me)) return true;
        *a = ERR(SVC_FORBIDDEN, "forbidden", "only an admin may read another user's transactions");
        return false;
    }
    if (!me[0]) {
        *a = not_a_user();
        return false;
    }
    memcpy(out, me, sizeof me);
    return true;
}

struct list_args { const char *owner; const struct tx_list_query *q; };
static svc_status list_fn(PGconn *c, const void *arg, char **out, struct tx_repo_err *err) {
    const struct list_args *l = arg;
    return tx_repo_list(c, l->owner, l->q, out, err);
}

struct svc_result tx_list(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                         const struct svc_page_params *paging, const char *type, const char *status,
                         const char *from, const char *to, const char *user_id) {
    struct tx_list_query q;
    json_t *fields = NULL;
    if (!tx_parse_list_query(paging, type, status, from, to, user_id, &q, &fields))
        return svc_query_invalid(fields);
    struct svc_result a;
    char owner[SVC_UUID_LEN + 1];
    if (!owner_of(who, q.user_id, owner, &a)) return a;
    /* The newest page without filters is the hot read: txlist_cache.h */
    bool cacheable = !q.page.after && q.page.page == 0 && !q.page.include_total && !q.type && !q.status &&
                     !q.from.set && !q.to.set;
    char version[TXLIST_VERSION_LEN + 1] = "";
    char *json = NULL;
    unsigned long epoch = 0;
    if (cacheable && txlist_cache_get(cx, owner, q.page.limit, &json, version, &epoch)) return raw(SVC_OK, json);
    struct list_args l = {owner, &q};
    a = read_one(cx, cid, "list", list_fn, &l, &json);
    if (a.st != SVC_OK) return a;
    if (cacheable) txlist_cache_put(cx, owner, q.page.limit, version, json, epoch);
    a.raw = json;
    return a;
}

struct summary_args { const char *owner; const struct tx_summary_query *q; };
static svc_status summary_fn(PGconn *c, const void *arg, char **out, struct tx_repo_err *err) {
    const struct summary_args *s = arg;
    return tx_repo_summary(c, s->owner, s->q, out, err);
}

struct svc_result tx_summary(struct tx_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *group_by, const char *from, const char *to, const char *user_id,
                            const char *currency) {
    struct tx_summary_query q;
    json_t *fields = NULL;
    if (!tx_parse_summary_query(group_by, from, to, user_id, currency, &q, &fields))
        return svc_query_invalid(fields);
    struct svc_result a;
    char owner[SVC_UUID_LEN + 1];
    if (!owner_of(who, q.user_id, owner, &a)) return a;
    struct summary_args s = {owner, &q};
    char *groups_text = NULL;
    a = read_one(cx, cid, "summary", summary_fn, &s, &groups_text);
    if (a.st != SVC_OK) return a;
    json_error_t jerr;
    json_t *groups = json_loads(groups_text, 0, &jerr);
    free(groups_text);
    if (!groups) return internal(cx, cid, "summary_json", NULL);
    json_t *b = json_pack("{s:s,s:s?,s:s?,s:s,s:s,s:o}", "group_by", tx_group_by_name(q.group_by), "from",
                          q.from.raw, "to", q.to.raw, "currency", q.currency, "user_id", owner, "groups", groups);
    if (!b) return internal(cx, cid, "summary_json", NULL);
    return (struct svc_result){.st = SVC_OK, .body = b};
}

static svc_status balance_fn(PGconn *c, const void *arg, char **out, struct tx_repo_err *err) {
    return tx_repo_balance(c, arg, out, err);
}

struct svc_result tx_balance(struct tx_ctx *cx, const char *cid, const struct svc_principal *who) {
    if (!is_user(who)) return not_a_user();
    char me[SVC_UUID_LEN + 1];
    tx_uuid_lower(who->sub, me);
    char *json = NULL;
    struct svc_result a = read_one(cx, cid, "balance", balance_fn, me, &json);
    if (a.st == SVC_OK) a.raw = json;
    return a;
}
