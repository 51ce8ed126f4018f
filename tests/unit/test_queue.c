/* Specification of the durable job queue (svc/queue.h), run against a real Redis.
 *
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (a server without a password); the test runner always
 * provides them, so their absence is a failure, not a skip. Every test uses its own queue named
 * tq-<pid>-<random>-<test>, and deletes its keys at the end. Timeouts are short (visibility 200-500 ms,
 * BLOCK 100 ms, maintenance every 20 ms) so the file runs in a few seconds. A direct hiredis
 * connection plays the other actors: a consumer that reads a job and never acknowledges it, and
 * a look at the raw keys (stream length, dead stream). One test forks a child worker process and
 * SIGKILLs it while it holds a job. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "svc/cid.h"
#include "svc/queue.h"

static const char *g_host;
static int g_port;
static unsigned g_run;   /* random per run: queue names never collide with an earlier run */

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static int group_setup(void **state) {
    g_host = getenv("TEST_REDIS_HOST");
    const char *port = getenv("TEST_REDIS_PORT");
    if (!g_host || !*g_host || !port || atoi(port) <= 0) {
        print_error("test_queue: TEST_REDIS_HOST and TEST_REDIS_PORT must be set (a Redis server "
                    "without a password)\n");
        return -1;
    }
    g_port = atoi(port);
    if (svc_random_bytes(&g_run, sizeof(g_run)) != 0) return -1;
    return 0;
}

/* ---- fixtures ---- */

static redisContext *direct_connect(void) {
    struct timeval tv = {.tv_sec = 2};
    redisContext *c = redisConnectWithTimeout(g_host, g_port, tv);
    assert_non_null(c);
    if (c->err) fail_msg("direct connect: %s", c->errstr);
    return c;
}

static long long direct_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (r->type != REDIS_REPLY_INTEGER) fail_msg("expected an integer reply, got type %d (%s)", r->type, r->str ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static struct svc_redis_config redis_config(void) {
    return (struct svc_redis_config){.host = g_host, .port = g_port, .size = 4,
                                     .connect_timeout_ms = 1000, .command_timeout_ms = 2000,
                                     .acquire_timeout_ms = 2000};
}

/* One test's world: a pool, a queue, its name. */
struct world {
    char name[SVC_QUEUE_NAME_MAX + 1];
    struct svc_redis_config rcfg;
    struct svc_redis_pool *pool;
    struct svc_queue *q;
};

static void world_open(struct world *wd, const char *test, const struct svc_queue_options *given) {
    memset(wd, 0, sizeof(*wd));
    snprintf(wd->name, sizeof(wd->name), "tq-%d-%08x-%s", (int)getpid(), g_run, test);
    wd->rcfg = redis_config();
    wd->pool = svc_redis_pool_new(&wd->rcfg);
    assert_non_null(wd->pool);
    struct svc_queue_options opt = given ? *given : (struct svc_queue_options){0};
    opt.name = wd->name;
    if (!opt.visibility_timeout_ms) opt.visibility_timeout_ms = 5000;
    if (!opt.backoff.base_ms && !opt.backoff.cap_ms) opt.backoff = (struct svc_backoff_policy){.base_ms = 20, .cap_ms = 50};
    svc_status st;
    wd->q = svc_queue_new(wd->pool, &opt, NULL, &st);
    assert_int_equal(st, SVC_OK);
    assert_non_null(wd->q);
}

static void world_close(struct world *wd) {
    redisContext *c = direct_connect();
    redisReply *r = redisCommand(c, "KEYS q:{%s}:*", wd->name);
    assert_non_null(r);
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++)
        freeReplyObject(redisCommand(c, "DEL %s", r->element[i]->str));
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "SREM q:known %s", wd->name));
    redisFree(c);
    svc_queue_free(wd->q);
    svc_redis_pool_free(wd->pool);
}

/* What the handler does and what it saw. */
#define REC_MAX 4096
struct rec {
    pthread_mutex_t mu;
    /* behaviour */
    int retry_while_attempt_below;   /* RETRY while attempt < this */
    int defer_first_calls;           /* DEFER the first n calls (retry_delay_ms) */
    bool always_retry, always_fail;
    int sleep_ms, sleep_first_ms;
    int64_t retry_delay_ms;          /* -1: backoff */
    const unsigned char *expect;     /* expected payload, or NULL */
    size_t expect_len;
    /* observations */
    int calls;
    int attempts[REC_MAX];
    int64_t at_ms[REC_MAX];
    char last_error[REC_MAX][64];
    int per_index[REC_MAX];          /* payloads "i=<n>" */
    int payload_mismatch;
    int init_calls, fini_calls;
};

static void rec_init(struct rec *r) {
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    r->retry_delay_ms = -1;
}

static svc_job_result rec_handler(struct svc_job *job, void *arg) {
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    int n = r->calls++;
    bool first = n == 0;
    if (n < REC_MAX) {
        r->attempts[n] = job->attempt;
        r->at_ms[n] = now_ms();
        snprintf(r->last_error[n], sizeof(r->last_error[n]), "%s", job->last_error ? job->last_error : "");
    }
    int idx;
    if (job->len > 2 && memcmp(job->payload, "i=", 2) == 0 && sscanf((const char *)job->payload, "i=%d", &idx) == 1 &&
        idx >= 0 && idx < REC_MAX)
        r->per_index[idx]++;
    if (r->expect && (job->len != r->expect_len || memcmp(job->payload, r->expect, job->len) != 0))
        r->payload_mismatch++;
    if (job->payload[job->len] != '\0') r->payload_mismatch++;
    int sleep_for = first && r->sleep_first_ms ? r->sleep_first_ms : r->sleep_ms;
    pthread_mutex_unlock(&r->mu);
    if (sleep_for) sleep_ms(sleep_for);
    if (n < r->defer_first_calls) {
        job->retry_delay_ms = r->retry_delay_ms;
        return SVC_JOB_DEFER;
    }
    if (r->always_fail) {
        snprintf(job->error, sizeof(job->error), "permanent %d", job->attempt);
        return SVC_JOB_FAIL;
    }
    if (r->always_retry || job->attempt < r->retry_while_attempt_below) {
        snprintf(job->error, sizeof(job->error), "boom %d", job->attempt);
        job->retry_delay_ms = r->retry_delay_ms;
        return SVC_JOB_RETRY;
    }
    return SVC_JOB_OK;
}

