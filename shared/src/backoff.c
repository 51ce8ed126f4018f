/* Retry schedule: exponential backoff with full jitter and Retry-After parsing (see backoff.h).
 *
 * The random wait is drawn by scaling 64 random bits onto [0, ceiling] with a 128-bit multiply
 * instead of a modulo: the result is exact at both ends (0 bits → 0, all ones → ceiling), which
 * lets the tests pin the bounds with a fake generator. */
#define _GNU_SOURCE /* strptime */
#include "svc/backoff.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

void svc_backoff_policy_defaults(struct svc_backoff_policy *p) {
    p->base_ms = SVC_BACKOFF_DEFAULT_BASE_MS;
    p->cap_ms = SVC_BACKOFF_DEFAULT_CAP_MS;
}

uint32_t svc_backoff_ceiling_ms(const struct svc_backoff_policy *p, unsigned retry) {
    uint64_t c = p->base_ms;
    /* Doubling a value below 2^32 more than 32 times always exceeds any 32-bit cap. */
    for (unsigned i = 0; i < retry && c <= p->cap_ms && c != 0; i++) c <<= 1;
    return c > p->cap_ms ? p->cap_ms : (uint32_t)c;
}

uint32_t svc_backoff_uniform(uint64_t bits, uint32_t bound) {
    unsigned __int128 prod = (unsigned __int128)bits * ((uint64_t)bound + 1);
    return (uint32_t)(prod >> 64);
}

uint32_t svc_backoff_delay_ms(const struct svc_backoff_policy *p, unsigned retry, svc_backoff_rng_fn rng, void *arg) {
    uint32_t ceiling = svc_backoff_ceiling_ms(p, retry);
    if (ceiling == 0) return 0;
    return svc_backoff_uniform(rng(arg), ceiling);
}

static const char *skip_blanks(const char *s) {
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

static int only_blanks(const char *s) {
    return *skip_blanks(s) == '\0';
}

static uint32_t seconds_to_ms(uint64_t s) {
    return s >= UINT32_MAX / 1000u ? UINT32_MAX : (uint32_t)(s * 1000u);
}

int svc_backoff_parse_retry_after(const char *value, time_t now, uint32_t *ms_out) {
    if (!value) return -1;
    const char *s = skip_blanks(value);
    if (isdigit((unsigned char)*s)) {
        uint64_t secs = 0;
        for (; isdigit((unsigned char)*s); s++) {
            if (secs < UINT32_MAX) secs = secs * 10 + (uint64_t)(*s - '0');
        }
        if (!only_blanks(s)) return -1;
        *ms_out = seconds_to_ms(secs);
        return 0;
    }
    /* IMF-fixdate, the only date form RFC 9110 requires senders to use. */
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || !only_blanks(end)) return -1;
    time_t at = timegm(&tm);
    if (at == (time_t)-1) return -1;
    *ms_out = at <= now ? 0 : seconds_to_ms((uint64_t)(at - now));
    return 0;
}

uint64_t svc_backoff_splitmix64(void *state) {
    uint64_t *x = state;
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
