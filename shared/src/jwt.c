/* RS256 JSON Web Tokens on OpenSSL 3 EVP, without libjwt.
 *
 * Why not libjwt: Debian 12's libjwt 1.10 picks the verification algorithm from the token's own
 * header, so an HS256 token HMAC'd with our public key PEM as the secret verifies against that PEM
 * (algorithm confusion), it checks no claims, and it re-parses the key PEM on every decode.
 * Verification runs on every authenticated request of every service, so it must be both strict and
 * cheap: here the algorithm is pinned (the header's "alg" is only compared with "RS256", never
 * used to select anything), the keys are parsed once at load into EVP_PKEYs, and a verify is one
 * SHA-256 plus one RSA public operation with e = 65537 (PKCS#1 v1.5) — tens of thousands per second
 * per core (test_jwt prints the figure).
 *
 * Keys are named by their RFC 7638 JWK thumbprint (base64url of SHA-256 over the canonical
 * {"e":…,"kty":"RSA","n":…}), so the kid is derived from the key itself: the same key always has
 * the same kid on every instance, and no kid can be shared by two different keys.
 *
 * Decoding is strict on purpose: base64url without padding and with zero trailing bits (one token
 * has exactly one encoding), JSON with duplicate keys rejected (no "alg" given twice), and the
 * payload is parsed only after its signature has been checked. */
#include "svc/jwt.h"
#include "svc/b64url.h"
#include "svc/crypto.h"
#include "svc/json_text.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#define JWT_MIN_BITS 2048
#define JWT_MAX_BITS 8192
#define JWT_MAX_SIG_BYTES (JWT_MAX_BITS / 8)
/* Largest decoded part of a token that fits in SVC_JWT_MAX_TOKEN_LEN. */
#define JWT_MAX_PART_BYTES (SVC_JWT_MAX_TOKEN_LEN / 4 * 3 + 3)

struct jwt_key {
    EVP_PKEY *pkey;                  /* owned reference; used for verification only */
    char kid[SVC_JWT_KID_LEN + 1];
    char *n_b64;                     /* base64url modulus, owned */
    char *e_b64;                     /* base64url public exponent, owned */
    size_t sig_len;                  /* modulus size in bytes = RS256 signature length */
};

struct svc_jwt_keys {
    struct jwt_key *v;
    size_t n, cap;
    EVP_PKEY *signing;               /* owned; NULL when this keyset only verifies */
    size_t signing_idx;              /* index in v of the signing key's public half */
};

/* ---------------------------------------------------------------- error codes */

const char *svc_jwt_err_code(svc_jwt_err e) {
    switch (e) {
    case SVC_JWT_OK: return "ok";
    case SVC_JWT_MALFORMED: return "token_malformed";
    case SVC_JWT_ALG_NOT_ALLOWED: return "token_alg_not_allowed";
    case SVC_JWT_UNKNOWN_KID: return "token_unknown_kid";
    case SVC_JWT_BAD_SIGNATURE: return "token_bad_signature";
    case SVC_JWT_EXPIRED: return "token_expired";
    case SVC_JWT_NOT_YET_VALID: return "token_not_yet_valid";
    case SVC_JWT_BAD_ISSUER: return "token_bad_issuer";
    case SVC_JWT_BAD_AUDIENCE: return "token_bad_audience";
    case SVC_JWT_INTERNAL: return "internal_error";
    }
    return "internal_error";
}

const char *svc_jwt_err_message(svc_jwt_err e) {
    switch (e) {
    case SVC_JWT_OK: return "the token is valid";
    case SVC_JWT_MALFORMED: return "the token is malformed";
    case SVC_JWT_ALG_NOT_ALLOWED: return "the token's signing algorithm is not allowed";
    case SVC_JWT_UNKNOWN_KID: return "the token was not signed by a known key";
    case SVC_JWT_BAD_SIGNATURE: return "the token's signature is invalid";
    case SVC_JWT_EXPIRED: return "the token has expired";
    case SVC_JWT_NOT_YET_VALID: return "the token is not valid yet";
    case SVC_JWT_BAD_ISSUER: return "the token was issued by an unexpected issuer";
    case SVC_JWT_BAD_AUDIENCE: return "the token is not meant for this service";
    case SVC_JWT_INTERNAL: return "the token could not be checked";
    }
    return "the token could not be checked";
}

