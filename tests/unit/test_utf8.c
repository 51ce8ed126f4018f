/* Specification of shared/src/utf8.c: which bytes are well-formed UTF-8 (RFC 3629), how
 * characters are counted, and what free text refuses: every control character (C0, DEL and C1
 * U+0080-U+009F) except tab and newline where the field allows them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "svc/utf8.h"

static size_t seq(const char *s, size_t n) { return svc_utf8_seq((const unsigned char *)s, (const unsigned char *)s + n); }

static enum svc_text_verdict text(const char *s, unsigned allow, size_t *chars) {
    return svc_text_check(s, strlen(s), allow, chars);
}

/* The UTF-8 encoding of code point cp into out (no checks: test helper); returns its length. */
static size_t encode(unsigned cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | cp >> 6); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12); o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18); o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F)); o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static void test_utf8_seq_accepts_each_well_formed_length(void **state) {
    (void)state;
    assert_int_equal(seq("a", 1), 1);
    assert_int_equal(seq("\0", 1), 1);
    assert_int_equal(seq("\xc3\xa9", 2), 2);             /* é */
    assert_int_equal(seq("\xe2\x9c\x93", 3), 3);         /* ✓ */
    assert_int_equal(seq("\xf0\x9f\x98\x80", 4), 4);     /* 😀 */
    assert_int_equal(seq("\xf4\x8f\xbf\xbf", 4), 4);     /* U+10FFFF */
    assert_int_equal(seq("\xed\x9f\xbf", 3), 3);         /* U+D7FF, just below the surrogates */
}

static void test_utf8_seq_refuses_what_rfc_3629_forbids(void **state) {
    (void)state;
    assert_int_equal(seq("\x80", 1), 0);                 /* stray continuation */
    assert_int_equal(seq("\xc0\xaf", 2), 0);             /* overlong '/' */
    assert_int_equal(seq("\xc1\xbf", 2), 0);
    assert_int_equal(seq("\xe0\x80\xaf", 3), 0);         /* overlong, 3 bytes */
    assert_int_equal(seq("\xf0\x80\x80\xaf", 4), 0);     /* overlong, 4 bytes */
    assert_int_equal(seq("\xed\xa0\x80", 3), 0);         /* U+D800 surrogate */
    assert_int_equal(seq("\xed\xbf\xbf", 3), 0);         /* U+DFFF surrogate */
    assert_int_equal(seq("\xf4\x90\x80\x80", 4), 0);     /* U+110000 */
    assert_int_equal(seq("\xf5\x80\x80\x80", 4), 0);
    assert_int_equal(seq("\xff", 1), 0);
    assert_int_equal(seq("\xc3", 1), 0);                 /* truncated by the end */
    assert_int_equal(seq("\xe2\x9c", 2), 0);
    assert_int_equal(seq("\xf0\x9f\x98", 3), 0);
    assert_int_equal(seq("\xc3\x41", 2), 0);             /* not a continuation */
}

static void test_utf8_count_counts_characters_not_bytes(void **state) {
    (void)state;
    assert_int_equal(svc_utf8_count("", 0), 0);
    assert_int_equal(svc_utf8_count("abc", 3), 3);
    assert_int_equal(svc_utf8_count("\xc3\xa9t\xc3\xa9", 5), 3);
    assert_int_equal(svc_utf8_count("\xf0\x9f\x98\x80!", 5), 2);
    assert_int_equal(svc_utf8_count("ab\xc3", 3), -1);
    assert_int_equal(svc_utf8_count("a\xed\xa0\x80", 4), -1);
    assert_int_equal(svc_utf8_count("a\0b", 3), 3);      /* the length is the caller's, NUL included */
}

