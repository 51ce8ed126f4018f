/* A consumer thread of the events stream (see events_consumer.h). */
#include "events_consumer.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_batcher.h"
#include "events_repo.h"
#include "events_stream.h"
#include "events_writer.h"
#include "svc/backoff.h"
#include "svc/cid.h"
#include "sync_ctx.h"

#define IDLE_BLOCK_MS 1000

struct events_consumer {
    struct sync_ctx *cx;
    struct events_rt *ev;
    int n;
    char name[160];
    pthread_t th;
    bool started;
    redisContext *rc;
    PGconn *pg;
    uint64_t rng;
    /* the batch: entry ids and values back to back in two buffers */
    struct events_batcher b;
    struct svc_buf vals;
    size_t *voff, *vlen;
    char (*ids)[EVENTS_ENTRY_ID_MAX + 1];
    size_t cap, count;
    int64_t last_claim_ms, last_touch_ms;
    char claim_cursor[EVENTS_ENTRY_ID_MAX + 1];
    unsigned redis_failures;
};

static void log_c(struct events_consumer *c, svc_log_level lv, const char *msg, const char *fmt, ...);

/* ------------------------------------------------------------------ connections */

static void redis_drop(struct events_consumer *c) {
    if (c->rc) redisFree(c->rc);
    c->rc = NULL;
}

/* A connected context, or NULL after a failed attempt (the caller backs off). */
static redisContext *redis_get(struct events_consumer *c) {
    if (c->rc && !c->rc->err) return c->rc;
    redis_drop(c);
    const struct svc_redis_config *rc = &c->cx->app.redis_cfg;
    struct timeval ct = {rc->connect_timeout_ms / 1000, (rc->connect_timeout_ms % 1000) * 1000};
    redisContext *r = redisConnectWithTimeout(rc->host, rc->port, ct);
    if (!r || r->err) {
        if (r) redisFree(r);
        return NULL;
    }
    long cmd_ms = IDLE_BLOCK_MS + rc->command_timeout_ms;
    struct timeval tv = {cmd_ms / 1000, (cmd_ms % 1000) * 1000};
    redisSetTimeout(r, tv);
    bool ok = true;
    if (rc->password && *rc->password) {
        redisReply *a = redisCommand(r, "AUTH %s", rc->password);
        ok = a && a->type != REDIS_REPLY_ERROR;
        if (a) freeReplyObject(a);
    }
    if (ok && rc->db) {
        redisReply *s = redisCommand(r, "SELECT %d", rc->db);
        ok = s && s->type != REDIS_REPLY_ERROR;
        if (s) freeReplyObject(s);
    }
    if (ok) {
        redisReply *n = redisCommand(r, "CLIENT SETNAME events:%s", c->name);
        if (n) freeReplyObject(n);
        ok = events_stream_ensure_group(r) == SVC_OK;
    }
    if (!ok) {
        redisFree(r);
        return NULL;
    }
    c->rc = r;
    c->redis_failures = 0;
    return r;
}

/* After a Redis failure: drop the context and wait (jittered, 100 ms .. 5 s). False: stopping. */
static bool redis_backoff(struct events_consumer *c) {
    redis_drop(c);
    struct svc_backoff_policy p = {.base_ms = 100, .cap_ms = 5000};
    long wait = svc_backoff_delay_ms(&p, c->redis_failures++, svc_backoff_splitmix64, &c->rng);
    return events_sleep(c->ev, wait < 50 ? 50 : wait);
}

static PGconn *pg_get(struct events_consumer *c) {
    if (!c->pg) {
        svc_status st;
        c->pg = svc_pg_acquire(c->ev->writers, 1000, &st);
    }
    return c->pg;
}

static void pg_put(struct events_consumer *c) {
    if (c->pg) svc_pg_release(c->ev->writers, c->pg);
    c->pg = NULL;
}

/* ------------------------------------------------------------------ the batch */

