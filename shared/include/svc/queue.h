/* Durable job queue on Redis Streams with consumer groups (at-least-once, retries, dead letters).
 *
 * Semantics (docs/architecture.md, "Job queue", has the long form):
 *  - A queue has a name ([A-Za-z0-9._-], 1..64 chars). Its keys share the hash tag {name}, so a
 *    queue lives on one Redis Cluster slot and every Lua script touches keys of one slot only:
 *      q:{name}:stream   ready and in-flight jobs (a stream; consumer group "workers")
 *      q:{name}:delayed  sorted set of delayed jobs (score = due time, ms, Redis clock)
 *      q:{name}:dead     dead-letter stream (job id, attempts, last error, payload), capped
 *      q:{name}:stats    hash of counters (completed, failed, retried, reclaimed)
 *      q:{name}:id:<id>  idempotency marker of a caller-given job id (expires after dedupe_ttl)
 *      q:{name}:u:<key>  the id of the live job holding a unique key (see "Unique keys")
 *  - A job = id + opaque payload bytes (binary-safe, 0..max_payload bytes) + attempts made so far
 *    + max attempts (total runs including the first). The payload is never logged.
 *  - Enqueue with a caller-given id is idempotent for dedupe_ttl_ms after the first enqueue: a
 *    second enqueue with the same id is a no-op reporting created = false, whatever state the
 *    first job is in (waiting, running, done, dead). Without an id a UUIDv4 is generated.
 *  - Unique keys: a job enqueued with a unique key (and a caller-given id) is refused while another
 *    job holding the same key is live (waiting, delayed, running or being retried): the enqueue
 *    reports created = false with the live job's id. The key is freed when its job completes or
 *    is dead-lettered; it also expires unique_ttl_ms after its job was last enqueued, deferred or
 *    retried, so a job lost with Redis data cannot hold it forever. Use: "at most one job per
 *    tenant and kind", with 409 naming the existing job.
 *  - Delivery is at-least-once: a handler may see a job again (after a crash, a lost Redis reply
 *    or a visibility timeout), so handlers must be idempotent.
 *  - Outcomes: SVC_JOB_OK acknowledges and deletes the entry (completed += 1).
 *    SVC_JOB_RETRY schedules attempt+1 after svc_backoff_delay_ms(policy, attempt-1) (full jitter) or
 *    after the handler's retry_delay_ms, through the delayed set; when no attempt is left the job
 *    goes to the dead stream with its error instead. SVC_JOB_FAIL dead-letters at once.
 *    SVC_JOB_DEFER puts the job back in the delayed set for retry_delay_ms without spending an
 *    attempt (e.g. a rate limit or a lock said "not now": not a failure); counted in deferred.
 *    A job moved to the dead stream counts in failed; a rescheduled one in retried.
 *  - A job whose worker died (crash, SIGKILL, network partition) stays pending in the group; once
 *    it has been idle longer than visibility_timeout_ms a worker's maintenance pass takes it with
 *    XAUTOCLAIM and re-adds it to the stream as a new attempt (the lost run counts as an attempt;
 *    the visibility timeout stands in for the backoff), or dead-letters it when that was the last
 *    attempt ("worker lost"), so a job that kills its worker cannot loop forever.
 *  - While a handler runs, its worker's heartbeat resets the entry's idle time (XCLAIM ... JUSTID,
 *    only while this consumer still owns it) every heartbeat_ms, so a long job is not reclaimed
 *    while its process is alive. With job_timeout_ms > 0 the heartbeat stops after that long and
 *    the job becomes reclaimable (a hung handler then runs twice: it must be idempotent anyway).
 *  - Pruning: an entry is XACKed and XDELed in one script when its job finishes, so the stream
 *    only holds waiting + in-flight jobs; the dead stream is capped (XADD MAXLEN ~ dead_max_len)
 *    and, with dead_max_age_ms, a worker's maintenance pass trims entries dead for longer.
 *  - Stats: waiting = XLEN(stream) - pending, active = pending entries (XPENDING), delayed =
 *    ZCARD, dead = XLEN(dead), completed/failed/retried/reclaimed = counters since creation.
 *  - All due times use the Redis server clock (TIME inside the scripts), so process clocks may
 *    disagree without effect.
 *
 * Threads and connections: struct svc_queue is immutable after svc_queue_new and may be used from
 * any thread; enqueue/stats/dead-letter calls borrow a context from the caller's svc_redis_pool
 * for one round trip. A worker opens its own contexts (one per worker thread + one maintenance
 * thread), never pooled ones, because a blocking XREADGROUP would hold a pooled context for the
 * whole BLOCK time; their command timeout is block_ms + redis->command_timeout_ms.
 *
 * Ownership: svc_queue_new copies the name and options; the pool and logger are borrowed and must
 * outlive the queue and its workers. Payload and id arguments are borrowed for the call. A
 * struct svc_job handed to a handler (id, payload, last_error) is valid only during that call.
 * Lists returned by svc_queue_dead_list are owned by the caller (svc_queue_dead_list_free). */
