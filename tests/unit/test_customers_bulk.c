/* Specification of the legacy bulk upsert (customers-service/src/bulk_upsert.h, bulk_repo.h).
 *
 * Group "logic" needs nothing: record validation, timestamp parsing, in-batch de-duplication,
 * COPY text escaping and the response counts.
 * Group "database" runs users_bulk_upsert against a real PostgreSQL: it needs TEST_PG_CONNINFO
 * (superuser conninfo without password) and TEST_PG_PASSWORD (may be empty), like test_pg; their
 * absence is a failure. The SQL is schema-qualified `customers.`, so the group creates a throwaway
 * DATABASE bulk_test_<pid>, applies db/customers/NNN_*.sql files to it, and drops it at the end.
 *
 * With BULK_BENCH_ROWS=<n> set, the binary runs a benchmark instead of the tests (bench/bulk_upsert.sh):
 * n users in 2000-row batches (BULK_BENCH_BATCH) over BULK_BENCH_THREADS sessions through
 * users_bulk_upsert, the same batches again (all unchanged), every user again with a newer record
 * (all updated), then a raw COPY of the same rows into a plain table with a primary key, and
 * prints rows/s for each plus one "bench bulk_upsert key=value…" summary line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bulk_repo.h"
#include "bulk_upsert.h"
#include "svc/pg.h"
#include "testdb.h"

/* ------------------------------------------------------------------------------------------ */
/* helpers                                                                                     */

static json_t *rec(const char *user_name, const char *email, const char *name, long long legacy_id,
                   bool deleted, const char *updated_at) {
    json_t *o = json_pack("{s:s,s:s,s:I,s:b,s:s}", "user_name", user_name, "name", name, "legacy_id",
                          (json_int_t)legacy_id, "deleted", deleted, "updated_at", updated_at);
    assert_non_null(o);
    json_object_set_new(o, "email", email ? json_string(email) : json_null());
    return o;
}

static json_t *valid_rec(void) {
    return rec("Jurgen.Dvorak_1", "jurgen.dvorak.1@example.net", "Jürgen Dvořák", 1, false, "2020-01-01T00:00:07Z");
}

static const char *check(json_t *row) {
    struct bulk_row r;
    const char *reason = bulk_check_row(row, &r);
    json_decref(row);
    return reason;
}

static json_t *with(json_t *row, const char *key, json_t *value) {
    if (value) json_object_set_new(row, key, value);
    else json_object_del(row, key);
    return row;
}

static int64_t ts(const char *s) {
    int64_t us = 0;
    assert_int_equal(bulk_parse_timestamp(s, &us), 0);
    return us;
}

/* ------------------------------------------------------------------------------------------ */
/* timestamps                                                                                  */

static void test_bulk_timestamp_accepts_utc_offsets_and_fractions(void **state) {
    assert_true(ts("1970-01-01T00:00:00Z") == 0);
    assert_true(ts("2020-01-01T00:00:07Z") == 1577836807LL * 1000000);
    assert_true(ts("2020-01-01T02:00:07+02:00") == 1577836807LL * 1000000);
    assert_true(ts("2019-12-31T18:30:07-0530") == 1577836807LL * 1000000);
    assert_true(ts("2020-01-01t00:00:07z") == 1577836807LL * 1000000);
    assert_true(ts("2020-01-01T00:00:07.5Z") == 1577836807LL * 1000000 + 500000);
    assert_true(ts("2020-01-01T00:00:07.123456Z") == 1577836807LL * 1000000 + 123456);
    assert_true(ts("2020-01-01T00:00:07.123456789Z") == 1577836807LL * 1000000 + 123456); /* kept to µs */
    assert_true(ts("2024-02-29T12:00:00Z") > ts("2024-02-28T12:00:00Z"));
    assert_true(ts("1969-12-31T23:59:59.999999Z") == -1);
    assert_true(ts("0001-01-01T00:00:00Z") == -62135596800LL * 1000000);
    assert_true(ts("9999-12-31T23:59:59Z") == 253402300799LL * 1000000);
}

static void test_bulk_timestamp_rejects_malformed_and_impossible_values(void **state) {
    static const char *const bad[] = {
        "", "not-a-date", "2024-03-01 12:00:00", "01/03/2024 12:00", "2024-13-45T25:61:61Z",
        "2024-03-01T12:00:00",        /* no offset */
        "2024-03-01T12:00Z",          /* no seconds */
        "2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-00-10T00:00:00Z",
        "2024-03-01T24:00:00Z", "2024-03-01T12:60:00Z", "2024-03-01T12:00:60Z",
        "2024-03-01T12:00:00.Z", "2024-03-01T12:00:00.1234567890Z", "2024-03-01T12:00:00+19:00",
        "2024-03-01T12:00:00+02:60", "2024-03-01T12:00:00+2", "2024-03-01T12:00:00Zjunk",
        "0000-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00",
        "+2024-03-01T12:00:00Z", "2024-3-01T12:00:00Z", "1700000000",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 0;
        if (bulk_parse_timestamp(bad[i], &us) != -1) fail_msg("accepted \"%s\"", bad[i]);
    }
    int64_t us;
    assert_int_equal(bulk_parse_timestamp(NULL, &us), -1);
}

static void test_bulk_timestamp_formats_for_copy_in_utc(void **state) {
    char out[32];
    bulk_repo_format_timestamp(ts("2020-01-01T02:00:07.5+02:00"), out);
    assert_string_equal(out, "2020-01-01 00:00:07.500000+00");
    bulk_repo_format_timestamp(ts("1969-12-31T23:59:59.999999Z"), out);
    assert_string_equal(out, "1969-12-31 23:59:59.999999+00");
    bulk_repo_format_timestamp(ts("2024-02-29T23:59:59.000001Z"), out);
    assert_string_equal(out, "2024-02-29 23:59:59.000001+00");
    bulk_repo_format_timestamp(ts("0001-01-01T00:00:00Z"), out);
    assert_string_equal(out, "0001-01-01 00:00:00.000000+00");
    bulk_repo_format_timestamp(ts("9999-12-31T23:59:59.999999Z"), out);
    assert_string_equal(out, "9999-12-31 23:59:59.999999+00");
}

/* ------------------------------------------------------------------------------------------ */
/* one record                                                                                  */

static void test_bulk_row_valid_record_is_read_whole(void **state) {
    json_t *row = valid_rec();
    struct bulk_row r;
    assert_null(bulk_check_row(row, &r));
    assert_string_equal(r.user_name, "Jurgen.Dvorak_1");
    assert_string_equal(r.key, "jurgen.dvorak_1");
    assert_string_equal(r.email, "jurgen.dvorak.1@example.net");
    assert_string_equal(r.name, "Jürgen Dvořák");
    assert_int_equal(r.legacy_id, 1);
    assert_false(r.deleted);
    assert_true(r.updated_us == 1577836807LL * 1000000);
    json_decref(row);
}

static void test_bulk_row_user_name_rules(void **state) {
    assert_null(check(with(valid_rec(), "user_name", json_string("abc"))));
    assert_null(check(with(valid_rec(), "user_name", json_string("A.b_c-9"))));
    char long_name[66];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    assert_string_equal(check(with(valid_rec(), "user_name", json_string(long_name))), "invalid_user_name");
    long_name[64] = '\0';
    assert_null(check(with(valid_rec(), "user_name", json_string(long_name))));
    assert_string_equal(check(with(valid_rec(), "user_name", json_string("ab"))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_string(""))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_string("bad name 7"))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_string("user!7"))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_string("jürgen"))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_integer(7))), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", json_null())), "invalid_user_name");
    assert_string_equal(check(with(valid_rec(), "user_name", NULL)), "invalid_user_name");
}

