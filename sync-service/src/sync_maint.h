/* The maintenance thread of sync-service: the reaper and the scheduler.
 *
 * Reaper (every SYNC_REAPER_INTERVAL_MS, on every instance; the SQL guards make one instance
 * win): an active run whose lease expired —
 *   PENDING/RUNNING: its orchestrator died (or its job was lost): the lease is freed and a new
 *     orchestrator job enqueued (run:<id>:resume:<n>), which re-reads the stream from the start;
 *     after SYNC_MAX_RESUMES such resumes the run is FAILED, so it can be triggered again;
 *   PROCESSING: nobody finished a batch for a whole lease: if batch jobs are still queued
 *     (waiting, running or delayed for a retry) the lease is extended; if every batch is
 *     accounted for the run is settled (COMPLETED/FAILED); if batches are outstanding but the
 *     queue is empty they were lost (Redis lost data, or a job died on its last attempt) and the
 *     run is FAILED with that reason.
 *
 * Scheduler: SYNC_CRON (UTC). At each due minute every instance tries SET sync:cron:<minute> NX
 * in Redis; the one that wins triggers a run ("schedule"), which is a no-op when a run is active.
 *
 * Ownership: arg/cx borrowed; the thread is joined by sync_maint_stop. */
#ifndef SYNC_MAINT_H
#define SYNC_MAINT_H

#include "sync_ctx.h"

/* Returns 0, or -1 when the thread could not start. */
int sync_maint_start(struct sync_ctx *cx);
/* Sets the stop flag, wakes every interruptible sleep and joins the thread (if started). */
void sync_maint_stop(struct sync_ctx *cx);
/* One reaper pass (exposed for tests and for the first pass at start). */
void sync_reap(struct sync_ctx *cx);

#endif