#ifndef SVC_QUEUE_H
#define SVC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/backoff.h"
#include "svc/log.h"
#include "svc/redisx.h"
#include "svc/status.h"

#define SVC_QUEUE_NAME_MAX 64
#define SVC_QUEUE_JOB_ID_MAX 128              /* caller ids: 1..128 chars of [A-Za-z0-9._:-] */
#define SVC_QUEUE_DEFAULT_MAX_PAYLOAD (1u << 20)  /* 1 MiB */
#define SVC_QUEUE_HARD_MAX_PAYLOAD (16u << 20)    /* max_payload may not exceed this */
#define SVC_QUEUE_ERROR_MAX 256               /* error texts are truncated to this (incl. NUL) */

struct svc_queue;
struct svc_queue_worker;

struct svc_queue_options {
    const char *name;              /* required */
    size_t max_payload;            /* 0: SVC_QUEUE_DEFAULT_MAX_PAYLOAD */
    int max_attempts;              /* default per job; 0: 5 */
    struct svc_backoff_policy backoff; /* retry waits; both 0: base 1000 ms, cap 300000 ms */
    int visibility_timeout_ms;     /* 0: 30000. Every process using the queue must agree. */
    int64_t dedupe_ttl_ms;         /* life of idempotency markers; 0: 86400000 (24 h) */
    long dead_max_len;             /* approximate cap of the dead stream; 0: 100000 */
    int64_t dead_max_age_ms;       /* 0: dead entries stay until the cap; else pruned after this long */
    int64_t unique_ttl_ms;         /* longest life of a unique key (see above); 0: 172800000 (48 h) */
};

/* Validates and copies options. NULL with *st = SVC_INVALID (bad name/option) or SVC_INTERNAL
 * (out of memory). Never talks to Redis. pool and log (may be NULL) are borrowed. */
struct svc_queue *svc_queue_new(struct svc_redis_pool *pool, const struct svc_queue_options *opt,
                                const struct svc_logger *log, svc_status *st);
/* Frees the handle; stop and free its workers first. */
void svc_queue_free(struct svc_queue *q);
const char *svc_queue_name(const struct svc_queue *q);

/* ---- producing ---- */

struct svc_job_options {
    const char *id;        /* NULL: generated UUIDv4 (never deduplicated) */
    int max_attempts;      /* 0: the queue's default */
    int64_t delay_ms;      /* > 0: first delivery not before now + delay (Redis clock) */
    const char *unique_key; /* NULL: none; else (with id) 1..128 chars of [A-Za-z0-9._:-] */
};

/* Adds one job. opt may be NULL. id_out (>= SVC_QUEUE_JOB_ID_MAX + 1 bytes, may be NULL) gets the
 * job id; *created (may be NULL) is false when the caller's id was already enqueued, or when its
 * unique key is held by a live job (id_out then gets that job's id); nothing changes and the call
 * returns SVC_OK.
 * Errors: SVC_INVALID (bad id/options), SVC_TOO_LARGE (payload over max_payload),
 * SVC_UNAVAILABLE / SVC_TIMEOUT (Redis), SVC_INTERNAL (unexpected reply). */
svc_status svc_queue_enqueue(struct svc_queue *q, const void *payload, size_t len,
                             const struct svc_job_options *opt, char *id_out, bool *created);

struct svc_job_spec {
    const void *payload;
    size_t len;
    struct svc_job_options opt;
    bool created;          /* out */
    bool unique_held;      /* out: not created because its unique key is held by a live job */
};

/* Adds n jobs in one pipelined round trip on one pooled context (each job is still added
 * atomically on its own; a failure part-way may leave the first ones added: re-enqueue with ids
 * to be safe). Validates every spec before sending anything. Errors as svc_queue_enqueue. */
svc_status svc_queue_enqueue_many(struct svc_queue *q, struct svc_job_spec *jobs, size_t n);

