/* Failed-login counters in Redis; see login_guard.h. Each check or update is one pipelined round
 * trip. */
#include "login_guard.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/crypto.h"

void login_guard_account(const char *user_id, const char *login, char out[LOGIN_GUARD_KEY_LEN]) {
    if (user_id) {
        snprintf(out, LOGIN_GUARD_KEY_LEN, "%s", user_id);
        return;
    }
    char low[256];
    size_t i = 0;
    for (; login[i] && i + 1 < sizeof low; i++) low[i] = (char)tolower((unsigned char)login[i]);
    low[i] = '\0';
    svc_sha256_hex(low, i, out);
}

static bool read_int_reply(redisContext *c, long long *out) {
    redisReply *r = NULL;
    if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) return false;
    *out = r->type == REDIS_REPLY_INTEGER ? r->integer
           : r->type == REDIS_REPLY_STRING ? atoll(r->str)
                                            : 0;
    freeReplyObject(r);
    return true;
}

long login_guard_check(struct customers_ctx *cx, const char *cid, const char *acct, const char *ip) {
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) {
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "login guard unavailable (redis); allowing", NULL);
        return 0;
    }
    redisAppendCommand(c, "GET loginfail:acct:%s", acct);
    redisAppendCommand(c, "TTL loginfail:acct:%s", acct);
    redisAppendCommand(c, "GET loginfail:ip:%s", ip);
    redisAppendCommand(c, "TTL loginfail:ip:%s", ip);
    long long v[4] = {0, 0, 0, 0};
    bool ok = true;
    for (int i = 0; i < 4; i++) ok = read_int_reply(c, &v[i]) && ok;
    svc_redis_release(cx->app.redis, c);
    if (!ok) return 0;
    long wait = 0;
    if (v[0] >= cx->login_max_fail_account) wait = v[1] > 0 ? (long)v[1] : cx->login_window_s;
    if (v[2] >= cx->login_max_fail_ip) {
        long w = v[3] > 0 ? (long)v[3] : cx->login_window_s;
        if (w > wait) wait = w;
    }
    return wait;
}

void login_guard_failed(struct customers_ctx *cx, const char *acct, const char *ip) {
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) return;
    /* EXPIRE NX: the window starts at the first failure and is not extended by later ones */
    redisAppendCommand(c, "INCR loginfail:acct:%s", acct);
    redisAppendCommand(c, "EXPIRE loginfail:acct:%s %ld NX", acct, cx->login_window_s);
    redisAppendCommand(c, "INCR loginfail:ip:%s", ip);
    redisAppendCommand(c, "EXPIRE loginfail:ip:%s %ld NX", ip, cx->login_window_s);
    long long v;
    for (int i = 0; i < 4; i++)
        if (!read_int_reply(c, &v)) break;
    svc_redis_release(cx->app.redis, c);
}

void login_guard_succeeded(struct customers_ctx *cx, const char *acct) {
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "DEL loginfail:acct:%s", acct);
    if (r) freeReplyObject(r);
}

struct svc_result login_guard_refusal(long wait) {
    struct svc_result r = SVC_RESULT_ERR(SVC_RATE_LIMITED, "too_many_attempts", "too many failed password attempts; try again later");
    r.details = json_pack("{s:I}", "retry_after", (json_int_t)wait);
    r.retry_after_s = (unsigned)wait;
    return r;
}
