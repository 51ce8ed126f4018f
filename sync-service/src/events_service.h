/* Event ingestion inside sync-service: its state in the service context, and starting and
 * stopping its threads (main.c wiring).
 *
 * Threads: EVENTS_CONSUMERS consumer threads (events_consumer.c), each with its own Redis
 * connection (a blocking XREADGROUP would hold a pooled one) and its own PostgreSQL connection
 * from the writers' pool (a batch may hold it for a while; the handlers' pool stays free), and
 * one maintenance thread (events_maint.c): it samples the stream for backpressure and the gauges
 * every 200 ms, adds the accepted counters to Redis every second, and creates and drops
 * partitions at start and every EVENTS_MAINTENANCE_INTERVAL_S.
 *
 * Stop (SIGTERM): svc_app stops taking requests and drains the handlers first; then
 * events_service_stop sets the stop flag: each consumer writes and acknowledges what it holds,
 * reads nothing more and exits; the maintenance thread adds the last counters. A consumer that
 * cannot write (PostgreSQL down) gives up at once and leaves its entries pending for the next
 * start or another instance (visibility timeout).
 *
 * Synchronisation: settings are read-only after start; the rest is atomics, the rate limiter's
 * own locks and mu/cv for the interruptible sleeps. */
#ifndef EVENTS_SERVICE_H
#define EVENTS_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "events.h"
#include "events_metrics.h"
#include "events_ratelimit.h"
#include "svc/combiner.h"
#include "svc/config.h"
#include "svc/pg.h"

struct sync_ctx;
struct events_consumer;

struct events_rt {
    struct events_settings set;
    struct events_metrics m;
    struct events_ratelimit rl;
    struct svc_pg_pool *writers;         /* one connection per consumer */
    struct svc_combiner *appender;       /* concurrent requests' XADDs, one pipeline (events_ingest.c) */
    struct events_consumer **consumers;
    int nconsumers;
    pthread_t maint;
    bool maint_started;
    atomic_bool stopping;
    pthread_mutex_t mu;                  /* with cv: interruptible sleeps */
    pthread_cond_t cv;
    atomic_ulong unreported[EVENTS_NTYPES]; /* accepted, not yet added to the Redis stats */
    atomic_llong last_redis_warn_ms;     /* handlers log a Redis failure at most once a second */
};

/* Reads the EVENTS_* settings (errors collected in cfg) and initialises the state. */
void events_service_configure(struct events_rt *ev, struct svc_config *cfg);
/* Creates the writers' pool, runs the partition maintenance once (when PostgreSQL is up) and
 * starts the threads. 0, or -1 (logged). */
int events_service_start(struct sync_ctx *cx);
/* Stops and joins the threads (see above); then frees what start created. Safe if never started. */
void events_service_stop(struct sync_ctx *cx);
void events_service_free(struct events_rt *ev);

/* Sleeps ms unless stopping; false when the service is stopping. */
bool events_sleep(struct events_rt *ev, long ms);

/* Monotonic and wall-clock milliseconds. */
int64_t events_mono_ms(void);
int64_t events_wall_ms(void);

#endif
