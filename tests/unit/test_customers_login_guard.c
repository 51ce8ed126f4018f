/* Specification of customers-service/src/login_guard.c against a real Redis: failed password
 * guesses are counted per account and per client address; past either threshold every guess is
 * refused (the wait is the counter's remaining window), a success clears the account's counter
 * but not the address's; and a user's own password change consults the same counters before any
 * password work (users_update answers 429 from a locked address without touching the database,
 * so this test needs no PostgreSQL: the pool is deliberately absent).
 *
 * Needs TEST_REDIS_HOST and TEST_REDIS_PORT (the test runner provides them). Every test uses keys
 * of its own (pid + a counter) and deletes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "login_guard.h"
#include "users.h"

#define WINDOW_S 60

static struct customers_ctx cx;
static int seq;

static int group_setup(void **state) {
    (void)state;
    const char *host = getenv("TEST_REDIS_HOST"), *port = getenv("TEST_REDIS_PORT");
    if (!host || !*host || !port || atoi(port) <= 0) {
        print_error("test_customers_login_guard: TEST_REDIS_HOST and TEST_REDIS_PORT must be set\n");
        return -1;
    }
    memset(&cx, 0, sizeof cx);
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) return -1;
    svc_log_init(&cx.app.log, "customers", "test", "info", devnull);
    struct svc_redis_config rc = {.host = host, .port = atoi(port), .size = 2, .connect_timeout_ms = 500,
                                  .command_timeout_ms = 500, .acquire_timeout_ms = 1000};
    cx.app.redis = svc_redis_pool_new(&rc);
    if (!cx.app.redis) return -1;
    cx.login_max_fail_account = 3;
    cx.login_max_fail_ip = 5;
    cx.login_window_s = WINDOW_S;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    svc_redis_pool_free(cx.app.redis);
    close(cx.app.log.fd);
    return 0;
}

struct names {
    char account[LOGIN_GUARD_KEY_LEN];
    char other_account[LOGIN_GUARD_KEY_LEN];
    char ip[48];
    char other_ip[48];
    char user_id[48];
};

static void forget(const struct names *n) {
    svc_status st;
    redisReply *r = svc_redis_command(cx.app.redis, &st, "DEL loginfail:acct:%s loginfail:acct:%s loginfail:ip:%s loginfail:ip:%s",
                                      n->account, n->other_account, n->ip, n->other_ip);
    assert_non_null(r);
    freeReplyObject(r);
}

static struct names fresh(void) {
    struct names n;
    int k = ++seq;
    snprintf(n.user_id, sizeof n.user_id, "00000000-0000-4000-8000-%06u%06u", (unsigned)getpid() % 1000000u,
             (unsigned)k % 1000000u);
    login_guard_account(n.user_id, NULL, n.account);
    snprintf(n.other_account, sizeof n.other_account, "test-guard-%d-%d-other", (int)getpid(), k);
    snprintf(n.ip, sizeof n.ip, "test-ip-%d-%d", (int)getpid(), k);
    snprintf(n.other_ip, sizeof n.other_ip, "test-ip-%d-%d-other", (int)getpid(), k);
    forget(&n);
    return n;
}

static void test_guard_account_key_is_the_user_id_or_a_digest_of_the_lower_cased_login(void **state) {
    (void)state;
    char a[LOGIN_GUARD_KEY_LEN], b[LOGIN_GUARD_KEY_LEN];
    login_guard_account("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "ignored", a);
    assert_string_equal(a, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b");
    login_guard_account(NULL, "Someone@Example.COM", a);
    login_guard_account(NULL, "someone@example.com", b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), 64);
    assert_null(strstr(a, "example"));
}

static void test_guard_locks_an_account_after_its_threshold_for_the_rest_of_the_window(void **state) {
    (void)state;
    struct names n = fresh();
    for (int i = 0; i < 3; i++) {
        assert_int_equal(login_guard_check(&cx, "cid", n.account, n.ip), 0);
        login_guard_failed(&cx, n.account, n.ip);
    }
    long wait = login_guard_check(&cx, "cid", n.account, n.ip);
    assert_true(wait >= WINDOW_S - 2 && wait <= WINDOW_S);
    /* from any address: the account is locked, not the pair */
    assert_true(login_guard_check(&cx, "cid", n.account, n.other_ip) > 0);
    /* another account from the same address is not (3 failures < the address's 5) */
    assert_int_equal(login_guard_check(&cx, "cid", n.other_account, n.ip), 0);
    forget(&n);
}

