/* sync-service entry point: wiring only (config -> client -> pools -> queues and workers ->
 * routes -> serve -> shutdown). Settings are documented in docs/operations.md. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erp_metrics.h"
#include "routes.h"
#include "sync_batch_job.h"
#include "sync_ctx.h"
#include "sync_maint.h"
#include "sync_stream.h"
#include "svc/queue_metrics.h"

static bool is_http_url(const char *u) { return u && (!strncmp(u, "http://", 7) || !strncmp(u, "https://", 8)); }

static void load_settings(struct sync_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    struct sync_settings *s = &cx->set;
    s->legacy_url = svc_config_str(c, "LEGACY_API_URL", NULL);
    if (s->legacy_url && !is_http_url(s->legacy_url))
        svc_config_error(c, "LEGACY_API_URL", "must be an http:// or https:// URL");
    s->legacy_accept = svc_config_str(c, "LEGACY_ACCEPT", "application/x-ndjson, application/json;q=0.9");
    if (s->legacy_accept && (strchr(s->legacy_accept, '\r') || strchr(s->legacy_accept, '\n') ||
                             strlen(s->legacy_accept) > 200))
        svc_config_error(c, "LEGACY_ACCEPT", "must be one header value of at most 200 characters");
    s->legacy_connect_timeout_ms = svc_config_int(c, "LEGACY_CONNECT_TIMEOUT_MS", 5000, 100, 120000);
    s->legacy_stall_s = svc_config_int(c, "LEGACY_STALL_TIMEOUT_S", 120, 1, 3600);
    s->batch_size = svc_config_int(c, "SYNC_BATCH_SIZE", 2000, 1, 5000);
    s->batch_max_bytes = svc_config_int(c, "SYNC_BATCH_MAX_BYTES", 8L << 20, 64L << 10, 15L << 20);
    s->max_record_bytes = svc_config_int(c, "SYNC_MAX_RECORD_BYTES", 65536, 256, 1L << 20);
    s->workers = svc_config_int(c, "SYNC_WORKERS", 3, 0, 64);
    s->max_inflight_batches = svc_config_int(c, "SYNC_MAX_INFLIGHT_BATCHES", 16, 1, 100000);
    s->stream_max_attempts = svc_config_int(c, "SYNC_STREAM_MAX_ATTEMPTS", 10, 1, 1000);
    s->stream_backoff.base_ms = (uint32_t)svc_config_int(c, "SYNC_STREAM_RETRY_BASE_MS", 1000, 1, 600000);
    s->stream_backoff.cap_ms = (uint32_t)svc_config_int(c, "SYNC_STREAM_RETRY_CAP_MS", 60000, 1, 3600000);
    s->lease_ttl_ms = svc_config_int(c, "SYNC_LEASE_TTL_MS", 30000, 300, 3600000);
    s->reaper_interval_ms = svc_config_int(c, "SYNC_REAPER_INTERVAL_MS", 5000, 50, 3600000);
    s->max_resumes = svc_config_int(c, "SYNC_MAX_RESUMES", 5, 0, 1000);
    s->batch_max_attempts = svc_config_int(c, "SYNC_BATCH_MAX_ATTEMPTS", 8, 1, 100);
    s->batch_backoff.base_ms = (uint32_t)svc_config_int(c, "SYNC_BATCH_RETRY_BASE_MS", 1000, 1, 600000);
    s->batch_backoff.cap_ms = (uint32_t)svc_config_int(c, "SYNC_BATCH_RETRY_CAP_MS", 60000, 1, 3600000);
    s->visibility_ms = svc_config_int(c, "SYNC_QUEUE_VISIBILITY_MS", 30000, 500, 3600000);
    s->upsert_timeout_ms = svc_config_int(c, "SYNC_UPSERT_TIMEOUT_MS", 30000, 100, 600000);
    s->cron_expr = svc_config_str(c, "SYNC_CRON", SYNC_CRON_DEFAULT);
    const char *why = NULL;
    if (s->cron_expr && sync_cron_parse(s->cron_expr, &s->cron, &why) != 0) svc_config_error(c, "SYNC_CRON", why);
    if (s->stream_backoff.cap_ms < s->stream_backoff.base_ms) s->stream_backoff.cap_ms = s->stream_backoff.base_ms;
    if (s->batch_backoff.cap_ms < s->batch_backoff.base_ms) s->batch_backoff.cap_ms = s->batch_backoff.base_ms;

    svc_customers_config(&cx->customers, c);
    svc_auth_init(&cx->auth, &cx->app, false);
    dash_auth_init(&cx->dash, c);
    const char *assets_dir = svc_config_str(c, "QUEUE_DASHBOARD_ASSETS_DIR", "sync-service/web");
    why = NULL;
    if (cx->dash.enabled && assets_dir && dash_assets_load(&cx->assets, assets_dir, &why) != 0)
        svc_config_error(c, "QUEUE_DASHBOARD_ASSETS_DIR", why);
    events_service_configure(&cx->ev, c);
    erp_settings_load(&cx->erp, c, &cx->app.metrics);

    struct svc_metrics *m = &cx->app.metrics;
    struct sync_metrics *sm = &cx->m;
    const char *rec = "Legacy records read by stream attempts that reached the end, by outcome.";
    sm->records_valid = svc_metrics_counter(m, "sync_records_total", "outcome=\"valid\"", rec);
    sm->records_invalid = svc_metrics_counter(m, "sync_records_total", "outcome=\"invalid\"", rec);
    sm->records_duplicate = svc_metrics_counter(m, "sync_records_total", "outcome=\"duplicate\"", rec);
    const char *att = "Legacy stream attempts by result.";
    sm->stream_attempts_ok = svc_metrics_counter(m, "sync_stream_attempts_total", "result=\"completed\"", att);
    sm->stream_attempts_failed = svc_metrics_counter(m, "sync_stream_attempts_total", "result=\"failed\"", att);
    const char *bat = "Sync batches by event.";
    sm->batches_enqueued = svc_metrics_counter(m, "sync_batches_total", "event=\"enqueued\"", bat);
    sm->batches_done = svc_metrics_counter(m, "sync_batches_total", "event=\"done\"", bat);
    sm->batches_retried = svc_metrics_counter(m, "sync_batches_total", "event=\"retried\"", bat);
    sm->batches_failed = svc_metrics_counter(m, "sync_batches_total", "event=\"failed\"", bat);
    const char *runs = "Sync runs by event.";
    sm->runs_triggered = svc_metrics_counter(m, "sync_runs_total", "event=\"triggered\"", runs);
    sm->runs_completed = svc_metrics_counter(m, "sync_runs_total", "event=\"completed\"", runs);
    sm->runs_failed = svc_metrics_counter(m, "sync_runs_total", "event=\"failed\"", runs);
    sm->runs_resumed = svc_metrics_counter(m, "sync_runs_total", "event=\"resumed\"", runs);
}

static int setup_queues(struct sync_ctx *cx) {
    svc_status st;
    struct svc_queue_options runs = {.name = SYNC_QUEUE_RUNS,
                                     .max_payload = 4096,
                                     .max_attempts = 5,
                                     .backoff = cx->set.stream_backoff,
                                     .visibility_timeout_ms = (int)cx->set.visibility_ms};
    cx->q_runs = svc_queue_new(cx->app.redis, &runs, &cx->app.log, &st);
    struct svc_queue_options batches = {.name = SYNC_QUEUE_BATCHES,
                                        .max_payload = SVC_QUEUE_HARD_MAX_PAYLOAD,
                                        .max_attempts = (int)cx->set.batch_max_attempts,
                                        .backoff = cx->set.batch_backoff,
                                        .visibility_timeout_ms = (int)cx->set.visibility_ms};
    cx->q_batches = cx->q_runs ? svc_queue_new(cx->app.redis, &batches, &cx->app.log, &st) : NULL;
    if (!cx->q_batches) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, NULL, "cannot create the job queues", "{s:s}", "status",
                 svc_status_code(st));
        return -1;
    }
    return 0;
}

static int start_workers(struct sync_ctx *cx) {
    struct svc_queue_worker_config wr = {.concurrency = 1,
                                         .handler = sync_stream_job,
                                         .arg = cx,
                                         .thread_init = sync_stream_thread_init,
                                         .thread_fini = sync_stream_thread_fini,
                                         .redis = &cx->app.redis_cfg,
                                         .consumer_prefix = cx->app.instance};
    if (svc_queue_worker_start(cx->q_runs, &wr, &cx->w_runs) != SVC_OK) return -1;
    if (erp_start(cx) != 0) return -1;
    if (cx->set.workers > 0) {
        struct svc_queue_worker_config wb = {.concurrency = (int)cx->set.workers,
                                             .handler = sync_batch_job,
                                             .arg = cx,
                                             .redis = &cx->app.redis_cfg,
                                             .consumer_prefix = cx->app.instance};
        if (svc_queue_worker_start(cx->q_batches, &wb, &cx->w_batches) != SVC_OK) return -1;
    }
    return sync_maint_start(cx);
}

/* Runs from svc_app_close once HTTP has drained: background threads stop before the pools go. */
static void stop_hook(struct svc_app *app) {
    struct sync_ctx *cx = sync_ctx_of(app);
    events_service_stop(cx);   /* consumers write and acknowledge what they hold */
    sync_maint_stop(cx);   /* sets the stop flag: the stream reader aborts its transfer */
    erp_stop(cx);
    if (cx->w_runs) svc_queue_worker_request_stop(cx->w_runs);
    if (cx->w_batches) svc_queue_worker_request_stop(cx->w_batches);
    svc_queue_worker_free(cx->w_runs);
    svc_queue_worker_free(cx->w_batches);
    cx->w_runs = cx->w_batches = NULL;
}

