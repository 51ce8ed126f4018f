/* Password hashing and password policy for customers-service.
 *
 * Hashes are Argon2id (libargon2) stored as self-describing PHC strings
 * ("$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>"), so the cost parameters travel with each hash:
 * raising them later only affects new hashes, and password_needs_rehash() tells the login path
 * when to re-hash a password it has just verified. Defaults are OWASP's minimum for Argon2id
 * (m = 19 MiB, t = 2, p = 1), about 25 ms per hash on this machine.
 *
 * Timing: password_verify compares in constant time (libargon2's verify), and for an unknown user
 * the login path calls password_verify_dummy, which costs the same as a real verify, so "no such
 * user" and "wrong password" cannot be told apart by response time.
 *
 * All functions are thread-safe (no shared state); each hash allocates m KiB for its duration.
 * Passwords are never logged or kept: buffers that held derived material are wiped. */
#ifndef CUSTOMERS_PASSWORD_H
#define CUSTOMERS_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct password_params {
    uint32_t m_cost_kib;  /* memory per hash, KiB */
    uint32_t t_cost;      /* passes over memory */
    uint32_t parallelism; /* lanes */
    uint32_t salt_len;    /* random salt bytes */
    uint32_t hash_len;    /* output bytes */
};

/* OWASP Password Storage Cheat Sheet minimum for Argon2id. */
#define PASSWORD_PARAMS_OWASP                                                                      \
    ((struct password_params){                                                                     \
        .m_cost_kib = 19456, .t_cost = 2, .parallelism = 1, .salt_len = 16, .hash_len = 32})

/* Accepted parameter ranges, for new hashes and for stored ones (a corrupted or hostile stored
 * hash cannot make a verify allocate more than PASSWORD_MAX_M_COST_KIB). */
#define PASSWORD_MAX_M_COST_KIB (1024u * 1024u) /* 1 GiB */
#define PASSWORD_MAX_T_COST 64u
#define PASSWORD_MAX_PARALLELISM 16u

/* Buffer size that fits any string password_hash writes. */
#define PASSWORD_ENCODED_MAX 256
/* Longest password, in bytes, hash and verify accept (the policy's 128 code points are at most
 * 512 bytes of UTF-8); bounds the work an oversized input can cause. */
#define PASSWORD_MAX_BYTES 1024
/* Policy limits, in Unicode code points. */
#define PASSWORD_MIN_CHARS 8
#define PASSWORD_MAX_CHARS 128

/* true when p is within the accepted ranges (m >= 8 * p, salt and hash 16..64 bytes). */
bool password_params_valid(const struct password_params *p);

/* Hash pw with a fresh random salt (OpenSSL RAND_bytes) into out as a NUL-terminated PHC string.
 * Returns 0, or -1 when the params are invalid, pw is NULL or longer than PASSWORD_MAX_BYTES,
 * out is too small (PASSWORD_ENCODED_MAX always suffices), or randomness/hashing fails. */
int password_hash(const struct password_params *p, const char *pw, char *out, size_t outlen);

/* true only when encoded is a well-formed $argon2id$v=19$ hash (parameters within the accepted
 * ranges) of pw. Any other algorithm, version or malformed string is false. */
bool password_verify(const char *encoded, const char *pw);

/* true when encoded should be replaced by a fresh password_hash(current, …): it is malformed, not
 * Argon2id v19, or weaker than current (lower m or t, different p, shorter salt or hash). */
bool password_needs_rehash(const char *encoded, const struct password_params *current);

/* Spend the time of a password_verify against a hash made with p, and discard the result.
 * For logins of unknown users. pw may be NULL (an empty password is hashed instead). */
void password_verify_dummy(const struct password_params *p, const char *pw);

/* Policy for a new password: valid UTF-8, PASSWORD_MIN_CHARS..PASSWORD_MAX_CHARS code points
 * (not bytes: "é" counts as one), and not equal, ignoring ASCII case, to the user name or the
 * email (either may be NULL to skip that check). No normalisation and no composition rules
 * (NIST SP 800-63B). Returns true when acceptable; otherwise false and *reason (if reason is not
 * NULL) points to a static English sentence suitable for an error message. */
bool password_policy_check(const char *pw, const char *user_name, const char *email,
                           const char **reason);

#endif
