/* Loading and looking up the dashboard's files (see dash_assets.h). */
#include "dash_assets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name, *type;
} files[DASH_ASSET_COUNT] = {
    {"dashboard.html", "text/html; charset=utf-8"},
    {"dashboard.js", "text/javascript; charset=utf-8"},
    {"dashboard.css", "text/css; charset=utf-8"},
    {"favicon.svg", "image/svg+xml"},
};

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && n <= 4L * 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

int dash_assets_load(struct dash_assets *as, const char *dir, const char **why) {
    memset(as, 0, sizeof *as);
    for (int i = 0; i < DASH_ASSET_COUNT; i++) {
        char path[1024];
        if (snprintf(path, sizeof path, "%s/%s", dir, files[i].name) >= (int)sizeof path) {
            *why = "path too long";
            dash_assets_free(as);
            return -1;
        }
        as->a[i].name = files[i].name;
        as->a[i].content_type = files[i].type;
        as->a[i].data = read_file(path, &as->a[i].len);
        if (!as->a[i].data) {
            *why = "a dashboard file is missing or unreadable";
            dash_assets_free(as);
            return -1;
        }
    }
    return 0;
}

void dash_assets_free(struct dash_assets *as) {
    for (int i = 0; i < DASH_ASSET_COUNT; i++) {
        free(as->a[i].data);
        as->a[i].data = NULL;
    }
}

const struct dash_asset *dash_assets_get(const struct dash_assets *as, const char *name) {
    for (int i = 0; name && i < DASH_ASSET_COUNT; i++)
        if (as->a[i].data && !strcmp(as->a[i].name, name)) return &as->a[i];
    return NULL;
}
