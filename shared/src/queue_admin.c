/* Operators' views of the job queues: which queues exist, their per-minute throughput and the
 * jobs in their streams (see svc/queue.h). Read-only except for nothing: every change of a job's
 * state stays a script in queue.c.
 *
 * The set of queues is discovered from Redis (q:known, kept by every worker's maintenance
 * thread), so a dashboard needs no list of its own and sees a queue as soon as a worker of any
 * instance runs on it. Per-minute counters are written by the finish and reclaim scripts
 * (q:{name}:stats:m:<unix minute>); reading the last hour is one pipelined round trip. */
#include "queue_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int queue_name_cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void svc_queue_names_free(char **names, size_t n) {
    if (!names) return;
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

svc_status svc_queue_known(struct svc_redis_pool *pool, char ***names, size_t *n) {
    svc_status st;
    redisContext *c = svc_redis_acquire(pool, -1, &st);
    if (!c) return st;
    errno = 0;
    redisReply *r = redisCommand(c, "SMEMBERS %s", QUEUE_KNOWN_KEY);
    if (!r) st = svcq_io_status(c, errno);
    svc_redis_release(pool, c);
    if (!r) return st;
    if (r->type != REDIS_REPLY_ARRAY) {
        st = r->type == REDIS_REPLY_ERROR ? svcq_reply_error_status(r) : SVC_INTERNAL;
        freeReplyObject(r);
        return st;
    }
    char **list = calloc(r->elements ? r->elements : 1, sizeof(*list));
    size_t k = 0;
    for (size_t i = 0; list && i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len == 0 || e->len > SVC_QUEUE_NAME_MAX) continue;
        if (!(list[k] = strndup(e->str, e->len))) {
            svc_queue_names_free(list, k);
            list = NULL;
            break;
        }
        k++;
    }
    freeReplyObject(r);
    if (!list) return SVC_INTERNAL;
    qsort(list, k, sizeof(*list), queue_name_cmp);
    *names = list;
    *n = k;
    return SVC_OK;
}

/* Reads the Redis clock on c: Unix ms, or -1 with *st set. */
static int64_t queue_redis_now_ms(redisContext *c, svc_status *st) {
    errno = 0;
    redisReply *r = redisCommand(c, "TIME");
    if (!r) {
        *st = svcq_io_status(c, errno);
        return -1;
    }
    int64_t ms = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_STRING)
        ms = strtoll(r->element[0]->str, NULL, 10) * 1000 + strtoll(r->element[1]->str, NULL, 10) / 1000;
    freeReplyObject(r);
    if (ms < 0) *st = SVC_INTERNAL;
    return ms;
}

svc_status svc_queue_minutes(struct svc_queue *q, int n, struct svc_queue_minute *out) {
    if (n < 1 || n > 120 || !out) return SVC_INVALID;
    svc_status st = SVC_OK;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return st;
    int64_t now = queue_redis_now_ms(c, &st);
    if (now < 0) {
        svc_redis_release(q->pool, c);
        return st;
    }
    int64_t last = now / 60000;
    for (int i = 0; i < n; i++) {
        int64_t m = last - (n - 1) + i;
        out[i] = (struct svc_queue_minute){.minute_ms = m * 60000};
        redisAppendCommand(c, "HMGET %s:m:%lld c f", q->k_stats, (long long)m);
    }
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        errno = 0;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            st = svcq_io_status(c, errno);
            break;   /* the context is dead: the pool replaces it */
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
            out[i].completed = svcq_int_field(r->element[0]);
            out[i].failed = svcq_int_field(r->element[1]);
        } else if (st == SVC_OK) {
            st = r->type == REDIS_REPLY_ERROR ? svcq_reply_error_status(r) : SVC_INTERNAL;
        }
        freeReplyObject(r);
    }
    svc_redis_release(q->pool, c);
    return st;
}

svc_status svc_queue_recent(struct svc_queue *q, int count, struct svc_queue_job_info **out, size_t *n) {
    if (count < 1 || count > 1000 || !out || !n) return SVC_INVALID;
    svc_status st = SVC_OK;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return st;
    /* the entries, and which of them are delivered (pending in the group) */
    redisAppendCommand(c, "XREVRANGE %s + - COUNT %d", q->k_stream, count);
    redisAppendCommand(c, "XPENDING %s %s - + %d", q->k_stream, QUEUE_GROUP, count);
    redisReply *r = NULL, *p = NULL;
    errno = 0;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || redisGetReply(c, (void **)&p) != REDIS_OK) {
        st = svcq_io_status(c, errno);
        if (r) freeReplyObject(r);
        svc_redis_release(q->pool, c);
        return st;
    }
    svc_redis_release(q->pool, c);
    if (r->type != REDIS_REPLY_ARRAY) {
        st = r->type == REDIS_REPLY_ERROR ? svcq_reply_error_status(r) : SVC_INTERNAL;
        freeReplyObject(r);
        freeReplyObject(p);
        return st;
    }
    struct svc_queue_job_info *list = calloc(r->elements ? r->elements : 1, sizeof(*list));
    if (!list) {
        freeReplyObject(r);
        freeReplyObject(p);
        return SVC_INTERNAL;
    }
    size_t k = 0;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        struct svc_queue_job_info *j = &list[k++];
        svcq_copy_field(j->entry_id, sizeof(j->entry_id), e->element[0]);
        const redisReply *f = e->element[1];
        svcq_copy_field(j->id, sizeof(j->id), svcq_field(f, "j"));
        svcq_copy_field(j->error, sizeof(j->error), svcq_field(f, "e"));
        j->attempts = (int)svcq_int_field(svcq_field(f, "a"));
        j->max_attempts = (int)svcq_int_field(svcq_field(f, "m"));
        j->enqueued_ms = svcq_int_field(svcq_field(f, "t"));
        /* a missing group (no worker yet) answers an error: nothing is running then */
        for (size_t x = 0; p->type == REDIS_REPLY_ARRAY && x < p->elements; x++) {
            const redisReply *pe = p->element[x];
            if (pe->type == REDIS_REPLY_ARRAY && pe->elements >= 1 && pe->element[0]->type == REDIS_REPLY_STRING &&
                !strcmp(pe->element[0]->str, j->entry_id)) {
                j->running = true;
                break;
            }
        }
    }
    freeReplyObject(r);
    freeReplyObject(p);
    *out = list;
    *n = k;
    return SVC_OK;
}
