/* A bounded, thread-safe PostgreSQL connection pool on libpq.
 *
 * Connections are opened lazily and reopened when found broken, so a service starts and keeps
 * running while PostgreSQL is away; callers see SVC_UNAVAILABLE instead. A connection is handed
 * to one thread at a time. When all are in use, svc_pg_acquire waits up to its timeout
 * (SVC_TIMEOUT after that). Every connection runs with statement_timeout set.
 *
 * Release checks the connection: a broken one is closed (reopened on next acquire) and one left
 * inside a transaction is rolled back, so a forgotten error path cannot poison the pool.
 *
 * Synchronisation: one mutex + condition variable guard the slot table and counters.
 * Ownership: the pool owns every PGconn; a caller borrows one between acquire and release and
 * must release it on every path. */
#ifndef SVC_PG_H
#define SVC_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include "svc/status.h"

struct svc_pg_pool;

/* Called after each (re)connect, e.g. to PQprepare statements. Return 0 on success; on failure
 * the connection is closed and acquire reports SVC_UNAVAILABLE. */
typedef int (*svc_pg_on_connect)(PGconn *conn, void *arg);

struct svc_pg_config {
    const char *conninfo;        /* libpq conninfo without password, e.g. "host=127.0.0.1 port=5432 dbname=app user=customers" */
    const char *password;        /* may be NULL */
    int size;                    /* max connections, >= 1 */
    int acquire_timeout_ms;      /* default wait for a free connection */
    int statement_timeout_ms;    /* applied to every session */
    int connect_timeout_s;       /* libpq connect_timeout */
    const char *application_name;
    svc_pg_on_connect on_connect; /* may be NULL */
    void *on_connect_arg;
};

/* reconnects: connections opened to replace a broken one; timeouts: acquires that gave up waiting. */
struct svc_pg_stats { int size; int open; int in_use; int waiting; unsigned long reconnects; unsigned long timeouts; };

/* Never connects; returns NULL only on allocation failure. Copies what it needs from cfg.
 * Pooled connections drop libpq notices (the default processor would write to stderr). */
struct svc_pg_pool *svc_pg_pool_new(const struct svc_pg_config *cfg);
/* Closes every connection; call only once all borrowed connections are released. */
void svc_pg_pool_free(struct svc_pg_pool *p);

/* Borrow a healthy connection. timeout_ms < 0 uses the configured default.
 * On failure returns NULL and sets *st to SVC_TIMEOUT (pool exhausted) or SVC_UNAVAILABLE
 * (cannot connect). */
PGconn *svc_pg_acquire(struct svc_pg_pool *p, int timeout_ms, svc_status *st);
/* c must come from this pool (NULL is ignored). Session state other than an open transaction
 * (SET, prepared statements, temp tables) stays with the connection: use SET LOCAL. */
void svc_pg_release(struct svc_pg_pool *p, PGconn *c);

/* Round trip "SELECT 1" on a pooled connection. Returns 0 and sets *latency_ms, or -1 with a short
 * reason (no secrets) in err. */
int svc_pg_ping(struct svc_pg_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen);
void svc_pg_stats(struct svc_pg_pool *p, struct svc_pg_stats *out);

/* ---- What a failed statement means: the ONE mapping from libpq failures to statuses ----
 *
 * Every repository hands its failed PGresult (or NULL) to svc_pg_status, and every use case
 * answers SVC_UNAVAILABLE / SVC_TIMEOUT with svc_pg_result, so the same database trouble gives
 * the same answer in every service:
 *   SVC_UNAVAILABLE  the connection is gone (PQstatus not OK, or no SQLSTATE and no connection),
 *                    class 08 (connection exception), 57P01/57P02/57P03/57P04 (administrator or
 *                    crash shutdown, cannot connect now, database dropped), class 53 (out of
 *                    connections, memory or disk), 25006 (read-only: a standby after failover)
 *   SVC_TIMEOUT      57014 (statement timeout or cancel), 55P03 (lock timeout), 25P03 (idle in
 *                    transaction timeout)
 *   SVC_CONFLICT     23505 unique violation, 23P01 exclusion violation, 40001 serialization
 *                    failure, 40P01 deadlock (a concurrent change won; retrying may succeed)
 *   SVC_INVALID      class 22 (data exception: a malformed value) and the rest of class 23
 *                    (not null, foreign key, check)
 *   SVC_INTERNAL     anything else (a bug: logged by the caller with err->sqlstate)
 * Both unavailable and timeout answer HTTP 503 with Retry-After: a 504 is what Nginx answers
 * when an instance does not answer at all, so a 503 always means "the service answered: its
 * database is in trouble, retry later". */
struct svc_pg_error {
    char sqlstate[6];        /* "" when the server sent none (connection lost, out of memory) */
    char constraint[64];     /* the constraint an integrity violation names, else "" */
};

/* Status of a statement that did not succeed on c; res may be NULL (PQexec* returned none).
 * Does not PQclear res. err may be NULL; when given it is always filled. */
svc_status svc_pg_status(const PGconn *c, const PGresult *res, struct svc_pg_error *err);

/* The answer every service gives for a database call that failed with st:
 *   SVC_UNAVAILABLE  503 database_unavailable "the database is unavailable; retry later"
 *   SVC_TIMEOUT      503 database_timeout "the database did not answer in time; retry later"
 *   anything else    500 internal_error "internal error" (log it before: it is a bug)
 * with Retry-After: 1 on the 503s. A pool that has no free connection within its acquire
 * timeout (svc_pg_acquire's SVC_TIMEOUT) is a timeout too. */
struct svc_result svc_pg_result(svc_status st);

/* Build a conninfo string from parts into out; values are quoted per libpq rules. Returns 0 or -1 if
 * it does not fit. */
int svc_pg_conninfo(char *out, size_t n, const char *host, int port, const char *db, const char *user);

#endif
