/* Circuit breaker state machine (see breaker.h for the states and the contract).
 *
 * The sliding window is a ring of the last window_size verdicts (1 = failure) with a running
 * failure count, so recording is O(1). Entering CLOSED clears the window and the consecutive
 * count: a breaker that just recovered starts judging the upstream afresh instead of re-opening
 * on failures from before the outage. State-change notifications are queued while the mutex is
 * held and delivered after it is released. */
#include "svc/breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SVC_BREAKER_MAX_WINDOW 1024
#define SVC_BREAKER_NAME_MAX 64

struct transition {
    svc_breaker_state_t from, to;
};

struct svc_breaker {
    pthread_mutex_t mu;
    char name[SVC_BREAKER_NAME_MAX];
    struct svc_breaker_config cfg;

    svc_breaker_state_t state;
    uint64_t generation;
    uint64_t opened_at;

    int consecutive_failures;
    uint8_t *window;   /* 1 = failure, 0 = success */
    int win_pos;       /* next slot to write */
    int win_count;     /* filled slots */
    int win_failures;

    int probes_in_flight;
    int probe_successes;
};

uint64_t svc_breaker_monotonic_ms(void *unused) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int pick(int v, int def) { return v == 0 ? def : v; }

struct svc_breaker *svc_breaker_new(const char *name, const struct svc_breaker_config *cfg) {
    struct svc_breaker *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    if (cfg) b->cfg = *cfg;
    struct svc_breaker_config *c = &b->cfg;
    c->failure_threshold = pick(c->failure_threshold, 5);
    c->window_size = pick(c->window_size, 20);
    if (c->window_size > SVC_BREAKER_MAX_WINDOW) c->window_size = SVC_BREAKER_MAX_WINDOW;
    c->window_min_calls = pick(c->window_min_calls, 10);
    c->failure_rate_pct = pick(c->failure_rate_pct, 50);
    if (c->open_timeout_ms == 0) c->open_timeout_ms = 30000;
    c->half_open_max_probes = pick(c->half_open_max_probes, 1);
    if (c->half_open_max_probes < 1) c->half_open_max_probes = 1;
    c->half_open_successes = pick(c->half_open_successes, 2);
    if (c->half_open_successes < 1) c->half_open_successes = 1;
    if (!c->clock) c->clock = svc_breaker_monotonic_ms;

    if (c->window_size > 0) {
        b->window = calloc((size_t)c->window_size, 1);
        if (!b->window) {
            free(b);
            return NULL;
        }
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->window);
        free(b);
        return NULL;
    }
    snprintf(b->name, sizeof b->name, "%s", name ? name : "");
    b->state = SVC_BREAKER_CLOSED;
    return b;
}

void svc_breaker_free(struct svc_breaker *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->window);
    free(b);
}

const char *svc_breaker_name(const struct svc_breaker *b) { return b->name; }

uint64_t svc_breaker_now_ms(const struct svc_breaker *b) { return b->cfg.clock(b->cfg.clock_arg); }

const char *svc_breaker_state_str(svc_breaker_state_t s) {
    switch (s) {
    case SVC_BREAKER_CLOSED: return "closed";
    case SVC_BREAKER_HALF_OPEN: return "half_open";
    case SVC_BREAKER_OPEN: return "open";
    }
    return "unknown";
}

/* ---- transitions (mutex held) ---- */

struct pending {
    struct transition t[2];
    int n;
};

static void move_to(struct svc_breaker *b, svc_breaker_state_t to, uint64_t now, struct pending *p) {
    if (p->n < 2) p->t[p->n++] = (struct transition){ b->state, to };
    b->state = to;
    b->generation++;
    b->probes_in_flight = 0;
    b->probe_successes = 0;
    if (to == SVC_BREAKER_OPEN) b->opened_at = now;
    if (to == SVC_BREAKER_CLOSED) {
        b->consecutive_failures = 0;
        b->win_pos = b->win_count = b->win_failures = 0;
    }
}

