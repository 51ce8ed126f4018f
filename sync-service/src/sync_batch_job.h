/* Batch jobs (queue "user-sync-batch"): send one batch to customers-service and record what it
 * did.
 *
 * The payload (sync_batch.h) already holds the bulk-upsert body, so the worker slices it out and
 * POSTs it to /internal/users/bulk-upsert through the shared resilient client (service token,
 * breaker, retries — the batch's job id is the Idempotency-Key, so even a POST may be repeated)
 * with the run's correlation id. Only the small answer is parsed.
 *
 * Outcomes: 200 → the counts go to the run once (sync_repo_batch_done; a batch delivered twice is
 * counted once), and records the endpoint refused are listed in sync.sync_errors at their stream
 * positions ("rejected: <reason>"). A connect error, timeout, 5xx, 429, open breaker or missing
 * token is retried by the queue with backoff (Retry-After honoured); on the last attempt, or on
 * another 4xx (the batch itself is unacceptable), the batch is recorded as failed and the job
 * dead-lettered. A malformed payload is dead-lettered at once. Because the upsert is idempotent
 * (newest updatedAt wins, a replay changes nothing), a batch whose worker was killed midway is
 * simply sent again by the worker that reclaims it.
 *
 * arg is the struct sync_ctx (borrowed); no per-thread state. */
#ifndef SYNC_BATCH_JOB_H
#define SYNC_BATCH_JOB_H

#include <jansson.h>

#include "svc/queue.h"
#include "sync_repo.h"

svc_job_result sync_batch_job(struct svc_job *job, void *arg);

/* Reads a bulk-upsert answer {inserted, updated, deleted, unchanged, invalid:[{index,reason}]}.
 * Returns 0 and fills *r (r->rejected = number of invalid entries), or -1 when malformed.
 * For each invalid entry with a valid index below count, calls on_invalid (reason is valid only
 * during that call). Exposed for tests. */
int sync_batch_job_parse_answer(const char *body, size_t len, uint32_t count, struct sync_repo_batch_result *r,
                             void (*on_invalid)(void *arg, uint32_t index, const char *reason), void *arg);

#endif
