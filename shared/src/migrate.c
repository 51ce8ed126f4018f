/* Schema migration runner (see svc/migrate.h for the contract).
 *
 * Flow: list dir (NNN_name.sql, sorted by number) → take a session advisory lock keyed on
 * hashtext('migrate:<schema>') → create <schema>.schema_migrations when missing → check the
 * checksum of every applied file → apply each pending file in its own transaction together with
 * its bookkeeping row → unlock. The lock is released on every path, including failures.
 *
 * Decisions worth knowing:
 *  - A file is sent with one PQexec, so it may hold several statements; it runs inside our
 *    BEGIN/COMMIT and must not contain transaction control of its own.
 *  - statement_timeout is lifted (SET LOCAL statement_timeout = 0) inside a migration and while
 *    waiting for the lock: pooled connections carry a short request timeout, and an index build or
 *    another instance's migration may legitimately take longer. The session value is RESET after
 *    the wait, back to what the connection was opened with.
 *  - All checksums are verified before anything is applied, so an edited, already-applied file
 *    stops the run before the schema moves further.
 *  - Files are read whole (at most 16 MiB) and hashed with SHA-256 via OpenSSL EVP; the checksum
 *    is the lowercase hex digest of the exact bytes. */
#include "svc/migrate.h"
#include "svc/crypto.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MIGRATE_MAX_FILE (16u * 1024u * 1024u)

struct migration {
    int version;
    char *name;           /* file name, e.g. "001_init.sql" */
    char *sql;            /* file content, NUL-terminated */
    char checksum[65];    /* sha256 hex */
    bool applied;
};

struct migration_list {
    struct migration *items;
    size_t n;
    size_t cap;
};

__attribute__((format(printf, 3, 4)))
static void migrate_err(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* First line of a libpq message (they end with a newline and may carry DETAIL lines). */
static const char *migrate_pq_line(const char *msg, char *buf, size_t n) {
    if (!msg || !*msg) msg = "unknown error";
    size_t len = strcspn(msg, "\n");
    if (len >= n) len = n - 1;
    memcpy(buf, msg, len);
    buf[len] = '\0';
    return buf;
}

static void migration_list_free(struct migration_list *l) {
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].name);
        free(l->items[i].sql);
    }
    free(l->items);
}

/* "NNN_something.sql" → NNN; -1 when the name does not match. */
static int migrate_parse_version(const char *name) {
    const char *s = name;
    long v = 0;
    int digits = 0;
    while (isdigit((unsigned char)*s)) {
        v = v * 10 + (*s - '0');
        if (v > 2147483647L) return -1;
        s++;
        digits++;
    }
    if (digits == 0 || *s != '_') return -1;
    size_t len = strlen(name);
    if (len < 5 || strcmp(name + len - 4, ".sql") != 0 || (size_t)(s - name) + 1 >= len - 4) return -1;
    return (int)v;
}

static int migrate_cmp(const void *a, const void *b) {
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static int migrate_sha256_hex(const char *data, size_t len, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, svc_sha256_md(), NULL) != 1 || mdlen != 32) return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xf];
    }
    out[64] = '\0';
    return 0;
}

/* Reads path into a NUL-terminated buffer. Rejects NUL bytes: libpq would cut the text there. */
static char *migrate_read(const char *path, size_t *len_out, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        migrate_err(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > MIGRATE_MAX_FILE) {
        migrate_err(err, errlen, "%s: not a regular file of at most 16 MiB", path);
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        migrate_err(err, errlen, "out of memory reading %s", path);
        fclose(f);
        return NULL;
    }
    size_t got = fread(buf, 1, size, f);
    bool bad = ferror(f) || got != size;
    fclose(f);
    if (bad) {
        migrate_err(err, errlen, "cannot read %s", path);
        free(buf);
        return NULL;
    }
    buf[size] = '\0';
    if (memchr(buf, '\0', size)) {
        migrate_err(err, errlen, "%s contains a NUL byte", path);
        free(buf);
        return NULL;
    }
    *len_out = size;
    return buf;
}

