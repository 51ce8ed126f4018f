/* erp-api: a simulator of many tenants' ERPs, speaking the ERP contract sync-service uses
 * (docs/operations.md, "The ERP contract"; README.md here for the knobs and the control API).
 *
 *   GET /tenants/{tenant}/customers|products?page=&per_page=&updated_since=   (X-Api-Key)
 *   PUT|PATCH|GET|DELETE /_sim/tenants/{tenant}, POST /_sim/tenants/{tenant}/advance
 *   GET|PATCH /_sim/defaults;  GET|DELETE /stats, GET /stats/starts;  GET /health
 *
 * libmicrohttpd directly (like tools/legacy-api), one thread per connection, because a simulated
 * latency or a hanging call sleeps inside the handler. A request's tenant is counted as busy
 * (its concurrency) from the moment its headers arrive until MHD reports the answer sent or the
 * connection gone, which is what "never two calls at once per tenant" is measured with.
 * Shutdown: SIGTERM/SIGINT → stop accepting, end sleeps at once, stop the daemon, exit 0.
 * Responses, the fault RNG and the daemon's setup are tools/simlib's (sim.h), shared with
 * tools/legacy-api. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "data.h"
#include "knobs.h"
#include "sim.h"
#include "stats.h"
#include "svc/buf.h"
#include "svc/log.h"
#include "tenants.h"

#define SERVICE "erp-api"
#define MAX_BODY 65536

struct server {
    struct registry *reg;
    struct stats *stats;
    struct svc_logger log;
    atomic_bool stopping;
    atomic_uint_fast64_t requests;   /* feeds the per-request fault RNG */
};

/* Per request, from the first callback to MHD's completion notice. */
struct req {
    struct sim_tenant *tenant;   /* set while the tenant counts this request as in flight */
    struct svc_buf body;
    bool too_large;
};

/* ------------------------------------------------------------------ helpers */

/* Splits "/a/b/c" into at most max segments (in place); returns the count or -1. */
static int split_path(char *p, char *seg[], int max) {
    int n = 0;
    if (*p != '/') return -1;
    while (*p) {
        if (*p == '/') *p++ = '\0';
        if (!*p) break;
        if (n == max) return -1;
        seg[n++] = p;
        while (*p && *p != '/') p++;
    }
    return n;
}

/* ------------------------------------------------------------------ the ERP contract */

static const char *const MALFORMED[] = {
    "{\"data\":[{\"id\":\"C000001\",\"name\":\"Trunc",                    /* cut mid-record */
    "{\"data\":{\"id\":\"C000001\"},\"page\":1,\"per_page\":1,\"has_more\":false}", /* data not an array */
    "<html><body>Internal maintenance</body></html>",                     /* not JSON at all */
};

