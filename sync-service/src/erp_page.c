/* ERP page reader (see erp_page.h): a strict single-pass JSON reader specialised for the page
 * shape, writing COPY text rows. Record fields are decoded into fixed buffers sized by the
 * contract's limits; a longer value marks the record invalid but is still read to its end, so
 * the page stays in step. */
#define _GNU_SOURCE /* timegm */
#include "erp_page.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/utf8.h"

#define MAX_DEPTH 32

const char *erp_kind_name(enum erp_kind k) { return k == ERP_PRODUCTS ? "products" : "customers"; }

int erp_kind_parse(const char *s, enum erp_kind *out) {
    if (s && !strcmp(s, "customers")) *out = ERP_CUSTOMERS;
    else if (s && !strcmp(s, "products")) *out = ERP_PRODUCTS;
    else return -1;
    return 0;
}

void erp_batch_init(struct erp_batch *b) {
    svc_buf_init(&b->rows);
    b->records = 0;
    b->max_updated_us = 0;
}

void erp_batch_reset(struct erp_batch *b) {
    svc_buf_reset(&b->rows);
    b->records = 0;
    b->max_updated_us = 0;
}

void erp_batch_free(struct erp_batch *b) { svc_buf_free(&b->rows); }

/* ------------------------------------------------------------------ timestamps */

static bool digits(const char *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int num(const char *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
    return v;
}

int erp_parse_rfc3339(const char *s, size_t n, int64_t *us) {
    if (n < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' || !digits(s + 8, 2) ||
        (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' || !digits(s + 14, 2) || s[16] != ':' ||
        !digits(s + 17, 2))
        return -1;
    struct tm tm = {.tm_year = num(s, 4) - 1900, .tm_mon = num(s + 5, 2) - 1, .tm_mday = num(s + 8, 2),
                    .tm_hour = num(s + 11, 2), .tm_min = num(s + 14, 2), .tm_sec = num(s + 17, 2)};
    if (tm.tm_year < 1 - 1900 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 59)
        return -1;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        int64_t scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            frac += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start || i - start > 9) return -1;
    }
    int offset = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && digits(s + i + 1, 2) && s[i + 3] == ':' &&
               digits(s + i + 4, 2)) {
        int h = num(s + i + 1, 2), m = num(s + i + 4, 2);
        if (h > 23 || m > 59) return -1;
        offset = (h * 60 + m) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -1;
    }
    if (i != n) return -1;
    int mday = tm.tm_mday, mon = tm.tm_mon;
    time_t t = timegm(&tm);
    if (tm.tm_mday != mday || tm.tm_mon != mon) return -1;   /* 31 February */
    *us = ((int64_t)t - offset) * 1000000 + frac;
    return 0;
}

/* ------------------------------------------------------------------ the reader */

struct rd {
    const char *p, *end;
    int depth;
};

static void ws(struct rd *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

static bool eat(struct rd *r, char c) {
    ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return false;
}

static bool word(struct rd *r, const char *w) {
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n) != 0) return false;
    r->p += n;
    return true;
}

/* A decoded string value: up to cap bytes kept; flags say what it held. A \u0000 is not kept
 * (has_nul says it was there): every user of a value with has_nul must refuse it. */
struct sval {
    char *buf;
    size_t cap, len;
    bool too_long, has_nul, has_ctl;
};

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static void put(struct sval *v, const char *s, size_t n) {
    if (!v) return;
    if (v->len + n > v->cap) {
        v->too_long = true;
        return;
    }
    memcpy(v->buf + v->len, s, n);
    v->len += n;
}

static void put_cp(struct sval *v, unsigned cp) {
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(v, b, n);
}

