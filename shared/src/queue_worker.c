/* Job queue workers: N consumer threads and one maintenance thread per svc_queue_worker
 * (see svc/queue.h for the contract, queue.c for the scripts).
 *
 * Each consumer thread owns one redisContext (never a pooled one: XREADGROUP BLOCK holds its
 * connection for block_ms) whose command timeout is block_ms + the configured command timeout, so
 * a blocked read is never mistaken for a dead server. It reads one entry at a time (COUNT 1: a
 * worker never holds jobs it is not running, so a busy worker cannot starve an idle one), runs the
 * handler, and records the outcome with the finish script. A finish whose reply is lost is sent
 * again on a new connection: the script checks ownership first, so a repeat is harmless.
 *
 * The maintenance thread (its own context) promotes due delayed jobs, reclaims jobs of dead
 * workers (XAUTOCLAIM after visibility_timeout_ms), heartbeats the jobs its consumer threads are
 * running (XCLAIM JUSTID, ownership checked in the script) and forgets consumers that have been
 * idle for an hour with nothing pending. It keeps running until the consumer threads have been
 * joined, so a job finishing during a graceful stop is still heartbeated.
 *
 * Synchronisation: w->mu guards each thread's in-flight entry id (written by the consumer thread,
 * read by the maintenance thread) and the condition variable the maintenance thread sleeps on.
 * The stop flags and counters are C11 atomics. */
#include "queue_internal.h"
#include "svc/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/cid.h"

#define WORKER_FINISH_TRIES 5
#define WORKER_FORGET_IDLE_MS 3600000
#define WORKER_FORGET_EVERY_MS 60000
#define WORKER_RECLAIM_COUNT 100
#define WORKER_PROMOTE_LIMIT 1000

struct worker_thread {
    struct svc_queue_worker *w;
    int index;
    pthread_t th;
    bool started;
    char consumer[128];
    redisContext *c;
    uint64_t rng;
    void *tctx;          /* from cfg.thread_init */
    /* guarded by w->mu */
    char inflight[48];   /* entry id being handled, "" when idle */
    int64_t inflight_since_ms;
};

struct svc_queue_worker {
    struct svc_queue *q;
    struct svc_queue_worker_config cfg;  /* redis and consumer_prefix point into the copies below */
    struct svc_redis_config redis;
    char *host;
    char *password;
    char prefix[64];
    int cmd_timeout_ms;

    atomic_bool stop;        /* consumer threads: take no new job */
    atomic_bool maint_stop;  /* maintenance thread: set once the consumers are joined */
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* CLOCK_MONOTONIC; wakes the maintenance thread and sleepers */

    struct worker_thread *threads;
    int n;
    pthread_t maint;
    bool maint_started;
    redisContext *mc;        /* maintenance context */
    uint64_t mrng;
    char reclaim_cursor[48];
    char maint_name[128];    /* client name of the maintenance connection */

    _Atomic unsigned long long processed, succeeded, retried, dead, lost, reclaimed, promoted,
        redis_errors, deferred;
};

/* ---- connections ---- */

static struct timeval worker_tv(int ms) {
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000L};
}

static bool worker_setup_ok(redisContext *c, redisReply *r) {
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    return ok && !c->err;
}

/* Opens a ready context (AUTH, SELECT, CLIENT SETNAME queue:<queue>:<who>, so CLIENT LIST shows
 * which connections are queue workers) with the given command timeout; NULL when unreachable. */
static redisContext *worker_connect(struct svc_queue_worker *w, int command_timeout_ms, const char *who) {
    int ct = w->redis.connect_timeout_ms > 0 ? w->redis.connect_timeout_ms : 1000;
    redisContext *c = redisConnectWithTimeout(w->host, w->redis.port, worker_tv(ct));
    if (!c) return NULL;
    bool ok = !c->err && redisSetTimeout(c, worker_tv(command_timeout_ms)) == REDIS_OK;
    if (ok && w->password) ok = worker_setup_ok(c, redisCommand(c, "AUTH %s", w->password));
    if (ok && w->redis.db != 0) ok = worker_setup_ok(c, redisCommand(c, "SELECT %d", w->redis.db));
    if (ok) ok = worker_setup_ok(c, redisCommand(c, "CLIENT SETNAME queue:%s:%s", w->q->name, who));
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Sleeps up to ms or until the given stop flag is set. */
static void worker_sleep(struct svc_queue_worker *w, atomic_bool *flag, int64_t ms) {
    if (ms <= 0) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!atomic_load(flag)) {
        if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&w->mu);
}

