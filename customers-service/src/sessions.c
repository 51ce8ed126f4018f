/* Login, refresh, logout and service tokens; see sessions.h. */
#include "sessions.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "login_guard.h"
#include "svc/crypto.h"
#include "svc/jwt.h"
#include "users.h"
#include "users_repo.h"

#define REFRESH_SECRET_BYTES 32

/* Atomic compare-and-rotate of the refresh hash with reuse detection.
 * KEYS: session:{sid}, session_used:{sid}; ARGV: presented hash, new hash, ttl.
 * Returns {1, uid} rotated; {0} unknown; {-1} reuse (session deleted). */
static const char ROTATE_LUA[] =
    "local rh = redis.call('HGET', KEYS[1], 'rh') "
    "if not rh then return {0} end "
    "if rh == ARGV[1] then "
    "  redis.call('HSET', KEYS[1], 'rh', ARGV[2]) redis.call('EXPIRE', KEYS[1], ARGV[3]) "
    "  redis.call('SADD', KEYS[2], ARGV[1]) redis.call('EXPIRE', KEYS[2], ARGV[3]) "
    "  return {1, redis.call('HGET', KEYS[1], 'uid')} end "
    "if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then "
    "  redis.call('DEL', KEYS[1], KEYS[2]) return {-1} end "
    "return {0}";

static struct svc_result invalid_credentials(void) {
    return SVC_RESULT_ERR(SVC_UNAUTHORIZED, "invalid_credentials", "login or password is wrong");
}

static struct svc_result store_down(void) {
    return SVC_RESULT_ERR(SVC_UNAVAILABLE, "session_store_unavailable", "sessions are unavailable; retry later");
}

static char *issue_access_token(struct customers_ctx *cx, const char *sub, const char *sid, const char *role,
                                json_t *permissions, long ttl) {
    char jti[SVC_UUID_LEN + 1];
    svc_uuid4(jti);
    json_int_t now = (json_int_t)time(NULL);
    /* "o" hands our reference to the claims (jansson also drops it when packing fails): a borrowed
     * array is incref'd first, a fresh empty one is simply given away */
    json_t *perms = permissions ? json_incref(permissions) : json_array();
    json_t *claims = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:o}", "iss", cx->auth.issuer, "aud",
                               cx->auth.audience, "sub", sub, "iat", now, "nbf", now, "exp", now + ttl, "jti",
                               jti, "role", role, "permissions", perms);
    if (!claims) return NULL;
    if (sid) json_object_set_new(claims, "sid", json_string(sid));
    char *tok = svc_jwt_sign(cx->auth.keys, claims);
    json_decref(claims);
    return tok;
}

static struct svc_result token_response(char *access, const char *refresh, long ttl) {
    json_t *b = json_pack("{s:s,s:s,s:i}", "access_token", access, "token_type", "Bearer", "expires_in", (int)ttl);
    free(access);
    if (refresh) json_object_set_new(b, "refresh_token", json_string(refresh));
    return (struct svc_result){.st = SVC_OK, .body = b};
}

static int new_refresh(char *sid, char *token, size_t n, char hash[SVC_SHA256_HEX_LEN + 1]) {
    char secret[64];
    if (svc_random_token(REFRESH_SECRET_BYTES, secret, sizeof secret) != 0) return -1;
    snprintf(token, n, "%s.%s", sid, secret);
    svc_sha256_hex(token, strlen(token), hash);
    return 0;
}

/* Pipelined: session hash + TTL + the user's session index. */
static int create_session(struct customers_ctx *cx, const char *uid, const char *sid, const char *hash) {
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    if (!c) return -1;
    redisAppendCommand(c, "HSET session:%s uid %s rh %s", sid, uid, hash);
    redisAppendCommand(c, "EXPIRE session:%s %ld", sid, cx->refresh_ttl_s);
    redisAppendCommand(c, "SADD user_sessions:%s %s", uid, sid);
    redisAppendCommand(c, "EXPIRE user_sessions:%s %ld", uid, cx->refresh_ttl_s);
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) { rc = -1; break; }
        if (r->type == REDIS_REPLY_ERROR) rc = -1;
        freeReplyObject(r);
    }
    svc_redis_release(cx->app.redis, c);
    return rc;
}

