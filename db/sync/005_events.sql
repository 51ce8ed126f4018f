-- Ingested e-commerce events (POST /api/events), the dead letters of those that could not be
-- written, and the function that creates and drops the daily partitions.
--
-- Writes: the consumers of the Redis stream COPY batches of up to EVENTS_BATCH_MAX rows straight
-- into sync.events; a batch that meets a duplicate (a redelivery, a replay, a client's retry) is
-- written again through a staging table with INSERT ... ON CONFLICT DO NOTHING (events_repo.c).
--
-- Partitions: one per UTC day of the event's time (event_day), created ahead by the service
-- (sync.events_maintain) and dropped whole after EVENTS_RETENTION_DAYS: no bulk DELETE, no
-- VACUUM debt. There is no DEFAULT partition: a day without a partition is an error the writer
-- sees (and answers by running the maintenance), never a silent catch-all that a later CREATE
-- PARTITION would have to scan.
--
-- Exactly once: a unique index on a partitioned table must contain the partition key, so the key
-- is (event_id, event_day). Retries that keep their occurredAt keep their day and meet the key.
-- A client's retry WITHOUT occurredAt is stamped with its own time of receipt and may land on the
-- next day: the writer checks such events (client id, server time) against the neighbouring days
-- under an advisory lock on the id (events_repo.c), so they are stored once too.
--
-- Indexes serve the query API only: newest first overall and newest first per user. Both lead
-- with event_day, the partition key, so a newest-first page is an ordered Append over the
-- partitions (the newest partition first) that stops as soon as the page is full. No foreign
-- keys and no CHECK constraints: the service validates every field, and PostgreSQL would
-- evaluate each CHECK on every row of every COPY.
CREATE TABLE sync.events (
    event_id    uuid        NOT NULL,
    event_day   date        NOT NULL,          -- UTC day of occurred_at: the partition key
    event_type  text        NOT NULL,
    user_id     text        NOT NULL,
    session_id  text        NOT NULL,
    event_data  jsonb       NOT NULL,
    occurred_at timestamptz NOT NULL,          -- the client's occurredAt, or the time of receipt
    received_at timestamptz NOT NULL,          -- when the service accepted it (before the 202)
    PRIMARY KEY (event_id, event_day)
) PARTITION BY RANGE (event_day);

CREATE INDEX events_newest_idx ON sync.events (event_day DESC, occurred_at DESC, event_id DESC);
CREATE INDEX events_user_newest_idx ON sync.events (user_id, event_day DESC, occurred_at DESC, event_id DESC);

-- Events the writer could not store after its retries, one row per event, with the reason.
-- entry is the stream entry exactly as it was accepted: a replay appends it to the stream again,
-- so the replayed event keeps its id, times and day, and replaying twice (or an event that was
-- meanwhile written) stores nothing twice. One outstanding dead letter per event (a redelivered
-- batch dead-letters again, harmlessly); a replayed one is kept, marked, for the record.
CREATE TABLE sync.event_dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    user_id     text        NOT NULL,
    session_id  text        NOT NULL,
    event_data  text        NOT NULL,          -- as accepted (text: it may be what failed)
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    entry       text        NOT NULL,
    reason      text        NOT NULL,          -- PostgreSQL's message; never the event's content
    sqlstate    text,
    attempts    integer     NOT NULL,
    failed_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz
);
CREATE UNIQUE INDEX event_dead_letters_outstanding ON sync.event_dead_letters (event_id) WHERE replayed_at IS NULL;
CREATE INDEX event_dead_letters_newest_idx ON sync.event_dead_letters (failed_at DESC, id DESC);

-- A dead letter's event data as JSON when it is JSON, else as a JSON string.
CREATE FUNCTION sync.event_data_json(t text) RETURNS json
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::json;
EXCEPTION WHEN others THEN
    RETURN to_json(t);
END $$;

-- A time given as text, or NULL when it is not one (dead letters keep what they can).
CREATE FUNCTION sync.try_timestamptz(t text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN t::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END $$;

-- Creates the partitions of the days [today - retention_days + 1, today + ahead_days] that are
-- missing and drops those of days <= today - retention_days. Every instance calls it (at start,
-- every EVENTS_MAINTENANCE_INTERVAL_S, and when a write finds no partition); the advisory lock
-- makes one of them do the work and the others return at once. lock_timeout keeps a partition
-- DDL that waits behind a long query from holding up the writers queued behind it: it fails, and
-- the next call tries again. Returns the number of partitions created and dropped.
CREATE FUNCTION sync.events_maintain(ahead_days integer, retention_days integer,
                                     today date DEFAULT (now() AT TIME ZONE 'UTC')::date,
                                     OUT created integer, OUT dropped integer)
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    part record;
    name text;
BEGIN
    created := 0;
    dropped := 0;
    IF NOT pg_try_advisory_xact_lock(hashtext('sync.events_maintain')) THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '5s', true);
    FOR part IN
        SELECT c.relname, to_date(substr(c.relname, 9), 'YYYYMMDD') AS day
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'sync.events'::regclass AND c.relname ~ '^events_p[0-9]{8}$'
    LOOP
        IF part.day <= today - retention_days THEN
            EXECUTE format('DROP TABLE sync.%I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    d := today - retention_days + 1;
    WHILE d <= today + ahead_days LOOP
        name := 'events_p' || to_char(d, 'YYYYMMDD');
        IF to_regclass('sync.' || name) IS NULL THEN
            EXECUTE format('CREATE TABLE sync.%I PARTITION OF sync.events FOR VALUES FROM (%L) TO (%L)',
                           name, d, d + 1);
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
END $$;
