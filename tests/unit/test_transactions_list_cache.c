/* Tests of the newest-page cache's Redis protocol (transactions-service/src/txlist_cache.c)
 * against a real Redis, without the combiner and, but for the last test, without the in-process
 * layer (cx.list_l1 NULL): versions
 * made by the first reader that misses, bumped only where they exist, and a page read while a
 * posting lands never served after that posting's bump.
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (the test runner provides them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/tcache.h"
#include "txlist_cache.h"

static struct tx_ctx cx;
static atomic_ulong counters[3];
static redisContext *g_rc;
static char g_user[64], g_other[64];

static int group_setup(void **state) {
    (void)state;
    const char *host = getenv("TEST_REDIS_HOST"), *port = getenv("TEST_REDIS_PORT");
    if (!host || !port) {
        print_error("test_transactions_list_cache: TEST_REDIS_HOST and TEST_REDIS_PORT must be set\n");
        return -1;
    }
    svc_log_init(&cx.app.log, "transactions", "test", "error", 2);
    cx.app.redis_cfg = (struct svc_redis_config){.host = host, .port = atoi(port), .size = 2,
                                                 .connect_timeout_ms = 500, .command_timeout_ms = 1000,
                                                 .acquire_timeout_ms = 1000};
    cx.app.redis = svc_redis_pool_new(&cx.app.redis_cfg);
    cx.list_cache_ttl_s = 30;
    cx.list_cache_hit = &counters[0];
    cx.list_cache_miss = &counters[1];
    cx.list_cache_bump_failures = &counters[2];
    struct timeval tv = {1, 0};
    g_rc = redisConnectWithTimeout(host, atoi(port), tv);
    return cx.app.redis && g_rc && !g_rc->err ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    if (g_rc) redisFree(g_rc);
    svc_redis_pool_free(cx.app.redis);
    return 0;
}

/* Fresh user ids per test, so runs never see each other's keys. */
static int fresh(void **state) {
    (void)state;
    snprintf(g_user, sizeof g_user, "0190f7a2-%04x-7000-8000-%012x", (unsigned)getpid() & 0xffff, (unsigned)rand());
    snprintf(g_other, sizeof g_other, "0190f7a2-%04x-7000-9000-%012x", (unsigned)getpid() & 0xffff, (unsigned)rand());
    return 0;
}

static bool exists(const char *prefix, const char *user) {
    redisReply *r = redisCommand(g_rc, "EXISTS %s%s", prefix, user);
    assert_non_null(r);
    bool e = r->integer == 1;
    freeReplyObject(r);
    return e;
}

/* get, expecting a miss; returns the version to put under */
static void miss(const char *user, int limit, char version[TXLIST_VERSION_LEN + 1]) {
    char *page = NULL;
    unsigned long epoch = 0;
    assert_false(txlist_cache_get(&cx, user, limit, &page, version, &epoch));
    assert_null(page);
    assert_int_equal(strlen(version), TXLIST_VERSION_LEN);
}

static void hit(const char *user, int limit, const char *want) {
    char version[TXLIST_VERSION_LEN + 1], *page = NULL;
    unsigned long epoch = 0;
    assert_true(txlist_cache_get(&cx, user, limit, &page, version, &epoch));
    assert_string_equal(page, want);
    free(page);
}

static void bump(const char *user) {
    const char *users[2] = {user, NULL};
    txlist_cache_bump(&cx, "cid", users, 2);
}

static void test_an_unread_list_has_no_version_and_a_bump_changes_nothing(void **state) {
    (void)state;
    bump(g_user);
    assert_false(exists("txver:", g_user));
    assert_int_equal(atomic_load(&counters[2]), 0);
}

static void test_a_page_is_served_until_a_posting_bumps_its_version(void **state) {
    (void)state;
    char v[TXLIST_VERSION_LEN + 1];
    miss(g_user, 20, v);                        /* the first reader makes the version */
    assert_true(exists("txver:", g_user));
    txlist_cache_put(&cx, g_user, 20, v, "{\"data\":[1]}", 0);
    char page_key[96];
    snprintf(page_key, sizeof page_key, "%s:20", g_user);
    assert_true(exists("txpage:", page_key));
    hit(g_user, 20, "{\"data\":[1]}");
    hit(g_user, 20, "{\"data\":[1]}");
    char v10[TXLIST_VERSION_LEN + 1];
    miss(g_user, 10, v10);                      /* another limit: another page, same version */
    assert_string_equal(v10, v);
    bump(g_other);                              /* someone else's posting changes nothing here */
    hit(g_user, 20, "{\"data\":[1]}");
    bump(g_user);
    char v2[TXLIST_VERSION_LEN + 1];
    miss(g_user, 20, v2);
    assert_string_not_equal(v2, v);
    txlist_cache_put(&cx, g_user, 20, v2, "{\"data\":[2,1]}", 0);
    hit(g_user, 20, "{\"data\":[2,1]}");
}

