/* Size and time triggers of a consumer's batch (see events_batcher.h). */
#include "events_batcher.h"

void events_batcher_init(struct events_batcher *b, size_t max, long flush_ms) {
    b->max = max ? max : 1;
    b->flush_ms = flush_ms > 0 ? flush_ms : 1;
    b->n = 0;
    b->first_ms = 0;
}

void events_batcher_add(struct events_batcher *b, size_t k, int64_t now_ms) {
    if (!k) return;
    if (b->n == 0) b->first_ms = now_ms;
    b->n += k;
}

bool events_batcher_due(const struct events_batcher *b, int64_t now_ms) {
    if (b->n == 0) return false;
    return b->n >= b->max || now_ms - b->first_ms >= b->flush_ms;
}

size_t events_batcher_room(const struct events_batcher *b) { return b->n >= b->max ? 0 : b->max - b->n; }

long events_batcher_wait_ms(const struct events_batcher *b, int64_t now_ms, long idle_ms) {
    if (b->n == 0) return idle_ms;
    if (events_batcher_due(b, now_ms)) return 0;
    long left = (long)(b->first_ms + b->flush_ms - now_ms);
    return left < 1 ? 1 : left;
}

long events_batcher_gather_ms(const struct events_batcher *b, int64_t now_ms, long gather_ms) {
    if (b->n == 0 || gather_ms <= 0 || events_batcher_due(b, now_ms)) return 0;
    long left = (long)(b->first_ms + b->flush_ms - now_ms);
    return left < gather_ms ? left : gather_ms;
}

enum events_trigger events_batcher_trigger(const struct events_batcher *b, int64_t now_ms) {
    if (b->n >= b->max) return EVENTS_TRIGGER_SIZE;
    return now_ms - b->first_ms >= b->flush_ms ? EVENTS_TRIGGER_TIME : EVENTS_TRIGGER_STOP;
}

void events_batcher_reset(struct events_batcher *b) {
    b->n = 0;
    b->first_ms = 0;
}
