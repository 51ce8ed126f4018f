/* Unit tests for the router pieces of shared/src/http.c: path splitting (percent-decoding,
 * collapsing slashes, refusing encoded NULs), template matching with parameters, and the JSON
 * content-type check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "svc/http.h"

static int split(const char *path, char *buf, char *segs[], int max) {
    strcpy(buf, path);
    return svc_path_split(buf, segs, max);
}

static void test_split_decodes_and_collapses(void **state) {
    (void)state;
    char buf[256];
    char *segs[8];
    assert_int_equal(split("/api//users/a%20b/", buf, segs, 8), 3);
    assert_string_equal(segs[0], "api");
    assert_string_equal(segs[1], "users");
    assert_string_equal(segs[2], "a b");
    assert_int_equal(split("/", buf, segs, 8), 0);
}

static void test_split_rejects_bad_escapes_nul_and_too_many(void **state) {
    (void)state;
    char buf[256];
    char *segs[3];
    assert_int_equal(split("/a/%zz", buf, segs, 3), -1);
    assert_int_equal(split("/a/%00b", buf, segs, 3), -1);
    assert_int_equal(split("/a/%4", buf, segs, 3), -1);
    assert_int_equal(split("/a/b/c/d", buf, segs, 3), -1);
}

static void test_template_binds_parameters(void **state) {
    (void)state;
    char buf[256];
    char *segs[8];
    struct svc_req r;
    memset(&r, 0, sizeof r);
    int n = split("/api/users/by-name/alice", buf, segs, 8);
    assert_false(svc_route_match("/api/users/{id}", segs, n, &r));
    assert_true(svc_route_match("/api/users/by-name/{user_name}", segs, n, &r));
    assert_string_equal(svc_param(&r, "user_name"), "alice");
    assert_null(svc_param(&r, "user"));
    assert_null(svc_param(&r, "id"));
    n = split("/api/transactions/42/reverse", buf, segs, 8);
    assert_true(svc_route_match("/api/transactions/{id}/reverse", segs, n, &r));
    assert_string_equal(svc_param(&r, "id"), "42");
    assert_false(svc_route_match("/api/transactions/{id}", segs, n, &r));
}

static void test_template_needs_exact_segment_count(void **state) {
    (void)state;
    char buf[256];
    char *segs[8];
    struct svc_req r;
    memset(&r, 0, sizeof r);
    int n = split("/health", buf, segs, 8);
    assert_false(svc_route_match("/health/live", segs, n, &r));
    n = split("/health/live/x", buf, segs, 8);
    assert_false(svc_route_match("/health/live", segs, n, &r));
    n = split("/health/live", buf, segs, 8);
    assert_true(svc_route_match("/health/live", segs, n, &r));
}

static void test_json_content_type(void **state) {
    (void)state;
    assert_true(svc_is_json_content_type("application/json"));
    assert_true(svc_is_json_content_type("Application/JSON; charset=utf-8"));
    assert_false(svc_is_json_content_type("application/jsonp"));
    assert_false(svc_is_json_content_type("text/plain"));
    assert_false(svc_is_json_content_type(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_decodes_and_collapses),
        cmocka_unit_test(test_split_rejects_bad_escapes_nul_and_too_many),
        cmocka_unit_test(test_template_binds_parameters),
        cmocka_unit_test(test_template_needs_exact_segment_count),
        cmocka_unit_test(test_json_content_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
