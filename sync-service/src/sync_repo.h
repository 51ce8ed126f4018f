/* SQL for the sync schema (runs, attempts, batches, record errors, job audit) and nothing else.
 *
 * Each function is one round trip: statements that must agree (a batch row and the run's batch
 * count, a lease check and the writes it guards) are one statement with data-modifying CTEs,
 * and every write done on behalf of a stream attempt is guarded by the run's lease
 * (lease_owner = the caller), so an instance that lost its lease can no longer change the run.
 * A guarded call that finds the lease gone returns SVC_CONFLICT.
 *
 * JSON answers are built in SQL (sync.run_json) and returned as malloc'd text (caller frees).
 * Errors: SVC_UNAVAILABLE / SVC_TIMEOUT as svc_pg_status (svc/pg.h) classifies them, else
 * SVC_INTERNAL.
 * Ownership: the PGconn is borrowed (the caller acquires and releases it). Nothing here logs. */
#ifndef SYNC_REPO_H
#define SYNC_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "svc/buf.h"
#include "svc/cid.h"
#include "svc/paging.h"
#include "svc/status.h"

#define SYNC_STATUS_MAX 16

/* Stream positions and reasons of skipped records, accumulated between two writes and sent as
 * two array parameters (one INSERT … SELECT unnest(…) for all of them). */
struct sync_repo_errors {
    struct svc_buf pos;   /* "{1,5,9" …: a bigint[] literal being built */
    struct svc_buf why;   /* "{\"broken_json\",…" */
    int n;
};
void sync_repo_errors_init(struct sync_repo_errors *e);
void sync_repo_errors_reset(struct sync_repo_errors *e);
void sync_repo_errors_free(struct sync_repo_errors *e);
/* reason: any text (sync_record.h reasons, "rejected: …"); quoted by svc/pg_array.h. */
void sync_repo_errors_add(struct sync_repo_errors *e, uint64_t position, const char *reason);

/* Counters of the current stream attempt. received_delta: records received since the last
 * write (added to the attempt's and the run's totals); the others are absolute. */
struct sync_repo_counts {
    long long received_delta;
    long long valid, invalid, duplicates;
};

/* A batch the stream reader just cut. */
struct sync_repo_batch_row {
    uint32_t seq;
    const char *digest;   /* 16 hex digits */
    uint32_t records;
    uint64_t first_position;
};

struct sync_repo_run_state {
    char status[SYNC_STATUS_MAX];
    long long batches_total, batches_done, batches_failed;
    bool batch_is_new;    /* sync_repo_progress with a batch: the batch row did not exist yet */
};

/* ---- triggering and reading ---- */

/* Creates a PENDING run (lease expiring after lease_ttl_ms, for the reaper) unless one is active;
 * *created tells which. *json (run_json text) and run_id describe the run either way. */
svc_status sync_repo_run_trigger(PGconn *c, const char *trigger, const char *requested_by, const char *cid,
                            long lease_ttl_ms, char run_id[SVC_UUID_LEN + 1], char **json, bool *created);
/* SVC_NOT_FOUND when there is no such run. */
svc_status sync_repo_run_get(PGconn *c, const char *run_id, char **json);
/* The newest run; SVC_NOT_FOUND when there is none. status (may be NULL) gets its status. */
svc_status sync_repo_run_latest(PGconn *c, char **json, char status[SYNC_STATUS_MAX]);
/* Lists (svc/paging.h), each one page as svc_page_render makes it:
 * sync runs newest first by (created_at, id); */
extern const struct svc_list sync_repo_history_kind;
/* a run's skipped records by position in the stream (ascending: the order they were met); */
extern const struct svc_list sync_repo_errors_kind;
/* job executions newest first by (started_at, id). */
extern const struct svc_list sync_repo_job_runs_kind;
svc_status sync_repo_run_history(PGconn *c, const struct svc_page *page, char **json);
/* data items {"position","reason","created_at"}; SVC_NOT_FOUND when the run does not exist. */
svc_status sync_repo_run_errors(PGconn *c, const char *run_id, const struct svc_page *page, char **json);
/* Filters of GET /api/job-runs (NULL: not filtered): from/to are RFC 3339 texts (started_at in
 * [from, to)), status one of running/completed/failed/dead, tenant a UUID. */
struct sync_repo_job_filter {
    const char *queue, *run_id, *tenant, *status, *from, *to;
};
svc_status sync_repo_job_runs(PGconn *c, const struct sync_repo_job_filter *f, const struct svc_page *page, char **json);

/* ---- the stream reader (all guarded by the lease of owner) ---- */

/* Takes the run's lease when the run is PENDING or RUNNING and its lease is free, expired or
 * already owner's; a PENDING run becomes RUNNING. SVC_OK with cid/status/attempts filled, or
 * SVC_NOT_FOUND when the run is finished, PROCESSING, held by a live lease, or absent (status
 * then tells which: "" when absent). */
svc_status sync_repo_run_claim(PGconn *c, const char *run_id, const char *owner, long ttl_ms, char cid[SVC_CID_MAX + 1],
                          char status[SYNC_STATUS_MAX], int *attempts);
