/* Specification of the Redis pool (svc/redisx.h), run against a real server.
 *
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (a server without a password); the test runner always
 * provides them, so their absence is a failure, not a skip. A separate direct hiredis connection
 * plays the other actor (CLIENT KILL, reading what the pool wrote). Keys are prefixed with the
 * process id and deleted at the end of each test. */
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

#include "svc/redisx.h"

static const char *g_host;
static int g_port;
static char g_key[64]; /* per-run key prefix */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int group_setup(void **state) {
    g_host = getenv("TEST_REDIS_HOST");
    const char *port = getenv("TEST_REDIS_PORT");
    if (!g_host || !*g_host || !port || atoi(port) <= 0) {
        print_error("test_redisx: TEST_REDIS_HOST and TEST_REDIS_PORT must be set (a Redis server "
                    "without a password)\n");
        return -1;
    }
    g_port = atoi(port);
    snprintf(g_key, sizeof(g_key), "test_redisx:%d", (int)getpid());
    return 0;
}

static struct svc_redis_config base_config(int size) {
    struct svc_redis_config cfg = {
        .host = g_host,
        .port = g_port,
        .size = size,
        .connect_timeout_ms = 500,
        .command_timeout_ms = 500,
        .acquire_timeout_ms = 1000,
    };
    return cfg;
}

static redisContext *direct_connect(void) {
    struct timeval tv = {.tv_sec = 2};
    redisContext *c = redisConnectWithTimeout(g_host, g_port, tv);
    assert_non_null(c);
    if (c->err) fail_msg("direct connect: %s", c->errstr);
    return c;
}

static void direct_cleanup(void) {
    redisContext *c = direct_connect();
    for (int db = 0; db < 4; db++) {
        freeReplyObject(redisCommand(c, "SELECT %d", db));
        freeReplyObject(redisCommand(c, "DEL %s:k %s:list", g_key, g_key));
    }
    redisFree(c);
}

static long long client_id(struct svc_redis_pool *p) {
    svc_status st;
    redisReply *r = svc_redis_command(p, &st, "CLIENT ID");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long id = r->integer;
    freeReplyObject(r);
    return id;
}

static void kill_client(long long id) {
    redisContext *c = direct_connect();
    redisReply *r = redisCommand(c, "CLIENT KILL ID %lld", id);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
}

static void assert_ping_works(struct svc_redis_pool *p) {
    svc_status st = SVC_INTERNAL;
    redisReply *r = svc_redis_command(p, &st, "PING");
    assert_non_null(r);
    assert_int_equal(st, SVC_OK);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
}

static void test_redis_command_round_trip(void **state) {
    struct svc_redis_config cfg = base_config(2);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    assert_non_null(p);
    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_int_equal(s.size, 2);
    assert_int_equal(s.open, 0); /* lazy */

    svc_status st = SVC_INTERNAL;
    const char *value = "v a l\"ue"; /* %s is a binary-safe argument, not interpolated text */
    redisReply *r = svc_redis_command(p, &st, "SET %s:k %s", g_key, value);
    assert_non_null(r);
    assert_int_equal(st, SVC_OK);
    freeReplyObject(r);
    r = svc_redis_command(p, &st, "GET %s:k", g_key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, value);
    freeReplyObject(r);

    /* A Redis error reply is handed back as is, with SVC_OK: the caller decides. */
    r = svc_redis_command(p, &st, "INCR %s:k", g_key);
    assert_non_null(r);
    assert_int_equal(st, SVC_OK);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 1); /* sequential commands reuse one connection */
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.reconnects, 0);
    svc_redis_pool_free(p);
    direct_cleanup();
}

