/* The text/tab-separated-values body of POST /internal/users/bulk-upsert
 * (customers-service/src/bulk_tsv.c), then what the upsert sends to PostgreSQL (the COPY lines of
 * bulk_repo_encode_rows).
 *
 * Input: the body (at most MAX_ROWS lines are read; more must be refused as a whole).
 * Properties:
 *  - more than MAX_ROWS lines → SVC_INVALID with a "body" reason; else SVC_OK with one verdict per
 *    line (lines counted here): valid + invalid = lines, invalid indices ascending and each with
 *    a known reason, valid rows in line order;
 *  - a valid row is what the JSON form accepts too: the same fields as a JSON record pass
 *    bulk_check_row with the same key, legacy id, deleted flag and timestamp; the key is the
 *    lower-cased user name; written back as a TSV line (COPY escapes) it reads as the same row;
 *  - winners: one per key, keys strictly ascending, each the newest row of its key (the later
 *    one on a tie);
 *  - the COPY text of the winners has seven fields per line that decode to the row's values,
 *    and its timestamp reads back as the same instant. */
#include "fuzz.h"

#include <jansson.h>

#include "bulk_repo.h"
#include "bulk_upsert.h"
#include "svc/buf.h"
#include "svc/copy_text.h"

#define MAX_ROWS 40

static const char *const reasons[] = {"malformed_line", "invalid_user_name", "invalid_email", "invalid_name",
                                      "invalid_legacy_id", "invalid_deleted", "invalid_updated_at"};

static size_t count_lines(const char *p, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '\n') n++;
    return n + (len > 0 && p[len - 1] != '\n');
}

/* The raw text of field f of line `index` (no decoding; valid rows only need updated_at). */
static char *raw_field(const char *body, size_t len, int index, int f) {
    const char *p = body, *end = body + len;
    for (int i = 0; i < index; i++) p = (const char *)memchr(p, '\n', (size_t)(end - p)) + 1;
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    if (!eol) eol = end;
    for (int i = 0; i < f; i++) p = (const char *)memchr(p, '\t', (size_t)(eol - p)) + 1;
    const char *tab = memchr(p, '\t', (size_t)(eol - p));
    return fuzz_strndup((const uint8_t *)p, (size_t)((tab ? tab : eol) - p));
}

static bool same_row(const struct bulk_row *a, const struct bulk_row *b) {
    return !strcmp(a->user_name, b->user_name) && !strcmp(a->key, b->key) &&
           ((!a->email && !b->email) || (a->email && b->email && !strcmp(a->email, b->email))) &&
           !strcmp(a->name, b->name) && a->legacy_id == b->legacy_id && a->deleted == b->deleted &&
           a->updated_us == b->updated_us;
}

static void check_json_agrees(const struct bulk_row *r, const char *updated_at) {
    json_t *o = json_pack("{s:s,s:o,s:s,s:I,s:b,s:s}", "user_name", r->user_name, "email",
                          r->email ? json_string(r->email) : json_null(), "name", r->name, "legacy_id",
                          (json_int_t)r->legacy_id, "deleted", r->deleted, "updated_at", updated_at);
    FUZZ_CHECK(o, "row %d's text is not valid UTF-8 for JSON", r->index);
    struct bulk_row j;
    const char *why = bulk_check_row(o, &j);
    FUZZ_CHECK(!why, "row %d valid as TSV, refused as JSON: %s", r->index, why);
    FUZZ_CHECK(!strcmp(j.key, r->key) && j.legacy_id == r->legacy_id && j.deleted == r->deleted &&
                   j.updated_us == r->updated_us,
               "row %d reads differently as JSON", r->index);
    json_decref(o);
}

