/* PostgreSQL connection pool (see svc/pg.h for the contract).
 *
 * The slot table, waiting and counters are the generic bounded pool (svc/slotpool.h); this file
 * supplies what is specific to libpq: how to open a configured connection, how to tell that an
 * idle one is still alive, and on release whether a connection can be lent again. The pool runs
 * every network round trip (connect, liveness check) with its mutex dropped, and the ROLLBACK on
 * release happens before the pool is entered, so one slow connect never stalls the other threads.
 *
 * Decisions worth knowing:
 *  - Session settings go in the startup packet (options='-c statement_timeout=N'), so they also
 *    survive PQreset and RESET ALL and cost no extra round trip.
 *  - The password is passed as its own PQconnectdbParams keyword; it never appears in a conninfo
 *    string or an error text we produce.
 *  - PQstatus only reports what libpq last saw, so a backend killed while the connection sat idle
 *    would look healthy. On acquire we poll the socket without waiting: an idle connection has
 *    nothing to say, so readable means EOF or a FATAL notice, and the connection is replaced.
 *  - libpq's default notice processor writes to stderr; services log JSON on stdout only, so pooled
 *    connections drop notices (the FATAL of a terminated backend arrives as one).
 *  - Failures are classified here by SQLSTATE class (PostgreSQL's appendix A), once for every
 *    service (svc_pg_status, svc_pg_result): the services used to have four mappers that
 *    disagreed (one never reported a lost connection or a timeout, answering 500). */
#include "svc/pg.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/slotpool.h"

/* Longest connect failure reason kept for ping (including the NUL). */
#define PG_WHY_MAX 160

struct svc_pg_pool {
    char *conninfo;
    char *password;
    char *application_name;
    char statement_timeout_opt[64];
    char connect_timeout[16];
    svc_pg_on_connect on_connect;
    void *on_connect_arg;
    struct svc_slotpool *slots;  /* owns every PGconn; ctx is this struct */
};

static void pg_quiet_notice(void *arg, const char *message) { (void)arg; (void)message; }

static char *pg_strdup_or_null(const char *s) {
    if (!s || !*s) return NULL;
    return strdup(s);
}

static void pg_free_settings(struct svc_pg_pool *p) {
    free(p->conninfo);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->application_name);
    free(p);
}

/* First line of a libpq message, without the trailing newline. */
static void pg_first_line(char *out, size_t n, const char *msg) {
    if (!n) return;
    if (!msg || !*msg) msg = "unknown error";
    size_t len = strcspn(msg, "\n");
    if (len >= n) len = n - 1;
    memcpy(out, msg, len);
    out[len] = '\0';
}

/* slotpool open: a configured connection, or NULL with why filled (connection errors from libpq
 * never contain the password). Runs without the pool mutex. */
static void *pg_connect(void *ctx, char *why, size_t whylen) {
    struct svc_pg_pool *p = ctx;
    if (whylen > PG_WHY_MAX) whylen = PG_WHY_MAX;
    const char *keys[8];
    const char *vals[8];
    int k = 0;
    keys[k] = "dbname";           vals[k++] = p->conninfo;  /* expanded as a conninfo string */
    keys[k] = "password";         vals[k++] = p->password;
    keys[k] = "connect_timeout";  vals[k++] = p->connect_timeout;
    keys[k] = "application_name"; vals[k++] = p->application_name;
    keys[k] = "options";          vals[k++] = p->statement_timeout_opt;
    keys[k] = "keepalives";       vals[k++] = "1";
    keys[k] = "keepalives_idle";  vals[k++] = "30";
    keys[k] = NULL;               vals[k] = NULL;
    /* A NULL value means "not given": skip it rather than end the list early. */
    const char *ck[8], *cv[8];
    int j = 0;
    for (int i = 0; i < k; i++) {
        if (!vals[i]) continue;
        ck[j] = keys[i];
        cv[j++] = vals[i];
    }
    ck[j] = NULL;
    cv[j] = NULL;

    PGconn *c = PQconnectdbParams(ck, cv, 1);
    if (!c) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        pg_first_line(why, whylen, PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, pg_quiet_notice, NULL);
    if (p->on_connect && p->on_connect(c, p->on_connect_arg) != 0) {
        snprintf(why, whylen, "connection setup callback failed");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* slotpool alive: true when an idle connection is still usable. Reads whatever the server sent
 * while the connection sat idle: an idle session gets nothing except when the backend is going
 * away. */
static bool pg_idle_alive(void *ctx, void *res) {
    PGconn *c = res;
    if (PQstatus(c) != CONNECTION_OK) return false;
    if (PQtransactionStatus(c) != PQTRANS_IDLE) return false;
    int fd = PQsocket(c);
    if (fd < 0) return false;
    for (int round = 0; round < 4; round++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, 0);
        if (r < 0) return errno == EINTR;
        if (r == 0) return true;
        if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) return false;
        /* Data (a NOTIFY, a parameter change or a FATAL before EOF): let libpq take it. */
        if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) return false;
        PGnotify *n;
        while ((n = PQnotifies(c)) != NULL) PQfreemem(n);
    }
    /* Still readable after several reads: something is streaming at us; do not trust it. */
    return false;
}

