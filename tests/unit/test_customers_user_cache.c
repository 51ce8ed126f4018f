/* Specification of the user cache's key space (customers-service/src/user_cache.h): the one place
 * "ucache:" keys are built, for the cache itself and for the bulk upsert's invalidation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "user_cache.h"

static void test_keys_by_id_and_by_lower_cased_name_under_the_watched_prefix(void **state) {
    char k[USER_CACHE_KEY_MAX];
    size_t n = user_cache_key_id(k, "0190f7a2-0000-7000-8000-000000000001");
    assert_string_equal(k, "ucache:id:0190f7a2-0000-7000-8000-000000000001");
    assert_int_equal(n, strlen(k));
    n = user_cache_key_name(k, "Ann.Lee_1");
    assert_string_equal(k, "ucache:name:ann.lee_1");
    assert_int_equal(n, strlen(k));
    assert_int_equal(strncmp(k, USER_CACHE_PREFIX, strlen(USER_CACHE_PREFIX)), 0);
    /* a name given already lower-cased (the bulk upsert's) gives the same key */
    char k2[USER_CACHE_KEY_MAX];
    user_cache_key_name(k2, "ann.lee_1");
    assert_string_equal(k, k2);
}

static void test_a_key_that_does_not_fit_is_refused_not_cut(void **state) {
    char name[USER_CACHE_KEY_MAX + 1];
    memset(name, 'a', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char k[USER_CACHE_KEY_MAX];
    assert_int_equal(user_cache_key_name(k, name), 0);
    assert_string_equal(k, "");
    assert_int_equal(user_cache_key_id(k, name), 0);
    assert_string_equal(k, "");
    name[64] = '\0';                                /* the longest user name fits */
    assert_int_equal(user_cache_key_name(k, name), strlen("ucache:name:") + 64);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_by_id_and_by_lower_cased_name_under_the_watched_prefix),
        cmocka_unit_test(test_a_key_that_does_not_fit_is_refused_not_cut),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
