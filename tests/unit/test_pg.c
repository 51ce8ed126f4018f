/* Specification of the PostgreSQL pool (svc/pg.h), run against a real server.
 *
 * Needs TEST_PG_CONNINFO (superuser conninfo without password) and TEST_PG_PASSWORD (may be
 * empty); the test runner always provides them, so their absence is a failure, not a skip.
 * A separate "admin" connection plays the other actor: it terminates pooled backends and
 * inspects state the pooled connection cannot see. */
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

#include "svc/pg.h"

static const char *g_conninfo;
static const char *g_password;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int group_setup(void **state) {
    g_conninfo = getenv("TEST_PG_CONNINFO");
    g_password = getenv("TEST_PG_PASSWORD");
    if (!g_conninfo || !*g_conninfo || !g_password) {
        print_error("test_pg: TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set (a PostgreSQL "
                    "superuser conninfo without password, and its password or an empty string)\n");
        return -1;
    }
    if (!*g_password) g_password = NULL;
    return 0;
}

static struct svc_pg_config base_config(int size) {
    struct svc_pg_config cfg = {
        .conninfo = g_conninfo,
        .password = g_password,
        .size = size,
        .acquire_timeout_ms = 2000,
        .statement_timeout_ms = 5000,
        .connect_timeout_s = 3,
        .application_name = "test_pg",
    };
    return cfg;
}

static PGconn *admin_connect(void) {
    const char *keys[] = {"dbname", "password", NULL};
    const char *vals[] = {g_conninfo, g_password, NULL};
    if (!g_password) keys[1] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    assert_non_null(c);
    if (PQstatus(c) != CONNECTION_OK) fail_msg("admin connect: %s", PQerrorMessage(c));
    return c;
}

/* Runs sql and returns the first column of the first row as a new string (caller frees). */
static char *query_value(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("query %s: %s", sql, msg);
    }
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_select_one_works(PGconn *c) {
    char *v = query_value(c, "SELECT 1");
    assert_string_equal(v, "1");
    free(v);
}

static void terminate_backend(int pid) {
    PGconn *admin = admin_connect();
    char sql[128];
    /* The timeout makes pg_terminate_backend wait until the backend has really exited. */
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d, 5000)", pid);
    char *v = query_value(admin, sql);
    assert_string_equal(v, "t");
    free(v);
    PQfinish(admin);
}

static void test_pg_acquire_release_reuses_one_connection(void **state) {
    struct svc_pg_config cfg = base_config(2);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    assert_non_null(p);
    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.size, 2);
    assert_int_equal(s.open, 0); /* lazy: nothing opened yet */

    svc_status st = SVC_INTERNAL;
    PGconn *c1 = svc_pg_acquire(p, -1, &st);
    assert_non_null(c1);
    assert_int_equal(st, SVC_OK);
    assert_select_one_works(c1);
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.in_use, 1);
    int pid = PQbackendPID(c1);
    svc_pg_release(p, c1);

    PGconn *c2 = svc_pg_acquire(p, -1, &st);
    assert_ptr_equal(c2, c1);
    assert_int_equal(PQbackendPID(c2), pid);
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.in_use, 1);
    assert_int_equal(s.reconnects, 0);
    svc_pg_release(p, c2);
    svc_pg_stats(p, &s);
    assert_int_equal(s.in_use, 0);
    svc_pg_pool_free(p);
}

static void test_pg_session_settings_are_applied(void **state) {
    struct svc_pg_config cfg = base_config(1);
    cfg.statement_timeout_ms = 1234;
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    char *v = query_value(c, "SHOW statement_timeout");
    assert_string_equal(v, "1234ms");
    free(v);
    v = query_value(c, "SHOW application_name");
    assert_string_equal(v, "test_pg");
    free(v);
    /* RESET goes back to the startup value, so a careless RESET ALL keeps the timeout. */
    PQclear(PQexec(c, "RESET ALL"));
    v = query_value(c, "SHOW statement_timeout");
    assert_string_equal(v, "1234ms");
    free(v);
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_exhausted_pool_times_out_within_bound(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);

    double t0 = now_ms();
    PGconn *none = svc_pg_acquire(p, 200, &st);
    double waited = now_ms() - t0;
    assert_null(none);
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(waited >= 190.0);
    assert_true(waited < 700.0);

    t0 = now_ms();
    none = svc_pg_acquire(p, 0, &st); /* zero: do not wait at all */
    assert_null(none);
    assert_int_equal(st, SVC_TIMEOUT);
    assert_true(now_ms() - t0 < 50.0);

    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.timeouts, 2);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.in_use, 1);
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

