/* Specification of the client of customers-service (svc/customers.h): one set of CUSTOMERS_*
 * settings with one set of defaults and limits, the /health/ready entry of its breaker, and the
 * Retry-After a service passes on when customers-service cannot answer.
 *
 * No customers-service is needed: the breaker is opened against a closed local port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/customers.h"

static const char *const all_vars[] = {
    "CUSTOMERS_URL", "SERVICE_CLIENT_ID", "SERVICE_CLIENT_SECRET", "SERVICE_CLIENT_SECRET_FILE",
    "CUSTOMERS_CONNECT_TIMEOUT_MS", "CUSTOMERS_TIMEOUT_MS", "CUSTOMERS_RETRY_ATTEMPTS", "CUSTOMERS_RETRY_BASE_MS",
    "CUSTOMERS_RETRY_CAP_MS", "CUSTOMERS_BREAKER_FAILURES", "CUSTOMERS_BREAKER_OPEN_MS", NULL};

static int clean_env(void **state) {
    for (int i = 0; all_vars[i]; i++) unsetenv(all_vars[i]);
    setenv("CUSTOMERS_URL", "http://127.0.0.1:1", 1);   /* nothing listens on port 1 */
    setenv("SERVICE_CLIENT_ID", "tests", 1);
    setenv("SERVICE_CLIENT_SECRET", "a-secret-of-sixteen-chars", 1);
    return 0;
}

static void test_defaults_are_one_set_for_every_service(void **state) {
    struct svc_config cfg;
    svc_config_init(&cfg);
    struct svc_customers cc;
    svc_customers_config(&cc, &cfg);
    assert_int_equal(cfg.nerrors, 0);
    assert_string_equal(cc.url, "http://127.0.0.1:1");
    assert_string_equal(cc.client_id, "tests");
    assert_int_equal(cc.connect_timeout_ms, 1000);
    assert_int_equal(cc.timeout_ms, 2000);
    assert_int_equal(cc.retry_attempts, 3);
    assert_int_equal(cc.retry_base_ms, 200);
    assert_int_equal(cc.retry_cap_ms, 2000);
    assert_int_equal(cc.svc_breaker_failures, 5);
    assert_int_equal(cc.svc_breaker_open_ms, 10000);
    svc_config_free(&cfg);
}

static void test_out_of_range_or_missing_settings_are_config_errors(void **state) {
    setenv("CUSTOMERS_RETRY_BASE_MS", "0", 1);        /* minimum 1 */
    setenv("CUSTOMERS_BREAKER_OPEN_MS", "50", 1);     /* minimum 100 */
    setenv("CUSTOMERS_URL", "ftp://example.com", 1);
    unsetenv("SERVICE_CLIENT_SECRET");
    struct svc_config cfg;
    svc_config_init(&cfg);
    struct svc_customers cc;
    svc_customers_config(&cc, &cfg);
    assert_int_equal(cfg.nerrors, 4);
    const char *names[] = {"CUSTOMERS_RETRY_BASE_MS", "CUSTOMERS_BREAKER_OPEN_MS", "CUSTOMERS_URL", "SERVICE_CLIENT_SECRET"};
    for (int i = 0; i < 4; i++) {
        bool seen = false;
        for (int e = 0; e < cfg.nerrors; e++) seen = seen || strstr(cfg.errors[e], names[i]) != NULL;
        if (!seen) fail_msg("no config error names %s", names[i]);
    }
    svc_config_free(&cfg);
}

static void test_a_cap_below_the_base_is_raised_to_it(void **state) {
    setenv("CUSTOMERS_RETRY_BASE_MS", "500", 1);
    setenv("CUSTOMERS_RETRY_CAP_MS", "100", 1);
    struct svc_config cfg;
    svc_config_init(&cfg);
    struct svc_customers cc;
    svc_customers_config(&cc, &cfg);
    assert_int_equal(cfg.nerrors, 0);
    assert_int_equal(cc.retry_cap_ms, 500);
    svc_config_free(&cfg);
}

/* The one "customers:circuitBreaker" entry of checks: its status and observed value. */
static void assert_check(json_t *checks, const char *status, const char *observed, bool with_output) {
    json_t *entry = json_array_get(json_object_get(checks, "customers:circuitBreaker"), 0);
    assert_non_null(entry);
    assert_string_equal(json_string_value(json_object_get(entry, "componentType")), "component");
    assert_string_equal(json_string_value(json_object_get(entry, "status")), status);
    assert_string_equal(json_string_value(json_object_get(entry, "observedValue")), observed);
    assert_non_null(json_string_value(json_object_get(entry, "time")));
    assert_int_equal(json_object_get(entry, "output") != NULL, with_output);
}

static void test_an_open_breaker_warns_in_readiness_and_sets_the_retry_after(void **state) {
    setenv("CUSTOMERS_BREAKER_FAILURES", "1", 1);
    setenv("CUSTOMERS_RETRY_ATTEMPTS", "1", 1);
    setenv("CUSTOMERS_BREAKER_OPEN_MS", "4500", 1);
    struct svc_config cfg;
    svc_config_init(&cfg);
    struct svc_customers cc;
    svc_customers_config(&cc, &cfg);
    assert_int_equal(cfg.nerrors, 0);
    struct svc_logger log;
    int devnull = open("/dev/null", O_WRONLY);
    svc_log_init(&log, "test", "test-1", "error", devnull);
    assert_int_equal(svc_customers_open(&cc, "test-service", &log), 0);

    json_t *checks = json_object();
    assert_int_equal(svc_customers_ready(&cc, checks), 0);
    assert_check(checks, "pass", "closed", false);

    struct svc_httpc_request rq = {.upstream = SVC_CUSTOMERS_UPSTREAM, .method = "GET", .path = "/internal/users/x",
                               .no_auth = true};
    struct svc_httpc_response rs;
    assert_int_equal(svc_httpc_request(cc.http, &rq, &rs), SVC_HTTPC_CONNECT_ERROR);   /* the one failure that opens it */
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 1);
    svc_httpc_response_free(&rs);
    assert_int_equal(svc_httpc_request(cc.http, &rq, &rs), SVC_HTTPC_BREAKER_OPEN);
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 5);                 /* 4.5 s, rounded up */
    svc_httpc_response_free(&rs);

    assert_int_equal(svc_customers_ready(&cc, checks), 1);
    assert_check(checks, "warn", "open", true);
    json_decref(checks);
    svc_customers_close(&cc);
    svc_customers_close(&cc);                                                    /* idempotent */
    close(devnull);
    svc_config_free(&cfg);
}

static void test_the_upstreams_retry_after_is_passed_on_within_bounds(void **state) {
    struct svc_customers cc = {.svc_breaker_open_ms = 10000};
    struct svc_httpc_response rs = {.outcome = SVC_HTTPC_OK, .status = 503, .has_retry_after = true, .retry_after_ms = 2500};
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 3);
    rs.retry_after_ms = 0;
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 1);
    rs.retry_after_ms = 86400000;
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 3600);
    rs.has_retry_after = false;
    assert_int_equal(svc_customers_retry_after_s(&cc, &rs), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults_are_one_set_for_every_service, clean_env),
        cmocka_unit_test_setup(test_out_of_range_or_missing_settings_are_config_errors, clean_env),
        cmocka_unit_test_setup(test_a_cap_below_the_base_is_raised_to_it, clean_env),
        cmocka_unit_test_setup(test_an_open_breaker_warns_in_readiness_and_sets_the_retry_after, clean_env),
        cmocka_unit_test_setup(test_the_upstreams_retry_after_is_passed_on_within_bounds, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