/* Reads a string (the opening quote next); v may be NULL (skip). -1 when malformed. */
static int str(struct rd *r, struct sval *v) {
    if (!eat(r, '"')) return -1;
    if (v) v->len = 0, v->too_long = v->has_nul = v->has_ctl = false;
    const char *run = r->p;
    while (r->p < r->end) {
        unsigned char c = (unsigned char)*r->p;
        if (c == '"') {
            put(v, run, (size_t)(r->p - run));
            r->p++;
            return 0;
        }
        if (c < 0x20) return -1;   /* raw control characters are not JSON */
        if (c == '\\') {
            put(v, run, (size_t)(r->p - run));
            if (r->end - r->p < 2) return -1;
            char e = r->p[1];
            r->p += 2;
            switch (e) {
            case '"': put(v, "\"", 1); break;
            case '\\': put(v, "\\", 1); break;
            case '/': put(v, "/", 1); break;
            case 'b': put(v, "\b", 1); if (v) v->has_ctl = true; break;
            case 'f': put(v, "\f", 1); if (v) v->has_ctl = true; break;
            case 'n': put(v, "\n", 1); if (v) v->has_ctl = true; break;
            case 'r': put(v, "\r", 1); if (v) v->has_ctl = true; break;
            case 't': put(v, "\t", 1); if (v) v->has_ctl = true; break;
            case 'u': {
                unsigned cp;
                if (r->end - r->p < 4 || hex4(r->p, &cp) != 0) return -1;
                r->p += 4;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' || hex4(r->p + 2, &lo) != 0 ||
                        lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    r->p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return -1;
                }
                if (v && cp == 0) v->has_nul = true;
                else if (v && (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))) v->has_ctl = true;
                if (cp != 0) put_cp(v, cp);
                break;
            }
            default: return -1;
            }
            run = r->p;
            continue;
        }
        if (c >= 0x80) {
            size_t n = svc_utf8_seq((const unsigned char *)r->p, (const unsigned char *)r->end);
            if (!n) return -1;
            if (v && c == 0xC2 && (unsigned char)r->p[1] <= 0x9F) v->has_ctl = true;   /* C1: C2 80..C2 9F */
            r->p += n;
            continue;
        }
        if (v && c == 0x7F) v->has_ctl = true;   /* DEL */
        r->p++;
    }
    return -1;
}

/* Reads a number; *tok and *len get its text. -1 when malformed. */
static int number(struct rd *r, const char **tok, size_t *len) {
    ws(r);
    const char *s = r->p, *p = r->p;
    if (p < r->end && *p == '-') p++;
    if (p >= r->end) return -1;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < r->end && *p >= '0' && *p <= '9') p++;
    else return -1;
    if (p < r->end && *p == '.') {
        const char *d = ++p;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
        if (p == d) return -1;
    }
    if (p < r->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < r->end && (*p == '+' || *p == '-')) p++;
        const char *d = p;
        while (p < r->end && *p >= '0' && *p <= '9') p++;
        if (p == d) return -1;
    }
    r->p = p;
    *tok = s;
    *len = (size_t)(p - s);
    return 0;
}

static int skip_value(struct rd *r);

static int skip_container(struct rd *r, char close) {
    if (++r->depth > MAX_DEPTH) return -1;
    if (eat(r, close)) {
        r->depth--;
        return 0;
    }
    do {
        if (close == '}') {
            if (str(r, NULL) != 0 || !eat(r, ':')) return -1;
        }
        if (skip_value(r) != 0) return -1;
    } while (eat(r, ','));
    if (!eat(r, close)) return -1;
    r->depth--;
    return 0;
}

static int skip_value(struct rd *r) {
    ws(r);
    if (r->p >= r->end) return -1;
    const char *tok;
    size_t n;
    switch (*r->p) {
    case '"': return str(r, NULL);
    case '{': r->p++; return skip_container(r, '}');
    case '[': r->p++; return skip_container(r, ']');
    case 't': return word(r, "true") ? 0 : -1;
    case 'f': return word(r, "false") ? 0 : -1;
    case 'n': return word(r, "null") ? 0 : -1;
    default: return number(r, &tok, &n);
    }
}

/* ------------------------------------------------------------------ records */

enum vtype { V_ABSENT = 0, V_STRING, V_NULL, V_BOOL, V_NUMBER, V_OTHER };

struct field {
    const char *name;
    size_t cap;
    enum vtype type;
    bool b;
    struct sval s;
    const char *num;
    size_t numlen;
};

enum { F_ID, F_UPDATED, F_DELETED, F_NAME, F_EMAIL, F_DOCUMENT, F_SKU, F_PRICE, F_STOCK, F_COUNT };

struct record {
    struct field f[F_COUNT];
    char store[128 + 64 + 512 + 320 + 64 + 128 + 32 + 8 * 8];
};

static void record_init(struct record *rec) {
    static const struct { const char *name; size_t cap; } def[F_COUNT] = {
        [F_ID] = {"id", 128},       [F_UPDATED] = {"updated_at", 64}, [F_DELETED] = {"deleted", 0},
        [F_NAME] = {"name", 512},   [F_EMAIL] = {"email", 320},       [F_DOCUMENT] = {"document", 64},
        [F_SKU] = {"sku", 128},     [F_PRICE] = {"price", 32},        [F_STOCK] = {"stock", 0},
    };
    char *p = rec->store;
    for (int i = 0; i < F_COUNT; i++) {
        rec->f[i] = (struct field){.name = def[i].name, .cap = def[i].cap};
        rec->f[i].s.buf = p;
        rec->f[i].s.cap = def[i].cap;
        p += def[i].cap;
    }
}

