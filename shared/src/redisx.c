/* Redis connection pool on hiredis (see svc/redisx.h for the contract).
 *
 * Same shape as the PostgreSQL pool: a fixed slot table guarded by one mutex and a CLOCK_MONOTONIC
 * condition variable; connecting (TCP connect, AUTH, SELECT) and liveness checks happen after the
 * slot is claimed and the mutex released, so a Redis outage costs each caller at most one connect
 * timeout and never blocks other threads on the mutex.
 *
 * Decisions worth knowing:
 *  - Every new context gets redisSetTimeout(command_timeout): hiredis' connect timeout covers the
 *    connect only, and a context without a socket timeout would block forever on a hung server.
 *  - A context that timed out or saw an I/O error is dead (its reader state is undefined), so
 *    release frees any context with err set; the slot reconnects on a later acquire.
 *  - An idle pooled connection must have nothing to read (no pub/sub on pooled contexts), so on
 *    acquire a readable socket means the server closed it (restart, CLIENT KILL, idle timeout)
 *    and the context is replaced before the caller sees it. This makes a killed connection cost
 *    nothing instead of one failed command.
 *  - stats.timeouts counts both acquire waits that expired and commands that timed out: both
 *    mean "Redis (or the pool) is too slow" to the person reading /metrics. */
#include "svc/redisx.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct redis_slot {
    redisContext *ctx;  /* NULL until connected, or after being dropped as dead */
    bool in_use;
    bool ever_open;
};

struct svc_redis_pool {
    char *host;
    int port;
    char *password;
    int db;
    struct timeval connect_tv;
    struct timeval command_tv;
    int acquire_timeout_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct redis_slot *slots;
    int size;
    int open;
    int in_use;
    int waiting;
    unsigned long reconnects;
    unsigned long timeouts;
    char last_error[128];  /* why the last connect failed; never contains the password */
};

static struct timeval redis_tv(int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000L};
    return tv;
}

struct svc_redis_pool *svc_redis_pool_new(const struct svc_redis_config *cfg) {
    struct svc_redis_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->size = cfg->size >= 1 ? cfg->size : 1;
    p->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    p->port = cfg->port > 0 ? cfg->port : 6379;
    p->password = cfg->password && *cfg->password ? strdup(cfg->password) : NULL;
    p->db = cfg->db;
    p->connect_tv = redis_tv(cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 1000);
    p->command_tv = redis_tv(cfg->command_timeout_ms > 0 ? cfg->command_timeout_ms : 500);
    p->acquire_timeout_ms = cfg->acquire_timeout_ms >= 0 ? cfg->acquire_timeout_ms : 0;
    p->slots = calloc((size_t)p->size, sizeof(*p->slots));
    bool alloc_ok = p->host && p->slots && (!cfg->password || !*cfg->password || p->password);

    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    bool cv_ok = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&p->cv, &ca) == 0;
    if (ca_ok) pthread_condattr_destroy(&ca);
    bool mu_ok = pthread_mutex_init(&p->mu, NULL) == 0;
    if (!alloc_ok || !cv_ok || !mu_ok) {
        if (cv_ok) pthread_cond_destroy(&p->cv);
        if (mu_ok) pthread_mutex_destroy(&p->mu);
        free(p->host);
        free(p->password);
        free(p->slots);
        free(p);
        return NULL;
    }
    return p;
}

void svc_redis_pool_free(struct svc_redis_pool *p) {
    if (!p) return;
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].ctx) redisFree(p->slots[i].ctx);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->host);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->slots);
    free(p);
}

/* snprintf that may truncate on purpose (error texts for health reasons). */
__attribute__((format(printf, 3, 4)))
static void redis_errf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

