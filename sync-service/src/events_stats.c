/* GET /api/events/stats (see events_stats.h). */
#include "events_stats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_list.h"
#include "events_read_repo.h"
#include "events_stream.h"
#include "sync_ctx.h"

#define WINDOW_S 60

/* HGETALL of the stats hash, the last WINDOW_S seconds' rate keys and the stream's state. */
static svc_status read_redis(struct sync_ctx *cx, json_t *types, unsigned long long *batches,
                             unsigned long long *rows, unsigned long long *write_us, unsigned long long *last_min,
                             struct events_stream_state *s) {
    svc_status st;
    redisContext *r = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!r) return st;
    redisReply *h = redisCommand(r, "HGETALL %s", EVENTS_STATS_KEY);
    if (!h) {
        svc_redis_release(cx->app.redis, r);
        return SVC_UNAVAILABLE;
    }
    if (h->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i + 1 < h->elements; i += 2) {
            const char *f = h->element[i]->str;
            unsigned long long v = strtoull(h->element[i + 1]->str ? h->element[i + 1]->str : "0", NULL, 10);
            if (!strcmp(f, "batches")) *batches = v;
            else if (!strcmp(f, "batch_rows")) *rows = v;
            else if (!strcmp(f, "batch_write_us")) *write_us = v;
            else {
                const char *colon = strchr(f, ':');
                if (!colon) continue;
                json_t *t = json_object_get(types, colon + 1);
                char what[16];
                snprintf(what, sizeof what, "%.*s", (int)(colon - f), f);
                if (t && json_object_get(t, what)) json_object_set_new(t, what, json_integer((json_int_t)v));
            }
        }
    }
    freeReplyObject(h);
    long long now_s = events_wall_ms() / 1000;
    const char *argv[WINDOW_S + 1];
    char keys[WINDOW_S][64];
    argv[0] = "MGET";
    for (int i = 0; i < WINDOW_S; i++) {
        snprintf(keys[i], sizeof keys[i], "%s%lld", EVENTS_RATE_KEY_PREFIX, now_s - 1 - i);
        argv[i + 1] = keys[i];
    }
    redisReply *m = redisCommandArgv(r, WINDOW_S + 1, argv, NULL);
    if (m && m->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < m->elements; i++)
            if (m->element[i]->type == REDIS_REPLY_STRING) *last_min += strtoull(m->element[i]->str, NULL, 10);
    if (m) freeReplyObject(m);
    st = m ? events_stream_sample(r, s) : SVC_UNAVAILABLE;
    svc_redis_release(cx->app.redis, r);
    return st;
}

struct svc_result events_stats(struct sync_ctx *cx, const char *cid, const struct svc_principal *who) {
    if (!who->is_admin) return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required");
    json_t *types = json_object();
    for (int t = 0; t < EVENTS_NTYPES; t++)
        json_object_set_new(types, events_type_names[t],
                            json_pack("{s:i,s:i,s:i,s:i}", "accepted", 0, "written", 0, "duplicates", 0, "dead", 0));
    unsigned long long batches = 0, rows = 0, write_us = 0, last_min = 0;
    struct events_stream_state s;
    svc_status st = read_redis(cx, types, &batches, &rows, &write_us, &last_min, &s);
    if (st != SVC_OK) {
        json_decref(types);
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "events: stats: Redis unavailable", "{s:s}", "status",
                 svc_status_code(st));
        return SVC_RESULT_ERR(SVC_UNAVAILABLE, "queue_unavailable", "the event queue is unavailable; retry later");
    }
    json_t *dead = json_null();
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        long long per[EVENTS_NTYPES], total = 0;
        if (events_read_dead_count(c, per, &total) == SVC_OK) dead = json_integer(total);
        svc_pg_release(cx->app.pg, c);
    }
    int64_t lag = s.oldest_ms ? events_wall_ms() - s.oldest_ms : 0;
    json_t *out = json_pack("{s:o,s:f,s:{s:I,s:f,s:f},s:{s:I,s:I},s:o}", "types", types, "events_per_s_1m",
                            (double)last_min / WINDOW_S, "batches", "written", (json_int_t)batches, "avg_size",
                            batches ? (double)rows / (double)batches : 0.0, "avg_write_ms",
                            batches ? (double)write_us / 1000.0 / (double)batches : 0.0, "queue", "depth",
                            (json_int_t)s.depth, "lag_ms", (json_int_t)(lag > 0 ? lag : 0), "dead", dead);
    if (!out) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    return (struct svc_result){.st = SVC_OK, .body = out};
}