static void test_redis_unreachable_port_is_unavailable_quickly(void **state) {
    struct svc_redis_config cfg = base_config(1);
    cfg.host = "127.0.0.1";
    cfg.port = 1;
    cfg.connect_timeout_ms = 300;
    cfg.password = "s3cret-not-logged";
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st = SVC_OK;
    double t0 = now_ms();
    redisReply *r = svc_redis_command(p, &st, "PING");
    double took = now_ms() - t0;
    assert_null(r);
    assert_int_equal(st, SVC_UNAVAILABLE);
    assert_true(took < 300.0 + 200.0);

    char err[256] = "";
    double lat = -1;
    assert_int_equal(svc_redis_ping(p, 100, &lat, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(err, "s3cret"));
    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);
    svc_redis_pool_free(p);
}

static void test_redis_killed_idle_connection_is_replaced(void **state) {
    struct svc_redis_config cfg = base_config(1);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    long long id = client_id(p);
    kill_client(id);

    /* The very next command works: acquire notices the closed socket and reconnects. */
    assert_ping_works(p);
    assert_true(client_id(p) != id);
    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_int_equal(s.reconnects, 1);
    assert_int_equal(s.open, 1);
    svc_redis_pool_free(p);
}

static void test_redis_connection_killed_in_use_is_dropped_on_release(void **state) {
    struct svc_redis_config cfg = base_config(1);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st;
    redisContext *c = svc_redis_acquire(p, -1, &st);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "CLIENT ID");
    assert_non_null(r);
    long long id = r->integer;
    freeReplyObject(r);

    kill_client(id);
    r = redisCommand(c, "PING");
    assert_null(r);
    assert_int_not_equal(c->err, 0);
    svc_redis_release(p, c);

    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);
    assert_ping_works(p);
    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.reconnects, 1);
    svc_redis_pool_free(p);
}

static void test_redis_command_timeout_fails_and_pool_recovers(void **state) {
    struct svc_redis_config cfg = base_config(1);
    cfg.command_timeout_ms = 200;
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    assert_ping_works(p);

    svc_status st = SVC_OK;
    double t0 = now_ms();
    redisReply *r = svc_redis_command(p, &st, "BLPOP %s:list 3", g_key); /* blocks 3 s, timeout 0.2 s */
    double took = now_ms() - t0;
    assert_null(r);
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(took >= 150.0);
    assert_true(took < 1000.0);

    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 0); /* the timed-out context is dead and was dropped */
    assert_int_equal(s.timeouts, 1);
    assert_ping_works(p);
    svc_redis_stats(p, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.reconnects, 1);
    svc_redis_pool_free(p);
    direct_cleanup();
}

struct waiter {
    struct svc_redis_pool *pool;
    redisContext *got;
    svc_status st;
    double waited_ms;
};

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    double t0 = now_ms();
    w->got = svc_redis_acquire(w->pool, 5000, &w->st);
    w->waited_ms = now_ms() - t0;
    return NULL;
}

static void test_redis_exhausted_pool_waits_then_times_out(void **state) {
    struct svc_redis_config cfg = base_config(1);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st;
    redisContext *c = svc_redis_acquire(p, -1, &st);
    assert_non_null(c);

    double t0 = now_ms();
    assert_null(svc_redis_acquire(p, 150, &st));
    double took = now_ms() - t0;
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(took >= 140.0 && took < 600.0);

    /* A waiter is woken by the release, long before its own timeout. */
    struct waiter w = {.pool = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    struct svc_redis_stats s;
    for (int i = 0; i < 200; i++) {
        svc_redis_stats(p, &s);
        if (s.waiting == 1) break;
        usleep(5000);
    }
    int waiting_seen = s.waiting;
    usleep(100000);
    svc_redis_release(p, c);
    assert_int_equal(pthread_join(th, NULL), 0); /* joined before any assert can jump away */
    assert_int_equal(waiting_seen, 1);
    assert_int_equal(w.st, SVC_OK);
    assert_ptr_equal(w.got, c);
    assert_true(w.waited_ms < 1500.0);
    svc_redis_release(p, w.got);

    svc_redis_stats(p, &s);
    assert_int_equal(s.timeouts, 1);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.in_use, 0);
    svc_redis_pool_free(p);
}