/* Loads every migration file of dir, sorted by version. */
static int migrate_load_dir(const char *dir, struct migration_list *l, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (!d) {
        migrate_err(err, errlen, "cannot open migrations dir %s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int v = migrate_parse_version(e->d_name);
        if (v < 0) continue;
        if (l->n == l->cap) {
            size_t ncap = l->cap ? l->cap * 2 : 16;
            struct migration *ni = realloc(l->items, ncap * sizeof(*ni));
            if (!ni) {
                migrate_err(err, errlen, "out of memory");
                rc = -1;
                break;
            }
            l->items = ni;
            l->cap = ncap;
        }
        struct migration *m = &l->items[l->n];
        memset(m, 0, sizeof(*m));
        m->version = v;
        m->name = strdup(e->d_name);
        char path[4096];
        int pn = snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (!m->name || pn < 0 || (size_t)pn >= sizeof(path)) {
            free(m->name);
            migrate_err(err, errlen, "cannot handle file name %s", e->d_name);
            rc = -1;
            break;
        }
        size_t len = 0;
        m->sql = migrate_read(path, &len, err, errlen);
        if (!m->sql) {
            free(m->name);
            rc = -1;
            break;
        }
        l->n++;
        if (migrate_sha256_hex(m->sql, len, m->checksum) != 0) {
            migrate_err(err, errlen, "sha256 failed for %s", m->name);
            rc = -1;
            break;
        }
    }
    closedir(d);
    if (rc != 0) return -1;
    if (l->n) qsort(l->items, l->n, sizeof(*l->items), migrate_cmp);
    for (size_t i = 1; i < l->n; i++) {
        if (l->items[i].version == l->items[i - 1].version) {
            migrate_err(err, errlen, "duplicate migration version %d (%s, %s)", l->items[i].version,
                        l->items[i - 1].name, l->items[i].name);
            return -1;
        }
    }
    return 0;
}

/* Runs one command that returns no rows (or rows that are ignored). */
static int migrate_exec(PGconn *conn, const char *sql, const char *what, char *err, size_t errlen) {
    PGresult *r = PQexec(conn, sql);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_EMPTY_QUERY) {
        char line[256];
        migrate_err(err, errlen, "%s: %s", what,
                    migrate_pq_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), line, sizeof(line)));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

static int migrate_exec_params(PGconn *conn, const char *sql, int n, const char *const *vals,
                               const char *what, PGresult **out, char *err, size_t errlen) {
    PGresult *r = PQexecParams(conn, sql, n, NULL, vals, NULL, NULL, 0);
    ExecStatusType s = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
        char line[256];
        migrate_err(err, errlen, "%s: %s", what,
                    migrate_pq_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), line, sizeof(line)));
        PQclear(r);
        return -1;
    }
    if (out) *out = r;
    else PQclear(r);
    return 0;
}

/* pre + quoted schema identifier + post, in a new buffer (caller frees); NULL when out of memory. */
static char *migrate_sql(const char *pre, const char *qschema, const char *post) {
    size_t a = strlen(pre), b = strlen(qschema), c = strlen(post);
    char *s = malloc(a + b + c + 1);
    if (!s) return NULL;
    memcpy(s, pre, a);
    memcpy(s + a, qschema, b);
    memcpy(s + a + b, post, c + 1);
    return s;
}

/* Creates the bookkeeping table if missing (we hold the lock, so no one races us) and marks
 * applied versions, failing on a checksum mismatch. */
static int migrate_check_applied(PGconn *conn, const char *schema, const char *qschema,
                                 struct migration_list *l, char *err, size_t errlen) {
    int rc = -1;
    PGresult *r = NULL;
    char *qualified = migrate_sql("", qschema, ".schema_migrations");
    char *create = migrate_sql("CREATE TABLE ", qschema, ".schema_migrations ("
                               "version int PRIMARY KEY, name text NOT NULL, "
                               "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())");
    char *select = migrate_sql("SELECT version, checksum FROM ", qschema, ".schema_migrations");
    if (!qualified || !create || !select) {
        migrate_err(err, errlen, "out of memory");
        goto out;
    }
    const char *sv[1] = {schema};
    if (migrate_exec_params(conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, sv,
                            "look up schema", &r, err, errlen) != 0)
        goto out;
    if (PQntuples(r) != 1) {
        migrate_err(err, errlen, "schema %s does not exist", schema);
        goto out;
    }
    PQclear(r);
    /* to_regclass instead of CREATE TABLE IF NOT EXISTS: no "already exists" notice each start. */
    const char *tv[1] = {qualified};
    if (migrate_exec_params(conn, "SELECT to_regclass($1) IS NOT NULL", 1, tv,
                            "look up schema_migrations", &r, err, errlen) != 0)
        goto out;
    bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    r = NULL;
    if (!exists && migrate_exec(conn, create, "create schema_migrations", err, errlen) != 0) goto out;
    if (migrate_exec_params(conn, select, 0, NULL, "read schema_migrations", &r, err, errlen) != 0)
        goto out;

    rc = 0;
    for (int row = 0; row < PQntuples(r) && rc == 0; row++) {
        long v = strtol(PQgetvalue(r, row, 0), NULL, 10);
        const char *sum = PQgetvalue(r, row, 1);
        for (size_t i = 0; i < l->n; i++) {
            if (l->items[i].version != v) continue;
            if (strcmp(l->items[i].checksum, sum) != 0) {
                migrate_err(err, errlen,
                            "migration %s was changed after being applied (checksum mismatch); "
                            "add a new migration instead", l->items[i].name);
                rc = -1;
            }
            l->items[i].applied = true;
            break;
        }
    }
out:
    PQclear(r);
    free(qualified);
    free(create);
    free(select);
    return rc;
}

