/* The query parameters of every list (shared/src/paging.c): limit, cursor, page, include_total,
 * the keyset cursor codec, the SQL parameters made from a page request and the page's JSON.
 *
 * Input: byte 0 picks one of four list shapes (timed or not, UUID or integer ids, with or without
 * the deprecated page=) and which parameters are absent (bits 2-5); the rest is the parameters'
 * text, NUL-separated: limit \0 cursor \0 page \0 include_total \0 raw cursor key bytes.
 * Properties:
 *  - svc_page_parse succeeds exactly when the parameters follow paging.h (checked against rules
 *    written here: digits only, 1..100, page 1..1000000 on a legacy list, not with a cursor,
 *    include_total true/false), with one reason per bad parameter and none otherwise;
 *  - a cursor is accepted by at most the list whose letter it carries, and an accepted cursor is
 *    canonical: encoding what it decoded to gives the same text back;
 *  - a key made from the raw bytes encodes exactly when in range and decodes to itself;
 *  - the SQL parameters: fetch = limit + 1, offset = (page - 1) * limit, the cursor's time as a
 *    UTC literal that names the same microsecond;
 *  - the page's JSON parses, has the rows shown, has_more, limit, page/total when due, and its
 *    next_cursor decodes to the last row's key. */
#define _GNU_SOURCE
#include "fuzz.h"

#include <jansson.h>
#include <limits.h>
#include <time.h>

#include "svc/cid.h"
#include "svc/paging.h"

static const struct svc_list lists[4] = {
    {.kind = 'T', .timed = true, .id = SVC_CURSOR_UUID, .legacy_page = true},
    {.kind = 'U', .timed = false, .id = SVC_CURSOR_UUID, .legacy_page = false},
    {.kind = 'J', .timed = true, .id = SVC_CURSOR_INT, .legacy_page = false},
    {.kind = 'E', .timed = false, .id = SVC_CURSOR_INT, .legacy_page = true},
};

/* [0-9]{1,18} with a value in [min, max]. */
static bool digits_in(const char *s, long long min, long long max, long long *out) {
    size_t n = strlen(s);
    if (n < 1 || n > 18) return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return v >= min && v <= max;
}

static const char *reason(const json_t *fields, const char *name) {
    return json_string_value(json_object_get(fields, name));
}

static void check_cursor_text(const struct svc_list *l, const char *text) {
    struct svc_cursor c;
    bool ok = svc_cursor_decode(l, text, &c);
    for (int k = 0; k < 4; k++) {
        struct svc_cursor other;
        if (&lists[k] != l && lists[k].kind != l->kind)
            FUZZ_CHECK(!(ok && svc_cursor_decode(&lists[k], text, &other)), "cursor \"%s\" is accepted by lists %c and %c",
                       text, l->kind, lists[k].kind);
    }
    if (!ok) return;
    FUZZ_CHECK(l->timed ? c.time_us >= 0 && c.time_us <= SVC_CURSOR_TIME_MAX : c.time_us == 0,
               "cursor \"%s\" decodes to time %lld", text, (long long)c.time_us);
    long long v;
    FUZZ_CHECK(l->id == SVC_CURSOR_UUID ? svc_uuid_is_valid(c.id) : digits_in(c.id, 0, 999999999999999999LL, &v),
               "cursor \"%s\" decodes to id \"%s\"", text, c.id);
    char again[SVC_CURSOR_TEXT_MAX + 1];
    FUZZ_CHECK(svc_cursor_encode(l, &c, again) && !strcmp(again, text), "cursor \"%s\" re-encodes as \"%s\"", text,
               again);
}

