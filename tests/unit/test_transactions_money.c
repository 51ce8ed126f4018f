/* Money on the C side: exact parsing of decimal strings into cents, bounds, formatting with two
 * decimals (including the extremes of int64), the currency allow-list, and the classic "0.10 ten
 * times is exactly 1.00" that binary floating point gets wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "money.h"

static int64_t parse_ok(const char *s) {
    int64_t c = -1;
    const char *why = money_parse(s, &c);
    if (why) fail_msg("'%s' refused: %s", s, why);
    return c;
}

static void test_parse_accepts_the_api_forms(void **state) {
    assert_int_equal(parse_ok("0"), 0);
    assert_int_equal(parse_ok("1"), 100);
    assert_int_equal(parse_ok("1.5"), 150);
    assert_int_equal(parse_ok("1.05"), 105);
    assert_int_equal(parse_ok("100.50"), 10050);
    assert_int_equal(parse_ok("007.10"), 710);
    assert_int_equal(parse_ok("0.01"), 1);
    assert_int_equal(parse_ok("9999999999999.99"), INT64_C(999999999999999));
}

static void test_parse_refuses_everything_else(void **state) {
    const char *bad[] = {"", ".5", "5.", "1.234", "-1", "+1", "1e3", " 1", "1 ", "1,00", "0x10", "1..0",
                         "12345678901234", "NaN", "Infinity", "1.0.0", "١", "1\n", NULL};
    for (int i = 0; bad[i]; i++) {
        int64_t c = 42;
        if (!money_parse(bad[i], &c)) fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(c, 42);   /* untouched on failure */
    }
    int64_t c;
    assert_non_null(money_parse(NULL, &c));
}

static void test_amount_bounds(void **state) {
    int64_t c = 0;
    assert_non_null(money_parse_amount("0", MONEY_DEFAULT_MAX_CENTS, &c));
    assert_non_null(money_parse_amount("0.00", MONEY_DEFAULT_MAX_CENTS, &c));
    assert_null(money_parse_amount("0.01", MONEY_DEFAULT_MAX_CENTS, &c));
    assert_int_equal(c, 1);
    assert_null(money_parse_amount("1000000000.00", MONEY_DEFAULT_MAX_CENTS, &c));
    assert_int_equal(c, MONEY_DEFAULT_MAX_CENTS);
    assert_string_equal(money_parse_amount("1000000000.01", MONEY_DEFAULT_MAX_CENTS, &c),
                        "exceeds the maximum amount of one transaction");
    assert_non_null(money_parse_amount("9999999999999.99", MONEY_DEFAULT_MAX_CENTS, &c));
}

static void test_format_always_two_decimals(void **state) {
    char b[MONEY_STR_MAX];
    assert_string_equal(money_format(0, b), "0.00");
    assert_string_equal(money_format(1, b), "0.01");
    assert_string_equal(money_format(10, b), "0.10");
    assert_string_equal(money_format(100, b), "1.00");
    assert_string_equal(money_format(10050, b), "100.50");
    assert_string_equal(money_format(-5, b), "-0.05");
    assert_string_equal(money_format(-12345, b), "-123.45");
    assert_string_equal(money_format(INT64_MAX, b), "92233720368547758.07");
    assert_string_equal(money_format(INT64_MIN, b), "-92233720368547758.08");
    assert_true(strlen(money_format(INT64_MIN, b)) < MONEY_STR_MAX);
}

static void test_round_trip_is_canonical(void **state) {
    const char *in[] = {"1", "1.5", "01.50", "0.1"};
    const char *out[] = {"1.00", "1.50", "1.50", "0.10"};
    for (int i = 0; i < 4; i++) {
        char b[MONEY_STR_MAX];
        assert_string_equal(money_format(parse_ok(in[i]), b), out[i]);
    }
}

static void test_ten_dimes_make_exactly_one(void **state) {
    int64_t sum = 0;
    for (int i = 0; i < 10; i++) sum += parse_ok("0.10");
    char b[MONEY_STR_MAX];
    assert_string_equal(money_format(sum, b), "1.00");
}

static void test_currency_allow_list(void **state) {
    const char *ok[] = {"BRL", "USD", "EUR", "GBP", "ARS", "CLP", "MXN", "CAD"};
    for (int i = 0; i < 8; i++) assert_true(money_currency_ok(ok[i]));
    const char *bad[] = {"brl", "JPY", "BR", "BRLL", "", "XXX", "B\0L"};
    for (int i = 0; i < 7; i++) assert_false(money_currency_ok(bad[i]));
    assert_false(money_currency_ok(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_accepts_the_api_forms),
        cmocka_unit_test(test_parse_refuses_everything_else),
        cmocka_unit_test(test_amount_bounds),
        cmocka_unit_test(test_format_always_two_decimals),
        cmocka_unit_test(test_round_trip_is_canonical),
        cmocka_unit_test(test_ten_dimes_make_exactly_one),
        cmocka_unit_test(test_currency_allow_list),
    };
    return cmocka_run_group_tests_name("transactions_money", tests, NULL, NULL);
}
