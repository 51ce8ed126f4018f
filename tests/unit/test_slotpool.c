/* Specification of the generic bounded pool (svc/slotpool.h), with fake resources.
 *
 * The resources are small heap objects the callbacks open, check, reset and free, counting every
 * call, so each test can see exactly what the pool asked for: no servers are needed. Worker
 * threads never call cmocka asserts (a failed assert must run on the test's own thread); they
 * record what they saw and the test thread checks it. A pool that held its mutex across a
 * callback, or leaked a slot, would hang rather than fail: main arms alarm() so such a deadlock
 * kills the binary (SIGALRM) instead of stalling the run. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/slotpool.h"

struct fake_res {
    int id;
    atomic_bool lent;   /* set by the borrower while it holds the resource */
    atomic_bool dead;   /* alive() answers false */
    atomic_bool dirty;  /* reset() answers false */
};

struct fake_ctx {
    atomic_int opened, closed, open_calls, alive_calls, reset_calls;
    atomic_int live, max_live;  /* resources in existence (opened, not yet fully closed) */
    atomic_int fail_opens;      /* this many next opens fail */
    int fail_every;             /* > 0: every Nth open fails (stress) */
    int dead_every;             /* > 0: every Nth liveness check says dead (stress) */
    struct svc_slotpool *pool;  /* set when callbacks should read the pool's stats */
    atomic_int stats_in_callbacks;
    atomic_int in_use_seen_by_open;

    /* gate: when armed, open() blocks until it is opened */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_armed;
    bool in_open;
};

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void peek_stats(struct fake_ctx *f) {
    if (!f->pool) return;
    struct svc_slotpool_stats s;
    svc_slotpool_stats(f->pool, &s);  /* deadlocks if the pool mutex is held here */
    f->stats_in_callbacks++;
}

static void *fake_open(void *ctx, char *why, size_t whylen) {
    struct fake_ctx *f = ctx;
    int n = ++f->open_calls;
    if (f->pool) {
        struct svc_slotpool_stats s;
        svc_slotpool_stats(f->pool, &s);
        f->in_use_seen_by_open = s.in_use;
        f->stats_in_callbacks++;
    }
    pthread_mutex_lock(&f->mu);
    f->in_open = true;
    pthread_cond_broadcast(&f->cv);
    while (f->gate_armed) pthread_cond_wait(&f->cv, &f->mu);
    f->in_open = false;
    pthread_mutex_unlock(&f->mu);

    int left = f->fail_opens;
    while (left > 0 && !atomic_compare_exchange_weak(&f->fail_opens, &left, left - 1)) {}
    if (left > 0 || (f->fail_every > 0 && n % f->fail_every == 0)) {
        snprintf(why, whylen, "backend down (attempt %d)", n);
        return NULL;
    }
    struct fake_res *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    r->id = ++f->opened;
    int live = ++f->live;
    int m = f->max_live;
    while (live > m && !atomic_compare_exchange_weak(&f->max_live, &m, live)) {}
    return r;
}

static bool fake_alive(void *ctx, void *res) {
    struct fake_ctx *f = ctx;
    struct fake_res *r = res;
    int n = ++f->alive_calls;
    peek_stats(f);
    if (f->dead_every > 0 && n % f->dead_every == 0) return false;
    return !r->dead;
}

static bool fake_reset(void *ctx, void *res) {
    struct fake_ctx *f = ctx;
    struct fake_res *r = res;
    f->reset_calls++;
    peek_stats(f);
    return !r->dirty;
}

static void fake_close(void *ctx, void *res) {
    struct fake_ctx *f = ctx;
    peek_stats(f);
    f->closed++;
    free(res);
    f->live--;  /* last: the close is over only now */
}

static const struct svc_slotpool_ops fake_ops = {
    .open = fake_open, .alive = fake_alive, .reset = fake_reset, .close = fake_close};

static struct fake_ctx *fake_new(void) {
    struct fake_ctx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(pthread_mutex_init(&f->mu, NULL), 0);
    assert_int_equal(pthread_cond_init(&f->cv, NULL), 0);
    return f;
}

