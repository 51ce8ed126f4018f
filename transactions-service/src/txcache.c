/* Redis cache and in-flight locks of transactions-service; see txcache.h. */
#include "txcache.h"

#include <stdio.h>
#include <string.h>

void txcache_lock_key(const char *user_id, const char *key, char *out) {
    snprintf(out, TXCACHE_LOCK_KEY_MAX, "idem:%s:%s", user_id, key);
}

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

static void lock_token(char out[33]) {
    unsigned char raw[16];
    if (svc_random_bytes(raw, sizeof raw) != 0) {
        /* Without OS randomness fall back to a v4 UUID's hex (same source, should it recover);
         * uniqueness matters, secrecy does not: the token only identifies our own lock. */
        char u[SVC_UUID_LEN + 1];
        svc_uuid4(u);
        int o = 0;
        for (int i = 0; u[i] && o < 32; i++)
            if (u[i] != '-') out[o++] = u[i];
        out[o] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[32] = '\0';
}

void txcache_preflight(struct tx_ctx *cx, const char *cid, const char *user_id, const char *key,
                       const char *const *ids, int nids, struct txcache_preflight *out) {
    memset(out, 0, sizeof *out);
    txcache_lock_key(user_id, key, out->lock_key);
    lock_token(out->lock_token);
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) {
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "redis unavailable: no in-flight lock, no user cache", NULL);
        return;
    }
    int sent = 0;
    bool ok = true;
    for (int i = 0; i < nids && i < TXCACHE_MAX_USERS; i++) {
        if (!ids[i]) continue;
        ok = ok && redisAppendCommand(c, "GET uexists:%s", ids[i]) == REDIS_OK;
        sent++;
    }
    ok = ok && redisAppendCommand(c, "SET %s %s NX PX %ld", out->lock_key, out->lock_token, cx->idem_lock_ms) == REDIS_OK;
    sent++;
    int got = 0;
    for (int i = 0; ok && got < sent; got++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            ok = false;
            break;
        }
        if (got < sent - 1) {
            while (i < nids && !ids[i]) i++;
            if (r->type == REDIS_REPLY_STRING) out->users[i] = txcache_state_parse(r->str, r->len);
            atomic_fetch_add_explicit(out->users[i] != USER_UNKNOWN ? cx->ucache_hit : cx->ucache_miss, 1,
                                      memory_order_relaxed);
            i++;
        } else if (r->type == REDIS_REPLY_STATUS) {
            out->locked = true;     /* "OK" */
        } else if (r->type == REDIS_REPLY_NIL) {
            out->busy = true;
        } else {
            ok = false;             /* an error reply (e.g. OOM): treat Redis as unavailable */
        }
        freeReplyObject(r);
    }
    svc_redis_release(cx->app.redis, c);
    if (!ok) {
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "redis error: no in-flight lock, no user cache", NULL);
        txcache_release(cx, cid, out);     /* in case the SET went through */
        memset(out->users, 0, sizeof out->users);
        out->busy = false;
        return;
    }
    out->redis_ok = true;
}

void txcache_release(struct tx_ctx *cx, const char *cid, struct txcache_preflight *pf) {
    if (!pf->locked || !pf->lock_key[0]) return;
    pf->locked = false;
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) return;
    redisReply *r = redisCommand(c, "EVALSHA %s 1 %s %s", TXCACHE_UNLOCK_SHA, pf->lock_key, pf->lock_token);
    if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "NOSCRIPT", 8)) {
        freeReplyObject(r);
        r = redisCommand(c, "EVAL %s 1 %s %s", TXCACHE_UNLOCK_LUA, pf->lock_key, pf->lock_token);
    }
    if (!r || r->type == REDIS_REPLY_ERROR)
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "could not release an idempotency lock (it will expire)", NULL);
    if (r) freeReplyObject(r);
    svc_redis_release(cx->app.redis, c);
}

void txcache_put_users(struct tx_ctx *cx, const char *const *ids, const enum user_state *states, int n) {
    svc_status st;
    redisContext *c = NULL;
    int sent = 0;
    for (int i = 0; i < n; i++) {
        const char *v = txcache_state_str(states[i]);
        if (!v || !ids[i]) continue;
        if (!c && !(c = svc_redis_acquire(cx->app.redis, -1, &st))) return;
        if (redisAppendCommand(c, "SET uexists:%s %s EX %ld", ids[i], v, cx->user_cache_s) != REDIS_OK) break;
        sent++;
    }
    for (int i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) break;
        freeReplyObject(r);
    }
    if (c) svc_redis_release(cx->app.redis, c);
}