static void check_tsv_round_trip(const struct bulk_row *r) {
    struct svc_buf b;
    svc_buf_init(&b);
    svc_copy_text_append(&b, r->user_name);
    svc_buf_append(&b, "\t", 1);
    svc_copy_text_append(&b, r->email);
    svc_buf_append(&b, "\t", 1);
    svc_copy_text_append(&b, r->name);
    char ts[32];
    bulk_repo_format_timestamp(r->updated_us, ts);
    ts[10] = 'T';
    svc_buf_printf(&b, "\t%lld\t%c\t%s:00\n", r->legacy_id, r->deleted ? 't' : 'f', ts);
    FUZZ_CHECK(!b.oom, "out of memory");
    struct bulk_plan p;
    json_t *fields = NULL;
    FUZZ_CHECK(bulk_plan_build_tsv(b.data, b.len, 1, &p, &fields) == SVC_OK && p.n_valid == 1,
               "row %d written back as \"%s\" is not valid (%s)", r->index, b.data,
               p.n_invalid ? p.invalid[0].reason : "?");
    struct bulk_row again = p.rows[0];
    again.index = r->index;
    FUZZ_CHECK(same_row(&again, r), "row %d written back as \"%s\" reads differently", r->index, b.data);
    bulk_plan_free(&p);
    svc_buf_free(&b);
}

/* Decodes COPY text field [p, q) into out; false when it holds an unknown escape or a control
 * byte that COPY would take as a delimiter. */
static bool copy_decode(const char *p, const char *q, char *out) {
    size_t o = 0;
    for (; p < q; p++) {
        if (*p == '\t' || *p == '\n' || *p == '\r') return false;
        if (*p != '\\') { out[o++] = *p; continue; }
        if (++p == q) return false;
        out[o++] = *p == '\\' ? '\\' : *p == 't' ? '\t' : *p == 'n' ? '\n' : *p == 'r' ? '\r' : 0;
        if (!out[o - 1]) return false;
    }
    out[o] = '\0';
    return true;
}