static void worker_log(const struct svc_queue_worker *w, svc_log_level lv, const char *msg,
                       const char *job_id, int attempt, const char *error) {
    const struct svc_logger *log = w->q->log;
    if (!log) return;
    json_t *f = json_pack("{s:s}", "queue", w->q->name);
    if (!f) return;
    if (job_id) json_object_set_new(f, "job_id", json_string(job_id));
    if (attempt > 0) json_object_set_new(f, "attempt", json_integer(attempt));
    if (error) json_object_set_new(f, "error", json_string(error));
    svc_log(log, lv, NULL, msg, f);
    json_decref(f);
}

/* Creates the consumer group (from the start of the stream, so jobs added before any worker ran
 * are delivered); an existing group is fine. */
static bool worker_ensure_group(struct svc_queue_worker *w, redisContext *c) {
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", w->q->k_stream, QUEUE_GROUP);
    if (!r) return false;
    bool ok = r->type == REDIS_REPLY_STATUS ||
              (r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "BUSYGROUP", 9) == 0);
    if (!ok) worker_log(w, SVC_LOG_ERROR, "queue group create failed", NULL, 0, r->str);
    freeReplyObject(r);
    return ok;
}

/* ---- consumer threads ---- */

static void worker_set_inflight(struct worker_thread *t, const char *entry) {
    pthread_mutex_lock(&t->w->mu);
    snprintf(t->inflight, sizeof(t->inflight), "%s", entry ? entry : "");
    t->inflight_since_ms = svcq_mono_ms();
    pthread_mutex_unlock(&t->w->mu);
}

/* Records the outcome; retries on a new connection when the reply is lost. Returns the script's
 * answer ("ok", "retry", "deferred", "dead", "lost") or NULL when it could not be recorded (the job
 * then stays pending and is reclaimed after the visibility timeout). */
static const char *worker_finish(struct worker_thread *t, const char *entry, const char *outcome,
                                 int64_t delay_ms, const char *error) {
    struct svc_queue_worker *w = t->w;
    struct svc_queue *q = w->q;
    char delay[24], maxlen[24], uttl[24];
    snprintf(delay, sizeof(delay), "%lld", (long long)(delay_ms > 0 ? delay_ms : 0));
    snprintf(maxlen, sizeof(maxlen), "%ld", q->dead_max_len);
    snprintf(uttl, sizeof(uttl), "%lld", (long long)q->unique_ttl_ms);
    const char *keys[] = {q->k_stream, q->k_delayed, q->k_dead, q->k_stats};
    const char *args[] = {QUEUE_GROUP, t->consumer, entry, outcome, delay, error ? error : "", maxlen,
                          q->k_unique_prefix, uttl};
    for (int attempt = 0; attempt < WORKER_FINISH_TRIES; attempt++) {
        if (attempt > 0) worker_sleep(w, &w->maint_stop, 50LL << attempt);
        if (!t->c) t->c = worker_connect(w, w->cmd_timeout_ms, t->consumer);
        if (!t->c) continue;
        svc_status st;
        redisReply *r = svcq_eval(q, t->c, QS_FINISH, 4, keys, 9, args, NULL, &st);
        if (!r) {
            atomic_fetch_add(&w->redis_errors, 1);
            redisFree(t->c);
            t->c = NULL;
            continue;
        }
        const char *res = NULL;
        if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) {
            static const char *const answers[] = {"ok", "retry", "deferred", "dead", "lost"};
            for (size_t i = 0; i < 5; i++)
                if (r->str && strcmp(r->str, answers[i]) == 0) res = answers[i];
        }
        if (!res) {
            atomic_fetch_add(&w->redis_errors, 1);
            worker_log(w, SVC_LOG_ERROR, "queue finish failed", NULL, 0,
                       r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
        }
        freeReplyObject(r);
        if (res) return res;
    }
    return NULL;
}

