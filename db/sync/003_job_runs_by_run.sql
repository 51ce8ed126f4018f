-- GET /api/job-runs?run_id=… pages a run's job executions newest first by (started_at, id),
-- after a cursor. Without this index that walked job_runs_started_at_idx over every run's jobs
-- and filtered, so an old run's page read the whole newer history; with it a page is one range
-- scan of the run's entries. One entry per job execution (a few hundred per million imported
-- users), so the writes barely notice it. Jobs without a run (none today) are left out.
CREATE INDEX job_runs_run_started_idx ON sync.job_runs (run_id, started_at DESC, id DESC)
    WHERE run_id IS NOT NULL;
