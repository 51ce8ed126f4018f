/* Specification of what a queue tells about itself, against a real Redis (TEST_REDIS_HOST /
 * TEST_REDIS_PORT, as test_queue.c): its /metrics lines (svc/queue_metrics.h) and the trace
 * context a job carries from whoever enqueued it to the worker that runs it (svc/trace.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/cid.h"
#include "svc/queue.h"
#include "svc/queue_metrics.h"
#include "svc/redisx.h"
#include "svc/trace.h"

static const char *g_host;
static int g_port;
static unsigned g_run;

static int group_setup(void **state) {
    g_host = getenv("TEST_REDIS_HOST");
    const char *port = getenv("TEST_REDIS_PORT");
    if (!g_host || !*g_host || !port || atoi(port) <= 0) {
        print_error("test_queue_metrics: TEST_REDIS_HOST and TEST_REDIS_PORT must be set\n");
        return -1;
    }
    g_port = atoi(port);
    return svc_random_bytes(&g_run, sizeof g_run) == 0 ? 0 : -1;
}

struct world {
    char name[SVC_QUEUE_NAME_MAX + 1];
    struct svc_redis_config rcfg;
    struct svc_redis_pool *pool;
    struct svc_queue *q;
};

static void world_open(struct world *wd, const char *test, int port) {
    memset(wd, 0, sizeof *wd);
    snprintf(wd->name, sizeof wd->name, "tqm-%d-%08x-%s", (int)getpid(), g_run, test);
    wd->rcfg = (struct svc_redis_config){.host = g_host, .port = port, .size = 2, .connect_timeout_ms = 300,
                                         .command_timeout_ms = 1000, .acquire_timeout_ms = 1000};
    wd->pool = svc_redis_pool_new(&wd->rcfg);
    assert_non_null(wd->pool);
    struct svc_queue_options opt = {.name = wd->name, .visibility_timeout_ms = 5000};
    svc_status st;
    wd->q = svc_queue_new(wd->pool, &opt, NULL, &st);
    assert_non_null(wd->q);
}

static void world_close(struct world *wd) {
    struct svc_redis_config cfg = wd->rcfg;
    cfg.port = g_port;
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st;
    redisContext *c = svc_redis_acquire(p, 1000, &st);
    if (c) {
        const char *suffix[] = {"stream", "delayed", "dead", "stats"};
        for (int i = 0; i < 4; i++) freeReplyObject(redisCommand(c, "DEL q:{%s}:%s", wd->name, suffix[i]));
        svc_redis_release(p, c);
    }
    svc_redis_pool_free(p);
    svc_queue_free(wd->q);
    svc_redis_pool_free(wd->pool);
}

/* The value of the line "<family>{queue="<name>"<rest>} V", or -1 when absent. */
static double value_of(const char *text, const char *family, const char *name, const char *rest) {
    char key[256];
    snprintf(key, sizeof key, "\n%s{queue=\"%s\"%s} ", family, name, rest);
    const char *p = strstr(text, key);
    return p ? strtod(p + strlen(key), NULL) : -1;
}

static char *render(struct world *wd) {
    struct svc_buf b;
    svc_buf_init(&b);
    struct svc_queue *qs[] = {wd->q};
    svc_queue_metrics_render(qs, 1, &b);
    svc_buf_append(&b, "", 1);
    char *s = strdup(b.data);
    svc_buf_free(&b);
    return s;
}

static void test_an_empty_queue_has_no_lag_and_no_jobs(void **state) {
    struct world wd;
    world_open(&wd, "empty", g_port);
    char *m = render(&wd);
    assert_non_null(strstr(m, "# TYPE queue_jobs gauge\n"));
    assert_true(value_of(m, "queue_metrics_up", wd.name, "") == 1);
    assert_true(value_of(m, "queue_jobs", wd.name, ",state=\"waiting\"") == 0);
    assert_true(value_of(m, "queue_jobs", wd.name, ",state=\"dead\"") == 0);
    assert_true(value_of(m, "queue_jobs_processed_total", wd.name, ",result=\"completed\"") == 0);
    assert_true(value_of(m, "queue_oldest_job_age_seconds", wd.name, "") == 0);
    free(m);
    world_close(&wd);
}

static void test_waiting_jobs_are_counted_and_the_oldest_ages(void **state) {
    struct world wd;
    world_open(&wd, "waiting", g_port);
    for (int i = 0; i < 3; i++) assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, NULL, NULL, NULL), SVC_OK);
    struct timespec ts = {.tv_nsec = 300 * 1000000L};
    nanosleep(&ts, NULL);
    char *m = render(&wd);
    assert_true(value_of(m, "queue_jobs", wd.name, ",state=\"waiting\"") == 3);
    assert_true(value_of(m, "queue_jobs", wd.name, ",state=\"active\"") == 0);
    double age = value_of(m, "queue_oldest_job_age_seconds", wd.name, "");
    assert_true(age >= 0.25 && age < 30);
    free(m);
    world_close(&wd);
}

