/* Specification of svc/jwt.h: RS256 only, kid = RFC 7638 thumbprint, strict claims.
 *
 * Keys are generated at test time with EVP_RSA_gen into a private temporary directory. Tokens
 * for the attack cases (alg none, HS256 keyed with the public PEM, a foreign key reusing our kid)
 * are forged here with OpenSSL directly and an independent base64url built on EVP_EncodeBlock, so
 * the module under test is never used to build its own adversarial input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "svc/jwt.h"

#define ISS "https://auth.test.local"
#define AUD "platform-api"
#define NOW ((time_t)1800000000)

struct fixture {
    char dir[64];
    char a_priv[128], a_pub[128], b_priv[128], b_pub[128], weak_pub[128], junk[128];
    EVP_PKEY *a, *b;
    struct svc_jwt_keys *ka; /* signs with A */
};

/* ------------------------------------------------------------------ helpers */

/* base64url via OpenSSL's standard base64, translated; independent of the module's encoder. */
static char *b64u(const void *data, size_t len) {
    char *out = malloc(4 * ((len + 2) / 3) + 1);
    assert_non_null(out);
    int n = EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    assert_true(n >= 0);
    while (n > 0 && out[n - 1] == '=') n--;
    out[n] = '\0';
    for (char *p = out; *p; p++) {
        if (*p == '+') *p = '-';
        else if (*p == '/') *p = '_';
    }
    return out;
}

static unsigned char *b64u_decode(const char *s, size_t *outlen) {
    size_t len = strlen(s), padded = (len + 3) / 4 * 4;
    char *tmp = malloc(padded + 1);
    unsigned char *out = malloc(padded);
    assert_non_null(tmp);
    assert_non_null(out);
    for (size_t i = 0; i < padded; i++) {
        char c = i < len ? s[i] : '=';
        tmp[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    tmp[padded] = '\0';
    int n = EVP_DecodeBlock(out, (unsigned char *)tmp, (int)padded);
    assert_true(n >= 0);
    *outlen = (size_t)n - (padded - len); /* EVP_DecodeBlock counts padding as zero bytes */
    free(tmp);
    return out;
}

static char *join3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 3;
    char *s = malloc(n);
    assert_non_null(s);
    snprintf(s, n, "%s.%s.%s", a, b, c);
    return s;
}

/* An RS256 token over already-encoded parts, signed with key. */
static char *sign_parts(EVP_PKEY *key, const char *h, const char *p) {
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1);
    assert_non_null(input);
    snprintf(input, inlen + 1, "%s.%s", h, p);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);
    unsigned char sig[1024];
    size_t siglen = sizeof(sig);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestSign(ctx, sig, &siglen, (unsigned char *)input, inlen), 1);
    EVP_MD_CTX_free(ctx);
    char *s = b64u(sig, siglen);
    char *tok = join3(h, p, s);
    free(s);
    free(input);
    return tok;
}

/* An RS256 token over arbitrary header/payload JSON text, signed with key. */
static char *forge_rs256(EVP_PKEY *key, const char *header, const char *payload) {
    char *h = b64u(header, strlen(header)), *p = b64u(payload, strlen(payload));
    char *tok = sign_parts(key, h, p);
    free(h);
    free(p);
    return tok;
}

static char *forge_hs256(const void *secret, size_t secretlen, const char *header,
                         const char *payload) {
    char *h = b64u(header, strlen(header)), *p = b64u(payload, strlen(payload));
    size_t inlen = strlen(h) + 1 + strlen(p);
    char *input = malloc(inlen + 1);
    assert_non_null(input);
    snprintf(input, inlen + 1, "%s.%s", h, p);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    assert_non_null(HMAC(EVP_sha256(), secret, (int)secretlen, (unsigned char *)input, inlen, mac,
                         &maclen));
    char *s = b64u(mac, maclen);
    char *tok = join3(h, p, s);
    free(h);
    free(p);
    free(s);
    free(input);
    return tok;
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    assert_non_null(buf);
    *len = fread(buf, 1, 65535, f);
    fclose(f);
    return buf;
}

static json_t *claims_at(time_t now) {
    json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I}", "iss", ISS, "sub", "user-42", "aud", AUD,
                          "iat", (json_int_t)now, "exp", (json_int_t)(now + 900));
    assert_non_null(c);
    return c;
}

static struct svc_jwt_expect expect_at(time_t now) {
    return (struct svc_jwt_expect){.issuer = ISS, .audience = AUD, .now = now, .leeway_s = 30};
}

static char *payload_text(json_t *claims) {
    char *s = json_dumps(claims, JSON_COMPACT);
    assert_non_null(s);
    return s;
}

static char *header_for(const char *alg, const char *kid) {
    json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
    assert_non_null(h);
    if (kid) json_object_set_new(h, "kid", json_string(kid));
    char *s = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    return s;
}

