/* A growable byte buffer for building text (metrics pages, SQL COPY data, JSON).
 *
 * Ownership: the buffer owns data; svc_buf_free releases it; svc_buf_steal hands it to the caller
 * (who then frees it with free()). A failed allocation sets oom and later appends become no-ops,
 * so callers check once at the end instead of after every append. */
#ifndef SVC_BUF_H
#define SVC_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct svc_buf {
    char *data;
    size_t len;
    size_t cap;
    bool oom;
};

void svc_buf_init(struct svc_buf *b);
void svc_buf_free(struct svc_buf *b);
void svc_buf_reset(struct svc_buf *b);
bool svc_buf_reserve(struct svc_buf *b, size_t extra);
void svc_buf_append(struct svc_buf *b, const void *data, size_t n);
void svc_buf_puts(struct svc_buf *b, const char *s);
void svc_buf_printf(struct svc_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *svc_buf_steal(struct svc_buf *b);

#endif
