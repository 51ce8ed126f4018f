/* ERP settings of sync-service (see erp_ctx.h; every variable is documented in
 * docs/operations.md, "ERP synchronisation"). */
#include <string.h>

#include "erp_ctx.h"
#include "svc/metrics.h"

/* var names the setting that gave path (the path of a key file: a key is never put in the
 * environment itself). Settings are read with their names written out, so that the checks of
 * deploy/k8s (tests/static/k8s_reference.py) see what the service reads. */
static void load_key(struct erp *e, struct svc_config *c, const char *var, const char *path) {
    if (!path || !*path) return;
    struct svc_aead_key k;
    const char *why = NULL;
    if (svc_aead_key_load(path, &k, &why) != 0) {
        svc_config_error(c, var, why);
        return;
    }
    if (svc_aead_keyring_add(&e->keys, &k) != 0) svc_config_error(c, var, "the same key as TENANT_SECRETS_KEY_FILE");
    memset(&k, 0, sizeof k);
}

static void load_cron(struct erp_settings *s, struct svc_config *c, int kind, const char *var, const char *expr) {
    s->cron_expr[kind] = expr;
    const char *why = NULL;
    if (s->cron_expr[kind] && sync_cron_parse(s->cron_expr[kind], &s->cron[kind], &why) != 0)
        svc_config_error(c, var, why);
}

static void load_metrics(struct erp_metrics *m, struct svc_metrics *reg) {
    const char *jobs = "ERP sync job executions by outcome (deferred: put back by the rate limit, a lock or a 429).";
    m->jobs_completed = svc_metrics_counter(reg, "erp_jobs_total", "outcome=\"completed\"", jobs);
    m->jobs_failed = svc_metrics_counter(reg, "erp_jobs_total", "outcome=\"failed\"", jobs);
    m->jobs_dead = svc_metrics_counter(reg, "erp_jobs_total", "outcome=\"dead\"", jobs);
    m->jobs_deferred = svc_metrics_counter(reg, "erp_jobs_total", "outcome=\"deferred\"", jobs);
    m->jobs_skipped = svc_metrics_counter(reg, "erp_jobs_total", "outcome=\"skipped\"", jobs);
    const char *defer = "ERP sync jobs put back without spending an attempt, by reason (locked: the tenant's lock "
                        "was held; throttled: its ERP's Retry-After; rate_limited: ERP_SYNC_RATE_MAX; unavailable: "
                        "PostgreSQL or Redis failed).";
    m->deferrals[ERP_DEFER_LOCKED] = svc_metrics_counter(reg, "erp_job_deferrals_total", "reason=\"locked\"", defer);
    m->deferrals[ERP_DEFER_THROTTLED] =
        svc_metrics_counter(reg, "erp_job_deferrals_total", "reason=\"throttled\"", defer);
    m->deferrals[ERP_DEFER_RATE_LIMITED] =
        svc_metrics_counter(reg, "erp_job_deferrals_total", "reason=\"rate_limited\"", defer);
    m->deferrals[ERP_DEFER_UNAVAILABLE] =
        svc_metrics_counter(reg, "erp_job_deferrals_total", "reason=\"unavailable\"", defer);
    const char *rec = "ERP records read and written by sync jobs.";
    m->records_fetched = svc_metrics_counter(reg, "erp_records_total", "op=\"fetched\"", rec);
    m->records_upserted = svc_metrics_counter(reg, "erp_records_total", "op=\"upserted\"", rec);
    m->records_unchanged = svc_metrics_counter(reg, "erp_records_total", "op=\"unchanged\"", rec);
    m->records_invalid = svc_metrics_counter(reg, "erp_records_total", "op=\"invalid\"", rec);
    const char *sched = "ERP sync schedule events.";
    m->slots_fired = svc_metrics_counter(reg, "erp_schedule_total", "event=\"slot\"", sched);
    m->jobs_enqueued = svc_metrics_counter(reg, "erp_schedule_total", "event=\"enqueued\"", sched);
}

