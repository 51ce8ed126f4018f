/* Event ingestion metrics (see events_metrics.h). */
#include "events_metrics.h"

#include <math.h>
#include <string.h>

static const double SIZE_LE[] = {1, 10, 50, 100, 250, 500, 750, 1000, 2000, 5000};
static const double WRITE_LE[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
/* fine steps up to a second: the bench reads p50/p99 from this histogram */
static const double COMMIT_LE[] = {0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175,
                                   0.2,   0.25, 0.3,  0.35, 0.4,  0.45, 0.5,   0.6, 0.7,   0.8,  0.9,
                                   1,     1.25, 1.5,  2,    3,    5,    10,    30};

static void hist_init(struct events_hist *h, const double *le, int n) {
    memset(h, 0, sizeof *h);
    h->le = le;
    h->n = n;
}

void events_metrics_init(struct events_metrics *m) {
    memset(m, 0, sizeof *m);
    hist_init(&m->batch_size, SIZE_LE, (int)(sizeof SIZE_LE / sizeof SIZE_LE[0]));
    hist_init(&m->write_seconds, WRITE_LE, (int)(sizeof WRITE_LE / sizeof WRITE_LE[0]));
    hist_init(&m->commit_seconds, COMMIT_LE, (int)(sizeof COMMIT_LE / sizeof COMMIT_LE[0]));
}

void events_hist_observe(struct events_hist *h, double v) {
    int i = 0;
    while (i < h->n && v > h->le[i]) i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double old = atomic_load_explicit(&h->sum, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum, &old, old + v, memory_order_relaxed, memory_order_relaxed)) {
    }
}

double events_hist_quantile(const struct events_hist *h, double q) {
    unsigned long total = 0;
    for (int i = 0; i <= h->n; i++) total += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    if (!total) return NAN;
    double rank = q * (double)total, seen = 0, lo = 0;
    for (int i = 0; i <= h->n; i++) {
        double c = (double)atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (i == h->n) return lo;   /* in +Inf: the highest finite bound is all we know */
        if (seen + c >= rank && c > 0) return lo + (h->le[i] - lo) * ((rank - seen) / c);
        seen += c;
        lo = h->le[i];
    }
    return lo;
}

static void hist_render(const struct events_hist *h, const char *name, const char *help, struct svc_buf *out) {
    svc_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long cum = 0;
    for (int i = 0; i < h->n; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        svc_buf_printf(out, "%s_bucket{le=\"%g\"} %lu\n", name, h->le[i], cum);
    }
    cum += atomic_load_explicit(&h->bucket[h->n], memory_order_relaxed);
    svc_buf_printf(out, "%s_bucket{le=\"+Inf\"} %lu\n%s_sum %.6f\n%s_count %lu\n", name, cum, name,
                   atomic_load_explicit(&h->sum, memory_order_relaxed), name,
                   atomic_load_explicit(&h->count, memory_order_relaxed));
}

static void per_type(const atomic_ulong *v, const char *name, const char *help, struct svc_buf *out) {
    svc_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int t = 0; t < EVENTS_NTYPES; t++)
        svc_buf_printf(out, "%s{type=\"%s\"} %lu\n", name, events_type_names[t],
                       atomic_load_explicit(&v[t], memory_order_relaxed));
}

static void counter(unsigned long v, const char *name, const char *help, struct svc_buf *out) {
    svc_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %lu\n", name, help, name, name, v);
}

static void gauge(long long v, const char *name, const char *help, struct svc_buf *out) {
    svc_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help, name, name, v);
}