/* Runs one delivered entry [id, [field, value, ...]] through the handler and records it. */
static void worker_handle_entry(struct worker_thread *t, const redisReply *ent) {
    struct svc_queue_worker *w = t->w;
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 ||
        ent->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *entry = ent->element[0]->str;
    const redisReply *f = ent->element[1];
    const redisReply *j = svcq_field(f, "j"), *a = svcq_field(f, "a"), *m = svcq_field(f, "m");
    const redisReply *p = svcq_field(f, "p"), *tt = svcq_field(f, "t"), *e = svcq_field(f, "e");
    if (!j || !a || !m || !p || j->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING) {
        /* Not written by this library (or the entry was deleted): dead-letter, never run. */
        worker_log(w, SVC_LOG_ERROR, "queue entry malformed", NULL, 0, entry);
        if (worker_finish(t, entry, "fail", 0, "malformed queue entry"))
            atomic_fetch_add(&w->dead, 1);
        return;
    }
    struct svc_job job = {
        .queue = w->q->name,
        .id = j->str,
        .payload = (const unsigned char *)p->str,   /* hiredis NUL-terminates bulk strings */
        .len = p->len,
        .attempt = (int)strtol(a->str ? a->str : "0", NULL, 10) + 1,
        .max_attempts = (int)strtol(m->str ? m->str : "1", NULL, 10),
        .enqueued_ms = tt && tt->str ? strtoll(tt->str, NULL, 10) : 0,
        .last_error = e && e->type == REDIS_REPLY_STRING ? e->str : NULL,
        .thread_ctx = t->tctx,
        .retry_delay_ms = -1,
    };
    job.error[0] = '\0';
    /* The job's span (svc/trace.h): continues the trace of whoever enqueued it (field tp), so the
     * handler's log lines and calls carry that trace id; a job without one starts a trace. */
    const redisReply *tp = svcq_field(f, "tp");
    struct svc_trace tr;
    svc_trace_begin(&tr, tp && tp->type == REDIS_REPLY_STRING ? tp->str : NULL, NULL);
    svc_trace_set(&tr);

    worker_set_inflight(t, entry);
    svc_job_result res = w->cfg.handler(&job, w->cfg.arg);
    worker_set_inflight(t, NULL);
    atomic_fetch_add(&w->processed, 1);

    const char *outcome = res == SVC_JOB_OK      ? "ok"
                          : res == SVC_JOB_RETRY ? "retry"
                          : res == SVC_JOB_DEFER ? "defer"
                                                 : "fail";
    int64_t delay = 0;
    if (res == SVC_JOB_DEFER) delay = job.retry_delay_ms >= 0 ? job.retry_delay_ms : 1000;
    if (res == SVC_JOB_RETRY) {
        delay = job.retry_delay_ms >= 0
                    ? job.retry_delay_ms
                    : (int64_t)svc_backoff_delay_ms(&w->q->backoff, (unsigned)(job.attempt - 1),
                                                svc_backoff_splitmix64, &t->rng);
    }
    if ((res == SVC_JOB_RETRY || res == SVC_JOB_FAIL) && !job.error[0])
        snprintf(job.error, sizeof(job.error), "%s", res == SVC_JOB_RETRY ? "retryable failure" : "failed");
    job.error[sizeof(job.error) - 1] = '\0';

    const char *done = worker_finish(t, entry, outcome, delay, res == SVC_JOB_OK ? NULL : job.error);
    if (done && strcmp(done, "deferred") == 0) {
        atomic_fetch_add(&w->deferred, 1);
        return;
    }
    if (!done) {
        worker_log(w, SVC_LOG_WARN, "queue outcome not recorded; job will be reclaimed", job.id,
                   job.attempt, NULL);
    } else if (strcmp(done, "ok") == 0) {
        atomic_fetch_add(&w->succeeded, 1);
    } else if (strcmp(done, "retry") == 0) {
        atomic_fetch_add(&w->retried, 1);
        worker_log(w, SVC_LOG_WARN, "queue job failed; will retry", job.id, job.attempt, job.error);
    } else if (strcmp(done, "dead") == 0) {
        atomic_fetch_add(&w->dead, 1);
        worker_log(w, SVC_LOG_ERROR, "queue job dead-lettered", job.id, job.attempt, job.error);
    } else {
        atomic_fetch_add(&w->lost, 1);
        worker_log(w, SVC_LOG_WARN, "queue job was reclaimed while running; outcome dropped", job.id,
                   job.attempt, NULL);
    }
    svc_trace_set(NULL);
}

/* Waits after the fails-th consecutive connection failure (100 ms doubling to 5 s, jittered). */
static void worker_backoff(struct svc_queue_worker *w, atomic_bool *flag, unsigned fails, uint64_t *rng) {
    struct svc_backoff_policy p = {.base_ms = 100, .cap_ms = 5000};
    uint32_t d = svc_backoff_delay_ms(&p, fails, svc_backoff_splitmix64, rng);
    worker_sleep(w, flag, d < 20 ? 20 : d);
}

