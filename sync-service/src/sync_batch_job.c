/* Batch jobs (see sync_batch_job.h). */
#include "sync_batch_job.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "svc/json_text.h"
#include "sync_batch.h"
#include "sync_ctx.h"

#define STORE_TRIES 4

static long long unix_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int sync_batch_job_parse_answer(const char *body, size_t len, uint32_t count, struct sync_repo_batch_result *r,
                             void (*on_invalid)(void *arg, uint32_t index, const char *reason), void *arg) {
    memset(r, 0, sizeof *r);
    if (!body) return -1;
    json_t *o = svc_json_load(body, len, 0, NULL);
    if (!json_is_object(o)) {
        json_decref(o);
        return -1;
    }
    json_t *ins = json_object_get(o, "inserted"), *upd = json_object_get(o, "updated"),
           *del = json_object_get(o, "deleted"), *unc = json_object_get(o, "unchanged"),
           *inv = json_object_get(o, "invalid");
    if (!json_is_integer(ins) || !json_is_integer(upd) || !json_is_integer(del) || !json_is_integer(unc) ||
        (inv && !json_is_array(inv))) {
        json_decref(o);
        return -1;
    }
    r->inserted = json_integer_value(ins);
    r->updated = json_integer_value(upd);
    r->deleted = json_integer_value(del);
    r->unchanged = json_integer_value(unc);
    size_t i;
    json_t *e;
    json_array_foreach(inv, i, e) {
        json_t *idx = json_object_get(e, "index");
        const char *why = json_string_value(json_object_get(e, "reason"));
        r->rejected++;
        if (on_invalid && json_is_integer(idx) && json_integer_value(idx) >= 0 &&
            json_integer_value(idx) < (json_int_t)count)
            on_invalid(arg, (uint32_t)json_integer_value(idx), why ? why : "unknown");
    }
    json_decref(o);
    if (r->inserted < 0 || r->updated < 0 || r->deleted < 0 || r->unchanged < 0) return -1;
    return 0;
}

struct rejected_ctx {
    const struct sync_batch_view *v;
    struct sync_repo_errors *errors;
};

/* Reasons come from the endpoint: only a known, fixed set is stored (no free text). */
static const char *rejected_reason(const char *why) {
    static const char *const known[] = {"invalid_user_name", "invalid_email", "invalid_name", "invalid_legacy_id",
                                        "invalid_deleted", "invalid_updated_at", "not_an_object", "unknown_field",
                                        "email_taken"};
    static const char *const stored[] = {"rejected: invalid_user_name", "rejected: invalid_email",
                                         "rejected: invalid_name", "rejected: invalid_legacy_id",
                                         "rejected: invalid_deleted", "rejected: invalid_updated_at",
                                         "rejected: not_an_object", "rejected: unknown_field", "rejected: email_taken"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (strcmp(why, known[i]) == 0) return stored[i];
    return "rejected: other";
}

static void add_rejected(void *arg, uint32_t index, const char *reason) {
    struct rejected_ctx *rc = arg;
    int64_t pos = sync_batch_position(rc->v, index);
    if (pos >= 0) sync_repo_errors_add(rc->errors, (uint64_t)pos, rejected_reason(reason));
}

/* Records the batch's end (done or failed), retrying the database a few times: once the
 * upsert happened, losing this write would lose its counts. */
static svc_status record(struct sync_ctx *cx, const struct sync_batch_view *v, const struct sync_repo_batch_result *res,
                         const struct sync_repo_errors *rejected, const struct sync_repo_audit *audit, bool *counted,
                         char status[SYNC_STATUS_MAX]) {
    svc_status st = SVC_UNAVAILABLE;
    for (int i = 0; i < STORE_TRIES; i++) {
        if (i > 0 && sync_sleep(cx, 250L * i)) break;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) continue;
        st = res ? sync_repo_batch_done(c, v->run_id, v->seq, v->digest_hex, res, rejected, audit, cx->set.lease_ttl_ms,
                                   counted, status)
                 : sync_repo_batch_failed(c, v->run_id, v->seq, v->digest_hex, audit, counted, status);
        svc_pg_release(cx->app.pg, c);
        if (st == SVC_OK) break;
    }
    return st;
}

static void note_status(struct sync_ctx *cx, const struct sync_batch_view *v, const char *status) {
    if (strcmp(status, "COMPLETED") == 0) {
        atomic_fetch_add_explicit(cx->m.runs_completed, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_INFO, v->cid, "sync: run completed", "{s:s}", "run_id", v->run_id);
    } else if (strcmp(status, "FAILED") == 0) {
        atomic_fetch_add_explicit(cx->m.runs_failed, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, v->cid, "sync: run finished with failed batches", "{s:s}", "run_id",
                 v->run_id);
    }
}

