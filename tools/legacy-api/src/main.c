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
 * then cut them, stop the daemon and exit 0. */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gen.h"
#include "knobs.h"
#include "stream.h"
#include "svc/log.h"

#define SERVICE "legacy-api"
#define CONNECTION_MEMORY (256 * 1024)
#define CONNECTION_TIMEOUT_S 300
#define STREAM_BLOCK 65536

struct server {
    struct sim_runtime rt;          /* first member: handlers get &server->rt as well */
    struct sim_knobs defaults;      /* from the environment; read-only after start */
    atomic_uint_fast64_t requests;  /* feeds the per-request fault RNG */
};

/* ------------------------------------------------------------------ responses */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                               const char *body, const char *hname, const char *hvalue) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (ok == MHD_YES && hname) ok = MHD_add_response_header(r, hname, hvalue);
    if (ok == MHD_YES) ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (ok == MHD_YES) ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result respond_error(struct MHD_Connection *c, unsigned status, const char *code,
                                     const char *message, const char *hname, const char *hvalue) {
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    enum MHD_Result ok = respond(c, status, "application/json", body, hname, hvalue);
    free(body);
    return ok;
}

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
        *ret = respond_error(c, MHD_HTTP_BAD_REQUEST, "invalid_parameter", q->err, NULL, NULL);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ fault RNG */

static uint64_t rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static bool rng_chance(uint64_t *state, double p) {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    return (double)(rng_next(state) >> 11) * 0x1p-53 < p;
}

/* Fault decisions must differ between requests (a retry can succeed), so this RNG is seeded from
 * the clock and a request counter, never from the content seed. */
static uint64_t rng_seed(struct server *srv) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
                 (atomic_fetch_add(&srv->requests, 1) * 0xd1b54a32d192ed03ULL);
    rng_next(&s);
    return s;
}

/* ------------------------------------------------------------------ handlers */

static enum MHD_Result handle_health(struct MHD_Connection *c) {
    return respond(c, MHD_HTTP_OK, "application/json", "{\"status\":\"up\"}", NULL, NULL);
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
        return respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping",
                             MHD_HTTP_HEADER_RETRY_AFTER, "1");
    bool ndjson = wants_ndjson(c, &q);
    uint64_t rng = rng_seed(srv);

    atomic_fetch_add(&srv->rt.inflight, 1);
    if (q.k.first_byte_delay_ms > 0 && !sim_sleep_ms(&srv->rt, q.k.first_byte_delay_ms)) {
        ret = respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "shutting_down", "the server is stopping",
                            MHD_HTTP_HEADER_RETRY_AFTER, "1");
        goto release;
    }
    if (rng_chance(&rng, q.k.fail_rate)) {
        bool unavailable = rng_next(&rng) & 1;
        svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "users request failed on purpose", "{s:i}",
                 "status", unavailable ? 503 : 500);
        ret = unavailable ? respond_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
                                          "legacy backend temporarily unavailable", MHD_HTTP_HEADER_RETRY_AFTER, "1")
                          : respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
                                          "legacy backend error", NULL, NULL);
        goto release;
    }
    uint64_t drop_at = UINT64_MAX;
    if (rng_chance(&rng, q.k.drop_rate)) drop_at = q.k.gen.count ? rng_next(&rng) % q.k.gen.count : 0;

    struct stream *s = stream_new(&srv->rt, &q.k, ndjson, drop_at);
    if (!s) {
        ret = respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory", NULL, NULL);
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
        return respond_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "out of memory", NULL, NULL);
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
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    ret = respond(c, MHD_HTTP_OK, "application/json", body, NULL, NULL);
    free(body);
    return ret;
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
    if (!route) return respond_error(c, MHD_HTTP_NOT_FOUND, "not_found", "no such route", NULL, NULL);
    if (!get)
        return respond_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "only GET is supported",
                             MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    switch (route) {
    case 1: return handle_health(c);
    case 2: return handle_users(srv, c);
    default: return handle_expected(srv, c);
    }
}

/* ------------------------------------------------------------------ startup / shutdown */

