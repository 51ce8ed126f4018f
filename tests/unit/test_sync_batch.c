/* sync-service: batch payload encoding (round trip, digest, positions), the legacy id set behind
 * the duplicate count, and SYNC_CRON expressions. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/backoff.h"
#include "sync_batch.h"
#include "sync_cron.h"
#include "sync_idset.h"
#include "sync_record.h"

#define RUN_ID "0f8fad5b-d9cb-469f-a165-70867728950e"

static void make_record(char *out, size_t n, int i) {
    snprintf(out, n,
             "{\"id\":%d,\"userName\":\"user_%d\",\"email\":\"u%d@example.com\",\"name\":\"N\\u00e4me \\\"%d\\\"\","
             "\"createdAt\":\"2020-01-01T00:00:00Z\",\"updatedAt\":\"2021-01-01T00:00:%02dZ\",\"deleted\":%s}",
             i + 1, i, i, i, i % 60, i % 3 ? "false" : "true");
}

/* Builds a batch of n records whose positions skip every 7th position. */
static void build(struct sync_batch *b, int n, uint32_t seq, uint64_t *positions) {
    uint64_t pos = 100;
    for (int i = 0; i < n; i++) {
        if (pos % 7 == 0) pos++;
        char text[512];
        make_record(text, sizeof text, i);
        struct sync_record r;
        assert_null(sync_record_parse(text, strlen(text), &r));
        sync_batch_add(b, &r, pos);
        if (positions) positions[i] = pos;
        pos++;
    }
    assert_int_equal(sync_batch_finish(b, RUN_ID, seq, "cid-abc-123"), 0);
}

static void test_batch_round_trip(void **state) {
    struct sync_batch b;
    sync_batch_init(&b);
    uint64_t positions[2000];
    build(&b, 2000, 42, positions);
    size_t len;
    const char *payload = sync_batch_payload(&b, &len);
    struct sync_batch_view v;
    assert_int_equal(sync_batch_decode(payload, len, &v), 0);
    assert_string_equal(v.run_id, RUN_ID);
    assert_int_equal(v.seq, 42);
    assert_int_equal(v.count, 2000);
    assert_string_equal(v.cid, "cid-abc-123");
    assert_int_equal(strlen(v.digest_hex), 16);
    for (uint32_t i = 0; i < 2000; i++) assert_int_equal(sync_batch_position(&v, i), (int64_t)positions[i]);
    assert_int_equal(sync_batch_position(&v, 2000), -1);

    /* the body is the TSV form of the bulk upsert: one line per record, six fields */
    assert_string_equal(v.content_type, "text/tab-separated-values");
    size_t lines = 0;
    for (size_t i = 0; i < v.body_len; i++) lines += v.body[i] == '\n';
    assert_int_equal(lines, 2000);
    static const char first[] = "user_0\tu0@example.com\tN\xc3\xa4me \"0\"\t1\tt\t2021-01-01T00:00:00Z\n";
    static const char last[] = "user_1999\tu1999@example.com\tN\xc3\xa4me \"1999\"\t2000\tf\t2021-01-01T00:00:19Z\n";
    assert_true(v.body_len > sizeof last);
    assert_memory_equal(v.body, first, sizeof first - 1);
    assert_memory_equal(v.body + v.body_len - (sizeof last - 1), last, sizeof last - 1);
    sync_batch_free(&b);
}

