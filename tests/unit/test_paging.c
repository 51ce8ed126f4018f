/* Unit tests for the shared paging parser, cursors and page rendering (svc/paging.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/b64url.h"
#include "svc/crypto.h"
#include "svc/paging.h"

static const struct svc_list TIMED = {.kind = 'T', .timed = true, .id = SVC_CURSOR_UUID, .legacy_page = true};
static const struct svc_list BY_ID = {.kind = 'U', .timed = false, .id = SVC_CURSOR_UUID, .legacy_page = true};
static const struct svc_list BY_INT = {.kind = 'J', .timed = true, .id = SVC_CURSOR_INT, .legacy_page = false};
static const struct svc_list POSITIONS = {.kind = 'E', .timed = false, .id = SVC_CURSOR_INT, .legacy_page = true};

#define UUID_A "0190f3a2-7b1c-7def-8123-456789abcdef"

static struct svc_page_params params(const char *limit, const char *cursor, const char *page, const char *total) {
    return (struct svc_page_params){limit, cursor, page, total};
}

/* Parses and returns the reason given for name, or NULL when the parse succeeded. The returned
 * text is copied into a static buffer (fields is freed here). */
static const char *reason_of(const struct svc_list *l, struct svc_page_params p, const char *name, struct svc_page *out) {
    static char buf[128];
    json_t *fields = json_object();
    struct svc_page pg;
    bool ok = svc_page_parse(l, &p, out ? out : &pg, fields);
    const char *why = json_string_value(json_object_get(fields, name));
    assert_int_equal(ok, json_object_size(fields) == 0);
    if (!why) {
        json_decref(fields);
        return NULL;
    }
    snprintf(buf, sizeof buf, "%s", why);
    json_decref(fields);
    return buf;
}