static svc_jwt_err verify_now(const struct svc_jwt_keys *k, const char *tok) {
    struct svc_jwt_expect e = expect_at(NOW);
    json_t *claims = (json_t *)0x1;
    svc_jwt_err rc = svc_jwt_verify(k, tok, &e, &claims);
    if (rc != SVC_JWT_OK) assert_null(claims); /* never a half result */
    json_decref(claims);
    return rc;
}

/* Sign claims_at(NOW) after applying a mutation; returns the token (caller frees). */
static char *sign_claims(const struct svc_jwt_keys *k, json_t *claims) {
    char *tok = svc_jwt_sign(k, claims);
    assert_non_null(tok);
    json_decref(claims);
    return tok;
}

#define assert_err(got, want) assert_string_equal(svc_jwt_err_code(got), svc_jwt_err_code(want))

static void write_key_pair(EVP_PKEY *k, const char *priv, const char *pub) {
    FILE *f = fopen(priv, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    chmod(priv, 0600);
    f = fopen(pub, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PUBKEY(f, k), 1);
    fclose(f);
}

static struct svc_jwt_keys *keys_with(const char *priv, const char *pub1, const char *pub2) {
    struct svc_jwt_keys *k = svc_jwt_keys_new();
    char err[256];
    assert_non_null(k);
    if (priv) assert_int_equal(svc_jwt_keys_add_private_pem_file(k, priv, err, sizeof(err)), 0);
    if (pub1) assert_int_equal(svc_jwt_keys_add_public_pem_file(k, pub1, err, sizeof(err)), 0);
    if (pub2) assert_int_equal(svc_jwt_keys_add_public_pem_file(k, pub2, err, sizeof(err)), 0);
    return k;
}

static int group_setup(void **state) {
    struct fixture *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_jwt.XXXXXX");
    if (!mkdtemp(f->dir)) return -1;
    snprintf(f->a_priv, sizeof(f->a_priv), "%s/a.pem", f->dir);
    snprintf(f->a_pub, sizeof(f->a_pub), "%s/a.pub.pem", f->dir);
    snprintf(f->b_priv, sizeof(f->b_priv), "%s/b.pem", f->dir);
    snprintf(f->b_pub, sizeof(f->b_pub), "%s/b.pub.pem", f->dir);
    snprintf(f->weak_pub, sizeof(f->weak_pub), "%s/weak.pub", f->dir);
    snprintf(f->junk, sizeof(f->junk), "%s/junk.txt", f->dir);
    f->a = EVP_RSA_gen(2048);
    f->b = EVP_RSA_gen(2048);
    EVP_PKEY *weak = EVP_RSA_gen(1024);
    if (!f->a || !f->b || !weak) return -1;
    write_key_pair(f->a, f->a_priv, f->a_pub);
    write_key_pair(f->b, f->b_priv, f->b_pub);
    char weak_priv[160];
    snprintf(weak_priv, sizeof(weak_priv), "%s/weak.key", f->dir);
    write_key_pair(weak, weak_priv, f->weak_pub);
    EVP_PKEY_free(weak);
    FILE *j = fopen(f->junk, "w");
    if (!j) return -1;
    fputs("this is not a key\n", j);
    fclose(j);
    f->ka = keys_with(f->a_priv, NULL, NULL);
    *state = f;
    return 0;
}

static int group_teardown(void **state) {
    struct fixture *f = *state;
    const char *names[] = {"a.pem", "a.pub.pem", "b.pem", "b.pub.pem", "weak.key", "weak.pub",
                           "junk.txt"};
    char p[160];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
        unlink(p);
    }
    rmdir(f->dir);
    svc_jwt_keys_free(f->ka);
    EVP_PKEY_free(f->a);
    EVP_PKEY_free(f->b);
    free(f);
    return 0;
}

/* ------------------------------------------------------------------ round trip */

