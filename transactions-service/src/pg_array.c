/* PostgreSQL array literals; see pg_array.h. */
#include "pg_array.h"

#include <string.h>

static void append_element(struct svc_buf *b, const char *s) {
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

void pg_array_append(struct svc_buf *b, const char *const *v, int n) {
    svc_buf_append(b, "{", 1);
    for (int i = 0; i < n; i++) {
        if (i) svc_buf_append(b, ",", 1);
        append_element(b, v[i]);
    }
    svc_buf_append(b, "}", 1);
}
