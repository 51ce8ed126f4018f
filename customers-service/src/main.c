/* customers-service entry point: wiring only (config -> pools -> routes -> serve -> shutdown). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctx.h"
#include "routes.h"
#include "svc/crypto.h"
#include "user_cache.h"
#include "users.h"

/* SERVICE_CLIENTS=transactions,sync with SERVICE_CLIENT_<ID>_SECRET_FILE for each: the secrets
 * other services present to POST /api/auth/token. Only their SHA-256 is kept. */
static void load_clients(struct customers_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    const char *list = svc_config_str(c, "SERVICE_CLIENTS", "");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    for (char *id = strtok_r(buf, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
        if (cx->nclients >= CUSTOMERS_MAX_CLIENTS) {
            svc_config_error(c, "SERVICE_CLIENTS", "too many clients");
            return;
        }
        char var[96];
        snprintf(var, sizeof var, "SERVICE_CLIENT_%s_SECRET", id);
        for (char *p = var; *p; p++) *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : (*p == '-' ? '_' : *p));
        const char *secret = svc_config_str(c, var, NULL);
        if (!secret) continue;
        if (strlen(secret) < 16) {
            svc_config_error(c, var, "secret must be at least 16 characters");
            continue;
        }
        char *copy = strdup(id);
        if (!copy) {
            svc_config_error(c, "SERVICE_CLIENTS", "out of memory");
            return;
        }
        struct service_client *sc = &cx->clients[cx->nclients++];
        sc->id = copy;
        svc_sha256_hex(secret, strlen(secret), sc->secret_sha256);
    }
}

static void load_settings(struct customers_ctx *cx) {
    struct svc_config *c = &cx->app.cfg;
    cx->pw_params = PASSWORD_PARAMS_OWASP;
    cx->pw_params.m_cost_kib = (uint32_t)svc_config_int(c, "PASSWORD_ARGON2_MEMORY_KIB", 19456, 1024, 1048576);
    cx->pw_params.t_cost = (uint32_t)svc_config_int(c, "PASSWORD_ARGON2_ITERATIONS", 2, 1, 64);
    cx->access_ttl_s = svc_config_int(c, "ACCESS_TOKEN_TTL_S", 900, 30, 86400);
    cx->service_token_ttl_s = svc_config_int(c, "SERVICE_TOKEN_TTL_S", 300, 30, 3600);
    cx->refresh_ttl_s = svc_config_int(c, "REFRESH_TOKEN_TTL_S", 7 * 86400, 300, 90 * 86400);
    cx->user_cache_ttl_s = svc_config_int(c, "USER_CACHE_TTL_S", 30, 1, 3600);
    cx->user_local_cache_ms = svc_config_int(c, "USER_LOCAL_CACHE_MS", 1000, 0, 1000);
    cx->login_max_fail_account = svc_config_int(c, "LOGIN_MAX_FAILURES_ACCOUNT", 5, 1, 1000);
    cx->login_max_fail_ip = svc_config_int(c, "LOGIN_MAX_FAILURES_IP", 20, 1, 100000);
    cx->login_window_s = svc_config_int(c, "LOGIN_FAILURE_WINDOW_S", 900, 1, 86400);
    cx->bulk_max_rows = svc_config_int(c, "BULK_MAX_ROWS", 5000, 1, 50000);
    cx->admin_user_name = svc_config_str(c, "ADMIN_USER_NAME", "");
    if (!*cx->admin_user_name) cx->admin_user_name = NULL;
    cx->admin_password = cx->admin_user_name ? svc_config_str(c, "ADMIN_PASSWORD", NULL) : NULL;
    if (cx->admin_password) {
        const char *reason = NULL;
        if (!password_policy_check(cx->admin_password, cx->admin_user_name, NULL, &reason))
            svc_config_error(c, "ADMIN_PASSWORD", reason);
    }
    load_clients(cx);
    svc_auth_init(&cx->auth, &cx->app, true);

    struct svc_metrics *m = &cx->app.metrics;
    cx->cache_hit = svc_metrics_counter(m, "cache_requests_total", "cache=\"user\",result=\"hit\"", "User cache lookups.");
    cx->cache_miss = svc_metrics_counter(m, "cache_requests_total", "cache=\"user\",result=\"miss\"", "User cache lookups.");
    cx->cache_local_hit = svc_metrics_counter(m, "cache_requests_total", "cache=\"user_local\",result=\"hit\"", "User cache lookups.");
    cx->cache_local_miss = svc_metrics_counter(m, "cache_requests_total", "cache=\"user_local\",result=\"miss\"", "User cache lookups.");
    cx->logins_ok = svc_metrics_counter(m, "logins_total", "result=\"success\"", "Login attempts by result.");
    cx->logins_failed = svc_metrics_counter(m, "logins_total", "result=\"failure\"", "Login attempts by result.");
    cx->logins_locked = svc_metrics_counter(m, "logins_total", "result=\"locked\"", "Login attempts by result.");
}

int main(void) {
    static struct customers_ctx cx;
    svc_app_init(&cx.app, "customers", "customers");
    load_settings(&cx);
    if (svc_app_check_config(&cx.app) != 0 || svc_app_open(&cx.app) != 0 || users_ensure_admin(&cx) != 0) {
        svc_app_close(&cx.app);
        svc_auth_free(&cx.auth);
        return EXIT_FAILURE;
    }
    if (svc_app_routes(&cx.app, routes_auth, routes_auth_count) != 0 ||
        svc_app_routes(&cx.app, routes_users, routes_users_count) != 0 ||
        svc_app_routes(&cx.app, routes_internal, routes_internal_count) != 0) {
        svc_log(&cx.app.log, SVC_LOG_ERROR, NULL, "too many routes", NULL);
        svc_app_close(&cx.app);
        svc_auth_free(&cx.auth);
        return EXIT_FAILURE;
    }
    if (cx.user_local_cache_ms > 0) {
        cx.user_l1 = svc_tcache_new(&cx.app.redis_cfg, USER_CACHE_PREFIX, 4096, cx.user_local_cache_ms, &cx.app.log);
        if (!cx.user_l1) svc_log(&cx.app.log, SVC_LOG_WARN, NULL, "local user cache unavailable; Redis only", NULL);
    }
    int rc = svc_app_run(&cx.app);
    svc_tcache_free(cx.user_l1);
    svc_auth_free(&cx.auth);
    return rc;
}