static bool batch_grow(struct events_consumer *c, size_t want) {
    if (want <= c->cap) return true;
    size_t cap = c->cap ? c->cap * 2 : 256;
    while (cap < want) cap *= 2;
    size_t *o = realloc(c->voff, cap * sizeof *o);
    if (o) c->voff = o;
    size_t *l = realloc(c->vlen, cap * sizeof *l);
    if (l) c->vlen = l;
    char (*ids)[EVENTS_ENTRY_ID_MAX + 1] = realloc(c->ids, cap * sizeof *ids);
    if (ids) c->ids = ids;
    if (!o || !l || !ids) return false;
    c->cap = cap;
    return true;
}

/* events_entry_fn: copies a delivered entry into the batch. */
static void on_entry(void *arg, const char *id, const char *value, size_t len) {
    struct events_consumer *c = arg;
    if (!batch_grow(c, c->count + 1)) return;   /* out of memory: left pending, delivered again */
    snprintf(c->ids[c->count], EVENTS_ENTRY_ID_MAX + 1, "%s", id);
    c->voff[c->count] = c->vals.len;
    c->vlen[c->count] = value ? len : 0;
    if (value) svc_buf_append(&c->vals, value, len);
    c->count++;
}

static void batch_reset(struct events_consumer *c) {
    c->count = 0;
    c->last_touch_ms = events_mono_ms();
    svc_buf_reset(&c->vals);
    events_batcher_reset(&c->b);
}

/* ------------------------------------------------------------------ in-batch duplicates */

struct dup_ent {
    const char *id;
    int64_t day;
    bool check;
};

static uint64_t id_hash(const char *id) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < SVC_UUID_LEN; i++) h = (h ^ (unsigned char)id[i]) * 1099511628211ULL;
    return h;
}

size_t events_batch_duplicates(const struct event_view *const *rows, size_t n, bool *dup) {
    size_t slots = 16;
    while (slots < 2 * n) slots *= 2;
    size_t *table = calloc(slots, sizeof *table);   /* row index + 1; 0 = empty */
    size_t found = 0;
    for (size_t i = 0; i < n; i++) dup[i] = false;
    if (!table) return 0;   /* the database skips them anyway (same-day); counts stay right */
    for (size_t i = 0; i < n; i++) {
        size_t s = (size_t)(id_hash(rows[i]->id) & (slots - 1));
        for (;;) {
            if (!table[s]) {
                table[s] = i + 1;
                break;
            }
            const struct event_view *o = rows[table[s] - 1];
            if (!strcmp(o->id, rows[i]->id)) {
                int64_t gap = o->day > rows[i]->day ? o->day - rows[i]->day : rows[i]->day - o->day;
                if (gap == 0 || (gap == 1 && (o->check || rows[i]->check))) {
                    dup[i] = true;
                    found++;
                    break;
                }
            }
            s = (s + 1) & (slots - 1);
        }
    }
    free(table);
    return found;
}

/* ------------------------------------------------------------------ the sink for the writer */

static enum events_outcome sink_write(void *ctx, const struct event_view *const *rows, size_t n, bool careful,
                                      unsigned long written[EVENTS_NTYPES], struct events_write_error *err) {
    struct events_consumer *c = ctx;
    PGconn *pg = pg_get(c);
    if (!pg) {
        snprintf(err->message, sizeof err->message, "database unavailable");
        return EVENTS_W_TRANSIENT;
    }
    enum events_outcome o = events_repo_write(pg, rows, n, careful, written, err);
    if (o == EVENTS_W_TRANSIENT) pg_put(c);   /* the pool checks it and reopens when broken */
    return o;
}

static enum events_outcome sink_dead(void *ctx, const struct event_view *const *rows,
                                     const struct events_write_error *why, size_t n, int attempts,
                                     struct events_write_error *err) {
    struct events_consumer *c = ctx;
    PGconn *pg = pg_get(c);
    if (!pg) return EVENTS_W_TRANSIENT;
    enum events_outcome o = events_repo_dead(pg, rows, why, n, attempts, err);
    if (o != EVENTS_W_OK) pg_put(c);
    return o;
}