static void test_redis_away_reports_the_queue_down_without_figures(void **state) {
    struct world wd;
    world_open(&wd, "down", 1);   /* nothing listens on port 1 */
    char *m = render(&wd);
    assert_true(value_of(m, "queue_metrics_up", wd.name, "") == 0);
    assert_true(value_of(m, "queue_jobs", wd.name, ",state=\"waiting\"") == -1);
    assert_true(value_of(m, "queue_oldest_job_age_seconds", wd.name, "") == -1);
    free(m);
    svc_queue_free(wd.q);
    svc_redis_pool_free(wd.pool);
}

/* ---- trace context through the queue ---- */

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

struct seen {
    pthread_mutex_t mu;
    int runs;
    struct svc_trace trace[4];
    int retry_first;   /* 1: the first attempt asks for a retry (with no delay) */
};

static svc_job_result remember_trace(struct svc_job *job, void *arg) {
    struct seen *s = arg;
    pthread_mutex_lock(&s->mu);
    const struct svc_trace *t = svc_trace_current();
    if (s->runs < 4 && t) s->trace[s->runs] = *t;
    int run = s->runs++;
    pthread_mutex_unlock(&s->mu);
    if (s->retry_first && run == 0) {
        job->retry_delay_ms = 0;
        snprintf(job->error, sizeof job->error, "try again");
        return SVC_JOB_RETRY;
    }
    return SVC_JOB_OK;
}

static int runs_of(struct seen *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->runs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Enqueues one job under the span `under` (NULL: none), runs a worker until `want` runs happened. */
static void run_job(const char *test, const struct svc_trace *under, struct seen *s, int want) {
    struct world wd;
    world_open(&wd, test, g_port);
    svc_trace_set(under);
    assert_int_equal(svc_queue_enqueue(wd.q, "x", 1, NULL, NULL, NULL), SVC_OK);
    svc_trace_set(NULL);
    struct svc_queue_worker_config cfg = {.concurrency = 1, .handler = remember_trace, .arg = s,
                                          .redis = &wd.rcfg, .block_ms = 100, .maintenance_ms = 20};
    struct svc_queue_worker *w = NULL;
    assert_int_equal(svc_queue_worker_start(wd.q, &cfg, &w), SVC_OK);
    for (int i = 0; i < 200 && runs_of(s) < want; i++) {
        struct timespec ts = {.tv_nsec = 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    svc_queue_worker_free(w);
    world_close(&wd);
    assert_int_equal(runs_of(s), want);
}

static void test_a_job_runs_in_the_trace_of_whoever_enqueued_it(void **state) {
    struct svc_trace req;
    svc_trace_begin(&req, TP, NULL);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_job("trace", &req, &s, 1);
    assert_string_equal(s.trace[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_not_equal(s.trace[0].span_id, req.span_id);
    /* its parent is the span the enqueue made: neither the request's span nor its caller's */
    assert_int_equal(strlen(s.trace[0].parent_id), 16);
    assert_string_not_equal(s.trace[0].parent_id, req.span_id);
    assert_string_not_equal(s.trace[0].parent_id, req.parent_id);
}

static void test_a_retried_job_keeps_its_trace(void **state) {
    struct svc_trace req;
    svc_trace_begin(&req, TP, NULL);
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER, .retry_first = 1};
    run_job("retry", &req, &s, 2);
    assert_string_equal(s.trace[0].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(s.trace[1].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(s.trace[1].parent_id, s.trace[0].parent_id);
    assert_string_not_equal(s.trace[1].span_id, s.trace[0].span_id);
}

static void test_a_job_enqueued_outside_a_trace_starts_its_own(void **state) {
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    run_job("notrace", NULL, &s, 1);
    assert_int_equal(strlen(s.trace[0].trace_id), 32);
    assert_string_equal(s.trace[0].parent_id, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_an_empty_queue_has_no_lag_and_no_jobs),
        cmocka_unit_test(test_waiting_jobs_are_counted_and_the_oldest_ages),
        cmocka_unit_test(test_redis_away_reports_the_queue_down_without_figures),
        cmocka_unit_test(test_a_job_runs_in_the_trace_of_whoever_enqueued_it),
        cmocka_unit_test(test_a_retried_job_keeps_its_trace),
        cmocka_unit_test(test_a_job_enqueued_outside_a_trace_starts_its_own),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
