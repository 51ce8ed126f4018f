/* Combines requests that arrive at the same time into one batch of work ("leader/follower",
 * group commit in the service): transactions-service's postings into one database statement,
 * sync-service's accepted events into one Redis pipeline.
 *
 * Why: the fixed cost of a round trip (a statement's executor start-up, snapshot and commit
 * record; a Redis request's two syscalls on each side and a context switch) is far larger than
 * the work per item: postings ran about twice as fast 8 to a statement, and events cost Redis and
 * the service about half as much combined (bench/README.md, *Measurements behind the code*).
 *
 * How: a caller submits its item and waits. At most max_leaders batches run at once. A caller
 * that finds a free slot becomes a leader at once and runs a batch of just its own item, so an
 * idle service adds no delay. Callers that find every slot taken queue up; when a leader is done
 * it wakes the callers of its batch and hands its slot to the oldest queued caller, which takes
 * itself plus as many queued items as fit (max_batch) into the next batch. Two items of the same
 * group (for postings: the same user) never share a batch: the later one waits for a following
 * batch, so one batch never touches one balance row or one idempotency key twice. Items without
 * a group (NULL) share a batch with anything.
 *
 * A leader runs exec with no lock held; exec must fill every item's result and must not block on
 * another batch's progress (it may wait for the database or Redis). Waiting callers sleep on a
 * futex word in their own item and are woken directly, all at once, without taking the
 * combiner's lock again: with a condition variable each woken caller had to re-acquire the lock in
 * turn, one context switch after another (a queue of its own under full CPU load). Items are the
 * callers' own (usually on their stacks); the combiner only links them and never frees them.
 * Thread-safe. */
#ifndef SVC_COMBINER_H
#define SVC_COMBINER_H

#include <stdatomic.h>
#include <stdint.h>

/* The largest max_batch svc_combiner_new accepts (a leader keeps its batch on its stack). */
#define SVC_COMBINER_BATCH_CAP 64

struct svc_combiner;

struct svc_combiner_item {
    void *data;                  /* the caller's input and output, read and filled by exec */
    const char *group;           /* items with equal groups (strcmp) never share a batch; NULL: no group */
    /* private to combiner.c */
    struct svc_combiner_item *next;
    _Atomic uint32_t state;      /* waiting / done / leading; a futex word */
};

/* Runs items[0..n-1] (1 <= n <= max_batch) and fills their data's results. */
typedef void (*svc_combiner_exec_fn)(void *ctx, struct svc_combiner_item **items, int n);

/* 1 <= max_leaders, 1 <= max_batch <= SVC_COMBINER_BATCH_CAP. NULL when out of range or out of memory. */
struct svc_combiner *svc_combiner_new(int max_leaders, int max_batch, svc_combiner_exec_fn exec, void *ctx);

/* Only once no submit is running. NULL is fine. */
void svc_combiner_free(struct svc_combiner *pb);

/* Runs it through some batch; returns once exec has filled it->data. it->data and it->group must
 * be set (group may be NULL); the rest is initialised here. */
void svc_combiner_submit(struct svc_combiner *pb, struct svc_combiner_item *it);

#endif
