/* SQL of the events query and administration API (see events_read_repo.h). */
#include "events_read_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
#define DAY(p) "(" p "::timestamptz AT TIME ZONE 'UTC')::date"

static svc_status status_of(PGconn *c, const PGresult *r) {
    if (PQstatus(c) != CONNECTION_OK) return SVC_UNAVAILABLE;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && (!strcmp(state, "57014") || !strcmp(state, "55P03"))) return SVC_TIMEOUT;
    if (state && (!strncmp(state, "08", 2) || !strncmp(state, "57P", 3) || !strncmp(state, "53", 2)))
        return SVC_UNAVAILABLE;
    return SVC_INTERNAL;
}

static svc_status query(PGconn *c, const char *sql, int n, const char *const *p, ExecStatusType want, PGresult **out) {
    PGresult *r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
    if (r && PQresultStatus(r) == want) {
        if (out) *out = r;
        else PQclear(r);
        return SVC_OK;
    }
    svc_status st = status_of(c, r);
    PQclear(r);
    if (out) *out = NULL;
    return st;
}

const struct svc_list events_list_kind = {
    .kind = 'V', .timed = true, .id = SVC_CURSOR_UUID, .limit_default = 50, .limit_max = 500};
const struct svc_list events_dead_kind = {
    .kind = 'D', .timed = true, .id = SVC_CURSOR_INT, .limit_default = 50, .limit_max = 500};

/* Runs a page statement (rows of json, key time µs, key id, total) and renders it. */
static svc_status page(PGconn *c, const struct svc_list *l, const struct svc_page *pg, const char *sql, int n,
                       const char *const *p, char **json) {
    PGresult *r;
    *json = NULL;
    svc_status st = query(c, sql, n, p, PGRES_TUPLES_OK, &r);
    if (st != SVC_OK) return st;
    st = svc_page_render_pg(l, pg, r, json);
    PQclear(r);
    return st;
}

/* The total only when asked for: CASE evaluates the count's subquery only then; the page's rows
 * are LEFT JOINed to it so that an empty page still carries the total. */
#define TOTAL(flag, count_sql) "n AS (SELECT CASE WHEN " flag "::bool THEN (" count_sql ") END AS total)"

#define EVENTS_WHERE                                                                   \
    "($1::text IS NULL OR event_type = $1) AND ($2::text IS NULL OR user_id = $2)"     \
    " AND ($3::text IS NULL OR session_id = $3)"                                       \
    " AND ($4::timestamptz IS NULL OR (occurred_at >= $4 AND event_day >= " DAY("$4") "))" \
    " AND ($5::timestamptz IS NULL OR (occurred_at < $5 AND event_day <= " DAY("$5") "))"

static const char SQL_LIST[] =
    "WITH " TOTAL("$7", "SELECT count(*) FROM sync.events WHERE " EVENTS_WHERE) ","
    " p AS (SELECT * FROM sync.events WHERE " EVENTS_WHERE
    "       AND ($8::timestamptz IS NULL OR ((event_day, occurred_at, event_id) < (" DAY("$8") ", $8::timestamptz, $9::uuid)"
    "                                        AND event_day <= " DAY("$8") "))"
    "       ORDER BY event_day DESC, occurred_at DESC, event_id DESC LIMIT $6::bigint) "
    "SELECT CASE WHEN p.event_id IS NOT NULL THEN json_build_object('id', p.event_id, 'eventType', p.event_type,"
    "         'eventData', p.event_data, 'sessionId', p.session_id, 'userId', p.user_id,"
    "         'occurredAt', " TS("p.occurred_at") ", 'receivedAt', " TS("p.received_at") ")::text END,"
    "       (extract(epoch FROM p.occurred_at) * 1000000)::bigint, p.event_id::text, n.total"
    "  FROM n LEFT JOIN p ON true ORDER BY p.event_day DESC, p.occurred_at DESC, p.event_id DESC";

svc_status events_read_list(PGconn *c, const struct events_filter *f, const struct svc_page *pg, char **json) {
    struct svc_page_sql ps;
    svc_page_sql(pg, &ps);
    const char *p[9] = {f->type, f->user_id, f->session_id, f->from, f->to, ps.fetch, ps.total, ps.time, ps.id};
    return page(c, &events_list_kind, pg, SQL_LIST, 9, p, json);
}

