/* HTTP in/out for the operator dashboard: the page, its files and its JSON calls under
 * /admin/dashboard (registered only when ENABLE_QUEUE_DASHBOARD=true; otherwise the router
 * answers 404 for all of it). Every route passes the dashboard's gate first (basic auth, failed
 * attempts limited per address); POSTs also need the session's CSRF token and the dashboard's
 * own origin. dash_auth.c holds the rules, dash_api.c and sync_runs.c the use cases. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/paging.h"
#include "dash_api.h"
#include "dash_assets.h"
#include "dash_auth.h"
#include "sync_ctx.h"
#include "routes.h"
#include "sync_runs.h"

/* The page's own policy: its files only, no inline script or style, never framed. */
#define DASH_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " \
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static struct sync_ctx *cx_of(struct svc_req *r) { return sync_ctx_of(r->app); }

/* Basic auth with failures counted per client address. Answers 401/429/503 itself. */
static bool gate(struct svc_req *r) {
    struct sync_ctx *cx = cx_of(r);
    svc_set_header(r, "Content-Security-Policy", DASH_CSP);
    char ip[64];
    svc_client_ip(r, ip, sizeof ip);
    long fails = 0, retry_s = 1;
    svc_status st = dash_auth_failures(cx->app.redis, ip, &fails, &retry_s);
    if (st != SVC_OK) {
        svc_set_header(r, "Retry-After", "1");
        svc_respond_error(r, 503, "service_unavailable", "the dashboard's session store is unavailable; retry later", NULL);
        return false;
    }
    if (fails >= DASH_MAX_FAILURES) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", retry_s);
        svc_set_header(r, "Retry-After", ra);
        svc_respond_error(r, 429, "too_many_failed_logins", "too many failed logins from this address; retry later", NULL);
        return false;
    }
    const char *authz = svc_header(r, "Authorization");
    if (dash_auth_basic_ok(&cx->dash, authz)) return true;
    if (authz) dash_auth_fail(cx->app.redis, ip);   /* a missing header is a browser's first ask */
    svc_set_header(r, "WWW-Authenticate", "Basic realm=\"queue dashboard\", charset=\"UTF-8\"");
    svc_respond_error(r, 401, "unauthorized", "operator credentials required", NULL);
    return false;
}

/* For POSTs: the session cookie, its CSRF token, and a same-origin request. Answers 403 itself. */
static bool csrf_ok(struct svc_req *r) {
    char session[DASH_SESSION_LEN + 1];
    const char *host = svc_header(r, "X-Forwarded-Host");
    if (!host) host = svc_header(r, "Host");
    bool ok = dash_auth_session_from_cookie(svc_header(r, "Cookie"), session) &&
              dash_auth_csrf_ok(&cx_of(r)->dash, session, svc_header(r, "X-CSRF-Token")) &&
              dash_auth_same_origin(svc_header(r, "Origin"), svc_header(r, "Sec-Fetch-Site"),
                                    svc_header(r, "X-Forwarded-Proto"), host);
    if (!ok) svc_respond_error(r, 403, "csrf_refused", "cross-site or token-less request refused", NULL);
    return ok;
}

/* GET /admin/dashboard: the page, with the session's CSRF token in a meta tag. */
static void h_page(struct svc_req *r) {
    if (!gate(r)) return;
    struct sync_ctx *cx = cx_of(r);
    const struct dash_asset *page = dash_assets_get(&cx->assets, "dashboard.html");
    char session[DASH_SESSION_LEN + 1];
    if (!dash_auth_session_from_cookie(svc_header(r, "Cookie"), session)) {
        if (dash_auth_new_session(session) != 0) {
            svc_respond_status(r, SVC_INTERNAL, "internal error");
            return;
        }
        char cookie[128];
        snprintf(cookie, sizeof cookie, "dash_session=%s; Path=/admin/dashboard; HttpOnly; SameSite=Strict", session);
        svc_set_header(r, "Set-Cookie", cookie);
    }
    char token[DASH_TOKEN_LEN + 1];
    dash_auth_csrf_token(&cx->dash, session, token);
    static const char mark[] = "{{CSRF_TOKEN}}";
    const char *at = page ? strstr(page->data, mark) : NULL;
    if (!at) {
        svc_respond_status(r, SVC_INTERNAL, "dashboard page has no token slot");
        return;
    }
    size_t head = (size_t)(at - page->data), tail = page->len - head - (sizeof mark - 1);
    size_t len = head + DASH_TOKEN_LEN + tail;
    char *html = malloc(len + 1);
    if (!html) {
        svc_respond_status(r, SVC_INTERNAL, "out of memory");
        return;
    }
    memcpy(html, page->data, head);
    memcpy(html + head, token, DASH_TOKEN_LEN);
    memcpy(html + head + DASH_TOKEN_LEN, at + sizeof mark - 1, tail);
    svc_respond_raw(r, 200, page->content_type, html, len);
    free(html);
}

