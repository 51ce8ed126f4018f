/* The events write path in SQL (see events_repo.h). */
#include "events_repo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/buf.h"
#include "svc/pg_array.h"

#define COPY_EVENTS "COPY sync.events (" EVENTS_COPY_COLUMNS ") FROM STDIN"
#define COPY_STAGE "COPY events_stage (" EVENTS_COPY_COLUMNS ") FROM STDIN"

/* Rows in $1 (uuid[]) need the cross-day check: lock their ids, in hash order. */
static const char SQL_LOCK[] =
    "SELECT count(pg_advisory_xact_lock(16, k)) FROM "
    "(SELECT DISTINCT hashtext(event_id::text) AS k FROM events_stage WHERE event_id = ANY($1::uuid[]) ORDER BY 1) l";

static const char SQL_INSERT[] =
    "INSERT INTO sync.events (" EVENTS_COPY_COLUMNS ") "
    "SELECT " EVENTS_COPY_COLUMNS " FROM events_stage s "
    "WHERE NOT (s.event_id = ANY($1::uuid[]) AND EXISTS ("
    "  SELECT 1 FROM sync.events e WHERE e.event_id = s.event_id"
    "  AND e.event_day BETWEEN s.event_day - 1 AND s.event_day + 1 AND e.event_day <> s.event_day)) "
    "ON CONFLICT DO NOTHING RETURNING event_type";

int events_repo_prepare(PGconn *c) {
    PGresult *r = PQexec(c, "CREATE TEMP TABLE IF NOT EXISTS events_stage (LIKE sync.events) ON COMMIT DELETE ROWS");
    int ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok ? 0 : -1;
}

static void set_err(struct events_write_error *err, enum events_outcome kind, const char *state, const char *msg) {
    err->kind = kind;
    snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state ? state : "");
    snprintf(err->message, sizeof err->message, "%s", msg && *msg ? msg : "unknown error");
    char *nl = strchr(err->message, '\n');
    if (nl) *nl = '\0';
}

enum events_outcome events_repo_classify(PGconn *c, const PGresult *r, struct events_write_error *err) {
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg) msg = PQerrorMessage(c);
    enum events_outcome kind = EVENTS_W_DATA;
    if (PQstatus(c) != CONNECTION_OK || !state) kind = EVENTS_W_TRANSIENT;
    else if (!strcmp(state, "23505")) kind = EVENTS_W_DUPLICATE;
    else if (!strcmp(state, "23514") && msg && strstr(msg, "no partition")) kind = EVENTS_W_NO_PARTITION;
    else if (!strncmp(state, "08", 2) || !strncmp(state, "53", 2) || !strncmp(state, "57", 2) ||
             !strncmp(state, "58", 2) || !strncmp(state, "42", 2) || !strcmp(state, "40001") ||
             !strcmp(state, "40P01") || !strcmp(state, "55P03") || !strcmp(state, "55006") ||
             !strcmp(state, "25P02"))
        kind = EVENTS_W_TRANSIENT;
    set_err(err, kind, state, msg);
    return kind;
}

/* Leaves no transaction open after a failure (the connection is pooled and reused). */
static void rollback(PGconn *c) {
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
}

static enum events_outcome exec_ok(PGconn *c, const char *sql, struct events_write_error *err) {
    PGresult *r = PQexec(c, sql);
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        return EVENTS_W_OK;
    }
    enum events_outcome o = events_repo_classify(c, r, err);
    PQclear(r);
    return o;
}

/* COPY sql FROM STDIN with the rows' lines. */
static enum events_outcome copy_rows(PGconn *c, const char *sql, const struct event_view *const *rows, size_t n,
                                     struct events_write_error *err) {
    PGresult *r = PQexec(c, sql);
    if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
        enum events_outcome o = events_repo_classify(c, r, err);
        PQclear(r);
        return o;
    }
    PQclear(r);
    int ok = 1;
    for (size_t i = 0; i < n && ok == 1; i++) ok = PQputCopyData(c, rows[i]->line, (int)rows[i]->line_len);
    if (PQputCopyEnd(c, ok == 1 ? NULL : "client error") != 1) ok = 0;
    enum events_outcome o = EVENTS_W_OK;
    r = PQgetResult(c);
    if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) o = events_repo_classify(c, r, err);
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL) PQclear(r);
    if (o == EVENTS_W_OK && ok != 1) {
        set_err(err, EVENTS_W_TRANSIENT, NULL, "sending COPY data failed");
        o = EVENTS_W_TRANSIENT;
    }
    return o;
}