static enum MHD_Result handle_erp(struct server *srv, struct req *rq, struct MHD_Connection *c, const char *tenant,
                                  const char *kind_s) {
    int kind = !strcmp(kind_s, "customers") ? DATA_CUSTOMERS : !strcmp(kind_s, "products") ? DATA_PRODUCTS : -1;
    if (kind < 0) return sim_respond_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such route", NULL, NULL);
    struct tenant_view v;
    struct sim_tenant *t = registry_view(srv->reg, tenant, &v);
    if (!t) return sim_respond_error(c, MHD_HTTP_NOT_FOUND, "tenant_not_found", "no such tenant", NULL, NULL);

    const char *page_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page");
    const char *per_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "per_page");
    const char *since_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "updated_since");
    unsigned long page = 1, per_page = 100;
    bool page_ok = !page_s || (sim_parse_uint(page_s, 10000000UL, &page) && page >= 1);
    stats_request(srv->stats, t, kind, page_ok && page == 1, stats_now_ms());
    rq->tenant = t;
    tenant_begin(t);

    struct sim_knobs global;
    registry_defaults(srv->reg, &global);
    long latency = (long)knobs_get(&v.knobs, &global, KNOB_LATENCY_MS);
    if (latency > 0 && !sim_sleep_ms(&srv->stopping, latency)) return MHD_NO;

    unsigned status = 200;
    enum MHD_Result ret;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Api-Key");
    if (!key || strlen(key) != strlen(v.api_key) || CRYPTO_memcmp(key, v.api_key, strlen(key)) != 0) {
        status = 401;
        ret = sim_respond_error(c, status, "unauthorized", "missing or wrong X-Api-Key", "WWW-Authenticate", "ApiKey");
        goto counted;
    }
    int64_t since = -1;
    if (!page_ok || (per_s && (!sim_parse_uint(per_s, DATA_MAX_PER_PAGE, &per_page) || per_page < 1)) ||
        (since_s && data_parse_ts(since_s, &since) != 0)) {
        status = 400;
        ret = sim_respond_error(c, status, "invalid_parameter",
                            "page >= 1, per_page 1-500 and updated_since an RFC 3339 date-time", NULL, NULL);
        goto counted;
    }

    uint64_t rng = sim_rng_seed(&srv->requests);
    if (knobs_get(&v.knobs, &global, KNOB_FAIL) != 0) {
        status = (unsigned)knobs_get(&v.knobs, &global, KNOB_FAIL_STATUS);
        ret = sim_respond_error(c, status, "erp_failure", "this ERP always fails", NULL, NULL);
        goto counted;
    }
    if (sim_chance(&rng, knobs_get(&v.knobs, &global, KNOB_TIMEOUT_RATE))) {
        atomic_fetch_add(&t->hangs, 1);
        sim_sleep_ms(&srv->stopping, (long)knobs_get(&v.knobs, &global, KNOB_HANG_MS));
        return MHD_NO;   /* close without an answer */
    }
    if (sim_chance(&rng, knobs_get(&v.knobs, &global, KNOB_THROTTLE_RATE))) {
        char ra[24];
        snprintf(ra, sizeof ra, "%ld", (long)knobs_get(&v.knobs, &global, KNOB_RETRY_AFTER_S));
        status = 429;
        ret = sim_respond_error(c, status, "rate_limited", "slow down", MHD_HTTP_HEADER_RETRY_AFTER, ra);
        goto counted;
    }
    if (sim_chance(&rng, knobs_get(&v.knobs, &global, KNOB_ERROR_RATE))) {
        static const unsigned codes[] = {500, 502, 503};
        status = codes[sim_rng_next(&rng) % 3];
        ret = sim_respond_error(c, status, "erp_error", "simulated server error",
                            status == 503 ? MHD_HTTP_HEADER_RETRY_AFTER : NULL, "1");
        goto counted;
    }
    if (sim_chance(&rng, knobs_get(&v.knobs, &global, KNOB_MALFORMED_RATE))) {
        atomic_fetch_add(&t->malformed, 1);
        size_t which = sim_rng_next(&rng) % 3;
        ret = sim_respond(c, 200, which == 2 ? "text/html" : "application/json", MALFORMED[which],
                      strlen(MALFORMED[which]), NULL, NULL);
        goto counted;
    }

    struct svc_buf out;
    svc_buf_init(&out);
    data_page(&v.data, (enum data_kind)kind, (uint32_t)page, (uint32_t)per_page, since, &out);
    if (out.oom) {
        svc_buf_free(&out);
        status = 500;
        ret = sim_respond_error(c, status, "internal", "out of memory", NULL, NULL);
        goto counted;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(out.len, out.data, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        svc_buf_free(&out);
        return MHD_NO;
    }
    ret = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (ret == MHD_YES) ret = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (ret == MHD_YES) ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
counted:
    tenant_count_status(t, status);
    return ret;
}

/* ------------------------------------------------------------------ control API */

static json_t *body_json(struct req *rq, char *err, size_t errlen) {
    json_error_t je;
    json_t *j = json_loadb(rq->body.data ? rq->body.data : "", rq->body.len, 0, &je);
    if (!j) snprintf(err, errlen, "body: invalid JSON (%s)", je.text);
    return j;
}

