/* libpq helpers of sync-service's repositories (see sync_sql.h). */
#include "sync_sql.h"

#include "svc/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sql_state(const PGresult *r) {
    const char *s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return s ? s : "";
}

svc_status sql_status(PGconn *c, const PGresult *r) { return svc_pg_status(c, r, NULL); }

svc_status sql_run(PGconn *c, const char *sql, int n, const char *const *v, PGresult **out, char state[6]) {
    PGresult *r = PQexecParams(c, sql, n, NULL, v, NULL, NULL, 0);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (state) state[0] = '\0';
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        *out = r;
        return SVC_OK;
    }
    if (state) snprintf(state, 6, "%s", sql_state(r));
    svc_status s = sql_status(c, r);
    PQclear(r);
    *out = NULL;
    return s;
}

char *sql_dup(const PGresult *r, int row, int col) {
    const char *v = PQgetvalue(r, row, col);
    size_t n = strlen(v);
    char *s = malloc(n + 1);
    if (s) memcpy(s, v, n + 1);
    return s;
}

long long sql_ll(const PGresult *r, int row, int col) {
    return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

svc_status sql_one_text(PGconn *c, const char *sql, int n, const char *const *v, char **out) {
    PGresult *r;
    svc_status s = sql_run(c, sql, n, v, &r, NULL);
    if (s != SVC_OK) return s;
    if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return SVC_NOT_FOUND;
    }
    *out = sql_dup(r, 0, 0);
    PQclear(r);
    return *out ? SVC_OK : SVC_INTERNAL;
}
