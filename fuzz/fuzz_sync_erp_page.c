/* One page of an ERP answer (sync-service/src/erp_page.c): untrusted bytes from a tenant's ERP,
 * read by a JSON reader of our own straight into COPY text rows.
 *
 * Input: byte 0 chooses the kind (bit 0: customers / products) and whether the batch already
 * holds a row from an earlier page (bit 1); the rest is the page body (any bytes, NULs included).
 * Properties, against jansson (JSON_ALLOW_NUL) and checks written here independently:
 *  - a refused page leaves the batch exactly as it was (no row past the error) and names a reason;
 *    an accepted page appends exactly one COPY line per valid record after the earlier rows;
 *  - a body holding a raw NUL byte is refused (jansson 2.14 lets one pass after a number);
 *  - a body jansson refuses as JSON is refused (except what jansson refuses beyond the grammar:
 *    integers or reals past its range, NUL bytes in keys, nesting past its stack), and an accepted
 *    body is JSON jansson reads;
 *  - for a body jansson reads without duplicate keys and nested at most 32 deep: the page is
 *    accepted exactly when it is an object with "data" an array of objects, "has_more" a boolean
 *    and "page"/"per_page" integers when present; then the record count is the array's length,
 *    each record is valid exactly by the contract of erp_page.h (checked here: lengths in bytes,
 *    control characters are Unicode Cc, no NUL in any text, RFC 3339 parsed here), and the i-th
 *    row splits into the kind's columns which unescape back to the tenant and the record's values
 *    (NULL for null or absent); max_updated_us is the newest updated_at (µs, at least 0). */
#include "fuzz.h"

#include <jansson.h>

#include "erp_page.h"

#define TENANT "11111111-2222-3333-4444-555555555555"
#define DEPTH_LIMIT 32

static int depth_of(json_t *v) {
    int d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            int dx = depth_of(x);
            if (dx > d) d = dx;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            int dx = depth_of(x);
            if (dx > d) d = dx;
        }
        return d + 1;
    }
    return 0;
}

/* ---- RFC 3339, independently: days from the civil date (proleptic Gregorian) ---- */

static int64_t days_from_civil(int64_t y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool dig(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

static int val(const char *s, size_t n) {
    int v = 0;
    for (size_t i = 0; i < n; i++) v = v * 10 + s[i] - '0';
    return v;
}

/* YYYY-MM-DD(T|t)hh:mm:ss[.1-9 digits](Z|z|±hh:mm); year 0001-9999, no leap second. */
static bool rfc3339(const char *s, size_t n, int64_t *us) {
    if (n < 20 || !dig(s, 4) || s[4] != '-' || !dig(s + 5, 2) || s[7] != '-' || !dig(s + 8, 2)) return false;
    if (s[10] != 'T' && s[10] != 't') return false;
    if (!dig(s + 11, 2) || s[13] != ':' || !dig(s + 14, 2) || s[16] != ':' || !dig(s + 17, 2)) return false;
    int y = val(s, 4), mo = val(s + 5, 2), d = val(s + 8, 2), h = val(s + 11, 2), mi = val(s + 14, 2),
        se = val(s + 17, 2);
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || se > 59) return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return false;
    size_t i = 19;
    int64_t frac = 0;
    if (s[i] == '.') {
        size_t k = 0;
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (k < 6) frac = frac * 10 + (s[i] - '0');
            k++;
            i++;
        }
        if (k == 0 || k > 9) return false;
        for (; k < 6; k++) frac *= 10;
    }
    int64_t off = 0;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z')) {
        off = 0;
    } else if (i + 6 == n && (s[i] == '+' || s[i] == '-') && dig(s + i + 1, 2) && s[i + 3] == ':' && dig(s + i + 4, 2)) {
        int oh = val(s + i + 1, 2), om = val(s + i + 4, 2);
        if (oh > 23 || om > 59) return false;
        off = (int64_t)(oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
    } else {
        return false;
    }
    *us = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se) - off) * 1000000 + frac;
    return true;
}

/* ---- the contract of a record ---- */

