/* Dead letters: list and replay (see events_dead.h). */
#include "events_dead.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_list.h"
#include "events_read_repo.h"
#include "events_stream.h"
#include "events_validate.h"
#include "svc/pg_array.h"
#include "sync_ctx.h"

#define FORBIDDEN SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required")
#define TYPE_REASON "must be one of view, purchase, add_to_cart, remove_from_cart, login, logout, search"
#define TIME_REASON "must be an RFC 3339 date-time with a time zone"

struct svc_result events_dead_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                   const struct events_dead_query *q) {
    if (!who->is_admin) return FORBIDDEN;
    json_t *fields = json_object();
    if (!fields) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    struct svc_page page;
    svc_page_parse(&events_dead_kind, &q->page, &page, fields);
    if (q->type && events_type_index(q->type) < 0) svc_query_reason(fields, "type", TYPE_REASON);
    const char *status = q->status ? q->status : "outstanding";
    if (strcmp(status, "outstanding") != 0 && strcmp(status, "replayed") != 0 && strcmp(status, "all") != 0)
        svc_query_reason(fields, "status", "must be outstanding, replayed or all");
    char from[40], to[40];
    if (q->from && !events_query_time(q->from, from)) svc_query_reason(fields, "from", TIME_REASON);
    if (q->to && !events_query_time(q->to, to)) svc_query_reason(fields, "to", TIME_REASON);
    if (json_object_size(fields) > 0) return svc_query_invalid(fields);
    json_decref(fields);
    struct events_dead_filter f = {.type = q->type, .from = q->from ? from : NULL, .to = q->to ? to : NULL,
                                   .status = status};
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return events_db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = events_read_dead(c, &f, &page, &json);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return events_db_error(cx, cid, "list dead letters", st);
    return (struct svc_result){.st = SVC_OK, .raw = json};
}

/* The replay request: ids as a uuid[] literal, or the filter. False after filling fields. */
struct replay_req {
    struct svc_buf ids;    /* "{…}" or empty */
    const char *type;
    char from[40], to[40];
    bool has_from, has_to;
    int limit;
};

static bool parse_replay(const json_t *body, struct replay_req *q, json_t *fields) {
    const char *key;
    json_t *v;
    q->limit = EVENTS_BATCH_CAP;
    json_object_foreach((json_t *)body, key, v) {
        if (!strcmp(key, "ids")) {
            size_t n = json_array_size(v);
            if (!json_is_array(v) || n < 1 || n > EVENTS_BATCH_CAP) {
                json_object_set_new(fields, key, json_string("must be an array of 1 to 500 event ids"));
                continue;
            }
            svc_pg_array_open(&q->ids);
            for (size_t i = 0; i < n; i++) {
                const char *s = json_string_value(json_array_get(v, i));
                if (!s || !svc_uuid_is_valid(s)) {
                    json_object_set_new(fields, key, json_string("must be an array of 1 to 500 event ids"));
                    break;
                }
                svc_pg_array_text(&q->ids, s);
            }
            svc_pg_array_close(&q->ids);
        } else if (!strcmp(key, "type")) {
            q->type = json_string_value(v);
            if (!q->type || events_type_index(q->type) < 0) json_object_set_new(fields, key, json_string(TYPE_REASON));
        } else if (!strcmp(key, "from") || !strcmp(key, "to")) {
            bool from = !strcmp(key, "from");
            const char *s = json_string_value(v);
            if (!s || !events_query_time(s, from ? q->from : q->to)) json_object_set_new(fields, key, json_string(TIME_REASON));
            else if (from) q->has_from = true;
            else q->has_to = true;
        } else if (!strcmp(key, "limit")) {
            json_int_t l = json_is_integer(v) ? json_integer_value(v) : 0;
            if (l < 1 || l > EVENTS_BATCH_CAP) json_object_set_new(fields, key, json_string("must be an integer from 1 to 500"));
            else q->limit = (int)l;
        } else {
            json_object_set_new(fields, key, json_string("unknown field"));
        }
    }
    bool by_ids = json_object_get(body, "ids") != NULL;
    bool by_filter = json_object_get(body, "type") || json_object_get(body, "from") || json_object_get(body, "to");
    if (by_ids && by_filter) json_object_set_new(fields, "ids", json_string("give either ids or a filter, not both"));
    if (!by_ids && !by_filter && json_object_size(fields) == 0)
        json_object_set_new(fields, "ids", json_string("give ids, or a filter (type, from, to)"));
    return json_object_size(fields) == 0 && !q->ids.oom;
}

struct svc_result events_dead_replay(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                     const json_t *body) {
    if (!who->is_admin) return FORBIDDEN;
    struct replay_req q = {0};
    svc_buf_init(&q.ids);
    json_t *fields = json_object();
    if (!fields) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    if (!parse_replay(body, &q, fields)) {
        svc_buf_free(&q.ids);
        struct svc_result r = SVC_RESULT_ERR(SVC_UNPROCESSABLE, "validation_failed", "some fields are invalid");
        r.details = json_pack("{s:o}", "fields", fields);
        return r;
    }
    json_decref(fields);

    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) {
        svc_buf_free(&q.ids);
        return events_db_error(cx, cid, "acquire", st);
    }
    PGresult *rows = NULL;
    st = events_read_replay_begin(c, q.ids.len ? q.ids.data : NULL, q.type, q.has_from ? q.from : NULL,
                                  q.has_to ? q.to : NULL, q.limit, &rows);
    svc_buf_free(&q.ids);
    if (st != SVC_OK) {
        svc_pg_release(cx->app.pg, c);
        return events_db_error(cx, cid, "replay dead letters", st);
    }
    int n = PQntuples(rows);
    svc_status qs = SVC_OK;
    if (n > 0) {
        struct events_outbox *box = malloc(sizeof *box);
        redisContext *r = box ? svc_redis_acquire(cx->app.redis, -1, &qs) : NULL;
        if (!box) qs = SVC_INTERNAL;
        if (r) {
            svc_buf_init(&box->buf);
            box->n = 0;
            for (int i = 0; i < n; i++) {
                box->off[i] = box->buf.len;
                svc_buf_puts(&box->buf, PQgetvalue(rows, i, 1));
                box->len[i] = box->buf.len - box->off[i];
                box->type[i] = -1;
                box->n++;
            }
            qs = box->buf.oom ? SVC_INTERNAL : events_stream_append(r, box);
            svc_redis_release(cx->app.redis, r);
            svc_buf_free(&box->buf);
        }
        free(box);
    }
    if (qs != SVC_OK) {
        events_read_replay_end(c, false);
        svc_pg_release(cx->app.pg, c);
        PQclear(rows);
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "events: replay could not reach the stream", "{s:s}", "status",
                 svc_status_code(qs));
        struct svc_result r =
            SVC_RESULT_ERR(SVC_UNAVAILABLE, "queue_unavailable", "the event queue is unavailable; retry later");
        r.retry_after_s = 1;
        return r;
    }
    st = events_read_replay_end(c, true);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK)   /* the events are queued again; their dead letters still show: a new replay is harmless */
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "events: replayed, but marking the dead letters failed", "{s:i}",
                 "events", n);
    json_t *ids = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(ids, json_string(PQgetvalue(rows, i, 0)));
    PQclear(rows);
    bool more = !json_object_get(body, "ids") && n == q.limit;
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "events: dead letters replayed", "{s:i}", "events", n);
    json_t *out = json_pack("{s:i,s:o,s:b}", "replayed", n, "ids", ids, "has_more", more);
    if (!out) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    return (struct svc_result){.st = SVC_OK, .body = out};
}
