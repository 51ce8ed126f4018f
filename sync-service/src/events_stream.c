/* The events stream in Redis (see events_stream.h). Commands are built with argv arrays
 * (binary-safe, no format strings around event data) and pipelined: every function writes all
 * its commands before reading the first reply. */
#include "events_stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ARGS (2 * EVENTS_BATCH_CAP + 16)

static svc_status io_status(const redisContext *c) {
    if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ETIMEDOUT)) return SVC_TIMEOUT;
    return SVC_UNAVAILABLE;
}

/* Reads one reply; NULL with *st set on an I/O error. */
static redisReply *get_reply(redisContext *c, svc_status *st) {
    void *r = NULL;
    if (redisGetReply(c, &r) != REDIS_OK || !r) {
        *st = io_status(c);
        return NULL;
    }
    return r;
}

static svc_status error_status(const redisReply *r) {
    (void)r;   /* OOM, LOADING, READONLY, MISCONF, EXECABORT...: Redis cannot take it now */
    return SVC_UNAVAILABLE;
}

static bool is_error_prefix(const redisReply *r, const char *prefix) {
    return r->type == REDIS_REPLY_ERROR && r->str && !strncmp(r->str, prefix, strlen(prefix));
}

void events_stream_queue(redisContext *c, const struct events_outbox *box) {
    if (box->n <= 0) return;
    static const char *const head[] = {"XADD", EVENTS_STREAM_KEY, "*", "e"};
    const char *argv[5];
    size_t argl[5];
    for (int i = 0; i < 4; i++) {
        argv[i] = head[i];
        argl[i] = strlen(head[i]);
    }
    bool multi = box->n > 1;
    if (multi) redisAppendCommand(c, "MULTI");
    for (int i = 0; i < box->n; i++) {
        argv[4] = box->buf.data + box->off[i];
        argl[4] = box->len[i];
        redisAppendCommandArgv(c, 5, argv, argl);
    }
    if (multi) redisAppendCommand(c, "EXEC");
}

svc_status events_stream_collect(redisContext *c, const struct events_outbox *box) {
    if (box->n <= 0) return SVC_OK;
    if (c->err) return io_status(c);
    bool multi = box->n > 1;
    int replies = box->n + (multi ? 2 : 0);
    svc_status st = SVC_OK;
    for (int i = 0; i < replies; i++) {
        redisReply *r = get_reply(c, &st);
        if (!r) return st;
        bool last = i == replies - 1;
        if (!multi) {
            if (r->type == REDIS_REPLY_ERROR) st = error_status(r);
            else if (r->type != REDIS_REPLY_STRING) st = SVC_INTERNAL;
        } else if (last) {
            /* EXEC: an array of XADD replies, or EXECABORT / nil when nothing ran */
            if (r->type == REDIS_REPLY_ERROR || r->type == REDIS_REPLY_NIL) st = SVC_UNAVAILABLE;
            else if (r->type != REDIS_REPLY_ARRAY || r->elements != (size_t)box->n) st = SVC_INTERNAL;
            else
                for (size_t k = 0; k < r->elements; k++)
                    if (r->element[k]->type != REDIS_REPLY_STRING) st = SVC_UNAVAILABLE;
        } else if (r->type == REDIS_REPLY_ERROR && st == SVC_OK) {
            st = error_status(r);   /* a command refused while queuing: EXEC aborts them all */
        }
        freeReplyObject(r);
    }
    return st;
}

svc_status events_stream_append(redisContext *c, const struct events_outbox *box) {
    events_stream_queue(c, box);
    return events_stream_collect(c, box);
}

svc_status events_stream_ensure_group(redisContext *c) {
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0 MKSTREAM", EVENTS_STREAM_KEY, EVENTS_GROUP);
    if (!r) return io_status(c);
    svc_status st = SVC_OK;
    if (r->type == REDIS_REPLY_ERROR && !is_error_prefix(r, "BUSYGROUP")) st = error_status(r);
    freeReplyObject(r);
    return st;
}

/* Walks [[id, [field, value, ...] | nil], ...] and calls fn for each entry. */
static svc_status each_entry(const redisReply *list, events_entry_fn fn, void *arg, int *n) {
    if (list->type != REDIS_REPLY_ARRAY) return SVC_INTERNAL;
    for (size_t i = 0; i < list->elements; i++) {
        const redisReply *e = list->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING)
            return SVC_INTERNAL;
        const redisReply *f = e->element[1];
        const char *value = NULL;
        size_t len = 0;
        if (f->type == REDIS_REPLY_ARRAY) {
            for (size_t k = 0; k + 1 < f->elements; k += 2)
                if (f->element[k]->type == REDIS_REPLY_STRING && !strcmp(f->element[k]->str, "e") &&
                    f->element[k + 1]->type == REDIS_REPLY_STRING) {
                    value = f->element[k + 1]->str;
                    len = f->element[k + 1]->len;
                }
            if (!value) value = "";   /* an entry without "e": handed over as malformed */
        }
        fn(arg, e->element[0]->str, value, len);
        (*n)++;
    }
    return SVC_OK;
}

