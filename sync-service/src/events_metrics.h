/* The /metrics of event ingestion (per instance; Prometheus text appended by the service's
 * metrics hook): events accepted and rejected per type, what the consumers stored, batch sizes,
 * write latency and the time from the 202 to the COMMIT as histograms, and the stream's depth,
 * lag and Redis memory as gauges (sampled by the maintenance thread).
 *
 * Synchronisation: relaxed atomics only (a scrape may see a batch counted in one series and not
 * yet in another; Prometheus tolerates that). Lives in the service context; no allocation. */
#ifndef EVENTS_METRICS_H
#define EVENTS_METRICS_H

#include <stdatomic.h>

#include "events.h"
#include "svc/buf.h"

enum { EVENTS_REJECT_INVALID, EVENTS_REJECT_FORBIDDEN, EVENTS_REJECT_RATE_LIMITED, EVENTS_REJECT_UNAVAILABLE,
       EVENTS_NREJECT };
#define EVENTS_TYPE_UNKNOWN EVENTS_NTYPES   /* rejected events without a valid eventType */

#define EVENTS_HIST_MAX 32

struct events_hist {
    int n;                                   /* finite buckets */
    const double *le;                        /* upper bounds, static */
    atomic_ulong bucket[EVENTS_HIST_MAX + 1]; /* non-cumulative; the last is +Inf */
    atomic_ulong count;
    _Atomic double sum;
};

struct events_metrics {
    atomic_ulong accepted[EVENTS_NTYPES];
    atomic_ulong rejected[EVENTS_NTYPES + 1][EVENTS_NREJECT];
    atomic_ulong written[EVENTS_NTYPES], duplicates[EVENTS_NTYPES], dead[EVENTS_NTYPES];
    atomic_ulong batches_by_trigger[3];  /* events_trigger: size, time, stop */
    atomic_ulong append_pipelines, append_requests;   /* combined Redis round trips, requests in them */
    atomic_ulong splits, write_retries, transient_waits, ack_failures, malformed;
    struct events_hist batch_size;       /* events per batch */
    struct events_hist write_seconds;    /* a batch from its first write to the last COMMIT */
    struct events_hist commit_seconds;   /* per event: from the 202 to its batch's COMMIT */
    atomic_llong queue_depth, queue_lag_ms, redis_used_memory;
    atomic_bool backpressure;            /* over a high-water mark now */
};

void events_metrics_init(struct events_metrics *m);
void events_hist_observe(struct events_hist *h, double v);
/* Value at quantile q (0..1) from the histogram, interpolated within its bucket (the bench reads
 * commit latency this way; exposed for tests). NaN when empty. */
double events_hist_quantile(const struct events_hist *h, double q);
void events_metrics_render(const struct events_metrics *m, struct svc_buf *out);

#endif
