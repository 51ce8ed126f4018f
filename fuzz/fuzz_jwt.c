/* The access-token verifier (shared/src/jwt.c): every Authorization header of every service
 * reaches svc_jwt_verify.
 *
 * A 2048-bit RSA key is made at start-up (so no key material lives in the repository); the
 * harness signs with it itself, so inputs reach the checks behind the signature.
 * Input: byte 0 picks the mode, the rest:
 *   mode 0  a raw token: it can never verify (nothing here is signed with the key);
 *   mode 1  header JSON text \0 payload JSON text [\0 two bytes]: the harness base64url-encodes
 *           both (a "$KID" in the header becomes the key's kid), signs them, and compares
 *           svc_jwt_verify's answer with the outcome the rules of jwt.h give (written here with
 *           jansson); a token that verifies and is then changed in one byte (picked by the two
 *           bytes) must not verify any more;
 *   mode 2  claims JSON text: svc_jwt_sign then svc_jwt_verify, same comparison, and the claims
 *           that come back equal the ones signed.
 * Always: claims are returned only with SVC_JWT_OK; every result has a code and a message. */
#include "fuzz.h"

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <unistd.h>

#include "svc/b64url.h"
#include "svc/jwt.h"

#define ISS "https://auth.example"
#define AUD "platform"
#define NOW 1700000000
#define LEEWAY 30

static struct svc_jwt_keys *keys;
static EVP_PKEY *pkey;
static const char *kid;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    pkey = EVP_RSA_gen(2048);
    char path[] = "/tmp/fuzz_jwt_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!pkey || !f || PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1) abort();
    fclose(f);
    keys = svc_jwt_keys_new();
    char err[256];
    if (!keys || svc_jwt_keys_add_private_pem_file(keys, path, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_jwt: %s\n", err);
        abort();
    }
    unlink(path);
    kid = svc_jwt_keys_signing_kid(keys);
    return 0;
}

static char *b64url(const unsigned char *in, size_t n) {
    size_t cap = svc_b64url_len(n) + 1;
    char *out = malloc(cap);
    if (out) svc_b64url_encode(in, n, out, cap);
    return out;
}

/* "$KID" -> the key's kid, everywhere in s. */
static char *with_kid(const char *s) {
    size_t n = strlen(s), k = strlen(kid);
    char *out = malloc(n / 4 * k + n + 1), *o = out;
    while (*s) {
        if (!strncmp(s, "$KID", 4)) { memcpy(o, kid, k); o += k; s += 4; }
        else *o++ = *s++;
    }
    *o = '\0';
    return out;
}

/* signed: a real signature; else a placeholder of the right length (enough when the header is
 * refused, since the signature is checked only after the header). */
static char *sign_parts(const char *header, const char *payload, bool sign) {
    char *h = b64url((const unsigned char *)header, strlen(header));
    char *p = b64url((const unsigned char *)payload, strlen(payload));
    size_t len = strlen(h) + 1 + strlen(p);
    char *tok = malloc(len + 2 + 400);
    sprintf(tok, "%s.%s", h, p);
    unsigned char sig[512] = {0};
    size_t siglen = 256;
    if (sign) {
        siglen = sizeof sig;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) != 1 ||
            EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)tok, len) != 1)
            abort();
        EVP_MD_CTX_free(ctx);
    }
    char *s = b64url(sig, siglen);
    tok[len] = '.';
    strcpy(tok + len + 1, s);
    free(h), free(p), free(s);
    return tok;
}

static bool str_is(const json_t *v, const char *s) {
    return json_is_string(v) && json_string_length(v) == strlen(s) && !strcmp(json_string_value(v), s);
}

/* What jwt.h says of a header: SVC_JWT_OK when the verifier goes on to the signature. */
static svc_jwt_err expected_header(const char *header) {
    json_t *h = *header ? json_loads(header, JSON_REJECT_DUPLICATES, NULL) : NULL;
    svc_jwt_err e = SVC_JWT_OK;
    const json_t *typ = json_object_get(h, "typ");
    if (!json_is_object(h) || json_object_get(h, "crit") ||
        (typ && !(json_is_string(typ) && json_string_length(typ) == 3 && !strcasecmp(json_string_value(typ), "JWT"))))
        e = SVC_JWT_MALFORMED;
    else if (!str_is(json_object_get(h, "alg"), "RS256"))
        e = SVC_JWT_ALG_NOT_ALLOWED;
    else if (!str_is(json_object_get(h, "kid"), kid))
        e = SVC_JWT_UNKNOWN_KID;
    json_decref(h);
    return e;
}

