/* Basic auth, failure counting and CSRF for the operator dashboard (see dash_auth.h). */
#include "dash_auth.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc/cid.h"
#include "svc/crypto.h"

static void sha256(const void *data, size_t len, unsigned char out[32]) {
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, svc_sha256_md(), NULL);
}

void dash_auth_init(struct dash_auth *a, struct svc_config *c) {
    memset(a, 0, sizeof *a);
    a->enabled = svc_config_bool(c, "ENABLE_QUEUE_DASHBOARD", false);
    const char *user = svc_config_str(c, "QUEUE_DASHBOARD_USER", "");
    const char *pw = svc_config_str(c, "QUEUE_DASHBOARD_PASSWORD", "");
    if (!a->enabled) return;
    if (!user || !*user || strlen(user) >= sizeof a->user || strchr(user, ':'))
        svc_config_error(c, "QUEUE_DASHBOARD_USER", "required when the dashboard is on (1-127 characters, no ':')");
    else
        snprintf(a->user, sizeof a->user, "%s", user);
    if (!pw || strlen(pw) < 12) {
        svc_config_error(c, "QUEUE_DASHBOARD_PASSWORD_FILE", "required when the dashboard is on (at least 12 characters)");
        return;
    }
    sha256(pw, strlen(pw), a->pw_digest);
    size_t n = strlen(pw);
    char *salted = malloc(n + 6);
    if (!salted) {
        svc_config_error(c, "QUEUE_DASHBOARD_PASSWORD_FILE", "out of memory");
        return;
    }
    memcpy(salted, "csrf:", 5);
    memcpy(salted + 5, pw, n + 1);
    sha256(salted, n + 5, a->csrf_key);
    OPENSSL_cleanse(salted, n + 5);
    free(salted);
}

bool dash_auth_basic_ok(const struct dash_auth *a, const char *authorization) {
    if (!a->enabled || !authorization || strncasecmp(authorization, "Basic ", 6) != 0) return false;
    const char *b64 = authorization + 6;
    while (*b64 == ' ') b64++;
    size_t len = strlen(b64);
    if (len == 0 || len > 1024 || len % 4 != 0) return false;
    unsigned char buf[800];
    int n = EVP_DecodeBlock(buf, (const unsigned char *)b64, (int)len);
    if (n < 0) return false;
    /* EVP_DecodeBlock counts the padding as zero bytes */
    if (len >= 1 && b64[len - 1] == '=') n--;
    if (len >= 2 && b64[len - 2] == '=') n--;
    unsigned char *colon = memchr(buf, ':', (size_t)n);
    if (!colon) return false;
    size_t ulen = (size_t)(colon - buf), plen = (size_t)n - ulen - 1;
    /* compare digests, so the comparison takes the same time whatever the lengths */
    unsigned char ud[32], want_ud[32], pd[32];
    sha256(buf, ulen, ud);
    sha256(a->user, strlen(a->user), want_ud);
    sha256(colon + 1, plen, pd);
    OPENSSL_cleanse(buf, sizeof buf);
    int bad = CRYPTO_memcmp(ud, want_ud, 32) | CRYPTO_memcmp(pd, a->pw_digest, 32);
    return bad == 0;
}

static bool is_hex_len(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i])) return false;
    return true;
}

bool dash_auth_session_from_cookie(const char *cookie, char out[DASH_SESSION_LEN + 1]) {
    static const char name[] = "dash_session=";
    for (const char *p = cookie; p && *p;) {
        while (*p == ' ' || *p == ';') p++;
        if (!strncmp(p, name, sizeof name - 1)) {
            const char *v = p + sizeof name - 1;
            size_t n = strcspn(v, ";");
            while (n && v[n - 1] == ' ') n--;
            if (n != DASH_SESSION_LEN || !is_hex_len(v, n)) return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = strchr(p, ';');
    }
    return false;
}

int dash_auth_new_session(char out[DASH_SESSION_LEN + 1]) {
    unsigned char r[DASH_SESSION_LEN / 2];
    if (svc_random_bytes(r, sizeof r) != 0) return -1;
    for (size_t i = 0; i < sizeof r; i++) snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

void dash_auth_csrf_token(const struct dash_auth *a, const char *session, char out[DASH_TOKEN_LEN + 1]) {
    unsigned char mac[32];
    unsigned int n = sizeof mac;
    HMAC(svc_sha256_md(), a->csrf_key, sizeof a->csrf_key, (const unsigned char *)session, strlen(session), mac, &n);
    for (size_t i = 0; i < sizeof mac; i++) snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

bool dash_auth_csrf_ok(const struct dash_auth *a, const char *session, const char *token) {
    if (!session || !token || strlen(token) != DASH_TOKEN_LEN) return false;
    char want[DASH_TOKEN_LEN + 1];
    dash_auth_csrf_token(a, session, want);
    return CRYPTO_memcmp(want, token, DASH_TOKEN_LEN) == 0;
}

bool dash_auth_same_origin(const char *origin, const char *sec_fetch_site, const char *proto, const char *host) {
    if (sec_fetch_site && *sec_fetch_site && strcmp(sec_fetch_site, "same-origin") != 0) return false;
    if (!origin || !*origin) return true;
    if (!host || !*host) return false;
    char own[512];
    int n = snprintf(own, sizeof own, "%s://%s", proto && !strcasecmp(proto, "https") ? "https" : "http", host);
    return n > 0 && (size_t)n < sizeof own && !strcasecmp(origin, own);
}

/* ---- failed logins, per client address, in Redis ---- */

static void fail_key(char *out, size_t n, const char *ip) {
    char h[SVC_SHA256_HEX_LEN + 1];
    svc_sha256_hex(ip, strlen(ip), h);   /* an address is personal data: only its hash is stored */
    snprintf(out, n, "dash:fail:%.32s", h);
}

svc_status dash_auth_failures(struct svc_redis_pool *pool, const char *ip, long *count, long *retry_after_s) {
    char key[64];
    fail_key(key, sizeof key, ip);
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s",
                                      "return {redis.call('GET', KEYS[1]) or '0', redis.call('PTTL', KEYS[1])}", key);
    if (!r) return st;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[0]->type == REDIS_REPLY_STRING &&
        r->element[1]->type == REDIS_REPLY_INTEGER) {
        *count = strtol(r->element[0]->str, NULL, 10);
        long long ms = r->element[1]->integer;
        *retry_after_s = ms > 0 ? (long)((ms + 999) / 1000) : 1;
    } else {
        st = SVC_UNAVAILABLE;
    }
    freeReplyObject(r);
    return st;
}

svc_status dash_auth_fail(struct svc_redis_pool *pool, const char *ip) {
    char key[64], window[16];
    fail_key(key, sizeof key, ip);
    snprintf(window, sizeof window, "%d", DASH_FAILURE_WINDOW_MS);
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "EVAL %s 1 %s %s",
                                      "redis.call('SET', KEYS[1], 0, 'NX', 'PX', ARGV[1]) "
                                      "return redis.call('INCR', KEYS[1])",
                                      key, window);
    if (!r) return st;
    if (r->type != REDIS_REPLY_INTEGER) st = SVC_UNAVAILABLE;
    freeReplyObject(r);
    return st;
}
