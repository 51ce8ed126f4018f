/* Reader of the text/tab-separated-values bulk-upsert body (the format is in bulk_upsert.h).
 *
 * One pass over a private copy of the body: lines and fields are cut in place and each field's
 * escapes are decoded in place (decoding never lengthens a field, so the terminator always fits
 * where the separator was). UTF-8 is checked while decoding, so a row that passes holds only
 * text PostgreSQL accepts. The rules themselves are the JSON path's (bulk_check_strings and
 * bulk_parse_timestamp): only the reading differs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/utf8.h"

#include "bulk_upsert.h"

enum { F_USER_NAME, F_EMAIL, F_NAME, F_LEGACY_ID, F_DELETED, F_UPDATED_AT, N_FIELDS };

struct field {
    char *s;    /* decoded, NUL-terminated; NULL for \N */
    bool ok;    /* only known escapes, valid UTF-8, no NUL byte */
};

/* Decodes the field [p, end) in place. */
static struct field decode(char *p, char *end) {
    struct field f = {p, true};
    if (end - p == 2 && p[0] == '\\' && p[1] == 'N') {
        f.s = NULL;
        return f;
    }
    char *w = p;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '\\') {
            char e = p + 1 < end ? p[1] : '\0';
            if (e == '\\') *w++ = '\\';
            else if (e == 't') *w++ = '\t';
            else if (e == 'n') *w++ = '\n';
            else if (e == 'r') *w++ = '\r';
            else { f.ok = false; break; }
            p += 2;
        } else if (c >= 0x80) {
            size_t k = svc_utf8_seq((const unsigned char *)p, (const unsigned char *)end);
            if (k == 0) { f.ok = false; break; }
            memmove(w, p, k);
            w += k;
            p += k;
        } else if (c == 0) {
            f.ok = false;
            break;
        } else {
            *w++ = (char)c;
            p++;
        }
    }
    *w = '\0';
    return f;
}

/* A readable, non-null field's text, or NULL. */
static const char *text_of(const struct field *f) { return f->ok ? f->s : NULL; }

/* legacy_id: 1-19 decimal digits, at most INT64_MAX. */
static bool read_legacy_id(const struct field *f, long long *out) {
    const char *s = text_of(f);
    if (!s || !*s) return false;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (9223372036854775807ULL - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = (long long)v;
    return true;
}

/* Validates one line [p, eol) into *out. Returns NULL or the reason. */
static const char *read_line(char *p, char *eol, struct bulk_row *out) {
    memset(out, 0, sizeof *out);
    char *start[N_FIELDS], *stop[N_FIELDS];
    int nf = 0;
    for (;;) {
        char *tab = memchr(p, '\t', (size_t)(eol - p));
        if (nf == N_FIELDS) return "malformed_line";
        start[nf] = p;
        stop[nf] = tab ? tab : eol;
        nf++;
        if (!tab) break;
        p = tab + 1;
    }
    if (nf != N_FIELDS) return "malformed_line";
    struct field f[N_FIELDS];
    for (int i = 0; i < N_FIELDS; i++) f[i] = decode(start[i], stop[i]);

    /* An unreadable email is passed as "", which the email rule refuses (after the user_name
     * rule, so the reasons come in the same order as for JSON). */
    const char *em = f[F_EMAIL].ok ? f[F_EMAIL].s : "";
    const char *reason = bulk_check_strings(text_of(&f[F_USER_NAME]), em, text_of(&f[F_NAME]), out);
    if (reason) return reason;
    if (!read_legacy_id(&f[F_LEGACY_ID], &out->legacy_id)) return "invalid_legacy_id";
    const char *del = text_of(&f[F_DELETED]);
    if (!del || (strcmp(del, "t") != 0 && strcmp(del, "f") != 0)) return "invalid_deleted";
    out->deleted = del[0] == 't';
    if (bulk_parse_timestamp(text_of(&f[F_UPDATED_AT]), &out->updated_us) != 0) return "invalid_updated_at";
    return NULL;
}

svc_status bulk_plan_build_tsv(const char *body, size_t len, long max_rows, struct bulk_plan *plan,
                               json_t **fields_out) {
    memset(plan, 0, sizeof *plan);
    *fields_out = NULL;
    if (max_rows <= 0) max_rows = BULK_DEFAULT_MAX_ROWS;
    size_t n = 0;
    for (const char *p = body, *end = body + len; p < end; n++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
        if (n >= (size_t)max_rows) {
            char msg[64];
            snprintf(msg, sizeof msg, "at most %ld records per request", max_rows);
            *fields_out = json_pack("{s:s}", "body", msg);
            return *fields_out ? SVC_INVALID : SVC_INTERNAL;
        }
    }
    plan->n_total = n;
    if (n == 0) return SVC_OK;
    plan->text = malloc(len + 1);
    plan->rows = malloc(n * sizeof *plan->rows);
    plan->winners = malloc(n * sizeof *plan->winners);
    if (!plan->text || !plan->rows || !plan->winners) goto oom;
    memcpy(plan->text, body, len);
    plan->text[len] = '\0';

    char *p = plan->text, *end = plan->text + len;
    for (size_t i = 0; i < n; i++) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        struct bulk_row *r = &plan->rows[plan->n_valid];
        const char *reason = read_line(p, eol, r);
        p = eol < end ? eol + 1 : end;
        if (!bulk_plan_note(plan, n, (int)i, reason)) goto oom;
    }
    bulk_plan_pick_winners(plan);
    return SVC_OK;
oom:
    bulk_plan_free(plan);
    return SVC_INTERNAL;
}
