/* SQL for the sync schema (see sync_repo.h). Parameters always go through PQexecParams; the
 * only text built here is the array literals of sync_repo_errors (svc/pg_array.h). */
#include "sync_repo.h"

#include "svc/pg.h"
#include "svc/pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ helpers */

/* Runs sql; on a result of the expected kind returns SVC_OK with *out set (caller PQclears). */
static svc_status run(PGconn *c, const char *sql, int n, const char *const *v, PGresult **out) {
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = r;
        return SVC_OK;
    }
    svc_status s = svc_pg_status(c, r, NULL);
    /* SVC_CONFLICT means "the lease is gone" in this file's contract: a failed statement is an
     * outage, a timeout or a bug */
    if (s != SVC_UNAVAILABLE && s != SVC_TIMEOUT) s = SVC_INTERNAL;
    PQclear(r);
    *out = NULL;
    return s;
}

static char *dup_value(const PGresult *r, int row, int col) {
    const char *v = PQgetvalue(r, row, col);
    size_t n = strlen(v);
    char *s = malloc(n + 1);
    if (s) memcpy(s, v, n + 1);
    return s;
}

static void copy_text(char *dst, size_t n, const char *src) { snprintf(dst, n, "%s", src); }

static long long ll_of(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

/* Single-row, single-column JSON answer. */
static svc_status one_json(PGconn *c, const char *sql, int n, const char *const *v, char **json) {
    PGresult *r;
    svc_status s = run(c, sql, n, v, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return SVC_NOT_FOUND;
    }
    *json = dup_value(r, 0, 0);
    PQclear(r);
    return *json ? SVC_OK : SVC_INTERNAL;
}

#define INTERVAL_MS(p) "(" p "::bigint * interval '1 millisecond')"

/* ------------------------------------------------------------------ sync_repo_errors */

void sync_repo_errors_init(struct sync_repo_errors *e) {
    svc_buf_init(&e->pos);
    svc_buf_init(&e->why);
    sync_repo_errors_reset(e);
}

void sync_repo_errors_reset(struct sync_repo_errors *e) {
    svc_buf_reset(&e->pos);
    svc_buf_reset(&e->why);
    svc_pg_array_open(&e->pos);
    svc_pg_array_open(&e->why);
    e->n = 0;
}

void sync_repo_errors_free(struct sync_repo_errors *e) {
    svc_buf_free(&e->pos);
    svc_buf_free(&e->why);
}

void sync_repo_errors_add(struct sync_repo_errors *e, uint64_t position, const char *reason) {
    svc_pg_array_int(&e->pos, (int64_t)position);
    svc_pg_array_text(&e->why, reason);
    e->n++;
}

/* The two array literals, closed (into the caller's scratch buffers). NULL on OOM. */
static bool errors_params(const struct sync_repo_errors *e, struct svc_buf *pos, struct svc_buf *why) {
    svc_buf_init(pos);
    svc_buf_init(why);
    if (!e || e->n == 0) {
        svc_pg_array_of(pos, NULL, 0);
        svc_pg_array_of(why, NULL, 0);
    } else {
        svc_buf_append(pos, e->pos.data, e->pos.len);
        svc_pg_array_close(pos);
        svc_buf_append(why, e->why.data, e->why.len);
        svc_pg_array_close(why);
    }
    bool ok = !pos->oom && !why->oom && (!e || (!e->pos.oom && !e->why.oom));
    if (!ok) {
        svc_buf_free(pos);
        svc_buf_free(why);
    }
    return ok;
}

/* ------------------------------------------------------------------ trigger and reads */

static const char SQL_TRIGGER[] =
    "INSERT INTO sync.sync_runs (trigger, requested_by, correlation_id, lease_expires_at) "
    "SELECT $1, $2, $3, now() + " INTERVAL_MS("$4") " "
    "WHERE NOT EXISTS (SELECT 1 FROM sync.sync_runs WHERE status IN ('PENDING','RUNNING','PROCESSING')) "
    "ON CONFLICT DO NOTHING "
    "RETURNING id, sync.run_json(sync_runs)";

static const char SQL_ACTIVE[] =
    "SELECT r.id, sync.run_json(r) FROM sync.sync_runs r "
    "WHERE r.status IN ('PENDING','RUNNING','PROCESSING') LIMIT 1";

/* The run in row 0 (id, json) of r becomes the caller's; clears r. */
static svc_status take_run(PGresult *r, char *run_id, char **json, bool *created, bool is_new) {
    copy_text(run_id, SVC_UUID_LEN + 1, PQgetvalue(r, 0, 0));
    *json = dup_value(r, 0, 1);
    *created = is_new;
    PQclear(r);
    return *json ? SVC_OK : SVC_INTERNAL;
}

svc_status sync_repo_run_trigger(PGconn *c, const char *trigger, const char *requested_by, const char *cid,
                            long lease_ttl_ms, char run_id[SVC_UUID_LEN + 1], char **json, bool *created) {
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", lease_ttl_ms);
    const char *v[] = {trigger, requested_by, cid, ttl};
    *json = NULL;
    /* A run that finishes between the failed insert and the select leaves nothing active:
     * then the insert is simply tried again. */
    for (int tries = 0; tries < 5; tries++) {
        PGresult *r;
        svc_status s = run(c, SQL_TRIGGER, 4, v, &r);
        if (s != SVC_OK) return s;
        if (PQntuples(r) == 1) return take_run(r, run_id, json, created, true);
        PQclear(r);
        s = run(c, SQL_ACTIVE, 0, NULL, &r);
        if (s != SVC_OK) return s;
        if (PQntuples(r) == 1) return take_run(r, run_id, json, created, false);
        PQclear(r);
    }
    return SVC_CONFLICT;
}

svc_status sync_repo_run_get(PGconn *c, const char *run_id, char **json) {
    const char *v[] = {run_id};
    return one_json(c, "SELECT sync.run_json(r) FROM sync.sync_runs r WHERE r.id = $1", 1, v, json);
}

svc_status sync_repo_run_latest(PGconn *c, char **json, char status[SYNC_STATUS_MAX]) {
    PGresult *r;
    svc_status s = run(c, "SELECT sync.run_json(r), r.status FROM sync.sync_runs r ORDER BY r.created_at DESC, r.id DESC LIMIT 1",
                       0, NULL, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_NOT_FOUND;
    }
    *json = dup_value(r, 0, 0);
    if (status) copy_text(status, SYNC_STATUS_MAX, PQgetvalue(r, 0, 1));
    PQclear(r);
    return *json ? SVC_OK : SVC_INTERNAL;
}

const struct svc_list sync_repo_history_kind = {.kind = 'R', .timed = true, .id = SVC_CURSOR_UUID, .legacy_page = true};
const struct svc_list sync_repo_errors_kind = {.kind = 'E', .timed = false, .id = SVC_CURSOR_INT, .legacy_page = true};
const struct svc_list sync_repo_job_runs_kind = {.kind = 'J', .timed = true, .id = SVC_CURSOR_INT, .legacy_page = true};

/* Runs a page statement (rows of json, key time µs, key id, total; see svc_page_render_pg).
 * no_rows_is_missing: a statement that returns no row at all says its parent does not exist. */
static svc_status page_rows(PGconn *c, const struct svc_list *l, const struct svc_page *page, const char *sql, int n,
                            const char *const *v, bool no_rows_is_missing, char **json) {
    PGresult *r;
    *json = NULL;
    svc_status s = run(c, sql, n, v, &r);
    if (s != SVC_OK) return s;
    if (no_rows_is_missing && PQntuples(r) == 0) s = SVC_NOT_FOUND;
    else s = svc_page_render_pg(l, page, r, json);
    PQclear(r);
    return s;
}

/* The total is computed only when asked for ($total): CASE evaluates the count's subquery only
 * then. The page's rows are LEFT JOINed to it so that an empty page still returns the total. */
#define TOTAL(flag, count_sql) "n AS (SELECT CASE WHEN " flag "::bool THEN (" count_sql ") END AS total)"

svc_status sync_repo_run_history(PGconn *c, const struct svc_page *page, char **json) {
    struct svc_page_sql p;
    svc_page_sql(page, &p);
    const char *v[] = {p.fetch, p.offset, p.total, p.time, p.id};
    return page_rows(c, &sync_repo_history_kind, page,
                     "WITH " TOTAL("$3", "SELECT count(*) FROM sync.sync_runs") ","
                     " p AS (SELECT r FROM sync.sync_runs r"
                     "        WHERE ($4::timestamptz IS NULL OR (r.created_at, r.id) < ($4::timestamptz, $5::uuid))"
                     "        ORDER BY r.created_at DESC, r.id DESC LIMIT $1::bigint OFFSET $2::bigint) "
                     "SELECT CASE WHEN (p.r).id IS NOT NULL THEN sync.run_json(p.r)::text END,"
                     "       (extract(epoch FROM (p.r).created_at) * 1000000)::bigint, (p.r).id, n.total"
                     "  FROM n LEFT JOIN p ON true ORDER BY (p.r).created_at DESC, (p.r).id DESC",
                     5, v, false, json);
}

svc_status sync_repo_run_errors(PGconn *c, const char *run_id, const struct svc_page *page, char **json) {
    struct svc_page_sql p;
    svc_page_sql(page, &p);
    const char *v[] = {run_id, p.fetch, p.offset, p.total, p.id};
    return page_rows(c, &sync_repo_errors_kind, page,
                     "WITH r AS (SELECT id FROM sync.sync_runs WHERE id = $1::uuid),"
                     " " TOTAL("$4", "SELECT count(*) FROM sync.sync_errors WHERE run_id = $1::uuid") ","
                     " p AS (SELECT e.* FROM sync.sync_errors e"
                     "        WHERE e.run_id = $1::uuid AND ($5::bigint IS NULL OR e.position > $5::bigint)"
                     "        ORDER BY e.position LIMIT $2::bigint OFFSET $3::bigint) "
                     "SELECT CASE WHEN p.position IS NOT NULL THEN json_build_object('position', p.position,"
                     "         'reason', p.reason, 'created_at', sync.ts_json(p.created_at))::text END,"
                     "       NULL, p.position, n.total"
                     "  FROM r CROSS JOIN n LEFT JOIN p ON true ORDER BY p.position",
                     5, v, true, json);
}

svc_status sync_repo_job_runs(PGconn *c, const struct sync_repo_job_filter *f, const struct svc_page *page, char **json) {
    struct svc_page_sql p;
    svc_page_sql(page, &p);
    const char *v[] = {f->queue, f->run_id, p.fetch, p.offset, p.total, p.time, p.id, f->tenant, f->status, f->from, f->to};
#define JOB_FILTER                                                                                              \
    "($1::text IS NULL OR j.queue = $1) AND ($2::uuid IS NULL OR j.run_id = $2::uuid)"                       \
    " AND ($8::uuid IS NULL OR j.tenant_id = $8::uuid) AND ($9::text IS NULL OR j.status = $9)"              \
    " AND ($10::timestamptz IS NULL OR j.started_at >= $10::timestamptz)"                                    \
    " AND ($11::timestamptz IS NULL OR j.started_at < $11::timestamptz)"
    return page_rows(c, &sync_repo_job_runs_kind, page,
                     "WITH " TOTAL("$5", "SELECT count(*) FROM sync.job_runs j WHERE " JOB_FILTER) ","
                     " p AS (SELECT j FROM sync.job_runs j WHERE " JOB_FILTER
                     "        AND ($6::timestamptz IS NULL OR (j.started_at, j.id) < ($6::timestamptz, $7::bigint))"
                     "        ORDER BY j.started_at DESC, j.id DESC LIMIT $3::bigint OFFSET $4::bigint) "
                     "SELECT CASE WHEN (p.j).id IS NOT NULL THEN sync.job_run_json(p.j)::text END,"
                     "     (extract(epoch FROM (p.j).started_at) * 1000000)::bigint, (p.j).id, n.total"
                     "  FROM n LEFT JOIN p ON true ORDER BY (p.j).started_at DESC, (p.j).id DESC",
                     11, v, false, json);
#undef JOB_FILTER
}

/* ------------------------------------------------------------------ the stream reader */

static const char SQL_CLAIM[] =
    "WITH r AS ("
    "  UPDATE sync.sync_runs SET lease_owner = $2, lease_expires_at = now() + " INTERVAL_MS("$3") ","
    "    status = CASE WHEN status = 'PENDING' THEN 'RUNNING' ELSE status END,"
    "    started_at = coalesce(started_at, now())"
    "  WHERE id = $1 AND status IN ('PENDING','RUNNING')"
    "    AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now())"
    "  RETURNING correlation_id, status, attempts), "
    /* attempts still "streaming" belonged to an owner that is gone */
    "a AS (UPDATE sync.sync_attempts SET outcome = 'abandoned', finished_at = now(), error = 'owner lost its lease'"
    "  WHERE run_id = $1 AND outcome = 'streaming' AND EXISTS (SELECT 1 FROM r)) "
    "SELECT correlation_id, status, attempts FROM r";

svc_status sync_repo_run_claim(PGconn *c, const char *run_id, const char *owner, long ttl_ms, char cid[SVC_CID_MAX + 1],
                          char status[SYNC_STATUS_MAX], int *attempts) {
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *v[] = {run_id, owner, ttl};
    PGresult *r;
    svc_status s = run(c, SQL_CLAIM, 3, v, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) == 1) {
        copy_text(cid, SVC_CID_MAX + 1, PQgetvalue(r, 0, 0));
        copy_text(status, SYNC_STATUS_MAX, PQgetvalue(r, 0, 1));
        *attempts = (int)ll_of(r, 0, 2);
        PQclear(r);
        return SVC_OK;
    }
    PQclear(r);
    s = run(c, "SELECT status FROM sync.sync_runs WHERE id = $1", 1, v, &r);
    if (s != SVC_OK) return s;
    copy_text(status, SYNC_STATUS_MAX, PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return SVC_NOT_FOUND;
}

svc_status sync_repo_attempt_begin(PGconn *c, const char *run_id, const char *owner, long ttl_ms, int *attempt) {
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *v[] = {run_id, owner, ttl};
    PGresult *r;
    svc_status s = run(c,
                       "WITH r AS (UPDATE sync.sync_runs SET attempts = attempts + 1, valid = 0, invalid = 0, duplicates = 0,"
                       "    lease_expires_at = now() + " INTERVAL_MS("$3")
                       "  WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING' RETURNING attempts) "
                       "INSERT INTO sync.sync_attempts (run_id, attempt) SELECT $1, attempts FROM r RETURNING attempt",
                       3, v, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_CONFLICT;
    }
    *attempt = (int)ll_of(r, 0, 0);
    PQclear(r);
    return SVC_OK;
}

static const char SQL_PROGRESS[] =
    "WITH r AS (SELECT id FROM sync.sync_runs WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING' FOR UPDATE), "
    "e AS (INSERT INTO sync.sync_errors (run_id, position, reason)"
    "  SELECT $1, t.p, t.w FROM r, unnest($9::bigint[], $10::text[]) AS t(p, w) ON CONFLICT DO NOTHING), "
    "b AS (INSERT INTO sync.sync_batches (run_id, seq, digest, records, first_position)"
    "  SELECT $1, $11::int, $12::text, $13::int, $14::bigint FROM r WHERE $11::int IS NOT NULL"
    "  ON CONFLICT DO NOTHING RETURNING 1), "
    "a AS (UPDATE sync.sync_attempts SET received = received + $5::bigint, valid = $6::bigint, invalid = $7::bigint"
    "  WHERE run_id = $1 AND attempt = $3::int AND EXISTS (SELECT 1 FROM r)) "
    "UPDATE sync.sync_runs s SET received = s.received + $5::bigint, valid = $6::bigint, invalid = $7::bigint,"
    "  duplicates = $8::bigint, batches_total = s.batches_total + (SELECT count(*) FROM b),"
    "  lease_expires_at = now() + " INTERVAL_MS("$4") " "
    "FROM r WHERE s.id = r.id "
    "RETURNING s.status, s.batches_total, s.batches_done, s.batches_failed, (SELECT count(*) FROM b)";

static void counts_params(const struct sync_repo_counts *n, char b[4][24]) {
    snprintf(b[0], 24, "%lld", n->received_delta);
    snprintf(b[1], 24, "%lld", n->valid);
    snprintf(b[2], 24, "%lld", n->invalid);
    snprintf(b[3], 24, "%lld", n->duplicates);
}

static void state_of(const PGresult *r, struct sync_repo_run_state *st) {
    copy_text(st->status, sizeof st->status, PQgetvalue(r, 0, 0));
    st->batches_total = ll_of(r, 0, 1);
    st->batches_done = ll_of(r, 0, 2);
    st->batches_failed = ll_of(r, 0, 3);
}

svc_status sync_repo_progress(PGconn *c, const char *run_id, const char *owner, int attempt, long ttl_ms,
                         const struct sync_repo_counts *n, const struct sync_repo_errors *errors,
                         const struct sync_repo_batch_row *batch, struct sync_repo_run_state *state) {
    char att[16], ttl[24], cnt[4][24], seq[16], recs[16], first[24];
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    counts_params(n, cnt);
    if (batch) {
        snprintf(seq, sizeof seq, "%" PRIu32, batch->seq);
        snprintf(recs, sizeof recs, "%" PRIu32, batch->records);
        snprintf(first, sizeof first, "%" PRIu64, batch->first_position);
    }
    struct svc_buf pos, why;
    if (!errors_params(errors, &pos, &why)) return SVC_INTERNAL;
    const char *v[] = {run_id, owner, att, ttl, cnt[0], cnt[1], cnt[2], cnt[3], pos.data, why.data,
                       batch ? seq : NULL, batch ? batch->digest : NULL, batch ? recs : NULL, batch ? first : NULL};
    PGresult *r;
    svc_status s = run(c, SQL_PROGRESS, 14, v, &r);
    svc_buf_free(&pos);
    svc_buf_free(&why);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_CONFLICT;
    }
    state_of(r, state);
    state->batch_is_new = ll_of(r, 0, 4) > 0;
    PQclear(r);
    return SVC_OK;
}

