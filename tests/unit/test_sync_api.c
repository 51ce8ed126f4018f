/* sync-service: reading customers-service's bulk-upsert answer (counts, rejected records mapped
 * back to stream positions through a real batch payload), the error-row buffer, and the
 * page/limit rules of the list endpoints. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "sync_batch.h"
#include "sync_batch_job.h"
#include "sync_repo.h"
#include "sync_runs.h"

struct seen {
    uint32_t idx[8];
    char why[8][32];
    int n;
};

static void collect(void *arg, uint32_t index, const char *reason) {
    struct seen *s = arg;
    if (s->n < 8) {
        s->idx[s->n] = index;
        snprintf(s->why[s->n], sizeof s->why[s->n], "%s", reason);   /* valid only during the call */
    }
    s->n++;
}

static void test_answer_counts_and_rejected_records(void **state) {
    const char *body = "{\"inserted\":5,\"updated\":2,\"deleted\":1,\"unchanged\":1,"
                       "\"invalid\":[{\"index\":3,\"reason\":\"email_taken\"},{\"index\":99,\"reason\":\"x\"}]}";
    struct sync_repo_batch_result r;
    struct seen s = {0};
    assert_int_equal(sync_batch_job_parse_answer(body, strlen(body), 10, &r, collect, &s), 0);
    assert_int_equal(r.inserted, 5);
    assert_int_equal(r.updated, 2);
    assert_int_equal(r.deleted, 1);
    assert_int_equal(r.unchanged, 1);
    assert_int_equal(r.rejected, 2);           /* both are counted ... */
    assert_int_equal(s.n, 1);                  /* ... but an index outside the batch is not mapped */
    assert_int_equal(s.idx[0], 3);
    assert_string_equal(s.why[0], "email_taken");
}

static void test_answer_malformed_is_refused(void **state) {
    const char *bad[] = {"", "[]", "{\"inserted\":1}", "{\"inserted\":\"1\",\"updated\":0,\"deleted\":0,\"unchanged\":0}",
                         "{\"inserted\":-1,\"updated\":0,\"deleted\":0,\"unchanged\":0}",
                         "{\"inserted\":1,\"updated\":0,\"deleted\":0,\"unchanged\":0,\"invalid\":{}}", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct sync_repo_batch_result r;
        assert_int_equal(sync_batch_job_parse_answer(bad[i], strlen(bad[i]), 10, &r, NULL, NULL), -1);
    }
    struct sync_repo_batch_result r;
    assert_int_equal(sync_batch_job_parse_answer(NULL, 0, 10, &r, NULL, NULL), -1);
    const char *ok = "{\"inserted\":0,\"updated\":0,\"deleted\":0,\"unchanged\":7}";
    assert_int_equal(sync_batch_job_parse_answer(ok, strlen(ok), 10, &r, NULL, NULL), 0);
    assert_int_equal(r.unchanged, 7);
    assert_int_equal(r.rejected, 0);
}

/* The index of a rejected record becomes its stream position through the batch's runs. */
static void test_rejected_index_maps_to_stream_position(void **state) {
    struct sync_batch b;
    sync_batch_init(&b);
    const uint64_t pos[] = {10, 11, 12, 20, 21, 40};
    for (size_t i = 0; i < 6; i++) {
        char text[400];
        snprintf(text, sizeof text,
                 "{\"id\":%zu,\"userName\":\"user%zu\",\"email\":\"u%zu@example.com\",\"name\":\"N\","
                 "\"createdAt\":\"2020-01-01T00:00:00Z\",\"updatedAt\":\"2020-01-01T00:00:00Z\",\"deleted\":false}",
                 i + 1, i, i);
        struct sync_record r;
        assert_null(sync_record_parse(text, strlen(text), &r));
        sync_batch_add(&b, &r, pos[i]);
    }
    assert_int_equal(sync_batch_finish(&b, "0f8fad5b-d9cb-469f-a165-70867728950e", 0, "cid"), 0);
    size_t len;
    const char *p = sync_batch_payload(&b, &len);
    struct sync_batch_view v;
    assert_int_equal(sync_batch_decode(p, len, &v), 0);
    assert_int_equal(v.positions_len, strlen("10+3,20+2,40+1"));
    assert_memory_equal(v.positions, "10+3,20+2,40+1", v.positions_len);
    for (uint32_t i = 0; i < 6; i++) assert_int_equal(sync_batch_position(&v, i), (int64_t)pos[i]);
    sync_batch_free(&b);
}

static void test_error_buffer_builds_array_literals(void **state) {
    struct sync_repo_errors e;
    sync_repo_errors_init(&e);
    sync_repo_errors_add(&e, 7, "broken_json");
    sync_repo_errors_add(&e, 12345678901ull, "missing_field: id");
    assert_int_equal(e.n, 2);
    assert_string_equal(e.pos.data, "{7,12345678901");
    assert_string_equal(e.why.data, "{\"broken_json\",\"missing_field: id\"");
    sync_repo_errors_reset(&e);
    assert_int_equal(e.n, 0);
    assert_string_equal(e.pos.data, "{");
    sync_repo_errors_free(&e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_counts_and_rejected_records),
        cmocka_unit_test(test_answer_malformed_is_refused),
        cmocka_unit_test(test_rejected_index_maps_to_stream_position),
        cmocka_unit_test(test_error_buffer_builds_array_literals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
