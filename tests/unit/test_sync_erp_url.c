/* sync-service ERP URLs against SSRF (erp_url.h): which addresses are refused, URL syntax, the
 * operator's allow list, a name resolving to a private address (injected resolver), the
 * numeric host forms getaddrinfo accepts, and the connect-time guard. Plus the tenants body
 * validation (tenants.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>

#include "erp_url.h"
#include "tenants.h"

static struct sockaddr_storage addr_of(const char *text) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) v6->sin6_family = AF_INET6;
    else fail_msg("not an address: %s", text);
    return ss;
}

static bool refused(const char *text) {
    struct sockaddr_storage ss = addr_of(text);
    return erp_addr_refused((struct sockaddr *)&ss);
}

static void test_non_public_addresses_are_refused(void **state) {
    const char *bad[] = {"127.0.0.1", "127.9.9.9", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254",
                         "192.168.1.1", "169.254.169.254", "169.254.0.1", "100.64.0.1", "0.0.0.0", "224.0.0.1",
                         "255.255.255.255", "240.0.0.1", "198.18.0.1", "192.0.2.5", "::1", "::", "fd00::1",
                         "fd00:ec2::254", "fc00::1", "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
                         "64:ff9b::a9fe:a9fe", "2001:db8::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!refused(bad[i])) fail_msg("%s should be refused", bad[i]);
    const char *good[] = {"8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "100.128.0.1", "169.253.1.1",
                          "2606:4700::1111", "::ffff:8.8.8.8", "11.0.0.1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (refused(good[i])) fail_msg("%s should be allowed", good[i]);
}

/* Found by fuzz/fuzz_sync_erp_url.c (fuzz/corpus/sync_erp_url/regress-nat64-local-use-prefix):
 * the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) was let through, although a site's
 * translator maps it onto IPv4 addresses of its choosing, private ones included. */
