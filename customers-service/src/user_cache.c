/* Redis cache of user JSON; see user_cache.h. Both writes and both deletes are pipelined. */
#include "user_cache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void lower_copy(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* Local layer first (kept coherent by Redis invalidation pushes, see svc/tcache.h), then Redis.
 * A Redis hit fills the local layer unless an invalidation arrived since the epoch was taken. */
static char *get_key(struct customers_ctx *cx, const char *key) {
    char *out = svc_tcache_get(cx->user_l1, key);
    if (out) {
        atomic_fetch_add_explicit(cx->cache_local_hit, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(cx->cache_hit, 1, memory_order_relaxed);
        return out;
    }
    if (cx->user_l1) atomic_fetch_add_explicit(cx->cache_local_miss, 1, memory_order_relaxed);
    unsigned long epoch = svc_tcache_epoch(cx->user_l1);
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "GET %s", key);
    if (r && r->type == REDIS_REPLY_STRING) out = strndup(r->str, r->len);
    if (r) freeReplyObject(r);
    if (out) svc_tcache_put(cx->user_l1, key, out, epoch);
    atomic_fetch_add_explicit(out ? cx->cache_hit : cx->cache_miss, 1, memory_order_relaxed);
    return out;
}

char *user_cache_get_by_id(struct customers_ctx *cx, const char *id) {
    char key[96];
    snprintf(key, sizeof key, "ucache:id:%s", id);
    return get_key(cx, key);
}

char *user_cache_get_by_name(struct customers_ctx *cx, const char *user_name) {
    char low[80];
    if (strlen(user_name) >= sizeof low) return NULL;
    lower_copy(low, sizeof low, user_name);
    char key[96];
    snprintf(key, sizeof key, "ucache:name:%s", low);
    return get_key(cx, key);
}

void user_cache_put(struct customers_ctx *cx, const char *json) {
    json_error_t e;
    json_t *u = json_loads(json, 0, &e);
    const char *id = json_string_value(json_object_get(u, "id"));
    const char *name = json_string_value(json_object_get(u, "user_name"));
    if (!id || !name || json_is_true(json_object_get(u, "deleted"))) {
        json_decref(u);
        return;
    }
    char low[80];
    lower_copy(low, sizeof low, name);
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (c) {
        redisAppendCommand(c, "SET ucache:id:%s %s EX %ld", id, json, cx->user_cache_ttl_s);
        redisAppendCommand(c, "SET ucache:name:%s %s EX %ld", low, json, cx->user_cache_ttl_s);
        for (int i = 0; i < 2; i++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK) break;
            freeReplyObject(r);
        }
        svc_redis_release(cx->app.redis, c);
    }
    json_decref(u);
}

void user_cache_invalidate(struct customers_ctx *cx, const char *id, const char *user_name) {
    char low[80] = "", key[96];
    if (user_name) lower_copy(low, sizeof low, user_name);
    /* this instance forgets at once; the others on Redis's invalidation push */
    snprintf(key, sizeof key, "ucache:id:%s", id);
    svc_tcache_drop(cx->user_l1, key);
    if (*low) {
        snprintf(key, sizeof key, "ucache:name:%s", low);
        svc_tcache_drop(cx->user_l1, key);
    }
    svc_status st;
    redisReply *r = user_name && *low
                        ? svc_redis_command(cx->app.redis, &st, "DEL ucache:id:%s ucache:name:%s", id, low)
                        : svc_redis_command(cx->app.redis, &st, "DEL ucache:id:%s", id);
    if (r) freeReplyObject(r);
    else svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "user cache invalidation failed", "{s:s}", "user_id", id);
}
