/* HTTP in/out for the internal endpoints (service tokens only; Nginx never exposes /internal). */
#include "bulk_upsert.h"
#include "ctx.h"
#include "routes.h"
#include "users.h"

static struct customers_ctx *cx_of(struct svc_req *r) { return customers_ctx_of(r->app); }

static void h_bulk_upsert(struct svc_req *r) {
    struct svc_principal who;
    if (!svc_authenticate_service(&cx_of(r)->auth, r, &who)) return;
    svc_principal_clear(&who);
    struct svc_result res;
    if (r->body) {
        res = users_bulk_upsert(cx_of(r), r->cid, r->body);
    } else {   /* text/tab-separated-values */
        size_t len;
        const char *body = svc_raw_body(r, &len);
        res = users_bulk_upsert_tsv(cx_of(r), r->cid, body, len);
    }
    svc_respond_result(r, &res);
}

static void h_user_status(struct svc_req *r) {
    struct svc_principal who;
    if (!svc_authenticate_service(&cx_of(r)->auth, r, &who)) return;
    svc_principal_clear(&who);
    struct svc_result res = users_internal_status(cx_of(r), r->cid, svc_param(r, "id"));
    svc_respond_result(r, &res);
}

const struct svc_route routes_internal[] = {
    {"POST", "/internal/users/bulk-upsert", h_bulk_upsert, SVC_ROUTE_JSON | SVC_ROUTE_TSV | SVC_ROUTE_BULK, 0},
    {"GET", "/internal/users/{id}", h_user_status, 0, 0},
};
const int routes_internal_count = (int)(sizeof routes_internal / sizeof routes_internal[0]);