void events_metrics_render(const struct events_metrics *m, struct svc_buf *out) {
    static const char *const reasons[EVENTS_NREJECT] = {"invalid", "forbidden", "rate_limited", "unavailable"};
    per_type(m->accepted, "events_accepted_total", "Events accepted (in the stream before the 202), by type.", out);
    svc_buf_printf(out, "# HELP events_rejected_total Events refused, by type and reason.\n"
                        "# TYPE events_rejected_total counter\n");
    for (int t = 0; t <= EVENTS_NTYPES; t++)
        for (int r = 0; r < EVENTS_NREJECT; r++)
            svc_buf_printf(out, "events_rejected_total{type=\"%s\",reason=\"%s\"} %lu\n",
                           t < EVENTS_NTYPES ? events_type_names[t] : "unknown", reasons[r],
                           atomic_load_explicit(&m->rejected[t][r], memory_order_relaxed));
    per_type(m->written, "events_written_total", "Events stored by this instance's consumers, by type.", out);
    per_type(m->duplicates, "events_duplicates_total", "Events found stored already (not written again), by type.",
             out);
    per_type(m->dead, "events_dead_letters_total", "Events dead-lettered by this instance's consumers, by type.",
             out);
    svc_buf_printf(out, "# HELP events_batches_total Batches written and acknowledged, by what made them due "
                        "(size: EVENTS_BATCH_MAX events; time: EVENTS_FLUSH_MS after the first; stop: shutdown).\n"
                        "# TYPE events_batches_total counter\n");
    static const char *const triggers[3] = {"size", "time", "stop"};
    for (int i = 0; i < 3; i++)
        svc_buf_printf(out, "events_batches_total{trigger=\"%s\"} %lu\n", triggers[i],
                       atomic_load_explicit(&m->batches_by_trigger[i], memory_order_relaxed));
    counter(atomic_load_explicit(&m->append_pipelines, memory_order_relaxed), "events_append_round_trips_total",
            "Redis round trips that appended accepted events (concurrent requests share one).", out);
    counter(atomic_load_explicit(&m->append_requests, memory_order_relaxed), "events_append_requests_total",
            "Requests whose events those round trips appended (over the round trips: requests per trip).", out);
    counter(atomic_load_explicit(&m->splits, memory_order_relaxed), "events_batch_splits_total",
            "Batches split to isolate events PostgreSQL refused.", out);
    counter(atomic_load_explicit(&m->write_retries, memory_order_relaxed), "events_write_retries_total",
            "Batch writes tried again after a data error.", out);
    counter(atomic_load_explicit(&m->transient_waits, memory_order_relaxed), "events_write_waits_total",
            "Batch writes that waited for PostgreSQL to come back.", out);
    counter(atomic_load_explicit(&m->ack_failures, memory_order_relaxed), "events_ack_failures_total",
            "Acknowledgements that failed and were tried again.", out);
    counter(atomic_load_explicit(&m->malformed, memory_order_relaxed), "events_malformed_entries_total",
            "Stream entries that were not events (acknowledged and dropped).", out);
    hist_render(&m->batch_size, "events_batch_size", "Events per written batch.", out);
    hist_render(&m->write_seconds, "events_batch_write_seconds", "Time to store a batch (all its writes).", out);
    hist_render(&m->commit_seconds, "events_commit_latency_seconds",
                "Per event, from its acceptance (the 202) to its batch's COMMIT.", out);
    gauge(atomic_load_explicit(&m->queue_depth, memory_order_relaxed), "events_queue_depth",
          "Events accepted and not yet written (stream length, sampled).", out);
    svc_buf_printf(out, "# HELP events_queue_lag_seconds Age of the oldest event not yet written (sampled).\n"
                        "# TYPE events_queue_lag_seconds gauge\nevents_queue_lag_seconds %.3f\n",
                   (double)atomic_load_explicit(&m->queue_lag_ms, memory_order_relaxed) / 1000.0);
    gauge(atomic_load_explicit(&m->redis_used_memory, memory_order_relaxed), "events_redis_used_memory_bytes",
          "Redis used_memory (sampled).", out);
    gauge(atomic_load_explicit(&m->backpressure, memory_order_relaxed) ? 1 : 0, "events_backpressure",
          "1 while over a high-water mark (new events answered 503).", out);
}
