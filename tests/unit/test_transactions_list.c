/* transactions-service: the transaction list against a real database (testdb.h).
 *
 * The list renders its rows in C from binary columns (tx_repo_list): every row must be the text
 * transactions.tx_json gives for it (GET /api/transactions/{id} shows that), byte for byte, for
 * every shape of row (transfers on both sides, reversals, descriptions with escapes, amounts
 * large and small, timestamps below the millisecond). Cursor pages must follow each other in
 * (created_at, id) order across ties, and the deprecated page= must give the old offsets. The
 * binary decoders themselves are checked here against PostgreSQL's own text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/pgbin.h"
#include "testdb.h"
#include "tx_repo.h"
#include "tx_request.h"

static struct testdb g_tdb;

#define A "0190f3a2-0000-7000-8000-00000000000a"
#define B "0190f3a2-0000-7000-8000-00000000000b"
#define EXT "00000000-0000-0000-0000-000000000000"

#define q(...) testdb_q(g_tdb.db, __VA_ARGS__)

static int db_setup(void **state) { return testdb_create(&g_tdb, "txlist_test", "transactions"); }
static int db_teardown(void **state) { return testdb_drop(&g_tdb); }
static int db_reset(void **state) { return testdb_exec(g_tdb.db, "TRUNCATE transactions.transactions"); }

static void exec_ok(const char *sql) { assert_int_equal(testdb_exec(g_tdb.db, sql), 0); }

/* A row: id suffix n, type, owner/to, amount, description (SQL literal or NULL), created_at. */
static void row(int n, const char *type, const char *user, const char *to, const char *amount, const char *desc_sql,
                const char *created) {
    char sql[1024], to_sql[48] = "NULL";
    bool deposit = !strcmp(type, "deposit");
    if (to) snprintf(to_sql, sizeof to_sql, "'%s'", to);
    snprintf(sql, sizeof sql,
             "INSERT INTO transactions.transactions (id, type, status, amount, currency, description, user_id, "
             "to_user_id, created_by, created_at, updated_at, debit_account, credit_account) VALUES "
             "('0190f3a2-1111-7000-8000-%012d', '%s', 'completed', %s, 'BRL', %s, '%s', %s, '%s', '%s', '%s', "
             "'%s', '%s')",
             n, type, amount, desc_sql ? desc_sql : "NULL", user, to_sql, user, created, created,
             deposit ? EXT : user, deposit ? user : (to ? to : EXT));
    exec_ok(sql);
}

static void seed(void) {
    row(1, "deposit", A, NULL, "100.00", "'plain'", "2026-12-01 10:00:00.000001+00");
    row(2, "withdrawal", A, NULL, "0.01", "'quotes \" and \\\\ and\nnewline\ttab é ✓'", "2026-12-01 10:00:00.000999+00");
    row(3, "transfer", A, B, "12345678901234.56", NULL, "2026-12-01 10:00:00.001+00");
    row(4, "transfer", B, A, "7.50", "''", "2026-12-01 10:00:00.001+00");  /* a tie with 3 */
    row(5, "deposit", A, NULL, "0.10", "E'\\\\u0001 control \\x01'", "2026-12-02 23:59:59.999999+00");
    row(6, "deposit", A, NULL, "1.00", NULL, "2026-12-03 00:00:00+00");
    /* 6 reversed by 7, its reversal (reversals copy the parties, swapped legs) */
    exec_ok("INSERT INTO transactions.transactions (id, type, status, amount, currency, user_id, created_by, "
            "reverses_id, created_at, updated_at, debit_account, credit_account) VALUES "
            "('0190f3a2-1111-7000-8000-000000000007', 'reversal', 'completed', 1.00, 'BRL', '" A "', '" B "', "
            "'0190f3a2-1111-7000-8000-000000000006', '2026-12-03 00:00:01.5+00', '2026-12-03 00:00:01.5+00', '" A
            "', '" EXT "')");
    exec_ok("UPDATE transactions.transactions SET status = 'reversed', updated_at = '2026-12-03 00:00:01.5+00', "
            "reversed_by = '0190f3a2-1111-7000-8000-000000000007' WHERE id = '0190f3a2-1111-7000-8000-000000000006'");
    row(8, "deposit", B, NULL, "3.00", NULL, "2026-12-04 00:00:00+00");  /* B's only: never in A's list */
}

