/* ERP job audit rows (see erp_runs_repo.h). */
#include "erp_runs_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_sql.h"

svc_status erp_runs_start(PGconn *c, const char *queue, const char *job_id, enum erp_kind kind, const char *tenant_id,
                          int attempt, const char *instance, long long *id) {
    char a[16];
    snprintf(a, sizeof a, "%d", attempt);
    const char *v[6] = {queue, job_id, erp_kind_name(kind), tenant_id, a, instance};
    PGresult *r;
    /* An earlier execution of the same job still "running" lost its worker (killed, or its
     * outcome was never recorded): it is closed as failed when the job runs again. */
    svc_status st = sql_run(c,
                            "WITH lost AS (UPDATE sync.job_runs SET status = 'failed', finished_at = now(),"
                            "   duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint,"
                            "   error = 'worker lost: the job ran again before this execution ended'"
                            "   WHERE queue = $1 AND job_id = $2 AND status = 'running')"
                            " INSERT INTO sync.job_runs (queue, job_id, kind, tenant_id, attempt, instance, status)"
                            " VALUES ($1, $2, $3, $4, $5, $6, 'running') RETURNING id",
                            6, v, &r, NULL);
    if (st != SVC_OK) return st;
    *id = sql_ll(r, 0, 0);
    PQclear(r);
    return SVC_OK;
}

svc_status erp_runs_finish(PGconn *c, long long id, const char *status, const struct erp_run_counts *n,
                           const char *error) {
    char sid[24], f[24], u[24], un[24], inv[24];
    snprintf(sid, sizeof sid, "%lld", id);
    snprintf(f, sizeof f, "%lld", n->fetched);
    snprintf(u, sizeof u, "%lld", n->upserted);
    snprintf(un, sizeof un, "%lld", n->unchanged);
    snprintf(inv, sizeof inv, "%lld", n->invalid);
    const char *v[7] = {sid, status, f, u, un, inv, error};
    PGresult *r;
    svc_status st = sql_run(c,
                            "UPDATE sync.job_runs SET status = $2, fetched = $3, upserted = $4, unchanged = $5,"
                            " invalid = $6, error = $7, finished_at = clock_timestamp(),"
                            " duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint"
                            " WHERE id = $1",
                            7, v, &r, NULL);
    PQclear(r);
    return st;
}

svc_status erp_runs_last(PGconn *c, const char *tenant_id, enum erp_kind kind, char **json) {
    const char *v[2] = {tenant_id, erp_kind_name(kind)};
    return sql_one_text(c,
                        "SELECT sync.job_run_json(j)::text FROM sync.job_runs j WHERE j.tenant_id = $1 AND j.kind = $2"
                        " ORDER BY j.started_at DESC, j.id DESC LIMIT 1",
                        2, v, json);
}

svc_status erp_runs_retention(PGconn *c, long days, long chunk, long long *deleted) {
    char d[24], n[24];
    snprintf(d, sizeof d, "%ld", days);
    snprintf(n, sizeof n, "%ld", chunk);
    const char *v[2] = {d, n};
    PGresult *r;
    svc_status st = sql_run(c,
                            "DELETE FROM sync.job_runs WHERE id IN (SELECT id FROM sync.job_runs"
                            " WHERE started_at < now() - make_interval(days => $1::int)"
                            " ORDER BY started_at LIMIT $2::int)",
                            2, v, &r, NULL);
    if (st != SVC_OK) return st;
    *deleted = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return SVC_OK;
}
