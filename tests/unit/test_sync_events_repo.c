/* sync-service event ingestion, the SQL of the write path against a real PostgreSQL
 * (testdb.h: a throwaway database migrated with db/sync): the fast COPY, the careful path and
 * what it skips (a duplicate on the same day, a client's retry without occurredAt on the next
 * day), the error classes the writer acts on, dead letters, and the daily partitions created
 * ahead and dropped after the retention. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_codec.h"
#include "events_repo.h"
#include "testdb.h"

static struct testdb db;
static PGconn *c;

static int setup(void **state) {
    if (testdb_create(&db, "events_repo", "sync") != 0) return -1;
    c = testdb_connect(&db);
    if (!c || events_repo_prepare(c) != 0) return -1;
    /* partitions around "today" as the service would have them */
    return testdb_exec(c, "SELECT sync.events_maintain(3, 90)");
}

static int teardown(void **state) {
    PQfinish(c);
    testdb_drop(&db);
    return 0;
}

/* An entry as the handler encodes it, decoded as the consumer sees it. */
struct row {
    char entry[512];
    struct event_view v;
};

static void make_row(struct row *r, const char *id, int64_t occurred_ms, bool client_id, bool client_time,
                     const char *session) {
    struct event_rec rec = {.client_id = client_id,
                            .client_time = client_time,
                            .type = 2,
                            .user_id = "user-1",
                            .session_id = session,
                            .data = "{\"sku\":\"A\\\\1\"}",
                            .data_len = strlen("{\"sku\":\"A\\\\1\"}"),
                            .occurred_ms = occurred_ms,
                            .received_ms = occurred_ms};
    snprintf(rec.id, sizeof rec.id, "%s", id);
    struct svc_buf b;
    svc_buf_init(&b);
    events_encode(&rec, &b);
    assert_true(b.len < sizeof r->entry);
    memcpy(r->entry, b.data, b.len + 1);
    assert_true(events_decode(r->entry, b.len, &r->v));
    svc_buf_free(&b);
}

static int64_t today_ms(void) {
    char *s = testdb_q(c, "SELECT (extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')) * 1000)::bigint");
    int64_t v = strtoll(s, NULL, 10);
    free(s);
    return v;
}

static long count(const char *where) {
    char *s = testdb_q(c, "SELECT count(*) FROM sync.events WHERE %s", where);
    long n = atol(s);
    free(s);
    return n;
}

static enum events_outcome write_rows(struct row *rows, int n, bool careful, unsigned long *written_total,
                                      struct events_write_error *err) {
    const struct event_view *v[16];
    for (int i = 0; i < n; i++) v[i] = &rows[i].v;
    unsigned long w[EVENTS_NTYPES] = {0};
    enum events_outcome o = events_repo_write(c, v, (size_t)n, careful, w, err);
    *written_total = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) *written_total += w[t];
    return o;
}

