/* The ERP synchronisation's part of the sync-service context (struct sync_ctx embeds one): its
 * settings, the tenants' key ring, the SSRF allow list, the ERP client, the job queue and its
 * workers, the lock keeper and the scheduler thread.
 *
 * Filled in main.c before serving (erp_settings_load, then erp_start once the pools exist);
 * afterwards only the atomics, the queue, the client and the keeper (each thread-safe on its own)
 * change. erp_stop stops the threads before the pools go; erp_free wipes the key ring. */
#ifndef ERP_CTX_H
#define ERP_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "erp_client.h"
#include "erp_lock.h"
#include "erp_url.h"
#include "svc/aead.h"
#include "svc/config.h"
#include "svc/queue.h"
#include "sync_cron.h"

#define ERP_QUEUE "erp-sync"

struct erp_settings {
    const char *cron_expr[2];        /* ERP_SYNC_CUSTOMERS_CRON, ERP_SYNC_PRODUCTS_CRON */
    struct sync_cron cron[2];
    long delay_max_ms[2];            /* ERP_SYNC_DELAY_CUSTOMERS_MS_MAX, ERP_SYNC_DELAY_PRODUCTS_MS_MAX */
    long delay_step_ms;              /* ERP_SYNC_DELAY_STEP_MS */
    long concurrency;                /* ERP_SYNC_CONCURRENCY: workers per instance */
    long rate_max;                   /* ERP_SYNC_RATE_MAX (0: no limit) */
    long rate_window_ms;             /* ERP_SYNC_RATE_WINDOW_MS */
    long lock_ttl_ms;                /* ERP_SYNC_LOCK_TTL_SECONDS */
    long lock_retry_ms;              /* ERP_SYNC_LOCK_RETRY_MS: longest wait of a job that found its tenant locked */
    long retries;                    /* ERP_SYNC_RETRY_ATTEMPTS: retries after the first run */
    long retry_base_ms;              /* ERP_SYNC_RETRY_BASE_MS: waits base, 2·base, 4·base… */
    long page_size;                  /* ERP_SYNC_PAGE_SIZE (per_page, ≤ 500) */
    long batch_records;              /* ERP_SYNC_BATCH_RECORDS: records per database write */
    long max_pages;                  /* ERP_SYNC_MAX_PAGES: a job reads at most this many pages */
    long visibility_ms;              /* ERP_SYNC_QUEUE_VISIBILITY_MS */
    long queue_prune_ms;             /* ERP_SYNC_QUEUE_PRUNE_MS: dead letters kept this long */
    long retention_days;             /* RETENTION_DAYS_JOBRUN */
    long retention_interval_ms;      /* RETENTION_INTERVAL_MS */
    long retention_chunk;            /* RETENTION_CHUNK */
    long slot_lease_ms;              /* ERP_SYNC_SLOT_LEASE_MS: a slot's enqueuer must finish or renew within */
    long tenants_sample_ms;          /* ERP_TENANTS_SAMPLE_MS: how often the tenants' states are counted */
    struct erp_client_config client; /* ERP_* of the HTTP client */
};

/* Why a job was put back without spending an attempt (erp_job_deferrals_total{reason}). */
enum erp_defer_reason {
    ERP_DEFER_LOCKED,        /* the tenant's lock is held by another job */
    ERP_DEFER_THROTTLED,     /* the tenant's ERP answered 429 and its Retry-After runs */
    ERP_DEFER_RATE_LIMITED,  /* the global rate limit (ERP_SYNC_RATE_MAX) is full */
    ERP_DEFER_UNAVAILABLE,   /* PostgreSQL or Redis failed before the job could start */
    ERP_NDEFER
};

/* The tenants' sync states as GET /api/tenants/{id}/status computes them (erp_status.h). */
enum erp_tenant_state { ERP_TENANT_OK, ERP_TENANT_FAILING, ERP_TENANT_AUTH_FAILED, ERP_TENANT_INACTIVE, ERP_NSTATES };

/* Counters are registered in the service's metrics (svc_metrics_counter); the tenant gauges are
 * sampled by the scheduler thread (erp_sched.h) and rendered with the breakers by
 * erp_metrics_render (erp_metrics.h). */
struct erp_metrics {
    atomic_ulong *jobs_completed, *jobs_failed, *jobs_dead, *jobs_deferred, *jobs_skipped;
    atomic_ulong *deferrals[ERP_NDEFER];
    atomic_ulong *records_fetched, *records_upserted, *records_unchanged, *records_invalid;
    atomic_ulong *slots_fired, *jobs_enqueued;
    atomic_llong tenants[ERP_NSTATES];   /* tenants per state at the last successful count */
    atomic_bool tenants_up;              /* the last count succeeded */
};

struct erp {
    struct svc_aead_keyring keys;   /* TENANT_SECRETS_KEY_FILE (seals), _PREVIOUS_KEY_FILE (opens) */
    struct erp_allow allow;         /* ERP_ALLOWED_HOSTS */
    erp_resolver resolver;          /* name resolution of the SSRF check (tests inject their own) */
    void *resolver_arg;
    struct erp_settings set;
    struct erp_metrics m;
    struct erp_client client;
    bool client_ready;
    struct svc_queue *q;
    struct svc_queue_worker *w;
    struct erp_keeper keeper;
    pthread_t sched;
    bool sched_started;
};

struct sync_ctx;
struct svc_metrics;

/* Reads the ERP settings from c; problems are recorded as config errors. */
void erp_settings_load(struct erp *e, struct svc_config *c, struct svc_metrics *m);
/* Client, queue, keeper, workers and the scheduler (after svc_app_open). 0 or -1. */
int erp_start(struct sync_ctx *cx);
/* Stops the workers and threads (before the pools are freed); idempotent. */
void erp_stop(struct sync_ctx *cx);
void erp_free(struct erp *e);

#endif
