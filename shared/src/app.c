/* Service lifecycle: common configuration, pools, migrations, the HTTP server and graceful stop.
 *
 * The server runs libmicrohttpd in one of two thread modes (HTTP_THREAD_MODE). pool (the default):
 * an epoll listener and a bounded worker pool, measured faster for quick handlers. connection: a
 * thread per connection (at most HTTP_MAX_CONNECTIONS), for services whose handlers mostly wait
 * (svc_app_prefer_thread_per_connection); there HTTP_THREADS only sizes the PG/Redis pools, which
 * still bound the work sent to the dependencies: a handler beyond them waits for a connection up
 * to DB/REDIS_ACQUIRE_TIMEOUT_MS, then answers 503. Signals are blocked in every thread and taken
 * by the main thread with sigwait, so shutdown runs in ordinary code, not in a signal handler.
 *
 * Graceful stop: stop accepting (MHD_quiesce_daemon), answer with "Connection: close" so the
 * proxy stops reusing kept-alive connections, wait until no request is in flight and the
 * connections have gone quiet (bounded by SHUTDOWN_GRACE_MS), then stop the server. */
#include "svc/app.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/health.h"
#include "svc/migrate.h"

#ifndef SVC_VERSION
#define SVC_VERSION "0.1.0"
#endif

long svc_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void parse_origins(struct svc_app *app, const char *list) {
    if (!list || !*list) return;
    char *copy = strdup(list);
    if (!copy) {
        svc_config_error(&app->cfg, "CORS_ALLOWED_ORIGINS", "out of memory");
        return;
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') tok++;
        size_t n = strlen(tok);
        while (n && tok[n - 1] == ' ') tok[--n] = '\0';
        if (!n) continue;
        if (app->norigins >= SVC_MAX_ORIGINS) {
            svc_config_error(&app->cfg, "CORS_ALLOWED_ORIGINS", "too many origins");
            break;
        }
        if (strcmp(tok, "*") != 0 && strncmp(tok, "http://", 7) != 0 && strncmp(tok, "https://", 8) != 0) {
            svc_config_error(&app->cfg, "CORS_ALLOWED_ORIGINS", "origins must be http(s)://host[:port] or *");
            continue;
        }
        char *origin = strdup(tok);
        if (!origin) {
            svc_config_error(&app->cfg, "CORS_ALLOWED_ORIGINS", "out of memory");
            break;
        }
        app->origins[app->norigins++] = origin;
    }
    free(copy);
}

/* glibc raises its mmap threshold to the size of the largest freed mmap'd block (up to 32 MiB):
 * after one 19 MiB Argon2 buffer, later ones would come from the heap and stay resident. A fixed
 * threshold returns large buffers to the OS at once, and a few arenas keep per-thread heaps from
 * multiplying idle memory. */
static void tune_malloc(void) {
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
}