static void *worker_main(void *arg) {
    struct worker_thread *t = arg;
    struct svc_queue_worker *w = t->w;
    if (w->cfg.thread_init) t->tctx = w->cfg.thread_init(w->cfg.arg, t->index);
    unsigned fails = 0;
    bool group_ok = false;
    while (!atomic_load(&w->stop)) {
        if (!t->c) {
            t->c = worker_connect(w, w->cmd_timeout_ms, t->consumer);
            group_ok = false;
            if (!t->c) {
                atomic_fetch_add(&w->redis_errors, 1);
                if (fails == 0 && t->index == 0)
                    worker_log(w, SVC_LOG_WARN, "queue worker cannot reach redis; retrying", NULL, 0, NULL);
                worker_backoff(w, &w->stop, fails++, &t->rng);
                continue;
            }
        }
        if (!group_ok) {
            if (!worker_ensure_group(w, t->c)) {
                atomic_fetch_add(&w->redis_errors, 1);
                if (t->c->err) {
                    redisFree(t->c);
                    t->c = NULL;
                }
                worker_backoff(w, &w->stop, fails++, &t->rng);
                continue;
            }
            group_ok = true;
        }
        redisReply *r = redisCommand(t->c, "XREADGROUP GROUP %s %s COUNT 1 BLOCK %d STREAMS %s >",
                                     QUEUE_GROUP, t->consumer, w->cfg.block_ms, w->q->k_stream);
        if (!r) {
            atomic_fetch_add(&w->redis_errors, 1);
            redisFree(t->c);
            t->c = NULL;
            worker_backoff(w, &w->stop, fails++, &t->rng);
            continue;
        }
        fails = 0;
        if (r->type == REDIS_REPLY_ERROR) {
            atomic_fetch_add(&w->redis_errors, 1);
            if (r->str && strncmp(r->str, "NOGROUP", 7) == 0) {
                group_ok = false;   /* the stream was deleted: recreate the group */
            } else {
                worker_log(w, SVC_LOG_ERROR, "queue read failed", NULL, 0, r->str);
                worker_backoff(w, &w->stop, 3, &t->rng);
            }
        } else if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t s = 0; s < r->elements; s++) {
                const redisReply *sr = r->element[s];
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
                    sr->element[1]->type != REDIS_REPLY_ARRAY)
                    continue;
                for (size_t i = 0; i < sr->element[1]->elements; i++)
                    worker_handle_entry(t, sr->element[1]->element[i]);
            }
        }
        freeReplyObject(r);
    }
    if (t->c) redisFree(t->c);
    t->c = NULL;
    if (w->cfg.thread_fini) w->cfg.thread_fini(t->tctx, w->cfg.arg);
    return NULL;
}

/* ---- maintenance thread ---- */