static void test_page_defaults_without_parameters(void **state) {
    (void)state;
    struct svc_page pg;
    assert_null(reason_of(&TIMED, params(NULL, NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, SVC_PAGE_LIMIT_DEFAULT);
    assert_int_equal(pg.page, 0);
    assert_false(pg.after);
    assert_false(pg.include_total);
}

static void test_page_limit_is_digits_from_1_to_100(void **state) {
    (void)state;
    struct svc_page pg;
    assert_null(reason_of(&TIMED, params("1", NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, 1);
    assert_null(reason_of(&TIMED, params("100", NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, 100);
    assert_null(reason_of(&TIMED, params("007", NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, 7);
    const char *bad[] = {"0", "101", "-1", "+2", " 2", "2 ", "abc", "", "2.0", "1e2", "0x10",
                         "99999999999999999999999999", "9223372036854775808"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *why = reason_of(&TIMED, params(bad[i], NULL, NULL, NULL), "limit", &pg);
        assert_non_null(why);
        assert_string_equal(why, SVC_PAGE_LIMIT_REASON);
        assert_int_equal(pg.limit, SVC_PAGE_LIMIT_DEFAULT);
    }
}

static void test_page_number_is_strict_and_bounded(void **state) {
    (void)state;
    struct svc_page pg;
    assert_null(reason_of(&TIMED, params("10", NULL, "3", NULL), "page", &pg));
    assert_int_equal(pg.page, 3);
    assert_true(pg.include_total);  /* page mode always counts, as before */
    assert_null(reason_of(&TIMED, params(NULL, NULL, "1000000", NULL), "page", &pg));
    const char *bad[] = {"0", "+2", "-1", "abc", "", "1000001", "2 ", "18446744073709551617"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(reason_of(&TIMED, params(NULL, NULL, bad[i], NULL), "page", &pg), SVC_PAGE_PAGE_REASON);
}

static void test_page_refused_by_a_list_that_never_had_it(void **state) {
    (void)state;
    assert_string_equal(reason_of(&BY_INT, params(NULL, NULL, "1", NULL), "page", NULL), SVC_PAGE_NO_PAGE_REASON);
}

static void test_include_total_is_true_or_false(void **state) {
    (void)state;
    struct svc_page pg;
    assert_null(reason_of(&TIMED, params(NULL, NULL, NULL, "true"), "include_total", &pg));
    assert_true(pg.include_total);
    assert_null(reason_of(&TIMED, params(NULL, NULL, NULL, "false"), "include_total", &pg));
    assert_false(pg.include_total);
    const char *bad[] = {"1", "yes", "TRUE", "", "true "};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_string_equal(reason_of(&TIMED, params(NULL, NULL, NULL, bad[i]), "include_total", NULL),
                            SVC_QUERY_BOOL_REASON);
}

static void test_a_list_may_declare_its_own_limits(void **state) {
    (void)state;
    static const struct svc_list WIDE = {
        .kind = 'V', .timed = true, .id = SVC_CURSOR_UUID, .limit_default = 50, .limit_max = 500};
    struct svc_page pg;
    assert_null(reason_of(&WIDE, params(NULL, NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, 50);
    assert_null(reason_of(&WIDE, params("500", NULL, NULL, NULL), "limit", &pg));
    assert_int_equal(pg.limit, 500);
    assert_string_equal(reason_of(&WIDE, params("501", NULL, NULL, NULL), "limit", &pg),
                        "must be an integer from 1 to 500");
    assert_int_equal(pg.limit, 50);
    /* a maximum beyond the cap is held to the cap */
    static const struct svc_list HUGE = {.kind = 'V', .timed = true, .id = SVC_CURSOR_UUID, .limit_max = 100000};
    assert_null(reason_of(&HUGE, params("1000", NULL, NULL, NULL), "limit", &pg));
    assert_string_equal(reason_of(&HUGE, params("1001", NULL, NULL, NULL), "limit", NULL),
                        "must be an integer from 1 to 1000");
    /* every other list keeps the platform's limits and message */
    assert_string_equal(reason_of(&TIMED, params("101", NULL, NULL, NULL), "limit", NULL), SVC_PAGE_LIMIT_REASON);
}

static void test_every_bad_parameter_is_reported_at_once(void **state) {
    (void)state;
    json_t *fields = json_object();
    struct svc_page pg;
    struct svc_page_params p = params("0", "x", "abc", "maybe");
    assert_false(svc_page_parse(&TIMED, &p, &pg, fields));
    assert_int_equal(json_object_size(fields), 4);
    assert_string_equal(json_string_value(json_object_get(fields, "cursor")), SVC_PAGE_CURSOR_AND_PAGE_REASON);
    json_decref(fields);
}

static void test_cursor_round_trips_a_time_and_uuid_key(void **state) {
    (void)state;
    struct svc_cursor c = {.time_us = 1796211393978123LL}, back;
    strcpy(c.id, "0190F3A2-7B1C-7DEF-8123-456789ABCDEF");
    char text[SVC_CURSOR_TEXT_MAX + 1];
    assert_true(svc_cursor_encode(&TIMED, &c, text));
    assert_int_equal(strlen(text), 40);
    for (const char *s = text; *s; s++) assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *s));
    assert_true(svc_cursor_decode(&TIMED, text, &back));
    assert_int_equal(back.time_us, c.time_us);
    assert_string_equal(back.id, UUID_A);  /* lower case */

    struct svc_page pg;
    assert_null(reason_of(&TIMED, params(NULL, text, NULL, NULL), "cursor", &pg));
    assert_true(pg.after);
    assert_int_equal(pg.at.time_us, c.time_us);
    assert_string_equal(pg.at.id, UUID_A);
}

static void test_cursor_round_trips_integer_keys(void **state) {
    (void)state;
    char text[SVC_CURSOR_TEXT_MAX + 1];
    struct svc_cursor c = {.time_us = 0}, back;
    strcpy(c.id, "0");
    assert_true(svc_cursor_encode(&POSITIONS, &c, text));
    assert_true(svc_cursor_decode(&POSITIONS, text, &back));
    assert_string_equal(back.id, "0");
    strcpy(c.id, "999999999999999999");
    c.time_us = 5;
    assert_true(svc_cursor_encode(&BY_INT, &c, text));
    assert_true(svc_cursor_decode(&BY_INT, text, &back));
    assert_string_equal(back.id, "999999999999999999");
    assert_int_equal(back.time_us, 5);
}

/* Lists keyed by a foreign system's id (a tenant's ERP records): any text of 1-128 bytes without
 * control characters, UTF-8 included; anything else cannot be encoded, and a cursor of another
 * length or kind does not decode. */
static void test_cursor_round_trips_text_keys(void **state) {
    (void)state;
    static const struct svc_list BY_TEXT = {.kind = 'C', .timed = false, .id = SVC_CURSOR_TEXT};
    char text[SVC_CURSOR_TEXT_MAX + 1];
    struct svc_cursor c = {.time_us = 0}, back;
    const char *ids[] = {"C000001", "a/b?c=d&e f", "Zo\xc3\xab-\xe7\xbe\x8e", "x"};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        strcpy(c.id, ids[i]);
        assert_true(svc_cursor_encode(&BY_TEXT, &c, text));
        assert_true(svc_cursor_decode(&BY_TEXT, text, &back));
        assert_string_equal(back.id, ids[i]);
        assert_false(svc_cursor_decode(&BY_ID, text, &back));      /* another list's cursor */
    }
    memset(c.id, 'k', SVC_CURSOR_ID_MAX);
    c.id[SVC_CURSOR_ID_MAX] = '\0';
    assert_true(svc_cursor_encode(&BY_TEXT, &c, text));
    assert_true(strlen(text) <= SVC_CURSOR_TEXT_MAX);
    assert_true(svc_cursor_decode(&BY_TEXT, text, &back));
    assert_int_equal(strlen(back.id), SVC_CURSOR_ID_MAX);
    strcpy(c.id, "");
    assert_false(svc_cursor_encode(&BY_TEXT, &c, text));
    strcpy(c.id, "tab\there");
    assert_false(svc_cursor_encode(&BY_TEXT, &c, text));
    strcpy(c.id, "C000002");
    assert_true(svc_cursor_encode(&BY_TEXT, &c, text));
    text[strlen(text) - 2] = '\0';                                 /* cut */
    assert_false(svc_cursor_decode(&BY_TEXT, text, &back));
}

static void test_cursor_encode_refuses_keys_out_of_range(void **state) {
    (void)state;
    char text[SVC_CURSOR_TEXT_MAX + 1];
    struct svc_cursor c = {.time_us = 1};
    strcpy(c.id, UUID_A);
    assert_false(svc_cursor_encode(&BY_ID, &c, text));       /* a time in a list keyed by id */
    c.time_us = -1;
    assert_false(svc_cursor_encode(&TIMED, &c, text));
    c.time_us = SVC_CURSOR_TIME_MAX + 1;
    assert_false(svc_cursor_encode(&TIMED, &c, text));
    c.time_us = 0;
    strcpy(c.id, "not-a-uuid");
    assert_false(svc_cursor_encode(&TIMED, &c, text));
    strcpy(c.id, "-1");
    assert_false(svc_cursor_encode(&POSITIONS, &c, text));
    strcpy(c.id, "1000000000000000000");
    assert_false(svc_cursor_encode(&POSITIONS, &c, text));
}

/* Every single-character change of a valid cursor is refused: the check bytes cover the key, the
 * base64url text is canonical, the length is exact. */
static void test_cursor_with_any_character_changed_is_refused(void **state) {
    (void)state;
    struct svc_cursor c = {.time_us = 1796211393978123LL}, back;
    strcpy(c.id, UUID_A);
    char text[SVC_CURSOR_TEXT_MAX + 1];
    assert_true(svc_cursor_encode(&TIMED, &c, text));
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/.";
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i++) {
        for (const char *a = alphabet; *a; a++) {
            if (*a == text[i]) continue;
            char t[SVC_CURSOR_TEXT_MAX + 1];
            memcpy(t, text, n + 1);
            t[i] = *a;
            assert_false(svc_cursor_decode(&TIMED, t, &back));
        }
    }
    char t[SVC_CURSOR_TEXT_MAX + 8];
    for (size_t cut = 0; cut < n; cut++) {  /* truncated */
        memcpy(t, text, cut);
        t[cut] = '\0';
        assert_false(svc_cursor_decode(&TIMED, t, &back));
    }
    snprintf(t, sizeof t, "%sA", text);     /* extended */
    assert_false(svc_cursor_decode(&TIMED, t, &back));
    snprintf(t, sizeof t, "%s==", text);    /* padded */
    assert_false(svc_cursor_decode(&TIMED, t, &back));
}

static void test_cursor_of_another_list_is_refused(void **state) {
    (void)state;
    struct svc_cursor c = {.time_us = 1000};
    strcpy(c.id, UUID_A);
    char text[SVC_CURSOR_TEXT_MAX + 1];
    assert_true(svc_cursor_encode(&TIMED, &c, text));
    struct svc_cursor back;
    static const struct svc_list OTHER = {.kind = 'R', .timed = true, .id = SVC_CURSOR_UUID};
    assert_false(svc_cursor_decode(&OTHER, text, &back));
    assert_false(svc_cursor_decode(&BY_ID, text, &back));
    assert_string_equal(reason_of(&OTHER, params(NULL, text, NULL, NULL), "cursor", NULL), SVC_PAGE_CURSOR_REASON);
}

/* A cursor built by hand with a correct check but a bad version or an out-of-range key. */
static void forge(const unsigned char *bytes, size_t n, char *out) {
    unsigned char b[64];
    memcpy(b, bytes, n);
    unsigned char md[32];
    unsigned int mdlen;
    EVP_Digest(b, n, md, &mdlen, svc_sha256_md(), NULL);
    memcpy(b + n, md, 4);
    svc_b64url_encode(b, n + 4, out, SVC_CURSOR_TEXT_MAX + 1);
}

static void test_cursor_with_a_valid_check_but_bad_content_is_refused(void **state) {
    (void)state;
    struct svc_cursor back;
    char text[SVC_CURSOR_TEXT_MAX + 1];
    unsigned char b[26] = {1, 'E', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 42};
    forge(b, 18, text);
    assert_true(svc_cursor_decode(&POSITIONS, text, &back));  /* the forger's baseline is valid */
    assert_string_equal(back.id, "42");
    b[0] = 2;                                                  /* unknown version */
    forge(b, 18, text);
    assert_false(svc_cursor_decode(&POSITIONS, text, &back));
    b[0] = 1;
    b[9] = 1;                                                  /* a time in a list keyed by position */
    forge(b, 18, text);
    assert_false(svc_cursor_decode(&POSITIONS, text, &back));
    b[9] = 0;
    b[10] = 0x80;                                              /* a negative id */
    forge(b, 18, text);
    assert_false(svc_cursor_decode(&POSITIONS, text, &back));
    unsigned char t[26] = {1, 'T', 0x80};                      /* a negative time */
    forge(t, 26, text);
    assert_false(svc_cursor_decode(&TIMED, text, &back));
}

static void test_sql_parameters_of_keyset_and_page_modes(void **state) {
    (void)state;
    struct svc_page pg;
    struct svc_cursor c = {.time_us = 1796211393978123LL};
    strcpy(c.id, UUID_A);
    char text[SVC_CURSOR_TEXT_MAX + 1];
    assert_true(svc_cursor_encode(&TIMED, &c, text));
    assert_null(reason_of(&TIMED, params("20", text, NULL, NULL), "cursor", &pg));
    struct svc_page_sql s;
    svc_page_sql(&pg, &s);
    assert_string_equal(s.fetch, "21");
    assert_string_equal(s.offset, "0");
    assert_string_equal(s.time, "2026-12-02 11:36:33.978123+00");
    assert_string_equal(s.id, UUID_A);
    assert_string_equal(s.total, "f");
    assert_null(reason_of(&TIMED, params("5", NULL, "3", NULL), "page", &pg));
    svc_page_sql(&pg, &s);
    assert_string_equal(s.fetch, "6");
    assert_string_equal(s.offset, "10");
    assert_null(s.time);
    assert_null(s.id);
    assert_string_equal(s.total, "t");
    c.time_us = 5;  /* microseconds below one second keep their zeros */
    assert_true(svc_cursor_encode(&TIMED, &c, text));
    assert_null(reason_of(&TIMED, params(NULL, text, NULL, NULL), "cursor", &pg));
    svc_page_sql(&pg, &s);
    assert_string_equal(s.time, "1970-01-01 00:00:00.000005+00");
}

static json_t *render(const struct svc_list *l, const struct svc_page *p, const char *const *rows, int n,
                      const struct svc_cursor *last, long long total) {
    char *text = svc_page_render(l, p, rows, n, last, total);
    assert_non_null(text);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    assert_non_null(j);
    free(text);
    return j;
}

static void test_render_keyset_page_with_more_rows(void **state) {
    (void)state;
    struct svc_page p = {.limit = 2};
    const char *rows[] = {"{\"n\":1}", "{\"n\":2}", "{\"n\":3}"};
    struct svc_cursor last = {.time_us = 77};
    strcpy(last.id, UUID_A);
    json_t *j = render(&TIMED, &p, rows, 3, &last, -1);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "data"), 1), "n")), 2);
    assert_true(json_is_true(json_object_get(j, "has_more")));
    assert_int_equal(json_integer_value(json_object_get(j, "limit")), 2);
    assert_null(json_object_get(j, "total"));
    assert_null(json_object_get(j, "page"));
    struct svc_cursor back;
    assert_true(svc_cursor_decode(&TIMED, json_string_value(json_object_get(j, "next_cursor")), &back));
    assert_int_equal(back.time_us, 77);
    assert_string_equal(back.id, UUID_A);
    json_decref(j);
}

static void test_render_last_page_has_no_cursor(void **state) {
    (void)state;
    struct svc_page p = {.limit = 2, .include_total = true};
    const char *rows[] = {"{\"n\":1}", "{\"n\":2}"};
    json_t *j = render(&TIMED, &p, rows, 2, NULL, 7);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    assert_true(json_is_false(json_object_get(j, "has_more")));
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 7);
    json_decref(j);
    j = render(&TIMED, &p, NULL, 0, NULL, 0);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 0);
    json_decref(j);
}