int svc_app_init(struct svc_app *app, const char *service, const char *schema) {
    tune_malloc();
    memset(app, 0, sizeof *app);
    app->service = service;
    app->schema = schema;
    app->version = SVC_VERSION;
    struct svc_config *c = &app->cfg;
    svc_config_init(c);

    static char host[64];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "%s", service);
    app->instance = svc_config_str(c, "SERVICE_INSTANCE", host);
    svc_log_init(&app->log, service, app->instance, svc_config_str(c, "LOG_LEVEL", "info"), STDOUT_FILENO);
    /* Buffered from here, while this is the only thread (svc_app_close writes the rest out);
     * LOG_FLUSH_MS=0 writes every line at once. */
    long flush_ms = svc_config_int(c, "LOG_FLUSH_MS", 100, 0, 10000);
    if (flush_ms > 0 && svc_log_buffer_start(&app->log, (int)flush_ms) != 0)
        svc_log(&app->log, SVC_LOG_WARN, NULL, "log buffering unavailable; writing every line at once", NULL);

    app->http_port = svc_config_int(c, "HTTP_PORT", 0, 1, 65535);
    if (!getenv("HTTP_PORT")) svc_config_error(c, "HTTP_PORT", "missing (required)");
    app->http_bind = svc_config_str(c, "HTTP_BIND", "0.0.0.0");
    app->http_threads = svc_config_int(c, "HTTP_THREADS", 8, 1, 256);
    const char *mode = svc_config_str(c, "HTTP_THREAD_MODE", "pool");
    if (mode && strcmp(mode, "pool") && strcmp(mode, "connection"))
        svc_config_error(c, "HTTP_THREAD_MODE", "must be pool or connection");
    app->http_thread_per_connection = mode && !strcmp(mode, "connection");
    app->http_read_port = svc_config_int(c, "HTTP_READ_PORT", 0, 0, 65535);
    app->http_read_threads = svc_config_int(c, "HTTP_READ_THREADS", 2, 1, 256);
    app->http_max_connections = svc_config_int(c, "HTTP_MAX_CONNECTIONS", 1000, 16, 100000);
    app->max_body_bytes = svc_config_int(c, "HTTP_MAX_BODY_BYTES", 1048576, 1024, 256L * 1024 * 1024);
    app->max_bulk_body_bytes = svc_config_int(c, "HTTP_MAX_BULK_BODY_BYTES", 16L * 1024 * 1024, 1024, 1024L * 1024 * 1024);
    if (app->max_bulk_body_bytes < app->max_body_bytes) app->max_bulk_body_bytes = app->max_body_bytes;
    app->connection_timeout_s = svc_config_int(c, "HTTP_CONNECTION_TIMEOUT_S", 30, 1, 3600);
    app->connection_memory_bytes = svc_config_int(c, "HTTP_CONNECTION_MEMORY_BYTES", 48 * 1024, 32 * 1024, 16L * 1024 * 1024);
    app->shutdown_grace_ms = svc_config_int(c, "SHUTDOWN_GRACE_MS", 10000, 0, 600000);
    parse_origins(app, svc_config_str(c, "CORS_ALLOWED_ORIGINS", ""));
    app->cors_credentials = svc_config_bool(c, "CORS_ALLOW_CREDENTIALS", false);
    for (int i = 0; i < app->norigins; i++)
        if (app->cors_credentials && !strcmp(app->origins[i], "*"))
            svc_config_error(c, "CORS_ALLOW_CREDENTIALS", "cannot be true when CORS_ALLOWED_ORIGINS contains *");

    static char default_migrations[128];
    snprintf(default_migrations, sizeof default_migrations, "db/%s", schema);
    app->migrations_dir = svc_config_str(c, "MIGRATIONS_DIR", default_migrations);
    app->migrate_only = svc_config_bool(c, "MIGRATE_ONLY", false);

    const char *db_host = svc_config_str(c, "DB_HOST", NULL);
    long db_port = svc_config_int(c, "DB_PORT", 5432, 1, 65535);
    const char *db_name = svc_config_str(c, "DB_NAME", NULL);
    const char *db_user = svc_config_str(c, "DB_USER", NULL);
    const char *db_password = svc_config_str(c, "DB_PASSWORD", NULL);
    if (db_host && db_name && db_user &&
        svc_pg_conninfo(app->pg_conninfo, sizeof app->pg_conninfo, db_host, (int)db_port, db_name, db_user) != 0)
        svc_config_error(c, "DB_HOST", "connection settings too long");
    app->pg_cfg.conninfo = app->pg_conninfo;
    app->pg_cfg.password = db_password;
    app->pg_cfg.size = (int)svc_config_int(c, "DB_POOL_SIZE", app->http_threads, 1, 512);
    app->pg_cfg.statement_timeout_ms = (int)svc_config_int(c, "DB_STATEMENT_TIMEOUT_MS", 5000, 10, 3600000);
    app->pg_cfg.acquire_timeout_ms = (int)svc_config_int(c, "DB_ACQUIRE_TIMEOUT_MS", 2000, 1, 600000);
    app->pg_cfg.connect_timeout_s = (int)svc_config_int(c, "DB_CONNECT_TIMEOUT_S", 3, 1, 120);
    app->pg_cfg.application_name = app->instance;

    app->redis_cfg.host = svc_config_str(c, "REDIS_HOST", NULL);
    app->redis_cfg.port = (int)svc_config_int(c, "REDIS_PORT", 6379, 1, 65535);
    app->redis_cfg.password = svc_config_str(c, "REDIS_PASSWORD", "");
    if (app->redis_cfg.password && !*app->redis_cfg.password) app->redis_cfg.password = NULL;
    app->redis_cfg.db = (int)svc_config_int(c, "REDIS_DB", 0, 0, 15);
    app->redis_cfg.size = (int)svc_config_int(c, "REDIS_POOL_SIZE", app->http_threads, 1, 512);
    app->redis_cfg.command_timeout_ms = (int)svc_config_int(c, "REDIS_TIMEOUT_MS", 500, 10, 600000);
    app->redis_cfg.connect_timeout_ms = (int)svc_config_int(c, "REDIS_CONNECT_TIMEOUT_MS", 500, 10, 60000);
    app->redis_cfg.acquire_timeout_ms = (int)svc_config_int(c, "REDIS_ACQUIRE_TIMEOUT_MS", 2000, 1, 600000);

    svc_metrics_init(&app->metrics, service);
    app->unmatched_metrics_idx = svc_metrics_route(&app->metrics, "ANY", "unmatched");
    atomic_init(&app->inflight, 0);
    atomic_init(&app->active_requests, 0);
    atomic_init(&app->draining, false);
    atomic_init(&app->last_request_ms, 0);
    return 0;
}

