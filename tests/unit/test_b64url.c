/* Specification of base64url (svc/b64url.h): RFC 4648 vectors, the URL-safe alphabet, exact
 * output sizes, and a decoder that accepts exactly one text per byte string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "svc/b64url.h"

static void test_rfc4648_vectors_without_padding(void **state) {
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const coded[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        size_t n = strlen(plain[i]);
        assert_int_equal(svc_b64url_len(n), strlen(coded[i]));
        assert_int_equal(svc_b64url_encode((const unsigned char *)plain[i], n, out, sizeof out), strlen(coded[i]));
        assert_string_equal(out, coded[i]);
        unsigned char back[16];
        size_t m = 99;
        assert_int_equal(svc_b64url_decode(coded[i], strlen(coded[i]), back, sizeof back, &m), 0);
        assert_int_equal(m, n);
        assert_memory_equal(back, plain[i], n);
    }
}

static void test_the_url_safe_alphabet_replaces_plus_and_slash(void **state) {
    char out[8];
    assert_int_equal(svc_b64url_encode((const unsigned char *)"\xfb\xff", 2, out, sizeof out), 3);
    assert_string_equal(out, "-_8");
    unsigned char b[4];
    size_t n;
    assert_int_equal(svc_b64url_decode("-_8", 3, b, sizeof b, &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(b, "\xfb\xff", 2);
    assert_int_equal(svc_b64url_decode("+/8", 3, b, sizeof b, &n), -1);   /* standard base64 */
}

static void test_every_length_round_trips(void **state) {
    unsigned char in[64], back[64];
    char text[100];
    for (size_t i = 0; i < sizeof in; i++) in[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof in; len++) {
        size_t w = svc_b64url_encode(in, len, text, sizeof text);
        assert_int_equal(w, svc_b64url_len(len));
        assert_int_equal(strlen(text), w);
        size_t n = 0;
        assert_int_equal(svc_b64url_decode(text, w, back, sizeof back, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, in, len);
    }
}

static void test_encode_refuses_a_buffer_one_byte_short(void **state) {
    char out[5] = "xxxx";
    assert_int_equal(svc_b64url_encode((const unsigned char *)"foo", 3, out, 4), 0);   /* 4 chars + NUL */
    assert_string_equal(out, "xxxx");
    assert_int_equal(svc_b64url_encode((const unsigned char *)"foo", 3, out, 5), 4);
}

static void test_decode_accepts_one_text_per_byte_string(void **state) {
    unsigned char b[8];
    size_t n;
    assert_int_equal(svc_b64url_decode("Zg==", 4, b, sizeof b, &n), -1);   /* padding */
    assert_int_equal(svc_b64url_decode("Zh", 2, b, sizeof b, &n), -1);     /* unused bits set: "f" is "Zg" */
    assert_int_equal(svc_b64url_decode("Zm9", 3, b, sizeof b, &n), -1);    /* "fo" is "Zm8" */
    assert_int_equal(svc_b64url_decode("Zm9vY", 5, b, sizeof b, &n), -1);  /* 4k+1 characters */
    assert_int_equal(svc_b64url_decode("Zm 9v", 5, b, sizeof b, &n), -1);
    assert_int_equal(svc_b64url_decode("Zm9v\0", 5, b, sizeof b, &n), -1); /* a NUL inside */
    assert_int_equal(svc_b64url_decode("Zm9vYmFy", 8, b, 5, &n), -1);      /* more than cap */
    assert_int_equal(svc_b64url_decode("Zm9vYmFy", 8, b, 6, &n), 0);
    assert_int_equal(n, 6);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors_without_padding),
        cmocka_unit_test(test_the_url_safe_alphabet_replaces_plus_and_slash),
        cmocka_unit_test(test_every_length_round_trips),
        cmocka_unit_test(test_encode_refuses_a_buffer_one_byte_short),
        cmocka_unit_test(test_decode_accepts_one_text_per_byte_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