/* ---- consuming ---- */

typedef enum {
    SVC_JOB_OK = 0,  /* done: acknowledge and delete */
    SVC_JOB_RETRY,   /* transient failure: retry after backoff while attempts remain */
    SVC_JOB_FAIL,    /* permanent failure: dead-letter now */
    SVC_JOB_DEFER    /* not now: back to the delayed set for retry_delay_ms, no attempt spent */
} svc_job_result;

/* What a handler sees. Input fields are valid only during the handler call. */
struct svc_job {
    const char *queue;
    const char *id;
    const unsigned char *payload;   /* NUL-terminated for convenience; len excludes the NUL */
    size_t len;
    int attempt;                    /* 1 for the first run */
    int max_attempts;
    int64_t enqueued_ms;            /* Unix ms (Redis clock) of the first enqueue */
    const char *last_error;         /* error of the previous attempt, NULL on the first */
    void *thread_ctx;               /* what thread_init returned for this worker thread */
    /* outputs */
    char error[SVC_QUEUE_ERROR_MAX]; /* set on RETRY/FAIL: stored with the job; no PII */
    int64_t retry_delay_ms;         /* RETRY: >= 0 overrides the backoff (e.g. Retry-After);
                                       DEFER: the wait (-1: 1000 ms); preset to -1 */
};

typedef svc_job_result (*svc_job_handler)(struct svc_job *job, void *arg);

struct svc_queue_worker_config {
    int concurrency;                       /* worker threads; 0: 1 */
    svc_job_handler handler;               /* required */
    void *arg;                             /* passed to handler, thread_init, thread_fini */
    /* Optional per-thread resources (e.g. a curl handle): called in the worker thread before its
     * first job / after its last. thread_init returning NULL is allowed (no context). */
    void *(*thread_init)(void *arg, int index);
    void (*thread_fini)(void *thread_ctx, void *arg);
    /* Where the worker's own connections go (host, port, password, db, connect_timeout_ms,
     * command_timeout_ms; size/acquire_timeout_ms ignored). Copied. */
    const struct svc_redis_config *redis;
    const char *consumer_prefix;  /* consumer names: <prefix>-<pid>-<rand>-<i>; NULL: hostname */
    int block_ms;                 /* XREADGROUP BLOCK (bounds stop latency); 0: 1000 */
    int maintenance_ms;           /* promote delayed + reclaim pass interval; 0: 250 */
    int heartbeat_ms;             /* 0: visibility_timeout_ms / 3 */
    int job_timeout_ms;           /* 0: heartbeat a running job for as long as it runs */
};

/* Starts concurrency worker threads and one maintenance thread (promotes due delayed jobs,
 * reclaims jobs of dead workers, heartbeats running jobs, forgets idle empty consumers).
 * Returns SVC_OK with *out set; SVC_INVALID for a bad config; SVC_INTERNAL when a thread could not
 * start (nothing is left running). Redis need not be up: workers retry connecting with backoff. */
svc_status svc_queue_worker_start(struct svc_queue *q, const struct svc_queue_worker_config *cfg,
                                  struct svc_queue_worker **out);
/* Asks the workers to stop and returns at once (safe from any thread, not from a signal
 * handler). Workers finish the job in hand (and record its outcome) and take no new one. */
void svc_queue_worker_request_stop(struct svc_queue_worker *w);
/* Requests stop, joins every thread, deletes this worker's consumers from the group when they hold
 * no pending entry, and frees w. NULL is a no-op. */
void svc_queue_worker_free(struct svc_queue_worker *w);

/* Counters of this worker since start (atomics; callable any time from any thread). */
struct svc_queue_worker_counts {
    unsigned long long processed;  /* handler calls */
    unsigned long long succeeded;
    unsigned long long retried;
    unsigned long long dead;       /* dead-lettered by this worker's handler outcomes */
    unsigned long long deferred;   /* put back by SVC_JOB_DEFER */
    unsigned long long lost;       /* outcome not recorded: the job had been reclaimed meanwhile */
    unsigned long long reclaimed;  /* jobs of dead workers re-queued or dead-lettered by this
                                      worker's maintenance thread */
    unsigned long long promoted;   /* delayed jobs moved to the stream by this maintenance thread */
    unsigned long long redis_errors;
};
void svc_queue_worker_counts(struct svc_queue_worker *w, struct svc_queue_worker_counts *out);

