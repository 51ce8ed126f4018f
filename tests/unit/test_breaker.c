/* Circuit breaker state machine, driven by an injected clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "svc/breaker.h"

struct fixture {
    uint64_t now;
    int changes;
    svc_breaker_state_t last_from, last_to;
    char last_name[32];
};

static uint64_t fake_clock(void *arg) { return ((struct fixture *)arg)->now; }

static void on_change(void *arg, const char *name, svc_breaker_state_t from, svc_breaker_state_t to) {
    struct fixture *f = arg;
    f->changes++;
    f->last_from = from;
    f->last_to = to;
    strncpy(f->last_name, name, sizeof f->last_name - 1);
}

static struct svc_breaker *make(struct fixture *f, struct svc_breaker_config cfg) {
    memset(f, 0, sizeof *f);
    f->now = 1000000;
    cfg.clock = fake_clock;
    cfg.clock_arg = f;
    cfg.on_change = on_change;
    cfg.on_change_arg = f;
    struct svc_breaker *b = svc_breaker_new("ledger", &cfg);
    assert_non_null(b);
    return b;
}

/* One call through the breaker with the given verdict; returns whether it was let through. */
static bool call(struct svc_breaker *b, svc_breaker_result_t r) {
    struct svc_breaker_permit p;
    if (!svc_breaker_allow(b, &p)) return false;
    svc_breaker_record(b, &p, r);
    return true;
}

static void test_defaults_open_after_five_consecutive_failures(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ 0 });
    for (int i = 0; i < 4; i++) assert_true(call(b, SVC_BREAKER_FAILURE));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    assert_true(call(b, SVC_BREAKER_FAILURE));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    assert_int_equal(f.changes, 1);
    assert_int_equal(f.last_from, SVC_BREAKER_CLOSED);
    assert_int_equal(f.last_to, SVC_BREAKER_OPEN);
    assert_string_equal(f.last_name, "ledger");
    svc_breaker_free(b);
}

static void test_success_resets_consecutive_count(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .window_size = -1 });
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 4; i++) assert_true(call(b, SVC_BREAKER_FAILURE));
        assert_true(call(b, SVC_BREAKER_SUCCESS));
    }
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    assert_int_equal(f.changes, 0);
    svc_breaker_free(b);
}

static void test_failure_rate_over_window_opens(void **state) {
    struct fixture f;
    /* Alternating failures never reach 5 in a row, but they are 50 % of the window. */
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ 0 });
    for (int i = 0; i < 4; i++) {
        assert_true(call(b, SVC_BREAKER_SUCCESS));
        assert_true(call(b, SVC_BREAKER_FAILURE));
    }
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);   /* 9 calls: below the 10-call minimum */
    assert_true(call(b, SVC_BREAKER_FAILURE));                 /* 10 calls, 5 failures = 50 % */
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    svc_breaker_free(b);
}

static void test_rate_below_threshold_stays_closed(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ 0 });
    /* 3 failures in every 7 calls: at most 45 % of any 20 consecutive calls, never 5 in a row. */
    for (int i = 0; i < 100; i++) assert_true(call(b, i % 7 >= 4 ? SVC_BREAKER_FAILURE : SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    svc_breaker_free(b);
}

static void test_window_slides_old_failures_out(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = -1, .window_size = 20 });
    for (int i = 0; i < 9; i++) assert_true(call(b, SVC_BREAKER_FAILURE));   /* 9 of 9: under min calls */
    for (int i = 0; i < 20; i++) assert_true(call(b, SVC_BREAKER_SUCCESS));  /* pushes them all out */
    for (int i = 0; i < 9; i++) assert_true(call(b, SVC_BREAKER_FAILURE));   /* 9 of 20 = 45 % */
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    assert_true(call(b, SVC_BREAKER_FAILURE));                                 /* 10 of 20 = 50 % */
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    svc_breaker_free(b);
}

static void test_open_rejects_until_timeout_then_half_open(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 2, .open_timeout_ms = 30000 });
    call(b, SVC_BREAKER_FAILURE);
    call(b, SVC_BREAKER_FAILURE);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    f.now += 29999;
    assert_false(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    f.now += 1;
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);
    assert_int_equal(f.last_from, SVC_BREAKER_OPEN);
    assert_int_equal(f.last_to, SVC_BREAKER_HALF_OPEN);
    svc_breaker_free(b);
}

static void test_default_open_timeout_is_30s(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 1 });
    call(b, SVC_BREAKER_FAILURE);
    f.now += 29999;
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    f.now += 1;
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);
    svc_breaker_free(b);
}

static void test_half_open_limits_concurrent_probes(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 1, .open_timeout_ms = 10,
                                                          .half_open_max_probes = 3 });
    call(b, SVC_BREAKER_FAILURE);
    f.now += 10;
    struct svc_breaker_permit p[4];
    assert_true(svc_breaker_allow(b, &p[0]));
    assert_true(svc_breaker_allow(b, &p[1]));
    assert_true(svc_breaker_allow(b, &p[2]));
    assert_false(svc_breaker_allow(b, &p[3]));   /* all three probe slots taken */
    svc_breaker_record(b, &p[0], SVC_BREAKER_IGNORE); /* a verdict-less finish frees its slot */
    assert_true(svc_breaker_allow(b, &p[3]));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);
    svc_breaker_record(b, &p[1], SVC_BREAKER_SUCCESS);
    svc_breaker_record(b, &p[2], SVC_BREAKER_SUCCESS);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    /* The last probe finishes after the breaker closed: its verdict belongs to the old state. */
    svc_breaker_record(b, &p[3], SVC_BREAKER_FAILURE);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    svc_breaker_free(b);
}

