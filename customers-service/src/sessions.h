/* Authentication use cases: login, refresh with rotation and reuse detection, logout, service
 * tokens, and session revocation. No HTTP here.
 *
 * A session lives in Redis as hash "session:{sid}" {uid, rh} with the refresh TTL; "rh" is the
 * SHA-256 of the current refresh token, so a Redis dump leaks no usable token. Rotated hashes go
 * to set "session_used:{sid}": presenting one of them again means the token was stolen or
 * replayed, and the whole session is deleted. "user_sessions:{uid}" lists a user's sids so that
 * deleting a user (or changing their password or role) revokes all of them.
 * Refresh token format: "{sid}.{43 chars of base64url(32 random bytes)}".
 * Access tokens are signed by svc/jwt.h and carry sid; every service checks the session exists. */
#ifndef CUSTOMERS_SESSIONS_H
#define CUSTOMERS_SESSIONS_H

#include <jansson.h>

#include "ctx.h"

struct svc_result sessions_login(struct customers_ctx *cx, const char *cid, const char *client_ip, const json_t *body);
struct svc_result sessions_refresh(struct customers_ctx *cx, const char *cid, const json_t *body);
struct svc_result sessions_logout(struct customers_ctx *cx, const char *cid, const struct svc_principal *who);
struct svc_result sessions_client_token(struct customers_ctx *cx, const char *cid, const json_t *body);
/* Revokes every session of the user. Returns 0, or -1 when Redis could not be reached (logged). */
int sessions_revoke_user(struct customers_ctx *cx, const char *cid, const char *user_id);
/* A user's password, role or permissions changed: their sessions end so new tokens carry the
 * new state. */
void sessions_note_user_changed(struct customers_ctx *cx, const char *cid, const char *user_id, bool password);

#endif
