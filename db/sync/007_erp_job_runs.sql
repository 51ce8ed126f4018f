-- The ERP synchronisation's jobs in the job audit: which kind and tenant, the outcome `dead`
-- (dead-lettered: its last attempt failed, or a permanent failure such as a refused API key),
-- and what the job read and wrote. One row per job execution, written when it starts and
-- completed when it ends (GET /api/job-runs; docs/operations.md has operator SQL over it).
ALTER TABLE sync.job_runs
    ADD COLUMN kind      text CHECK (kind IN ('customers', 'products')),
    ADD COLUMN tenant_id uuid,
    ADD COLUMN fetched   bigint CHECK (fetched >= 0),
    ADD COLUMN upserted  bigint CHECK (upserted >= 0),
    ADD COLUMN unchanged bigint CHECK (unchanged >= 0),
    ADD COLUMN invalid   bigint CHECK (invalid >= 0);

ALTER TABLE sync.job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE sync.job_runs ADD CONSTRAINT job_runs_status_check
    CHECK (status IN ('running', 'completed', 'failed', 'dead'));

-- A tenant's jobs, newest first (GET /api/job-runs?tenant=…, the tenant status API).
CREATE INDEX job_runs_tenant_started_idx ON sync.job_runs (tenant_id, kind, started_at DESC, id DESC)
    WHERE tenant_id IS NOT NULL;

-- One job run as the API shows it.
CREATE FUNCTION sync.job_run_json(j sync.job_runs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', j.id,
        'queue', j.queue,
        'job_id', j.job_id,
        'kind', j.kind,
        'tenant_id', j.tenant_id,
        'run_id', j.run_id,
        'attempt', j.attempt,
        'instance', j.instance,
        'status', j.status,
        'started_at', sync.ts_json(j.started_at),
        'finished_at', sync.ts_json(j.finished_at),
        'duration_ms', j.duration_ms,
        'fetched', j.fetched,
        'upserted', j.upserted,
        'unchanged', j.unchanged,
        'invalid', j.invalid,
        'error', j.error)
$$;