/* ---------------------------------------------------------------- JWK numbers */

/* A new NUL-terminated base64url string of a big number's unsigned big-endian bytes. */
static char *bn_to_b64url(const BIGNUM *bn) {
    int nb = BN_num_bytes(bn);
    if (nb <= 0) return NULL;
    unsigned char *buf = malloc((size_t)nb);
    size_t outlen = svc_b64url_len((size_t)nb) + 1;
    char *out = malloc(outlen);
    if (!buf || !out || BN_bn2bin(bn, buf) != nb) {
        free(buf);
        free(out);
        return NULL;
    }
    svc_b64url_encode(buf, (size_t)nb, out, outlen);
    free(buf);
    return out;
}

/* ---------------------------------------------------------------- keyset */

struct svc_jwt_keys *svc_jwt_keys_new(void) {
    return calloc(1, sizeof(struct svc_jwt_keys));
}

static void key_clear(struct jwt_key *k) {
    EVP_PKEY_free(k->pkey);
    free(k->n_b64);
    free(k->e_b64);
    memset(k, 0, sizeof(*k));
}

void svc_jwt_keys_free(struct svc_jwt_keys *keys) {
    if (!keys) return;
    for (size_t i = 0; i < keys->n; i++) key_clear(&keys->v[i]);
    free(keys->v);
    EVP_PKEY_free(keys->signing);
    free(keys);
}

size_t svc_jwt_keys_count(const struct svc_jwt_keys *keys) {
    return keys ? keys->n : 0;
}

const char *svc_jwt_keys_signing_kid(const struct svc_jwt_keys *keys) {
    if (!keys || !keys->signing) return NULL;
    return keys->v[keys->signing_idx].kid;
}

/* Fill k's kid, n, e and sig_len from an RSA key (k->pkey is not touched). */
static int key_describe(EVP_PKEY *pkey, struct jwt_key *k, const char *path, char *err,
                        size_t errlen) {
    BIGNUM *n = NULL, *e = NULL;
    char *canon = NULL;
    int rc = -1;

    if (!EVP_PKEY_is_a(pkey, "RSA")) {
        snprintf(err, errlen, "%s: not an RSA key (RS256 needs RSA)", path);
        goto out;
    }
    int bits = EVP_PKEY_get_bits(pkey);
    if (bits < JWT_MIN_BITS || bits > JWT_MAX_BITS) {
        snprintf(err, errlen, "%s: RSA key has %d bits, need %d to %d", path, bits, JWT_MIN_BITS,
                 JWT_MAX_BITS);
        goto out;
    }
    if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
        snprintf(err, errlen, "%s: cannot read the RSA modulus and exponent", path);
        goto out;
    }
    k->n_b64 = bn_to_b64url(n);
    k->e_b64 = bn_to_b64url(e);
    if (!k->n_b64 || !k->e_b64) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    /* RFC 7638: required members only, lexicographic order, no whitespace. */
    size_t clen = strlen(k->n_b64) + strlen(k->e_b64) + 32;
    canon = malloc(clen);
    if (!canon) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    int w = snprintf(canon, clen, "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", k->e_b64, k->n_b64);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (w < 0 || (size_t)w >= clen ||
        EVP_Digest(canon, (size_t)w, md, &mdlen, svc_sha256_md(), NULL) != 1 || mdlen != 32) {
        snprintf(err, errlen, "%s: cannot compute the key thumbprint", path);
        goto out;
    }
    svc_b64url_encode(md, mdlen, k->kid, sizeof k->kid);
    int size = EVP_PKEY_get_size(pkey);
    if (size <= 0 || size > JWT_MAX_SIG_BYTES) {
        snprintf(err, errlen, "%s: unexpected RSA signature size", path);
        goto out;
    }
    k->sig_len = (size_t)size;
    rc = 0;
out:
    BN_free(n);
    BN_free(e);
    free(canon);
    if (rc != 0) {
        free(k->n_b64);
        free(k->e_b64);
        k->n_b64 = k->e_b64 = NULL;
    }
    return rc;
}

static ssize_t keys_find(const struct svc_jwt_keys *keys, const char *kid, size_t kidlen) {
    if (kidlen != SVC_JWT_KID_LEN) return -1;
    for (size_t i = 0; i < keys->n; i++)
        if (memcmp(keys->v[i].kid, kid, SVC_JWT_KID_LEN) == 0) return (ssize_t)i;
    return -1;
}

