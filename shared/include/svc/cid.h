/* Correlation IDs and UUIDs. */
#ifndef SVC_CID_H
#define SVC_CID_H

#include <stdbool.h>
#include <stddef.h>

#define SVC_CID_MAX 128
#define SVC_UUID_LEN 36

/* A sane incoming correlation id: 1..128 chars of [A-Za-z0-9._:-]. */
bool svc_cid_is_sane(const char *s);
/* Writes a random (CSPRNG) RFC 4122 version-4 UUID, 36 chars + NUL, into out (>= 37 bytes). */
void svc_uuid4(char out[SVC_UUID_LEN + 1]);
/* Writes an RFC 9562 version-7 UUID: 48 bits of Unix time in ms, then 74 CSPRNG bits. Ids made
 * later sort later (across milliseconds), so a B-tree on them fills at its right edge. */
void svc_uuid7(char out[SVC_UUID_LEN + 1]);
/* The same with the caller's random bytes (bulk callers draw many ids' worth at once, one
 * getrandom call instead of one per id). Only the version and variant bits are overwritten. */
#define SVC_UUID7_RANDOM_BYTES 10
void svc_uuid7_from(const unsigned char random[SVC_UUID7_RANDOM_BYTES], char out[SVC_UUID_LEN + 1]);
/* Canonical lower/upper-case 8-4-4-4-12 hex UUID check. */
bool svc_uuid_is_valid(const char *s);
/* Fill buf with n bytes from the OS CSPRNG (getrandom); returns 0 or -1. Draws of up to 32 bytes
 * come from a per-thread block of getrandom output, each byte given out once: no system call per
 * id. Thread-safe; not fork-safe (a forked child would repeat its parent's block). */
int svc_random_bytes(void *buf, size_t n);

#endif
