/* SHA-256, constant-time compare and random tokens; see crypto.h. */
#include "svc/crypto.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "svc/b64url.h"
#include "svc/cid.h"

/* Written once under pthread_once, then only read: a process-wide constant, like EVP_sha256()'s. */
static EVP_MD *g_sha256;
static pthread_once_t g_sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void) { g_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL); }

const EVP_MD *svc_sha256_md(void) {
    pthread_once(&g_sha256_once, fetch_sha256);
    return g_sha256 ? g_sha256 : EVP_sha256();
}

void svc_sha256_hex(const void *data, size_t len, char out[SVC_SHA256_HEX_LEN + 1]) {
    unsigned char md[32];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(data, len, md, &mdlen, svc_sha256_md(), NULL) != 1 || mdlen != 32) {
        memset(out, '0', SVC_SHA256_HEX_LEN);
        out[SVC_SHA256_HEX_LEN] = '\0';
        return;
    }
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[SVC_SHA256_HEX_LEN] = '\0';
}

bool svc_const_eq(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

int svc_random_token(size_t nbytes, char *out, size_t outlen) {
    unsigned char buf[128];
    if (nbytes > sizeof buf || svc_random_bytes(buf, nbytes) != 0) return -1;
    return svc_b64url_encode(buf, nbytes, out, outlen) ? 0 : -1;
}