static void test_text_refuses_c1_controls_such_as_next_line(void **state) {
    (void)state;
    size_t n = 0;
    /* "a\u0085b": what issue 14 found passing the transaction description */
    assert_int_equal(text("a\xc2\x85" "b", SVC_TEXT_TAB | SVC_TEXT_NEWLINE, &n), SVC_TEXT_CONTROL);
    assert_int_equal(n, 3);
    for (unsigned cp = 0x80; cp <= 0x9F; cp++) {
        char s[8] = "x";
        size_t k = encode(cp, s + 1);
        s[1 + k] = '\0';
        if (text(s, SVC_TEXT_TAB | SVC_TEXT_NEWLINE, NULL) != SVC_TEXT_CONTROL) fail_msg("U+%04X passed", cp);
    }
    /* the neighbours are printable: NO-BREAK SPACE U+00A0, ÿ, and the C2 lead with other bytes */
    assert_int_equal(text("\xc2\xa0", 0, NULL), SVC_TEXT_OK);
    assert_int_equal(text("\xc3\xbf", 0, NULL), SVC_TEXT_OK);
    assert_int_equal(text("\xc2\xbf", 0, NULL), SVC_TEXT_OK);
    assert_int_equal(text("~", 0, NULL), SVC_TEXT_OK);
}

static void test_text_refuses_every_c0_control_and_del_unless_allowed(void **state) {
    (void)state;
    for (unsigned c = 1; c < 0x20; c++) {
        char s[4] = {'a', (char)c, 'b', 0};
        enum svc_text_verdict want_all = SVC_TEXT_CONTROL;
        if (c == '\t' || c == '\n') want_all = SVC_TEXT_OK;
        assert_int_equal(text(s, 0, NULL), SVC_TEXT_CONTROL);
        if (text(s, SVC_TEXT_TAB | SVC_TEXT_NEWLINE, NULL) != want_all) fail_msg("0x%02X with tab+newline allowed", c);
    }
    assert_int_equal(text("a\tb", SVC_TEXT_TAB, NULL), SVC_TEXT_OK);
    assert_int_equal(text("a\nb", SVC_TEXT_TAB, NULL), SVC_TEXT_CONTROL);
    assert_int_equal(text("a\nb", SVC_TEXT_NEWLINE, NULL), SVC_TEXT_OK);
    assert_int_equal(text("a\r\nb", SVC_TEXT_NEWLINE, NULL), SVC_TEXT_CONTROL);   /* CR is not a newline here */
    assert_int_equal(text("a\x7f", SVC_TEXT_TAB | SVC_TEXT_NEWLINE, NULL), SVC_TEXT_CONTROL);
    assert_int_equal(svc_text_check("a\0b", 3, SVC_TEXT_TAB | SVC_TEXT_NEWLINE, NULL), SVC_TEXT_CONTROL);
}

static void test_text_accepts_printable_unicode_and_counts_it(void **state) {
    (void)state;
    size_t n = 0;
    assert_int_equal(text("cash \xc3\xa9\xc3\xa7\xc3\xa3o \xe2\x9c\x93 \xf0\x9f\x98\x80", 0, &n), SVC_TEXT_OK);
    assert_int_equal(n, 13);
    n = 99;
    assert_int_equal(text("", 0, &n), SVC_TEXT_OK);
    assert_int_equal(n, 0);
}

static void test_text_refuses_malformed_utf8_before_anything_else(void **state) {
    (void)state;
    assert_int_equal(text("ok\xc0\xaf", SVC_TEXT_TAB | SVC_TEXT_NEWLINE, NULL), SVC_TEXT_NOT_UTF8);
    assert_int_equal(text("\x01\xff", 0, NULL), SVC_TEXT_NOT_UTF8);
    assert_string_equal(svc_text_reason(SVC_TEXT_NOT_UTF8), "must be valid UTF-8 text");
    assert_string_equal(svc_text_reason(SVC_TEXT_CONTROL), "must not contain control characters");
    assert_null(svc_text_reason(SVC_TEXT_OK));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_seq_accepts_each_well_formed_length),
        cmocka_unit_test(test_utf8_seq_refuses_what_rfc_3629_forbids),
        cmocka_unit_test(test_utf8_count_counts_characters_not_bytes),
        cmocka_unit_test(test_text_refuses_c1_controls_such_as_next_line),
        cmocka_unit_test(test_text_refuses_every_c0_control_and_del_unless_allowed),
        cmocka_unit_test(test_text_accepts_printable_unicode_and_counts_it),
        cmocka_unit_test(test_text_refuses_malformed_utf8_before_anything_else),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
