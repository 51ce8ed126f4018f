/* The legacy API's stream as sync-service reads it: the incremental JSON-array / NDJSON splitter
 * (sync-service/src/sync_split.c) fed in network-sized pieces, each element validated by
 * sync_record_parse and, when valid, encoded as a bulk-upsert TSV line
 * (sync-service/src/sync_record.c).
 *
 * Input: byte 0 picks the framing (bit 0: NDJSON) and how the body is cut (bits 1-2: random
 * pieces, one byte at a time, or pieces of byte 1's size); byte 1 also sets the element limit
 * (16..527 bytes); the rest is the body.
 * Properties:
 *  - the same elements (text, position, truncation) and the same outcome whether the body is fed
 *    at once or in pieces; positions count from 0 without gaps; a truncated element has exactly
 *    the limit's length, others no surrounding blanks and, for NDJSON, no newline;
 *  - a body that jansson reads as a JSON array splits, with the array framing, into exactly its
 *    items, each reading as the same JSON value (when within the limit);
 *  - an element refused by jansson as JSON (allowing \u0000, which the record rules refuse on
 *    their own) is "broken_json" for sync_record_parse (unless jansson only ran out of range
 *    for a number or met U+0000 in a key), one jansson reads is not (unless nested deeper than the record parser's
 *    limit), and a valid record is an object jansson reads with the same seven values;
 *  - the TSV line of a valid record is six fields and a LF, with only COPY escapes, decoding to
 *    those values. */
#include "fuzz.h"

#include <jansson.h>

#include "svc/buf.h"
#include "sync_record.h"
#include "sync_split.h"

struct elem {
    char *data;
    size_t len;
    uint64_t pos;
    bool truncated;
};

struct collect {
    struct elem *v;
    size_t n, cap;
};

static int on_elem(void *arg, const char *data, size_t len, uint64_t pos, bool truncated) {
    struct collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->v = realloc(c->v, c->cap * sizeof *c->v);
        if (!c->v) abort();
    }
    c->v[c->n++] = (struct elem){fuzz_strndup((const uint8_t *)data, len), len, pos, truncated};
    return 0;
}

static void collect_free(struct collect *c) {
    for (size_t i = 0; i < c->n; i++) free(c->v[i].data);
    free(c->v);
}

enum cut { CUT_WHOLE, CUT_RANDOM, CUT_BYTES, CUT_FIXED };

/* Feeds body in pieces; returns the first non-zero feed result, else split_finish's. */
static int run(enum split_format fmt, size_t max_elem, const char *body, size_t len, enum cut cut, size_t fixed,
               uint64_t seed, struct collect *out) {
    struct sync_split s;
    FUZZ_CHECK(split_init(&s, fmt, max_elem, on_elem, out) == SPLIT_OK, "split_init failed");
    int rc = 0;
    size_t i = 0;
    while (i < len && rc == 0) {
        size_t piece = len - i;
        if (cut == CUT_BYTES) piece = 1;
        else if (cut == CUT_FIXED) piece = fixed;
        else if (cut == CUT_RANDOM) piece = 1 + fuzz_rand(&seed) % (2 * max_elem + 2);
        if (piece > len - i) piece = len - i;
        rc = split_feed(&s, body + i, piece);
        i += piece;
    }
    if (rc == 0) rc = split_finish(&s);
    split_free(&s);
    return rc;
}

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Decodes one TSV field written by sync_record_append_tsv; false on anything else. */
static bool tsv_decode(const char *p, size_t n, char *out, size_t *outlen) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\t' || p[i] == '\n' || p[i] == '\r') return false;
        if (p[i] != '\\') { out[o++] = p[i]; continue; }
        if (++i == n) return false;
        char e = p[i];
        out[o++] = e == '\\' ? '\\' : e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : 0;
        if (!out[o - 1]) return false;
    }
    *outlen = o;
    return true;
}

