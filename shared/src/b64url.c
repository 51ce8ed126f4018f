/* base64url without padding; see svc/b64url.h. */
#include "svc/b64url.h"

#include <stdint.h>

static const char b64url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t svc_b64url_len(size_t n) { return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0); }

size_t svc_b64url_encode(const unsigned char *in, size_t len, char *out, size_t outlen) {
    if (outlen < svc_b64url_len(len) + 1) return 0;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_chars[v >> 18 & 63];
        out[o++] = b64url_chars[v >> 12 & 63];
        out[o++] = b64url_chars[v >> 6 & 63];
        out[o++] = b64url_chars[v & 63];
    }
    if (len - i >= 1) {
        uint32_t v = (uint32_t)in[i] << 16 | (len - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = b64url_chars[v >> 18 & 63];
        out[o++] = b64url_chars[v >> 12 & 63];
        if (len - i == 2) out[o++] = b64url_chars[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

int svc_b64url_decode(const char *in, size_t len, unsigned char *out, size_t cap, size_t *outlen) {
    if (len % 4 == 1) return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap) return -1;
    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        int a = b64url_value((unsigned char)in[i]), b = b64url_value((unsigned char)in[i + 1]);
        int c = b64url_value((unsigned char)in[i + 2]), d = b64url_value((unsigned char)in[i + 3]);
        if ((a | b | c | d) < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        out[o++] = (unsigned char)(v >> 16);
        out[o++] = (unsigned char)(v >> 8);
        out[o++] = (unsigned char)v;
    }
    size_t rest = len - i;
    if (rest == 2) {
        int a = b64url_value((unsigned char)in[i]), b = b64url_value((unsigned char)in[i + 1]);
        if ((a | b) < 0 || (b & 0x0f)) return -1;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
    } else if (rest == 3) {
        int a = b64url_value((unsigned char)in[i]), b = b64url_value((unsigned char)in[i + 1]);
        int c = b64url_value((unsigned char)in[i + 2]);
        if ((a | b | c) < 0 || (c & 0x03)) return -1;
        out[o++] = (unsigned char)(a << 2 | b >> 4);
        out[o++] = (unsigned char)((b & 0x0f) << 4 | c >> 2);
    }
    *outlen = o;
    return 0;
}