/* ---- observing and administration ---- */

struct svc_queue_stats {
    long long waiting, active, delayed, dead;          /* current sizes */
    long long completed, failed, retried, reclaimed;   /* counters */
    long long deferred;
};
/* One atomic read (a read-only script). Errors: SVC_UNAVAILABLE / SVC_TIMEOUT / SVC_INTERNAL. */
svc_status svc_queue_stats(struct svc_queue *q, struct svc_queue_stats *out);

/* The id of the live job holding a unique key: SVC_OK with id_out (>= SVC_QUEUE_JOB_ID_MAX + 1
 * bytes), SVC_NOT_FOUND when none holds it, or a Redis status. */
svc_status svc_queue_unique_get(struct svc_queue *q, const char *unique_key, char *id_out);

/* Removes dead entries older than the queue's dead_max_age_ms (workers do this on their own);
 * *removed may be NULL. SVC_OK without effect when no age is set. */
svc_status svc_queue_prune_dead(struct svc_queue *q, long long *removed);

/* Moves delayed jobs that are due to the stream (at most limit; 0: 1000). *moved may be NULL.
 * Workers do this on their own; exposed for tools and tests. */
svc_status svc_queue_promote_due(struct svc_queue *q, int limit, int *moved);

struct svc_dead_job {
    char entry_id[48];                 /* dead stream entry id */
    char id[SVC_QUEUE_JOB_ID_MAX + 1]; /* job id */
    int attempts;
    int64_t failed_ms;                 /* Unix ms (Redis clock) */
    size_t payload_len;                /* the payload itself is not returned (may hold PII) */
    char error[SVC_QUEUE_ERROR_MAX];
};
/* Lists up to count dead jobs, oldest first, after entry id `after` (NULL or "": from the start).
 * *out (caller frees with svc_queue_dead_list_free) and *n are set on SVC_OK. */
svc_status svc_queue_dead_list(struct svc_queue *q, const char *after, int count,
                               struct svc_dead_job **out, size_t *n);
void svc_queue_dead_list_free(struct svc_dead_job *list);
/* Moves a dead job back to the stream with a fresh attempt budget (attempts = 0, same job id and
 * max attempts). SVC_NOT_FOUND when entry_id is not in the dead stream. */
svc_status svc_queue_dead_requeue(struct svc_queue *q, const char *entry_id);
/* Moves up to max (1..10000) of the oldest dead jobs back to the stream as svc_queue_dead_requeue
 * does, in one script; *moved (may be NULL) gets how many. */
svc_status svc_queue_dead_requeue_all(struct svc_queue *q, int max, int *moved);
/* Deletes one dead job. SVC_NOT_FOUND when entry_id is not in the dead stream. */
svc_status svc_queue_dead_remove(struct svc_queue *q, const char *entry_id);

/* ---- operators' views (shared/src/queue_admin.c) ---- */

/* Names of every queue a worker has run on (the set q:known, refreshed by each worker's
 * maintenance thread), sorted. *names (caller frees with svc_queue_names_free) and *n are set on
 * SVC_OK. pool is borrowed for one round trip. */
svc_status svc_queue_known(struct svc_redis_pool *pool, char ***names, size_t *n);
void svc_queue_names_free(char **names, size_t n);

/* Jobs completed and dead-lettered in one minute (Redis clock). */
struct svc_queue_minute {
    int64_t minute_ms;      /* start of the minute, Unix ms */
    long long completed;
    long long failed;
};
/* The last n (1..120) minutes, oldest first, the current minute last; out has n slots. One
 * pipelined round trip. */
svc_status svc_queue_minutes(struct svc_queue *q, int n, struct svc_queue_minute *out);

/* A job in the stream (waiting or running): no payload, it may hold PII. */
struct svc_queue_job_info {
    char entry_id[48];
    char id[SVC_QUEUE_JOB_ID_MAX + 1];
    int attempts;                      /* attempts made before this delivery */
    int max_attempts;
    int64_t enqueued_ms;               /* Unix ms of the first enqueue */
    bool running;                      /* delivered to a worker and not finished */
    char error[SVC_QUEUE_ERROR_MAX];   /* error of the previous attempt, "" on the first */
};
/* The newest count (1..1000) jobs of the stream, newest first. *out (caller frees with free())
 * and *n are set on SVC_OK. */
svc_status svc_queue_recent(struct svc_queue *q, int count, struct svc_queue_job_info **out, size_t *n);

#endif
