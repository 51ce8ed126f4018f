/* A throwaway PostgreSQL database for unit tests that run a service's SQL for real.
 *
 * Needs TEST_PG_CONNINFO (a superuser conninfo without password) and TEST_PG_PASSWORD (its
 * password, may be empty); their absence is an error, not a skip. testdb_create makes DATABASE
 * <tag>_<pid>, creates in it the extensions db/bootstrap.sql creates, then SCHEMA <schema>, and
 * applies db/<schema>/NNN_*.sql in name order, as the service's migration runner would (run the
 * test from the repository root). testdb_drop removes it again.
 *
 * Header-only (static functions) because each unit test is one translation unit. Ownership: the
 * struct owns t->db; connections from testdb_connect belong to the caller (PQfinish). */
#ifndef TESTDB_H
#define TESTDB_H

#include <dirent.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct testdb {
    const char *admin_conninfo;     /* TEST_PG_CONNINFO */
    const char *password;           /* NULL when empty */
    char name[64];                  /* the database */
    char conninfo[1024];            /* admin_conninfo + dbname=name */
    PGconn *db;                     /* superuser session in the test database */
};

static void testdb_quiet(void *arg, const char *message) {}

static PGconn *testdb_connect_to(const struct testdb *t, const char *conninfo) {
    const char *keys[] = {"dbname", "password", NULL};
    const char *vals[] = {conninfo, t->password, NULL};
    if (!t->password) keys[1] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c || PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "testdb: connect failed: %s\n", c ? PQerrorMessage(c) : "out of memory");
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, testdb_quiet, NULL);
    return c;
}

/* A new session in the test database (caller PQfinish()es it), or NULL. */
static PGconn *testdb_connect(const struct testdb *t) { return testdb_connect_to(t, t->conninfo); }

/* Runs sql; 0 when it succeeded, else -1 with the error on stderr. */
static int testdb_exec(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
    if (rc) fprintf(stderr, "testdb: %.80s: %s\n", sql, PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

static int testdb_cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static char *testdb_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *sql = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long len = ftell(f);
        if (len >= 0 && fseek(f, 0, SEEK_SET) == 0 && (sql = calloc(1, (size_t)len + 1)) &&
            fread(sql, 1, (size_t)len, f) != (size_t)len) {
            free(sql);
            sql = NULL;
        }
    }
    fclose(f);
    return sql;
}

static int testdb_migrate(PGconn *c, const char *schema) {
    char dir[128], sql[160];
    snprintf(dir, sizeof dir, "db/%s", schema);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "testdb: run from the repository root (%s)\n", dir);
        return -1;
    }
    char *names[64];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 64) {
        size_t len = strlen(e->d_name);
        if (len > 4 && !strcmp(e->d_name + len - 4, ".sql") && (names[n] = strdup(e->d_name))) n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], testdb_cmp_names);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", schema);
    int rc = testdb_exec(c, sql);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *text = testdb_slurp(path);
        if (!text || (rc == 0 && testdb_exec(c, text) != 0)) rc = -1;
        free(text);
        free(names[i]);
    }
    return rc;
}

/* The extensions db/bootstrap.sql creates (its `CREATE EXTENSION` lines, one statement a line),
 * created in c as bootstrap does before any service migrates: 0 or -1. */
static int testdb_extensions(PGconn *c) {
    char *text = testdb_slurp("db/bootstrap.sql");
    if (!text) {
        fprintf(stderr, "testdb: cannot read db/bootstrap.sql (run from the repository root)\n");
        return -1;
    }
    int rc = 0;
    for (char *line = strtok(text, "\n"); line && rc == 0; line = strtok(NULL, "\n"))
        if (!strncmp(line, "CREATE EXTENSION ", 17)) rc = testdb_exec(c, line);
    free(text);
    return rc;
}

/* Creates and migrates the database; 0 or -1 (reason on stderr). */
static int testdb_create(struct testdb *t, const char *tag, const char *schema) {
    memset(t, 0, sizeof *t);
    t->admin_conninfo = getenv("TEST_PG_CONNINFO");
    t->password = getenv("TEST_PG_PASSWORD");
    if (!t->admin_conninfo || !*t->admin_conninfo || !t->password) {
        fprintf(stderr, "testdb: TEST_PG_CONNINFO and TEST_PG_PASSWORD must be set (a PostgreSQL superuser "
                        "conninfo without password, and its password or an empty string)\n");
        return -1;
    }
    if (!*t->password) t->password = NULL;
    PGconn *admin = testdb_connect_to(t, t->admin_conninfo);
    if (!admin) return -1;
    snprintf(t->name, sizeof t->name, "%s_%d", tag, (int)getpid());
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", t->name);
    int rc = testdb_exec(admin, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", t->name);
    if (rc == 0) rc = testdb_exec(admin, sql);
    PQfinish(admin);
    if (rc) return -1;
    /* a later keyword wins in a conninfo string, so appending dbname switches the database */
    snprintf(t->conninfo, sizeof t->conninfo, "%s dbname=%s", t->admin_conninfo, t->name);
    t->db = testdb_connect(t);
    return t->db && testdb_extensions(t->db) == 0 && testdb_migrate(t->db, schema) == 0 ? 0 : -1;
}

#ifdef cmocka_unit_test /* with cmocka.h included before this header */
/* The first column of the first row of a query (printf-style) on c, as a new string ("" for
 * NULL); fails the running test when the query fails or returns no row. */
static char *testdb_q(PGconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *testdb_q(PGconn *c, const char *fmt, ...) {
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(r));
        PQclear(r);
        fail_msg("query %s: %s", sql, msg);
    }
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

/* Fails the running test unless the query's first value is expected. */
#define testdb_assert_q(c, expected, ...)             \
    do {                                              \
        char *v_ = testdb_q((c), __VA_ARGS__);        \
        assert_string_equal(v_, expected);            \
        free(v_);                                     \
    } while (0)
#endif

/* Closes t->db and drops the database (even with sessions left open); 0 or -1. */
static int testdb_drop(struct testdb *t) {
    PQfinish(t->db);
    t->db = NULL;
    if (!t->name[0]) return 0;
    PGconn *admin = testdb_connect_to(t, t->admin_conninfo);
    if (!admin) return -1;
    char sql[160];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->name);
    int rc = testdb_exec(admin, sql);
    PQfinish(admin);
    return rc;
}

#endif