/* slotpool reset: brings a returned connection back to an idle state; false means it must be
 * closed. */
static bool pg_make_idle(void *ctx, void *res) {
    PGconn *c = res;
    if (PQstatus(c) != CONNECTION_OK) return false;
    switch (PQtransactionStatus(c)) {
    case PQTRANS_IDLE:
        return true;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR: {
        PGresult *r = PQexec(c, "ROLLBACK");
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        return ok && PQtransactionStatus(c) == PQTRANS_IDLE;
    }
    default: /* ACTIVE (results not drained) or UNKNOWN: cannot be reused safely */
        return false;
    }
}

static void pg_close(void *ctx, void *res) { PQfinish(res); }

static const struct svc_slotpool_ops pg_slot_ops = {.open = pg_connect, .alive = pg_idle_alive,
                                                     .reset = pg_make_idle, .close = pg_close};

struct svc_pg_pool *svc_pg_pool_new(const struct svc_pg_config *cfg) {
    struct svc_pg_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->on_connect = cfg->on_connect;
    p->on_connect_arg = cfg->on_connect_arg;
    p->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    p->password = pg_strdup_or_null(cfg->password);
    p->application_name = pg_strdup_or_null(cfg->application_name);
    snprintf(p->statement_timeout_opt, sizeof(p->statement_timeout_opt), "-c statement_timeout=%d",
             cfg->statement_timeout_ms > 0 ? cfg->statement_timeout_ms : 0);
    snprintf(p->connect_timeout, sizeof(p->connect_timeout), "%d",
             cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 5);
    bool alloc_ok = p->conninfo && (!cfg->password || !*cfg->password || p->password) &&
                    (!cfg->application_name || !*cfg->application_name || p->application_name);
    if (alloc_ok) p->slots = svc_slotpool_new(cfg->size, cfg->acquire_timeout_ms, &pg_slot_ops, p);
    if (p->slots) return p;
    pg_free_settings(p);
    return NULL;
}

void svc_pg_pool_free(struct svc_pg_pool *p) {
    if (!p) return;
    svc_slotpool_free(p->slots);
    pg_free_settings(p);
}

PGconn *svc_pg_acquire(struct svc_pg_pool *p, int timeout_ms, svc_status *st) {
    return svc_slotpool_acquire(p->slots, timeout_ms, st);
}

void svc_pg_release(struct svc_pg_pool *p, PGconn *c) {
    if (p) svc_slotpool_release(p->slots, c);
}