/* One page of owner's list; params as the query would give them. Returns the parsed page. */
static json_t *page_in(PGconn *c, const char *owner, struct svc_page_params p, const char *type, const char *from,
                       const char *to) {
    struct tx_list_query lq;
    json_t *fields = NULL;
    assert_true(tx_parse_list_query(&p, type, NULL, from, to, NULL, &lq, &fields));
    char *text = NULL;
    struct tx_repo_err err;
    assert_int_equal(tx_repo_list(c, owner, &lq, &text, &err), SVC_OK);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    assert_non_null(j);
    free(text);
    return j;
}

static json_t *page_of(PGconn *c, const char *owner, struct svc_page_params p, const char *type) {
    return page_in(c, owner, p, type, NULL, NULL);
}

/* The id suffixes of a page's rows ("7,6,5"). */
static void suffixes(json_t *page, char *out, size_t n) {
    out[0] = '\0';
    json_t *t;
    size_t i;
    json_array_foreach(json_object_get(page, "data"), i, t) {
        const char *id = json_string_value(json_object_get(t, "id"));
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%d", len ? "," : "", atoi(id + 24));
    }
}

/* The ids of A's list in PostgreSQL's own order. */
static char *expected_ids(void) {
    return q("SELECT string_agg(id::text, ',' ORDER BY created_at DESC, id DESC) FROM transactions.transactions "
             "WHERE user_id = '" A "' OR to_user_id = '" A "'");
}

static void test_list_rows_are_tx_json_byte_for_byte(void **state) {
    seed();
    PGconn *c = testdb_connect(&g_tdb);
    assert_non_null(c);
    struct tx_list_query lq;
    json_t *fields = NULL;
    struct svc_page_params p = {.limit = "100"};
    assert_true(tx_parse_list_query(&p, NULL, NULL, NULL, NULL, NULL, &lq, &fields));
    char *text = NULL;
    struct tx_repo_err err;
    assert_int_equal(tx_repo_list(c, A, &lq, &text, &err), SVC_OK);
    /* the page's data array is exactly the rows as tx_json renders them, in order */
    char *want = q("SELECT '{\"data\":[' || string_agg(transactions.tx_json(t)::text, ',' ORDER BY created_at DESC, "
                   "id DESC) || '],\"next_cursor\":null,\"has_more\":false,\"limit\":100}' "
                   "FROM transactions.transactions t WHERE user_id = '" A "' OR to_user_id = '" A "'");
    assert_string_equal(text, want);
    free(want);
    free(text);
    PQfinish(c);
}

static void test_cursor_pages_follow_each_other_across_ties(void **state) {
    seed();
    PGconn *c = testdb_connect(&g_tdb);
    char got[1024] = "", cursor[SVC_CURSOR_TEXT_MAX + 1] = "";
    int pages = 0;
    for (;;) {
        struct svc_page_params p = {.limit = "2", .cursor = cursor[0] ? cursor : NULL};
        json_t *j = page_of(c, A, p, NULL);
        json_t *data = json_object_get(j, "data"), *t;
        size_t i;
        json_array_foreach(data, i, t) {
            if (got[0]) strcat(got, ",");
            strcat(got, json_string_value(json_object_get(t, "id")));
        }
        pages++;
        bool more = json_is_true(json_object_get(j, "has_more"));
        assert_int_equal(json_array_size(data), more ? 2 : 1);  /* 7 rows */
        assert_null(json_object_get(j, "total"));
        if (more) snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "next_cursor")));
        else assert_true(json_is_null(json_object_get(j, "next_cursor")));
        json_decref(j);
        if (!more) break;
    }
    assert_int_equal(pages, 4);
    char *want = expected_ids();
    assert_string_equal(got, want);
    free(want);
    /* a filter stays applied after a cursor: the deposits after the newest deposit */
    json_t *j = page_of(c, A, (struct svc_page_params){.limit = "1", .include_total = "true"}, "deposit");
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 3);
    snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "next_cursor")));
    json_decref(j);
    j = page_of(c, A, (struct svc_page_params){.cursor = cursor}, "deposit");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")),
                        "0190f3a2-1111-7000-8000-000000000005");
    json_decref(j);
    PQfinish(c);
}