struct history_walk {
    events_entry_fn fn;
    void *arg;
    char *last;
};

static void history_entry(void *arg, const char *id, const char *value, size_t len) {
    struct history_walk *w = arg;
    snprintf(w->last, EVENTS_ENTRY_ID_MAX + 1, "%s", id);
    w->fn(w->arg, id, value, len);
}

svc_status events_stream_read(redisContext *c, const char *consumer, long count, long block_ms,
                              char history[EVENTS_ENTRY_ID_MAX + 1], events_entry_fn fn, void *arg, int *n) {
    bool pending = history != NULL;
    *n = 0;
    char cnt[24], blk[24];
    snprintf(cnt, sizeof cnt, "%ld", count > 0 ? count : 1);
    snprintf(blk, sizeof blk, "%ld", block_ms > 0 ? block_ms : 1);
    const char *argv[] = {"XREADGROUP", "GROUP", EVENTS_GROUP, consumer, "COUNT", cnt, "BLOCK", blk,
                          "STREAMS", EVENTS_STREAM_KEY, pending ? "0" : ">"};
    int argc = (int)(sizeof argv / sizeof argv[0]);
    if (pending) {   /* no BLOCK for a read of the history */
        argv[6] = "STREAMS";
        argv[7] = EVENTS_STREAM_KEY;
        argv[8] = history;
        argc = 9;
    }
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    if (!r) return io_status(c);
    svc_status st = SVC_OK;
    if (is_error_prefix(r, "NOGROUP")) {
        freeReplyObject(r);
        return events_stream_ensure_group(c);
    }
    if (r->type == REDIS_REPLY_ERROR) st = error_status(r);
    else if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
             r->element[0]->elements == 2) {
        struct history_walk w = {fn, arg, history};
        st = pending ? each_entry(r->element[0]->element[1], history_entry, &w, n)
                     : each_entry(r->element[0]->element[1], fn, arg, n);
    }
    else if (r->type != REDIS_REPLY_NIL)
        st = SVC_INTERNAL;
    freeReplyObject(r);
    return st;
}

svc_status events_stream_claim(redisContext *c, const char *consumer, long min_idle_ms, long count,
                               char cursor[EVENTS_ENTRY_ID_MAX + 1], events_entry_fn fn, void *arg, int *n) {
    *n = 0;
    char idle[24], cnt[24];
    snprintf(idle, sizeof idle, "%ld", min_idle_ms);
    snprintf(cnt, sizeof cnt, "%ld", count > 0 ? count : 1);
    const char *argv[] = {"XAUTOCLAIM", EVENTS_STREAM_KEY, EVENTS_GROUP, consumer, idle, cursor, "COUNT", cnt};
    redisReply *r = redisCommandArgv(c, 8, argv, NULL);
    if (!r) return io_status(c);
    svc_status st = SVC_OK;
    if (is_error_prefix(r, "NOGROUP")) {
        freeReplyObject(r);
        return events_stream_ensure_group(c);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        st = error_status(r);
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 && r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(cursor, EVENTS_ENTRY_ID_MAX + 1, "%s", r->element[0]->str);
        st = each_entry(r->element[1], fn, arg, n);
    } else {
        st = SVC_INTERNAL;
    }
    freeReplyObject(r);
    return st;
}

svc_status events_stream_touch(redisContext *c, const char *consumer, const char *const *ids, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t k = n - done > EVENTS_BATCH_CAP ? EVENTS_BATCH_CAP : n - done;
        const char *argv[MAX_ARGS];
        int argc = 0;
        argv[argc++] = "XCLAIM";
        argv[argc++] = EVENTS_STREAM_KEY;
        argv[argc++] = EVENTS_GROUP;
        argv[argc++] = consumer;
        argv[argc++] = "0";
        for (size_t i = 0; i < k; i++) argv[argc++] = ids[done + i];
        argv[argc++] = "JUSTID";
        redisReply *r = redisCommandArgv(c, argc, argv, NULL);
        if (!r) return io_status(c);
        svc_status st = r->type == REDIS_REPLY_ERROR ? error_status(r) : SVC_OK;
        freeReplyObject(r);
        if (st != SVC_OK) return st;
        done += k;
    }
    return SVC_OK;
}

/* Appends "HINCRBY stats <prefix>:<type> v" for every non-zero v; returns the commands added. */
static int incr_types(redisContext *c, const char *prefix, const unsigned long v[EVENTS_NTYPES]) {
    int k = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) {
        if (!v[t]) continue;
        redisAppendCommand(c, "HINCRBY %s %s:%s %lu", EVENTS_STATS_KEY, prefix, events_type_names[t], v[t]);
        k++;
    }
    return k;
}