static void test_render_page_mode_keeps_the_old_fields(void **state) {
    (void)state;
    struct svc_page p = {.limit = 1, .page = 4, .include_total = true};
    const char *rows[] = {"{\"n\":4}", "{\"n\":5}"};
    json_t *j = render(&TIMED, &p, rows, 2, NULL, 9);
    assert_int_equal(json_integer_value(json_object_get(j, "page")), 4);
    assert_int_equal(json_integer_value(json_object_get(j, "limit")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 9);
    assert_true(json_is_true(json_object_get(j, "has_more")));
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
}

/* A result built in memory as PostgreSQL would send it. */
static PGresult *result(int nrows, const char *const rows[][4]) {
    PGresult *r = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    PGresAttDesc cols[4];
    memset(cols, 0, sizeof cols);
    const char *names[4] = {"json", "time_us", "id", "total"};
    for (int i = 0; i < 4; i++) {
        cols[i].name = (char *)names[i];
        cols[i].format = 0;
        cols[i].typid = 25;
        cols[i].typlen = -1;
        cols[i].atttypmod = -1;
    }
    assert_true(PQsetResultAttrs(r, 4, cols));
    for (int i = 0; i < nrows; i++)
        for (int c = 0; c < 4; c++)
            assert_true(PQsetvalue(r, i, c, (char *)rows[i][c], rows[i][c] ? (int)strlen(rows[i][c]) : -1));
    return r;
}

static void test_render_from_a_result_reads_key_of_last_row_shown(void **state) {
    (void)state;
    const char *rows[][4] = {{"{\"n\":1}", "30", UUID_A, "5"},
                             {"{\"n\":2}", "20", "0190f3a2-7b1c-7def-8123-000000000002", "5"},
                             {"{\"n\":3}", "10", "0190f3a2-7b1c-7def-8123-000000000003", "5"}};
    PGresult *r = result(3, rows);
    struct svc_page p = {.limit = 2, .include_total = true};
    char *text = NULL;
    assert_int_equal(svc_page_render_pg(&TIMED, &p, r, &text), SVC_OK);
    json_t *j = json_loads(text, 0, NULL);
    free(text);
    struct svc_cursor back;
    assert_true(svc_cursor_decode(&TIMED, json_string_value(json_object_get(j, "next_cursor")), &back));
    assert_int_equal(back.time_us, 20);
    assert_string_equal(back.id, "0190f3a2-7b1c-7def-8123-000000000002");
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 5);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_decref(j);
    PQclear(r);
}