int svc_app_check_config(struct svc_app *app) {
    char name[96];
    snprintf(name, sizeof name, "%s-service", app->service);
    return svc_config_check(&app->cfg, name);
}

int svc_app_open(struct svc_app *app) {
    struct svc_config *c = &app->cfg;
    long wait_s = svc_config_int(c, "DB_STARTUP_WAIT_S", 30, 0, 3600);
    app->pg = svc_pg_pool_new(&app->pg_cfg);
    app->redis = svc_redis_pool_new(&app->redis_cfg);
    if (!app->pg || !app->redis) {
        svc_log(&app->log, SVC_LOG_ERROR, NULL, "out of memory creating pools", NULL);
        return -1;
    }
    long deadline = svc_now_ms() + wait_s * 1000;
    for (int attempt = 1;; attempt++) {
        svc_status st;
        PGconn *conn = svc_pg_acquire(app->pg, 5000, &st);
        if (conn) {
            char err[512];
            int n = svc_migrate(conn, app->schema, app->migrations_dir, err, sizeof err);
            svc_pg_release(app->pg, conn);
            if (n < 0) {
                svc_logf(&app->log, SVC_LOG_ERROR, NULL, "migrations failed", "{s:s,s:s}", "dir",
                         app->migrations_dir, "error", err);
                return -1;
            }
            svc_logf(&app->log, SVC_LOG_INFO, NULL, "migrations applied", "{s:i,s:s}", "applied", n,
                     "schema", app->schema);
            if (app->migrate_only) {
                /* A migrations job (deploy/k8s): the schema is ready, nothing else to do. */
                svc_log(&app->log, SVC_LOG_INFO, NULL, "MIGRATE_ONLY set: exiting after migrations", NULL);
                svc_app_close(app);
                exit(0);
            }
            return 0;
        }
        if (svc_now_ms() >= deadline) {
            svc_logf(&app->log, SVC_LOG_ERROR, NULL, "database unreachable at start", "{s:i}", "attempts", attempt);
            return -1;
        }
        svc_logf(&app->log, SVC_LOG_WARN, NULL, "waiting for database", "{s:i}", "attempt", attempt);
        sleep(1);
    }
}

int svc_app_routes(struct svc_app *app, const struct svc_route *routes, int n) {
    for (int i = 0; i < n; i++) {
        if (app->nroutes >= SVC_MAX_ROUTES) return -1;
        struct svc_route *r = &app->routes[app->nroutes++];
        *r = routes[i];
        r->metrics_idx = svc_metrics_route(&app->metrics, r->method, r->tmpl);
    }
    return 0;
}

/* A query of more than SVC_MAX_QUERY_PARAMS parameters is refused (414, phase_limits in http.c),
 * but libmicrohttpd would first store every parameter in the connection's memory, and a request
 * whose parameters do not fit there gets libmicrohttpd's own answer instead of the envelope. This
 * runs in the URI callback, before the parameters are parsed, on libmicrohttpd's own copy of the
 * request line (writable: it is split in place right after this callback): it ends the query
 * after SVC_MAX_QUERY_PARAMS + 1 parameters, which is still "too many" for the dispatcher, so
 * connection memory only has to hold that many (HTTP_CONNECTION_MEMORY_BYTES). */
static void cut_query(const char *uri) {
    char *q = strchr(uri, '?');
    if (!q) return;
    int params = 1;
    for (char *p = q + 1; *p; p++)
        if (*p == '&' && ++params > SVC_MAX_QUERY_PARAMS + 1) {
            *p = '\0';
            return;
        }
}

/* MHD reports a request's start (headers received) through the URI log callback and its end
 * through the completion callback. Wrapping Ulfius's two mandatory callbacks counts requests that
 * are still receiving their body too, which the drain must wait for. */