struct waiter {
    struct svc_pg_pool *pool;
    PGconn *got;
    svc_status st;
    double waited_ms;
};

static void *waiter_main(void *arg) {
    struct waiter *w = arg;
    double t0 = now_ms();
    w->got = svc_pg_acquire(w->pool, 5000, &w->st);
    w->waited_ms = now_ms() - t0;
    return NULL;
}

static void test_pg_waiter_is_woken_when_another_thread_releases(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);

    struct waiter w = {.pool = p};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    struct svc_pg_stats s;
    for (int i = 0; i < 200; i++) {
        svc_pg_stats(p, &s);
        if (s.waiting == 1) break;
        usleep(5000);
    }
    int waiting_seen = s.waiting;
    usleep(100000);
    svc_pg_release(p, c);
    assert_int_equal(pthread_join(th, NULL), 0); /* joined before any assert can jump away */
    assert_int_equal(waiting_seen, 1);

    assert_int_equal(w.st, SVC_OK);
    assert_ptr_equal(w.got, c);
    assert_true(w.waited_ms >= 90.0);
    assert_true(w.waited_ms < 1500.0); /* woken by the release, not by its 5 s timeout */
    svc_pg_release(p, w.got);
    svc_pg_stats(p, &s);
    assert_int_equal(s.waiting, 0);
    assert_int_equal(s.timeouts, 0);
    svc_pg_pool_free(p);
}

static void test_pg_backend_killed_while_idle_is_replaced_on_acquire(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    int pid = PQbackendPID(c);
    svc_pg_release(p, c);

    terminate_backend(pid);

    c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    assert_int_equal(st, SVC_OK);
    assert_int_not_equal(PQbackendPID(c), pid);
    assert_select_one_works(c);
    svc_pg_release(p, c);
    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.reconnects, 1);
    assert_int_equal(s.open, 1);
    svc_pg_pool_free(p);
}

static void test_pg_backend_killed_while_in_use_is_closed_on_release(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    int pid = PQbackendPID(c);

    terminate_backend(pid);
    PGresult *r = PQexec(c, "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    assert_int_equal(PQstatus(c), CONNECTION_BAD);
    svc_pg_release(p, c);

    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);

    c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    assert_select_one_works(c);
    svc_pg_release(p, c);
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.reconnects, 1);
    svc_pg_pool_free(p);
}

