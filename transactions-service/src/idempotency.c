/* Idempotency key checks and request fingerprints; see idempotency.h.
 *
 * Bodies reaching the fingerprint have been validated (known fields only, bounded sizes), so
 * the canonical text fits a stack buffer; a larger one falls back to one heap allocation. */
#include "idempotency.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "svc/crypto.h"

#define CANON_STACK 4096

enum idem_key_check idem_key_check(const char *key) {
    if (!key || !*key) return IDEM_KEY_MISSING;
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++, n++)
        if (*p < 0x20 || *p > 0x7e || n >= IDEM_KEY_MAX) return IDEM_KEY_INVALID;
    return IDEM_KEY_OK;
}

static int digest(EVP_MD_CTX *md, const void *data, size_t len) {
    return EVP_DigestUpdate(md, data, len) == 1 ? 0 : -1;
}

int idem_request_hash(const char *method, const char *path, const json_t *body,
                      char out[IDEM_HASH_HEX_LEN + 1]) {
    char stack[CANON_STACK];
    char *canon = stack;
    size_t clen = 0;
    if (body) {
        const size_t flags = JSON_COMPACT | JSON_SORT_KEYS;
        clen = json_dumpb(body, stack, sizeof stack, flags);
        if (clen == 0) return -1;
        if (clen > sizeof stack) {
            canon = malloc(clen);
            if (!canon) return -1;
            if (json_dumpb(body, canon, clen, flags) != clen) {
                free(canon);
                return -1;
            }
        }
    }
    int rc = -1;
    unsigned char md_out[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestInit_ex(md, svc_sha256_md(), NULL) == 1 && digest(md, method, strlen(method)) == 0 &&
        digest(md, "\n", 1) == 0 && digest(md, path, strlen(path)) == 0 && digest(md, "\n", 1) == 0 &&
        digest(md, canon, clen) == 0 && EVP_DigestFinal_ex(md, md_out, &md_len) == 1 && md_len == 32) {
        static const char hex[] = "0123456789abcdef";
        for (unsigned i = 0; i < md_len; i++) {
            out[2 * i] = hex[md_out[i] >> 4];
            out[2 * i + 1] = hex[md_out[i] & 15];
        }
        out[2 * md_len] = '\0';
        rc = 0;
    }
    EVP_MD_CTX_free(md);
    if (canon != stack) free(canon);
    return rc;
}
