/* Idempotency keys (Stripe semantics): validation of the Idempotency-Key header and the request
 * fingerprint stored with the key's result.
 *
 * Scope: a key belongs to one user (the caller); its record lives 24 h (IDEMPOTENCY_TTL_S). The
 * fingerprint is SHA-256 over "METHOD\nPATH\n" followed by the body re-serialised canonically
 * (compact, keys sorted, jansson's escaping), so the same request sent with other whitespace or
 * key order is recognised as the same, while any change of a value is a different request
 * (422 idempotency_key_reused). The path is part of it, so a key used for a transfer and then
 * for a reversal is a reuse, not a replay.
 *
 * Pure functions: safe from any thread. */
#ifndef TX_IDEMPOTENCY_H
#define TX_IDEMPOTENCY_H

#include <jansson.h>
#include <stdbool.h>

#include "svc/crypto.h"

#define IDEM_KEY_MAX 255
#define IDEM_HASH_HEX_LEN SVC_SHA256_HEX_LEN

enum idem_key_check { IDEM_KEY_OK, IDEM_KEY_MISSING, IDEM_KEY_INVALID };

/* NULL or "" → MISSING; 1..255 bytes of printable ASCII (0x20..0x7e) → OK; else INVALID. */
enum idem_key_check idem_key_check(const char *key);

/* Writes the fingerprint (64 hex chars + NUL) of the request. body may be NULL (no body).
 * Returns 0, or -1 when the body cannot be serialised (out of memory). */
int idem_request_hash(const char *method, const char *path, const json_t *body,
                      char out[IDEM_HASH_HEX_LEN + 1]);

#endif
