/* The orchestrator job: streams the legacy API into batch jobs (see sync_stream.h).
 *
 * Everything that can stop a transfer midway (a non-200 answer, an unknown content type, a
 * framing error, the lease lost, the database or queue failing, a stop request) is recorded in
 * reader.abort before the curl callback returns an error, so after curl_easy_perform one place
 * (classify) turns the transfer's end into an attempt outcome. */
#include "sync_stream.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sync_batch.h"
#include "sync_ctx.h"
#include "sync_idset.h"
#include "sync_record.h"
#include "sync_repo.h"
#include "sync_split.h"

#define ERRORS_FLUSH 1000       /* buffered invalid records written at once */
#define RENEW_EVERY_MS 1000L    /* live counters + lease renewal while streaming */
#define STORE_TRIES 3           /* database writes at the end of an attempt */

enum abort_kind { AB_NONE = 0, AB_STATUS, AB_CONTENT_TYPE, AB_FRAMING, AB_STORE, AB_LEASE, AB_STOP };
enum outcome { OUT_COMPLETE, OUT_RETRY, OUT_FATAL, OUT_LEASE_LOST, OUT_STOPPING };

struct reader {
    struct sync_ctx *cx;
    CURL *curl;
    struct sync_split split;
    bool split_ready;
    struct sync_batch batch;
    struct sync_repo_errors errors;
    struct sync_idset *ids;
    uint64_t rng;
    /* the run */
    char run_id[SVC_UUID_LEN + 1];
    char cid[SVC_CID_MAX + 1];
    int attempt;
    /* the attempt */
    long long received, received_flushed, valid, invalid, duplicates;
    uint32_t seq;
    long http_status;
    bool body_started;
    long retry_after_ms;
    enum abort_kind abort;
    char why[256];
    long last_flush_ms;
    long renew_every_ms;
    struct sync_repo_run_state state;
};

void *sync_stream_thread_init(void *arg, int index) {
    struct sync_ctx *cx = arg;
    struct reader *rd = calloc(1, sizeof *rd);
    if (!rd) return NULL;
    rd->cx = cx;
    rd->curl = curl_easy_init();
    rd->ids = idset_new();
    sync_batch_init(&rd->batch);
    sync_repo_errors_init(&rd->errors);
    if (svc_random_bytes(&rd->rng, sizeof rd->rng) != 0) rd->rng = (uint64_t)time(NULL) ^ (uint64_t)index;
    rd->renew_every_ms = cx->set.lease_ttl_ms / 3 < RENEW_EVERY_MS ? cx->set.lease_ttl_ms / 3 : RENEW_EVERY_MS;
    if (!rd->curl || !rd->ids) {
        sync_stream_thread_fini(rd, arg);
        return NULL;
    }
    return rd;
}

void sync_stream_thread_fini(void *thread_ctx, void *arg) {
    struct reader *rd = thread_ctx;
    if (!rd) return;
    if (rd->curl) curl_easy_cleanup(rd->curl);
    if (rd->split_ready) split_free(&rd->split);
    sync_batch_free(&rd->batch);
    sync_repo_errors_free(&rd->errors);
    idset_free(rd->ids);
    free(rd);
}

static void set_abort(struct reader *rd, enum abort_kind k, const char *why) {
    if (rd->abort != AB_NONE) return;
    rd->abort = k;
    snprintf(rd->why, sizeof rd->why, "%s", why);
}

static bool stopping(const struct reader *rd) { return atomic_load(&rd->cx->stopping); }

static struct sync_repo_counts counts_of(const struct reader *rd) {
    struct sync_repo_counts n = {rd->received - rd->received_flushed, rd->valid, rd->invalid, rd->duplicates};
    return n;
}

/* Handles a failed guarded write: lease lost vs. store failure. Returns -1 (abort). */
static int store_failed(struct reader *rd, svc_status st, const char *what) {
    if (st == SVC_CONFLICT) {
        set_abort(rd, AB_LEASE, "the run's lease was lost");
        return -1;
    }
    char why[128];
    snprintf(why, sizeof why, "%s failed: %s", what, svc_status_code(st));
    set_abort(rd, AB_STORE, why);
    return -1;
}

