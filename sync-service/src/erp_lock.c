/* Per-tenant locks with fencing tokens, throttling marks and the keeper thread (see erp_lock.h). */
#include "erp_lock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/cid.h"

/* KEYS: lock, fence, throttle  ARGV: token, ttl ms, holder
 * → {0, fence} acquired | {1, ms left} locked | {2, ms left} throttled */
static const char LUA_ACQUIRE[] =
    "local th = redis.call('PTTL', KEYS[3])\n"
    "if th > 0 then return {2, th} end\n"
    "local left = redis.call('PTTL', KEYS[1])\n"
    "if left ~= -2 then return {1, left > 0 and left or 1} end\n"
    "local f = redis.call('INCR', KEYS[2])\n"
    "redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. f .. ' ' .. ARGV[3], 'PX', ARGV[2])\n"
    "return {0, f}\n";

/* KEYS: lock  ARGV: token, ttl ms  → 1 renewed, 0 not ours */
static const char LUA_RENEW[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1\n"
    "end\n"
    "return 0\n";

/* KEYS: lock  ARGV: token  → 1 deleted, 0 not ours */
static const char LUA_RELEASE[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

/* KEYS: lock  → {value or false, pttl} */
static const char LUA_PEEK[] = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}\n";

int64_t erp_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keys_of(const char *tenant, char lock[80], char fence[80], char throttle[80]) {
    snprintf(lock, 80, "erp:lock:{%s}", tenant);
    if (fence) snprintf(fence, 80, "erp:fence:{%s}", tenant);
    if (throttle) snprintf(throttle, 80, "erp:throttle:{%s}", tenant);
}

static bool int_pair(const redisReply *r, long long *a, long long *b) {
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_INTEGER ||
        r->element[1]->type != REDIS_REPLY_INTEGER)
        return false;
    *a = r->element[0]->integer;
    *b = r->element[1]->integer;
    return true;
}

svc_status erp_lock_acquire(struct svc_redis_pool *pool, const char *tenant, long ttl_ms, const char *holder,
                            struct erp_lock *out, enum erp_lock_result *res, long *wait_ms) {
    memset(out, 0, sizeof *out);
    *wait_ms = 0;
    unsigned char rnd[ERP_LOCK_TOKEN_LEN / 2];
    if (svc_random_bytes(rnd, sizeof rnd) != 0) return SVC_INTERNAL;
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(out->token + 2 * i, 3, "%02x", rnd[i]);
    snprintf(out->tenant, sizeof out->tenant, "%s", tenant);
    out->ttl_ms = ttl_ms;
    char lock[80], fence[80], throttle[80];
    keys_of(tenant, lock, fence, throttle);
    int64_t sent = erp_mono_ms();
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 3 %s %s %s %s %ld %s", LUA_ACQUIRE, lock, fence, throttle,
                                      out->token, ttl_ms, holder);
    if (!r) return st;
    long long code, val;
    bool ok = int_pair(r, &code, &val);
    freeReplyObject(r);
    if (!ok) return SVC_INTERNAL;
    if (code == 0) {
        *res = ERP_LOCK_ACQUIRED;
        out->fence = val;
        atomic_store(&out->renewed_ms, sent);
        atomic_store(&out->lost, false);
    } else {
        *res = code == 2 ? ERP_LOCK_THROTTLED : ERP_LOCK_BUSY;
        *wait_ms = (long)val;
    }
    return SVC_OK;
}

svc_status erp_lock_renew(struct svc_redis_pool *pool, struct erp_lock *l) {
    char lock[80];
    keys_of(l->tenant, lock, NULL, NULL);
    int64_t sent = erp_mono_ms();
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s %s %ld", LUA_RENEW, lock, l->token, l->ttl_ms);
    if (!r) return st;
    st = r->type != REDIS_REPLY_INTEGER ? SVC_INTERNAL : r->integer == 1 ? SVC_OK : SVC_CONFLICT;
    freeReplyObject(r);
    if (st == SVC_OK) atomic_store(&l->renewed_ms, sent);
    if (st == SVC_CONFLICT) atomic_store(&l->lost, true);
    return st;
}

svc_status erp_lock_release(struct svc_redis_pool *pool, struct erp_lock *l) {
    char lock[80];
    keys_of(l->tenant, lock, NULL, NULL);
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s %s", LUA_RELEASE, lock, l->token);
    if (!r) return st;
    st = r->type == REDIS_REPLY_INTEGER ? SVC_OK : SVC_INTERNAL;
    freeReplyObject(r);
    atomic_store(&l->lost, true);   /* never usable again */
    return st;
}

