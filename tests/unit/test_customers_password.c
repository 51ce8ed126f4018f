/* Specification of customers-service/src/password.h: Argon2id PHC hashes, rehash decisions,
 * equal-cost dummy verification, and the password policy.
 *
 * Most cases use cheap parameters (m = 1 MiB, t = 1) to stay fast; the timing and throughput
 * cases use the OWASP defaults the service runs with. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <argon2.h>

#include "password.h"

#define CHEAP                                                                                      \
    ((struct password_params){                                                                     \
        .m_cost_kib = 1024, .t_cost = 1, .parallelism = 1, .salt_len = 16, .hash_len = 32})

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------------ hash and verify */

static void test_password_hash_is_a_phc_argon2id_string_that_verifies(void **state) {
    struct password_params p = CHEAP;
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "correct horse battery", enc, sizeof(enc)), 0);
    assert_true(strncmp(enc, "$argon2id$v=19$m=1024,t=1,p=1$", 30) == 0);
    /* 16-byte salt = 22 base64 chars, 32-byte hash = 43 */
    const char *salt = enc + 30, *hash = strchr(salt, '$');
    assert_non_null(hash);
    assert_int_equal(hash - salt, 22);
    assert_int_equal(strlen(hash + 1), 43);
    assert_true(password_verify(enc, "correct horse battery"));
}

static void test_password_wrong_password_does_not_verify(void **state) {
    struct password_params p = CHEAP;
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "correct horse battery", enc, sizeof(enc)), 0);
    assert_false(password_verify(enc, "correct horse batterY"));
    assert_false(password_verify(enc, "correct horse battery "));
    assert_false(password_verify(enc, ""));
    assert_false(password_verify(enc, NULL));
}

static void test_password_same_password_gets_a_new_salt_each_time(void **state) {
    struct password_params p = CHEAP;
    char a[PASSWORD_ENCODED_MAX], b[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "same password", a, sizeof(a)), 0);
    assert_int_equal(password_hash(&p, "same password", b, sizeof(b)), 0);
    assert_string_not_equal(a, b);
    assert_true(password_verify(a, "same password"));
    assert_true(password_verify(b, "same password"));
}

static void test_password_owasp_defaults_are_encoded_in_the_hash(void **state) {
    struct password_params p = PASSWORD_PARAMS_OWASP;
    assert_int_equal(p.m_cost_kib, 19456);
    assert_int_equal(p.t_cost, 2);
    assert_int_equal(p.parallelism, 1);
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "päßwörd-ünïcode", enc, sizeof(enc)), 0);
    assert_true(strncmp(enc, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_true(password_verify(enc, "päßwörd-ünïcode"));
    assert_false(password_needs_rehash(enc, &p));
}

static void test_password_hash_refuses_bad_arguments(void **state) {
    struct password_params p = CHEAP;
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "pw", enc, 40), -1); /* buffer too small */
    assert_int_equal(password_hash(&p, NULL, enc, sizeof(enc)), -1);
    assert_int_equal(password_hash(NULL, "pw", enc, sizeof(enc)), -1);
    struct password_params bad = p;
    bad.salt_len = 8;
    assert_int_equal(password_hash(&bad, "pw", enc, sizeof(enc)), -1);
    bad = p;
    bad.t_cost = 0;
    assert_int_equal(password_hash(&bad, "pw", enc, sizeof(enc)), -1);
    bad = p;
    bad.m_cost_kib = PASSWORD_MAX_M_COST_KIB + 1;
    assert_int_equal(password_hash(&bad, "pw", enc, sizeof(enc)), -1);
    char *huge = malloc(PASSWORD_MAX_BYTES + 2);
    assert_non_null(huge);
    memset(huge, 'a', PASSWORD_MAX_BYTES + 1);
    huge[PASSWORD_MAX_BYTES + 1] = '\0';
    assert_int_equal(password_hash(&p, huge, enc, sizeof(enc)), -1);
    huge[PASSWORD_MAX_BYTES] = '\0'; /* exactly the limit is fine */
    assert_int_equal(password_hash(&p, huge, enc, sizeof(enc)), 0);
    assert_true(password_verify(enc, huge));
    free(huge);
}

