/* Request dispatch: correlation id, CORS, limits, routing, body, handler, metrics and access log.
 *
 * Ulfius routes everything to svc_http_dispatch (one catch-all endpoint) and this file does the
 * routing, so unknown routes and wrong methods get the same JSON envelope as every other error
 * and metrics can be labelled by route template. A request goes through named phases, as in
 * Nginx: begin (correlation id, common headers), cors, limits (query parameters, path, header
 * count), route (404/405/preflight), body (size, media type, JSON), handler; each phase either
 * passes the request on or answers it. Ulfius truncates bodies silently at max_post_body_size,
 * which app.c sets to the limit + 1: a received body longer than the limit therefore means "too
 * large", whether or not the client sent Content-Length. */
#include "svc/http.h"
#include "svc/json_text.h"
#include "svc/trace.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "svc/app.h"

#define MAX_SEGMENTS 16

/* Parameter names point at "name}..." inside the (static) template: compare up to the '}'. */
const char *svc_param(const struct svc_req *r, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < r->nparams; i++)
        if (!strncmp(r->pname[i], name, n) && r->pname[i][n] == '}') return r->pval[i];
    return NULL;
}

const char *svc_query(const struct svc_req *r, const char *name) {
    return r->u->map_url ? u_map_get(r->u->map_url, name) : NULL;
}

const char *svc_header(const struct svc_req *r, const char *name) {
    return r->u->map_header ? u_map_get_case(r->u->map_header, name) : NULL;
}

/* A value with a control character (CR/LF above all) would split the header: never sent. */
static bool header_value_ok(const char *v) {
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return false;
    return true;
}

void svc_set_header(struct svc_req *r, const char *name, const char *value) {
    if (!value || !header_value_ok(value)) {
        svc_logf(&r->app->log, SVC_LOG_ERROR, r->cid, "refused a response header value with control characters",
                 "{s:s}", "header", name);
        return;
    }
    u_map_put(r->res->map_header, name, value);
}

void svc_client_ip(const struct svc_req *r, char *out, size_t n) {
    const char *real = svc_header(r, "X-Real-IP");
    if (real && *real && strlen(real) < n && strlen(real) < 64) {
        snprintf(out, n, "%s", real);
        return;
    }
    const struct sockaddr *sa = r->u->client_address;
    if (sa && sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
    } else if (sa && sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
    } else {
        snprintf(out, n, "unknown");
    }
}

static void set_body(struct svc_req *r, int status, const char *ctype, char *owned, size_t len) {
    struct _u_response *res = r->res;
    free(res->binary_body);
    res->binary_body = owned;
    res->binary_body_length = owned ? len : 0;
    res->status = status;
    r->status = status;
    if (ctype) u_map_put(res->map_header, "Content-Type", ctype);
}

void svc_respond_json(struct svc_req *r, int status, json_t *body) {
    if (!body || status == 204) {
        set_body(r, status, NULL, NULL, 0);
        json_decref(body);
        return;
    }
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!s) {
        static const char oom[] = "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\",\"details\":null,\"correlation_id\":null}}";
        char *c = strdup(oom);
        set_body(r, 500, "application/json", c, c ? strlen(c) : 0);
        return;
    }
    set_body(r, status, "application/json", s, strlen(s));
}

void svc_respond_error(struct svc_req *r, int status, const char *code, const char *message,
                       json_t *details) {
    json_t *err = json_pack("{s:{s:s,s:s,s:o,s:s}}", "error", "code", code, "message", message,
                            "details", details ? details : json_null(), "correlation_id", r->cid);
    svc_respond_json(r, status, err);
}

void svc_respond_status(struct svc_req *r, svc_status st, const char *message) {
    svc_respond_error(r, svc_status_http(st), svc_status_code(st), message, NULL);
}