bool erp_lock_usable(struct erp_lock *l) {
    if (atomic_load(&l->lost)) return false;
    long margin = l->ttl_ms / 10;
    return erp_mono_ms() < atomic_load(&l->renewed_ms) + l->ttl_ms - margin;
}

svc_status erp_throttle_set(struct svc_redis_pool *pool, const char *tenant, long ms) {
    if (ms < 1) ms = 1;
    char throttle[80];
    snprintf(throttle, sizeof throttle, "erp:throttle:{%s}", tenant);
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "SET %s 1 PX %ld", throttle, ms);
    if (!r) return st;
    st = r->type == REDIS_REPLY_STATUS ? SVC_OK : SVC_INTERNAL;
    freeReplyObject(r);
    return st;
}

svc_status erp_lock_peek(struct svc_redis_pool *pool, const char *tenant, struct erp_lock_info *out) {
    memset(out, 0, sizeof *out);
    char lock[80];
    keys_of(tenant, lock, NULL, NULL);
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s", LUA_PEEK, lock);
    if (!r) return st;
    st = SVC_INTERNAL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_INTEGER) {
        st = SVC_OK;
        const redisReply *v = r->element[0];
        if (v->type == REDIS_REPLY_STRING && v->str) {
            /* "<token> <fence> <instance> <kind> <job id>": the holder is what follows the fence */
            const char *p = strchr(v->str, ' ');
            p = p ? strchr(p + 1, ' ') : NULL;
            if (p) {
                out->held = true;
                snprintf(out->holder, sizeof out->holder, "%s", p + 1);
                const char *k = strchr(p + 1, ' ');
                if (k) sscanf(k + 1, "%15s", out->kind);
                out->expires_in_ms = r->element[1]->integer;
            }
        }
    }
    freeReplyObject(r);
    return st;
}

/* ------------------------------------------------------------------ the keeper */

static void *keeper_main(void *arg) {
    struct erp_keeper *k = arg;
    pthread_mutex_lock(&k->mu);
    while (!k->stop) {
        int64_t now = erp_mono_ms();
        for (int i = 0; i < ERP_KEEPER_MAX; i++) {
            struct erp_lock *l = k->held[i];
            if (!l || atomic_load(&l->lost) || now - atomic_load(&l->renewed_ms) < l->ttl_ms / 3) continue;
            /* The job may remove its lock meanwhile only through erp_keeper_remove, which waits for
             * this mutex: renew with it held (one short Redis round trip per due lock). */
            svc_status st = erp_lock_renew(k->pool, l);
            if (st == SVC_CONFLICT)
                svc_logf(k->log, SVC_LOG_ERROR, NULL, "erp: tenant lock lost while its job runs", "{s:s}", "tenant_id",
                         l->tenant);
            else if (st != SVC_OK)
                svc_logf(k->log, SVC_LOG_WARN, NULL, "erp: tenant lock renewal failed", "{s:s,s:s}", "tenant_id",
                         l->tenant, "status", svc_status_code(st));
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&k->cv, &k->mu, &until);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

int erp_keeper_start(struct erp_keeper *k, struct svc_redis_pool *pool, const struct svc_logger *log) {
    memset(k, 0, sizeof *k);
    k->pool = pool;
    k->log = log;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_mutex_init(&k->mu, NULL) || pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc || pthread_create(&k->th, NULL, keeper_main, k) != 0) return -1;
    k->started = true;
    return 0;
}

void erp_keeper_stop(struct erp_keeper *k) {
    if (!k->started) return;
    pthread_mutex_lock(&k->mu);
    k->stop = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->th, NULL);
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
    k->started = false;
}

int erp_keeper_add(struct erp_keeper *k, struct erp_lock *l) {
    int rc = -1;
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < ERP_KEEPER_MAX && rc; i++)
        if (!k->held[i]) {
            k->held[i] = l;
            rc = 0;
        }
    pthread_mutex_unlock(&k->mu);
    return rc;
}

void erp_keeper_remove(struct erp_keeper *k, struct erp_lock *l) {
    pthread_mutex_lock(&k->mu);
    for (int i = 0; i < ERP_KEEPER_MAX; i++)
        if (k->held[i] == l) k->held[i] = NULL;
    pthread_mutex_unlock(&k->mu);
}
