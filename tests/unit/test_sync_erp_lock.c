/* sync-service ERP coordination in Redis: the per-tenant lock scripts (erp_lock.h), the keeper
 * that renews held locks, the throttling mark and the global rate limiter (erp_ratelimit.h).
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (a Redis without a password); every test uses fresh
 * random tenant ids and keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "erp_lock.h"
#include "erp_ratelimit.h"
#include "svc/cid.h"

static struct svc_redis_pool *g_pool;
static struct svc_logger g_log;

static int setup(void **state) {
    const char *host = getenv("TEST_REDIS_HOST"), *port = getenv("TEST_REDIS_PORT");
    if (!host || !port || atoi(port) <= 0) {
        print_error("test_sync_erp_lock: TEST_REDIS_HOST and TEST_REDIS_PORT must be set\n");
        return -1;
    }
    struct svc_redis_config cfg = {.host = host, .port = atoi(port), .size = 8, .connect_timeout_ms = 1000,
                                   .command_timeout_ms = 2000, .acquire_timeout_ms = 2000};
    g_pool = svc_redis_pool_new(&cfg);
    svc_log_init(&g_log, "test", "t", "error", 2);
    return g_pool ? 0 : -1;
}

static int teardown(void **state) {
    svc_redis_pool_free(g_pool);
    return 0;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static void new_tenant(char out[SVC_UUID_LEN + 1]) { svc_uuid4(out); }

static struct erp_lock take(const char *tenant, long ttl, enum erp_lock_result want, long *wait) {
    struct erp_lock l;
    enum erp_lock_result r;
    long w = 0;
    assert_int_equal(erp_lock_acquire(g_pool, tenant, ttl, "sync-1 customers job-1", &l, &r, &w), SVC_OK);
    assert_int_equal(r, want);
    if (wait) *wait = w;
    return l;
}

static void test_lock_is_exclusive_and_each_acquisition_gets_a_newer_fence(void **state) {
    char t[SVC_UUID_LEN + 1];
    new_tenant(t);
    struct erp_lock a = take(t, 5000, ERP_LOCK_ACQUIRED, NULL);
    assert_true(a.fence >= 1);
    assert_true(erp_lock_usable(&a));
    long wait = 0;
    take(t, 5000, ERP_LOCK_BUSY, &wait);
    assert_true(wait > 4000 && wait <= 5000);
    /* Release by someone who is not the holder (another token) deletes nothing. */
    struct erp_lock impostor = a;
    impostor.token[0] = impostor.token[0] == 'a' ? 'b' : 'a';
    assert_int_equal(erp_lock_release(g_pool, &impostor), SVC_OK);
    take(t, 5000, ERP_LOCK_BUSY, NULL);
    assert_int_equal(erp_lock_renew(g_pool, &impostor), SVC_CONFLICT);
    assert_int_equal(erp_lock_release(g_pool, &a), SVC_OK);
    assert_false(erp_lock_usable(&a));   /* released: never usable again */
    struct erp_lock b = take(t, 5000, ERP_LOCK_ACQUIRED, NULL);
    assert_int_equal(b.fence, a.fence + 1);
    assert_string_not_equal(a.token, b.token);
    erp_lock_release(g_pool, &b);
}

static void test_a_holder_whose_lock_expired_and_was_taken_cannot_renew_or_release_it(void **state) {
    char t[SVC_UUID_LEN + 1];
    new_tenant(t);
    struct erp_lock old = take(t, 300, ERP_LOCK_ACQUIRED, NULL);
    sleep_ms(400);   /* a paused holder: its lock expires */
    struct erp_lock now = take(t, 5000, ERP_LOCK_ACQUIRED, NULL);
    assert_true(now.fence > old.fence);
    assert_int_equal(erp_lock_renew(g_pool, &old), SVC_CONFLICT);
    assert_true(atomic_load(&old.lost));
    assert_false(erp_lock_usable(&old));
    erp_lock_release(g_pool, &old);
    take(t, 5000, ERP_LOCK_BUSY, NULL);       /* the new holder's lock is intact */
    assert_int_equal(erp_lock_renew(g_pool, &now), SVC_OK);
    erp_lock_release(g_pool, &now);
}

static void test_a_lock_not_renewed_stops_being_usable_before_it_expires(void **state) {
    char t[SVC_UUID_LEN + 1];
    new_tenant(t);
    int64_t t0 = erp_mono_ms();
    struct erp_lock l = take(t, 3000, ERP_LOCK_ACQUIRED, NULL);
    assert_true(erp_lock_usable(&l));
    /* usable until TTL − TTL/10 after the acquisition was sent (2700 ms), and Redis keeps the lock
     * until 3000 ms: a holder that cannot renew stops writing while the lock is still its own. */
    sleep_ms(2750 - (long)(erp_mono_ms() - t0));
    assert_false(erp_lock_usable(&l));
    struct erp_lock_info info;
    assert_int_equal(erp_lock_peek(g_pool, t, &info), SVC_OK);
    assert_true(info.held);                                         /* still there in Redis */
    erp_lock_release(g_pool, &l);
}

