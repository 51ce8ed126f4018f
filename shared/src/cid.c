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

static int random_fill(unsigned char *p, size_t n) {
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) return RAND_bytes(p, (int)n) == 1 ? 0 : -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Draws of at most RANDOM_SMALL bytes come from a block of this thread's, filled by one
 * getrandom call and handed out once, each byte wiped as it is given: a request that needs a
 * span id and a UUID made two system calls for 18 bytes (measured under load on sync-service:
 * 2 getrandom per request, with the reschedules they invite). The block is thread-local, so no
 * lock; the services never fork, which would leave parent and child with the same block. */
#define RANDOM_BLOCK 512
#define RANDOM_SMALL 32
static _Thread_local struct {
    unsigned char b[RANDOM_BLOCK];
    size_t left;   /* the unused bytes are the last `left` of b */
} tl_random;

int svc_random_bytes(void *buf, size_t n) {
    if (n > RANDOM_SMALL) return random_fill(buf, n);
    if (tl_random.left < n) {
        if (random_fill(tl_random.b, RANDOM_BLOCK) != 0) return random_fill(buf, n);
        tl_random.left = RANDOM_BLOCK;
    }
    unsigned char *from = tl_random.b + RANDOM_BLOCK - tl_random.left;
    memcpy(buf, from, n);
    memset(from, 0, n);
    tl_random.left -= n;
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