/* "All batches accounted for" as SQL over the run row s (before this statement's changes). */
#define SETTLED "(s.batches_done + s.batches_failed >= s.batches_total)"

static const char SQL_ATTEMPT_END[] =
    "WITH r AS (SELECT id FROM sync.sync_runs WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING' FOR UPDATE), "
    "e AS (INSERT INTO sync.sync_errors (run_id, position, reason)"
    "  SELECT $1, t.p, t.w FROM r, unnest($10::bigint[], $11::text[]) AS t(p, w) ON CONFLICT DO NOTHING), "
    "a AS (UPDATE sync.sync_attempts SET finished_at = now(), outcome = $4::text, http_status = $5::int, error = $6::text,"
    "    received = received + $7::bigint, valid = $8::bigint, invalid = $9::bigint"
    "  WHERE run_id = $1 AND attempt = $3::int AND EXISTS (SELECT 1 FROM r)) "
    "UPDATE sync.sync_runs s SET received = s.received + $7::bigint, valid = $8::bigint, invalid = $9::bigint,"
    "  duplicates = $12::bigint,"
    "  stream_ended_at = CASE WHEN $4::text = 'completed' THEN now() ELSE s.stream_ended_at END,"
    "  status = CASE WHEN $4::text <> 'completed' THEN s.status WHEN NOT " SETTLED " THEN 'PROCESSING'"
    "                WHEN s.batches_failed > 0 THEN 'FAILED' ELSE 'COMPLETED' END,"
    "  finished_at = CASE WHEN $4::text = 'completed' AND " SETTLED " THEN now() ELSE s.finished_at END,"
    "  error = CASE WHEN $4::text = 'completed' AND " SETTLED " AND s.batches_failed > 0"
    "               THEN format('%s of %s batches failed', s.batches_failed, s.batches_total) ELSE s.error END,"
    "  lease_owner = CASE WHEN $4::text = 'completed' AND " SETTLED " THEN NULL ELSE s.lease_owner END,"
    "  lease_expires_at = now() + " INTERVAL_MS("$13") " "
    "FROM r WHERE s.id = r.id RETURNING s.status";

