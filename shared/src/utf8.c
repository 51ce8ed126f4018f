/* UTF-8 decoding rules and the free-text check; see utf8.h. Byte-wise on purpose: a table or
 * SIMD decoder would be faster, but these strings are at most a few hundred bytes, and the bulk
 * readers only call svc_utf8_seq for the rare non-ASCII byte. */
#include "svc/utf8.h"

size_t svc_utf8_seq(const unsigned char *p, const unsigned char *end) {
    size_t avail = (size_t)(end - p);
    unsigned c = p[0];
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (avail < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0;     /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0;    /* UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (avail < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;     /* overlong */
        if (c == 0xF4 && p[1] >= 0x90) return 0;    /* past U+10FFFF */
        return 4;
    }
    return 0;   /* a continuation byte, the overlong leads C0/C1, or F5..FF */
}

long svc_utf8_count(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    long n = 0;
    while (p < end) {
        size_t k = svc_utf8_seq(p, end);
        if (k == 0) return -1;
        p += k;
        n++;
    }
    return n;
}

enum svc_text_verdict svc_text_check(const char *s, size_t len, unsigned allow, size_t *chars) {
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    size_t n = 0;
    bool control = false;
    while (p < end) {
        size_t k = svc_utf8_seq(p, end);
        if (k == 0) return SVC_TEXT_NOT_UTF8;
        unsigned c = p[0];
        if (k == 1) {
            if (c == 0x7F || (c < 0x20 && !((c == '\t' && (allow & SVC_TEXT_TAB)) ||
                                            (c == '\n' && (allow & SVC_TEXT_NEWLINE)))))
                control = true;
        } else if (c == 0xC2 && p[1] <= 0x9F) {
            control = true;                         /* C1: U+0080..U+009F */
        }
        p += k;
        n++;
    }
    if (chars) *chars = n;
    return control ? SVC_TEXT_CONTROL : SVC_TEXT_OK;
}

const char *svc_text_reason(enum svc_text_verdict v) {
    switch (v) {
    case SVC_TEXT_OK: return NULL;
    case SVC_TEXT_NOT_UTF8: return "must be valid UTF-8 text";
    case SVC_TEXT_CONTROL: return "must not contain control characters";
    }
    return "invalid text";
}
