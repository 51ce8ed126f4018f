/* The dashboard's queue views and dead-letter actions (see dash_api.h). */
#include "dash_api.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct svc_result unavailable(struct sync_ctx *cx, const char *cid, svc_status st) {
    svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "dashboard: queue store unavailable", "{s:s}", "status",
             svc_status_code(st));
    if (st == SVC_TIMEOUT || st == SVC_UNAVAILABLE)
        return SVC_RESULT_ERR(SVC_UNAVAILABLE, "queue_unavailable", "the job queue store is unavailable; retry later");
    return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
}

static json_t *counts_json(const struct svc_queue_stats *s) {
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "waiting", (json_int_t)s->waiting, "active",
                     (json_int_t)s->active, "delayed", (json_int_t)s->delayed, "completed",
                     (json_int_t)s->completed, "failed", (json_int_t)s->failed, "dead", (json_int_t)s->dead);
}

/* A handle on a known queue, or NULL with *res set (404 for an unknown name). */
static struct svc_queue *open_known(struct sync_ctx *cx, const char *cid, const char *name, struct svc_result *res) {
    char **names = NULL;
    size_t n = 0;
    svc_status st = svc_queue_known(cx->app.redis, &names, &n);
    if (st != SVC_OK) {
        *res = unavailable(cx, cid, st);
        return NULL;
    }
    bool known = false;
    for (size_t i = 0; i < n && !known; i++) known = name && !strcmp(names[i], name);
    svc_queue_names_free(names, n);
    if (!known) {
        *res = SVC_RESULT_ERR(SVC_NOT_FOUND, "queue_not_found", "no such queue");
        return NULL;
    }
    struct svc_queue_options o = {.name = name};
    struct svc_queue *q = svc_queue_new(cx->app.redis, &o, &cx->app.log, &st);
    if (!q) *res = SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    return q;
}

struct svc_result dash_overview(struct sync_ctx *cx, const char *cid, bool with_chart) {
    char **names = NULL;
    size_t n = 0;
    svc_status st = svc_queue_known(cx->app.redis, &names, &n);
    if (st != SVC_OK) return unavailable(cx, cid, st);
    json_t *list = json_array();
    for (size_t i = 0; list && i < n; i++) {
        struct svc_queue_options o = {.name = names[i]};
        struct svc_queue *q = svc_queue_new(cx->app.redis, &o, &cx->app.log, &st);
        if (!q) continue;   /* a malformed name in the set: skipped */
        struct svc_queue_stats s;
        st = svc_queue_stats(q, &s);
        json_t *item = st == SVC_OK ? counts_json(&s) : NULL;
        if (item && with_chart) {
            struct svc_queue_minute m[DASH_CHART_MINUTES];
            st = svc_queue_minutes(q, DASH_CHART_MINUTES, m);
            json_t *chart = json_array();
            for (int k = 0; st == SVC_OK && chart && k < DASH_CHART_MINUTES; k++)
                json_array_append_new(chart, json_pack("{s:I,s:I,s:I}", "minute", (json_int_t)m[k].minute_ms, "completed",
                                                       (json_int_t)m[k].completed, "failed", (json_int_t)m[k].failed));
            if (st == SVC_OK) json_object_set_new(item, "chart", chart);
            else json_decref(chart);
        }
        svc_queue_free(q);
        if (st != SVC_OK) {
            json_decref(item);
            json_decref(list);
            svc_queue_names_free(names, n);
            return unavailable(cx, cid, st);
        }
        json_object_set_new(item, "name", json_string(names[i]));
        json_array_append_new(list, item);
    }
    svc_queue_names_free(names, n);
    if (!list) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    struct svc_result r = {.st = SVC_OK,
                           .body = json_pack("{s:o,s:I}", "queues", list, "generated_at", (json_int_t)time(NULL) * 1000)};
    return r;
}

struct svc_result dash_queue_jobs(struct sync_ctx *cx, const char *cid, const char *queue) {
    struct svc_result res;
    struct svc_queue *q = open_known(cx, cid, queue, &res);
    if (!q) return res;
    struct svc_queue_job_info *jobs = NULL;
    struct svc_dead_job *dead = NULL;
    size_t nj = 0, nd = 0;
    svc_status st = svc_queue_recent(q, 50, &jobs, &nj);
    if (st == SVC_OK) st = svc_queue_dead_list(q, NULL, 100, &dead, &nd);
    svc_queue_free(q);
    if (st != SVC_OK) {
        free(jobs);
        return unavailable(cx, cid, st);
    }
    json_t *recent = json_array(), *dl = json_array();
    for (size_t i = 0; i < nj; i++)
        json_array_append_new(recent, json_pack("{s:s,s:s,s:i,s:i,s:I,s:s,s:s?}", "entry_id", jobs[i].entry_id, "id",
                                                jobs[i].id, "attempts", jobs[i].attempts, "max_attempts",
                                                jobs[i].max_attempts, "enqueued_at", (json_int_t)jobs[i].enqueued_ms,
                                                "state", jobs[i].running ? "active" : "waiting", "last_error",
                                                jobs[i].error[0] ? jobs[i].error : NULL));
    for (size_t i = 0; i < nd; i++)
        json_array_append_new(dl, json_pack("{s:s,s:s,s:i,s:I,s:s}", "entry_id", dead[i].entry_id, "id", dead[i].id,
                                            "attempts", dead[i].attempts, "failed_at", (json_int_t)dead[i].failed_ms,
                                            "last_error", dead[i].error));
    free(jobs);
    svc_queue_dead_list_free(dead);
    struct svc_result r = {.st = SVC_OK, .body = json_pack("{s:s,s:o,s:o}", "queue", queue, "recent", recent, "dead", dl)};
    return r;
}

struct svc_result dash_dead_action(struct sync_ctx *cx, const char *cid, const char *queue, const char *action,
                                   const char *id) {
    struct svc_result res;
    struct svc_queue *q = open_known(cx, cid, queue, &res);
    if (!q) return res;
    int moved = 0;
    svc_status st;
    if (!strcmp(action, "retry-all")) {
        st = svc_queue_dead_requeue_all(q, 10000, &moved);
    } else {
        st = !strcmp(action, "retry") ? svc_queue_dead_requeue(q, id) : svc_queue_dead_remove(q, id);
        moved = st == SVC_OK;
    }
    struct svc_queue_stats s;
    if (st == SVC_OK) st = svc_queue_stats(q, &s);
    svc_queue_free(q);
    if (st == SVC_INVALID || st == SVC_NOT_FOUND) {
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "job_not_found", "no such dead job in this queue");
    }
    if (st != SVC_OK) return unavailable(cx, cid, st);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "dashboard: dead-letter action", "{s:s,s:s,s:i}", "queue", queue,
             "action", action, "moved", moved);
    struct svc_result r = {.st = SVC_OK,
                           .body = json_pack("{s:s,s:i,s:o}", "queue", queue, "moved", moved, "counts", counts_json(&s))};
    return r;
}
