/* Bearer-token authentication shared by every service.
 *
 * A request is authenticated when its access token verifies (svc/jwt.h: RS256 pinned, kid known,
 * exp/nbf/iss/aud checked) AND, for user tokens, its session ("sid") still exists in Redis. Logout
 * deletes the session, so every service rejects that session's tokens. To keep a Redis round trip
 * off most requests, a positive session lookup is cached in-process for at most SESSION_CACHE_MS
 * (≤ 1000 ms): revocation takes effect everywhere within that bound. Service tokens (role
 * "service", issued by POST /api/auth/token) have no session and live only minutes.
 *
 * Verifying an RS256 signature is the main CPU cost of a request, and a client sends the same
 * token many times, so a verified token's claims are cached in-process, keyed by the exact token
 * text, until the token's own exp (at most SVC_TOKEN_CACHE_MAX_S). A cache hit is as strict as a
 * full verification: only a byte-identical token that already passed every check can hit, and it
 * stops hitting when it expires. The session check still runs (with its own ≤ 1 s cache).
 *
 * Redis key: "session:{sid}" (a hash written by customers-service).
 *
 * Synchronisation: the session cache is a fixed table guarded by one mutex; keys and settings
 * are read-only after svc_auth_init. Ownership: the keyset belongs to struct svc_auth;
 * a principal owns its permissions array (svc_principal_clear releases it). */
#ifndef SVC_AUTH_H
#define SVC_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include "svc/http.h"
#include "svc/jwt.h"

struct svc_app;

#define SVC_SESSION_CACHE_SLOTS 1024
#define SVC_TOKEN_CACHE_SLOTS 2048
#define SVC_TOKEN_CACHE_STRIPES 16
#define SVC_TOKEN_CACHE_MAX_S 300

struct svc_session_cache_entry {
    char sid[40];
    long valid_until_ms;
};

struct svc_token_cache_entry {
    char *token;             /* owned copy of the exact token text */
    long valid_until_s;      /* wall-clock seconds: min(exp, cached_at + SVC_TOKEN_CACHE_MAX_S) */
    json_t *claims;          /* owned; jansson reference counts are atomic, so readers incref */
};

struct svc_auth {
    struct svc_jwt_keys *keys;
    const char *issuer;
    const char *audience;
    int leeway_s;
    long session_cache_ms;
    struct svc_app *app;
    pthread_mutex_t mu;
    struct svc_session_cache_entry cache[SVC_SESSION_CACHE_SLOTS];
    pthread_mutex_t token_mu[SVC_TOKEN_CACHE_STRIPES];
    struct svc_token_cache_entry tokens[SVC_TOKEN_CACHE_SLOTS];
};

struct svc_principal {
    char sub[64];
    char sid[40];
    char jti[64];
    char role[16];
    json_t *permissions;     /* owned array */
    long exp;
    bool is_service;
    bool is_admin;
};

/* Reads JWT_ISSUER, JWT_AUDIENCE, JWT_LEEWAY_S, JWT_PUBLIC_KEYS_DIR (every *.pub.pem in it),
 * JWT_PRIVATE_KEY_FILE (only when with_private: the signing key) and SESSION_CACHE_MS from the
 * app's config; problems are recorded as config errors. */
int svc_auth_init(struct svc_auth *a, struct svc_app *app, bool with_private);
void svc_auth_free(struct svc_auth *a);

/* Authenticates r. On success fills p, sets r->auth = p and returns true. On failure answers
 * 401 (with WWW-Authenticate) or 503 (session store down) itself and returns false. */
bool svc_authenticate(struct svc_auth *a, struct svc_req *r, struct svc_principal *p);
/* As svc_authenticate, and additionally requires role "service" (403 otherwise). */
bool svc_authenticate_service(struct svc_auth *a, struct svc_req *r, struct svc_principal *p);
void svc_principal_clear(struct svc_principal *p);

/* For handlers: declares `struct svc_principal who` and authenticates r against auth, returning
 * from the handler when that fails (the 401/503 has been answered). Release `who` with
 * svc_respond_as or svc_principal_clear. */
#define SVC_AUTHENTICATED(auth, r, who)                                                            \
    struct svc_principal who;                                                                      \
    if (!svc_authenticate((auth), (r), &who)) return

/* Answers a use case's result (svc_respond_result, which takes ownership of res) and releases the
 * principal. */
void svc_respond_as(struct svc_req *r, struct svc_principal *who, struct svc_result *res);
/* Drop a session from this process's cache at once (used by the service that revokes it). */
void svc_auth_forget_session(struct svc_auth *a, const char *sid);

#endif
