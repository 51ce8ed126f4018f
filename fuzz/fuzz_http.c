/* The request dispatcher every service runs (shared/src/http.c): limits, correlation id, CORS,
 * path splitting and percent-decoding, routing, 404/405/OPTIONS, body size, media type and JSON
 * body, then the handler; driven with in-memory Ulfius requests (no socket), as
 * tests/unit/test_http_dispatch.c does.
 *
 * Input: an HTTP/1.1-like text, so seeds are easy to write by hand:
 *   METHOD SP path[?query] LF  (Name: value LF)*  LF  body
 * The query is split on '&' and '=' and percent-decoded as libmicrohttpd does before Ulfius
 * fills map_url; the path is passed raw, as Ulfius does. The route table is every service's
 * (templates and flags as registered), with harness handlers that check what they are given.
 *
 * Properties, for every request: one answer with a status of 200..599; an X-Correlation-ID that
 * is the client's sane X-Correlation-ID, else its sane X-Request-ID, else a fresh UUID; no
 * response header value with a control character; HSTS exactly behind an HTTPS proxy; CORS
 * headers exactly for the allowed origin; every 4xx/5xx is the JSON envelope with that
 * correlation id; 405 carries Allow, 503 Retry-After, 413 its limit. And the status is the one a
 * model of the dispatcher's rules written here predicts (limits 414/431, 413 by the declared or
 * received size, an unparsable Content-Length counting as too large, 404/405/204/403 without a
 * route, 415 and 400 for JSON routes), with the route the model picks from its own path
 * splitting, percent-decoding and template matching. */
#define _GNU_SOURCE
#include "fuzz.h"
#include "svc/json_text.h"

#include <ctype.h>
#include <fcntl.h>
#include <jansson.h>
#include <strings.h>
#include <unistd.h>

#include "svc/app.h"
#include "svc/cid.h"
#include "svc/http.h"

#define BODY_LIMIT 256
#define BULK_LIMIT 1024
#define ORIGIN "http://allowed.example"

static struct svc_app app;
static const struct svc_route *ran;   /* the route whose handler ran for this input */
static int handler_status;            /* what it answered (0: nothing) */

static bool header_value_ok(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

/* Checks the parameters the dispatcher bound against the template. */
static void check_params(struct svc_req *r) {
    int want = 0;
    for (const char *t = r->route->tmpl; (t = strchr(t, '{')); t++) {
        const char *end = strchr(t, '}');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - t - 1), t + 1);
        const char *v = svc_param(r, name);
        FUZZ_CHECK(v && *v, "route %s: parameter %s is %s", r->route->tmpl, name, v ? "empty" : "missing");
        want++;
    }
    FUZZ_CHECK(r->nparams == want, "route %s: %d parameters bound", r->route->tmpl, r->nparams);
}

/* Header values built from request data: refused when they hold a control character. */
static void echo_headers(struct svc_req *r) {
    if (r->nparams > 0) svc_set_header(r, "X-Fuzz-Param", r->pval[0]);
    const char *q = svc_query(r, "q");
    if (q) svc_set_header(r, "X-Fuzz-Query", q);
}

static void h_json(struct svc_req *r) {
    ran = r->route;
    check_params(r);
    const char *ct = svc_header(r, "Content-Type");
    if (r->body) {
        FUZZ_CHECK(json_is_object(r->body), "JSON route %s got a non-object body", r->route->tmpl);
        svc_respond_json(r, 200, json_incref(r->body));
    } else {
        FUZZ_CHECK(r->route->flags & SVC_ROUTE_TSV, "JSON route %s got no body", r->route->tmpl);
        FUZZ_CHECK(ct && strcasestr(ct, "text/tab-separated-values"), "TSV body with Content-Type %s", ct);
        size_t n;
        svc_raw_body(r, &n);
        svc_respond_json(r, 200, json_pack("{s:I}", "bytes", (json_int_t)n));
    }
    handler_status = r->status;
}

static void h_plain(struct svc_req *r) {
    ran = r->route;
    check_params(r);
    FUZZ_CHECK(!r->body, "route %s without a JSON body got one", r->route->tmpl);
    echo_headers(r);
    svc_respond_json(r, 200, json_pack("{s:i}", "params", r->nparams));
    handler_status = r->status;
}

