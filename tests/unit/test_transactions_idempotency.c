/* Idempotency: the Idempotency-Key header rules, the request fingerprint (stable under key order
 * and whitespace, different for any change of method, path or value; checked against vectors
 * computed independently with sha256sum), and the Redis names and unlock script of txcache.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "idempotency.h"
#include "txcache.h"

static void test_key_rules(void **state) {
    assert_int_equal(idem_key_check(NULL), IDEM_KEY_MISSING);
    assert_int_equal(idem_key_check(""), IDEM_KEY_MISSING);
    assert_int_equal(idem_key_check("a"), IDEM_KEY_OK);
    assert_int_equal(idem_key_check("order 42: retry #1 ~!"), IDEM_KEY_OK);
    char k[300];
    memset(k, 'k', 255);
    k[255] = '\0';
    assert_int_equal(idem_key_check(k), IDEM_KEY_OK);
    k[255] = 'k';
    k[256] = '\0';
    assert_int_equal(idem_key_check(k), IDEM_KEY_INVALID);
    assert_int_equal(idem_key_check("tab\there"), IDEM_KEY_INVALID);
    assert_int_equal(idem_key_check("new\nline"), IDEM_KEY_INVALID);
    assert_int_equal(idem_key_check("caf\xc3\xa9"), IDEM_KEY_INVALID);
    assert_int_equal(idem_key_check("del\x7f"), IDEM_KEY_INVALID);
}

static void hash_of(const char *method, const char *path, const char *json, char out[IDEM_HASH_HEX_LEN + 1]) {
    json_error_t e;
    json_t *body = json ? json_loads(json, 0, &e) : NULL;
    if (json) assert_non_null(body);
    assert_int_equal(idem_request_hash(method, path, body, out), 0);
    json_decref(body);
}

static void test_hash_matches_independent_vectors(void **state) {
    char h[IDEM_HASH_HEX_LEN + 1];
    /* printf 'POST\n/api/transactions\n{"amount":"1.00","type":"deposit"}' | sha256sum */
    hash_of("POST", "/api/transactions", "{\"type\": \"deposit\",\n \"amount\": \"1.00\"}", h);
    assert_string_equal(h, "504f5d0f1cadde034dfe250bbe41fd864ba3495d4e85f734b109251a7bb05c2b");
    /* printf 'POST\n/api/transactions/x/reverse\n' | sha256sum */
    hash_of("POST", "/api/transactions/x/reverse", NULL, h);
    assert_string_equal(h, "199064cbaa9ac0f631e94f1c5047edcbb6ff30050155e7ce7d46a5b4ae9c08ee");
}

static void test_hash_ignores_key_order_and_whitespace(void **state) {
    char a[IDEM_HASH_HEX_LEN + 1], b[IDEM_HASH_HEX_LEN + 1];
    hash_of("POST", "/api/transactions", "{\"type\":\"transfer\",\"amount\":\"5.00\",\"to_user_id\":\"u\",\"description\":\"é\"}", a);
    hash_of("POST", "/api/transactions", "{ \"description\" : \"\\u00e9\", \"to_user_id\":\"u\",\n\t\"amount\":\"5.00\", \"type\":\"transfer\" }", b);
    assert_string_equal(a, b);
}

static void test_hash_sees_every_change(void **state) {
    char base[IDEM_HASH_HEX_LEN + 1], h[IDEM_HASH_HEX_LEN + 1];
    hash_of("POST", "/api/transactions", "{\"type\":\"deposit\",\"amount\":\"1.00\"}", base);
    hash_of("POST", "/api/transactions", "{\"type\":\"deposit\",\"amount\":\"1.0\"}", h);
    assert_string_not_equal(base, h);
    hash_of("POST", "/api/transactions", "{\"type\":\"deposit\",\"amount\":\"1.00\",\"currency\":\"BRL\"}", h);
    assert_string_not_equal(base, h);
    hash_of("PUT", "/api/transactions", "{\"type\":\"deposit\",\"amount\":\"1.00\"}", h);
    assert_string_not_equal(base, h);
    hash_of("POST", "/api/transactions/1/reverse", "{\"type\":\"deposit\",\"amount\":\"1.00\"}", h);
    assert_string_not_equal(base, h);
    hash_of("POST", "/api/transactions", NULL, h);
    assert_string_not_equal(base, h);
}

static void test_hash_of_a_large_body_uses_the_heap_path(void **state) {
    char desc[6000];
    memset(desc, 'd', sizeof desc - 1);
    desc[sizeof desc - 1] = '\0';
    json_t *b1 = json_pack("{s:s,s:s}", "type", "deposit", "description", desc);
    json_t *b2 = json_pack("{s:s,s:s}", "description", desc, "type", "deposit");
    char h1[IDEM_HASH_HEX_LEN + 1], h2[IDEM_HASH_HEX_LEN + 1];
    assert_int_equal(idem_request_hash("POST", "/p", b1, h1), 0);
    assert_int_equal(idem_request_hash("POST", "/p", b2, h2), 0);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), 64);
    json_decref(b1);
    json_decref(b2);
}

static void test_user_cache_values(void **state) {
    assert_string_equal(txcache_state_str(USER_ACTIVE), "active");
    assert_string_equal(txcache_state_str(USER_DELETED), "deleted");
    assert_string_equal(txcache_state_str(USER_MISSING), "missing");
    assert_null(txcache_state_str(USER_UNAVAILABLE));
    assert_null(txcache_state_str(USER_UNKNOWN));
    assert_int_equal(txcache_state_parse("active", 6), USER_ACTIVE);
    assert_int_equal(txcache_state_parse("deleted", 7), USER_DELETED);
    assert_int_equal(txcache_state_parse("missing", 7), USER_MISSING);
    assert_int_equal(txcache_state_parse("activ", 5), USER_UNKNOWN);
    assert_int_equal(txcache_state_parse("1", 1), USER_UNKNOWN);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_hash_matches_independent_vectors),
        cmocka_unit_test(test_hash_ignores_key_order_and_whitespace),
        cmocka_unit_test(test_hash_sees_every_change),
        cmocka_unit_test(test_hash_of_a_large_body_uses_the_heap_path),
        cmocka_unit_test(test_user_cache_values),
    };
    return cmocka_run_group_tests_name("transactions_idempotency", tests, NULL, NULL);
}
