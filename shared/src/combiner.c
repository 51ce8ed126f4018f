/* Leader/follower combining of concurrent requests; see svc/combiner.h.
 *
 * Invariant (under mu): the queue holds only callers that wait to be batched, and it is non-empty
 * only while every slot is taken (leaders == max_leaders). A caller that finds a free slot thus
 * finds an empty queue and leads a batch of itself; a leader that finishes hands its slot to the
 * queue's head instead of freeing it, so queued callers are never stranded. */
#include "svc/combiner.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { COMBINER_WAITING = 0, COMBINER_DONE = 1, COMBINER_LEAD = 2 };

struct svc_combiner {
    pthread_mutex_t mu;
    struct svc_combiner_item *head, *tail;    /* waiting to be batched, oldest first */
    int leaders;                    /* slots taken */
    int max_leaders, max_batch;
    svc_combiner_exec_fn exec;
    void *ctx;
};

struct svc_combiner *svc_combiner_new(int max_leaders, int max_batch, svc_combiner_exec_fn exec, void *ctx) {
    if (max_leaders < 1 || max_batch < 1 || max_batch > SVC_COMBINER_BATCH_CAP || !exec) return NULL;
    struct svc_combiner *pb = calloc(1, sizeof *pb);
    if (!pb) return NULL;
    if (pthread_mutex_init(&pb->mu, NULL) != 0) {
        free(pb);
        return NULL;
    }
    pb->max_leaders = max_leaders;
    pb->max_batch = max_batch;
    pb->exec = exec;
    pb->ctx = ctx;
    return pb;
}

void svc_combiner_free(struct svc_combiner *pb) {
    if (!pb) return;
    pthread_mutex_destroy(&pb->mu);
    free(pb);
}

static bool group_taken(struct svc_combiner_item **batch, int n, const char *group) {
    if (!group) return false;
    for (int i = 0; i < n; i++)
        if (batch[i]->group && !strcmp(batch[i]->group, group)) return true;
    return false;
}

/* Moves queued items whose group is not yet in the batch into it, oldest first, up to max_batch.
 * Under mu. */
static int take_queued(struct svc_combiner *pb, struct svc_combiner_item **batch, int n) {
    struct svc_combiner_item **link = &pb->head, *prev = NULL;
    while (*link && n < pb->max_batch) {
        struct svc_combiner_item *it = *link;
        if (group_taken(batch, n, it->group)) {
            prev = it;
            link = &it->next;
            continue;
        }
        *link = it->next;
        if (pb->tail == it) pb->tail = prev;
        it->next = NULL;
        batch[n++] = it;
    }
    return n;
}

static void enqueue(struct svc_combiner *pb, struct svc_combiner_item *it) {
    it->next = NULL;
    if (pb->tail) pb->tail->next = it;
    else pb->head = it;
    pb->tail = it;
}

static struct svc_combiner_item *dequeue_head(struct svc_combiner *pb) {
    struct svc_combiner_item *it = pb->head;
    if (!it) return NULL;
    pb->head = it->next;
    if (!pb->head) pb->tail = NULL;
    it->next = NULL;
    return it;
}

/* Sleeps while *w == v (a futex wait returns early on a signal or a change: the loop re-checks). */
static void wait_while(_Atomic uint32_t *w, uint32_t v) {
    while (atomic_load_explicit(w, memory_order_acquire) == v)
        syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

/* Publishes v in *w and wakes its sleeper. The item may be gone the moment v is visible (its
 * caller returns): the wake only passes the address to the kernel, which for a private futex
 * reads nothing there; at worst it wakes a later waiter on a reused address, whose loop waits
 * again. */
static void publish(_Atomic uint32_t *w, uint32_t v) {
    atomic_store_explicit(w, v, memory_order_release);
    syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void svc_combiner_submit(struct svc_combiner *pb, struct svc_combiner_item *it) {
    it->next = NULL;
    atomic_store_explicit(&it->state, COMBINER_WAITING, memory_order_relaxed);
    struct svc_combiner_item *batch[SVC_COMBINER_BATCH_CAP];
    batch[0] = it;
    int n = 1;

    pthread_mutex_lock(&pb->mu);
    if (pb->leaders < pb->max_leaders) {
        pb->leaders++;              /* the queue is empty (see the invariant): a batch of one */
        pthread_mutex_unlock(&pb->mu);
    } else {
        enqueue(pb, it);
        pthread_mutex_unlock(&pb->mu);
        wait_while(&it->state, COMBINER_WAITING);
        if (atomic_load_explicit(&it->state, memory_order_acquire) == COMBINER_DONE) return;
        /* handed a slot (and taken off the queue): lead this item and what queued behind it */
        pthread_mutex_lock(&pb->mu);
        n = take_queued(pb, batch, 1);
        pthread_mutex_unlock(&pb->mu);
    }

    pb->exec(pb->ctx, batch, n);

    pthread_mutex_lock(&pb->mu);
    struct svc_combiner_item *next = dequeue_head(pb);
    if (!next) pb->leaders--;       /* else the slot passes to next */
    pthread_mutex_unlock(&pb->mu);
    if (next) publish(&next->state, COMBINER_LEAD);   /* first: the next batch starts while we wake */
    for (int i = 1; i < n; i++) publish(&batch[i]->state, COMBINER_DONE);
}