static void fake_free(struct fake_ctx *f) {
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

static struct svc_slotpool *pool_new(struct fake_ctx *f, int size, int timeout_ms) {
    struct svc_slotpool *p = svc_slotpool_new(size, timeout_ms, &fake_ops, f);
    assert_non_null(p);
    return p;
}

static struct fake_res *take(struct svc_slotpool *p, int timeout_ms) {
    svc_status st = SVC_INTERNAL;
    struct fake_res *r = svc_slotpool_acquire(p, timeout_ms, &st);
    assert_non_null(r);
    assert_int_equal(st, SVC_OK);
    return r;
}

static struct svc_slotpool_stats stats_of(struct svc_slotpool *p) {
    struct svc_slotpool_stats s;
    svc_slotpool_stats(p, &s);
    return s;
}

static void test_slotpool_new_refuses_missing_callbacks(void **state) {
    struct svc_slotpool_ops no_open = {.close = fake_close};
    struct svc_slotpool_ops no_close = {.open = fake_open};
    assert_null(svc_slotpool_new(1, 0, &no_open, NULL));
    assert_null(svc_slotpool_new(1, 0, &no_close, NULL));
    assert_null(svc_slotpool_new(1, 0, NULL, NULL));

    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 0, 0);  /* size < 1 means one slot */
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.size, 1);
    assert_int_equal(s.open, 0);
    assert_int_equal(f->open_calls, 0);  /* opens nothing up front */
    svc_slotpool_free(p);
    fake_free(f);
}

static void test_slotpool_lends_distinct_resources_and_reuses_a_returned_one(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 2, 100);
    struct fake_res *a = take(p, -1);
    struct fake_res *b = take(p, -1);
    assert_ptr_not_equal(a, b);
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 2);
    assert_int_equal(s.open, 2);

    svc_slotpool_release(p, a);
    assert_int_equal(f->reset_calls, 1);
    assert_ptr_equal(take(p, -1), a);
    assert_int_equal(f->opened, 2);
    assert_int_equal(f->alive_calls, 1);  /* the idle resource was checked before lending */
    s = stats_of(p);
    assert_int_equal(s.reconnects, 0);

    svc_slotpool_release(p, a);
    svc_slotpool_release(p, b);
    s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.open, 2);
    svc_slotpool_free(p);
    assert_int_equal(f->closed, 2);  /* free closes what the pool held */
    fake_free(f);
}

static void test_slotpool_prefers_a_slot_with_an_open_resource(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 3, 100);
    struct fake_res *x = take(p, -1);  /* slot 0 */
    struct fake_res *y = take(p, -1);  /* slot 1 */
    x->dirty = true;
    svc_slotpool_release(p, x);        /* closed: slot 0 is free and empty */
    svc_slotpool_release(p, y);        /* slot 1 is free and holds y */
    assert_int_equal(f->closed, 1);

    assert_ptr_equal(take(p, -1), y);  /* y, rather than opening a new one in slot 0 */
    assert_int_equal(f->opened, 2);
    svc_slotpool_release(p, y);
    svc_slotpool_free(p);
    fake_free(f);
}

static void test_slotpool_exhausted_pool_times_out(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 2, 40);
    struct fake_res *a = take(p, -1);
    struct fake_res *b = take(p, -1);

    svc_status st = SVC_OK;
    double t0 = now_ms();
    assert_null(svc_slotpool_acquire(p, 80, &st));
    double waited = now_ms() - t0;
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(waited >= 75.0);
    assert_true(waited < 2000.0);

    t0 = now_ms();
    assert_null(svc_slotpool_acquire(p, -1, &st));  /* the configured 40 ms */
    waited = now_ms() - t0;
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(waited >= 35.0 && waited < 2000.0);

    t0 = now_ms();
    assert_null(svc_slotpool_acquire(p, 0, NULL));  /* 0 never waits; st may be NULL */
    assert_true(now_ms() - t0 < 20.0);

    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.timeouts, 3);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.in_use, 2);
    assert_int_equal(f->open_calls, 2);  /* waiting never opens beyond size */

    svc_slotpool_count_timeout(p);
    assert_int_equal(stats_of(p).timeouts, 4);

    svc_slotpool_release(p, a);
    svc_slotpool_release(p, b);
    svc_slotpool_free(p);
    fake_free(f);
}