static void *rec_thread_init(void *arg, int index) {
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    r->init_calls++;
    pthread_mutex_unlock(&r->mu);
    return r;
}

static void rec_thread_fini(void *tctx, void *arg) {
    struct rec *r = arg;
    pthread_mutex_lock(&r->mu);
    if (tctx == r) r->fini_calls++;
    pthread_mutex_unlock(&r->mu);
}

static int rec_calls(struct rec *r) {
    pthread_mutex_lock(&r->mu);
    int n = r->calls;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* Waits until the handler ran at least n times; false after timeout_ms. */
static bool wait_calls(struct rec *r, int n, int timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    while (rec_calls(r) < n) {
        if (now_ms() > end) return false;
        sleep_ms(5);
    }
    return true;
}

static struct svc_queue_stats stats_of(struct world *wd) {
    struct svc_queue_stats s;
    assert_int_equal(svc_queue_stats(wd->q, &s), SVC_OK);
    return s;
}

/* Waits until stats satisfy completed + failed >= n (the last outcome is recorded). */
static struct svc_queue_stats wait_finished(struct world *wd, long long n, int timeout_ms) {
    int64_t end = now_ms() + timeout_ms;
    struct svc_queue_stats s = stats_of(wd);
    while (s.completed + s.failed < n && now_ms() < end) {
        sleep_ms(5);
        s = stats_of(wd);
    }
    return s;
}

static struct svc_queue_worker *start_worker(struct world *wd, struct rec *r, int concurrency) {
    struct svc_queue_worker_config cfg = {
        .concurrency = concurrency,
        .handler = rec_handler,
        .arg = r,
        .thread_init = rec_thread_init,
        .thread_fini = rec_thread_fini,
        .redis = &wd->rcfg,
        .consumer_prefix = "test",
        .block_ms = 100,
        .maintenance_ms = 20,
    };
    struct svc_queue_worker *w = NULL;
    assert_int_equal(svc_queue_worker_start(wd->q, &cfg, &w), SVC_OK);
    assert_non_null(w);
    return w;
}

static void enqueue_text(struct world *wd, const char *text, const struct svc_job_options *opt) {
    bool created = false;
    assert_int_equal(svc_queue_enqueue(wd->q, text, strlen(text), opt, NULL, &created), SVC_OK);
    assert_true(created);
}

/* ---- tests ---- */

static void test_enqueued_jobs_are_consumed_and_acknowledged(void **state) {
    struct world wd;
    world_open(&wd, "basic", NULL);
    for (int i = 0; i < 3; i++) {
        char p[16];
        snprintf(p, sizeof(p), "i=%d", i);
        enqueue_text(&wd, p, NULL);
    }
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(s.waiting, 3);
    assert_int_equal(s.active, 0);

    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 3, 5000);
    svc_queue_worker_free(w);

    assert_int_equal(s.completed, 3);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.active, 0);
    assert_int_equal(s.failed, 0);
    assert_int_equal(r.calls, 3);
    for (int i = 0; i < 3; i++) assert_int_equal(r.per_index[i], 1);
    for (int i = 0; i < 3; i++) assert_int_equal(r.attempts[i], 1);
    assert_int_equal(r.init_calls, 1);
    assert_int_equal(r.fini_calls, 1);
    world_close(&wd);
}

static void test_same_job_id_twice_is_one_job(void **state) {
    struct world wd;
    world_open(&wd, "idem", NULL);
    bool created = false;
    char id[SVC_QUEUE_JOB_ID_MAX + 1];
    struct svc_job_options opt = {.id = "run-7:batch-1"};
    assert_int_equal(svc_queue_enqueue(wd.q, "a", 1, &opt, id, &created), SVC_OK);
    assert_true(created);
    assert_string_equal(id, "run-7:batch-1");
    assert_int_equal(svc_queue_enqueue(wd.q, "b", 1, &opt, id, &created), SVC_OK);
    assert_false(created);

    /* The pipelined form deduplicates too, against earlier jobs and within one call. */
    struct svc_job_spec many[3] = {
        {.payload = "c", .len = 1, .opt = {.id = "run-7:batch-1"}},
        {.payload = "d", .len = 1, .opt = {.id = "run-7:batch-2"}},
        {.payload = "e", .len = 1, .opt = {.id = "run-7:batch-2"}},
    };
    assert_int_equal(svc_queue_enqueue_many(wd.q, many, 3), SVC_OK);
    assert_false(many[0].created);
    assert_true(many[1].created);
    assert_false(many[2].created);

    /* Jobs without an id are never deduplicated and get distinct UUIDs. */
    char id1[SVC_QUEUE_JOB_ID_MAX + 1], id2[SVC_QUEUE_JOB_ID_MAX + 1];
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, NULL, id1, NULL), SVC_OK);
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, NULL, id2, NULL), SVC_OK);
    assert_true(svc_uuid_is_valid(id1));
    assert_string_not_equal(id1, id2);
    assert_int_equal(stats_of(&wd).waiting, 4);

    /* Delivered once: the first payload wins. */
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    struct svc_queue_stats s = wait_finished(&wd, 4, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(s.completed, 4);
    assert_int_equal(r.calls, 4);
    world_close(&wd);
}

/* DEFER ("not now", e.g. a rate limit): back to the delayed set after retry_delay_ms, the attempt
 * count unchanged, so a job deferred many times is never dead-lettered for it. */
static void test_deferred_job_keeps_its_attempts(void **state) {
    struct world wd;
    struct svc_queue_options opt = {.max_attempts = 2};
    world_open(&wd, "defer", &opt);
    struct rec r;
    rec_init(&r);
    r.defer_first_calls = 5;
    r.retry_delay_ms = 30;
    enqueue_text(&wd, "i=0", NULL);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    struct svc_queue_worker_counts counts;
    svc_queue_worker_counts(w, &counts);
    svc_queue_worker_free(w);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.retried, 0);
    assert_int_equal(s.deferred, 5);
    assert_int_equal(counts.deferred, 5);
    assert_int_equal(r.calls, 6);
    for (int i = 0; i < 6; i++) assert_int_equal(r.attempts[i], 1);
    for (int i = 1; i < 6; i++) assert_true(r.at_ms[i] - r.at_ms[i - 1] >= 25);
    world_close(&wd);
}

