/* Specification of the migration runner (svc/migrate.h), run against a real PostgreSQL.
 *
 * Needs TEST_PG_CONNINFO (superuser conninfo without password) and TEST_PG_PASSWORD (may be
 * empty); their absence is a failure, not a skip. Each test gets a fresh schema mt_<pid>_<n> and
 * a temporary migrations directory; both are removed in its teardown. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/migrate.h"

static const char *g_conninfo;
static const char *g_password;
static int g_seq;

struct fixture {
    PGconn *conn;
    char schema[64];
    char qschema[80];  /* quoted identifier for SQL written by the test */
    char dir[64];
};

static int group_setup(void **state) {
    g_conninfo = getenv("TEST_PG_CONNINFO");
    g_password = getenv("TEST_PG_PASSWORD");
    if (!g_conninfo || !*g_conninfo || !g_password) {
        print_error("test_migrate: TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set (a PostgreSQL "
                    "superuser conninfo without password, and its password or an empty string)\n");
        return -1;
    }
    if (!*g_password) g_password = NULL;
    return 0;
}

/* A connection like the pool's: with a short statement_timeout in the startup packet. */
static PGconn *connect_db(void) {
    const char *keys[] = {"dbname", "options", "password", NULL};
    const char *vals[] = {g_conninfo, "-c statement_timeout=1234 -c client_min_messages=warning", g_password, NULL};
    if (!g_password) keys[2] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        print_error("connect: %s", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    return c;
}

static void exec_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s: %s", sql, msg);
    }
    PQclear(r);
}