static void check_key(const struct svc_list *l, const uint8_t *raw, size_t n) {
    if (n < 8) return;
    struct svc_cursor c = {0};
    memcpy(&c.time_us, raw, 8);
    if (raw[0] & 1) c.time_us &= (1LL << 58) - 1;  /* often within range */
    if (!l->timed && (raw[0] & 2)) c.time_us = 0;
    size_t idn = n - 8 < SVC_CURSOR_ID_MAX ? n - 8 : SVC_CURSOR_ID_MAX;
    memcpy(c.id, raw + 8, idn);
    c.id[idn] = '\0';
    long long v;
    bool id_ok = l->id == SVC_CURSOR_UUID ? svc_uuid_is_valid(c.id) : digits_in(c.id, 0, LONG_MAX, &v);
    bool time_ok = l->timed ? c.time_us >= 0 && c.time_us <= SVC_CURSOR_TIME_MAX : c.time_us == 0;
    char text[SVC_CURSOR_TEXT_MAX + 1];
    bool enc = svc_cursor_encode(l, &c, text);
    FUZZ_CHECK(enc == (id_ok && time_ok), "key (%lld, \"%s\") of list %c: encode %d, expected %d", (long long)c.time_us,
               c.id, l->kind, enc, id_ok && time_ok);
    if (!enc) return;
    struct svc_cursor back;
    bool dec = svc_cursor_decode(l, text, &back);
    if (l->id == SVC_CURSOR_INT && v > 999999999999999999LL) {
        FUZZ_CHECK(!dec, "cursor of an id past 18 digits decodes");
        return;
    }
    FUZZ_CHECK(dec && back.time_us == c.time_us, "key (%lld, \"%s\") does not come back from \"%s\"",
               (long long)c.time_us, c.id, text);
    if (l->id == SVC_CURSOR_UUID) {
        FUZZ_CHECK(!strcasecmp(back.id, c.id), "uuid \"%s\" comes back as \"%s\"", c.id, back.id);
    } else {
        long long w;
        FUZZ_CHECK(digits_in(back.id, 0, LLONG_MAX, &w) && w == v, "id \"%s\" comes back as \"%s\"", c.id, back.id);
    }
}

