/* How a consumer's batch reaches the table: the decisions between "write it" and "acknowledge
 * it", apart from SQL and Redis so they are unit-tested against a fake sink.
 *
 *   1. One fast write (a plain COPY) unless a row needs the cross-day duplicate check; a
 *      duplicate (a redelivery, a replay, a client retry) makes it fail whole, and the batch is
 *      written again the careful way (staging table, duplicates skipped and counted).
 *   2. No partition for a row's day: the partitions are created (maintain) and the write is
 *      tried again, once; after that it is a data error like any other.
 *   3. Transient failures (PostgreSQL down, restarting, out of connections, a timeout, a
 *      deadlock): wait with backoff (full jitter, capped) and try again, for as long as it takes.
 *      Nothing is counted against the batch: an outage must never dead-letter good events. The
 *      wait calls heartbeat, so the batch's stream entries are not taken over meanwhile, and
 *      gives up when sleep reports the service stopping (the entries stay unacknowledged and are
 *      delivered again).
 *   4. Data errors (a row PostgreSQL refuses: a constraint, a trigger, a type): retried
 *      max_retries times with backoff, then the batch is split in halves, recursively, each piece
 *      written the careful way: good pieces are stored, and a single row that still fails is
 *      dead-lettered with PostgreSQL's message and SQLSTATE. The dead letters are written last,
 *      in one call; a transient failure while splitting waits and resumes the same piece.
 * A redelivered batch goes through the same steps: rows already stored are duplicates (skipped),
 * rows already dead-lettered are dead-lettered again (a no-op in the dead-letter table).
 *
 * Single-threaded: one writer call per consumer thread at a time. Ownership: rows and the sink
 * are borrowed for the call. */
#ifndef EVENTS_WRITER_H
#define EVENTS_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h"
#include "events_codec.h"
#include "svc/backoff.h"

enum events_outcome {
    EVENTS_W_OK = 0,
    EVENTS_W_DUPLICATE,      /* fast write only: a row is stored already */
    EVENTS_W_NO_PARTITION,   /* a row's day has no partition */
    EVENTS_W_DATA,           /* PostgreSQL refused a row */
    EVENTS_W_TRANSIENT       /* try again later */
};

struct events_write_error {
    enum events_outcome kind;
    char sqlstate[6];
    char message[200];
};

struct events_sink {
    void *ctx;
    /* Stores rows[0..n) in one transaction (all or none). careful: duplicates are skipped, and
     * written[type] += the rows actually stored; fast: written[type] += every row. On failure
     * fills err. */
    enum events_outcome (*write)(void *ctx, const struct event_view *const *rows, size_t n, bool careful,
                                 unsigned long written[EVENTS_NTYPES], struct events_write_error *err);
    /* Stores dead letters (all or none): rows[i] failed with why[i], after attempts writes. */
    enum events_outcome (*dead)(void *ctx, const struct event_view *const *rows, const struct events_write_error *why,
                                size_t n, int attempts, struct events_write_error *err);
    void (*maintain)(void *ctx);       /* creates missing partitions */
    bool (*sleep)(void *ctx, long ms); /* false: the service is stopping */
    void (*heartbeat)(void *ctx);      /* called during long waits */
    uint64_t (*random)(void *ctx);     /* jitter */
};

struct events_write_policy {
    long max_retries;                  /* data errors tried again before splitting */
    struct svc_backoff_policy retry;       /* waits between those tries */
    struct svc_backoff_policy transient;   /* waits while PostgreSQL is away */
};

struct events_batch_result {
    unsigned long written[EVENTS_NTYPES];
    unsigned long duplicates[EVENTS_NTYPES];
    unsigned long dead[EVENTS_NTYPES];
    int writes;              /* write calls made */
    int transient;           /* transient failures waited out */
    bool split;
    struct events_write_error last;  /* the last failure seen (kind EVENTS_W_OK when none) */
};

/* Writes the batch. True: every row is accounted for (stored, duplicate or dead-lettered) and
 * its entries may be acknowledged. False: the service is stopping before that (or memory ran
 * out); acknowledge nothing. */
bool events_write_batch(const struct events_sink *s, const struct events_write_policy *p,
                        const struct event_view *const *rows, size_t n, struct events_batch_result *out);

#endif
