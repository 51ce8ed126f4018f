/* Environment configuration with the NAME_FILE convention for secrets.
 *
 * Errors are accumulated so that one start-up attempt reports every bad variable at once, in a
 * single line, instead of making an operator fix them one restart at a time. */
#include "svc/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void svc_config_init(struct svc_config *c) { memset(c, 0, sizeof *c); }

void svc_config_free(struct svc_config *c) {
    for (int i = 0; i < c->nerrors; i++) free(c->errors[i]);
    for (int i = 0; i < c->nowned; i++) free(c->owned[i]);
    memset(c, 0, sizeof *c);
}

void svc_config_error(struct svc_config *c, const char *name, const char *msg) {
    if (c->nerrors >= SVC_CONFIG_MAX_ERRORS) return;
    size_t n = strlen(name) + strlen(msg) + 3;
    char *e = malloc(n);
    if (!e) return;
    snprintf(e, n, "%s: %s", name, msg);
    c->errors[c->nerrors++] = e;
}

char *svc_read_file(const char *path, size_t max, size_t *len_out, bool strip) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); errno = ENOMEM; return NULL; }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= max + 1) { free(buf); fclose(f); errno = EFBIG; return NULL; }
            size_t ncap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) { free(buf); fclose(f); errno = ENOMEM; return NULL; }
            buf = nb; cap = ncap;
        }
        size_t r = fread(buf + len, 1, cap - 1 - len, f);
        if (r == 0) break;
        len += r;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); errno = EIO; return NULL; }
    if (len > max) { free(buf); errno = EFBIG; return NULL; }
    if (strip && len > 0 && buf[len - 1] == '\n') len--;
    if (strip && len > 0 && buf[len - 1] == '\r') len--;
    buf[len] = '\0';
    if (len_out) *len_out = len;
    return buf;
}

const char *svc_config_str(struct svc_config *c, const char *name, const char *def) {
    char fname[256];
    snprintf(fname, sizeof fname, "%s_FILE", name);
    const char *path = getenv(fname);
    if (path && *path) {
        char *v = svc_read_file(path, 64 * 1024, NULL, true);
        if (!v) {
            char msg[320];
            snprintf(msg, sizeof msg, "cannot read file %s (%s)", path, strerror(errno));
            svc_config_error(c, fname, msg);
            return def;
        }
        if (c->nowned < (int)(sizeof c->owned / sizeof c->owned[0])) {
            c->owned[c->nowned++] = v;
        } else {
            free(v);
            svc_config_error(c, fname, "too many file-backed settings");
            return def;
        }
        if (!*v) { svc_config_error(c, fname, "file is empty"); return def; }
        return v;
    }
    const char *v = getenv(name);
    if (v && *v) return v;
    if (!def) svc_config_error(c, name, "missing (required)");
    return def;
}

long svc_config_int(struct svc_config *c, const char *name, long def, long min, long max) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    errno = 0;
    char *end = NULL;
    long x = strtol(v, &end, 10);
    if (errno || !end || *end || end == v) {
        svc_config_error(c, name, "not an integer");
        return def;
    }
    if (x < min || x > max) {
        char msg[96];
        snprintf(msg, sizeof msg, "out of range [%ld, %ld]", min, max);
        svc_config_error(c, name, msg);
        return def;
    }
    return x;
}

bool svc_config_bool(struct svc_config *c, const char *name, bool def) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    if (!strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "yes")) return true;
    if (!strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "no")) return false;
    svc_config_error(c, name, "not a boolean (true/false)");
    return def;
}

int svc_config_check(struct svc_config *c, const char *service) {
    if (c->nerrors == 0) return 0;
    char line[4096];
    size_t off = (size_t)snprintf(line, sizeof line, "%s: configuration error: ", service);
    for (int i = 0; i < c->nerrors && off < sizeof line; i++)
        off += (size_t)snprintf(line + off, sizeof line - off, "%s%s", i ? "; " : "", c->errors[i]);
    fprintf(stderr, "%s\n", line);
    fflush(stderr);
    return -1;
}
