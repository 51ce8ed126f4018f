/* User-existence cache of transactions-service; see txcache.h. */
#include "txcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/tcache.h"

const char *txcache_state_str(enum user_state s) {
    switch (s) {
    case USER_ACTIVE: return "active";
    case USER_DELETED: return "deleted";
    case USER_MISSING: return "missing";
    default: return NULL;
    }
}

enum user_state txcache_state_parse(const char *s, size_t len) {
    if (len == 6 && !memcmp(s, "active", 6)) return USER_ACTIVE;
    if (len == 7 && !memcmp(s, "deleted", 7)) return USER_DELETED;
    if (len == 7 && !memcmp(s, "missing", 7)) return USER_MISSING;
    return USER_UNKNOWN;
}

#define KEY_MAX (sizeof TXCACHE_PREFIX + SVC_UUID_LEN)

static void key_of(const char *id, char out[KEY_MAX]) { snprintf(out, KEY_MAX, TXCACHE_PREFIX "%s", id); }

/* Reads the Redis entries of ids[i] where want[i]; returns false when Redis did not answer. */
static bool from_redis(struct tx_ctx *cx, const char *cid, const char *const *ids, const bool *want, int n,
                       enum user_state *states, char keys[][KEY_MAX]) {
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) {
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "redis unavailable: user check without cache", NULL);
        return false;
    }
    int sent = 0;
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
        if (want[i]) {
            ok = redisAppendCommand(c, "GET %s", keys[i]) == REDIS_OK;
            sent += ok;
        }
    for (int i = 0; i < n && sent > 0; i++) {
        if (!want[i]) continue;
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            ok = false;
            break;
        }
        sent--;
        if (r->type == REDIS_REPLY_STRING) states[i] = txcache_state_parse(r->str, r->len);
        else if (r->type == REDIS_REPLY_ERROR) ok = false;
        freeReplyObject(r);
    }
    svc_redis_release(cx->app.redis, c);
    if (!ok) svc_log(&cx->app.log, SVC_LOG_WARN, cid, "redis error: user check without cache", NULL);
    return ok;
}

void txcache_lookup(struct tx_ctx *cx, const char *cid, const char *const *ids, int n, enum user_state *states) {
    char keys[TXCACHE_MAX_USERS][KEY_MAX];
    bool want[TXCACHE_MAX_USERS] = {false, false};
    bool any = false;
    if (n > TXCACHE_MAX_USERS) n = TXCACHE_MAX_USERS;
    for (int i = 0; i < n; i++) {
        states[i] = USER_UNKNOWN;
        if (!ids[i]) continue;
        key_of(ids[i], keys[i]);
        char *v = svc_tcache_get(cx->ucache_l1, keys[i]);
        if (v) {
            states[i] = txcache_state_parse(v, strlen(v));
            free(v);
        }
        want[i] = states[i] == USER_UNKNOWN;
        any = any || want[i];
    }
    if (any) {
        /* the epoch first: a value read before an invalidation is not kept after it */
        unsigned long epoch = svc_tcache_epoch(cx->ucache_l1);
        if (from_redis(cx, cid, ids, want, n, states, keys))
            for (int i = 0; i < n; i++)
                if (want[i] && states[i] != USER_UNKNOWN)
                    svc_tcache_put(cx->ucache_l1, keys[i], txcache_state_str(states[i]), epoch);
    }
    for (int i = 0; i < n; i++)
        if (ids[i])
            atomic_fetch_add_explicit(states[i] != USER_UNKNOWN ? cx->ucache_hit : cx->ucache_miss, 1,
                                      memory_order_relaxed);
}

void txcache_put_users(struct tx_ctx *cx, const char *const *ids, const enum user_state *states, int n) {
    svc_status st;
    redisContext *c = NULL;
    int sent = 0;
    for (int i = 0; i < n; i++) {
        const char *v = txcache_state_str(states[i]);
        if (!v || !ids[i]) continue;
        if (!c && !(c = svc_redis_acquire(cx->app.redis, -1, &st))) return;
        if (redisAppendCommand(c, "SET " TXCACHE_PREFIX "%s %s EX %ld", ids[i], v, cx->user_cache_s) != REDIS_OK) break;
        sent++;
    }
    for (int i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) break;
        freeReplyObject(r);
    }
    if (c) svc_redis_release(cx->app.redis, c);
}