/* Add pkey as a verification key; takes a new reference on success. *idx receives its index
 * (the existing one when the kid was already loaded). */
static int keys_add(struct svc_jwt_keys *keys, EVP_PKEY *pkey, const char *path, size_t *idx,
                    char *err, size_t errlen) {
    struct jwt_key k = {0};
    if (key_describe(pkey, &k, path, err, errlen) != 0) return -1;
    ssize_t found = keys_find(keys, k.kid, strlen(k.kid));
    if (found >= 0) {
        key_clear(&k);
        *idx = (size_t)found;
        return 0;
    }
    if (keys->n == keys->cap) {
        size_t cap = keys->cap ? keys->cap * 2 : 4;
        struct jwt_key *v = realloc(keys->v, cap * sizeof(*v));
        if (!v) {
            key_clear(&k);
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        keys->v = v;
        keys->cap = cap;
    }
    if (EVP_PKEY_up_ref(pkey) != 1) {
        key_clear(&k);
        snprintf(err, errlen, "%s: cannot reference the key", path);
        return -1;
    }
    k.pkey = pkey;
    keys->v[keys->n] = k;
    *idx = keys->n++;
    return 0;
}

/* Never prompt for a passphrase: an encrypted key file is a configuration error. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
    return -1;
}

static EVP_PKEY *pem_read(const char *path, bool private_key, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    EVP_PKEY *pkey = private_key ? PEM_read_PrivateKey(f, NULL, no_passphrase, NULL)
                                 : PEM_read_PUBKEY(f, NULL, no_passphrase, NULL);
    fclose(f);
    ERR_clear_error();
    if (!pkey)
        snprintf(err, errlen, "%s: not an unencrypted PEM %s", path,
                 private_key ? "private key" : "public key (BEGIN PUBLIC KEY)");
    return pkey;
}

int svc_jwt_keys_add_private_pem_file(struct svc_jwt_keys *keys, const char *path, char *err,
                                      size_t errlen) {
    if (!keys || !path) {
        snprintf(err, errlen, "no keyset or path");
        return -1;
    }
    if (keys->signing) {
        snprintf(err, errlen, "%s: a signing key is already loaded", path);
        return -1;
    }
    EVP_PKEY *pkey = pem_read(path, true, err, errlen);
    if (!pkey) return -1;
    size_t idx;
    if (keys_add(keys, pkey, path, &idx, err, errlen) != 0) {
        EVP_PKEY_free(pkey);
        return -1;
    }
    keys->signing = pkey;
    keys->signing_idx = idx;
    return 0;
}

int svc_jwt_keys_add_public_pem_file(struct svc_jwt_keys *keys, const char *path, char *err,
                                     size_t errlen) {
    if (!keys || !path) {
        snprintf(err, errlen, "no keyset or path");
        return -1;
    }
    EVP_PKEY *pkey = pem_read(path, false, err, errlen);
    if (!pkey) return -1;
    size_t idx;
    int rc = keys_add(keys, pkey, path, &idx, err, errlen);
    EVP_PKEY_free(pkey);
    return rc;
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int svc_jwt_keys_load_dir(struct svc_jwt_keys *keys, const char *dir, char *err, size_t errlen) {
    static const char suffix[] = ".pub.pem";
    const size_t slen = sizeof(suffix) - 1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;

    if (!keys || !dir) {
        snprintf(err, errlen, "no keyset or directory");
        return -1;
    }
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open directory: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len <= slen || strcmp(de->d_name + len - slen, suffix) != 0) continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (!nn) goto oom;
            names = nn;
            cap = ncap;
        }
        if (!(names[n] = strdup(de->d_name))) goto oom;
        n++;
    }
    closedir(d);
    d = NULL;
    /* Sorted so every instance loads the same keys in the same order (stable JWKS). */
    if (n > 1) qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        int w = snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        if (w < 0 || (size_t)w >= sizeof(path)) {
            snprintf(err, errlen, "%s: path too long", dir);
            goto out;
        }
        struct stat st;
        if (stat(path, &st) != 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (!S_ISREG(st.st_mode)) continue;
        if (svc_jwt_keys_add_public_pem_file(keys, path, err, errlen) != 0) goto out;
    }
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "%s: out of memory", dir);
out:
    if (d) closedir(d);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* ---------------------------------------------------------------- sign */