/* First column of the first row of sql, with %s in sql replaced by the quoted schema. */
static char *value(struct fixture *f, const char *sql_fmt) {
    char sql[512];
    const char *at = strstr(sql_fmt, "%s");
    if (at)
        snprintf(sql, sizeof(sql), "%.*s%s%s", (int)(at - sql_fmt), sql_fmt, f->qschema, at + 2);
    else
        snprintf(sql, sizeof(sql), "%s", sql_fmt);
    PGresult *r = PQexec(f->conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("%s: %s", sql, msg);
    }
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_value(struct fixture *f, const char *sql_fmt, const char *expected) {
    char *v = value(f, sql_fmt);
    assert_string_equal(v, expected);
    free(v);
}

static void write_file(struct fixture *f, const char *name, const char *content) {
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(content, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int setup_named(void **state, const char *prefix) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    f->conn = connect_db();
    if (!f->conn) {
        free(f);
        return -1;
    }
    snprintf(f->schema, sizeof(f->schema), "%s%d_%d", prefix, (int)getpid(), ++g_seq);
    char *q = PQescapeIdentifier(f->conn, f->schema, strlen(f->schema));
    snprintf(f->qschema, sizeof(f->qschema), "%s", q);
    PQfreemem(q);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_migrate_XXXXXX");
    if (!mkdtemp(f->dir)) {
        PQfinish(f->conn);
        free(f);
        return -1;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", f->qschema);
    PGresult *r = PQexec(f->conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    *state = f;
    return ok ? 0 : -1;
}

static int setup(void **state) { return setup_named(state, "mt_"); }
/* A schema name that only works when quoted (upper case and a space). */
static int setup_odd_name(void **state) { return setup_named(state, "Mt Odd "); }

static int teardown(void **state) {
    struct fixture *f = *state;
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", f->qschema);
    PQclear(PQexec(f->conn, sql));
    PQfinish(f->conn);
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') continue;
            char path[320];
            snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static int migrate(struct fixture *f, char *err, size_t errlen) {
    return svc_migrate(f->conn, f->schema, f->dir, err, errlen);
}

/* True when nobody holds the run's advisory lock (checked from a second session). */
static void assert_lock_free(struct fixture *f) {
    PGconn *other = connect_db();
    assert_non_null(other);
    const char *vals[1] = {f->schema};
    PGresult *r = PQexecParams(other, "SELECT pg_try_advisory_lock(hashtext('migrate:' || $1))", 1,
                               NULL, vals, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "t");
    PQclear(r);
    PQfinish(other);
}

static void test_migrate_applies_files_in_numeric_order_once(void **state) {
    struct fixture *f = *state;
    write_file(f, "010_third.sql", "INSERT INTO items VALUES (10, 'ten');");
    write_file(f, "002_second.sql", "INSERT INTO items VALUES (2, 'two');\n"
                                    "CREATE INDEX items_name ON items (name);");
    write_file(f, "001_first.sql", "CREATE TABLE items (id int PRIMARY KEY, name text);\n"
                                   "-- several statements in one file\n"
                                   "CREATE TABLE other (x int);");
    write_file(f, "README.md", "not a migration");
    write_file(f, "abc_nope.sql", "SELECT broken syntax here");
    write_file(f, "003.sql", "SELECT broken syntax here"); /* no _name part */

    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), 3);
    assert_string_equal(err, "");
    /* Objects landed in the schema (search_path), not in public. */
    assert_value(f, "SELECT string_agg(id::text, ',' ORDER BY id) FROM %s.items", "2,10");
    assert_value(f, "SELECT to_regclass('public.items') IS NULL", "t");
    assert_value(f, "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
                    "FROM %s.schema_migrations",
                 "1:001_first.sql,2:002_second.sql,10:010_third.sql");
    /* The recorded checksum is the SHA-256 of the file's bytes. */
    assert_value(f, "SELECT checksum = encode(sha256(convert_to('INSERT INTO items VALUES (10, ''ten'');', "
                    "'UTF8')), 'hex') FROM %s.schema_migrations WHERE version = 10", "t");
    /* The connection's own statement_timeout is back to what it was opened with. */
    assert_value(f, "SHOW statement_timeout", "1234ms");
    assert_value(f, "SHOW search_path", "\"$user\", public");
    assert_int_equal(PQtransactionStatus(f->conn), PQTRANS_IDLE);
    assert_lock_free(f);

    assert_int_equal(migrate(f, err, sizeof(err)), 0);
    write_file(f, "011_fourth.sql", "INSERT INTO items VALUES (11, 'eleven');");
    assert_int_equal(migrate(f, err, sizeof(err)), 1);
    assert_value(f, "SELECT count(*) FROM %s.schema_migrations", "4");
}

static void test_migrate_empty_dir_creates_only_the_bookkeeping_table(void **state) {
    struct fixture *f = *state;
    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), 0);
    assert_value(f, "SELECT count(*) FROM %s.schema_migrations", "0");
}

struct runner {
    const char *schema;
    const char *dir;
    int result;
    char err[256];
};

static void *runner_main(void *arg) {
    struct runner *r = arg;
    PGconn *c = connect_db();
    if (!c) {
        r->result = -100;
        return NULL;
    }
    r->result = svc_migrate(c, r->schema, r->dir, r->err, sizeof(r->err));
    PQfinish(c);
    return NULL;
}

static void test_migrate_concurrent_runs_apply_each_file_exactly_once(void **state) {
    struct fixture *f = *state;
    /* Not idempotent on purpose: a second application would fail (table exists / duplicate key). */
    write_file(f, "001_create.sql", "CREATE TABLE once (id int PRIMARY KEY);");
    write_file(f, "002_slow.sql", "SELECT pg_sleep(0.3); INSERT INTO once VALUES (1);");
    write_file(f, "003_more.sql", "INSERT INTO once VALUES (2);");

    struct runner rs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        rs[i] = (struct runner){.schema = f->schema, .dir = f->dir};
        assert_int_equal(pthread_create(&th[i], NULL, runner_main, &rs[i]), 0);
    }
    for (int i = 0; i < 3; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    int total = 0;
    for (int i = 0; i < 3; i++) {
        if (rs[i].result < 0) fail_msg("runner %d: %s", i, rs[i].err);
        total += rs[i].result;
    }
    assert_int_equal(total, 3);
    assert_value(f, "SELECT count(*) FROM %s.schema_migrations", "3");
    assert_value(f, "SELECT string_agg(id::text, ',' ORDER BY id) FROM %s.once", "1,2");
    assert_lock_free(f);
}

static void test_migrate_changed_checksum_is_an_error(void **state) {
    struct fixture *f = *state;
    write_file(f, "001_create.sql", "CREATE TABLE t (x int);");
    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), 1);

    write_file(f, "001_create.sql", "CREATE TABLE t (x int, y int);");
    write_file(f, "002_more.sql", "CREATE TABLE t2 (x int);");
    assert_int_equal(migrate(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "001_create.sql"));
    assert_non_null(strstr(err, "checksum"));
    /* Nothing moves forward while an applied file is edited. */
    assert_value(f, "SELECT to_regclass('%s.t2') IS NULL", "t");
    assert_value(f, "SELECT count(*) FROM %s.schema_migrations", "1");
    assert_lock_free(f);
}