/* The batch is given up: record it as failed and dead-letter the job. */
static svc_job_result give_up(struct sync_ctx *cx, struct svc_job *job, const struct sync_batch_view *v,
                              struct sync_repo_audit *audit) {
    bool counted = false;
    char status[SYNC_STATUS_MAX] = "";
    audit->error = job->error;
    svc_status st = record(cx, v, NULL, NULL, audit, &counted, status);
    if (st != SVC_OK) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, v->cid, "sync: cannot record a failed batch", "{s:s,s:i}", "run_id",
                 v->run_id, "seq", (int)v->seq);
        /* the reaper will notice the batch missing from the queue and fail the run */
    }
    if (counted) atomic_fetch_add_explicit(cx->m.batches_failed, 1, memory_order_relaxed);
    note_status(cx, v, status);
    svc_logf(&cx->app.log, SVC_LOG_ERROR, v->cid, "sync: batch failed", "{s:s,s:i,s:i,s:s}", "run_id", v->run_id,
             "seq", (int)v->seq, "attempt", job->attempt, "error", job->error);
    return SVC_JOB_FAIL;
}

svc_job_result sync_batch_job(struct svc_job *job, void *arg) {
    struct sync_ctx *cx = arg;
    struct sync_batch_view v;
    if (sync_batch_decode(job->payload, job->len, &v) != 0) {
        snprintf(job->error, sizeof job->error, "malformed batch payload");
        svc_logf(&cx->app.log, SVC_LOG_ERROR, NULL, "sync: malformed batch payload", "{s:s}", "job_id", job->id);
        return SVC_JOB_FAIL;
    }
    long long started = unix_ms();
    long t0 = svc_now_ms();
    struct svc_httpc_request req = {.upstream = SVC_CUSTOMERS_UPSTREAM,
                                .method = "POST",
                                .path = SYNC_BULK_PATH,
                                .body = v.body,
                                .body_len = v.body_len,
                                .content_type = v.content_type,
                                .correlation_id = v.cid,
                                .idempotency_key = job->id,
                                .accept = "application/json",
                                .timeout_ms = cx->set.upsert_timeout_ms};
    struct svc_httpc_response resp;
    enum svc_httpc_outcome out = svc_httpc_request(cx->customers.http, &req, &resp);
    struct sync_repo_audit audit = {.queue = SYNC_QUEUE_BATCHES, .job_id = job->id, .run_id = v.run_id,
                               .attempt = job->attempt, .instance = cx->app.instance, .started_unix_ms = started,
                               .duration_ms = svc_now_ms() - t0};
    bool last = job->attempt >= job->max_attempts;

    if (out == SVC_HTTPC_OK && resp.status == 200) {
        struct sync_repo_errors rejected;
        sync_repo_errors_init(&rejected);
        struct rejected_ctx rc = {&v, &rejected};
        struct sync_repo_batch_result res;
        int prc = sync_batch_job_parse_answer(resp.body, resp.len, v.count, &res, add_rejected, &rc);
        svc_httpc_response_free(&resp);
        if (prc != 0) {
            sync_repo_errors_free(&rejected);
            snprintf(job->error, sizeof job->error, "malformed bulk-upsert answer");
            return give_up(cx, job, &v, &audit);
        }
        bool counted = false;
        char status[SYNC_STATUS_MAX] = "";
        svc_status st = record(cx, &v, &res, &rejected, &audit, &counted, status);
        sync_repo_errors_free(&rejected);
        if (st != SVC_OK) {
            /* the upsert is idempotent: sending the batch again is safe (its rows then count as
             * unchanged) */
            snprintf(job->error, sizeof job->error, "cannot record the batch: %s", svc_status_code(st));
            atomic_fetch_add_explicit(cx->m.batches_retried, 1, memory_order_relaxed);
            return SVC_JOB_RETRY;
        }
        if (counted) atomic_fetch_add_explicit(cx->m.batches_done, 1, memory_order_relaxed);
        note_status(cx, &v, status);
        return SVC_JOB_OK;
    }

    /* failure: decide between retrying and giving up */
    bool permanent = false;
    if (out == SVC_HTTPC_OK) {
        long s = resp.status;
        snprintf(job->error, sizeof job->error, "customers-service answered %ld", s);
        permanent = s >= 400 && s < 500 && s != 401 && s != 403 && s != 408 && s != 429;
        if ((s == 429 || s == 503) && resp.has_retry_after) job->retry_delay_ms = resp.retry_after_ms;
    } else {
        snprintf(job->error, sizeof job->error, "customers-service call failed: %s", svc_httpc_outcome_str(out));
    }
    svc_httpc_response_free(&resp);
    if (permanent || last) return give_up(cx, job, &v, &audit);
    atomic_fetch_add_explicit(cx->m.batches_retried, 1, memory_order_relaxed);
    audit.error = job->error;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        sync_repo_audit_add(c, &audit, "failed");
        svc_pg_release(cx->app.pg, c);
    }
    svc_logf(&cx->app.log, SVC_LOG_WARN, v.cid, "sync: batch will be retried", "{s:s,s:i,s:i,s:s}", "run_id",
             v.run_id, "seq", (int)v.seq, "attempt", job->attempt, "error", job->error);
    return SVC_JOB_RETRY;
}