static int ready_hook(struct svc_app *app, json_t *checks) {
    return svc_customers_ready(&sync_ctx_of(app)->customers, checks);
}

static void metrics_hook(struct svc_app *app, struct svc_buf *out) {
    struct sync_ctx *cx = sync_ctx_of(app);
    /* customers-service's client and the ERPs' (upstream "erp"; its breakers: erp_breakers) */
    struct svc_httpc *clients[2] = {cx->customers.http, cx->erp.client_ready ? cx->erp.client.http : NULL};
    svc_httpc_metrics_render_all(clients, 2, out);
    struct svc_queue *queues[3];
    int n = 0;
    if (cx->q_runs) queues[n++] = cx->q_runs;
    if (cx->q_batches) queues[n++] = cx->q_batches;
    if (cx->erp.q) queues[n++] = cx->erp.q;
    svc_queue_metrics_render(queues, n, out);
    erp_metrics_render(&cx->erp, out);
    events_metrics_render(&cx->ev.m, out);
}

static void cleanup(struct sync_ctx *cx) {
    dash_assets_free(&cx->assets);
    svc_queue_free(cx->q_batches);
    svc_queue_free(cx->q_runs);
    svc_customers_close(&cx->customers);
    svc_auth_free(&cx->auth);
    events_service_free(&cx->ev);
    erp_free(&cx->erp);
    pthread_cond_destroy(&cx->stop_cv);
    pthread_mutex_destroy(&cx->stop_mu);
}