/* What jwt.h says a correctly signed token with these parts must give. */
static svc_jwt_err expected(const char *header, const char *payload, size_t token_len) {
    if (token_len > SVC_JWT_MAX_TOKEN_LEN) return SVC_JWT_MALFORMED;
    svc_jwt_err e = expected_header(header);
    if (e != SVC_JWT_OK) return e;
    json_t *c = *payload ? json_loads(payload, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (!json_is_object(c)) { e = SVC_JWT_MALFORMED; goto out; }
    const json_t *exp = json_object_get(c, "exp"), *nbf = json_object_get(c, "nbf"), *iat = json_object_get(c, "iat");
    if (!json_is_number(exp)) { e = SVC_JWT_MALFORMED; goto out; }
    if (json_number_value(exp) <= NOW - LEEWAY) { e = SVC_JWT_EXPIRED; goto out; }
    if (nbf && !json_is_number(nbf)) { e = SVC_JWT_MALFORMED; goto out; }
    if (nbf && json_number_value(nbf) > NOW + LEEWAY) { e = SVC_JWT_NOT_YET_VALID; goto out; }
    if (iat && !json_is_number(iat)) { e = SVC_JWT_MALFORMED; goto out; }
    if (iat && json_number_value(iat) > NOW + LEEWAY) { e = SVC_JWT_NOT_YET_VALID; goto out; }
    if (!str_is(json_object_get(c, "iss"), ISS)) { e = SVC_JWT_BAD_ISSUER; goto out; }
    const json_t *aud = json_object_get(c, "aud");
    bool aud_ok = str_is(aud, AUD);
    for (size_t i = 0; json_is_array(aud) && i < json_array_size(aud); i++) aud_ok |= str_is(json_array_get(aud, i), AUD);
    if (!aud_ok) e = SVC_JWT_BAD_AUDIENCE;
out:
    json_decref(c);
    return e;
}

static svc_jwt_err verify(const char *token, json_t **claims) {
    const struct svc_jwt_expect want = {ISS, AUD, NOW, LEEWAY};
    json_t *sentinel = json_true();
    *claims = sentinel;
    svc_jwt_err e = svc_jwt_verify(keys, token, &want, claims);
    FUZZ_CHECK(*claims != sentinel, "claims_out left untouched");
    FUZZ_CHECK((e == SVC_JWT_OK) == (*claims != NULL), "result %d with claims %p", (int)e, (void *)*claims);
    FUZZ_CHECK(svc_jwt_err_code(e) && *svc_jwt_err_code(e) && svc_jwt_err_message(e) && *svc_jwt_err_message(e),
               "result %d has no code or message", (int)e);
    return e;
}

static void check_tamper(const char *token, const uint8_t *how) {
    size_t n = strlen(token);
    char *t = strdup(token);
    size_t at = ((size_t)how[0] << 8 | how[1]) % n;
    static const char alphabet[] = "AQgw_-.=0+/ \x80";
    char c = alphabet[how[1] % (sizeof alphabet - 1)];
    if (c == t[at]) c = t[at] == 'A' ? 'B' : 'A';
    t[at] = c;
    json_t *claims;
    svc_jwt_err e = verify(t, &claims);
    FUZZ_CHECK(e != SVC_JWT_OK, "token changed at byte %zu of %zu (to '%c') still verifies", at, n, c);
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    json_t *claims = NULL;
    if (data[0] % 3 == 0) {
        char *token = fuzz_strndup(data + 1, size - 1);
        svc_jwt_err e = verify(token, &claims);
        FUZZ_CHECK(e != SVC_JWT_OK, "an unsigned token verified");
        free(token);
        return 0;
    }
    if (data[0] % 3 == 1) {
        char *parts[3];
        fuzz_split(data + 1, size - 1, parts, 3);
        if (!parts[1]) { fuzz_free_parts(parts, 3); return 0; }
        char *header = with_kid(parts[0]);
        char *token = sign_parts(header, parts[1], expected_header(header) == SVC_JWT_OK);
        svc_jwt_err want = expected(header, parts[1], strlen(token));
        svc_jwt_err e = verify(token, &claims);
        FUZZ_CHECK(e == want, "header %.300s payload %.300s: %s, expected %s", header, parts[1], svc_jwt_err_code(e),
                   svc_jwt_err_code(want));
        if (e == SVC_JWT_OK) {
            json_t *c = json_loads(parts[1], 0, NULL);
            FUZZ_CHECK(json_equal(c, claims), "claims differ from the payload %.300s", parts[1]);
            json_decref(c);
            const uint8_t how[2] = {parts[2] && parts[2][0] ? (uint8_t)parts[2][0] : 0,
                                    parts[2] && parts[2][0] ? (uint8_t)parts[2][1] : 0};
            check_tamper(token, how);
        }
        json_decref(claims);
        free(header);
        free(token);
        fuzz_free_parts(parts, 3);
        return 0;
    }
    char *text = fuzz_strndup(data + 1, size - 1);
    json_t *in = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    char *token = svc_jwt_sign(keys, in);
    if (!json_is_object(in)) {
        FUZZ_CHECK(!token, "non-object claims %.300s were signed", text);
    } else if (token) {
        char *payload = json_dumps(in, JSON_COMPACT);
        char header[128];
        snprintf(header, sizeof header, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
        svc_jwt_err want = expected(header, payload, strlen(token));
        svc_jwt_err e = verify(token, &claims);
        FUZZ_CHECK(e == want, "claims %.300s: %s, expected %s", payload, svc_jwt_err_code(e), svc_jwt_err_code(want));
        FUZZ_CHECK(e != SVC_JWT_OK || json_equal(in, claims), "claims %.300s come back different", payload);
        json_decref(claims);
        free(payload);
    } else {
        char *payload = json_dumps(in, JSON_COMPACT);
        FUZZ_CHECK(!payload || strlen(payload) > SVC_JWT_MAX_TOKEN_LEN / 2, "claims %.300s were not signed", text);
        free(payload);
    }
    free(token);
    json_decref(in);
    free(text);
    return 0;
}
