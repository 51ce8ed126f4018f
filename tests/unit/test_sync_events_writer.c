/* sync-service event ingestion: how a consumer's batch reaches the table (events_writer.c) —
 * the fast write, the careful one after a duplicate, waiting out PostgreSQL being away, retries
 * of data errors, the split that isolates the rows PostgreSQL refuses and their dead letters —
 * against a fake sink that plays PostgreSQL. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_writer.h"

#define MAXROWS 64

struct fake {
    /* behaviour */
    bool poison[MAXROWS];          /* rows (by index in the batch) PostgreSQL refuses */
    bool stored[MAXROWS];          /* rows already in the table (duplicates) */
    int transient_writes;          /* the next N writes fail as transient */
    int transient_at;              /* and so does write number N (1-based; 0: none) */
    int no_partition_writes;       /* the next N writes find no partition */
    int dead_transient;            /* the next N dead-letter calls fail as transient */
    int sleeps_allowed;            /* sleep returns false after this many (-1: never) */
    /* what happened */
    int writes, careful_writes, fast_writes, maintains, heartbeats, sleeps, dead_calls;
    long slept_ms;
    bool dead[MAXROWS];
    char dead_reason[MAXROWS][256];   /* holds any message (at most 200 bytes) */
    int dead_attempts;
    int stored_twice;
    struct event_view rows[MAXROWS];
};

static int index_of(struct fake *f, const struct event_view *v) { return (int)(v - f->rows); }

static enum events_outcome fake_write(void *ctx, const struct event_view *const *rows, size_t n, bool careful,
                                      unsigned long written[EVENTS_NTYPES], struct events_write_error *err) {
    struct fake *f = ctx;
    f->writes++;
    if (careful) f->careful_writes++;
    else f->fast_writes++;
    if (f->transient_writes > 0 || f->writes == f->transient_at) {
        if (f->transient_writes > 0) f->transient_writes--;
        snprintf(err->message, sizeof err->message, "connection refused");
        return EVENTS_W_TRANSIENT;
    }
    if (f->no_partition_writes > 0) {
        f->no_partition_writes--;
        snprintf(err->sqlstate, sizeof err->sqlstate, "23514");
        snprintf(err->message, sizeof err->message, "no partition of relation \"events\" found for row");
        return EVENTS_W_NO_PARTITION;
    }
    for (size_t i = 0; i < n; i++) {
        int k = index_of(f, rows[i]);
        if (f->poison[k]) {
            snprintf(err->sqlstate, sizeof err->sqlstate, "23514");
            snprintf(err->message, sizeof err->message, "violates check constraint \"no_%d\"", k);
            return EVENTS_W_DATA;
        }
        if (!careful && f->stored[k]) {
            snprintf(err->sqlstate, sizeof err->sqlstate, "23505");
            return EVENTS_W_DUPLICATE;
        }
    }
    for (size_t i = 0; i < n; i++) {   /* all or none: store now */
        int k = index_of(f, rows[i]);
        if (f->stored[k]) continue;    /* careful: skipped, not counted */
        f->stored[k] = true;
        written[rows[i]->type]++;
    }
    return EVENTS_W_OK;
}

static enum events_outcome fake_dead(void *ctx, const struct event_view *const *rows,
                                     const struct events_write_error *why, size_t n, int attempts,
                                     struct events_write_error *err) {
    struct fake *f = ctx;
    f->dead_calls++;
    if (f->dead_transient > 0) {
        f->dead_transient--;
        return EVENTS_W_TRANSIENT;
    }
    for (size_t i = 0; i < n; i++) {
        int k = index_of(f, rows[i]);
        f->dead[k] = true;
        snprintf(f->dead_reason[k], sizeof f->dead_reason[k], "%s", why[i].message);
    }
    f->dead_attempts = attempts;
    return EVENTS_W_OK;
}

static void fake_maintain(void *ctx) { ((struct fake *)ctx)->maintains++; }

static bool fake_sleep(void *ctx, long ms) {
    struct fake *f = ctx;
    f->sleeps++;
    f->slept_ms += ms;
    return f->sleeps_allowed < 0 || f->sleeps <= f->sleeps_allowed;
}

static void fake_heartbeat(void *ctx) { ((struct fake *)ctx)->heartbeats++; }

static uint64_t fake_random(void *ctx) { return UINT64_MAX; }   /* every wait at its ceiling */

static const struct events_write_policy POLICY = {.max_retries = 3,
                                                 .retry = {.base_ms = 100, .cap_ms = 1000},
                                                 .transient = {.base_ms = 100, .cap_ms = 5000}};

static struct fake *fake_new(int n) {
    struct fake *f = calloc(1, sizeof *f);
    f->sleeps_allowed = -1;
    for (int i = 0; i < n; i++) {
        snprintf(f->rows[i].id, sizeof f->rows[i].id, "00000000-0000-4000-8000-%012d", i);
        f->rows[i].type = i % EVENTS_NTYPES;
        f->rows[i].day = 20000;
    }
    return f;
}

