/* Backoff schedule: ceilings, exact jitter bounds with an injected generator, Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "svc/backoff.h"

static uint64_t rng_const(void *arg) { return *(uint64_t *)arg; }

static void test_defaults_are_1s_cap_4s(void **state) {
    struct svc_backoff_policy p;
    svc_backoff_policy_defaults(&p);
    assert_int_equal(p.base_ms, 1000);
    assert_int_equal(p.cap_ms, 4000);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 0), 1000);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 1), 2000);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 2), 4000);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 3), 4000);
}

static void test_ceiling_never_overflows(void **state) {
    struct svc_backoff_policy p = { .base_ms = 3, .cap_ms = UINT32_MAX };
    assert_int_equal(svc_backoff_ceiling_ms(&p, 10), 3072);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 40), UINT32_MAX);
    assert_int_equal(svc_backoff_ceiling_ms(&p, 1000000), UINT32_MAX);
    struct svc_backoff_policy q = { .base_ms = UINT32_MAX, .cap_ms = 5000 };
    assert_int_equal(svc_backoff_ceiling_ms(&q, 0), 5000);
}

static void test_zero_base_means_no_wait(void **state) {
    struct svc_backoff_policy p = { .base_ms = 0, .cap_ms = 4000 };
    uint64_t bits = UINT64_MAX;
    assert_int_equal(svc_backoff_delay_ms(&p, 5, rng_const, &bits), 0);
}

static void test_delay_bounds_are_exact(void **state) {
    struct svc_backoff_policy p = { .base_ms = 1000, .cap_ms = 4000 };
    uint64_t lo = 0, hi = UINT64_MAX, mid = UINT64_MAX / 2 + 1;
    for (unsigned k = 0; k < 6; k++) {
        uint32_t ceil = svc_backoff_ceiling_ms(&p, k);
        assert_int_equal(svc_backoff_delay_ms(&p, k, rng_const, &lo), 0);
        assert_int_equal(svc_backoff_delay_ms(&p, k, rng_const, &hi), ceil);
        /* The midpoint of the bit range maps to the middle of [0, ceil]. */
        uint32_t m = svc_backoff_delay_ms(&p, k, rng_const, &mid);
        assert_true(m == (ceil + 1) / 2);
    }
}

static void test_uniform_covers_every_value(void **state) {
    /* With bound 3 the four quarters of the 64-bit range map to 0, 1, 2, 3. */
    uint64_t q = UINT64_MAX / 4 + 1;
    for (uint64_t i = 0; i < 4; i++) {
        assert_int_equal(svc_backoff_uniform(i * q, 3), i);
        assert_int_equal(svc_backoff_uniform(i * q + (q - 1), 3), i);
    }
    assert_int_equal(svc_backoff_uniform(UINT64_MAX, 0), 0);
    assert_int_equal(svc_backoff_uniform(UINT64_MAX, UINT32_MAX), UINT32_MAX);
}

static void test_real_generator_stays_within_ceiling(void **state) {
    struct svc_backoff_policy p = { .base_ms = 10, .cap_ms = 35 };
    uint64_t s = 42;
    uint32_t seen_max = 0, seen_min = UINT32_MAX;
    for (int i = 0; i < 20000; i++) {
        uint32_t d = svc_backoff_delay_ms(&p, 2, svc_backoff_splitmix64, &s);
        assert_true(d <= 35);
        if (d > seen_max) seen_max = d;
        if (d < seen_min) seen_min = d;
    }
    /* full jitter: the whole window is used, from 0 up to the ceiling */
    assert_int_equal(seen_min, 0);
    assert_int_equal(seen_max, 35);
}

static void test_retry_after_seconds(void **state) {
    uint32_t ms = 1;
    assert_int_equal(svc_backoff_parse_retry_after("120", 0, &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(svc_backoff_parse_retry_after("  0 ", 0, &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(svc_backoff_parse_retry_after("99999999999999999999", 0, &ms), 0);
    assert_int_equal(ms, UINT32_MAX);
}

static void test_retry_after_date(void **state) {
    uint32_t ms = 0;
    time_t now = 1445412470;   /* Wed, 21 Oct 2015 07:27:50 GMT */
    assert_int_equal(svc_backoff_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 10000);
    assert_int_equal(svc_backoff_parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now, &ms), 0);
    assert_int_equal(ms, 0);
}

static void test_retry_after_malformed(void **state) {
    uint32_t ms = 7;
    assert_int_equal(svc_backoff_parse_retry_after("", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after("-5", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after("5s", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after("1.5", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after("tomorrow", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT junk", 0, &ms), -1);
    assert_int_equal(svc_backoff_parse_retry_after(NULL, 0, &ms), -1);
    assert_int_equal(ms, 7);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_1s_cap_4s),
        cmocka_unit_test(test_ceiling_never_overflows),
        cmocka_unit_test(test_zero_base_means_no_wait),
        cmocka_unit_test(test_delay_bounds_are_exact),
        cmocka_unit_test(test_uniform_covers_every_value),
        cmocka_unit_test(test_real_generator_stays_within_ceiling),
        cmocka_unit_test(test_retry_after_seconds),
        cmocka_unit_test(test_retry_after_date),
        cmocka_unit_test(test_retry_after_malformed),
    };
    return cmocka_run_group_tests_name("backoff", tests, NULL, NULL);
}
