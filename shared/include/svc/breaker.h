/* Circuit breaker for one named upstream.
 *
 *   CLOSED ──(N consecutive failures, or failure rate ≥ R% over the last W calls with ≥ M calls)──▶ OPEN
 *   OPEN ──(open_timeout_ms elapsed)──▶ HALF_OPEN            (calls are rejected at once while OPEN)
 *   HALF_OPEN: at most P probe calls in flight; S successes ──▶ CLOSED, any failure ──▶ OPEN
 *
 * Usage: every call asks svc_breaker_allow() first; when it returns true the call goes ahead and its
 * verdict MUST be reported exactly once with svc_breaker_record() (SVC_BREAKER_IGNORE when the result says
 * nothing about the upstream's health) — a half-open probe slot stays taken until it is.
 * What counts as a failure is the caller's decision (httpc: connect errors, timeouts, dropped
 * connections, 5xx, 429; not other 4xx, which prove the upstream is up and answering).
 *
 * Every transition bumps a generation number carried by each permit, so the verdict of a call
 * that was let through before a transition (e.g. a slow call that finishes after the breaker
 * opened) is ignored instead of corrupting the new state's counters.
 *
 * Time comes from an injected monotonic clock (milliseconds), so tests drive it; the OPEN →
 * HALF_OPEN move happens lazily when the breaker is next consulted (allow or state).
 *
 * Synchronisation: one mutex per breaker guards all of its state; every function is thread-safe.
 * The state-change callback runs AFTER the mutex is released (it may call svc_breaker_state), on the
 * thread whose call caused the change; with concurrent callers two notifications may arrive in a
 * different order than the transitions happened, each one carries its own from/to.
 *
 * Ownership: svc_breaker_new copies the name and the config; svc_breaker_free releases everything. */
#ifndef SVC_BREAKER_H
#define SVC_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* Numeric values are the exported metric values (circuit_breaker_state). */
typedef enum { SVC_BREAKER_CLOSED = 0, SVC_BREAKER_HALF_OPEN = 1, SVC_BREAKER_OPEN = 2 } svc_breaker_state_t;

typedef enum {
    SVC_BREAKER_SUCCESS,   /* the upstream answered properly */
    SVC_BREAKER_FAILURE,   /* the upstream is unhealthy (counts towards opening) */
    SVC_BREAKER_IGNORE     /* no verdict (e.g. a local error): only releases the permit */
} svc_breaker_result_t;

/* Monotonic milliseconds. */
typedef uint64_t (*svc_breaker_clock_fn)(void *arg);
typedef void (*svc_breaker_change_fn)(void *arg, const char *name, svc_breaker_state_t from, svc_breaker_state_t to);

/* Zero fields take the defaults in brackets; -1 disables the consecutive rule or the rate rule. */
struct svc_breaker_config {
    int failure_threshold;       /* consecutive failures that open [5] */
    int window_size;             /* calls in the sliding window, max 1024 [20] */
    int window_min_calls;        /* the rate rule needs at least this many calls in the window [10] */
    int failure_rate_pct;        /* open when failures*100 >= pct*calls in the window [50] */
    uint32_t open_timeout_ms;    /* OPEN → HALF_OPEN after [30000] */
    int half_open_max_probes;    /* concurrent probe calls let through when HALF_OPEN [1] */
    int half_open_successes;     /* probe successes that close [2] */
    svc_breaker_clock_fn clock;      /* [CLOCK_MONOTONIC] */
    void *clock_arg;
    svc_breaker_change_fn on_change; /* may be NULL */
    void *on_change_arg;
};

/* What svc_breaker_allow hands out; opaque to callers, passed back to svc_breaker_record. */
struct svc_breaker_permit {
    uint64_t generation;
    bool probe;
};

struct svc_breaker;

/* cfg may be NULL (all defaults). Returns NULL on allocation failure. */
struct svc_breaker *svc_breaker_new(const char *name, const struct svc_breaker_config *cfg);
void svc_breaker_free(struct svc_breaker *b);

/* true: go ahead and record the result later. false: rejected (OPEN, or HALF_OPEN with all probe
 * slots taken) — fail the call at once. */
bool svc_breaker_allow(struct svc_breaker *b, struct svc_breaker_permit *permit);
void svc_breaker_record(struct svc_breaker *b, const struct svc_breaker_permit *permit, svc_breaker_result_t result);

/* Current state (applies an elapsed open timeout first). */
svc_breaker_state_t svc_breaker_state(struct svc_breaker *b);
const char *svc_breaker_name(const struct svc_breaker *b);
/* "closed", "half_open", "open". */
const char *svc_breaker_state_str(svc_breaker_state_t s);
/* Milliseconds on the breaker's clock. */
uint64_t svc_breaker_now_ms(const struct svc_breaker *b);

/* The monotonic clock used when none is injected. */
uint64_t svc_breaker_monotonic_ms(void *unused);

#endif
