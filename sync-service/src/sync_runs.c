/* Sync API use cases (see sync_runs.h). A database connection is borrowed per call and given
 * back on every path; failures are logged once here with the correlation id. */
#include "sync_runs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/pg.h"
#include "erp_page.h"
#include "sync_repo.h"

#define FORBIDDEN SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required")

/* A database call (or acquiring a connection) that failed with st: logged, then the shared
 * answer (503 database_unavailable / database_timeout, else 500). */
static struct svc_result db_error(struct sync_ctx *cx, const char *cid, const char *what, svc_status st) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "sync: database call failed", "{s:s,s:s}", "call", what, "status",
             svc_status_code(st));
    return svc_pg_result(st);
}

static struct svc_result queue_down(void) {
    return SVC_RESULT_ERR(SVC_UNAVAILABLE, "queue_unavailable", "the job queue is unavailable; retry later");
}

static struct svc_result raw_ok(char *json) {
    struct svc_result r = {.st = SVC_OK, .raw = json};
    return r;
}

static PGconn *acquire(struct sync_ctx *cx, svc_status *st) { return svc_pg_acquire(cx->app.pg, -1, st); }

svc_status sync_trigger_run(struct sync_ctx *cx, const char *trigger, const char *requested_by, const char *cid,
                            char **json, bool *created, bool *queue_failed) {
    svc_status st;
    *json = NULL;
    *queue_failed = false;
    PGconn *c = acquire(cx, &st);
    if (!c) return st;
    char run_id[SVC_UUID_LEN + 1];
    st = sync_repo_run_trigger(c, trigger, requested_by, cid, cx->set.lease_ttl_ms, run_id, json, created);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return st == SVC_CONFLICT ? SVC_UNAVAILABLE : st;
    if (!*created) return SVC_OK;

    char job_id[SVC_QUEUE_JOB_ID_MAX + 1];
    snprintf(job_id, sizeof job_id, "run:%s", run_id);
    struct svc_job_options opt = {.id = job_id};
    svc_status qs = svc_queue_enqueue(cx->q_runs, run_id, strlen(run_id), &opt, NULL, NULL);
    if (qs != SVC_OK) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "sync: cannot enqueue the run", "{s:s,s:s}", "run_id", run_id,
                 "status", svc_status_code(qs));
        c = acquire(cx, &st);
        if (c) {
            sync_repo_run_fail(c, run_id, NULL, "job queue unavailable when the run was triggered");
            svc_pg_release(cx->app.pg, c);
        }
        free(*json);
        *json = NULL;
        *queue_failed = true;
        return SVC_UNAVAILABLE;
    }
    atomic_fetch_add_explicit(cx->m.runs_triggered, 1, memory_order_relaxed);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "sync: run created", "{s:s,s:s}", "run_id", run_id, "trigger", trigger);
    return SVC_OK;
}

struct svc_result sync_trigger(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, bool *created) {
    if (!who->is_admin) return FORBIDDEN;
    char *json;
    bool queue_failed;
    svc_status st = sync_trigger_run(cx, "api", who->sub, cid, &json, created, &queue_failed);
    if (queue_failed) return queue_down();
    if (st != SVC_OK) return db_error(cx, cid, "trigger", st);
    return raw_ok(json);
}

static void add_queue_stats(json_t *obj, const char *key, struct svc_queue *q) {
    struct svc_queue_stats s;
    if (svc_queue_stats(q, &s) != SVC_OK) {
        json_object_set_new(obj, key, json_null());
        return;
    }
    json_object_set_new(obj, key,
                        json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "waiting", (json_int_t)s.waiting, "active",
                                  (json_int_t)s.active, "delayed", (json_int_t)s.delayed, "dead", (json_int_t)s.dead,
                                  "completed", (json_int_t)s.completed, "failed", (json_int_t)s.failed, "retried",
                                  (json_int_t)s.retried, "reclaimed", (json_int_t)s.reclaimed));
}

struct svc_result sync_status(struct sync_ctx *cx, const char *cid, const struct svc_principal *who) {
    if (!who->is_admin) return FORBIDDEN;
    svc_status st;
    PGconn *c = acquire(cx, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL, status[SYNC_STATUS_MAX];
    st = sync_repo_run_latest(c, &json, status);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "no_sync_run", "no sync run yet");
    if (st != SVC_OK) return db_error(cx, cid, "latest run", st);
    json_t *run = json_loads(json, 0, NULL);
    free(json);
    if (!run) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    bool active = strcmp(status, "PENDING") == 0 || strcmp(status, "RUNNING") == 0 || strcmp(status, "PROCESSING") == 0;
    json_t *progress = json_pack("{s:b}", "active", active);
    if (progress) {
        json_t *b = json_object_get(run, "batches");
        json_int_t total = json_integer_value(json_object_get(b, "total"));
        json_int_t done = json_integer_value(json_object_get(b, "done")) + json_integer_value(json_object_get(b, "failed"));
        json_object_set_new(progress, "batches_outstanding", json_integer(total - done));
        if (active) add_queue_stats(progress, "queue", cx->q_batches);
        json_object_set_new(run, "progress", progress);
    }
    struct svc_result r = {.st = SVC_OK, .body = run};
    return r;
}