static bool run(struct fake *f, int n, struct events_batch_result *res) {
    struct events_sink s = {.ctx = f,
                            .write = fake_write,
                            .dead = fake_dead,
                            .maintain = fake_maintain,
                            .sleep = fake_sleep,
                            .heartbeat = fake_heartbeat,
                            .random = fake_random};
    const struct event_view *rows[MAXROWS] = {0};
    for (int i = 0; i < n; i++) rows[i] = &f->rows[i];
    return events_write_batch(&s, &POLICY, rows, (size_t)n, res);
}

static unsigned long sum(const unsigned long v[EVENTS_NTYPES]) {
    unsigned long s = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) s += v[t];
    return s;
}

static void test_a_clean_batch_is_one_fast_write(void **state) {
    struct fake *f = fake_new(20);
    struct events_batch_result r;
    assert_true(run(f, 20, &r));
    assert_int_equal(f->writes, 1);
    assert_int_equal(f->fast_writes, 1);
    assert_int_equal(sum(r.written), 20);
    assert_int_equal(sum(r.duplicates), 0);
    assert_int_equal(r.written[0], 3);   /* rows 0, 7, 14 are of type 0 */
    assert_int_equal(f->sleeps, 0);
    free(f);
}

static void test_a_duplicate_makes_the_batch_careful_and_is_counted(void **state) {
    struct fake *f = fake_new(10);
    f->stored[3] = f->stored[8] = true;   /* a redelivered batch: two rows are in the table */
    struct events_batch_result r;
    assert_true(run(f, 10, &r));
    assert_int_equal(f->fast_writes, 1);
    assert_int_equal(f->careful_writes, 1);
    assert_int_equal(sum(r.written), 8);
    assert_int_equal(sum(r.duplicates), 2);
    assert_int_equal(r.duplicates[3], 1);
    assert_int_equal(r.duplicates[1], 1);
    assert_int_equal(f->sleeps, 0);   /* no wait, no retry counted */
    assert_false(r.split);
    free(f);
}

static void test_checked_rows_go_the_careful_way_at_once(void **state) {
    struct fake *f = fake_new(5);
    f->rows[2].check = true;
    struct events_batch_result r;
    assert_true(run(f, 5, &r));
    assert_int_equal(f->fast_writes, 0);
    assert_int_equal(f->careful_writes, 1);
    assert_int_equal(sum(r.written), 5);
    free(f);
}

static void test_database_away_is_waited_out_without_dead_letters(void **state) {
    struct fake *f = fake_new(10);
    f->transient_writes = 12;   /* far more than max_retries: an outage is not the data's fault */
    struct events_batch_result r;
    assert_true(run(f, 10, &r));
    assert_int_equal(f->writes, 13);
    assert_int_equal(r.transient, 12);
    assert_int_equal(sum(r.written), 10);
    assert_int_equal(f->dead_calls, 0);
    assert_false(r.split);
    assert_int_equal(f->heartbeats, 12);   /* the entries are kept from being taken over */
    /* waits grow with backoff up to the cap: 100, 200, 400, …, 5000 */
    assert_int_equal(f->slept_ms, 100 + 200 + 400 + 800 + 1600 + 3200 + 6 * 5000);
    free(f);
}

static void test_stopping_while_the_database_is_away_leaves_the_batch(void **state) {
    struct fake *f = fake_new(10);
    f->transient_writes = 100;
    f->sleeps_allowed = 3;
    struct events_batch_result r;
    assert_false(run(f, 10, &r));   /* not acknowledged: delivered again later */
    assert_int_equal(sum(r.written), 0);
    assert_int_equal(f->dead_calls, 0);
    free(f);
}

static void test_a_poison_event_is_isolated_and_dead_lettered(void **state) {
    struct fake *f = fake_new(16);
    f->poison[5] = f->poison[11] = true;
    struct events_batch_result r;
    assert_true(run(f, 16, &r));
    /* the whole batch: 1 write + 3 retries with backoff, then the split */
    assert_int_equal(f->sleeps, 3);
    assert_int_equal(f->slept_ms, 100 + 200 + 400);
    assert_true(r.split);
    assert_int_equal(sum(r.written), 14);
    assert_int_equal(sum(r.dead), 2);
    assert_int_equal(r.dead[5 % EVENTS_NTYPES], 1);
    assert_int_equal(r.dead[11 % EVENTS_NTYPES], 1);
    assert_int_equal(sum(r.duplicates), 0);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(f->stored[i], !f->poison[i]);   /* every batch-mate is written */
        assert_int_equal(f->dead[i], f->poison[i]);
    }
    assert_string_equal(f->dead_reason[5], "violates check constraint \"no_5\"");
    assert_string_equal(f->dead_reason[11], "violates check constraint \"no_11\"");
    assert_int_equal(f->dead_calls, 1);   /* all dead letters in one call */
    assert_int_equal(f->dead_attempts, 4);
    /* halving: the two poisons cost log2(16) writes each, far fewer than one write per row */
    assert_true(f->writes < 4 + 16);
    free(f);
}

