/* AES-256-GCM sealing of small secrets (see aead.h). */
#include "svc/aead.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/config.h"
#include "svc/crypto.h"

#define FORMAT 0x01

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void key_id(struct svc_aead_key *k) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(k->key, SVC_AEAD_KEY_LEN, md, &n, svc_sha256_md(), NULL) != 1) memset(md, 0, sizeof md);
    memcpy(k->id, md, SVC_AEAD_ID_LEN);
    OPENSSL_cleanse(md, sizeof md);
}

int svc_aead_key_parse(const unsigned char *data, size_t len, struct svc_aead_key *out, const char **why) {
    memset(out, 0, sizeof *out);
    size_t n = len;
    if (n != SVC_AEAD_KEY_LEN)   /* text forms may end with a newline */
        while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r')) n--;
    if (n == 2 * SVC_AEAD_KEY_LEN) {
        for (size_t i = 0; i < SVC_AEAD_KEY_LEN; i++) {
            int hi = hexval(data[2 * i]), lo = hexval(data[2 * i + 1]);
            if (hi < 0 || lo < 0) goto bad;
            out->key[i] = (unsigned char)(hi << 4 | lo);
        }
    } else if (n == 44 && data[43] == '=') {
        unsigned char buf[33];
        int got = EVP_DecodeBlock(buf, data, 44);   /* counts the padding byte: 33 */
        bool ok = got == 33;
        if (ok) memcpy(out->key, buf, SVC_AEAD_KEY_LEN);
        OPENSSL_cleanse(buf, sizeof buf);
        if (!ok) goto bad;
    } else if (len == SVC_AEAD_KEY_LEN) {
        memcpy(out->key, data, SVC_AEAD_KEY_LEN);
    } else {
        goto bad;
    }
    key_id(out);
    return 0;
bad:
    OPENSSL_cleanse(out, sizeof *out);
    *why = "must hold 32 bytes: 64 hex characters, 44 base64 characters or 32 raw bytes";
    return -1;
}

int svc_aead_key_load(const char *path, struct svc_aead_key *out, const char **why) {
    size_t len = 0;
    char *data = svc_read_file(path, 4096, &len, false);
    if (!data) {
        *why = "cannot read the file";
        return -1;
    }
    int rc = svc_aead_key_parse((const unsigned char *)data, len, out, why);
    OPENSSL_cleanse(data, len);
    free(data);
    return rc;
}

int svc_aead_keyring_add(struct svc_aead_keyring *ring, const struct svc_aead_key *k) {
    if (ring->n >= SVC_AEAD_MAX_KEYS) return -1;
    for (int i = 0; i < ring->n; i++)
        if (memcmp(ring->keys[i].id, k->id, SVC_AEAD_ID_LEN) == 0) return -1;
    ring->keys[ring->n++] = *k;
    return 0;
}

void svc_aead_keyring_wipe(struct svc_aead_keyring *ring) { OPENSSL_cleanse(ring, sizeof *ring); }

size_t svc_aead_seal(const struct svc_aead_keyring *ring, const void *aad, size_t aad_len, const void *plain,
                     size_t len, unsigned char *out) {
    if (ring->n < 1 || len > (size_t)1 << 30) return 0;
    const struct svc_aead_key *k = &ring->keys[0];
    unsigned char *nonce = out + 1 + SVC_AEAD_ID_LEN, *ct = nonce + SVC_AEAD_NONCE_LEN, *tag = ct + len;
    out[0] = FORMAT;
    memcpy(out + 1, k->id, SVC_AEAD_ID_LEN);
    if (svc_random_bytes(nonce, SVC_AEAD_NONCE_LEN) != 0) return 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0;
    bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SVC_AEAD_NONCE_LEN, NULL) == 1 &&
              EVP_EncryptInit_ex(c, NULL, NULL, k->key, nonce) == 1 &&
              (aad_len == 0 || EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
              EVP_EncryptUpdate(c, ct, &n, plain, (int)len) == 1 && (size_t)n == len &&
              EVP_EncryptFinal_ex(c, ct + n, &n) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SVC_AEAD_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(out, len + SVC_AEAD_OVERHEAD);
        return 0;
    }
    return len + SVC_AEAD_OVERHEAD;
}

long svc_aead_open(const struct svc_aead_keyring *ring, const void *aad, size_t aad_len, const unsigned char *in,
                   size_t len, char *plain, bool *by_current) {
    if (len < SVC_AEAD_OVERHEAD || in[0] != FORMAT || len - SVC_AEAD_OVERHEAD > (size_t)1 << 30) return -1;
    const struct svc_aead_key *k = NULL;
    for (int i = 0; i < ring->n && !k; i++)
        if (CRYPTO_memcmp(ring->keys[i].id, in + 1, SVC_AEAD_ID_LEN) == 0) k = &ring->keys[i];
    if (!k) return -1;
    size_t plen = len - SVC_AEAD_OVERHEAD;
    const unsigned char *nonce = in + 1 + SVC_AEAD_ID_LEN, *ct = nonce + SVC_AEAD_NONCE_LEN, *tag = ct + plen;
    unsigned char tagcopy[SVC_AEAD_TAG_LEN];
    memcpy(tagcopy, tag, sizeof tagcopy);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, SVC_AEAD_NONCE_LEN, NULL) == 1 &&
              EVP_DecryptInit_ex(c, NULL, NULL, k->key, nonce) == 1 &&
              (aad_len == 0 || EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) == 1) &&
              EVP_DecryptUpdate(c, (unsigned char *)plain, &n, ct, (int)plen) == 1 && (size_t)n == plen &&
              EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SVC_AEAD_TAG_LEN, tagcopy) == 1 &&
              EVP_DecryptFinal_ex(c, (unsigned char *)plain + n, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok) {
        OPENSSL_cleanse(plain, plen);
        return -1;
    }
    plain[plen] = '\0';
    if (by_current) *by_current = k == &ring->keys[0];
    return (long)plen;
}