struct svc_result sync_history(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                               const struct svc_page_params *paging) {
    if (!who->is_admin) return FORBIDDEN;
    struct svc_page page;
    json_t *fields = json_object();
    if (!svc_page_parse(&sync_repo_history_kind, paging, &page, fields)) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = acquire(cx, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = sync_repo_run_history(c, &page, &json);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return db_error(cx, cid, "history", st);
    return raw_ok(json);
}

struct svc_result sync_get(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id) {
    if (!who->is_admin) return FORBIDDEN;
    if (!id || !svc_uuid_is_valid(id)) return SVC_RESULT_ERR(SVC_NOT_FOUND, "sync_run_not_found", "no such sync run");
    svc_status st;
    PGconn *c = acquire(cx, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = sync_repo_run_get(c, id, &json);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "sync_run_not_found", "no such sync run");
    if (st != SVC_OK) return db_error(cx, cid, "get run", st);
    return raw_ok(json);
}

struct svc_result sync_errors(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id,
                              const struct svc_page_params *paging) {
    if (!who->is_admin) return FORBIDDEN;
    if (!id || !svc_uuid_is_valid(id)) return SVC_RESULT_ERR(SVC_NOT_FOUND, "sync_run_not_found", "no such sync run");
    struct svc_page page;
    json_t *fields = json_object();
    if (!svc_page_parse(&sync_repo_errors_kind, paging, &page, fields)) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = acquire(cx, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = sync_repo_run_errors(c, id, &page, &json);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "sync_run_not_found", "no such sync run");
    if (st != SVC_OK) return db_error(cx, cid, "run errors", st);
    return raw_ok(json);
}

static bool rfc3339_ok(const char *s) {
    int64_t us;
    return erp_parse_rfc3339(s, strlen(s), &us) == 0;
}

struct svc_result sync_job_runs(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                const struct svc_page_params *paging, const struct sync_job_runs_query *q) {
    if (!who->is_admin) return FORBIDDEN;
    const char *queue = q->queue, *run_id = q->run_id;
    struct svc_page page;
    json_t *fields = json_object();
    bool ok = svc_page_parse(&sync_repo_job_runs_kind, paging, &page, fields);
    if (q->tenant && !svc_uuid_is_valid(q->tenant)) {
        svc_query_reason(fields, "tenant", "must be a tenant id (UUID)");
        ok = false;
    }
    if (q->status && strcmp(q->status, "running") && strcmp(q->status, "completed") && strcmp(q->status, "failed") &&
        strcmp(q->status, "dead")) {
        svc_query_reason(fields, "status", "must be running, completed, failed or dead");
        ok = false;
    }
    if (q->from && !rfc3339_ok(q->from)) {
        svc_query_reason(fields, "from", "must be an RFC 3339 date-time");
        ok = false;
    }
    if (q->to && !rfc3339_ok(q->to)) {
        svc_query_reason(fields, "to", "must be an RFC 3339 date-time");
        ok = false;
    }
    if (run_id && !svc_uuid_is_valid(run_id)) {
        svc_query_reason(fields, "run_id", "must be a run id (UUID)");
        ok = false;
    }
    _Static_assert(SVC_QUEUE_NAME_MAX == 64, "the reason below names the maximum");
    if (queue && (strlen(queue) == 0 || strlen(queue) > SVC_QUEUE_NAME_MAX)) {
        svc_query_reason(fields, "queue", "must be a queue name (1 to 64 characters)");
        ok = false;
    }
    if (!ok) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = acquire(cx, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    struct sync_repo_job_filter f = {.queue = queue, .run_id = run_id, .tenant = q->tenant, .status = q->status,
                                .from = q->from, .to = q->to};
    st = sync_repo_job_runs(c, &f, &page, &json);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return db_error(cx, cid, "job runs", st);
    return raw_ok(json);
}

struct svc_result sync_queues(struct sync_ctx *cx, const char *cid, const struct svc_principal *who) {
    if (!who->is_admin) return FORBIDDEN;
    json_t *queues = json_object();
    if (!queues) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    add_queue_stats(queues, SYNC_QUEUE_RUNS, cx->q_runs);
    add_queue_stats(queues, SYNC_QUEUE_BATCHES, cx->q_batches);
    /* and every other queue a worker of any instance runs on (discovered in Redis) */
    char **names = NULL;
    size_t n = 0;
    if (svc_queue_known(cx->app.redis, &names, &n) == SVC_OK) {
        for (size_t i = 0; i < n; i++) {
            if (json_object_get(queues, names[i])) continue;
            svc_status st;
            struct svc_queue_options o = {.name = names[i]};
            struct svc_queue *q = svc_queue_new(cx->app.redis, &o, &cx->app.log, &st);
            if (!q) continue;
            add_queue_stats(queues, names[i], q);
            svc_queue_free(q);
        }
        svc_queue_names_free(names, n);
    }
    if (json_is_null(json_object_get(queues, SYNC_QUEUE_RUNS))) {
        json_decref(queues);
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "sync: queue stats unavailable", NULL);
        return queue_down();
    }
    struct svc_result r = {.st = SVC_OK, .body = json_pack("{s:o}", "queues", queues)};
    return r;
}