enum events_outcome events_repo_write(PGconn *c, const struct event_view *const *rows, size_t n, bool careful,
                                      unsigned long written[EVENTS_NTYPES], struct events_write_error *err) {
    if (n == 0) return EVENTS_W_OK;
    if (!careful) {
        enum events_outcome o = copy_rows(c, COPY_EVENTS, rows, n, err);
        if (o == EVENTS_W_OK)
            for (size_t i = 0; i < n; i++) written[rows[i]->type]++;
        return o;
    }

    /* the ids that need the cross-day check, as a uuid[] literal */
    struct svc_buf ids;
    svc_buf_init(&ids);
    svc_pg_array_open(&ids);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!rows[i]->check) continue;
        svc_pg_array_text(&ids, rows[i]->id);
        any = true;
    }
    svc_pg_array_close(&ids);
    if (ids.oom) {
        svc_buf_free(&ids);
        set_err(err, EVENTS_W_TRANSIENT, NULL, "out of memory");
        return EVENTS_W_TRANSIENT;
    }
    const char *params[1] = {ids.data};

    enum events_outcome o = exec_ok(c, "BEGIN", err);
    if (o == EVENTS_W_OK) o = copy_rows(c, COPY_STAGE, rows, n, err);
    if (o == EVENTS_W_OK && any) {
        PGresult *r = PQexecParams(c, SQL_LOCK, 1, NULL, params, NULL, NULL, 0);
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) o = events_repo_classify(c, r, err);
        PQclear(r);
    }
    if (o == EVENTS_W_OK) {
        PGresult *r = PQexecParams(c, SQL_INSERT, 1, NULL, params, NULL, NULL, 0);
        if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
            o = events_repo_classify(c, r, err);
        } else {
            unsigned long w[EVENTS_NTYPES] = {0};
            for (int i = 0; i < PQntuples(r); i++) {
                int t = events_type_index(PQgetvalue(r, i, 0));
                if (t >= 0) w[t]++;
            }
            o = exec_ok(c, "COMMIT", err);
            if (o == EVENTS_W_OK)
                for (int t = 0; t < EVENTS_NTYPES; t++) written[t] += w[t];
        }
        PQclear(r);
    }
    svc_buf_free(&ids);
    if (o != EVENTS_W_OK) rollback(c);
    return o;
}

static const char SQL_DEAD[] =
    "INSERT INTO sync.event_dead_letters (event_id, event_type, user_id, session_id, event_data, occurred_at,"
    " received_at, entry, reason, sqlstate, attempts) "
    "VALUES ($1, $2, $3, $4, $5, coalesce(sync.try_timestamptz($6), to_timestamp($7::bigint / 1000.0)),"
    " to_timestamp($7::bigint / 1000.0), $8, $9, nullif($10, ''), $11::integer) "
    "ON CONFLICT (event_id) WHERE replayed_at IS NULL DO NOTHING";

enum events_outcome events_repo_dead(PGconn *c, const struct event_view *const *rows,
                                     const struct events_write_error *why, size_t n, int attempts,
                                     struct events_write_error *err) {
    enum events_outcome o = exec_ok(c, "BEGIN", err);
    struct svc_buf entry;
    svc_buf_init(&entry);
    for (size_t i = 0; i < n && o == EVENTS_W_OK; i++) {
        const struct event_view *v = rows[i];
        char *buf = malloc(v->line_len + EVENTS_COPY_NCOLS);
        const char *cols[EVENTS_COPY_NCOLS];
        if (!buf || !events_columns(v, buf, v->line_len + EVENTS_COPY_NCOLS, cols)) {
            /* cannot happen for entries this service encoded: keep the row with what is known */
            for (int k = 0; k < EVENTS_COPY_NCOLS; k++) cols[k] = "";
        }
        svc_buf_reset(&entry);
        svc_buf_printf(&entry, "1%c%" PRId64 "\t", v->check ? 'c' : 'n', v->received_ms);
        svc_buf_append(&entry, v->line, v->line_len);
        char received[24], att[16];
        snprintf(received, sizeof received, "%" PRId64, v->received_ms);
        snprintf(att, sizeof att, "%d", attempts);
        const char *p[11] = {v->id, events_type_names[v->type], cols[3], cols[4], cols[5], cols[6],
                             received, entry.data ? entry.data : "", why[i].message, why[i].sqlstate, att};
        PGresult *r = entry.oom ? NULL : PQexecParams(c, SQL_DEAD, 11, NULL, p, NULL, NULL, 0);
        if (!r || PQresultStatus(r) != PGRES_COMMAND_OK) {
            o = events_repo_classify(c, r, err);
            if (o != EVENTS_W_TRANSIENT) o = EVENTS_W_TRANSIENT;   /* never lose a dead letter: wait */
        }
        PQclear(r);
        free(buf);
    }
    svc_buf_free(&entry);
    if (o == EVENTS_W_OK) o = exec_ok(c, "COMMIT", err);
    if (o != EVENTS_W_OK) rollback(c);
    return o;
}

enum events_outcome events_repo_maintain(PGconn *c, long ahead_days, long retention_days, int *created, int *dropped,
                                         struct events_write_error *err) {
    char a[16], d[16];
    snprintf(a, sizeof a, "%ld", ahead_days);
    snprintf(d, sizeof d, "%ld", retention_days);
    const char *p[2] = {a, d};
    PGresult *r = PQexecParams(c, "SELECT created, dropped FROM sync.events_maintain($1::integer, $2::integer)", 2,
                               NULL, p, NULL, NULL, 0);
    enum events_outcome o = EVENTS_W_OK;
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *created = atoi(PQgetvalue(r, 0, 0));
        *dropped = atoi(PQgetvalue(r, 0, 1));
    } else {
        o = events_repo_classify(c, r, err);
    }
    PQclear(r);
    rollback(c);
    return o;
}