static void expire_open(struct svc_breaker *b, uint64_t now, struct pending *p) {
    /* now was read before the mutex was taken, so it may be a little older than opened_at. */
    if (b->state == SVC_BREAKER_OPEN && now >= b->opened_at && now - b->opened_at >= b->cfg.open_timeout_ms)
        move_to(b, SVC_BREAKER_HALF_OPEN, now, p);
}

static void window_push(struct svc_breaker *b, int failed) {
    int size = b->cfg.window_size;
    if (size <= 0) return;
    if (b->win_count == size) b->win_failures -= b->window[b->win_pos];
    else b->win_count++;
    b->window[b->win_pos] = (uint8_t)failed;
    b->win_failures += failed;
    b->win_pos = (b->win_pos + 1) % size;
}

static bool should_trip(const struct svc_breaker *b) {
    const struct svc_breaker_config *c = &b->cfg;
    if (c->failure_threshold > 0 && b->consecutive_failures >= c->failure_threshold) return true;
    if (c->window_size > 0 && c->failure_rate_pct > 0 && b->win_count >= c->window_min_calls &&
        b->win_failures * 100 >= c->failure_rate_pct * b->win_count)
        return true;
    return false;
}

static void notify(struct svc_breaker *b, const struct pending *p) {
    if (!b->cfg.on_change) return;
    for (int i = 0; i < p->n; i++) b->cfg.on_change(b->cfg.on_change_arg, b->name, p->t[i].from, p->t[i].to);
}

/* ---- public ---- */

bool svc_breaker_allow(struct svc_breaker *b, struct svc_breaker_permit *permit) {
    struct pending p = { .n = 0 };
    bool ok = false;
    uint64_t now = b->cfg.clock(b->cfg.clock_arg);
    pthread_mutex_lock(&b->mu);
    expire_open(b, now, &p);
    switch (b->state) {
    case SVC_BREAKER_CLOSED:
        *permit = (struct svc_breaker_permit){ b->generation, false };
        ok = true;
        break;
    case SVC_BREAKER_HALF_OPEN:
        if (b->probes_in_flight < b->cfg.half_open_max_probes) {
            b->probes_in_flight++;
            *permit = (struct svc_breaker_permit){ b->generation, true };
            ok = true;
        }
        break;
    case SVC_BREAKER_OPEN:
        break;
    }
    pthread_mutex_unlock(&b->mu);
    notify(b, &p);
    return ok;
}

void svc_breaker_record(struct svc_breaker *b, const struct svc_breaker_permit *permit, svc_breaker_result_t result) {
    struct pending p = { .n = 0 };
    uint64_t now = b->cfg.clock(b->cfg.clock_arg);
    pthread_mutex_lock(&b->mu);
    if (permit->generation != b->generation) goto out;   /* verdict from before a transition */

    if (b->state == SVC_BREAKER_CLOSED) {
        if (result == SVC_BREAKER_IGNORE) goto out;
        int failed = result == SVC_BREAKER_FAILURE;
        b->consecutive_failures = failed ? b->consecutive_failures + 1 : 0;
        window_push(b, failed);
        if (failed && should_trip(b)) move_to(b, SVC_BREAKER_OPEN, now, &p);
    } else if (b->state == SVC_BREAKER_HALF_OPEN && permit->probe) {
        b->probes_in_flight--;
        if (result == SVC_BREAKER_FAILURE) {
            move_to(b, SVC_BREAKER_OPEN, now, &p);
        } else if (result == SVC_BREAKER_SUCCESS && ++b->probe_successes >= b->cfg.half_open_successes) {
            move_to(b, SVC_BREAKER_CLOSED, now, &p);
        }
    }
out:
    pthread_mutex_unlock(&b->mu);
    notify(b, &p);
}

svc_breaker_state_t svc_breaker_state(struct svc_breaker *b) {
    struct pending p = { .n = 0 };
    uint64_t now = b->cfg.clock(b->cfg.clock_arg);
    pthread_mutex_lock(&b->mu);
    expire_open(b, now, &p);
    svc_breaker_state_t s = b->state;
    pthread_mutex_unlock(&b->mu);
    notify(b, &p);
    return s;
}
