/* The dashboard page's files (HTML, script, style), read once at start from
 * QUEUE_DASHBOARD_ASSETS_DIR (default sync-service/web, like MIGRATIONS_DIR a path relative to
 * the working directory; the container image copies the folder). Everything the page loads is
 * one of these files: no CDN, no inline script or style (its Content-Security-Policy forbids
 * both).
 *
 * Synchronisation: immutable after dash_assets_load. Ownership: the struct owns the file
 * contents (dash_assets_free); dash_assets_get returns borrowed pointers into it. */
#ifndef DASH_ASSETS_H
#define DASH_ASSETS_H

#include <stddef.h>

#define DASH_ASSET_COUNT 4

struct dash_asset {
    const char *name;          /* "dashboard.js" */
    const char *content_type;
    char *data;
    size_t len;
};

struct dash_assets {
    struct dash_asset a[DASH_ASSET_COUNT];
};

/* Reads every file from dir; -1 with why set when one is missing or unreadable. */
int dash_assets_load(struct dash_assets *as, const char *dir, const char **why);
void dash_assets_free(struct dash_assets *as);
/* The asset named name, or NULL. */
const struct dash_asset *dash_assets_get(const struct dash_assets *as, const char *name);

#endif