struct waiter {
    struct svc_slotpool *pool;
    int timeout_ms;
    void *got;
    svc_status st;
    double waited_ms;
};

static void *waiter_run(void *arg) {
    struct waiter *w = arg;
    double t0 = now_ms();
    w->got = svc_slotpool_acquire(w->pool, w->timeout_ms, &w->st);
    w->waited_ms = now_ms() - t0;
    return NULL;
}

/* Polls stats until want callers are waiting (or fails after 5 s). */
static void wait_for_waiters(struct svc_slotpool *p, int want) {
    for (int i = 0; i < 500; i++) {
        if (stats_of(p).waiting == want) return;
        sleep_ms(10);
    }
    fail_msg("never saw %d waiting caller(s)", want);
}

static void test_slotpool_release_wakes_a_waiter(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 1, 0);
    struct fake_res *r = take(p, -1);

    struct waiter w = {.pool = p, .timeout_ms = 10000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_run, &w), 0);
    wait_for_waiters(p, 1);
    sleep_ms(50);
    svc_slotpool_release(p, r);
    assert_int_equal(pthread_join(t, NULL), 0);

    assert_int_equal(w.st, SVC_OK);
    assert_ptr_equal(w.got, r);        /* the same resource, no new open */
    assert_true(w.waited_ms >= 45.0);
    assert_true(w.waited_ms < 5000.0); /* woken by the release, not by its own deadline */
    assert_int_equal(f->opened, 1);
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.timeouts, 0);
    svc_slotpool_release(p, w.got);
    svc_slotpool_free(p);
    fake_free(f);
}

static void test_slotpool_failed_open_gives_the_slot_back(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 1, 0);
    f->fail_opens = 1;
    svc_status st = SVC_OK;
    double t0 = now_ms();
    assert_null(svc_slotpool_acquire(p, 1000, &st));
    assert_int_equal(st, SVC_UNAVAILABLE);
    assert_true(now_ms() - t0 < 500.0);  /* fails at once, does not wait for the deadline */
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.open, 0);

    /* ping names the failed open's reason */
    f->fail_opens = 1;
    char err[128] = "";
    assert_int_equal(svc_slotpool_ping(p, 0, NULL, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "cannot connect: backend down (attempt 2)");

    /* the only slot was not leaked: the next acquire opens in it */
    struct fake_res *r = take(p, 0);
    s = stats_of(p);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.reconnects, 0);  /* the slot never held a resource before */
    svc_slotpool_release(p, r);
    svc_slotpool_free(p);
    fake_free(f);
}

static void test_slotpool_counts_reconnects_for_replaced_resources(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 1, 0);
    struct fake_res *r1 = take(p, 0);

    r1->dirty = true;                   /* reset refuses it: closed on release */
    svc_slotpool_release(p, r1);
    assert_int_equal(f->closed, 1);
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);

    struct fake_res *r2 = take(p, 0);   /* reopened in the same slot */
    s = stats_of(p);
    assert_int_equal(s.reconnects, 1);
    assert_int_equal(s.open, 1);

    svc_slotpool_release(p, r2);
    r2->dead = true;                    /* died while idle: replaced before it is lent */
    struct fake_res *r3 = take(p, 0);
    assert_int_equal(r3->id, 3);
    assert_int_equal(f->closed, 2);
    s = stats_of(p);
    assert_int_equal(s.reconnects, 2);
    assert_int_equal(s.open, 1);

    svc_slotpool_release(p, r3);
    svc_slotpool_free(p);
    assert_int_equal(f->closed, 3);
    fake_free(f);
}