/* Starts attempt n+1: new sync_attempts row, the run's live valid/invalid/duplicates reset. */
svc_status sync_repo_attempt_begin(PGconn *c, const char *run_id, const char *owner, long ttl_ms, int *attempt);
/* Writes progress (counters, buffered errors, optionally a new batch row) and renews the lease.
 * *state gets the run's batch counters (and whether the batch row is new). */
svc_status sync_repo_progress(PGconn *c, const char *run_id, const char *owner, int attempt, long ttl_ms,
                         const struct sync_repo_counts *n, const struct sync_repo_errors *errors,
                         const struct sync_repo_batch_row *batch, struct sync_repo_run_state *state);
/* Ends an attempt. outcome: "completed" (the whole stream was read: the run becomes PROCESSING,
 * or COMPLETED/FAILED at once when no batch is outstanding), "failed" or "abandoned" (the run
 * stays RUNNING). http_status 0 and error NULL when none. The lease is renewed for ttl_ms (in
 * PROCESSING, finishing batches renew it). status gets the run's new status. */
svc_status sync_repo_attempt_end(PGconn *c, const char *run_id, const char *owner, int attempt, long ttl_ms,
                            const char *outcome, long http_status, const char *error, const struct sync_repo_counts *n,
                            const struct sync_repo_errors *errors, char status[SYNC_STATUS_MAX]);
/* Renews the lease and reads the batch counters (backpressure waits). */
svc_status sync_repo_lease_renew(PGconn *c, const char *run_id, const char *owner, long ttl_ms, struct sync_repo_run_state *state);
/* Gives the lease up at once (graceful stop) so another instance may take the run over. */
svc_status sync_repo_lease_release(PGconn *c, const char *run_id, const char *owner);
/* Marks an active run FAILED with reason. owner NULL: whoever holds it. SVC_NOT_FOUND when the
 * run was not active (or not owner's). */
svc_status sync_repo_run_fail(PGconn *c, const char *run_id, const char *owner, const char *reason);

/* ---- batch workers ---- */

struct sync_repo_audit {
    const char *queue;
    const char *job_id;
    const char *run_id;      /* may be NULL */
    int attempt;
    const char *instance;
    long long started_unix_ms;
    long long duration_ms;
    const char *error;       /* NULL on success */
};

struct sync_repo_batch_result {
    long long inserted, updated, unchanged, deleted, rejected;
};

/* Records a batch as done (once: a batch already counted changes nothing and *counted = false),
 * adds its outcome to the run, lists rejected records as errors, audits the job, and completes
 * the run when it was the last outstanding batch. status gets the run's status. */
svc_status sync_repo_batch_done(PGconn *c, const char *run_id, uint32_t seq, const char *digest,
                           const struct sync_repo_batch_result *r, const struct sync_repo_errors *rejected,
                           const struct sync_repo_audit *audit, long ttl_ms, bool *counted, char status[SYNC_STATUS_MAX]);
/* Records a batch as failed for good (same once-only rule), audits, and finishes the run as
 * FAILED when it was the last outstanding batch. */
svc_status sync_repo_batch_failed(PGconn *c, const char *run_id, uint32_t seq, const char *digest,
                             const struct sync_repo_audit *audit, bool *counted, char status[SYNC_STATUS_MAX]);
/* One audit row for a finished job execution; status "completed" or "failed". */
svc_status sync_repo_audit_add(PGconn *c, const struct sync_repo_audit *a, const char *status);
/* An audit row left "running" (long jobs), closed by sync_repo_audit_finish. */
svc_status sync_repo_audit_start(PGconn *c, const struct sync_repo_audit *a, long long *id);
svc_status sync_repo_audit_finish(PGconn *c, long long id, const char *status, const char *error);

/* ---- the reaper ---- */

struct sync_repo_expired {
    char id[SVC_UUID_LEN + 1];
    char status[SYNC_STATUS_MAX];
    char cid[SVC_CID_MAX + 1];
    long long queued_batches;   /* batch rows not yet done or failed */
};
/* Active runs whose lease has expired (at most max). */
svc_status sync_repo_expired_runs(PGconn *c, struct sync_repo_expired *out, int max, int *n);
/* PENDING/RUNNING run with an expired lease: frees the lease for a new orchestrator job
 * (resumes + 1) and returns SVC_OK with *resumes; SVC_UNPROCESSABLE when max_resumes is reached
 * (the run is then FAILED); SVC_CONFLICT when the lease is no longer expired. */
svc_status sync_repo_run_resume(PGconn *c, const char *run_id, long ttl_ms, int max_resumes, int *resumes);
/* PROCESSING run whose batches are still in the queue: extends the lease. */
svc_status sync_repo_lease_extend(PGconn *c, const char *run_id, long ttl_ms);
/* PROCESSING run with nothing outstanding: COMPLETED (or FAILED when a batch failed). */
svc_status sync_repo_run_settle(PGconn *c, const char *run_id, char status[SYNC_STATUS_MAX]);

#endif