/* Bodies are closed objects here too (as for registration): true with *out = 400
 * validation_failed naming each unknown field. */
static bool unknown_fields(const json_t *body, const char *const *allowed, struct svc_result *out) {
    json_t *fields = json_object();
    if (!fields) {
        *out = SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "internal error");
        return true;
    }
    users_reject_unknown(body, allowed, fields);
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return false;
    }
    *out = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
    out->details = json_pack("{s:o}", "fields", fields);
    return true;
}

struct svc_result sessions_login(struct customers_ctx *cx, const char *cid, const char *client_ip, const json_t *body) {
    static const char *const allowed[] = {"login", "password", NULL};
    struct svc_result refused;
    if (unknown_fields(body, allowed, &refused)) return refused;
    const char *login = json_string_value(json_object_get(body, "login"));
    const char *password = json_string_value(json_object_get(body, "password"));
    if (!login || !password || !*login || strlen(login) > 254 || strlen(password) > PASSWORD_MAX_BYTES) {
        struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "login and password are required strings");
        r.details = json_pack("{s:{s:s,s:s}}", "fields", "login", "required string (user name or email)",
                              "password", "required string");
        return r;
    }
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return svc_pg_result(st);
    struct user_auth_row row;
    st = users_repo_find_login(c, login, &row);
    if (st != SVC_OK && st != SVC_NOT_FOUND) {
        users_repo_close(cx->app.pg, c);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "login lookup failed", "{s:s}", "status", svc_status_code(st));
        return svc_pg_result(st);
    }
    /* the lockout is checked before any password work, per account (user id when the login names
     * a user, so user name and email share one counter) and per client address */
    char account[LOGIN_GUARD_KEY_LEN];
    login_guard_account(st == SVC_OK ? row.id : NULL, login, account);
    long wait = login_guard_check(cx, cid, account, client_ip);
    if (wait > 0) {
        users_repo_close(cx->app.pg, c);
        if (st == SVC_OK) user_auth_row_free(&row);
        atomic_fetch_add_explicit(cx->logins_locked, 1, memory_order_relaxed);
        return login_guard_refusal(wait);
    }
    bool ok = false;
    if (st == SVC_OK && !row.deleted && row.password_hash) {
        ok = password_verify(row.password_hash, password);
    } else {
        password_verify_dummy(&cx->pw_params, password);
    }
    if (!ok) {
        users_repo_close(cx->app.pg, c);
        if (st == SVC_OK) user_auth_row_free(&row);
        login_guard_failed(cx, account, client_ip);
        atomic_fetch_add_explicit(cx->logins_failed, 1, memory_order_relaxed);
        svc_log(&cx->app.log, SVC_LOG_INFO, cid, "login failed", NULL);
        return invalid_credentials();
    }
    /* parameters raised since this hash was made: upgrade it now that we know the password */
    if (password_needs_rehash(row.password_hash, &cx->pw_params)) {
        char nh[PASSWORD_ENCODED_MAX];
        if (password_hash(&cx->pw_params, password, nh, sizeof nh) == 0) users_repo_set_password_hash(c, row.id, nh);
    }
    users_repo_close(cx->app.pg, c);
    login_guard_succeeded(cx, account);

    char sid[SVC_UUID_LEN + 1], refresh[128], hash[SVC_SHA256_HEX_LEN + 1];
    svc_uuid4(sid);
    json_t *perms = json_loads(row.permissions_json, 0, NULL);
    struct svc_result res;
    if (new_refresh(sid, refresh, sizeof refresh, hash) != 0 || create_session(cx, row.id, sid, hash) != 0) {
        res = store_down();
    } else {
        char *tok = issue_access_token(cx, row.id, sid, row.role, perms, cx->access_ttl_s);
        res = tok ? token_response(tok, refresh, cx->access_ttl_s)
                  : SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "cannot sign the token");
        atomic_fetch_add_explicit(cx->logins_ok, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "login succeeded", "{s:s}", "user_id", row.id);
    }
    json_decref(perms);
    user_auth_row_free(&row);
    return res;
}

