/* Paging, cursors and query parameters; see paging.h. */
#include "svc/paging.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/b64url.h"
#include "svc/buf.h"
#include "svc/cid.h"
#include "svc/crypto.h"

#define CURSOR_VERSION 1
#define CHECK_LEN 4
#define HEAD_LEN 10                     /* version, kind, time */
#define UUID_BYTES 16
#define INT_BYTES 8
#define CURSOR_BYTES_MAX (HEAD_LEN + 1 + SVC_CURSOR_ID_MAX + CHECK_LEN)
#define INT_ID_MAX 999999999999999999LL /* 18 digits: what strict_long reads */

/* ---------------------------------------------------------------- query parameters */

void svc_query_reason(json_t *fields, const char *name, const char *why) {
    if (fields && !json_object_get(fields, name)) json_object_set_new(fields, name, json_string(why));
}

/* Digits only, at most 18 of them (no overflow), value in [min, max]. */
static bool strict_long(const char *s, long min, long max, long *out) {
    size_t n = strlen(s);
    if (n == 0 || n > 18) return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) return false;
    *out = (long)v;
    return true;
}

bool svc_query_long(json_t *fields, const char *name, const char *s, long def, long min, long max, long *out) {
    *out = def;
    if (!s) return true;
    if (strict_long(s, min, max, out)) return true;
    char why[80];
    snprintf(why, sizeof why, "must be an integer from %ld to %ld", min, max);
    svc_query_reason(fields, name, why);
    return false;
}

bool svc_query_bool(json_t *fields, const char *name, const char *s, bool def, bool *out) {
    *out = def;
    if (!s) return true;
    if (!strcmp(s, "true")) *out = true;
    else if (!strcmp(s, "false")) *out = false;
    else {
        svc_query_reason(fields, name, SVC_QUERY_BOOL_REASON);
        return false;
    }
    return true;
}

struct svc_result svc_query_invalid(json_t *fields) {
    struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", SVC_QUERY_INVALID_MESSAGE);
    r.details = json_pack("{s:o}", "fields", fields ? fields : json_object());
    return r;
}

/* ---------------------------------------------------------------- cursors */

static void put_be64(unsigned char *p, uint64_t v) {
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool text_id_ok(const unsigned char *s, size_t n) {
    if (n == 0 || n > SVC_CURSOR_ID_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] == 0x7f) return false;
    return true;
}

static bool check_bytes(const unsigned char *data, size_t n, unsigned char out[CHECK_LEN]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, n, md, &mdlen, svc_sha256_md(), NULL) || mdlen < CHECK_LEN) return false;
    memcpy(out, md, CHECK_LEN);
    return true;
}

bool svc_cursor_encode(const struct svc_list *l, const struct svc_cursor *c, char out[SVC_CURSOR_TEXT_MAX + 1]) {
    out[0] = '\0';
    if (l->timed ? (c->time_us < 0 || c->time_us > SVC_CURSOR_TIME_MAX) : c->time_us != 0) return false;
    unsigned char b[CURSOR_BYTES_MAX];
    b[0] = CURSOR_VERSION;
    b[1] = (unsigned char)l->kind;
    put_be64(b + 2, (uint64_t)c->time_us);
    size_t n = HEAD_LEN;
    if (l->id == SVC_CURSOR_UUID) {
        if (!svc_uuid_is_valid(c->id)) return false;
        for (const char *s = c->id; *s; s++) {
            if (*s == '-') continue;
            int hi = hexval(s[0]), lo = hexval(s[1]);
            b[n++] = (unsigned char)(hi << 4 | lo);
            s++;
        }
    } else if (l->id == SVC_CURSOR_INT) {
        long v;
        if (!strict_long(c->id, 0, LONG_MAX, &v)) return false;
        put_be64(b + n, (uint64_t)v);
        n += INT_BYTES;
    } else {
        size_t len = strnlen(c->id, sizeof c->id);
        if (!text_id_ok((const unsigned char *)c->id, len)) return false;
        b[n++] = (unsigned char)len;
        memcpy(b + n, c->id, len);
        n += len;
    }
    if (!check_bytes(b, n, b + n)) return false;
    n += CHECK_LEN;
    return svc_b64url_encode(b, n, out, SVC_CURSOR_TEXT_MAX + 1) > 0;
}

