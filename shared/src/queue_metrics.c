/* /metrics lines of job queues: see svc/queue_metrics.h. The sizes and counters come from the
 * queue's own stats script (one consistent snapshot); the lag is the age of the first entry of
 * the stream, whose id is its XADD time in Redis milliseconds, against Redis's own clock (TIME),
 * so process clocks never matter. */
#include <hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "svc/queue_metrics.h"
#include "svc/redisx.h"

struct qm_sample {
    bool up;
    struct svc_queue_stats s;
    double age_s;
};

/* Age in seconds of the oldest stream entry, or -1 when Redis did not answer. */
static double qm_oldest_age(struct svc_queue *q) {
    svc_status st;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return -1;
    double age = -1;
    redisReply *first = NULL, *now = NULL;
    if (redisAppendCommand(c, "XRANGE %s - + COUNT 1", q->k_stream) != REDIS_OK ||
        redisAppendCommand(c, "TIME") != REDIS_OK)
        goto out;
    if (redisGetReply(c, (void **)&first) != REDIS_OK || redisGetReply(c, (void **)&now) != REDIS_OK) goto out;
    if (!first || first->type != REDIS_REPLY_ARRAY || !now || now->type != REDIS_REPLY_ARRAY ||
        now->elements != 2 || now->element[0]->type != REDIS_REPLY_STRING)
        goto out;
    age = 0;
    if (first->elements > 0 && first->element[0]->type == REDIS_REPLY_ARRAY && first->element[0]->elements > 0 &&
        first->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        long long added_ms = strtoll(first->element[0]->element[0]->str, NULL, 10);
        long long now_ms = strtoll(now->element[0]->str, NULL, 10) * 1000 +
                           strtoll(now->element[1]->str, NULL, 10) / 1000;
        if (added_ms > 0 && now_ms > added_ms) age = (double)(now_ms - added_ms) / 1000.0;
    }
out:
    if (first) freeReplyObject(first);
    if (now) freeReplyObject(now);
    svc_redis_release(q->pool, c);
    return age;
}

void svc_queue_metrics_render(struct svc_queue *const *queues, int n, struct svc_buf *out) {
    if (n <= 0) return;
    struct qm_sample *smp = calloc((size_t)n, sizeof *smp);
    if (!smp) return;
    for (int i = 0; i < n; i++) {
        smp[i].up = svc_queue_stats(queues[i], &smp[i].s) == SVC_OK;
        if (smp[i].up) {
            smp[i].age_s = qm_oldest_age(queues[i]);
            smp[i].up = smp[i].age_s >= 0;
        }
    }
    svc_buf_printf(out, "# HELP queue_metrics_up 1 when the queue's figures could be read from Redis\n"
                        "# TYPE queue_metrics_up gauge\n");
    for (int i = 0; i < n; i++)
        svc_buf_printf(out, "queue_metrics_up{queue=\"%s\"} %d\n", svc_queue_name(queues[i]), smp[i].up ? 1 : 0);
    svc_buf_printf(out, "# HELP queue_jobs Jobs in the queue by state (the queue's, same from every instance)\n"
                        "# TYPE queue_jobs gauge\n");
    for (int i = 0; i < n; i++) {
        if (!smp[i].up) continue;
        const char *name = svc_queue_name(queues[i]);
        svc_buf_printf(out,
                       "queue_jobs{queue=\"%s\",state=\"waiting\"} %lld\nqueue_jobs{queue=\"%s\",state=\"active\"} %lld\n"
                       "queue_jobs{queue=\"%s\",state=\"delayed\"} %lld\nqueue_jobs{queue=\"%s\",state=\"dead\"} %lld\n",
                       name, smp[i].s.waiting, name, smp[i].s.active, name, smp[i].s.delayed, name, smp[i].s.dead);
    }
    svc_buf_printf(out, "# HELP queue_jobs_processed_total Job outcomes since the queue was created (the queue's, same from every instance)\n"
                        "# TYPE queue_jobs_processed_total counter\n");
    for (int i = 0; i < n; i++) {
        if (!smp[i].up) continue;
        const char *name = svc_queue_name(queues[i]);
        svc_buf_printf(out,
                       "queue_jobs_processed_total{queue=\"%s\",result=\"completed\"} %lld\n"
                       "queue_jobs_processed_total{queue=\"%s\",result=\"failed\"} %lld\n"
                       "queue_jobs_processed_total{queue=\"%s\",result=\"retried\"} %lld\n"
                       "queue_jobs_processed_total{queue=\"%s\",result=\"reclaimed\"} %lld\n",
                       name, smp[i].s.completed, name, smp[i].s.failed, name, smp[i].s.retried, name,
                       smp[i].s.reclaimed);
    }
    svc_buf_printf(out, "# HELP queue_oldest_job_age_seconds Age of the oldest waiting or running job (0: empty)\n"
                        "# TYPE queue_oldest_job_age_seconds gauge\n");
    for (int i = 0; i < n; i++)
        if (smp[i].up)
            svc_buf_printf(out, "queue_oldest_job_age_seconds{queue=\"%s\"} %.3f\n", svc_queue_name(queues[i]), smp[i].age_s);
    free(smp);
}