/* A payload queued by the earlier version (SB1, JSON body) still decodes, as JSON. */
static void test_batch_decodes_the_earlier_json_payload(void **state) {
    static const char body[] = "{\"users\":[{\"user_name\":\"abc\"}]}";
    static const char pos[] = "7+1";
    char both[64];
    snprintf(both, sizeof both, "%s%s", body, pos);
    uint64_t digest = sync_digest(both, strlen(both), 0x5359);
    char payload[512];
    int n = snprintf(payload, sizeof payload, "SB1 %s 5 1 %016llx %zu %zu cid-old\n%s", RUN_ID,
                     (unsigned long long)digest, strlen(body), strlen(pos), both);
    struct sync_batch_view v;
    assert_int_equal(sync_batch_decode(payload, (size_t)n, &v), 0);
    assert_string_equal(v.content_type, "application/json");
    assert_int_equal(v.body_len, strlen(body));
    assert_memory_equal(v.body, body, strlen(body));
    assert_int_equal(sync_batch_position(&v, 0), 7);
    payload[2] = '3';   /* an unknown version */
    assert_int_equal(sync_batch_decode(payload, (size_t)n, &v), -1);
}

static void test_batch_same_content_same_digest_and_reuse_after_reset(void **state) {
    struct sync_batch a, b;
    sync_batch_init(&a);
    sync_batch_init(&b);
    build(&a, 300, 1, NULL);
    build(&b, 500, 9, NULL);
    sync_batch_reset(&b);
    build(&b, 300, 1, NULL);
    size_t la, lb;
    const char *pa = sync_batch_payload(&a, &la), *pb = sync_batch_payload(&b, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(pa, pb, la);
    assert_int_equal(a.digest, b.digest);
    sync_batch_reset(&b);
    build(&b, 299, 1, NULL);
    assert_int_not_equal(a.digest, b.digest);
    sync_batch_free(&a);
    sync_batch_free(&b);
}

static void test_batch_decode_rejects_damaged_payloads(void **state) {
    struct sync_batch b;
    sync_batch_init(&b);
    build(&b, 50, 3, NULL);
    size_t len;
    const char *p = sync_batch_payload(&b, &len);
    char *copy = malloc(len);
    struct sync_batch_view v;
    memcpy(copy, p, len);
    copy[len / 2] ^= 1;                                   /* one bit of the body */
    assert_int_equal(sync_batch_decode(copy, len, &v), -1);
    memcpy(copy, p, len);
    assert_int_equal(sync_batch_decode(copy, len - 1, &v), -1);   /* cut short */
    copy[0] = 'X';
    assert_int_equal(sync_batch_decode(copy, len, &v), -1);        /* wrong magic */
    assert_int_equal(sync_batch_decode("SB1 nonsense\n", 13, &v), -1);
    assert_int_equal(sync_batch_decode("", 0, &v), -1);
    memcpy(copy, p, len);
    assert_int_equal(sync_batch_decode(copy, len, &v), 0);
    free(copy);
    sync_batch_free(&b);
}

/* ------------------------------------------------------------------ id set */

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_idset_matches_a_reference_set(void **state) {
    uint64_t rng = 99;
    enum { N = 60000 };
    uint64_t *ref = malloc(N * sizeof *ref);
    size_t nref = 0;
    struct sync_idset *s = idset_new();
    for (int i = 0; i < N; i++) {
        uint64_t r = svc_backoff_splitmix64(&rng);
        /* a mix of dense, clustered and sparse ids, repeats included */
        uint64_t id = i % 3 == 0 ? r % 20000 : i % 3 == 1 ? (r % 5000) + (1ull << 40) : r;
        int added = idset_add(s, id);
        assert_true(added == 0 || added == 1);
        if (added) ref[nref++] = id;
        if (i % 5000 == 0) {
            assert_int_equal(idset_add(s, id), 0);
            assert_int_equal(idset_contains(s, id), 1);
        }
    }
    assert_int_equal(idset_count(s), nref);
    qsort(ref, nref, sizeof *ref, cmp_u64);
    for (size_t j = 1; j < nref; j++) assert_true(ref[j] != ref[j - 1]);  /* add never said "new" twice */
    for (size_t j = 0; j < nref; j++) assert_int_equal(idset_contains(s, ref[j]), 1);
    assert_int_equal(idset_contains(s, (1ull << 40) + 6000), 0);
    idset_clear(s);
    assert_int_equal(idset_count(s), 0);
    assert_int_equal(idset_contains(s, ref[0]), 0);
    idset_free(s);
    free(ref);
}

static void test_idset_a_million_dense_ids_take_little_memory(void **state) {
    struct sync_idset *s = idset_new();
    for (uint64_t id = 1; id <= 1000000; id++) assert_int_equal(idset_add(s, id), 1);
    for (uint64_t id = 1; id <= 1000000; id += 999) assert_int_equal(idset_add(s, id), 0);
    assert_int_equal(idset_count(s), 1000000);
    assert_true(idset_bytes(s) < 200 * 1024);
    idset_free(s);
}

/* ------------------------------------------------------------------ cron */

static int64_t at(int y, int mo, int d, int h, int mi) {
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return (int64_t)timegm(&tm);
}

static void test_cron_default_is_every_six_hours(void **state) {
    struct sync_cron c;
    const char *why;
    assert_int_equal(sync_cron_parse(SYNC_CRON_DEFAULT, &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 25, 15, 30)), at(2026, 11, 25, 18, 0));
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 25, 18, 0)), at(2026, 11, 26, 0, 0));
    assert_int_equal(sync_cron_parse("@every 6h", &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 12, 31, 23, 59)), at(2027, 1, 1, 0, 0));
}

