/* Request validation of transactions-service: the POST body (every field's rules, all problems
 * reported at once, no effect of key order), list and summary query parameters and the date /
 * timestamp bounds they accept. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "tx_request.h"

#define ME "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
#define OTHER "11111111-2222-4333-8444-555555555555"

static json_t *body(const char *text) {
    json_error_t e;
    json_t *b = json_loads(text, 0, &e);
    if (!b) fail_msg("bad test JSON: %s", e.text);
    return b;
}

/* Parses and expects failure; returns the reasons object (caller decrefs). */
static json_t *refused(const char *text) {
    json_t *b = body(text);
    struct tx_create_req rq;
    json_t *fields = NULL;
    assert_false(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    assert_non_null(fields);
    json_decref(b);
    return fields;
}

static void test_deposit_defaults_currency_and_canonicalises_amount(void **state) {
    json_t *b = body("{\"type\":\"deposit\",\"amount\":\"10.5\"}");
    struct tx_create_req rq;
    json_t *fields = (json_t *)1;
    assert_true(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    assert_null(fields);
    assert_int_equal(rq.type, TX_DEPOSIT);
    assert_int_equal(rq.amount_cents, 1050);
    assert_string_equal(rq.amount, "10.50");
    assert_string_equal(rq.currency, "BRL");
    assert_null(rq.description);
    assert_string_equal(rq.to_user_id, "");
    json_decref(b);
}

static void test_transfer_lowercases_the_recipient(void **state) {
    json_t *b = body("{\"type\":\"transfer\",\"amount\":\"1\",\"currency\":\"USD\",\"description\":\"rent\","
                     "\"to_user_id\":\"11111111-2222-4333-8444-55555555555A\"}");
    struct tx_create_req rq;
    json_t *fields = NULL;
    assert_true(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    assert_int_equal(rq.type, TX_TRANSFER);
    assert_string_equal(rq.currency, "USD");
    assert_string_equal(rq.description, "rent");
    assert_string_equal(rq.to_user_id, "11111111-2222-4333-8444-55555555555a");
    json_decref(b);
}

static void test_every_problem_is_reported_at_once(void **state) {
    json_t *f = refused("{\"type\":\"refund\",\"amount\":10.5,\"currency\":\"brl\",\"description\":7,\"extra\":true}");
    assert_int_equal(json_object_size(f), 5);
    assert_string_equal(json_string_value(json_object_get(f, "extra")), "unknown field");
    assert_non_null(json_object_get(f, "type"));
    assert_non_null(strstr(json_string_value(json_object_get(f, "amount")), "must be a string"));
    assert_non_null(json_object_get(f, "currency"));
    assert_non_null(json_object_get(f, "description"));
    json_decref(f);
}

static void test_required_fields(void **state) {
    json_t *f = refused("{}");
    assert_string_equal(json_string_value(json_object_get(f, "type")), "required");
    assert_string_equal(json_string_value(json_object_get(f, "amount")), "required");
    json_decref(f);
}

static void test_amount_rules(void **state) {
    const char *bad[] = {"{\"type\":\"deposit\",\"amount\":\"0\"}", "{\"type\":\"deposit\",\"amount\":\"-1\"}",
                         "{\"type\":\"deposit\",\"amount\":\"1.001\"}", "{\"type\":\"deposit\",\"amount\":\"1e2\"}",
                         "{\"type\":\"deposit\",\"amount\":\"1000000000.01\"}", "{\"type\":\"deposit\",\"amount\":null}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *f = refused(bad[i]);
        assert_non_null(json_object_get(f, "amount"));
        assert_int_equal(json_object_size(f), 1);
        json_decref(f);
    }
}

static void test_recipient_rules(void **state) {
    json_t *f = refused("{\"type\":\"transfer\",\"amount\":\"1\"}");
    assert_string_equal(json_string_value(json_object_get(f, "to_user_id")), "required for a transfer");
    json_decref(f);
    f = refused("{\"type\":\"transfer\",\"amount\":\"1\",\"to_user_id\":\"bob\"}");
    assert_string_equal(json_string_value(json_object_get(f, "to_user_id")), "must be a user id (UUID)");
    json_decref(f);
    f = refused("{\"type\":\"transfer\",\"amount\":\"1\",\"to_user_id\":\"AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE\"}");
    assert_string_equal(json_string_value(json_object_get(f, "to_user_id")), "must differ from the caller");
    json_decref(f);
    f = refused("{\"type\":\"deposit\",\"amount\":\"1\",\"to_user_id\":\"" OTHER "\"}");
    assert_string_equal(json_string_value(json_object_get(f, "to_user_id")), "only allowed for a transfer");
    json_decref(f);
    /* null is the same as absent */
    json_t *b = body("{\"type\":\"withdrawal\",\"amount\":\"1\",\"to_user_id\":null,\"description\":null,\"currency\":null}");
    struct tx_create_req rq;
    json_t *fields = NULL;
    assert_true(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    json_decref(b);
}

static void test_description_limits(void **state) {
    char text[1200];
    /* 500 two-byte characters are fine: the limit counts characters, not bytes */
    strcpy(text, "{\"type\":\"deposit\",\"amount\":\"1\",\"description\":\"");
    for (int i = 0; i < 500; i++) strcat(text, "\xc3\xa9");
    strcat(text, "\"}");
    json_t *b = body(text);
    struct tx_create_req rq;
    json_t *fields = NULL;
    assert_true(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    json_decref(b);
    strcpy(text + strlen(text) - 2, "x\"}");
    json_t *f = refused(text);
    assert_string_equal(json_string_value(json_object_get(f, "description")), "must be at most 500 characters");
    json_decref(f);
    f = refused("{\"type\":\"deposit\",\"amount\":\"1\",\"description\":\"bell\\u0007\"}");
    assert_non_null(json_object_get(f, "description"));
    json_decref(f);
}

/* Control characters other than tab and newline are refused, C1 (U+0080..U+009F) included:
 * "a\u0085b" (NEXT LINE) once passed because only bytes below 0x20 were looked at. */
static void test_description_refuses_c1_and_other_controls_but_keeps_tab_and_newline(void **state) {
    static const char *const refused_texts[] = {"a\\u0085b", "a\\u0080", "\\u009f", "a\\u007fb", "a\\rb", "\\u001b[31m"};
    for (size_t i = 0; i < sizeof refused_texts / sizeof refused_texts[0]; i++) {
        char text[200];
        snprintf(text, sizeof text, "{\"type\":\"deposit\",\"amount\":\"1\",\"description\":\"%s\"}", refused_texts[i]);
        json_t *f = refused(text);
        assert_string_equal(json_string_value(json_object_get(f, "description")), "must not contain control characters");
        json_decref(f);
    }
    /* raw UTF-8 bytes C2 85 are the same character as the escape */
    json_t *f = refused("{\"type\":\"deposit\",\"amount\":\"1\",\"description\":\"a\xc2\x85" "b\"}");
    assert_non_null(json_object_get(f, "description"));
    json_decref(f);
    json_t *b = body("{\"type\":\"deposit\",\"amount\":\"1\",\"description\":\"rent\\tMay\\nflat \\u00a0\\u00e9\"}");
    struct tx_create_req rq;
    json_t *fields = NULL;
    assert_true(tx_parse_create(b, ME, MONEY_DEFAULT_MAX_CENTS, &rq, &fields));
    assert_string_equal(rq.description, "rent\tMay\nflat \xc2\xa0\xc3\xa9");
    json_decref(b);
}

static void test_instants(void **state) {
    struct tx_instant t;
    assert_null(tx_parse_instant(NULL, &t));
    assert_false(t.set);
    assert_null(tx_parse_instant("2024-02-29", &t));
    assert_true(t.set && t.date_only);
    assert_string_equal(t.text, "2024-02-29T00:00:00Z");
    assert_null(tx_parse_instant("2024-05-01T10:20:30Z", &t));
    assert_false(t.date_only);
    assert_string_equal(t.text, "2024-05-01T10:20:30Z");
    assert_null(tx_parse_instant("2024-05-01T10:20:30.123456-03:00", &t));
    assert_null(tx_parse_instant("2000-02-29", &t));
    const char *bad[] = {"2023-02-29", "1900-02-29", "2024-13-01", "2024-04-31", "2024-00-10", "24-01-01",
                         "2024/01/01", "2024-01-01T24:00:00Z", "2024-01-01T10:00:00", "2024-01-01T10:00:00.Z",
                         "2024-01-01T10:00:00.1234567Z", "2024-01-01T10:00:00+0300", "2024-01-01 10:00:00Z",
                         "1969-12-31", "today", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (!tx_parse_instant(bad[i], &t)) fail_msg("'%s' accepted", bad[i]);
        assert_false(t.set);
    }
}

static void test_list_query_defaults_and_limits(void **state) {
    struct tx_list_query q;
    json_t *f = NULL;
    struct svc_page_params none = {0};
    assert_true(tx_parse_list_query(&none, NULL, NULL, NULL, NULL, NULL, &q, &f));
    assert_int_equal(q.page.page, 0);                 /* keyset: the newest page */
    assert_int_equal(q.page.limit, SVC_PAGE_LIMIT_DEFAULT);
    assert_false(q.page.include_total);
    assert_null(q.type);
    struct svc_page_params p3 = {.limit = "100", .page = "3"};
    assert_true(tx_parse_list_query(&p3, "reversal", "reversed", "2024-01-01", "2024-01-31", ME, &q, &f));
    assert_int_equal(q.page.page, 3);
    assert_int_equal(q.page.limit, 100);
    assert_true(q.page.include_total);
    assert_string_equal(q.type, "reversal");
    assert_string_equal(q.status, "reversed");
    assert_true(q.to.date_only);
    struct svc_page_params bad = {.limit = "101", .page = "0", .cursor = "x", .include_total = "yes"};
    assert_false(tx_parse_list_query(&bad, "refund", "done", "2024-02-30", "x", "me", &q, &f));
    assert_int_equal(json_object_size(f), 9);
    assert_string_equal(json_string_value(json_object_get(f, "page")), SVC_PAGE_PAGE_REASON);
    assert_string_equal(json_string_value(json_object_get(f, "limit")), SVC_PAGE_LIMIT_REASON);
    json_decref(f);
    const char *bad_limits[] = {"-1", "1.5", "", "abc", "99999999999999999999", "0", "+2"};
    for (size_t i = 0; i < sizeof bad_limits / sizeof bad_limits[0]; i++) {
        struct svc_page_params p = {.limit = bad_limits[i]};
        assert_false(tx_parse_list_query(&p, NULL, NULL, NULL, NULL, NULL, &q, &f));
        json_decref(f);
    }
}

/* A cursor from the list parses into the position the repository pages after. */
static void test_list_query_takes_a_cursor_of_this_list_only(void **state) {
    struct svc_cursor c = {.time_us = 1700000000123456LL};
    strcpy(c.id, OTHER);
    char text[SVC_CURSOR_TEXT_MAX + 1];
    assert_true(svc_cursor_encode(&tx_list_kind, &c, text));
    struct tx_list_query q;
    json_t *f = NULL;
    struct svc_page_params p = {.cursor = text};
    assert_true(tx_parse_list_query(&p, NULL, NULL, NULL, NULL, NULL, &q, &f));
    assert_true(q.page.after);
    assert_int_equal(q.page.at.time_us, c.time_us);
    assert_string_equal(q.page.at.id, OTHER);
    static const struct svc_list other = {.kind = 'U', .id = SVC_CURSOR_UUID};
    c.time_us = 0;
    assert_true(svc_cursor_encode(&other, &c, text));
    assert_false(tx_parse_list_query(&p, NULL, NULL, NULL, NULL, NULL, &q, &f));
    assert_string_equal(json_string_value(json_object_get(f, "cursor")), SVC_PAGE_CURSOR_REASON);
    json_decref(f);
}

static void test_list_range_must_not_be_reversed(void **state) {
    struct tx_list_query q;
    json_t *f = NULL;
    struct svc_page_params none = {0};
    assert_false(tx_parse_list_query(&none, NULL, NULL, "2024-02-01", "2024-01-31", NULL, &q, &f));
    assert_string_equal(json_string_value(json_object_get(f, "to")), "must not be before from");
    json_decref(f);
    assert_true(tx_parse_list_query(&none, NULL, NULL, "2024-02-01", "2024-02-01", NULL, &q, &f));
}

static void test_summary_query(void **state) {
    struct tx_summary_query q;
    json_t *f = NULL;
    assert_true(tx_parse_summary_query(NULL, NULL, NULL, NULL, NULL, &q, &f));
    assert_int_equal(q.group_by, TX_GROUP_DAY);
    assert_string_equal(q.currency, "BRL");
    assert_true(tx_parse_summary_query("month", "2024-01-01", NULL, OTHER, "EUR", &q, &f));
    assert_int_equal(q.group_by, TX_GROUP_MONTH);
    assert_string_equal(tx_group_by_name(q.group_by), "month");
    assert_string_equal(q.from.raw, "2024-01-01");
    assert_string_equal(q.currency, "EUR");
    assert_true(tx_parse_summary_query("type", NULL, NULL, NULL, NULL, &q, &f));
    assert_int_equal(q.group_by, TX_GROUP_TYPE);
    assert_false(tx_parse_summary_query("week", "x", NULL, "nope", "JPY", &q, &f));
    assert_int_equal(json_object_size(f), 4);
    json_decref(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deposit_defaults_currency_and_canonicalises_amount),
        cmocka_unit_test(test_transfer_lowercases_the_recipient),
        cmocka_unit_test(test_every_problem_is_reported_at_once),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_amount_rules),
        cmocka_unit_test(test_recipient_rules),
        cmocka_unit_test(test_description_limits),
        cmocka_unit_test(test_description_refuses_c1_and_other_controls_but_keeps_tab_and_newline),
        cmocka_unit_test(test_instants),
        cmocka_unit_test(test_list_query_defaults_and_limits),
        cmocka_unit_test(test_list_query_takes_a_cursor_of_this_list_only),
        cmocka_unit_test(test_list_range_must_not_be_reversed),
        cmocka_unit_test(test_summary_query),
    };
    return cmocka_run_group_tests_name("transactions_request", tests, NULL, NULL);
}
