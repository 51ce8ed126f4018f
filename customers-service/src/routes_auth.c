/* HTTP in/out for the /api/auth endpoints and /.well-known/jwks.json. */
#include "ctx.h"
#include "routes.h"
#include "sessions.h"
#include "users.h"

static struct customers_ctx *cx_of(struct svc_req *r) { return customers_ctx_of(r->app); }

static void h_register(struct svc_req *r) {
    struct svc_result res = users_register(cx_of(r), r->cid, r->body);
    svc_respond_result(r, &res);
}

static void h_login(struct svc_req *r) {
    char ip[64];
    svc_client_ip(r, ip, sizeof ip);
    struct svc_result res = sessions_login(cx_of(r), r->cid, ip, r->body);
    svc_respond_result(r, &res);
}

static void h_refresh(struct svc_req *r) {
    struct svc_result res = sessions_refresh(cx_of(r), r->cid, r->body);
    svc_respond_result(r, &res);
}

static void h_logout(struct svc_req *r) {
    struct svc_principal who;
    if (!svc_authenticate(&cx_of(r)->auth, r, &who)) return;
    struct svc_result res = sessions_logout(cx_of(r), r->cid, &who);
    svc_principal_clear(&who);
    svc_respond_result(r, &res);
}

static void h_me(struct svc_req *r) {
    struct svc_principal who;
    if (!svc_authenticate(&cx_of(r)->auth, r, &who)) return;
    struct svc_result res = users_get(cx_of(r), r->cid, &who, who.sub);
    svc_principal_clear(&who);
    svc_respond_result(r, &res);
}

static void h_token(struct svc_req *r) {
    struct svc_result res = sessions_client_token(cx_of(r), r->cid, r->body);
    svc_respond_result(r, &res);
}

static void h_jwks(struct svc_req *r) {
    json_t *jwks = svc_jwt_jwks(cx_of(r)->auth.keys);
    if (!jwks) {
        svc_respond_status(r, SVC_INTERNAL, "cannot render the key set");
        return;
    }
    svc_respond_json(r, 200, jwks);
    svc_set_header(r, "Cache-Control", "public, max-age=300");
}

const struct svc_route routes_auth[] = {
    {"POST", "/api/auth/register", h_register, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/login", h_login, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/refresh", h_refresh, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/logout", h_logout, 0, 0},
    {"GET", "/api/auth/me", h_me, 0, 0},
    {"POST", "/api/auth/token", h_token, SVC_ROUTE_JSON, 0},
    {"GET", "/.well-known/jwks.json", h_jwks, 0, 0},
};
const int routes_auth_count = (int)(sizeof routes_auth / sizeof routes_auth[0]);
