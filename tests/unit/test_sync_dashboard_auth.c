/* Specification of the operator dashboard's authentication rules (sync-service/src/dash_auth.c):
 * basic auth, the session cookie, CSRF tokens and the same-origin check. No HTTP, no Redis. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash_auth.h"

static struct dash_auth auth;

static int setup(void **state) {
    (void)state;
    setenv("ENABLE_QUEUE_DASHBOARD", "true", 1);
    setenv("QUEUE_DASHBOARD_USER", "operator", 1);
    setenv("QUEUE_DASHBOARD_PASSWORD", "correct horse battery", 1);
    struct svc_config c;
    svc_config_init(&c);
    dash_auth_init(&auth, &c);
    assert_int_equal(svc_config_check(&c, "test"), 0);
    svc_config_free(&c);
    return 0;
}

static char *basic(const char *userpass) {
    static char out[512];
    strcpy(out, "Basic ");
    EVP_EncodeBlock((unsigned char *)out + 6, (const unsigned char *)userpass, (int)strlen(userpass));
    return out;
}

static void test_the_operator_and_only_the_operator_passes_basic_auth(void **state) {
    (void)state;
    assert_true(dash_auth_basic_ok(&auth, basic("operator:correct horse battery")));
    assert_true(dash_auth_basic_ok(&auth, "basic b3BlcmF0b3I6Y29ycmVjdCBob3JzZSBiYXR0ZXJ5"));
    assert_false(dash_auth_basic_ok(&auth, basic("operator:correct horse batter")));
    assert_false(dash_auth_basic_ok(&auth, basic("operator:correct horse battery ")));
    assert_false(dash_auth_basic_ok(&auth, basic("Operator:correct horse battery")));
    assert_false(dash_auth_basic_ok(&auth, basic("operatorcorrect horse battery")));
    assert_false(dash_auth_basic_ok(&auth, basic(":")));
    assert_false(dash_auth_basic_ok(&auth, NULL));
    assert_false(dash_auth_basic_ok(&auth, "Bearer abc"));
    assert_false(dash_auth_basic_ok(&auth, "Basic !!!!"));
    assert_false(dash_auth_basic_ok(&auth, "Basic abc"));
}

static void test_a_disabled_dashboard_lets_nobody_in(void **state) {
    (void)state;
    struct dash_auth off = auth;
    off.enabled = false;
    assert_false(dash_auth_basic_ok(&off, basic("operator:correct horse battery")));
}

static void test_the_session_is_read_from_its_cookie_only_when_well_formed(void **state) {
    (void)state;
    char s[DASH_SESSION_LEN + 1];
    assert_true(dash_auth_session_from_cookie("a=b; dash_session=0123456789abcdef0123456789abcdef; c=d", s));
    assert_string_equal(s, "0123456789abcdef0123456789abcdef");
    assert_true(dash_auth_session_from_cookie("dash_session=0123456789abcdef0123456789abcdef", s));
    assert_false(dash_auth_session_from_cookie("dash_session=0123456789ABCDEF0123456789abcdef", s));
    assert_false(dash_auth_session_from_cookie("dash_session=0123", s));
    assert_false(dash_auth_session_from_cookie("xdash_session=0123456789abcdef0123456789abcdef", s));
    assert_false(dash_auth_session_from_cookie(NULL, s));
    char fresh[DASH_SESSION_LEN + 1], other[DASH_SESSION_LEN + 1];
    assert_int_equal(dash_auth_new_session(fresh), 0);
    assert_int_equal(dash_auth_new_session(other), 0);
    assert_int_equal(strlen(fresh), DASH_SESSION_LEN);
    assert_string_not_equal(fresh, other);
    char cookie[64];
    snprintf(cookie, sizeof cookie, "dash_session=%s", fresh);
    assert_true(dash_auth_session_from_cookie(cookie, s));
}

static void test_a_csrf_token_is_bound_to_its_session_and_the_password(void **state) {
    (void)state;
    char t1[DASH_TOKEN_LEN + 1], t2[DASH_TOKEN_LEN + 1];
    dash_auth_csrf_token(&auth, "0123456789abcdef0123456789abcdef", t1);
    dash_auth_csrf_token(&auth, "0123456789abcdef0123456789abcdee", t2);
    assert_string_not_equal(t1, t2);
    assert_true(dash_auth_csrf_ok(&auth, "0123456789abcdef0123456789abcdef", t1));
    assert_false(dash_auth_csrf_ok(&auth, "0123456789abcdef0123456789abcdee", t1));
    assert_false(dash_auth_csrf_ok(&auth, "0123456789abcdef0123456789abcdef", NULL));
    assert_false(dash_auth_csrf_ok(&auth, "0123456789abcdef0123456789abcdef", ""));
    /* another password (another deployment) makes other tokens */
    struct dash_auth other = auth;
    other.csrf_key[0] ^= 1;
    assert_false(dash_auth_csrf_ok(&other, "0123456789abcdef0123456789abcdef", t1));
}

static void test_only_same_origin_requests_may_change_state(void **state) {
    (void)state;
    assert_true(dash_auth_same_origin("http://localhost:8080", "same-origin", NULL, "localhost:8080"));
    assert_true(dash_auth_same_origin("https://ops.example", NULL, "https", "ops.example"));
    assert_true(dash_auth_same_origin(NULL, NULL, NULL, "localhost:8080"));   /* non-browser client */
    assert_false(dash_auth_same_origin("http://evil.example", NULL, NULL, "localhost:8080"));
    assert_false(dash_auth_same_origin("http://localhost:8080", "cross-site", NULL, "localhost:8080"));
    assert_false(dash_auth_same_origin(NULL, "same-site", NULL, "localhost:8080"));
    assert_false(dash_auth_same_origin("http://ops.example", NULL, "https", "ops.example"));
    assert_false(dash_auth_same_origin("http://localhost:8080", NULL, NULL, NULL));
}

static void test_turning_it_on_without_a_password_is_a_config_error(void **state) {
    (void)state;
    setenv("QUEUE_DASHBOARD_PASSWORD", "short", 1);
    struct svc_config c;
    struct dash_auth a;
    svc_config_init(&c);
    dash_auth_init(&a, &c);
    assert_int_not_equal(svc_config_check(&c, "test"), 0);
    svc_config_free(&c);
    setenv("QUEUE_DASHBOARD_PASSWORD", "correct horse battery", 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_operator_and_only_the_operator_passes_basic_auth),
        cmocka_unit_test(test_a_disabled_dashboard_lets_nobody_in),
        cmocka_unit_test(test_the_session_is_read_from_its_cookie_only_when_well_formed),
        cmocka_unit_test(test_a_csrf_token_is_bound_to_its_session_and_the_password),
        cmocka_unit_test(test_only_same_origin_requests_may_change_state),
        cmocka_unit_test(test_turning_it_on_without_a_password_is_a_config_error),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