/* ------------------------------------------------------------------ malformed and foreign */

static void test_password_malformed_or_foreign_encodings_never_verify(void **state) {
    struct password_params p = CHEAP;
    char good[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "pw-under-test", good, sizeof(good)), 0);
    const char *tail = strchr(good + 30, '$'); /* "$<hash>" */
    char salt_hash[PASSWORD_ENCODED_MAX];
    snprintf(salt_hash, sizeof(salt_hash), "%s", good + 29); /* "$<salt>$<hash>" */

    char buf[PASSWORD_ENCODED_MAX + 64];
    const char *bad_prefixes[] = {
        "$argon2i$v=19$m=1024,t=1,p=1",  /* other Argon2 variants */
        "$argon2d$v=19$m=1024,t=1,p=1",
        "$argon2id$v=16$m=1024,t=1,p=1", /* old version */
        "$argon2id$m=1024,t=1,p=1",      /* version missing */
        "$argon2id$v=19$m=01024,t=1,p=1", /* leading zero */
        "$argon2id$v=19$m=1024,t=1,p=0",
        "$argon2id$v=19$m=1024,p=1,t=1", /* order */
        "$argon2id$v=19$m=4294967295,t=1,p=1", /* 4 TiB: refused before allocating */
        "$argon2id$v=19$m=1024,t=100000,p=1",
        "$ARGON2ID$v=19$m=1024,t=1,p=1",
    };
    for (size_t i = 0; i < sizeof(bad_prefixes) / sizeof(bad_prefixes[0]); i++) {
        snprintf(buf, sizeof(buf), "%s%s", bad_prefixes[i], salt_hash);
        assert_false(password_verify(buf, "pw-under-test"));
        assert_true(password_needs_rehash(buf, &p));
    }
    /* control: the same construction with the right prefix verifies */
    snprintf(buf, sizeof(buf), "%s%s", "$argon2id$v=19$m=1024,t=1,p=1", salt_hash);
    assert_true(password_verify(buf, "pw-under-test"));

    const char *garbage[] = {
        "", "garbage", "$", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "pbkdf2_sha256$600000$salt$hash",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_false(password_verify(garbage[i], "pw-under-test"));
        assert_true(password_needs_rehash(garbage[i], &p));
    }
    assert_false(password_verify(NULL, "pw-under-test"));

    /* damaged stored hashes: truncated, padded, trailing junk, bad characters */
    size_t len = strlen(good);
    snprintf(buf, sizeof(buf), "%.*s", (int)(len - 1), good);
    assert_false(password_verify(buf, "pw-under-test"));
    snprintf(buf, sizeof(buf), "%s=", good);
    assert_false(password_verify(buf, "pw-under-test"));
    snprintf(buf, sizeof(buf), "%s$x", good);
    assert_false(password_verify(buf, "pw-under-test"));
    snprintf(buf, sizeof(buf), "%s", good);
    buf[len - 5] = '-';
    assert_false(password_verify(buf, "pw-under-test"));
    snprintf(buf, sizeof(buf), "%.*s", (int)(tail - good), good); /* hash part missing */
    assert_false(password_verify(buf, "pw-under-test"));
}

static void test_password_argon2i_hash_of_the_right_password_is_refused(void **state) {
    char enc[PASSWORD_ENCODED_MAX];
    const unsigned char salt[16] = "0123456789abcdef";
    assert_int_equal(argon2i_hash_encoded(1, 1024, 1, "right", 5, salt, sizeof(salt), 32, enc,
                                          sizeof(enc)),
                     ARGON2_OK);
    assert_true(argon2i_verify(enc, "right", 5) == ARGON2_OK); /* a genuine argon2i hash */
    assert_false(password_verify(enc, "right"));
}

