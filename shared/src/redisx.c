/* Redis connection pool on hiredis (see svc/redisx.h for the contract).
 *
 * The slot table, waiting and counters are the generic bounded pool (svc/slotpool.h), shared with
 * the PostgreSQL pool; this file supplies what is specific to hiredis. Connecting (TCP connect,
 * AUTH, SELECT) and liveness checks run after the slot is claimed and the pool mutex released, so
 * a Redis outage costs each caller at most one connect timeout and never blocks other threads on
 * the mutex.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc/slotpool.h"

/* Longest connect failure reason kept for ping (including the NUL). */
#define REDIS_WHY_MAX 128

struct svc_redis_pool {
    char *host;
    int port;
    char *password;
    int db;
    struct timeval connect_tv;
    struct timeval command_tv;
    struct svc_slotpool *slots;  /* owns every redisContext; ctx is this struct */
};

static struct timeval redis_tv(int ms) {
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (long)(ms % 1000) * 1000L};
    return tv;
}

static void redis_free_settings(struct svc_redis_pool *p) {
    free(p->host);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
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

/* slotpool open: a ready-to-use context, or NULL with why filled. Runs without the pool mutex. */
static void *redis_connect(void *ctx, char *why, size_t whylen) {
    struct svc_redis_pool *p = ctx;
    if (whylen > REDIS_WHY_MAX) whylen = REDIS_WHY_MAX;
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

/* slotpool alive: an idle context can be lent out when it has no error, nothing buffered and a
 * quiet socket. */
static bool redis_idle_alive(void *ctx, void *res) {
    redisContext *c = res;
    if (c->err || c->fd < 0) return false;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int r = poll(&pfd, 1, 0);
    if (r < 0) return errno == EINTR;
    return r == 0;
}

/* slotpool reset: a context that saw an error is dead and must be closed. */
static bool redis_keep(void *ctx, void *res) { return ((redisContext *)res)->err == 0; }

static void redis_close(void *ctx, void *res) { redisFree(res); }

static const struct svc_slotpool_ops redis_slot_ops = {.open = redis_connect, .alive = redis_idle_alive,
                                                        .reset = redis_keep, .close = redis_close};

struct svc_redis_pool *svc_redis_pool_new(const struct svc_redis_config *cfg) {
    struct svc_redis_pool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->host = strdup(cfg->host ? cfg->host : "127.0.0.1");
    p->port = cfg->port > 0 ? cfg->port : 6379;
    p->password = cfg->password && *cfg->password ? strdup(cfg->password) : NULL;
    p->db = cfg->db;
    p->connect_tv = redis_tv(cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 1000);
    p->command_tv = redis_tv(cfg->command_timeout_ms > 0 ? cfg->command_timeout_ms : 500);
    bool alloc_ok = p->host && (!cfg->password || !*cfg->password || p->password);
    if (alloc_ok) p->slots = svc_slotpool_new(cfg->size, cfg->acquire_timeout_ms, &redis_slot_ops, p);
    if (p->slots) return p;
    redis_free_settings(p);
    return NULL;
}

void svc_redis_pool_free(struct svc_redis_pool *p) {
    if (!p) return;
    svc_slotpool_free(p->slots);
    redis_free_settings(p);
}

redisContext *svc_redis_acquire(struct svc_redis_pool *p, int timeout_ms, svc_status *st) {
    return svc_slotpool_acquire(p->slots, timeout_ms, st);
}

void svc_redis_release(struct svc_redis_pool *p, redisContext *c) {
    if (p) svc_slotpool_release(p->slots, c);
}

/* Status for a failed command on context c; errno is the one saved right after the call. */
static svc_status redis_failure_status(const redisContext *c, int saved_errno) {
    if (c->err == REDIS_ERR_IO &&
        (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT))
        return SVC_TIMEOUT;
    return SVC_UNAVAILABLE;
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
        if (*st == SVC_TIMEOUT) svc_slotpool_count_timeout(p->slots);
    }
    svc_redis_release(p, c);
    return r;
}

/* Ping probe: one PING round trip expecting PONG. */
static int redis_probe(void *ctx, void *res, char *err, size_t errlen) {
    struct svc_redis_pool *p = ctx;
    redisContext *c = res;
    errno = 0;
    redisReply *r = redisCommand(c, "PING");
    int saved_errno = errno;
    int rc = 0;
    if (!r) {
        if (redis_failure_status(c, saved_errno) == SVC_TIMEOUT) {
            svc_slotpool_count_timeout(p->slots);
            snprintf(err, errlen, "timeout");
        } else {
            snprintf(err, errlen, "%s", c->errstr);
        }
        rc = -1;
    } else if (r->type != REDIS_REPLY_STATUS || !r->str || strcasecmp(r->str, "PONG") != 0) {
        snprintf(err, errlen, "unexpected reply: %s",
                 r->type == REDIS_REPLY_ERROR && r->str ? r->str : "not PONG");
        rc = -1;
    }
    if (r) freeReplyObject(r);
    return rc;
}

int svc_redis_ping(struct svc_redis_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen) {
    return svc_slotpool_ping(p->slots, timeout_ms, redis_probe, latency_ms, err, errlen);
}

void svc_redis_stats(struct svc_redis_pool *p, struct svc_redis_stats *out) {
    struct svc_slotpool_stats s;
    svc_slotpool_stats(p->slots, &s);
    *out = (struct svc_redis_stats){.size = s.size, .open = s.open, .in_use = s.in_use,
                                    .waiting = s.waiting, .reconnects = s.reconnects,
                                    .timeouts = s.timeouts};
}