static void test_deprecated_page_gives_offsets_and_total(void **state) {
    seed();
    PGconn *c = testdb_connect(&g_tdb);
    char got[1024] = "";
    for (int page = 1; page <= 4; page++) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", page);
        json_t *j = page_of(c, A, (struct svc_page_params){.limit = "2", .page = ps}, NULL);
        assert_int_equal(json_integer_value(json_object_get(j, "total")), 7);
        assert_int_equal(json_integer_value(json_object_get(j, "page")), page);
        assert_true(json_is_null(json_object_get(j, "next_cursor")));
        assert_int_equal(json_is_true(json_object_get(j, "has_more")), page < 4);
        json_t *t;
        size_t i;
        json_array_foreach(json_object_get(j, "data"), i, t) {
            if (got[0]) strcat(got, ",");
            strcat(got, json_string_value(json_object_get(t, "id")));
        }
        json_decref(j);
    }
    char *want = expected_ids();
    assert_string_equal(got, want);
    free(want);
    json_t *j = page_of(c, A, (struct svc_page_params){.limit = "2", .page = "5"}, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 7);
    json_decref(j);
    PQfinish(c);
}

static void test_empty_list_still_counts_when_asked(void **state) {
    PGconn *c = testdb_connect(&g_tdb);
    json_t *j = page_of(c, A, (struct svc_page_params){.include_total = "true"}, NULL);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 0);
    assert_true(json_is_false(json_object_get(j, "has_more")));
    json_decref(j);
    PQfinish(c);
}

/* Bounds are inclusive: a date covers its whole day, an instant itself (to the microsecond). */
static void test_time_filters_include_their_bounds(void **state) {
    seed();
    PGconn *c = testdb_connect(&g_tdb);
    assert_int_equal(tx_repo_prepare(c, NULL), 0);  /* generic plans, as the service runs them */
    char got[256];
    json_t *j = page_in(c, A, (struct svc_page_params){0}, NULL, "2026-12-02", "2026-12-03");
    suffixes(j, got, sizeof got);
    assert_string_equal(got, "7,6,5");
    json_decref(j);
    j = page_in(c, A, (struct svc_page_params){0}, NULL, NULL, "2026-12-03T00:00:00Z");
    suffixes(j, got, sizeof got);
    assert_string_equal(got, "6,5,4,3,2,1");
    json_decref(j);
    j = page_in(c, A, (struct svc_page_params){0}, NULL, "2026-12-01T10:00:00.000999Z", "2026-12-01T10:00:00.001Z");
    suffixes(j, got, sizeof got);
    assert_string_equal(got, "4,3,2");
    json_decref(j);
    j = page_in(c, A, (struct svc_page_params){.limit = "1", .page = "2"}, NULL, "2026-12-02", NULL);
    suffixes(j, got, sizeof got);
    assert_string_equal(got, "6");
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 3);
    json_decref(j);
    PQfinish(c);
}

