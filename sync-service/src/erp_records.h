/* GET /api/tenants/{id}/customers and /products: what the ERP synchronisation stored for a
 * tenant, admins only, in the platform's cursor paging ({"data","next_cursor","has_more"}) by the
 * ERP's id. Filters: updatedSince (RFC 3339; records whose source updated_at is at or after it)
 * and deleted (default true: records deleted at the source are listed with "deleted": true;
 * deleted=false leaves them out). 404 tenant_not_found for an unknown tenant. */
#ifndef ERP_RECORDS_H
#define ERP_RECORDS_H

#include "erp_page.h"
#include "svc/auth.h"
#include "svc/paging.h"
#include "sync_ctx.h"

struct erp_records_query {
    struct svc_page_params page;
    const char *updated_since;
    const char *deleted;
};

struct svc_result erp_records_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                   const char *tenant_id, enum erp_kind kind, const struct erp_records_query *q);

#endif