static void test_pg_release_rolls_back_an_open_transaction(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    char table[64], sql[160];
    snprintf(table, sizeof(table), "public.pg_release_rb_%d", (int)getpid());

    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    PQclear(PQexec(c, "BEGIN"));
    snprintf(sql, sizeof(sql), "CREATE TABLE %s (x int)", table);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_INTRANS);
    svc_pg_release(p, c); /* forgotten COMMIT/ROLLBACK */

    PGconn *c2 = svc_pg_acquire(p, -1, &st);
    assert_ptr_equal(c2, c); /* kept, not closed */
    assert_int_equal(PQtransactionStatus(c2), PQTRANS_IDLE);
    snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NULL", table);
    char *v = query_value(c2, sql);
    assert_string_equal(v, "t");
    free(v);

    /* An aborted transaction is rolled back too. */
    PQclear(PQexec(c2, "BEGIN"));
    PQclear(PQexec(c2, "SELECT 1/0"));
    assert_int_equal(PQtransactionStatus(c2), PQTRANS_INERROR);
    svc_pg_release(p, c2);
    c = svc_pg_acquire(p, -1, &st);
    assert_ptr_equal(c, c2);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);
    assert_select_one_works(c);
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_statement_timeout_cancels_a_long_query(void **state) {
    struct svc_pg_config cfg = base_config(1);
    cfg.statement_timeout_ms = 200;
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    double t0 = now_ms();
    PGresult *r = PQexec(c, "SELECT pg_sleep(5)");
    double took = now_ms() - t0;
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014"); /* query_canceled */
    PQclear(r);
    assert_true(took >= 150.0);
    assert_true(took < 2000.0);
    svc_pg_release(p, c);
    c = svc_pg_acquire(p, -1, &st);
    assert_select_one_works(c);
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_unreachable_server_is_unavailable(void **state) {
    struct svc_pg_config cfg = base_config(1);
    cfg.conninfo = "host=127.0.0.1 port=1 dbname=platform user=nobody";
    cfg.password = "s3cret-not-logged";
    cfg.connect_timeout_s = 2;
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st = SVC_OK;
    double t0 = now_ms();
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_null(c);
    assert_int_equal(st, SVC_UNAVAILABLE);
    assert_true(now_ms() - t0 < 2500.0);

    char err[256] = "";
    double lat = -1;
    assert_int_equal(svc_pg_ping(p, 100, &lat, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot connect"));
    assert_null(strstr(err, "s3cret"));
    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);
    svc_pg_pool_free(p);
}

static void test_pg_ping_measures_select_one(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    char err[128] = "";
    double lat = -1;
    assert_int_equal(svc_pg_ping(p, 500, &lat, err, sizeof(err)), 0);
    assert_true(lat > 0.0);
    assert_true(lat < 1000.0);

    /* A busy pool reports exhaustion instead of hanging. */
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_int_equal(svc_pg_ping(p, 50, &lat, err, sizeof(err)), -1);
    assert_string_equal(err, "pool exhausted");
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static int count_connects(PGconn *conn, void *arg) {
    atomic_int *n = arg;
    PGresult *r = PQprepare(conn, "one", "SELECT $1::int + 1", 1, NULL);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    atomic_fetch_add(n, 1);
    return ok ? 0 : -1;
}

static int refuse_connect(PGconn *conn, void *arg) { return -1; }

static void test_pg_on_connect_runs_for_each_new_connection(void **state) {
    atomic_int connects = 0;
    struct svc_pg_config cfg = base_config(1);
    cfg.on_connect = count_connects;
    cfg.on_connect_arg = &connects;
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    const char *vals[1] = {"41"};
    PGresult *r = PQexecPrepared(c, "one", 1, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    int pid = PQbackendPID(c);
    svc_pg_release(p, c);
    terminate_backend(pid);
    c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    r = PQexecPrepared(c, "one", 1, vals, NULL, NULL, 0); /* prepared again on the new session */
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    svc_pg_release(p, c);
    assert_int_equal(atomic_load(&connects), 2);
    svc_pg_pool_free(p);

    cfg.on_connect = refuse_connect;
    p = svc_pg_pool_new(&cfg);
    c = svc_pg_acquire(p, -1, &st);
    assert_null(c);
    assert_int_equal(st, SVC_UNAVAILABLE);
    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.open, 0);
    assert_int_equal(s.in_use, 0);
    svc_pg_pool_free(p);
}

struct hammer {
    struct svc_pg_pool *pool;
    atomic_int *busy;
    atomic_int *max_busy;
    int failures;
};

static void *hammer_main(void *arg) {
    struct hammer *h = arg;
    for (int i = 0; i < 100; i++) {
        svc_status st;
        PGconn *c = svc_pg_acquire(h->pool, 5000, &st);
        if (!c) {
            h->failures++;
            continue;
        }
        int now = atomic_fetch_add(h->busy, 1) + 1;
        int prev = atomic_load(h->max_busy);
        while (now > prev && !atomic_compare_exchange_weak(h->max_busy, &prev, now)) {}
        PGresult *r = PQexec(c, "SELECT 1");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) h->failures++;
        PQclear(r);
        atomic_fetch_sub(h->busy, 1);
        svc_pg_release(h->pool, c);
    }
    return NULL;
}

static void test_pg_many_threads_never_exceed_pool_size(void **state) {
    struct svc_pg_config cfg = base_config(3);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    atomic_int busy = 0, max_busy = 0;
    struct hammer h[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        h[i] = (struct hammer){.pool = p, .busy = &busy, .max_busy = &max_busy};
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 8; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < 8; i++) assert_int_equal(h[i].failures, 0);
    assert_true(atomic_load(&max_busy) <= 3);
    assert_true(atomic_load(&max_busy) >= 2);
    struct svc_pg_stats s;
    svc_pg_stats(p, &s);
    assert_int_equal(s.in_use, 0);
    assert_int_equal(s.waiting, 0);
    assert_true(s.open >= 2 && s.open <= 3);
    assert_int_equal(s.timeouts, 0);
    svc_pg_pool_free(p);
}

static void test_pg_conninfo_quotes_every_value(void **state) {
    char out[256];
    assert_int_equal(svc_pg_conninfo(out, sizeof(out), "db host", 5432, "app'db", "u\\ser"), 0);
    assert_string_equal(out, "host='db host' port='5432' dbname='app\\'db' user='u\\\\ser'");

    /* libpq reads it back to the original values. */
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(out, &errmsg);
    assert_non_null(opts);
    int seen = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val) continue;
        if (!strcmp(o->keyword, "host")) { assert_string_equal(o->val, "db host"); seen++; }
        if (!strcmp(o->keyword, "port")) { assert_string_equal(o->val, "5432"); seen++; }
        if (!strcmp(o->keyword, "dbname")) { assert_string_equal(o->val, "app'db"); seen++; }
        if (!strcmp(o->keyword, "user")) { assert_string_equal(o->val, "u\\ser"); seen++; }
    }
    assert_int_equal(seen, 4);
    PQconninfoFree(opts);

    char small[20];
    assert_int_equal(svc_pg_conninfo(small, sizeof(small), "db host", 5432, "app", "user"), -1);
    assert_string_equal(small, "");
}