/* Whether s[0..n) (valid UTF-8) holds a Unicode control character (Cc: U+0000-001F, U+007F,
 * U+0080-009F). */
static bool has_cc(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) return true;
        if (p[i] == 0xc2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9f) return true;
    }
    return false;
}

enum tx { T_REQ, T_OPT };

/* A text field: a string within max bytes without NUL (and without Cc when no_cc); null or
 * absent when optional. */
static bool text_field(json_t *rec, const char *k, enum tx req, size_t max, bool no_cc) {
    json_t *v = json_object_get(rec, k);
    if (!v || json_is_null(v)) return req == T_OPT;
    if (!json_is_string(v)) return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n > max || memchr(s, 0, n)) return false;
    return !(no_cc && has_cc(s, n));
}

static bool price_field(json_t *rec) {
    json_t *v = json_object_get(rec, "price");
    if (!json_is_string(v)) return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v), i = 0, k;
    if (i < n && s[i] == '-') i++;
    for (k = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) k++;
    if (k < 1 || k > 12) return false;
    if (i < n && s[i] == '.') {
        i++;
        for (k = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) k++;
        if (k < 1 || k > 4) return false;
    }
    return i == n;
}

static bool record_valid(json_t *rec, enum erp_kind kind, int64_t *us) {
    if (!json_is_object(rec)) return false;
    json_t *id = json_object_get(rec, "id");
    if (!text_field(rec, "id", T_REQ, 128, true) || json_string_length(id) == 0) return false;
    json_t *up = json_object_get(rec, "updated_at");
    if (!json_is_string(up) || !rfc3339(json_string_value(up), json_string_length(up), us)) return false;
    if (memchr(json_string_value(up), 0, json_string_length(up))) return false;
    if (!json_is_boolean(json_object_get(rec, "deleted"))) return false;
    if (!text_field(rec, "name", T_REQ, 512, false)) return false;
    if (kind == ERP_CUSTOMERS)
        return text_field(rec, "email", T_OPT, 320, true) && text_field(rec, "document", T_OPT, 64, true);
    return text_field(rec, "sku", T_OPT, 128, true) && price_field(rec) &&
           json_is_integer(json_object_get(rec, "stock"));
}

/* ---- COPY text, read back independently ---- */

/* Unescapes one COPY text column s[0..n) into a new string (*len bytes), or NULL for \N. A
 * backslash sequence other than \\ \t \n \r (what the writer may emit) fails the property. */
static char *unescape(const char *s, size_t n, size_t *len, bool *is_null) {
    *is_null = n == 2 && s[0] == '\\' && s[1] == 'N';
    if (*is_null) return NULL;
    char *o = malloc(n + 1);
    if (!o) abort();
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            FUZZ_CHECK(s[i] != '\t' && s[i] != '\n' && s[i] != '\r', "raw separator inside a column");
            o[k++] = s[i];
            continue;
        }
        FUZZ_CHECK(i + 1 < n, "a column ends in a lone backslash");
        char e = s[++i];
        FUZZ_CHECK(e == '\\' || e == 't' || e == 'n' || e == 'r', "unexpected escape \\%c", e);
        o[k++] = e == '\\' ? '\\' : e == 't' ? '\t' : e == 'n' ? '\n' : '\r';
    }
    o[k] = '\0';
    *len = k;
    return o;
}

/* Column col of the line equals the string value v (NULL/absent/null: \N). */
static void check_col(const char *const *cols, const size_t *lens, int col, json_t *v, const char *what, long row) {
    size_t n;
    bool is_null;
    char *got = unescape(cols[col], lens[col], &n, &is_null);
    if (!v || json_is_null(v)) {
        FUZZ_CHECK(is_null, "row %ld: %s should be \\N", row, what);
    } else {
        FUZZ_CHECK(!is_null && n == json_string_length(v) && memcmp(got, json_string_value(v), n) == 0,
                   "row %ld: %s does not read back", row, what);
    }
    free(got);
}

