/* Global sliding-window rate limit of ERP sync jobs (see erp_ratelimit.h). */
#include "erp_ratelimit.h"

/* KEYS: the set  ARGV: max, window ms, member  → {1, now} admitted | {0, wait ms} */
static const char LUA_TAKE[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local max, window = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))\n"
    "if redis.call('ZCARD', KEYS[1]) < max then\n"
    "  redis.call('ZADD', KEYS[1], string.format('%d', now), ARGV[3])\n"
    "  redis.call('PEXPIRE', KEYS[1], window + 1000)\n"
    "  return {1, now}\n"
    "end\n"
    "local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "local wait = tonumber(oldest[2]) + window - now + 1\n"
    "if wait < 1 then wait = 1 end\n"
    "return {0, wait}\n";

svc_status erp_rate_take(struct svc_redis_pool *pool, const char *key, long max, long window_ms, const char *member,
                         bool *admitted, long *wait_ms, long long *at_ms) {
    *admitted = true;
    *wait_ms = 0;
    if (at_ms) *at_ms = 0;
    if (max <= 0) return SVC_OK;
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s %ld %ld %s", LUA_TAKE, key, max, window_ms, member);
    if (!r) return st;
    bool ok = r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_INTEGER &&
              r->element[1]->type == REDIS_REPLY_INTEGER;
    if (ok) {
        *admitted = r->element[0]->integer == 1;
        if (*admitted && at_ms) *at_ms = r->element[1]->integer;
        if (!*admitted) *wait_ms = (long)r->element[1]->integer;
    }
    freeReplyObject(r);
    return ok ? SVC_OK : SVC_INTERNAL;
}