/* Writes progress (and optionally the batch just finished). */
static int write_progress(struct reader *rd, const struct sync_repo_batch_row *batch) {
    struct sync_ctx *cx = rd->cx;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return store_failed(rd, st, "database");
    struct sync_repo_counts n = counts_of(rd);
    st = sync_repo_progress(c, rd->run_id, cx->owner, rd->attempt, cx->set.lease_ttl_ms, &n, &rd->errors, batch, &rd->state);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return store_failed(rd, st, "progress write");
    rd->received_flushed = rd->received;
    sync_repo_errors_reset(&rd->errors);
    rd->last_flush_ms = svc_now_ms();
    return 0;
}

/* Waits while too many batches are outstanding (renewing the lease meanwhile). */
static int backpressure(struct reader *rd) {
    struct sync_ctx *cx = rd->cx;
    long wait_ms = 5;
    while (rd->state.batches_total - rd->state.batches_done - rd->state.batches_failed > cx->set.max_inflight_batches) {
        if (sync_sleep(cx, wait_ms)) {
            set_abort(rd, AB_STOP, "instance stopping");
            return -1;
        }
        if (wait_ms < 100) wait_ms *= 2;
        svc_status st;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) return store_failed(rd, st, "database");
        st = sync_repo_lease_renew(c, rd->run_id, cx->owner, cx->set.lease_ttl_ms, &rd->state);
        svc_pg_release(cx->app.pg, c);
        if (st != SVC_OK) return store_failed(rd, st, "lease renewal");
        rd->last_flush_ms = svc_now_ms();
    }
    return 0;
}

/* Stores and enqueues the current batch, then starts the next one. */
static int flush_batch(struct reader *rd) {
    struct sync_ctx *cx = rd->cx;
    struct sync_batch *b = &rd->batch;
    if (sync_batch_finish(b, rd->run_id, rd->seq, rd->cid) != 0) {
        set_abort(rd, AB_STORE, "cannot encode a batch (out of memory)");
        return -1;
    }
    char digest[17];
    snprintf(digest, sizeof digest, "%016" PRIx64, b->digest);
    struct sync_repo_batch_row row = {rd->seq, digest, b->count, b->first_position};
    if (write_progress(rd, &row) != 0) return -1;

    char job_id[SVC_QUEUE_JOB_ID_MAX + 1];
    snprintf(job_id, sizeof job_id, "b:%s:%" PRIu32 ":%s", rd->run_id, rd->seq, digest);
    struct svc_job_options opt = {.id = job_id, .max_attempts = (int)cx->set.batch_max_attempts};
    size_t len;
    const char *payload = sync_batch_payload(b, &len);
    bool created = false;
    svc_status st = svc_queue_enqueue(cx->q_batches, payload, len, &opt, NULL, &created);
    if (st != SVC_OK) return store_failed(rd, st, "batch enqueue");
    if (created) atomic_fetch_add_explicit(cx->m.batches_enqueued, 1, memory_order_relaxed);
    rd->seq++;
    sync_batch_reset(b);
    return backpressure(rd);
}

static int on_element(void *arg, const char *data, size_t len, uint64_t pos, bool truncated) {
    struct reader *rd = arg;
    struct sync_ctx *cx = rd->cx;
    rd->received++;
    struct sync_record rec;
    const char *why = truncated ? "too_large" : sync_record_parse(data, len, &rec);
    if (why) {
        rd->invalid++;
        sync_repo_errors_add(&rd->errors, pos, why);
        if (rd->errors.n >= ERRORS_FLUSH && write_progress(rd, NULL) != 0) return 1;
        return 0;
    }
    rd->valid++;
    int added = idset_add(rd->ids, (uint64_t)rec.id);
    if (added < 0) {
        set_abort(rd, AB_STORE, "out of memory (id set)");
        return 1;
    }
    if (added == 0) rd->duplicates++;
    sync_batch_add(&rd->batch, &rec, pos);
    if (rd->batch.count >= (uint32_t)cx->set.batch_size ||
        sync_batch_body_bytes(&rd->batch) >= (size_t)cx->set.batch_max_bytes)
        return flush_batch(rd) != 0;
    return 0;
}

