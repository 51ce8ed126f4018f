/* transactions-service entry point: wiring only (config -> client -> pools -> routes -> serve ->
 * shutdown). Settings are documented in docs/operations.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctx.h"
#include "money.h"
#include "post_batch.h"
#include "routes.h"
#include "tx_repo.h"
#include "transactions.h"
#include "tx_request.h"
#include "txcache.h"

static void load_settings(struct tx_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    cx->customers_url = svc_config_str(c, "CUSTOMERS_URL", NULL);
    if (cx->customers_url && strncmp(cx->customers_url, "http://", 7) && strncmp(cx->customers_url, "https://", 8))
        svc_config_error(c, "CUSTOMERS_URL", "must be an http:// or https:// URL");
    cx->customers_open_ms = svc_config_int(c, "CUSTOMERS_BREAKER_OPEN_MS", 30000, 100, 3600000);
    cx->user_cache_s = svc_config_int(c, "USER_CHECK_CACHE_S", 30, 1, 3600);
    cx->idem_ttl_s = svc_config_int(c, "IDEMPOTENCY_TTL_S", 86400, 60, 7 * 86400);
    cx->user_local_cache_ms = svc_config_int(c, "USER_LOCAL_CACHE_MS", 1000, 0, 1000);
    const char *max = svc_config_str(c, "TX_MAX_AMOUNT", "1000000000.00");
    if (max && money_parse_amount(max, INT64_C(999999999999999), &cx->max_amount_cents))
        svc_config_error(c, "TX_MAX_AMOUNT", "must be a positive decimal amount with at most 2 decimals");
    cx->post_batch_max = svc_config_int(c, "POST_BATCH_MAX", 32, 1, TX_BATCH_MAX < PB_BATCH_CAP ? TX_BATCH_MAX : PB_BATCH_CAP);
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
                                         "User-existence cache lookups.");
    cx->ucache_miss = svc_metrics_counter(m, "cache_requests_total", "cache=\"user_exists\",result=\"miss\"",
                                          "User-existence cache lookups.");
}

/* The resilient client towards customers-service and the service token it presents. */
static int setup_client(struct tx_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    const char *client_id = svc_config_str(c, "SERVICE_CLIENT_ID", NULL);
    const char *secret = svc_config_str(c, "SERVICE_CLIENT_SECRET", NULL);
    long connect_ms = svc_config_int(c, "CUSTOMERS_CONNECT_TIMEOUT_MS", 1000, 10, 60000);
    long timeout_ms = svc_config_int(c, "CUSTOMERS_TIMEOUT_MS", 2000, 10, 120000);
    long attempts = svc_config_int(c, "CUSTOMERS_RETRY_ATTEMPTS", 3, 1, 10);
    long base_ms = svc_config_int(c, "CUSTOMERS_RETRY_BASE_MS", BACKOFF_DEFAULT_BASE_MS, 0, 60000);
    long cap_ms = svc_config_int(c, "CUSTOMERS_RETRY_CAP_MS", BACKOFF_DEFAULT_CAP_MS, 0, 600000);
    long failures = svc_config_int(c, "CUSTOMERS_BREAKER_FAILURES", 5, 1, 1000);
    if (svc_app_check_config(&cx->app) != 0) return -1;

    cx->token = svctoken_new(&(struct svctoken_config){
        .upstream = TX_CUSTOMERS_UPSTREAM, .client_id = client_id, .client_secret = secret, .logger = &cx->app.log});
    struct httpc_config hc = {
        .service_name = "transactions-service",
        .connect_timeout_ms = connect_ms,
        .timeout_ms = timeout_ms,
        .max_attempts = (int)attempts,
        .backoff = {.base_ms = (uint32_t)base_ms, .cap_ms = (uint32_t)(cap_ms < base_ms ? base_ms : cap_ms)},
        .token_fn = svctoken_get,
        .token_arg = cx->token,
        .logger = &cx->app.log,
    };
    /* base 0 means "retry at once"; httpc reads all-zero as "defaults", so keep cap >= 1. */
    if (hc.backoff.base_ms == 0 && hc.backoff.cap_ms == 0) hc.backoff.cap_ms = 1;
    cx->http = cx->token ? httpc_new(&hc) : NULL;
    struct breaker_config bc = {.failure_threshold = (int)failures, .open_timeout_ms = (uint32_t)cx->customers_open_ms};
    if (!cx->http || httpc_add_upstream(cx->http, TX_CUSTOMERS_UPSTREAM, cx->customers_url, &bc) != 0) {
        fprintf(stderr, "transactions-service: cannot set up the customers-service client (CUSTOMERS_URL?)\n");
        return -1;
    }
    svctoken_attach(cx->token, cx->http);
    return 0;
}

struct ready_state {
    json_t *checks;
    int worst;
};

static void ready_upstream(void *arg, const char *name, breaker_state_t st) {
    struct ready_state *rs = arg;
    char key[96], now[32];
    snprintf(key, sizeof key, "%s:circuitBreaker", name);
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int s = st == BREAKER_CLOSED ? 0 : 1;   /* open or probing: degraded, still ready */
    json_t *c = json_pack("{s:s,s:s,s:s,s:s}", "componentType", "component", "status", s ? "warn" : "pass",
                          "observedValue", breaker_state_str(st), "time", now);
    if (st == BREAKER_OPEN)
        json_object_set_new(c, "output", json_string("circuit breaker open: calls fail fast"));
    json_object_set_new(rs->checks, key, json_pack("[o]", c));
    if (s > rs->worst) rs->worst = s;
}

static int ready_hook(struct svc_app *app, json_t *checks) {
    struct ready_state rs = {checks, 0};
    httpc_each_upstream(tx_ctx_of(app)->http, ready_upstream, &rs);
    return rs.worst;
}

/* The resilient client's metrics, and the posting batcher's own connections (beside the main
 * pool's db_pool_connections). */
static void metrics_hook(struct svc_app *app, struct svc_buf *out) {
    struct tx_ctx *cx = tx_ctx_of(app);
    httpc_metrics_render(cx->http, out);
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
    pb_free(cx->batcher);
    if (cx->batch_pg) svc_pg_pool_free(cx->batch_pg);
    svc_tcache_free(cx->ucache_l1);
    svc_auth_free(&cx->auth);
    httpc_free(cx->http);
    svctoken_free(cx->token);
}

int main(void) {
    static struct tx_ctx cx;
    svc_app_init(&cx.app, "transactions", "transactions");
    svc_app_prefer_thread_per_connection(&cx.app);   /* handlers wait on batches and PostgreSQL */
    load_settings(&cx);
    if (setup_client(&cx) != 0) {
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
    if (cx.post_batch_max > 1) {
        struct svc_pg_config bc = cx.app.pg_cfg;
        bc.size = (int)cx.post_batch_leaders;
        bc.on_connect = tx_repo_prepare_batch;
        cx.batch_pg = svc_pg_pool_new(&bc);
        cx.batcher = cx.batch_pg ? pb_new((int)cx.post_batch_leaders, (int)cx.post_batch_max, tx_run_batch, &cx) : NULL;
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