/* A unique key admits one live job: a second enqueue names the live one, and the key is free
 * again once that job completes, or once it is dead-lettered. */
static void test_unique_key_admits_one_live_job(void **state) {
    struct world wd;
    struct svc_queue_options opt = {.max_attempts = 1};
    world_open(&wd, "unique", &opt);
    char id[SVC_QUEUE_JOB_ID_MAX + 1];
    bool created = false;
    struct svc_job_options a = {.id = "customers:t1:s1", .unique_key = "customers:t1", .delay_ms = 50};
    assert_int_equal(svc_queue_enqueue(wd.q, "a", 1, &a, id, &created), SVC_OK);
    assert_true(created);
    struct svc_job_options b = {.id = "customers:t1:m2", .unique_key = "customers:t1"};
    assert_int_equal(svc_queue_enqueue(wd.q, "b", 1, &b, id, &created), SVC_OK);
    assert_false(created);
    assert_string_equal(id, "customers:t1:s1");
    assert_int_equal(svc_queue_unique_get(wd.q, "customers:t1", id), SVC_OK);
    assert_string_equal(id, "customers:t1:s1");
    assert_int_equal(svc_queue_unique_get(wd.q, "products:t1", id), SVC_NOT_FOUND);
    /* Another key is independent; the pipelined form reports a held key. */
    struct svc_job_spec many[2] = {
        {.payload = "c", .len = 1, .opt = {.id = "products:t1:s1", .unique_key = "products:t1"}},
        {.payload = "d", .len = 1, .opt = {.id = "customers:t1:s9", .unique_key = "customers:t1"}},
    };
    assert_int_equal(svc_queue_enqueue_many(wd.q, many, 2), SVC_OK);
    assert_true(many[0].created);
    assert_false(many[1].created);
    assert_true(many[1].unique_held);
    /* A unique key without an id is refused. */
    struct svc_job_options bad = {.unique_key = "k"};
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, &bad, NULL, NULL), SVC_INVALID);

    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    wait_finished(&wd, 2, 5000);
    assert_int_equal(svc_queue_unique_get(wd.q, "customers:t1", id), SVC_NOT_FOUND);
    assert_int_equal(svc_queue_enqueue(wd.q, "b", 1, &b, id, &created), SVC_OK);
    assert_true(created);
    wait_finished(&wd, 3, 5000);
    /* Dead-lettered: the key is freed too. */
    r.always_fail = true;
    struct svc_job_options c = {.id = "customers:t1:m3", .unique_key = "customers:t1"};
    assert_int_equal(svc_queue_enqueue(wd.q, "c", 1, &c, id, &created), SVC_OK);
    assert_true(created);
    struct svc_queue_stats s = wait_finished(&wd, 4, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(s.failed, 1);
    assert_int_equal(svc_queue_unique_get(wd.q, "customers:t1", id), SVC_NOT_FOUND);
    world_close(&wd);
}

/* With dead_max_age_ms, dead entries older than that are trimmed; younger ones stay. */
static void test_dead_entries_are_pruned_by_age(void **state) {
    struct world wd;
    struct svc_queue_options opt = {.max_attempts = 1, .dead_max_age_ms = 300};
    world_open(&wd, "deadage", &opt);
    struct rec r;
    rec_init(&r);
    r.always_fail = true;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    enqueue_text(&wd, "i=0", NULL);
    wait_finished(&wd, 1, 5000);
    sleep_ms(400);
    enqueue_text(&wd, "i=1", NULL);
    wait_finished(&wd, 2, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(stats_of(&wd).dead, 2);
    long long removed = -1;
    assert_int_equal(svc_queue_prune_dead(wd.q, &removed), SVC_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(stats_of(&wd).dead, 1);
    world_close(&wd);
}

static void test_delayed_job_is_not_delivered_before_its_delay(void **state) {
    struct world wd;
    world_open(&wd, "delay", NULL);
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    int64_t t0 = now_ms();
    struct svc_job_options opt = {.delay_ms = 600};
    enqueue_text(&wd, "later", &opt);
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(s.delayed, 1);
    assert_int_equal(s.waiting, 0);
    sleep_ms(350);
    assert_int_equal(rec_calls(&r), 0);
    assert_true(wait_calls(&r, 1, 3000));
    int64_t waited = r.at_ms[0] - t0;
    s = wait_finished(&wd, 1, 2000);
    svc_queue_worker_free(w);
    assert_true(waited >= 590);
    assert_true(waited < 3000);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.completed, 1);
    world_close(&wd);
}

static void test_failed_job_is_retried_with_backoff_then_succeeds(void **state) {
    struct svc_queue_options opt = {.backoff = {.base_ms = 100, .cap_ms = 150}};
    struct world wd;
    world_open(&wd, "retry", &opt);
    struct rec r;
    rec_init(&r);
    r.retry_while_attempt_below = 3;   /* attempts 1 and 2 fail, 3 succeeds */
    struct svc_queue_worker *w = start_worker(&wd, &r, 2);
    enqueue_text(&wd, "flaky", NULL);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    svc_queue_worker_free(w);

    assert_int_equal(r.calls, 3);
    assert_int_equal(r.attempts[0], 1);
    assert_int_equal(r.attempts[1], 2);
    assert_int_equal(r.attempts[2], 3);
    assert_string_equal(r.last_error[0], "");
    assert_string_equal(r.last_error[1], "boom 1");
    assert_string_equal(r.last_error[2], "boom 2");
    /* Full jitter: each wait is in [0, ceiling] (+ promotion tick and scheduling slack). */
    assert_true(r.at_ms[1] - r.at_ms[0] <= 100 + 500);
    assert_true(r.at_ms[2] - r.at_ms[1] <= 150 + 500);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.retried, 2);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.delayed, 0);
    world_close(&wd);
}