static void test_cron_fields_lists_ranges_steps_and_days(void **state) {
    struct sync_cron c;
    const char *why;
    assert_int_equal(sync_cron_parse("15,45 9-17/4 * * 1-5", &c, &why), 0);
    /* 2026-11-27 is a Friday; next is Monday 2026-11-30 09:15 */
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 27, 17, 45)), at(2026, 11, 30, 9, 15));
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 30, 9, 15)), at(2026, 11, 30, 9, 45));
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 30, 9, 45)), at(2026, 11, 30, 13, 15));
    assert_int_equal(sync_cron_parse("0 0 29 2 *", &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 3, 1, 0, 0)), at(2028, 2, 29, 0, 0));
    /* both day fields restricted: either matches (1st of the month OR a Sunday) */
    assert_int_equal(sync_cron_parse("0 12 1 * 7", &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 25, 0, 0)), at(2026, 11, 29, 12, 0));
    assert_int_equal(sync_cron_next(&c, at(2026, 11, 29, 12, 0)), at(2026, 12, 1, 12, 0));
    assert_int_equal(sync_cron_parse("*/20 * * * *", &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 1, 1, 0, 59)), at(2026, 1, 1, 1, 0));
}

static void test_cron_off_and_errors(void **state) {
    struct sync_cron c;
    const char *why;
    assert_int_equal(sync_cron_parse("off", &c, &why), 0);
    assert_true(c.off);
    assert_int_equal(sync_cron_next(&c, 0), -1);
    const char *bad[] = {"", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
                         "* * * * 8", "5-1 * * * *", "*/0 * * * *", "a * * * *", "@every 7m", "@every 5h", "1,,2 * * * *"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        why = NULL;
        if (sync_cron_parse(bad[i], &c, &why) != -1) fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(why);
    }
    /* a date that never comes */
    assert_int_equal(sync_cron_parse("0 0 31 2 *", &c, &why), 0);
    assert_int_equal(sync_cron_next(&c, at(2026, 1, 1, 0, 0)), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_round_trip),
        cmocka_unit_test(test_batch_decodes_the_earlier_json_payload),
        cmocka_unit_test(test_batch_same_content_same_digest_and_reuse_after_reset),
        cmocka_unit_test(test_batch_decode_rejects_damaged_payloads),
        cmocka_unit_test(test_idset_matches_a_reference_set),
        cmocka_unit_test(test_idset_a_million_dense_ids_take_little_memory),
        cmocka_unit_test(test_cron_default_is_every_six_hours),
        cmocka_unit_test(test_cron_fields_lists_ranges_steps_and_days),
        cmocka_unit_test(test_cron_off_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
