/* Five-field cron expressions (see sync_cron.h). Each field becomes a bit mask; the next firing
 * time is found by walking forward minute by minute but skipping whole days and hours that
 * cannot match, so the walk is short even for yearly expressions. */
#include "sync_cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses one field into a mask of bits lo..hi. */
static int parse_field(const char *s, int lo, int hi, uint64_t *mask, bool *star) {
    *mask = 0;
    *star = false;
    char buf[128];
    size_t n = strlen(s);
    if (n >= sizeof buf || n == 0 || s[0] == ',' || s[n - 1] == ',' || strstr(s, ",,")) return -1;
    strcpy(buf, s);
    char *save = NULL;
    for (char *part = strtok_r(buf, ",", &save); part; part = strtok_r(NULL, ",", &save)) {
        int a = lo, b = hi, step = 1;
        char *slash = strchr(part, '/');
        if (slash) {
            *slash = 0;
            char *e;
            long v = strtol(slash + 1, &e, 10);
            if (e == slash + 1 || *e || v < 1 || v > hi - lo + 1) return -1;
            step = (int)v;
        }
        if (strcmp(part, "*") == 0) {
            if (!slash && strcmp(s, "*") == 0) *star = true;
        } else {
            char *e;
            long v = strtol(part, &e, 10);
            if (e == part || v < lo || v > hi) return -1;
            a = b = (int)v;
            if (*e == '-') {
                char *f;
                long w = strtol(e + 1, &f, 10);
                if (f == e + 1 || *f || w < v || w > hi) return -1;
                b = (int)w;
            } else if (*e) {
                return -1;
            } else if (slash) {
                b = hi; /* "a/n" means a-hi/n */
            }
        }
        for (int i = a; i <= b; i += step) *mask |= 1ull << i;
    }
    return *mask ? 0 : -1;
}

static int parse_every(const char *arg, char *out, size_t n) {
    char *e;
    long v = strtol(arg, &e, 10);
    if (e == arg || v < 1) return -1;
    if (strcmp(e, "m") == 0 && 60 % v == 0) {
        snprintf(out, n, "*/%ld * * * *", v);
        return 0;
    }
    if (strcmp(e, "h") == 0 && 24 % v == 0) {
        snprintf(out, n, v == 24 ? "0 0 * * *" : "0 */%ld * * *", v);
        return 0;
    }
    return -1;
}

int sync_cron_parse(const char *expr, struct sync_cron *out, const char **why) {
    memset(out, 0, sizeof *out);
    *why = NULL;
    char tmp[64];
    while (*expr == ' ') expr++;
    if (strcmp(expr, "off") == 0) {
        out->off = true;
        return 0;
    }
    if (strcmp(expr, "@hourly") == 0) expr = "0 * * * *";
    else if (strcmp(expr, "@daily") == 0) expr = "0 0 * * *";
    else if (strcmp(expr, "@weekly") == 0) expr = "0 0 * * 0";
    else if (strcmp(expr, "@monthly") == 0) expr = "0 0 1 * *";
    else if (strncmp(expr, "@every ", 7) == 0) {
        if (parse_every(expr + 7, tmp, sizeof tmp) != 0) {
            *why = "@every takes <N>m (N divides 60) or <N>h (N divides 24)";
            return -1;
        }
        expr = tmp;
    }
    char buf[256];
    if (strlen(expr) >= sizeof buf) {
        *why = "too long";
        return -1;
    }
    strcpy(buf, expr);
    char *f[6];
    int nf = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
        if (nf == 5) {
            *why = "expected five fields";
            return -1;
        }
        f[nf++] = t;
    }
    if (nf != 5) {
        *why = "expected five fields (minute hour day-of-month month day-of-week) or off";
        return -1;
    }
    uint64_t m;
    bool star;
    if (parse_field(f[0], 0, 59, &m, &star)) return *why = "bad minute field", -1;
    out->minutes = m;
    if (parse_field(f[1], 0, 23, &m, &star)) return *why = "bad hour field", -1;
    out->hours = (uint32_t)m;
    if (parse_field(f[2], 1, 31, &m, &out->mday_star)) return *why = "bad day-of-month field", -1;
    out->mdays = (uint32_t)m;
    if (parse_field(f[3], 1, 12, &m, &star)) return *why = "bad month field", -1;
    out->months = (uint16_t)m;
    if (parse_field(f[4], 0, 7, &m, &out->wday_star)) return *why = "bad day-of-week field", -1;
    if (m & (1u << 7)) m |= 1u;
    out->wdays = (uint8_t)(m & 0x7F);
    return 0;
}

static bool day_matches(const struct sync_cron *c, const struct tm *t) {
    if (!(c->months & (1u << (t->tm_mon + 1)))) return false;
    bool md = (c->mdays >> t->tm_mday) & 1u, wd = (c->wdays >> t->tm_wday) & 1u;
    if (c->mday_star || c->wday_star) return md && wd;
    return md || wd;
}

int64_t sync_cron_next(const struct sync_cron *c, int64_t after) {
    if (c->off) return -1;
    int64_t t = (after / 60 + 1) * 60;
    const int64_t limit = after + 5LL * 366 * 86400;
    while (t <= limit) {
        time_t tt = (time_t)t;
        struct tm tm;
        if (!gmtime_r(&tt, &tm)) return -1;
        if (!day_matches(c, &tm)) {
            t += (int64_t)(86400 - (tm.tm_hour * 3600 + tm.tm_min * 60)); /* next midnight */
            continue;
        }
        if (!((c->hours >> tm.tm_hour) & 1u)) {
            t += (int64_t)(3600 - tm.tm_min * 60);                          /* next hour */
            continue;
        }
        if ((c->minutes >> tm.tm_min) & 1u) return t;
        t += 60;
    }
    return -1;
}