static void check_tsv_field(const char *line, const char *p, size_t n, const json_t *want, const char *what) {
    char *dec = malloc(n + 1);
    size_t dn = 0;
    FUZZ_CHECK(dec && tsv_decode(p, n, dec, &dn), "TSV field %s of \"%s\" is not COPY text", what, line);
    FUZZ_CHECK(json_is_string(want) && json_string_length(want) == dn && memcmp(json_string_value(want), dec, dn) == 0,
               "TSV field %s of \"%s\" does not decode to the record's value", what, line);
    free(dec);
}

/* Deepest nesting of [] / {} outside strings. */
static size_t max_depth(const char *p, size_t n) {
    size_t depth = 0, maxd = 0;
    bool str = false;
    for (size_t i = 0; i < n; i++) {
        if (str) {
            if (p[i] == '\\') i++;
            else if (p[i] == '"') str = false;
        } else if (p[i] == '"') {
            str = true;
        } else if (p[i] == '[' || p[i] == '{') {
            if (++depth > maxd) maxd = depth;
        } else if ((p[i] == ']' || p[i] == '}') && depth > 0) {
            depth--;
        }
    }
    return maxd;
}

static void check_record(const struct elem *e) {
    struct sync_record rec;
    const char *why = sync_record_parse(e->data, e->len, &rec);
    json_error_t jerr;
    json_t *j = json_loadb(e->data, e->len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) {
        /* jansson gives up on numbers out of its range and on U+0000 in keys (valid JSON,
         * which the record parser reads, then refuses by its own rules) */
        bool jansson_limit = strstr(jerr.text, "too big") || strstr(jerr.text, "overflow") ||
                             strstr(jerr.text, "NUL byte in object key");
        FUZZ_CHECK(jansson_limit || (why && !strcmp(why, "broken_json")),
                   "element \"%.300s\" is not JSON (%s) but the record parser says %s", e->data, jerr.text,
                   why ? why : "valid");
        return;
    }
    if (why) {
        /* jansson reads it: the record parser must not call it broken, except for nesting deeper
         * than its own limit, or a NUL byte after a number (jansson 2.14 reads "0\0" as 0) */
        FUZZ_CHECK(strcmp(why, "broken_json") != 0 || max_depth(e->data, e->len) >= 32 || memchr(e->data, 0, e->len),
                   "valid JSON \"%.300s\" called broken_json", e->data);
        json_decref(j);
        return;
    }
    FUZZ_CHECK(json_is_object(j) && json_object_size(j) == 7, "valid record \"%.300s\" is not a 7-field object",
               e->data);
    const json_t *id = json_object_get(j, "id"), *del = json_object_get(j, "deleted");
    FUZZ_CHECK(json_is_integer(id) && json_integer_value(id) == rec.id && rec.id >= 1, "record id differs in \"%.300s\"",
               e->data);
    FUZZ_CHECK(json_is_boolean(del) && json_is_true(del) == rec.deleted, "record deleted differs in \"%.300s\"",
               e->data);

    struct svc_buf b;
    svc_buf_init(&b);
    sync_record_append_tsv(&b, &rec);
    FUZZ_CHECK(!b.oom && b.len > 0 && b.data[b.len - 1] == '\n', "TSV line of \"%.300s\" not LF-terminated", e->data);
    FUZZ_CHECK(strlen(b.data) == b.len, "TSV line of \"%.300s\" holds a NUL byte", e->data);
    const char *f[6];
    size_t fl[6];
    int nf = 0;
    const char *p = b.data, *end = b.data + b.len - 1;
    for (;;) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        FUZZ_CHECK(nf < 6, "TSV line \"%s\" has more than six fields", b.data);
        f[nf] = p;
        fl[nf] = (size_t)((tab ? tab : end) - p);
        nf++;
        if (!tab) break;
        p = tab + 1;
    }
    FUZZ_CHECK(nf == 6, "TSV line \"%s\" has %d fields", b.data, nf);
    check_tsv_field(b.data, f[0], fl[0], json_object_get(j, "userName"), "user_name");
    check_tsv_field(b.data, f[1], fl[1], json_object_get(j, "email"), "email");
    check_tsv_field(b.data, f[2], fl[2], json_object_get(j, "name"), "name");
    char idtxt[32];
    int k = snprintf(idtxt, sizeof idtxt, "%lld", (long long)rec.id);
    FUZZ_CHECK(fl[3] == (size_t)k && !memcmp(f[3], idtxt, (size_t)k), "TSV legacy_id of \"%s\"", b.data);
    FUZZ_CHECK(fl[4] == 1 && f[4][0] == (rec.deleted ? 't' : 'f'), "TSV deleted of \"%s\"", b.data);
    check_tsv_field(b.data, f[5], fl[5], json_object_get(j, "updatedAt"), "updated_at");
    svc_buf_free(&b);
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    enum split_format fmt = (data[0] & 1) ? SPLIT_NDJSON : SPLIT_JSON_ARRAY;
    enum cut cut = (enum cut)(1 + ((data[0] >> 1) & 3) % 3);
    size_t max_elem = 16 + (size_t)data[1] * 2;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    struct collect whole = {0}, pieces = {0};
    int rc_whole = run(fmt, max_elem, body, len, CUT_WHOLE, 0, 0, &whole);
    int rc_pieces = run(fmt, max_elem, body, len, cut, 1 + data[1] % 64, fuzz_seed(data, size), &pieces);

    FUZZ_CHECK(rc_whole == rc_pieces, "outcome %d at once, %d in pieces (cut %d)", rc_whole, rc_pieces, cut);
    FUZZ_CHECK(whole.n == pieces.n, "%zu elements at once, %zu in pieces (cut %d)", whole.n, pieces.n, cut);
    FUZZ_CHECK(rc_whole == SPLIT_OK || rc_whole == SPLIT_ERR_FRAMING || rc_whole == SPLIT_ERR_TRUNCATED,
               "unexpected outcome %d", rc_whole);
    FUZZ_CHECK(fmt == SPLIT_JSON_ARRAY || rc_whole == SPLIT_OK, "NDJSON failed with %d", rc_whole);
    for (size_t i = 0; i < whole.n; i++) {
        const struct elem *a = &whole.v[i], *b = &pieces.v[i];
        FUZZ_CHECK(a->pos == i && b->pos == i, "element %zu has positions %llu / %llu", i,
                   (unsigned long long)a->pos, (unsigned long long)b->pos);
        FUZZ_CHECK(a->truncated == b->truncated && a->len == b->len && !memcmp(a->data, b->data, a->len),
                   "element %zu differs: \"%.200s\" (%zu%s) at once, \"%.200s\" (%zu%s) in pieces", i, a->data,
                   a->len, a->truncated ? ", truncated" : "", b->data, b->len, b->truncated ? ", truncated" : "");
        if (a->truncated) {
            FUZZ_CHECK(a->len == max_elem, "truncated element %zu has %zu bytes, limit %zu", i, a->len, max_elem);
            continue;
        }
        FUZZ_CHECK(a->len <= max_elem, "element %zu has %zu bytes, limit %zu", i, a->len, max_elem);
        FUZZ_CHECK(a->len == 0 || (!is_blank(a->data[0]) && !is_blank(a->data[a->len - 1])),
                   "element %zu \"%.200s\" is not trimmed", i, a->data);
        FUZZ_CHECK(fmt == SPLIT_JSON_ARRAY || !memchr(a->data, '\n', a->len), "NDJSON element %zu spans lines", i);
        check_record(a);
    }

    if (fmt == SPLIT_JSON_ARRAY && !memchr(body, 0, len)) {
        json_t *arr = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (json_is_array(arr)) {
            FUZZ_CHECK(rc_whole == SPLIT_OK, "a JSON array failed to split: %d", rc_whole);
            FUZZ_CHECK(whole.n == json_array_size(arr), "a JSON array of %zu items split into %zu elements",
                       json_array_size(arr), whole.n);
            for (size_t i = 0; i < whole.n; i++) {
                if (whole.v[i].truncated) continue;
                json_t *item = json_loadb(whole.v[i].data, whole.v[i].len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
                FUZZ_CHECK(item && json_equal(item, json_array_get(arr, i)), "item %zu \"%.200s\" differs from the array's",
                           i, whole.v[i].data);
                json_decref(item);
            }
        }
        json_decref(arr);
    }
    collect_free(&whole);
    collect_free(&pieces);
    return 0;
}
