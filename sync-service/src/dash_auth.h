/* The operator dashboard's own authentication: HTTP basic auth against one configured operator,
 * failed attempts counted per client address in Redis, and CSRF protection of its POSTs.
 *
 * Design: the dashboard is off unless ENABLE_QUEUE_DASHBOARD=true. The operator's password is
 * read once (QUEUE_DASHBOARD_PASSWORD_FILE) and only its SHA-256 is kept; a check hashes the
 * presented password and compares both the user and the digest in constant time, so neither the
 * timing nor the length of a guess tells anything. CSRF: the page sets a random session cookie
 * (dash_session, HttpOnly, SameSite=Strict) and carries the token HMAC-SHA256(key, session) where
 * key is derived from the password, so every instance behind Nginx computes the same token with no
 * shared state; a POST must carry the cookie and the token (X-CSRF-Token) and, when the browser
 * says where it comes from (Origin, Sec-Fetch-Site), come from the dashboard's own origin.
 *
 * Synchronisation: struct dash_auth is immutable after dash_auth_init (any thread may use it);
 * the failure counters live in Redis (shared by every instance).
 * Ownership: strings passed in are borrowed for the call; outputs are caller buffers. */
#ifndef DASH_AUTH_H
#define DASH_AUTH_H

#include <stdbool.h>

#include "svc/config.h"
#include "svc/redisx.h"
#include "svc/status.h"

#define DASH_SESSION_LEN 32         /* hex characters of a session id */
#define DASH_TOKEN_LEN 64           /* hex characters of a CSRF token */
#define DASH_MAX_FAILURES 10        /* failed logins per address and window before 429 */
#define DASH_FAILURE_WINDOW_MS 60000

struct dash_auth {
    bool enabled;
    char user[128];
    unsigned char pw_digest[32];
    unsigned char csrf_key[32];
};

/* Reads ENABLE_QUEUE_DASHBOARD, QUEUE_DASHBOARD_USER and QUEUE_DASHBOARD_PASSWORD(_FILE); problems
 * (on but no user or password, a password under 12 characters) are config errors. */
void dash_auth_init(struct dash_auth *a, struct svc_config *c);

/* Whether an Authorization header value ("Basic base64(user:password)") names the operator. */
bool dash_auth_basic_ok(const struct dash_auth *a, const char *authorization);

/* The session id in a Cookie header value (dash_session=<32 hex>) copied to out, or false. */
bool dash_auth_session_from_cookie(const char *cookie, char out[DASH_SESSION_LEN + 1]);
/* A new random session id. */
int dash_auth_new_session(char out[DASH_SESSION_LEN + 1]);
/* The CSRF token of a session. */
void dash_auth_csrf_token(const struct dash_auth *a, const char *session, char out[DASH_TOKEN_LEN + 1]);
/* Whether token is the session's token (constant time). */
bool dash_auth_csrf_ok(const struct dash_auth *a, const char *session, const char *token);
/* Whether a state-changing request comes from the dashboard's own origin: Sec-Fetch-Site, when
 * present, is same-origin, and Origin, when present, is <proto>://<host> of the request. Any
 * argument may be NULL. */
bool dash_auth_same_origin(const char *origin, const char *sec_fetch_site, const char *proto, const char *host);

/* Failed logins of ip in the current window: SVC_OK with *count and *retry_after_s (seconds until
 * the window ends); Redis errors as svc/redisx.h. */
svc_status dash_auth_failures(struct svc_redis_pool *pool, const char *ip, long *count, long *retry_after_s);
/* Counts one failed login of ip (the window starts at the first). */
svc_status dash_auth_fail(struct svc_redis_pool *pool, const char *ip);

#endif
