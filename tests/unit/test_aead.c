#define _GNU_SOURCE /* memmem */
/* svc/aead.h: AES-256-GCM sealing of secrets at rest (tenant API keys). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/aead.h"

static const char HEX1[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";
static const char HEX2[] = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

static struct svc_aead_key key_of(const char *text) {
    struct svc_aead_key k;
    const char *why = NULL;
    assert_int_equal(svc_aead_key_parse((const unsigned char *)text, strlen(text), &k, &why), 0);
    return k;
}

static void test_sealed_secret_opens_with_the_same_key_and_row(void **state) {
    struct svc_aead_keyring ring = {0};
    struct svc_aead_key k = key_of(HEX1);
    assert_int_equal(svc_aead_keyring_add(&ring, &k), 0);
    const char *secret = "sk_live_abc123";
    unsigned char sealed[64], sealed2[64];
    size_t n = svc_aead_seal(&ring, "tenant-1", 8, secret, strlen(secret), sealed);
    assert_int_equal(n, strlen(secret) + SVC_AEAD_OVERHEAD);
    assert_null(memmem(sealed, n, secret, strlen(secret)));   /* no plaintext at rest */
    /* A fresh nonce each time: the same secret seals differently. */
    assert_int_equal(svc_aead_seal(&ring, "tenant-1", 8, secret, strlen(secret), sealed2), n);
    assert_memory_not_equal(sealed, sealed2, n);
    char plain[64];
    bool current = false;
    assert_int_equal(svc_aead_open(&ring, "tenant-1", 8, sealed, n, plain, &current), (long)strlen(secret));
    assert_string_equal(plain, secret);
    assert_true(current);
    /* Another row's associated data does not open it. */
    assert_int_equal(svc_aead_open(&ring, "tenant-2", 8, sealed, n, plain, NULL), -1);
    svc_aead_keyring_wipe(&ring);
    assert_int_equal(ring.n, 0);
}

static void test_any_tampered_byte_or_length_is_refused(void **state) {
    struct svc_aead_keyring ring = {0};
    struct svc_aead_key k = key_of(HEX1);
    svc_aead_keyring_add(&ring, &k);
    unsigned char sealed[64];
    size_t n = svc_aead_seal(&ring, "t", 1, "secret", 6, sealed);
    char plain[64];
    for (size_t i = 0; i < n; i++) {
        sealed[i] ^= 0x01;
        assert_int_equal(svc_aead_open(&ring, "t", 1, sealed, n, plain, NULL), -1);
        sealed[i] ^= 0x01;
    }
    assert_int_equal(svc_aead_open(&ring, "t", 1, sealed, n - 1, plain, NULL), -1);
    assert_int_equal(svc_aead_open(&ring, "t", 1, sealed, SVC_AEAD_OVERHEAD - 1, plain, NULL), -1);
    assert_int_equal(svc_aead_open(&ring, "t", 1, sealed, n, plain, NULL), 6);
}

static void test_rotation_old_key_still_opens_new_key_seals(void **state) {
    struct svc_aead_keyring old = {0}, rotated = {0}, other = {0};
    struct svc_aead_key k1 = key_of(HEX1), k2 = key_of(HEX2);
    svc_aead_keyring_add(&old, &k1);
    unsigned char sealed[64];
    size_t n = svc_aead_seal(&old, "t", 1, "before", 6, sealed);
    assert_int_equal(svc_aead_keyring_add(&rotated, &k2), 0);
    assert_int_equal(svc_aead_keyring_add(&rotated, &k1), 0);
    assert_int_equal(svc_aead_keyring_add(&rotated, &k1), -1);   /* the same key twice */
    char plain[64];
    bool current = true;
    assert_int_equal(svc_aead_open(&rotated, "t", 1, sealed, n, plain, &current), 6);
    assert_false(current);   /* sealed by the previous key: the caller re-seals it */
    n = svc_aead_seal(&rotated, "t", 1, "after", 5, sealed);
    assert_int_equal(svc_aead_open(&rotated, "t", 1, sealed, n, plain, &current), 5);
    assert_true(current);
    /* A ring without the sealing key cannot open it. */
    svc_aead_keyring_add(&other, &k1);
    assert_int_equal(svc_aead_open(&other, "t", 1, sealed, n, plain, NULL), -1);
}

static void test_key_forms(void **state) {
    struct svc_aead_key a, b, c;
    const char *why = NULL;
    assert_int_equal(svc_aead_key_parse((const unsigned char *)HEX1, strlen(HEX1), &a, &why), 0);
    /* The same 32 bytes as base64 and raw. */
    const char *b64 = "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8=";
    assert_int_equal(svc_aead_key_parse((const unsigned char *)b64, strlen(b64), &b, &why), 0);
    assert_memory_equal(a.key, b.key, 32);
    assert_memory_equal(a.id, b.id, 4);
    assert_int_equal(svc_aead_key_parse(a.key, 32, &c, &why), 0);
    assert_memory_equal(a.key, c.key, 32);
    const char *bad[] = {"", "00112233", "zz112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                         "ABEiM0RVZneImaq7zN3u/wARIjNEVWZ3iJmqu8zd7v8"};
    for (size_t i = 0; i < 4; i++) {
        why = NULL;
        assert_int_equal(svc_aead_key_parse((const unsigned char *)bad[i], strlen(bad[i]), &c, &why), -1);
        assert_non_null(why);
    }
    char path[] = "/tmp/aead-key-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, HEX2, strlen(HEX2)), (ssize_t)strlen(HEX2));
    close(fd);
    assert_int_equal(svc_aead_key_load(path, &c, &why), 0);
    unlink(path);
    assert_int_equal(svc_aead_key_load(path, &c, &why), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sealed_secret_opens_with_the_same_key_and_row),
        cmocka_unit_test(test_any_tampered_byte_or_length_is_refused),
        cmocka_unit_test(test_rotation_old_key_still_opens_new_key_seals),
        cmocka_unit_test(test_key_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