/* Runs a script on the maintenance context; NULL on failure (context dropped when dead). */
static redisReply *maint_eval(struct svc_queue_worker *w, enum queue_script_id id, int nkeys,
                              const char *const *keys, int nargs, const char *const *args) {
    if (!w->mc) return NULL;
    svc_status st;
    redisReply *r = svcq_eval(w->q, w->mc, id, nkeys, keys, nargs, args, NULL, &st);
    if (!r) {
        atomic_fetch_add(&w->redis_errors, 1);
        redisFree(w->mc);
        w->mc = NULL;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        atomic_fetch_add(&w->redis_errors, 1);
        worker_log(w, SVC_LOG_ERROR, "queue maintenance script failed", NULL, 0, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Adds the queue's name to the set of known queues (QUEUE_KNOWN_KEY), so operators' tools find
 * every queue in Redis without a list of their own. Repeated with the consumer clean-up. */
static void maint_register(struct svc_queue_worker *w) {
    if (!w->mc) return;
    redisReply *r = redisCommand(w->mc, "SADD %s %s", QUEUE_KNOWN_KEY, w->q->name);
    if (!r) {
        atomic_fetch_add(&w->redis_errors, 1);
        redisFree(w->mc);
        w->mc = NULL;
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) atomic_fetch_add(&w->redis_errors, 1);
    freeReplyObject(r);
}

static void maint_promote(struct svc_queue_worker *w) {
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", WORKER_PROMOTE_LIMIT);
    const char *keys[] = {w->q->k_stream, w->q->k_delayed};
    const char *args[] = {lim};
    for (int round = 0; round < 10; round++) {
        redisReply *r = maint_eval(w, QS_PROMOTE, 2, keys, 1, args);
        if (!r) return;
        long long moved = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
        freeReplyObject(r);
        atomic_fetch_add(&w->promoted, (unsigned long long)moved);
        if (moved < WORKER_PROMOTE_LIMIT) return;
    }
}

static void maint_reclaim(struct svc_queue_worker *w) {
    struct svc_queue *q = w->q;
    char idle[24], count[16], maxlen[24];
    snprintf(idle, sizeof(idle), "%d", q->visibility_timeout_ms);
    snprintf(count, sizeof(count), "%d", WORKER_RECLAIM_COUNT);
    snprintf(maxlen, sizeof(maxlen), "%ld", q->dead_max_len);
    const char *keys[] = {q->k_stream, q->k_dead, q->k_stats};
    /* Follow XAUTOCLAIM's cursor through the pending list, a bounded number of rounds per pass. */
    for (int round = 0; round < 10; round++) {
        const char *args[] = {QUEUE_GROUP, QUEUE_REAPER, idle, count, w->reclaim_cursor, maxlen,
                              "worker lost: visibility timeout exceeded", q->k_unique_prefix};
        redisReply *r = maint_eval(w, QS_RECLAIM, 3, keys, 8, args);
        if (!r) return;
        bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 3 &&
                  r->element[0]->type == REDIS_REPLY_INTEGER &&
                  r->element[1]->type == REDIS_REPLY_INTEGER &&
                  r->element[2]->type == REDIS_REPLY_STRING;
        long long requeued = ok ? r->element[0]->integer : 0, dead = ok ? r->element[1]->integer : 0;
        snprintf(w->reclaim_cursor, sizeof(w->reclaim_cursor), "%s", ok ? r->element[2]->str : "0-0");
        freeReplyObject(r);
        if (requeued + dead > 0) {
            atomic_fetch_add(&w->reclaimed, (unsigned long long)(requeued + dead));
            if (q->log)
                svc_logf(q->log, SVC_LOG_WARN, NULL, "queue reclaimed jobs of lost workers",
                         "{s:s,s:I,s:I}", "queue", q->name, "requeued", (json_int_t)requeued,
                         "dead_lettered", (json_int_t)dead);
        }
        if (strcmp(w->reclaim_cursor, "0-0") == 0) return;
    }
}

static void maint_heartbeat(struct svc_queue_worker *w) {
    int64_t now = svcq_mono_ms();
    for (int i = 0; i < w->n; i++) {
        struct worker_thread *t = &w->threads[i];
        char entry[sizeof(t->inflight)];
        pthread_mutex_lock(&w->mu);
        snprintf(entry, sizeof(entry), "%s", t->inflight);
        int64_t since = t->inflight_since_ms;
        pthread_mutex_unlock(&w->mu);
        if (!entry[0]) continue;
        if (w->cfg.job_timeout_ms > 0 && now - since >= w->cfg.job_timeout_ms) continue;
        const char *keys[] = {w->q->k_stream};
        const char *args[] = {QUEUE_GROUP, t->consumer, entry};
        redisReply *r = maint_eval(w, QS_HEARTBEAT, 1, keys, 3, args);
        if (!r) return;
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0) {
            /* Another worker reclaimed it (our heartbeat came too late): its outcome will be dropped. */
            worker_log(w, SVC_LOG_WARN, "queue job lost its claim while running", NULL, 0, NULL);
        }
        freeReplyObject(r);
    }
}

/* Trims dead entries older than the queue's dead_max_age_ms (when set). */
static void maint_prune_dead(struct svc_queue_worker *w) {
    if (w->q->dead_max_age_ms <= 0) return;
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)w->q->dead_max_age_ms);
    const char *keys[] = {w->q->k_dead};
    const char *args[] = {age};
    redisReply *r = maint_eval(w, QS_PRUNE_DEAD, 1, keys, 1, args);
    if (r) freeReplyObject(r);
}

/* Deletes consumers with nothing pending: ours (any idle time) when ours is true, else every
 * consumer idle for WORKER_FORGET_IDLE_MS. */