/* A dependency outage, with the client's Retry-After when it gave one in ?after=. */
static void h_unavailable(struct svc_req *r) {
    ran = r->route;
    const char *after = svc_query(r, "after");
    if (after) svc_set_header(r, "Retry-After", after);
    struct svc_result res = SVC_RESULT_ERR(SVC_UNAVAILABLE, "dependency_down", "try later");
    svc_respond_result(r, &res);
    handler_status = r->status;
}

/* A handler that forgets to answer: the dispatcher answers 500. */
static void h_silent(struct svc_req *r) { ran = r->route; }

static const struct svc_route routes[] = {
    /* customers-service */
    {"GET", "/api/users", h_plain, 0, 0},
    {"POST", "/api/users", h_json, SVC_ROUTE_JSON, 0},
    {"GET", "/api/users/by-name/{user_name}", h_plain, 0, 0},
    {"GET", "/api/users/{id}", h_plain, 0, 0},
    {"PUT", "/api/users/{id}", h_json, SVC_ROUTE_JSON, 0},
    {"DELETE", "/api/users/{id}", h_plain, 0, 0},
    {"POST", "/internal/users/bulk-upsert", h_json, SVC_ROUTE_JSON | SVC_ROUTE_TSV | SVC_ROUTE_BULK, 0},
    {"GET", "/internal/users/{id}", h_plain, 0, 0},
    {"POST", "/api/auth/register", h_json, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/login", h_json, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/refresh", h_json, SVC_ROUTE_JSON, 0},
    {"POST", "/api/auth/logout", h_plain, 0, 0},
    {"GET", "/api/auth/me", h_plain, 0, 0},
    {"POST", "/api/auth/token", h_json, SVC_ROUTE_JSON, 0},
    {"GET", "/.well-known/jwks.json", h_plain, 0, 0},
    /* transactions-service */
    {"POST", "/api/transactions", h_json, SVC_ROUTE_JSON, 0},
    {"GET", "/api/transactions", h_plain, 0, 0},
    {"GET", "/api/transactions/summary", h_unavailable, 0, 0},
    {"GET", "/api/transactions/{id}", h_plain, 0, 0},
    {"POST", "/api/transactions/{id}/reverse", h_plain, 0, 0},
    {"GET", "/api/accounts/me/balance", h_plain, 0, 0},
    /* sync-service */
    {"POST", "/api/sync", h_plain, 0, 0},
    {"GET", "/api/sync/status", h_plain, 0, 0},
    {"GET", "/api/sync/history", h_plain, 0, 0},
    {"GET", "/api/sync/{id}", h_plain, 0, 0},
    {"GET", "/api/sync/{id}/errors", h_plain, 0, 0},
    {"GET", "/api/job-runs", h_silent, 0, 0},
    {"GET", "/admin/queues", h_plain, 0, 0},
    /* built in (app.c) */
    {"GET", "/health/live", h_plain, 0, 0},
    {"GET", "/health/ready", h_plain, 0, 0},
    {"GET", "/metrics", h_plain, 0, 0},
};
#define NROUTES ((int)(sizeof routes / sizeof routes[0]))

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull < 0) abort();
    svc_log_init(&app.log, "fuzz", "fuzz-1", "debug", devnull);
    app.service = "fuzz";
    app.max_body_bytes = BODY_LIMIT;
    app.max_bulk_body_bytes = BULK_LIMIT;
    app.origins[0] = ORIGIN;
    app.norigins = 1;
    app.cors_credentials = true;
    svc_metrics_init(&app.metrics, "fuzz");
    app.unmatched_metrics_idx = svc_metrics_route(&app.metrics, "ANY", "unmatched");
    if (svc_app_routes(&app, routes, NROUTES) != 0) abort();
    return 0;
}

/* ---------------------------------------------------------------- the request */

