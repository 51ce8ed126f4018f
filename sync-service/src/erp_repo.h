/* SQL for what the ERP synchronisation writes and reads (db/sync/006_erp_data.sql): batches of
 * customers/products, the per-kind sync state, and the synced records' listing.
 *
 * A batch is written in one transaction:
 *   1. the fencing check: the tenant's row is locked and its fence_token compared with the
 *      writer's lock token (erp_lock.h): a smaller token is a writer that lost its lock
 *      (paused, partitioned, killed and replaced) → nothing is written, SVC_CONFLICT; a larger
 *      one becomes the tenant's token. The row lock also serialises two writers of one tenant.
 *   2. direct (the caller knows the tenant had no row of the kind when the job started): one COPY
 *      straight into the table, inside a savepoint; a unique violation (the ERP repeated an id,
 *      or rows appeared meanwhile) rolls back to the savepoint and takes the staged path.
 *   3. staged: COPY into a temporary table, then one INSERT … SELECT DISTINCT ON (newest
 *      updated_at per id, so a batch never meets a key twice) … ON CONFLICT DO UPDATE … WHERE the
 *      stored row is not newer and differs: an unchanged row is not rewritten (no new tuple, its
 *      synced_at stays), a row deleted at the source keeps its data with deleted = true.
 * upserted = rows inserted or changed; unchanged = distinct records of the batch left alone.
 *
 * Errors: SVC_CONFLICT (stale fencing token), SVC_NOT_FOUND (the tenant was deleted meanwhile),
 * SVC_UNAVAILABLE / SVC_TIMEOUT / SVC_INTERNAL. The PGconn is borrowed and left outside any
 * transaction on every path. Nothing here logs. */
#ifndef ERP_REPO_H
#define ERP_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "erp_page.h"
#include "svc/paging.h"
#include "svc/status.h"

struct erp_write_result {
    long long upserted, unchanged;
    bool direct;    /* the batch went in by the direct COPY */
};

svc_status erp_repo_write(PGconn *c, enum erp_kind kind, const char *tenant_id, int64_t fence,
                          const struct erp_batch *b, bool direct, struct erp_write_result *out);

/* Whether the tenant has any row of the kind. */
svc_status erp_repo_has_rows(PGconn *c, enum erp_kind kind, const char *tenant_id, bool *has);

struct erp_state {
    bool has_watermark;
    int64_t watermark_us;   /* µs since the epoch */
    bool auth_failed;
};
svc_status erp_repo_state(PGconn *c, enum erp_kind kind, const char *tenant_id, struct erp_state *out);
/* A complete sync: the new watermark (max of the old and watermark_us; watermark_us 0: keep),
 * auth_failed cleared. Guarded by the fencing token like a batch (SVC_CONFLICT when stale). */
svc_status erp_repo_sync_done(PGconn *c, enum erp_kind kind, const char *tenant_id, int64_t fence,
                              int64_t watermark_us);
/* The ERP refused the tenant's key (401): auth_failed set until a sync succeeds or the key changes. */
svc_status erp_repo_auth_failed(PGconn *c, enum erp_kind kind, const char *tenant_id);

/* Tenants per sync state (counts[enum erp_tenant_state]: ok, failing, auth_failed, inactive), by
 * the rule of GET /api/tenants/{id}/status (erp_status.h): inactive when not active; else
 * auth_failed when a kind's key was refused; else failing when the newest job run of a kind
 * failed or was dead-lettered; else ok. Two index probes per tenant (job_runs by tenant and kind). */
svc_status erp_repo_tenant_states(PGconn *c, long long counts[4]);

/* GET /api/tenants/{id}/customers|products: by external id, after a cursor; updated_since_us < 0:
 * no filter; include_deleted false: only live records. */
extern const struct svc_list ERP_CUSTOMERS_LIST, ERP_PRODUCTS_LIST;
svc_status erp_repo_list(PGconn *c, enum erp_kind kind, const char *tenant_id, const struct svc_page *p,
                         int64_t updated_since_us, bool include_deleted, char **json);

#endif
