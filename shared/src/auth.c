/* Bearer-token authentication with session revocation; see auth.h. */
#include "svc/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "svc/app.h"

int svc_auth_init(struct svc_auth *a, struct svc_app *app, bool with_private) {
    struct svc_config *c = &app->cfg;
    memset(a, 0, sizeof *a);
    a->app = app;
    pthread_mutex_init(&a->mu, NULL);
    for (int i = 0; i < SVC_TOKEN_CACHE_STRIPES; i++) pthread_mutex_init(&a->token_mu[i], NULL);
    a->issuer = svc_config_str(c, "JWT_ISSUER", "platform-customers");
    a->audience = svc_config_str(c, "JWT_AUDIENCE", "platform");
    a->leeway_s = (int)svc_config_int(c, "JWT_LEEWAY_S", 30, 0, 300);
    a->session_cache_ms = svc_config_int(c, "SESSION_CACHE_MS", 1000, 0, 1000);
    a->keys = svc_jwt_keys_new();
    if (!a->keys) {
        svc_config_error(c, "JWT", "out of memory");
        return -1;
    }
    char err[256];
    if (with_private) {
        const char *priv = svc_config_str(c, "JWT_PRIVATE_KEY_FILE", NULL);
        if (priv && svc_jwt_keys_add_private_pem_file(a->keys, priv, err, sizeof err) != 0)
            svc_config_error(c, "JWT_PRIVATE_KEY_FILE", err);
    }
    const char *dir = svc_config_str(c, "JWT_PUBLIC_KEYS_DIR", with_private ? "" : NULL);
    if (dir && *dir && svc_jwt_keys_load_dir(a->keys, dir, err, sizeof err) != 0)
        svc_config_error(c, "JWT_PUBLIC_KEYS_DIR", err);
    if (dir && *dir && svc_jwt_keys_count(a->keys) == 0)
        svc_config_error(c, "JWT_PUBLIC_KEYS_DIR", "no *.pub.pem keys found");
    return 0;
}

void svc_auth_free(struct svc_auth *a) {
    if (a->keys) svc_jwt_keys_free(a->keys);
    a->keys = NULL;
    for (int i = 0; i < SVC_TOKEN_CACHE_SLOTS; i++) {
        free(a->tokens[i].token);
        json_decref(a->tokens[i].claims);
        a->tokens[i].token = NULL;
        a->tokens[i].claims = NULL;
    }
    for (int i = 0; i < SVC_TOKEN_CACHE_STRIPES; i++) pthread_mutex_destroy(&a->token_mu[i]);
    pthread_mutex_destroy(&a->mu);
}

static unsigned long token_hash(const char *t) {
    unsigned long h = 1469598103934665603UL;
    for (const unsigned char *s = (const unsigned char *)t; *s; s++) h = (h ^ *s) * 1099511628211UL;
    return h;
}

/* A new reference to the cached claims of exactly this token, or NULL. */
static json_t *token_cache_get(struct svc_auth *a, const char *token, long now_s) {
    unsigned long h = token_hash(token);
    struct svc_token_cache_entry *e = &a->tokens[h % SVC_TOKEN_CACHE_SLOTS];
    pthread_mutex_t *mu = &a->token_mu[h % SVC_TOKEN_CACHE_STRIPES];
    json_t *claims = NULL;
    pthread_mutex_lock(mu);
    if (e->token && e->valid_until_s > now_s && strcmp(e->token, token) == 0) claims = json_incref(e->claims);
    pthread_mutex_unlock(mu);
    return claims;
}

static void token_cache_put(struct svc_auth *a, const char *token, json_t *claims, long now_s) {
    json_int_t exp = json_integer_value(json_object_get(claims, "exp"));
    long until = now_s + SVC_TOKEN_CACHE_MAX_S;
    if (exp < until) until = (long)exp;
    if (until <= now_s) return;
    char *copy = strdup(token);
    if (!copy) return;
    unsigned long h = token_hash(token);
    struct svc_token_cache_entry *e = &a->tokens[h % SVC_TOKEN_CACHE_SLOTS];
    pthread_mutex_t *mu = &a->token_mu[h % SVC_TOKEN_CACHE_STRIPES];
    pthread_mutex_lock(mu);
    char *old_token = e->token;
    json_t *old_claims = e->claims;
    e->token = copy;
    e->claims = json_incref(claims);
    e->valid_until_s = until;
    pthread_mutex_unlock(mu);
    free(old_token);
    json_decref(old_claims);
}

void svc_principal_clear(struct svc_principal *p) {
    json_decref(p->permissions);
    p->permissions = NULL;
}

static unsigned slot_of(const char *sid) {
    unsigned h = 2166136261u;
    for (const unsigned char *s = (const unsigned char *)sid; *s; s++) h = (h ^ *s) * 16777619u;
    return h % SVC_SESSION_CACHE_SLOTS;
}

