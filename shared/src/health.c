/* /health/live, /health/ready and /metrics; see health.h.
 *
 * Liveness never touches dependencies (a Redis outage must not get the process restarted);
 * readiness does, and answers 503 naming the failing check so the load balancer and operators
 * see which dependency is at fault. */
#include "svc/health.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "svc/app.h"

#define PING_TIMEOUT_MS 1000

static void iso_now(char *out, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void respond_health(struct svc_req *r, int http, json_t *body) {
    svc_respond_json(r, http, body);
    u_map_put(r->res->map_header, "Content-Type", "application/health+json");
    u_map_put(r->res->map_header, "Cache-Control", "no-store");
}

void svc_health_live(struct svc_req *r) {
    struct svc_app *app = r->app;
    json_t *b = json_pack("{s:s,s:s,s:s,s:s}", "status", "pass", "serviceId", app->service,
                          "instance", app->instance, "version", app->version);
    respond_health(r, 200, b);
}

static const char *status_name(int s) { return s == 0 ? "pass" : s == 1 ? "warn" : "fail"; }

static int add_check(json_t *checks, const char *key, const char *component, int rc, double ms,
                     const char *err, const char *now) {
    json_t *c = json_pack("{s:s,s:s,s:s}", "componentType", component, "status", rc == 0 ? "pass" : "fail",
                          "time", now);
    if (rc == 0) {
        json_object_set_new(c, "observedValue", json_real((double)(long)(ms * 1000.0) / 1000.0));
        json_object_set_new(c, "observedUnit", json_string("ms"));
    } else {
        json_object_set_new(c, "output", json_string(err));
    }
    json_object_set_new(checks, key, json_pack("[o]", c));
    return rc == 0 ? 0 : 2;
}

void svc_health_ready(struct svc_req *r) {
    struct svc_app *app = r->app;
    char now[32], err[256];
    iso_now(now, sizeof now);
    json_t *checks = json_object();
    int worst = 0;
    double ms = 0;

    int rc = svc_pg_ping(app->pg, PING_TIMEOUT_MS, &ms, err, sizeof err);
    int s = add_check(checks, "postgres:responseTime", "datastore", rc, ms, err, now);
    if (s > worst) worst = s;
    rc = svc_redis_ping(app->redis, PING_TIMEOUT_MS, &ms, err, sizeof err);
    s = add_check(checks, "redis:responseTime", "datastore", rc, ms, err, now);
    if (s > worst) worst = s;
    if (app->ready_hook) {
        s = app->ready_hook(app, checks);
        if (s > worst) worst = s;
    }
    if (atomic_load(&app->draining)) worst = 2;

    json_t *b = json_pack("{s:s,s:s,s:s,s:o}", "status", status_name(worst), "serviceId", app->service,
                          "instance", app->instance, "checks", checks);
    if (worst == 2) {
        /* name the failing checks in one place for humans and alerting */
        json_t *failing = json_array();
        const char *key;
        json_t *val;
        json_object_foreach(checks, key, val) {
            json_t *first = json_array_get(val, 0);
            const char *st = json_string_value(json_object_get(first, "status"));
            if (st && st[0] == 'f') json_array_append_new(failing, json_string(key));
        }
        if (atomic_load(&app->draining)) json_array_append_new(failing, json_string("shutdown"));
        json_object_set_new(b, "output", failing);
    }
    respond_health(r, worst == 2 ? 503 : 200, b);
}

void svc_metrics_endpoint(struct svc_req *r) {
    struct svc_app *app = r->app;
    struct svc_buf out;
    svc_buf_init(&out);
    svc_metrics_render(&app->metrics, &out);
    svc_metrics_render_process(&out);

    struct svc_pg_stats ps;
    svc_pg_stats(app->pg, &ps);
    svc_buf_printf(&out,
                   "# HELP db_pool_connections PostgreSQL pool connections by state.\n"
                   "# TYPE db_pool_connections gauge\n"
                   "db_pool_connections{service=\"%s\",state=\"max\"} %d\n"
                   "db_pool_connections{service=\"%s\",state=\"open\"} %d\n"
                   "db_pool_connections{service=\"%s\",state=\"in_use\"} %d\n"
                   "db_pool_connections{service=\"%s\",state=\"waiting\"} %d\n"
                   "# HELP db_pool_timeouts_total Waits for a PostgreSQL connection that timed out.\n"
                   "# TYPE db_pool_timeouts_total counter\n"
                   "db_pool_timeouts_total{service=\"%s\"} %lu\n"
                   "# HELP db_pool_reconnects_total PostgreSQL reconnects.\n"
                   "# TYPE db_pool_reconnects_total counter\n"
                   "db_pool_reconnects_total{service=\"%s\"} %lu\n",
                   app->service, ps.size, app->service, ps.open, app->service, ps.in_use, app->service,
                   ps.waiting, app->service, ps.timeouts, app->service, ps.reconnects);
    struct svc_redis_stats rs;
    svc_redis_stats(app->redis, &rs);
    svc_buf_printf(&out,
                   "# HELP redis_pool_connections Redis pool connections by state.\n"
                   "# TYPE redis_pool_connections gauge\n"
                   "redis_pool_connections{service=\"%s\",state=\"max\"} %d\n"
                   "redis_pool_connections{service=\"%s\",state=\"open\"} %d\n"
                   "redis_pool_connections{service=\"%s\",state=\"in_use\"} %d\n"
                   "redis_pool_connections{service=\"%s\",state=\"waiting\"} %d\n"
                   "# HELP redis_pool_timeouts_total Waits for a Redis connection that timed out.\n"
                   "# TYPE redis_pool_timeouts_total counter\n"
                   "redis_pool_timeouts_total{service=\"%s\"} %lu\n"
                   "# HELP redis_pool_reconnects_total Redis reconnects.\n"
                   "# TYPE redis_pool_reconnects_total counter\n"
                   "redis_pool_reconnects_total{service=\"%s\"} %lu\n",
                   app->service, rs.size, app->service, rs.open, app->service, rs.in_use, app->service,
                   rs.waiting, app->service, rs.timeouts, app->service, rs.reconnects);
    svc_buf_printf(&out, "# HELP http_inflight_requests Requests being served.\n"
                         "# TYPE http_inflight_requests gauge\nhttp_inflight_requests{service=\"%s\"} %d\n",
                   app->service, atomic_load(&app->inflight));
    if (app->metrics_hook) app->metrics_hook(app, &out);
    if (out.oom) {
        svc_buf_free(&out);
        svc_respond_status(r, SVC_INTERNAL, "out of memory");
        return;
    }
    size_t len = out.len;
    char *s = svc_buf_steal(&out);
    free(r->res->binary_body);
    r->res->binary_body = s;
    r->res->binary_body_length = s ? len : 0;
    r->res->status = 200;
    r->status = 200;
    u_map_put(r->res->map_header, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
}
