/* sync-service ERP gauges (erp_metrics.h): every series is rendered from the start with zeros
 * (dashboards and alerts must find them on a fresh stack), the tenant counts as sampled, and the
 * per-tenant ERP breakers counted by state as calls fail (erp_client.h; an unreachable ERP on a
 * loopback port nobody listens on, allowed by the operator's list). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "erp_client.h"
#include "erp_metrics.h"

static char *render(struct erp *e) {
    struct svc_buf b;
    svc_buf_init(&b);
    erp_metrics_render(e, &b);
    svc_buf_append(&b, "", 1);
    return b.data;
}

static void assert_has(const char *text, const char *line) {
    char want[200];
    snprintf(want, sizeof want, "\n%s\n", line);
    if (!strstr(text, want)) fail_msg("missing \"%s\" in:\n%s", line, text);
}

static void test_every_series_is_rendered_with_zeros_before_anything_happened(void **state) {
    static struct erp e;
    memset(&e, 0, sizeof e);
    char *t = render(&e);
    assert_has(t, "# TYPE erp_tenants gauge");
    assert_has(t, "erp_tenants{state=\"ok\"} 0");
    assert_has(t, "erp_tenants{state=\"failing\"} 0");
    assert_has(t, "erp_tenants{state=\"auth_failed\"} 0");
    assert_has(t, "erp_tenants{state=\"inactive\"} 0");
    assert_has(t, "erp_tenants_up 0");
    assert_has(t, "# TYPE erp_breakers gauge");
    assert_has(t, "erp_breakers{state=\"closed\"} 0");
    assert_has(t, "erp_breakers{state=\"half_open\"} 0");
    assert_has(t, "erp_breakers{state=\"open\"} 0");
    free(t);

    long long counts[ERP_NSTATES] = {[ERP_TENANT_OK] = 7, [ERP_TENANT_FAILING] = 2, [ERP_TENANT_AUTH_FAILED] = 1,
                                     [ERP_TENANT_INACTIVE] = 3};
    erp_metrics_set_tenants(&e.m, counts);
    t = render(&e);
    assert_has(t, "erp_tenants{state=\"ok\"} 7");
    assert_has(t, "erp_tenants{state=\"failing\"} 2");
    assert_has(t, "erp_tenants{state=\"auth_failed\"} 1");
    assert_has(t, "erp_tenants{state=\"inactive\"} 3");
    assert_has(t, "erp_tenants_up 1");
    free(t);
    /* A failed count keeps the values and says so. */
    erp_metrics_set_tenants(&e.m, NULL);
    t = render(&e);
    assert_has(t, "erp_tenants{state=\"failing\"} 2");
    assert_has(t, "erp_tenants_up 0");
    free(t);
}

/* A loopback port bound without listen(): connections to it are refused at once. */
static int dead_port(int *fd) {
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void call(struct erp_client *c, const char *tenant, const char *url) {
    struct erp_call k = {.tenant_id = tenant, .base_url = url, .api_key = "k", .kind = ERP_CUSTOMERS, .page = 1,
                         .per_page = 10, .since_us = -1, .correlation_id = "test"};
    struct erp_page_fetch f;
    erp_fetch_page(c, &k, &f);
    assert_int_equal(f.outcome, ERP_FETCH_TRANSIENT);
    erp_fetch_free(&f);
}

static void test_breakers_are_counted_by_state_per_tenant(void **state) {
    int fd;
    int port = dead_port(&fd);
    char url[64], allowed[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/erp", port);
    snprintf(allowed, sizeof allowed, "127.0.0.1:%d", port);
    static struct erp e;
    memset(&e, 0, sizeof e);
    const char *why = NULL;
    assert_int_equal(erp_allow_parse(allowed, &e.allow, &why), 0);
    struct erp_client_config cfg = {.connect_timeout_ms = 1000, .timeout_ms = 2000, .max_page_bytes = 1 << 20,
                                    .page_attempts = 1, .breaker_failures = 2, .breaker_open_ms = 60000,
                                    .allow = &e.allow};
    assert_int_equal(erp_client_init(&e.client, &cfg), 0);
    e.client_ready = true;
    long n[3];
    erp_client_breaker_counts(&e.client, n);
    assert_int_equal(n[0] + n[1] + n[2], 0);

    call(&e.client, "tenant-a", url);   /* one failure of two: still closed */
    erp_client_breaker_counts(&e.client, n);
    assert_int_equal(n[SVC_BREAKER_CLOSED], 1);
    assert_int_equal(n[SVC_BREAKER_OPEN], 0);
    call(&e.client, "tenant-a", url);   /* the second: open */
    call(&e.client, "tenant-b", url);   /* another tenant's ERP has its own, closed */
    erp_client_breaker_counts(&e.client, n);
    assert_int_equal(n[SVC_BREAKER_CLOSED], 1);
    assert_int_equal(n[SVC_BREAKER_HALF_OPEN], 0);
    assert_int_equal(n[SVC_BREAKER_OPEN], 1);
    char *t = render(&e);
    assert_has(t, "erp_breakers{state=\"closed\"} 1");
    assert_has(t, "erp_breakers{state=\"open\"} 1");
    free(t);
    erp_client_free(&e.client);
    close(fd);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_series_is_rendered_with_zeros_before_anything_happened),
        cmocka_unit_test(test_breakers_are_counted_by_state_per_tenant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
