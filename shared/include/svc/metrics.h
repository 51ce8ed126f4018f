/* Prometheus metrics for HTTP traffic plus named counters a service registers at start.
 *
 * The route table is fixed after start (routes are registered before serving), so the hot path
 * only does relaxed atomic increments: no lock, no allocation per request. Rendering reads the
 * atomics and may see a request counted in the counter but not yet in the histogram; Prometheus
 * tolerates that.
 *
 * Ownership: label strings passed in are borrowed and must outlive the metrics struct (they are
 * route templates and names from static tables). */
#ifndef SVC_METRICS_H
#define SVC_METRICS_H

#include <stdatomic.h>
#include "svc/buf.h"

#define SVC_METRICS_MAX_ROUTES 96
#define SVC_METRICS_NSTATUS 24
#define SVC_METRICS_NBUCKETS 14
#define SVC_METRICS_MAX_COUNTERS 48

struct svc_metrics_route {
    const char *method;
    const char *route;
    atomic_ulong by_status[SVC_METRICS_NSTATUS];
    atomic_ulong bucket[SVC_METRICS_NBUCKETS]; /* non-cumulative; rendered cumulative */
    atomic_ulong sum_us;
    atomic_ulong count;
};

struct svc_metrics_counter {
    const char *name;   /* full metric name incl. labels, e.g. cache_requests_total{cache="user",result="hit"} */
    const char *help;
    const char *family; /* name without labels, for HELP/TYPE */
    atomic_ulong value;
};

struct svc_metrics {
    const char *service;
    int nroutes;
    struct svc_metrics_route routes[SVC_METRICS_MAX_ROUTES];
    int ncounters;
    struct svc_metrics_counter counters[SVC_METRICS_MAX_COUNTERS];
};

void svc_metrics_init(struct svc_metrics *m, const char *service);
/* Register a route label; returns its index, or -1 when the table is full. Call before serving. */
int svc_metrics_route(struct svc_metrics *m, const char *method, const char *route);
void svc_metrics_observe(struct svc_metrics *m, int route_idx, int status, double seconds);

/* Register a counter before serving; returns a pointer for atomic increments or NULL when full.
 * family: metric name without labels; labels: e.g. "result=\"hit\"" or NULL. The returned string
 * storage for name is allocated once and lives until process exit. */
atomic_ulong *svc_metrics_counter(struct svc_metrics *m, const char *family, const char *labels,
                                  const char *help);

/* Appends the HTTP metrics and counters in Prometheus text format. */
void svc_metrics_render(struct svc_metrics *m, struct svc_buf *out);
/* Appends process_resident_memory_bytes and process_open_fds style gauges (from /proc/self). */
void svc_metrics_render_process(struct svc_buf *out);

#endif