static void test_local_use_nat64_prefix_is_refused(void **state) {
    const char *bad[] = {"64:ff9b:1::a00:1", "64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", "64:ff9b:1::808:808"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!refused(bad[i])) fail_msg("%s should be refused", bad[i]);
    const char *good[] = {"64:ff9b::808:808", "64:ff9b:2::1", "64:ff9a:1::1"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (refused(good[i])) fail_msg("%s should be allowed", good[i]);
}

static void test_url_syntax(void **state) {
    struct erp_url u;
    const char *why;
    assert_int_equal(erp_url_parse("https://ERP.Example.com:8443/api/v1", &u, &why), 0);
    assert_true(u.https);
    assert_string_equal(u.host, "erp.example.com");
    assert_int_equal(u.port, 8443);
    assert_false(u.ip_literal);
    assert_int_equal(erp_url_parse("http://[::1]:9000/x", &u, &why), 0);
    assert_string_equal(u.host, "::1");
    assert_true(u.ip_literal);
    assert_int_equal(erp_url_parse("http://host", &u, &why), 0);
    assert_int_equal(u.port, 80);
    const char *bad[] = {"ftp://host/", "file:///etc/passwd", "gopher://h", "http://user:pw@host/", "http://host/?q=1",
                         "http://host/#f", "http://", "http://host:0/", "http://host:99999/", "http://ho st/",
                         "//host/x", "http://[::1/", "http://::1/", "javascript:alert(1)", "http://host:80:80/",
                         "http://h\xc3\xa9st/",
                         /* found by fuzz/fuzz_sync_erp_url.c (regress-bracketed-ipv4): brackets hold IPv6 only */
                         "http://[127.0.0.1]/", "https://[8.8.8.8]:443/", "http://[erp.example.com]/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        if (erp_url_parse(bad[i], &u, &why) == 0) fail_msg("%s should not parse", bad[i]);
        assert_non_null(why);
    }
}

/* A resolver for tests: "internal.example" → 10.0.0.7, "public.example" → 93.184.216.34,
 * "mixed.example" → a public and a private address, anything else does not resolve. */
static int fake_resolve(void *arg, const char *host, struct sockaddr_storage *out, int max) {
    int *calls = arg;
    (*calls)++;
    if (!strcmp(host, "internal.example")) {
        out[0] = addr_of("10.0.0.7");
        return 1;
    }
    if (!strcmp(host, "public.example")) {
        out[0] = addr_of("93.184.216.34");
        return 1;
    }
    if (!strcmp(host, "mixed.example")) {
        out[0] = addr_of("93.184.216.34");
        out[1] = addr_of("192.168.0.10");
        return 2;
    }
    return -1;
}

static void test_check_resolves_names_and_refuses_private_results(void **state) {
    struct erp_allow none = {0};
    int calls = 0;
    const char *why = NULL;
    assert_int_equal(erp_url_check("https://public.example/erp", &none, fake_resolve, &calls, &why), 0);
    assert_int_equal(erp_url_check("https://internal.example/erp", &none, fake_resolve, &calls, &why), -1);
    assert_non_null(strstr(why, "non-public"));
    assert_int_equal(erp_url_check("https://mixed.example/erp", &none, fake_resolve, &calls, &why), -1);
    assert_int_equal(erp_url_check("https://nowhere.example/erp", &none, fake_resolve, &calls, &why), -1);
    assert_non_null(strstr(why, "resolve"));
    /* Literals and the numeric forms getaddrinfo understands, with the system resolver. */
    const char *bad[] = {"http://127.0.0.1:8080/", "http://169.254.169.254/latest/meta-data", "http://[::1]/",
                         "http://[fd00::1]/", "http://167772161/", "http://0x0a000001/", "http://10.1/",
                         "http://localhost/", "http://[::ffff:169.254.169.254]/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (erp_url_check(bad[i], &none, NULL, NULL, &why) == 0) fail_msg("%s should be refused", bad[i]);
    assert_int_equal(erp_url_check("http://8.8.8.8/erp", &none, NULL, NULL, &why), 0);
}

static void test_allow_list_exempts_hosts_and_host_ports(void **state) {
    struct erp_allow a;
    const char *why = NULL;
    assert_int_equal(erp_allow_parse(" 127.0.0.1:18402 , LocalHost,[::1]:9000, internal.example", &a, &why), 0);
    assert_int_equal(a.n, 4);
    int calls = 0;
    assert_int_equal(erp_url_check("http://127.0.0.1:18402/tenants/x", &a, fake_resolve, &calls, &why), 0);
    assert_int_equal(erp_url_check("http://127.0.0.1:5432/", &a, fake_resolve, &calls, &why), -1);  /* other port */
    assert_int_equal(erp_url_check("http://localhost:1234/x", &a, fake_resolve, &calls, &why), 0);   /* any port */
    assert_int_equal(erp_url_check("http://[::1]:9000/x", &a, fake_resolve, &calls, &why), 0);
    assert_int_equal(erp_url_check("https://internal.example/x", &a, fake_resolve, &calls, &why), 0);
    assert_int_equal(calls, 0);   /* an allowed host is not even resolved */
    assert_int_equal(erp_allow_parse("", &a, &why), 0);
    assert_int_equal(a.n, 0);
    assert_int_equal(erp_allow_parse("host:notaport", &a, &why), -1);
    assert_int_equal(erp_allow_parse("a b", &a, &why), -1);
    assert_int_equal(erp_allow_parse("::1", &a, &why), -1);   /* IPv6 needs brackets */
}

static void test_connect_guard_checks_every_address_of_a_host_not_allowed(void **state) {
    struct erp_allow a;
    const char *why;
    assert_int_equal(erp_allow_parse("allowed.example", &a, &why), 0);
    struct erp_url u;
    assert_int_equal(erp_url_parse("http://rebinding.example/x", &u, &why), 0);
    struct erp_connect_guard g;
    erp_connect_guard_init(&g, &a, &u);
    struct sockaddr_storage pub = addr_of("93.184.216.34"), meta = addr_of("169.254.169.254");
    assert_true(erp_url_connect_ok(&g, (struct sockaddr *)&pub, sizeof pub));
    assert_false(g.refused);
    /* The name now resolves to the metadata address (DNS rebinding): refused at connect time. */
    assert_false(erp_url_connect_ok(&g, (struct sockaddr *)&meta, sizeof meta));
    assert_true(g.refused);
    assert_int_equal(erp_url_parse("http://allowed.example/x", &u, &why), 0);
    erp_connect_guard_init(&g, &a, &u);
    assert_true(erp_url_connect_ok(&g, (struct sockaddr *)&meta, sizeof meta));
}

static json_t *fields_of(const char *body_text, bool create) {
    json_t *body = json_loads(body_text, 0, NULL);
    assert_non_null(body);
    json_t *fields = json_object();
    tenants_validate(body, create, fields);
    json_decref(body);
    return fields;
}

static void test_tenant_bodies_are_validated_field_by_field(void **state) {
    json_t *f = fields_of("{\"name\":\"Acme\",\"erpBaseUrl\":\"http://x\",\"apiKey\":\"k-1\",\"isActive\":false}", true);
    assert_int_equal(json_object_size(f), 0);
    json_decref(f);
    f = fields_of("{}", true);
    assert_int_equal(json_object_size(f), 3);
    assert_string_equal(json_string_value(json_object_get(f, "apiKey")), "required");
    json_decref(f);
    f = fields_of("{}", false);   /* PATCH: nothing is required */
    assert_int_equal(json_object_size(f), 0);
    json_decref(f);
    f = fields_of("{\"name\":\"  \",\"apiKey\":\"has space\",\"isActive\":\"yes\",\"role\":1,\"erpBaseUrl\":7}", false);
    const char *expect[] = {"name", "apiKey", "isActive", "role", "erpBaseUrl"};
    for (size_t i = 0; i < 5; i++)
        if (!json_object_get(f, expect[i])) fail_msg("no reason for %s", expect[i]);
    json_decref(f);
    f = fields_of("{\"name\":\"a\\u0007b\",\"apiKey\":\"\"}", false);
    assert_non_null(json_object_get(f, "name"));
    assert_non_null(json_object_get(f, "apiKey"));
    json_decref(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_non_public_addresses_are_refused),
        cmocka_unit_test(test_local_use_nat64_prefix_is_refused),
        cmocka_unit_test(test_url_syntax),
        cmocka_unit_test(test_check_resolves_names_and_refuses_private_results),
        cmocka_unit_test(test_allow_list_exempts_hosts_and_host_ports),
        cmocka_unit_test(test_connect_guard_checks_every_address_of_a_host_not_allowed),
        cmocka_unit_test(test_tenant_bodies_are_validated_field_by_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
