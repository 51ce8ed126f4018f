/* Growable buffer; see buf.h. Growth doubles so appends are amortised O(1). */
#include "svc/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void svc_buf_init(struct svc_buf *b) { memset(b, 0, sizeof *b); }

void svc_buf_free(struct svc_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

void svc_buf_reset(struct svc_buf *b) {
    b->len = 0;
    b->oom = false;
    if (b->data) b->data[0] = '\0';
}

bool svc_buf_reserve(struct svc_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + extra + 1) ncap *= 2;
    char *nd = realloc(b->data, ncap);
    if (!nd) { b->oom = true; return false; }
    b->data = nd;
    b->cap = ncap;
    return true;
}

void svc_buf_append(struct svc_buf *b, const void *data, size_t n) {
    if (!svc_buf_reserve(b, n)) return;
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void svc_buf_puts(struct svc_buf *b, const char *s) { svc_buf_append(b, s, strlen(s)); }

void svc_buf_printf(struct svc_buf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    int n = vsnprintf(room ? b->data + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = true; return; }
    if ((size_t)n < room) { b->len += (size_t)n; return; }
    if (!svc_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *svc_buf_steal(struct svc_buf *b) {
    if (b->oom) { svc_buf_free(b); return NULL; }
    if (!b->data && !svc_buf_reserve(b, 0)) return NULL;
    char *d = b->data;
    memset(b, 0, sizeof *b);
    return d;
}