static void sink_maintain(void *ctx) {
    struct events_consumer *c = ctx;
    PGconn *pg = pg_get(c);
    if (!pg) return;
    int created = 0, dropped = 0;
    struct events_write_error err;
    if (events_repo_maintain(pg, c->ev->set.partitions_ahead, c->ev->set.retention_days, &created, &dropped, &err) ==
        EVENTS_W_OK)
        log_c(c, SVC_LOG_INFO, "events: partitions maintained (a write found none)", "{s:i,s:i}", "created", created,
              "dropped", dropped);
}

static bool sink_sleep(void *ctx, long ms) {
    struct events_consumer *c = ctx;
    return events_sleep(c->ev, ms);
}

static void sink_heartbeat(void *ctx) {
    struct events_consumer *c = ctx;
    if (c->count == 0) return;
    int64_t now = events_mono_ms();
    if (now - c->last_touch_ms < c->ev->set.visibility_ms / 3) return;
    c->last_touch_ms = now;
    redisContext *r = redis_get(c);
    if (!r) return;
    const char **ids = malloc(c->count * sizeof *ids);
    if (!ids) return;
    for (size_t i = 0; i < c->count; i++) ids[i] = c->ids[i];
    if (events_stream_touch(r, c->name, ids, c->count) != SVC_OK) redis_drop(c);
    free(ids);
}

static uint64_t sink_random(void *ctx) {
    struct events_consumer *c = ctx;
    return svc_backoff_splitmix64(&c->rng);
}

/* ------------------------------------------------------------------ flush */