static void test_guard_locks_an_address_across_accounts(void **state) {
    (void)state;
    struct names n = fresh();
    for (int i = 0; i < 5; i++) {
        char acct[LOGIN_GUARD_KEY_LEN];
        snprintf(acct, sizeof acct, "test-guard-%d-%d-%d", (int)getpid(), seq, i);
        login_guard_failed(&cx, acct, n.ip);
        login_guard_succeeded(&cx, acct);   /* clears the account, never the address */
    }
    assert_true(login_guard_check(&cx, "cid", n.account, n.ip) > 0);
    assert_int_equal(login_guard_check(&cx, "cid", n.account, n.other_ip), 0);
    svc_status st;
    redisReply *r = svc_redis_command(cx.app.redis, &st, "DEL loginfail:ip:%s", n.ip);
    freeReplyObject(r);
    forget(&n);
}

static void test_guard_success_resets_the_account_count(void **state) {
    (void)state;
    struct names n = fresh();
    for (int round = 0; round < 3; round++) {
        login_guard_failed(&cx, n.account, n.other_ip);
        login_guard_failed(&cx, n.account, n.other_ip);
        assert_int_equal(login_guard_check(&cx, "cid", n.account, n.ip), 0);
        login_guard_succeeded(&cx, n.account);
    }
    forget(&n);
}

static void test_guard_refusal_is_429_too_many_attempts_with_retry_after(void **state) {
    (void)state;
    struct svc_result r = login_guard_refusal(42);
    assert_int_equal(r.st, SVC_RATE_LIMITED);
    assert_int_equal(svc_status_http(r.st), 429);
    assert_string_equal(r.code, "too_many_attempts");
    assert_int_equal(json_integer_value(json_object_get(r.details, "retry_after")), 42);
    svc_result_clear(&r);
}

static struct svc_result change_own_password(const struct names *n, const char *ip) {
    struct svc_principal who;
    memset(&who, 0, sizeof who);
    snprintf(who.sub, sizeof who.sub, "%s", n->user_id);
    snprintf(who.role, sizeof who.role, "user");
    json_t *body = json_pack("{s:s,s:s}", "password", "A-new-password-123", "current_password", "whatever-it-is");
    assert_non_null(body);
    struct svc_result r = users_update(&cx, "cid", ip, &who, n->user_id, body);
    json_decref(body);
    return r;
}

static void test_own_password_change_from_a_locked_address_is_refused_before_any_password_work(void **state) {
    (void)state;
    struct names n = fresh();
    for (int i = 0; i < 5; i++) login_guard_failed(&cx, n.other_account, n.ip);
    /* cx.app.pg is NULL: reaching the database would crash, so a 429 proves the order */
    struct svc_result r = change_own_password(&n, n.ip);
    assert_int_equal(r.st, SVC_RATE_LIMITED);
    assert_string_equal(r.code, "too_many_attempts");
    long ra = (long)json_integer_value(json_object_get(r.details, "retry_after"));
    assert_true(ra >= WINDOW_S - 2 && ra <= WINDOW_S);
    svc_result_clear(&r);
    forget(&n);
}

static void test_own_password_change_of_a_locked_account_is_refused_from_any_address(void **state) {
    (void)state;
    struct names n = fresh();
    for (int i = 0; i < 3; i++) login_guard_failed(&cx, n.account, n.other_ip);
    struct svc_result r = change_own_password(&n, n.ip);
    assert_int_equal(r.st, SVC_RATE_LIMITED);
    svc_result_clear(&r);
    forget(&n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_guard_account_key_is_the_user_id_or_a_digest_of_the_lower_cased_login),
        cmocka_unit_test(test_guard_locks_an_account_after_its_threshold_for_the_rest_of_the_window),
        cmocka_unit_test(test_guard_locks_an_address_across_accounts),
        cmocka_unit_test(test_guard_success_resets_the_account_count),
        cmocka_unit_test(test_guard_refusal_is_429_too_many_attempts_with_retry_after),
        cmocka_unit_test(test_own_password_change_from_a_locked_address_is_refused_before_any_password_work),
        cmocka_unit_test(test_own_password_change_of_a_locked_account_is_refused_from_any_address),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