/* ---- svc_pg_status / svc_pg_result: the one mapping from failures to answers ---- */

/* Runs sql on c expecting a failure; returns its status (and fills e). */
static svc_status failed_status(PGconn *c, const char *sql, struct svc_pg_error *e) {
    PGresult *r = PQexec(c, sql);
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_not_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    svc_status st = svc_pg_status(c, r, e);
    PQclear(r);
    return st;
}

static void exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

static void test_pg_status_statement_and_lock_timeouts_are_timeouts(void **state) {
    struct svc_pg_config cfg = base_config(1);
    cfg.statement_timeout_ms = 100;
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    struct svc_pg_error e;
    assert_int_equal(failed_status(c, "SELECT pg_sleep(2)", &e), SVC_TIMEOUT);
    assert_string_equal(e.sqlstate, "57014");

    /* a lock held by another session, waited for under lock_timeout */
    PGconn *admin = admin_connect();
    exec_ok(admin, "SELECT pg_advisory_lock(7, 4242)");
    exec_ok(c, "SET lock_timeout = 50");
    assert_int_equal(failed_status(c, "SELECT pg_advisory_lock(7, 4242)", &e), SVC_TIMEOUT);
    assert_string_equal(e.sqlstate, "55P03");
    PQfinish(admin);
    exec_ok(c, "RESET lock_timeout");
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_status_connection_lost_during_a_query_is_unavailable(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    assert_non_null(c);
    assert_int_equal(PQsendQuery(c, "SELECT pg_sleep(5)"), 1);
    usleep(100 * 1000);               /* the query is running */
    terminate_backend(PQbackendPID(c));
    PGresult *r = PQgetResult(c), *extra;
    struct svc_pg_error e;
    assert_int_equal(svc_pg_status(c, r, &e), SVC_UNAVAILABLE);
    PQclear(r);
    while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
    /* the same when no result came back at all */
    assert_int_equal(svc_pg_status(c, NULL, &e), SVC_UNAVAILABLE);
    assert_string_equal(e.sqlstate, "");
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_status_unique_violation_is_a_conflict_naming_its_constraint(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    exec_ok(c, "CREATE TEMP TABLE pg_status_u (email text CONSTRAINT pg_status_u_email_key UNIQUE, n int CHECK (n > 0))");
    exec_ok(c, "INSERT INTO pg_status_u VALUES ('a@example.com', 1)");
    struct svc_pg_error e;
    assert_int_equal(failed_status(c, "INSERT INTO pg_status_u VALUES ('a@example.com', 2)", &e), SVC_CONFLICT);
    assert_string_equal(e.sqlstate, "23505");
    assert_string_equal(e.constraint, "pg_status_u_email_key");
    assert_int_equal(failed_status(c, "INSERT INTO pg_status_u VALUES ('b@example.com', 0)", &e), SVC_INVALID);
    assert_string_equal(e.sqlstate, "23514");
    exec_ok(c, "DISCARD TEMP");
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_status_bad_value_is_invalid_and_a_bug_is_internal(void **state) {
    struct svc_pg_config cfg = base_config(1);
    struct svc_pg_pool *p = svc_pg_pool_new(&cfg);
    svc_status st;
    PGconn *c = svc_pg_acquire(p, -1, &st);
    struct svc_pg_error e;
    assert_int_equal(failed_status(c, "SELECT 'not-a-uuid'::uuid", &e), SVC_INVALID);
    assert_string_equal(e.sqlstate, "22P02");
    assert_int_equal(failed_status(c, "SELEC 1", &e), SVC_INTERNAL);
    assert_string_equal(e.sqlstate, "42601");
    assert_int_equal(failed_status(c, "SELECT * FROM no_such_table_here", &e), SVC_INTERNAL);
    /* a read-only session (what a standby answers after a failover) cannot work: unavailable */
    exec_ok(c, "BEGIN READ ONLY");
    assert_int_equal(failed_status(c, "CREATE TEMP TABLE pg_status_ro (x int)", &e), SVC_UNAVAILABLE);
    assert_string_equal(e.sqlstate, "25006");
    exec_ok(c, "ROLLBACK");
    svc_pg_release(p, c);
    svc_pg_pool_free(p);
}

static void test_pg_result_answers_outages_and_timeouts_the_same_everywhere(void **state) {
    struct svc_result r = svc_pg_result(SVC_UNAVAILABLE);
    assert_int_equal(svc_status_http(r.st), 503);
    assert_string_equal(r.code, "database_unavailable");
    assert_string_equal(r.message, "the database is unavailable; retry later");
    assert_int_equal(r.retry_after_s, 1);
    r = svc_pg_result(SVC_TIMEOUT);
    assert_int_equal(svc_status_http(r.st), 503);
    assert_string_equal(r.code, "database_timeout");
    assert_string_equal(r.message, "the database did not answer in time; retry later");
    assert_int_equal(r.retry_after_s, 1);
    r = svc_pg_result(SVC_INTERNAL);
    assert_int_equal(svc_status_http(r.st), 500);
    assert_string_equal(r.code, "internal_error");
    assert_int_equal(r.retry_after_s, 0);
    r = svc_pg_result(SVC_CONFLICT);
    assert_int_equal(svc_status_http(r.st), 500);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_acquire_release_reuses_one_connection),
        cmocka_unit_test(test_pg_session_settings_are_applied),
        cmocka_unit_test(test_pg_exhausted_pool_times_out_within_bound),
        cmocka_unit_test(test_pg_waiter_is_woken_when_another_thread_releases),
        cmocka_unit_test(test_pg_backend_killed_while_idle_is_replaced_on_acquire),
        cmocka_unit_test(test_pg_backend_killed_while_in_use_is_closed_on_release),
        cmocka_unit_test(test_pg_release_rolls_back_an_open_transaction),
        cmocka_unit_test(test_pg_statement_timeout_cancels_a_long_query),
        cmocka_unit_test(test_pg_unreachable_server_is_unavailable),
        cmocka_unit_test(test_pg_ping_measures_select_one),
        cmocka_unit_test(test_pg_on_connect_runs_for_each_new_connection),
        cmocka_unit_test(test_pg_many_threads_never_exceed_pool_size),
        cmocka_unit_test(test_pg_conninfo_quotes_every_value),
        cmocka_unit_test(test_pg_status_statement_and_lock_timeouts_are_timeouts),
        cmocka_unit_test(test_pg_status_connection_lost_during_a_query_is_unavailable),
        cmocka_unit_test(test_pg_status_unique_violation_is_a_conflict_naming_its_constraint),
        cmocka_unit_test(test_pg_status_bad_value_is_invalid_and_a_bug_is_internal),
        cmocka_unit_test(test_pg_result_answers_outages_and_timeouts_the_same_everywhere),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