static void log_c(struct events_consumer *c, svc_log_level lv, const char *msg, const char *fmt, ...) {
    if (!fmt) {
        svc_log(&c->cx->app.log, lv, NULL, msg, NULL);
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    json_error_t e;
    json_t *f = json_vpack_ex(&e, 0, fmt, ap);
    va_end(ap);
    if (f) json_object_set_new(f, "consumer", json_string(c->name));
    svc_log(&c->cx->app.log, lv, NULL, msg, f);
    json_decref(f);
}

/* Acknowledges the batch's entries with the counters; retried until done or stopping. */
static void ack(struct events_consumer *c, const struct events_ack_counts *k) {
    const char **ids = malloc((c->count ? c->count : 1) * sizeof *ids);
    if (!ids) return;   /* left pending: delivered again, stored once */
    for (size_t i = 0; i < c->count; i++) ids[i] = c->ids[i];
    for (;;) {
        redisContext *r = redis_get(c);
        if (r && events_stream_ack(r, ids, c->count, k) == SVC_OK) break;
        atomic_fetch_add_explicit(&c->ev->m.ack_failures, 1, memory_order_relaxed);
        if (!redis_backoff(c)) break;
    }
    free(ids);
}

static void flush(struct events_consumer *c) {
    if (c->count == 0) return;
    struct events_rt *ev = c->ev;
    enum events_trigger why = events_batcher_trigger(&c->b, events_mono_ms());
    struct event_view *views = calloc(c->count, sizeof *views);
    const struct event_view **rows = calloc(c->count, sizeof *rows);
    bool *dup = calloc(c->count, sizeof *dup);
    if (!views || !rows || !dup) {
        free(views);
        free(rows);
        free(dup);
        batch_reset(c);   /* out of memory: left pending; XAUTOCLAIM hands it out again */
        return;
    }
    size_t n = 0, malformed = 0;
    for (size_t i = 0; i < c->count; i++) {
        if (c->vlen[i] && events_decode(c->vals.data + c->voff[i], c->vlen[i], &views[n])) rows[n] = &views[n], n++;
        else if (c->vlen[i]) malformed++;   /* not an event this service wrote: dropped, counted, logged */
    }
    if (malformed) {
        atomic_fetch_add_explicit(&ev->m.malformed, malformed, memory_order_relaxed);
        log_c(c, SVC_LOG_ERROR, "events: malformed stream entries dropped", "{s:i}", "count", (int)malformed);
    }
    size_t dups = events_batch_duplicates(rows, n, dup);
    struct events_ack_counts k = {0};
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (dup[i]) k.duplicates[rows[i]->type]++;
        else rows[m++] = rows[i];
    }
    (void)dups;

    struct events_write_policy pol = {.max_retries = ev->set.max_retries,
                                      .retry = ev->set.retry_backoff,
                                      .transient = {.base_ms = 100, .cap_ms = 5000}};
    struct events_sink sink = {.ctx = c,
                               .write = sink_write,
                               .dead = sink_dead,
                               .maintain = sink_maintain,
                               .sleep = sink_sleep,
                               .heartbeat = sink_heartbeat,
                               .random = sink_random};
    struct events_batch_result res;
    c->last_touch_ms = events_mono_ms();
    int64_t t0 = events_mono_ms();
    bool ok = events_write_batch(&sink, &pol, rows, m, &res);
    int64_t t1 = events_mono_ms();
    if (ok) {
        int64_t wall = events_wall_ms();
        for (size_t i = 0; i < m; i++) {
            double lat = (double)(wall - rows[i]->received_ms) / 1000.0;
            events_hist_observe(&ev->m.commit_seconds, lat < 0 ? 0 : lat);
        }
        for (int t = 0; t < EVENTS_NTYPES; t++) {
            k.written[t] = res.written[t];
            k.duplicates[t] += res.duplicates[t];
            k.dead[t] = res.dead[t];
            atomic_fetch_add_explicit(&ev->m.written[t], k.written[t], memory_order_relaxed);
            atomic_fetch_add_explicit(&ev->m.duplicates[t], k.duplicates[t], memory_order_relaxed);
            atomic_fetch_add_explicit(&ev->m.dead[t], k.dead[t], memory_order_relaxed);
        }
        k.batches = 1;
        k.rows = m;
        k.write_us = (unsigned long)((t1 - t0) * 1000);
        ack(c, &k);
        atomic_fetch_add_explicit(&ev->m.batches_by_trigger[why], 1, memory_order_relaxed);
        if (res.split) atomic_fetch_add_explicit(&ev->m.splits, 1, memory_order_relaxed);
        if (res.writes > 1) atomic_fetch_add_explicit(&ev->m.write_retries, (unsigned long)(res.writes - 1), memory_order_relaxed);
        atomic_fetch_add_explicit(&ev->m.transient_waits, (unsigned long)res.transient, memory_order_relaxed);
        events_hist_observe(&ev->m.batch_size, (double)c->count);
        events_hist_observe(&ev->m.write_seconds, (double)(t1 - t0) / 1000.0);
        unsigned long dead = 0;
        for (int t = 0; t < EVENTS_NTYPES; t++) dead += k.dead[t];
        if (res.split || res.transient)
            log_c(c, dead ? SVC_LOG_ERROR : SVC_LOG_WARN, "events: batch written after failures",
                  "{s:i,s:i,s:i,s:i,s:s,s:s}", "events", (int)c->count, "writes", res.writes, "dead_letters",
                  (int)dead, "waits", res.transient, "sqlstate", res.last.sqlstate, "error", res.last.message);
    } else {
        log_c(c, SVC_LOG_WARN, "events: batch left unacknowledged (stopping before it could be written)",
              "{s:i,s:s,s:s}", "events", (int)c->count, "sqlstate", res.last.sqlstate, "error", res.last.message);
    }
    free(views);
    free(rows);
    free(dup);
    batch_reset(c);
    pg_put(c);
}

/* ------------------------------------------------------------------ the loop */

/* Takes over entries of consumers that stopped answering (any failure drops the connection; the
 * loop reconnects). */