static void test_jwt_signed_token_verifies_and_returns_its_claims(void **state) {
    struct fixture *f = *state;
    char *tok = sign_claims(f->ka, claims_at(NOW));
    struct svc_jwt_expect e = expect_at(NOW);
    json_t *claims = NULL;
    assert_int_equal(svc_jwt_verify(f->ka, tok, &e, &claims), SVC_JWT_OK);
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "user-42");
    assert_int_equal(json_integer_value(json_object_get(claims, "exp")), NOW + 900);
    json_decref(claims);
    /* claims_out is optional */
    assert_int_equal(svc_jwt_verify(f->ka, tok, &e, NULL), SVC_JWT_OK);

    /* header is exactly alg/typ/kid with the signing kid */
    char *dot = strchr(tok, '.');
    *dot = '\0';
    size_t hlen;
    unsigned char *h = b64u_decode(tok, &hlen);
    json_t *hj = json_loadb((char *)h, hlen, 0, NULL);
    assert_non_null(hj);
    assert_int_equal(json_object_size(hj), 3);
    assert_string_equal(json_string_value(json_object_get(hj, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(hj, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(hj, "kid")),
                        svc_jwt_keys_signing_kid(f->ka));
    json_decref(hj);
    free(h);
    free(tok);
}

static void test_jwt_public_key_alone_verifies_but_cannot_sign(void **state) {
    struct fixture *f = *state;
    struct svc_jwt_keys *pub = keys_with(NULL, f->a_pub, NULL);
    assert_null(svc_jwt_keys_signing_kid(pub));
    json_t *c = claims_at(NOW);
    assert_null(svc_jwt_sign(pub, c));
    json_decref(c);
    char *tok = sign_claims(f->ka, claims_at(NOW));
    assert_err(verify_now(pub, tok), SVC_JWT_OK);
    free(tok);
    svc_jwt_keys_free(pub);
}

static void test_jwt_sign_refuses_non_object_claims(void **state) {
    struct fixture *f = *state;
    json_t *arr = json_array();
    assert_null(svc_jwt_sign(f->ka, arr));
    assert_null(svc_jwt_sign(f->ka, NULL));
    json_decref(arr);
}

/* ------------------------------------------------------------------ algorithm attacks */

static void test_jwt_alg_none_is_rejected(void **state) {
    struct fixture *f = *state;
    const char *kid = svc_jwt_keys_signing_kid(f->ka);
    char *hdr = header_for("none", kid);
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *h = b64u(hdr, strlen(hdr)), *p = b64u(pl, strlen(pl));
    char *unsigned_tok = join3(h, p, "");
    assert_err(verify_now(f->ka, unsigned_tok), SVC_JWT_ALG_NOT_ALLOWED);
    /* even carrying a valid RS256 signature over the same bytes */
    char *signed_tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, signed_tok), SVC_JWT_ALG_NOT_ALLOWED);
    free(hdr);
    free(pl);
    free(h);
    free(p);
    free(unsigned_tok);
    free(signed_tok);
    json_decref(c);
}

static void test_jwt_hs256_keyed_with_public_pem_is_rejected(void **state) {
    struct fixture *f = *state;
    size_t pemlen;
    char *pem = read_all(f->a_pub, &pemlen);
    char *hdr = header_for("HS256", svc_jwt_keys_signing_kid(f->ka));
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *tok = forge_hs256(pem, pemlen, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_ALG_NOT_ALLOWED);
    free(tok);
    free(hdr);
    free(pl);
    free(pem);
    json_decref(c);
}

static void test_jwt_only_exact_rs256_is_allowed(void **state) {
    struct fixture *f = *state;
    const char *kid = svc_jwt_keys_signing_kid(f->ka);
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    const char *algs[] = {"rs256", "RS384", "RS512", "PS256", "ES256", "RS256 ", ""};
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
        char *hdr = header_for(algs[i], kid);
        char *tok = forge_rs256(f->a, hdr, pl);
        assert_err(verify_now(f->ka, tok), SVC_JWT_ALG_NOT_ALLOWED);
        free(tok);
        free(hdr);
    }
    char hdr[160];
    snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"kid\":\"%s\"}", kid); /* no alg */
    char *tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_ALG_NOT_ALLOWED);
    free(tok);
    snprintf(hdr, sizeof(hdr), "{\"alg\":256,\"kid\":\"%s\"}", kid); /* alg not a string */
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_ALG_NOT_ALLOWED);
    free(tok);
    /* the control: the same forge with RS256 passes */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\"}", kid);
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_OK);
    free(tok);
    free(pl);
    json_decref(c);
}

static void test_jwt_header_with_duplicate_alg_is_malformed(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char hdr[200];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"alg\":\"none\",\"kid\":\"%s\"}",
             svc_jwt_keys_signing_kid(f->ka));
    char *tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
    free(pl);
    json_decref(c);
}

static void test_jwt_crit_header_or_foreign_typ_is_malformed(void **state) {
    struct fixture *f = *state;
    const char *kid = svc_jwt_keys_signing_kid(f->ka);
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char hdr[200];
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", kid);
    char *tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"JWE\"}", kid);
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\",\"typ\":\"jwt\"}", kid);
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_OK); /* typ is case-insensitive (RFC 7519 5.1) */
    free(tok);
    free(pl);
    json_decref(c);
}

/* ------------------------------------------------------------------ signature and kid */

static void test_jwt_payload_modified_after_signing_is_bad_signature(void **state) {
    struct fixture *f = *state;
    char *tok = sign_claims(f->ka, claims_at(NOW));
    char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
    *d1 = *d2 = '\0';
    json_t *c = claims_at(NOW);
    json_object_set_new(c, "sub", json_string("admin"));
    char *pl = payload_text(c);
    char *p = b64u(pl, strlen(pl));
    char *forged = join3(tok, p, d2 + 1);
    assert_err(verify_now(f->ka, forged), SVC_JWT_BAD_SIGNATURE);

    /* a single flipped signature character as well */
    *d1 = *d2 = '.';
    char *last = tok + strlen(tok) - 2;
    *last = *last == 'A' ? 'B' : 'A';
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_SIGNATURE);
    free(forged);
    free(p);
    free(pl);
    free(tok);
    json_decref(c);
}

