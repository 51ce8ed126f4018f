/* JSON line logger.
 *
 * A line is built in a stack buffer. Unbuffered, it is emitted with a single write(2): POSIX
 * keeps writes of a regular file or pipe from interleaving, so no lock is needed between threads. Lines longer than
 * the buffer are truncated at a field boundary rather than split.
 *
 * Buffered mode: whole lines are appended under a mutex to one block, written by whoever fills
 * it, by a warn/error line (before itself), or by the flusher thread every flush_ms. */
#include "svc/log.h"
#include "svc/trace.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_BUFFER_BYTES (64 * 1024)

struct svc_log_buffer {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* CLOCK_MONOTONIC; wakes the flusher to stop */
    pthread_t flusher;
    int flush_ms;
    bool stop;
    size_t len;
    char data[LOG_BUFFER_BYTES];
};

static const char *level_name[] = {"debug", "info", "warn", "error"};

svc_log_level svc_log_parse_level(const char *s) {
    if (!s) return SVC_LOG_INFO;
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, level_name[i])) return (svc_log_level)i;
    if (!strcasecmp(s, "warning")) return SVC_LOG_WARN;
    return SVC_LOG_INFO;
}

static void copy_field(char *dst, size_t n, const char *src) {
    snprintf(dst, n, "%s", src ? src : "");
}

void svc_log_init(struct svc_logger *l, const char *service, const char *instance, const char *level,
                  int fd) {
    memset(l, 0, sizeof *l);
    copy_field(l->service, sizeof l->service, service);
    copy_field(l->instance, sizeof l->instance, instance);
    l->min_level = svc_log_parse_level(level);
    l->fd = fd;
}

/* Appends s as a JSON string (with quotes). Returns new offset; stops at cap. */
static size_t put_json_str(char *buf, size_t off, size_t cap, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (off + 2 >= cap) return off;
    buf[off++] = '"';
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (off + 8 >= cap) break;
        unsigned char ch = *p;
        if (ch == '"' || ch == '\\') { buf[off++] = '\\'; buf[off++] = (char)ch; }
        else if (ch == '\n') { buf[off++] = '\\'; buf[off++] = 'n'; }
        else if (ch == '\r') { buf[off++] = '\\'; buf[off++] = 'r'; }
        else if (ch == '\t') { buf[off++] = '\\'; buf[off++] = 't'; }
        else if (ch < 0x20) {
            memcpy(buf + off, "\\u00", 4); off += 4;
            buf[off++] = hex[ch >> 4]; buf[off++] = hex[ch & 15];
        } else buf[off++] = (char)ch;
    }
    buf[off++] = '"';
    return off;
}

static size_t put_raw(char *buf, size_t off, size_t cap, const char *s) {
    size_t n = strlen(s);
    if (off + n >= cap) return off;
    memcpy(buf + off, s, n);
    return off + n;
}

static int dump_cb(const char *data, size_t size, void *arg) {
    void **a = arg;
    char *buf = a[0];
    size_t *off = a[1];
    size_t cap = *(size_t *)a[2];
    if (*off + size + 4 >= cap) return -1;
    memcpy(buf + *off, data, size);
    *off += size;
    return 0;
}

/* Writes all of data (a short or interrupted write is resumed). */
static void write_all(int fd, const char *data, size_t len) {
    while (len > 0) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return; /* nowhere left to report a failed log write */
        data += w;
        len -= (size_t)w;
    }
}

/* With b->mu held. */
static void flush_locked(struct svc_log_buffer *b, int fd) {
    write_all(fd, b->data, b->len);
    b->len = 0;
}

static void *flusher_main(void *arg) {
    struct svc_logger *l = arg;
    struct svc_log_buffer *b = l->buffer;
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)b->flush_ms % 1000 * 1000000L;
        until.tv_sec += b->flush_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&b->cv, &b->mu, &until);
        if (b->len) flush_locked(b, l->fd);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

int svc_log_buffer_start(struct svc_logger *l, int flush_ms) {
    if (l->buffer || flush_ms <= 0) return l->buffer ? 0 : -1;
    struct svc_log_buffer *b = calloc(1, sizeof *b);
    if (!b) return -1;
    b->flush_ms = flush_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&b->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0 || pthread_mutex_init(&b->mu, NULL) != 0) {
        if (rc == 0) pthread_cond_destroy(&b->cv);
        free(b);
        return -1;
    }
    l->buffer = b;
    if (pthread_create(&b->flusher, NULL, flusher_main, l) != 0) {
        l->buffer = NULL;
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        free(b);
        return -1;
    }
    return 0;
}

