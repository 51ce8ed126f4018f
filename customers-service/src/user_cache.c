/* Redis cache of user JSON; see user_cache.h. Both writes and both deletes are pipelined. */
#include "user_cache.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_ID USER_CACHE_PREFIX "id:"
#define KEY_NAME USER_CACHE_PREFIX "name:"

size_t user_cache_key_id(char out[USER_CACHE_KEY_MAX], const char *id) {
    int n = snprintf(out, USER_CACHE_KEY_MAX, KEY_ID "%s", id);
    if (n < 0 || n >= USER_CACHE_KEY_MAX) {
        out[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t user_cache_key_name(char out[USER_CACHE_KEY_MAX], const char *user_name) {
    size_t p = sizeof KEY_NAME - 1, n = strlen(user_name);
    if (p + n >= USER_CACHE_KEY_MAX) {
        out[0] = '\0';
        return 0;
    }
    memcpy(out, KEY_NAME, p);
    for (size_t i = 0; i < n; i++) out[p + i] = (char)tolower((unsigned char)user_name[i]);
    out[p + n] = '\0';
    return p + n;
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
    char key[USER_CACHE_KEY_MAX];
    return user_cache_key_id(key, id) ? get_key(cx, key) : NULL;
}

char *user_cache_get_by_name(struct customers_ctx *cx, const char *user_name) {
    char key[USER_CACHE_KEY_MAX];
    return user_cache_key_name(key, user_name) ? get_key(cx, key) : NULL;
}

void user_cache_put(struct customers_ctx *cx, const char *json) {
    json_error_t e;
    json_t *u = json_loads(json, 0, &e);
    const char *id = json_string_value(json_object_get(u, "id"));
    const char *name = json_string_value(json_object_get(u, "user_name"));
    char kid[USER_CACHE_KEY_MAX], kname[USER_CACHE_KEY_MAX];
    if (!id || !name || json_is_true(json_object_get(u, "deleted")) || !user_cache_key_id(kid, id) ||
        !user_cache_key_name(kname, name)) {
        json_decref(u);
        return;
    }
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (c) {
        redisAppendCommand(c, "SET %s %s EX %ld", kid, json, cx->user_cache_ttl_s);
        redisAppendCommand(c, "SET %s %s EX %ld", kname, json, cx->user_cache_ttl_s);
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
    char kid[USER_CACHE_KEY_MAX], kname[USER_CACHE_KEY_MAX] = "";
    if (!user_cache_key_id(kid, id)) return;
    if (user_name && *user_name) user_cache_key_name(kname, user_name);
    /* this instance forgets at once; the others on Redis's invalidation push */
    svc_tcache_drop(cx->user_l1, kid);
    if (*kname) svc_tcache_drop(cx->user_l1, kname);
    svc_status st;
    redisReply *r = *kname ? svc_redis_command(cx->app.redis, &st, "DEL %s %s", kid, kname)
                           : svc_redis_command(cx->app.redis, &st, "DEL %s", kid);
    if (r) freeReplyObject(r);
    /* the other instances hold the push before the change is answered (svc/tcache.h) */
    if (!r || (cx->user_l1 && !svc_tcache_barrier(cx->app.redis)))
        svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "user cache invalidation failed", "{s:s}", "user_id", id);
}
