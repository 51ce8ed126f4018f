/* Helpers shared by the simulators (see sim.h). */
#include "sim.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CONNECTION_MEMORY (256 * 1024)
#define CONNECTION_TIMEOUT_S 300
#define SLEEP_SLICE_MS 50

/* ------------------------------------------------------------------ answers */

enum MHD_Result sim_respond(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body,
                            size_t len, const char *hname, const char *hvalue) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return MHD_NO;
    enum MHD_Result ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (ok == MHD_YES && hname) ok = MHD_add_response_header(r, hname, hvalue);
    if (ok == MHD_YES) ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (ok == MHD_YES) ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

enum MHD_Result sim_respond_json(struct MHD_Connection *c, unsigned status, json_t *j) {
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    enum MHD_Result ok = sim_respond(c, status, "application/json", body, strlen(body), NULL, NULL);
    free(body);
    return ok;
}

enum MHD_Result sim_respond_error(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *message, const char *hname, const char *hvalue) {
    json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    enum MHD_Result ok = sim_respond(c, status, "application/json", body, strlen(body), hname, hvalue);
    free(body);
    return ok;
}

/* ------------------------------------------------------------------ fault RNG */

uint64_t sim_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

bool sim_chance(uint64_t *state, double p) {
    if (p <= 0.0) return false;
    if (p >= 1.0) return true;
    return (double)(sim_rng_next(state) >> 11) * 0x1p-53 < p;
}

uint64_t sim_rng_seed(atomic_uint_fast64_t *requests) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t s = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) ^
                 (atomic_fetch_add(requests, 1) * 0xd1b54a32d192ed03ULL);
    sim_rng_next(&s);
    return s;
}

/* ------------------------------------------------------------------ waiting and parsing */

bool sim_sleep_ms(const atomic_bool *stop, long ms) {
    while (ms > 0) {
        if (atomic_load(stop)) return false;
        long step = ms < SLEEP_SLICE_MS ? ms : SLEEP_SLICE_MS;
        struct timespec ts = {step / 1000, (step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        ms -= step;
    }
    return !atomic_load(stop);
}

bool sim_parse_uint(const char *s, unsigned long max, unsigned long *out) {
    if (!s || !*s || *s < '0' || *s > '9') return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v > max) return false;
    *out = v;
    return true;
}

void sim_die_config(const char *service, const char *msg) {
    fprintf(stderr, "%s: configuration error: %s\n", service, msg);
    exit(1);
}

long sim_env_long(const char *service, const char *name, long def, long min, long max) {
    const char *v = getenv(name);
    if (!v || !*v) return def;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < min || n > max) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: must be an integer between %ld and %ld", name, min, max);
        sim_die_config(service, msg);
    }
    return n;
}

/* ------------------------------------------------------------------ the daemon */

/* libmicrohttpd's own diagnostics, as JSON log lines (trailing newline and full stop dropped). */
__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const struct sim_server *s = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '.')) msg[--n] = '\0';
    bool debug = s->opts.mhd_debug && strstr(msg, s->opts.mhd_debug) != NULL;
    svc_log(s->opts.log, debug ? SVC_LOG_DEBUG : s->opts.mhd_level, NULL, msg, NULL);
}

void sim_server_env(struct sim_server *s, const char *service) {
    memset(s, 0, sizeof *s);
    s->service = service;
    s->lsock = MHD_INVALID_SOCKET;
    if (!getenv("PORT") || !*getenv("PORT")) sim_die_config(service, "PORT: missing");
    s->port = sim_env_long(service, "PORT", 0, 1, 65535);
    s->bind = getenv("BIND") && *getenv("BIND") ? getenv("BIND") : "127.0.0.1";
}

int sim_server_start(struct sim_server *s, const struct sim_server_opts *o) {
    s->opts = *o;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port_s[8];
    snprintf(port_s, sizeof port_s, "%ld", s->port);
    if (getaddrinfo(s->bind, port_s, &hints, &ai) != 0 || !ai)
        sim_die_config(s->service, "BIND: must be a numeric IPv4 or IPv6 address");

    sigemptyset(&s->sigs);
    sigaddset(&s->sigs, SIGTERM);
    sigaddset(&s->sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &s->sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* A NULL completion callback is libmicrohttpd's default (no notification). */
    s->daemon = MHD_start_daemon(flags, (uint16_t)s->port, NULL, NULL, o->handler, o->handler_cls,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_NOTIFY_COMPLETED, o->completed, o->completed_cls,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT_S,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, 1,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        fprintf(stderr, "%s: cannot listen on %s:%ld: %s\n", s->service, s->bind, s->port, strerror(errno));
        return -1;
    }
    return 0;
}

int sim_server_wait_signal(struct sim_server *s) {
    int sig = 0;
    while (sigwait(&s->sigs, &sig) != 0) {
    }
    return sig;
}

void sim_server_quiesce(struct sim_server *s) {
    /* The socket may only be closed after MHD_stop_daemon, but shutting it down now makes
     * connection attempts fail fast instead of hanging in the backlog. */
    s->lsock = MHD_quiesce_daemon(s->daemon);
    if (s->lsock != MHD_INVALID_SOCKET) shutdown(s->lsock, SHUT_RDWR);
}

void sim_server_stop(struct sim_server *s) {
    MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
    if (s->lsock != MHD_INVALID_SOCKET) close(s->lsock);
    s->lsock = MHD_INVALID_SOCKET;
}
