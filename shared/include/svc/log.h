/* Structured JSON logs, one object per line on stdout.
 *
 * {"ts":"2026-11-25T15:30:00.123Z","level":"info","service":"customers","instance":"c1",
 *  "correlation_id":"...","trace_id":"<32 hex>","span_id":"<16 hex>","msg":"...","fields":{...}}
 *
 * trace_id and span_id are those of the calling thread's current span (svc/trace.h: the request
 * or queue job being served), absent on lines logged outside one (start-up, background loops).
 *
 * Lines are formatted into a local buffer and written with one write(2), so lines from
 * concurrent threads never interleave. The logger identity (service/instance/level) is set once
 * at start by svc_log_init and is read-only afterwards.
 *
 * A running service buffers (svc_log_buffer_start, LOG_FLUSH_MS): debug and info lines collect
 * in memory and are written together at least every flush_ms, warn and error lines write
 * everything collected and then themselves at once, so the order of lines is kept and a problem
 * is on disk when it is logged (one write(2) per request line showed up in profiles at full POST
 * load, bench/README.md). What a SIGKILL can lose is at most flush_ms of debug/info lines.
 * Never pass PII (emails, passwords, tokens) as a field: callers log ids and counts only. */
#ifndef SVC_LOG_H
#define SVC_LOG_H

#include <jansson.h>

typedef enum { SVC_LOG_DEBUG = 0, SVC_LOG_INFO, SVC_LOG_WARN, SVC_LOG_ERROR } svc_log_level;

struct svc_log_buffer;

struct svc_logger {
    char service[64];
    char instance[64];
    svc_log_level min_level;
    int fd;
    struct svc_log_buffer *buffer;   /* NULL: every line is written at once; owned */
};

void svc_log_init(struct svc_logger *l, const char *service, const char *instance,
                  const char *level, int fd);
svc_log_level svc_log_parse_level(const char *s);
/* Starts buffering (see above) with a flusher thread; flush_ms > 0. Returns 0, or -1 (out of
 * memory or no thread: the logger stays unbuffered). Call before other threads log. */
int svc_log_buffer_start(struct svc_logger *l, int flush_ms);
/* Writes what is collected, stops the flusher and frees the buffer; later lines are written at
 * once. Call when no other thread logs any more. No-op when not buffering. */
void svc_log_buffer_stop(struct svc_logger *l);

/* fields: borrowed, may be NULL; not modified. cid may be NULL. */
void svc_log(const struct svc_logger *l, svc_log_level lv, const char *cid, const char *msg,
             const json_t *fields);
/* Convenience: fields given as a jansson pack format, e.g. svc_logf(l, SVC_LOG_INFO, cid, "started",
 * "{s:i}", "port", 8080). fmt may be NULL. */
void svc_logf(const struct svc_logger *l, svc_log_level lv, const char *cid, const char *msg,
              const char *fmt, ...);

/* Like svc_log but with fields already serialised as a JSON object text (trusted, built by the
 * caller, e.g. the per-request access line, to avoid building a json_t on the hot path). */
void svc_log_fields_json(const struct svc_logger *l, svc_log_level lv, const char *cid,
                         const char *msg, const char *fields_json);

#endif