static enum MHD_Result handle_sim_tenant(struct server *srv, struct req *rq, struct MHD_Connection *c,
                                         const char *method, const char *name, bool advance) {
    if (!tenant_name_ok(name)) return sim_respond_error(c, 400, "invalid_tenant", "tenant: [A-Za-z0-9._-]{1,64}", NULL, NULL);
    char err[256];
    if (advance) {
        if (strcmp(method, "POST") != 0)
            return sim_respond_error(c, 405, "method_not_allowed", "use POST", MHD_HTTP_HEADER_ALLOW, "POST");
        json_t *b = body_json(rq, err, sizeof err);
        if (!b) return sim_respond_error(c, 400, "invalid_body", err, NULL, NULL);
        json_t *sh = json_object_get(b, "share"), *ds = json_object_get(b, "delete_share");
        double share = json_number_value(sh), del = ds ? json_number_value(ds) : 0.0;
        bool ok = json_is_number(sh) && share >= 0 && share <= 1 && (!ds || (json_is_number(ds) && del >= 0 && del <= 1));
        json_decref(b);
        if (!ok) return sim_respond_error(c, 400, "invalid_body", "share and delete_share: numbers between 0 and 1", NULL, NULL);
        int k = registry_advance(srv->reg, name, share, del);
        if (k == -2) return sim_respond_error(c, 404, "tenant_not_found", "no such tenant", NULL, NULL);
        if (k < 0) return sim_respond_error(c, 409, "too_many_advances", "no more advances can be recorded", NULL, NULL);
        return sim_respond_json(c, 200, registry_describe(srv->reg, name, -1));
    }
    if (!strcmp(method, "GET")) {
        const char *since_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
        int64_t since = -1;
        if (since_s && data_parse_ts(since_s, &since) != 0)
            return sim_respond_error(c, 400, "invalid_parameter", "since: an RFC 3339 date-time", NULL, NULL);
        json_t *d = registry_describe(srv->reg, name, since);
        return d ? sim_respond_json(c, 200, d) : sim_respond_error(c, 404, "tenant_not_found", "no such tenant", NULL, NULL);
    }
    if (!strcmp(method, "DELETE")) {
        if (!registry_delete(srv->reg, name)) return sim_respond_error(c, 404, "tenant_not_found", "no such tenant", NULL, NULL);
        return sim_respond(c, 204, "application/json", "", 0, NULL, NULL);
    }
    if (strcmp(method, "PUT") != 0 && strcmp(method, "PATCH") != 0)
        return sim_respond_error(c, 405, "method_not_allowed", "use GET, PUT, PATCH or DELETE", MHD_HTTP_HEADER_ALLOW,
                             "GET, PUT, PATCH, DELETE");
    json_t *b = body_json(rq, err, sizeof err);
    if (!b) return sim_respond_error(c, 400, "invalid_body", err, NULL, NULL);
    int rc = !strcmp(method, "PUT") ? registry_put(srv->reg, name, b, err, sizeof err)
                                    : registry_patch(srv->reg, name, b, err, sizeof err);
    json_decref(b);
    if (rc == -2) return sim_respond_error(c, 404, "tenant_not_found", "no such tenant", NULL, NULL);
    if (rc < 0) return sim_respond_error(c, 400, "invalid_body", err, NULL, NULL);
    return sim_respond_json(c, rc == 1 && !strcmp(method, "PUT") ? 201 : 200, registry_describe(srv->reg, name, -1));
}

static enum MHD_Result handle_defaults(struct server *srv, struct req *rq, struct MHD_Connection *c,
                                       const char *method) {
    char err[256];
    if (!strcmp(method, "PATCH")) {
        json_t *b = body_json(rq, err, sizeof err);
        if (!b) return sim_respond_error(c, 400, "invalid_body", err, NULL, NULL);
        int rc = registry_patch_defaults(srv->reg, b, err, sizeof err);
        json_decref(b);
        if (rc != 0) return sim_respond_error(c, 400, "invalid_body", err, NULL, NULL);
    } else if (strcmp(method, "GET") != 0) {
        return sim_respond_error(c, 405, "method_not_allowed", "use GET or PATCH", MHD_HTTP_HEADER_ALLOW, "GET, PATCH");
    }
    struct sim_knobs k;
    registry_defaults(srv->reg, &k);
    json_t *o = json_object();
    if (o) knobs_to_json(&k, o);
    return sim_respond_json(c, 200, o);
}

static enum MHD_Result handle_stats(struct server *srv, struct MHD_Connection *c, const char *method, bool starts) {
    if (starts) {
        if (strcmp(method, "GET") != 0)
            return sim_respond_error(c, 405, "method_not_allowed", "use GET", MHD_HTTP_HEADER_ALLOW, "GET");
        const char *s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since_ms");
        unsigned long since = 0;
        if (s && !sim_parse_uint(s, (unsigned long)INT64_MAX, &since))
            return sim_respond_error(c, 400, "invalid_parameter", "since_ms: Unix milliseconds", NULL, NULL);
        return sim_respond_json(c, 200, stats_starts_json(srv->stats, (int64_t)since));
    }
    if (!strcmp(method, "DELETE")) {
        stats_reset(srv->stats, srv->reg);
        return sim_respond(c, 204, "application/json", "", 0, NULL, NULL);
    }
    if (strcmp(method, "GET") != 0)
        return sim_respond_error(c, 405, "method_not_allowed", "use GET or DELETE", MHD_HTTP_HEADER_ALLOW, "GET, DELETE");
    return sim_respond_json(c, 200, stats_json(srv->stats, srv->reg));
}

