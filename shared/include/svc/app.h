/* The service context shared by all three services: configuration, logger, pools, metrics, routes
 * and the HTTP server lifecycle (start, serve, graceful stop).
 *
 * A service embeds struct svc_app as the first member of its own context struct and reaches its
 * own state from handlers with svc_app_service(r->app). This is the only mutable state a service
 * has; it is built in main before serving, then only atomics and pools change.
 *
 * Lifecycle (main.c):
 *   svc_app_init(&app, "customers", "customers")  -> common config read into app
 *   ... service reads its own settings from app.cfg ...
 *   svc_app_check_config(&app)                     -> one line + exit 1 on a bad value
 *   svc_app_open(&app)                             -> pools, migrations (waits for DB, bounded)
 *   svc_app_routes(&app, routes, n)
 *   return svc_app_run(&app);                      -> serves until SIGTERM/SIGINT, drains, frees
 */
#ifndef SVC_APP_H
#define SVC_APP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include "svc/buf.h"
#include "svc/config.h"
#include "svc/http.h"
#include "svc/log.h"
#include "svc/metrics.h"
#include "svc/pg.h"
#include "svc/redisx.h"

#define SVC_MAX_ROUTES 80
#define SVC_MAX_ORIGINS 16

/* Extra readiness checks (e.g. circuit breakers). Adds entries to the health+json "checks"
 * object; returns 0 = pass, 1 = warn (degraded, still ready), 2 = fail (not ready). */
typedef int (*svc_ready_hook)(struct svc_app *app, json_t *checks);
/* Extra /metrics text. */
typedef void (*svc_metrics_hook)(struct svc_app *app, struct svc_buf *out);
/* Stops a service's background threads (job workers, schedulers) that use the pools. Called
 * once by svc_app_close, before the pools are freed: after the HTTP server has drained and
 * stopped on SIGTERM/SIGINT, or on any error path that closes the app. */
typedef void (*svc_stop_hook)(struct svc_app *app);

/* One HTTP listener: HTTP_PORT (main) and, when set, HTTP_READ_PORT (read: always the pool mode,
 * for a service whose main listener is in connection mode, so that quick reads do not share the
 * CPU with a thread per waiting write). Both serve every route. Filled by svc_app_run. */
struct svc_listener {
    struct svc_app *app;
    const char *name;               /* "main" | "read" */
    long port;
    bool per_connection;
    long threads;
    atomic_ulong *requests;         /* http_listener_requests_total{listener}, when there are two */
    struct _u_instance inst;
    bool initialised, started;
};

struct svc_app {
    const char *service;            /* "customers" */
    const char *schema;             /* "customers" */
    const char *version;
    struct svc_config cfg;
    struct svc_logger log;

    /* settings */
    const char *instance;
    long http_port;
    const char *http_bind;
    long http_threads;             /* HTTP_THREADS: the pool's threads (HTTP_THREAD_MODE=pool) */
    bool http_thread_per_connection; /* HTTP_THREAD_MODE=connection */
    long http_read_port;           /* HTTP_READ_PORT: a second listener in the pool mode (0 = none) */
    long http_read_threads;        /* HTTP_READ_THREADS: its pool's threads */
    long http_max_connections;     /* HTTP_MAX_CONNECTIONS: connection limit (and thread limit) */
    long max_body_bytes;
    long max_bulk_body_bytes;
    long connection_timeout_s;
    long connection_memory_bytes;  /* HTTP_CONNECTION_MEMORY_BYTES: libmicrohttpd's per-connection
                                    * pool, holding the request line, headers, their records and
                                    * the answer's headers (zeroed between requests: keep it small) */
    long shutdown_grace_ms;
    const char *migrations_dir;
    bool migrate_only;              /* MIGRATE_ONLY: svc_app_open applies migrations, then exits 0 */
    char *origins[SVC_MAX_ORIGINS];
    int norigins;
    bool cors_credentials;
    struct svc_pg_config pg_cfg;
    char pg_conninfo[512];
    struct svc_redis_config redis_cfg;

    /* runtime */
    struct svc_pg_pool *pg;
    struct svc_redis_pool *redis;
    struct svc_metrics metrics;
    struct svc_listener listeners[2]; /* main, read */
    struct svc_route routes[SVC_MAX_ROUTES];
    int nroutes;
    int unmatched_metrics_idx;
    atomic_int inflight;            /* requests inside a handler */
    atomic_int active_requests;     /* requests from headers received to completion */
    atomic_bool draining;
    atomic_long last_request_ms;
    svc_ready_hook ready_hook;
    svc_metrics_hook metrics_hook;
    svc_stop_hook stop_hook;
};

/* Reads the common settings (see docs/operations.md). Never exits; errors are collected. */
int svc_app_init(struct svc_app *app, const char *service, const char *schema);

/* For a service whose handlers mostly wait (on PostgreSQL, a batch, another service): makes
 * HTTP_THREAD_MODE default to "connection" (a thread per connection) instead of "pool". Call
 * right after svc_app_init. In the pool a waiting handler holds up the other connections its
 * thread has accepted; handlers that are quick CPU work do better in the pool (the figures of
 * both: bench/README.md, *Measurements behind the code*). */
void svc_app_prefer_thread_per_connection(struct svc_app *app);
/* Prints one line and returns -1 when any setting is bad. */
int svc_app_check_config(struct svc_app *app);
/* Opens pools and applies migrations (retrying the database for up to DB_STARTUP_WAIT_S).
 * With MIGRATE_ONLY=true it exits the process with status 0 once the migrations are applied
 * (a migrations job runs the service image that way before a rollout). */
int svc_app_open(struct svc_app *app);
/* Registers routes (copied). Built-in /health/live, /health/ready, /metrics are added by run. */
int svc_app_routes(struct svc_app *app, const struct svc_route *routes, int n);
/* Serves until SIGTERM/SIGINT, then drains in-flight requests within the grace period and frees
 * everything. Returns the process exit code. */
int svc_app_run(struct svc_app *app);
/* Frees pools and config (called by run; for error paths in main before run). */
void svc_app_close(struct svc_app *app);

/* Monotonic clock in milliseconds. */
long svc_now_ms(void);

#define svc_app_service(app, type) ((type *)(void *)(app))

#endif