bool svc_cursor_decode(const struct svc_list *l, const char *text, struct svc_cursor *out) {
    memset(out, 0, sizeof *out);
    size_t len = strnlen(text, SVC_CURSOR_TEXT_MAX + 1);
    unsigned char b[CURSOR_BYTES_MAX];
    size_t n = 0;
    if (len > SVC_CURSOR_TEXT_MAX || svc_b64url_decode(text, len, b, sizeof b, &n) != 0 || n < HEAD_LEN + 1) return false;
    size_t want = HEAD_LEN + CHECK_LEN + (l->id == SVC_CURSOR_UUID  ? UUID_BYTES
                                          : l->id == SVC_CURSOR_INT ? INT_BYTES
                                                                    : 1 + (size_t)b[HEAD_LEN]);
    if (n != want) return false;
    unsigned char check[CHECK_LEN];
    if (b[0] != CURSOR_VERSION || b[1] != (unsigned char)l->kind || !check_bytes(b, n - CHECK_LEN, check) ||
        memcmp(check, b + n - CHECK_LEN, CHECK_LEN) != 0)
        return false;
    uint64_t t = get_be64(b + 2);
    if (l->timed ? t > (uint64_t)SVC_CURSOR_TIME_MAX : t != 0) return false;
    out->time_us = (int64_t)t;
    const unsigned char *id = b + HEAD_LEN;
    if (l->id == SVC_CURSOR_UUID) {
        static const char hex[] = "0123456789abcdef";
        char *o = out->id;
        for (int i = 0; i < UUID_BYTES; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
            *o++ = hex[id[i] >> 4];
            *o++ = hex[id[i] & 15];
        }
        *o = '\0';
    } else if (l->id == SVC_CURSOR_INT) {
        uint64_t v = get_be64(id);
        if (v > (uint64_t)INT_ID_MAX) return false;
        snprintf(out->id, sizeof out->id, "%llu", (unsigned long long)v);
    } else {
        size_t tlen = id[0];
        if (!text_id_ok(id + 1, tlen)) return false;
        memcpy(out->id, id + 1, tlen);
        out->id[tlen] = '\0';
    }
    return true;
}

/* ---------------------------------------------------------------- page requests */

bool svc_page_parse(const struct svc_list *l, const struct svc_page_params *p, struct svc_page *out,
                    json_t *fields) {
    memset(out, 0, sizeof *out);
    bool ok = true;
    long def = l->limit_default > 0 ? l->limit_default : SVC_PAGE_LIMIT_DEFAULT;
    long max = l->limit_max > 0 ? l->limit_max : SVC_PAGE_LIMIT_MAX;
    if (max > SVC_PAGE_LIMIT_CAP) max = SVC_PAGE_LIMIT_CAP;
    if (def > max) def = max;
    long limit = def;
    if (p->limit && !strict_long(p->limit, 1, max, &limit)) {
        char why[64];
        snprintf(why, sizeof why, "must be an integer from 1 to %ld", max);
        svc_query_reason(fields, "limit", max == SVC_PAGE_LIMIT_MAX ? SVC_PAGE_LIMIT_REASON : why);
        limit = def;
        ok = false;
    }
    out->limit = (int)limit;
    if (p->page) {
        long page = 0;
        if (!l->legacy_page) {
            svc_query_reason(fields, "page", SVC_PAGE_NO_PAGE_REASON);
            ok = false;
        } else if (!strict_long(p->page, 1, SVC_PAGE_MAX, &page)) {
            svc_query_reason(fields, "page", SVC_PAGE_PAGE_REASON);
            ok = false;
        } else {
            out->page = page;
        }
    }
    if (p->cursor) {
        if (p->page) {
            svc_query_reason(fields, "cursor", SVC_PAGE_CURSOR_AND_PAGE_REASON);
            ok = false;
        } else if (!svc_cursor_decode(l, p->cursor, &out->at)) {
            svc_query_reason(fields, "cursor", SVC_PAGE_CURSOR_REASON);
            ok = false;
        } else {
            out->after = true;
        }
    }
    if (!svc_query_bool(fields, "include_total", p->include_total, false, &out->include_total)) ok = false;
    if (out->page > 0) out->include_total = true;
    return ok;
}

/* µs since the epoch → "YYYY-MM-DD HH:MM:SS.ffffff+00" (time_us within 0..SVC_CURSOR_TIME_MAX). */
static void time_literal(int64_t us, char *out, size_t n) {
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    unsigned year = (unsigned)(tm.tm_year + 1900) % 10000u, frac = (unsigned)(us % 1000000);
    snprintf(out, n, "%04u-%02u-%02u %02u:%02u:%02u.%06u+00", year, (unsigned)tm.tm_mon % 12u + 1,
             (unsigned)tm.tm_mday % 32u, (unsigned)tm.tm_hour % 24u, (unsigned)tm.tm_min % 60u,
             (unsigned)tm.tm_sec % 61u, frac % 1000000u);
}