static void maint_forget(struct svc_queue_worker *w, bool ours) {
    int nargs = 2 + (ours ? w->n + 1 : 0);
    const char **args = calloc((size_t)nargs, sizeof(*args));
    if (!args) return;
    char idle[24];
    snprintf(idle, sizeof(idle), "%d", ours ? 0 : WORKER_FORGET_IDLE_MS);
    args[0] = QUEUE_GROUP;
    args[1] = idle;
    for (int i = 0; ours && i < w->n; i++) args[2 + i] = w->threads[i].consumer;
    /* The reaper holds entries only inside the reclaim script, so it can always go. */
    if (ours) args[2 + w->n] = QUEUE_REAPER;
    const char *keys[] = {w->q->k_stream};
    redisReply *r = maint_eval(w, QS_FORGET, 1, keys, nargs, args);
    if (r) freeReplyObject(r);
    free(args);
}

static void *maint_main(void *arg) {
    struct svc_queue_worker *w = arg;
    int64_t next_maint = 0, next_hb = 0, next_forget = 0;
    unsigned fails = 0;
    while (!atomic_load(&w->maint_stop)) {
        if (!w->mc) {
            w->mc = worker_connect(w, w->cmd_timeout_ms, w->maint_name);
            if (!w->mc || !worker_ensure_group(w, w->mc)) {
                atomic_fetch_add(&w->redis_errors, 1);
                if (w->mc) {
                    redisFree(w->mc);
                    w->mc = NULL;
                }
                worker_backoff(w, &w->maint_stop, fails++, &w->mrng);
                continue;
            }
            fails = 0;
            /* known as soon as a worker runs, even when it is stopped before its first round */
            maint_register(w);
            if (!w->mc) continue;
        }
        int64_t now = svcq_mono_ms();
        if (now >= next_hb) {
            maint_heartbeat(w);
            next_hb = now + w->cfg.heartbeat_ms;
        }
        if (now >= next_maint && !atomic_load(&w->stop)) {
            maint_promote(w);
            maint_reclaim(w);
            next_maint = now + w->cfg.maintenance_ms;
        }
        if (now >= next_forget && !atomic_load(&w->stop)) {
            maint_register(w);
            maint_forget(w, false);
            maint_prune_dead(w);
            next_forget = now + WORKER_FORGET_EVERY_MS;
        }
        int64_t wake = next_hb < next_maint ? next_hb : next_maint;
        worker_sleep(w, &w->maint_stop, wake - svcq_mono_ms());
    }
    if (!w->mc) w->mc = worker_connect(w, w->cmd_timeout_ms, w->maint_name);
    if (w->mc) {
        maint_forget(w, true);
        if (w->mc) redisFree(w->mc);
        w->mc = NULL;
    }
    return NULL;
}

/* ---- lifecycle ---- */

static void worker_prefix(char *out, size_t cap, const char *given) {
    char host[64] = "worker";
    if (!given || !*given) {
        if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "worker");
        host[sizeof(host) - 1] = '\0';
        given = host;
    }
    size_t n = 0;
    for (const char *p = given; *p && n + 1 < cap && n < 40; p++) {
        unsigned char ch = (unsigned char)*p;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '.' || ch == '_' || ch == '-';
        out[n++] = ok ? (char)ch : '_';
    }
    out[n] = '\0';
    if (n == 0) snprintf(out, cap, "worker");
}

static void worker_destroy(struct svc_queue_worker *w) {
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w->host);
    if (w->password) {
        explicit_bzero(w->password, strlen(w->password));
        free(w->password);
    }
    free(w);
}

/* Stops and joins whatever was started (consumers first, then maintenance). */
static void worker_join_all(struct svc_queue_worker *w) {
    svc_queue_worker_request_stop(w);
    for (int i = 0; i < w->n; i++)
        if (w->threads[i].started) pthread_join(w->threads[i].th, NULL);
    atomic_store(&w->maint_stop, true);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->maint_started) pthread_join(w->maint, NULL);
}

