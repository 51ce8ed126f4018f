/* Per-client rate limit of event ingestion: a token bucket per token subject, as GCRA (the
 * generic cell rate algorithm: one "theoretical arrival time" per client instead of a token
 * count and a refill timestamp). A client may send `burst` events at once and `rate` events per
 * second sustained; a request that would go over is refused whole with the time until it would
 * fit (Retry-After). A batch costs one unit per event.
 *
 * The limit is per instance, in memory: no Redis round trip on the hot path. Behind N instances
 * sharing the traffic (Nginx round robin) a client's sustained rate is up to N × rate; configure
 * EVENTS_RATE_PER_S accordingly (docs/operations.md).
 *
 * The table has a fixed number of slots (EVENTS_RL_SLOTS), looked up by a hash of the subject
 * with a short probe; a slot whose client has been idle long enough to have a full bucket again
 * is reused. When every probed slot belongs to an active client the request is allowed and
 * counted (fail open: a full table must not refuse legitimate traffic).
 *
 * Synchronisation: striped mutexes over the slots. Pure apart from that: the clock is a
 * parameter. Ownership: subjects are copied. */
#ifndef EVENTS_RATELIMIT_H
#define EVENTS_RATELIMIT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define EVENTS_RL_SLOTS 8192
#define EVENTS_RL_STRIPES 32
#define EVENTS_RL_PROBE 8
#define EVENTS_RL_KEY_MAX 64

struct events_rl_slot {
    char key[EVENTS_RL_KEY_MAX];
    int64_t tat_us;        /* theoretical arrival time; 0: free */
};

struct events_ratelimit {
    int64_t interval_us;   /* 1e6 / rate */
    int64_t burst_us;      /* burst * interval */
    pthread_mutex_t mu[EVENTS_RL_STRIPES];
    struct events_rl_slot slots[EVENTS_RL_SLOTS];
    atomic_ulong table_full;
};

/* rate >= 1 events/s, burst >= 1. 0 or -1. */
int events_rl_init(struct events_ratelimit *rl, long rate, long burst);
void events_rl_free(struct events_ratelimit *rl);
/* Takes cost units for key at now_us. True when allowed; false with *retry_after_us (> 0). */
bool events_rl_take(struct events_ratelimit *rl, const char *key, long cost, int64_t now_us, int64_t *retry_after_us);

#endif
