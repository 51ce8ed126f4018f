#define _GNU_SOURCE /* timegm in data.c */
/* ERP simulator (tools/erp-api): record generation, pages, advances and knob parsing.
 *
 * The simulator's sources are compiled into this test directly (the Makefile links only libshared
 * into unit tests). Pages are parsed back with jansson and checked against the ERP contract
 * (docs/operations.md): field set and types, ids unique per kind, paging and has_more, the
 * inclusive updated_since filter, and that an advance moves updated_at forward for about its
 * share of the records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/erp-api/src/data.c"
#include "../../tools/erp-api/src/knobs.c"

static struct data_set dataset(uint64_t seed, uint32_t customers, uint32_t products) {
    struct data_set d;
    memset(&d, 0, sizeof d);
    d.seed = seed;
    d.count[DATA_CUSTOMERS] = customers;
    d.count[DATA_PRODUCTS] = products;
    return d;
}

/* The page as text and parsed; the caller frees both. */
static json_t *page(const struct data_set *d, enum data_kind k, uint32_t n, uint32_t per, int64_t since, char **text) {
    struct svc_buf b;
    svc_buf_init(&b);
    data_page(d, k, n, per, since, &b);
    assert_false(b.oom);
    json_error_t e;
    json_t *j = json_loadb(b.data, b.len, 0, &e);
    if (!j) fail_msg("page is not JSON: %s: %.200s", e.text, b.data);
    if (text) *text = svc_buf_steal(&b);
    else svc_buf_free(&b);
    return j;
}

static int64_t ts_of(json_t *rec) {
    int64_t t;
    assert_int_equal(data_parse_ts(json_string_value(json_object_get(rec, "updated_at")), &t), 0);
    return t;
}

static void check_customer(json_t *r) {
    assert_int_equal(json_object_size(r), 6);
    const char *str_fields[] = {"id", "name", "email", "document", "updated_at"};
    for (size_t i = 0; i < 5; i++) {
        json_t *v = json_object_get(r, str_fields[i]);
        assert_true(json_is_string(v));
        assert_true(json_string_length(v) > 0);
    }
    assert_true(json_is_boolean(json_object_get(r, "deleted")));
    assert_non_null(strchr(json_string_value(json_object_get(r, "email")), '@'));
    assert_int_equal(strlen(json_string_value(json_object_get(r, "document"))), 11);
}

static void check_product(json_t *r) {
    assert_int_equal(json_object_size(r), 7);
    const char *price = json_string_value(json_object_get(r, "price"));
    assert_non_null(price);
    const char *dot = strchr(price, '.');
    assert_non_null(dot);
    assert_int_equal(strlen(dot + 1), 2);
    assert_true(json_is_integer(json_object_get(r, "stock")));
    assert_true(json_is_string(json_object_get(r, "sku")));
    assert_true(json_is_string(json_object_get(r, "id")));
    assert_true(json_is_boolean(json_object_get(r, "deleted")));
}

static void test_pages_cover_every_record_once_with_the_contract_fields(void **state) {
    struct data_set d = dataset(7, 1234, 345);
    for (int k = 0; k < 2; k++) {
        uint32_t n = d.count[k], seen = 0;
        json_t *ids = json_object();
        for (uint32_t p = 1;; p++) {
            json_t *j = page(&d, (enum data_kind)k, p, 100, -1, NULL);
            assert_int_equal(json_integer_value(json_object_get(j, "page")), p);
            assert_int_equal(json_integer_value(json_object_get(j, "per_page")), 100);
            json_t *data = json_object_get(j, "data"), *r;
            size_t i;
            json_array_foreach(data, i, r) {
                if (k == DATA_CUSTOMERS) check_customer(r);
                else check_product(r);
                const char *id = json_string_value(json_object_get(r, "id"));
                assert_null(json_object_get(ids, id));
                json_object_set_new(ids, id, json_true());
                seen++;
            }
            bool more = json_is_true(json_object_get(j, "has_more"));
            assert_int_equal(more, seen < n);
            json_decref(j);
            if (!more) break;
        }
        assert_int_equal(seen, n);
        json_decref(ids);
        /* A page after the end is empty and says so. */
        json_t *j = page(&d, (enum data_kind)k, 1000, 100, -1, NULL);
        assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
        assert_true(json_is_false(json_object_get(j, "has_more")));
        json_decref(j);
    }
}

