/* A bounded, thread-safe pool of reusable resources (connections), independent of what they are.
 *
 * The pool is a fixed table of `size` slots. A slot is free or lent to one thread; a free slot may
 * or may not hold an open resource. Acquire claims a free slot, preferring one that holds a
 * resource, waits up to a timeout when none is free (SVC_TIMEOUT after that), and then — with the
 * mutex released — asks `alive` whether the idle resource is still usable, closes it if not, and
 * `open`s a new one when the slot is empty. Release asks `reset` whether the returned resource
 * can be lent again (after tidying it, e.g. a ROLLBACK) and closes it if not. A failed open gives
 * the slot back at once (SVC_UNAVAILABLE), so a dependency being down never leaks capacity.
 *
 * The pg and redisx pools are thin adapters on this: they supply the callbacks and the probe
 * their ping runs.
 *
 * Synchronisation: one mutex guards the slot table and the counters; waiters sleep on one
 * condition variable bound to CLOCK_MONOTONIC (a wall-clock jump neither shortens nor stretches a
 * wait). The callbacks (open, alive, reset, close, a ping's probe) are NEVER called with the
 * mutex held, so one slow connect or a dead peer never stalls other threads; they may run on
 * several threads at once (each on a different resource) and may call any svc_slotpool function
 * except acquire/release/free.
 *
 * Ownership: the pool owns every resource it opened and closes them through ops.close (on a
 * failed liveness check, on a release that reset refuses, and in svc_slotpool_free). A caller
 * borrows one between acquire and release and must release it on every path. The pool never
 * dereferences a resource; it only compares the pointer. ctx is borrowed: it must outlive the
 * pool. */
#ifndef SVC_SLOTPOOL_H
#define SVC_SLOTPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include "svc/status.h"

struct svc_slotpool;

/* Size of the buffer open() may write its failure reason into (including the NUL). */
#define SVC_SLOTPOOL_WHY_MAX 256

struct svc_slotpool_ops {
    /* Opens a ready-to-use resource. On failure returns NULL and writes a short reason into why
     * (whylen bytes, at most SVC_SLOTPOOL_WHY_MAX); the reason must hold no secret: ping shows
     * it. Required. */
    void *(*open)(void *ctx, char *why, size_t whylen);
    /* True when an idle resource may be lent out; false makes the pool close and reopen it.
     * NULL: every idle resource is taken to be alive. */
    bool (*alive)(void *ctx, void *res);
    /* Readies a returned resource for the next borrower; false makes the pool close it.
     * NULL: every returned resource is kept. */
    bool (*reset)(void *ctx, void *res);
    /* Releases a resource for good. Required. */
    void (*close)(void *ctx, void *res);
};

/* reconnects: resources opened in a slot that had held one before (a replacement);
 * timeouts: acquires that gave up waiting, plus whatever the owner adds with count_timeout. */
struct svc_slotpool_stats { int size; int open; int in_use; int waiting; unsigned long reconnects; unsigned long timeouts; };

/* size: number of slots (< 1 means 1). acquire_timeout_ms: the wait used when acquire is given
 * timeout_ms < 0 (< 0 here means 0). ops is copied; ctx is passed to every callback.
 * Opens nothing; returns NULL on allocation failure or when ops->open or ops->close is missing. */
struct svc_slotpool *svc_slotpool_new(int size, int acquire_timeout_ms,
                                      const struct svc_slotpool_ops *ops, void *ctx);
/* Closes every held resource; call only once every borrowed resource is released. NULL is ignored. */
void svc_slotpool_free(struct svc_slotpool *p);

/* Borrows a live resource. timeout_ms < 0 uses the configured default; 0 never waits.
 * On failure returns NULL and sets *st (st may be NULL) to SVC_TIMEOUT (every slot stayed taken
 * until the deadline) or SVC_UNAVAILABLE (open failed; its reason is kept for ping). */
void *svc_slotpool_acquire(struct svc_slotpool *p, int timeout_ms, svc_status *st);
/* Gives back a resource from acquire (NULL is ignored). Runs ops.reset, then keeps the resource
 * or closes it and empties its slot; the slot becomes free only after the close, so the pool never
 * holds more than size resources. A resource this pool did not lend is reset and, if refused,
 * closed, but never enters the pool. */
void svc_slotpool_release(struct svc_slotpool *p, void *res);

/* One health round trip: probe(ctx, res, err, errlen) returns 0, or -1 with a short reason (no
 * secrets) in err. */
typedef int (*svc_slotpool_probe)(void *ctx, void *res, char *err, size_t errlen);
/* Acquires (timeout_ms as for acquire), times probe, releases. Returns 0 and sets *latency_ms
 * (may be NULL), or -1 with err set: "pool exhausted", "cannot connect: <reason of the failed
 * open>" or the probe's reason. */
int svc_slotpool_ping(struct svc_slotpool *p, int timeout_ms, svc_slotpool_probe probe,
                      double *latency_ms, char *err, size_t errlen);

/* Adds one to stats.timeouts (the owner's own timeouts, e.g. a command that timed out). */
void svc_slotpool_count_timeout(struct svc_slotpool *p);
void svc_slotpool_stats(struct svc_slotpool *p, struct svc_slotpool_stats *out);

#endif