char *svc_jwt_sign(const struct svc_jwt_keys *keys, const json_t *claims) {
    if (!keys || !keys->signing || !json_is_object(claims)) return NULL;
    const struct jwt_key *k = &keys->v[keys->signing_idx];
    char header[96];
    int hlen = snprintf(header, sizeof(header), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                        k->kid);
    if (hlen < 0 || (size_t)hlen >= sizeof(header)) return NULL;

    char *payload = json_dumps(claims, JSON_COMPACT);
    if (!payload) return NULL;
    size_t plen = strlen(payload);
    size_t total = svc_b64url_len((size_t)hlen) + 1 + svc_b64url_len(plen) + 1 + svc_b64url_len(k->sig_len);
    if (total > SVC_JWT_MAX_TOKEN_LEN) { /* it would never verify */
        free(payload);
        return NULL;
    }
    char *out = malloc(total + 1);
    unsigned char sig[JWT_MAX_SIG_BYTES];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL; /* owned by ctx */
    char *result = NULL;
    if (!out || !ctx) goto out;

    size_t pos = svc_b64url_encode((const unsigned char *)header, (size_t)hlen, out, total + 1);
    out[pos++] = '.';
    pos += svc_b64url_encode((const unsigned char *)payload, plen, out + pos, total + 1 - pos);
    if (EVP_DigestSignInit_ex(ctx, &pctx, "SHA256", NULL, NULL, keys->signing, NULL) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1 ||
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out, pos) != 1 ||
        siglen != k->sig_len)
        goto out;
    out[pos++] = '.';
    svc_b64url_encode(sig, siglen, out + pos, total + 1 - pos);
    result = out;
    out = NULL;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    free(out);
    free(payload);
    return result;
}

/* ---------------------------------------------------------------- verify */

static bool json_str_eq(const json_t *v, const char *s) {
    size_t len = strlen(s);
    return json_is_string(v) && json_string_length(v) == len &&
           memcmp(json_string_value(v), s, len) == 0;
}

/* Checks the time claims, iss and aud of a payload whose signature is already verified. */
static svc_jwt_err claims_check(const json_t *claims, const struct svc_jwt_expect *expect) {
    double now = (double)(expect->now ? expect->now : time(NULL));
    double leeway = expect->leeway_s > 0 ? (double)expect->leeway_s : 0.0;

    const json_t *exp = json_object_get(claims, "exp");
    if (!json_is_number(exp)) return SVC_JWT_MALFORMED;
    if (json_number_value(exp) <= now - leeway) return SVC_JWT_EXPIRED;

    const json_t *nbf = json_object_get(claims, "nbf");
    if (nbf) {
        if (!json_is_number(nbf)) return SVC_JWT_MALFORMED;
        if (json_number_value(nbf) > now + leeway) return SVC_JWT_NOT_YET_VALID;
    }
    const json_t *iat = json_object_get(claims, "iat");
    if (iat) {
        if (!json_is_number(iat)) return SVC_JWT_MALFORMED;
        if (json_number_value(iat) > now + leeway) return SVC_JWT_NOT_YET_VALID;
    }

    if (!json_str_eq(json_object_get(claims, "iss"), expect->issuer)) return SVC_JWT_BAD_ISSUER;

    const json_t *aud = json_object_get(claims, "aud");
    if (json_is_array(aud)) {
        size_t i;
        const json_t *a;
        json_array_foreach(aud, i, a) {
            if (json_str_eq(a, expect->audience)) return SVC_JWT_OK;
        }
        return SVC_JWT_BAD_AUDIENCE;
    }
    return json_str_eq(aud, expect->audience) ? SVC_JWT_OK : SVC_JWT_BAD_AUDIENCE;
}

