/* POST /api/events and /api/events/batch (see events_ingest.h). */
#include "events_ingest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_codec.h"
#include "events_stream.h"
#include "events_validate.h"
#include "svc/combiner.h"
#include "sync_ctx.h"

static struct svc_result busy(struct events_rt *ev) {
    struct svc_result r = SVC_RESULT_ERR(SVC_UNAVAILABLE, "events_backlogged",
                                         "too many events are waiting to be written; retry later");
    r.retry_after_s = (unsigned)ev->set.busy_retry_after_s;
    return r;
}

static struct svc_result unavailable(void) {
    struct svc_result r =
        SVC_RESULT_ERR(SVC_UNAVAILABLE, "queue_unavailable", "the event queue is unavailable; retry later");
    r.retry_after_s = 1;
    return r;
}

/* The rate limit for n events; false with the 429 in *res. */
static bool rate_ok(struct events_rt *ev, const struct svc_principal *who, long n, struct svc_result *res) {
    int64_t wait_us = 0;
    if (events_rl_take(&ev->rl, who->sub, n, events_wall_ms() * 1000, &wait_us)) return true;
    *res = SVC_RESULT_ERR(SVC_RATE_LIMITED, "rate_limited", "too many events from this client; retry later");
    long s = (long)((wait_us + 999999) / 1000000);
    res->retry_after_s = (unsigned)(s < 1 ? 1 : s);
    return false;
}

static void count_rejected(struct events_rt *ev, const json_t *event, int reason) {
    const json_t *t = json_is_object(event) ? json_object_get(event, "eventType") : NULL;
    int type = json_is_string(t) ? events_type_index(json_string_value(t)) : -1;
    atomic_fetch_add_explicit(&ev->m.rejected[type < 0 ? EVENTS_TYPE_UNKNOWN : type][reason], 1,
                              memory_order_relaxed);
}

static void count_accepted(struct events_rt *ev, int type) {
    atomic_fetch_add_explicit(&ev->m.accepted[type], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ev->unreported[type], 1, memory_order_relaxed);
}

/* While Redis is away every request fails the same way: one log line a second says so. */
static bool warn_now(struct events_rt *ev) {
    long long now = events_mono_ms(), last = atomic_load_explicit(&ev->last_redis_warn_ms, memory_order_relaxed);
    return now - last >= 1000 &&
           atomic_compare_exchange_strong_explicit(&ev->last_redis_warn_ms, &last, now, memory_order_relaxed,
                                                   memory_order_relaxed);
}

struct append_job {
    const struct events_outbox *box;
    svc_status st;
};

void events_ingest_append_exec(void *ctx, struct svc_combiner_item **items, int n) {
    struct sync_ctx *cx = ctx;
    svc_status st;
    redisContext *r = svc_redis_acquire(cx->app.redis, -1, &st);
    for (int i = 0; i < n; i++) {
        struct append_job *j = items[i]->data;
        j->st = st;
        if (r) events_stream_queue(r, j->box);
    }
    if (r) {
        for (int i = 0; i < n; i++) {
            struct append_job *j = items[i]->data;
            j->st = events_stream_collect(r, j->box);
        }
        svc_redis_release(cx->app.redis, r);
    }
    atomic_fetch_add_explicit(&cx->ev.m.append_pipelines, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&cx->ev.m.append_requests, (unsigned long)n, memory_order_relaxed);
}

static svc_status append(struct sync_ctx *cx, const char *cid, const struct events_outbox *box) {
    struct append_job job = {.box = box, .st = SVC_INTERNAL};
    struct svc_combiner_item it = {.data = &job, .group = NULL};
    struct svc_combiner_item *one = &it;
    if (cx->ev.appender) svc_combiner_submit(cx->ev.appender, &it);
    else events_ingest_append_exec(cx, &one, 1);
    if (job.st != SVC_OK && warn_now(&cx->ev))
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "events: cannot append to the stream (answering 503)", "{s:s,s:i}",
                 "status", svc_status_code(job.st), "events", box->n);
    return job.st;
}

static struct svc_result invalid(json_t *fields) {
    struct svc_result r = SVC_RESULT_ERR(SVC_UNPROCESSABLE, "validation_failed", "some fields are invalid");
    r.details = json_pack("{s:o}", "fields", fields);
    return r;
}

#define FORBIDDEN_MESSAGE "userId may name another user only with an admin or service token"

struct svc_result events_ingest_one(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                    const json_t *body) {
    struct events_rt *ev = &cx->ev;
    struct svc_result res;
    if (atomic_load_explicit(&ev->m.backpressure, memory_order_relaxed)) {
        count_rejected(ev, body, EVENTS_REJECT_UNAVAILABLE);
        return busy(ev);
    }
    if (!rate_ok(ev, who, 1, &res)) {
        count_rejected(ev, body, EVENTS_REJECT_RATE_LIMITED);
        return res;
    }
    struct events_rules rules = {.now_ms = events_wall_ms(),
                                 .retention_days = ev->set.retention_days,
                                 .max_data_bytes = EVENTS_DATA_MAX};
    struct event_rec rec;
    json_t *fields = NULL;
    svc_status st = events_validate(body, who, &rules, &rec, &fields);
    if (st == SVC_UNPROCESSABLE) {
        count_rejected(ev, body, EVENTS_REJECT_INVALID);
        return invalid(fields);
    }
    if (st == SVC_FORBIDDEN) {
        count_rejected(ev, body, EVENTS_REJECT_FORBIDDEN);
        return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", FORBIDDEN_MESSAGE);
    }
    if (st != SVC_OK) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");

