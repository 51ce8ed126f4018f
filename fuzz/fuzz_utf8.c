/* UTF-8 and free-text rules (shared/src/utf8.c): what the TSV bulk reader, the legacy record
 * reader and every free-text field (descriptions, names) decide about raw bytes.
 *
 * Input: byte 0 holds the flags for svc_text_check (SVC_TEXT_TAB, SVC_TEXT_NEWLINE); the rest is
 * the text.
 * Properties: svc_utf8_count accepts exactly what a decoder written here and jansson's own
 * UTF-8 check accept, and counts the same code points; svc_utf8_seq never reads past the end and
 * returns 0..4; svc_text_check says NOT_UTF8 exactly for ill-formed text and CONTROL exactly when a
 * code point of category Cc (U+0000-U+001F, U+007F-U+009F) other than an allowed tab or newline
 * is present, with the character count; every verdict but OK has a reason. */
#include "fuzz.h"

#include <jansson.h>

#include "svc/utf8.h"

/* Decodes the code points of well-formed text (checked with fuzz_utf8_ok first). */
static size_t code_points(const unsigned char *p, size_t n, uint32_t *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; k++) {
        unsigned c = p[i];
        size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
        for (size_t j = 1; j < len; j++) cp = cp << 6 | (p[i + j] & 0x3F);
        out[k] = cp;
        i += len;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    unsigned allow = data[0] & (SVC_TEXT_TAB | SVC_TEXT_NEWLINE);
    /* a copy of exactly the text's size, so ASan sees any read past its end */
    size_t n = size - 1;
    char *s = malloc(n ? n : 1);
    if (n) memcpy(s, data + 1, n);

    bool ok = fuzz_utf8_ok(s, n);
    json_t *j = json_stringn(s, n);
    FUZZ_CHECK(ok == (j != NULL), "the harness's decoder says %d, jansson %d", ok, j != NULL);
    json_decref(j);

    long count = svc_utf8_count(s, n);
    uint32_t *cps = malloc((n ? n : 1) * sizeof *cps);
    size_t want = ok ? code_points((const unsigned char *)s, n, cps) : 0;
    FUZZ_CHECK(ok ? count == (long)want : count == -1, "svc_utf8_count = %ld, expected %ld", count, ok ? (long)want : -1L);

    for (size_t i = 0; i < n; i++) {
        size_t k = svc_utf8_seq((const unsigned char *)s + i, (const unsigned char *)s + n);
        FUZZ_CHECK(k <= 4 && k <= n - i, "svc_utf8_seq = %zu at %zu of %zu", k, i, n);
        if (k) FUZZ_CHECK(fuzz_utf8_ok(s + i, k), "svc_utf8_seq accepted an ill-formed sequence at %zu", i);
    }

    size_t chars = (size_t)-1;
    enum svc_text_verdict v = svc_text_check(s, n, allow, &chars);
    bool control = false;
    for (size_t i = 0; ok && i < want; i++) {
        uint32_t c = cps[i];
        bool allowed = (c == '\t' && (allow & SVC_TEXT_TAB)) || (c == '\n' && (allow & SVC_TEXT_NEWLINE));
        if ((c < 0x20 || (c >= 0x7F && c <= 0x9F)) && !allowed) control = true;
    }
    enum svc_text_verdict expect = !ok ? SVC_TEXT_NOT_UTF8 : control ? SVC_TEXT_CONTROL : SVC_TEXT_OK;
    FUZZ_CHECK(v == expect, "svc_text_check = %d, expected %d (allow %u)", (int)v, (int)expect, allow);
    if (ok) FUZZ_CHECK(chars == want, "svc_text_check counted %zu characters, expected %zu", chars, want);
    FUZZ_CHECK((v == SVC_TEXT_OK) == (svc_text_reason(v) == NULL), "reason of verdict %d", (int)v);
    FUZZ_CHECK(svc_text_check(s, n, allow, NULL) == v, "svc_text_check without a count differs");

    free(cps);
    free(s);
    return 0;
}
