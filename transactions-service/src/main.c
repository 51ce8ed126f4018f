/* transactions-service entry point: wiring only (config -> client -> pools -> routes -> serve ->
 * shutdown). Settings are documented in docs/operations.md. */
#include <stdio.h>
#include <stdlib.h>

#include "ctx.h"
#include "money.h"
#include "svc/combiner.h"
#include "routes.h"
#include "tx_repo.h"
#include "transactions.h"
#include "tx_request.h"
#include "txcache.h"
#include "txlist_cache.h"

static void load_settings(struct tx_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    svc_customers_config(&cx->customers, c);
    cx->user_cache_s = svc_config_int(c, "USER_CHECK_CACHE_S", 30, 1, 3600);
    cx->idem_ttl_s = svc_config_int(c, "IDEMPOTENCY_TTL_S", 86400, 60, 7 * 86400);
    cx->user_local_cache_ms = svc_config_int(c, "USER_LOCAL_CACHE_MS", 1000, 0, 1000);
    cx->list_cache_ttl_s = svc_config_int(c, "TX_LIST_CACHE_TTL_S", 30, 0, 3600);
    const char *max = svc_config_str(c, "TX_MAX_AMOUNT", "1000000000.00");
    if (max && money_parse_amount(max, INT64_C(999999999999999), &cx->max_amount_cents))
        svc_config_error(c, "TX_MAX_AMOUNT", "must be a positive decimal amount with at most 2 decimals");
    cx->post_batch_max = svc_config_int(c, "POST_BATCH_MAX", 32, 1, TX_BATCH_MAX < SVC_COMBINER_BATCH_CAP ? TX_BATCH_MAX : SVC_COMBINER_BATCH_CAP);
    cx->post_batch_leaders = svc_config_int(c, "POST_BATCH_LEADERS", 1, 1, 64);
    svc_auth_init(&cx->auth, &cx->app, false);

    struct svc_metrics *m = &cx->app.metrics;
    static const char *const created_labels[] = {"type=\"deposit\"", "type=\"withdrawal\"", "type=\"transfer\"",
                                                 "type=\"reversal\""};
    for (int i = 0; i < 4; i++)
        cx->created[i] = svc_metrics_counter(m, "transactions_created_total", created_labels[i],
                                             "Transactions posted, by type.");
    cx->replays = svc_metrics_counter(m, "idempotency_requests_total", "result=\"replayed\"",
                                      "Requests answered from an idempotency record or refused by it.");
    cx->key_reused = svc_metrics_counter(m, "idempotency_requests_total", "result=\"key_reused\"",
                                         "Requests answered from an idempotency record or refused by it.");
    cx->in_progress = svc_metrics_counter(m, "idempotency_requests_total", "result=\"in_progress\"",
                                          "Requests answered from an idempotency record or refused by it.");
    cx->insufficient = svc_metrics_counter(m, "transactions_refused_total", "reason=\"insufficient_funds\"",
                                           "Postings refused by a ledger rule.");
    cx->customers_unavailable = svc_metrics_counter(m, "transactions_refused_total", "reason=\"customers_unavailable\"",
                                                    "Postings refused by a ledger rule.");
    cx->post_batches = svc_metrics_counter(m, "transactions_post_batches_total", NULL,
                                           "Posting statements run by the batcher (deposits and withdrawals).");
    cx->post_batched = svc_metrics_counter(m, "transactions_post_batched_total", NULL,
                                           "Postings in those statements (divided by batches: the mean batch size).");
    cx->post_alone = svc_metrics_counter(m, "transactions_post_alone_total", NULL,
                                         "Postings a batch left to the posting function (key in flight or used, "
                                         "insufficient funds, first posting in a currency, batch rolled back).");
    cx->ucache_hit = svc_metrics_counter(m, "cache_requests_total", "cache=\"user_exists\",result=\"hit\"",
                                         "Cache lookups by cache and result (user_exists: the user check; tx_list: the newest page of transactions).");
    cx->ucache_miss = svc_metrics_counter(m, "cache_requests_total", "cache=\"user_exists\",result=\"miss\"",
                                          "Cache lookups by cache and result (user_exists: the user check; tx_list: the newest page of transactions).");
    cx->list_cache_hit = svc_metrics_counter(m, "cache_requests_total", "cache=\"tx_list\",result=\"hit\"",
                                             "Cache lookups by cache and result (user_exists: the user check; tx_list: the newest page of transactions).");
    cx->list_cache_miss = svc_metrics_counter(m, "cache_requests_total", "cache=\"tx_list\",result=\"miss\"",
                                              "Cache lookups by cache and result (user_exists: the user check; tx_list: the newest page of transactions).");
    cx->list_cache_bump_failures = svc_metrics_counter(
        m, "transactions_list_cache_bump_failures_total", NULL,
        "Postings whose list-version bump Redis did not take (their parties' cached newest page may be stale "
        "for up to TX_LIST_CACHE_TTL_S).");
}