void erp_settings_load(struct erp *e, struct svc_config *c, struct svc_metrics *m) {
    memset(e, 0, sizeof *e);
    load_key(e, c, "TENANT_SECRETS_KEY_FILE", svc_config_str(c, "TENANT_SECRETS_KEY_FILE", NULL));
    load_key(e, c, "TENANT_SECRETS_PREVIOUS_KEY_FILE", svc_config_str(c, "TENANT_SECRETS_PREVIOUS_KEY_FILE", ""));
    const char *why = NULL;
    if (erp_allow_parse(svc_config_str(c, "ERP_ALLOWED_HOSTS", ""), &e->allow, &why) != 0)
        svc_config_error(c, "ERP_ALLOWED_HOSTS", why);

    struct erp_settings *s = &e->set;
    load_cron(s, c, 0, "ERP_SYNC_CUSTOMERS_CRON", svc_config_str(c, "ERP_SYNC_CUSTOMERS_CRON", "0 3 * * *"));
    load_cron(s, c, 1, "ERP_SYNC_PRODUCTS_CRON", svc_config_str(c, "ERP_SYNC_PRODUCTS_CRON", "0 4 * * *"));
    s->delay_max_ms[0] = svc_config_int(c, "ERP_SYNC_DELAY_CUSTOMERS_MS_MAX", 3600000, 0, 86400000);
    s->delay_max_ms[1] = svc_config_int(c, "ERP_SYNC_DELAY_PRODUCTS_MS_MAX", 3600000, 0, 86400000);
    s->delay_step_ms = svc_config_int(c, "ERP_SYNC_DELAY_STEP_MS", 1000, 1, 3600000);
    s->concurrency = svc_config_int(c, "ERP_SYNC_CONCURRENCY", 1, 0, ERP_KEEPER_MAX);
    s->rate_max = svc_config_int(c, "ERP_SYNC_RATE_MAX", 10, 0, 1000000);
    s->rate_window_ms = svc_config_int(c, "ERP_SYNC_RATE_WINDOW_MS", 60000, 100, 86400000);
    s->lock_ttl_ms = svc_config_int(c, "ERP_SYNC_LOCK_TTL_SECONDS", 7200, 1, 7 * 86400) * 1000;
    s->lock_retry_ms = svc_config_int(c, "ERP_SYNC_LOCK_RETRY_MS", 5000, 10, 3600000);
    s->retries = svc_config_int(c, "ERP_SYNC_RETRY_ATTEMPTS", 3, 0, 20);
    s->retry_base_ms = svc_config_int(c, "ERP_SYNC_RETRY_BASE_MS", 60000, 1, 86400000);
    s->page_size = svc_config_int(c, "ERP_SYNC_PAGE_SIZE", 500, 1, 500);
    s->batch_records = svc_config_int(c, "ERP_SYNC_BATCH_RECORDS", 5000, 1, 100000);
    s->max_pages = svc_config_int(c, "ERP_SYNC_MAX_PAGES", 10000, 1, 1000000);
    s->visibility_ms = svc_config_int(c, "ERP_SYNC_QUEUE_VISIBILITY_MS", 60000, 500, 86400000);
    s->queue_prune_ms = svc_config_int(c, "ERP_SYNC_QUEUE_PRUNE_MS", 86400000, 1000, 30L * 86400000);
    s->retention_days = svc_config_int(c, "RETENTION_DAYS_JOBRUN", 90, 1, 36500);
    s->retention_interval_ms = svc_config_int(c, "RETENTION_INTERVAL_MS", 86400000, 100, 30L * 86400000);
    s->retention_chunk = svc_config_int(c, "RETENTION_CHUNK", 5000, 1, 1000000);
    s->slot_lease_ms = svc_config_int(c, "ERP_SYNC_SLOT_LEASE_MS", 60000, 100, 3600000);
    s->tenants_sample_ms = svc_config_int(c, "ERP_TENANTS_SAMPLE_MS", 30000, 1000, 3600000);
    s->client = (struct erp_client_config){
        .connect_timeout_ms = svc_config_int(c, "ERP_CONNECT_TIMEOUT_MS", 5000, 10, 120000),
        .timeout_ms = svc_config_int(c, "ERP_TIMEOUT_MS", 30000, 10, 600000),
        .max_page_bytes = svc_config_int(c, "ERP_MAX_PAGE_BYTES", 8L << 20, 1024, 64L << 20),
        .page_attempts = (int)svc_config_int(c, "ERP_PAGE_ATTEMPTS", 2, 1, 10),
        .breaker_failures = (int)svc_config_int(c, "ERP_BREAKER_FAILURES", 5, 1, 1000),
        .breaker_open_ms = svc_config_int(c, "ERP_BREAKER_OPEN_MS", 60000, 100, 3600000),
        .allow = &e->allow,
    };
    load_metrics(&e->m, m);
}

void erp_free(struct erp *e) {
    svc_aead_keyring_wipe(&e->keys);
    if (e->client_ready) erp_client_free(&e->client);
    e->client_ready = false;
    svc_queue_free(e->q);
    e->q = NULL;
}
