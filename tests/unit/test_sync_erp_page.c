/* sync-service ERP page reader (erp_page.h) without a database: findings of the libFuzzer harness
 * fuzz/fuzz_sync_erp_page.c kept as regressions (their inputs stay in
 * fuzz/corpus/sync_erp_page/regress-*).
 *
 * "No control characters" in id, email, document and sku means every Unicode Cc character: the
 * C0 range, DEL (U+007F) and C1 (U+0080-009F, in UTF-8 the bytes C2 80..C2 9F, e.g. U+0085 NEXT
 * LINE), written raw or as a \u escape. The reader used to refuse only C0, so an ERP record with
 * a DEL or C1 character in its id was stored. A name may hold control characters (as before).
 * And an escaped NUL is never dropped from a value or a key (see the last test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "erp_page.h"

#define TENANT "01936f9e-0000-7000-8000-000000000001"

/* Parses a one-record customers page whose record carries field (a JSON member, e.g.
 * "\"id\":\"a\""); returns the number of rows it produced (0 or 1). */
static long customer_rows(const char *fields) {
    char page[1024];
    snprintf(page, sizeof page,
             "{\"data\":[{\"name\":\"n\",\"updated_at\":\"2026-12-07T13:00:00Z\",\"deleted\":false,%s}],"
             "\"has_more\":false}",
             fields);
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_page_info info;
    const char *why = NULL;
    if (erp_page_parse(page, strlen(page), ERP_CUSTOMERS, TENANT, &b, &info, &why) != 0) fail_msg("%s: %s", page, why);
    assert_int_equal(info.records, 1);
    long rows = b.records;
    assert_int_equal(info.invalid, 1 - rows);
    erp_batch_free(&b);
    return rows;
}

static void test_control_characters_in_ids_are_refused_in_every_form(void **state) {
    const char *bad[] = {
        "\"id\":\"a\\u0001b\"", "\"id\":\"a\\tb\"",         /* C0, escaped */
        "\"id\":\"a\\u007fb\"", "\"id\":\"a\x7f" "b\"",      /* DEL, escaped and raw */
        "\"id\":\"a\\u0085b\"", "\"id\":\"a\xc2\x85" "b\"",  /* C1 NEXT LINE, escaped and raw */
        "\"id\":\"\\u0080\"",   "\"id\":\"\xc2\x9f\"",       /* both ends of C1 */
        "\"id\":\"c\",\"email\":\"a\xc2\x85@b\"", "\"id\":\"c\",\"document\":\"\\u009b\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (customer_rows(bad[i]) != 0) fail_msg("stored a record with %s", bad[i]);
}

static void test_neighbours_of_the_control_ranges_are_kept(void **state) {
    const char *good[] = {
        "\"id\":\"a~b\"", "\"id\":\"a\\u00a0b\"", "\"id\":\"a\xc2\xa0" "b\"",   /* U+007E, U+00A0 */
        "\"id\":\"\xc3\x85\"", "\"id\":\"\\u0100\"",                              /* Å, Ā */
        "\"id\":\"c\",\"name\":\"bell\\u0007 and NEL\xc2\x85\"",                  /* names may */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (customer_rows(good[i]) != 1) fail_msg("refused a record with %s", good[i]);
}

/* A \u0000 is never stored (COPY text cannot carry it) and used to be dropped silently from
 * updated_at and price, so "2026-12\u0000-07T…" was stored as 2026-12-07 and "1\u00002" as 12;
 * such a record is invalid. A page key holding one is not the key without it. */
static void test_escaped_nul_never_vanishes(void **state) {
    const char *bad[] = {
        "\"id\":\"c\",\"updated_at\":\"2026-12\\u0000-07T13:00:00Z\"",
        "\"id\":\"c\",\"updated_at\":\"2026-12-07T13:00:00Z\\u0000\"",
        "\"id\":\"c\\u0000\"", "\"id\":\"c\",\"name\":\"\\u0000\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (customer_rows(bad[i]) != 0) fail_msg("stored a record with %s", bad[i]);

    const char *price_nul = "{\"data\":[{\"id\":\"p\",\"name\":\"n\",\"price\":\"1\\u00002\",\"stock\":1,"
                            "\"updated_at\":\"2026-12-07T13:00:00Z\",\"deleted\":false}],\"has_more\":false}";
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_page_info info;
    const char *why = NULL;
    assert_int_equal(erp_page_parse(price_nul, strlen(price_nul), ERP_PRODUCTS, TENANT, &b, &info, &why), 0);
    assert_int_equal(info.records, 1);
    assert_int_equal(info.invalid, 1);
    assert_int_equal(b.records, 0);

    /* "da\u0000ta" is an unknown key: this page has no data */
    const char *key_nul = "{\"da\\u0000ta\":[],\"has_more\":false}";
    assert_int_equal(erp_page_parse(key_nul, strlen(key_nul), ERP_CUSTOMERS, TENANT, &b, &info, &why), -1);
    assert_string_equal(why, "data or has_more missing");
    const char *more_nul = "{\"data\":[],\"has_more\\u0000\":true,\"has_more\":false}";
    assert_int_equal(erp_page_parse(more_nul, strlen(more_nul), ERP_CUSTOMERS, TENANT, &b, &info, &why), 0);
    assert_false(info.has_more);
    erp_batch_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_control_characters_in_ids_are_refused_in_every_form),
        cmocka_unit_test(test_neighbours_of_the_control_ranges_are_kept),
        cmocka_unit_test(test_escaped_nul_never_vanishes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
