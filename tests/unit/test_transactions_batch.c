/* Specification of posting batches: the combiner (shared/include/svc/combiner.h), the
 * and the batch statement itself (tx_repo_post_batch in tx_repo.h).
 *
 * Group "combiner" needs nothing: callers on many threads, a fake exec that records what it was
 * given. Group "database" runs the SQL against a real PostgreSQL in a throwaway database with
 * db/transactions applied (testdb.h: TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/combiner.h"
#include "svc/cid.h"
#include "testdb.h"
#include "tx_repo.h"
#include "tx_request.h"

/* ------------------------------------------------------------------------------------------ */
/* combiner                                                                                    */

struct fake {
    atomic_int running, max_running;
    atomic_int batches, items, max_batch;
    atomic_int mixed_groups;     /* batches that held two items of one group */
    atomic_int bad;              /* items executed more or less than once */
    int sleep_us;
    int rendezvous;              /* > 0: an exec waits (up to 2 s) until this many run at once */
};

struct job {
    int executed;
    int batch_size;
};

static void atomic_max(atomic_int *a, int v) {
    int cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {}
}

static void fake_exec(void *ctx, struct svc_combiner_item **items, int n) {
    struct fake *f = ctx;
    atomic_max(&f->max_running, atomic_fetch_add(&f->running, 1) + 1);
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (items[i]->group && items[j]->group && !strcmp(items[i]->group, items[j]->group))
                atomic_fetch_add(&f->mixed_groups, 1);
    for (int i = 0; i < n; i++) {
        struct job *jb = items[i]->data;
        jb->executed++;
        jb->batch_size = n;
    }
    for (int waited = 0; f->rendezvous && atomic_load(&f->max_running) < f->rendezvous && waited < 2000; waited++)
        usleep(1000);
    if (f->sleep_us) usleep((useconds_t)f->sleep_us);
    atomic_fetch_add(&f->batches, 1);
    atomic_fetch_add(&f->items, n);
    atomic_max(&f->max_batch, n);
    atomic_fetch_sub(&f->running, 1);
}

struct caller {
    struct svc_combiner *pb;
    struct fake *f;
    const char *const *groups;
    int ngroups, iters, tid;
};

static void *caller_main(void *arg) {
    struct caller *c = arg;
    for (int k = 0; k < c->iters; k++) {
        struct job jb = {0};
        struct svc_combiner_item it = {.data = &jb, .group = c->groups[(c->tid + k) % c->ngroups]};
        svc_combiner_submit(c->pb, &it);
        if (jb.executed != 1 || jb.batch_size < 1) atomic_fetch_add(&c->f->bad, 1);
    }
    return NULL;
}

/* Runs nthreads callers of iters submits each over groups; returns the fake's totals. */
static void run_callers(struct svc_combiner *pb, struct fake *f, int nthreads, int iters, const char *const *groups,
                        int ngroups) {
    pthread_t th[32];
    struct caller c[32];
    assert_true(nthreads <= 32);
    for (int t = 0; t < nthreads; t++) {
        c[t] = (struct caller){.pb = pb, .f = f, .groups = groups, .ngroups = ngroups, .iters = iters, .tid = t};
        assert_int_equal(pthread_create(&th[t], NULL, caller_main, &c[t]), 0);
    }
    for (int t = 0; t < nthreads; t++) pthread_join(th[t], NULL);
}

static const char *const k_groups[] = {"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07",
                                       "u08", "u09", "u10", "u11", "u12", "u13", "u14", "u15"};

static void test_pb_new_rejects_limits_out_of_range(void **state) {
    struct fake f = {0};
    assert_null(svc_combiner_new(0, 8, fake_exec, &f));
    assert_null(svc_combiner_new(1, 0, fake_exec, &f));
    assert_null(svc_combiner_new(1, SVC_COMBINER_BATCH_CAP + 1, fake_exec, &f));
    assert_null(svc_combiner_new(1, 8, NULL, &f));
    struct svc_combiner *pb = svc_combiner_new(1, SVC_COMBINER_BATCH_CAP, fake_exec, &f);
    assert_non_null(pb);
    svc_combiner_free(pb);
    svc_combiner_free(NULL);
}