#define DEAD_WHERE                                                                                      \
    "($1::text IS NULL OR event_type = $1) AND ($2::timestamptz IS NULL OR failed_at >= $2)"            \
    " AND ($3::timestamptz IS NULL OR failed_at < $3)"                                                  \
    " AND ($4 = 'all' OR ($4 = 'outstanding') = (replayed_at IS NULL))"

static const char SQL_DEAD[] =
    "WITH " TOTAL("$6", "SELECT count(*) FROM sync.event_dead_letters WHERE " DEAD_WHERE) ","
    " p AS (SELECT * FROM sync.event_dead_letters WHERE " DEAD_WHERE
    "       AND ($7::timestamptz IS NULL OR (failed_at, id) < ($7::timestamptz, $8::bigint))"
    "       ORDER BY failed_at DESC, id DESC LIMIT $5::bigint) "
    "SELECT CASE WHEN p.id IS NOT NULL THEN json_build_object('id', p.id, 'eventId', p.event_id,"
    "         'eventType', p.event_type, 'reason', p.reason, 'sqlstate', p.sqlstate, 'attempts', p.attempts,"
    "         'failedAt', " TS("p.failed_at") ", 'replayedAt', " TS("p.replayed_at") ","
    "         'event', json_build_object('id', p.event_id, 'eventType', p.event_type,"
    "           'eventData', sync.event_data_json(p.event_data), 'sessionId', p.session_id, 'userId', p.user_id,"
    "           'occurredAt', " TS("p.occurred_at") ", 'receivedAt', " TS("p.received_at") "))::text END,"
    "       (extract(epoch FROM p.failed_at) * 1000000)::bigint, p.id::text, n.total"
    "  FROM n LEFT JOIN p ON true ORDER BY p.failed_at DESC, p.id DESC";

svc_status events_read_dead(PGconn *c, const struct events_dead_filter *f, const struct svc_page *pg, char **json) {
    struct svc_page_sql ps;
    svc_page_sql(pg, &ps);
    const char *p[8] = {f->type, f->from, f->to, f->status, ps.fetch, ps.total, ps.time, ps.id};
    return page(c, &events_dead_kind, pg, SQL_DEAD, 8, p, json);
}

svc_status events_read_dead_count(PGconn *c, long long dead[], long long *total) {
    PGresult *r;
    svc_status st = query(c,
                          "SELECT event_type, count(*) FROM sync.event_dead_letters WHERE replayed_at IS NULL "
                          "GROUP BY event_type",
                          0, NULL, PGRES_TUPLES_OK, &r);
    if (st != SVC_OK) return st;
    *total = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) dead[t] = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        long long n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
        int t = events_type_index(PQgetvalue(r, i, 0));
        if (t >= 0) dead[t] += n;
        *total += n;
    }
    PQclear(r);
    return SVC_OK;
}

static const char SQL_REPLAY[] =
    "UPDATE sync.event_dead_letters d SET replayed_at = now() "
    "WHERE d.id IN (SELECT id FROM sync.event_dead_letters"
    "  WHERE replayed_at IS NULL"
    "  AND CASE WHEN $1::uuid[] IS NOT NULL THEN event_id = ANY($1::uuid[])"
    "      ELSE ($2::text IS NULL OR event_type = $2) AND ($3::timestamptz IS NULL OR failed_at >= $3)"
    "       AND ($4::timestamptz IS NULL OR failed_at < $4) END"
    "  ORDER BY id LIMIT $5 FOR UPDATE SKIP LOCKED) "
    "RETURNING d.event_id::text, d.entry";

svc_status events_read_replay_begin(PGconn *c, const char *ids_literal, const char *type, const char *from,
                                    const char *to, int limit, PGresult **out) {
    svc_status st = query(c, "BEGIN", 0, NULL, PGRES_COMMAND_OK, NULL);
    if (st != SVC_OK) return st;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    const char *p[5] = {ids_literal, type, from, to, lim};
    st = query(c, SQL_REPLAY, 5, p, PGRES_TUPLES_OK, out);
    if (st != SVC_OK) events_read_replay_end(c, false);
    return st;
}

svc_status events_read_replay_end(PGconn *c, bool commit) {
    return query(c, commit ? "COMMIT" : "ROLLBACK", 0, NULL, PGRES_COMMAND_OK, NULL);
}
