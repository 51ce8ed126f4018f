/* sync-service ERP data: the page reader (erp_page.h) and the batch writer with its fencing check
 * (erp_repo.h), against a throwaway database with db/sync applied (testdb.h: TEST_PG_CONNINFO and
 * TEST_PG_PASSWORD must be set).
 *
 * What a user of the data would see: records land once per (tenant, id); a second write of the
 * same page rewrites no row (same xmin, same synced_at); a changed record is rewritten, an older
 * copy of it is not; a record deleted at the source is kept with deleted = true; a writer holding
 * an older fencing token than the last writer is refused and changes nothing; a batch meeting the
 * same id twice keeps the newest; the direct COPY falls back to the upsert when rows exist. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erp_page.h"
#include "erp_repo.h"
#include "testdb.h"

#define TENANT "01936f9e-0000-7000-8000-000000000001"
#define OTHER "01936f9e-0000-7000-8000-000000000002"
#define OFF "01936f9e-0000-7000-8000-000000000003"
#define BACK "01936f9e-0000-7000-8000-000000000004"

static struct testdb g_tdb;
static PGconn *g_c;

#define q(...) testdb_q(g_tdb.db, __VA_ARGS__)
#define assert_q(expected, ...) testdb_assert_q(g_tdb.db, expected, __VA_ARGS__)

static int setup(void **state) {
    if (testdb_create(&g_tdb, "erprepo_test", "sync") != 0) return -1;
    g_c = testdb_connect(&g_tdb);
    return g_c ? 0 : -1;
}

static int teardown(void **state) {
    PQfinish(g_c);
    return testdb_drop(&g_tdb);
}

static int reset(void **state) {
    return testdb_exec(g_tdb.db,
                       "TRUNCATE sync.erp_customers, sync.erp_products, sync.erp_sync_state, sync.tenants, sync.job_runs;"
                       "INSERT INTO sync.tenants (id, name, erp_base_url, api_key_sealed) VALUES"
                       " ('" TENANT "', 'T', 'http://erp', '\\x00'), ('" OTHER "', 'O', 'http://erp', '\\x00')");
}

/* ------------------------------------------------------------------ the page reader */

static int parse(const char *page, enum erp_kind kind, struct erp_batch *b, struct erp_page_info *info) {
    const char *why = NULL;
    int rc = erp_page_parse(page, strlen(page), kind, TENANT, b, info, &why);
    if (rc != 0) assert_non_null(why);
    return rc;
}

static void test_page_rows_are_copy_text_with_escapes(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_page_info info;
    const char *page =
        "{ \"page\": 1, \"per_page\": 2, \"data\": [\n"
        "  {\"id\":\"C1\",\"name\":\"Ana \\\"Nana\\\" \\\\ Souza\\tX\",\"email\":\"a@x.io\",\"document\":null,"
        "   \"updated_at\":\"2025-01-02T03:04:05Z\",\"deleted\":false,\"extra\":{\"a\":[1,2,{}]}},\n"
        "  {\"deleted\":true,\"updated_at\":\"2025-01-02T05:04:05.5+02:00\",\"id\":\"C2\",\"name\":\"Zo\\u00eb \\ud83d\\ude00\"}"
        "], \"has_more\": true, \"next\": null }";
    assert_int_equal(parse(page, ERP_CUSTOMERS, &b, &info), 0);
    assert_int_equal(info.records, 2);
    assert_int_equal(info.invalid, 0);
    assert_true(info.has_more);
    assert_int_equal(b.records, 2);
    svc_buf_append(&b.rows, "", 1);
    assert_string_equal(b.rows.data,
                        TENANT "\tC1\tAna \"Nana\" \\\\ Souza\\tX\ta@x.io\t\\N\t2025-01-02T03:04:05Z\tf\n" TENANT
                               "\tC2\tZo\xc3\xab \xf0\x9f\x98\x80\t\\N\t\\N\t2025-01-02T05:04:05.5+02:00\tt\n");
    /* The newest updated_at of the batch: 03:04:05.5Z (the second record). */
    assert_int_equal(b.max_updated_us, 1735787045LL * 1000000 + 500000);
    erp_batch_free(&b);
}