/* GET /admin/dashboard/assets/{name} */
static void h_asset(struct svc_req *r) {
    if (!gate(r)) return;
    const char *name = svc_param(r, "name");
    const struct dash_asset *a = strcmp(name, "dashboard.html") ? dash_assets_get(&cx_of(r)->assets, name) : NULL;
    if (!a) {
        svc_respond_error(r, 404, "not_found", "no such file", NULL);
        return;
    }
    svc_respond_raw(r, 200, a->content_type, a->data, a->len);
}

static void h_overview(struct svc_req *r) {
    if (!gate(r)) return;
    struct svc_result res = dash_overview(cx_of(r), r->cid, true);
    svc_respond_result(r, &res);
}

static void h_jobs(struct svc_req *r) {
    if (!gate(r)) return;
    struct svc_result res = dash_queue_jobs(cx_of(r), r->cid, svc_param(r, "queue"));
    svc_respond_result(r, &res);
}

static void dead_action(struct svc_req *r, const char *action) {
    if (!gate(r) || !csrf_ok(r)) return;
    struct svc_result res = dash_dead_action(cx_of(r), r->cid, svc_param(r, "queue"), action, svc_param(r, "id"));
    svc_respond_result(r, &res);
}
static void h_retry(struct svc_req *r) { dead_action(r, "retry"); }
static void h_remove(struct svc_req *r) { dead_action(r, "remove"); }
static void h_retry_all(struct svc_req *r) { dead_action(r, "retry-all"); }

/* The operator acts as an administrator of the sync API's read-only views. */
static struct svc_principal operator_principal(void) {
    struct svc_principal p = {.is_admin = true};
    snprintf(p.sub, sizeof p.sub, "dashboard-operator");
    snprintf(p.role, sizeof p.role, "admin");
    return p;
}

/* A use case's success body as a JSON value (taken from the result), or NULL. */
static json_t *take_json(struct svc_result *res) {
    json_t *j = NULL;
    if (res->st == SVC_OK) {
        if (res->body) {
            j = res->body;
            res->body = NULL;
        } else if (res->raw) {
            j = json_loads(res->raw, 0, NULL);
        }
    }
    svc_result_clear(res);
    return j;
}

/* GET /admin/dashboard/api/runs: the legacy import's latest run (with live progress) and the
 * last runs. */
static void h_runs(struct svc_req *r) {
    if (!gate(r)) return;
    struct sync_ctx *cx = cx_of(r);
    struct svc_principal op = operator_principal();
    struct svc_result cur = sync_status(cx, r->cid, &op);
    if (cur.st != SVC_OK && cur.st != SVC_NOT_FOUND) {
        svc_respond_result(r, &cur);
        return;
    }
    json_t *current = take_json(&cur);
    struct svc_page_params first = {.limit = "10"};
    struct svc_result hist = sync_history(cx, r->cid, &op, &first);
    if (hist.st != SVC_OK) {
        json_decref(current);
        svc_respond_result(r, &hist);
        return;
    }
    json_t *history = take_json(&hist);
    svc_respond_json(r, 200, json_pack("{s:o,s:o}", "current", current ? current : json_null(), "history",
                                       history ? history : json_null()));
}

/* GET /admin/dashboard/api/job-runs: the job audit, as GET /api/job-runs. */
static void h_job_runs(struct svc_req *r) {
    if (!gate(r)) return;
    struct svc_principal op = operator_principal();
    struct sync_job_runs_query q = {.queue = svc_query(r, "queue"),
                                    .run_id = svc_query(r, "run_id"),
                                    .tenant = svc_query(r, "tenant"),
                                    .status = svc_query(r, "status"),
                                    .from = svc_query(r, "from"),
                                    .to = svc_query(r, "to")};
    struct svc_result res = sync_job_runs(cx_of(r), r->cid, &op, &SVC_PAGE_PARAMS(r), &q);
    svc_respond_result(r, &res);
}

const struct svc_route routes_dashboard[] = {
    {"GET", "/admin/dashboard", h_page, 0, 0},
    {"GET", "/admin/dashboard/assets/{name}", h_asset, 0, 0},
    {"GET", "/admin/dashboard/api/overview", h_overview, 0, 0},
    {"GET", "/admin/dashboard/api/queues/{queue}/jobs", h_jobs, 0, 0},
    {"POST", "/admin/dashboard/api/queues/{queue}/dead/{id}/retry", h_retry, 0, 0},
    {"POST", "/admin/dashboard/api/queues/{queue}/dead/{id}/remove", h_remove, 0, 0},
    {"POST", "/admin/dashboard/api/queues/{queue}/dead/retry-all", h_retry_all, 0, 0},
    {"GET", "/admin/dashboard/api/runs", h_runs, 0, 0},
    {"GET", "/admin/dashboard/api/job-runs", h_job_runs, 0, 0},
};
const int routes_dashboard_count = (int)(sizeof routes_dashboard / sizeof routes_dashboard[0]);