static void claim(struct events_consumer *c) {
    int64_t now = events_mono_ms();
    long every = c->ev->set.visibility_ms / 2 < 1000 ? c->ev->set.visibility_ms / 2 : 1000;
    if (now - c->last_claim_ms < every) return;
    c->last_claim_ms = now;
    size_t room = events_batcher_room(&c->b);
    redisContext *r = room ? redis_get(c) : NULL;
    if (!r) return;
    int got = 0;
    if (events_stream_claim(r, c->name, c->ev->set.visibility_ms, (long)room, c->claim_cursor, on_entry, c, &got) !=
        SVC_OK) {
        redis_drop(c);
        return;
    }
    if (got > 0) {
        events_batcher_add(&c->b, (size_t)got, now);
        log_c(c, SVC_LOG_WARN, "events: took over entries of a consumer that stopped answering", "{s:i}", "entries",
              got);
    }
}

static void *consumer_main(void *arg) {
    struct events_consumer *c = arg;
    struct events_rt *ev = c->ev;
    char history[EVENTS_ENTRY_ID_MAX + 1] = "0";   /* first our own pending entries (a previous run's) */
    bool in_history = true;
    while (!atomic_load(&ev->stopping)) {
        int64_t now = events_mono_ms();
        if (events_batcher_due(&c->b, now)) {
            flush(c);
            continue;
        }
        claim(c);
        sink_heartbeat(c);   /* a batch buffered longer than a third of the visibility keeps its entries */
        /* fetched after those two: either may have dropped a failed connection */
        redisContext *r = redis_get(c);
        if (!r) {
            if (!redis_backoff(c)) break;
            continue;
        }
        long wait = events_batcher_wait_ms(&c->b, events_mono_ms(), IDLE_BLOCK_MS);
        if (wait == 0) continue;
        size_t room = events_batcher_room(&c->b);
        int got = 0;
        svc_status st = events_stream_read(r, c->name, (long)room, wait, in_history ? history : NULL, on_entry, c, &got);
        if (st != SVC_OK) {
            log_c(c, SVC_LOG_WARN, "events: reading the stream failed", "{s:s}", "status", svc_status_code(st));
            if (!redis_backoff(c)) break;
            continue;
        }
        if (in_history && got == 0) in_history = false;
        int64_t now_read = events_mono_ms();
        events_batcher_add(&c->b, (size_t)got, now_read);
        /* the stream is empty for now: let events gather rather than read them one or two at a time */
        if (!in_history && (size_t)got < room &&
            !events_sleep(ev, events_batcher_gather_ms(&c->b, now_read, ev->set.read_gather_ms)))
            break;
    }
    flush(c);   /* SIGTERM: write and acknowledge what we hold */
    pg_put(c);
    redis_drop(c);
    return NULL;
}

struct events_consumer *events_consumer_start(struct sync_ctx *cx, int n) {
    struct events_consumer *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cx = cx;
    c->ev = &cx->ev;
    c->n = n;
    snprintf(c->name, sizeof c->name, "%s-%d", cx->app.instance, n);
    snprintf(c->claim_cursor, sizeof c->claim_cursor, "0-0");
    svc_buf_init(&c->vals);
    events_batcher_init(&c->b, (size_t)cx->ev.set.batch_max, cx->ev.set.flush_ms);
    if (svc_random_bytes(&c->rng, sizeof c->rng) != 0) c->rng = (uint64_t)events_mono_ms() ^ (uint64_t)n;
    if (pthread_create(&c->th, NULL, consumer_main, c) != 0) {
        svc_buf_free(&c->vals);
        free(c);
        return NULL;
    }
    c->started = true;
    return c;
}

void events_consumer_join(struct events_consumer *c) {
    if (!c) return;
    if (c->started) pthread_join(c->th, NULL);
    svc_buf_free(&c->vals);
    free(c->voff);
    free(c->vlen);
    free(c->ids);
    free(c);
}