static void test_bulk_row_email_may_be_null_or_absent_but_not_malformed(void **state) {
    json_t *row = with(valid_rec(), "email", json_null());
    struct bulk_row r;
    assert_null(bulk_check_row(row, &r));
    assert_null(r.email);
    json_decref(row);
    row = with(valid_rec(), "email", NULL);
    assert_null(bulk_check_row(row, &r));
    assert_null(r.email);
    json_decref(row);
    static const char *const bad[] = {"userexample.com", "us er@example.com", "@example.com", "user@",
                                      "user@@example.com", "user@example", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_string_equal(check(with(valid_rec(), "email", json_string(bad[i]))), "invalid_email");
    assert_string_equal(check(with(valid_rec(), "email", json_integer(1))), "invalid_email");
    assert_string_equal(check(with(valid_rec(), "email", json_false())), "invalid_email");
}

static void test_bulk_row_name_counts_characters_and_may_be_empty(void **state) {
    assert_null(check(with(valid_rec(), "name", json_string(""))));
    char name[2 * 201 + 1] = "";
    for (int i = 0; i < 200; i++) strcat(name, "é"); /* 200 characters, 400 bytes */
    assert_null(check(with(valid_rec(), "name", json_string(name))));
    strcat(name, "é");
    assert_string_equal(check(with(valid_rec(), "name", json_string(name))), "invalid_name");
    assert_null(check(with(valid_rec(), "name", json_string("tab\there, line\nbreak, back\\slash, 日本 🎉"))));
    assert_string_equal(check(with(valid_rec(), "name", json_null())), "invalid_name");
    assert_string_equal(check(with(valid_rec(), "name", json_integer(3))), "invalid_name");
    assert_string_equal(check(with(valid_rec(), "name", NULL)), "invalid_name");
    /* an embedded NUL (only possible with JSON_ALLOW_NUL) cannot sneak a shorter string through */
    assert_string_equal(check(with(valid_rec(), "name", json_stringn("a\0b", 3))), "invalid_name");
}

static void test_bulk_row_legacy_id_is_a_non_negative_json_integer(void **state) {
    assert_null(check(with(valid_rec(), "legacy_id", json_integer(0))));
    assert_null(check(with(valid_rec(), "legacy_id", json_integer(9007199254740993LL))));
    assert_string_equal(check(with(valid_rec(), "legacy_id", json_integer(-1))), "invalid_legacy_id");
    assert_string_equal(check(with(valid_rec(), "legacy_id", json_string("123"))), "invalid_legacy_id");
    assert_string_equal(check(with(valid_rec(), "legacy_id", json_real(1.0))), "invalid_legacy_id");
    assert_string_equal(check(with(valid_rec(), "legacy_id", json_null())), "invalid_legacy_id");
    assert_string_equal(check(with(valid_rec(), "legacy_id", NULL)), "invalid_legacy_id");
}

static void test_bulk_row_deleted_and_updated_at_types(void **state) {
    json_t *row = with(valid_rec(), "deleted", json_true());
    struct bulk_row r;
    assert_null(bulk_check_row(row, &r));
    assert_true(r.deleted);
    json_decref(row);
    assert_string_equal(check(with(valid_rec(), "deleted", json_string("yes"))), "invalid_deleted");
    assert_string_equal(check(with(valid_rec(), "deleted", json_integer(1))), "invalid_deleted");
    assert_string_equal(check(with(valid_rec(), "deleted", NULL)), "invalid_deleted");
    assert_string_equal(check(with(valid_rec(), "updated_at", json_integer(1577836807))), "invalid_updated_at");
    assert_string_equal(check(with(valid_rec(), "updated_at", json_string("not-a-date"))), "invalid_updated_at");
    assert_string_equal(check(with(valid_rec(), "updated_at", NULL)), "invalid_updated_at");
}

static void test_bulk_row_unknown_field_and_non_object(void **state) {
    assert_string_equal(check(with(valid_rec(), "password", json_string("x"))), "unknown_field");
    assert_string_equal(check(with(valid_rec(), "createdAt", json_string("2020-01-01T00:00:00Z"))), "unknown_field");
    assert_string_equal(check(json_string("{\"id\":5}")), "not_an_object");
    assert_string_equal(check(json_array()), "not_an_object");
    assert_string_equal(check(json_null()), "not_an_object");
}

/* ------------------------------------------------------------------------------------------ */
/* the batch                                                                                   */

static json_t *body_of(json_t *users) { return json_pack("{s:o}", "users", users); }

static void test_bulk_plan_rejects_a_malformed_body_as_a_whole(void **state) {
    struct bulk_plan plan;
    json_t *fields = NULL;
    json_t *body = json_object();
    assert_int_equal(bulk_plan_build(body, 5000, &plan, &fields), SVC_INVALID);
    assert_string_equal(json_string_value(json_object_get(fields, "users")), "required");
    json_decref(fields);
    json_decref(body);

    body = json_pack("{s:{}}", "users");
    assert_int_equal(bulk_plan_build(body, 5000, &plan, &fields), SVC_INVALID);
    assert_string_equal(json_string_value(json_object_get(fields, "users")), "must be an array");
    json_decref(fields);
    json_decref(body);

    body = json_pack("{s:[],s:b}", "users", "dry_run", 1);
    assert_int_equal(bulk_plan_build(body, 5000, &plan, &fields), SVC_INVALID);
    assert_string_equal(json_string_value(json_object_get(fields, "dry_run")), "unknown field");
    json_decref(fields);
    json_decref(body);

    json_t *users = json_array();
    for (int i = 0; i < 4; i++) json_array_append_new(users, valid_rec());
    body = body_of(users);
    assert_int_equal(bulk_plan_build(body, 3, &plan, &fields), SVC_INVALID);
    assert_string_equal(json_string_value(json_object_get(fields, "users")), "at most 3 users per request");
    json_decref(fields);
    assert_int_equal(bulk_plan_build(body, 4, &plan, &fields), SVC_OK);
    assert_null(fields);
    bulk_plan_free(&plan);
    json_decref(body);
}

static void test_bulk_plan_default_limit_is_5000(void **state) {
    json_t *users = json_array();
    json_t *one = valid_rec();
    for (int i = 0; i < 5001; i++) json_array_append(users, one);
    json_decref(one);
    json_t *body = body_of(users);
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(bulk_plan_build(body, 0, &plan, &fields), SVC_INVALID);
    json_decref(fields);
    json_array_remove(users, 0);
    assert_int_equal(bulk_plan_build(body, 0, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_valid, 5000);
    assert_int_equal(plan.n_winners, 1); /* 5000 copies of one user */
    bulk_plan_free(&plan);
    json_decref(body);
}

static void test_bulk_plan_newest_record_per_user_name_wins_case_insensitively(void **state) {
    json_t *users = json_array();
    json_array_append_new(users, rec("Alice", "a1@example.com", "A1", 1, false, "2020-01-01T00:00:02Z")); /* 0 */
    json_array_append_new(users, rec("bob", "b@example.com", "B", 2, false, "2020-01-01T00:00:01Z"));     /* 1 */
    json_array_append_new(users, rec("ALICE", "a2@example.com", "A2", 1, true, "2020-01-01T00:00:09Z"));  /* 2 */
    json_array_append_new(users, rec("alice", "a3@example.com", "A3", 1, false, "2020-01-01T00:00:05Z")); /* 3 */
    json_array_append_new(users, rec("x", NULL, "", 3, false, "2020-01-01T00:00:05Z"));                   /* 4 invalid */
    json_array_append_new(users, rec("Bob", "b2@example.com", "B2", 2, false, "2020-01-01T00:00:01Z"));   /* 5 tie */
    json_t *body = body_of(users);
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(bulk_plan_build(body, 5000, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_total, 6);
    assert_int_equal(plan.n_valid, 5);
    assert_int_equal(plan.n_invalid, 1);
    assert_int_equal(plan.invalid[0].index, 4);
    assert_string_equal(plan.invalid[0].reason, "invalid_user_name");
    assert_int_equal(plan.n_winners, 2);
    /* ordered by key; alice's newest (index 2, deleted) and bob's later record on a tie (index 5) */
    assert_string_equal(plan.winners[0]->key, "alice");
    assert_int_equal(plan.winners[0]->index, 2);
    assert_true(plan.winners[0]->deleted);
    assert_string_equal(plan.winners[1]->key, "bob");
    assert_int_equal(plan.winners[1]->index, 5);
    assert_string_equal(plan.winners[1]->email, "b2@example.com");

    /* nothing written: the 5 valid records are unchanged, the invalid one is listed */
    json_t *res = bulk_result_json(&plan, NULL);
    assert_int_equal(json_integer_value(json_object_get(res, "unchanged")), 5);
    assert_int_equal(json_array_size(json_object_get(res, "invalid")), 1);
    json_decref(res);
    bulk_plan_free(&plan);
    json_decref(body);
}

static void test_bulk_result_counts_every_record_once_and_merges_invalid_in_order(void **state) {
    json_t *users = json_array();
    for (int i = 0; i < 10; i++) {
        char un[16], em[32];
        snprintf(un, sizeof un, "user%02d", i);
        snprintf(em, sizeof em, "user%02d@example.com", i);
        json_array_append_new(users, rec(i == 3 || i == 7 ? "no" : un, em, "N", i, false, "2021-05-05T10:00:00Z"));
    }
    json_array_append_new(users, rec("user00", NULL, "older dup", 0, false, "2021-05-05T09:00:00Z")); /* 10 superseded */
    json_t *body = body_of(users);
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(bulk_plan_build(body, 5000, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_winners, 8);

    int taken[] = {1, 8};
    struct bulk_outcome o = {.inserted = 2, .updated = 1, .deleted = 1, .written = 4, .email_taken = taken, .n_email_taken = 2};
    json_t *res = bulk_result_json(&plan, &o);
    assert_int_equal(json_integer_value(json_object_get(res, "inserted")), 2);
    assert_int_equal(json_integer_value(json_object_get(res, "updated")), 1);
    assert_int_equal(json_integer_value(json_object_get(res, "deleted")), 1);
    /* 9 valid (8 winners + 1 superseded) - 2 email_taken - 4 written */
    assert_int_equal(json_integer_value(json_object_get(res, "unchanged")), 3);
    json_t *inv = json_object_get(res, "invalid");
    assert_int_equal(json_array_size(inv), 4);
    int want_idx[] = {1, 3, 7, 8};
    const char *want_reason[] = {"email_taken", "invalid_user_name", "invalid_user_name", "email_taken"};
    for (int i = 0; i < 4; i++) {
        json_t *e = json_array_get(inv, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(e, "index")), want_idx[i]);
        assert_string_equal(json_string_value(json_object_get(e, "reason")), want_reason[i]);
        assert_int_equal(json_object_size(e), 2);
    }
    long sum = 0;
    const char *k[] = {"inserted", "updated", "deleted", "unchanged"};
    for (int i = 0; i < 4; i++) sum += (long)json_integer_value(json_object_get(res, k[i]));
    assert_int_equal(sum + (long)json_array_size(inv), 11);
    json_decref(res);
    bulk_plan_free(&plan);
    json_decref(body);
}

/* ---- the TSV form ---- */

/* Builds a plan from a TSV text (length given, so NUL bytes can be part of it). */
static svc_status tsv_plan(const char *text, size_t len, long max_rows, struct bulk_plan *plan, json_t **fields) {
    return bulk_plan_build_tsv(text, len, max_rows, plan, fields);
}

static void test_bulk_tsv_reads_every_field_and_decodes_copy_escapes(void **state) {
    static const char body[] =
        "Ann.Lee_1\tann@example.com\tAnn \\t\\n\\r\\\\ Lee \xc3\xbc\t42\tf\t2020-01-01T00:00:01Z\n"
        "bob_2\t\\N\t\t7\tt\t2020-01-01T00:00:02+01:00";   /* no LF after the last line */
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(tsv_plan(body, sizeof body - 1, 5000, &plan, &fields), SVC_OK);
    assert_null(fields);
    assert_int_equal(plan.n_total, 2);
    assert_int_equal(plan.n_valid, 2);
    assert_int_equal(plan.n_invalid, 0);
    const struct bulk_row *a = &plan.rows[0], *b = &plan.rows[1];
    assert_string_equal(a->user_name, "Ann.Lee_1");
    assert_string_equal(a->key, "ann.lee_1");
    assert_string_equal(a->email, "ann@example.com");
    assert_string_equal(a->name, "Ann \t\n\r\\ Lee \xc3\xbc");
    assert_int_equal(a->legacy_id, 42);
    assert_false(a->deleted);
    assert_int_equal(a->updated_us, 1577836801LL * 1000000);
    assert_int_equal(a->index, 0);
    assert_string_equal(b->user_name, "bob_2");
    assert_null(b->email);                      /* \N */
    assert_string_equal(b->name, "");
    assert_int_equal(b->legacy_id, 7);
    assert_true(b->deleted);
    assert_int_equal(b->updated_us, (1577836802LL - 3600) * 1000000);
    assert_int_equal(b->index, 1);
    assert_int_equal(plan.n_winners, 2);
    bulk_plan_free(&plan);
}

static void test_bulk_tsv_reports_each_bad_line_with_the_json_reasons(void **state) {
    static const char body[] =
        "ok_0\ta@example.com\tA\t1\tf\t2020-01-01T00:00:00Z\n"          /* 0 valid */
        "x\ta@example.com\tA\t1\tf\t2020-01-01T00:00:00Z\n"             /* 1 user name too short */
        "\\N\ta@example.com\tA\t1\tf\t2020-01-01T00:00:00Z\n"          /* 2 null user name */
        "ok_3\tnot-an-email\tA\t1\tf\t2020-01-01T00:00:00Z\n"           /* 3 */
        "ok_4\ta\\x@example.com\tA\t1\tf\t2020-01-01T00:00:00Z\n"      /* 4 unknown escape */
        "ok_5\tb@example.com\tbad \xff utf8\t1\tf\t2020-01-01T00:00:00Z\n" /* 5 not UTF-8 */
        "ok_6\tb@example.com\t\xed\xa0\x80\t1\tf\t2020-01-01T00:00:00Z\n" /* 6 a surrogate */
        "ok_7\tb@example.com\t\\N\t1\tf\t2020-01-01T00:00:00Z\n"       /* 7 null name */
        "ok_8\tb@example.com\tB\t1x\tf\t2020-01-01T00:00:00Z\n"         /* 8 */
        "ok_9\tb@example.com\tB\t99999999999999999999\tf\t2020-01-01T00:00:00Z\n" /* 9 overflow */
        "ok_10\tb@example.com\tB\t-1\tf\t2020-01-01T00:00:00Z\n"        /* 10 */
        "ok_11\tb@example.com\tB\t1\ttrue\t2020-01-01T00:00:00Z\n"      /* 11 */
        "ok_12\tb@example.com\tB\t1\tf\t2020-02-30T00:00:00Z\n"         /* 12 */
        "ok_13\tb@example.com\tB\t1\tf\n"                                 /* 13 five fields */
        "ok_14\tb@example.com\tB\t1\tf\t2020-01-01T00:00:00Z\textra\n" /* 14 seven fields */
        "\n"                                                                  /* 15 empty line */
        "ok_16\tb@example.com\tB\t1\tf\t2020-01-01T00:00:00Z\\\n"      /* 16 lone backslash */
        "ok_17\tc@example.com\tC\t9223372036854775807\tf\t2020-01-01T00:00:00Z\n"; /* 17 valid */
    /* 18: a NUL byte inside a name */
    static const char nul_line[] = "ok_18\tb@example.com\tN\0L\t1\tf\t2020-01-01T00:00:00Z\n";
    char text[4096];
    memcpy(text, body, sizeof body - 1);
    memcpy(text + sizeof body - 1, nul_line, sizeof nul_line - 1);
    size_t len = sizeof body - 1 + sizeof nul_line - 1;
    static const struct { int index; const char *reason; } want[] = {
        {1, "invalid_user_name"}, {2, "invalid_user_name"}, {3, "invalid_email"}, {4, "invalid_email"},
        {5, "invalid_name"}, {6, "invalid_name"}, {7, "invalid_name"}, {8, "invalid_legacy_id"},
        {9, "invalid_legacy_id"}, {10, "invalid_legacy_id"}, {11, "invalid_deleted"}, {12, "invalid_updated_at"},
        {13, "malformed_line"}, {14, "malformed_line"}, {15, "malformed_line"}, {16, "invalid_updated_at"},
        {18, "invalid_name"},
    };
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(tsv_plan(text, len, 5000, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_total, 19);
    assert_int_equal(plan.n_valid, 2);
    assert_int_equal(plan.n_invalid, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < plan.n_invalid; i++) {
        assert_int_equal(plan.invalid[i].index, want[i].index);
        assert_string_equal(plan.invalid[i].reason, want[i].reason);
    }
    assert_int_equal(plan.rows[0].index, 0);
    assert_int_equal(plan.rows[1].index, 17);
    assert_int_equal(plan.rows[1].legacy_id, 9223372036854775807LL);
    bulk_plan_free(&plan);
}

static void test_bulk_tsv_limit_empty_body_and_newest_record_wins(void **state) {
    struct bulk_plan plan;
    json_t *fields = NULL;
    assert_int_equal(tsv_plan("", 0, 5000, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_total, 0);
    assert_int_equal(plan.n_winners, 0);
    bulk_plan_free(&plan);

    static const char three[] = "Alice\ta1@example.com\tA1\t1\tf\t2020-01-01T00:00:02Z\n"
                                "ALICE\ta2@example.com\tA2\t1\tt\t2020-01-01T00:00:09Z\n"
                                "alice\ta3@example.com\tA3\t1\tf\t2020-01-01T00:00:05Z\n";
    assert_int_equal(tsv_plan(three, sizeof three - 1, 2, &plan, &fields), SVC_INVALID);
    assert_non_null(fields);
    assert_string_equal(json_string_value(json_object_get(fields, "body")), "at most 2 records per request");
    json_decref(fields);
    fields = NULL;
    bulk_plan_free(&plan);

    assert_int_equal(tsv_plan(three, sizeof three - 1, 3, &plan, &fields), SVC_OK);
    assert_int_equal(plan.n_valid, 3);
    assert_int_equal(plan.n_winners, 1);
    assert_int_equal(plan.winners[0]->index, 1);
    assert_true(plan.winners[0]->deleted);
    assert_string_equal(plan.winners[0]->email, "a2@example.com");
    bulk_plan_free(&plan);
}

static void test_bulk_copy_encodes_one_line_per_row_in_stage_column_order(void **state) {
    struct bulk_row a = {.user_name = "Ann", .email = NULL, .name = "A\tB", .legacy_id = 42,
                         .updated_us = 1577836807LL * 1000000 + 5, .index = 7, .deleted = true};
    struct bulk_row b = {.user_name = "bob", .email = "b@example.com", .name = "", .legacy_id = 0,
                         .updated_us = 0, .index = 0, .deleted = false};
    const struct bulk_row *rows[] = {&a, &b};
    struct svc_buf buf;
    svc_buf_init(&buf);
    bulk_repo_encode_rows(&buf, rows, 2);
    assert_false(buf.oom);
    assert_string_equal(buf.data, "7\tAnn\t\\N\tA\\tB\t42\tt\t2020-01-01 00:00:07.000005+00\n"
                                  "0\tbob\tb@example.com\t\t0\tf\t1970-01-01 00:00:00.000000+00\n");
    svc_buf_free(&buf);
}

static void test_bulk_copy_of_new_users_has_fresh_v7_ids_and_deleted_at_only_when_deleted(void **state) {
    struct bulk_row a = {.user_name = "Ann", .email = NULL, .name = "A\tB", .legacy_id = 42,
                         .updated_us = 1577836807LL * 1000000 + 5, .index = 7, .deleted = true};
    struct bulk_row b = {.user_name = "bob", .email = "b@example.com", .name = "", .legacy_id = 0,
                         .updated_us = 0, .index = 0, .deleted = false};
    const struct bulk_row *rows[] = {&a, &b};
    struct svc_buf buf;
    svc_buf_init(&buf);
    bulk_repo_encode_new_users(&buf, rows, 2, "2026-11-25 10:00:00.000001+00");
    assert_false(buf.oom);
    char *second = strchr(buf.data, '\n');
    assert_non_null(second);
    second++;
    /* id (UUIDv7), user_name, email, name, source, legacy_id, source_updated_at, deleted, deleted_at */
    assert_int_equal(buf.data[36], '\t');
    char id1[37], id2[37];
    memcpy(id1, buf.data, 36);
    id1[36] = '\0';
    memcpy(id2, second, 36);
    id2[36] = '\0';
    assert_true(svc_uuid_is_valid(id1) && svc_uuid_is_valid(id2));
    assert_int_equal(id1[14], '7');
    assert_string_not_equal(id1, id2);
    static const char first[] = "\tAnn\t\\N\tA\\tB\tlegacy\t42\t2020-01-01 00:00:07.000005+00\tt\t"
                                "2026-11-25 10:00:00.000001+00\n";
    assert_int_equal((size_t)(second - buf.data), 36 + strlen(first));
    assert_memory_equal(buf.data + 36, first, strlen(first));
    assert_string_equal(second + 36, "\tbob\tb@example.com\t\tlegacy\t0\t1970-01-01 00:00:00.000000+00\tf\t\\N\n");
    svc_buf_free(&buf);
}

/* ------------------------------------------------------------------------------------------ */
/* database                                                                                    */

static struct testdb g_tdb;
static struct customers_ctx g_cx;
static PGconn *g_db;            /* superuser connection to the test database (g_tdb.db) */


static int db_setup(void **state) {
    if (testdb_create(&g_tdb, "bulk_test", "customers") != 0) return -1;
    g_db = g_tdb.db;
    memset(&g_cx, 0, sizeof g_cx);
    int devnull = open("/dev/null", O_WRONLY);
    svc_log_init(&g_cx.app.log, "customers", "test", "error", devnull);
    struct svc_pg_config cfg = {
        .conninfo = g_tdb.conninfo, .password = g_tdb.password, .size = 16, .acquire_timeout_ms = 5000,
        .statement_timeout_ms = 30000, .connect_timeout_s = 3, .application_name = "test_customers_bulk",
    };
    g_cx.app.pg = svc_pg_pool_new(&cfg);
    g_cx.bulk_max_rows = 5000;
    return g_cx.app.pg ? 0 : -1;
}

static int db_teardown(void **state) {
    if (g_cx.app.pg) svc_pg_pool_free(g_cx.app.pg);
    g_cx.app.pg = NULL;
    g_db = NULL;
    return testdb_drop(&g_tdb);
}

static int db_reset(void **state) { return testdb_exec(g_db, "TRUNCATE customers.users"); }

/* Queries on the superuser session of the test database (testdb.h). */
#define q(...) testdb_q(g_db, __VA_ARGS__)
#define assert_q(expected, ...) testdb_assert_q(g_db, expected, __VA_ARGS__)

/* Runs the use case on users (reference stolen) and returns the 200 body (caller decrefs). */
static json_t *upsert(json_t *users) {
    json_t *body = body_of(users);
    struct svc_result r = users_bulk_upsert(&g_cx, "test-cid", body);
    json_decref(body);
    if (r.st != SVC_OK) fail_msg("bulk upsert answered %d (%s)", r.st, r.code ? r.code : "");
    json_t *res = r.body;
    r.body = NULL;
    svc_result_clear(&r);
    return res;
}

static void assert_counts(json_t *res, long ins, long upd, long del, long unch, size_t ninv) {
    long got[4];
    const char *k[] = {"inserted", "updated", "deleted", "unchanged"};
    for (int i = 0; i < 4; i++) got[i] = (long)json_integer_value(json_object_get(res, k[i]));
    size_t got_inv = json_array_size(json_object_get(res, "invalid"));
    if (got[0] != ins || got[1] != upd || got[2] != del || got[3] != unch || got_inv != ninv) {
        char *s = json_dumps(res, JSON_COMPACT);
        fail_msg("counts: want ins=%ld upd=%ld del=%ld unch=%ld invalid=%zu, got %s", ins, upd, del, unch, ninv, s);
    }
}

static void assert_invalid(json_t *res, size_t i, int index, const char *reason) {
    json_t *e = json_array_get(json_object_get(res, "invalid"), i);
    assert_int_equal(json_integer_value(json_object_get(e, "index")), index);
    assert_string_equal(json_string_value(json_object_get(e, "reason")), reason);
}

static void test_bulk_db_inserts_new_users_as_legacy_and_reapplying_rewrites_nothing(void **state) {
    json_t *users = json_array();
    json_array_append_new(users, rec("Ann.Lee_1", "ann@example.com", "Ann Lee", 1, false, "2020-01-01T00:00:01Z"));
    json_array_append_new(users, rec("bob_2", NULL, "", 2, false, "2020-01-01T00:00:02Z"));
    json_array_append_new(users, rec("cat-3", "cat@example.com", "Cat", 3, true, "2020-01-01T00:00:03+01:00"));
    json_array_append_new(users, rec("bad name", "d@example.com", "D", 4, false, "2020-01-01T00:00:04Z"));
    json_incref(users);
    json_t *res = upsert(users);
    assert_counts(res, 2, 0, 1, 0, 1);
    assert_invalid(res, 0, 3, "invalid_user_name");
    json_decref(res);

    assert_q("3", "SELECT count(*) FROM customers.users");
    assert_q("Ann.Lee_1|ann@example.com|Ann Lee|legacy|user|{}|1|f|t|2020-01-01 00:00:01+00",
             "SELECT concat_ws('|', user_name, email, name, source, role, permissions, legacy_id, deleted,"
             " password_hash IS NULL, source_updated_at AT TIME ZONE 'UTC' || '+00') FROM customers.users"
             " WHERE user_name = 'Ann.Lee_1'");
    assert_q("t|t|2019-12-31 23:00:03", "SELECT concat_ws('|', deleted, deleted_at IS NOT NULL,"
             " source_updated_at AT TIME ZONE 'UTC') FROM customers.users WHERE user_name = 'cat-3'");
    assert_q("t", "SELECT email IS NULL FROM customers.users WHERE user_name = 'bob_2'");

    /* the same batch again: all unchanged and not one row rewritten (same xmin, no dead tuple) */
    char *before = q("SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY user_name) FROM customers.users");
    res = upsert(users);
    assert_counts(res, 0, 0, 0, 3, 1);
    json_decref(res);
    char *after = q("SELECT string_agg(xmin::text || ctid::text, ',' ORDER BY user_name) FROM customers.users");
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_bulk_db_newest_updated_at_wins_across_batches(void **state) {
    json_t *res = upsert(json_pack("[o]", rec("eve", "eve@example.com", "Eve v2", 5, false, "2021-06-01T00:00:00Z")));
    assert_counts(res, 1, 0, 0, 0, 0);
    json_decref(res);
    /* older: ignored */
    res = upsert(json_pack("[o]", rec("eve", "old@example.com", "Eve v1", 5, true, "2021-05-01T00:00:00Z")));
    assert_counts(res, 0, 0, 0, 1, 0);
    json_decref(res);
    /* same timestamp, different values: the stored one stays */
    res = upsert(json_pack("[o]", rec("EVE", "same@example.com", "Eve v2b", 5, false, "2021-06-01T00:00:00Z")));
    assert_counts(res, 0, 0, 0, 1, 0);
    json_decref(res);
    assert_q("eve|eve@example.com|Eve v2|f", "SELECT concat_ws('|', user_name, email, name, deleted) FROM customers.users");
    /* newer, matched case-insensitively: applied, stored user_name kept */
    res = upsert(json_pack("[o]", rec("EVE", "eve3@example.com", "Eve v3", 6, false, "2021-07-01T00:00:00.25Z")));
    assert_counts(res, 0, 1, 0, 0, 0);
    json_decref(res);
    assert_q("eve|eve3@example.com|Eve v3|6|2021-07-01 00:00:00.25",
             "SELECT concat_ws('|', user_name, email, name, legacy_id, source_updated_at AT TIME ZONE 'UTC') FROM customers.users");
}

static void test_bulk_db_deleted_soft_deletes_and_a_newer_record_undeletes(void **state) {
    json_t *res = upsert(json_pack("[o]", rec("fay", "fay@example.com", "Fay", 7, false, "2021-01-01T00:00:00Z")));
    json_decref(res);
    res = upsert(json_pack("[o]", rec("fay", "fay@example.com", "Fay", 7, true, "2021-02-01T00:00:00Z")));
    assert_counts(res, 0, 0, 1, 0, 0);
    json_decref(res);
    assert_q("t|t", "SELECT concat_ws('|', deleted, deleted_at IS NOT NULL) FROM customers.users WHERE user_name = 'fay'");
    char *deleted_at = q("SELECT deleted_at FROM customers.users WHERE user_name = 'fay'");
    /* still deleted in a newer record: updated, and the original deleted_at is kept */
    res = upsert(json_pack("[o]", rec("fay", "fay@example.com", "Fay R.", 7, true, "2021-03-01T00:00:00Z")));
    assert_counts(res, 0, 1, 0, 0, 0);
    json_decref(res);
    assert_q(deleted_at, "SELECT deleted_at FROM customers.users WHERE user_name = 'fay'");
    free(deleted_at);
    res = upsert(json_pack("[o]", rec("fay", "fay@example.com", "Fay", 7, false, "2021-04-01T00:00:00Z")));
    assert_counts(res, 0, 1, 0, 0, 0);
    json_decref(res);
    assert_q("f|t", "SELECT concat_ws('|', deleted, deleted_at IS NULL) FROM customers.users WHERE user_name = 'fay'");
}

static void test_bulk_db_existing_local_user_keeps_password_role_permissions_and_source(void **state) {
    assert_int_equal(testdb_exec(g_db, "INSERT INTO customers.users (user_name, email, name, password_hash, role, permissions)"
                                   " VALUES ('Gus', 'gus@example.com', 'Gus', '$argon2id$fake', 'admin', '{users:read}')"), 0);
    json_t *res = upsert(json_pack("[o]", rec("gus", "gus@example.org", "Gus Legacy", 8, false, "2019-01-01T00:00:00Z")));
    assert_counts(res, 0, 1, 0, 0, 0);
    json_decref(res);
    assert_q("Gus|gus@example.org|Gus Legacy|$argon2id$fake|admin|{users:read}|local|8|f",
             "SELECT concat_ws('|', user_name, email, name, password_hash, role, permissions, source, legacy_id, deleted)"
             " FROM customers.users");
}

static void test_bulk_db_email_held_by_another_user_is_reported_and_the_rest_applied(void **state) {
    assert_int_equal(testdb_exec(g_db, "INSERT INTO customers.users (user_name, email, name) VALUES ('holder', 'Taken@Example.com', 'H')"), 0);
    json_t *users = json_array();
    json_array_append_new(users, rec("ivy", "ivy@example.com", "Ivy", 9, false, "2021-01-01T00:00:00Z"));
    json_array_append_new(users, rec("jack", "taken@EXAMPLE.com", "Jack", 10, false, "2021-01-01T00:00:00Z"));
    json_array_append_new(users, rec("kim", "kim@example.com", "Kim", 11, false, "2021-01-01T00:00:00Z"));
    json_array_append_new(users, rec("lou", "kim@example.com", "Lou", 12, false, "2021-01-01T00:00:00Z"));
    json_array_append_new(users, rec("HOLDER", "taken@example.com", "H2", 13, false, "2021-01-01T00:00:00Z"));
    json_incref(users);
    json_t *res = upsert(users);
    /* jack: held by another stored user; lou: kim (earlier in the batch) claims it; holder keeps its own */
    assert_counts(res, 2, 1, 0, 0, 2);
    assert_invalid(res, 0, 1, "email_taken");
    assert_invalid(res, 1, 3, "email_taken");
    json_decref(res);
    assert_q("holder:taken@example.com,ivy:ivy@example.com,kim:kim@example.com",
             "SELECT string_agg(user_name || ':' || email, ',' ORDER BY user_name) FROM customers.users");
    /* again: same end state, nothing rewritten, the conflicts still reported */
    res = upsert(users);
    assert_counts(res, 0, 0, 0, 3, 2);
    json_decref(res);
}

static void test_bulk_db_stale_record_with_a_taken_email_is_unchanged_not_a_conflict(void **state) {
    json_t *res = upsert(json_pack("[o,o]", rec("max", "max2@example.com", "Max", 14, false, "2021-06-01T00:00:00Z"),
                                   rec("ned", "max@example.com", "Ned", 15, false, "2021-06-01T00:00:00Z")));
    assert_counts(res, 2, 0, 0, 0, 0);
    json_decref(res);
    /* max's old record carried the email ned holds now; it is older than max's stored record */
    res = upsert(json_pack("[o]", rec("max", "max@example.com", "Max", 14, false, "2021-01-01T00:00:00Z")));
    assert_counts(res, 0, 0, 0, 1, 0);
    json_decref(res);
}

static void test_bulk_db_in_batch_duplicates_resolved_before_the_upsert(void **state) {
    json_t *users = json_array();
    json_array_append_new(users, rec("oli", "oli1@example.com", "Oli 1", 16, false, "2021-01-01T00:00:01Z"));
    json_array_append_new(users, rec("OLI", "oli3@example.com", "Oli 3", 16, true, "2021-01-01T00:00:03Z"));
    json_array_append_new(users, rec("Oli", "oli2@example.com", "Oli 2", 16, false, "2021-01-01T00:00:02Z"));
    json_t *res = upsert(users);
    assert_counts(res, 0, 0, 1, 2, 0);
    json_decref(res);
    assert_q("OLI|oli3@example.com|Oli 3|t", "SELECT concat_ws('|', user_name, email, name, deleted) FROM customers.users");
}

static void test_bulk_db_copy_round_trips_tabs_newlines_backslashes_and_unicode(void **state) {
    static const char *const names[] = {
        "tab\there", "line1\nline2", "cr\rlf\r\n", "back\\slash\\\\", "\\N", "\\.", "Jürgen Dvořák 日本 🎉",
        "O'Brien \"quoted\"", "",
    };
    size_t n = sizeof names / sizeof names[0];
    json_t *users = json_array();
    for (size_t i = 0; i < n; i++) {
        char un[16];
        snprintf(un, sizeof un, "esc%zu", i);
        json_array_append_new(users, rec(un, NULL, names[i], (long long)i, false, "2021-01-01T00:00:00Z"));
    }
    json_t *res = upsert(users);
    assert_counts(res, (long)n, 0, 0, 0, 0);
    json_decref(res);
    for (size_t i = 0; i < n; i++) {
        char *got = q("SELECT encode(convert_to(name, 'UTF8'), 'hex') FROM customers.users WHERE user_name = 'esc%zu'", i);
        char want[256] = "";
        for (const unsigned char *p = (const unsigned char *)names[i]; *p; p++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%02x", *p);
        assert_string_equal(got, want);
        free(got);
    }
}

/* The TSV body goes through the same transaction: escapes reach the table byte for byte. */
static void test_bulk_db_tsv_body_is_applied_like_json(void **state) {
    static const char body[] = "tsv_1\ttsv1@example.com\tTab\\there\\nLF \\\\N\t11\tf\t2021-01-01T00:00:00Z\n"
                               "tsv_2\t\\N\tGone\t12\tt\t2021-01-01T00:00:00Z\n"
                               "tsv_3\tbad\tX\t13\tf\t2021-01-01T00:00:00Z\n";
    struct svc_result r = users_bulk_upsert_tsv(&g_cx, "test-cid", body, sizeof body - 1);
    assert_int_equal(r.st, SVC_OK);
    assert_counts(r.body, 1, 0, 1, 0, 1);
    assert_invalid(r.body, 0, 2, "invalid_email");
    svc_result_clear(&r);
    assert_q("Tab\there\nLF \\N|tsv1@example.com|11|f",
             "SELECT concat_ws('|', name, email, legacy_id, deleted) FROM customers.users WHERE user_name = 'tsv_1'");
    assert_q("t|t", "SELECT concat_ws('|', email IS NULL, deleted_at IS NOT NULL) FROM customers.users"
                    " WHERE user_name = 'tsv_2'");
    /* the same lines again: unchanged */
    r = users_bulk_upsert_tsv(&g_cx, "test-cid", body, sizeof body - 1);
    assert_int_equal(r.st, SVC_OK);
    assert_counts(r.body, 0, 0, 0, 2, 1);
    svc_result_clear(&r);
}


static void test_bulk_db_validation_failure_of_the_body_is_a_400(void **state) {
    json_t *users = json_array();
    for (int i = 0; i < 3; i++) json_array_append_new(users, valid_rec());
    json_t *body = body_of(users);
    long saved = g_cx.bulk_max_rows;
    g_cx.bulk_max_rows = 2;
    struct svc_result r = users_bulk_upsert(&g_cx, "test-cid", body);
    g_cx.bulk_max_rows = saved;
    assert_int_equal(r.st, SVC_INVALID);
    assert_string_equal(r.code, "validation_failed");
    assert_non_null(json_object_get(json_object_get(r.details, "fields"), "users"));
    svc_result_clear(&r);
    json_decref(body);
    assert_q("0", "SELECT count(*) FROM customers.users");
}

/* Two importers at once, with batches that overlap in users and emails: neither fails, every
 * record is accounted for, and the unique indexes hold. */
struct racer {
    int id;
    int failures;
    long accounted;
};

static void *racer_main(void *arg) {
    struct racer *rc = arg;
    for (int round = 0; round < 15; round++) {
        json_t *users = json_array();
        for (int i = 0; i < 200; i++) {
            char un[32], em[48], t[40];
            int u = (round * 37 + i * 3 + rc->id) % 300;
            snprintf(un, sizeof un, "racer%03d", u);
            snprintf(em, sizeof em, "shared%03d@example.com", (u + rc->id * 7 + round) % 250);
            snprintf(t, sizeof t, "2021-01-01T00:%02d:%02dZ", round * 2 + rc->id, i % 60);
            json_array_append_new(users, rec(un, em, "R", u, (i % 11) == 0, t));
        }
        json_t *body = body_of(users);
        struct svc_result r = users_bulk_upsert(&g_cx, "race", body);
        json_decref(body);
        if (r.st != SVC_OK) {
            rc->failures++;
        } else {
            const char *k[] = {"inserted", "updated", "deleted", "unchanged"};
            for (int j = 0; j < 4; j++) rc->accounted += (long)json_integer_value(json_object_get(r.body, k[j]));
            rc->accounted += (long)json_array_size(json_object_get(r.body, "invalid"));
        }
        svc_result_clear(&r);
    }
    return NULL;
}

static void test_bulk_db_concurrent_batches_with_shared_emails_never_fail(void **state) {
    struct racer r[2] = {{.id = 0}, {.id = 1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_int_equal(r[0].failures + r[1].failures, 0);
    assert_int_equal(r[0].accounted + r[1].accounted, 2 * 15 * 200);
    assert_q("0", "SELECT count(*) - count(DISTINCT lower(email)) FROM customers.users WHERE email IS NOT NULL");
}

/* A bulk upsert run in a thread, for the race tests below. */
struct bulk_call {
    json_t *users;              /* stolen */
    json_t *result;
};

static void *bulk_call_main(void *arg) {
    struct bulk_call *bc = arg;
    bc->result = upsert(bc->users);
    return NULL;
}

/* Waits until the pooled bulk session waits for a lock of `wait_event` ("transactionid" for a
 * row or unique-index wait, "advisory" for the advisory lock). */
static void wait_for_bulk_lock_wait(const char *wait_event) {
    for (int i = 0; i < 1000; i++) {
        char *n = q("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'test_customers_bulk'"
                    " AND wait_event_type = 'Lock' AND wait_event = '%s'", wait_event);
        bool waiting = strcmp(n, "0") != 0;
        free(n);
        if (waiting) return;
        usleep(10 * 1000);
    }
    fail_msg("the bulk upsert never waited for a %s lock", wait_event);
}

static void test_bulk_db_registration_racing_the_batch_is_retried_and_reported(void **state) {
    /* another session registers an email the batch wants, after our check and before our insert */
    PGconn *reg = testdb_connect(&g_tdb);
    assert_non_null(reg);
    assert_int_equal(testdb_exec(reg, "BEGIN"), 0);
    assert_int_equal(testdb_exec(reg, "INSERT INTO customers.users (user_name, email, name) VALUES ('reg', 'race@example.com', 'R')"), 0);
    struct bulk_call bc = {.users = json_pack("[o,o]", rec("pat", "RACE@example.com", "Pat", 20, false, "2021-01-01T00:00:00Z"),
                                              rec("quin", "quin@example.com", "Quin", 21, false, "2021-01-01T00:00:00Z"))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bulk_call_main, &bc), 0);
    wait_for_bulk_lock_wait("transactionid"); /* our INSERT waits on the uncommitted email */
    assert_int_equal(testdb_exec(reg, "COMMIT"), 0);
    pthread_join(th, NULL);
    PQfinish(reg);
    assert_counts(bc.result, 1, 0, 0, 0, 1);
    assert_invalid(bc.result, 0, 0, "email_taken");
    json_decref(bc.result);
    assert_q("quin,reg", "SELECT string_agg(user_name, ',' ORDER BY user_name) FROM customers.users");
}

static void test_bulk_db_copy_refused_by_a_just_committed_email_falls_back_to_the_staged_path(void **state) {
    /* a first-import batch (no name stored) whose COPY waits on another session's uncommitted
     * email; once that commits, the COPY is refused and the same transaction continues on the
     * staged path: the other rows go in, the one row is reported, nothing is retried */
    PGconn *a = testdb_connect(&g_tdb);
    assert_non_null(a);
    assert_int_equal(testdb_exec(a, "BEGIN"), 0);
    assert_int_equal(testdb_exec(a, "INSERT INTO customers.users (user_name, email, name) VALUES ('ray', 'ray@example.com', 'R')"), 0);
    struct bulk_call bc = {.users = json_pack("[o,o]", rec("sam", "ray@example.com", "Sam", 22, false, "2021-01-01T00:00:00Z"),
                                              rec("tim", "tim@example.com", "Tim", 23, true, "2021-01-01T00:00:00Z"))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bulk_call_main, &bc), 0);
    wait_for_bulk_lock_wait("transactionid");
    assert_int_equal(testdb_exec(a, "COMMIT"), 0);
    pthread_join(th, NULL);
    PQfinish(a);
    assert_counts(bc.result, 0, 0, 1, 0, 1);
    assert_invalid(bc.result, 0, 0, "email_taken");
    json_decref(bc.result);
    char *n = q("SELECT count(*) FROM customers.users WHERE user_name = 'tim' AND deleted AND deleted_at IS NOT NULL AND source = 'legacy'");
    assert_string_equal(n, "1");
    free(n);
}

static void test_bulk_db_retry_after_a_conflict_waits_for_every_running_batch(void **state) {
    /* two sessions play running bulk upserts (shared advisory lock); the first wins an email.
     * "sam" is stored already, so the batch's COPY is refused at once and the staged upsert is
     * the one that meets the uncommitted email. */
    assert_int_equal(testdb_exec(g_db, "INSERT INTO customers.users (user_name, email, name) VALUES ('sam', NULL, 'S')"), 0);
    PGconn *a = testdb_connect(&g_tdb), *b = testdb_connect(&g_tdb);
    assert_non_null(a);
    assert_non_null(b);
    const char *lock = "SELECT pg_advisory_xact_lock_shared(hashtext('customers:bulk-upsert'))";
    assert_int_equal(testdb_exec(a, "BEGIN"), 0);
    assert_int_equal(testdb_exec(a, lock), 0);
    assert_int_equal(testdb_exec(a, "INSERT INTO customers.users (user_name, email, name) VALUES ('ray', 'ray@example.com', 'R')"), 0);
    assert_int_equal(testdb_exec(b, "BEGIN"), 0);
    assert_int_equal(testdb_exec(b, lock), 0);
    struct bulk_call bc = {.users = json_pack("[o]", rec("sam", "ray@example.com", "Sam", 22, false, "2021-01-01T00:00:00Z"))};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, bulk_call_main, &bc), 0);
    wait_for_bulk_lock_wait("transactionid");
    assert_int_equal(testdb_exec(a, "COMMIT"), 0);
    /* the batch lost the race; its retry must wait for b although b holds only a shared lock */
    wait_for_bulk_lock_wait("advisory");
    assert_int_equal(testdb_exec(b, "COMMIT"), 0);
    pthread_join(th, NULL);
    PQfinish(a);
    PQfinish(b);
    assert_counts(bc.result, 0, 0, 0, 0, 1);
    assert_invalid(bc.result, 0, 0, "email_taken");
    json_decref(bc.result);
}

/* ------------------------------------------------------------------------------------------ */
/* benchmark (BULK_BENCH_ROWS)                                                                 */

struct bench_job {
    json_t **batches;
    size_t nbatches;
    atomic_size_t next;
    atomic_long failures;
    bool raw_copy;
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The same rows straight into a plain table: one COPY per batch, one transaction each. */
static int raw_copy_batch(PGconn *c, json_t *batch) {
    json_t *users = json_object_get(batch, "users");
    struct svc_buf b;
    svc_buf_init(&b);
    size_t i;
    json_t *u;
    json_array_foreach(users, i, u) {
        struct bulk_row r;
        if (bulk_check_row(u, &r)) continue;
        r.index = (int)i;
        const struct bulk_row *rp = &r;
        bulk_repo_encode_rows(&b, &rp, 1);
    }
    PGresult *res = PQexec(c, "BEGIN");
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
    PQclear(res);
    res = PQexec(c, "COPY bench_raw (idx, user_name, email, name, legacy_id, deleted, updated_at) FROM STDIN");
    if (PQresultStatus(res) != PGRES_COPY_IN) rc = -1;
    PQclear(res);
    if (rc == 0 && (PQputCopyData(c, b.data, (int)b.len) != 1 || PQputCopyEnd(c, NULL) != 1)) rc = -1;
    while ((res = PQgetResult(c)) != NULL) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = -1;
        PQclear(res);
    }
    res = PQexec(c, rc == 0 ? "COMMIT" : "ROLLBACK");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) rc = -1;
    PQclear(res);
    svc_buf_free(&b);
    return rc;
}

static void *bench_worker(void *arg) {
    struct bench_job *j = arg;
    PGconn *c = j->raw_copy ? testdb_connect(&g_tdb) : NULL;
    for (;;) {
        size_t k = atomic_fetch_add(&j->next, 1);
        if (k >= j->nbatches) break;
        if (j->raw_copy) {
            if (!c || raw_copy_batch(c, j->batches[k]) != 0) atomic_fetch_add(&j->failures, 1);
            continue;
        }
        struct svc_result r = users_bulk_upsert(&g_cx, "bench", j->batches[k]);
        if (r.st != SVC_OK) atomic_fetch_add(&j->failures, 1);
        svc_result_clear(&r);
    }
    PQfinish(c);
    return NULL;
}

static double bench_run(struct bench_job *j, int threads) {
    atomic_store(&j->next, 0);
    atomic_store(&j->failures, 0);
    pthread_t th[16];
    double t0 = now_s();
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, bench_worker, j);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    return now_s() - t0;
}

static int run_bench(long rows) {
    long batch = getenv("BULK_BENCH_BATCH") ? atol(getenv("BULK_BENCH_BATCH")) : 2000;
    int threads = getenv("BULK_BENCH_THREADS") ? atoi(getenv("BULK_BENCH_THREADS")) : 2;
    if (batch < 1 || batch > 5000 || threads < 1 || threads > 16 || rows < 1) {
        fprintf(stderr, "bench: bad BULK_BENCH_* values\n");
        return 2;
    }
    if (db_setup(NULL) != 0) return 1;
    if (testdb_exec(g_db, "CREATE TABLE bench_raw (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), idx int, user_name text,"
                      " email text, name text, legacy_id bigint, deleted boolean, updated_at timestamptz)") != 0)
        return 1;
    struct bench_job j = {.nbatches = (size_t)((rows + batch - 1) / batch)};
    j.batches = calloc(j.nbatches, sizeof *j.batches);
    static const char *const first[] = {"Jurgen", "Ana", "Li", "Chloé", "Søren", "Ngozi", "Yuki", "Omar"};
    static const char *const last[] = {"Dvořák", "Silva", "Wang", "Müller", "O'Neil", "Kowalski", "Sato", "Haddad"};
    for (size_t k = 0; k < j.nbatches; k++) {
        json_t *users = json_array();
        for (long i = (long)k * batch; i < rows && i < (long)(k + 1) * batch; i++) {
            char un[64], em[96], name[96], t[40];
            const char *f = first[i % 8], *l = last[(i / 8) % 8];
            snprintf(un, sizeof un, "user.%ld_%d", i, (int)(i % 97));
            snprintf(em, sizeof em, "user.%ld@example.net", i);
            snprintf(name, sizeof name, "%s %s", f, l);
            snprintf(t, sizeof t, "20%02ld-%02ld-%02ldT%02ld:%02ld:%02ldZ", 10 + i % 10, 1 + i % 12, 1 + i % 28,
                     i % 24, i % 60, (i / 60) % 60);
            json_array_append_new(users, rec(un, em, name, i + 1, i % 10 == 0, t));
        }
        j.batches[k] = body_of(users);
    }
    /* the service's own work without a database: validate, de-duplicate, encode */
    double t0 = now_s();
    for (size_t k = 0; k < j.nbatches; k++) {
        struct bulk_plan plan;
        json_t *fields = NULL;
        if (bulk_plan_build(j.batches[k], 5000, &plan, &fields) != SVC_OK) return 1;
        struct svc_buf b;
        svc_buf_init(&b);
        bulk_repo_encode_rows(&b, plan.winners, plan.n_winners);
        svc_buf_free(&b);
        bulk_plan_free(&plan);
    }
    double t_cpu = now_s() - t0;
    double t_up = bench_run(&j, threads);
    long f_up = atomic_load(&j.failures);
    double t_re = bench_run(&j, threads);
    long f_re = atomic_load(&j.failures);
    /* every user again with a newer record and another name: all updated */
    for (size_t k = 0; k < j.nbatches; k++) {
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(j.batches[k], "users"), i, u) {
            char t[40];
            snprintf(t, sizeof t, "2031%s", json_string_value(json_object_get(u, "updated_at")) + 4);
            json_object_set_new(u, "updated_at", json_string(t));
            json_object_set_new(u, "name", json_string("Renamed Person"));
        }
    }
    double t_upd = bench_run(&j, threads);
    long f_upd = atomic_load(&j.failures);
    j.raw_copy = true;
    double t_raw = bench_run(&j, threads);
    long f_raw = atomic_load(&j.failures);
    char *count = q("SELECT count(*) FROM customers.users");
    printf("bulk_upsert rows=%ld batch=%ld threads=%d stored=%s\n", rows, batch, threads, count);
    printf("  validate+dedup+encode   %8.0f rows/s  %.2f s  (one thread, no database)\n", (double)rows / t_cpu, t_cpu);
    printf("  upsert (new users)      %8.0f rows/s  %.2f s  failures=%ld\n", (double)rows / t_up, t_up, f_up);
    printf("  re-apply (unchanged)    %8.0f rows/s  %.2f s  failures=%ld\n", (double)rows / t_re, t_re, f_re);
    printf("  newer records (updated) %8.0f rows/s  %.2f s  failures=%ld\n", (double)rows / t_upd, t_upd, f_upd);
    printf("  raw COPY, plain table   %8.0f rows/s  %.2f s  failures=%ld\n", (double)rows / t_raw, t_raw, f_raw);
    printf("bench bulk_upsert rows_per_s=%.0f unchanged_rows_per_s=%.0f updated_rows_per_s=%.0f "
           "copy_rows_per_s=%.0f ratio=%.2f rows=%ld batch=%ld threads=%d\n",
           (double)rows / t_up, (double)rows / t_re, (double)rows / t_upd, (double)rows / t_raw, t_raw / t_up,
           rows, batch, threads);
    free(count);
    for (size_t k = 0; k < j.nbatches; k++) json_decref(j.batches[k]);
    free(j.batches);
    db_teardown(NULL);
    return f_up || f_re || f_upd || f_raw ? 1 : 0;
}

int main(void) {
    const char *bench = getenv("BULK_BENCH_ROWS");
    if (bench && *bench) return run_bench(atol(bench));

    const struct CMUnitTest logic[] = {
        cmocka_unit_test(test_bulk_timestamp_accepts_utc_offsets_and_fractions),
        cmocka_unit_test(test_bulk_timestamp_rejects_malformed_and_impossible_values),
        cmocka_unit_test(test_bulk_timestamp_formats_for_copy_in_utc),
        cmocka_unit_test(test_bulk_row_valid_record_is_read_whole),
        cmocka_unit_test(test_bulk_row_user_name_rules),
        cmocka_unit_test(test_bulk_row_email_may_be_null_or_absent_but_not_malformed),
        cmocka_unit_test(test_bulk_row_name_counts_characters_and_may_be_empty),
        cmocka_unit_test(test_bulk_row_legacy_id_is_a_non_negative_json_integer),
        cmocka_unit_test(test_bulk_row_deleted_and_updated_at_types),
        cmocka_unit_test(test_bulk_row_unknown_field_and_non_object),
        cmocka_unit_test(test_bulk_plan_rejects_a_malformed_body_as_a_whole),
        cmocka_unit_test(test_bulk_plan_default_limit_is_5000),
        cmocka_unit_test(test_bulk_plan_newest_record_per_user_name_wins_case_insensitively),
        cmocka_unit_test(test_bulk_result_counts_every_record_once_and_merges_invalid_in_order),
        cmocka_unit_test(test_bulk_tsv_reads_every_field_and_decodes_copy_escapes),
        cmocka_unit_test(test_bulk_tsv_reports_each_bad_line_with_the_json_reasons),
        cmocka_unit_test(test_bulk_tsv_limit_empty_body_and_newest_record_wins),
        cmocka_unit_test(test_bulk_copy_encodes_one_line_per_row_in_stage_column_order),
        cmocka_unit_test(test_bulk_copy_of_new_users_has_fresh_v7_ids_and_deleted_at_only_when_deleted),
    };
    const struct CMUnitTest database[] = {
        cmocka_unit_test_setup(test_bulk_db_inserts_new_users_as_legacy_and_reapplying_rewrites_nothing, db_reset),
        cmocka_unit_test_setup(test_bulk_db_newest_updated_at_wins_across_batches, db_reset),
        cmocka_unit_test_setup(test_bulk_db_tsv_body_is_applied_like_json, db_reset),
        cmocka_unit_test_setup(test_bulk_db_deleted_soft_deletes_and_a_newer_record_undeletes, db_reset),
        cmocka_unit_test_setup(test_bulk_db_existing_local_user_keeps_password_role_permissions_and_source, db_reset),
        cmocka_unit_test_setup(test_bulk_db_email_held_by_another_user_is_reported_and_the_rest_applied, db_reset),
        cmocka_unit_test_setup(test_bulk_db_stale_record_with_a_taken_email_is_unchanged_not_a_conflict, db_reset),
        cmocka_unit_test_setup(test_bulk_db_in_batch_duplicates_resolved_before_the_upsert, db_reset),
        cmocka_unit_test_setup(test_bulk_db_copy_round_trips_tabs_newlines_backslashes_and_unicode, db_reset),
        cmocka_unit_test_setup(test_bulk_db_validation_failure_of_the_body_is_a_400, db_reset),
        cmocka_unit_test_setup(test_bulk_db_concurrent_batches_with_shared_emails_never_fail, db_reset),
        cmocka_unit_test_setup(test_bulk_db_registration_racing_the_batch_is_retried_and_reported, db_reset),
        cmocka_unit_test_setup(test_bulk_db_copy_refused_by_a_just_committed_email_falls_back_to_the_staged_path, db_reset),
        cmocka_unit_test_setup(test_bulk_db_retry_after_a_conflict_waits_for_every_running_batch, db_reset),
    };
    int failed = cmocka_run_group_tests_name("logic", logic, NULL, NULL);
    failed += cmocka_run_group_tests_name("database", database, db_setup, db_teardown);
    return failed ? 1 : 0;
}