void svc_respond_result(struct svc_req *r, struct svc_result *res) {
    int http = svc_status_http(res->st);
    for (int i = 0; i < SVC_RESULT_MAX_HEADERS; i++)
        if (res->headers[i].name) svc_set_header(r, res->headers[i].name, res->headers[i].value);
    if (http < 300) {
        if (res->raw) {
            size_t len = strlen(res->raw);
            set_body(r, http, "application/json", res->raw, len);
            res->raw = NULL;
        } else {
            svc_respond_json(r, http, res->body);
            res->body = NULL;
        }
    } else {
        unsigned after = res->retry_after_s ? res->retry_after_s : http == 503 ? 1 : 0;
        if (after) {
            char ra[16];
            snprintf(ra, sizeof ra, "%u", after);
            svc_set_header(r, "Retry-After", ra);
        }
        svc_respond_error(r, http, res->code ? res->code : svc_status_code(res->st),
                          res->message ? res->message : "request failed", res->details);
        res->details = NULL;
    }
    svc_result_clear(res);
}

void svc_respond_raw(struct svc_req *r, int status, const char *content_type, const char *body,
                     size_t len) {
    char *c = malloc(len + 1);
    if (!c) { svc_respond_status(r, SVC_INTERNAL, "out of memory"); return; }
    memcpy(c, body, len);
    c[len] = '\0';
    set_body(r, status, content_type, c, len);
}

