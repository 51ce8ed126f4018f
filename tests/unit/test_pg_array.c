/* Specification of PostgreSQL array literals (svc/pg_array.h): how elements are quoted, and
 * that what is built reads back exactly through a real server's text[] and bigint[] input.
 *
 * The round trips need TEST_PG_CONNINFO (superuser conninfo without password) and
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

#include "svc/pg_array.h"

static PGconn *g_db;

static int group_setup(void **state) {
    const char *conninfo = getenv("TEST_PG_CONNINFO"), *password = getenv("TEST_PG_PASSWORD");
    if (!conninfo || !*conninfo || !password) {
        print_error("test_pg_array: TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set\n");
        return -1;
    }
    const char *keys[] = {"dbname", *password ? "password" : NULL, NULL};
    const char *vals[] = {conninfo, password, NULL};
    g_db = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(g_db) != CONNECTION_OK) {
        print_error("test_pg_array: %s\n", PQerrorMessage(g_db));
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    PQfinish(g_db);
    return 0;
}

/* The buffer's text, NUL-terminated, as a new string (caller frees). */
static char *text_of(struct svc_buf *b) {
    svc_buf_append(b, "", 1);
    assert_false(b->oom);
    return svc_buf_steal(b);
}

static char *literal(const char *const *v, int n) {
    struct svc_buf b;
    svc_buf_init(&b);
    svc_pg_array_of(&b, v, n);
    return text_of(&b);
}

static void test_every_text_element_is_quoted_and_quotes_and_backslashes_escaped(void **state) {
    const char *v[] = {"a", "", "b,c", "{x}", "NULL", "q\"q", "b\\s", NULL, " sp "};
    char *s = literal(v, 9);
    assert_string_equal(s, "{\"a\",\"\",\"b,c\",\"{x}\",\"NULL\",\"q\\\"q\",\"b\\\\s\",NULL,\" sp \"}");
    free(s);
    s = literal(v, 0);
    assert_string_equal(s, "{}");
    free(s);
}

static void test_element_by_element_builds_the_same_literal(void **state) {
    const char *v[] = {"one", NULL, "t\"wo"};
    struct svc_buf b;
    svc_buf_init(&b);
    svc_pg_array_open(&b);
    for (int i = 0; i < 3; i++) svc_pg_array_text(&b, v[i]);
    svc_pg_array_close(&b);
    char *stepwise = text_of(&b), *whole = literal(v, 3);
    assert_string_equal(stepwise, whole);
    free(stepwise);
    free(whole);

    svc_buf_init(&b);
    svc_pg_array_open(&b);
    svc_pg_array_int(&b, 1);
    svc_pg_array_int(&b, -5);
    svc_pg_array_int(&b, INT64_MAX);
    svc_pg_array_close(&b);
    char *ints = text_of(&b);
    assert_string_equal(ints, "{1,-5,9223372036854775807}");
    free(ints);
}

/* Reads lit back through unnest($1::<type>[]): one row per element, in order. */
static PGresult *unnest(const char *lit, const char *type) {
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT x::text FROM unnest($1::%s[]) WITH ORDINALITY AS u(x, n) ORDER BY n", type);
    const char *params[] = {lit};
    PGresult *r = PQexecParams(g_db, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) fail_msg("%s: %s", lit, PQresultErrorMessage(r));
    return r;
}

static void test_any_text_round_trips_through_postgresql(void **state) {
    const char *v[] = {"plain", "", "q\"uote", "back\\slash", "a,b", "{braces}", "NULL", NULL, "Ünïcødé ✓", " ",
                       "tab\there", "new\nline"};
    int n = (int)(sizeof v / sizeof v[0]);
    char *lit = literal(v, n);
    PGresult *r = unnest(lit, "text");
    assert_int_equal(PQntuples(r), n);
    for (int i = 0; i < n; i++) {
        if (!v[i]) {
            assert_true(PQgetisnull(r, i, 0));
            continue;
        }
        assert_false(PQgetisnull(r, i, 0));
        assert_string_equal(PQgetvalue(r, i, 0), v[i]);
    }
    PQclear(r);
    free(lit);
}

static void test_integers_round_trip_as_bigint(void **state) {
    struct svc_buf b;
    svc_buf_init(&b);
    const int64_t v[] = {0, 7, -1, INT64_MIN, INT64_MAX};
    svc_pg_array_open(&b);
    for (int i = 0; i < 5; i++) svc_pg_array_int(&b, v[i]);
    svc_pg_array_close(&b);
    char *lit = text_of(&b);
    PGresult *r = unnest(lit, "bigint");
    assert_int_equal(PQntuples(r), 5);
    for (int i = 0; i < 5; i++) assert_int_equal(strtoll(PQgetvalue(r, i, 0), NULL, 10), v[i]);
    PQclear(r);
    free(lit);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_text_element_is_quoted_and_quotes_and_backslashes_escaped),
        cmocka_unit_test(test_element_by_element_builds_the_same_literal),
        cmocka_unit_test(test_any_text_round_trips_through_postgresql),
        cmocka_unit_test(test_integers_round_trip_as_bigint),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