static void check_row(const char *line, size_t len, json_t *rec, enum erp_kind kind, long row) {
    int ncols = kind == ERP_CUSTOMERS ? 7 : 8;
    const char *cols[8];
    size_t lens[8];
    int c = 0;
    const char *p = line, *end = line + len;
    while (c < 8) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        cols[c] = p;
        lens[c] = t ? (size_t)(t - p) : (size_t)(end - p);
        c++;
        if (!t) break;
        p = t + 1;
    }
    FUZZ_CHECK(c == ncols && cols[c - 1] + lens[c - 1] == end, "row %ld has %d columns, not %d", row, c, ncols);
    FUZZ_CHECK(lens[0] == strlen(TENANT) && !memcmp(cols[0], TENANT, lens[0]), "row %ld: tenant", row);
    check_col(cols, lens, 1, json_object_get(rec, "id"), "id", row);
    int ucol;
    if (kind == ERP_CUSTOMERS) {
        check_col(cols, lens, 2, json_object_get(rec, "name"), "name", row);
        check_col(cols, lens, 3, json_object_get(rec, "email"), "email", row);
        check_col(cols, lens, 4, json_object_get(rec, "document"), "document", row);
        ucol = 5;
    } else {
        check_col(cols, lens, 2, json_object_get(rec, "sku"), "sku", row);
        check_col(cols, lens, 3, json_object_get(rec, "name"), "name", row);
        check_col(cols, lens, 4, json_object_get(rec, "price"), "price", row);
        char want[32];
        int wn = snprintf(want, sizeof want, "%lld", (long long)json_integer_value(json_object_get(rec, "stock")));
        FUZZ_CHECK(lens[5] == (size_t)wn && !memcmp(cols[5], want, (size_t)wn), "row %ld: stock is not %s", row, want);
        ucol = 6;
    }
    check_col(cols, lens, ucol, json_object_get(rec, "updated_at"), "updated_at", row);
    bool del = json_is_true(json_object_get(rec, "deleted"));
    FUZZ_CHECK(lens[ucol + 1] == 1 && cols[ucol + 1][0] == (del ? 't' : 'f'), "row %ld: deleted", row);
}

/* Whether the page object is valid by the contract (its records aside). */
static bool page_valid(json_t *page) {
    if (!json_is_object(page)) return false;
    json_t *data = json_object_get(page, "data");
    if (!json_is_array(data) || !json_is_boolean(json_object_get(page, "has_more"))) return false;
    size_t i;
    json_t *x;
    json_array_foreach(data, i, x) if (!json_is_object(x)) return false;
    json_t *pg = json_object_get(page, "page"), *pp = json_object_get(page, "per_page");
    return (!pg || json_is_integer(pg)) && (!pp || json_is_integer(pp));
}

