/* PostgreSQL array literals; see svc/pg_array.h. */
#include "svc/pg_array.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void svc_pg_array_open(struct svc_buf *b) { svc_buf_append(b, "{", 1); }

void svc_pg_array_close(struct svc_buf *b) { svc_buf_append(b, "}", 1); }

/* An element follows "{" directly, any other after a comma. */
static void pg_array_separate(struct svc_buf *b) {
    if (b->len && b->data[b->len - 1] != '{') svc_buf_append(b, ",", 1);
}

void svc_pg_array_text(struct svc_buf *b, const char *s) {
    pg_array_separate(b);
    if (!s) {
        svc_buf_append(b, "NULL", 4);
        return;
    }
    svc_buf_append(b, "\"", 1);
    for (;;) {
        size_t run = strcspn(s, "\"\\");
        svc_buf_append(b, s, run);
        s += run;
        if (!*s) break;
        char esc[2] = {'\\', *s++};
        svc_buf_append(b, esc, 2);
    }
    svc_buf_append(b, "\"", 1);
}

void svc_pg_array_int(struct svc_buf *b, int64_t v) {
    pg_array_separate(b);
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    svc_buf_append(b, num, (size_t)n);
}

void svc_pg_array_of(struct svc_buf *b, const char *const *v, int n) {
    svc_pg_array_open(b);
    for (int i = 0; i < n; i++) svc_pg_array_text(b, v[i]);
    svc_pg_array_close(b);
}