static void test_slotpool_release_of_a_foreign_resource_leaves_the_pool_alone(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 1, 0);
    struct fake_res *mine = take(p, 0);

    struct fake_res *kept = calloc(1, sizeof(*kept));
    assert_non_null(kept);
    svc_slotpool_release(p, kept);      /* reusable: ignored, caller still owns it */
    struct fake_res *dropped = calloc(1, sizeof(*dropped));
    assert_non_null(dropped);
    dropped->dirty = true;
    svc_slotpool_release(p, dropped);   /* refused by reset: closed (freed) */
    svc_slotpool_release(p, NULL);
    assert_int_equal(f->closed, 1);

    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.open, 1);
    free(kept);
    svc_slotpool_release(p, mine);
    svc_slotpool_free(p);
    fake_free(f);
}

static int probe_ok(void *ctx, void *res, char *err, size_t errlen) {
    sleep_ms(5);
    return 0;
}

static int probe_fails(void *ctx, void *res, char *err, size_t errlen) {
    ((struct fake_res *)res)->dirty = true;
    snprintf(err, errlen, "probe said no");
    return -1;
}

static void test_slotpool_ping_times_the_probe_and_returns_the_resource(void **state) {
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 1, 0);
    double latency = -1;
    char err[64] = "";
    assert_int_equal(svc_slotpool_ping(p, 0, probe_ok, &latency, err, sizeof(err)), 0);
    assert_true(latency >= 4.5 && latency < 1000.0);
    assert_int_equal(stats_of(p).in_use, 0);

    latency = -1;
    assert_int_equal(svc_slotpool_ping(p, 0, probe_fails, &latency, err, sizeof(err)), -1);
    assert_string_equal(err, "probe said no");
    assert_true(latency < 0);           /* untouched on failure */
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.open, 0);        /* the failed resource went through reset and was closed */

    struct fake_res *r = take(p, 0);
    assert_int_equal(svc_slotpool_ping(p, 0, probe_ok, &latency, err, sizeof(err)), -1);
    assert_string_equal(err, "pool exhausted");
    svc_slotpool_release(p, r);
    svc_slotpool_free(p);
    fake_free(f);
}

static void test_slotpool_callbacks_run_without_the_pool_mutex(void **state) {
    /* a callback under the mutex would deadlock in svc_slotpool_stats (see alarm in main) */
    struct fake_ctx *f = fake_new();
    struct svc_slotpool *p = pool_new(f, 2, 0);
    f->pool = p;
    struct fake_res *a = take(p, 0);    /* open */
    assert_int_equal(f->in_use_seen_by_open, 1);  /* the slot was claimed before opening */
    a->dirty = true;
    svc_slotpool_release(p, a);         /* reset + close */
    a = take(p, 0);
    svc_slotpool_release(p, a);
    a = take(p, 0);                     /* alive */
    assert_true(f->stats_in_callbacks >= 5);

    /* A slow open on one thread does not hold up a caller that can be served at once. */
    pthread_mutex_lock(&f->mu);
    f->gate_armed = true;
    pthread_mutex_unlock(&f->mu);
    struct waiter w = {.pool = p, .timeout_ms = 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_run, &w), 0);
    pthread_mutex_lock(&f->mu);
    while (!f->in_open) pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);

    svc_slotpool_release(p, a);
    double t0 = now_ms();
    assert_ptr_equal(take(p, 0), a);
    assert_true(now_ms() - t0 < 1000.0);
    struct svc_slotpool_stats s = stats_of(p);
    assert_int_equal(s.in_use, 2);

    pthread_mutex_lock(&f->mu);
    f->gate_armed = false;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(w.st, SVC_OK);
    assert_non_null(w.got);
    assert_ptr_not_equal(w.got, a);

    f->pool = NULL;
    svc_slotpool_release(p, a);
    svc_slotpool_release(p, w.got);
    svc_slotpool_free(p);
    fake_free(f);
}