void svc_log_buffer_stop(struct svc_logger *l) {
    struct svc_log_buffer *b = l->buffer;
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->flusher, NULL);
    flush_locked(b, l->fd);
    l->buffer = NULL;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

/* One finished line: straight out, or into the buffer (see the top comment). */
static void put_line(const struct svc_logger *l, svc_log_level lv, const char *line, size_t len) {
    struct svc_log_buffer *b = l->buffer;
    if (!b) {
        write_all(l->fd, line, len);
        return;
    }
    pthread_mutex_lock(&b->mu);
    if (lv >= SVC_LOG_WARN || b->len + len > sizeof b->data) flush_locked(b, l->fd);
    if (lv >= SVC_LOG_WARN) {
        write_all(l->fd, line, len);
    } else {
        memcpy(b->data + b->len, line, len);
        b->len += len;
    }
    pthread_mutex_unlock(&b->mu);
}

static void emit(const struct svc_logger *l, svc_log_level lv, const char *cid, const char *msg,
                 const json_t *fields, const char *fields_json) {
    char buf[LOG_LINE_MAX];
    size_t cap = sizeof buf, off = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    off += (size_t)snprintf(buf, cap, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"level\":\"%s\",\"service\":",
                            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                            tm.tm_sec, ts.tv_nsec / 1000000L, level_name[lv]);
    off = put_json_str(buf, off, cap, l->service);
    off = put_raw(buf, off, cap, ",\"instance\":");
    off = put_json_str(buf, off, cap, l->instance);
    if (cid) {
        off = put_raw(buf, off, cap, ",\"correlation_id\":");
        off = put_json_str(buf, off, cap, cid);
    }
    /* The span this thread serves (svc/trace.h): ids are hex, written as they are. */
    const struct svc_trace *tr = svc_trace_current();
    if (tr) {
        off = put_raw(buf, off, cap, ",\"trace_id\":\"");
        off = put_raw(buf, off, cap, tr->trace_id);
        off = put_raw(buf, off, cap, "\",\"span_id\":\"");
        off = put_raw(buf, off, cap, tr->span_id);
        off = put_raw(buf, off, cap, "\"");
    }
    off = put_raw(buf, off, cap, ",\"msg\":");
    off = put_json_str(buf, off, cap, msg);
    if (fields && json_is_object(fields) && json_object_size(fields) > 0) {
        size_t save = off;
        off = put_raw(buf, off, cap, ",\"fields\":");
        void *arg[3] = {buf, &off, &cap};
        if (json_dump_callback(fields, dump_cb, arg, JSON_COMPACT) != 0) off = save;
    } else if (fields_json && *fields_json) {
        size_t save = off;
        off = put_raw(buf, off, cap, ",\"fields\":");
        size_t n = strlen(fields_json);
        if (off + n + 4 < cap) { memcpy(buf + off, fields_json, n); off += n; }
        else off = save;
    }
    off = put_raw(buf, off, cap - 1, "}");
    buf[off++] = '\n';
    put_line(l, lv, buf, off);
}

void svc_log(const struct svc_logger *l, svc_log_level lv, const char *cid, const char *msg,
             const json_t *fields) {
    if (!l || lv < l->min_level) return;
    emit(l, lv, cid, msg, fields, NULL);
}

void svc_log_fields_json(const struct svc_logger *l, svc_log_level lv, const char *cid,
                         const char *msg, const char *fields_json) {
    if (!l || lv < l->min_level) return;
    emit(l, lv, cid, msg, NULL, fields_json);
}

void svc_logf(const struct svc_logger *l, svc_log_level lv, const char *cid, const char *msg,
              const char *fmt, ...) {
    if (!l || lv < l->min_level) return;
    json_t *fields = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        json_error_t err;
        fields = json_vpack_ex(&err, 0, fmt, ap);
        va_end(ap);
    }
    svc_log(l, lv, cid, msg, fields);
    json_decref(fields);
}
