/* Argon2id password hashes (PHC strings) and the password policy; see password.h.
 *
 * Stored hashes are parsed here before libargon2 sees them, strictly: exactly
 * "$argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash>" with decimal numbers without leading zeros,
 * parameters within the PASSWORD_MAX_* bounds, and base64 (standard alphabet, unpadded) salt and
 * hash. The same parser drives password_needs_rehash, so "verifies" and "is current" can never
 * disagree about what a hash says. Comparison of the recomputed hash is libargon2's constant-time
 * compare inside argon2id_verify. */
#include "password.h"

#include <string.h>

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "svc/utf8.h"

struct phc {
    uint32_t m, t, p;
    size_t salt_len, hash_len;
};

#define PASSWORD_MIN_SALT 16u
#define PASSWORD_MAX_SALT 64u
#define PASSWORD_MIN_HASH 16u
#define PASSWORD_MAX_HASH 64u

bool password_params_valid(const struct password_params *p) {
    return p && p->parallelism >= 1 && p->parallelism <= PASSWORD_MAX_PARALLELISM &&
           p->t_cost >= 1 && p->t_cost <= PASSWORD_MAX_T_COST &&
           p->m_cost_kib >= 8 * p->parallelism && p->m_cost_kib <= PASSWORD_MAX_M_COST_KIB &&
           p->salt_len >= PASSWORD_MIN_SALT && p->salt_len <= PASSWORD_MAX_SALT &&
           p->hash_len >= PASSWORD_MIN_HASH && p->hash_len <= PASSWORD_MAX_HASH;
}

/* ---------------------------------------------------------------- PHC parsing */

/* A decimal uint32 without sign or leading zero at *s; advances *s. */
static bool parse_u32(const char **s, uint32_t *out) {
    const char *c = *s;
    if (*c < '0' || *c > '9' || (c[0] == '0' && c[1] >= '0' && c[1] <= '9')) return false;
    uint64_t v = 0;
    while (*c >= '0' && *c <= '9') {
        v = v * 10 + (uint64_t)(*c - '0');
        if (v > UINT32_MAX) return false;
        c++;
    }
    *out = (uint32_t)v;
    *s = c;
    return true;
}

static bool expect_lit(const char **s, const char *lit) {
    size_t n = strlen(lit);
    if (strncmp(*s, lit, n) != 0) return false;
    *s += n;
    return true;
}

static bool is_b64(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Length in bytes of the unpadded base64 run at *s up to stop ('$' or NUL); advances *s. */
static bool b64_run(const char **s, char stop, size_t *bytes) {
    const char *c = *s;
    while (*c && *c != stop) {
        if (!is_b64(*c)) return false;
        c++;
    }
    if (*c != stop) return false;
    size_t len = (size_t)(c - *s);
    if (len == 0 || len % 4 == 1) return false;
    *bytes = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    *s = c;
    return true;
}

static bool phc_parse(const char *encoded, struct phc *out) {
    if (!encoded) return false;
    const char *s = encoded;
    if (!expect_lit(&s, "$argon2id$v=19$m=") || !parse_u32(&s, &out->m) ||
        !expect_lit(&s, ",t=") || !parse_u32(&s, &out->t) || !expect_lit(&s, ",p=") ||
        !parse_u32(&s, &out->p) || !expect_lit(&s, "$") || !b64_run(&s, '$', &out->salt_len) ||
        !expect_lit(&s, "$") || !b64_run(&s, '\0', &out->hash_len))
        return false;
    return out->p >= 1 && out->p <= PASSWORD_MAX_PARALLELISM && out->t >= 1 &&
           out->t <= PASSWORD_MAX_T_COST && out->m >= 8 * out->p &&
           out->m <= PASSWORD_MAX_M_COST_KIB && out->salt_len >= ARGON2_MIN_SALT_LENGTH &&
           out->salt_len <= PASSWORD_MAX_SALT && out->hash_len >= PASSWORD_MIN_HASH &&
           out->hash_len <= PASSWORD_MAX_HASH;
}

/* ---------------------------------------------------------------- hashing */

int password_hash(const struct password_params *p, const char *pw, char *out, size_t outlen) {
    if (!password_params_valid(p) || !pw || !out) return -1;
    size_t pwlen = strlen(pw);
    if (pwlen > PASSWORD_MAX_BYTES) return -1;
    size_t need = argon2_encodedlen(p->t_cost, p->m_cost_kib, p->parallelism, p->salt_len,
                                    p->hash_len, Argon2_id);
    if (need > outlen) return -1;

    unsigned char salt[PASSWORD_MAX_SALT];
    if (RAND_bytes(salt, (int)p->salt_len) != 1) return -1;
    int rc = argon2id_hash_encoded(p->t_cost, p->m_cost_kib, p->parallelism, pw, pwlen, salt,
                                   p->salt_len, p->hash_len, out, outlen);
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rc != ARGON2_OK) {
        OPENSSL_cleanse(out, outlen);
        return -1;
    }
    return 0;
}

bool password_verify(const char *encoded, const char *pw) {
    struct phc phc;
    if (!pw || !phc_parse(encoded, &phc)) return false;
    size_t pwlen = strlen(pw);
    if (pwlen > PASSWORD_MAX_BYTES) return false;
    return argon2id_verify(encoded, pw, pwlen) == ARGON2_OK;
}

bool password_needs_rehash(const char *encoded, const struct password_params *current) {
    struct phc phc;
    if (!phc_parse(encoded, &phc) || !current) return true;
    return phc.m < current->m_cost_kib || phc.t < current->t_cost ||
           phc.p != current->parallelism || phc.salt_len < current->salt_len ||
           phc.hash_len < current->hash_len;
}

void password_verify_dummy(const struct password_params *p, const char *pw) {
    struct password_params dp = password_params_valid(p) ? *p : PASSWORD_PARAMS_OWASP;
    const char *pwd = pw ? pw : "";
    size_t pwlen = strlen(pwd);
    if (pwlen > PASSWORD_MAX_BYTES) pwlen = PASSWORD_MAX_BYTES;
    /* A fixed salt is fine: the output is thrown away; only the work matters. */
    unsigned char salt[PASSWORD_MAX_SALT] = {0};
    unsigned char out[PASSWORD_MAX_HASH];
    (void)argon2id_hash_raw(dp.t_cost, dp.m_cost_kib, dp.parallelism, pwd, pwlen, salt,
                            dp.salt_len, out, dp.hash_len);
    OPENSSL_cleanse(out, sizeof(out));
}

/* ---------------------------------------------------------------- policy */

static bool ascii_case_equal(const char *a, const char *b) {
    for (;; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return false;
        if (x == '\0') return true;
    }
}

bool password_policy_check(const char *pw, const char *user_name, const char *email,
                           const char **reason) {
    const char *why = NULL;
    long n = pw ? svc_utf8_count(pw, strlen(pw)) : -1;
    if (!pw)
        why = "password is required";
    else if (n < 0)
        why = "password must be valid UTF-8 text";
    else if (n < PASSWORD_MIN_CHARS)
        why = "password must be at least 8 characters long";
    else if (n > PASSWORD_MAX_CHARS)
        why = "password must be at most 128 characters long";
    else if (user_name && *user_name && ascii_case_equal(pw, user_name))
        why = "password must not be the same as the user name";
    else if (email && *email && ascii_case_equal(pw, email))
        why = "password must not be the same as the email address";
    if (reason) *reason = why;
    return why == NULL;
}
