/* Correlation ids and random UUIDs (from the OS CSPRNG, so ids are not guessable). */
#include "svc/cid.h"

#include <openssl/rand.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

bool svc_cid_is_sane(const char *s) {
    if (!s || !*s) return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char ch = (unsigned char)s[n];
        if (n >= SVC_CID_MAX) return false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == ':' || ch == '-'))
            return false;
    }
    return true;
}

int svc_random_bytes(void *buf, size_t n) {
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void uuid_text(const unsigned char b[16], char out[SVC_UUID_LEN + 1]) {
    static const char hex[] = "0123456789abcdef";
    int o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
}

void svc_uuid4(char out[SVC_UUID_LEN + 1]) {
    unsigned char b[16];
    if (svc_random_bytes(b, sizeof b) != 0) memset(b, 0, sizeof b);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

void svc_uuid7(char out[SVC_UUID_LEN + 1]) {
    unsigned char r[SVC_UUID7_RANDOM_BYTES];
    if (svc_random_bytes(r, sizeof r) != 0) memset(r, 0, sizeof r);
    svc_uuid7_from(r, out);
}

void svc_uuid7_from(const unsigned char random[SVC_UUID7_RANDOM_BYTES], char out[SVC_UUID_LEN + 1]) {
    unsigned char b[16];
    memcpy(b + 6, random, SVC_UUID7_RANDOM_BYTES);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    for (int i = 0; i < 6; i++) b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_text(b, out);
}

bool svc_uuid_is_valid(const char *s) {
    if (!s || strlen(s) != SVC_UUID_LEN) return false;
    for (int i = 0; i < SVC_UUID_LEN; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-') return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
    }
    return true;
}