/* First body byte (or end of a bodiless answer): status and content type decide the framing. */
static int begin_body(struct reader *rd) {
    rd->body_started = true;
    long code = 0;
    curl_easy_getinfo(rd->curl, CURLINFO_RESPONSE_CODE, &code);
    rd->http_status = code;
    if (code != 200) {
        char why[64];
        snprintf(why, sizeof why, "legacy API answered %ld", code);
        set_abort(rd, AB_STATUS, why);
        return -1;
    }
    char *ct = NULL;
    curl_easy_getinfo(rd->curl, CURLINFO_CONTENT_TYPE, &ct);
    enum split_format fmt;
    size_t n = 0;
    if (ct) while (ct[n] && ct[n] != ';' && ct[n] != ' ') n++;
    if (ct && ((n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0) ||
               (n == 18 && strncasecmp(ct, "application/ndjson", n) == 0)))
        fmt = SPLIT_NDJSON;
    else if (ct && n == 16 && strncasecmp(ct, "application/json", n) == 0)
        fmt = SPLIT_JSON_ARRAY;
    else {
        set_abort(rd, AB_CONTENT_TYPE, "legacy API answered an unsupported content type");
        return -1;
    }
    if (split_init(&rd->split, fmt, (size_t)rd->cx->set.max_record_bytes, on_element, rd) != SPLIT_OK) {
        set_abort(rd, AB_STORE, "out of memory (splitter)");
        return -1;
    }
    rd->split_ready = true;
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg) {
    struct reader *rd = arg;
    size_t n = size * nmemb;
    if (!rd->body_started && begin_body(rd) != 0) return 0;
    int rc = split_feed(&rd->split, ptr, n);
    if (rc == SPLIT_ERR_FRAMING) set_abort(rd, AB_FRAMING, "the body is not a JSON array");
    return rc == 0 ? n : 0;
}

static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
    struct reader *rd = arg;
    if (stopping(rd)) {
        set_abort(rd, AB_STOP, "instance stopping");
        return 1;
    }
    if (svc_now_ms() - rd->last_flush_ms >= rd->renew_every_ms && write_progress(rd, NULL) != 0) return 1;
    return 0;
}

static void attempt_reset(struct reader *rd) {
    rd->received = rd->received_flushed = rd->valid = rd->invalid = rd->duplicates = 0;
    rd->seq = 0;
    rd->http_status = 0;
    rd->body_started = false;
    rd->retry_after_ms = 0;
    rd->abort = AB_NONE;
    rd->why[0] = 0;
    rd->last_flush_ms = svc_now_ms();
    memset(&rd->state, 0, sizeof rd->state);
    if (rd->split_ready) split_free(&rd->split);
    rd->split_ready = false;
    sync_batch_reset(&rd->batch);
    sync_repo_errors_reset(&rd->errors);
    idset_clear(rd->ids);
}

static bool retryable_status(long code) { return code >= 500 || code == 429 || code == 408; }

/* One pass over the stream. */
static enum outcome stream_once(struct reader *rd) {
    struct sync_ctx *cx = rd->cx;
    attempt_reset(rd);
    CURL *h = rd->curl;
    curl_easy_reset(h);
    char accept[256], cidh[SVC_CID_MAX + 32];
    snprintf(accept, sizeof accept, "Accept: %s", cx->set.legacy_accept);
    snprintf(cidh, sizeof cidh, "X-Correlation-ID: %s", rd->cid);
    struct curl_slist *hdrs = curl_slist_append(NULL, accept);
    struct curl_slist *h2 = hdrs ? curl_slist_append(hdrs, cidh) : NULL;
    if (!h2) {
        curl_slist_free_all(hdrs);
        snprintf(rd->why, sizeof rd->why, "out of memory (headers)");
        return OUT_RETRY;
    }
    hdrs = h2;
    CURLcode sc = CURLE_OK;
#define SETOPT(o, v) \
    if (sc == CURLE_OK) sc = curl_easy_setopt(h, o, v)
    SETOPT(CURLOPT_URL, cx->set.legacy_url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROXY, "");
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_USERAGENT, "sync-service legacy-import/1");
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
    SETOPT(CURLOPT_ACCEPT_ENCODING, "");
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, cx->set.legacy_connect_timeout_ms);
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, 1L);
    SETOPT(CURLOPT_LOW_SPEED_TIME, cx->set.legacy_stall_s);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_BUFFERSIZE, 128L * 1024);
    SETOPT(CURLOPT_WRITEFUNCTION, on_write);
    SETOPT(CURLOPT_WRITEDATA, rd);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    SETOPT(CURLOPT_XFERINFOFUNCTION, on_progress);
    SETOPT(CURLOPT_XFERINFODATA, rd);