static void test_pb_a_lone_caller_runs_a_batch_of_itself_at_once(void **state) {
    struct fake f = {0};
    struct svc_combiner *pb = svc_combiner_new(1, 8, fake_exec, &f);
    assert_non_null(pb);
    for (int k = 0; k < 10; k++) {
        struct job jb = {0};
        struct svc_combiner_item it = {.data = &jb, .group = "u1"};
        svc_combiner_submit(pb, &it);
        assert_int_equal(jb.executed, 1);
        assert_int_equal(jb.batch_size, 1);
    }
    assert_int_equal(atomic_load(&f.batches), 10);
    assert_int_equal(atomic_load(&f.items), 10);
    svc_combiner_free(pb);
}

static void test_pb_items_without_a_group_share_batches(void **state) {
    /* sync-service's events: no group, so queued callers fill batches up to max_batch */
    struct fake f = {.sleep_us = 1000};
    struct svc_combiner *pb = svc_combiner_new(1, 8, fake_exec, &f);
    assert_non_null(pb);
    static const char *const none[] = {NULL};
    run_callers(pb, &f, 16, 40, none, 1);
    assert_int_equal(atomic_load(&f.bad), 0);
    assert_int_equal(atomic_load(&f.items), 16 * 40);
    assert_int_equal(atomic_load(&f.max_running), 1);
    assert_in_range(atomic_load(&f.max_batch), 2, 8);
    assert_true(atomic_load(&f.batches) < atomic_load(&f.items) / 2);
    svc_combiner_free(pb);
}

static void test_pb_concurrent_callers_share_batches_within_the_limits(void **state) {
    struct fake f = {.sleep_us = 1000};
    struct svc_combiner *pb = svc_combiner_new(1, 4, fake_exec, &f);
    assert_non_null(pb);
    run_callers(pb, &f, 16, 40, k_groups, 16);
    assert_int_equal(atomic_load(&f.bad), 0);
    assert_int_equal(atomic_load(&f.items), 16 * 40);
    assert_int_equal(atomic_load(&f.max_running), 1);      /* one leader */
    assert_in_range(atomic_load(&f.max_batch), 2, 4);       /* 15 others queue behind a 1 ms batch */
    assert_true(atomic_load(&f.batches) < atomic_load(&f.items));
    assert_int_equal(atomic_load(&f.mixed_groups), 0);
    svc_combiner_free(pb);
}

static void test_pb_leaders_run_at_once_up_to_their_number(void **state) {
    struct fake f = {.sleep_us = 1000, .rendezvous = 2};
    struct svc_combiner *pb = svc_combiner_new(2, 8, fake_exec, &f);
    assert_non_null(pb);
    run_callers(pb, &f, 16, 20, k_groups, 16);
    assert_int_equal(atomic_load(&f.bad), 0);
    assert_int_equal(atomic_load(&f.items), 16 * 20);
    assert_int_equal(atomic_load(&f.max_running), 2);
    assert_int_equal(atomic_load(&f.mixed_groups), 0);
    svc_combiner_free(pb);
}

static void test_pb_one_group_never_shares_a_batch_and_nobody_is_stranded(void **state) {
    struct fake f = {.sleep_us = 500};
    struct svc_combiner *pb = svc_combiner_new(1, 8, fake_exec, &f);
    assert_non_null(pb);
    run_callers(pb, &f, 12, 30, k_groups, 2);               /* 12 callers, 2 users */
    assert_int_equal(atomic_load(&f.bad), 0);
    assert_int_equal(atomic_load(&f.items), 12 * 30);
    assert_int_equal(atomic_load(&f.mixed_groups), 0);
    assert_true(atomic_load(&f.max_batch) <= 2);
    svc_combiner_free(pb);
}