static int ready_hook(struct svc_app *app, json_t *checks) {
    return svc_customers_ready(&tx_ctx_of(app)->customers, checks);
}

/* The resilient client's metrics, and the posting batcher's own connections (beside the main
 * pool's db_pool_connections). */
static void metrics_hook(struct svc_app *app, struct svc_buf *out) {
    struct tx_ctx *cx = tx_ctx_of(app);
    svc_customers_metrics(&cx->customers, out);
    if (!cx->batch_pg) return;
    struct svc_pg_stats ps;
    svc_pg_stats(cx->batch_pg, &ps);
    svc_buf_printf(out,
                   "# HELP transactions_post_batch_db_connections The posting batcher's PostgreSQL connections by state.\n"
                   "# TYPE transactions_post_batch_db_connections gauge\n"
                   "transactions_post_batch_db_connections{state=\"max\"} %d\n"
                   "transactions_post_batch_db_connections{state=\"open\"} %d\n"
                   "transactions_post_batch_db_connections{state=\"in_use\"} %d\n"
                   "# HELP transactions_post_batch_db_reconnects_total Reconnects of the posting batcher's connections.\n"
                   "# TYPE transactions_post_batch_db_reconnects_total counter\n"
                   "transactions_post_batch_db_reconnects_total %lu\n",
                   ps.size, ps.open, ps.in_use, ps.reconnects);
}

static void cleanup(struct tx_ctx *cx) {
    svc_combiner_free(cx->batcher);
    if (cx->batch_pg) svc_pg_pool_free(cx->batch_pg);
    svc_tcache_free(cx->ucache_l1);
    svc_tcache_free(cx->list_l1);
    svc_combiner_free(cx->list_bumper);
    svc_auth_free(&cx->auth);
    svc_customers_close(&cx->customers);
}

int main(void) {
    static struct tx_ctx cx;
    svc_app_init(&cx.app, "transactions", "transactions");
    svc_app_prefer_thread_per_connection(&cx.app);   /* handlers wait on batches and PostgreSQL */
    load_settings(&cx);
    if (svc_app_check_config(&cx.app) != 0 || svc_customers_open(&cx.customers, "transactions-service", &cx.app.log) != 0) {
        svc_app_close(&cx.app);
        cleanup(&cx);
        return EXIT_FAILURE;
    }
    cx.app.pg_cfg.on_connect = tx_repo_prepare;
    cx.app.ready_hook = ready_hook;
    cx.app.metrics_hook = metrics_hook;
    if (svc_app_open(&cx.app) != 0) {
        svc_app_close(&cx.app);
        cleanup(&cx);
        return EXIT_FAILURE;
    }
    svc_app_routes(&cx.app, routes_transactions, routes_transactions_count);
    svc_app_routes(&cx.app, routes_accounts, routes_accounts_count);
    if (cx.user_local_cache_ms > 0) {
        cx.ucache_l1 = svc_tcache_new(&cx.app.redis_cfg, TXCACHE_PREFIX, 4096, cx.user_local_cache_ms, &cx.app.log);
        if (!cx.ucache_l1) svc_log(&cx.app.log, SVC_LOG_WARN, NULL, "local user cache unavailable; Redis only", NULL);
    }
    if (cx.list_cache_ttl_s > 0 && cx.user_local_cache_ms > 0) {
        cx.list_l1 = svc_tcache_new(&cx.app.redis_cfg, "txver:", 4096, cx.user_local_cache_ms, &cx.app.log);
        if (!cx.list_l1) svc_log(&cx.app.log, SVC_LOG_WARN, NULL, "local list cache unavailable; Redis only", NULL);
    }
    if (cx.list_cache_ttl_s > 0 && !(cx.list_bumper = svc_combiner_new(1, 32, txlist_cache_run_bumps, &cx)))
        svc_log(&cx.app.log, SVC_LOG_WARN, NULL, "cannot combine list version bumps; each posting bumps alone", NULL);
    if (cx.post_batch_max > 1) {
        struct svc_pg_config bc = cx.app.pg_cfg;
        bc.size = (int)cx.post_batch_leaders;
        bc.on_connect = tx_repo_prepare;
        cx.batch_pg = svc_pg_pool_new(&bc);
        cx.batcher = cx.batch_pg ? svc_combiner_new((int)cx.post_batch_leaders, (int)cx.post_batch_max, tx_run_batch, &cx) : NULL;
        if (!cx.batcher) {
            svc_log(&cx.app.log, SVC_LOG_ERROR, NULL, "cannot create the posting batcher", NULL);
            svc_app_close(&cx.app);
            cleanup(&cx);
            return EXIT_FAILURE;
        }
    }
    int rc = svc_app_run(&cx.app);
    cleanup(&cx);
    return rc;
}
