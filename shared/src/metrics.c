/* Prometheus text rendering for HTTP traffic and service counters; see metrics.h. */
#include "svc/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int status_codes[SVC_METRICS_NSTATUS - 1] = {
    200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405,
    409, 410, 413, 415, 422, 429, 500, 502, 503, 504, 101};
static const double bucket_le[SVC_METRICS_NBUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

void svc_metrics_init(struct svc_metrics *m, const char *service) {
    memset(m, 0, sizeof *m);
    m->service = service;
}

int svc_metrics_route(struct svc_metrics *m, const char *method, const char *route) {
    for (int i = 0; i < m->nroutes; i++)
        if (!strcmp(m->routes[i].method, method) && !strcmp(m->routes[i].route, route)) return i;
    if (m->nroutes >= SVC_METRICS_MAX_ROUTES) return -1;
    struct svc_metrics_route *r = &m->routes[m->nroutes];
    r->method = method;
    r->route = route;
    return m->nroutes++;
}

static int status_slot(int status) {
    for (int i = 0; i < SVC_METRICS_NSTATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return SVC_METRICS_NSTATUS - 1; /* "other" */
}

void svc_metrics_observe(struct svc_metrics *m, int route_idx, int status, double seconds) {
    if (route_idx < 0 || route_idx >= m->nroutes) return;
    struct svc_metrics_route *r = &m->routes[route_idx];
    atomic_fetch_add_explicit(&r->by_status[status_slot(status)], 1, memory_order_relaxed);
    int b = 0;
    while (b < SVC_METRICS_NBUCKETS - 1 && seconds > bucket_le[b]) b++;
    atomic_fetch_add_explicit(&r->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_us, (unsigned long)(seconds * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&r->count, 1, memory_order_relaxed);
}

atomic_ulong *svc_metrics_counter(struct svc_metrics *m, const char *family, const char *labels,
                                  const char *help) {
    if (m->ncounters >= SVC_METRICS_MAX_COUNTERS) return NULL;
    size_t n = strlen(family) + (labels ? strlen(labels) : 0) + 3;
    char *name = malloc(n);
    if (!name) return NULL;
    if (labels && *labels) snprintf(name, n, "%s{%s}", family, labels);
    else snprintf(name, n, "%s", family);
    struct svc_metrics_counter *c = &m->counters[m->ncounters++];
    c->name = name;
    c->family = family;
    c->help = help;
    atomic_init(&c->value, 0);
    return &c->value;
}

void svc_metrics_render(struct svc_metrics *m, struct svc_buf *out) {
    svc_buf_puts(out, "# HELP http_requests_total HTTP requests by route template, method and status.\n"
                      "# TYPE http_requests_total counter\n");
    for (int i = 0; i < m->nroutes; i++) {
        struct svc_metrics_route *r = &m->routes[i];
        for (int s = 0; s < SVC_METRICS_NSTATUS; s++) {
            unsigned long v = atomic_load_explicit(&r->by_status[s], memory_order_relaxed);
            if (!v) continue;
            char st[8];
            if (s < SVC_METRICS_NSTATUS - 1) snprintf(st, sizeof st, "%d", status_codes[s]);
            else snprintf(st, sizeof st, "other");
            svc_buf_printf(out, "http_requests_total{service=\"%s\",method=\"%s\",route=\"%s\",status=\"%s\"} %lu\n",
                           m->service, r->method, r->route, st, v);
        }
    }
    svc_buf_puts(out, "# HELP http_request_duration_seconds HTTP request latency by route template.\n"
                      "# TYPE http_request_duration_seconds histogram\n");
    for (int i = 0; i < m->nroutes; i++) {
        struct svc_metrics_route *r = &m->routes[i];
        unsigned long count = atomic_load_explicit(&r->count, memory_order_relaxed);
        if (!count) continue;
        unsigned long cum = 0;
        for (int b = 0; b < SVC_METRICS_NBUCKETS; b++) {
            cum += atomic_load_explicit(&r->bucket[b], memory_order_relaxed);
            if (b < SVC_METRICS_NBUCKETS - 1)
                svc_buf_printf(out, "http_request_duration_seconds_bucket{service=\"%s\",method=\"%s\",route=\"%s\",le=\"%g\"} %lu\n",
                               m->service, r->method, r->route, bucket_le[b], cum);
            else
                svc_buf_printf(out, "http_request_duration_seconds_bucket{service=\"%s\",method=\"%s\",route=\"%s\",le=\"+Inf\"} %lu\n",
                               m->service, r->method, r->route, cum);
        }
        svc_buf_printf(out, "http_request_duration_seconds_sum{service=\"%s\",method=\"%s\",route=\"%s\"} %.6f\n",
                       m->service, r->method, r->route,
                       (double)atomic_load_explicit(&r->sum_us, memory_order_relaxed) / 1e6);
        svc_buf_printf(out, "http_request_duration_seconds_count{service=\"%s\",method=\"%s\",route=\"%s\"} %lu\n",
                       m->service, r->method, r->route, cum);
    }
    const char *last_family = NULL;
    for (int i = 0; i < m->ncounters; i++) {
        struct svc_metrics_counter *c = &m->counters[i];
        if (!last_family || strcmp(last_family, c->family) != 0) {
            svc_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", c->family, c->help ? c->help : c->family, c->family);
            last_family = c->family;
        }
        svc_buf_printf(out, "%s %lu\n", c->name, atomic_load_explicit(&c->value, memory_order_relaxed));
    }
}

void svc_metrics_render_process(struct svc_buf *out) {
    long pages_total = 0, pages_rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) pages_rss = 0;
        fclose(f);
    }
    long page = sysconf(_SC_PAGESIZE);
    svc_buf_printf(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                        "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %ld\n",
                   pages_rss * page);
    svc_buf_printf(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.\n"
                        "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes %ld\n",
                   pages_total * page);
}
