/* Strict JSON text loading (see svc/json_text.h). */
#include "svc/json_text.h"

#include <stdio.h>
#include <string.h>

json_t *svc_json_load(const void *buf, size_t len, size_t flags, json_error_t *err) {
    const char *text = buf;
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (!nul) return json_loadb(text, len, flags, err);
    if (err) {
        int line = 1, column = 0;
        for (const char *p = text; p < nul; p++) {
            if (*p == '\n') {
                line++;
                column = 0;
            } else {
                column++;
            }
        }
        err->line = line;
        err->column = column + 1;
        err->position = (int)(nul - text);
        snprintf(err->source, sizeof err->source, "<buffer>");
        snprintf(err->text, sizeof err->text, "NUL byte in the text");
    }
    return NULL;
}
