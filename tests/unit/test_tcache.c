/* Tests of the Redis-invalidated local cache (shared/src/tcache.c) against a real Redis.
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (the test runner provides them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/tcache.h"

static struct svc_redis_config g_cfg;
static struct svc_logger g_log;
static char g_prefix[64];
static redisContext *g_rc;

static int group_setup(void **state) {
    (void)state;
    const char *host = getenv("TEST_REDIS_HOST"), *port = getenv("TEST_REDIS_PORT");
    if (!host || !port) {
        print_error("test_tcache: TEST_REDIS_HOST and TEST_REDIS_PORT must be set\n");
        return -1;
    }
    g_cfg.host = host;
    g_cfg.port = atoi(port);
    g_cfg.connect_timeout_ms = 500;
    svc_log_init(&g_log, "test", "tcache", "error", 2);
    snprintf(g_prefix, sizeof g_prefix, "tc%d:", (int)getpid());
    struct timeval tv = {1, 0};
    g_rc = redisConnectWithTimeout(host, g_cfg.port, tv);
    return g_rc && !g_rc->err ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    if (g_rc) redisFree(g_rc);
    return 0;
}

static void cmd(const char *fmt, const char *a, const char *b) {
    redisReply *r = redisCommand(g_rc, fmt, a, b);
    assert_non_null(r);
    freeReplyObject(r);
}

static struct svc_tcache *started(long max_age_ms) {
    struct svc_tcache *c = svc_tcache_new(&g_cfg, g_prefix, 64, max_age_ms, &g_log);
    assert_non_null(c);
    for (int i = 0; i < 200 && !svc_tcache_enabled(c); i++) usleep(10 * 1000);
    assert_true(svc_tcache_enabled(c));
    /* and its thread parked, waiting for pushes: gets answer from then on */
    char probe[96];
    snprintf(probe, sizeof probe, "%sprobe", g_prefix);
    char *v = NULL;
    for (int i = 0; i < 200 && !v; i++) {
        svc_tcache_put(c, probe, "p", svc_tcache_epoch(c));
        if (!(v = svc_tcache_get(c, probe))) usleep(10 * 1000);
    }
    assert_non_null(v);
    free(v);
    svc_tcache_drop(c, probe);
    return c;
}

static void key(char *out, size_t n, const char *suffix) { snprintf(out, n, "%s%s", g_prefix, suffix); }

/* waits up to 1 s for a get of k to miss */
static bool dropped_within_a_second(struct svc_tcache *c, const char *k) {
    for (int i = 0; i < 100; i++) {
        char *v = svc_tcache_get(c, k);
        if (!v) return true;
        free(v);
        usleep(10 * 1000);
    }
    return false;
}

static void test_a_change_by_another_client_drops_the_entry(void **state) {
    (void)state;
    struct svc_tcache *c = started(1000);
    char k[96];
    key(k, sizeof k, "a");
    svc_tcache_put(c, k, "v1", svc_tcache_epoch(c));
    char *v = svc_tcache_get(c, k);
    assert_non_null(v);
    assert_string_equal(v, "v1");
    free(v);
    cmd("SET %s %s", k, "v2");
    assert_true(dropped_within_a_second(c, k));
    svc_tcache_put(c, k, "v2", svc_tcache_epoch(c));
    cmd("DEL %s", k, NULL);
    assert_true(dropped_within_a_second(c, k));
    svc_tcache_free(c);
}

static void test_keys_outside_the_prefix_do_not_invalidate(void **state) {
    (void)state;
    struct svc_tcache *c = started(1000);
    char k[96];
    key(k, sizeof k, "b");
    svc_tcache_put(c, k, "v", svc_tcache_epoch(c));
    cmd("SET other%s %s", k, "x");
    usleep(100 * 1000);
    char *v = svc_tcache_get(c, k);
    assert_non_null(v);
    free(v);
    cmd("DEL other%s", k, NULL);
    svc_tcache_free(c);
}