svc_status events_stream_ack(redisContext *c, const char *const *ids, size_t n, const struct events_ack_counts *k) {
    int queued = 0;
    redisAppendCommand(c, "MULTI");
    for (size_t done = 0; done < n;) {
        size_t m = n - done > EVENTS_BATCH_CAP ? EVENTS_BATCH_CAP : n - done;
        const char *argv[MAX_ARGS];
        int argc = 0;
        argv[argc++] = "XACK";
        argv[argc++] = EVENTS_STREAM_KEY;
        argv[argc++] = EVENTS_GROUP;
        for (size_t i = 0; i < m; i++) argv[argc++] = ids[done + i];
        redisAppendCommandArgv(c, argc, argv, NULL);
        argc = 0;
        argv[argc++] = "XDEL";
        argv[argc++] = EVENTS_STREAM_KEY;
        for (size_t i = 0; i < m; i++) argv[argc++] = ids[done + i];
        redisAppendCommandArgv(c, argc, argv, NULL);
        queued += 2;
        done += m;
    }
    if (k) {
        queued += incr_types(c, "written", k->written);
        queued += incr_types(c, "duplicates", k->duplicates);
        queued += incr_types(c, "dead", k->dead);
        if (k->batches) {
            redisAppendCommand(c, "HINCRBY %s batches %lu", EVENTS_STATS_KEY, k->batches);
            redisAppendCommand(c, "HINCRBY %s batch_rows %lu", EVENTS_STATS_KEY, k->rows);
            redisAppendCommand(c, "HINCRBY %s batch_write_us %lu", EVENTS_STATS_KEY, k->write_us);
            queued += 3;
        }
    }
    redisAppendCommand(c, "EXEC");
    svc_status st = SVC_OK;
    for (int i = 0; i < queued + 2; i++) {
        redisReply *r = get_reply(c, &st);
        if (!r) return st;
        if (i == queued + 1) {
            if (r->type != REDIS_REPLY_ARRAY) st = SVC_UNAVAILABLE;
        } else if (r->type == REDIS_REPLY_ERROR && st == SVC_OK) {
            st = error_status(r);
        }
        freeReplyObject(r);
    }
    return st;
}

svc_status events_stream_count_accepted(redisContext *c, const unsigned long accepted[EVENTS_NTYPES],
                                        int64_t unix_s) {
    unsigned long total = 0;
    for (int t = 0; t < EVENTS_NTYPES; t++) total += accepted[t];
    if (!total) return SVC_OK;
    int k = incr_types(c, "accepted", accepted);
    redisAppendCommand(c, "INCRBY %s%lld %lu", EVENTS_RATE_KEY_PREFIX, (long long)unix_s, total);
    redisAppendCommand(c, "EXPIRE %s%lld %d", EVENTS_RATE_KEY_PREFIX, (long long)unix_s, EVENTS_RATE_KEY_TTL_S);
    svc_status st = SVC_OK;
    for (int i = 0; i < k + 2; i++) {
        redisReply *r = get_reply(c, &st);
        if (!r) return st;
        if (r->type == REDIS_REPLY_ERROR && st == SVC_OK) st = error_status(r);
        freeReplyObject(r);
    }
    return st;
}

/* "name:value" of an INFO text, or -1. */
static long long info_field(const char *info, const char *name) {
    size_t n = strlen(name);
    for (const char *p = info; p && *p;) {
        if (!strncmp(p, name, n) && p[n] == ':') return strtoll(p + n + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return -1;
}

svc_status events_stream_sample(redisContext *c, struct events_stream_state *out) {
    memset(out, 0, sizeof *out);
    redisAppendCommand(c, "XLEN %s", EVENTS_STREAM_KEY);
    redisAppendCommand(c, "XRANGE %s - + COUNT 1", EVENTS_STREAM_KEY);
    redisAppendCommand(c, "INFO memory");
    svc_status st = SVC_OK;
    for (int i = 0; i < 3; i++) {
        redisReply *r = get_reply(c, &st);
        if (!r) return st;
        if (r->type == REDIS_REPLY_ERROR) {
            if (st == SVC_OK) st = error_status(r);
        } else if (i == 0 && r->type == REDIS_REPLY_INTEGER) {
            out->depth = r->integer;
        } else if (i == 1 && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                   r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0 &&
                   r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
            out->oldest_ms = strtoll(r->element[0]->element[0]->str, NULL, 10);
        } else if (i == 2 && r->type == REDIS_REPLY_STRING) {
            out->used_memory = info_field(r->str, "used_memory");
            out->maxmemory = info_field(r->str, "maxmemory");
        }
        freeReplyObject(r);
    }
    return st;
}
