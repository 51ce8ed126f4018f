/* GET /users body producer (see stream.h).
 *
 * The callback never returns 0 (that would make a thread-per-connection daemon spin): it fills
 * the buffer until at least one byte is ready, sleeping when the rate limit says the next record
 * is not due yet. With a rate, a record is sent as soon as it is due rather than batched, so a
 * slow stream trickles like the real system. Record i is due at i / rate seconds after the first
 * body byte. */
#include "stream.h"

#include <microhttpd.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

#define STREAM_BUF 65536

typedef enum { ST_BEGIN = 0, ST_RECORDS, ST_DONE, ST_DROP } stream_state;

struct stream {
    struct sim_runtime *rt;
    struct sim_knobs k;
    bool ndjson;
    stream_state state;
    const char *outcome;     /* for the completion log line */
    uint64_t next;           /* index of the next record to format */
    uint64_t drop_at;
    struct timespec t0;      /* first body byte; rate and duration are measured from here */
    bool started;
    size_t len, off;
    char buf[STREAM_BUF];
};

static double since_s(const struct timespec *t0) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) * 1e-9;
}

struct stream *stream_new(struct sim_runtime *rt, const struct sim_knobs *k, bool ndjson, uint64_t drop_at) {
    struct stream *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->rt = rt;
    s->k = *k;
    s->ndjson = ndjson;
    s->state = ST_BEGIN;
    s->outcome = "client_closed";
    s->next = 0;
    s->drop_at = drop_at;
    s->started = false;
    s->len = s->off = 0;
    return s;
}

/* Appends record s->next (with its separator) to the buffer; false on a formatting bug. */
static bool stream_put_record(struct stream *s, bool partial) {
    if (!s->ndjson && s->next > 0) s->buf[s->len++] = ',';
    size_t n = gen_record_format(&s->k.gen, s->next, s->buf + s->len);
    if (n == 0) return false;
    if (partial) {
        s->len += n / 2;
        return true;
    }
    s->len += n;
    if (s->ndjson) s->buf[s->len++] = '\n';
    s->next++;
    return true;
}

/* Fills the (empty) buffer with at least one byte or moves to an end state.
 * Returns false when the stream must end with an error (shutdown, formatting bug). */
static bool stream_fill(struct stream *s) {
    s->len = s->off = 0;
    if (s->state == ST_BEGIN) {
        if (!s->ndjson) s->buf[s->len++] = '[';
        s->state = ST_RECORDS;
    }
    while (s->state == ST_RECORDS) {
        if (STREAM_BUF - s->len < GEN_RECORD_MAX + 2) break;
        if (s->next == s->drop_at) {
            if (s->next < s->k.gen.count && !stream_put_record(s, true)) return false;
            s->state = ST_DROP;
            break;
        }
        if (s->next >= s->k.gen.count) {
            if (!s->ndjson) s->buf[s->len++] = ']';
            s->state = ST_DONE;
            break;
        }
        if (s->k.rate > 0) {
            double due = (double)s->next / s->k.rate, now = since_s(&s->t0);
            if (due > now) {
                if (s->len > 0) break;  /* send what is ready; come back when the next is due */
                long ms = (long)ceil((due - now) * 1000.0);
                if (!sim_sleep_ms(&s->rt->aborting, ms > 0 ? ms : 1)) return false;
                continue;
            }
        }
        if (!stream_put_record(s, false)) {
            svc_logf(&s->rt->log, SVC_LOG_ERROR, NULL, "record formatting overflow", "{s:I}",
                     "index", (json_int_t)s->next);
            return false;
        }
    }
    return true;
}

ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    struct stream *s = cls;
    if (!s->started) {
        clock_gettime(CLOCK_MONOTONIC, &s->t0);
        s->started = true;
    }
    while (s->off == s->len) {
        if (atomic_load(&s->rt->aborting)) {
            s->outcome = "aborted_by_shutdown";
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->state == ST_DONE) {
            s->outcome = "completed";
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (s->state == ST_DROP) {
            s->outcome = "dropped";
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (!stream_fill(s)) {
            s->outcome = atomic_load(&s->rt->aborting) ? "aborted_by_shutdown" : "internal_error";
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = s->len - s->off;
    if (n > max) n = max;
    memcpy(buf, s->buf + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

void stream_free(void *cls) {
    struct stream *s = cls;
    json_int_t ms = s->started ? (json_int_t)(since_s(&s->t0) * 1000.0) : 0;
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->k.gen.seed);  /* may exceed json_int_t */
    svc_logf(&s->rt->log, SVC_LOG_INFO, NULL, "users stream ended", "{s:s,s:s,s:I,s:s,s:I,s:I}",
             "outcome", s->outcome, "format", s->ndjson ? "ndjson" : "json",
             "count", (json_int_t)s->k.gen.count, "seed", seed,
             "records_sent", (json_int_t)s->next, "ms", ms);
    atomic_fetch_sub(&s->rt->inflight, 1);
    free(s);
}
