/* legacy-api: a simulator of the legacy user system the sync service imports from.
 *
 * The real system has no pagination: the only read is one long streamed GET /users. This
 * simulator reproduces that, deterministically for a given seed, plus the faults the import must
 * survive (errors before the body, connections cut mid-stream, corrupt records, duplicates,
 * deletions, slow first byte, throttled throughput). GET /users/expected reports what a correct
 * import of the same stream ends with, computed without streaming. See README.md.
 *
 * libmicrohttpd is used directly (not Ulfius) because the body is a content-reader callback that
 * must be able to end a response *with an error* (no chunked terminator) and may sleep; the daemon
 * runs one thread per connection so a sleeping stream blocks nobody else.
 * Shutdown: SIGTERM/SIGINT → stop accepting, let running streams finish for SHUTDOWN_GRACE_MS,
 * then cut them, stop the daemon and exit 0. Responses, the fault RNG and the daemon's setup are
 * tools/simlib's (sim.h), shared with tools/erp-api. */
#define _GNU_SOURCE /* strcasestr */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include "gen.h"
#include "knobs.h"
#include "sim.h"
#include "stream.h"
#include "svc/log.h"

#define SERVICE "legacy-api"
#define STREAM_BLOCK 65536

struct server {
    struct sim_runtime rt;          /* first member: handlers get &server->rt as well */
    struct sim_knobs defaults;      /* from the environment; read-only after start */
    atomic_uint_fast64_t requests;  /* feeds the per-request fault RNG */
};

/* ------------------------------------------------------------------ query parsing */

struct query {
    struct sim_knobs k;
    int format;         /* -1 unset, 0 json, 1 ndjson */
    char err[192];      /* first error; empty when none */
};

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    struct query *q = cls;
    if (q->err[0]) return MHD_YES;
    if (!strcmp(key, "format")) {
        if (value && !strcmp(value, "ndjson"))
            q->format = 1;
        else if (value && !strcmp(value, "json"))
            q->format = 0;
        else
            snprintf(q->err, sizeof q->err, "format: must be json or ndjson");
        return MHD_YES;
    }
    knobs_set(&q->k, key, value, q->err, sizeof q->err);  /* unknown parameters are ignored */
    return MHD_YES;
}

/* Knobs for this request (defaults overridden by the query); false with a 400 queued on error. */
static bool query_parse(struct server *srv, struct MHD_Connection *c, struct query *q, enum MHD_Result *ret) {
    q->k = srv->defaults;
    q->format = -1;
    q->err[0] = '\0';
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_arg, q);
    if (q->err[0]) {
        *ret = sim_respond_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", q->err, NULL, NULL);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ handlers */

static enum MHD_Result handle_health(struct MHD_Connection *c) {
    return sim_respond(c, MHD_HTTP_OK, "application/json", "{\"status\":\"up\"}", 15, NULL, NULL);
}

static bool wants_ndjson(struct MHD_Connection *c, const struct query *q) {
    if (q->format >= 0) return q->format == 1;
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    return accept && (strcasestr(accept, "application/x-ndjson") || strcasestr(accept, "application/ndjson"));
}

/* GET /users: faults first (delay, error), then the stream. */
static enum MHD_Result handle_users(struct server *srv, struct MHD_Connection *c) {
    struct query q;
    enum MHD_Result ret = MHD_NO;
    if (!query_parse(srv, c, &q, &ret)) return ret;
    if (atomic_load(&srv->rt.stopping))
        return sim_respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping",
                             MHD_HTTP_HEADER_RETRY_AFTER, "1");
    bool ndjson = wants_ndjson(c, &q);
    uint64_t rng = sim_rng_seed(&srv->requests);

    atomic_fetch_add(&srv->rt.inflight, 1);
    if (q.k.first_byte_delay_ms > 0 && !sim_sleep_ms(&srv->rt.aborting, q.k.first_byte_delay_ms)) {
        ret = sim_respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping",
                            MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto release;
    }
    if (sim_chance(&rng, q.k.fail_rate)) {
        bool unavailable = sim_rng_next(&rng) & 1;
        svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "users request failed on purpose", "{s:i}",
                 "status", unavailable ? 503 : 500);
        ret = unavailable ? sim_respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                          "legacy backend temporarily unavailable", MHD_HTTP_HEADER_RETRY_AFTER, "1")
                          : sim_respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                                          "legacy backend error", NULL, NULL);
        goto release;
    }
    uint64_t drop_at = UINT64_MAX;
    if (sim_chance(&rng, q.k.drop_rate)) drop_at = q.k.gen.count ? sim_rng_next(&rng) % q.k.gen.count : 0;

    struct stream *s = stream_new(&srv->rt, &q.k, ndjson, drop_at);
    if (!s) {
        ret = sim_respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory", NULL, NULL);
        goto release;
    }
    /* From here the stream owns the inflight slot, also when creating the response fails. */
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    ret = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ndjson ? "application/x-ndjson" : "application/json");
    if (ret == MHD_YES) ret = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (ret == MHD_YES) ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
release:
    atomic_fetch_sub(&srv->rt.inflight, 1);
    return ret;
}

