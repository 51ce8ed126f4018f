/* PostgreSQL connection pool (see svc/pg.h for the contract).
 *
 * The pool is a fixed table of slots. A slot is either free or lent to one thread; a free slot may
 * or may not hold an open PGconn. The mutex guards only the slot table and the counters: every
 * network round trip (connect, liveness check, ROLLBACK on release) happens after the slot has
 * been claimed and the mutex dropped, so one slow connect never stalls the other threads.
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
 *  - Waits use a CLOCK_MONOTONIC condition variable, immune to wall-clock jumps. */
#include "svc/pg.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pg_slot {
    PGconn *conn;      /* NULL until connected, or after being closed as broken */
    bool in_use;
    bool ever_open;    /* a later connect on this slot counts as a reconnect */
};

struct svc_pg_pool {
    char *conninfo;
    char *password;
    char *application_name;
    char statement_timeout_opt[64];
    char connect_timeout[16];
    int acquire_timeout_ms;
    svc_pg_on_connect on_connect;
    void *on_connect_arg;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct pg_slot *slots;
    int size;
    int open;
    int in_use;
    int waiting;
    unsigned long reconnects;
    unsigned long timeouts;
    char last_error[160];  /* why the last connect failed, for ping/health; no secrets */
};

static void pg_quiet_notice(void *arg, const char *message) { (void)arg; (void)message; }

static char *pg_strdup_or_null(const char *s) {
    if (!s || !*s) return NULL;
    return strdup(s);
}

struct svc_pg_pool *svc_pg_pool_new(const struct svc_pg_config *cfg) {
    struct svc_pg_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->size = cfg->size >= 1 ? cfg->size : 1;
    p->acquire_timeout_ms = cfg->acquire_timeout_ms >= 0 ? cfg->acquire_timeout_ms : 0;
    p->on_connect = cfg->on_connect;
    p->on_connect_arg = cfg->on_connect_arg;
    p->conninfo = strdup(cfg->conninfo ? cfg->conninfo : "");
    p->password = pg_strdup_or_null(cfg->password);
    p->application_name = pg_strdup_or_null(cfg->application_name);
    p->slots = calloc((size_t)p->size, sizeof(*p->slots));
    snprintf(p->statement_timeout_opt, sizeof(p->statement_timeout_opt), "-c statement_timeout=%d",
             cfg->statement_timeout_ms > 0 ? cfg->statement_timeout_ms : 0);
    snprintf(p->connect_timeout, sizeof(p->connect_timeout), "%d",
             cfg->connect_timeout_s > 0 ? cfg->connect_timeout_s : 5);
    bool alloc_ok = p->conninfo && p->slots && (!cfg->password || !*cfg->password || p->password) &&
                    (!cfg->application_name || !*cfg->application_name || p->application_name);

    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    bool cv_ok = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&p->cv, &ca) == 0;
    if (ca_ok) pthread_condattr_destroy(&ca);
    bool mu_ok = pthread_mutex_init(&p->mu, NULL) == 0;
    if (!alloc_ok || !cv_ok || !mu_ok) {
        if (cv_ok) pthread_cond_destroy(&p->cv);
        if (mu_ok) pthread_mutex_destroy(&p->mu);
        free(p->conninfo);
        free(p->password);
        free(p->application_name);
        free(p->slots);
        free(p);
        return NULL;
    }
    return p;
}

void svc_pg_pool_free(struct svc_pg_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].conn) PQfinish(p->slots[i].conn);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->conninfo);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->application_name);
    free(p->slots);
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

/* Opens a configured connection. Called without the mutex. On failure returns NULL and fills
 * why (connection errors from libpq never contain the password). */
static PGconn *pg_connect(struct svc_pg_pool *p, char *why, size_t whylen) {
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

/* True when an idle connection is still usable. Reads whatever the server sent while the
 * connection sat idle: an idle session gets nothing except when the backend is going away. */
static bool pg_idle_alive(PGconn *c) {
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

static struct timespec pg_deadline(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Claims a free slot, preferring one that already holds a connection. Mutex held. */
static int pg_claim_slot(struct svc_pg_pool *p) {
    int empty = -1;
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].in_use) continue;
        if (p->slots[i].conn) {
            empty = i;
            break;
        }
        if (empty < 0) empty = i;
    }
    if (empty >= 0) {
        p->slots[empty].in_use = true;
        p->in_use++;
    }
    return empty;
}