#define STRESS_SIZE 3
#define STRESS_THREADS 8
#define STRESS_ROUNDS 3000

struct stress {
    struct svc_slotpool *pool;
    atomic_int holders, max_holders;
    atomic_int ok, unavailable, timed_out, double_lent, other;
};

static void *stress_run(void *arg) {
    struct stress *s = arg;
    for (int i = 0; i < STRESS_ROUNDS; i++) {
        svc_status st;
        struct fake_res *r = svc_slotpool_acquire(s->pool, 10000, &st);
        if (!r) {
            if (st == SVC_UNAVAILABLE) s->unavailable++;
            else if (st == SVC_TIMEOUT) s->timed_out++;
            else s->other++;
            continue;
        }
        if (st != SVC_OK) s->other++;
        if (atomic_exchange(&r->lent, true)) s->double_lent++;
        int h = ++s->holders;
        int m = s->max_holders;
        while (h > m && !atomic_compare_exchange_weak(&s->max_holders, &m, h)) {}
        if (i % 4 == 0) sched_yield();
        if (i % 11 == 0) r->dirty = true;
        s->holders--;
        atomic_store(&r->lent, false);
        svc_slotpool_release(s->pool, r);
        s->ok++;
    }
    return NULL;
}

static void test_slotpool_many_threads_never_exceed_size(void **state) {
    struct fake_ctx *f = fake_new();
    f->fail_every = 13;
    f->dead_every = 17;
    struct stress s = {.pool = pool_new(f, STRESS_SIZE, 0)};
    pthread_t t[STRESS_THREADS];
    for (int i = 0; i < STRESS_THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, stress_run, &s), 0);
    for (int i = 0; i < STRESS_THREADS; i++) assert_int_equal(pthread_join(t[i], NULL), 0);

    assert_int_equal(s.ok + s.unavailable + s.timed_out + s.other, STRESS_THREADS * STRESS_ROUNDS);
    assert_int_equal(s.double_lent, 0);
    assert_int_equal(s.other, 0);
    assert_int_equal(s.timed_out, 0);
    assert_true(s.unavailable > 0);      /* failed opens happened and were survived */
    assert_true(s.ok > s.unavailable);
    assert_true(s.max_holders >= 1 && s.max_holders <= STRESS_SIZE);
    assert_true(f->max_live <= STRESS_SIZE);  /* never more resources than slots, even mid-close */

    struct svc_slotpool_stats st = stats_of(s.pool);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.open, f->opened - f->closed);
    assert_true(st.open >= 0 && st.open <= STRESS_SIZE);
    /* every open after the first in each slot is a reconnect, and at most STRESS_SIZE slots exist */
    assert_true(st.reconnects + STRESS_SIZE >= (unsigned long)f->opened);
    assert_true(st.reconnects + 1 <= (unsigned long)f->opened);
    svc_slotpool_free(s.pool);
    assert_int_equal(f->closed, f->opened);  /* everything opened was closed exactly once */
    fake_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slotpool_new_refuses_missing_callbacks),
        cmocka_unit_test(test_slotpool_lends_distinct_resources_and_reuses_a_returned_one),
        cmocka_unit_test(test_slotpool_prefers_a_slot_with_an_open_resource),
        cmocka_unit_test(test_slotpool_exhausted_pool_times_out),
        cmocka_unit_test(test_slotpool_release_wakes_a_waiter),
        cmocka_unit_test(test_slotpool_failed_open_gives_the_slot_back),
        cmocka_unit_test(test_slotpool_counts_reconnects_for_replaced_resources),
        cmocka_unit_test(test_slotpool_release_of_a_foreign_resource_leaves_the_pool_alone),
        cmocka_unit_test(test_slotpool_ping_times_the_probe_and_returns_the_resource),
        cmocka_unit_test(test_slotpool_callbacks_run_without_the_pool_mutex),
        cmocka_unit_test(test_slotpool_many_threads_never_exceed_size),
    };
    alarm(240);  /* watchdog: a deadlocked pool must fail the run, not hang it */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