static void test_jwt_other_key_reusing_our_kid_is_bad_signature(void **state) {
    struct fixture *f = *state;
    char *hdr = header_for("RS256", svc_jwt_keys_signing_kid(f->ka));
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *tok = forge_rs256(f->b, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_SIGNATURE);
    free(tok);
    free(hdr);
    free(pl);
    json_decref(c);
}

static void test_jwt_truncated_or_overlong_signature_is_bad_signature(void **state) {
    struct fixture *f = *state;
    char *tok = sign_claims(f->ka, claims_at(NOW));
    /* drop 4 characters (3 bytes) at the start of the signature: still canonical base64url */
    char *sig = strrchr(tok, '.') + 1;
    memmove(sig, sig + 4, strlen(sig + 4) + 1);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_SIGNATURE);
    free(tok);

    char *hdr = header_for("RS256", svc_jwt_keys_signing_kid(f->ka));
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *h = b64u(hdr, strlen(hdr)), *p = b64u(pl, strlen(pl));
    unsigned char big[2048];
    memset(big, 0x5a, sizeof(big));
    char *s = b64u(big, sizeof(big));
    char *forged = join3(h, p, s);
    assert_err(verify_now(f->ka, forged), SVC_JWT_BAD_SIGNATURE);
    free(forged);
    free(s);
    free(h);
    free(p);
    free(hdr);
    free(pl);
    json_decref(c);
}

static void test_jwt_unknown_or_missing_kid_is_unknown_kid(void **state) {
    struct fixture *f = *state;
    struct svc_jwt_keys *kb = keys_with(f->b_priv, NULL, NULL);
    char *tok = sign_claims(kb, claims_at(NOW));
    assert_err(verify_now(f->ka, tok), SVC_JWT_UNKNOWN_KID);
    free(tok);
    svc_jwt_keys_free(kb);

    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *hdr = header_for("RS256", NULL);
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_UNKNOWN_KID);
    free(tok);
    free(hdr);
    hdr = header_for("RS256", "");
    tok = forge_rs256(f->a, hdr, pl);
    assert_err(verify_now(f->ka, tok), SVC_JWT_UNKNOWN_KID);
    free(tok);
    free(hdr);
    free(pl);
    json_decref(c);
}

/* ------------------------------------------------------------------ claims */

static void test_jwt_expired_token_is_rejected_outside_leeway_only(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW - 1000);
    json_object_set_new(c, "exp", json_integer(NOW - 31));
    char *tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_EXPIRED);
    free(tok);

    c = claims_at(NOW - 1000);
    json_object_set_new(c, "exp", json_integer(NOW - 29)); /* inside the 30 s leeway */
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_OK);
    struct svc_jwt_expect strict = expect_at(NOW);
    strict.leeway_s = 0;
    assert_err(svc_jwt_verify(f->ka, tok, &strict, NULL), SVC_JWT_EXPIRED);
    free(tok);
}

static void test_jwt_missing_or_non_numeric_exp_is_malformed(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    json_object_del(c, "exp");
    char *tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
    c = claims_at(NOW);
    json_object_set_new(c, "exp", json_string("1900000000"));
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
}

static void test_jwt_nbf_or_iat_in_the_future_is_not_yet_valid(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    json_object_set_new(c, "nbf", json_integer(NOW + 120));
    char *tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_NOT_YET_VALID);
    free(tok);

    c = claims_at(NOW);
    json_object_set_new(c, "nbf", json_integer(NOW + 20)); /* clock skew within leeway */
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_OK);
    free(tok);

    c = claims_at(NOW + 3600); /* issued an hour from now */
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_NOT_YET_VALID);
    free(tok);

    c = claims_at(NOW);
    json_object_set_new(c, "nbf", json_string("soon"));
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
}

static void test_jwt_wrong_or_missing_issuer_is_bad_issuer(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    json_object_set_new(c, "iss", json_string("https://evil.example"));
    char *tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_ISSUER);
    free(tok);
    c = claims_at(NOW);
    json_object_set_new(c, "iss", json_string(ISS "/x")); /* our issuer as a prefix only */
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_ISSUER);
    free(tok);
    c = claims_at(NOW);
    json_object_set_new(c, "iss", json_stringn(ISS "\0x", sizeof(ISS) + 1)); /* embedded NUL */
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED); /* \u0000 is refused by the parser */
    free(tok);
    c = claims_at(NOW);
    json_object_del(c, "iss");
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_ISSUER);
    free(tok);
}