struct svc_result sessions_refresh(struct customers_ctx *cx, const char *cid, const json_t *body) {
    static const char *const allowed[] = {"refresh_token", NULL};
    struct svc_result refused;
    if (unknown_fields(body, allowed, &refused)) return refused;
    const char *token = json_string_value(json_object_get(body, "refresh_token"));
    struct svc_result invalid = SVC_RESULT_ERR(SVC_UNAUTHORIZED, "invalid_refresh_token", "the refresh token is not valid");
    if (!token || strlen(token) > 120) return invalid;
    const char *dot = strchr(token, '.');
    if (!dot || dot - token != SVC_UUID_LEN) return invalid;
    char sid[SVC_UUID_LEN + 1];
    memcpy(sid, token, SVC_UUID_LEN);
    sid[SVC_UUID_LEN] = '\0';
    if (!svc_uuid_is_valid(sid)) return invalid;

    char presented[SVC_SHA256_HEX_LEN + 1], refresh[128], hash[SVC_SHA256_HEX_LEN + 1];
    svc_sha256_hex(token, strlen(token), presented);
    if (new_refresh(sid, refresh, sizeof refresh, hash) != 0) return store_down();
    svc_status st;
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%ld", cx->refresh_ttl_s);
    redisReply *r = svc_redis_command(cx->app.redis, &st, "EVAL %s 2 session:%s session_used:%s %s %s %s", ROTATE_LUA,
                                      sid, sid, presented, hash, ttl);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 1) {
        if (r) freeReplyObject(r);
        return store_down();
    }
    long long outcome = r->element[0]->integer;
    char uid[64] = "";
    if (outcome == 1 && r->elements > 1 && r->element[1]->type == REDIS_REPLY_STRING)
        snprintf(uid, sizeof uid, "%s", r->element[1]->str);
    freeReplyObject(r);
    if (outcome == -1) {
        svc_auth_forget_session(&cx->auth, sid);
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "refresh token reuse detected; session revoked", "{s:s}", "sid", sid);
        return SVC_RESULT_ERR(SVC_UNAUTHORIZED, "refresh_token_reused",
                              "this refresh token was already used; the session has been revoked");
    }
    if (outcome != 1 || !uid[0]) return invalid;

    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return svc_pg_result(st);
    struct user_auth_row row;
    st = users_repo_get_auth(c, uid, &row);
    users_repo_close(cx->app.pg, c);
    if (st == SVC_UNAVAILABLE || st == SVC_TIMEOUT) return svc_pg_result(st);
    if (st != SVC_OK) return invalid;
    if (row.deleted) {
        user_auth_row_free(&row);
        sessions_revoke_user(cx, cid, uid);
        return invalid;
    }
    json_t *perms = json_loads(row.permissions_json, 0, NULL);
    char *tok = issue_access_token(cx, row.id, sid, row.role, perms, cx->access_ttl_s);
    json_decref(perms);
    user_auth_row_free(&row);
    if (!tok) return SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "cannot sign the token");
    return token_response(tok, refresh, cx->access_ttl_s);
}

/* Returns 0 when every DEL and SREM was answered, -1 when the store failed (some sessions may
 * remain, so the caller must not report them revoked). */