/* libmicrohttpd's own diagnostics, as JSON log lines. An intentional drop makes it report an
 * "application error generating response" for every dropped stream: that one is debug only. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const struct svc_logger *log = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.')) msg[--n] = '\0';
    bool expected = strstr(msg, "application error generating response") != NULL;
    svc_log(log, expected ? SVC_LOG_DEBUG : SVC_LOG_WARN, NULL, msg, NULL);
}

static void die_config(const char *msg) {
    fprintf(stderr, SERVICE ": configuration error: %s\n", msg);
    exit(1);
}

static long env_long(const char *name, long def, long min, long max) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: must be an integer between %ld and %ld", name, min, max);
        die_config(msg);
    }
    return n;
}

static void wait_inflight(struct server *srv, long ms) {
    for (; ms > 0 && atomic_load(&srv->rt.inflight) > 0; ms -= 20) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int main(void) {
    if (!getenv("PORT") || !*getenv("PORT")) die_config("PORT: missing");
    long port = env_long("PORT", 0, 1, 65535);
    const char *bind = getenv("BIND") && *getenv("BIND") ? getenv("BIND") : "127.0.0.1";
    long grace_ms = env_long("SHUTDOWN_GRACE_MS", 5000, 0, 600000);

    struct server *srv = calloc(1, sizeof *srv);
    if (!srv) return 1;
    knobs_defaults(&srv->defaults);
    char err[256];
    if (knobs_from_env(&srv->defaults, err, sizeof err) != 0) die_config(err);
    atomic_init(&srv->rt.stopping, false);
    atomic_init(&srv->rt.aborting, false);
    atomic_init(&srv->rt.inflight, 0);
    atomic_init(&srv->requests, 0);
    const char *instance = getenv("SERVICE_INSTANCE") && *getenv("SERVICE_INSTANCE") ? getenv("SERVICE_INSTANCE") : SERVICE;
    svc_log_init(&srv->rt.log, SERVICE, instance, getenv("LOG_LEVEL"), STDOUT_FILENO);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%ld", port);
    if (getaddrinfo(bind, port_s, &hints, &ai) != 0 || !ai) die_config("BIND: must be a numeric IPv4 or IPv6 address");

    /* Signals are taken synchronously by sigwait below; block them before any thread exists so
     * every daemon thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
                     MHD_USE_ITC | MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, srv,
                                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                            MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, &srv->rt.log,
                                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        fprintf(stderr, SERVICE ": cannot listen on %s:%ld: %s\n", bind, port, strerror(errno));
        return 1;
    }
    char seed[24];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)srv->defaults.gen.seed);
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "listening",
             "{s:s,s:i,s:I,s:s,s:f,s:f,s:f,s:f,s:f,s:f,s:I}", "bind", bind, "port", (int)port,
             "count", (json_int_t)srv->defaults.gen.count, "seed", seed, "rate", srv->defaults.rate,
             "fail_rate", srv->defaults.fail_rate, "drop_rate", srv->defaults.drop_rate,
             "corrupt_rate", srv->defaults.gen.corrupt_rate, "dup_rate", srv->defaults.gen.dup_rate,
             "delete_rate", srv->defaults.gen.delete_rate,
             "first_byte_delay_ms", (json_int_t)srv->defaults.first_byte_delay_ms);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0) {
    }
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "stopping", "{s:i,s:i}", "signal", sig,
             "inflight", atomic_load(&srv->rt.inflight));
    atomic_store(&srv->rt.stopping, true);
    /* No new connections from here. The socket may only be closed after MHD_stop_daemon, but
     * shutting it down now makes connection attempts fail fast instead of hanging in the backlog. */
    MHD_socket lsock = MHD_quiesce_daemon(d);
    if (lsock != MHD_INVALID_SOCKET) shutdown(lsock, SHUT_RDWR);
    wait_inflight(srv, grace_ms);
    atomic_store(&srv->rt.aborting, true);
    wait_inflight(srv, 2000);
    MHD_stop_daemon(d);
    if (lsock != MHD_INVALID_SOCKET) close(lsock);
    svc_logf(&srv->rt.log, SVC_LOG_INFO, NULL, "stopped", NULL);
    free(srv);
    return 0;
}