static void test_jwt_audience_must_match_or_be_listed(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    json_object_set_new(c, "aud", json_string("other-api"));
    char *tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_AUDIENCE);
    free(tok);

    c = claims_at(NOW);
    json_object_set_new(c, "aud", json_pack("[s,s]", "other-api", AUD));
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_OK);
    free(tok);

    c = claims_at(NOW);
    json_object_set_new(c, "aud", json_pack("[s,i]", "other-api", 7));
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_AUDIENCE);
    free(tok);

    c = claims_at(NOW);
    json_object_del(c, "aud");
    tok = sign_claims(f->ka, c);
    assert_err(verify_now(f->ka, tok), SVC_JWT_BAD_AUDIENCE);
    free(tok);
}

static void test_jwt_expectations_are_required(void **state) {
    struct fixture *f = *state;
    char *tok = sign_claims(f->ka, claims_at(NOW));
    struct svc_jwt_expect e = expect_at(NOW);
    e.audience = NULL;
    assert_err(svc_jwt_verify(f->ka, tok, &e, NULL), SVC_JWT_INTERNAL);
    assert_err(svc_jwt_verify(f->ka, tok, NULL, NULL), SVC_JWT_INTERNAL);
    /* now = 0 means the wall clock: a token issued now verifies */
    json_t *c = claims_at(time(NULL));
    char *fresh = sign_claims(f->ka, c);
    e = expect_at(0);
    assert_err(svc_jwt_verify(f->ka, fresh, &e, NULL), SVC_JWT_OK);
    free(fresh);
    free(tok);
}

/* ------------------------------------------------------------------ malformed input */

static void test_jwt_garbage_is_malformed(void **state) {
    struct fixture *f = *state;
    char *good = sign_claims(f->ka, claims_at(NOW));
    const char *bad[] = {"", "garbage", "a.b", "a.b.c.d", "..", "...", ".e30.", "e30", "!!.e30.x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_err(verify_now(f->ka, bad[i]), SVC_JWT_MALFORMED);
    assert_err(verify_now(f->ka, NULL), SVC_JWT_MALFORMED);

    size_t len = strlen(good);
    char *t = malloc(len + 8);
    assert_non_null(t);
    /* too many dots: append a fourth part */
    snprintf(t, len + 8, "%s.AAAA", good);
    assert_err(verify_now(f->ka, t), SVC_JWT_MALFORMED);
    /* standard-alphabet characters and padding are not base64url */
    snprintf(t, len + 8, "%s", good);
    t[1] = '+';
    assert_err(verify_now(f->ka, t), SVC_JWT_MALFORMED);
    snprintf(t, len + 8, "%s==", good);
    assert_err(verify_now(f->ka, t), SVC_JWT_MALFORMED);
    snprintf(t, len + 8, "%s", good);
    t[len - 1] = '/';
    assert_err(verify_now(f->ka, t), SVC_JWT_MALFORMED);
    /* a 2048-bit signature is 342 characters; 345 = 1 mod 4 cannot be base64 */
    snprintf(t, len + 8, "%sAAA", good);
    assert_err(verify_now(f->ka, t), SVC_JWT_MALFORMED);
    free(t);
    free(good);

    /* header that is JSON but not an object, and one that is not JSON */
    char *h1 = b64u("[1,2]", 5), *h2 = b64u("{\"alg\":", 7), *p = b64u("{}", 2);
    char *t1 = join3(h1, p, "AAAA"), *t2 = join3(h2, p, "AAAA");
    assert_err(verify_now(f->ka, t1), SVC_JWT_MALFORMED);
    assert_err(verify_now(f->ka, t2), SVC_JWT_MALFORMED);
    free(h1);
    free(h2);
    free(p);
    free(t1);
    free(t2);
}

/* Base64url with non-zero unused trailing bits decodes to the same bytes as the canonical
 * form; accepting it would make tokens malleable, so it is malformed even when validly signed. */
static void test_jwt_non_canonical_base64_is_malformed(void **state) {
    struct fixture *f = *state;
    char hdr[200];
    int w = snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"kid\":\"%s\"}",
                     svc_jwt_keys_signing_kid(f->ka));
    /* pad the JSON with spaces until its base64url ends in a partial group of 2 characters */
    char *h = b64u(hdr, (size_t)w);
    while (strlen(h) % 4 != 2) {
        free(h);
        hdr[w - 1] = ' ';
        hdr[w++] = '}';
        hdr[w] = '\0';
        h = b64u(hdr, (size_t)w);
    }
    json_t *c = claims_at(NOW);
    char *pl = payload_text(c);
    char *p = b64u(pl, strlen(pl));

    char *control = sign_parts(f->a, h, p);
    assert_err(verify_now(f->ka, control), SVC_JWT_OK);

    /* last character of a 2-character tail carries 4 unused bits: set the lowest one */
    char *h2 = strdup(h);
    assert_non_null(h2);
    char *last = h2 + strlen(h2) - 1;
    assert_non_null(strchr("AQgw", *last));
    *last = (char)(*last + 1);
    char *t1 = sign_parts(f->a, h2, p);
    assert_err(verify_now(f->ka, t1), SVC_JWT_MALFORMED);

    /* same for the payload, which is only decoded after the signature checked out */
    char *t2 = sign_parts(f->a, h, "e31"); /* "e30" is "{}" */
    assert_err(verify_now(f->ka, t2), SVC_JWT_MALFORMED);

    free(control);
    free(t1);
    free(t2);
    free(h2);
    free(h);
    free(p);
    free(pl);
    json_decref(c);
}