static void test_render_from_a_result_with_only_the_total(void **state) {
    (void)state;
    const char *rows[][4] = {{NULL, NULL, NULL, "0"}};
    PGresult *r = result(1, rows);
    struct svc_page p = {.limit = 20, .include_total = true};
    char *text = NULL;
    assert_int_equal(svc_page_render_pg(&TIMED, &p, r, &text), SVC_OK);
    assert_string_equal(text, "{\"data\":[],\"next_cursor\":null,\"has_more\":false,\"limit\":20,\"total\":0}");
    free(text);
    PQclear(r);
}

static void test_render_from_a_malformed_result_is_an_internal_error(void **state) {
    (void)state;
    const char *rows[][4] = {{"{}", "abc", UUID_A, NULL}, {"{}", "1", UUID_A, NULL}};
    PGresult *r = result(2, rows);
    struct svc_page p = {.limit = 1};
    char *text = NULL;
    assert_int_equal(svc_page_render_pg(&TIMED, &p, r, &text), SVC_INTERNAL);  /* time is not a number */
    assert_null(text);
    struct svc_page counted = {.limit = 5, .include_total = true};
    assert_int_equal(svc_page_render_pg(&TIMED, &counted, r, &text), SVC_INTERNAL);  /* total missing */
    PQclear(r);
}

