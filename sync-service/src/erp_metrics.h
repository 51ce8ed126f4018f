/* The /metrics of the ERP synchronisation that are not plain counters (those are registered in
 * the service's metrics by erp_settings_load: erp_jobs_total, erp_job_deferrals_total,
 * erp_records_total, erp_schedule_total):
 *
 *   erp_tenants{state}   gauge: tenants per sync state (ok, failing, auth_failed, inactive), the
 *                        rule of GET /api/tenants/{id}/status; counted in PostgreSQL every
 *                        ERP_TENANTS_SAMPLE_MS by the scheduler thread (erp_sched.h), 0 until the
 *                        first count. The database's figure: the same from every instance
 *                        (aggregate with max()).
 *   erp_tenants_up       gauge: 1 when this instance's last count succeeded; 0 before the first
 *                        and after a failed one (erp_tenants then keeps the last values; the log
 *                        says why).
 *   erp_breakers{state}  gauge: this instance's per-tenant ERP circuit breakers (erp_client.h) by
 *                        state: closed, half_open, open (a breaker exists once the instance has
 *                        called that tenant's ERP).
 *
 * Every series is rendered from the start, zeros included, so dashboards and alerts find them on
 * a fresh stack. Synchronisation: relaxed atomics and the client's breaker-table mutex; renders
 * from any thread. Borrows everything. */
#ifndef ERP_METRICS_H
#define ERP_METRICS_H

#include "erp_ctx.h"
#include "svc/buf.h"

/* Stores one count of the tenants per state (indexed by enum erp_tenant_state); counts NULL:
 * the count failed (the values stay, erp_tenants_up goes to 0). */
void erp_metrics_set_tenants(struct erp_metrics *m, const long long counts[ERP_NSTATES]);
/* Appends the families above; the breakers only when the client is ready (else all 0). */
void erp_metrics_render(struct erp *e, struct svc_buf *out);

#endif