/* ------------------------------------------------------------------ rehash */

static void test_password_needs_rehash_when_current_params_are_raised(void **state) {
    struct password_params old = CHEAP;
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&old, "pw", enc, sizeof(enc)), 0);
    assert_false(password_needs_rehash(enc, &old));

    struct password_params raised = old;
    raised.m_cost_kib = 2048;
    assert_true(password_needs_rehash(enc, &raised));
    raised = old;
    raised.t_cost = 2;
    assert_true(password_needs_rehash(enc, &raised));
    raised = old;
    raised.parallelism = 2;
    assert_true(password_needs_rehash(enc, &raised));
    raised = old;
    raised.hash_len = 64;
    assert_true(password_needs_rehash(enc, &raised));
    raised = old;
    raised.salt_len = 32;
    assert_true(password_needs_rehash(enc, &raised));

    /* a hash stronger than the current policy is kept */
    struct password_params strong = old;
    strong.m_cost_kib = 4096;
    strong.t_cost = 3;
    assert_int_equal(password_hash(&strong, "pw", enc, sizeof(enc)), 0);
    assert_false(password_needs_rehash(enc, &old));
    assert_true(password_needs_rehash(enc, NULL));
}

/* ------------------------------------------------------------------ timing */

static double time_verify(const char *enc, const char *pw, int n) {
    double best = 1e9;
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        assert_false(password_verify(enc, pw));
        double d = now_s() - t0;
        if (d < best) best = d;
    }
    return best;
}

static double time_dummy(const struct password_params *p, const char *pw, int n) {
    double best = 1e9;
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        password_verify_dummy(p, pw);
        double d = now_s() - t0;
        if (d < best) best = d;
    }
    return best;
}

static void test_password_dummy_verify_costs_the_same_as_a_real_one(void **state) {
    struct password_params p = PASSWORD_PARAMS_OWASP;
    char enc[PASSWORD_ENCODED_MAX];
    assert_int_equal(password_hash(&p, "the real password", enc, sizeof(enc)), 0);
    double real = time_verify(enc, "a wrong password", 5);
    double dummy = time_dummy(&p, "a wrong password", 5);
    printf("[ TIMING   ] argon2id OWASP: real verify %.1f ms, dummy verify %.1f ms (best of 5)\n",
           real * 1e3, dummy * 1e3);
    assert_true(dummy < real * 3.0);
    assert_true(real < dummy * 3.0);
    /* NULL and invalid params still burn the time of a default verify */
    double null_pw = time_dummy(&p, NULL, 3);
    double bad = time_dummy(&(struct password_params){0}, "x", 3);
    assert_true(null_pw > real / 3.0);
    assert_true(bad > real / 3.0);
}

static void test_password_hash_throughput_is_reported(void **state) {
    struct password_params p = PASSWORD_PARAMS_OWASP;
    char enc[PASSWORD_ENCODED_MAX];
    int n = 0;
    double t0 = now_s(), elapsed;
    do {
        assert_int_equal(password_hash(&p, "benchmark password", enc, sizeof(enc)), 0);
        n++;
        elapsed = now_s() - t0;
    } while (elapsed < 1.0);
    printf("[ BENCH    ] argon2id m=19456 t=2 p=1: %.1f hashes/s on one thread (%.1f ms each)\n",
           n / elapsed, elapsed / n * 1e3);
    assert_true(password_verify(enc, "benchmark password"));
}

/* ------------------------------------------------------------------ policy */

static void assert_policy_rejects(const char *pw, const char *user, const char *email,
                                  const char *fragment) {
    const char *reason = NULL;
    assert_false(password_policy_check(pw, user, email, &reason));
    assert_non_null(reason);
    assert_non_null(strstr(reason, fragment));
}