static void test_jwt_token_longer_than_limit_is_malformed(void **state) {
    struct fixture *f = *state;
    json_t *c = claims_at(NOW);
    char pad[7000];
    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    json_object_set_new(c, "pad", json_string(pad));
    json_t *copy = json_deep_copy(c);
    assert_null(svc_jwt_sign(f->ka, copy)); /* sign refuses what verify would refuse */
    json_decref(copy);
    char *hdr = header_for("RS256", svc_jwt_keys_signing_kid(f->ka));
    char *pl = payload_text(c);
    char *tok = forge_rs256(f->a, hdr, pl);
    assert_true(strlen(tok) > SVC_JWT_MAX_TOKEN_LEN);
    assert_err(verify_now(f->ka, tok), SVC_JWT_MALFORMED);
    free(tok);
    free(hdr);
    free(pl);
    json_decref(c);
}

/* ------------------------------------------------------------------ rotation and loading */

static void test_jwt_rotation_old_key_verifies_only_while_loaded(void **state) {
    struct fixture *f = *state;
    char *old_tok = sign_claims(f->ka, claims_at(NOW)); /* signed by A before rotation */

    struct svc_jwt_keys *rotated = keys_with(f->b_priv, f->a_pub, NULL);
    assert_int_equal(svc_jwt_keys_count(rotated), 2);
    assert_err(verify_now(rotated, old_tok), SVC_JWT_OK);
    char *new_tok = sign_claims(rotated, claims_at(NOW));
    assert_err(verify_now(rotated, new_tok), SVC_JWT_OK);
    assert_err(verify_now(f->ka, new_tok), SVC_JWT_UNKNOWN_KID); /* A-only keyset: unknown */

    struct svc_jwt_keys *retired = keys_with(f->b_priv, NULL, NULL);
    assert_err(verify_now(retired, old_tok), SVC_JWT_UNKNOWN_KID);
    assert_err(verify_now(retired, new_tok), SVC_JWT_OK);

    svc_jwt_keys_free(rotated);
    svc_jwt_keys_free(retired);
    free(old_tok);
    free(new_tok);
}