static void *uri_logger(void *cls, const char *uri) {
    struct svc_listener *l = cls;
    struct svc_app *app = l->app;
    atomic_fetch_add(&app->active_requests, 1);
    atomic_store(&app->last_request_ms, svc_now_ms());
    if (l->requests) atomic_fetch_add_explicit(l->requests, 1, memory_order_relaxed);
    void *con_cls = ulfius_uri_logger(NULL, uri);
    cut_query(uri);
    return con_cls;
}

static void request_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                              enum MHD_RequestTerminationCode toe) {
    struct svc_app *app = ((struct svc_listener *)cls)->app;
    mhd_request_completed(NULL, connection, con_cls, toe);
    atomic_fetch_sub(&app->active_requests, 1);
    atomic_store(&app->last_request_ms, svc_now_ms());
}

static const struct svc_route builtin_routes[] = {
    {"GET", "/health/live", svc_health_live, 0, 0},
    {"GET", "/health/ready", svc_health_ready, 0, 0},
    {"GET", "/metrics", svc_metrics_endpoint, 0, 0},
};

static void set_default_headers(struct _u_instance *inst) {
    u_map_put(inst->default_headers, "X-Content-Type-Options", "nosniff");
    u_map_put(inst->default_headers, "X-Frame-Options", "DENY");
    u_map_put(inst->default_headers, "Referrer-Policy", "no-referrer");
    u_map_put(inst->default_headers, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    u_map_put(inst->default_headers, "Cross-Origin-Resource-Policy", "same-origin");
    u_map_put(inst->default_headers, "X-Permitted-Cross-Domain-Policies", "none");
    u_map_put(inst->default_headers, "Cache-Control", "no-store");
}

/* Starts one listener on addr's address and l->port: the dispatcher for every route, in l's
 * thread mode. Returns 0, or -1 after logging (l->initialised says whether inst needs cleaning). */
static int listener_start(struct svc_app *app, struct svc_listener *l, const struct sockaddr_in *bind_to) {
    struct sockaddr_in addr = *bind_to;
    addr.sin_port = htons((uint16_t)l->port);
    struct _u_instance *inst = &l->inst;
    if (ulfius_init_instance(inst, (unsigned int)l->port, NULL, NULL) != U_OK) {
        svc_log(&app->log, SVC_LOG_ERROR, NULL, "ulfius_init_instance failed", NULL);
        return -1;
    }
    l->initialised = true;
    inst->max_post_body_size = (size_t)app->max_bulk_body_bytes + 1;
    /* Bodies of every media type reach svc_http_dispatch unparsed. With Ulfius's default, a
     * multipart or form-urlencoded Content-Type (even on a GET without a body) gets
     * libmicrohttpd's post processor, whose failure closes the connection unanswered — which
     * Nginx counts as a failed upstream. */
    inst->allowed_post_processor = U_POST_PROCESS_NONE;
    set_default_headers(inst);
    if (ulfius_add_endpoint_by_val(inst, "*", NULL, "*", 0, svc_http_dispatch, app) != U_OK ||
        ulfius_set_default_endpoint(inst, svc_http_dispatch, app) != U_OK) {
        svc_log(&app->log, SVC_LOG_ERROR, NULL, "cannot register the dispatcher", NULL);
        return -1;
    }

    /* pool: l->threads threads, each serving the connections it accepted one request at a time
     * (a handler that waits holds up that thread's other connections). connection: a thread per
     * connection, for handlers that mostly wait (see docs/operations.md). The last option slot
     * is the pool size or nothing. */
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)request_completed, l},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)uri_logger, l},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)app->connection_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)app->http_max_connections, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)app->connection_memory_bytes, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)l->threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    unsigned int mhd_flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (l->per_connection) {
        ops[sizeof ops / sizeof ops[0] - 2] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
        mhd_flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    }
    if (ulfius_start_framework_with_mhd_options(inst, mhd_flags, ops) != U_OK) {
        svc_logf(&app->log, SVC_LOG_ERROR, NULL, "cannot start HTTP server", "{s:s,s:i,s:s}", "listener", l->name,
                 "port", (int)l->port, "bind", app->http_bind);
        return -1;
    }
    l->started = true;
    svc_logf(&app->log, SVC_LOG_INFO, NULL, "listening", "{s:s,s:i,s:s,s:s,s:i,s:i}", "listener", l->name, "port",
             (int)l->port, "bind", app->http_bind, "thread_mode", l->per_connection ? "connection" : "pool", "threads",
             l->per_connection ? 0 : (int)l->threads, "pid", (int)getpid());
    return 0;
}