static void test_query_long_and_bool_share_the_rules(void **state) {
    (void)state;
    json_t *fields = json_object();
    long v;
    bool b;
    assert_true(svc_query_long(fields, "n", NULL, 9, 1, 10, &v));
    assert_int_equal(v, 9);
    assert_true(svc_query_long(fields, "n", "10", 9, 1, 10, &v));
    assert_int_equal(v, 10);
    assert_false(svc_query_long(fields, "n", "+3", 9, 1, 10, &v));
    assert_string_equal(json_string_value(json_object_get(fields, "n")), "must be an integer from 1 to 10");
    assert_false(svc_query_bool(fields, "b", "yes", false, &b));
    assert_string_equal(json_string_value(json_object_get(fields, "b")), SVC_QUERY_BOOL_REASON);
    svc_query_reason(fields, "n", "second reason");  /* the first reason stays */
    assert_string_equal(json_string_value(json_object_get(fields, "n")), "must be an integer from 1 to 10");
    struct svc_result r = svc_query_invalid(fields);
    assert_int_equal(r.st, SVC_INVALID);
    assert_string_equal(r.code, "validation_failed");
    assert_string_equal(r.message, SVC_QUERY_INVALID_MESSAGE);
    assert_int_equal(json_object_size(json_object_get(r.details, "fields")), 2);
    svc_result_clear(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_defaults_without_parameters),
        cmocka_unit_test(test_page_limit_is_digits_from_1_to_100),
        cmocka_unit_test(test_page_number_is_strict_and_bounded),
        cmocka_unit_test(test_page_refused_by_a_list_that_never_had_it),
        cmocka_unit_test(test_include_total_is_true_or_false),
        cmocka_unit_test(test_every_bad_parameter_is_reported_at_once),
        cmocka_unit_test(test_cursor_round_trips_a_time_and_uuid_key),
        cmocka_unit_test(test_cursor_round_trips_integer_keys),
        cmocka_unit_test(test_cursor_round_trips_text_keys),
        cmocka_unit_test(test_cursor_encode_refuses_keys_out_of_range),
        cmocka_unit_test(test_cursor_with_any_character_changed_is_refused),
        cmocka_unit_test(test_cursor_of_another_list_is_refused),
        cmocka_unit_test(test_cursor_with_a_valid_check_but_bad_content_is_refused),
        cmocka_unit_test(test_sql_parameters_of_keyset_and_page_modes),
        cmocka_unit_test(test_render_keyset_page_with_more_rows),
        cmocka_unit_test(test_render_last_page_has_no_cursor),
        cmocka_unit_test(test_render_page_mode_keeps_the_old_fields),
        cmocka_unit_test(test_render_from_a_result_reads_key_of_last_row_shown),
        cmocka_unit_test(test_render_from_a_result_with_only_the_total),
        cmocka_unit_test(test_render_from_a_malformed_result_is_an_internal_error),
        cmocka_unit_test(test_query_long_and_bool_share_the_rules),
        cmocka_unit_test(test_a_list_may_declare_its_own_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