static void test_password_policy_counts_code_points_between_8_and_128(void **state) {
    const char *reason = "unset";
    assert_true(password_policy_check("abcdefgh", "alice", "alice@example.com", &reason));
    assert_null(reason);
    assert_policy_rejects("abcdefg", NULL, NULL, "at least 8");
    /* 7 code points in 14 bytes is too short; 8 in 16 bytes is enough */
    assert_policy_rejects("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL, NULL,
                          "at least 8");
    assert_true(password_policy_check("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                                      NULL, NULL, NULL));
    /* 4-byte characters (emoji) count once each */
    assert_true(password_policy_check("\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94"
                                      "\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f"
                                      "\x94\x91",
                                      NULL, NULL, NULL));

    char buf[1024];
    memset(buf, 'x', 128);
    buf[128] = '\0';
    assert_true(password_policy_check(buf, NULL, NULL, NULL));
    buf[128] = 'x';
    buf[129] = '\0';
    assert_policy_rejects(buf, NULL, NULL, "at most 128");
    /* 128 three-byte characters (384 bytes) are within the limit */
    for (int i = 0; i < 128; i++) memcpy(buf + 3 * i, "\xe2\x82\xac", 3);
    buf[384] = '\0';
    assert_true(password_policy_check(buf, NULL, NULL, NULL));
    assert_policy_rejects(NULL, NULL, NULL, "required");
}

static void test_password_policy_rejects_invalid_utf8(void **state) {
    assert_policy_rejects("abcdefgh\xff", NULL, NULL, "UTF-8");
    assert_policy_rejects("abcdefgh\xc0\xaf", NULL, NULL, "UTF-8");          /* overlong '/' */
    assert_policy_rejects("abcdefgh\xe0\x80\xaf", NULL, NULL, "UTF-8");      /* overlong */
    assert_policy_rejects("abcdefgh\xed\xa0\x80", NULL, NULL, "UTF-8");      /* surrogate */
    assert_policy_rejects("abcdefgh\xf4\x90\x80\x80", NULL, NULL, "UTF-8");  /* > U+10FFFF */
    assert_policy_rejects("abcdefgh\xc3", NULL, NULL, "UTF-8");              /* truncated */
    assert_policy_rejects("abcdefgh\x80", NULL, NULL, "UTF-8");              /* stray continuation */
}

static void test_password_policy_rejects_user_name_or_email_ignoring_case(void **state) {
    assert_policy_rejects("Alice.Smith", "alice.smith", "alice@example.com", "user name");
    assert_policy_rejects("ALICE@EXAMPLE.COM", "alice.smith", "alice@example.com", "email");
    assert_true(password_policy_check("alice.smith2", "alice.smith", "alice@example.com", NULL));
    assert_true(password_policy_check("alice.smith", NULL, NULL, NULL));
    assert_true(password_policy_check("alice.smith", "", "", NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password_hash_is_a_phc_argon2id_string_that_verifies),
        cmocka_unit_test(test_password_wrong_password_does_not_verify),
        cmocka_unit_test(test_password_same_password_gets_a_new_salt_each_time),
        cmocka_unit_test(test_password_owasp_defaults_are_encoded_in_the_hash),
        cmocka_unit_test(test_password_hash_refuses_bad_arguments),
        cmocka_unit_test(test_password_malformed_or_foreign_encodings_never_verify),
        cmocka_unit_test(test_password_argon2i_hash_of_the_right_password_is_refused),
        cmocka_unit_test(test_password_needs_rehash_when_current_params_are_raised),
        cmocka_unit_test(test_password_dummy_verify_costs_the_same_as_a_real_one),
        cmocka_unit_test(test_password_hash_throughput_is_reported),
        cmocka_unit_test(test_password_policy_counts_code_points_between_8_and_128),
        cmocka_unit_test(test_password_policy_rejects_invalid_utf8),
        cmocka_unit_test(test_password_policy_rejects_user_name_or_email_ignoring_case),
    };
    return cmocka_run_group_tests_name("customers_password", tests, NULL, NULL);
}
