/* HTTP in/out for /api/users. Every route authenticates first; users.c decides who may see what. */
#include "ctx.h"
#include "routes.h"
#include "users.h"

static struct customers_ctx *cx_of(struct svc_req *r) { return customers_ctx_of(r->app); }

#define AUTHENTICATED(r, who) SVC_AUTHENTICATED(&cx_of(r)->auth, r, who)

static void answer(struct svc_req *r, struct svc_principal *who, struct svc_result res) {
    svc_respond_as(r, who, &res);
}

static void h_list(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, users_list(cx_of(r), r->cid, &who, &SVC_PAGE_PARAMS(r), svc_query(r, "search"),
                               svc_query(r, "include_deleted")));
}

static void h_create(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, users_create(cx_of(r), r->cid, &who, r->body));
}

static void h_get(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, users_get(cx_of(r), r->cid, &who, svc_param(r, "id")));
}

static void h_get_by_name(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, users_get_by_name(cx_of(r), r->cid, &who, svc_param(r, "user_name")));
}

static void h_update(struct svc_req *r) {
    AUTHENTICATED(r, who);
    char ip[64];
    svc_client_ip(r, ip, sizeof ip);
    answer(r, &who, users_update(cx_of(r), r->cid, ip, &who, svc_param(r, "id"), r->body));
}

static void h_delete(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, users_delete(cx_of(r), r->cid, &who, svc_param(r, "id")));
}

const struct svc_route routes_users[] = {
    {"GET", "/api/users", h_list, 0, 0},
    {"POST", "/api/users", h_create, SVC_ROUTE_JSON, 0},
    {"GET", "/api/users/by-name/{user_name}", h_get_by_name, 0, 0},
    {"GET", "/api/users/{id}", h_get, 0, 0},
    {"PUT", "/api/users/{id}", h_update, SVC_ROUTE_JSON, 0},
    {"DELETE", "/api/users/{id}", h_delete, 0, 0},
};
const int routes_users_count = (int)(sizeof routes_users / sizeof routes_users[0]);
