/* Small secrets encrypted at rest: AES-256-GCM (OpenSSL EVP), for values a service must be able
 * to read back (a tenant's ERP API key), unlike passwords and refresh tokens, which are hashed.
 *
 * Sealed form (bytes, stored as is, e.g. in a bytea column):
 *   0x01 (format) | key id (4 bytes) | nonce (12 random bytes) | ciphertext (= plaintext length) | tag (16)
 * The key id is the first 4 bytes of SHA-256 over the key, so a keyring can tell which key sealed
 * a value: rotation = a new current key that seals, the old one kept to open values sealed before.
 * The caller's associated data (e.g. the row's id) is authenticated but not stored, so a sealed
 * value copied into another row does not open there. A random 96-bit nonce per seal is safe for
 * far more than 2^32 seals per key (NIST SP 800-38D's bound for random nonces).
 *
 * Keys come from a file (the *_FILE convention): 64 hex characters or 44 base64 characters of
 * 32 bytes (a trailing newline allowed), or exactly 32 raw bytes.
 *
 * Pure functions on caller memory; thread-safe. A keyring is plain data, read-only once loaded;
 * svc_aead_keyring_wipe clears it. Nothing here logs, and error texts never hold key material. */
#ifndef SVC_AEAD_H
#define SVC_AEAD_H

#include <stdbool.h>
#include <stddef.h>

#define SVC_AEAD_KEY_LEN 32
#define SVC_AEAD_ID_LEN 4
#define SVC_AEAD_NONCE_LEN 12
#define SVC_AEAD_TAG_LEN 16
#define SVC_AEAD_OVERHEAD (1 + SVC_AEAD_ID_LEN + SVC_AEAD_NONCE_LEN + SVC_AEAD_TAG_LEN)
#define SVC_AEAD_MAX_KEYS 4

struct svc_aead_key {
    unsigned char key[SVC_AEAD_KEY_LEN];
    unsigned char id[SVC_AEAD_ID_LEN];
};

/* keys[0] seals; every key opens what it sealed. */
struct svc_aead_keyring {
    struct svc_aead_key keys[SVC_AEAD_MAX_KEYS];
    int n;
};

/* Key from its text or raw form (see above). 0, or -1 with a reason in why. */
int svc_aead_key_parse(const unsigned char *data, size_t len, struct svc_aead_key *out, const char **why);
/* Reads and parses a key file (at most 4 KiB). 0, or -1 with a reason in why. */
int svc_aead_key_load(const char *path, struct svc_aead_key *out, const char **why);
/* Adds a key (the first one added seals). -1 when the ring is full or holds the same key id. */
int svc_aead_keyring_add(struct svc_aead_keyring *ring, const struct svc_aead_key *k);
void svc_aead_keyring_wipe(struct svc_aead_keyring *ring);

/* Seals plain (len bytes) with ring->keys[0]; out must hold len + SVC_AEAD_OVERHEAD bytes.
 * Returns the sealed length, or 0 on failure (empty ring, OpenSSL error). */
size_t svc_aead_seal(const struct svc_aead_keyring *ring, const void *aad, size_t aad_len, const void *plain,
                     size_t len, unsigned char *out);
/* Opens a sealed value into plain (room for len - SVC_AEAD_OVERHEAD bytes, plus a NUL written
 * after them). Returns the plaintext length, or -1 when the value is malformed, sealed by a key
 * not in the ring, tampered with, or opened with other associated data. *by_current (may be
 * NULL) tells whether the current key sealed it (false: re-seal it with the current key). */
long svc_aead_open(const struct svc_aead_keyring *ring, const void *aad, size_t aad_len, const unsigned char *in,
                   size_t len, char *plain, bool *by_current);

#endif
