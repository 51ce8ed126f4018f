/* SQL for the ERP synchronisation's rows in the job audit (sync.job_runs, db/sync/006) and
 * nothing else: a row when a job starts, completed when it ends, the newest row of a tenant's
 * kind for its status, and the retention cleanup.
 *
 * Errors: SVC_NOT_FOUND, SVC_UNAVAILABLE / SVC_TIMEOUT, SVC_INTERNAL. The PGconn is borrowed. */
#ifndef ERP_RUNS_REPO_H
#define ERP_RUNS_REPO_H

#include <libpq-fe.h>

#include "erp_page.h"
#include "svc/status.h"

struct erp_run_counts {
    long long fetched, upserted, unchanged, invalid;
};

/* A "running" row; *id gets its id. Rows of the same job still "running" (their worker was
 * lost) are closed as failed. */
svc_status erp_runs_start(PGconn *c, const char *queue, const char *job_id, enum erp_kind kind, const char *tenant_id,
                          int attempt, const char *instance, long long *id);
/* status: completed, failed or dead; error NULL on success (no secret, no URL). */
svc_status erp_runs_finish(PGconn *c, long long id, const char *status, const struct erp_run_counts *n,
                           const char *error);
/* The newest row of the tenant's kind as JSON (sync.job_run_json); SVC_NOT_FOUND when none. */
svc_status erp_runs_last(PGconn *c, const char *tenant_id, enum erp_kind kind, char **json);
/* Deletes at most `chunk` rows started before now - days (oldest first); *deleted gets how many. */
svc_status erp_runs_retention(PGconn *c, long days, long chunk, long long *deleted);

#endif