static void test_handler_retry_delay_overrides_backoff(void **state) {
    struct world wd;
    world_open(&wd, "retryafter", NULL);
    struct rec r;
    rec_init(&r);
    r.retry_while_attempt_below = 2;
    r.retry_delay_ms = 400;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    enqueue_text(&wd, "slowdown", NULL);
    assert_true(wait_calls(&r, 2, 3000));
    svc_queue_worker_free(w);
    assert_true(r.at_ms[1] - r.at_ms[0] >= 390);
    world_close(&wd);
}

static void test_job_is_dead_lettered_after_its_last_attempt(void **state) {
    struct world wd;
    world_open(&wd, "dead", NULL);
    struct rec r;
    rec_init(&r);
    r.always_retry = true;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    struct svc_job_options opt = {.id = "doomed", .max_attempts = 3};
    enqueue_text(&wd, "payload-with-secrets", &opt);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    sleep_ms(150);   /* nothing more must run */
    svc_queue_worker_free(w);

    assert_int_equal(r.calls, 3);
    assert_int_equal(s.failed, 1);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.retried, 2);
    assert_int_equal(s.completed, 0);
    assert_int_equal(s.waiting + s.active + s.delayed, 0);

    struct svc_dead_job *list = NULL;
    size_t n = 0;
    assert_int_equal(svc_queue_dead_list(wd.q, NULL, 10, &list, &n), SVC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, "doomed");
    assert_int_equal(list[0].attempts, 3);
    assert_string_equal(list[0].error, "boom 3");
    assert_int_equal(list[0].payload_len, strlen("payload-with-secrets"));
    assert_true(list[0].failed_ms > 0);
    char entry[48];
    snprintf(entry, sizeof(entry), "%s", list[0].entry_id);
    svc_queue_dead_list_free(list);

    /* Paging: nothing after the last entry. */
    assert_int_equal(svc_queue_dead_list(wd.q, entry, 10, &list, &n), SVC_OK);
    assert_int_equal(n, 0);
    svc_queue_dead_list_free(list);

    /* Requeued from the dead stream with a fresh budget, it runs again (and succeeds). */
    r.always_retry = false;
    assert_int_equal(svc_queue_dead_requeue(wd.q, entry), SVC_OK);
    assert_int_equal(svc_queue_dead_requeue(wd.q, entry), SVC_NOT_FOUND);
    w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 2, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 4);
    assert_int_equal(r.attempts[3], 1);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.dead, 0);
    world_close(&wd);
}

static void test_permanent_failure_is_dead_lettered_at_once(void **state) {
    struct world wd;
    world_open(&wd, "fail", NULL);
    struct rec r;
    rec_init(&r);
    r.always_fail = true;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    enqueue_text(&wd, "bad", NULL);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    sleep_ms(100);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 1);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.retried, 0);
    struct svc_dead_job *list = NULL;
    size_t n = 0;
    assert_int_equal(svc_queue_dead_list(wd.q, "", 10, &list, &n), SVC_OK);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].error, "permanent 1");
    assert_int_equal(list[0].attempts, 1);
    svc_queue_dead_list_free(list);
    world_close(&wd);
}

/* A consumer that reads the job and never acknowledges it (a worker that died). */
static void ghost_takes_one(struct world *wd) {
    redisContext *c = direct_connect();
    char stream[128];
    snprintf(stream, sizeof(stream), "q:{%s}:stream", wd->name);
    freeReplyObject(redisCommand(c, "XGROUP CREATE %s workers 0 MKSTREAM", stream));
    redisReply *r = redisCommand(c, "XREADGROUP GROUP workers ghost COUNT 1 STREAMS %s >", stream);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    redisFree(c);
}

static void test_job_of_a_consumer_that_never_acks_is_reclaimed(void **state) {
    struct svc_queue_options opt = {.visibility_timeout_ms = 300};
    struct world wd;
    world_open(&wd, "reclaim", &opt);
    enqueue_text(&wd, "i=0", NULL);
    ghost_takes_one(&wd);
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.waiting, 0);

    int64_t t0 = now_ms();
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 1, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.attempts[0], 2);        /* the lost run counted as an attempt */
    assert_string_equal(r.last_error[0], "worker lost: visibility timeout exceeded");
    assert_true(r.at_ms[0] - t0 >= 250);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.reclaimed, 1);
    assert_int_equal(s.active, 0);
    world_close(&wd);
}

static void test_job_lost_on_its_last_attempt_is_dead_lettered(void **state) {
    struct svc_queue_options opt = {.visibility_timeout_ms = 200};
    struct world wd;
    world_open(&wd, "lostlast", &opt);
    struct svc_job_options jo = {.max_attempts = 1};
    enqueue_text(&wd, "poison", &jo);
    ghost_takes_one(&wd);
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 0);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.failed, 1);
    world_close(&wd);
}

static void test_job_of_a_sigkilled_worker_process_is_reclaimed(void **state) {
    struct svc_queue_options opt = {.visibility_timeout_ms = 500};
    struct world wd;
    world_open(&wd, "sigkill", &opt);
    enqueue_text(&wd, "i=5", NULL);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The child: a worker whose handler reports that it holds the job, then hangs. */
        close(fds[0]);
        struct svc_redis_config rc = redis_config();
        struct svc_redis_pool *pool = svc_redis_pool_new(&rc);
        svc_status st;
        struct svc_queue_options co = opt;
        co.name = wd.name;
        struct svc_queue *q = pool ? svc_queue_new(pool, &co, NULL, &st) : NULL;
        if (!q) _exit(2);
        struct rec cr;
        rec_init(&cr);
        cr.sleep_ms = 60000;
        struct svc_queue_worker_config cfg = {.handler = rec_handler, .arg = &cr, .redis = &rc,
                                              .block_ms = 100, .maintenance_ms = 20};
        struct svc_queue_worker *w = NULL;
        if (svc_queue_worker_start(q, &cfg, &w) != SVC_OK) _exit(3);
        while (rec_calls(&cr) == 0) sleep_ms(5);
        if (write(fds[1], "x", 1) != 1) _exit(4);
        for (;;) pause();
    }
    close(fds[1]);
    char b;
    assert_int_equal(read(fds[0], &b, 1), 1);
    close(fds[0]);
    sleep_ms(700);                 /* longer than the visibility timeout: heartbeats must keep it */
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.reclaimed, 0);
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));

    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 1, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.per_index[5], 1);
    assert_int_equal(r.attempts[0], 2);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.reclaimed, 1);
    world_close(&wd);
}