int main(void) {
    static struct sync_ctx cx;
    svc_app_init(&cx.app, "sync", "sync");
    pthread_mutex_init(&cx.stop_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cx.stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    load_settings(&cx);
    if (svc_app_check_config(&cx.app) != 0 || svc_customers_open(&cx.customers, "sync-service", &cx.app.log) != 0) {
        svc_app_close(&cx.app);
        cleanup(&cx);
        return EXIT_FAILURE;
    }
    uint32_t rnd = 0;
    if (svc_random_bytes(&rnd, sizeof rnd) != 0) rnd = (uint32_t)time(NULL);
    snprintf(cx.owner, sizeof cx.owner, "%s:%d:%08" PRIx32, cx.app.instance, (int)getpid(), rnd);
    cx.app.ready_hook = ready_hook;
    cx.app.metrics_hook = metrics_hook;
    if (svc_app_open(&cx.app) != 0 || setup_queues(&cx) != 0) {
        svc_app_close(&cx.app);
        cleanup(&cx);
        return EXIT_FAILURE;
    }
    cx.app.stop_hook = stop_hook;
    if (start_workers(&cx) != 0 || events_service_start(&cx) != 0) {
        svc_logf(&cx.app.log, SVC_LOG_ERROR, NULL, "cannot start the job workers", NULL);
        svc_app_close(&cx.app);
        cleanup(&cx);
        return EXIT_FAILURE;
    }
    svc_app_routes(&cx.app, routes_sync, routes_sync_count);
    if (cx.dash.enabled) svc_app_routes(&cx.app, routes_dashboard, routes_dashboard_count);
    svc_app_routes(&cx.app, routes_events, routes_events_count);
    svc_app_routes(&cx.app, routes_tenants, routes_tenants_count);
    int rc = svc_app_run(&cx.app);
    cleanup(&cx);
    return rc;
}
