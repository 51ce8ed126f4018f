/* Prometheus figures of job queues (svc/queue.h) for a service's /metrics.
 *
 *   queue_jobs{queue,state}                 gauge: waiting, active, delayed, dead
 *   queue_jobs_processed_total{queue,result} counter: completed, failed (dead-lettered), retried, reclaimed
 *   queue_oldest_job_age_seconds{queue}     gauge: age of the oldest job in the stream (waiting or
 *                                           running), 0 when it is empty: the queue's lag
 *   queue_metrics_up{queue}                 gauge: 1 when Redis answered this scrape, else 0 (and the
 *                                           queue's other lines are left out)
 *
 * These describe the queue as stored in Redis, not this instance: every instance of a service that
 * renders the same queue reports the same values, so aggregate them with max(), never sum().
 * Each render costs two round trips per queue on a pooled Redis connection (the stats script, then
 * XRANGE of the oldest entry with TIME, pipelined): meant for a scrape every few seconds, not per
 * request. Thread-safe: it only uses the pool. */
#ifndef SVC_QUEUE_METRICS_H
#define SVC_QUEUE_METRICS_H

#include "svc/buf.h"
#include "svc/queue.h"

/* Appends the families above for the n queues (borrowed) to out. */
void svc_queue_metrics_render(struct svc_queue *const *queues, int n, struct svc_buf *out);

#endif
