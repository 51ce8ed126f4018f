/* Listing of a tenant's synced ERP records (see erp_records.h). */
#include "erp_records.h"

#include <string.h>

#include "erp_repo.h"
#include "svc/cid.h"
#include "svc/pg.h"
#include "tenants_repo.h"

struct svc_result erp_records_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                   const char *tenant_id, enum erp_kind kind, const struct erp_records_query *q) {
    if (!who->is_admin) return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required");
    if (!tenant_id || !svc_uuid_is_valid(tenant_id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
    json_t *fields = json_object();
    struct svc_page p;
    bool ok = svc_page_parse(kind == ERP_CUSTOMERS ? &ERP_CUSTOMERS_LIST : &ERP_PRODUCTS_LIST, &q->page, &p, fields);
    int64_t since = -1;
    if (q->updated_since && erp_parse_rfc3339(q->updated_since, strlen(q->updated_since), &since) != 0) {
        svc_query_reason(fields, "updatedSince", "must be an RFC 3339 date-time");
        ok = false;
    }
    bool include_deleted = true;
    if (!svc_query_bool(fields, "deleted", q->deleted, true, &include_deleted)) ok = false;
    if (!ok) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    char *json = NULL;
    if (c) {
        st = tenants_repo_exists(c, tenant_id);
        if (st == SVC_OK) st = erp_repo_list(c, kind, tenant_id, &p, since, include_deleted, &json);
        svc_pg_release(cx->app.pg, c);
    }
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
    if (st != SVC_OK) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "erp: listing records failed", "{s:s,s:s}", "kind",
                 erp_kind_name(kind), "status", svc_status_code(st));
        return svc_pg_result(st);
    }
    struct svc_result r = {.st = SVC_OK, .raw = json};
    return r;
}
