-- Resumes: how many times the reaper re-enqueued a run whose lease had expired (bounded by
-- SYNC_MAX_RESUMES, then the run is FAILED).
ALTER TABLE sync.sync_runs ADD COLUMN resumes integer NOT NULL DEFAULT 0 CHECK (resumes >= 0);

CREATE FUNCTION sync.ts_json(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- The public representation of a run, built once in SQL so every read path returns the same
-- shape. duration and records/s are live while the run is active (now() as the end).
CREATE FUNCTION sync.run_json(r sync.sync_runs) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_build_object(
        'id', r.id,
        'status', r.status,
        'trigger', r.trigger,
        'correlation_id', r.correlation_id,
        'created_at', sync.ts_json(r.created_at),
        'started_at', sync.ts_json(r.started_at),
        'stream_ended_at', sync.ts_json(r.stream_ended_at),
        'finished_at', sync.ts_json(r.finished_at),
        'attempts', r.attempts,
        'received', r.received,
        'valid', r.valid,
        'invalid', r.invalid,
        'duplicates', r.duplicates,
        'inserted', r.inserted,
        'updated', r.updated,
        'unchanged', r.unchanged,
        'deleted', r.deleted,
        'rejected', r.rejected,
        'batches', json_build_object('total', r.batches_total, 'done', r.batches_done,
                                     'failed', r.batches_failed),
        'duration_ms', d.ms,
        'records_per_s', CASE WHEN d.ms > 0 THEN round((r.valid + r.invalid) * 1000.0 / d.ms, 1) END,
        'error', r.error)
    FROM (SELECT CASE WHEN r.started_at IS NULL THEN NULL
                      ELSE (extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at) * 1000)::bigint
                 END AS ms) d
$$;