static void test_invalid_records_are_counted_and_skipped(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_page_info info;
    const char *page =
        "{\"data\":["
        "{\"id\":\"P1\",\"sku\":\"S\",\"name\":\"ok\",\"price\":\"12.30\",\"stock\":5,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"P2\",\"name\":\"bad price\",\"price\":12.3,\"stock\":5,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"P3\",\"name\":\"bad stock\",\"price\":\"1\",\"stock\":1.5,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"P4\",\"name\":\"bad date\",\"price\":\"1\",\"stock\":1,\"updated_at\":\"2025-02-30T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"\",\"name\":\"empty id\",\"price\":\"1\",\"stock\":1,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"P6\",\"name\":\"no deleted\",\"price\":\"1\",\"stock\":1,\"updated_at\":\"2025-01-01T00:00:00Z\"},"
        "{\"id\":\"P7\\u0000\",\"name\":\"nul\",\"price\":\"1\",\"stock\":1,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":7,\"name\":\"numeric id\",\"price\":\"1\",\"stock\":1,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false},"
        "{\"id\":\"P9\",\"name\":\"huge price\",\"price\":\"1234567890123\",\"stock\":1,\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false}"
        "],\"has_more\":false}";
    assert_int_equal(parse(page, ERP_PRODUCTS, &b, &info), 0);
    assert_int_equal(info.records, 9);
    assert_int_equal(info.invalid, 8);
    assert_int_equal(b.records, 1);
    svc_buf_append(&b.rows, "", 1);
    assert_string_equal(b.rows.data, TENANT "\tP1\tS\tok\t12.30\t5\t2025-01-01T00:00:00Z\tf\n");
    erp_batch_free(&b);
}

static void test_malformed_pages_leave_the_batch_as_it_was(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_page_info info;
    const char *good = "{\"data\":[{\"id\":\"C1\",\"name\":\"n\",\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false}],"
                       "\"has_more\":false}";
    assert_int_equal(parse(good, ERP_CUSTOMERS, &b, &info), 0);
    size_t len = b.rows.len;
    const char *bad[] = {
        "", "[]", "<html>", "{\"data\":[{\"id\":\"C1\",\"name\":\"Trunc",
        "{\"data\":{\"id\":\"C1\"},\"page\":1,\"has_more\":false}",
        "{\"data\":[],\"has_more\":\"no\"}", "{\"data\":[]}", "{\"has_more\":false}",
        "{\"data\":[1,2],\"has_more\":false}", "{\"data\":[{\"id\":\"C9\",\"name\":\"n\",\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false}],\"has_more\":false,}",
        "{\"data\":[],\"has_more\":false} x", "{\"data\":[],\"has_more\":false,\"page\":1.5}",
        "{\"data\":[{\"id\":\"C9\",\"name\":\"\xff\",\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false}],\"has_more\":false}",
        "{\"data\":[{\"id\":\"C9\",\"name\":\"\\ud800\",\"updated_at\":\"2025-01-01T00:00:00Z\",\"deleted\":false}],\"has_more\":false}",
        "{\"data\":[],\"has_more\":false,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (parse(bad[i], ERP_CUSTOMERS, &b, &info) == 0) fail_msg("page %zu should be malformed: %s", i, bad[i]);
        assert_int_equal(b.rows.len, len);
        assert_int_equal(b.records, 1);
    }
    erp_batch_free(&b);
}

/* ------------------------------------------------------------------ writes */

static void batch_of(struct erp_batch *b, const char *records) {
    char page[8192];
    snprintf(page, sizeof page, "{\"data\":[%s],\"has_more\":false}", records);
    struct erp_page_info info;
    erp_batch_reset(b);
    const char *why;
    if (erp_page_parse(page, strlen(page), ERP_CUSTOMERS, TENANT, b, &info, &why) != 0) fail_msg("page: %s", why);
    assert_int_equal(info.invalid, 0);
}

#define REC(id, name, ts, del) \
    "{\"id\":\"" id "\",\"name\":\"" name "\",\"email\":\"e@x\",\"updated_at\":\"" ts "\",\"deleted\":" del "}"

