/* Brute-force protection for password guesses: failed attempts are counted in Redis per account
 * and per client IP over a fixed window; past a threshold the guess is refused with 429 and
 * Retry-After, even with the right password, until the window ends. Two callers share the same
 * counters: login (sessions.c) and the current_password of a user changing their own password
 * (users.c), so a stolen access token does not open a second, unthrottled way to guess.
 *
 * The account is the user's id when the login names an existing user, so failures by user name and
 * by email count together; for an unknown login it is a SHA-256 of the lower-cased login (never the
 * login itself: Redis holds no user names or emails). Keys: "loginfail:acct:{id or sha256}",
 * "loginfail:ip:{ip}".
 * If Redis is unavailable the guard fails open (logins proceed, and the failure is logged):
 * refusing every login while Redis is down would be a worse outage than a paused limiter. */
#ifndef CUSTOMERS_LOGIN_GUARD_H
#define CUSTOMERS_LOGIN_GUARD_H

#include "ctx.h"

#define LOGIN_GUARD_KEY_LEN 65

/* The account key: user_id when known (non-NULL), else a digest of the lower-cased login. */
void login_guard_account(const char *user_id, const char *login, char out[LOGIN_GUARD_KEY_LEN]);
/* 0 when allowed; otherwise the number of seconds to wait. */
long login_guard_check(struct customers_ctx *cx, const char *cid, const char *account, const char *ip);
void login_guard_failed(struct customers_ctx *cx, const char *account, const char *ip);
void login_guard_succeeded(struct customers_ctx *cx, const char *account);
/* The refusal while locked out: 429 too_many_attempts with Retry-After (retry_after_s) and
 * details.retry_after, both = wait. */
struct svc_result login_guard_refusal(long wait);

#endif