/* Decode one base64url part into buf and parse it as a JSON object (new reference or NULL). */
static json_t *part_json(const char *part, size_t len, unsigned char *buf, size_t cap) {
    size_t n;
    if (len == 0 || svc_b64url_decode(part, len, buf, cap, &n) != 0) return NULL;
    json_t *v = svc_json_load(buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (v && !json_is_object(v)) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static svc_jwt_err signature_check(const struct jwt_key *k, const char *signed_part,
                                   size_t signed_len, const char *sig_b64, size_t sig_b64_len) {
    unsigned char sig[JWT_MAX_SIG_BYTES];
    size_t siglen;
    if (sig_b64_len > svc_b64url_len(sizeof(sig))) return SVC_JWT_BAD_SIGNATURE; /* longer than any */
    if (svc_b64url_decode(sig_b64, sig_b64_len, sig, sizeof(sig), &siglen) != 0)
        return SVC_JWT_MALFORMED;
    if (siglen != k->sig_len) return SVC_JWT_BAD_SIGNATURE;

    svc_jwt_err rc = SVC_JWT_INTERNAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL; /* owned by ctx */
    if (!ctx) goto out;
    if (EVP_DigestVerifyInit_ex(ctx, &pctx, "SHA256", NULL, NULL, k->pkey, NULL) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto out;
    rc = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)signed_part, signed_len) == 1
             ? SVC_JWT_OK
             : SVC_JWT_BAD_SIGNATURE;
out:
    ERR_clear_error();
    EVP_MD_CTX_free(ctx);
    return rc;
}

svc_jwt_err svc_jwt_verify(const struct svc_jwt_keys *keys, const char *token,
                           const struct svc_jwt_expect *expect, json_t **claims_out) {
    if (claims_out) *claims_out = NULL;
    if (!keys || !expect || !expect->issuer || !expect->audience) return SVC_JWT_INTERNAL;
    if (!token) return SVC_JWT_MALFORMED;
    size_t len = strnlen(token, SVC_JWT_MAX_TOKEN_LEN + 1);
    if (len == 0 || len > SVC_JWT_MAX_TOKEN_LEN) return SVC_JWT_MALFORMED;

    const char *dot1 = memchr(token, '.', len);
    if (!dot1) return SVC_JWT_MALFORMED;
    const char *dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
    if (!dot2) return SVC_JWT_MALFORMED;
    const char *end = token + len;
    if (memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1))) return SVC_JWT_MALFORMED;

    unsigned char buf[JWT_MAX_PART_BYTES];
    json_t *header = part_json(token, (size_t)(dot1 - token), buf, sizeof(buf));
    if (!header) return SVC_JWT_MALFORMED;

    svc_jwt_err rc;
    json_t *claims = NULL;
    const json_t *typ = json_object_get(header, "typ");
    if (json_object_get(header, "crit") ||
        (typ && !(json_is_string(typ) && strcasecmp(json_string_value(typ), "JWT") == 0 &&
                  json_string_length(typ) == 3))) {
        rc = SVC_JWT_MALFORMED;
        goto out;
    }
    if (!json_str_eq(json_object_get(header, "alg"), "RS256")) {
        rc = SVC_JWT_ALG_NOT_ALLOWED;
        goto out;
    }
    const json_t *kid = json_object_get(header, "kid");
    ssize_t idx = json_is_string(kid)
                      ? keys_find(keys, json_string_value(kid), json_string_length(kid))
                      : -1;
    if (idx < 0) {
        rc = SVC_JWT_UNKNOWN_KID;
        goto out;
    }
    rc = signature_check(&keys->v[idx], token, (size_t)(dot2 - token), dot2 + 1,
                         (size_t)(end - dot2 - 1));
    if (rc != SVC_JWT_OK) goto out;

    claims = part_json(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf, sizeof(buf));
    if (!claims) {
        rc = SVC_JWT_MALFORMED;
        goto out;
    }
    rc = claims_check(claims, expect);
    if (rc == SVC_JWT_OK && claims_out) {
        *claims_out = claims;
        claims = NULL;
    }
out:
    json_decref(header);
    json_decref(claims);
    return rc;
}

/* ---------------------------------------------------------------- JWKS */

json_t *svc_jwt_jwks(const struct svc_jwt_keys *keys) {
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (size_t i = 0; keys && i < keys->n; i++) {
        const struct jwt_key *k = &keys->v[i];
        json_t *jwk = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "use", "sig", "alg",
                                "RS256", "kid", k->kid, "n", k->n_b64, "e", k->e_b64);
        if (!jwk || json_array_append_new(arr, jwk) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    json_t *jwks = json_object();
    if (!jwks || json_object_set_new(jwks, "keys", arr) != 0) { /* set_new consumes arr */
        json_decref(jwks);
        return NULL;
    }
    return jwks;
}