static void test_jwt_load_dir_reads_public_pems_and_skips_duplicates(void **state) {
    struct fixture *f = *state;
    char err[256];
    struct svc_jwt_keys *k = keys_with(f->a_priv, NULL, NULL);
    /* dir holds a.pub.pem (same kid as the signing key) and b.pub.pem; others are ignored */
    assert_int_equal(svc_jwt_keys_load_dir(k, f->dir, err, sizeof(err)), 0);
    assert_int_equal(svc_jwt_keys_count(k), 2);
    struct svc_jwt_keys *kb = keys_with(f->b_priv, NULL, NULL);
    char *tok = sign_claims(kb, claims_at(NOW));
    assert_err(verify_now(k, tok), SVC_JWT_OK);
    free(tok);
    svc_jwt_keys_free(kb);
    svc_jwt_keys_free(k);

    k = svc_jwt_keys_new();
    assert_int_equal(svc_jwt_keys_load_dir(k, "/nonexistent/keys", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/keys"));
    svc_jwt_keys_free(k);
}

static void test_jwt_bad_key_files_are_refused_with_a_reason(void **state) {
    struct fixture *f = *state;
    char err[256];
    struct svc_jwt_keys *k = svc_jwt_keys_new();
    assert_int_equal(svc_jwt_keys_add_public_pem_file(k, f->weak_pub, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "1024 bits"));
    assert_int_equal(svc_jwt_keys_add_public_pem_file(k, f->junk, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "public key"));
    assert_int_equal(svc_jwt_keys_add_private_pem_file(k, f->a_pub, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "private key"));
    assert_int_equal(svc_jwt_keys_add_public_pem_file(k, "/nonexistent.pem", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot open"));
    assert_int_equal(svc_jwt_keys_count(k), 0);
    assert_int_equal(svc_jwt_keys_add_private_pem_file(k, f->a_priv, err, sizeof(err)), 0);
    assert_int_equal(svc_jwt_keys_add_private_pem_file(k, f->b_priv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "already"));
    svc_jwt_keys_free(k);
}

/* ------------------------------------------------------------------ JWKS and kid */

static char *thumbprint_of(EVP_PKEY *key) {
    BIGNUM *n = NULL, *e = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &e), 1);
    unsigned char nb[1024], eb[16];
    int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
    char *n64 = b64u(nb, (size_t)nl), *e64 = b64u(eb, (size_t)el);
    char canon[2048];
    int w = snprintf(canon, sizeof(canon), "{\"e\":\"%s\",\"kty\":\"RSA\",\"n\":\"%s\"}", e64, n64);
    unsigned char md[32];
    unsigned int mdlen = 0;
    assert_int_equal(EVP_Digest(canon, (size_t)w, md, &mdlen, EVP_sha256(), NULL), 1);
    BN_free(n);
    BN_free(e);
    free(n64);
    free(e64);
    return b64u(md, mdlen);
}

static void test_jwt_jwks_publishes_modulus_exponent_and_kid(void **state) {
    struct fixture *f = *state;
    struct svc_jwt_keys *k = keys_with(f->a_priv, f->b_pub, NULL);
    json_t *jwks = svc_jwt_jwks(k);
    assert_non_null(jwks);
    json_t *arr = json_object_get(jwks, "keys");
    assert_int_equal(json_array_size(arr), 2);
    EVP_PKEY *expect[2] = {f->a, f->b};
    for (size_t i = 0; i < 2; i++) {
        json_t *jwk = json_array_get(arr, i);
        assert_int_equal(json_object_size(jwk), 6);
        assert_string_equal(json_string_value(json_object_get(jwk, "kty")), "RSA");
        assert_string_equal(json_string_value(json_object_get(jwk, "use")), "sig");
        assert_string_equal(json_string_value(json_object_get(jwk, "alg")), "RS256");
        BIGNUM *n = NULL, *e = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(expect[i], OSSL_PKEY_PARAM_RSA_N, &n), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(expect[i], OSSL_PKEY_PARAM_RSA_E, &e), 1);
        size_t nl, el;
        unsigned char *nb = b64u_decode(json_string_value(json_object_get(jwk, "n")), &nl);
        unsigned char *eb = b64u_decode(json_string_value(json_object_get(jwk, "e")), &el);
        assert_int_equal(nl, 256);
        assert_true(nb[0] != 0); /* minimal encoding */
        BIGNUM *n2 = BN_bin2bn(nb, (int)nl, NULL), *e2 = BN_bin2bn(eb, (int)el, NULL);
        assert_int_equal(BN_cmp(n, n2), 0);
        assert_int_equal(BN_cmp(e, e2), 0);
        assert_string_equal(json_string_value(json_object_get(jwk, "e")), "AQAB");
        char *kid = thumbprint_of(expect[i]);
        assert_string_equal(json_string_value(json_object_get(jwk, "kid")), kid);
        if (i == 0) assert_string_equal(kid, svc_jwt_keys_signing_kid(k));
        free(kid);
        BN_free(n);
        BN_free(e);
        BN_free(n2);
        BN_free(e2);
        free(nb);
        free(eb);
    }
    json_decref(jwks);
    svc_jwt_keys_free(k);
}

/* RFC 7638 section 3.1: this key's thumbprint is NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs. */
static void test_jwt_kid_matches_rfc7638_example(void **state) {
    struct fixture *f = *state;
    const char *n64 =
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJ"
        "ECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW"
        "2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQ"
        "Fh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
    size_t nl;
    unsigned char *nb = b64u_decode(n64, &nl);
    BIGNUM *n = BN_bin2bn(nb, (int)nl, NULL), *e = BN_new();
    assert_non_null(n);
    assert_non_null(e);
    assert_int_equal(BN_set_word(e, 65537), 1);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    assert_non_null(bld);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n), 1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e), 1);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    EVP_PKEY *pkey = NULL;
    assert_non_null(params);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);

    char path[160];
    snprintf(path, sizeof(path), "%s/rfc7638.pem", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PUBKEY(fp, pkey), 1);
    fclose(fp);
    struct svc_jwt_keys *k = keys_with(NULL, path, NULL);
    unlink(path);
    json_t *jwks = svc_jwt_jwks(k);
    json_t *jwk = json_array_get(json_object_get(jwks, "keys"), 0);
    assert_string_equal(json_string_value(json_object_get(jwk, "kid")),
                        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    assert_string_equal(json_string_value(json_object_get(jwk, "n")), n64);

    json_decref(jwks);
    svc_jwt_keys_free(k);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    free(nb);
}

/* ------------------------------------------------------------------ concurrency and speed */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct verify_job {
    const struct svc_jwt_keys *keys;
    const char *good, *bad;
    int iterations, failures;
};