static void check_sql(const struct svc_page *pg) {
    struct svc_page_sql q;
    svc_page_sql(pg, &q);
    char want[32];
    snprintf(want, sizeof want, "%d", pg->limit + 1);
    FUZZ_CHECK(!strcmp(q.fetch, want), "fetch \"%s\" for limit %d", q.fetch, pg->limit);
    snprintf(want, sizeof want, "%ld", pg->page > 0 ? (pg->page - 1) * (long)pg->limit : 0L);
    FUZZ_CHECK(!strcmp(q.offset, want), "offset \"%s\" for page %ld", q.offset, pg->page);
    FUZZ_CHECK(!strcmp(q.total, pg->include_total ? "t" : "f"), "total \"%s\"", q.total);
    if (!pg->after) {
        FUZZ_CHECK(!q.time && !q.id, "cursor parameters without a cursor");
        return;
    }
    FUZZ_CHECK(q.id && !strcmp(q.id, pg->at.id), "id parameter \"%s\"", q.id ? q.id : "(null)");
    struct tm tm = {0};
    unsigned frac = 0;
    int used = 0;
    FUZZ_CHECK(q.time && sscanf(q.time, "%4d-%2d-%2d %2d:%2d:%2d.%6u+00%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                                &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &frac, &used) == 7 &&
                   used == (int)strlen(q.time) && strlen(q.time) == 29,
               "time parameter \"%s\"", q.time ? q.time : "(null)");
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t us = (int64_t)timegm(&tm) * 1000000 + frac;
    FUZZ_CHECK(us == pg->at.time_us, "time parameter \"%s\" is %lld µs, the cursor says %lld", q.time, (long long)us,
               (long long)pg->at.time_us);
}

static void check_render(const struct svc_list *l, const struct svc_page *pg, const uint8_t *raw, size_t n) {
    static const char *const row_texts[] = {"{}", "{\"a\":1}", "[1,2]", "\"x\"", "null"};
    const char *rows[SVC_PAGE_LIMIT_MAX + 1];
    int nrows = n ? raw[0] % (pg->limit + 2) : 0;
    for (int i = 0; i < nrows; i++) rows[i] = row_texts[(size_t)i % 5];
    struct svc_cursor last = {.time_us = l->timed ? 1700000000123456LL : 0};
    if (l->id == SVC_CURSOR_UUID) strcpy(last.id, "0190f3a2-7b1c-7def-8123-456789abcdef");
    else strcpy(last.id, "42");
    long long total = n > 1 ? (long long)raw[1] - 1 : -1;
    char *text = svc_page_render(l, pg, rows, nrows, &last, total);
    FUZZ_CHECK(text, "page not rendered");
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    FUZZ_CHECK(json_is_object(j), "page is not JSON: %s (%s)", text, err.text);
    bool more = nrows > pg->limit;
    const json_t *data = json_object_get(j, "data");
    FUZZ_CHECK(json_is_array(data) && (int)json_array_size(data) == (more ? pg->limit : nrows), "page data: %s", text);
    FUZZ_CHECK(json_is_boolean(json_object_get(j, "has_more")) && json_is_true(json_object_get(j, "has_more")) == more,
               "has_more: %s", text);
    FUZZ_CHECK(json_integer_value(json_object_get(j, "limit")) == pg->limit, "limit: %s", text);
    FUZZ_CHECK(pg->page > 0 ? json_integer_value(json_object_get(j, "page")) == pg->page : !json_object_get(j, "page"),
               "page: %s", text);
    FUZZ_CHECK(total >= 0 ? json_integer_value(json_object_get(j, "total")) == total : !json_object_get(j, "total"),
               "total: %s", text);
    const json_t *next = json_object_get(j, "next_cursor");
    if (more && pg->page == 0) {
        struct svc_cursor back;
        FUZZ_CHECK(json_is_string(next) && svc_cursor_decode(l, json_string_value(next), &back) &&
                       back.time_us == last.time_us && !strcmp(back.id, last.id),
                   "next_cursor: %s", text);
    } else {
        FUZZ_CHECK(json_is_null(next), "next_cursor: %s", text);
    }
    json_decref(j);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const struct svc_list *l = &lists[data[0] & 3];
    char *parts[5];
    fuzz_split(data + 1, size - 1, parts, 5);
    for (int i = 0; i < 4; i++)
        if (data[0] & (4 << i)) { free(parts[i]); parts[i] = NULL; }
    struct svc_page_params p = {parts[0], parts[1], parts[2], parts[3]};

    json_t *fields = json_object();
    struct svc_page pg;
    bool ok = svc_page_parse(l, &p, &pg, fields);

    /* the rules, written again */
    long long v = 0;
    bool limit_ok = !p.limit || digits_in(p.limit, 1, SVC_PAGE_LIMIT_MAX, &v);
    int want_limit = p.limit && limit_ok ? (int)v : SVC_PAGE_LIMIT_DEFAULT;
    bool page_ok = !p.page || (l->legacy_page && digits_in(p.page, 1, SVC_PAGE_MAX, &v));
    long want_page = p.page && page_ok ? (long)v : 0;
    struct svc_cursor c;
    bool cursor_ok = !p.cursor || (!p.page && svc_cursor_decode(l, p.cursor, &c));
    bool total_ok = !p.include_total || !strcmp(p.include_total, "true") || !strcmp(p.include_total, "false");
    FUZZ_CHECK(ok == (limit_ok && page_ok && cursor_ok && total_ok), "parse %d, rules say %d%d%d%d", ok, limit_ok,
               page_ok, cursor_ok, total_ok);
    FUZZ_CHECK(ok == (json_object_size(fields) == 0), "parse %d with %zu reasons", ok, json_object_size(fields));
    FUZZ_CHECK(!reason(fields, "limit") == limit_ok && !reason(fields, "page") == page_ok &&
                   !reason(fields, "cursor") == cursor_ok && !reason(fields, "include_total") == total_ok,
               "reasons do not match the bad parameters");
    FUZZ_CHECK(json_object_size(fields) == (size_t)(!limit_ok + !page_ok + !cursor_ok + !total_ok), "extra reasons");
    FUZZ_CHECK(pg.limit == want_limit && pg.page == want_page, "limit %d page %ld, expected %d %ld", pg.limit, pg.page,
               want_limit, want_page);
    FUZZ_CHECK(pg.after == (p.cursor && cursor_ok && !p.page), "after %d", pg.after);
    if (total_ok && !want_page)
        FUZZ_CHECK(pg.include_total == (p.include_total && !strcmp(p.include_total, "true")), "include_total %d",
                   pg.include_total);
    if (want_page) FUZZ_CHECK(pg.include_total, "page mode without the total");
    json_decref(fields);

    if (p.cursor) check_cursor_text(l, p.cursor);
    if (parts[4]) check_key(l, (const uint8_t *)parts[4], strlen(parts[4]));
    check_sql(&pg);
    check_render(l, &pg, (const uint8_t *)(parts[4] ? parts[4] : ""), parts[4] ? strlen(parts[4]) : 0);

    long out;
    if (p.limit) {
        fields = json_object();
        long min = (long)(size % 7), max = min + (long)(data[0] % 200);
        bool q = svc_query_long(fields, "n", p.limit, -1, min, max, &out);
        bool want = digits_in(p.limit, min, max, &v);
        FUZZ_CHECK(q == want && (!q || out == v) && (q == !reason(fields, "n")), "svc_query_long(\"%s\", %ld, %ld) = %d",
                   p.limit, min, max, q);
        json_decref(fields);
    }
    fuzz_free_parts(parts, 5);
    return 0;
}
