/* Retries, split on failure and dead letters of one batch (see events_writer.h). */
#include "events_writer.h"

#include <stdlib.h>
#include <string.h>

struct run {
    const struct events_sink *s;
    const struct events_write_policy *p;
    struct events_batch_result *out;
    unsigned transient_waits;
};

static uint64_t rng(void *arg) {
    const struct events_sink *s = arg;
    return s->random(s->ctx);
}

/* One write; a transient failure is waited out and the write repeated. Returns the outcome of
 * the last write, or EVENTS_W_TRANSIENT when stopping. */
static enum events_outcome write_through(struct run *r, const struct event_view *const *rows, size_t n, bool careful,
                                         unsigned long written[EVENTS_NTYPES], struct events_write_error *err) {
    for (;;) {
        unsigned long w[EVENTS_NTYPES] = {0};
        memset(err, 0, sizeof *err);
        r->out->writes++;
        enum events_outcome o = r->s->write(r->s->ctx, rows, n, careful, w, err);
        err->kind = o;
        if (o == EVENTS_W_OK) {
            for (int t = 0; t < EVENTS_NTYPES; t++) written[t] += w[t];
            r->transient_waits = 0;
            return o;
        }
        r->out->last = *err;
        if (o != EVENTS_W_TRANSIENT) return o;
        r->out->transient++;
        long wait = svc_backoff_delay_ms(&r->p->transient, r->transient_waits++, rng, (void *)r->s);
        if (wait < 10) wait = 10;
        if (r->s->heartbeat) r->s->heartbeat(r->s->ctx);
        if (!r->s->sleep(r->s->ctx, wait)) return EVENTS_W_TRANSIENT;
    }
}

/* The rows that fail alone, with their reasons. */
struct dead_list {
    const struct event_view **rows;
    struct events_write_error *why;
    size_t n;
};

static bool split(struct run *r, const struct event_view *const *rows, size_t lo, size_t hi, struct dead_list *d);

/* rows[lo..hi) failed with err: a single row is dead, more are halved. False when stopping. */
static bool halve(struct run *r, const struct event_view *const *rows, size_t lo, size_t hi,
                  const struct events_write_error *err, struct dead_list *d) {
    if (hi - lo == 1) {
        d->rows[d->n] = rows[lo];
        d->why[d->n] = *err;
        d->n++;
        return true;
    }
    size_t mid = lo + (hi - lo) / 2;
    return split(r, rows, lo, mid, d) && split(r, rows, mid, hi, d);
}

/* Writes rows[lo..hi) carefully, halving on failure. False when stopping. */
static bool split(struct run *r, const struct event_view *const *rows, size_t lo, size_t hi, struct dead_list *d) {
    struct events_write_error err;
    enum events_outcome o = write_through(r, rows + lo, hi - lo, true, r->out->written, &err);
    if (o == EVENTS_W_OK) return true;
    if (o == EVENTS_W_TRANSIENT) return false;
    return halve(r, rows, lo, hi, &err, d);
}

bool events_write_batch(const struct events_sink *s, const struct events_write_policy *p,
                        const struct event_view *const *rows, size_t n, struct events_batch_result *out) {
    memset(out, 0, sizeof *out);
    if (n == 0) return true;
    struct run r = {.s = s, .p = p, .out = out};
    bool careful = false;
    for (size_t i = 0; i < n; i++)
        if (rows[i]->check) careful = true;

    bool maintained = false;
    long data_failures = 0;
    struct events_write_error err;
    for (;;) {
        enum events_outcome o = write_through(&r, rows, n, careful, out->written, &err);
        if (o == EVENTS_W_OK) break;
        if (o == EVENTS_W_TRANSIENT) return false;
        if (o == EVENTS_W_DUPLICATE && !careful) {
            careful = true;
            continue;
        }
        if (o == EVENTS_W_NO_PARTITION && !maintained) {
            maintained = true;
            if (s->maintain) s->maintain(s->ctx);
            continue;
        }
        if (++data_failures <= p->max_retries) {
            long wait = svc_backoff_delay_ms(&p->retry, (unsigned)(data_failures - 1), rng, (void *)s);
            if (!s->sleep(s->ctx, wait)) return false;
            continue;
        }
        /* it keeps failing: isolate the rows PostgreSQL refuses */
        out->split = true;
        struct dead_list d = {.rows = calloc(n, sizeof *d.rows), .why = calloc(n, sizeof *d.why)};
        bool ok = d.rows && d.why && halve(&r, rows, 0, n, &err, &d);
        if (ok && d.n > 0) {
            for (;;) {
                struct events_write_error derr = {0};
                enum events_outcome dout = s->dead(s->ctx, d.rows, d.why, d.n, (int)(1 + p->max_retries), &derr);
                if (dout == EVENTS_W_OK) break;
                out->last = derr;
                out->transient++;
                long wait = svc_backoff_delay_ms(&p->transient, r.transient_waits++, rng, (void *)s);
                if (s->heartbeat) s->heartbeat(s->ctx);
                if (!s->sleep(s->ctx, wait < 10 ? 10 : wait)) {
                    ok = false;
                    break;
                }
            }
            if (ok)
                for (size_t i = 0; i < d.n; i++) out->dead[d.rows[i]->type]++;
        }
        free(d.rows);
        free(d.why);
        if (!ok) return false;
        break;
    }
    unsigned long by_type[EVENTS_NTYPES] = {0};
    for (size_t i = 0; i < n; i++) by_type[rows[i]->type]++;
    for (int t = 0; t < EVENTS_NTYPES; t++) {
        unsigned long accounted = out->written[t] + out->dead[t];
        out->duplicates[t] = by_type[t] > accounted ? by_type[t] - accounted : 0;
    }
    return true;
}
