/* Small crypto helpers on OpenSSL: SHA-256 hex digests, constant-time comparison and random
 * tokens (base64url text, svc/b64url.h). Pure functions; safe from any thread. */
#ifndef SVC_CRYPTO_H
#define SVC_CRYPTO_H

#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>

#define SVC_SHA256_HEX_LEN 64

/* SHA-256 fetched from the default provider once per process (never freed). OpenSSL 3 looks the
 * algorithm up again for every EVP_sha256() digest (an "implicit fetch": a locked table walk),
 * which showed up in profiles of the request path (bench/README.md). Use it wherever
 * EVP_sha256() would go. */
const EVP_MD *svc_sha256_md(void);
/* out receives 64 hex chars + NUL. */
void svc_sha256_hex(const void *data, size_t len, char out[SVC_SHA256_HEX_LEN + 1]);
/* Equal-length strings compared in constant time (length difference returns false at once). */
bool svc_const_eq(const char *a, const char *b);
/* nbytes (at most 128) of CSPRNG output as base64url into out. Returns 0 or -1. */
int svc_random_token(size_t nbytes, char *out, size_t outlen);

#endif
