/* base64url (shared/src/b64url.c): decodes every JWT part and paging cursor a client sends, and
 * encodes tokens, key ids and cursors. The oracle is OpenSSL's standard base64
 * (EVP_EncodeBlock / EVP_DecodeBlock) with the URL-safe alphabet swapped in and the padding
 * dropped, so nothing of the code under test is restated here.
 *
 * Input: the text to decode; the same bytes are also encoded.
 * Properties: svc_b64url_decode accepts exactly the texts that are the unpadded URL-safe encoding
 * of some bytes (so every byte string has one accepted text), and yields those bytes; it refuses
 * when they do not fit in cap; svc_b64url_encode writes what OpenSSL writes, svc_b64url_len
 * characters and a NUL, or nothing at all when out is too small. */
#include "fuzz.h"

#include <openssl/evp.h>

#include "svc/b64url.h"

/* OpenSSL's base64 of in, URL-safe and unpadded, into a new string. */
static char *oracle_encode(const unsigned char *in, size_t n) {
    char *out = malloc(4 * (n / 3 + 1) + 1);
    int w = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    while (w > 0 && out[w - 1] == '=') w--;
    out[w] = '\0';
    for (char *p = out; *p; p++) *p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    return out;
}

/* The bytes whose oracle encoding is s[0..n), or -1 when there are none. */
static long oracle_decode(const char *s, size_t n, unsigned char *out) {
    if (n % 4 == 1) return -1;
    char *std = malloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            free(std);
            return -1;
        }
        std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
    }
    size_t padded = n;
    while (padded % 4) std[padded++] = '=';
    int w = padded ? EVP_DecodeBlock(out, (const unsigned char *)std, (int)padded) : 0;
    free(std);
    if (w < 0) return -1;
    w -= (int)(padded - n);   /* EVP_DecodeBlock counts the padding as zero bytes */
    char *again = oracle_encode(out, (size_t)w);
    bool same = strlen(again) == n && !memcmp(again, s, n);
    free(again);
    return same ? w : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size copies, so ASan sees a read past the end */
    char *text = malloc(size ? size : 1);
    if (size) memcpy(text, data, size);
    unsigned char *want = malloc(size + 4), *got = malloc(size + 4);

    long wn = oracle_decode(text, size, want);
    size_t gn = (size_t)-1;
    int rc = svc_b64url_decode(text, size, got, size + 4, &gn);
    FUZZ_CHECK((rc == 0) == (wn >= 0), "svc_b64url_decode(\"%.*s\") = %d, OpenSSL says %s", (int)(size > 200 ? 200 : size),
               text, rc, wn >= 0 ? "valid" : "invalid");
    if (rc == 0) {
        FUZZ_CHECK(gn == (size_t)wn && !memcmp(got, want, gn), "decoded bytes differ from OpenSSL's");
        FUZZ_CHECK(svc_b64url_len(gn) == size, "svc_b64url_len(%zu) = %zu for a %zu-character text", gn,
                   svc_b64url_len(gn), size);
        if (gn > 0) {
            size_t n2 = (size_t)-1;
            FUZZ_CHECK(svc_b64url_decode(text, size, got, gn - 1, &n2) == -1, "decoded %zu bytes into %zu", gn, gn - 1);
        }
    }

    char *enc_want = oracle_encode(data, size);
    size_t len = svc_b64url_len(size);
    FUZZ_CHECK(len == strlen(enc_want), "svc_b64url_len(%zu) = %zu, OpenSSL writes %zu", size, len, strlen(enc_want));
    char *enc = malloc(len + 1);
    FUZZ_CHECK(svc_b64url_encode(data, size, enc, len + 1) == len && enc[len] == '\0' && !strcmp(enc, enc_want),
               "svc_b64url_encode differs from OpenSSL");
    memset(enc, 'x', len + 1);
    FUZZ_CHECK(svc_b64url_encode(data, size, enc, len) == 0, "svc_b64url_encode wrote into a buffer too small");
    for (size_t i = 0; i <= len; i++) FUZZ_CHECK(enc[i] == 'x', "svc_b64url_encode wrote byte %zu of a small buffer", i);

    free(enc);
    free(enc_want);
    free(want);
    free(got);
    free(text);
    return 0;
}
