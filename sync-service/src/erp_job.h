/* One ERP sync job: the queue handler that synchronises one kind of one tenant.
 *
 * A job is (kind, tenant, slot): its id "<kind>:<tenant>:<slot>" (a slot cannot enqueue a tenant
 * twice), its unique key "<kind>:<tenant>" (at most one live job per tenant and kind), its payload
 * "erp1 <kind> <tenant> <slot> <full>" — no name, URL, key or record in it.
 *
 * Run, in this order, each step giving way without spending an attempt (SVC_JOB_DEFER) when it
 * says "not now":
 *   1. the tenant (PostgreSQL): deleted or inactive → the job is dropped (nothing to do);
 *   2. the tenant's lock (erp_lock.h): held by another job → wait its time left (at most
 *      ERP_SYNC_LOCK_RETRY_MS); the ERP asked us to wait (429) → wait until it may be called;
 *   3. the global rate limit (erp_ratelimit.h): full → wait until a slot frees (lock given back);
 *   4. the sync: the newest updated_at the last complete sync read is the watermark; pages are
 *      read from it (inclusive: the records at the watermark come again and count as unchanged),
 *      or from the start for a full sync or the first one; every ERP_SYNC_BATCH_RECORDS records
 *      are written in one transaction behind the fencing check (erp_repo.h); the lock must be
 *      usable before every page and every write; at the end the watermark moves forward.
 * Outcomes: a 5xx, timeout, malformed page, open breaker, lost lock or database failure is
 * transient: retried after ERP_SYNC_RETRY_BASE_MS × 2^(attempt−1) (1, 2, 4 minutes by default),
 * ERP_SYNC_RETRY_ATTEMPTS times, then dead-lettered; a 429 is retried after its Retry-After and
 * no job calls that tenant's ERP before then; a 401 (the tenant's status says auth_failed), a
 * refused address (SSRF) or any other client error is dead-lettered at once; a stale fencing
 * token means a newer holder synchronises the tenant: this job stops without retrying. When the
 * instance stops (SIGTERM) a running job stops between two pages and goes back to the queue at
 * once, without spending an attempt.
 * Every execution has a row in sync.job_runs (running → completed / failed / dead, with counts).
 *
 * Ownership: arg is the struct sync_ctx (borrowed); the thread context (erp_job_thread_init) owns
 * one batch buffer per worker thread. */
#ifndef ERP_JOB_H
#define ERP_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "erp_page.h"
#include "svc/cid.h"
#include "svc/queue.h"

#define ERP_SLOT_MAX 40

struct erp_job_spec {
    enum erp_kind kind;
    char tenant[SVC_UUID_LEN + 1];
    char slot[ERP_SLOT_MAX + 1];   /* [A-Za-z0-9-] */
    bool full;                     /* ignore the watermark: read everything */
};

/* 0, or -1 when the spec is not encodable. */
int erp_job_payload(const struct erp_job_spec *s, char *out, size_t n);
/* 0, or -1 when malformed. */
int erp_job_parse(const char *payload, size_t len, struct erp_job_spec *out);
void erp_job_id(const struct erp_job_spec *s, char out[SVC_QUEUE_JOB_ID_MAX + 1]);
void erp_job_unique_key(enum erp_kind kind, const char *tenant, char out[SVC_QUEUE_JOB_ID_MAX + 1]);

svc_job_result erp_job_handle(struct svc_job *job, void *arg);
void *erp_job_thread_init(void *arg, int index);
void erp_job_thread_fini(void *thread_ctx, void *arg);

#endif
