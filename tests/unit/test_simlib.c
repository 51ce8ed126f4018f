/* The simulators' shared helpers (tools/simlib): fault RNG, sliced sleep, strict parsing.
 *
 * The library is compiled into this test directly (the Makefile links only libshared into unit
 * tests). Answers and the daemon are exercised by the simulators' e2e tests (test_legacy_api.py,
 * test_erp_api.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "../../tools/simlib/sim.c"

static double elapsed_ms(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* splitmix64's published first outputs from state 0. */
static void test_rng_is_splitmix64(void **state) {
    uint64_t s = 0;
    assert_true(sim_rng_next(&s) == 0xe220a8397b1dcdafULL);
    assert_true(sim_rng_next(&s) == 0x6e789e6aa1b965f4ULL);
    assert_true(s == 2 * 0x9e3779b97f4a7c15ULL);
}

static void test_chance_bounds_draw_nothing_and_rates_hold(void **state) {
    uint64_t s = 7;
    assert_false(sim_chance(&s, 0.0));
    assert_false(sim_chance(&s, -1.0));
    assert_true(sim_chance(&s, 1.0));
    assert_true(s == 7);
    int hits = 0;
    for (int i = 0; i < 100000; i++) hits += sim_chance(&s, 0.25);
    assert_in_range(hits, 24000, 26000);
}

static void test_seeds_differ_between_requests(void **state) {
    atomic_uint_fast64_t requests;
    atomic_init(&requests, 0);
    uint64_t a = sim_rng_seed(&requests), b = sim_rng_seed(&requests);
    assert_true(a != b);
    assert_int_equal(atomic_load(&requests), 2);
}

static void test_sleep_sleeps_and_stops_early(void **state) {
    atomic_bool stop;
    atomic_init(&stop, false);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_true(sim_sleep_ms(&stop, 120));
    assert_true(elapsed_ms(&t0) >= 119.0);
    atomic_store(&stop, true);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_false(sim_sleep_ms(&stop, 60000));
    assert_true(elapsed_ms(&t0) < 1000.0);
    assert_false(sim_sleep_ms(&stop, 0));
}

static void test_parse_uint_is_strict(void **state) {
    unsigned long v = 99;
    assert_true(sim_parse_uint("0", 10, &v) && v == 0);
    assert_true(sim_parse_uint("10", 10, &v) && v == 10);
    v = 99;
    const char *bad[] = {NULL, "", "11", "-1", "+1", " 1", "1 ", "1x", "0x1", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) assert_false(sim_parse_uint(bad[i], 10, &v));
    assert_int_equal(v, 99);
}

static void test_env_long_defaults_and_accepts_the_range(void **state) {
    unsetenv("SIM_TEST_N");
    assert_int_equal(sim_env_long("t", "SIM_TEST_N", 5, 0, 9), 5);
    setenv("SIM_TEST_N", "", 1);
    assert_int_equal(sim_env_long("t", "SIM_TEST_N", 5, 0, 9), 5);
    setenv("SIM_TEST_N", "9", 1);
    assert_int_equal(sim_env_long("t", "SIM_TEST_N", 5, 0, 9), 9);
    unsetenv("SIM_TEST_N");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_is_splitmix64),
        cmocka_unit_test(test_chance_bounds_draw_nothing_and_rates_hold),
        cmocka_unit_test(test_seeds_differ_between_requests),
        cmocka_unit_test(test_sleep_sleeps_and_stops_early),
        cmocka_unit_test(test_parse_uint_is_strict),
        cmocka_unit_test(test_env_long_defaults_and_accepts_the_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
