/* transactions-service: the 201 body written in C (tx_json.h) must be the text
 * transactions.tx_json_original writes for the same row (the e2e replay tests compare the two
 * through the API; here the layout, escapes and timestamps are pinned). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tx_json.h"

static void test_epoch_text_becomes_microseconds(void **state) {
    int64_t us;
    assert_true(tx_json_epoch_us("1796211393.978123", &us));
    assert_int_equal(us, 1796211393978123LL);
    assert_true(tx_json_epoch_us("1796211393.9", &us));      /* trailing zeros dropped by PostgreSQL */
    assert_int_equal(us, 1796211393900000LL);
    assert_true(tx_json_epoch_us("1796211393", &us));
    assert_int_equal(us, 1796211393000000LL);
    assert_true(tx_json_epoch_us("1796211393.1234567", &us)); /* beyond microseconds: cut */
    assert_int_equal(us, 1796211393123456LL);
    assert_true(tx_json_epoch_us("-1.5", &us));
    assert_int_equal(us, -1500000LL);
    const char *bad[] = {"", "-", ".5", "1.", "1.2.3", "12a", " 1", "1e9", "9999999999999", NULL};
    for (int i = 0; bad[i]; i++) assert_false(tx_json_epoch_us(bad[i], &us));
    assert_false(tx_json_epoch_us(NULL, &us));
}

static char *escaped(const char *s) {
    struct svc_buf b;
    svc_buf_init(&b);
    tx_json_append_string(&b, s);
    return svc_buf_steal(&b);
}

static void test_strings_are_escaped_as_postgresql_does(void **state) {
    char *e = escaped("a\"b\\c\n\x01\xc3\xa9\t\r\b\f/");
    assert_string_equal(e, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\\t\\r\\b\\f/\"");
    free(e);
    e = escaped("");
    assert_string_equal(e, "\"\"");
    free(e);
}

/* The exact text PostgreSQL 15 gave for tx_json_original of such a row (checked by hand with
 * psql against db/transactions/001_ledger.sql). */
static void test_created_body_is_tx_json_original_byte_for_byte(void **state) {
    struct tx_json_row row = {.id = "3c12975d-9621-4f46-b79e-d6ace9f677d5",
                              .type = "deposit",
                              .amount = "1.50",
                              .currency = "BRL",
                              .description = "a\"b\\c\n\x01\xc3\xa9",
                              .user_id = "edd1e445-3352-4c87-b038-d0a49ddf30d6",
                              .created_us = 1796213301275987LL};
    char *j = tx_json_created(&row);
    assert_non_null(j);
    assert_string_equal(j, "{\"id\" : \"3c12975d-9621-4f46-b79e-d6ace9f677d5\", \"type\" : \"deposit\", "
                           "\"status\" : \"completed\", \"amount\" : \"1.50\", \"currency\" : \"BRL\", "
                           "\"description\" : \"a\\\"b\\\\c\\n\\u0001\xc3\xa9\", "
                           "\"user_id\" : \"edd1e445-3352-4c87-b038-d0a49ddf30d6\", \"to_user_id\" : null, "
                           "\"reverses_id\" : null, \"reversed_by\" : null, "
                           "\"created_at\" : \"2026-12-02T12:08:21.275Z\", \"updated_at\" : \"2026-12-02T12:08:21.275Z\"}");
    free(j);
    row.description = NULL;
    row.type = "withdrawal";
    row.created_us = -1;   /* 1969-12-31T23:59:59.999999: milliseconds are cut, not rounded */
    j = tx_json_created(&row);
    assert_non_null(strstr(j, "\"description\" : null, "));
    assert_non_null(strstr(j, "\"type\" : \"withdrawal\", "));
    assert_non_null(strstr(j, "\"created_at\" : \"1969-12-31T23:59:59.999Z\""));
    free(j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_text_becomes_microseconds),
        cmocka_unit_test(test_strings_are_escaped_as_postgresql_does),
        cmocka_unit_test(test_created_body_is_tx_json_original_byte_for_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
