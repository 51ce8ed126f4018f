/* Leader/follower combining of postings; see post_batch.h.
 *
 * Invariant (under mu): the queue holds only callers that wait to be batched, and it is non-empty
 * only while every slot is taken (leaders == max_leaders). A caller that finds a free slot thus
 * finds an empty queue and leads a batch of itself; a leader that finishes hands its slot to the
 * queue's head instead of freeing it, so queued callers are never stranded. */
#include "post_batch.h"

#include <stdlib.h>
#include <string.h>

struct post_batch {
    pthread_mutex_t mu;
    struct pb_item *head, *tail;    /* waiting to be batched, oldest first */
    int leaders;                    /* slots taken */
    int max_leaders, max_batch;
    pb_exec_fn exec;
    void *ctx;
};

struct post_batch *pb_new(int max_leaders, int max_batch, pb_exec_fn exec, void *ctx) {
    if (max_leaders < 1 || max_batch < 1 || max_batch > PB_BATCH_CAP || !exec) return NULL;
    struct post_batch *pb = calloc(1, sizeof *pb);
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

void pb_free(struct post_batch *pb) {
    if (!pb) return;
    pthread_mutex_destroy(&pb->mu);
    free(pb);
}

static bool group_taken(struct pb_item **batch, int n, const char *group) {
    for (int i = 0; i < n; i++)
        if (!strcmp(batch[i]->group, group)) return true;
    return false;
}

/* Moves queued items whose group is not yet in the batch into it, oldest first, up to max_batch.
 * Under mu. */
static int take_queued(struct post_batch *pb, struct pb_item **batch, int n) {
    struct pb_item **link = &pb->head, *prev = NULL;
    while (*link && n < pb->max_batch) {
        struct pb_item *it = *link;
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

static void enqueue(struct post_batch *pb, struct pb_item *it) {
    it->next = NULL;
    if (pb->tail) pb->tail->next = it;
    else pb->head = it;
    pb->tail = it;
}

static struct pb_item *dequeue_head(struct post_batch *pb) {
    struct pb_item *it = pb->head;
    if (!it) return NULL;
    pb->head = it->next;
    if (!pb->head) pb->tail = NULL;
    it->next = NULL;
    return it;
}

void pb_submit(struct post_batch *pb, struct pb_item *it) {
    it->next = NULL;
    it->done = it->lead = false;
    pthread_cond_init(&it->cv, NULL);

    pthread_mutex_lock(&pb->mu);
    if (pb->leaders < pb->max_leaders) {
        pb->leaders++;
        it->lead = true;
    } else {
        enqueue(pb, it);
        while (!it->done && !it->lead) pthread_cond_wait(&it->cv, &pb->mu);
    }
    if (it->done) {                 /* a leader ran this item */
        pthread_mutex_unlock(&pb->mu);
        pthread_cond_destroy(&it->cv);
        return;
    }

    /* Leading: this item first, then whatever queued fits. */
    struct pb_item *batch[PB_BATCH_CAP];
    batch[0] = it;
    int n = take_queued(pb, batch, 1);
    pthread_mutex_unlock(&pb->mu);

    pb->exec(pb->ctx, batch, n);

    pthread_mutex_lock(&pb->mu);
    for (int i = 1; i < n; i++) {
        batch[i]->done = true;
        pthread_cond_signal(&batch[i]->cv);
    }
    struct pb_item *next = dequeue_head(pb);
    if (next) {                     /* hand the slot over */
        next->lead = true;
        pthread_cond_signal(&next->cv);
    } else {
        pb->leaders--;
    }
    pthread_mutex_unlock(&pb->mu);
    pthread_cond_destroy(&it->cv);
}