static bool cache_hit(struct svc_auth *a, const char *sid, long now) {
    if (a->session_cache_ms <= 0) return false;
    unsigned i = slot_of(sid);
    pthread_mutex_lock(&a->mu);
    bool hit = !strcmp(a->cache[i].sid, sid) && a->cache[i].valid_until_ms > now;
    pthread_mutex_unlock(&a->mu);
    return hit;
}

static void cache_put(struct svc_auth *a, const char *sid, long now) {
    if (a->session_cache_ms <= 0) return;
    unsigned i = slot_of(sid);
    pthread_mutex_lock(&a->mu);
    snprintf(a->cache[i].sid, sizeof a->cache[i].sid, "%s", sid);
    a->cache[i].valid_until_ms = now + a->session_cache_ms;
    pthread_mutex_unlock(&a->mu);
}

void svc_auth_forget_session(struct svc_auth *a, const char *sid) {
    unsigned i = slot_of(sid);
    pthread_mutex_lock(&a->mu);
    if (!strcmp(a->cache[i].sid, sid)) a->cache[i].valid_until_ms = 0;
    pthread_mutex_unlock(&a->mu);
}

static void unauthorized(struct svc_req *r, const char *code, const char *msg) {
    char h[160];
    snprintf(h, sizeof h, "Bearer realm=\"platform\", error=\"invalid_token\", error_description=\"%s\"", code);
    svc_set_header(r, "WWW-Authenticate", h);
    svc_respond_error(r, 401, code, msg, NULL);
}

static void copy_claim(json_t *claims, const char *name, char *out, size_t n) {
    const char *v = json_string_value(json_object_get(claims, name));
    snprintf(out, n, "%s", v ? v : "");
}

bool svc_authenticate(struct svc_auth *a, struct svc_req *r, struct svc_principal *p) {
    memset(p, 0, sizeof *p);
    const char *h = svc_header(r, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0 || !h[7]) {
        unauthorized(r, "missing_token", "a Bearer access token is required");
        return false;
    }
    const char *token = h + 7;
    while (*token == ' ') token++;
    long now_s = (long)time(NULL);
    json_t *claims = strlen(token) <= SVC_JWT_MAX_TOKEN_LEN ? token_cache_get(a, token, now_s) : NULL;
    svc_jwt_err e = SVC_JWT_OK;
    if (!claims) {
        struct svc_jwt_expect exp = {a->issuer, a->audience, 0, a->leeway_s};
        e = svc_jwt_verify(a->keys, token, &exp, &claims);
        if (e == SVC_JWT_OK) token_cache_put(a, token, claims, now_s);
    }
    if (e != SVC_JWT_OK) {
        if (e == SVC_JWT_INTERNAL) {
            svc_respond_status(r, SVC_INTERNAL, "token verification failed");
            return false;
        }
        unauthorized(r, svc_jwt_err_code(e), svc_jwt_err_message(e));
        return false;
    }
    copy_claim(claims, "sub", p->sub, sizeof p->sub);
    copy_claim(claims, "sid", p->sid, sizeof p->sid);
    copy_claim(claims, "jti", p->jti, sizeof p->jti);
    copy_claim(claims, "role", p->role, sizeof p->role);
    p->exp = (long)json_integer_value(json_object_get(claims, "exp"));
    json_t *perms = json_object_get(claims, "permissions");
    p->permissions = json_is_array(perms) ? json_incref(perms) : json_array();
    json_decref(claims);
    p->is_service = !strcmp(p->role, "service");
    p->is_admin = !strcmp(p->role, "admin");
    if (!p->sub[0] || (!p->is_service && !p->sid[0])) {
        svc_principal_clear(p);
        unauthorized(r, "token_malformed", "the token lacks required claims");
        return false;
    }
    if (!p->is_service) {
        long now = svc_now_ms();
        if (!cache_hit(a, p->sid, now)) {
            svc_status st;
            redisReply *rep = svc_redis_command(a->app->redis, &st, "EXISTS session:%s", p->sid);
            if (!rep || rep->type != REDIS_REPLY_INTEGER) {
                if (rep) freeReplyObject(rep);
                svc_principal_clear(p);
                struct svc_result res = SVC_RESULT_ERR(SVC_UNAVAILABLE, "session_store_unavailable",
                                                       "cannot check the session right now");
                svc_respond_result(r, &res);
                return false;
            }
            long long exists = rep->integer;
            freeReplyObject(rep);
            if (!exists) {
                svc_principal_clear(p);
                unauthorized(r, "session_revoked", "the session has ended; log in again");
                return false;
            }
            cache_put(a, p->sid, now);
        }
    }
    r->auth = p;
    return true;
}

bool svc_authenticate_service(struct svc_auth *a, struct svc_req *r, struct svc_principal *p) {
    if (!svc_authenticate(a, r, p)) return false;
    if (!p->is_service) {
        svc_principal_clear(p);
        svc_respond_error(r, 403, "forbidden", "this endpoint is for service tokens only", NULL);
        return false;
    }
    return true;
}

void svc_respond_as(struct svc_req *r, struct svc_principal *who, struct svc_result *res) {
    svc_principal_clear(who);
    svc_respond_result(r, res);
}