int svc_app_run(struct svc_app *app) {
    int rc = 1;
    if (svc_app_routes(app, builtin_routes, (int)(sizeof builtin_routes / sizeof builtin_routes[0])) != 0) {
        svc_log(&app->log, SVC_LOG_ERROR, NULL, "too many routes", NULL);
        svc_app_close(app);
        return 1;
    }

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)app->http_port);
    if (inet_pton(AF_INET, app->http_bind, &addr.sin_addr) != 1) {
        svc_logf(&app->log, SVC_LOG_ERROR, NULL, "HTTP_BIND is not an IPv4 address", NULL);
        svc_app_close(app);
        return 1;
    }

    struct svc_listener *main_l = &app->listeners[0], *read_l = &app->listeners[1];
    *main_l = (struct svc_listener){.app = app, .name = "main", .port = app->http_port,
                                    .per_connection = app->http_thread_per_connection,
                                    .threads = app->http_threads};
    *read_l = (struct svc_listener){.app = app, .name = "read", .port = app->http_read_port,
                                    .per_connection = false, .threads = app->http_read_threads};
    if (app->http_read_port > 0)
        for (int i = 0; i < 2; i++)
            app->listeners[i].requests =
                svc_metrics_counter(&app->metrics, "http_listener_requests_total",
                                    i ? "listener=\"read\"" : "listener=\"main\"",
                                    "Requests by listener (HTTP_PORT: main; HTTP_READ_PORT: read).");
    if (listener_start(app, main_l, &addr) != 0) goto out_clean;
    if (app->http_read_port > 0 && listener_start(app, read_l, &addr) != 0) goto out_clean;

    int sig = 0;
    while (sigwait(&set, &sig) != 0) {
    }
    svc_logf(&app->log, SVC_LOG_INFO, NULL, "shutdown started", "{s:i,s:i}", "signal", sig, "grace_ms",
             (int)app->shutdown_grace_ms);
    atomic_store(&app->draining, true);
    for (int i = 0; i < 2; i++) {
        if (!app->listeners[i].started) continue;
        MHD_socket lsock = MHD_quiesce_daemon(app->listeners[i].inst.mhd_daemon);
        if (lsock != MHD_INVALID_SOCKET) close(lsock);
    }

    long deadline = svc_now_ms() + app->shutdown_grace_ms;
    const long quiet_ms = 300;
    for (;;) {
        long now = svc_now_ms();
        int inflight = atomic_load(&app->active_requests);
        long last = atomic_load(&app->last_request_ms);
        if (inflight == 0 && now - last >= quiet_ms) break;
        if (now >= deadline) {
            svc_logf(&app->log, SVC_LOG_WARN, NULL, "grace period over with requests in flight", "{s:i}",
                     "inflight", inflight);
            break;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < 2; i++)
        if (app->listeners[i].started) ulfius_stop_framework(&app->listeners[i].inst);
    rc = 0;
    svc_log(&app->log, SVC_LOG_INFO, NULL, "shutdown complete", NULL);

out_clean:
    for (int i = 0; i < 2; i++)
        if (app->listeners[i].initialised) {
            if (rc != 0 && app->listeners[i].started) ulfius_stop_framework(&app->listeners[i].inst);
            ulfius_clean_instance(&app->listeners[i].inst);
        }
    svc_app_close(app);
    return rc;
}

void svc_app_prefer_thread_per_connection(struct svc_app *app) {
    const char *mode = svc_config_str(&app->cfg, "HTTP_THREAD_MODE", "connection");
    app->http_thread_per_connection = !mode || strcmp(mode, "pool") != 0;
}

void svc_app_close(struct svc_app *app) {
    if (app->stop_hook) {
        svc_stop_hook hook = app->stop_hook;
        app->stop_hook = NULL;
        hook(app);
    }
    if (app->pg) svc_pg_pool_free(app->pg);
    if (app->redis) svc_redis_pool_free(app->redis);
    app->pg = NULL;
    app->redis = NULL;
    for (int i = 0; i < app->norigins; i++) free(app->origins[i]);
    app->norigins = 0;
    svc_config_free(&app->cfg);
    svc_log_buffer_stop(&app->log);   /* last: every other thread has stopped */
}