static void test_long_running_job_is_not_reclaimed_while_alive(void **state) {
    struct svc_queue_options opt = {.visibility_timeout_ms = 500};
    struct world wd;
    world_open(&wd, "heartbeat", &opt);
    struct rec r;
    rec_init(&r);
    r.sleep_ms = 1000;
    struct svc_queue_worker *w1 = start_worker(&wd, &r, 1);
    struct svc_queue_worker *w2 = start_worker(&wd, &r, 1);
    enqueue_text(&wd, "i=1", NULL);
    struct svc_queue_stats s = wait_finished(&wd, 1, 5000);
    sleep_ms(100);
    svc_queue_worker_free(w1);
    svc_queue_worker_free(w2);
    assert_int_equal(r.calls, 1);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.reclaimed, 0);
    world_close(&wd);
}

static void test_hung_job_past_job_timeout_is_reclaimed_and_its_late_outcome_dropped(void **state) {
    struct svc_queue_options opt = {.visibility_timeout_ms = 200};
    struct world wd;
    world_open(&wd, "hung", &opt);
    struct rec r;
    rec_init(&r);
    r.sleep_first_ms = 600;    /* the first run hangs; the rerun is quick */
    struct svc_queue_worker_config cfg = {.concurrency = 2, .handler = rec_handler, .arg = &r,
                                          .redis = &wd.rcfg, .block_ms = 100, .maintenance_ms = 20,
                                          .job_timeout_ms = 100};
    struct svc_queue_worker *w = NULL;
    assert_int_equal(svc_queue_worker_start(wd.q, &cfg, &w), SVC_OK);
    enqueue_text(&wd, "i=2", NULL);
    assert_true(wait_calls(&r, 2, 3000));
    sleep_ms(700);             /* the hung run ends and reports */
    struct svc_queue_worker_counts wc;
    svc_queue_worker_counts(w, &wc);
    svc_queue_worker_free(w);
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(r.calls, 2);
    assert_int_equal(r.attempts[1], 2);
    assert_int_equal(s.completed, 1);   /* counted once */
    assert_int_equal(s.reclaimed, 1);
    assert_int_equal(wc.lost, 1);
    assert_int_equal(wc.succeeded, 1);
    world_close(&wd);
}

static void test_many_workers_process_each_job_exactly_once(void **state) {
    enum { M = 600 };
    struct world wd;
    world_open(&wd, "conc", NULL);
    static struct svc_job_spec specs[M];
    static char payloads[M][16];
    for (int i = 0; i < M; i++) {
        snprintf(payloads[i], sizeof(payloads[i]), "i=%d", i);
        specs[i] = (struct svc_job_spec){.payload = payloads[i], .len = strlen(payloads[i])};
    }
    assert_int_equal(svc_queue_enqueue_many(wd.q, specs, M), SVC_OK);
    for (int i = 0; i < M; i++) assert_true(specs[i].created);
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w1 = start_worker(&wd, &r, 3);
    struct svc_queue_worker *w2 = start_worker(&wd, &r, 3);
    struct svc_queue_stats s = wait_finished(&wd, M, 10000);
    svc_queue_worker_free(w1);
    svc_queue_worker_free(w2);
    assert_int_equal(s.completed, M);
    assert_int_equal(r.calls, M);
    for (int i = 0; i < M; i++) assert_int_equal(r.per_index[i], 1);
    assert_int_equal(r.init_calls, 6);
    assert_int_equal(r.fini_calls, 6);
    world_close(&wd);
}

static void test_stats_report_each_state(void **state) {
    struct world wd;
    world_open(&wd, "stats", NULL);
    struct svc_queue_stats s = stats_of(&wd);   /* a queue nobody used yet */
    assert_int_equal(s.waiting + s.active + s.delayed + s.dead + s.completed + s.failed, 0);
    for (int i = 0; i < 4; i++) enqueue_text(&wd, "w", NULL);
    struct svc_job_options later = {.delay_ms = 60000};
    enqueue_text(&wd, "d1", &later);
    enqueue_text(&wd, "d2", &later);
    ghost_takes_one(&wd);
    s = stats_of(&wd);
    assert_int_equal(s.waiting, 3);
    assert_int_equal(s.active, 1);
    assert_int_equal(s.delayed, 2);
    assert_int_equal(s.dead, 0);

    int moved = -1;
    assert_int_equal(svc_queue_promote_due(wd.q, 0, &moved), SVC_OK);
    assert_int_equal(moved, 0);   /* not due yet */

    struct rec r;
    rec_init(&r);
    r.always_fail = true;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 3, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.active, 1);   /* the ghost's job: visibility timeout (5 s) not reached */
    assert_int_equal(s.delayed, 2);
    assert_int_equal(s.dead, 3);
    assert_int_equal(s.failed, 3);
    assert_int_equal(s.completed, 0);
    world_close(&wd);
}

static void test_finished_entries_are_pruned_and_dead_stream_capped(void **state) {
    enum { M = 1000 };
    struct svc_queue_options opt = {.dead_max_len = 100};
    struct world wd;
    world_open(&wd, "prune", &opt);
    static struct svc_job_spec specs[M];
    for (int i = 0; i < M; i++) specs[i] = (struct svc_job_spec){.payload = "0123456789", .len = 10};
    assert_int_equal(svc_queue_enqueue_many(wd.q, specs, M), SVC_OK);
    char stream[128], dead[128];
    snprintf(stream, sizeof(stream), "q:{%s}:stream", wd.name);
    snprintf(dead, sizeof(dead), "q:{%s}:dead", wd.name);
    redisContext *c = direct_connect();
    assert_int_equal(direct_int(c, "XLEN %s", stream), M);

    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 2);
    struct svc_queue_stats s = wait_finished(&wd, M, 10000);
    assert_int_equal(s.completed, M);
    assert_int_equal(direct_int(c, "XLEN %s", stream), 0);

    /* 300 permanent failures: the dead stream stays near its cap. */
    r.always_fail = true;
    for (int i = 0; i < 300; i++) specs[i] = (struct svc_job_spec){.payload = "x", .len = 1};
    assert_int_equal(svc_queue_enqueue_many(wd.q, specs, 300), SVC_OK);
    s = wait_finished(&wd, M + 300, 10000);
    svc_queue_worker_free(w);
    assert_int_equal(s.failed, 300);
    long long dlen = direct_int(c, "XLEN %s", dead);
    assert_true(dlen >= 100 && dlen <= 200);
    assert_int_equal(direct_int(c, "XLEN %s", stream), 0);
    redisFree(c);
    world_close(&wd);
}