/* GET /users/expected: the outcome of a correct import of the same stream. */
static enum MHD_Result handle_expected(struct server *srv, struct MHD_Connection *c) {
    struct query q;
    enum MHD_Result ret = MHD_NO;
    if (!query_parse(srv, c, &q, &ret)) return ret;
    struct gen_summary s;
    if (gen_expected(&q.k.gen, &s) != 0)
        return sim_respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory", NULL, NULL);
    json_t *kinds = json_object();
    if (!kinds) return MHD_NO;
    for (int i = 0; i < GEN_CORRUPT_NKINDS; i++) {
        if (json_object_set_new(kinds, gen_corrupt_kind_name((gen_corrupt_kind)i),
                                json_integer((json_int_t)s.corrupt_by_kind[i])) != 0) {
            json_decref(kinds);
            return MHD_NO;
        }
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)q.k.gen.seed);
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:{s:I,s:s,s:f,s:f,s:f}}",
                          "count", (json_int_t)s.count, "valid", (json_int_t)s.valid,
                          "corrupt", (json_int_t)s.corrupt,
                          "distinct_user_names", (json_int_t)s.distinct_user_names,
                          "duplicates", (json_int_t)s.duplicates, "deleted_final", (json_int_t)s.deleted_final,
                          "corrupt_by_kind", kinds,
                          "knobs", "count", (json_int_t)q.k.gen.count, "seed", seed,
                          "corrupt_rate", q.k.gen.corrupt_rate, "dup_rate", q.k.gen.dup_rate,
                          "delete_rate", q.k.gen.delete_rate);
    /* "s:o" stole kinds, also on failure */
    return sim_respond_json(c, MHD_HTTP_OK, j);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **req_ctx) {
    static int seen;  /* address used as a marker only; never written */
    struct server *srv = cls;
    if (*req_ctx == NULL) {  /* first call: headers only */
        *req_ctx = &seen;
        return MHD_YES;
    }
    if (*upload_size) {  /* no route takes a body: discard it */
        *upload_size = 0;
        return MHD_YES;
    }
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    int route = !strcmp(url, "/health") ? 1 : !strcmp(url, "/users") ? 2 : !strcmp(url, "/users/expected") ? 3 : 0;
    if (!route) return sim_respond_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such route", NULL, NULL);
    if (!get)
        return sim_respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "only GET is supported",
                             MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    switch (route) {
    case 1: return handle_health(c);
    case 2: return handle_users(srv, c);
    default: return handle_expected(srv, c);
    }
}

/* ------------------------------------------------------------------ startup / shutdown */

static void wait_inflight(struct server *srv, long ms) {
    for (; ms > 0 && atomic_load(&srv->rt.inflight) > 0; ms -= 20) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int main(void) {
    struct sim_server http;
    sim_server_env(&http, SERVICE);
    long grace_ms = sim_env_long(SERVICE, "SHUTDOWN_GRACE_MS", 5000, 0, 600000);

    struct server *srv = calloc(1, sizeof *srv);
    if (!srv) return 1;
    knobs_defaults(&srv->defaults);
    char err[256];
    if (knobs_from_env(&srv->defaults, err, sizeof err) != 0) sim_die_config(SERVICE, err);
    atomic_init(&srv->rt.stopping, false);
    atomic_init(&srv->rt.aborting, false);
    atomic_init(&srv->rt.inflight, 0);
    atomic_init(&srv->requests, 0);
    const char *instance = getenv("SERVICE_INSTANCE") && *getenv("SERVICE_INSTANCE") ? getenv("SERVICE_INSTANCE") : SERVICE;
    svc_log_init(&srv->rt.log, SERVICE, instance, getenv("LOG_LEVEL"), STDOUT_FILENO);

    /* An intentional drop makes libmicrohttpd report an "application error generating response"
     * for every dropped stream: that one is debug only, its other diagnostics are warnings. */
    const struct sim_server_opts opts = {
        .handler = on_request, .handler_cls = srv, .log = &srv->rt.log,
        .mhd_level = SVC_LOG_WARN, .mhd_debug = "application error generating response",
    };
    if (sim_server_start(&http, &opts) != 0) return 1;
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)srv->defaults.gen.seed);
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "listening",
             "{s:s,s:i,s:I,s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "bind", http.bind, "port", (int)http.port,
             "count", (json_int_t)srv->defaults.gen.count, "seed", seed, "rate", srv->defaults.rate,
             "fail_rate", srv->defaults.fail_rate, "drop_rate", srv->defaults.drop_rate,
             "corrupt_rate", srv->defaults.gen.corrupt_rate, "dup_rate", srv->defaults.gen.dup_rate,
             "delete_rate", srv->defaults.gen.delete_rate,
             "first_byte_delay_ms", (json_int_t)srv->defaults.first_byte_delay_ms);

    int sig = sim_server_wait_signal(&http);
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "stopping", "{s:i,s:i}", "signal", sig,
             "inflight", atomic_load(&srv->rt.inflight));
    atomic_store(&srv->rt.stopping, true);
    sim_server_quiesce(&http);
    wait_inflight(srv, grace_ms);
    atomic_store(&srv->rt.aborting, true);
    wait_inflight(srv, 2000);
    sim_server_stop(&http);
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "stopped", NULL);
    free(srv);
    return 0;
}
