/* The orchestrator job of a sync run (queue "user-sync"): reads the legacy API's one long
 * response and turns it into batch jobs (queue "user-sync-batch").
 *
 * Flow of one job (payload = the run id):
 *   1. take the run's lease (sync_repo.h); a finished run, or one another live instance holds,
 *      is left alone (the job succeeds);
 *   2. attempt loop — the legacy API has no cursor, so every attempt streams from the first
 *      record: libcurl's write callback feeds the incremental splitter (sync_split.h), each
 *      element is validated (sync_record.h); invalid ones are counted and buffered as
 *      (position, reason) rows; valid ones are appended to the current batch, and every
 *      SYNC_BATCH_SIZE records (or SYNC_BATCH_MAX_BYTES) the batch is written (one statement:
 *      batch row, buffered errors, counters, lease renewal) and enqueued with the id
 *      b:<run>:<seq>:<digest>, so the same batch read again by a later attempt is neither stored
 *      nor sent twice. The lease and the live counters are also refreshed about every second by
 *      libcurl's progress callback, which is called even while the stream is idle;
 *   3. a 5xx/429/408, a dropped connection, a stall (LEGACY_STALL_TIMEOUT_S without a byte), an
 *      unclosed array, or the database/queue failing mid-stream ends the attempt as failed: it is
 *      retried from the start after exponential backoff with full jitter (Retry-After honoured)
 *      up to SYNC_STREAM_MAX_ATTEMPTS; other 4xx, redirects and unknown content types fail the
 *      run at once;
 *   4. the attempt that reads the whole stream enqueues the last partial batch and moves the run
 *      to PROCESSING (or straight to COMPLETED when every batch is already done).
 * Backpressure: when more than SYNC_MAX_INFLIGHT_BATCHES batches are outstanding the reader
 * stops reading (TCP flow control holds the legacy server) until workers catch up, so Redis
 * holds a bounded number of batches whatever N is.
 * Graceful stop: the transfer is aborted, the attempt recorded as abandoned, the lease given up
 * and the job handed back at once for another instance.
 *
 * Memory: per orchestrator thread one libcurl handle, one splitter buffer (SYNC_MAX_RECORD_BYTES),
 * one batch buffer, the error buffer and the legacy id set (~N/8 bytes for dense ids) — flat
 * in N apart from the id set.
 *
 * Ownership: thread_init allocates the per-thread reader that thread_fini frees; arg is the
 * struct sync_ctx (borrowed). */
#ifndef SYNC_STREAM_H
#define SYNC_STREAM_H

#include "svc/queue.h"

void *sync_stream_thread_init(void *arg, int index);
void sync_stream_thread_fini(void *thread_ctx, void *arg);
svc_job_result sync_stream_job(struct svc_job *job, void *arg);

#endif