static void test_the_keeper_keeps_a_running_jobs_lock_for_several_ttls(void **state) {
    struct erp_keeper k;
    assert_int_equal(erp_keeper_start(&k, g_pool, &g_log), 0);
    char t[SVC_UUID_LEN + 1];
    new_tenant(t);
    struct erp_lock l = take(t, 600, ERP_LOCK_ACQUIRED, NULL);
    assert_int_equal(erp_keeper_add(&k, &l), 0);
    for (int i = 0; i < 20; i++) {   /* 2 s = more than three TTLs */
        sleep_ms(100);
        assert_true(erp_lock_usable(&l));
    }
    take(t, 600, ERP_LOCK_BUSY, NULL);
    erp_keeper_remove(&k, &l);
    sleep_ms(800);
    take(t, 600, ERP_LOCK_ACQUIRED, NULL);   /* no longer renewed: it expired */
    erp_keeper_stop(&k);
}

static void test_throttle_and_peek(void **state) {
    char t[SVC_UUID_LEN + 1];
    new_tenant(t);
    assert_int_equal(erp_throttle_set(g_pool, t, 400), SVC_OK);
    long wait = 0;
    take(t, 5000, ERP_LOCK_THROTTLED, &wait);
    assert_true(wait > 0 && wait <= 400);
    sleep_ms(450);
    struct erp_lock l = take(t, 5000, ERP_LOCK_ACQUIRED, NULL);
    struct erp_lock_info info;
    assert_int_equal(erp_lock_peek(g_pool, t, &info), SVC_OK);
    assert_true(info.held);
    assert_string_equal(info.holder, "sync-1 customers job-1");
    assert_string_equal(info.kind, "customers");
    assert_true(info.expires_in_ms > 4000 && info.expires_in_ms <= 5000);
    assert_null(strstr(info.holder, l.token));   /* the token never leaves Redis */
    erp_lock_release(g_pool, &l);
    assert_int_equal(erp_lock_peek(g_pool, t, &info), SVC_OK);
    assert_false(info.held);
}

/* ---- the rate limiter ---- */

static void test_rate_limit_admits_max_per_sliding_window_then_says_how_long(void **state) {
    char key[64], member[64];
    snprintf(key, sizeof key, "erp:rate:test:%d", rand());
    bool ok;
    long wait;
    for (int i = 0; i < 3; i++) {
        snprintf(member, sizeof member, "m%d", i);
        assert_int_equal(erp_rate_take(g_pool, key, 3, 500, member, &ok, &wait, NULL), SVC_OK);
        assert_true(ok);
    }
    assert_int_equal(erp_rate_take(g_pool, key, 3, 500, "m3", &ok, &wait, NULL), SVC_OK);
    assert_false(ok);
    assert_true(wait > 0 && wait <= 501);
    sleep_ms(wait + 20);
    assert_int_equal(erp_rate_take(g_pool, key, 3, 500, "m4", &ok, &wait, NULL), SVC_OK);
    assert_true(ok);
    /* max 0: no limit, Redis not even asked (a NULL pool is fine). */
    assert_int_equal(erp_rate_take(NULL, key, 0, 500, "x", &ok, &wait, NULL), SVC_OK);
    assert_true(ok);
}

struct racer {
    const char *key;
    int id;
    int64_t admitted_at[256];
    int n;
};

static void *race(void *arg) {
    struct racer *r = arg;
    int64_t end = erp_mono_ms() + 1500;
    for (int i = 0; erp_mono_ms() < end && r->n < 256; i++) {
        char member[64];
        snprintf(member, sizeof member, "r%d-%d", r->id, i);
        bool ok;
        long wait;
        long long at;
        if (erp_rate_take(g_pool, r->key, 4, 300, member, &ok, &wait, &at) != SVC_OK) continue;
        if (ok) r->admitted_at[r->n++] = at;   /* the Redis clock: what the window is measured on */
        else sleep_ms(wait < 20 ? wait : 20);
    }
    return NULL;
}

static int cmp64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Six "instances" hammering one limit: never more than 4 admissions in any 300 ms window of the
 * Redis clock, and the limit is used. */
static void test_rate_limit_holds_under_contention_and_is_used(void **state) {
    char key[64];
    snprintf(key, sizeof key, "erp:rate:test:%d", rand());
    struct racer rs[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        rs[i] = (struct racer){.key = key, .id = i};
        pthread_create(&th[i], NULL, race, &rs[i]);
    }
    int64_t all[6 * 256];
    int n = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(th[i], NULL);
        for (int j = 0; j < rs[i].n; j++) all[n++] = rs[i].admitted_at[j];
    }
    qsort(all, (size_t)n, sizeof *all, cmp64);
    for (int i = 0; i + 4 < n; i++)
        if (all[i + 4] - all[i] < 300) fail_msg("5 admissions within %lld ms", (long long)(all[i + 4] - all[i]));
    /* 1.5 s / 300 ms = 5 windows of 4: about 20-24 admissions; at least 90 % of 20. */
    assert_true(n >= 18);
    assert_true(n <= 4 * 6 + 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lock_is_exclusive_and_each_acquisition_gets_a_newer_fence),
        cmocka_unit_test(test_a_holder_whose_lock_expired_and_was_taken_cannot_renew_or_release_it),
        cmocka_unit_test(test_a_lock_not_renewed_stops_being_usable_before_it_expires),
        cmocka_unit_test(test_the_keeper_keeps_a_running_jobs_lock_for_several_ttls),
        cmocka_unit_test(test_throttle_and_peek),
        cmocka_unit_test(test_rate_limit_admits_max_per_sliding_window_then_says_how_long),
        cmocka_unit_test(test_rate_limit_holds_under_contention_and_is_used),
    };
    srand((unsigned)time(NULL));
    return cmocka_run_group_tests(tests, setup, teardown);
}