/* Applies one file and records it, in one transaction. */
static int migrate_apply_one(PGconn *conn, const char *qschema, const struct migration *m,
                             char *err, size_t errlen) {
    char what[300];
    snprintf(what, sizeof(what), "migration %s", m->name);
    if (migrate_exec(conn, "BEGIN", what, err, errlen) != 0) return -1;

    char *setpath = migrate_sql("SET LOCAL search_path TO ", qschema, "");
    char *insert = migrate_sql("INSERT INTO ", qschema,
                               ".schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)");
    char version[16];
    snprintf(version, sizeof(version), "%d", m->version);
    const char *vals[3] = {version, m->name, m->checksum};
    int rc = -1;
    if (!setpath || !insert) {
        migrate_err(err, errlen, "out of memory");
    } else if (migrate_exec(conn, setpath, what, err, errlen) == 0 &&
               migrate_exec(conn, "SET LOCAL statement_timeout = 0", what, err, errlen) == 0 &&
               migrate_exec(conn, m->sql, what, err, errlen) == 0 &&
               migrate_exec_params(conn, insert, 3, vals, what, NULL, err, errlen) == 0 &&
               migrate_exec(conn, "COMMIT", what, err, errlen) == 0) {
        rc = 0;
    }
    free(setpath);
    free(insert);
    if (rc != 0 && PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *r = PQexec(conn, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

/* Releases the advisory lock; a transaction left open by a failure is rolled back first. */
static int migrate_unlock(PGconn *conn, const char *const *kv) {
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) {
        PGresult *rb = PQexec(conn, "ROLLBACK");
        PQclear(rb);
    }
    char ignored[256];
    PGresult *r = NULL;
    if (migrate_exec_params(conn, "SELECT pg_advisory_unlock(hashtext($1))", 1, kv,
                            "advisory unlock", &r, ignored, sizeof(ignored)) != 0)
        return -1;
    bool ok = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return ok ? 0 : -1;
}

/* Takes the session advisory lock, waiting as long as another instance migrates: the
 * connection's request timeout is lifted for the wait and restored (RESET) afterwards. */
static int migrate_lock(PGconn *conn, const char *const *kv, char *err, size_t errlen) {
    if (migrate_exec(conn, "SET statement_timeout = 0", "lift statement_timeout", err, errlen) != 0)
        return -1;
    bool locked = migrate_exec_params(conn, "SELECT pg_advisory_lock(hashtext($1))", 1, kv,
                                      "advisory lock", NULL, err, errlen) == 0;
    char reset_err[256];
    if (migrate_exec(conn, "RESET statement_timeout", "restore statement_timeout", reset_err,
                     sizeof(reset_err)) != 0) {
        if (locked) {
            migrate_err(err, errlen, "%s", reset_err);
            migrate_unlock(conn, kv);
        }
        return -1;
    }
    return locked ? 0 : -1;
}

int svc_migrate(PGconn *conn, const char *schema, const char *dir, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!conn || !schema || !*schema || !dir) {
        migrate_err(err, errlen, "svc_migrate: missing argument");
        return -1;
    }
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) {
        migrate_err(err, errlen, "svc_migrate: connection is not idle");
        return -1;
    }
    struct migration_list l = {0};
    if (migrate_load_dir(dir, &l, err, errlen) != 0) {
        migration_list_free(&l);
        return -1;
    }
    char *qschema = PQescapeIdentifier(conn, schema, strlen(schema));
    if (!qschema) {
        char line[256];
        migrate_err(err, errlen, "bad schema name: %s", migrate_pq_line(PQerrorMessage(conn), line, sizeof(line)));
        migration_list_free(&l);
        return -1;
    }
    size_t keylen = strlen(schema) + sizeof("migrate:");
    char *key = malloc(keylen);
    if (!key) {
        migrate_err(err, errlen, "out of memory");
        PQfreemem(qschema);
        migration_list_free(&l);
        return -1;
    }
    snprintf(key, keylen, "migrate:%s", schema);
    const char *kv[1] = {key};

    int applied = -1;
    if (migrate_lock(conn, kv, err, errlen) == 0) {
        applied = 0;
        if (migrate_check_applied(conn, schema, qschema, &l, err, errlen) != 0) {
            applied = -1;
        } else {
            for (size_t i = 0; i < l.n; i++) {
                if (l.items[i].applied) continue;
                if (migrate_apply_one(conn, qschema, &l.items[i], err, errlen) != 0) {
                    applied = -1;
                    break;
                }
                applied++;
            }
        }
        if (migrate_unlock(conn, kv) != 0 && applied >= 0) {
            migrate_err(err, errlen, "advisory unlock failed");
            applied = -1;
        }
    }
    free(key);
    PQfreemem(qschema);
    migration_list_free(&l);
    return applied;
}