static void *verify_worker(void *arg) {
    struct verify_job *j = arg;
    struct svc_jwt_expect e = expect_at(NOW);
    for (int i = 0; i < j->iterations; i++) {
        if (svc_jwt_verify(j->keys, j->good, &e, NULL) != SVC_JWT_OK) j->failures++;
        if (svc_jwt_verify(j->keys, j->bad, &e, NULL) != SVC_JWT_BAD_SIGNATURE) j->failures++;
    }
    return NULL;
}

static void test_jwt_verify_is_safe_from_many_threads(void **state) {
    struct fixture *f = *state;
    char *good = sign_claims(f->ka, claims_at(NOW));
    char *bad = strdup(good);
    assert_non_null(bad);
    char *last = bad + strlen(bad) - 3;
    *last = *last == 'A' ? 'B' : 'A';
    pthread_t th[4];
    struct verify_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct verify_job){.keys = f->ka, .good = good, .bad = bad, .iterations = 300};
        assert_int_equal(pthread_create(&th[i], NULL, verify_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(jobs[i].failures, 0);
    }
    free(good);
    free(bad);
}

static void test_jwt_verify_throughput_is_reported(void **state) {
    struct fixture *f = *state;
    char *tok = sign_claims(f->ka, claims_at(NOW));
    struct svc_jwt_expect e = expect_at(NOW);
    json_t *claims = NULL;
    long n = 0;
    double start = now_s(), elapsed;
    do {
        for (int i = 0; i < 200; i++, n++) {
            assert_int_equal(svc_jwt_verify(f->ka, tok, &e, &claims), SVC_JWT_OK);
            json_decref(claims);
        }
        elapsed = now_s() - start;
    } while (elapsed < 1.0);
    double rate = (double)n / elapsed;

    int signs = 0;
    json_t *c = claims_at(NOW);
    start = now_s();
    do {
        char *t = svc_jwt_sign(f->ka, c);
        assert_non_null(t);
        free(t);
        signs++;
        elapsed = now_s() - start;
    } while (elapsed < 0.5);
    json_decref(c);
    printf("[ BENCH    ] jwt RS256-2048 verify (with claims out): %.0f/s on one thread; sign: %.0f/s\n",
           rate, signs / elapsed);
    assert_true(rate > 1000.0);
    free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jwt_signed_token_verifies_and_returns_its_claims),
        cmocka_unit_test(test_jwt_public_key_alone_verifies_but_cannot_sign),
        cmocka_unit_test(test_jwt_sign_refuses_non_object_claims),
        cmocka_unit_test(test_jwt_alg_none_is_rejected),
        cmocka_unit_test(test_jwt_hs256_keyed_with_public_pem_is_rejected),
        cmocka_unit_test(test_jwt_only_exact_rs256_is_allowed),
        cmocka_unit_test(test_jwt_header_with_duplicate_alg_is_malformed),
        cmocka_unit_test(test_jwt_crit_header_or_foreign_typ_is_malformed),
        cmocka_unit_test(test_jwt_payload_modified_after_signing_is_bad_signature),
        cmocka_unit_test(test_jwt_other_key_reusing_our_kid_is_bad_signature),
        cmocka_unit_test(test_jwt_truncated_or_overlong_signature_is_bad_signature),
        cmocka_unit_test(test_jwt_unknown_or_missing_kid_is_unknown_kid),
        cmocka_unit_test(test_jwt_expired_token_is_rejected_outside_leeway_only),
        cmocka_unit_test(test_jwt_missing_or_non_numeric_exp_is_malformed),
        cmocka_unit_test(test_jwt_nbf_or_iat_in_the_future_is_not_yet_valid),
        cmocka_unit_test(test_jwt_wrong_or_missing_issuer_is_bad_issuer),
        cmocka_unit_test(test_jwt_audience_must_match_or_be_listed),
        cmocka_unit_test(test_jwt_expectations_are_required),
        cmocka_unit_test(test_jwt_garbage_is_malformed),
        cmocka_unit_test(test_jwt_non_canonical_base64_is_malformed),
        cmocka_unit_test(test_jwt_token_longer_than_limit_is_malformed),
        cmocka_unit_test(test_jwt_rotation_old_key_verifies_only_while_loaded),
        cmocka_unit_test(test_jwt_load_dir_reads_public_pems_and_skips_duplicates),
        cmocka_unit_test(test_jwt_bad_key_files_are_refused_with_a_reason),
        cmocka_unit_test(test_jwt_jwks_publishes_modulus_exponent_and_kid),
        cmocka_unit_test(test_jwt_kid_matches_rfc7638_example),
        cmocka_unit_test(test_jwt_verify_is_safe_from_many_threads),
        cmocka_unit_test(test_jwt_verify_throughput_is_reported),
    };
    return cmocka_run_group_tests_name("jwt", tests, group_setup, group_teardown);
}