static int hexv(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* libmicrohttpd's unescaping of a query key or value: %XX decoded, a bad escape kept as is
 * ("%00" too: map values are C strings). */
static void query_unescape(char *s) {
    char *w = s;
    for (char *p = s; *p; p++) {
        int hi, lo;
        if (*p == '%' && (hi = hexv((unsigned char)p[1])) >= 0 && (lo = hexv((unsigned char)p[2])) >= 0 && (hi | lo)) {
            *w++ = (char)(hi << 4 | lo);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

static void put_query(struct _u_map *m, char *q) {
    for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        if (eq) *eq = '\0';
        query_unescape(kv);
        if (eq) query_unescape(eq + 1);
        u_map_put(m, kv, eq ? eq + 1 : "");
    }
}

/* Builds req from the input text; false when there is no request line. */
static bool build(struct _u_request *req, const uint8_t *data, size_t size) {
    const uint8_t *end = data + size, *p = data;
    const uint8_t *nl = memchr(p, '\n', size);
    char *line = fuzz_strndup(p, nl ? (size_t)(nl - p) : size);
    char *sp = strchr(line, ' ');
    if (sp) *sp = '\0';
    req->http_verb = strdup(line);
    char *target = sp ? sp + 1 : (char *)"/";
    char *qm = strchr(target, '?');
    if (qm) *qm = '\0';
    req->url_path = strdup(target);
    if (qm) put_query(req->map_url, qm + 1);
    free(line);
    p = nl ? nl + 1 : end;
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n == 0) { p++; break; }
        char *h = fuzz_strndup(p, n);
        char *colon = strchr(h, ':');
        const char *value = "";
        if (colon) {
            *colon = '\0';
            value = colon + 1;
            while (*value == ' ') value++;
        }
        u_map_put(req->map_header, h, value);
        free(h);
        p = nl ? nl + 1 : end;
    }
    if (p < end) {
        req->binary_body = malloc((size_t)(end - p));
        memcpy(req->binary_body, p, (size_t)(end - p));
        req->binary_body_length = (size_t)(end - p);
    }
    return true;
}

/* ---------------------------------------------------------------- the model */

/* The path's segments, percent-decoded; -1 when an escape is bad or encodes NUL, or when there
 * are more than 16 segments. */
static int model_segments(const char *path, char segs[16][SVC_PATH_MAX]) {
    int n = 0;
    for (const char *p = path; *p;) {
        if (*p == '/') { p++; continue; }
        if (n == 16) return -1;
        size_t o = 0;
        for (; *p && *p != '/'; p++) {
            if (*p != '%') { segs[n][o++] = *p; continue; }
            int hi = hexv((unsigned char)p[1]), lo = hi >= 0 ? hexv((unsigned char)p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return -1;
            segs[n][o++] = (char)(hi << 4 | lo);
            p += 2;
        }
        segs[n][o] = '\0';
        n++;
    }
    return n;
}

static bool model_match(const char *tmpl, char segs[16][SVC_PATH_MAX], int nseg) {
    int i = 0;
    for (const char *t = tmpl; *t;) {
        if (*t == '/') { t++; continue; }
        size_t len = strcspn(t, "/");
        if (i >= nseg) return false;
        if (len >= 2 && t[0] == '{' && t[len - 1] == '}') {
            if (!segs[i][0]) return false;
        } else if (strlen(segs[i]) != len || memcmp(segs[i], t, len) != 0) {
            return false;
        }
        i++;
        t += len;
    }
    return i == nseg;
}

static bool media_is(const char *ct, const char *want) {
    if (!ct) return false;
    while (*ct == ' ') ct++;
    size_t n = strlen(want);
    return !strncasecmp(ct, want, n) && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Content-Length and the received size; an unparsable Content-Length is "infinite". */
static unsigned long long model_body_len(const struct _u_request *req) {
    const char *cl = u_map_get_case(req->map_header, "Content-Length");
    unsigned long long n = 0;
    if (cl) {
        if (!*cl) return ~0ull;
        for (const char *p = cl; *p; p++) {
            if (*p < '0' || *p > '9' || n > (~0ull - 9) / 10) return ~0ull;
            n = n * 10 + (unsigned)(*p - '0');
        }
    }
    return req->binary_body_length > n ? req->binary_body_length : n;
}

/* The status the dispatcher must answer, and the route whose handler must run (or NULL). */
static int model(const struct _u_request *req, const struct svc_route **route_out) {
    static char segs[16][SVC_PATH_MAX];
    *route_out = NULL;
    if (u_map_count(req->map_url) > SVC_MAX_QUERY_PARAMS) return 414;
    if (strlen(req->url_path) >= SVC_PATH_MAX) return 414;
    if (u_map_count(req->map_header) > SVC_MAX_HEADERS) return 431;
    unsigned long long body_len = model_body_len(req);
    int nseg = model_segments(req->url_path, segs);
    const struct svc_route *chosen = NULL;
    bool any = false;
    for (int i = 0; nseg >= 0 && i < NROUTES; i++) {
        if (!model_match(routes[i].tmpl, segs, nseg)) continue;
        any = true;
        if (!chosen && !strcmp(routes[i].method, req->http_verb)) chosen = &routes[i];
    }
    if (!chosen) {
        if (body_len > BULK_LIMIT) return 413;
        if (!any) return 404;
        if (strcmp(req->http_verb, "OPTIONS")) return 405;
        const char *origin = u_map_get_case(req->map_header, "Origin");
        return origin && strcmp(origin, ORIGIN) ? 403 : 204;
    }
    if (body_len > (unsigned long long)((chosen->flags & SVC_ROUTE_BULK) ? BULK_LIMIT : BODY_LIMIT)) return 413;
    *route_out = chosen;
    if (chosen->fn == h_silent) return 500;
    if (chosen->fn == h_unavailable) return 503;
    if (!(chosen->flags & SVC_ROUTE_JSON)) return 200;
    const char *ct = u_map_get_case(req->map_header, "Content-Type");
    if ((chosen->flags & SVC_ROUTE_TSV) && media_is(ct, "text/tab-separated-values")) return 200;
    if (!media_is(ct, "application/json")) { *route_out = NULL; return 415; }
    json_t *body = req->binary_body_length
                       ? svc_json_load(req->binary_body, req->binary_body_length, JSON_REJECT_DUPLICATES, NULL)
                       : NULL;
    int st = json_is_object(body) ? 200 : 400;
    json_decref(body);
    if (st != 200) *route_out = NULL;
    return st;
}

/* ---------------------------------------------------------------- the answer */

static void check_headers(const struct _u_response *res) {
    const char **keys = u_map_enum_keys(res->map_header);
    for (int i = 0; keys && keys[i]; i++) {
        const char *v = u_map_get(res->map_header, keys[i]);
        FUZZ_CHECK(v && header_value_ok(v), "response header %s has a control character", keys[i]);
    }
}

static void check_cid(const struct _u_request *req, const char *cid) {
    const char *a = u_map_get_case(req->map_header, "X-Correlation-ID");
    const char *b = u_map_get_case(req->map_header, "X-Request-ID");
    FUZZ_CHECK(cid && svc_cid_is_sane(cid), "no sane X-Correlation-ID answered");
    if (svc_cid_is_sane(a)) FUZZ_CHECK(!strcmp(cid, a), "correlation id %s, the client sent %s", cid, a);
    else if (svc_cid_is_sane(b)) FUZZ_CHECK(!strcmp(cid, b), "correlation id %s, the client's request id is %s", cid, b);
    else FUZZ_CHECK(svc_uuid_is_valid(cid) && cid[14] == '4', "correlation id %s is not a fresh UUID", cid);
}

/* HSTS behind an HTTPS proxy; CORS headers only for the allowed origin. */
static void check_proxy_and_cors(const struct _u_request *req, const struct _u_response *res) {
    const char *proto = u_map_get_case(req->map_header, "X-Forwarded-Proto");
    bool https = proto && !strcasecmp(proto, "https");
    FUZZ_CHECK(https == (u_map_get(res->map_header, "Strict-Transport-Security") != NULL),
               "HSTS %s for X-Forwarded-Proto %s", https ? "missing" : "sent", proto ? proto : "(none)");
    const char *origin = u_map_get_case(req->map_header, "Origin");
    const char *acao = u_map_get(res->map_header, "Access-Control-Allow-Origin");
    if (origin && !strcmp(origin, ORIGIN)) {
        const char *vary = u_map_get(res->map_header, "Vary"), *cred = u_map_get(res->map_header, "Access-Control-Allow-Credentials");
        FUZZ_CHECK(acao && !strcmp(acao, ORIGIN) && vary && !strcmp(vary, "Origin") && cred && !strcmp(cred, "true"),
                   "CORS headers missing for the allowed origin");
    } else {
        FUZZ_CHECK(!acao && !u_map_get(res->map_header, "Access-Control-Allow-Credentials"),
                   "CORS headers sent for origin %s", origin ? origin : "(none)");
    }
}

static void check_answer(const struct _u_request *req, const struct _u_response *res) {
    const char *cid = u_map_get(res->map_header, "X-Correlation-ID");
    check_cid(req, cid);
    check_headers(res);
    check_proxy_and_cors(req, res);
    FUZZ_CHECK(res->status >= 200 && res->status <= 599, "status %ld", res->status);
    json_t *body = res->binary_body_length ? json_loadb(res->binary_body, res->binary_body_length, 0, NULL) : NULL;
    if (res->status == 204) FUZZ_CHECK(!res->binary_body_length, "204 with a body");
    else FUZZ_CHECK(body, "status %ld without a JSON body", res->status);
    if (res->status >= 400) {
        const json_t *e = json_object_get(body, "error");
        FUZZ_CHECK(json_is_object(e) && json_is_string(json_object_get(e, "code")) &&
                       json_is_string(json_object_get(e, "message")) && json_object_get(e, "details") &&
                       json_is_string(json_object_get(e, "correlation_id")) &&
                       !strcmp(json_string_value(json_object_get(e, "correlation_id")), cid),
                   "status %ld without the error envelope: %.*s", res->status, (int)res->binary_body_length,
                   (const char *)res->binary_body);
        const char *ct = u_map_get(res->map_header, "Content-Type");
        FUZZ_CHECK(ct && !strcmp(ct, "application/json"), "error answered as %s", ct ? ct : "(no type)");
        if (res->status == 413)
            FUZZ_CHECK(json_is_integer(json_object_get(json_object_get(e, "details"), "max_bytes")), "413 without its limit");
    }
    if (res->status == 405) {
        const char *allow = u_map_get(res->map_header, "Allow");
        FUZZ_CHECK(allow && strstr(allow, "OPTIONS"), "405 with Allow %s", allow ? allow : "(none)");
    }
    if (res->status == 503) FUZZ_CHECK(u_map_get_case(res->map_header, "Retry-After"), "503 without Retry-After");
    json_decref(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct _u_request req;
    struct _u_response res;
    if (ulfius_init_request(&req) != U_OK || ulfius_init_response(&res) != U_OK) abort();
    build(&req, data, size);
    ran = NULL;
    handler_status = 0;

    const struct svc_route *want_route;
    int want = model(&req, &want_route);
    FUZZ_CHECK(svc_http_dispatch(&req, &res, &app) == U_CALLBACK_COMPLETE, "dispatch did not complete");
    check_answer(&req, &res);
    FUZZ_CHECK(res.status == want, "%s %.200s: status %ld, the rules say %d", req.http_verb, req.url_path, res.status,
               want);
    /* the app holds copies of the routes: compare what they point at */
    bool same = ran && want_route ? ran->tmpl == want_route->tmpl && ran->method == want_route->method : ran == want_route;
    FUZZ_CHECK(same, "%s %.200s: handler of %s ran, the rules say %s", req.http_verb, req.url_path,
               ran ? ran->tmpl : "none", want_route ? want_route->tmpl : "none");
    if (ran && ran->fn != h_silent) FUZZ_CHECK(handler_status == res.status, "the handler's answer was replaced");
    if (ran && ran->fn == h_plain) {
        const char *q = u_map_get(req.map_url, "q"), *echo = u_map_get(res.map_header, "X-Fuzz-Query");
        if (q && header_value_ok(q)) FUZZ_CHECK(echo && !strcmp(echo, q), "a clean header value was refused");
        else FUZZ_CHECK(!echo, "a header value with a control character was set");
    }

    ulfius_clean_request(&req);
    ulfius_clean_response(&res);
    return 0;
}
