/* Per-client GCRA rate limit (see events_ratelimit.h). */
#include "events_ratelimit.h"

#include <stdio.h>
#include <string.h>

static uint64_t fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int events_rl_init(struct events_ratelimit *rl, long rate, long burst) {
    memset(rl, 0, sizeof *rl);
    if (rate < 1 || burst < 1) return -1;
    rl->interval_us = 1000000 / rate;
    if (rl->interval_us < 1) rl->interval_us = 1;
    rl->burst_us = rl->interval_us * burst;
    for (int i = 0; i < EVENTS_RL_STRIPES; i++) pthread_mutex_init(&rl->mu[i], NULL);
    return 0;
}

void events_rl_free(struct events_ratelimit *rl) {
    for (int i = 0; i < EVENTS_RL_STRIPES; i++) pthread_mutex_destroy(&rl->mu[i]);
}

bool events_rl_take(struct events_ratelimit *rl, const char *key, long cost, int64_t now_us, int64_t *retry_after_us) {
    char k[EVENTS_RL_KEY_MAX];
    snprintf(k, sizeof k, "%s", key);
    uint64_t h = fnv1a(k);
    /* the probe stays inside one stripe: slots are grouped so that (slot / group) % stripes is
     * constant over a probe */
    size_t base = (size_t)(h % (EVENTS_RL_SLOTS / EVENTS_RL_PROBE)) * EVENTS_RL_PROBE;
    pthread_mutex_t *mu = &rl->mu[(base / EVENTS_RL_PROBE) % EVENTS_RL_STRIPES];
    pthread_mutex_lock(mu);
    struct events_rl_slot *slot = NULL, *reusable = NULL;
    for (size_t i = 0; i < EVENTS_RL_PROBE; i++) {
        struct events_rl_slot *s = &rl->slots[base + i];
        if (s->tat_us && !strcmp(s->key, k)) {
            slot = s;
            break;
        }
        if (!reusable && s->tat_us <= now_us) reusable = s;   /* free, or idle with a full bucket */
    }
    if (!slot) {
        if (!reusable) {
            pthread_mutex_unlock(mu);
            atomic_fetch_add_explicit(&rl->table_full, 1, memory_order_relaxed);
            return true;
        }
        slot = reusable;
        memcpy(slot->key, k, sizeof k);
        slot->tat_us = 0;
    }
    int64_t tat = slot->tat_us > now_us ? slot->tat_us : now_us;
    int64_t next = tat + (int64_t)cost * rl->interval_us;
    bool ok = next - now_us <= rl->burst_us;
    if (ok) slot->tat_us = next;
    else *retry_after_us = next - rl->burst_us - now_us;
    pthread_mutex_unlock(mu);
    return ok;
}