static int hexval(int ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes in place; returns false on a bad escape or an encoded NUL. */
static bool pct_decode(char *s) {
    char *w = s;
    for (char *p = s; *p; p++) {
        if (*p == '%') {
            int hi = hexval((unsigned char)p[1]), lo = hi >= 0 ? hexval((unsigned char)p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
            *w++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return true;
}

int svc_path_split(char *path, char *segs[], int max) {
    int n = 0;
    char *p = path;
    while (*p == '/') p++;
    while (*p) {
        if (n >= max) return -1;
        char *start = p;
        while (*p && *p != '/') p++;
        if (*p) *p++ = '\0';
        if (!pct_decode(start)) return -1;
        segs[n++] = start;
        while (*p == '/') p++; /* collapse // */
    }
    return n;
}

bool svc_route_match(const char *tmpl, char *segs[], int nseg, struct svc_req *r) {
    r->nparams = 0;
    const char *t = tmpl;
    int i = 0;
    while (*t == '/') t++;
    while (*t) {
        const char *end = strchr(t, '/');
        size_t len = end ? (size_t)(end - t) : strlen(t);
        if (i >= nseg) return false;
        if (len >= 2 && t[0] == '{' && t[len - 1] == '}') {
            if (r->nparams >= SVC_MAX_PARAMS || !*segs[i]) return false;
            r->pname[r->nparams] = t + 1;
            r->pval[r->nparams] = segs[i];
            r->nparams++;
        } else if (strlen(segs[i]) != len || strncmp(segs[i], t, len) != 0) {
            return false;
        }
        i++;
        t += len;
        while (*t == '/') t++;
    }
    return i == nseg;
}

/* Whether the media type of Content-Type ct is want (parameters such as charset ignored). */
static bool is_media_type(const char *ct, const char *want) {
    if (!ct) return false;
    while (*ct == ' ') ct++;
    size_t n = strlen(want);
    if (strncasecmp(ct, want, n) != 0) return false;
    char c = ct[n];
    return c == '\0' || c == ';' || c == ' ';
}

bool svc_is_json_content_type(const char *ct) { return is_media_type(ct, "application/json"); }

const char *svc_raw_body(const struct svc_req *r, size_t *len) {
    *len = r->u->binary_body ? r->u->binary_body_length : 0;
    return *len ? (const char *)r->u->binary_body : "";
}

static long now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000L + ts.tv_nsec / 1000;
}

static bool origin_allowed(const struct svc_app *app, const char *origin, bool *wildcard) {
    *wildcard = false;
    for (int i = 0; i < app->norigins; i++) {
        if (!strcmp(app->origins[i], "*")) { *wildcard = true; return true; }
        if (!strcmp(app->origins[i], origin)) return true;
    }
    return false;
}

static void add_allow(char *allow, size_t n, const char *method) {
    /* de-duplicate: method lists are tiny */
    const char *p = allow;
    size_t ml = strlen(method);
    while ((p = strstr(p, method)) != NULL) {
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0')) return;
        p += ml;
    }
    size_t len = strlen(allow);
    snprintf(allow + len, n - len, "%s%s", len ? ", " : "", method);
}

static void access_log(struct svc_req *r, const char *method, const char *route, double ms) {
    char fields[600];
    /* route templates and methods come from our own tables or a validated verb: no escaping
     * needed beyond what snprintf gives; the raw path is not logged (it can carry user names).
     * The caller's span (hex) lets a reader rebuild the tree of a trace from the logs. */
    const struct svc_trace *tr = svc_trace_current();
    snprintf(fields, sizeof fields,
             "{\"method\":\"%.16s\",\"route\":\"%.200s\",\"status\":%d,\"duration_ms\":%.3f%s%s%s}",
             method, route, r->status, ms, tr && tr->parent_id[0] ? ",\"parent_span_id\":\"" : "",
             tr && tr->parent_id[0] ? tr->parent_id : "", tr && tr->parent_id[0] ? "\"" : "");
    svc_log_fields_json(&r->app->log, SVC_LOG_INFO, r->cid, "request", fields);
}

static void too_large(struct svc_req *r, long limit) {
    json_t *d = json_pack("{s:I}", "max_bytes", (json_int_t)limit);
    svc_respond_error(r, 413, "payload_too_large", "request body exceeds the size limit", d);
}

static bool sane_method(const char *m) {
    if (!m || !*m || strlen(m) > 16) return false;
    for (; *m; m++)
        if (!isupper((unsigned char)*m)) return false;
    return true;
}

/* ---- the phases of a request, in order. Each phase either lets the request go on (returns
 * true) or has answered it (returns false). ------------------------------------------------- */

/* Correlation id, the request's span (W3C traceparent/tracestate, svc/trace.h: continued from
 * the caller or started here; the thread's current span until the request ends), headers every
 * answer carries. */
static void phase_begin(struct svc_req *r) {
    struct svc_app *app = r->app;
    const char *cid = svc_header(r, "X-Correlation-ID");
    if (!svc_cid_is_sane(cid)) cid = svc_header(r, "X-Request-ID");
    if (svc_cid_is_sane(cid)) snprintf(r->cid, sizeof r->cid, "%s", cid);
    else svc_uuid4(r->cid);
    struct svc_trace tr;
    svc_trace_begin(&tr, svc_header(r, "traceparent"), svc_header(r, "tracestate"));
    svc_trace_set(&tr);
    svc_set_header(r, "X-Correlation-ID", r->cid);
    if (atomic_load(&app->draining)) svc_set_header(r, "Connection", "close");
    const char *proto = svc_header(r, "X-Forwarded-Proto");
    if (proto && !strcasecmp(proto, "https"))
        svc_set_header(r, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
}

/* CORS response headers for an allowed Origin; *cors_ok tells the OPTIONS answer. */
static void phase_cors(struct svc_req *r, const char *origin, bool *cors_ok) {
    struct svc_app *app = r->app;
    bool wildcard = false;
    *cors_ok = false;
    if (!origin || app->norigins == 0 || !origin_allowed(app, origin, &wildcard)) return;
    *cors_ok = true;
    svc_set_header(r, "Access-Control-Allow-Origin", wildcard ? "*" : origin);
    if (!wildcard) {
        svc_set_header(r, "Vary", "Origin");
        if (app->cors_credentials) svc_set_header(r, "Access-Control-Allow-Credentials", "true");
    }
    svc_set_header(r, "Access-Control-Expose-Headers", "X-Correlation-ID, Retry-After, Idempotent-Replayed");
}

/* The declared request limits (SVC_MAX_QUERY_PARAMS, SVC_MAX_HEADERS, SVC_PATH_MAX), answered
 * in the envelope. libmicrohttpd's per-connection memory (HTTP_CONNECTION_MEMORY_BYTES) is sized,
 * and a long query cut before it is stored (cut_query in app.c), so that a request over these
 * limits still reaches this phase. */
static bool phase_limits(struct svc_req *r) {
    const struct _u_request *u = r->u;
    int nquery = u->map_url ? u_map_count(u->map_url) : 0;
    if (nquery > SVC_MAX_QUERY_PARAMS) {
        svc_respond_error(r, 414, "uri_too_long", "too many query parameters",
                          json_pack("{s:i}", "max_parameters", SVC_MAX_QUERY_PARAMS));
        return false;
    }
    if (u->url_path && strlen(u->url_path) >= SVC_PATH_MAX) {
        svc_respond_error(r, 414, "uri_too_long", "the request path is too long",
                          json_pack("{s:i}", "max_bytes", SVC_PATH_MAX - 1));
        return false;
    }
    int nheaders = u->map_header ? u_map_count(u->map_header) : 0;
    if (nheaders > SVC_MAX_HEADERS) {
        svc_respond_error(r, 431, "headers_too_large", "too many request headers",
                          json_pack("{s:i}", "max_headers", SVC_MAX_HEADERS));
        return false;
    }
    return true;
}

/* The declared body size: Content-Length or the bytes received, whichever is larger (Ulfius
 * stops storing at the limit + 1, so a larger received body means "too large"). An unparsable
 * Content-Length counts as infinite. */
static unsigned long long body_length(const struct svc_req *r) {
    const char *cl = svc_header(r, "Content-Length");
    unsigned long long n = 0;
    if (cl) {
        if (!*cl) n = ULLONG_MAX;
        for (const char *p = cl; *p; p++) {
            if (*p < '0' || *p > '9' || n > (ULLONG_MAX - 9) / 10) {
                n = ULLONG_MAX;
                break;
            }
            n = n * 10 + (unsigned)(*p - '0');
        }
    }
    if (r->u->binary_body_length > n) n = r->u->binary_body_length;
    return n;
}

/* Finds the route for method + path. Without one, answers 404, 405 (with Allow) or the CORS
 * preflight, and returns NULL. */
static const struct svc_route *phase_route(struct svc_req *r, char *segs[], int nseg, bool cors_ok,
                                           unsigned long long body_len) {
    struct svc_app *app = r->app;
    const struct _u_request *u = r->u;
    char allow[128] = "";
    const struct svc_route *chosen = NULL;
    if (nseg >= 0) {
        for (int i = 0; i < app->nroutes; i++) {
            const struct svc_route *rt = &app->routes[i];
            if (!svc_route_match(rt->tmpl, segs, nseg, r)) continue;
            add_allow(allow, sizeof allow, rt->method);
            if (!chosen && !strcmp(rt->method, u->http_verb)) chosen = rt;
        }
    }
    if (chosen) {
        svc_route_match(chosen->tmpl, segs, nseg, r); /* bind the chosen route's parameters */
        return chosen;
    }
    const char *origin = svc_header(r, "Origin");
    if (body_len > (unsigned long long)app->max_bulk_body_bytes) {
        too_large(r, app->max_body_bytes); /* over every limit, whatever the route */
    } else if (!allow[0]) {
        svc_respond_error(r, 404, "not_found", "no such route", NULL);
    } else if (!strcmp(u->http_verb, "OPTIONS")) {
        add_allow(allow, sizeof allow, "OPTIONS");
        svc_set_header(r, "Allow", allow);
        if (origin && app->norigins > 0 && !cors_ok) {
            svc_respond_error(r, 403, "origin_not_allowed", "CORS origin not allowed", NULL);
        } else {
            if (cors_ok) {
                svc_set_header(r, "Access-Control-Allow-Methods", allow);
                svc_set_header(r, "Access-Control-Allow-Headers",
                               "Authorization, Content-Type, Idempotency-Key, X-Correlation-ID");
                svc_set_header(r, "Access-Control-Max-Age", "600");
            }
            svc_respond_json(r, 204, NULL);
        }
    } else {
        add_allow(allow, sizeof allow, "OPTIONS");
        svc_set_header(r, "Allow", allow);
        json_t *d = json_pack("{s:s}", "allow", allow);
        svc_respond_error(r, 405, "method_not_allowed", "method not allowed on this route", d);
    }
    return NULL;
}

/* The route's body rules: size limit, media type, and for JSON routes a JSON object in r->body.
 * Bodies of every media type arrive here unparsed (app.c turns libmicrohttpd's form post
 * processor off), so a form or multipart body on a JSON route is a 415 like any other type. */
static bool phase_body(struct svc_req *r, unsigned long long body_len) {
    struct svc_app *app = r->app;
    const struct svc_route *rt = r->route;
    const struct _u_request *u = r->u;
    long limit = (rt->flags & SVC_ROUTE_BULK) ? app->max_bulk_body_bytes : app->max_body_bytes;
    if (body_len > (unsigned long long)limit) {
        too_large(r, limit);
        return false;
    }
    if (!(rt->flags & SVC_ROUTE_JSON)) return true;
    const char *ctype = svc_header(r, "Content-Type");
    if ((rt->flags & SVC_ROUTE_TSV) && is_media_type(ctype, "text/tab-separated-values")) return true;
    if (!svc_is_json_content_type(ctype)) {
        svc_respond_error(r, 415, "unsupported_media_type",
                          (rt->flags & SVC_ROUTE_TSV)
                              ? "Content-Type must be application/json or text/tab-separated-values"
                              : "Content-Type must be application/json",
                          NULL);
        return false;
    }
    json_error_t jerr;
    r->body = u->binary_body_length
                  ? svc_json_load(u->binary_body, u->binary_body_length, JSON_REJECT_DUPLICATES, &jerr)
                  : NULL;
    if (!r->body) {
        /* jansson quotes the input near the error, possibly cut inside a UTF-8 sequence:
         * keep the reason ASCII so the details always pack */
        for (char *p = jerr.text; *p; p++)
            if ((unsigned char)*p >= 0x80) *p = '?';
        json_t *d = u->binary_body_length
                        ? json_pack("{s:i,s:i,s:s}", "line", jerr.line, "column", jerr.column, "reason", jerr.text)
                        : json_pack("{s:s}", "reason", "empty body");
        svc_respond_error(r, 400, "malformed_json", "request body is not valid JSON", d);
        return false;
    }
    if (!json_is_object(r->body)) {
        svc_respond_error(r, 400, "invalid_body", "request body must be a JSON object", NULL);
        return false;
    }
    return true;
}

/* The handler; one that forgot to answer becomes a 500 envelope. */
static void phase_handler(struct svc_req *r) {
    r->route->fn(r);
    if (r->status == 0) {
        svc_log(&r->app->log, SVC_LOG_ERROR, r->cid, "handler returned without a response", NULL);
        svc_respond_status(r, SVC_INTERNAL, "internal error");
    }
}

int svc_http_dispatch(const struct _u_request *u, struct _u_response *res, void *arg) {
    struct svc_app *app = arg;
    long t0 = now_us();
    atomic_fetch_add(&app->inflight, 1);

    struct svc_req *r = calloc(1, sizeof *r);
    if (!r) {
        ulfius_set_string_body_response(res, 500, "{\"error\":{\"code\":\"internal_error\",\"message\":\"out of memory\",\"details\":null,\"correlation_id\":null}}");
        atomic_fetch_sub(&app->inflight, 1);
        return U_CALLBACK_COMPLETE;
    }
    r->app = app;
    r->u = u;
    r->res = res;
    const char *method = sane_method(u->http_verb) ? u->http_verb : "OTHER";

    phase_begin(r);
    bool cors_ok;
    phase_cors(r, svc_header(r, "Origin"), &cors_ok);
    if (!phase_limits(r)) goto done;

    unsigned long long body_len = body_length(r);
    char *segs[MAX_SEGMENTS];
    int nseg = -1;
    size_t plen = u->url_path ? strlen(u->url_path) : 0;
    if (plen < sizeof r->pathbuf) {
        memcpy(r->pathbuf, u->url_path ? u->url_path : "", plen + 1);
        nseg = svc_path_split(r->pathbuf, segs, MAX_SEGMENTS);
    }
    r->route = phase_route(r, segs, nseg, cors_ok, body_len);
    if (!r->route) goto done;
    if (!phase_body(r, body_len)) goto done;
    phase_handler(r);

done:;
    double secs = (double)(now_us() - t0) / 1e6;
    svc_metrics_observe(&app->metrics, r->route ? r->route->metrics_idx : app->unmatched_metrics_idx, r->status, secs);
    access_log(r, method, r->route ? r->route->tmpl : "unmatched", secs * 1000.0);
    svc_trace_set(NULL);
    json_decref(r->body);
    free(r);
    atomic_store(&app->last_request_ms, svc_now_ms());
    atomic_fetch_sub(&app->inflight, 1);
    return U_CALLBACK_COMPLETE;
}
