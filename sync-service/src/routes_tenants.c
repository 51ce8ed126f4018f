/* HTTP in/out for /api/tenants (the tenants admin API). Every route authenticates first;
 * tenants.c decides who may do what and validates. */
#include <stdio.h>

#include "erp_records.h"
#include "erp_sched.h"
#include "erp_status.h"
#include "routes.h"
#include "tenants.h"

static struct sync_ctx *cx_of(struct svc_req *r) { return sync_ctx_of(r->app); }

#define AUTHENTICATED(r, who) SVC_AUTHENTICATED(&cx_of(r)->auth, r, who)

static void h_create(struct svc_req *r) {
    AUTHENTICATED(r, who);
    char id[SVC_UUID_LEN + 1] = "";
    struct svc_result res = tenants_create(cx_of(r), r->cid, &who, r->body, id);
    if (res.st == SVC_CREATED) {
        char loc[64];
        snprintf(loc, sizeof loc, "/api/tenants/%s", id);
        svc_set_header(r, "Location", loc);
    }
    svc_respond_as(r, &who, &res);
}

static void h_list(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_page_params p = SVC_PAGE_PARAMS(r);
    struct svc_result res = tenants_list(cx_of(r), r->cid, &who, &p);
    svc_respond_as(r, &who, &res);
}

static void h_get(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = tenants_get(cx_of(r), r->cid, &who, svc_param(r, "id"));
    svc_respond_as(r, &who, &res);
}

static void h_patch(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = tenants_patch(cx_of(r), r->cid, &who, svc_param(r, "id"), r->body);
    svc_respond_as(r, &who, &res);
}

static void h_delete(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = tenants_delete(cx_of(r), r->cid, &who, svc_param(r, "id"));
    svc_respond_as(r, &who, &res);
}

static void records(struct svc_req *r, enum erp_kind kind) {
    AUTHENTICATED(r, who);
    struct erp_records_query q = {.page = SVC_PAGE_PARAMS(r),
                                  .updated_since = svc_query(r, "updatedSince"),
                                  .deleted = svc_query(r, "deleted")};
    struct svc_result res = erp_records_list(cx_of(r), r->cid, &who, svc_param(r, "id"), kind, &q);
    svc_respond_as(r, &who, &res);
}

static void h_customers(struct svc_req *r) { records(r, ERP_CUSTOMERS); }

/* 202 with the job(s) queued; errors as usual. */
static void accepted(struct svc_req *r, struct svc_principal *who, struct svc_result *res) {
    if (res->st == SVC_OK) {
        svc_principal_clear(who);
        svc_respond_json(r, 202, res->body);
        res->body = NULL;
        svc_result_clear(res);
        return;
    }
    svc_respond_as(r, who, res);
}

static void h_status(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = erp_tenant_status(cx_of(r), r->cid, &who, svc_param(r, "id"));
    svc_respond_as(r, &who, &res);
}

static void h_sync_tenant(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = erp_trigger_tenant(cx_of(r), r->cid, &who, svc_param(r, "id"), r->body);
    accepted(r, &who, &res);
}

static void h_sync_all(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = erp_trigger_all(cx_of(r), r->cid, &who, r->body);
    accepted(r, &who, &res);
}
static void h_products(struct svc_req *r) { records(r, ERP_PRODUCTS); }

const struct svc_route routes_tenants[] = {
    {"POST", "/api/tenants/sync", h_sync_all, SVC_ROUTE_JSON, 0},
    {"POST", "/api/tenants", h_create, SVC_ROUTE_JSON, 0},
    {"GET", "/api/tenants", h_list, 0, 0},
    {"GET", "/api/tenants/{id}", h_get, 0, 0},
    {"PATCH", "/api/tenants/{id}", h_patch, SVC_ROUTE_JSON, 0},
    {"DELETE", "/api/tenants/{id}", h_delete, 0, 0},
    {"GET", "/api/tenants/{id}/customers", h_customers, 0, 0},
    {"GET", "/api/tenants/{id}/products", h_products, 0, 0},
    {"POST", "/api/tenants/{id}/sync", h_sync_tenant, SVC_ROUTE_JSON, 0},
    {"GET", "/api/tenants/{id}/status", h_status, 0, 0},
};
const int routes_tenants_count = (int)(sizeof routes_tenants / sizeof routes_tenants[0]);