/* ------------------------------------------------------------------ dispatch */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **req_ctx) {
    struct server *srv = cls;
    struct req *rq = *req_ctx;
    if (!rq) {   /* first call: headers only */
        rq = calloc(1, sizeof *rq);
        if (!rq) return MHD_NO;
        svc_buf_init(&rq->body);
        *req_ctx = rq;
        return MHD_YES;
    }
    if (*upload_size) {
        if (rq->body.len + *upload_size > MAX_BODY) rq->too_large = true;
        else svc_buf_append(&rq->body, upload_data, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (rq->too_large) return sim_respond_error(c, 413, "too_large", "body over 64 KiB", NULL, NULL);
    if (rq->body.oom) return MHD_NO;

    char path[512];
    if (strlen(url) >= sizeof path) return sim_respond_error(c, 404, "not_found", "no such route", NULL, NULL);
    snprintf(path, sizeof path, "%s", url);
    char *seg[5];
    int n = split_path(path, seg, 5);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (n == 1 && !strcmp(seg[0], "health")) {
        if (!get) return sim_respond_error(c, 405, "method_not_allowed", "use GET", MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        return sim_respond(c, 200, "application/json", "{\"status\":\"up\"}", 15, NULL, NULL);
    }
    if (n == 3 && !strcmp(seg[0], "tenants")) {
        if (!get) return sim_respond_error(c, 405, "method_not_allowed", "use GET", MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        return handle_erp(srv, rq, c, seg[1], seg[2]);
    }
    if ((n == 1 || n == 2) && !strcmp(seg[0], "stats") && (n == 1 || !strcmp(seg[1], "starts")))
        return handle_stats(srv, c, method, n == 2);
    if (n == 2 && !strcmp(seg[0], "_sim") && !strcmp(seg[1], "defaults")) return handle_defaults(srv, rq, c, method);
    if ((n == 3 || (n == 4 && !strcmp(seg[3], "advance"))) && !strcmp(seg[0], "_sim") && !strcmp(seg[1], "tenants"))
        return handle_sim_tenant(srv, rq, c, method, seg[2], n == 4);
    return sim_respond_error(c, 404, "not_found", "no such route", NULL, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **req_ctx, enum MHD_RequestTerminationCode toe) {
    struct req *rq = *req_ctx;
    if (!rq) return;
    if (rq->tenant) tenant_end(rq->tenant);
    svc_buf_free(&rq->body);
    free(rq);
    *req_ctx = NULL;
}

/* ------------------------------------------------------------------ startup / shutdown */

int main(void) {
    struct sim_server http;
    sim_server_env(&http, SERVICE);
    long seed = sim_env_long(SERVICE, "ERP_SIM_SEED", 42, 0, (long)(~0UL >> 1));

    struct server *srv = calloc(1, sizeof *srv);
    if (!srv) return 1;
    srv->reg = registry_new((uint64_t)seed);
    srv->stats = stats_new();
    if (!srv->reg || !srv->stats) return 1;
    struct sim_knobs k;
    knobs_defaults(&k);
    char err[256];
    if (knobs_from_env(&k, err, sizeof err) != 0) sim_die_config(SERVICE, err);
    json_t *defaults = json_object();
    knobs_to_json(&k, defaults);
    if (registry_patch_defaults(srv->reg, defaults, err, sizeof err) != 0) sim_die_config(SERVICE, err);
    json_decref(defaults);
    const char *instance = getenv("SERVICE_INSTANCE") && *getenv("SERVICE_INSTANCE") ? getenv("SERVICE_INSTANCE") : SERVICE;
    svc_log_init(&srv->log, SERVICE, instance, getenv("LOG_LEVEL"), STDOUT_FILENO);

    const struct sim_server_opts opts = {
        .handler = on_request, .handler_cls = srv, .completed = on_completed, .completed_cls = srv,
        .log = &srv->log, .mhd_level = SVC_LOG_DEBUG,
    };
    if (sim_server_start(&http, &opts) != 0) return 1;
    svc_logf(&srv->log, SVC_LOG_INFO, NULL, "listening", "{s:s,s:i}", "bind", http.bind, "port", (int)http.port);

    int sig = sim_server_wait_signal(&http);
    svc_logf(&srv->log, SVC_LOG_INFO, NULL, "stopping", "{s:i}", "signal", sig);
    atomic_store(&srv->stopping, true);
    sim_server_quiesce(&http);
    sim_server_stop(&http);
    svc_logf(&srv->log, SVC_LOG_INFO, NULL, "stopped", NULL);
    stats_free(srv->stats);
    registry_free(srv->reg);
    free(srv);
    return 0;
}