static void test_fast_write_then_duplicate_then_careful(void **state) {
    int64_t noon = today_ms() + 12 * 3600000LL;
    struct row r[3];
    make_row(&r[0], "11111111-1111-4111-8111-000000000001", noon, false, false, "s-1");
    make_row(&r[1], "11111111-1111-4111-8111-000000000002", noon + 1, false, false, "s\\2");
    unsigned long w;
    struct events_write_error err;
    assert_int_equal(write_rows(r, 2, false, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 2);
    char *s = testdb_q(c, "SELECT session_id || ' ' || (event_data->>'sku') FROM sync.events WHERE event_id = "
                          "'11111111-1111-4111-8111-000000000002'");
    assert_string_equal(s, "s\\2 A\\1");   /* COPY escapes undone exactly */
    free(s);
    /* the same rows again (a redelivery) plus a new one: the fast path refuses it whole */
    make_row(&r[2], "11111111-1111-4111-8111-000000000003", noon + 2, false, false, "s-3");
    assert_int_equal(write_rows(r, 3, false, &w, &err), EVENTS_W_DUPLICATE);
    assert_string_equal(err.sqlstate, "23505");
    assert_int_equal(count("event_id::text LIKE '11111111-%'"), 2);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    /* the careful path stores the new one and skips the others */
    assert_int_equal(write_rows(r, 3, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 1);
    assert_int_equal(count("event_id::text LIKE '11111111-%'"), 3);
    /* a duplicate within one careful batch is stored once */
    struct row d[2];
    make_row(&d[0], "11111111-1111-4111-8111-000000000004", noon, false, false, "s");
    make_row(&d[1], "11111111-1111-4111-8111-000000000004", noon, false, false, "s");
    assert_int_equal(write_rows(d, 2, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 1);
}

static void test_retry_without_occurred_at_across_midnight_is_stored_once(void **state) {
    int64_t midnight = today_ms();
    struct row first, retry, other;
    /* the first attempt reached the service a few ms before midnight, the retry just after */
    make_row(&first, "22222222-2222-4222-8222-000000000001", midnight - 3, true, false, "s");
    make_row(&retry, "22222222-2222-4222-8222-000000000001", midnight + 40, true, false, "s");
    assert_true(first.v.check);
    assert_int_equal(retry.v.day, first.v.day + 1);
    unsigned long w;
    struct events_write_error err;
    assert_int_equal(write_rows(&first, 1, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 1);
    assert_int_equal(write_rows(&retry, 1, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 0);
    assert_int_equal(count("event_id = '22222222-2222-4222-8222-000000000001'"), 1);
    /* and in the other order (the first attempt's batch was written late) */
    make_row(&first, "22222222-2222-4222-8222-000000000002", midnight - 3, true, false, "s");
    make_row(&retry, "22222222-2222-4222-8222-000000000002", midnight + 40, true, false, "s");
    assert_int_equal(write_rows(&retry, 1, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(write_rows(&first, 1, true, &w, &err), EVENTS_W_OK);
    assert_int_equal(w, 0);
    assert_int_equal(count("event_id = '22222222-2222-4222-8222-000000000002'"), 1);
    /* with the client's own times the key decides: two different days are two events */
    make_row(&first, "22222222-2222-4222-8222-000000000003", midnight - 3, true, true, "s");
    make_row(&other, "22222222-2222-4222-8222-000000000003", midnight + 40, true, true, "s");
    assert_false(first.v.check);
    assert_int_equal(write_rows(&first, 1, false, &w, &err), EVENTS_W_OK);
    assert_int_equal(write_rows(&other, 1, false, &w, &err), EVENTS_W_OK);
    assert_int_equal(count("event_id = '22222222-2222-4222-8222-000000000003'"), 2);
}

static void test_errors_are_classified(void **state) {
    int64_t noon = today_ms() + 12 * 3600000LL;
    struct row r;
    unsigned long w;
    struct events_write_error err;
    /* a day without a partition (far ahead) */
    make_row(&r, "33333333-3333-4333-8333-000000000001", noon + 30LL * 86400000, false, true, "s");
    assert_int_equal(write_rows(&r, 1, false, &w, &err), EVENTS_W_NO_PARTITION);
    assert_int_equal(write_rows(&r, 1, true, &w, &err), EVENTS_W_NO_PARTITION);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    /* a row the table refuses (an operator's constraint): the data's fault */
    assert_int_equal(testdb_exec(c, "ALTER TABLE sync.events ADD CONSTRAINT no_poison CHECK (session_id <> 'poison')"), 0);
    make_row(&r, "33333333-3333-4333-8333-000000000002", noon, false, false, "poison");
    assert_int_equal(write_rows(&r, 1, false, &w, &err), EVENTS_W_DATA);
    assert_string_equal(err.sqlstate, "23514");
    assert_non_null(strstr(err.message, "no_poison"));
    assert_int_equal(write_rows(&r, 1, true, &w, &err), EVENTS_W_DATA);
    assert_int_equal(testdb_exec(c, "ALTER TABLE sync.events DROP CONSTRAINT no_poison"), 0);
    /* a broken connection is transient */
    PGconn *gone = testdb_connect(&db);
    assert_non_null(gone);
    assert_int_equal(events_repo_prepare(gone), 0);
    char *pid = testdb_q(c, "SELECT pg_terminate_backend(%d)::text", PQbackendPID(gone));
    free(pid);
    const struct event_view *v[1] = {&r.v};
    unsigned long wt[EVENTS_NTYPES] = {0};
    assert_int_equal(events_repo_write(gone, v, 1, false, wt, &err), EVENTS_W_TRANSIENT);
    PQfinish(gone);
}

static void test_dead_letters_are_kept_once_per_event(void **state) {
    int64_t noon = today_ms() + 12 * 3600000LL;
    struct row r[2];
    make_row(&r[0], "44444444-4444-4444-8444-000000000001", noon, false, false, "s\\x");
    make_row(&r[1], "44444444-4444-4444-8444-000000000002", noon, true, false, "s");
    const struct event_view *v[2] = {&r[0].v, &r[1].v};
    struct events_write_error why[2] = {{.kind = EVENTS_W_DATA, .sqlstate = "23514", .message = "violates check"},
                                        {.kind = EVENTS_W_DATA, .sqlstate = "22P02", .message = "bad input"}};
    struct events_write_error err;
    assert_int_equal(events_repo_dead(c, v, why, 2, 4, &err), EVENTS_W_OK);
    assert_int_equal(events_repo_dead(c, v, why, 2, 4, &err), EVENTS_W_OK);   /* a redelivered batch */
    char *s = testdb_q(c, "SELECT count(*) FROM sync.event_dead_letters WHERE event_id::text LIKE '44444444-%%'");
    assert_string_equal(s, "2");
    free(s);
    s = testdb_q(c, "SELECT session_id || '|' || reason || '|' || sqlstate || '|' || attempts FROM "
                    "sync.event_dead_letters WHERE event_id = '44444444-4444-4444-8444-000000000001'");
    assert_string_equal(s, "s\\x|violates check|23514|4");
    free(s);
    /* the entry is kept byte for byte: a replay appends exactly what was accepted */
    s = testdb_q(c, "SELECT entry FROM sync.event_dead_letters WHERE event_id = '44444444-4444-4444-8444-000000000002'");
    assert_string_equal(s, r[1].entry);
    free(s);
    /* once replayed, the same event may be dead-lettered again */
    assert_int_equal(testdb_exec(c, "UPDATE sync.event_dead_letters SET replayed_at = now()"), 0);
    assert_int_equal(events_repo_dead(c, v, why, 1, 4, &err), EVENTS_W_OK);
    s = testdb_q(c, "SELECT count(*) FROM sync.event_dead_letters WHERE event_id = '44444444-4444-4444-8444-000000000001'");
    assert_string_equal(s, "2");
    free(s);
}

static void test_partitions_ahead_and_retention(void **state) {
    /* the service's pass (today, 90 days) creates nothing new and drops nothing the other tests wrote */
    long before = count("true");
    assert_true(before > 0);
    int created = -1, dropped = -1;
    struct events_write_error err;
    assert_int_equal(events_repo_maintain(c, 3, 90, &created, &dropped, &err), EVENTS_W_OK);
    assert_int_equal(created, 0);
    assert_int_equal(dropped, 0);
    assert_int_equal(count("true"), before);

    /* a later "today": the partitions ahead of it are created, every older one dropped whole */
    assert_int_equal(testdb_exec(c, "SELECT sync.events_maintain(2, 5, date '2030-01-10')"), 0);
    char *s = testdb_q(c, "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON "
                          "c.oid = i.inhrelid WHERE i.inhparent = 'sync.events'::regclass");
    assert_string_equal(s, "events_p20300106,events_p20300107,events_p20300108,events_p20300109,events_p20300110,"
                           "events_p20300111,events_p20300112");
    free(s);
    assert_int_equal(count("true"), 0);
    assert_int_equal(testdb_exec(c, "INSERT INTO sync.events VALUES "
                                    "('55555555-5555-4555-8555-000000000001', '2030-01-06', 'view', 'u', 's', '{}', "
                                    "'2030-01-06 10:00+00', '2030-01-06 10:00+00'),"
                                    "('55555555-5555-4555-8555-000000000002', '2030-01-08', 'view', 'u', 's', '{}', "
                                    "'2030-01-08 10:00+00', '2030-01-08 10:00+00'),"
                                    "('55555555-5555-4555-8555-000000000003', '2030-01-09', 'view', 'u', 's', '{}', "
                                    "'2030-01-09 10:00+00', '2030-01-09 10:00+00')"),
                     0);
    /* three days later the days up to 2030-01-08 fall out of the 5-day window; 01-09 stays */
    s = testdb_q(c, "SELECT created || ' ' || dropped FROM sync.events_maintain(2, 5, date '2030-01-13')");
    assert_string_equal(s, "3 3");
    free(s);
    assert_int_equal(count("true"), 1);
    assert_int_equal(count("event_id = '55555555-5555-4555-8555-000000000003'"), 1);
    /* run again the same day: nothing to do */
    s = testdb_q(c, "SELECT created || ' ' || dropped FROM sync.events_maintain(2, 5, date '2030-01-13')");
    assert_string_equal(s, "0 0");
    free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_write_then_duplicate_then_careful),
        cmocka_unit_test(test_retry_without_occurred_at_across_midnight_is_stored_once),
        cmocka_unit_test(test_errors_are_classified),
        cmocka_unit_test(test_dead_letters_are_kept_once_per_event),
        cmocka_unit_test(test_partitions_ahead_and_retention),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
