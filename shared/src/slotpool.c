/* Generic bounded resource pool (see svc/slotpool.h for the contract).
 *
 * Acquire works in three steps: claim a slot under the mutex, check/open its resource with the
 * mutex dropped, then commit the result (counters, slot contents) under the mutex again. While a
 * slot is claimed its table entry holds NULL — the claimer keeps the resource in a local — so
 * release, which finds a slot by comparing pointers, can never match a resource that is being
 * checked or closed, nor a freed pointer whose address malloc has handed to a new resource.
 *
 * Release of a resource that must go away empties the slot but keeps it claimed until the close
 * has finished, so a waiter woken by that release cannot open a replacement while the old
 * connection still exists (a server with a tight connection limit would refuse it).
 *
 * Waits use a CLOCK_MONOTONIC condition variable, immune to wall-clock jumps. One release wakes
 * one waiter (pthread_cond_signal): exactly one slot became free. */
#include "svc/slotpool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slotpool_slot {
    void *res;       /* NULL when empty or while claimed (the claimer holds it) */
    bool in_use;
    bool ever_open;  /* a later open in this slot counts as a reconnect */
};

struct svc_slotpool {
    struct svc_slotpool_ops ops;
    void *ctx;
    int acquire_timeout_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct slotpool_slot *slots;
    int size;
    int open;
    int in_use;
    int waiting;
    unsigned long reconnects;
    unsigned long timeouts;
    char last_error[SVC_SLOTPOOL_WHY_MAX];
};

struct svc_slotpool *svc_slotpool_new(int size, int acquire_timeout_ms,
                                      const struct svc_slotpool_ops *ops, void *ctx) {
    if (!ops || !ops->open || !ops->close) return NULL;
    struct svc_slotpool *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->ops = *ops;
    p->ctx = ctx;
    p->size = size >= 1 ? size : 1;
    p->acquire_timeout_ms = acquire_timeout_ms >= 0 ? acquire_timeout_ms : 0;
    p->slots = calloc((size_t)p->size, sizeof(*p->slots));

    pthread_condattr_t ca;
    bool ca_ok = pthread_condattr_init(&ca) == 0;
    bool cv_ok = ca_ok && pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&p->cv, &ca) == 0;
    if (ca_ok) pthread_condattr_destroy(&ca);
    bool mu_ok = pthread_mutex_init(&p->mu, NULL) == 0;
    if (!p->slots || !cv_ok || !mu_ok) {
        if (cv_ok) pthread_cond_destroy(&p->cv);
        if (mu_ok) pthread_mutex_destroy(&p->mu);
        free(p->slots);
        free(p);
        return NULL;
    }
    return p;
}

void svc_slotpool_free(struct svc_slotpool *p) {
    if (!p) return;
    for (int i = 0; i < p->size; i++)
        if (p->slots[i].res) p->ops.close(p->ctx, p->slots[i].res);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->slots);
    free(p);
}

