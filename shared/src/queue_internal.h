/* Private to queue.c and queue_worker.c: the queue handle, its Lua scripts and the helpers both
 * files use to run them. Not installed under include/: nothing outside the queue sees these. */
#ifndef SVC_QUEUE_INTERNAL_H
#define SVC_QUEUE_INTERNAL_H

#include <hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/queue.h"

#define QUEUE_GROUP "workers"
#define QUEUE_REAPER "reaper"
#define QUEUE_KEY_MAX 96
#define QUEUE_MINUTE_TTL_MS "7200000"   /* per-minute counters live two hours */
#define QUEUE_KNOWN_KEY "q:known"        /* set of queue names, kept by the workers */

enum queue_script_id {
    QS_ENQUEUE = 0,
    QS_PROMOTE,
    QS_FINISH,
    QS_RECLAIM,
    QS_HEARTBEAT,
    QS_STATS,
    QS_REQUEUE,
    QS_FORGET,
    QS_REQUEUE_ALL,
    QS_PRUNE_DEAD,
    QS_COUNT
};

struct svc_queue {
    char name[SVC_QUEUE_NAME_MAX + 1];
    char k_stream[QUEUE_KEY_MAX];
    char k_delayed[QUEUE_KEY_MAX];
    char k_dead[QUEUE_KEY_MAX];
    char k_stats[QUEUE_KEY_MAX];
    char k_id_prefix[QUEUE_KEY_MAX];   /* q:{name}:id: */
    char k_unique_prefix[QUEUE_KEY_MAX]; /* q:{name}:u: */
    size_t max_payload;
    int max_attempts;
    struct svc_backoff_policy backoff;
    int visibility_timeout_ms;
    int64_t dedupe_ttl_ms;
    int64_t unique_ttl_ms;
    int64_t dead_max_age_ms;            /* 0: dead entries are kept (up to dead_max_len) */
    long dead_max_len;
    struct svc_redis_pool *pool;        /* borrowed */
    const struct svc_logger *log;       /* borrowed, may be NULL */
    char sha[QS_COUNT][41];             /* SHA1 hex of each script, for EVALSHA */
};

/* Runs script `id` on c with keys then args (binary-safe: lens may be NULL for C strings).
 * Falls back to EVAL when the server answers NOSCRIPT. Returns the reply (caller frees) or NULL
 * with *st = SVC_TIMEOUT / SVC_UNAVAILABLE (c->err is then set: the context is dead). An error
 * reply is returned as is. */
redisReply *svcq_eval(const struct svc_queue *q, redisContext *c, enum queue_script_id id,
                       int nkeys, const char *const *keys, int nargs, const char *const *args,
                       const size_t *arg_lens, svc_status *st);

/* Status for a failed hiredis call (reply NULL) on c, given errno saved right after it. */
svc_status svcq_io_status(const redisContext *c, int saved_errno);
/* Status for an error reply: OOM/LOADING/BUSY/READONLY/... are SVC_UNAVAILABLE, others SVC_INTERNAL. */
svc_status svcq_reply_error_status(const redisReply *r);

/* Value of field `name` in a flat [field, value, ...] array reply, or NULL. */
const redisReply *svcq_field(const redisReply *arr, const char *name);

int64_t svcq_mono_ms(void);

/* Copies a string reply into dst (cap bytes, truncated, always terminated; "" for anything else). */
void svcq_copy_field(char *dst, size_t cap, const redisReply *v);
/* A string reply read as a decimal integer (0 for anything else). */
long long svcq_int_field(const redisReply *v);

#endif