void svc_page_sql(const struct svc_page *p, struct svc_page_sql *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->fetch_buf, sizeof out->fetch_buf, "%d", p->limit + 1);
    snprintf(out->offset_buf, sizeof out->offset_buf, "%ld", p->page > 0 ? (p->page - 1) * (long)p->limit : 0L);
    out->fetch = out->fetch_buf;
    out->offset = out->offset_buf;
    out->total = p->include_total ? "t" : "f";
    if (p->after) {
        time_literal(p->at.time_us, out->time_buf, sizeof out->time_buf);
        out->time = out->time_buf;
        out->id = p->at.id;
    }
}

/* ---------------------------------------------------------------- pages */

char *svc_page_render(const struct svc_list *l, const struct svc_page *p, const char *const *rows, int nrows,
                      const struct svc_cursor *last, long long total) {
    bool more = nrows > p->limit;
    int shown = more ? p->limit : nrows;
    struct svc_buf b;
    svc_buf_init(&b);
    size_t need = 160;
    for (int i = 0; i < shown; i++) need += strlen(rows[i]) + 1;
    svc_buf_reserve(&b, need);
    svc_buf_puts(&b, "{\"data\":[");
    for (int i = 0; i < shown; i++) {
        if (i) svc_buf_puts(&b, ",");
        svc_buf_puts(&b, rows[i]);
    }
    svc_buf_puts(&b, "],\"next_cursor\":");
    char cur[SVC_CURSOR_TEXT_MAX + 1];
    if (more && p->page == 0) {
        if (!last || !svc_cursor_encode(l, last, cur)) {
            svc_buf_free(&b);
            return NULL;
        }
        svc_buf_printf(&b, "\"%s\"", cur);
    } else {
        svc_buf_puts(&b, "null");
    }
    svc_buf_printf(&b, ",\"has_more\":%s,\"limit\":%d", more ? "true" : "false", p->limit);
    if (p->page > 0) svc_buf_printf(&b, ",\"page\":%ld", p->page);
    if (total >= 0) svc_buf_printf(&b, ",\"total\":%lld", total);
    svc_buf_puts(&b, "}");
    if (b.oom) {
        svc_buf_free(&b);
        return NULL;
    }
    return svc_buf_steal(&b);
}

static bool text_int64(const char *s, bool allow_negative, long long *out) {
    if (!s || !*s) return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || (!allow_negative && v < 0)) return false;
    *out = v;
    return true;
}

svc_status svc_page_render_pg(const struct svc_list *l, const struct svc_page *p, const PGresult *res,
                              char **json_out) {
    *json_out = NULL;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 4) return SVC_INTERNAL;
    int n = PQntuples(res);
    if (n > p->limit + 2) return SVC_INTERNAL;  /* limit + 1 rows, or one filler row */
    if (p->limit > SVC_PAGE_LIMIT_CAP) return SVC_INTERNAL;
    const char *rows[SVC_PAGE_LIMIT_CAP + 2];
    int nrows = 0;
    long long total = -1;
    struct svc_cursor last = {0};
    for (int i = 0; i < n; i++) {
        if (total < 0 && !PQgetisnull(res, i, 3) && !text_int64(PQgetvalue(res, i, 3), false, &total))
            return SVC_INTERNAL;
        if (PQgetisnull(res, i, 0)) continue;
        if (nrows == p->limit) {   /* the row after the last one shown: has_more */
            nrows++;
            break;
        }
        rows[nrows++] = PQgetvalue(res, i, 0);
        if (nrows == p->limit) {
            long long t = 0;
            if (l->timed && !text_int64(PQgetvalue(res, i, 1), false, &t)) return SVC_INTERNAL;
            const char *id = PQgetvalue(res, i, 2);
            if (PQgetisnull(res, i, 2) || strlen(id) > SVC_CURSOR_ID_MAX) return SVC_INTERNAL;
            last.time_us = t;
            memcpy(last.id, id, strlen(id) + 1);
        }
    }
    if (p->include_total && total < 0) return SVC_INTERNAL;
    *json_out = svc_page_render(l, p, rows, nrows, &last, p->include_total ? total : -1);
    return *json_out ? SVC_OK : SVC_INTERNAL;
}