/* ------------------------------------------------------------------------------------------ */
/* database                                                                                    */

static struct testdb g_tdb;
static PGconn *g_c;              /* the service's session: batch statement settings */

#define HASH_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define TTL_S 86400
#define U(n) "00000000-0000-0000-0000-0000000000" n

static int db_setup(void **state) {
    if (testdb_create(&g_tdb, "txbatch_test", "transactions") != 0) return -1;
    g_c = testdb_connect(&g_tdb);
    return g_c && tx_repo_prepare(g_c, NULL) == 0 ? 0 : -1;
}

static int db_teardown(void **state) {
    PQfinish(g_c);
    g_c = NULL;
    return testdb_drop(&g_tdb);
}

static int db_reset(void **state) {
    return testdb_exec(g_tdb.db, "TRUNCATE transactions.transactions, transactions.balances");
}

/* Queries on the superuser session of the test database (testdb.h). */
#define q(...) testdb_q(g_tdb.db, __VA_ARGS__)
#define assert_q(expected, ...) testdb_assert_q(g_tdb.db, expected, __VA_ARGS__)

static void balance(const char *user, const char *amount) {
    char sql[512];
    snprintf(sql, sizeof sql, "INSERT INTO transactions.balances (user_id, currency, balance) VALUES ('%s', 'BRL', %s)",
             user, amount);
    assert_int_equal(testdb_exec(g_tdb.db, sql), 0);
}

struct post {
    char id[SVC_UUID_LEN + 1];
    char key[64];
    struct tx_create_req rq;
    struct tx_batch_item it;
};

/* A deposit or withdrawal in BRL; amount canonical ("1.25"). */
static void post_init(struct post *p, const char *user, const char *key, enum tx_type type, const char *amount,
                      const char *description) {
    memset(p, 0, sizeof *p);
    svc_uuid7(p->id);
    snprintf(p->key, sizeof p->key, "%s", key);
    p->rq.type = type;
    snprintf(p->rq.amount, sizeof p->rq.amount, "%s", amount);
    snprintf(p->rq.currency, sizeof p->rq.currency, "BRL");
    p->rq.description = description;
    p->it = (struct tx_batch_item){.tx_id = p->id, .user_id = user, .key = p->key, .hash = HASH_A, .rq = &p->rq};
}

/* Posts posts[0..n-1] as one batch on g_c; returns the batch status. */
static svc_status run_batch(struct post *posts, int n, struct tx_repo_err *err) {
    struct tx_batch_item *items[TX_BATCH_MAX];
    for (int i = 0; i < n; i++) items[i] = &posts[i].it;
    return tx_repo_post_batch(g_c, items, n, TTL_S, err);
}

/* The item was posted and its body is byte for byte what PostgreSQL renders for its row. */
static void assert_created_as_stored(struct post *p) {
    assert_int_equal(p->it.st, SVC_OK);
    assert_string_equal(p->it.out.verdict, "created");
    assert_int_equal(p->it.out.status, 201);
    assert_non_null(p->it.out.body);
    assert_q(p->it.out.body, "SELECT transactions.tx_json_original(t)::text FROM transactions.transactions t "
                             "WHERE id = '%s'", p->id);
    free(p->it.out.body);
    p->it.out.body = NULL;
}