/* Reads one record object (the '{' next). Returns -1 when the JSON is malformed. */
static int read_record(struct rd *r, struct record *rec) {
    for (int i = 0; i < F_COUNT; i++) rec->f[i].type = V_ABSENT;
    if (!eat(r, '{')) return -1;
    if (++r->depth > MAX_DEPTH) return -1;
    if (eat(r, '}')) {
        r->depth--;
        return 0;
    }
    char keybuf[32];
    struct sval key = {.buf = keybuf, .cap = sizeof keybuf - 1};
    do {
        if (str(r, &key) != 0 || !eat(r, ':')) return -1;
        struct field *f = NULL;
        if (!key.too_long && !key.has_nul)
            for (int i = 0; i < F_COUNT && !f; i++)
                if (strlen(rec->f[i].name) == key.len && memcmp(rec->f[i].name, key.buf, key.len) == 0) f = &rec->f[i];
        ws(r);
        if (r->p >= r->end) return -1;
        if (!f) {
            if (skip_value(r) != 0) return -1;
            continue;
        }
        char c = *r->p;
        if (c == '"') {
            f->type = V_STRING;
            if (str(r, &f->s) != 0) return -1;
        } else if (c == 't' || c == 'f') {
            f->type = V_BOOL;
            f->b = c == 't';
            if (!word(r, c == 't' ? "true" : "false")) return -1;
        } else if (c == 'n') {
            f->type = V_NULL;
            if (!word(r, "null")) return -1;
        } else if (c == '{' || c == '[') {
            f->type = V_OTHER;
            if (skip_value(r) != 0) return -1;
        } else {
            f->type = V_NUMBER;
            if (number(r, &f->num, &f->numlen) != 0) return -1;
        }
    } while (eat(r, ','));
    if (!eat(r, '}')) return -1;
    r->depth--;
    return 0;
}

static bool text_ok(const struct field *f, bool required, bool no_ctl) {
    if (f->type == V_NULL || f->type == V_ABSENT) return !required;
    if (f->type != V_STRING || f->s.too_long || f->s.has_nul) return false;
    if (no_ctl && f->s.has_ctl) return false;
    return true;
}

static bool price_ok(const struct field *f) {
    if (f->type != V_STRING || f->s.too_long || f->s.has_nul) return false;
    const char *s = f->s.buf, *e = s + f->s.len;
    if (s < e && *s == '-') s++;
    const char *d = s;
    while (s < e && *s >= '0' && *s <= '9') s++;
    if (s == d || s - d > 12) return false;
    if (s < e && *s == '.') {
        const char *fr = ++s;
        while (s < e && *s >= '0' && *s <= '9') s++;
        if (s == fr || s - fr > 4) return false;
    }
    return s == e;
}