svc_status svc_queue_worker_start(struct svc_queue *q, const struct svc_queue_worker_config *cfg,
                                  struct svc_queue_worker **out) {
    if (!q || !cfg || !out || !cfg->handler || !cfg->redis) return SVC_INVALID;
    if (cfg->concurrency < 0 || cfg->concurrency > 256 || cfg->block_ms < 0 ||
        cfg->maintenance_ms < 0 || cfg->heartbeat_ms < 0 || cfg->job_timeout_ms < 0)
        return SVC_INVALID;
    struct svc_queue_worker *w = calloc(1, sizeof(*w));
    if (!w) return SVC_INTERNAL;
    w->q = q;
    w->cfg = *cfg;
    w->redis = *cfg->redis;
    w->cfg.concurrency = cfg->concurrency ? cfg->concurrency : 1;
    w->cfg.block_ms = cfg->block_ms ? cfg->block_ms : 1000;
    w->cfg.maintenance_ms = cfg->maintenance_ms ? cfg->maintenance_ms : 250;
    w->cfg.heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : q->visibility_timeout_ms / 3;
    if (w->cfg.heartbeat_ms < 10) w->cfg.heartbeat_ms = 10;
    w->cmd_timeout_ms = w->cfg.block_ms + (w->redis.command_timeout_ms > 0 ? w->redis.command_timeout_ms : 500);
    w->host = strdup(w->redis.host && *w->redis.host ? w->redis.host : "127.0.0.1");
    w->password = w->redis.password && *w->redis.password ? strdup(w->redis.password) : NULL;
    w->redis.host = w->host;
    w->redis.password = w->password;
    w->cfg.redis = &w->redis;
    if (w->redis.port <= 0) w->redis.port = 6379;
    worker_prefix(w->prefix, sizeof(w->prefix), cfg->consumer_prefix);
    w->cfg.consumer_prefix = w->prefix;
    snprintf(w->reclaim_cursor, sizeof(w->reclaim_cursor), "0-0");
    w->n = w->cfg.concurrency;
    w->threads = calloc((size_t)w->n, sizeof(*w->threads));
    atomic_init(&w->stop, false);
    atomic_init(&w->maint_stop, false);

    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    bool cv_ok = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&w->cv, &ca) == 0;
    if (ca_ok) pthread_condattr_destroy(&ca);
    bool mu_ok = pthread_mutex_init(&w->mu, NULL) == 0;
    uint32_t tag = 0;
    bool rnd_ok = svc_random_bytes(&tag, sizeof(tag)) == 0 && svc_random_bytes(&w->mrng, sizeof(w->mrng)) == 0;
    if (!w->host || (w->redis.password == NULL && cfg->redis->password && *cfg->redis->password) ||
        !w->threads || !cv_ok || !mu_ok || !rnd_ok) {
        if (cv_ok) pthread_cond_destroy(&w->cv);
        if (mu_ok) pthread_mutex_destroy(&w->mu);
        free(w->threads);
        free(w->host);
        free(w->password);
        free(w);
        return SVC_INTERNAL;
    }

    bool ok = true;
    for (int i = 0; i < w->n && ok; i++) {
        struct worker_thread *t = &w->threads[i];
        t->w = w;
        t->index = i;
        snprintf(t->consumer, sizeof(t->consumer), "%s-%d-%08x-%d", w->prefix, (int)getpid(), tag, i);
        ok = svc_random_bytes(&t->rng, sizeof(t->rng)) == 0 &&
             pthread_create(&t->th, NULL, worker_main, t) == 0;
        t->started = ok;
    }
    snprintf(w->maint_name, sizeof(w->maint_name), "%s-%d-%08x-maint", w->prefix, (int)getpid(), tag);
    if (ok) {
        ok = pthread_create(&w->maint, NULL, maint_main, w) == 0;
        w->maint_started = ok;
    }
    if (!ok) {
        worker_join_all(w);
        worker_destroy(w);
        return SVC_INTERNAL;
    }
    *out = w;
    return SVC_OK;
}

void svc_queue_worker_request_stop(struct svc_queue_worker *w) {
    if (!w) return;
    atomic_store(&w->stop, true);
    pthread_mutex_lock(&w->mu);
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void svc_queue_worker_free(struct svc_queue_worker *w) {
    if (!w) return;
    worker_join_all(w);
    worker_destroy(w);
}

void svc_queue_worker_counts(struct svc_queue_worker *w, struct svc_queue_worker_counts *out) {
    *out = (struct svc_queue_worker_counts){
        .processed = atomic_load(&w->processed),
        .succeeded = atomic_load(&w->succeeded),
        .retried = atomic_load(&w->retried),
        .dead = atomic_load(&w->dead),
        .lost = atomic_load(&w->lost),
        .reclaimed = atomic_load(&w->reclaimed),
        .promoted = atomic_load(&w->promoted),
        .redis_errors = atomic_load(&w->redis_errors),
        .deferred = atomic_load(&w->deferred),
    };
}
