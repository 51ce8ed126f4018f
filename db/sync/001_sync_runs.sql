-- Sync runs of the legacy user import (sync-service), their stream attempts, batches, record
-- errors, and an audit trail of every job execution.
--
-- A run moves PENDING -> RUNNING (streaming) -> PROCESSING (stream ended, batches remain) ->
-- COMPLETED, or to FAILED from any of them. At most one run is active at a time (partial unique
-- index), which is what makes POST /api/sync idempotent under concurrent triggers. The instance
-- driving a run holds a lease (lease_owner, lease_expires_at) that it renews; a run whose lease
-- expired is taken over by another instance or marked FAILED.
CREATE TABLE sync.sync_runs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status           text NOT NULL DEFAULT 'PENDING'
                     CHECK (status IN ('PENDING', 'RUNNING', 'PROCESSING', 'COMPLETED', 'FAILED')),
    trigger          text NOT NULL CHECK (trigger IN ('api', 'schedule')),
    requested_by     text,                     -- subject (user id) of the admin token, NULL for schedule
    correlation_id   text NOT NULL,            -- sent on every call the run makes
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,              -- first attempt began streaming
    stream_ended_at  timestamptz,              -- an attempt read the whole stream
    finished_at      timestamptz,              -- COMPLETED or FAILED
    lease_owner      text,
    lease_expires_at timestamptz,
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    received         bigint  NOT NULL DEFAULT 0 CHECK (received >= 0),     -- over all attempts
    -- Distinct outcome counts of the stream: those of the attempt that read it to the end (live:
    -- of the current attempt while it streams).
    valid            bigint  NOT NULL DEFAULT 0 CHECK (valid >= 0),
    invalid          bigint  NOT NULL DEFAULT 0 CHECK (invalid >= 0),
    duplicates       bigint  NOT NULL DEFAULT 0 CHECK (duplicates >= 0),
    -- Outcomes reported by customers-service, summed once per distinct batch.
    inserted         bigint  NOT NULL DEFAULT 0 CHECK (inserted >= 0),
    updated          bigint  NOT NULL DEFAULT 0 CHECK (updated >= 0),
    unchanged        bigint  NOT NULL DEFAULT 0 CHECK (unchanged >= 0),
    deleted          bigint  NOT NULL DEFAULT 0 CHECK (deleted >= 0),
    rejected         bigint  NOT NULL DEFAULT 0 CHECK (rejected >= 0),     -- refused by the endpoint
    batches_total    integer NOT NULL DEFAULT 0 CHECK (batches_total >= 0),
    batches_done     integer NOT NULL DEFAULT 0 CHECK (batches_done >= 0),
    batches_failed   integer NOT NULL DEFAULT 0 CHECK (batches_failed >= 0),
    error            text,
    CHECK ((status IN ('COMPLETED', 'FAILED')) = (finished_at IS NOT NULL))
);

CREATE UNIQUE INDEX sync_runs_one_active ON sync.sync_runs ((true))
    WHERE status IN ('PENDING', 'RUNNING', 'PROCESSING');
CREATE INDEX sync_runs_created_at_idx ON sync.sync_runs (created_at DESC, id DESC);

-- One row per attempt at reading the stream (the legacy API has no cursor: each attempt starts
-- from the first record, so "received" is per attempt and the run's total is their sum).
CREATE TABLE sync.sync_attempts (
    run_id      uuid NOT NULL REFERENCES sync.sync_runs (id) ON DELETE CASCADE,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    outcome     text NOT NULL DEFAULT 'streaming'
                CHECK (outcome IN ('streaming', 'completed', 'failed', 'abandoned')),
    http_status integer,
    received    bigint NOT NULL DEFAULT 0 CHECK (received >= 0),
    valid       bigint NOT NULL DEFAULT 0 CHECK (valid >= 0),
    invalid     bigint NOT NULL DEFAULT 0 CHECK (invalid >= 0),
    error       text,
    PRIMARY KEY (run_id, attempt)
);

-- One row per distinct batch a run enqueued. A batch is identified by its sequence number in the
-- stream and a digest of its content: a re-read stream that yields the same batch again maps to
-- the same row (and the same idempotent job id), so it is sent and counted once.
CREATE TABLE sync.sync_batches (
    run_id      uuid NOT NULL REFERENCES sync.sync_runs (id) ON DELETE CASCADE,
    seq         integer NOT NULL CHECK (seq >= 0),
    digest      text NOT NULL,
    records     integer NOT NULL CHECK (records > 0),
    first_position bigint NOT NULL CHECK (first_position >= 0),
    status      text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'done', 'failed')),
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    inserted    integer NOT NULL DEFAULT 0,
    updated     integer NOT NULL DEFAULT 0,
    unchanged   integer NOT NULL DEFAULT 0,
    deleted     integer NOT NULL DEFAULT 0,
    rejected    integer NOT NULL DEFAULT 0,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (run_id, seq, digest)
);

-- Records the run skipped: position in the stream (0-based) and why. No record content (PII).
-- Keyed by position so a re-read stream does not list the same record twice.
CREATE TABLE sync.sync_errors (
    run_id     uuid NOT NULL REFERENCES sync.sync_runs (id) ON DELETE CASCADE,
    position   bigint NOT NULL CHECK (position >= 0),
    reason     text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, position)
);

-- Audit of every job execution by this service's workers (orchestrator, batches, later jobs).
CREATE TABLE sync.job_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue       text NOT NULL,
    job_id      text NOT NULL,
    run_id      uuid,
    attempt     integer NOT NULL CHECK (attempt >= 1),
    instance    text NOT NULL,
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('running', 'completed', 'failed')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    duration_ms bigint,
    error       text
);

CREATE INDEX job_runs_started_at_idx ON sync.job_runs (started_at DESC, id DESC);
CREATE INDEX job_runs_queue_job_idx ON sync.job_runs (queue, job_id);