static void test_second_write_of_the_same_page_rewrites_nothing(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_write_result w;
    batch_of(&b, REC("C1", "Ana", "2025-01-01T00:00:00Z", "false") "," REC("C2", "Bia", "2025-01-01T00:00:01Z", "false"));
    bool has = true;
    assert_int_equal(erp_repo_has_rows(g_c, ERP_CUSTOMERS, TENANT, &has), SVC_OK);
    assert_false(has);
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, true, &w), SVC_OK);
    assert_true(w.direct);
    assert_int_equal(w.upserted, 2);
    char *before = q("SELECT string_agg(xmin::text || synced_at::text, ',' ORDER BY external_id) FROM sync.erp_customers");
    /* Same page again, staged: nothing changed, nothing rewritten. */
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, false, &w), SVC_OK);
    assert_false(w.direct);
    assert_int_equal(w.upserted, 0);
    assert_int_equal(w.unchanged, 2);
    /* And direct again: the unique key refuses the COPY, the upsert takes over. */
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, true, &w), SVC_OK);
    assert_false(w.direct);
    assert_int_equal(w.unchanged, 2);
    assert_q(before, "SELECT string_agg(xmin::text || synced_at::text, ',' ORDER BY external_id) FROM sync.erp_customers");
    free(before);
    assert_q("2", "SELECT count(*) FROM sync.erp_customers WHERE tenant_id = '" TENANT "'");
    assert_int_equal(erp_repo_has_rows(g_c, ERP_CUSTOMERS, TENANT, &has), SVC_OK);
    assert_true(has);
    erp_batch_free(&b);
}