static void test_payload_size_is_bounded(void **state) {
    struct svc_queue_options opt = {.max_payload = 1024};
    struct world wd;
    world_open(&wd, "limit", &opt);
    static char big[2048];
    memset(big, 'x', sizeof(big));
    assert_int_equal(svc_queue_enqueue(wd.q, big, 1024, NULL, NULL, NULL), SVC_OK);
    assert_int_equal(svc_queue_enqueue(wd.q, big, 1025, NULL, NULL, NULL), SVC_TOO_LARGE);
    struct svc_job_spec specs[2] = {{.payload = big, .len = 10}, {.payload = big, .len = 2000}};
    assert_int_equal(svc_queue_enqueue_many(wd.q, specs, 2), SVC_TOO_LARGE);
    assert_int_equal(stats_of(&wd).waiting, 1);   /* nothing of the rejected batch was sent */

    /* The default limit is 1 MiB and a hard limit caps what may be configured. */
    struct svc_queue_options too = {.name = "ok-name", .max_payload = SVC_QUEUE_HARD_MAX_PAYLOAD + 1};
    svc_status st;
    assert_null(svc_queue_new(wd.pool, &too, NULL, &st));
    assert_int_equal(st, SVC_INVALID);
    struct svc_queue_options dflt = {.name = wd.name};
    struct svc_queue *q2 = svc_queue_new(wd.pool, &dflt, NULL, &st);
    assert_non_null(q2);
    char *mib = malloc((1u << 20) + 1);
    assert_non_null(mib);
    memset(mib, 'y', (1u << 20) + 1);
    assert_int_equal(svc_queue_enqueue(q2, mib, 1u << 20, NULL, NULL, NULL), SVC_OK);
    assert_int_equal(svc_queue_enqueue(q2, mib, (1u << 20) + 1, NULL, NULL, NULL), SVC_TOO_LARGE);
    free(mib);
    svc_queue_free(q2);
    world_close(&wd);
}

static void test_binary_payload_round_trips(void **state) {
    struct world wd;
    world_open(&wd, "binary", NULL);
    enum { N = 100000 };
    unsigned char *p = malloc(N);
    assert_non_null(p);
    for (int i = 0; i < N; i++) p[i] = (unsigned char)(i * 7 + (i >> 8));
    p[0] = 0;
    p[N - 1] = 0;
    assert_int_equal(svc_queue_enqueue(wd.q, p, N, NULL, NULL, NULL), SVC_OK);
    struct svc_job_options later = {.delay_ms = 50};   /* through the delayed set too */
    assert_int_equal(svc_queue_enqueue(wd.q, p, N, &later, NULL, NULL), SVC_OK);
    struct rec r;
    rec_init(&r);
    r.expect = p;
    r.expect_len = N;
    r.retry_while_attempt_below = 2;   /* and through a retry */
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    struct svc_queue_stats s = wait_finished(&wd, 2, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(s.completed, 2);
    assert_int_equal(r.calls, 4);
    assert_int_equal(r.payload_mismatch, 0);

    /* An empty payload is a payload too. */
    rec_init(&r);
    r.expect = (const unsigned char *)"";
    r.expect_len = 0;
    assert_int_equal(svc_queue_enqueue(wd.q, NULL, 0, NULL, NULL, NULL), SVC_OK);
    w = start_worker(&wd, &r, 1);
    s = wait_finished(&wd, 3, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.payload_mismatch, 0);
    free(p);
    world_close(&wd);
}

static void test_invalid_names_ids_and_options_are_rejected(void **state) {
    struct world wd;
    world_open(&wd, "invalid", NULL);
    svc_status st;
    const char *bad_names[] = {"", "has space", "brace{x}", "colon:no",
                               "a2345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        struct svc_queue_options o = {.name = bad_names[i]};
        assert_null(svc_queue_new(wd.pool, &o, NULL, &st));
        assert_int_equal(st, SVC_INVALID);
    }
    struct svc_job_options o1 = {.id = "with space"};
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, &o1, NULL, NULL), SVC_INVALID);
    struct svc_job_options o2 = {.id = ""};
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, &o2, NULL, NULL), SVC_INVALID);
    struct svc_job_options o3 = {.delay_ms = -1};
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, &o3, NULL, NULL), SVC_INVALID);
    assert_int_equal(svc_queue_dead_requeue(wd.q, "not-an-id"), SVC_INVALID);
    assert_int_equal(svc_queue_dead_requeue(wd.q, "1-1"), SVC_NOT_FOUND);
    /* found by the API fuzzer: digits past 2^64 - 1 made Redis refuse the script (a 500) */
    const char *bad_ids[] = {"20011233445666778889-5", "18446744073709551616-0", "1-18446744073709551616", "1-2-3",
                             "-1", "1-", "+1-1"};
    for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
        assert_int_equal(svc_queue_dead_requeue(wd.q, bad_ids[i]), SVC_INVALID);
        assert_int_equal(svc_queue_dead_remove(wd.q, bad_ids[i]), SVC_INVALID);
        struct svc_dead_job *list = NULL;
        size_t nlist = 0;
        assert_int_equal(svc_queue_dead_list(wd.q, bad_ids[i], 10, &list, &nlist), SVC_INVALID);
    }
    assert_int_equal(svc_queue_dead_requeue(wd.q, "18446744073709551615-18446744073709551615"), SVC_NOT_FOUND);
    assert_int_equal(svc_queue_dead_remove(wd.q, "18446744073709551615-18446744073709551615"), SVC_NOT_FOUND);
    struct svc_queue_worker *w = NULL;
    struct svc_queue_worker_config cfg = {.redis = &wd.rcfg};   /* no handler */
    assert_int_equal(svc_queue_worker_start(wd.q, &cfg, &w), SVC_INVALID);
    assert_int_equal(stats_of(&wd).waiting, 0);
    world_close(&wd);
}

