/* The ERP synchronisation's schedule: cron slots, the "sync every tenant now" and "sync this
 * tenant now" triggers, and the daily retention of the job audit.
 *
 * A slot (ERP_SYNC_CUSTOMERS_CRON / ERP_SYNC_PRODUCTS_CRON, UTC) fires once across all instances:
 * at its minute every instance tries SET erp:slot:<kind>:<minute> NX with a lease
 * (ERP_SYNC_SLOT_LEASE_MS); the winner renews it while it enqueues and marks it done (kept 48 h);
 * the others watch it for an hour and take over when a lease expires undone (the winner died):
 * job ids (kind, tenant, slot) make a second enqueue of the same tenant a no-op.
 * Enqueueing pages through the active tenants 100 at a time in creation order (never all in
 * memory) and gives each job the delay slot time + its jitter offset (erp_jitter.h, over
 * ERP_SYNC_DELAY_<KIND>_MS_MAX in steps of ERP_SYNC_DELAY_STEP_MS) − now. A tenant that already
 * has a live job of the kind (unique key) is skipped: at most one job per tenant and kind waits.
 * "Sync every tenant now" is the same path with the slot "now" and a window that may be shorter.
 *
 * Retention: every RETENTION_INTERVAL_MS (24 h) one instance (SET erp:retention:<period> NX)
 * deletes job_runs rows older than RETENTION_DAYS_JOBRUN in chunks of RETENTION_CHUNK rows.
 * (Finished queue entries leave Redis when they finish; dead letters after
 * ERP_SYNC_QUEUE_PRUNE_MS, 24 h, through the queue's own pruning.)
 *
 * Tenant states: every ERP_TENANTS_SAMPLE_MS (30 s) each instance counts the tenants per sync
 * state in PostgreSQL for the erp_tenants gauges (erp_metrics.h); a failed count keeps the last
 * values and is logged once until a count succeeds.
 *
 * The thread sleeps with sync_sleep (interrupted by the service's stop). */
#ifndef ERP_SCHED_H
#define ERP_SCHED_H

#include <stdint.h>

#include "erp_page.h"
#include "svc/auth.h"
#include "sync_ctx.h"

int erp_sched_start(struct sync_ctx *cx);
/* Joins the thread (the service's stop flag must be set first). */
void erp_sched_stop(struct sync_ctx *cx);

struct erp_slot_counts {
    long enqueued;   /* new jobs */
    long skipped;    /* tenants with a live job of the kind, or already enqueued for this slot */
    long tenants;    /* active tenants seen */
};

/* Enqueues slot `slot` of a kind (time slot_unix_ms) for every active tenant, offsets spread over
 * window_ms. Returns SVC_OK, or a database / Redis status when it could not finish (the jobs
 * enqueued so far stay; repeating the call is harmless). lease: a Redis key to renew while paging
 * (NULL: none). */
svc_status erp_slot_enqueue(struct sync_ctx *cx, enum erp_kind kind, const char *slot, int64_t slot_unix_ms,
                            int64_t window_ms, bool full, const char *lease, const char *cid,
                            struct erp_slot_counts *out);

/* POST /api/tenants/{id}/sync {"kind", "full"?}: 202 {"job_id","kind","tenant_id"}; 409
 * job_already_queued with details.job_id while one is waiting or running; 404; 422
 * tenant_inactive; 400. */
struct svc_result erp_trigger_tenant(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                     const char *tenant_id, const json_t *body);
/* POST /api/tenants/sync {"kind", "spreadMs"?, "full"?}: a slot now for every active tenant,
 * jitter included (spreadMs may shorten the window): 202 {"kind","slot","window_ms","enqueued",
 * "skipped","tenants"}. */
struct svc_result erp_trigger_all(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                  const json_t *body);

/* One retention pass (exposed for tests): deletes old job_runs in chunks; returns rows deleted. */
long long erp_retention_run(struct sync_ctx *cx);

#endif