    struct events_outbox box;
    svc_buf_init(&box.buf);
    events_encode(&rec, &box.buf);
    box.off[0] = 0;
    box.len[0] = box.buf.len;
    box.type[0] = rec.type;
    box.n = 1;
    st = box.buf.oom ? SVC_INTERNAL : append(cx, cid, &box);
    svc_buf_free(&box.buf);
    if (st != SVC_OK) {
        count_rejected(ev, body, EVENTS_REJECT_UNAVAILABLE);
        events_rec_clear(&rec);
        return st == SVC_INTERNAL ? SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error") : unavailable();
    }
    count_accepted(ev, rec.type);
    char *raw = malloc(80);
    if (raw) snprintf(raw, 80, "{\"status\":\"accepted\",\"id\":\"%.36s\"}", rec.id);
    events_rec_clear(&rec);
    if (!raw) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    res = (struct svc_result){.st = SVC_OK, .raw = raw};
    return res;
}

static json_t *rejected_item(int index, const char *code, const char *message, json_t *details) {
    return json_pack("{s:i,s:s,s:{s:s,s:s,s:o}}", "index", index, "status", "rejected", "error", "code", code,
                     "message", message, "details", details ? details : json_null());
}

struct svc_result events_ingest_batch(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                      const json_t *body) {
    struct events_rt *ev = &cx->ev;
    struct svc_result res;
    const json_t *events = json_object_get(body, "events");
    const char *key;
    json_t *v;
    json_t *fields = json_object();
    if (!fields) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    json_object_foreach((json_t *)body, key, v)
        if (strcmp(key, "events") != 0) json_object_set_new(fields, key, json_string("unknown field"));
    if (!json_is_array(events) || json_array_size(events) < 1 || json_array_size(events) > EVENTS_BATCH_CAP)
        json_object_set_new(fields, "events", json_string("must be an array of 1 to 500 events"));
    if (json_object_size(fields) > 0) return invalid(fields);
    json_decref(fields);
    size_t n = json_array_size(events);

    if (atomic_load_explicit(&ev->m.backpressure, memory_order_relaxed)) {
        for (size_t i = 0; i < n; i++) count_rejected(ev, json_array_get(events, i), EVENTS_REJECT_UNAVAILABLE);
        return busy(ev);
    }
    if (!rate_ok(ev, who, (long)n, &res)) {
        for (size_t i = 0; i < n; i++) count_rejected(ev, json_array_get(events, i), EVENTS_REJECT_RATE_LIMITED);
        return res;
    }

    struct events_rules rules = {.now_ms = events_wall_ms(),
                                 .retention_days = ev->set.retention_days,
                                 .max_data_bytes = EVENTS_DATA_MAX};
    struct events_outbox *box = malloc(sizeof *box);
    json_t *results = json_array();
    char (*ids)[SVC_UUID_LEN + 1] = calloc(n, sizeof *ids);
    if (!box || !results || !ids) {
        free(box);
        json_decref(results);
        free(ids);
        return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    }
    svc_buf_init(&box->buf);
    box->n = 0;
    int accepted_at[EVENTS_BATCH_CAP];
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(events, i);
        struct event_rec rec;
        json_t *f = NULL;
        svc_status st = events_validate(e, who, &rules, &rec, &f);
        if (st == SVC_OK) {
            size_t before = box->buf.len;
            events_encode(&rec, &box->buf);
            box->off[box->n] = before;
            box->len[box->n] = box->buf.len - before;
            box->type[box->n] = rec.type;
            accepted_at[box->n] = (int)i;
            memcpy(ids[i], rec.id, sizeof ids[i]);
            box->n++;
            json_array_append_new(results, json_null());   /* filled once the append succeeded */
            events_rec_clear(&rec);
        } else if (st == SVC_FORBIDDEN) {
            count_rejected(ev, e, EVENTS_REJECT_FORBIDDEN);
            json_array_append_new(results, rejected_item((int)i, "forbidden", FORBIDDEN_MESSAGE, NULL));
        } else if (st == SVC_UNPROCESSABLE) {
            count_rejected(ev, e, EVENTS_REJECT_INVALID);
            json_array_append_new(results, rejected_item((int)i, "validation_failed", "some fields are invalid",
                                                         json_pack("{s:o}", "fields", f)));
        } else {
            json_array_append_new(results, rejected_item((int)i, "internal_error", "internal error", NULL));
        }
    }
    svc_status st = box->buf.oom ? SVC_INTERNAL : append(cx, cid, box);
    if (st != SVC_OK) {
        for (int k = 0; k < box->n; k++) count_rejected(ev, json_array_get(events, (size_t)accepted_at[k]),
                                                       EVENTS_REJECT_UNAVAILABLE);
        svc_buf_free(&box->buf);
        free(box);
        free(ids);
        json_decref(results);
        return st == SVC_INTERNAL ? SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error") : unavailable();
    }
    for (int k = 0; k < box->n; k++) {
        int i = accepted_at[k];
        count_accepted(ev, box->type[k]);
        json_array_set_new(results, (size_t)i, json_pack("{s:i,s:s,s:s}", "index", i, "status", "accepted", "id", ids[i]));
    }
    json_t *out = json_pack("{s:i,s:i,s:o}", "accepted", box->n, "rejected", (int)n - box->n, "results", results);
    svc_buf_free(&box->buf);
    free(box);
    free(ids);
    if (!out) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    res = (struct svc_result){.st = SVC_OK, .body = out};
    return res;
}
