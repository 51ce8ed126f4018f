/* When a consumer writes its buffered events: at EVENTS_BATCH_MAX events (size trigger) or
 * EVENTS_FLUSH_MS after the first event of the batch arrived (time trigger), whichever comes
 * first. Pure bookkeeping on a clock the caller passes in, so the triggers are unit-tested
 * without threads or sleeps. One batcher per consumer thread; not shared. */
#ifndef EVENTS_BATCHER_H
#define EVENTS_BATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct events_batcher {
    size_t max;          /* size trigger, >= 1 */
    long flush_ms;       /* time trigger, >= 1 */
    size_t n;            /* events buffered */
    int64_t first_ms;    /* monotonic ms when the first buffered event arrived */
};

void events_batcher_init(struct events_batcher *b, size_t max, long flush_ms);
/* k events arrived at now_ms (the first of a batch starts its clock). */
void events_batcher_add(struct events_batcher *b, size_t k, int64_t now_ms);
/* Whether the buffered events must be written now. */
bool events_batcher_due(const struct events_batcher *b, int64_t now_ms);
/* How many more events the batch takes before the size trigger. */
size_t events_batcher_room(const struct events_batcher *b);
/* How long a read may block: idle_ms while empty, else the time left until the time trigger
 * (at least 1 ms; 0 when due). */
long events_batcher_wait_ms(const struct events_batcher *b, int64_t now_ms, long idle_ms);
/* After a read that left the batch open (the stream held fewer entries than the batch had room
 * for), how long to let events gather in the stream before the next read: gather_ms, cut to the
 * time left until the time trigger; 0 when the batch is empty or due, or gather_ms <= 0. Reading
 * again at once would fetch the one or two entries appended meanwhile: a Redis round trip, and a
 * wake-up of the consumer, for every couple of events under a steady stream. */
long events_batcher_gather_ms(const struct events_batcher *b, int64_t now_ms, long gather_ms);
/* Why a due batch is due: the size trigger wins when both hold. */
enum events_trigger { EVENTS_TRIGGER_SIZE, EVENTS_TRIGGER_TIME, EVENTS_TRIGGER_STOP };
enum events_trigger events_batcher_trigger(const struct events_batcher *b, int64_t now_ms);
/* The batch was written (or handed on): start a new one. */
void events_batcher_reset(struct events_batcher *b);

#endif