#undef SETOPT
    if (sc != CURLE_OK) {
        curl_slist_free_all(hdrs);
        snprintf(rd->why, sizeof rd->why, "curl setup failed: %s", curl_easy_strerror(sc));
        return OUT_FATAL;
    }
    CURLcode cc = curl_easy_perform(h);
    curl_slist_free_all(hdrs);
    curl_off_t ra = 0;
    if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0) rd->retry_after_ms = (long)ra * 1000;

    if (cc == CURLE_OK && !rd->body_started) begin_body(rd);   /* an answer without a body */
    if (cc == CURLE_OK && rd->abort == AB_NONE) {
        int rc = split_finish(&rd->split);
        if (rc == SPLIT_ERR_TRUNCATED) set_abort(rd, AB_FRAMING, "the stream ended before the JSON array was closed");
        else if (rc == SPLIT_ERR_FRAMING) set_abort(rd, AB_FRAMING, "the body is not a JSON array");
        if (rd->abort == AB_NONE && rd->batch.count > 0) flush_batch(rd);
        if (rd->abort == AB_NONE) return OUT_COMPLETE;
    }
    switch (rd->abort) {
    case AB_STOP: return OUT_STOPPING;
    case AB_LEASE: return OUT_LEASE_LOST;
    case AB_STATUS: return retryable_status(rd->http_status) ? OUT_RETRY : OUT_FATAL;
    case AB_CONTENT_TYPE: return OUT_FATAL;
    case AB_FRAMING:
    case AB_STORE: return OUT_RETRY;
    case AB_NONE:
    default:
        /* the transfer itself failed: no answer, a drop, a stall */
        snprintf(rd->why, sizeof rd->why, "legacy stream failed: %s", curl_easy_strerror(cc));
        return OUT_RETRY;
    }
}

/* ------------------------------------------------------------------ the job */

static const char *outcome_name(enum outcome o) {
    switch (o) {
    case OUT_COMPLETE: return "completed";
    case OUT_STOPPING: return "abandoned";
    default: return "failed";
    }
}

/* Ends the attempt in the database (a few tries: losing this write would lose its counters). */
static svc_status end_attempt(struct reader *rd, enum outcome o, char status[SYNC_STATUS_MAX]) {
    struct sync_ctx *cx = rd->cx;
    struct sync_repo_counts n = counts_of(rd);
    svc_status st = SVC_UNAVAILABLE;
    for (int i = 0; i < STORE_TRIES; i++) {
        if (i > 0 && sync_sleep(cx, 200L * i)) break;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) continue;
        st = sync_repo_attempt_end(c, rd->run_id, cx->owner, rd->attempt, cx->set.lease_ttl_ms, outcome_name(o),
                              rd->http_status, o == OUT_COMPLETE ? NULL : rd->why, &n, &rd->errors, status);
        svc_pg_release(cx->app.pg, c);
        if (st == SVC_OK || st == SVC_CONFLICT) break;
    }
    return st;
}

static void log_attempt(struct reader *rd, enum outcome o, long started_ms) {
    struct sync_ctx *cx = rd->cx;
    svc_logf(&cx->app.log, o == OUT_COMPLETE ? SVC_LOG_INFO : SVC_LOG_WARN, rd->cid, "sync: stream attempt ended",
             "{s:s,s:i,s:s,s:I,s:I,s:I,s:I,s:i,s:I,s:s}", "run_id", rd->run_id, "attempt", rd->attempt, "outcome",
             outcome_name(o), "received", (json_int_t)rd->received, "valid", (json_int_t)rd->valid, "invalid",
             (json_int_t)rd->invalid, "duplicates", (json_int_t)rd->duplicates, "http_status", (int)rd->http_status,
             "ms", (json_int_t)(svc_now_ms() - started_ms), "error", o == OUT_COMPLETE ? "" : rd->why);
}

static svc_status fail_run(struct reader *rd, const char *reason) {
    struct sync_ctx *cx = rd->cx;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return st;
    st = sync_repo_run_fail(c, rd->run_id, cx->owner, reason);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_OK) {
        atomic_fetch_add_explicit(cx->m.runs_failed, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, rd->cid, "sync: run failed", "{s:s,s:s}", "run_id", rd->run_id, "reason",
                 reason);
    }
    return st;
}