static bool beyond_grammar(const json_error_t *e) {
    enum json_error_code c = json_error_code(e);
    return c == json_error_numeric_overflow || c == json_error_null_byte_in_key || c == json_error_stack_overflow ||
           c == json_error_out_of_memory;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    enum erp_kind kind = data[0] & 1 ? ERP_PRODUCTS : ERP_CUSTOMERS;
    bool prefilled = data[0] & 2;
    char *body = fuzz_strndup(data + 1, size - 1);   /* a copy sized exactly: ASan sees overreads */
    size_t len = size - 1;
    char *exact = malloc(len ? len : 1);
    if (!exact) abort();
    if (len) memcpy(exact, body, len);
    free(body);

    struct erp_batch b;
    erp_batch_init(&b);
    static const char EARLIER[] = "earlier\trow\n";
    if (prefilled) {
        svc_buf_append(&b.rows, EARLIER, sizeof EARLIER - 1);
        b.records = 1;
        b.max_updated_us = 42;
    }
    struct erp_page_info info;
    const char *why = "unset";
    int rc = erp_page_parse(exact, len, kind, TENANT, &b, &info, &why);

    size_t pre = prefilled ? sizeof EARLIER - 1 : 0;
    FUZZ_CHECK(b.rows.len >= pre && (pre == 0 || !memcmp(b.rows.data, EARLIER, pre)), "earlier rows changed");
    if (rc != 0) {
        FUZZ_CHECK(rc == -1 && why && *why, "a refusal without a reason");
        FUZZ_CHECK(b.rows.len == pre && b.records == (prefilled ? 1 : 0) && b.max_updated_us == (prefilled ? 42 : 0),
                   "a refused page left rows in the batch (%zu bytes, %ld records)", b.rows.len, b.records);
    } else {
        FUZZ_CHECK(why == NULL, "accepted with a reason");
        FUZZ_CHECK(info.records >= 0 && info.invalid >= 0 && info.invalid <= info.records, "counts %ld/%ld",
                   info.records, info.invalid);
        FUZZ_CHECK(b.records - (prefilled ? 1 : 0) == info.records - info.invalid, "%ld rows for %ld valid records",
                   b.records - (prefilled ? 1 : 0), info.records - info.invalid);
        long lines = 0;
        for (size_t i = pre; i < b.rows.len; i++) lines += b.rows.data[i] == '\n';
        FUZZ_CHECK(lines == info.records - info.invalid, "%ld lines for %ld rows", lines, info.records - info.invalid);
        FUZZ_CHECK(b.rows.len == pre || b.rows.data[b.rows.len - 1] == '\n', "the rows do not end a line");
    }

    /* A raw NUL byte is never JSON (not whitespace, not allowed inside a string); jansson 2.14
     * swallows one right after a number ("1\0,"), so such bodies are judged here alone. */
    if (len && memchr(exact, 0, len)) {
        FUZZ_CHECK(rc != 0, "accepted a body holding a raw NUL byte");
        erp_batch_free(&b);
        free(exact);
        return 0;
    }
    json_error_t e;
    json_t *loose = json_loadb(exact, len, JSON_ALLOW_NUL, &e);
    if (!loose) FUZZ_CHECK(rc != 0 || beyond_grammar(&e), "accepted a body jansson refuses: %s", e.text);
    if (loose && !json_is_object(loose)) FUZZ_CHECK(rc != 0, "accepted a page that is not an object");
    json_decref(loose);

    json_t *page = json_loadb(exact, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &e);
    if (page && depth_of(page) <= DEPTH_LIMIT) {
        bool valid = page_valid(page);
        FUZZ_CHECK((rc == 0) == valid, "page %s but the reader %s it (%s)", valid ? "valid" : "invalid",
                   rc == 0 ? "accepted" : "refused", why ? why : "");
        if (valid) {
            json_t *arr = json_object_get(page, "data");
            FUZZ_CHECK(info.records == (long)json_array_size(arr), "%ld records for %zu objects", info.records,
                       json_array_size(arr));
            FUZZ_CHECK(info.has_more == json_is_true(json_object_get(page, "has_more")), "has_more");
            const char *rows = b.rows.data ? b.rows.data : "";
            const char *line = rows + pre, *end = rows + b.rows.len;
            long invalid = 0;
            int64_t newest = prefilled ? 42 : 0;
            size_t i;
            json_t *rec;
            json_array_foreach(arr, i, rec) {
                int64_t us = 0;
                if (!record_valid(rec, kind, &us)) {
                    invalid++;
                    continue;
                }
                FUZZ_CHECK(line < end, "record %zu is valid but has no row", i);
                const char *nl = memchr(line, '\n', (size_t)(end - line));
                FUZZ_CHECK(nl, "row %zu does not end", i);
                check_row(line, (size_t)(nl - line), rec, kind, (long)i);
                line = nl + 1;
                if (us > newest) newest = us;
            }
            FUZZ_CHECK(line == end, "rows left over");
            FUZZ_CHECK(invalid == info.invalid, "%ld invalid records, the reader counted %ld", invalid, info.invalid);
            FUZZ_CHECK(b.max_updated_us == newest, "max_updated_us %lld, expected %lld", (long long)b.max_updated_us,
                       (long long)newest);
        }
    }
    json_decref(page);
    erp_batch_free(&b);
    free(exact);
    return 0;
}
