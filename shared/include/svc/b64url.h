/* base64url (RFC 4648 §5) without padding: the one encoder and decoder of the platform (JWT
 * parts and key ids, JWKS numbers, refresh-token secrets, paging cursors).
 *
 * The decoder is strict on purpose: only the URL-safe alphabet, no padding, and the unused bits
 * of the last character must be zero, so every byte string has exactly one accepted text (a
 * token or cursor cannot be varied without changing what it decodes to).
 * Pure functions on caller-owned buffers; safe from any thread. */
#ifndef SVC_B64URL_H
#define SVC_B64URL_H

#include <stddef.h>

/* Characters that n bytes encode to (no NUL). */
size_t svc_b64url_len(size_t n);
/* Writes svc_b64url_len(len) characters and a NUL into out; returns the characters written, or 0
 * (nothing written) when outlen < svc_b64url_len(len) + 1. */
size_t svc_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen);
/* Decodes len characters of in (no NUL needed). Returns 0 and the decoded size in *outlen, or -1
 * (a character outside the alphabet, a length of 4k+1, non-zero unused bits, or more than cap
 * bytes). */
int svc_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen);

#endif