static void test_a_value_read_before_an_invalidation_is_not_cached(void **state) {
    (void)state;
    struct svc_tcache *c = started(1000);
    char k[96];
    key(k, sizeof k, "c");
    unsigned long epoch = svc_tcache_epoch(c);   /* reader starts */
    cmd("SET %s %s", k, "new");                  /* someone changes it meanwhile */
    for (int i = 0; i < 100 && svc_tcache_epoch(c) == epoch; i++) usleep(10 * 1000);
    svc_tcache_put(c, k, "old", epoch);          /* the reader's stale value */
    assert_null(svc_tcache_get(c, k));
    cmd("DEL %s", k, NULL);
    svc_tcache_free(c);
}

static void test_entries_expire_after_max_age(void **state) {
    (void)state;
    struct svc_tcache *c = started(100);
    char k[96];
    key(k, sizeof k, "d");
    svc_tcache_put(c, k, "v", svc_tcache_epoch(c));
    char *v = svc_tcache_get(c, k);
    assert_non_null(v);
    free(v);
    usleep(150 * 1000);
    assert_null(svc_tcache_get(c, k));
    svc_tcache_free(c);
}

static void test_a_killed_invalidation_connection_disables_then_resyncs(void **state) {
    (void)state;
    struct svc_tcache *c = started(1000);
    char k[96];
    key(k, sizeof k, "e");
    svc_tcache_put(c, k, "v", svc_tcache_epoch(c));
    struct svc_tcache_stats before;
    svc_tcache_stats(c, &before);
    redisReply *r = redisCommand(g_rc, "CLIENT KILL TYPE pubsub");
    assert_non_null(r);
    freeReplyObject(r);
    /* while down nothing is served; after the reconnect the cache starts empty */
    assert_true(dropped_within_a_second(c, k));
    struct svc_tcache_stats after;
    for (int i = 0; i < 300; i++) {
        svc_tcache_stats(c, &after);
        if (after.resyncs > before.resyncs && after.enabled) break;
        usleep(10 * 1000);
    }
    assert_true(after.resyncs > before.resyncs);
    assert_true(after.enabled);
    assert_null(svc_tcache_get(c, k));
    svc_tcache_free(c);
}

/* The writer's side of read-your-writes: once a change has been answered and one more round trip
 * made (svc_tcache_barrier's PING, here on the changing client itself), no get returns the value
 * from before the change, at once, without waiting for the invalidation thread. */
static void test_after_a_change_and_one_more_round_trip_no_get_returns_the_old_value(void **state) {
    (void)state;
    struct svc_tcache *c = started(1000);
    char k[96];
    key(k, sizeof k, "f");
    int stale = 0, hits = 0;
    for (int i = 0; i < 2000; i++) {
        char v[32];
        snprintf(v, sizeof v, "v%d", i);
        svc_tcache_put(c, k, v, svc_tcache_epoch(c));
        char *before = svc_tcache_get(c, k);
        hits += before != NULL;
        free(before);
        cmd("SET %s %s", k, "changed");
        cmd("PING", NULL, NULL);
        char *after = svc_tcache_get(c, k);
        if (after && !strcmp(after, v)) stale++;
        free(after);
    }
    cmd("DEL %s", k, NULL);
    svc_tcache_free(c);
    assert_int_equal(stale, 0);
    assert_true(hits > 1000);      /* the cache still answers between changes */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_change_by_another_client_drops_the_entry),
        cmocka_unit_test(test_keys_outside_the_prefix_do_not_invalidate),
        cmocka_unit_test(test_a_value_read_before_an_invalidation_is_not_cached),
        cmocka_unit_test(test_entries_expire_after_max_age),
        cmocka_unit_test(test_a_killed_invalidation_connection_disables_then_resyncs),
        cmocka_unit_test(test_after_a_change_and_one_more_round_trip_no_get_returns_the_old_value),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
