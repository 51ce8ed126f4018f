/* The few libpq helpers of sync-service's repositories (tenants_repo.c, erp_repo.c, …; the
 * older sync_repo.c keeps its own copies until it is moved over): one place maps a failed
 * statement to a domain status, runs a parameterised statement and copies values out.
 *
 * Error mapping: svc_pg_status's (svc/pg.h), the one mapping every service uses; callers that
 * expect a particular SQLSTATE look at it first with sql_state.
 *
 * Ownership: results handed out are the caller's (PQclear); copied strings are malloc'd (free).
 * The PGconn is borrowed. Nothing here logs. */
#ifndef SYNC_SQL_H
#define SYNC_SQL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "svc/status.h"

/* Status of a failed statement (r may be NULL). */
svc_status sql_status(PGconn *c, const PGresult *r);
/* The SQLSTATE of r, or "" (never NULL). */
const char *sql_state(const PGresult *r);
/* Runs sql with n text parameters; on a result of the expected kind returns SVC_OK with *out set
 * (caller PQclears), else the mapped status with *out NULL. *state (may be NULL) receives the
 * failed statement's SQLSTATE ("" when none), for callers that expect a particular one. */
svc_status sql_run(PGconn *c, const char *sql, int n, const char *const *v, PGresult **out, char state[6]);
/* Copy of a value (malloc'd; NULL when out of memory). */
char *sql_dup(const PGresult *r, int row, int col);
/* Value as long long (0 when NULL). */
long long sql_ll(const PGresult *r, int row, int col);
/* Single-row, single-column text answer; SVC_NOT_FOUND when no row or NULL. */
svc_status sql_one_text(PGconn *c, const char *sql, int n, const char *const *v, char **out);

#endif
