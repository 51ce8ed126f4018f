/* Event ingestion's maintenance thread (see events_maint.h). */
#include "events_maint.h"

#include <stdlib.h>

#include "events_repo.h"
#include "events_stream.h"
#include "sync_ctx.h"

#define SAMPLE_MS 200
#define REPORT_MS 1000

int events_maintain_partitions(struct sync_ctx *cx) {
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return -1;
    int created = 0, dropped = 0;
    struct events_write_error err = {0};
    enum events_outcome o =
        events_repo_maintain(c, cx->ev.set.partitions_ahead, cx->ev.set.retention_days, &created, &dropped, &err);
    svc_pg_release(cx->app.pg, c);
    if (o != EVENTS_W_OK) {
        svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "events: partition maintenance failed", "{s:s,s:s}", "sqlstate",
                 err.sqlstate, "error", err.message);
        return -1;
    }
    if (created || dropped)
        svc_logf(&cx->app.log, SVC_LOG_INFO, NULL, "events: partitions maintained", "{s:i,s:i,s:i}", "created", created,
                 "dropped", dropped, "retention_days", (int)cx->ev.set.retention_days);
    return 0;
}

static void sample(struct sync_ctx *cx) {
    struct events_rt *ev = &cx->ev;
    svc_status st;
    redisContext *r = svc_redis_acquire(cx->app.redis, 500, &st);
    if (!r) return;
    struct events_stream_state s;
    st = events_stream_sample(r, &s);
    svc_redis_release(cx->app.redis, r);
    if (st != SVC_OK) return;
    int64_t lag = s.oldest_ms ? events_wall_ms() - s.oldest_ms : 0;
    atomic_store_explicit(&ev->m.queue_depth, s.depth, memory_order_relaxed);
    atomic_store_explicit(&ev->m.queue_lag_ms, lag > 0 ? lag : 0, memory_order_relaxed);
    atomic_store_explicit(&ev->m.redis_used_memory, s.used_memory, memory_order_relaxed);
    long long mem_mark = ev->set.memory_high_water;
    if (!mem_mark && s.maxmemory > 0) mem_mark = s.maxmemory / 10 * 9;
    bool busy = s.depth >= ev->set.queue_high_water || (mem_mark > 0 && s.used_memory >= mem_mark);
    bool was = atomic_exchange(&ev->m.backpressure, busy);
    if (busy != was)
        svc_logf(&cx->app.log, busy ? SVC_LOG_WARN : SVC_LOG_INFO, NULL,
                 busy ? "events: over a high-water mark, answering 503" : "events: below the high-water marks again",
                 "{s:I,s:I,s:I}", "depth", (json_int_t)s.depth, "used_memory", (json_int_t)s.used_memory,
                 "memory_high_water", (json_int_t)mem_mark);
}

void events_report_accepted(struct sync_ctx *cx) {
    struct events_rt *ev = &cx->ev;
    unsigned long k[EVENTS_NTYPES], total = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) {
        k[t] = atomic_exchange_explicit(&ev->unreported[t], 0, memory_order_relaxed);
        total += k[t];
    }
    if (!total) return;
    svc_status st;
    redisContext *r = svc_redis_acquire(cx->app.redis, 500, &st);
    if (r) {
        st = events_stream_count_accepted(r, k, events_wall_ms() / 1000);
        svc_redis_release(cx->app.redis, r);
    }
    if (!r || st != SVC_OK)   /* keep them for the next report */
        for (int t = 0; t < EVENTS_NTYPES; t++) atomic_fetch_add_explicit(&ev->unreported[t], k[t], memory_order_relaxed);
}

void *events_maint_main(void *arg) {
    struct sync_ctx *cx = arg;
    struct events_rt *ev = &cx->ev;
    int64_t last_report = events_mono_ms(), last_parts = events_mono_ms();
    while (!atomic_load(&ev->stopping)) {
        sample(cx);
        int64_t now = events_mono_ms();
        if (now - last_report >= REPORT_MS) {
            events_report_accepted(cx);
            last_report = now;
        }
        if (now - last_parts >= ev->set.maintenance_s * 1000) {
            events_maintain_partitions(cx);
            last_parts = now;
        }
        events_sleep(ev, SAMPLE_MS);
    }
    return NULL;
}
