/* sync-service context: the shared svc_app (first member), this service's settings, the
 * customers-service client, the two job queues and their workers, the maintenance thread, and
 * event ingestion (events_service.h).
 *
 * Built in main.c before serving; afterwards only the atomics below, the pools, the queues and
 * the client (each thread-safe on its own) change. The stop flag is set once by the stop hook. */
#ifndef SYNC_CTX_H
#define SYNC_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "svc/app.h"
#include "svc/auth.h"
#include "svc/backoff.h"
#include "svc/customers.h"
#include "svc/queue.h"
#include "dash_assets.h"
#include "dash_auth.h"
#include "events_service.h"
#include "erp_ctx.h"
#include "sync_cron.h"

#define SYNC_QUEUE_RUNS "user-sync"
#define SYNC_QUEUE_BATCHES "user-sync-batch"
#define SYNC_BULK_PATH "/internal/users/bulk-upsert"

struct sync_settings {
    const char *legacy_url;          /* LEGACY_API_URL: the users endpoint itself */
    const char *legacy_accept;       /* LEGACY_ACCEPT */
    long legacy_connect_timeout_ms;  /* LEGACY_CONNECT_TIMEOUT_MS */
    long legacy_stall_s;             /* LEGACY_STALL_TIMEOUT_S: no byte for this long = dropped */
    long batch_size;                 /* SYNC_BATCH_SIZE */
    long batch_max_bytes;            /* SYNC_BATCH_MAX_BYTES: a batch is also cut at this size */
    long max_record_bytes;           /* SYNC_MAX_RECORD_BYTES: larger elements are invalid */
    long workers;                    /* SYNC_WORKERS: batch worker threads per instance */
    long max_inflight_batches;       /* SYNC_MAX_INFLIGHT_BATCHES: reader waits above this */
    long stream_max_attempts;        /* SYNC_STREAM_MAX_ATTEMPTS */
    struct svc_backoff_policy stream_backoff; /* SYNC_STREAM_RETRY_BASE_MS / _CAP_MS */
    long lease_ttl_ms;               /* SYNC_LEASE_TTL_MS */
    long reaper_interval_ms;         /* SYNC_REAPER_INTERVAL_MS */
    long max_resumes;                /* SYNC_MAX_RESUMES */
    long batch_max_attempts;         /* SYNC_BATCH_MAX_ATTEMPTS */
    struct svc_backoff_policy batch_backoff;  /* SYNC_BATCH_RETRY_BASE_MS / _CAP_MS */
    long visibility_ms;              /* SYNC_QUEUE_VISIBILITY_MS */
    long upsert_timeout_ms;          /* SYNC_UPSERT_TIMEOUT_MS: one bulk-upsert attempt */
    const char *cron_expr;           /* SYNC_CRON */
    struct sync_cron cron;
};

struct sync_metrics {
    atomic_ulong *records_valid, *records_invalid, *records_duplicate;
    atomic_ulong *stream_attempts_ok, *stream_attempts_failed;
    atomic_ulong *batches_enqueued, *batches_done, *batches_retried, *batches_failed;
    atomic_ulong *runs_triggered, *runs_completed, *runs_failed, *runs_resumed;
};

struct sync_ctx {
    struct svc_app app;              /* must stay first: handlers get it from svc_req */
    struct svc_auth auth;
    struct sync_settings set;
    struct sync_metrics m;
    struct dash_auth dash;           /* the operator dashboard (off unless ENABLE_QUEUE_DASHBOARD) */
    struct dash_assets assets;       /* its files, loaded when it is on */
    char owner[160];                 /* lease owner: <instance>:<pid>:<random> */
    struct svc_customers customers;  /* the client of customers-service (owns its httpc and token) */
    struct svc_queue *q_runs;
    struct svc_queue *q_batches;
    struct svc_queue_worker *w_runs;
    struct svc_queue_worker *w_batches;
    pthread_t maint;
    bool maint_started;
    atomic_bool stopping;
    pthread_mutex_t stop_mu;         /* with stop_cv: interruptible sleeps */
    pthread_cond_t stop_cv;
    struct events_rt ev;
    struct erp erp;                  /* tenants and their ERP synchronisation (erp_ctx.h) */
};

static inline struct sync_ctx *sync_ctx_of(struct svc_app *app) { return svc_app_service(app, struct sync_ctx); }

/* Sleeps up to ms, returning early (true) when the service is stopping. */
bool sync_sleep(struct sync_ctx *cx, long ms);

#endif
