/* A bounded, thread-safe pool of hiredis connections with connect and command timeouts.
 *
 * hiredis contexts are not thread-safe, so each is used by one thread at a time. A context whose
 * err is set after use (I/O error, timeout — a timed-out context is dead) is dropped on release
 * and a new one is opened on a later acquire; command timeouts are applied to every new context
 * (redisReconnect would not keep them). So Redis going away makes calls fail fast with
 * SVC_UNAVAILABLE and service recovers by itself when Redis returns.
 *
 * Synchronisation: one mutex + condition variable guard the slot table and counters.
 * Ownership: the pool owns every redisContext; callers borrow between acquire and release.
 * Replies returned by svc_redis_command are owned by the caller (freeReplyObject). */
#ifndef SVC_REDISX_H
#define SVC_REDISX_H

#include <hiredis.h>
#include <stdbool.h>
#include "svc/status.h"

struct svc_redis_pool;

struct svc_redis_config {
    const char *host;
    int port;
    const char *password;       /* may be NULL */
    int db;
    int size;
    int connect_timeout_ms;
    int command_timeout_ms;
    int acquire_timeout_ms;
};

/* reconnects: contexts opened to replace a dropped one; timeouts: acquires that gave up waiting
 * plus commands (via svc_redis_command/ping) that hit command_timeout_ms. */
struct svc_redis_stats { int size; int open; int in_use; int waiting; unsigned long reconnects; unsigned long timeouts; };

/* Never connects; returns NULL only on allocation failure. Copies what it needs from cfg. */
struct svc_redis_pool *svc_redis_pool_new(const struct svc_redis_config *cfg);
/* Closes every context; call only once all borrowed contexts are released. */
void svc_redis_pool_free(struct svc_redis_pool *p);

/* Borrow a connected context; NULL with *st = SVC_TIMEOUT or SVC_UNAVAILABLE. */
redisContext *svc_redis_acquire(struct svc_redis_pool *p, int timeout_ms, svc_status *st);
/* Return it; a context with err set is closed. */
void svc_redis_release(struct svc_redis_pool *p, redisContext *c);

/* One command on a borrowed-and-returned context. Returns a reply (caller frees) or NULL with *st
 * set (SVC_TIMEOUT when the command timed out, SVC_UNAVAILABLE otherwise). A REDIS_REPLY_ERROR
 * reply is returned as is with *st = SVC_OK (the caller decides). */
redisReply *svc_redis_command(struct svc_redis_pool *p, svc_status *st, const char *fmt, ...);

int svc_redis_ping(struct svc_redis_pool *p, int timeout_ms, double *latency_ms, char *err, size_t errlen);
void svc_redis_stats(struct svc_redis_pool *p, struct svc_redis_stats *out);

#endif