static struct timespec slotpool_deadline(int timeout_ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Claims a free slot, preferring one that holds a resource, and moves that resource into *res.
 * Returns the slot index or -1 when every slot is taken. Mutex held. */
static int slotpool_claim(struct svc_slotpool *p, void **res) {
    int pick = -1;
    for (int i = 0; i < p->size; i++) {
        if (p->slots[i].in_use) continue;
        if (p->slots[i].res) {
            pick = i;
            break;
        }
        if (pick < 0) pick = i;
    }
    if (pick >= 0) {
        p->slots[pick].in_use = true;
        p->in_use++;
        *res = p->slots[pick].res;
        p->slots[pick].res = NULL;
    }
    return pick;
}

/* Makes a claimed slot free again and wakes one waiter. Mutex held. */
static void slotpool_unclaim(struct svc_slotpool *p, int i) {
    p->slots[i].in_use = false;
    p->in_use--;
    pthread_cond_signal(&p->cv);
}

void *svc_slotpool_acquire(struct svc_slotpool *p, int timeout_ms, svc_status *st) {
    svc_status dummy;
    if (!st) st = &dummy;
    if (timeout_ms < 0) timeout_ms = p->acquire_timeout_ms;
    struct timespec deadline = slotpool_deadline(timeout_ms);

    void *res = NULL;
    pthread_mutex_lock(&p->mu);
    int i;
    while ((i = slotpool_claim(p, &res)) < 0) {
        p->waiting++;
        int rc = timeout_ms > 0 ? pthread_cond_timedwait(&p->cv, &p->mu, &deadline) : ETIMEDOUT;
        p->waiting--;
        if (rc == ETIMEDOUT && (i = slotpool_claim(p, &res)) < 0) {
            p->timeouts++;
            pthread_mutex_unlock(&p->mu);
            *st = SVC_TIMEOUT;
            return NULL;
        }
        if (i >= 0) break;
    }
    pthread_mutex_unlock(&p->mu);

    /* The slot is ours: check or (re)open its resource without holding the mutex. */
    bool dropped = false;
    if (res && p->ops.alive && !p->ops.alive(p->ctx, res)) {
        p->ops.close(p->ctx, res);
        res = NULL;
        dropped = true;
    }
    char why[SVC_SLOTPOOL_WHY_MAX] = "";
    bool reopened = false;
    if (!res) {
        res = p->ops.open(p->ctx, why, sizeof(why));
        reopened = res != NULL;
    }

    pthread_mutex_lock(&p->mu);
    if (dropped) p->open--;
    if (reopened) {
        p->open++;
        if (p->slots[i].ever_open) p->reconnects++;
        p->slots[i].ever_open = true;
    }
    if (!res) {
        snprintf(p->last_error, sizeof(p->last_error), "%s", why[0] ? why : "open failed");
        slotpool_unclaim(p, i);
        pthread_mutex_unlock(&p->mu);
        *st = SVC_UNAVAILABLE;
        return NULL;
    }
    p->slots[i].res = res;
    pthread_mutex_unlock(&p->mu);
    *st = SVC_OK;
    return res;
}

void svc_slotpool_release(struct svc_slotpool *p, void *res) {
    if (!p || !res) return;
    bool keep = !p->ops.reset || p->ops.reset(p->ctx, res);
    pthread_mutex_lock(&p->mu);
    int i;
    for (i = 0; i < p->size; i++)
        if (p->slots[i].in_use && p->slots[i].res == res) break;
    if (i == p->size) {
        pthread_mutex_unlock(&p->mu);
        if (!keep) p->ops.close(p->ctx, res);
        return;
    }
    if (keep) {
        slotpool_unclaim(p, i);
        pthread_mutex_unlock(&p->mu);
        return;
    }
    p->slots[i].res = NULL;  /* still claimed: nobody can take the slot before the close is done */
    pthread_mutex_unlock(&p->mu);

    p->ops.close(p->ctx, res);

    pthread_mutex_lock(&p->mu);
    p->open--;
    slotpool_unclaim(p, i);
    pthread_mutex_unlock(&p->mu);
}

static double slotpool_elapsed_ms(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) * 1000.0 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

int svc_slotpool_ping(struct svc_slotpool *p, int timeout_ms, svc_slotpool_probe probe,
                      double *latency_ms, char *err, size_t errlen) {
    svc_status st;
    void *res = svc_slotpool_acquire(p, timeout_ms, &st);
    if (!res) {
        if (st == SVC_TIMEOUT) {
            snprintf(err, errlen, "pool exhausted");
        } else {
            pthread_mutex_lock(&p->mu);
            snprintf(err, errlen, "cannot connect: %s", p->last_error);
            pthread_mutex_unlock(&p->mu);
        }
        return -1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = probe(p->ctx, res, err, errlen);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc == 0 && latency_ms) *latency_ms = slotpool_elapsed_ms(&t0, &t1);
    svc_slotpool_release(p, res);
    return rc == 0 ? 0 : -1;
}

void svc_slotpool_count_timeout(struct svc_slotpool *p) {
    pthread_mutex_lock(&p->mu);
    p->timeouts++;
    pthread_mutex_unlock(&p->mu);
}

void svc_slotpool_stats(struct svc_slotpool *p, struct svc_slotpool_stats *out) {
    pthread_mutex_lock(&p->mu);
    out->size = p->size;
    out->open = p->open;
    out->in_use = p->in_use;
    out->waiting = p->waiting;
    out->reconnects = p->reconnects;
    out->timeouts = p->timeouts;
    pthread_mutex_unlock(&p->mu);
}
