/* The ERP synchronisation's gauges (see erp_metrics.h). */
#include "erp_metrics.h"

static const char *const TENANT_STATES[ERP_NSTATES] = {"ok", "failing", "auth_failed", "inactive"};
static const char *const BREAKER_STATES[3] = {"closed", "half_open", "open"};

void erp_metrics_set_tenants(struct erp_metrics *m, const long long counts[ERP_NSTATES]) {
    for (int i = 0; counts && i < ERP_NSTATES; i++)
        atomic_store_explicit(&m->tenants[i], counts[i], memory_order_relaxed);
    atomic_store_explicit(&m->tenants_up, counts != NULL, memory_order_relaxed);
}

void erp_metrics_render(struct erp *e, struct svc_buf *out) {
    svc_buf_puts(out, "# HELP erp_tenants Tenants by ERP sync state (ok, failing, auth_failed, inactive; the "
                      "database's, same from every instance), counted every ERP_TENANTS_SAMPLE_MS.\n"
                      "# TYPE erp_tenants gauge\n");
    for (int i = 0; i < ERP_NSTATES; i++)
        svc_buf_printf(out, "erp_tenants{state=\"%s\"} %lld\n", TENANT_STATES[i],
                       atomic_load_explicit(&e->m.tenants[i], memory_order_relaxed));
    svc_buf_printf(out, "# HELP erp_tenants_up 1 when this instance's last count of the tenants' states succeeded.\n"
                        "# TYPE erp_tenants_up gauge\nerp_tenants_up %d\n",
                   atomic_load_explicit(&e->m.tenants_up, memory_order_relaxed) ? 1 : 0);
    long n[3] = {0, 0, 0};
    if (e->client_ready) erp_client_breaker_counts(&e->client, n);
    svc_buf_puts(out, "# HELP erp_breakers This instance's per-tenant ERP circuit breakers by state.\n"
                      "# TYPE erp_breakers gauge\n");
    for (int i = 0; i < 3; i++) svc_buf_printf(out, "erp_breakers{state=\"%s\"} %ld\n", BREAKER_STATES[i], n[i]);
}