static void test_same_seed_same_bytes_other_seed_differs(void **state) {
    struct data_set a = dataset(99, 300, 300), b = dataset(99, 300, 300), c = dataset(100, 300, 300);
    data_advance(&a, 0.3, 0.1);
    data_advance(&b, 0.3, 0.1);
    data_advance(&c, 0.3, 0.1);
    char *ta, *tb, *tc;
    json_decref(page(&a, DATA_CUSTOMERS, 2, 100, -1, &ta));
    json_decref(page(&b, DATA_CUSTOMERS, 2, 100, -1, &tb));
    json_decref(page(&c, DATA_CUSTOMERS, 2, 100, -1, &tc));
    assert_string_equal(ta, tb);
    assert_string_not_equal(ta, tc);
    free(ta);
    free(tb);
    free(tc);
}

static void test_an_advance_moves_about_its_share_forward_and_never_back(void **state) {
    struct data_set d = dataset(5, 20000, 0);
    struct data_record_meta before[200];
    for (uint32_t i = 0; i < 200; i++) data_meta(&d, DATA_CUSTOMERS, i, &before[i]);
    assert_int_equal(data_advance(&d, 0.25, 0.2), 1);
    struct data_summary s;
    data_summary(&d, DATA_CUSTOMERS, DATA_T0, &s);
    /* 25 % of 20,000 = 5,000 records moved to 2025; binomial spread is ~61. */
    assert_in_range(s.matching, 4700, 5300);
    /* About a fifth of the changed ones are deleted at the source, none of the unchanged. */
    assert_in_range(s.deleted, 850, 1150);
    for (uint32_t i = 0; i < 200; i++) {
        struct data_record_meta m;
        data_meta(&d, DATA_CUSTOMERS, i, &m);
        assert_true(m.updated_at >= before[i].updated_at);
        if (m.version == 0) assert_false(m.deleted);
        else assert_true(m.updated_at >= DATA_T0);
    }
    assert_int_equal(data_advance(&d, 1.0, 0.0), 2);
    data_summary(&d, DATA_CUSTOMERS, DATA_T0 + 2 * 86400, &s);
    assert_int_equal(s.matching, 20000);
    assert_int_equal(s.deleted, 0);   /* every record's newest version is now advance 2 */
}

static void test_updated_since_is_inclusive_and_pages_the_filtered_set(void **state) {
    struct data_set d = dataset(11, 3000, 0);
    data_advance(&d, 0.1, 0.0);
    struct data_summary s;
    data_summary(&d, DATA_CUSTOMERS, DATA_T0, &s);
    uint32_t seen = 0;
    int64_t first_ts = 0;
    for (uint32_t p = 1;; p++) {
        json_t *j = page(&d, DATA_CUSTOMERS, p, 50, DATA_T0, NULL);
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(j, "data"), i, r) {
            int64_t t = ts_of(r);
            assert_true(t >= DATA_T0);
            if (!first_ts) first_ts = t;
            seen++;
        }
        bool more = json_is_true(json_object_get(j, "has_more"));
        json_decref(j);
        if (!more) break;
    }
    assert_int_equal(seen, s.matching);
    assert_true(seen > 200 && seen < 400);
    /* A filter equal to a record's own updated_at still lists that record. */
    json_t *j = page(&d, DATA_CUSTOMERS, 1, 500, first_ts, NULL);
    assert_int_equal(ts_of(json_array_get(json_object_get(j, "data"), 0)), first_ts);
    json_decref(j);
}

static void test_names_with_quotes_and_backslashes_round_trip(void **state) {
    struct data_set d = dataset(3, 5000, 0);
    int found = 0;
    for (uint32_t p = 1; p <= 10; p++) {
        char *text;
        json_t *j = page(&d, DATA_CUSTOMERS, p, 500, -1, &text);
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(j, "data"), i, r) {
            const char *name = json_string_value(json_object_get(r, "name"));
            if (strchr(name, '"')) {
                assert_non_null(strchr(name, '\\'));
                found++;
            }
        }
        json_decref(j);
        free(text);
    }
    assert_true(found > 0);
}