/* Ping probe: one "SELECT 1" round trip. */
static int pg_probe(void *ctx, void *res, char *err, size_t errlen) {
    PGconn *c = res;
    PGresult *r = PQexec(c, "SELECT 1");
    int rc = 0;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_first_line(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

int svc_pg_ping(struct svc_pg_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen) {
    return svc_slotpool_ping(p->slots, timeout_ms, pg_probe, latency_ms, err, errlen);
}

void svc_pg_stats(struct svc_pg_pool *p, struct svc_pg_stats *out) {
    struct svc_slotpool_stats s;
    svc_slotpool_stats(p->slots, &s);
    *out = (struct svc_pg_stats){.size = s.size, .open = s.open, .in_use = s.in_use,
                                 .waiting = s.waiting, .reconnects = s.reconnects,
                                 .timeouts = s.timeouts};
}

/* Appends key='value' with libpq quoting (backslash before ' and \). Returns 0 or -1 if full. */
static int pg_append_kv(char *out, size_t n, size_t *pos, const char *key, const char *val) {
    size_t w = *pos;
    int r = snprintf(out + w, n - w, "%s%s='", w ? " " : "", key);
    if (r < 0 || (size_t)r >= n - w) return -1;
    w += (size_t)r;
    for (const char *s = val; *s; s++) {
        if (*s == '\'' || *s == '\\') {
            if (w + 1 >= n) return -1;
            out[w++] = '\\';
        }
        if (w + 1 >= n) return -1;
        out[w++] = *s;
    }
    if (w + 2 > n) return -1;
    out[w++] = '\'';
    out[w] = '\0';
    *pos = w;
    return 0;
}

int svc_pg_conninfo(char *out, size_t n, const char *host, int port, const char *db, const char *user) {
    if (!out || n == 0) return -1;
    out[0] = '\0';
    size_t pos = 0;
    char portbuf[16];
    snprintf(portbuf, sizeof(portbuf), "%d", port);
    if ((host && *host && pg_append_kv(out, n, &pos, "host", host) != 0) ||
        (port > 0 && pg_append_kv(out, n, &pos, "port", portbuf) != 0) ||
        (db && *db && pg_append_kv(out, n, &pos, "dbname", db) != 0) ||
        (user && *user && pg_append_kv(out, n, &pos, "user", user) != 0)) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}

/* ---- failures ---- */

static bool pg_state_is(const char *state, const char *code) { return !strcmp(state, code); }
static bool pg_class_is(const char *state, const char *cls) { return !strncmp(state, cls, 2); }

svc_status svc_pg_status(const PGconn *c, const PGresult *res, struct svc_pg_error *err) {
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *cons = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
    if (err) {
        snprintf(err->sqlstate, sizeof err->sqlstate, "%s", state ? state : "");
        snprintf(err->constraint, sizeof err->constraint, "%s", cons ? cons : "");
    }
    if (!c || PQstatus(c) != CONNECTION_OK) return SVC_UNAVAILABLE;
    if (!state) return SVC_INTERNAL;   /* connected, no server error: out of memory or a client-side fault */
    if (pg_class_is(state, "08") || pg_class_is(state, "53") || pg_state_is(state, "57P01") ||
        pg_state_is(state, "57P02") || pg_state_is(state, "57P03") || pg_state_is(state, "57P04") ||
        pg_state_is(state, "25006"))
        return SVC_UNAVAILABLE;
    if (pg_state_is(state, "57014") || pg_state_is(state, "55P03") || pg_state_is(state, "25P03"))
        return SVC_TIMEOUT;
    if (pg_state_is(state, "23505") || pg_state_is(state, "23P01") || pg_state_is(state, "40001") ||
        pg_state_is(state, "40P01"))
        return SVC_CONFLICT;
    if (pg_class_is(state, "22") || pg_class_is(state, "23")) return SVC_INVALID;
    return SVC_INTERNAL;
}

struct svc_result svc_pg_result(svc_status st) {
    if (st == SVC_UNAVAILABLE) {
        struct svc_result r = SVC_RESULT_ERR(SVC_UNAVAILABLE, "database_unavailable",
                                             "the database is unavailable; retry later");
        r.retry_after_s = 1;
        return r;
    }
    if (st == SVC_TIMEOUT) {
        struct svc_result r = SVC_RESULT_ERR(SVC_TIMEOUT, "database_timeout",
                                             "the database did not answer in time; retry later");
        r.retry_after_s = 1;
        return r;
    }
    return SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "internal error");
}
