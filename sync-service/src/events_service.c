/* Event ingestion's settings, threads and their lifecycle (see events_service.h). */
#include "events_service.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "events_consumer.h"
#include "events_ingest.h"
#include "events_maint.h"
#include "events_repo.h"
#include "sync_ctx.h"

int64_t events_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t events_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool events_sleep(struct events_rt *ev, long ms) {
    if (atomic_load(&ev->stopping)) return false;
    if (ms <= 0) return true;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&ev->mu);
    while (!atomic_load(&ev->stopping))
        if (pthread_cond_timedwait(&ev->cv, &ev->mu, &until) == ETIMEDOUT) break;
    pthread_mutex_unlock(&ev->mu);
    return !atomic_load(&ev->stopping);
}

void events_service_configure(struct events_rt *ev, struct svc_config *c) {
    struct events_settings *s = &ev->set;
    s->batch_max = svc_config_int(c, "EVENTS_BATCH_MAX", 1000, 1, 10000);
    s->flush_ms = svc_config_int(c, "EVENTS_FLUSH_MS", 1000, 1, 600000);
    s->read_gather_ms = svc_config_int(c, "EVENTS_READ_GATHER_MS", 50, 0, 1000);
    s->max_retries = svc_config_int(c, "EVENTS_MAX_RETRIES", 3, 0, 100);
    s->retry_backoff.base_ms = (uint32_t)svc_config_int(c, "EVENTS_RETRY_BASE_MS", 200, 1, 600000);
    s->retry_backoff.cap_ms = (uint32_t)svc_config_int(c, "EVENTS_RETRY_CAP_MS", 5000, 1, 3600000);
    if (s->retry_backoff.cap_ms < s->retry_backoff.base_ms) s->retry_backoff.cap_ms = s->retry_backoff.base_ms;
    s->consumers = svc_config_int(c, "EVENTS_CONSUMERS", 1, 0, 64);
    s->visibility_ms = svc_config_int(c, "EVENTS_VISIBILITY_MS", 30000, 500, 3600000);
    s->retention_days = svc_config_int(c, "EVENTS_RETENTION_DAYS", 90, 1, 3650);
    s->partitions_ahead = svc_config_int(c, "EVENTS_PARTITIONS_AHEAD_DAYS", 3, 2, 366);
    s->maintenance_s = svc_config_int(c, "EVENTS_MAINTENANCE_INTERVAL_S", 3600, 1, 86400);
    s->queue_high_water = svc_config_int(c, "EVENTS_QUEUE_HIGH_WATER", 1000000, 1, 1000000000L);
    s->memory_high_water = svc_config_int(c, "EVENTS_REDIS_MEMORY_HIGH_WATER", 0, 0, 1L << 50);
    s->busy_retry_after_s = svc_config_int(c, "EVENTS_BUSY_RETRY_AFTER_S", 5, 1, 3600);
    s->rate_per_s = svc_config_int(c, "EVENTS_RATE_PER_S", 1000, 1, 10000000);
    s->rate_burst = svc_config_int(c, "EVENTS_RATE_BURST", 2000, EVENTS_BATCH_CAP, 100000000);
    s->write_timeout_ms = svc_config_int(c, "EVENTS_WRITE_TIMEOUT_MS", 30000, 100, 3600000);
    s->append_batch_max = svc_config_int(c, "EVENTS_APPEND_BATCH_MAX", 64, 1, SVC_COMBINER_BATCH_CAP);
    s->append_leaders = svc_config_int(c, "EVENTS_APPEND_LEADERS", 1, 1, 64);
    events_metrics_init(&ev->m);
    events_rl_init(&ev->rl, s->rate_per_s, s->rate_burst);
    pthread_mutex_init(&ev->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ev->cv, &ca);
    pthread_condattr_destroy(&ca);
}

static int writer_on_connect(PGconn *c, void *arg) {
    (void)arg;
    return events_repo_prepare(c);
}

int events_service_start(struct sync_ctx *cx) {
    struct events_rt *ev = &cx->ev;
    if (ev->set.append_batch_max > 1) {
        ev->appender = svc_combiner_new((int)ev->set.append_leaders, (int)ev->set.append_batch_max,
                                        events_ingest_append_exec, cx);
        if (!ev->appender) return -1;
    }
    if (ev->set.consumers > 0) {
        struct svc_pg_config pc = cx->app.pg_cfg;
        pc.size = (int)ev->set.consumers;
        pc.statement_timeout_ms = (int)ev->set.write_timeout_ms;
        pc.application_name = "sync-events-writer";
        pc.on_connect = writer_on_connect;
        pc.on_connect_arg = NULL;
        ev->writers = svc_pg_pool_new(&pc);
        if (!ev->writers) return -1;
    }
    events_maintain_partitions(cx);   /* PostgreSQL may be away: the writers retry it when they need it */
    ev->consumers = NULL;
    if (ev->set.consumers > 0) {
        ev->consumers = calloc((size_t)ev->set.consumers, sizeof *ev->consumers);
        if (!ev->consumers) return -1;
    }
    for (int i = 0; i < ev->set.consumers; i++) {
        ev->consumers[i] = events_consumer_start(cx, i + 1);
        if (!ev->consumers[i]) return -1;
        ev->nconsumers = i + 1;
    }
    if (pthread_create(&ev->maint, NULL, events_maint_main, cx) != 0) return -1;
    ev->maint_started = true;
    svc_logf(&cx->app.log, SVC_LOG_INFO, NULL, "events: ingestion started", "{s:i,s:i,s:i}", "consumers",
             (int)ev->set.consumers, "batch_max", (int)ev->set.batch_max, "flush_ms", (int)ev->set.flush_ms);
    return 0;
}

void events_service_stop(struct sync_ctx *cx) {
    struct events_rt *ev = &cx->ev;
    pthread_mutex_lock(&ev->mu);
    atomic_store(&ev->stopping, true);
    pthread_cond_broadcast(&ev->cv);
    pthread_mutex_unlock(&ev->mu);
    for (int i = 0; i < ev->nconsumers; i++) events_consumer_join(ev->consumers[i]);
    free(ev->consumers);
    ev->consumers = NULL;
    ev->nconsumers = 0;
    if (ev->maint_started) pthread_join(ev->maint, NULL);
    ev->maint_started = false;
    events_report_accepted(cx);
    svc_pg_pool_free(ev->writers);
    ev->writers = NULL;
}

void events_service_free(struct events_rt *ev) {
    svc_combiner_free(ev->appender);   /* HTTP has stopped: no request can be inside it */
    ev->appender = NULL;
    events_rl_free(&ev->rl);
    pthread_cond_destroy(&ev->cv);
    pthread_mutex_destroy(&ev->mu);
}