static void test_redis_selects_the_configured_db(void **state) {
    struct svc_redis_config cfg = base_config(1);
    cfg.db = 3;
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st;
    redisReply *r = svc_redis_command(p, &st, "SET %s:k in-db-3", g_key);
    assert_non_null(r);
    freeReplyObject(r);
    svc_redis_pool_free(p);

    redisContext *c = direct_connect();
    r = redisCommand(c, "EXISTS %s:k", g_key);
    assert_int_equal(r->integer, 0); /* not in db 0 */
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    r = redisCommand(c, "GET %s:k", g_key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "in-db-3");
    freeReplyObject(r);
    redisFree(c);
    direct_cleanup();
}

static void test_redis_password_is_sent_with_auth(void **state) {
    /* The test server has no password, so AUTH is refused: proof that it was sent, and that a
     * refused AUTH makes the pool unavailable rather than handing out an unauthenticated context. */
    struct svc_redis_config cfg = base_config(1);
    cfg.password = "s3cret-not-logged";
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    svc_status st = SVC_OK;
    assert_null(svc_redis_command(p, &st, "PING"));
    assert_int_equal(st, SVC_UNAVAILABLE);
    char err[256] = "";
    assert_int_equal(svc_redis_ping(p, 100, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "AUTH"));
    assert_null(strstr(err, "s3cret"));
    svc_redis_pool_free(p);
}

static void test_redis_ping_measures_latency(void **state) {
    struct svc_redis_config cfg = base_config(1);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    char err[128] = "";
    double lat = -1;
    assert_int_equal(svc_redis_ping(p, 500, &lat, err, sizeof(err)), 0);
    assert_true(lat > 0.0 && lat < 500.0);
    svc_status st;
    redisContext *c = svc_redis_acquire(p, -1, &st);
    assert_int_equal(svc_redis_ping(p, 20, &lat, err, sizeof(err)), -1);
    assert_string_equal(err, "pool exhausted");
    svc_redis_release(p, c);
    svc_redis_pool_free(p);
}

struct hammer {
    struct svc_redis_pool *pool;
    int id;
    int failures;
};

static void *hammer_main(void *arg) {
    struct hammer *h = arg;
    for (int i = 0; i < 200; i++) {
        svc_status st;
        redisReply *r = svc_redis_command(h->pool, &st, "INCR %s:k", g_key);
        if (!r || r->type != REDIS_REPLY_INTEGER) h->failures++;
        if (r) freeReplyObject(r);
    }
    return NULL;
}

static void test_redis_concurrent_commands_share_the_pool(void **state) {
    struct svc_redis_config cfg = base_config(3);
    struct svc_redis_pool *p = svc_redis_pool_new(&cfg);
    struct hammer h[6];
    pthread_t th[6];
    for (int i = 0; i < 6; i++) {
        h[i] = (struct hammer){.pool = p, .id = i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 6; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 6; i++) assert_int_equal(h[i].failures, 0);
    svc_status st;
    redisReply *r = svc_redis_command(p, &st, "GET %s:k", g_key);
    assert_non_null(r);
    assert_string_equal(r->str, "1200");
    freeReplyObject(r);
    struct svc_redis_stats s;
    svc_redis_stats(p, &s);
    assert_true(s.open >= 1 && s.open <= 3);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.waiting, 0);
    svc_redis_pool_free(p);
    direct_cleanup();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_command_round_trip),
        cmocka_unit_test(test_redis_unreachable_port_is_unavailable_quickly),
        cmocka_unit_test(test_redis_killed_idle_connection_is_replaced),
        cmocka_unit_test(test_redis_connection_killed_in_use_is_dropped_on_release),
        cmocka_unit_test(test_redis_command_timeout_fails_and_pool_recovers),
        cmocka_unit_test(test_redis_exhausted_pool_waits_then_times_out),
        cmocka_unit_test(test_redis_selects_the_configured_db),
        cmocka_unit_test(test_redis_password_is_sent_with_auth),
        cmocka_unit_test(test_redis_ping_measures_latency),
        cmocka_unit_test(test_redis_concurrent_commands_share_the_pool),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
