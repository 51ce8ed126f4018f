/* customers-service context: the shared svc_app (first member) plus this service's settings.
 * Built in main.c before serving; afterwards only pools and atomics change. */
#ifndef CUSTOMERS_CTX_H
#define CUSTOMERS_CTX_H

#include "password.h"
#include "svc/app.h"
#include "svc/auth.h"
#include "svc/tcache.h"

#define CUSTOMERS_MAX_CLIENTS 8

struct service_client {
    const char *id;
    char secret_sha256[65];   /* the secret is kept only as a digest */
};

struct customers_ctx {
    struct svc_app app;       /* must stay first: handlers get it from svc_req */
    struct svc_auth auth;
    struct password_params pw_params;
    long access_ttl_s;
    long service_token_ttl_s;
    long refresh_ttl_s;
    long user_cache_ttl_s;
    long login_max_fail_account;
    long login_max_fail_ip;
    long login_window_s;
    long bulk_max_rows;
    const char *admin_user_name;
    const char *admin_password;
    struct service_client clients[CUSTOMERS_MAX_CLIENTS];
    int nclients;
    struct svc_tcache *user_l1;   /* NULL when USER_LOCAL_CACHE_MS=0 */
    long user_local_cache_ms;
    atomic_ulong *cache_hit;
    atomic_ulong *cache_local_hit;
    atomic_ulong *cache_local_miss;
    atomic_ulong *cache_miss;
    atomic_ulong *logins_ok;
    atomic_ulong *logins_failed;
    atomic_ulong *logins_locked;
};

static inline struct customers_ctx *customers_ctx_of(struct svc_app *app) {
    return svc_app_service(app, struct customers_ctx);
}

#endif