/* Sleeps before the next attempt, renewing the lease. Returns the outcome to act on:
 * OUT_RETRY to go on, OUT_STOPPING or OUT_LEASE_LOST. */
static enum outcome wait_retry(struct reader *rd, long wait_ms) {
    struct sync_ctx *cx = rd->cx;
    long until = svc_now_ms() + wait_ms;
    for (;;) {
        long left = until - svc_now_ms();
        if (left <= 0) return OUT_RETRY;
        if (sync_sleep(cx, left < rd->renew_every_ms ? left : rd->renew_every_ms)) return OUT_STOPPING;
        svc_status st;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) continue;   /* the lease outlives a short outage; the next attempt re-checks it */
        st = sync_repo_lease_renew(c, rd->run_id, cx->owner, cx->set.lease_ttl_ms, &rd->state);
        svc_pg_release(cx->app.pg, c);
        if (st == SVC_CONFLICT) return OUT_LEASE_LOST;
    }
}

static void release_lease(struct reader *rd) {
    svc_status st;
    PGconn *c = svc_pg_acquire(rd->cx->app.pg, -1, &st);
    if (!c) return;
    sync_repo_lease_release(c, rd->run_id, rd->cx->owner);
    svc_pg_release(rd->cx->app.pg, c);
}

/* The attempt loop once the lease is held. Returns the job result; *why gets the audit error. */
static svc_job_result run_attempts(struct reader *rd, int attempts_done, struct svc_job *job, const char **why) {
    struct sync_ctx *cx = rd->cx;
    *why = NULL;
    for (;;) {
        if (stopping(rd)) {
            release_lease(rd);
            job->retry_delay_ms = 0;
            snprintf(job->error, sizeof job->error, "instance stopping");
            *why = "instance stopping";
            return SVC_JOB_RETRY;
        }
        if (attempts_done >= cx->set.stream_max_attempts) {
            char reason[320];
            snprintf(reason, sizeof reason, "the legacy stream failed %d times; last error: %s", attempts_done,
                     rd->why[0] ? rd->why : "unknown (a previous instance)");
            fail_run(rd, reason);
            *why = "stream attempts exhausted";
            return SVC_JOB_OK;
        }
        svc_status st;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (c) {
            st = sync_repo_attempt_begin(c, rd->run_id, cx->owner, cx->set.lease_ttl_ms, &rd->attempt);
            svc_pg_release(cx->app.pg, c);
        }
        if (st == SVC_CONFLICT) {
            *why = "lease lost";
            return SVC_JOB_OK;
        }
        if (st != SVC_OK) {
            snprintf(job->error, sizeof job->error, "database unavailable at attempt start");
            *why = "database unavailable";
            return SVC_JOB_RETRY;
        }
        long started = svc_now_ms();
        enum outcome o = stream_once(rd);
        attempts_done = rd->attempt;
        log_attempt(rd, o, started);
        if (o == OUT_LEASE_LOST) {
            *why = "lease lost";
            return SVC_JOB_OK;
        }
        char status[SYNC_STATUS_MAX] = "";
        st = end_attempt(rd, o, status);
        if (st == SVC_CONFLICT) {
            *why = "lease lost";
            return SVC_JOB_OK;
        }
        if (st != SVC_OK) {
            /* the lease will expire and the run will be taken over from scratch */
            snprintf(job->error, sizeof job->error, "cannot record the attempt: %s", svc_status_code(st));
            *why = "database unavailable";
            return SVC_JOB_RETRY;
        }
        switch (o) {
        case OUT_COMPLETE:
            atomic_fetch_add_explicit(cx->m.stream_attempts_ok, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(cx->m.records_valid, (unsigned long)rd->valid, memory_order_relaxed);
            atomic_fetch_add_explicit(cx->m.records_invalid, (unsigned long)rd->invalid, memory_order_relaxed);
            atomic_fetch_add_explicit(cx->m.records_duplicate, (unsigned long)rd->duplicates, memory_order_relaxed);
            if (strcmp(status, "COMPLETED") == 0) atomic_fetch_add_explicit(cx->m.runs_completed, 1, memory_order_relaxed);
            svc_logf(&cx->app.log, SVC_LOG_INFO, rd->cid, "sync: stream read", "{s:s,s:s,s:I}", "run_id", rd->run_id,
                     "status", status, "batches", (json_int_t)rd->seq);
            return SVC_JOB_OK;
        case OUT_FATAL:
            atomic_fetch_add_explicit(cx->m.stream_attempts_failed, 1, memory_order_relaxed);
            fail_run(rd, rd->why);
            *why = "unrecoverable legacy error";
            return SVC_JOB_OK;
        case OUT_STOPPING:
            release_lease(rd);
            job->retry_delay_ms = 0;
            snprintf(job->error, sizeof job->error, "instance stopping");
            *why = "instance stopping";
            return SVC_JOB_RETRY;
        default: {
            atomic_fetch_add_explicit(cx->m.stream_attempts_failed, 1, memory_order_relaxed);
            if (attempts_done >= cx->set.stream_max_attempts) continue;   /* fails the run above */
            long wait = (long)svc_backoff_delay_ms(&cx->set.stream_backoff, (unsigned)(attempts_done - 1),
                                               svc_backoff_splitmix64, &rd->rng);
            if (rd->retry_after_ms > wait) wait = rd->retry_after_ms;
            if (wait > (long)cx->set.stream_backoff.cap_ms) wait = (long)cx->set.stream_backoff.cap_ms;
            enum outcome w = wait_retry(rd, wait);
            if (w == OUT_LEASE_LOST) {
                *why = "lease lost";
                return SVC_JOB_OK;
            }
            if (w == OUT_STOPPING) continue;   /* handled at the top of the loop */
        }
        }
    }
}

svc_job_result sync_stream_job(struct svc_job *job, void *arg) {
    struct sync_ctx *cx = arg;
    struct reader *rd = job->thread_ctx;
    if (!rd) {
        snprintf(job->error, sizeof job->error, "no stream reader (out of memory)");
        return SVC_JOB_RETRY;
    }
    if (job->len != SVC_UUID_LEN) {
        snprintf(job->error, sizeof job->error, "malformed payload");
        return SVC_JOB_FAIL;
    }
    memcpy(rd->run_id, job->payload, SVC_UUID_LEN);
    rd->run_id[SVC_UUID_LEN] = 0;
    if (!svc_uuid_is_valid(rd->run_id)) {
        snprintf(job->error, sizeof job->error, "malformed payload");
        return SVC_JOB_FAIL;
    }

    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) {
        snprintf(job->error, sizeof job->error, "database unavailable");
        return SVC_JOB_RETRY;
    }
    struct sync_repo_audit audit = {.queue = SYNC_QUEUE_RUNS, .job_id = job->id, .run_id = rd->run_id,
                               .attempt = job->attempt, .instance = cx->app.instance};
    long long audit_id = 0;
    if (sync_repo_audit_start(c, &audit, &audit_id) != SVC_OK) audit_id = 0;
    char status[SYNC_STATUS_MAX];
    int attempts = 0;
    st = sync_repo_run_claim(c, rd->run_id, cx->owner, cx->set.lease_ttl_ms, rd->cid, status, &attempts);
    svc_pg_release(cx->app.pg, c);

    svc_job_result res;
    const char *why = NULL;
    if (st == SVC_NOT_FOUND) {
        svc_logf(&cx->app.log, SVC_LOG_INFO, NULL, "sync: run not taken (finished, processing or held elsewhere)",
                 "{s:s,s:s}", "run_id", rd->run_id, "status", status[0] ? status : "absent");
        res = SVC_JOB_OK;
    } else if (st != SVC_OK) {
        snprintf(job->error, sizeof job->error, "database unavailable");
        why = "database unavailable";
        res = SVC_JOB_RETRY;
    } else {
        svc_logf(&cx->app.log, SVC_LOG_INFO, rd->cid, "sync: run taken", "{s:s,s:i,s:i}", "run_id", rd->run_id,
                 "previous_attempts", attempts, "job_attempt", job->attempt);
        res = run_attempts(rd, attempts, job, &why);
    }
    if (audit_id > 0 && (c = svc_pg_acquire(cx->app.pg, -1, &st)) != NULL) {
        sync_repo_audit_finish(c, audit_id, res == SVC_JOB_OK ? "completed" : "failed", why);
        svc_pg_release(cx->app.pg, c);
    }
    return res;
}
