/* Retry schedule: exponential backoff with FULL jitter, and Retry-After parsing.
 *
 * Attempt k (0 for the wait after the first failed attempt) waits a uniformly random time in
 * [0, min(cap_ms, base_ms * 2^k)]. Full jitter (rather than "base * 2^k plus a little noise")
 * spreads the retries of many clients that failed at the same moment over the whole window, so a
 * recovering upstream is not hit by synchronised waves. With the defaults (base 1000 ms, cap
 * 4000 ms) the ceilings are 1 s, 2 s, 4 s, 4 s, ...
 *
 * Everything here is a pure function: randomness comes from an injected generator and the current
 * time is a parameter, so tests check the bounds exactly. No state, no locking, thread-safe. */
#ifndef SVC_BACKOFF_H
#define SVC_BACKOFF_H

#include <stdint.h>
#include <time.h>

#define SVC_BACKOFF_DEFAULT_BASE_MS 1000u
#define SVC_BACKOFF_DEFAULT_CAP_MS 4000u

/* Returns 64 uniformly distributed random bits. arg is the caller's generator state. */
typedef uint64_t (*svc_backoff_rng_fn)(void *arg);

struct svc_backoff_policy {
    uint32_t base_ms;   /* ceiling of the first wait; 0 means "retry at once" */
    uint32_t cap_ms;    /* no wait is ever longer than this */
};

void svc_backoff_policy_defaults(struct svc_backoff_policy *p);

/* min(cap_ms, base_ms * 2^retry), computed without overflow for any retry >= 0. */
uint32_t svc_backoff_ceiling_ms(const struct svc_backoff_policy *p, unsigned retry);

/* Uniform in [0, svc_backoff_ceiling_ms(p, retry)] (both ends inclusive), drawn from rng(arg).
 * rng returning 0 gives 0; rng returning UINT64_MAX gives the ceiling. */
uint32_t svc_backoff_delay_ms(const struct svc_backoff_policy *p, unsigned retry, svc_backoff_rng_fn rng, void *arg);

/* Maps 64 random bits onto [0, bound] (inclusive) by multiply-and-shift (no modulo bias worth
 * mentioning for bounds below 2^32). Exposed for tests and for callers with their own bounds. */
uint32_t svc_backoff_uniform(uint64_t bits, uint32_t bound);

/* Parses an HTTP Retry-After value: delta-seconds ("120") or an IMF-fixdate
 * ("Wed, 21 Oct 2015 07:28:00 GMT", compared with now). Surrounding blanks are allowed.
 * Returns 0 and the wait in *ms_out (a date in the past gives 0; values are saturated at
 * UINT32_MAX ms), or -1 when the value is malformed. */
int svc_backoff_parse_retry_after(const char *value, time_t now, uint32_t *ms_out);

/* A small, fast, non-cryptographic generator (splitmix64) for jitter. state is advanced in place;
 * seed it once from the OS (one state per thread: it is not synchronised). Usable as a
 * svc_backoff_rng_fn with arg = &state. */
uint64_t svc_backoff_splitmix64(void *state);

#endif
