/* Use cases behind the sync HTTP API and the scheduler: triggering a run (idempotent while one
 * is active), reading runs, their errors, the job audit and the queues. No HTTP, no SQL text.
 *
 * Every API use case requires an admin principal (403 "forbidden" otherwise). Results follow
 * svc/status.h: on success raw holds the JSON text (malloc'd; svc_respond_result frees it).
 * Borrowed: cx, cid, who and the string arguments. */
#ifndef SYNC_RUNS_H
#define SYNC_RUNS_H

#include <stdbool.h>

#include "svc/auth.h"
#include "svc/paging.h"
#include "svc/status.h"
#include "sync_ctx.h"

/* Creates a run and enqueues its orchestrator job, or finds the active one (*created false).
 * trigger: "api" or "schedule"; requested_by may be NULL. On SVC_OK *json (caller frees) is
 * the run. A database failure returns its status (svc_pg_status); a queue that is down returns
 * SVC_UNAVAILABLE with *queue_failed set (the run that could not be enqueued is marked FAILED at
 * once, so it never blocks the next trigger). */
svc_status sync_trigger_run(struct sync_ctx *cx, const char *trigger, const char *requested_by, const char *cid,
                            char **json, bool *created, bool *queue_failed);

/* POST /api/sync: *created tells 202 (new run) from 200 (the active run); 503
 * database_unavailable / database_timeout or queue_unavailable. */
struct svc_result sync_trigger(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, bool *created);
/* GET /api/sync/status: the newest run plus "progress" (live queue figures while it is active). */
struct svc_result sync_status(struct sync_ctx *cx, const char *cid, const struct svc_principal *who);
/* GET /api/sync/history?limit=&cursor=&include_total= (and the deprecated page=) */
struct svc_result sync_history(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                               const struct svc_page_params *paging);
/* GET /api/sync/{id} */
struct svc_result sync_get(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id);
/* GET /api/sync/{id}/errors, paged likewise */
struct svc_result sync_errors(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id,
                              const struct svc_page_params *paging);
/* GET /api/job-runs, paged likewise, with &queue=&run_id= */
/* GET /api/job-runs: filters queue, run_id, tenant (UUID), status (running/completed/failed/dead),
 * from/to (RFC 3339: started_at in [from, to)); a bad one is 400 naming it. */
struct sync_job_runs_query {
    const char *queue, *run_id, *tenant, *status, *from, *to;
};
struct svc_result sync_job_runs(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                const struct svc_page_params *paging, const struct sync_job_runs_query *q);
/* GET /admin/queues: stats of this service's queues and of every queue discovered in Redis. */
struct svc_result sync_queues(struct sync_ctx *cx, const char *cid, const struct svc_principal *who);

#endif
