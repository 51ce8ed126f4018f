/* COPY text field escaping; see svc/copy_text.h. */
#include "svc/copy_text.h"

#include <string.h>

size_t svc_copy_text_escape(char *dst, const char *s, size_t n) {
    /* Byte i is read before anything past dst + 2i + 1 is written: with s >= dst + n the writer
     * never overtakes the reader. */
    char *w = dst;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        switch (ch) {
        case '\\': *w++ = '\\'; *w++ = '\\'; break;
        case '\t': *w++ = '\\'; *w++ = 't'; break;
        case '\n': *w++ = '\\'; *w++ = 'n'; break;
        case '\r': *w++ = '\\'; *w++ = 'r'; break;
        default: *w++ = ch; break;
        }
    }
    return (size_t)(w - dst);
}

void svc_copy_text_append_n(struct svc_buf *b, const char *s, size_t n) {
    if (!svc_buf_reserve(b, SVC_COPY_TEXT_MAX(n))) return;
    b->len += svc_copy_text_escape(b->data + b->len, s, n);
    b->data[b->len] = '\0';
}

void svc_copy_text_append(struct svc_buf *b, const char *s) {
    if (!s) {
        svc_buf_append(b, "\\N", 2);
        return;
    }
    svc_copy_text_append_n(b, s, strlen(s));
}
