/* Combines postings that arrive at the same time into one database statement (group commit in
 * the service, "leader/follower").
 *
 * Why: a posting costs PostgreSQL far more in per-statement and per-commit work (executor
 * start-up, snapshot, commit record, WAL flush) than in the rows it writes: the same postings
 * ran about twice as fast 8 to a statement as one by one (bench/README.md, *Measurements behind
 * the code*; db/transactions and tx_repo.c say how).
 *
 * How: a caller submits its item and waits. At most max_leaders batches run at once. A caller
 * that finds a free slot becomes a leader at once and runs a batch of just its own item, so an
 * idle service adds no delay. Callers that find every slot taken queue up; when a leader is done
 * it wakes the callers of its batch and hands its slot to the oldest queued caller, which takes
 * itself plus as many queued items as fit (max_batch) into the next batch. Two items of the same
 * group (the same user) never share a batch: the later one waits for a following batch, so one
 * batch never touches one balance row or one idempotency key twice.
 *
 * A leader runs exec with no lock held; exec must fill every item's result and must not block on
 * another batch's progress (it may wait for the database). Waiting callers sleep on a futex word
 * in their own item and are woken directly, all at once, without taking the combiner's lock
 * again: with a condition variable each woken caller had to re-acquire the lock in turn, one
 * context switch after another (a queue of its own under full CPU load). Items are the callers' own (usually on
 * their stacks); the combiner only links them and never frees them. Thread-safe. */
#ifndef TX_POST_BATCH_H
#define TX_POST_BATCH_H

#include <stdatomic.h>
#include <stdint.h>

/* The largest max_batch post_batch_new accepts (a leader keeps its batch on its stack). */
#define POST_BATCH_BATCH_CAP 64

struct post_batch;

struct post_batch_item {
    void *data;                  /* the caller's input and output, read and filled by exec */
    const char *group;           /* items with equal groups (strcmp) never share a batch */
    /* private to post_batch.c */
    struct post_batch_item *next;
    _Atomic uint32_t state;      /* waiting / done / leading; a futex word */
};

/* Runs items[0..n-1] (1 <= n <= max_batch) and fills their data's results. */
typedef void (*post_batch_exec_fn)(void *ctx, struct post_batch_item **items, int n);

/* 1 <= max_leaders, 1 <= max_batch <= POST_BATCH_BATCH_CAP. NULL when out of range or out of memory. */
struct post_batch *post_batch_new(int max_leaders, int max_batch, post_batch_exec_fn exec, void *ctx);

/* Only once no submit is running. NULL is fine. */
void post_batch_free(struct post_batch *pb);

/* Runs it through some batch; returns once exec has filled it->data. it->data and it->group must
 * be set; the rest is initialised here. */
void post_batch_submit(struct post_batch *pb, struct post_batch_item *it);

#endif