/* Runs a setup command (AUTH/SELECT) and checks for a status reply. */
static bool redis_setup_cmd(redisContext *c, char *why, size_t whylen, const char *what,
                            const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        redis_errf(why, whylen, "%s: %s", what, c->errstr);
        return false;
    }
    bool ok = r->type == REDIS_REPLY_STATUS;
    if (!ok) {
        /* The server's error text names the problem (WRONGPASS ...) and never echoes the secret. */
        redis_errf(why, whylen, "%s: %s", what,
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return ok;
}

/* Opens a ready-to-use context. Called without the mutex. */
static redisContext *redis_connect(struct svc_redis_pool *p, char *why, size_t whylen) {
    redisContext *c = redisConnectWithTimeout(p->host, p->port, p->connect_tv);
    if (!c) {
        redis_errf(why, whylen, "out of memory");
        return NULL;
    }
    if (c->err) {
        redis_errf(why, whylen, "connect: %s", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, p->command_tv) != REDIS_OK) {
        redis_errf(why, whylen, "set timeout: %s", c->errstr[0] ? c->errstr : "failed");
        redisFree(c);
        return NULL;
    }
    if (p->password && !redis_setup_cmd(c, why, whylen, "AUTH", "AUTH %s", p->password)) {
        redisFree(c);
        return NULL;
    }
    if (p->db != 0 && !redis_setup_cmd(c, why, whylen, "SELECT", "SELECT %d", p->db)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* True when an idle context can be lent out: no error, nothing buffered, socket quiet. */
static bool redis_idle_alive(redisContext *c) {
    if (c->err || c->fd < 0) return false;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    if (r < 0) return errno == EINTR;
    return r == 0;
}

static struct timespec redis_deadline(int timeout_ms) {
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

/* Claims a free slot, preferring a connected one. Mutex held. */
static int redis_claim_slot(struct svc_redis_pool *p) {
    int pick = -1;
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].in_use) continue;
        if (p->slots[i].ctx) {
            pick = i;
            break;
        }
        if (pick < 0) pick = i;
    }
    if (pick >= 0) {
        p->slots[pick].in_use = true;
        p->in_use++;
    }
    return pick;
}

static void redis_unclaim_slot(struct svc_redis_pool *p, int i) {
    p->slots[i].in_use = false;
    p->in_use--;
    pthread_cond_signal(&p->cv);
}

redisContext *svc_redis_acquire(struct svc_redis_pool *p, int timeout_ms, svc_status *st) {
    svc_status dummy;
    if (!st) st = &dummy;
    if (timeout_ms < 0) timeout_ms = p->acquire_timeout_ms;
    struct timespec deadline = redis_deadline(timeout_ms);

    pthread_mutex_lock(&p->mu);
    int i;
    while ((i = redis_claim_slot(p)) < 0) {
        p->waiting++;
        int rc = timeout_ms > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline) : ETIMEDOUT;
        p->waiting--;
        if (rc == ETIMEDOUT && (i = redis_claim_slot(p)) < 0) {
            p->timeouts++;
            pthread_mutex_unlock(&p->mu);
            *st = SVC_TIMEOUT;
            return NULL;
        }
        if (i >= 0) break;
    }
    redisContext *c = p->slots[i].ctx;
    pthread_mutex_unlock(&p->mu);

    bool dropped = false;
    if (c && !redis_idle_alive(c)) {
        redisFree(c);
        c = NULL;
        dropped = true;
    }
    char why[sizeof(p->last_error)] = "";
    bool reopened = false;
    if (!c) {
        c = redis_connect(p, why, sizeof(why));
        reopened = c != NULL;
    }

    pthread_mutex_lock(&p->mu);
    if (dropped) p->open--;
    if (reopened) {
        p->open++;
        if (p->slots[i].ever_open) p->reconnects++;
        p->slots[i].ever_open = true;
    }
    p->slots[i].ctx = c;
    if (!c) {
        snprintf(p->last_error, sizeof(p->last_error), "%s", why);
        redis_unclaim_slot(p, i);
        pthread_mutex_unlock(&p->mu);
        *st = SVC_UNAVAILABLE;
        return NULL;
    }
    pthread_mutex_unlock(&p->mu);
    *st = SVC_OK;
    return c;
}

void svc_redis_release(struct svc_redis_pool *p, redisContext *c) {
    if (!p || !c) return;
    bool keep = c->err == 0;
    if (!keep) redisFree(c);

    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].ctx != c || !p->slots[i].in_use) continue;
        if (!keep) {
            p->slots[i].ctx = NULL;
            p->open--;
        }
        redis_unclaim_slot(p, i);
        break;
    }
    pthread_mutex_unlock(&p->mu);
}

/* Status for a failed command on context c; errno is the one saved right after the call. */
static svc_status redis_failure_status(const redisContext *c, int saved_errno) {
    if (c->err == REDIS_ERR_IO &&
        (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT))
        return SVC_TIMEOUT;
    return SVC_UNAVAILABLE;
}

static void redis_count_timeout(struct svc_redis_pool *p) {
    pthread_mutex_lock(&p->mu);
    p->timeouts++;
    pthread_mutex_unlock(&p->mu);
}

redisReply *svc_redis_command(struct svc_redis_pool *p, svc_status *st, const char *fmt, ...) {
    svc_status dummy;
    if (!st) st = &dummy;
    redisContext *c = svc_redis_acquire(p, -1, st);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    errno = 0;
    redisReply *r = redisvCommand(c, fmt, ap);
    int saved_errno = errno;
    va_end(ap);
    if (r) {
        *st = SVC_OK;
    } else {
        *st = redis_failure_status(c, saved_errno);
        if (*st == SVC_TIMEOUT) redis_count_timeout(p);
    }
    svc_redis_release(p, c);
    return r;
}

static double redis_elapsed_ms(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) * 1000.0 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

int svc_redis_ping(struct svc_redis_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen) {
    svc_status st;
    redisContext *c = svc_redis_acquire(p, timeout_ms, &st);
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
    errno = 0;
    redisReply *r = redisCommand(c, "PING");
    int saved_errno = errno;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int rc = 0;
    if (!r) {
        if (redis_failure_status(c, saved_errno) == SVC_TIMEOUT) {
            redis_count_timeout(p);
            snprintf(err, errlen, "timeout");
        } else {
            snprintf(err, errlen, "%s", c->errstr);
        }
        rc = -1;
    } else if (r->type != REDIS_REPLY_STATUS || !r->str || strcasecmp(r->str, "PONG") != 0) {
        snprintf(err, errlen, "unexpected reply: %s",
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "not PONG");
        rc = -1;
    } else if (latency_ms) {
        *latency_ms = redis_elapsed_ms(&t0, &t1);
    }
    if (r) freeReplyObject(r);
    svc_redis_release(p, c);
    return rc;
}

void svc_redis_stats(struct svc_redis_pool *p, struct svc_redis_stats *out) {
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->open = p->open;
    out->in_use = p->in_use;
    out->waiting = p->waiting;
    out->reconnects = p->reconnects;
    out->timeouts = p->timeouts;
    pthread_mutex_unlock(&p->mu);
}