static bool stock_ok(const struct field *f, long long *out) {
    if (f->type != V_NUMBER || f->numlen > 20) return false;
    for (size_t i = 0; i < f->numlen; i++)
        if (f->num[i] == '.' || f->num[i] == 'e' || f->num[i] == 'E') return false;
    char buf[24];
    memcpy(buf, f->num, f->numlen);
    buf[f->numlen] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

/* Appends a COPY text field (escaped) and a separator. */
static void copy_field(struct svc_buf *b, const struct field *f, char sep) {
    if (f->type != V_STRING) {
        svc_buf_append(b, "\\N", 2);
    } else {
        const char *s = f->s.buf, *run = s, *e = s + f->s.len;
        for (; s < e; s++) {
            const char *esc = *s == '\\' ? "\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n" : *s == '\r' ? "\\r" : NULL;
            if (!esc) continue;
            svc_buf_append(b, run, (size_t)(s - run));
            svc_buf_append(b, esc, 2);
            run = s + 1;
        }
        svc_buf_append(b, run, (size_t)(e - run));
    }
    svc_buf_append(b, &sep, 1);
}

/* Validates rec for kind; appends its row when valid. Returns whether it was valid. */
static bool emit(const struct record *rec, enum erp_kind kind, const char *tenant, struct erp_batch *b) {
    const struct field *f = rec->f;
    int64_t us;
    if (!text_ok(&f[F_ID], true, true) || f[F_ID].s.len == 0) return false;
    if (f[F_UPDATED].type != V_STRING || f[F_UPDATED].s.too_long || f[F_UPDATED].s.has_nul ||
        erp_parse_rfc3339(f[F_UPDATED].s.buf, f[F_UPDATED].s.len, &us) != 0)
        return false;
    if (f[F_DELETED].type != V_BOOL) return false;
    if (!text_ok(&f[F_NAME], true, false)) return false;
    long long stock = 0;
    if (kind == ERP_CUSTOMERS) {
        if (!text_ok(&f[F_EMAIL], false, true) || !text_ok(&f[F_DOCUMENT], false, true)) return false;
    } else {
        if (!text_ok(&f[F_SKU], false, true) || !price_ok(&f[F_PRICE]) || !stock_ok(&f[F_STOCK], &stock)) return false;
    }
    struct svc_buf *o = &b->rows;
    svc_buf_puts(o, tenant);
    svc_buf_append(o, "\t", 1);
    copy_field(o, &f[F_ID], '\t');
    if (kind == ERP_CUSTOMERS) {
        copy_field(o, &f[F_NAME], '\t');
        copy_field(o, &f[F_EMAIL], '\t');
        copy_field(o, &f[F_DOCUMENT], '\t');
    } else {
        copy_field(o, &f[F_SKU], '\t');
        copy_field(o, &f[F_NAME], '\t');
        copy_field(o, &f[F_PRICE], '\t');
        svc_buf_printf(o, "%lld\t", stock);
    }
    copy_field(o, &f[F_UPDATED], '\t');
    svc_buf_puts(o, f[F_DELETED].b ? "t\n" : "f\n");
    b->records++;
    if (us > b->max_updated_us) b->max_updated_us = us;
    return true;
}

/* ------------------------------------------------------------------ the page */

static bool int_token(const char *tok, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((tok[i] < '0' || tok[i] > '9') && !(i == 0 && tok[i] == '-')) return false;
    return n > 0;
}

int erp_page_parse(const char *body, size_t len, enum erp_kind kind, const char *tenant_id, struct erp_batch *b,
                   struct erp_page_info *info, const char **why) {
    memset(info, 0, sizeof *info);
    size_t rows_before = b->rows.len;
    long records_before = b->records;
    int64_t max_before = b->max_updated_us;
    struct rd r = {.p = body, .end = body + len};
    struct record *rec = malloc(sizeof *rec);
    if (!rec) return *why = "out of memory", -1;
    record_init(rec);
    bool seen_data = false, seen_more = false;
    char keybuf[32];
    struct sval key = {.buf = keybuf, .cap = sizeof keybuf - 1};
    *why = "not a JSON object";
    if (!eat(&r, '{')) goto bad;
    r.depth = 1;
    if (!eat(&r, '}')) {
        do {
            *why = "malformed JSON";
            if (str(&r, &key) != 0 || !eat(&r, ':')) goto bad;
            key.too_long = key.too_long || key.has_nul;   /* "da\u0000ta" is not "data" */
            key.buf[key.too_long ? 0 : key.len] = '\0';
            ws(&r);
            if (!key.too_long && !strcmp(key.buf, "data")) {
                *why = "data is not an array";
                if (seen_data || !eat(&r, '[')) goto bad;
                seen_data = true;
                *why = "malformed JSON in data";
                if (!eat(&r, ']')) {
                    do {
                        ws(&r);
                        if (r.p >= r.end || *r.p != '{') {
                            *why = "a data element is not an object";
                            goto bad;
                        }
                        if (read_record(&r, rec) != 0) goto bad;
                        info->records++;
                        if (!emit(rec, kind, tenant_id, b)) info->invalid++;
                    } while (eat(&r, ','));
                    if (!eat(&r, ']')) goto bad;
                }
            } else if (!key.too_long && !strcmp(key.buf, "has_more")) {
                *why = "has_more is not a boolean";
                if (word(&r, "true")) info->has_more = true;
                else if (word(&r, "false")) info->has_more = false;
                else goto bad;
                seen_more = true;
            } else if (!key.too_long && (!strcmp(key.buf, "page") || !strcmp(key.buf, "per_page"))) {
                const char *tok;
                size_t n;
                *why = "page or per_page is not an integer";
                if (number(&r, &tok, &n) != 0 || !int_token(tok, n)) goto bad;
            } else if (skip_value(&r) != 0) {
                goto bad;
            }
        } while (eat(&r, ','));
        *why = "malformed JSON";
        if (!eat(&r, '}')) goto bad;
    }
    ws(&r);
    *why = "trailing data after the page";
    if (r.p != r.end) goto bad;
    *why = "data or has_more missing";
    if (!seen_data || !seen_more) goto bad;
    if (b->rows.oom) {
        *why = "out of memory";
        goto bad;
    }
    free(rec);
    *why = NULL;
    return 0;
bad:
    free(rec);
    b->rows.len = rows_before;
    b->records = records_before;
    b->max_updated_us = max_before;
    return -1;
}
