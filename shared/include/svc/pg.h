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

/* Build a conninfo string from parts into out; values are quoted per libpq rules. Returns 0 or -1 if
 * it does not fit. */
int svc_pg_conninfo(char *out, size_t n, const char *host, int port, const char *db, const char *user);

#endif