static void check_copy(const struct bulk_plan *plan) {
    if (plan->n_winners == 0) return;
    struct svc_buf b;
    svc_buf_init(&b);
    bulk_repo_encode_rows(&b, plan->winners, plan->n_winners);
    FUZZ_CHECK(!b.oom, "out of memory");
    const char *p = b.data, *end = b.data + b.len;
    char *dec = malloc(b.len + 1);
    for (size_t i = 0; i < plan->n_winners; i++) {
        const struct bulk_row *r = plan->winners[i];
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        FUZZ_CHECK(eol, "COPY text has %zu lines for %zu rows", i, plan->n_winners);
        const char *f[7], *fe[7];
        int nf = 0;
        for (const char *q = p;; nf++) {
            FUZZ_CHECK(nf < 7, "COPY line for row %d has more than 7 fields", r->index);
            const char *tab = memchr(q, '\t', (size_t)(eol - q));
            f[nf] = q;
            fe[nf] = tab ? tab : eol;
            if (!tab) { nf++; break; }
            q = tab + 1;
        }
        FUZZ_CHECK(nf == 7, "COPY line for row %d has %d fields", r->index, nf);
        char num[64];
        snprintf(num, sizeof num, "%d", r->index);
        FUZZ_CHECK(copy_decode(f[0], fe[0], dec) && !strcmp(dec, num), "COPY index of row %d", r->index);
        FUZZ_CHECK(copy_decode(f[1], fe[1], dec) && !strcmp(dec, r->user_name), "COPY user_name of row %d", r->index);
        if (r->email) FUZZ_CHECK(copy_decode(f[2], fe[2], dec) && !strcmp(dec, r->email), "COPY email of row %d", r->index);
        else FUZZ_CHECK(fe[2] - f[2] == 2 && !memcmp(f[2], "\\N", 2), "COPY null email of row %d", r->index);
        FUZZ_CHECK(copy_decode(f[3], fe[3], dec) && !strcmp(dec, r->name), "COPY name of row %d", r->index);
        snprintf(num, sizeof num, "%lld", r->legacy_id);
        FUZZ_CHECK(copy_decode(f[4], fe[4], dec) && !strcmp(dec, num), "COPY legacy_id of row %d", r->index);
        FUZZ_CHECK(fe[5] - f[5] == 1 && f[5][0] == (r->deleted ? 't' : 'f'), "COPY deleted of row %d", r->index);
        FUZZ_CHECK(copy_decode(f[6], fe[6], dec) && strlen(dec) == 29, "COPY timestamp \"%s\" of row %d", dec, r->index);
        dec[10] = 'T';
        strcat(dec, ":00");
        int64_t us = 0;
        FUZZ_CHECK(bulk_parse_timestamp(dec, &us) == 0 && us == r->updated_us,
                   "COPY timestamp \"%s\" of row %d reads as %lld, not %lld", dec, r->index, (long long)us,
                   (long long)r->updated_us);
        p = eol + 1;
    }
    FUZZ_CHECK(p == end, "COPY text has more lines than rows");
    free(dec);
    svc_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *body = (const char *)data;
    struct bulk_plan plan;
    json_t *fields = NULL;
    svc_status st = bulk_plan_build_tsv(body, size, MAX_ROWS, &plan, &fields);
    size_t lines = count_lines(body, size);
    if (lines > MAX_ROWS) {
        FUZZ_CHECK(st == SVC_INVALID && json_is_string(json_object_get(fields, "body")),
                   "%zu lines (limit %d) gave status %d", lines, MAX_ROWS, (int)st);
        json_decref(fields);
        bulk_plan_free(&plan);
        return 0;
    }
    FUZZ_CHECK(st == SVC_OK && !fields, "%zu lines gave status %d", lines, (int)st);
    FUZZ_CHECK(plan.n_total == lines && plan.n_valid + plan.n_invalid == lines,
               "%zu lines: total %zu, valid %zu, invalid %zu", lines, plan.n_total, plan.n_valid, plan.n_invalid);
    for (size_t i = 0; i < plan.n_invalid; i++) {
        bool known = false;
        for (size_t k = 0; k < sizeof reasons / sizeof reasons[0]; k++) known |= plan.invalid[i].reason == reasons[k] ||
                                                                             !strcmp(plan.invalid[i].reason, reasons[k]);
        FUZZ_CHECK(known, "unknown reason \"%s\"", plan.invalid[i].reason);
        FUZZ_CHECK(plan.invalid[i].index >= 0 && (size_t)plan.invalid[i].index < lines &&
                       (i == 0 || plan.invalid[i].index > plan.invalid[i - 1].index),
                   "invalid index %d out of order", plan.invalid[i].index);
    }
    for (size_t i = 0; i < plan.n_valid; i++) {
        const struct bulk_row *r = &plan.rows[i];
        FUZZ_CHECK(i == 0 || r->index > plan.rows[i - 1].index, "valid rows out of order");
        FUZZ_CHECK(r->user_name && r->name && strlen(r->key) == strlen(r->user_name), "row %d incomplete", r->index);
        for (size_t k = 0; r->key[k]; k++) {
            char c = r->user_name[k];
            FUZZ_CHECK(r->key[k] == (c >= 'A' && c <= 'Z' ? c + 32 : c), "row %d key \"%s\" for \"%s\"", r->index,
                       r->key, r->user_name);
        }
        FUZZ_CHECK(r->legacy_id >= 0, "row %d legacy_id %lld", r->index, r->legacy_id);
        char *ts = raw_field(body, size, r->index, 5);
        check_json_agrees(r, ts);
        free(ts);
        check_tsv_round_trip(r);
    }
    FUZZ_CHECK(plan.n_winners <= plan.n_valid, "more winners than rows");
    for (size_t w = 0; w < plan.n_winners; w++) {
        const struct bulk_row *win = plan.winners[w];
        FUZZ_CHECK(w == 0 || strcmp(plan.winners[w - 1]->key, win->key) < 0, "winners not strictly ordered by key");
        for (size_t i = 0; i < plan.n_valid; i++) {
            const struct bulk_row *r = &plan.rows[i];
            if (strcmp(r->key, win->key)) continue;
            FUZZ_CHECK(r->updated_us < win->updated_us || (r->updated_us == win->updated_us && r->index <= win->index),
                       "row %d is newer than winner %d of key \"%s\"", r->index, win->index, win->key);
        }
    }
    size_t keys = 0;
    for (size_t i = 0; i < plan.n_valid; i++) {
        bool first = true;
        for (size_t k = 0; k < i && first; k++) first = strcmp(plan.rows[k].key, plan.rows[i].key) != 0;
        keys += first;
    }
    FUZZ_CHECK(keys == plan.n_winners, "%zu keys, %zu winners", keys, plan.n_winners);
    check_copy(&plan);
    bulk_plan_free(&plan);
    return 0;
}
