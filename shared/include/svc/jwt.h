/* JSON Web Tokens for the platform: RS256 only, keys identified by their RFC 7638 thumbprint.
 *
 * customers-service signs access tokens with its private key; every service verifies them with
 * the public keys it has loaded. Key rotation: load the new private key for signing and keep the
 * old public keys loaded (svc_jwt_keys_add_public_pem_file / svc_jwt_keys_load_dir) until the last
 * token signed with them has expired; each token names its key with the "kid" header.
 *
 * The algorithm is pinned to RS256: the token header's "alg" must be exactly "RS256" and is never
 * used to choose a verification method, so "none" and HS256-with-the-public-key tokens fail.
 *
 * Ownership and threads: a keyset is filled once at start (add_* / load_dir), then is read-only
 * and may be shared by any number of threads calling svc_jwt_sign / svc_jwt_verify /
 * svc_jwt_jwks concurrently without locking (each call uses its own OpenSSL contexts). Adding keys
 * while other threads use the keyset is not allowed. svc_jwt_keys_free releases it. */
#ifndef SVC_JWT_H
#define SVC_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

/* Longest token accepted by svc_jwt_verify, in bytes; longer ones are token_malformed. */
#define SVC_JWT_MAX_TOKEN_LEN 8192
/* A kid is the base64url (no padding) of a SHA-256 digest: 43 characters. */
#define SVC_JWT_KID_LEN 43

typedef enum {
    SVC_JWT_OK = 0,
    SVC_JWT_MALFORMED,        /* token_malformed: not three base64url parts of JSON objects, too
                                 long, "crit" header, bad "typ", exp missing or not a number */
    SVC_JWT_ALG_NOT_ALLOWED,  /* token_alg_not_allowed: "alg" missing or not exactly "RS256" */
    SVC_JWT_UNKNOWN_KID,      /* token_unknown_kid: "kid" missing or not one of our keys */
    SVC_JWT_BAD_SIGNATURE,    /* token_bad_signature */
    SVC_JWT_EXPIRED,          /* token_expired: exp <= now - leeway */
    SVC_JWT_NOT_YET_VALID,    /* token_not_yet_valid: nbf or iat > now + leeway */
    SVC_JWT_BAD_ISSUER,       /* token_bad_issuer: iss missing or different */
    SVC_JWT_BAD_AUDIENCE,     /* token_bad_audience: aud missing or not containing ours */
    SVC_JWT_INTERNAL          /* internal_error: out of memory, OpenSSL failure, bad arguments */
} svc_jwt_err;

/* Stable machine-readable code ("token_expired", ...) for error envelopes and metrics labels. */
const char *svc_jwt_err_code(svc_jwt_err e);
/* Short English sentence for the error envelope's message ("the token has expired"). */
const char *svc_jwt_err_message(svc_jwt_err e);

struct svc_jwt_keys;

/* A new empty keyset, or NULL when out of memory. */
struct svc_jwt_keys *svc_jwt_keys_new(void);
void svc_jwt_keys_free(struct svc_jwt_keys *keys);

/* The following return 0 on success, -1 on failure with a one-line reason in err (which never
 * contains key material). Keys must be RSA with 2048 to 8192 bits. Encrypted PEMs are refused
 * (no passphrase prompt). Adding a key whose kid is already loaded is a no-op success, so the
 * public half of the signing key may also sit in the public-keys directory. */

/* Load a private key PEM (PKCS#8 or PKCS#1) as THE signing key; its public half also becomes a
 * verification key. Fails if a signing key is already set. */
int svc_jwt_keys_add_private_pem_file(struct svc_jwt_keys *keys, const char *path, char *err,
                                      size_t errlen);
/* Load a public key PEM (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY") for verification only. */
int svc_jwt_keys_add_public_pem_file(struct svc_jwt_keys *keys, const char *path, char *err,
                                     size_t errlen);
/* Load every regular file named "*.pub.pem" in dir as a public key (other files are ignored, so
 * the private key may live in the same directory). Fails on the first bad file, or if dir cannot
 * be read. Loading zero files is a success (the caller checks svc_jwt_keys_count). */
int svc_jwt_keys_load_dir(struct svc_jwt_keys *keys, const char *dir, char *err, size_t errlen);

/* Number of verification keys loaded. */
size_t svc_jwt_keys_count(const struct svc_jwt_keys *keys);
/* kid of the signing key (borrowed, valid while the keyset lives), or NULL when there is none. */
const char *svc_jwt_keys_signing_kid(const struct svc_jwt_keys *keys);

/* Sign claims (borrowed, must be a JSON object; not modified) with the signing key.
 * The header is {"alg":"RS256","typ":"JWT","kid":"<signing kid>"}. The caller sets every claim
 * (iss, sub, aud, iat, exp, ...). Returns a new string the caller frees with free(), or NULL when
 * there is no signing key, claims is not an object, or on failure. */
char *svc_jwt_sign(const struct svc_jwt_keys *keys, const json_t *claims);

/* What a valid token must say. issuer and audience are required (NULL → SVC_JWT_INTERNAL). */
struct svc_jwt_expect {
    const char *issuer;    /* "iss" must equal this */
    const char *audience;  /* "aud" must equal this, or be an array containing it */
    time_t now;            /* 0 = time(NULL) */
    int leeway_s;          /* clock skew allowed on exp / nbf / iat, seconds (>= 0) */
};

/* Verify token (NUL-terminated, borrowed) in this order: size and three base64url parts; header
 * is a JSON object without "crit" and with "typ" absent or "JWT"; "alg" is exactly "RS256"; "kid"
 * names a loaded key; the signature; the payload is a JSON object; exp (required), nbf, iat; iss;
 * aud. On SVC_JWT_OK and claims_out != NULL, *claims_out receives a new reference to the claims
 * (caller json_decref). On any error *claims_out is set to NULL. */
svc_jwt_err svc_jwt_verify(const struct svc_jwt_keys *keys, const char *token,
                           const struct svc_jwt_expect *expect, json_t **claims_out);

/* The public JWK Set for GET /.well-known/jwks.json:
 * {"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":…,"n":…,"e":…}, …]} in load order.
 * Returns a new reference (caller json_decref), or NULL when out of memory. */
json_t *svc_jwt_jwks(const struct svc_jwt_keys *keys);

#endif