static void test_migrate_failing_file_rolls_back_and_is_not_recorded(void **state) {
    struct fixture *f = *state;
    write_file(f, "001_ok.sql", "CREATE TABLE good (x int);");
    write_file(f, "002_bad.sql", "CREATE TABLE half (x int);\nSELECT 1/0;");
    write_file(f, "003_after.sql", "CREATE TABLE later (x int);");
    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "002_bad.sql"));
    assert_non_null(strstr(err, "division by zero"));
    assert_value(f, "SELECT to_regclass('%s.good') IS NOT NULL", "t");
    assert_value(f, "SELECT to_regclass('%s.half') IS NULL", "t");   /* rolled back */
    assert_value(f, "SELECT to_regclass('%s.later') IS NULL", "t");  /* stopped at the failure */
    assert_value(f, "SELECT string_agg(version::text, ',') FROM %s.schema_migrations", "1");
    assert_int_equal(PQtransactionStatus(f->conn), PQTRANS_IDLE);
    assert_value(f, "SHOW statement_timeout", "1234ms");
    assert_lock_free(f);

    /* Once fixed (the file was never recorded, so editing it is allowed), the run resumes. */
    write_file(f, "002_bad.sql", "CREATE TABLE half (x int);");
    assert_int_equal(migrate(f, err, sizeof(err)), 2);
}

static void test_migrate_long_file_is_not_cut_by_statement_timeout(void **state) {
    struct fixture *f = *state;
    /* The connection's 1234 ms request timeout does not apply to migrations. */
    write_file(f, "001_slow.sql", "SELECT pg_sleep(1.5);");
    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), 1);
    assert_value(f, "SHOW statement_timeout", "1234ms");
}

static void test_migrate_reports_bad_inputs(void **state) {
    struct fixture *f = *state;
    char err[256] = "";
    assert_int_equal(svc_migrate(f->conn, f->schema, "/nonexistent/migrations", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/migrations"));

    assert_int_equal(svc_migrate(f->conn, "mt_no_such_schema_x", f->dir, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "does not exist"));
    assert_int_equal(PQtransactionStatus(f->conn), PQTRANS_IDLE);

    write_file(f, "001_a.sql", "SELECT 1;");
    write_file(f, "01_b.sql", "SELECT 2;");
    assert_int_equal(migrate(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "duplicate migration version 1"));

    exec_ok(f->conn, "BEGIN");
    assert_int_equal(migrate(f, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not idle"));
    exec_ok(f->conn, "ROLLBACK");
}

static void test_migrate_quotes_the_schema_name(void **state) {
    struct fixture *f = *state;
    write_file(f, "001_create.sql", "CREATE TABLE quoted (x int);");
    char err[256] = "";
    assert_int_equal(migrate(f, err, sizeof(err)), 1);
    assert_value(f, "SELECT count(*) FROM %s.quoted", "0");
    assert_value(f, "SELECT count(*) FROM %s.schema_migrations", "1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_applies_files_in_numeric_order_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_empty_dir_creates_only_the_bookkeeping_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_concurrent_runs_apply_each_file_exactly_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_changed_checksum_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_failing_file_rolls_back_and_is_not_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_long_file_is_not_cut_by_statement_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_reports_bad_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_quotes_the_schema_name, setup_odd_name, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