/* The keyset statements run on one generic plan per session: no page is planned at bind. */
static void test_keyset_pages_are_never_planned_per_request(void **state) {
    seed();
    PGconn *c = testdb_connect(&g_tdb);
    assert_int_equal(tx_repo_prepare(c, NULL), 0);
    char cursor[SVC_CURSOR_TEXT_MAX + 1];
    for (int i = 0; i < 8; i++) {
        json_t *j = page_of(c, A, (struct svc_page_params){.limit = "2"}, i % 2 ? "deposit" : NULL);
        snprintf(cursor, sizeof cursor, "%s", json_string_value(json_object_get(j, "next_cursor")));
        json_decref(j);
        j = page_of(c, A, (struct svc_page_params){.limit = "2", .cursor = cursor}, NULL);
        json_decref(j);
    }
    PGresult *r = PQexec(c, "SELECT string_agg(name || ':' || generic_plans || '/' || custom_plans, ' ' ORDER BY name)"
                            " FROM pg_prepared_statements WHERE name LIKE 'tx_list%'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "tx_list_after_v2:8/0 tx_list_v2:8/0");
    PQclear(r);
    PQfinish(c);
}

/* The binary decoders give what PostgreSQL's text output gives. */
static void test_binary_values_read_as_postgresql_writes_them(void **state) {
    static const char *const numerics[] = {"0", "0.00", "1.00", "0.01", "-0.50", "10000", "9999.9999", "123456789012345678.90",
                                           "0.000001", "-12345.678", "100000000.00", "1e-3", "5.1230", NULL};
    for (int i = 0; numerics[i]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT '%s'::numeric, '%s'::numeric::text", numerics[i], numerics[i]);
        PGresult *r = PQexecParams(g_tdb.db, sql, 0, NULL, NULL, NULL, NULL, 1);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        char out[64];
        assert_true(svc_pgbin_numeric(r, 0, 0, out, sizeof out));
        assert_string_equal(out, PQgetvalue(r, 0, 1));
        char tiny[3];
        if (strlen(PQgetvalue(r, 0, 1)) >= sizeof tiny) assert_false(svc_pgbin_numeric(r, 0, 0, tiny, sizeof tiny));
        PQclear(r);
    }
    PGresult *r = PQexecParams(g_tdb.db,
                               "SELECT 'NaN'::numeric, NULL::numeric, 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'::uuid,"
                               " '2026-12-01 10:00:00.000999+00'::timestamptz, '1969-12-31 23:59:59.5+00'::timestamptz,"
                               " 'infinity'::timestamptz, (-42)::int8, 'x'::text",
                               0, NULL, NULL, NULL, NULL, 1);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char out[64], id[SVC_UUID_LEN + 1];
    int64_t v;
    assert_false(svc_pgbin_numeric(r, 0, 0, out, sizeof out));  /* NaN */
    assert_false(svc_pgbin_numeric(r, 0, 1, out, sizeof out));  /* NULL */
    assert_true(svc_pgbin_uuid(r, 0, 2, id));
    assert_string_equal(id, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_false(svc_pgbin_uuid(r, 0, 7, id));                  /* text is not a uuid */
    assert_true(svc_pgbin_timestamptz(r, 0, 3, &v));
    assert_int_equal(v, 1796119200000999LL);
    assert_true(svc_pgbin_timestamptz(r, 0, 4, &v));
    assert_int_equal(v, -500000LL);
    assert_false(svc_pgbin_timestamptz(r, 0, 5, &v));          /* infinity */
    assert_true(svc_pgbin_int8(r, 0, 6, &v));
    assert_int_equal(v, -42);
    assert_false(svc_pgbin_int8(r, 0, 7, &v));
    PQclear(r);
    r = PQexecParams(g_tdb.db, "SELECT 1::int8", 0, NULL, NULL, NULL, NULL, 0);  /* text format */
    assert_false(svc_pgbin_int8(r, 0, 0, &v));
    PQclear(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_list_rows_are_tx_json_byte_for_byte, db_reset),
        cmocka_unit_test_setup(test_cursor_pages_follow_each_other_across_ties, db_reset),
        cmocka_unit_test_setup(test_deprecated_page_gives_offsets_and_total, db_reset),
        cmocka_unit_test_setup(test_empty_list_still_counts_when_asked, db_reset),
        cmocka_unit_test_setup(test_time_filters_include_their_bounds, db_reset),
        cmocka_unit_test_setup(test_keyset_pages_are_never_planned_per_request, db_reset),
        cmocka_unit_test(test_binary_values_read_as_postgresql_writes_them),
    };
    return cmocka_run_group_tests_name("list", tests, db_setup, db_teardown);
}