static void test_every_row_poisoned(void **state) {
    struct fake *f = fake_new(4);
    for (int i = 0; i < 4; i++) f->poison[i] = true;
    struct events_batch_result r;
    assert_true(run(f, 4, &r));
    assert_int_equal(sum(r.written), 0);
    assert_int_equal(sum(r.dead), 4);
    assert_int_equal(sum(r.duplicates), 0);
    free(f);
}

static void test_no_retries_configured_splits_at_once(void **state) {
    struct fake *f = fake_new(8);
    f->poison[0] = true;
    struct events_sink s = {.ctx = f,
                            .write = fake_write,
                            .dead = fake_dead,
                            .maintain = fake_maintain,
                            .sleep = fake_sleep,
                            .heartbeat = fake_heartbeat,
                            .random = fake_random};
    struct events_write_policy p = POLICY;
    p.max_retries = 0;
    const struct event_view *rows[8];
    for (int i = 0; i < 8; i++) rows[i] = &f->rows[i];
    struct events_batch_result r;
    assert_true(events_write_batch(&s, &p, rows, 8, &r));
    assert_int_equal(f->sleeps, 0);
    assert_int_equal(sum(r.written), 7);
    assert_true(f->dead[0]);
    free(f);
}

static void test_a_transient_failure_during_the_split_resumes_the_same_piece(void **state) {
    struct fake *f = fake_new(8);
    f->poison[6] = true;
    struct events_sink s = {.ctx = f,
                            .write = fake_write,
                            .dead = fake_dead,
                            .maintain = fake_maintain,
                            .sleep = fake_sleep,
                            .heartbeat = fake_heartbeat,
                            .random = fake_random};
    struct events_write_policy p = POLICY;
    p.max_retries = 0;
    const struct event_view *rows[8];
    for (int i = 0; i < 8; i++) rows[i] = &f->rows[i];
    /* write 1: the whole batch (refused); write 2: the first half meets PostgreSQL away */
    f->transient_at = 2;
    f->dead_transient = 2;   /* and the dead letters wait twice too */
    struct events_batch_result r;
    assert_true(events_write_batch(&s, &p, rows, 8, &r));
    /* [0,8) refused, [0,4) away, [0,4) ok, [4,8) refused, [4,6) ok, [6,8) refused, [6,7) dead, [7,8) ok */
    assert_int_equal(f->writes, 8);
    assert_int_equal(r.transient, 1 + 2);
    assert_int_equal(sum(r.written), 7);
    assert_true(f->dead[6]);
    assert_int_equal(sum(r.dead), 1);
    assert_int_equal(f->dead_calls, 3);
    free(f);
}

static void test_a_missing_partition_runs_the_maintenance_once(void **state) {
    struct fake *f = fake_new(5);
    f->no_partition_writes = 1;
    struct events_batch_result r;
    assert_true(run(f, 5, &r));
    assert_int_equal(f->maintains, 1);
    assert_int_equal(f->writes, 2);
    assert_int_equal(f->sleeps, 0);
    assert_int_equal(sum(r.written), 5);
    free(f);

    /* still no partition after the maintenance (a day outside the window): a data error */
    f = fake_new(2);
    f->no_partition_writes = 100;
    assert_true(run(f, 2, &r));
    assert_int_equal(f->maintains, 1);
    assert_int_equal(sum(r.dead), 2);
    assert_non_null(strstr(f->dead_reason[0], "no partition"));
    free(f);
}

static void test_an_empty_batch_writes_nothing(void **state) {
    struct fake *f = fake_new(0);
    struct events_batch_result r;
    assert_true(run(f, 0, &r));
    assert_int_equal(f->writes, 0);
    free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_clean_batch_is_one_fast_write),
        cmocka_unit_test(test_a_duplicate_makes_the_batch_careful_and_is_counted),
        cmocka_unit_test(test_checked_rows_go_the_careful_way_at_once),
        cmocka_unit_test(test_database_away_is_waited_out_without_dead_letters),
        cmocka_unit_test(test_stopping_while_the_database_is_away_leaves_the_batch),
        cmocka_unit_test(test_a_poison_event_is_isolated_and_dead_lettered),
        cmocka_unit_test(test_every_row_poisoned),
        cmocka_unit_test(test_no_retries_configured_splits_at_once),
        cmocka_unit_test(test_a_transient_failure_during_the_split_resumes_the_same_piece),
        cmocka_unit_test(test_a_missing_partition_runs_the_maintenance_once),
        cmocka_unit_test(test_an_empty_batch_writes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