static int delete_sessions(struct customers_ctx *cx, const char *uid, const char *const *sids, size_t n) {
    if (n == 0) return 0;
    svc_status st;
    redisContext *c = svc_redis_acquire(cx->app.redis, -1, &st);
    int rc = c ? 0 : -1;
    for (size_t i = 0; c && i < n; i++) {
        redisAppendCommand(c, "DEL session:%s session_used:%s", sids[i], sids[i]);
        redisAppendCommand(c, "SREM user_sessions:%s %s", uid, sids[i]);
    }
    for (size_t i = 0; c && i < 2 * n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) { rc = -1; break; }
        if (r->type == REDIS_REPLY_ERROR) rc = -1;
        freeReplyObject(r);
    }
    if (c) svc_redis_release(cx->app.redis, c);
    /* after the DEL, so a lookup racing it cannot re-cache the session here */
    for (size_t i = 0; i < n; i++) svc_auth_forget_session(&cx->auth, sids[i]);
    return rc;
}

struct svc_result sessions_logout(struct customers_ctx *cx, const char *cid, const struct svc_principal *who) {
    if (!who->sid[0]) return SVC_RESULT_ERR(SVC_INVALID, "no_session", "this token has no session");
    const char *sids[1] = {who->sid};
    if (delete_sessions(cx, who->sub, sids, 1) != 0) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "logout failed: session store", "{s:s}", "user_id", who->sub);
        return store_down();
    }
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "logout", "{s:s}", "user_id", who->sub);
    return (struct svc_result){.st = SVC_NO_CONTENT};
}

int sessions_revoke_user(struct customers_ctx *cx, const char *cid, const char *user_id) {
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SMEMBERS user_sessions:%s", user_id);
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r) freeReplyObject(r);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "cannot revoke sessions", "{s:s}", "user_id", user_id);
        return -1;
    }
    const char **sids = calloc(r->elements ? r->elements : 1, sizeof *sids);
    size_t n = 0;
    for (size_t i = 0; sids && i < r->elements; i++)
        if (r->element[i]->type == REDIS_REPLY_STRING) sids[n++] = r->element[i]->str;
    int rc = sids ? delete_sessions(cx, user_id, sids, n) : -1;
    free(sids);
    freeReplyObject(r);
    if (rc != 0) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "cannot revoke sessions", "{s:s}", "user_id", user_id);
        return -1;
    }
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "sessions revoked", "{s:s,s:i}", "user_id", user_id, "count", (int)n);
    return 0;
}

void sessions_note_user_changed(struct customers_ctx *cx, const char *cid, const char *user_id, bool password) {
    (void)password;
    (void)sessions_revoke_user(cx, cid, user_id); /* logged; the change itself stands */
}

struct svc_result sessions_client_token(struct customers_ctx *cx, const char *cid, const json_t *body) {
    static const char *const allowed[] = {"client_id", "client_secret", NULL};
    struct svc_result refused;
    if (unknown_fields(body, allowed, &refused)) return refused;
    const char *id = json_string_value(json_object_get(body, "client_id"));
    const char *secret = json_string_value(json_object_get(body, "client_secret"));
    struct svc_result bad = SVC_RESULT_ERR(SVC_UNAUTHORIZED, "invalid_client", "unknown client or wrong secret");
    if (!id || !secret || strlen(secret) > 512) return bad;
    char digest[SVC_SHA256_HEX_LEN + 1];
    svc_sha256_hex(secret, strlen(secret), digest);
    for (int i = 0; i < cx->nclients; i++) {
        if (strcmp(cx->clients[i].id, id) != 0) continue;
        if (!svc_const_eq(cx->clients[i].secret_sha256, digest)) break;
        char sub[96];
        snprintf(sub, sizeof sub, "service:%s", id);
        char *tok = issue_access_token(cx, sub, NULL, "service", NULL, cx->service_token_ttl_s);
        if (!tok) return SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "cannot sign the token");
        svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "service token issued", "{s:s}", "client_id", id);
        return token_response(tok, NULL, cx->service_token_ttl_s);
    }
    svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "service token refused", NULL);
    return bad;
}