static void test_batch_posts_deposits_and_withdrawals_in_one_transaction(void **state) {
    balance(U("0a"), "10.00");
    balance(U("0b"), "5.00");
    balance(U("0c"), "0.00");
    struct post p[3];
    post_init(&p[0], U("0a"), "k1", TX_DEPOSIT, "1.25", "salary");
    post_init(&p[1], U("0b"), "k1", TX_WITHDRAWAL, "2.50", NULL);
    post_init(&p[2], U("0c"), "k2", TX_DEPOSIT, "0.10", "q\"uote \\ {a,b} Ünïcødé ✓");
    struct tx_repo_err err;
    assert_int_equal(run_batch(p, 3, &err), SVC_OK);
    for (int i = 0; i < 3; i++) assert_created_as_stored(&p[i]);
    assert_q("11.25", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0a"));
    assert_q("2.50", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0b"));
    assert_q("0.10", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0c"));
    /* the legs: deposits credit the user, withdrawals debit them; the other side is external */
    assert_q("deposit 00000000-0000-0000-0000-000000000000 " U("0a"),
             "SELECT type || ' ' || debit_account || ' ' || credit_account FROM transactions.transactions WHERE id = '%s'",
             p[0].id);
    assert_q("withdrawal " U("0b") " 00000000-0000-0000-0000-000000000000",
             "SELECT type || ' ' || debit_account || ' ' || credit_account FROM transactions.transactions WHERE id = '%s'",
             p[1].id);
    /* one statement, one commit */
    assert_q("1", "SELECT count(DISTINCT xmin::text) FROM transactions.transactions");
    assert_q("0", "SELECT count(*) FROM (SELECT transaction_id FROM transactions.entries GROUP BY 1 "
                  "HAVING sum(amount) <> 0) x");
}

static void test_batch_leaves_what_it_cannot_post_and_the_function_decides(void **state) {
    balance(U("0a"), "1.00");
    balance(U("0e"), "3.00");
    balance(U("0f"), "0.00");
    struct post used;
    post_init(&used, U("0e"), "used-key", TX_DEPOSIT, "0.50", NULL);
    struct tx_repo_err err;
    assert_int_equal(run_batch(&used, 1, &err), SVC_OK);
    assert_created_as_stored(&used);

    struct post p[4];
    post_init(&p[0], U("0a"), "w1", TX_WITHDRAWAL, "5.00", NULL);         /* not enough */
    post_init(&p[1], U("0d"), "d1", TX_DEPOSIT, "2.00", NULL);            /* no balance row yet */
    post_init(&p[2], U("0e"), "used-key", TX_DEPOSIT, "0.50", NULL);      /* key used: a replay */
    post_init(&p[3], U("0f"), "d2", TX_DEPOSIT, "0.75", NULL);            /* fine */
    assert_int_equal(run_batch(p, 4, &err), SVC_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(p[i].it.st, SVC_NOT_FOUND);
        assert_null(p[i].it.out.body);
    }
    assert_created_as_stored(&p[3]);
    assert_q("1.00", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0a"));
    assert_q("3.50", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0e"));

    /* what the batch left, the posting function decides */
    struct tx_posting out;
    assert_int_equal(tx_repo_post_alone(g_c, p[0].id, U("0a"), "w1", HASH_A, &p[0].rq, TTL_S, &out, &err),
                     SVC_UNPROCESSABLE);
    assert_string_equal(err.rule, "insufficient_funds");
    assert_int_equal(tx_repo_post_alone(g_c, p[1].id, U("0d"), "d1", HASH_A, &p[1].rq, TTL_S, &out, &err), SVC_OK);
    assert_string_equal(out.verdict, "created");
    free(out.body);
    assert_q("2.00", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0d"));
    assert_int_equal(tx_repo_post_alone(g_c, p[2].id, U("0e"), "used-key", HASH_A, &p[2].rq, TTL_S, &out, &err),
                     SVC_OK);
    assert_string_equal(out.verdict, "replayed");
    assert_q(out.body, "SELECT transactions.tx_json_original(t)::text FROM transactions.transactions t WHERE id = '%s'",
             used.id);
    free(out.body);
    assert_q("3.50", "SELECT balance FROM transactions.balances WHERE user_id = '%s'", U("0e"));
}

static void test_batch_that_fails_is_rolled_back_whole_and_left_to_the_function(void **state) {
    balance(U("0a"), "1.00");
    balance(U("0b"), "1.00");
    struct post p[2];
    post_init(&p[0], U("0a"), "r1", TX_DEPOSIT, "1.00", NULL);
    post_init(&p[1], U("0b"), "r1", TX_DEPOSIT, "1.00", NULL);
    snprintf(p[1].id, sizeof p[1].id, "not-a-uuid");
    struct tx_repo_err err;
    assert_int_not_equal(run_batch(p, 2, &err), SVC_OK);
    assert_string_equal(err.sqlstate, "22P02");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p[i].it.st, SVC_NOT_FOUND);
        assert_null(p[i].it.out.body);
    }
    assert_q("0", "SELECT count(*) FROM transactions.transactions");
    assert_q("2.00", "SELECT sum(balance) FROM transactions.balances");
}

static void test_batch_that_times_out_answers_503_instead_of_posting_each_alone(void **state) {
    balance(U("0a"), "1.00");
    balance(U("0b"), "1.00");
    PGconn *holder = testdb_connect(&g_tdb);                 /* holds 0b's balance row */
    assert_non_null(holder);
    assert_int_equal(testdb_exec(holder, "BEGIN"), 0);
    assert_int_equal(testdb_exec(holder, "SELECT 1 FROM transactions.balances WHERE user_id = '" U("0b") "' FOR UPDATE"), 0);
    assert_int_equal(testdb_exec(g_c, "SET statement_timeout = 300"), 0);
    struct post p[2];
    post_init(&p[0], U("0a"), "t1", TX_DEPOSIT, "1.00", NULL);
    post_init(&p[1], U("0b"), "t1", TX_DEPOSIT, "1.00", NULL);
    struct tx_repo_err err;
    assert_int_equal(run_batch(p, 2, &err), SVC_TIMEOUT);
    assert_string_equal(err.sqlstate, "57014");
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p[i].it.st, SVC_TIMEOUT);
        assert_null(p[i].it.out.body);
    }
    assert_int_equal(testdb_exec(g_c, "RESET statement_timeout"), 0);
    assert_int_equal(testdb_exec(holder, "ROLLBACK"), 0);
    PQfinish(holder);
    assert_q("0", "SELECT count(*) FROM transactions.transactions");
    assert_q("2.00", "SELECT sum(balance) FROM transactions.balances");
}

static void test_batch_connection_plans_the_statement_once(void **state) {
    for (int i = 0; i < 8; i++) {
        char u[SVC_UUID_LEN + 1];
        snprintf(u, sizeof u, "00000000-0000-0000-0000-%012d", 100 + i);
        balance(u, "0.00");
    }
    for (int k = 0; k < 12; k++) {
        char u[8][SVC_UUID_LEN + 1];
        struct post p[8];
        int n = 2 + k % 7;
        for (int i = 0; i < n; i++) {
            snprintf(u[i], sizeof u[i], "00000000-0000-0000-0000-%012d", 100 + i);
            char key[32];
            snprintf(key, sizeof key, "plan-%d-%d", k, i);
            post_init(&p[i], u[i], key, TX_DEPOSIT, "0.01", NULL);
            p[i].it.user_id = u[i];
        }
        struct tx_repo_err err;
        svc_status st = run_batch(p, n, &err);
        if (st != SVC_OK) fail_msg("batch %d of %d: status %d, sqlstate %s", k, n, st, err.sqlstate);
        for (int i = 0; i < n; i++) assert_created_as_stored(&p[i]);
    }
    PGresult *r = PQexec(g_c, "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                              "WHERE name = 'tx_post_batch_v1'");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_true(atol(PQgetvalue(r, 0, 0)) >= 12);
    assert_string_equal(PQgetvalue(r, 0, 1), "0");
    PQclear(r);
}

/* Two sessions post to the same eight users, one in ascending and one in descending item order,
 * with their statements overlapping: the balance rows are locked in one order, so neither ever
 * waits for the other in a cycle (a deadlock would fail a batch with 40P01 after a second). */
struct crosser {
    PGconn *c;
    bool reverse;
    int failures;
    char sqlstate[6];
};

static void *crosser_main(void *arg) {
    struct crosser *x = arg;
    for (int k = 0; k < 40; k++) {
        struct post p[8];
        struct tx_batch_item *items[8];
        char u[8][SVC_UUID_LEN + 1];
        for (int i = 0; i < 8; i++) {
            int who = x->reverse ? 7 - i : i;
            snprintf(u[i], sizeof u[i], "00000000-0000-0000-0000-%012d", 200 + who);
            char key[48];
            snprintf(key, sizeof key, "x-%d-%d-%d", x->reverse, k, who);
            post_init(&p[i], u[i], key, TX_DEPOSIT, "0.01", NULL);
            p[i].it.user_id = u[i];
            items[i] = &p[i].it;
        }
        struct tx_repo_err err;
        svc_status st = tx_repo_post_batch(x->c, items, 8, TTL_S, &err);
        for (int i = 0; i < 8; i++) {
            if (st != SVC_OK || items[i]->st != SVC_OK) x->failures++;
            free(items[i]->out.body);
        }
        if (st != SVC_OK) snprintf(x->sqlstate, sizeof x->sqlstate, "%s", err.sqlstate);
    }
    return NULL;
}

static void test_batches_on_the_same_users_in_opposite_orders_never_deadlock(void **state) {
    for (int i = 0; i < 8; i++) {
        char u[SVC_UUID_LEN + 1];
        snprintf(u, sizeof u, "00000000-0000-0000-0000-%012d", 200 + i);
        balance(u, "0.00");
    }
    struct crosser x[2] = {{.c = testdb_connect(&g_tdb)}, {.c = testdb_connect(&g_tdb), .reverse = true}};
    for (int i = 0; i < 2; i++) {
        assert_non_null(x[i].c);
        assert_int_equal(tx_repo_prepare(x[i].c, NULL), 0);
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, crosser_main, &x[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        PQfinish(x[i].c);
        if (x[i].failures) fail_msg("session %d: %d postings failed (sqlstate %s)", i, x[i].failures, x[i].sqlstate);
    }
    assert_q("6.40", "SELECT sum(balance) FROM transactions.balances");   /* 2 × 40 × 8 × 0.01 */
    assert_q("640", "SELECT count(*) FROM transactions.transactions");
}

int main(void) {
    const struct CMUnitTest combiner[] = {
        cmocka_unit_test(test_pb_new_rejects_limits_out_of_range),
        cmocka_unit_test(test_pb_a_lone_caller_runs_a_batch_of_itself_at_once),
        cmocka_unit_test(test_pb_items_without_a_group_share_batches),
        cmocka_unit_test(test_pb_concurrent_callers_share_batches_within_the_limits),
        cmocka_unit_test(test_pb_leaders_run_at_once_up_to_their_number),
        cmocka_unit_test(test_pb_one_group_never_shares_a_batch_and_nobody_is_stranded),
    };
    const struct CMUnitTest database[] = {
        cmocka_unit_test_setup(test_batch_posts_deposits_and_withdrawals_in_one_transaction, db_reset),
        cmocka_unit_test_setup(test_batch_leaves_what_it_cannot_post_and_the_function_decides, db_reset),
        cmocka_unit_test_setup(test_batch_that_fails_is_rolled_back_whole_and_left_to_the_function, db_reset),
        cmocka_unit_test_setup(test_batch_that_times_out_answers_503_instead_of_posting_each_alone, db_reset),
        cmocka_unit_test_setup(test_batch_connection_plans_the_statement_once, db_reset),
        cmocka_unit_test_setup(test_batches_on_the_same_users_in_opposite_orders_never_deadlock, db_reset),
    };
    int failed = cmocka_run_group_tests_name("combiner", combiner, NULL, NULL);
    failed += cmocka_run_group_tests_name("database", database, db_setup, db_teardown);
    return failed ? 1 : 0;
}
