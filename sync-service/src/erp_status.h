/* GET /api/tenants/{id}/status: where a tenant's synchronisation stands (admin).
 *
 *   {"tenant_id","state":"ok"|"failing"|"auth_failed"|"inactive",
 *    "kinds":{"customers":{"last_run":{job run}|null,"next_slot","next_start","queued","running",
 *                          "watermark","auth_failed"},"products":{…}},
 *    "lock":{"held","holder","expires_at"},"breaker":"closed"|"open"|"half_open"|null}
 *
 * state: inactive when the tenant is not active; else auth_failed when its ERP refused the key
 * (401) on the last attempt of a kind; else failing when the newest job of a kind failed or was
 * dead-lettered; else ok. next_slot is the kind's next cron slot (null when off), next_start that
 * plus this tenant's jitter offset. queued: a job of the kind waits (the queue's unique key is
 * held) and is not the one running; running: the tenant's lock is held by a job of the kind.
 * breaker: this instance's view of the tenant's ERP circuit breaker (null before its first call
 * here). Reads PostgreSQL and Redis; no write. */
#ifndef ERP_STATUS_H
#define ERP_STATUS_H

#include "svc/auth.h"
#include "sync_ctx.h"

struct svc_result erp_tenant_status(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                    const char *tenant_id);

#endif