static void test_enqueue_survives_a_script_cache_flush(void **state) {
    struct world wd;
    world_open(&wd, "noscript", NULL);
    enqueue_text(&wd, "a", NULL);
    redisContext *c = direct_connect();
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    enqueue_text(&wd, "b", NULL);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    struct svc_job_spec specs[2] = {{.payload = "c", .len = 1}, {.payload = "d", .len = 1}};
    assert_int_equal(svc_queue_enqueue_many(wd.q, specs, 2), SVC_OK);
    assert_true(specs[0].created && specs[1].created);
    freeReplyObject(redisCommand(c, "SCRIPT FLUSH"));
    redisFree(c);
    assert_int_equal(stats_of(&wd).waiting, 4);
    world_close(&wd);
}

static void test_graceful_stop_finishes_the_job_in_hand(void **state) {
    struct world wd;
    world_open(&wd, "stop", NULL);
    struct rec r;
    rec_init(&r);
    r.sleep_ms = 300;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    enqueue_text(&wd, "i=1", NULL);
    enqueue_text(&wd, "i=2", NULL);
    assert_true(wait_calls(&r, 1, 3000));
    int64_t t0 = now_ms();
    svc_queue_worker_request_stop(w);
    svc_queue_worker_free(w);
    int64_t took = now_ms() - t0;
    struct svc_queue_stats s = stats_of(&wd);
    assert_int_equal(r.calls, 1);       /* the second job was not taken */
    assert_int_equal(s.completed, 1);   /* the first one's outcome was recorded */
    assert_int_equal(s.active, 0);
    assert_int_equal(s.waiting, 1);
    assert_true(took < 1000);
    /* Its consumer was removed from the group (nothing pending). */
    redisContext *c = direct_connect();
    redisReply *rr = redisCommand(c, "XINFO CONSUMERS q:{%s}:stream workers", wd.name);
    assert_non_null(rr);
    assert_int_equal(rr->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rr->elements, 0);
    freeReplyObject(rr);
    redisFree(c);
    world_close(&wd);
}

/* Counts the clients whose CLIENT LIST line holds `want`; with kill, kills each and counts the kills. */
static int count_named_clients(redisContext *c, const char *want, bool kill) {
    redisReply *list = redisCommand(c, "CLIENT LIST TYPE normal");
    assert_non_null(list);
    assert_int_equal(list->type, REDIS_REPLY_STRING);
    int n = 0;
    for (char *line = list->str; line && *line;) {
        char *eol = strchr(line, '\n');
        if (eol) *eol = '\0';
        long long id;
        if (strstr(line, want) && sscanf(line, "id=%lld", &id) == 1)
            n += kill ? (int)direct_int(c, "CLIENT KILL ID %lld", id) : 1;
        line = eol ? eol + 1 : NULL;
    }
    freeReplyObject(list);
    return n;
}

static void test_workers_recover_when_their_connections_are_killed(void **state) {
    struct world wd;
    world_open(&wd, "killconn", NULL);
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 2);
    enqueue_text(&wd, "i=1", NULL);
    assert_true(wait_calls(&r, 1, 3000));
    /* Kill exactly this queue's worker connections (named queue:<name>:...), nobody else's.
     * The maintenance thread and the second consumer connect on their own schedule (slower
     * under ASan): wait until all three are there, or the kill would miss one. */
    char want[128];
    snprintf(want, sizeof(want), " name=queue:%s:", wd.name);
    redisContext *c = direct_connect();
    int64_t until = now_ms() + 5000;
    while (count_named_clients(c, want, false) < 3 && now_ms() < until) sleep_ms(10);
    int killed = count_named_clients(c, want, true);
    redisFree(c);
    assert_int_equal(killed, 3);   /* 2 consumers + maintenance */
    enqueue_text(&wd, "i=2", NULL);
    struct svc_queue_stats s = wait_finished(&wd, 2, 5000);
    struct svc_queue_worker_counts wc;
    svc_queue_worker_counts(w, &wc);
    svc_queue_worker_free(w);
    assert_int_equal(s.completed, 2);
    assert_int_equal(r.per_index[2], 1);
    assert_true(wc.redis_errors >= 1);
    world_close(&wd);
}

static void test_worker_starts_and_stops_while_redis_is_unreachable(void **state) {
    struct world wd;
    world_open(&wd, "noredis", NULL);
    struct svc_redis_config nowhere = wd.rcfg;
    nowhere.host = "127.0.0.1";
    nowhere.port = 1;   /* nothing listens there */
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker_config cfg = {.concurrency = 2, .handler = rec_handler, .arg = &r,
                                          .redis = &nowhere, .block_ms = 100, .maintenance_ms = 20};
    struct svc_queue_worker *w = NULL;
    assert_int_equal(svc_queue_worker_start(wd.q, &cfg, &w), SVC_OK);
    sleep_ms(300);
    struct svc_queue_worker_counts wc;
    svc_queue_worker_counts(w, &wc);
    int64_t t0 = now_ms();
    svc_queue_worker_free(w);
    assert_true(now_ms() - t0 < 2000);
    assert_true(wc.redis_errors >= 2);
    assert_int_equal(wc.processed, 0);
    world_close(&wd);
}

/* Not a limit, a figure: tiny jobs through two worker threads, printed for the report. */

/* Operators' views: the queue is discovered in Redis once a worker ran on it, completions and
 * dead letters are counted per minute, dead jobs can be removed or all retried at once, and the
 * stream's jobs are listed without their payload. */