/* A reader that misses, then a posting's bump, then the reader's put (its page was read before
 * the posting committed): that page must never be served. Both for a user that had a version
 * and for one whose version the reader has just made. */
static void test_a_page_read_before_a_bump_is_never_served_after_it(void **state) {
    (void)state;
    char v[TXLIST_VERSION_LEN + 1];
    miss(g_user, 20, v);                        /* version made here */
    bump(g_user);                               /* a posting commits and bumps */
    txlist_cache_put(&cx, g_user, 20, v, "{\"data\":[\"old\"]}", 0);
    miss(g_user, 20, v);
    txlist_cache_put(&cx, g_user, 20, v, "{\"data\":[\"new\"]}", 0);
    hit(g_user, 20, "{\"data\":[\"new\"]}");
    miss(g_user, 5, v);                         /* an existing version, a page not cached yet */
    bump(g_user);
    txlist_cache_put(&cx, g_user, 5, v, "{\"data\":[\"old\"]}", 0);
    char now[TXLIST_VERSION_LEN + 1];
    miss(g_user, 5, now);
    assert_string_not_equal(now, v);
}

static void test_the_cache_turned_off_neither_reads_nor_writes(void **state) {
    (void)state;
    cx.list_cache_ttl_s = 0;
    char v[TXLIST_VERSION_LEN + 1], *page = NULL;
    unsigned long epoch = 0;
    assert_false(txlist_cache_get(&cx, g_user, 20, &page, v, &epoch));
    assert_string_equal(v, "");
    txlist_cache_put(&cx, g_user, 20, "0123456789abcdef", "{}", 0);
    cx.list_cache_ttl_s = 30;
    assert_false(exists("txver:", g_user));
    char page_key[96];
    snprintf(page_key, sizeof page_key, "%s:20", g_user);
    assert_false(exists("txpage:", page_key));
}

static bool version_now(const char *user, char out[TXLIST_VERSION_LEN + 1]) {
    redisReply *r = redisCommand(g_rc, "GET txver:%s", user);
    assert_non_null(r);
    bool has = r->type == REDIS_REPLY_STRING;
    snprintf(out, TXLIST_VERSION_LEN + 1, "%s", has ? r->str : "");
    freeReplyObject(r);
    return has;
}

/* With the in-process layer: a posting for a user without a version marks the user locally and
 * the next postings skip Redis; a reader making the version (anywhere) drops the mark before it
 * reads, so the posting after that read bumps again. */
static void test_the_no_version_mark_never_hides_a_version_made_since(void **state) {
    (void)state;
    cx.list_l1 = svc_tcache_new(&cx.app.redis_cfg, "txver:", 64, 1000, &cx.app.log);
    assert_non_null(cx.list_l1);
    for (int i = 0; i < 200 && !svc_tcache_enabled(cx.list_l1); i++) usleep(10 * 1000);
    assert_true(svc_tcache_enabled(cx.list_l1));
    char v[TXLIST_VERSION_LEN + 1], now[TXLIST_VERSION_LEN + 1];
    for (int round = 0; round < 50; round++) {
        fresh(NULL);
        bump(g_user);                             /* no version: marked */
        bump(g_user);
        assert_false(version_now(g_user, now));
        miss(g_user, 20, v);                      /* a reader makes the version, then reads */
        bump(g_user);                             /* a posting after that read: must bump */
        assert_true(version_now(g_user, now));
        assert_string_not_equal(now, v);
    }
    svc_tcache_free(cx.list_l1);
    cx.list_l1 = NULL;
    assert_int_equal(atomic_load(&counters[2]), 0);
}

int main(void) {
    srand((unsigned)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_an_unread_list_has_no_version_and_a_bump_changes_nothing, fresh),
        cmocka_unit_test_setup(test_a_page_is_served_until_a_posting_bumps_its_version, fresh),
        cmocka_unit_test_setup(test_a_page_read_before_a_bump_is_never_served_after_it, fresh),
        cmocka_unit_test_setup(test_the_cache_turned_off_neither_reads_nor_writes, fresh),
        cmocka_unit_test_setup(test_the_no_version_mark_never_hides_a_version_made_since, fresh),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