svc_status sync_repo_attempt_end(PGconn *c, const char *run_id, const char *owner, int attempt, long ttl_ms,
                            const char *outcome, long http_status, const char *error, const struct sync_repo_counts *n,
                            const struct sync_repo_errors *errors, char status[SYNC_STATUS_MAX]) {
    char att[16], hs[16], cnt[4][24], ttl[24];
    snprintf(att, sizeof att, "%d", attempt);
    snprintf(hs, sizeof hs, "%ld", http_status);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    counts_params(n, cnt);
    struct svc_buf pos, why;
    if (!errors_params(errors, &pos, &why)) return SVC_INTERNAL;
    const char *v[] = {run_id, owner, att, outcome, http_status ? hs : NULL, error, cnt[0], cnt[1], cnt[2],
                       pos.data, why.data, cnt[3], ttl};
    PGresult *r;
    svc_status s = run(c, SQL_ATTEMPT_END, 13, v, &r);
    svc_buf_free(&pos);
    svc_buf_free(&why);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_CONFLICT;
    }
    copy_text(status, SYNC_STATUS_MAX, PQgetvalue(r, 0, 0));
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_lease_renew(PGconn *c, const char *run_id, const char *owner, long ttl_ms, struct sync_repo_run_state *state) {
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *v[] = {run_id, owner, ttl};
    PGresult *r;
    svc_status s = run(c,
                       "UPDATE sync.sync_runs SET lease_expires_at = now() + " INTERVAL_MS("$3")
                       " WHERE id = $1 AND lease_owner = $2 AND status = 'RUNNING'"
                       " RETURNING status, batches_total, batches_done, batches_failed",
                       3, v, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_CONFLICT;
    }
    state_of(r, state);
    state->batch_is_new = false;
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_lease_release(PGconn *c, const char *run_id, const char *owner) {
    const char *v[] = {run_id, owner};
    PGresult *r;
    svc_status s = run(c,
                       "UPDATE sync.sync_runs SET lease_owner = NULL, lease_expires_at = now() + interval '30 seconds'"
                       " WHERE id = $1 AND lease_owner = $2 AND status IN ('PENDING','RUNNING')",
                       2, v, &r);
    PQclear(r);
    return s;
}

svc_status sync_repo_run_fail(PGconn *c, const char *run_id, const char *owner, const char *reason) {
    const char *v[] = {run_id, owner, reason};
    PGresult *r;
    svc_status s = run(c,
                       "WITH r AS (UPDATE sync.sync_runs SET status = 'FAILED', finished_at = now(), error = $3,"
                       "    lease_owner = NULL"
                       "  WHERE id = $1 AND status IN ('PENDING','RUNNING','PROCESSING')"
                       "    AND ($2::text IS NULL OR lease_owner = $2) RETURNING id), "
                       "a AS (UPDATE sync.sync_attempts SET outcome = 'abandoned', finished_at = now(), error = $3"
                       "  WHERE run_id = $1 AND outcome = 'streaming' AND EXISTS (SELECT 1 FROM r)) "
                       "SELECT id FROM r",
                       3, v, &r);
    if (s != SVC_OK) return s;
    s = PQntuples(r) == 1 ? SVC_OK : SVC_NOT_FOUND;
    PQclear(r);
    return s;
}

/* ------------------------------------------------------------------ batch workers */

static const char SQL_BATCH_DONE[] =
    "WITH b AS (UPDATE sync.sync_batches SET status = 'done', attempts = $14::int, inserted = $4::int,"
    "    updated = $5::int, unchanged = $6::int, deleted = $7::int, rejected = $8::int, finished_at = now(), error = NULL"
    "  WHERE run_id = $1 AND seq = $2::int AND digest = $3 AND status = 'queued' RETURNING run_id), "
    "e AS (INSERT INTO sync.sync_errors (run_id, position, reason)"
    "  SELECT $1, t.p, t.w FROM b, unnest($9::bigint[], $10::text[]) AS t(p, w) ON CONFLICT DO NOTHING), "
    "j AS (INSERT INTO sync.job_runs (queue, job_id, run_id, attempt, instance, status, started_at, finished_at, duration_ms)"
    "  VALUES ($11, $12, $1, $14::int, $15, 'completed', to_timestamp($16::bigint / 1000.0), now(), $17::bigint)) "
    "UPDATE sync.sync_runs s SET inserted = s.inserted + $4::int, updated = s.updated + $5::int,"
    "  unchanged = s.unchanged + $6::int, deleted = s.deleted + $7::int, rejected = s.rejected + $8::int,"
    "  batches_done = s.batches_done + 1,"
    "  status = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + 1 + s.batches_failed >= s.batches_total"
    "                THEN CASE WHEN s.batches_failed > 0 THEN 'FAILED' ELSE 'COMPLETED' END ELSE s.status END,"
    "  finished_at = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + 1 + s.batches_failed >= s.batches_total"
    "                THEN now() ELSE s.finished_at END,"
    "  error = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + 1 + s.batches_failed >= s.batches_total"
    "               AND s.batches_failed > 0"
    "          THEN format('%s of %s batches failed', s.batches_failed, s.batches_total) ELSE s.error END,"
    "  lease_expires_at = CASE WHEN s.status = 'PROCESSING'"
    "          THEN greatest(s.lease_expires_at, now() + " INTERVAL_MS("$13") ") ELSE s.lease_expires_at END,"
    "  lease_owner = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + 1 + s.batches_failed >= s.batches_total"
    "                THEN NULL ELSE s.lease_owner END "
    "FROM b WHERE s.id = b.run_id RETURNING s.status";

static const char SQL_BATCH_FAILED[] =
    "WITH b AS (UPDATE sync.sync_batches SET status = 'failed', attempts = $6::int, finished_at = now(), error = $7"
    "  WHERE run_id = $1 AND seq = $2::int AND digest = $3 AND status = 'queued' RETURNING run_id), "
    "j AS (INSERT INTO sync.job_runs (queue, job_id, run_id, attempt, instance, status, started_at, finished_at,"
    "    duration_ms, error)"
    "  VALUES ($4, $5, $1, $6::int, $8, 'failed', to_timestamp($9::bigint / 1000.0), now(), $10::bigint, $7)) "
    "UPDATE sync.sync_runs s SET batches_failed = s.batches_failed + 1,"
    "  status = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + s.batches_failed + 1 >= s.batches_total"
    "                THEN 'FAILED' ELSE s.status END,"
    "  finished_at = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + s.batches_failed + 1 >= s.batches_total"
    "                THEN now() ELSE s.finished_at END,"
    "  error = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + s.batches_failed + 1 >= s.batches_total"
    "          THEN format('%s of %s batches failed', s.batches_failed + 1, s.batches_total) ELSE s.error END,"
    "  lease_owner = CASE WHEN s.status = 'PROCESSING' AND s.batches_done + s.batches_failed + 1 >= s.batches_total"
    "                THEN NULL ELSE s.lease_owner END "
    "FROM b WHERE s.id = b.run_id RETURNING s.status";

svc_status sync_repo_batch_done(PGconn *c, const char *run_id, uint32_t seq, const char *digest,
                           const struct sync_repo_batch_result *res, const struct sync_repo_errors *rejected,
                           const struct sync_repo_audit *a, long ttl_ms, bool *counted, char status[SYNC_STATUS_MAX]) {
    char sq[16], n[5][24], ttl[24], att[16], started[24], dur[24];
    snprintf(sq, sizeof sq, "%" PRIu32, seq);
    snprintf(n[0], 24, "%lld", res->inserted);
    snprintf(n[1], 24, "%lld", res->updated);
    snprintf(n[2], 24, "%lld", res->unchanged);
    snprintf(n[3], 24, "%lld", res->deleted);
    snprintf(n[4], 24, "%lld", res->rejected);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    snprintf(att, sizeof att, "%d", a->attempt);
    snprintf(started, sizeof started, "%lld", a->started_unix_ms);
    snprintf(dur, sizeof dur, "%lld", a->duration_ms);
    struct svc_buf pos, why;
    if (!errors_params(rejected, &pos, &why)) return SVC_INTERNAL;
    const char *v[] = {run_id, sq, digest, n[0], n[1], n[2], n[3], n[4], pos.data, why.data,
                       a->queue, a->job_id, ttl, att, a->instance, started, dur};
    PGresult *r;
    svc_status s = run(c, SQL_BATCH_DONE, 17, v, &r);
    svc_buf_free(&pos);
    svc_buf_free(&why);
    if (s != SVC_OK) return s;
    *counted = PQntuples(r) == 1;
    copy_text(status, SYNC_STATUS_MAX, *counted ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_batch_failed(PGconn *c, const char *run_id, uint32_t seq, const char *digest,
                             const struct sync_repo_audit *a, bool *counted, char status[SYNC_STATUS_MAX]) {
    char sq[16], att[16], started[24], dur[24];
    snprintf(sq, sizeof sq, "%" PRIu32, seq);
    snprintf(att, sizeof att, "%d", a->attempt);
    snprintf(started, sizeof started, "%lld", a->started_unix_ms);
    snprintf(dur, sizeof dur, "%lld", a->duration_ms);
    const char *v[] = {run_id, sq, digest, a->queue, a->job_id, att, a->error ? a->error : "failed", a->instance,
                       started, dur};
    PGresult *r;
    svc_status s = run(c, SQL_BATCH_FAILED, 10, v, &r);
    if (s != SVC_OK) return s;
    *counted = PQntuples(r) == 1;
    copy_text(status, SYNC_STATUS_MAX, *counted ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_audit_add(PGconn *c, const struct sync_repo_audit *a, const char *status) {
    char att[16], started[24], dur[24];
    snprintf(att, sizeof att, "%d", a->attempt);
    snprintf(started, sizeof started, "%lld", a->started_unix_ms);
    snprintf(dur, sizeof dur, "%lld", a->duration_ms);
    const char *v[] = {a->queue, a->job_id, a->run_id, att, a->instance, status, started, dur, a->error};
    PGresult *r;
    svc_status s = run(c,
                       "INSERT INTO sync.job_runs (queue, job_id, run_id, attempt, instance, status, started_at,"
                       " finished_at, duration_ms, error)"
                       " VALUES ($1, $2, $3::uuid, $4::int, $5, $6, to_timestamp($7::bigint / 1000.0), now(), $8::bigint, $9)",
                       9, v, &r);
    PQclear(r);
    return s;
}

svc_status sync_repo_audit_start(PGconn *c, const struct sync_repo_audit *a, long long *id) {
    char att[16];
    snprintf(att, sizeof att, "%d", a->attempt);
    const char *v[] = {a->queue, a->job_id, a->run_id, att, a->instance};
    PGresult *r;
    svc_status s = run(c,
                       "INSERT INTO sync.job_runs (queue, job_id, run_id, attempt, instance)"
                       " VALUES ($1, $2, $3::uuid, $4::int, $5) RETURNING id",
                       5, v, &r);
    if (s != SVC_OK) return s;
    *id = ll_of(r, 0, 0);
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_audit_finish(PGconn *c, long long id, const char *status, const char *error) {
    char ids[24];
    snprintf(ids, sizeof ids, "%lld", id);
    const char *v[] = {ids, status, error};
    PGresult *r;
    svc_status s = run(c,
                       "UPDATE sync.job_runs SET status = $2, error = $3, finished_at = now(),"
                       " duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint WHERE id = $1::bigint",
                       3, v, &r);
    PQclear(r);
    return s;
}

/* ------------------------------------------------------------------ the reaper */

svc_status sync_repo_expired_runs(PGconn *c, struct sync_repo_expired *out, int max, int *n) {
    char m[16];
    snprintf(m, sizeof m, "%d", max);
    const char *v[] = {m};
    PGresult *r;
    svc_status s = run(c,
                       "SELECT r.id, r.status, r.correlation_id,"
                       " (SELECT count(*) FROM sync.sync_batches b WHERE b.run_id = r.id AND b.status = 'queued')"
                       " FROM sync.sync_runs r WHERE r.status IN ('PENDING','RUNNING','PROCESSING')"
                       " AND r.lease_expires_at < now() ORDER BY r.created_at LIMIT $1::int",
                       1, v, &r);
    if (s != SVC_OK) return s;
    *n = PQntuples(r);
    for (int i = 0; i < *n; i++) {
        copy_text(out[i].id, sizeof out[i].id, PQgetvalue(r, i, 0));
        copy_text(out[i].status, sizeof out[i].status, PQgetvalue(r, i, 1));
        copy_text(out[i].cid, sizeof out[i].cid, PQgetvalue(r, i, 2));
        out[i].queued_batches = ll_of(r, i, 3);
    }
    PQclear(r);
    return SVC_OK;
}

svc_status sync_repo_run_resume(PGconn *c, const char *run_id, long ttl_ms, int max_resumes, int *resumes) {
    char ttl[24], mx[16];
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    snprintf(mx, sizeof mx, "%d", max_resumes);
    const char *v[] = {run_id, ttl, mx};
    PGresult *r;
    svc_status s = run(c,
                       "WITH r AS (UPDATE sync.sync_runs SET resumes = resumes + 1, lease_owner = NULL,"
                       "    lease_expires_at = now() + " INTERVAL_MS("$2")
                       "  WHERE id = $1 AND status IN ('PENDING','RUNNING') AND lease_expires_at < now()"
                       "    AND resumes < $3::int RETURNING resumes), "
                       "a AS (UPDATE sync.sync_attempts SET outcome = 'abandoned', finished_at = now(),"
                       "    error = 'owner lost its lease'"
                       "  WHERE run_id = $1 AND outcome = 'streaming' AND EXISTS (SELECT 1 FROM r)) "
                       "SELECT resumes FROM r",
                       3, v, &r);
    if (s != SVC_OK) return s;
    if (PQntuples(r) == 1) {
        *resumes = (int)ll_of(r, 0, 0);
        PQclear(r);
        return SVC_OK;
    }
    PQclear(r);
    const char *w[] = {run_id, mx};
    s = run(c,
            "WITH r AS (UPDATE sync.sync_runs SET status = 'FAILED', finished_at = now(), lease_owner = NULL,"
            "    error = format('lease expired %s times: given up', resumes + 1)"
            "  WHERE id = $1 AND status IN ('PENDING','RUNNING') AND lease_expires_at < now()"
            "    AND resumes >= $2::int RETURNING id), "
            "a AS (UPDATE sync.sync_attempts SET outcome = 'abandoned', finished_at = now(), error = 'owner lost its lease'"
            "  WHERE run_id = $1 AND outcome = 'streaming' AND EXISTS (SELECT 1 FROM r)) "
            "SELECT id FROM r",
            2, w, &r);
    if (s != SVC_OK) return s;
    s = PQntuples(r) == 1 ? SVC_UNPROCESSABLE : SVC_CONFLICT;
    PQclear(r);
    return s;
}

svc_status sync_repo_lease_extend(PGconn *c, const char *run_id, long ttl_ms) {
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *v[] = {run_id, ttl};
    PGresult *r;
    svc_status s = run(c,
                       "UPDATE sync.sync_runs SET lease_expires_at = now() + " INTERVAL_MS("$2")
                       " WHERE id = $1 AND status = 'PROCESSING'",
                       2, v, &r);
    PQclear(r);
    return s;
}

svc_status sync_repo_run_settle(PGconn *c, const char *run_id, char status[SYNC_STATUS_MAX]) {
    const char *v[] = {run_id};
    PGresult *r;
    svc_status s = run(c,
                       "UPDATE sync.sync_runs s SET status = CASE WHEN s.batches_failed > 0 THEN 'FAILED' ELSE 'COMPLETED' END,"
                       " finished_at = now(), lease_owner = NULL,"
                       " error = CASE WHEN s.batches_failed > 0"
                       "   THEN format('%s of %s batches failed', s.batches_failed, s.batches_total) ELSE s.error END"
                       " WHERE s.id = $1 AND s.status = 'PROCESSING' AND " SETTLED " RETURNING s.status",
                       1, v, &r);
    if (s != SVC_OK) return s;
    s = PQntuples(r) == 1 ? SVC_OK : SVC_NOT_FOUND;
    copy_text(status, SYNC_STATUS_MAX, s == SVC_OK ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return s;
}