/* Gives a claimed slot back. Mutex held. */
static void pg_unclaim_slot(struct svc_pg_pool *p, int i) {
    p->slots[i].in_use = false;
    p->in_use--;
    pthread_cond_signal(&p->cv);
}

PGconn *svc_pg_acquire(struct svc_pg_pool *p, int timeout_ms, svc_status *st) {
    svc_status dummy;
    if (!st) st = &dummy;
    if (timeout_ms < 0) timeout_ms = p->acquire_timeout_ms;
    struct timespec deadline = pg_deadline(timeout_ms);

    pthread_mutex_lock(&p->mu);
    int i;
    while ((i = pg_claim_slot(p)) < 0) {
        p->waiting++;
        int rc = timeout_ms > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline) : ETIMEDOUT;
        p->waiting--;
        if (rc == ETIMEDOUT && (i = pg_claim_slot(p)) < 0) {
            p->timeouts++;
            pthread_mutex_unlock(&p->mu);
            *st = SVC_TIMEOUT;
            return NULL;
        }
        if (i >= 0) break;
    }
    PGconn *c = p->slots[i].conn;
    pthread_mutex_unlock(&p->mu);

    /* The slot is ours: check or (re)open the connection without holding the mutex. */
    bool dropped = false;
    if (c && !pg_idle_alive(c)) {
        PQfinish(c);
        c = NULL;
        dropped = true;
    }
    char why[sizeof(p->last_error)] = "";
    bool reopened = false;
    if (!c) {
        c = pg_connect(p, why, sizeof(why));
        reopened = c != NULL;
    }

    pthread_mutex_lock(&p->mu);
    if (dropped) p->open--;
    if (reopened) {
        p->open++;
        if (p->slots[i].ever_open) p->reconnects++;
        p->slots[i].ever_open = true;
    }
    p->slots[i].conn = c;
    if (!c) {
        snprintf(p->last_error, sizeof(p->last_error), "%s", why);
        pg_unclaim_slot(p, i);
        pthread_mutex_unlock(&p->mu);
        *st = SVC_UNAVAILABLE;
        return NULL;
    }
    pthread_mutex_unlock(&p->mu);
    *st = SVC_OK;
    return c;
}

/* Brings a returned connection back to an idle state; false means it must be closed. */
static bool pg_make_idle(PGconn *c) {
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

void svc_pg_release(struct svc_pg_pool *p, PGconn *c) {
    if (!p || !c) return;
    bool keep = pg_make_idle(c);
    if (!keep) PQfinish(c);

    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].conn != c || !p->slots[i].in_use) continue;
        if (!keep) {
            p->slots[i].conn = NULL;
            p->open--;
        }
        pg_unclaim_slot(p, i);
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

static double pg_elapsed_ms(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) * 1000.0 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

int svc_pg_ping(struct svc_pg_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen) {
    svc_status st;
    PGconn *c = svc_pg_acquire(p, timeout_ms, &st);
    if (!c) {
        if (st == SVC_TIMEOUT) {
            snprintf(err, errlen, "pool exhausted");
        } else {
            pthread_mutex_lock(&p->mu);
            snprintf(err, errlen, "cannot connect: %s", p->last_error);
            pthread_mutex_unlock(&p->mu);
        }
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    PGresult *r = PQexec(c, "SELECT 1");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = 0;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_first_line(err, errlen, r ? PQresultErrorMessage(r) : PQerrorMessage(c));
        rc = -1;
    } else if (latency_ms) {
        *latency_ms = pg_elapsed_ms(&t0, &t1);
    }
    PQclear(r);
    svc_pg_release(p, c);
    return rc;
}

void svc_pg_stats(struct svc_pg_pool *p, struct svc_pg_stats *out) {
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->open = p->open;
    out->in_use = p->in_use;
    out->waiting = p->waiting;
    out->reconnects = p->reconnects;
    out->timeouts = p->timeouts;
    pthread_mutex_unlock(&p->mu);
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