static void test_operators_views_of_a_queue(void **state) {
    struct world wd;
    world_open(&wd, "ops", NULL);
    struct rec r;
    rec_init(&r);
    r.always_fail = true;
    struct svc_queue_worker *w = start_worker(&wd, &r, 1);
    for (int i = 0; i < 3; i++) enqueue_text(&wd, "bad", NULL);
    struct svc_queue_stats s = wait_finished(&wd, 3, 5000);
    assert_int_equal(s.dead, 3);
    svc_queue_worker_free(w);

    char **names = NULL;
    size_t n = 0;
    assert_int_equal(svc_queue_known(wd.pool, &names, &n), SVC_OK);
    bool found = false;
    for (size_t i = 0; i < n; i++) found |= !strcmp(names[i], wd.name);
    svc_queue_names_free(names, n);
    assert_true(found);

    struct svc_queue_minute m[3];
    assert_int_equal(svc_queue_minutes(wd.q, 3, m), SVC_OK);
    assert_true(m[0].minute_ms + 120000 == m[2].minute_ms);
    assert_int_equal(m[0].failed + m[1].failed + m[2].failed, 3);   /* a minute may have turned */
    assert_int_equal(m[0].completed + m[1].completed + m[2].completed, 0);
    assert_int_equal(svc_queue_minutes(wd.q, 0, m), SVC_INVALID);

    struct svc_dead_job *list = NULL;
    assert_int_equal(svc_queue_dead_list(wd.q, NULL, 10, &list, &n), SVC_OK);
    assert_int_equal(n, 3);
    char entry[48];
    snprintf(entry, sizeof(entry), "%s", list[0].entry_id);
    svc_queue_dead_list_free(list);
    assert_int_equal(svc_queue_dead_remove(wd.q, entry), SVC_OK);
    assert_int_equal(svc_queue_dead_remove(wd.q, entry), SVC_NOT_FOUND);
    assert_int_equal(svc_queue_dead_remove(wd.q, "not-an-id"), SVC_INVALID);
    int moved = -1;
    assert_int_equal(svc_queue_dead_requeue_all(wd.q, 100, &moved), SVC_OK);
    assert_int_equal(moved, 2);
    s = stats_of(&wd);
    assert_int_equal(s.dead, 0);
    assert_int_equal(s.waiting, 2);

    struct svc_queue_job_info *jobs = NULL;
    assert_int_equal(svc_queue_recent(wd.q, 10, &jobs, &n), SVC_OK);
    assert_int_equal(n, 2);
    assert_false(jobs[0].running);
    assert_int_equal(jobs[0].attempts, 0);
    assert_true(jobs[0].enqueued_ms > 0);
    assert_string_equal(jobs[0].error, "permanent 1");
    free(jobs);

    /* now they succeed: counted as completed in this minute */
    r.always_fail = false;
    w = start_worker(&wd, &r, 1);
    wait_finished(&wd, 5, 5000);
    svc_queue_worker_free(w);
    assert_int_equal(svc_queue_minutes(wd.q, 3, m), SVC_OK);
    assert_int_equal(m[0].completed + m[1].completed + m[2].completed, 2);
    world_close(&wd);
}

static void test_throughput_of_tiny_jobs_with_two_workers(void **state) {
    enum { M = 5000 };
    struct world wd;
    world_open(&wd, "throughput", NULL);
    static struct svc_job_spec specs[M];
    for (int i = 0; i < M; i++) specs[i] = (struct svc_job_spec){.payload = "tiny", .len = 4};
    int64_t t0 = now_ms();
    for (int i = 0; i < M; i += 1000) assert_int_equal(svc_queue_enqueue_many(wd.q, specs + i, 1000), SVC_OK);
    int64_t t1 = now_ms();
    struct rec r;
    rec_init(&r);
    struct svc_queue_worker *w = start_worker(&wd, &r, 2);
    struct svc_queue_stats s = wait_finished(&wd, M, 20000);
    int64_t t2 = now_ms();
    svc_queue_worker_free(w);
    assert_int_equal(s.completed, M);
    double enq = (double)M * 1000.0 / (double)(t1 - t0 > 0 ? t1 - t0 : 1);
    double con = (double)M * 1000.0 / (double)(t2 - t1 > 0 ? t2 - t1 : 1);
    print_message("queue throughput: enqueue_many %.0f jobs/s; 2 workers %.0f jobs/s (%d jobs)\n",
                  enq, con, M);
    world_close(&wd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueued_jobs_are_consumed_and_acknowledged),
        cmocka_unit_test(test_same_job_id_twice_is_one_job),
        cmocka_unit_test(test_deferred_job_keeps_its_attempts),
        cmocka_unit_test(test_unique_key_admits_one_live_job),
        cmocka_unit_test(test_dead_entries_are_pruned_by_age),
        cmocka_unit_test(test_delayed_job_is_not_delivered_before_its_delay),
        cmocka_unit_test(test_failed_job_is_retried_with_backoff_then_succeeds),
        cmocka_unit_test(test_handler_retry_delay_overrides_backoff),
        cmocka_unit_test(test_job_is_dead_lettered_after_its_last_attempt),
        cmocka_unit_test(test_permanent_failure_is_dead_lettered_at_once),
        cmocka_unit_test(test_job_of_a_consumer_that_never_acks_is_reclaimed),
        cmocka_unit_test(test_job_lost_on_its_last_attempt_is_dead_lettered),
        cmocka_unit_test(test_job_of_a_sigkilled_worker_process_is_reclaimed),
        cmocka_unit_test(test_long_running_job_is_not_reclaimed_while_alive),
        cmocka_unit_test(test_hung_job_past_job_timeout_is_reclaimed_and_its_late_outcome_dropped),
        cmocka_unit_test(test_many_workers_process_each_job_exactly_once),
        cmocka_unit_test(test_stats_report_each_state),
        cmocka_unit_test(test_finished_entries_are_pruned_and_dead_stream_capped),
        cmocka_unit_test(test_payload_size_is_bounded),
        cmocka_unit_test(test_binary_payload_round_trips),
        cmocka_unit_test(test_invalid_names_ids_and_options_are_rejected),
        cmocka_unit_test(test_enqueue_survives_a_script_cache_flush),
        cmocka_unit_test(test_graceful_stop_finishes_the_job_in_hand),
        cmocka_unit_test(test_workers_recover_when_their_connections_are_killed),
        cmocka_unit_test(test_worker_starts_and_stops_while_redis_is_unreachable),
        cmocka_unit_test(test_operators_views_of_a_queue),
        cmocka_unit_test(test_throughput_of_tiny_jobs_with_two_workers),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