static void test_default_single_probe_and_two_successes_close(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 1, .open_timeout_ms = 10 });
    call(b, SVC_BREAKER_FAILURE);
    f.now += 10;
    struct svc_breaker_permit p1, p2;
    assert_true(svc_breaker_allow(b, &p1));
    assert_false(svc_breaker_allow(b, &p2));
    svc_breaker_record(b, &p1, SVC_BREAKER_SUCCESS);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);   /* one success is not enough */
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    assert_int_equal(f.last_from, SVC_BREAKER_HALF_OPEN);
    assert_int_equal(f.last_to, SVC_BREAKER_CLOSED);
    assert_int_equal(f.changes, 3);   /* closed→open→half-open→closed */
    svc_breaker_free(b);
}

static void test_probe_failure_reopens_for_a_full_timeout(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 1, .open_timeout_ms = 100 });
    call(b, SVC_BREAKER_FAILURE);
    f.now += 100;
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_true(call(b, SVC_BREAKER_FAILURE));   /* second probe fails */
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    assert_int_equal(f.last_from, SVC_BREAKER_HALF_OPEN);
    f.now += 99;
    assert_false(call(b, SVC_BREAKER_SUCCESS));
    f.now += 1;
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    svc_breaker_free(b);
}

static void test_closing_starts_a_fresh_window(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 3, .open_timeout_ms = 10 });
    call(b, SVC_BREAKER_FAILURE);
    call(b, SVC_BREAKER_FAILURE);
    call(b, SVC_BREAKER_FAILURE);
    f.now += 10;
    call(b, SVC_BREAKER_SUCCESS);
    call(b, SVC_BREAKER_SUCCESS);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    call(b, SVC_BREAKER_FAILURE);
    call(b, SVC_BREAKER_FAILURE);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);   /* the old failures were forgotten */
    svc_breaker_free(b);
}

static void test_ignored_results_do_not_count(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ 0 });
    /* httpc reports other 4xx as SUCCESS and local errors as IGNORE: neither opens the breaker. */
    for (int i = 0; i < 50; i++) assert_true(call(b, SVC_BREAKER_IGNORE));
    for (int i = 0; i < 4; i++) assert_true(call(b, SVC_BREAKER_FAILURE));
    for (int i = 0; i < 50; i++) assert_true(call(b, SVC_BREAKER_IGNORE));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    assert_true(call(b, SVC_BREAKER_FAILURE));   /* IGNORE did not break the run of failures */
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    svc_breaker_free(b);
}

static void test_stale_verdict_after_opening_is_ignored(void **state) {
    struct fixture f;
    struct svc_breaker *b = make(&f, (struct svc_breaker_config){ .failure_threshold = 1, .open_timeout_ms = 10 });
    struct svc_breaker_permit slow;
    assert_true(svc_breaker_allow(b, &slow));   /* a slow call starts while closed */
    call(b, SVC_BREAKER_FAILURE);               /* another call opens the breaker */
    f.now += 10;
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);
    svc_breaker_record(b, &slow, SVC_BREAKER_SUCCESS);   /* must not count as a probe success */
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_HALF_OPEN);
    assert_true(call(b, SVC_BREAKER_SUCCESS));
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    svc_breaker_free(b);
}

static void test_state_names(void **state) {
    assert_string_equal(svc_breaker_state_str(SVC_BREAKER_CLOSED), "closed");
    assert_string_equal(svc_breaker_state_str(SVC_BREAKER_HALF_OPEN), "half_open");
    assert_string_equal(svc_breaker_state_str(SVC_BREAKER_OPEN), "open");
    assert_int_equal(SVC_BREAKER_CLOSED, 0);
    assert_int_equal(SVC_BREAKER_HALF_OPEN, 1);
    assert_int_equal(SVC_BREAKER_OPEN, 2);
}

static void test_real_clock_default(void **state) {
    struct svc_breaker *b = svc_breaker_new("x", NULL);
    assert_non_null(b);
    uint64_t a = svc_breaker_now_ms(b);
    assert_true(a > 0);
    assert_true(svc_breaker_now_ms(b) >= a);
    assert_string_equal(svc_breaker_name(b), "x");
    svc_breaker_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_open_after_five_consecutive_failures),
        cmocka_unit_test(test_success_resets_consecutive_count),
        cmocka_unit_test(test_failure_rate_over_window_opens),
        cmocka_unit_test(test_rate_below_threshold_stays_closed),
        cmocka_unit_test(test_window_slides_old_failures_out),
        cmocka_unit_test(test_open_rejects_until_timeout_then_half_open),
        cmocka_unit_test(test_default_open_timeout_is_30s),
        cmocka_unit_test(test_half_open_limits_concurrent_probes),
        cmocka_unit_test(test_default_single_probe_and_two_successes_close),
        cmocka_unit_test(test_probe_failure_reopens_for_a_full_timeout),
        cmocka_unit_test(test_closing_starts_a_fresh_window),
        cmocka_unit_test(test_ignored_results_do_not_count),
        cmocka_unit_test(test_stale_verdict_after_opening_is_ignored),
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_real_clock_default),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