static void test_changes_deletes_and_older_copies(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_write_result w;
    batch_of(&b, REC("C1", "Ana", "2025-01-01T00:00:00Z", "false") "," REC("C2", "Bia", "2025-01-01T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, true, &w), SVC_OK);
    /* C1 renamed, C2 deleted at the source, plus an older copy of C1 in the same batch. */
    batch_of(&b, REC("C1", "Ana Maria", "2025-02-01T00:00:00Z", "false") "," REC("C2", "Bia", "2025-02-01T00:00:00Z", "true")
             "," REC("C1", "Old", "2025-01-15T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, false, &w), SVC_OK);
    assert_int_equal(w.upserted, 2);
    assert_int_equal(w.unchanged, 0);
    assert_q("Ana Maria", "SELECT name FROM sync.erp_customers WHERE external_id = 'C1'");
    assert_q("true|true|Bia", "SELECT deleted || '|' || (deleted_at IS NOT NULL) || '|' || name FROM sync.erp_customers WHERE external_id = 'C2'");
    /* An older version arriving later (a slow page) changes nothing. */
    batch_of(&b, REC("C1", "Stale", "2025-01-20T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, false, &w), SVC_OK);
    assert_int_equal(w.upserted, 0);
    assert_q("Ana Maria", "SELECT name FROM sync.erp_customers WHERE external_id = 'C1'");
    /* Undeleted at the source. */
    batch_of(&b, REC("C2", "Bia", "2025-03-01T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, false, &w), SVC_OK);
    assert_q("false|false", "SELECT deleted || '|' || (deleted_at IS NOT NULL) FROM sync.erp_customers WHERE external_id = 'C2'");
    erp_batch_free(&b);
}

static void test_a_stale_fencing_token_is_refused_and_writes_nothing(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_write_result w;
    batch_of(&b, REC("C1", "From token 5", "2025-01-01T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 5, &b, true, &w), SVC_OK);
    assert_q("5", "SELECT fence_token FROM sync.tenants WHERE id = '" TENANT "'");
    /* The worker that held token 4 wakes up after its lock expired and tries to write newer-looking
     * data: refused, nothing changes, the stored token stays. */
    batch_of(&b, REC("C1", "From token 4", "2025-06-01T00:00:00Z", "false") "," REC("C9", "New", "2025-06-01T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 4, &b, false, &w), SVC_CONFLICT);
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 4, &b, true, &w), SVC_CONFLICT);
    assert_int_equal(erp_repo_sync_done(g_c, ERP_CUSTOMERS, TENANT, 4, 1), SVC_CONFLICT);
    assert_q("From token 5|1", "SELECT min(name) || '|' || count(*) FROM sync.erp_customers");
    assert_q("5", "SELECT fence_token FROM sync.tenants WHERE id = '" TENANT "'");
    assert_int_equal(PQtransactionStatus(g_c), PQTRANS_IDLE);
    /* The same token writes again; a newer one takes over and becomes the token. */
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 5, &b, false, &w), SVC_OK);
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 6, &b, false, &w), SVC_OK);
    assert_q("6", "SELECT fence_token FROM sync.tenants WHERE id = '" TENANT "'");
    /* Another tenant's token is its own. */
    assert_q("0", "SELECT fence_token FROM sync.tenants WHERE id = '" OTHER "'");
    /* A tenant deleted meanwhile: nothing to write into. */
    assert_int_equal(testdb_exec(g_tdb.db, "DELETE FROM sync.tenants WHERE id = '" TENANT "'"), 0);
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 7, &b, false, &w), SVC_NOT_FOUND);
    erp_batch_free(&b);
}

static void test_watermark_and_auth_state(void **state) {
    struct erp_state s;
    assert_int_equal(erp_repo_state(g_c, ERP_PRODUCTS, TENANT, &s), SVC_OK);
    assert_false(s.has_watermark);
    assert_int_equal(erp_repo_auth_failed(g_c, ERP_PRODUCTS, TENANT), SVC_OK);
    assert_int_equal(erp_repo_state(g_c, ERP_PRODUCTS, TENANT, &s), SVC_OK);
    assert_true(s.auth_failed);
    assert_int_equal(erp_repo_sync_done(g_c, ERP_PRODUCTS, TENANT, 1, 1735689600123456LL), SVC_OK);
    assert_int_equal(erp_repo_state(g_c, ERP_PRODUCTS, TENANT, &s), SVC_OK);
    assert_true(s.has_watermark);
    assert_false(s.auth_failed);
    assert_int_equal(s.watermark_us, 1735689600123456LL);
    /* A sync that read nothing newer keeps the watermark (never moves back). */
    assert_int_equal(erp_repo_sync_done(g_c, ERP_PRODUCTS, TENANT, 1, 1000), SVC_OK);
    assert_int_equal(erp_repo_state(g_c, ERP_PRODUCTS, TENANT, &s), SVC_OK);
    assert_int_equal(s.watermark_us, 1735689600123456LL);
}

/* The erp_tenants gauges count by the status API's rule: only the newest run of each kind counts,
 * a refused key wins over a failure, an inactive tenant is inactive whatever its runs say. */
static void test_tenant_states_follow_the_status_rule(void **state) {
    long long n[4];
    assert_int_equal(erp_repo_tenant_states(g_c, n), SVC_OK);
    assert_int_equal(n[0], 2); /* TENANT and OTHER: no run yet */
    assert_int_equal(n[1] + n[2] + n[3], 0);
    assert_int_equal(testdb_exec(g_tdb.db, "INSERT INTO sync.tenants (id, name, erp_base_url, api_key_sealed,"
                                           " is_active) VALUES ('" OFF "', 'Off', 'http://erp', '\\x00', false),"
                                           " ('" BACK "', 'Back', 'http://erp', '\\x00', true)"),
                     0);
    assert_int_equal(
        testdb_exec(g_tdb.db,
                    "INSERT INTO sync.job_runs (queue, job_id, kind, tenant_id, attempt, instance, status, started_at)"
                    " VALUES"
                    /* TENANT: customers completed, then dead (the newest) → failing; products completed. */
                    " ('erp-sync', 'a', 'customers', '" TENANT "', 1, 'i', 'completed', now() - interval '2 hours'),"
                    " ('erp-sync', 'b', 'customers', '" TENANT "', 3, 'i', 'dead', now() - interval '1 hour'),"
                    " ('erp-sync', 'c', 'products', '" TENANT "', 1, 'i', 'completed', now()),"
                    /* Back: failed, then completed (the newest) → ok. */
                    " ('erp-sync', 'd', 'products', '" BACK "', 1, 'i', 'failed', now() - interval '1 hour'),"
                    " ('erp-sync', 'e', 'products', '" BACK "', 2, 'i', 'completed', now()),"
                    /* Off: failed, but inactive. */
                    " ('erp-sync', 'f', 'customers', '" OFF "', 1, 'i', 'failed', now())"),
        0);
    assert_int_equal(erp_repo_tenant_states(g_c, n), SVC_OK);
    assert_int_equal(n[0], 2); /* OTHER, Back */
    assert_int_equal(n[1], 1); /* TENANT */
    assert_int_equal(n[2], 0);
    assert_int_equal(n[3], 1); /* Off */
    /* OTHER's products key refused: auth_failed; TENANT's too: auth_failed wins over failing. */
    assert_int_equal(erp_repo_auth_failed(g_c, ERP_PRODUCTS, OTHER), SVC_OK);
    assert_int_equal(erp_repo_auth_failed(g_c, ERP_CUSTOMERS, TENANT), SVC_OK);
    assert_int_equal(erp_repo_tenant_states(g_c, n), SVC_OK);
    assert_int_equal(n[0], 1);
    assert_int_equal(n[1], 0);
    assert_int_equal(n[2], 2);
    assert_int_equal(n[3], 1);
    /* A successful sync clears it; TENANT's newest customers run is still dead → failing. */
    assert_int_equal(erp_repo_sync_done(g_c, ERP_CUSTOMERS, TENANT, 1, 0), SVC_OK);
    assert_int_equal(erp_repo_tenant_states(g_c, n), SVC_OK);
    assert_int_equal(n[1], 1);
    assert_int_equal(n[2], 1);
}

static void test_listing_pages_by_external_id_with_filters(void **state) {
    struct erp_batch b;
    erp_batch_init(&b);
    struct erp_write_result w;
    batch_of(&b, REC("C1", "A", "2025-01-01T00:00:00Z", "false") "," REC("C2", "B", "2025-02-01T00:00:00Z", "true") ","
             REC("C3", "C", "2025-03-01T00:00:00Z", "false"));
    assert_int_equal(erp_repo_write(g_c, ERP_CUSTOMERS, TENANT, 1, &b, true, &w), SVC_OK);
    struct svc_page p = {.limit = 2};
    char *json = NULL;
    assert_int_equal(erp_repo_list(g_c, ERP_CUSTOMERS, TENANT, &p, -1, true, &json), SVC_OK);
    json_t *j = json_loads(json, 0, NULL);
    free(json);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    assert_true(json_is_true(json_object_get(j, "has_more")));
    struct svc_cursor at;
    assert_true(svc_cursor_decode(&ERP_CUSTOMERS_LIST, json_string_value(json_object_get(j, "next_cursor")), &at));
    assert_string_equal(at.id, "C2");
    json_decref(j);
    p.after = true;
    p.at = at;
    assert_int_equal(erp_repo_list(g_c, ERP_CUSTOMERS, TENANT, &p, -1, true, &json), SVC_OK);
    j = json_loads(json, 0, NULL);
    free(json);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id")), "C3");
    json_decref(j);
    /* Live records updated since February: C3 only; with deleted ones: C2 and C3; with the total. */
    struct svc_page all = {.limit = 10, .include_total = true};
    assert_int_equal(erp_repo_list(g_c, ERP_CUSTOMERS, TENANT, &all, 1738368000000000LL, false, &json), SVC_OK);
    j = json_loads(json, 0, NULL);
    free(json);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 1);
    json_decref(j);
    assert_int_equal(erp_repo_list(g_c, ERP_CUSTOMERS, TENANT, &all, 1738368000000000LL, true, &json), SVC_OK);
    j = json_loads(json, 0, NULL);
    free(json);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 2);
    json_t *c2 = json_array_get(json_object_get(j, "data"), 0);
    assert_true(json_is_true(json_object_get(c2, "deleted")));
    assert_string_equal(json_string_value(json_object_get(c2, "updated_at")), "2025-02-01T00:00:00.000Z");
    json_decref(j);
    erp_batch_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_rows_are_copy_text_with_escapes),
        cmocka_unit_test(test_invalid_records_are_counted_and_skipped),
        cmocka_unit_test(test_malformed_pages_leave_the_batch_as_it_was),
        cmocka_unit_test_setup(test_second_write_of_the_same_page_rewrites_nothing, reset),
        cmocka_unit_test_setup(test_changes_deletes_and_older_copies, reset),
        cmocka_unit_test_setup(test_a_stale_fencing_token_is_refused_and_writes_nothing, reset),
        cmocka_unit_test_setup(test_watermark_and_auth_state, reset),
        cmocka_unit_test_setup(test_listing_pages_by_external_id_with_filters, reset),
        cmocka_unit_test_setup(test_tenant_states_follow_the_status_rule, reset),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