static void test_timestamps_parse_strictly(void **state) {
    int64_t t;
    assert_int_equal(data_parse_ts("2025-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, DATA_T0);
    assert_int_equal(data_parse_ts("2025-01-01T02:00:00+02:00", &t), 0);
    assert_int_equal(t, DATA_T0);
    assert_int_equal(data_parse_ts("2025-01-01T00:00:00.000Z", &t), 0);
    assert_int_equal(t, DATA_T0);
    assert_int_equal(data_parse_ts("2025-01-01T00:00:00.5Z", &t), 0);
    assert_int_equal(t, DATA_T0 + 1);   /* a fraction rounds up: >= keeps the same records */
    const char *bad[] = {"2025-02-31T00:00:00Z", "2025-01-01 00:00:00Z", "2025-01-01T00:00:00", "2025-13-01T00:00:00Z",
                         "2025-01-01T00:00:00+2:00", "yesterday", "", "2025-01-01T00:00:00Zx", "2025-01-01T00:00:00."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(data_parse_ts(bad[i], &t), -1);
    char out[24];
    data_ts(DATA_T0 + 61, out);
    assert_string_equal(out, "2025-01-01T00:01:01Z");
}

static void test_knobs_inherit_and_refuse_bad_values(void **state) {
    struct sim_knobs g, t;
    knobs_defaults(&g);
    knobs_unset(&t);
    char err[160];
    json_t *v = json_real(0.5);
    assert_int_equal(knobs_set_json(&t, "error_rate", v, true, err, sizeof err), 1);
    json_decref(v);
    assert_true(knobs_get(&t, &g, KNOB_ERROR_RATE) == 0.5);
    assert_true(knobs_get(&t, &g, KNOB_HANG_MS) == 120000);
    v = json_real(1.5);
    assert_int_equal(knobs_set_json(&t, "error_rate", v, true, err, sizeof err), -1);
    assert_non_null(strstr(err, "error_rate"));
    json_decref(v);
    v = json_real(2.5);
    assert_int_equal(knobs_set_json(&t, "latency_ms", v, true, err, sizeof err), -1);   /* not an integer */
    json_decref(v);
    v = json_integer(1);
    assert_int_equal(knobs_set_json(&t, "fail", v, true, err, sizeof err), -1);        /* not a boolean */
    assert_int_equal(knobs_set_json(&t, "no_such_knob", v, true, err, sizeof err), 0);
    json_decref(v);
    v = json_null();
    assert_int_equal(knobs_set_json(&t, "error_rate", v, true, err, sizeof err), 1);
    assert_true(knobs_get(&t, &g, KNOB_ERROR_RATE) == 0.0);   /* unset again: the global value */
    assert_int_equal(knobs_set_json(&g, "error_rate", v, false, err, sizeof err), -1);
    json_decref(v);
    setenv("ERP_SIM_LATENCY_MS", "25", 1);
    assert_int_equal(knobs_from_env(&g, err, sizeof err), 0);
    assert_true(g.v[KNOB_LATENCY_MS] == 25);
    setenv("ERP_SIM_LATENCY_MS", "25ms", 1);
    assert_int_equal(knobs_from_env(&g, err, sizeof err), -1);
    assert_non_null(strstr(err, "ERP_SIM_LATENCY_MS"));
    unsetenv("ERP_SIM_LATENCY_MS");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pages_cover_every_record_once_with_the_contract_fields),
        cmocka_unit_test(test_same_seed_same_bytes_other_seed_differs),
        cmocka_unit_test(test_an_advance_moves_about_its_share_forward_and_never_back),
        cmocka_unit_test(test_updated_since_is_inclusive_and_pages_the_filtered_set),
        cmocka_unit_test(test_names_with_quotes_and_backslashes_round_trip),
        cmocka_unit_test(test_timestamps_parse_strictly),
        cmocka_unit_test(test_knobs_inherit_and_refuse_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
