/* Specification of the service-token path of customers-service/src/sessions.c (no Redis or
 * PostgreSQL needed): POST /api/auth/token answers a verifiable RS256 token with role "service",
 * no session and an empty permissions array, refuses a wrong secret, and issuing tokens leaks
 * nothing; logout while the session store is down answers 503 instead of claiming success.
 *
 * The leak check compares the heap in use (mallinfo2) before and after a few hundred issues: the
 * access-token claims once kept a reference to a fresh empty array ("s:O" increments), losing
 * ~100 bytes per service token. Under AddressSanitizer mallinfo2 reports nothing, and
 * LeakSanitizer reports the same leak at exit instead. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "sessions.h"
#include "users.h"
#include "svc/crypto.h"

#define ISS "platform-customers"
#define AUD "platform"
#define CLIENT_SECRET "a-service-client-secret-0123456789"

static struct customers_ctx cx;
static char keydir[64];
static char keyfile[128];

static int setup(void **state) {
    (void)state;
    memset(&cx, 0, sizeof cx);
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(devnull >= 0);
    svc_log_init(&cx.app.log, "customers", "test", "info", devnull);

    snprintf(keydir, sizeof keydir, "/tmp/test-sessions-XXXXXX");
    assert_non_null(mkdtemp(keydir));
    snprintf(keyfile, sizeof keyfile, "%s/signing.pem", keydir);
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    FILE *f = fopen(keyfile, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    EVP_PKEY_free(k);

    cx.auth.keys = svc_jwt_keys_new();
    assert_non_null(cx.auth.keys);
    char err[256];
    assert_int_equal(svc_jwt_keys_add_private_pem_file(cx.auth.keys, keyfile, err, sizeof err), 0);
    cx.auth.issuer = ISS;
    cx.auth.audience = AUD;
    cx.service_token_ttl_s = 300;
    cx.clients[0].id = "sync";
    svc_sha256_hex(CLIENT_SECRET, strlen(CLIENT_SECRET), cx.clients[0].secret_sha256);
    cx.nclients = 1;

    /* a session store that refuses connections: nothing listens on port 1 */
    struct svc_redis_config rc = {.host = "127.0.0.1", .port = 1, .size = 1, .connect_timeout_ms = 200,
                                  .command_timeout_ms = 200, .acquire_timeout_ms = 200};
    cx.app.redis = svc_redis_pool_new(&rc);
    assert_non_null(cx.app.redis);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    svc_jwt_keys_free(cx.auth.keys);
    cx.auth.keys = NULL;
    svc_redis_pool_free(cx.app.redis);
    cx.app.redis = NULL;
    unlink(keyfile);
    rmdir(keydir);
    close(cx.app.log.fd);
    return 0;
}

static struct svc_result issue(const char *id, const char *secret) {
    json_t *body = json_pack("{s:s,s:s}", "client_id", id, "client_secret", secret);
    assert_non_null(body);
    struct svc_result r = sessions_client_token(&cx, "test-cid", body);
    json_decref(body);
    return r;
}

static void test_service_token_verifies_with_role_service_no_session_and_empty_permissions(void **state) {
    (void)state;
    struct svc_result r = issue("sync", CLIENT_SECRET);
    assert_int_equal(r.st, SVC_OK);
    const char *tok = json_string_value(json_object_get(r.body, "access_token"));
    assert_non_null(tok);
    assert_string_equal(json_string_value(json_object_get(r.body, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(r.body, "expires_in")), 300);
    assert_null(json_object_get(r.body, "refresh_token"));

    struct svc_jwt_expect exp = {ISS, AUD, 0, 0};
    json_t *claims = NULL;
    assert_int_equal(svc_jwt_verify(cx.auth.keys, tok, &exp, &claims), SVC_JWT_OK);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "service:sync");
    assert_string_equal(json_string_value(json_object_get(claims, "role")), "service");
    assert_null(json_object_get(claims, "sid"));
    json_t *perms = json_object_get(claims, "permissions");
    assert_true(json_is_array(perms));
    assert_int_equal(json_array_size(perms), 0);
    json_decref(claims);
    svc_result_clear(&r);
}

static void test_service_token_with_a_wrong_secret_or_unknown_client_is_invalid_client(void **state) {
    (void)state;
    struct svc_result r = issue("sync", "not-the-secret-at-all-0000000000");
    assert_int_equal(r.st, SVC_UNAUTHORIZED);
    assert_string_equal(r.code, "invalid_client");
    assert_null(r.body);
    svc_result_clear(&r);
    r = issue("transactions", CLIENT_SECRET);
    assert_int_equal(r.st, SVC_UNAUTHORIZED);
    assert_string_equal(r.code, "invalid_client");
    svc_result_clear(&r);
}

static void test_issuing_service_tokens_does_not_grow_the_heap(void **state) {
    (void)state;
    for (int i = 0; i < 20; i++) { /* warm up OpenSSL's and jansson's one-time allocations */
        struct svc_result r = issue("sync", CLIENT_SECRET);
        assert_int_equal(r.st, SVC_OK);
        svc_result_clear(&r);
    }
    struct mallinfo2 before = mallinfo2();
    enum { N = 400 };
    for (int i = 0; i < N; i++) {
        struct svc_result r = issue("sync", CLIENT_SECRET);
        assert_int_equal(r.st, SVC_OK);
        svc_result_clear(&r);
    }
    struct mallinfo2 after = mallinfo2();
    long grown = (long)after.uordblks - (long)before.uordblks;
    /* the old leak was ~100 bytes per token (40 KB here); allow allocator noise only */
    if (grown > 8 * 1024) fail_msg("heap grew by %ld bytes over %d service tokens", grown, N);
}

static void test_logout_while_the_session_store_is_down_is_503_not_204(void **state) {
    (void)state;
    struct svc_principal who;
    memset(&who, 0, sizeof who);
    snprintf(who.sub, sizeof who.sub, "5aa69828-b9bd-4ad4-9a5e-07b5dd40db45");
    snprintf(who.sid, sizeof who.sid, "0d56f973-5da6-4394-92aa-634f7f918059");
    struct svc_result r = sessions_logout(&cx, "test-cid", &who);
    assert_int_equal(r.st, SVC_UNAVAILABLE);
    assert_string_equal(r.code, "session_store_unavailable");
    svc_result_clear(&r);
}

/* The ctx has no database pool: a delete that went on to touch the database would crash or answer
 * database_unavailable, so this also proves nothing was changed. */
static void test_delete_while_the_session_store_is_down_is_503_and_changes_nothing(void **state) {
    (void)state;
    struct svc_principal who;
    memset(&who, 0, sizeof who);
    snprintf(who.sub, sizeof who.sub, "5aa69828-b9bd-4ad4-9a5e-07b5dd40db45");
    snprintf(who.sid, sizeof who.sid, "0d56f973-5da6-4394-92aa-634f7f918059");
    struct svc_result r = users_delete(&cx, "test-cid", &who, who.sub);
    assert_int_equal(r.st, SVC_UNAVAILABLE);
    assert_string_equal(r.code, "session_store_unavailable");
    svc_result_clear(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_token_verifies_with_role_service_no_session_and_empty_permissions),
        cmocka_unit_test(test_service_token_with_a_wrong_secret_or_unknown_client_is_invalid_client),
        cmocka_unit_test(test_issuing_service_tokens_does_not_grow_the_heap),
        cmocka_unit_test(test_logout_while_the_session_store_is_down_is_503_not_204),
        cmocka_unit_test(test_delete_while_the_session_store_is_down_is_503_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
