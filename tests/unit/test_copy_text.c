/* Specification of COPY text field escaping (svc/copy_text.h): what each special byte becomes,
 * escaping in place, and that a real server's COPY reads the fields back byte for byte.
 *
 * The round trip needs TEST_PG_CONNINFO (superuser conninfo without password) and
 * TEST_PG_PASSWORD (may be empty); the test runner always provides them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/copy_text.h"

static char *escaped(const char *s) {
    struct svc_buf b;
    svc_buf_init(&b);
    svc_copy_text_append(&b, s);
    assert_false(b.oom);
    return svc_buf_steal(&b);
}

static const struct { const char *in, *out; } cases[] = {
    {"plain", "plain"},
    {"a\tb", "a\\tb"},
    {"line1\nline2", "line1\\nline2"},
    {"cr\r", "cr\\r"},
    {"back\\slash", "back\\\\slash"},
    {"\\N", "\\\\N"},                 /* the literal text \N is not a NULL */
    {"\\.", "\\\\."},                 /* nor an end-of-data marker */
    {"J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89", "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89"},
    {"O'Brien \"quoted\" {a,b}", "O'Brien \"quoted\" {a,b}"},
    {"", ""},
};
#define NCASES (sizeof cases / sizeof cases[0])

static void test_tab_newline_cr_and_backslash_are_escaped_and_null_is_backslash_n(void **state) {
    for (size_t i = 0; i < NCASES; i++) {
        char *e = escaped(cases[i].in);
        assert_string_equal(e, cases[i].out);
        free(e);
    }
    char *e = escaped(NULL);
    assert_string_equal(e, "\\N");
    free(e);
    struct svc_buf b;
    svc_buf_init(&b);
    svc_copy_text_append_n(&b, "a\0b\tc", 3);   /* exactly n bytes, whatever they are */
    assert_int_equal(b.len, 3);
    assert_memory_equal(b.data, "a\0b", 3);
    svc_buf_free(&b);
}

static void test_escaping_in_place_from_the_far_end_of_the_buffer(void **state) {
    const char *in = "\\\\\t\t\n\r";                /* every byte doubles: the tightest case */
    size_t n = strlen(in);
    char buf[64];
    memset(buf, '#', sizeof buf);
    memcpy(buf + n, in, n);                         /* s == dst + n, the closest allowed */
    size_t w = svc_copy_text_escape(buf, buf + n, n);
    assert_int_equal(w, 2 * n);
    assert_memory_equal(buf, "\\\\\\\\\\t\\t\\n\\r", w);
}

/* COPY the escaped fields into a temp table and read them back. */
static void test_a_real_copy_reads_every_field_back(void **state) {
    const char *conninfo = getenv("TEST_PG_CONNINFO"), *password = getenv("TEST_PG_PASSWORD");
    if (!conninfo || !*conninfo || !password) fail_msg("TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set");
    const char *keys[] = {"dbname", *password ? "password" : NULL, NULL};
    const char *vals[] = {conninfo, password, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("%s", PQerrorMessage(c));
    PGresult *r = PQexec(c, "CREATE TEMP TABLE copy_text_t (n int, v text)");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    struct svc_buf b;
    svc_buf_init(&b);
    for (size_t i = 0; i < NCASES; i++) {
        svc_buf_printf(&b, "%zu\t", i);
        svc_copy_text_append(&b, cases[i].in);
        svc_buf_append(&b, "\n", 1);
    }
    svc_buf_printf(&b, "%zu\t", NCASES);
    svc_copy_text_append(&b, NULL);
    svc_buf_append(&b, "\n", 1);
    assert_false(b.oom);
    r = PQexec(c, "COPY copy_text_t FROM STDIN");
    assert_int_equal(PQresultStatus(r), PGRES_COPY_IN);
    PQclear(r);
    assert_int_equal(PQputCopyData(c, b.data, (int)b.len), 1);
    assert_int_equal(PQputCopyEnd(c, NULL), 1);
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) fail_msg("COPY: %s", PQresultErrorMessage(r));
    PQclear(r);
    svc_buf_free(&b);
    r = PQexec(c, "SELECT v FROM copy_text_t ORDER BY n");
    assert_int_equal(PQntuples(r), NCASES + 1);
    for (size_t i = 0; i < NCASES; i++) assert_string_equal(PQgetvalue(r, (int)i, 0), cases[i].in);
    assert_true(PQgetisnull(r, (int)NCASES, 0));
    PQclear(r);
    PQfinish(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tab_newline_cr_and_backslash_are_escaped_and_null_is_backslash_n),
        cmocka_unit_test(test_escaping_in_place_from_the_far_end_of_the_buffer),
        cmocka_unit_test(test_a_real_copy_reads_every_field_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
