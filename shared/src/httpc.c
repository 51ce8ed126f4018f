/* Resilient service-to-service HTTP client on libcurl (contract in httpc.h).
 *
 * A call borrows one easy handle from the pool for all of its attempts; curl_easy_reset before
 * each attempt clears every option set by the previous call but keeps the handle's live
 * connections and DNS cache, which is what makes keep-alive work across calls. Each pooled handle
 * also carries its own jitter generator state (seeded from getrandom), so drawing a backoff wait
 * needs no lock.
 *
 * Attempt results are classified once (enum attempt_kind) and everything else — the breaker
 * verdict, the metric label, the log level, whether a retry is allowed — is derived from that
 * classification, so the rules in the header live in one table-like set of small functions. */
#include "svc/httpc.h"
#include "svc/trace.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#define SVC_HTTPC_UA_MAX 128

enum attempt_kind {
    K_SUCCESS = 0,    /* 2xx, 3xx */
    K_CLIENT_ERROR,   /* 4xx other than 429 */
    K_RATE_LIMITED,   /* 429 */
    K_SERVER_ERROR,   /* 5xx */
    K_TIMEOUT,
    K_CONNECT_ERROR,
    K_NETWORK_ERROR,
    K_TOO_LARGE,
    K_BREAKER_OPEN,
    K_REFUSED,
    K_COUNT,
    K_INTERNAL = K_COUNT /* not a metric label: local failure */
};

static const char *const kind_label[K_COUNT] = {
    "success", "client_error", "rate_limited", "server_error", "timeout",
    "connect_error", "network_error", "too_large", "breaker_open", "refused",
};

struct upstream {
    char name[SVC_HTTPC_NAME_MAX];
    char *base_url;
    struct svc_breaker *breaker;
    struct svc_httpc *client;
    svc_breaker_change_fn user_on_change;
    void *user_on_change_arg;
    atomic_ulong attempts[K_COUNT];
    atomic_ulong retries;
};

struct handle {
    CURL *curl;
    uint64_t rng;
    struct handle *next;
};

struct svc_httpc {
    struct svc_httpc_config cfg;
    char user_agent[SVC_HTTPC_UA_MAX];

    pthread_mutex_t upstreams_mu;   /* serialises svc_httpc_add_upstream */
    atomic_int nupstreams;          /* entries below this index are fully built */
    struct upstream upstreams[SVC_HTTPC_MAX_UPSTREAMS];

    pthread_mutex_t pool_mu;
    struct handle *idle;
    int nidle;
};

/* ---------- small helpers ---------- */

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(uint32_t ms) {
    struct timespec ts = { .tv_sec = ms / 1000u, .tv_nsec = (long)(ms % 1000u) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Header values must not be able to inject another header line. */
static bool header_value_ok(const char *v) {
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch < 0x20 && ch != '\t') return false;
        if (ch == 0x7f) return false;
    }
    return true;
}

static bool method_ok(const char *m) {
    if (!*m) return false;
    for (; *m; m++)
        if (*m < 'A' || *m > 'Z') return false;
    return true;
}

static bool path_ok(const char *p) {
    if (p[0] != '/') return false;
    for (; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f) return false;
    }
    return true;
}

static bool name_ok(const char *n) {
    size_t len = strlen(n);
    if (len == 0 || len >= SVC_HTTPC_NAME_MAX) return false;
    for (; *n; n++) {
        char ch = *n;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '.' || ch == '-';
        if (!ok) return false;
    }
    return true;
}

static bool is_idempotent(const char *m) {
    static const char *const safe[] = { "GET", "HEAD", "PUT", "DELETE", "OPTIONS" };
    for (size_t i = 0; i < sizeof safe / sizeof safe[0]; i++)
        if (strcmp(m, safe[i]) == 0) return true;
    return false;
}

const char *svc_httpc_outcome_str(enum svc_httpc_outcome o) {
    switch (o) {
    case SVC_HTTPC_OK: return "ok";
    case SVC_HTTPC_BREAKER_OPEN: return "breaker_open";
    case SVC_HTTPC_CONNECT_ERROR: return "connect_error";
    case SVC_HTTPC_TIMEOUT: return "timeout";
    case SVC_HTTPC_NETWORK_ERROR: return "network_error";
    case SVC_HTTPC_TOO_LARGE: return "too_large";
    case SVC_HTTPC_NO_TOKEN: return "no_token";
    case SVC_HTTPC_INVALID: return "invalid";
    case SVC_HTTPC_INTERNAL: return "internal";
    case SVC_HTTPC_REFUSED: return "refused";
    }
    return "unknown";
}

/* ---------- lifecycle ---------- */

struct svc_httpc *svc_httpc_new(const struct svc_httpc_config *cfg) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
    struct svc_httpc *c = calloc(1, sizeof *c);
    if (!c) goto fail_global;
    if (cfg) c->cfg = *cfg;
    struct svc_httpc_config *k = &c->cfg;
    if (k->connect_timeout_ms <= 0) k->connect_timeout_ms = 3000;
    if (k->timeout_ms <= 0) k->timeout_ms = 5000;
    if (k->max_response_bytes == 0) k->max_response_bytes = 4u << 20;
    if (k->max_attempts <= 0) k->max_attempts = 3;
    if (k->backoff.base_ms == 0 && k->backoff.cap_ms == 0) svc_backoff_policy_defaults(&k->backoff);
    if (k->retry_after_max_ms == 0) k->retry_after_max_ms = 10000;
    if (k->max_idle_handles <= 0) k->max_idle_handles = 16;
    snprintf(c->user_agent, sizeof c->user_agent, "%s svc-httpc/1",
             k->service_name && header_value_ok(k->service_name) ? k->service_name : "svc");
    k->service_name = NULL;   /* borrowed string not kept: the User-Agent copy is what we use */

    if (pthread_mutex_init(&c->upstreams_mu, NULL) != 0) goto fail_free;
    if (pthread_mutex_init(&c->pool_mu, NULL) != 0) {
        pthread_mutex_destroy(&c->upstreams_mu);
        goto fail_free;
    }
    atomic_init(&c->nupstreams, 0);
    return c;

fail_free:
    free(c);
fail_global:
    curl_global_cleanup();
    return NULL;
}

void svc_httpc_free(struct svc_httpc *c) {
    if (!c) return;
    int n = atomic_load(&c->nupstreams);
    for (int i = 0; i < n; i++) {
        svc_breaker_free(c->upstreams[i].breaker);
        free(c->upstreams[i].base_url);
    }
    for (struct handle *h = c->idle, *next; h; h = next) {
        next = h->next;
        curl_easy_cleanup(h->curl);
        free(h);
    }
    pthread_mutex_destroy(&c->pool_mu);
    pthread_mutex_destroy(&c->upstreams_mu);
    free(c);
    curl_global_cleanup();
}

/* ---------- upstreams ---------- */

static void on_breaker_change(void *arg, const char *name, svc_breaker_state_t from, svc_breaker_state_t to) {
    struct upstream *u = arg;
    if (u->client->cfg.logger)
        svc_logf(u->client->cfg.logger, to == SVC_BREAKER_CLOSED ? SVC_LOG_INFO : SVC_LOG_WARN, NULL,
                 "circuit breaker state change", "{s:s,s:s,s:s}", "upstream", name, "from",
                 svc_breaker_state_str(from), "to", svc_breaker_state_str(to));
    if (u->user_on_change) u->user_on_change(u->user_on_change_arg, name, from, to);
}

static struct upstream *find_upstream(struct svc_httpc *c, const char *name) {
    int n = atomic_load_explicit(&c->nupstreams, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (strcmp(c->upstreams[i].name, name) == 0) return &c->upstreams[i];
    return NULL;
}

static bool base_url_ok(const char *u) {
    return (strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0) && header_value_ok(u) && !strchr(u, ' ');
}

int svc_httpc_add_upstream(struct svc_httpc *c, const char *name, const char *base_url, const struct svc_breaker_config *bc) {
    if (!name || !name_ok(name)) return -1;
    if (base_url && !base_url_ok(base_url)) return -1;

    int rc = -1;
    pthread_mutex_lock(&c->upstreams_mu);
    int n = atomic_load_explicit(&c->nupstreams, memory_order_relaxed);
    if (n >= SVC_HTTPC_MAX_UPSTREAMS || find_upstream(c, name)) goto out;

    struct upstream *u = &c->upstreams[n];
    memset(u, 0, sizeof *u);
    snprintf(u->name, sizeof u->name, "%s", name);
    u->client = c;
    if (base_url) {
        u->base_url = strdup(base_url);
        if (!u->base_url) goto out;
        size_t len = strlen(u->base_url);
        while (len > 0 && u->base_url[len - 1] == '/') u->base_url[--len] = '\0';
    }

    struct svc_breaker_config b = { 0 };
    if (bc) b = *bc;
    u->user_on_change = b.on_change;
    u->user_on_change_arg = b.on_change_arg;
    b.on_change = on_breaker_change;
    b.on_change_arg = u;
    u->breaker = svc_breaker_new(name, &b);
    if (!u->breaker) {
        free(u->base_url);
        u->base_url = NULL;
        goto out;
    }
    for (int i = 0; i < K_COUNT; i++) atomic_init(&u->attempts[i], 0);
    atomic_init(&u->retries, 0);
    atomic_store_explicit(&c->nupstreams, n + 1, memory_order_release);
    rc = 0;
out:
    pthread_mutex_unlock(&c->upstreams_mu);
    return rc;
}

int svc_httpc_upstream_state(struct svc_httpc *c, const char *name) {
    struct upstream *u = name ? find_upstream(c, name) : NULL;
    return u ? (int)svc_breaker_state(u->breaker) : -1;
}

void svc_httpc_each_upstream(struct svc_httpc *c, void (*fn)(void *arg, const char *name, svc_breaker_state_t st), void *arg) {
    int n = atomic_load_explicit(&c->nupstreams, memory_order_acquire);
    for (int i = 0; i < n; i++) fn(arg, c->upstreams[i].name, svc_breaker_state(c->upstreams[i].breaker));
}

/* ---------- handle pool ---------- */

static struct handle *handle_get(struct svc_httpc *c) {
    pthread_mutex_lock(&c->pool_mu);
    struct handle *h = c->idle;
    if (h) {
        c->idle = h->next;
        c->nidle--;
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (h) return h;

    h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->curl = curl_easy_init();
    if (!h->curl) {
        free(h);
        return NULL;
    }
    if (getrandom(&h->rng, sizeof h->rng, GRND_NONBLOCK) != (ssize_t)sizeof h->rng)
        h->rng = (uint64_t)now_ms() ^ (uint64_t)(uintptr_t)h;   /* jitter only needs to differ */
    return h;
}

static void handle_put(struct svc_httpc *c, struct handle *h) {
    pthread_mutex_lock(&c->pool_mu);
    if (c->nidle < c->cfg.max_idle_handles) {
        h->next = c->idle;
        c->idle = h;
        c->nidle++;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (h) {
        curl_easy_cleanup(h->curl);
        free(h);
    }
}

/* ---------- one attempt ---------- */

struct xfer {
    char *body;
    size_t len, cap, limit;
    bool overflow;
    char content_type[128];
    char retry_after[64];
};

static void xfer_reset(struct xfer *x) {
    free(x->body);
    x->body = NULL;
    x->len = x->cap = 0;
    x->overflow = false;
    x->content_type[0] = x->retry_after[0] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg) {
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (n > x->limit - x->len) {
        x->overflow = true;
        return 0;   /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (x->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < x->len + n + 1) cap *= 2;
        char *p = realloc(x->body, cap);
        if (!p) return 0;
        x->body = p;
        x->cap = cap;
    }
    memcpy(x->body + x->len, data, n);
    x->len += n;
    x->body[x->len] = '\0';
    return n;
}

/* Copies the value of header line "Name: value\r\n" into dst when the name matches. */
static void grab_header(const char *line, size_t n, const char *name, char *dst, size_t dstlen) {
    size_t nl = strlen(name);
    if (n <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':') return;
    const char *v = line + nl + 1, *end = line + n;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t len = (size_t)(end - v);
    if (len >= dstlen) len = dstlen - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg) {
    struct xfer *x = arg;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {   /* a new response (e.g. after 1xx): start over */
        x->content_type[0] = x->retry_after[0] = '\0';
        return n;
    }
    grab_header(data, n, "Content-Type", x->content_type, sizeof x->content_type);
    grab_header(data, n, "Retry-After", x->retry_after, sizeof x->retry_after);
    return n;
}

struct call {
    struct svc_httpc *c;
    struct upstream *u;
    const struct svc_httpc_request *req;
    struct svc_breaker *breaker;   /* the target's, else the upstream's */
    struct handle *h;
    char *url;
    char *token;       /* owned copy, wiped on release */
    struct xfer x;
    long status;
    CURLcode cerr;
    char span_id[SVC_SPAN_ID_HEX + 1]; /* this attempt's client span ("" outside a trace) */
    bool refused;      /* the target's allow_address refused an address */
};

static enum attempt_kind classify(const struct call *k) {
    if (k->refused) return K_REFUSED;
    switch (k->cerr) {
    case CURLE_OK: break;
    case CURLE_OPERATION_TIMEDOUT: return K_TIMEOUT;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
        return K_CONNECT_ERROR;
    case CURLE_FILESIZE_EXCEEDED: return K_TOO_LARGE;
    case CURLE_WRITE_ERROR: return k->x.overflow ? K_TOO_LARGE : K_INTERNAL;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return K_NETWORK_ERROR;
    default: return K_INTERNAL;
    }
    if (k->status == 429) return K_RATE_LIMITED;
    if (k->status >= 500) return K_SERVER_ERROR;
    if (k->status >= 400) return K_CLIENT_ERROR;
    return K_SUCCESS;
}

static svc_breaker_result_t verdict(enum attempt_kind kind) {
    switch (kind) {
    case K_SUCCESS:
    case K_CLIENT_ERROR: return SVC_BREAKER_SUCCESS;
    case K_RATE_LIMITED:
    case K_SERVER_ERROR:
    case K_TIMEOUT:
    case K_CONNECT_ERROR:
    case K_NETWORK_ERROR: return SVC_BREAKER_FAILURE;
    default: return SVC_BREAKER_IGNORE;
    }
}

static enum svc_httpc_outcome outcome_of(enum attempt_kind kind) {
    switch (kind) {
    case K_SUCCESS:
    case K_CLIENT_ERROR:
    case K_RATE_LIMITED:
    case K_SERVER_ERROR: return SVC_HTTPC_OK;
    case K_TIMEOUT: return SVC_HTTPC_TIMEOUT;
    case K_CONNECT_ERROR: return SVC_HTTPC_CONNECT_ERROR;
    case K_NETWORK_ERROR: return SVC_HTTPC_NETWORK_ERROR;
    case K_TOO_LARGE: return SVC_HTTPC_TOO_LARGE;
    case K_BREAKER_OPEN: return SVC_HTTPC_BREAKER_OPEN;
    case K_REFUSED: return SVC_HTTPC_REFUSED;
    default: return SVC_HTTPC_INTERNAL;
    }
}

/* Appends "Name: <prefix><value>" to the list; false on allocation failure. The temporary line is
 * wiped because it may hold the bearer token. */
static bool add_header(struct curl_slist **list, const char *name, const char *prefix, const char *value) {
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line) return false;
    snprintf(line, n, "%s: %s%s", name, prefix, value);
    struct curl_slist *l = curl_slist_append(*list, line);
    explicit_bzero(line, n);
    free(line);
    if (!l) return false;
    *list = l;
    return true;
}

static void free_headers(struct curl_slist *list) {
    for (struct curl_slist *l = list; l; l = l->next)
        if (l->data) explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(list);
}

/* Every attempt is a new child span of the thread's current span (svc/trace.h): the callee
 * continues the trace with it as its parent. */
static struct curl_slist *build_headers(struct call *k) {
    const struct svc_httpc_request *r = k->req;
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");  /* no 100-continue round trip */
    if (!list) return NULL;
    bool ok = true;
    if (r->correlation_id) ok = ok && add_header(&list, "X-Correlation-ID", "", r->correlation_id);
    const struct svc_trace *cur = svc_trace_current();
    k->span_id[0] = '\0';
    if (cur) {
        struct svc_trace child;
        char tp[SVC_TRACEPARENT_LEN + 1];
        svc_trace_child(cur, &child);
        svc_traceparent_format(&child, tp);
        memcpy(k->span_id, child.span_id, sizeof k->span_id);
        ok = ok && add_header(&list, "traceparent", "", tp);
        if (child.tracestate[0]) ok = ok && add_header(&list, "tracestate", "", child.tracestate);
    }
    if (k->token) ok = ok && add_header(&list, "Authorization", "Bearer ", k->token);
    if (r->body) ok = ok && add_header(&list, "Content-Type", "", r->content_type ? r->content_type : "application/json");
    if (r->idempotency_key) ok = ok && add_header(&list, "Idempotency-Key", "", r->idempotency_key);
    if (r->accept) ok = ok && add_header(&list, "Accept", "", r->accept);
    if (r->target && r->target->header_name)
        ok = ok && add_header(&list, r->target->header_name, "", r->target->header_value);
    if (ok) return list;
    free_headers(list);
    return NULL;
}

/* CURLOPT_OPENSOCKETFUNCTION: the connect-time address check of a target. */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a) {
    struct call *k = arg;
    const struct svc_httpc_target *t = k->req->target;
    if (purpose == CURLSOCKTYPE_IPCXN && t->allow_address && !t->allow_address(t->allow_arg, &a->addr, a->addrlen)) {
        k->refused = true;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

#define SETOPT(opt, val)                                                     \
    do {                                                                     \
        if (curl_easy_setopt(h, opt, val) != CURLE_OK) goto setup_failed;    \
    } while (0)

/* Runs one HTTP exchange and fills k->status / k->cerr / k->x. */
static enum attempt_kind attempt(struct call *k) {
    const struct svc_httpc_request *r = k->req;
    CURL *h = k->h->curl;
    long timeout = r->timeout_ms > 0 ? r->timeout_ms : k->c->cfg.timeout_ms;
    long connect_timeout = k->c->cfg.connect_timeout_ms < timeout ? k->c->cfg.connect_timeout_ms : timeout;

    xfer_reset(&k->x);
    k->status = 0;
    k->cerr = CURLE_OK;
    k->refused = false;
    struct curl_slist *headers = build_headers(k);
    if (!headers) return K_INTERNAL;

    curl_easy_reset(h);   /* keeps the live connections and the DNS cache */
    SETOPT(CURLOPT_URL, k->url);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_PROXY, "");   /* ignore http_proxy & co: these are internal calls */
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TCP_KEEPIDLE, 30L);
    SETOPT(CURLOPT_TCP_KEEPINTVL, 10L);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout);
    SETOPT(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)k->x.limit);
    SETOPT(CURLOPT_USERAGENT, k->c->user_agent);
    SETOPT(CURLOPT_HTTPHEADER, headers);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, &k->x);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, &k->x);
    if (r->target && r->target->allow_address) {
        SETOPT(CURLOPT_OPENSOCKETFUNCTION, open_socket);
        SETOPT(CURLOPT_OPENSOCKETDATA, k);
        /* A reused connection was checked when it was opened, but to whichever address the name
         * had then: a target's calls always connect afresh, so every call is checked. */
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
    }

    const char *m = r->method;
    bool sends_body = r->body || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
    if (strcmp(m, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        if (sends_body) {
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(r->body ? r->body_len : 0));
            SETOPT(CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        }
        if (strcmp(m, "POST") != 0) SETOPT(CURLOPT_CUSTOMREQUEST, m);
    }

    k->cerr = curl_easy_perform(h);
    if (k->cerr == CURLE_OK && curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &k->status) != CURLE_OK)
        k->cerr = CURLE_BAD_FUNCTION_ARGUMENT;
    free_headers(headers);
    return classify(k);

setup_failed:
    free_headers(headers);
    return K_INTERNAL;
}

#undef SETOPT

/* ---------- the call ---------- */

static void log_attempt(const struct call *k, enum attempt_kind kind, int n, double ms, svc_breaker_state_t st) {
    const struct svc_logger *lg = k->c->cfg.logger;
    if (!lg) return;
    const char *path = k->req->path;
    size_t plen = strcspn(path, "?#");   /* query strings may carry PII: never logged */
    /* Rejections by an open breaker are counted in the metrics and the state change itself is
     * logged at warn; one warn line per rejected call would flood the log during an outage. */
    svc_log_level lv = kind == K_SUCCESS || kind == K_CLIENT_ERROR ? SVC_LOG_INFO
                       : kind == K_BREAKER_OPEN                    ? SVC_LOG_DEBUG
                                                                   : SVC_LOG_WARN;
    svc_logf(lg, lv, k->req->correlation_id, "upstream call", "{s:s,s:s,s:s%,s:i,s:f,s:i,s:s,s:s,s:s*}",
             "upstream", k->u->name, "method", k->req->method, "path", path, plen, "status", (int)k->status,
             "latency_ms", ms, "attempt", n, "breaker", svc_breaker_state_str(st), "outcome",
             kind < K_COUNT ? kind_label[kind] : "internal", "client_span_id",
             k->span_id[0] ? k->span_id : NULL);
}

static bool retryable(enum attempt_kind kind, long status) {
    switch (kind) {
    case K_TIMEOUT:
    case K_CONNECT_ERROR:
    case K_NETWORK_ERROR:
    case K_RATE_LIMITED: return true;
    case K_SERVER_ERROR: return status == 502 || status == 503 || status == 504;
    default: return false;
    }
}

static bool fetch_token(struct call *k, bool force) {
    if (k->token) {
        explicit_bzero(k->token, strlen(k->token));
        free(k->token);
        k->token = NULL;
    }
    const char *t = k->c->cfg.token_fn(k->c->cfg.token_arg, force);
    if (!t || !*t || !header_value_ok(t)) return false;
    k->token = strdup(t);
    return k->token != NULL;
}

static bool request_ok(const struct svc_httpc_request *r) {
    if (!r || !r->upstream || !r->method || !r->path) return false;
    if (!method_ok(r->method) || !path_ok(r->path)) return false;
    const struct svc_httpc_target *t = r->target;
    if (t && (!t->base_url || !base_url_ok(t->base_url) || !t->breaker)) return false;
    if (t && t->header_name && (!name_ok(t->header_name) || !t->header_value || !header_value_ok(t->header_value)))
        return false;
    const char *vals[] = { r->correlation_id, r->idempotency_key, r->content_type, r->accept };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        if (vals[i] && !header_value_ok(vals[i])) return false;
    return !(r->body_len > 0 && !r->body);
}

static void finish(struct svc_httpc_response *out, struct call *k, enum svc_httpc_outcome o, double t0) {
    out->outcome = o;
    out->status = k->status;
    if (k->x.len > 0 && o == SVC_HTTPC_OK) {
        out->body = k->x.body;
        out->len = k->x.len;
        k->x.body = NULL;
    }
    snprintf(out->content_type, sizeof out->content_type, "%s", k->x.content_type);
    out->elapsed_ms = now_ms() - t0;
}

enum svc_httpc_outcome svc_httpc_request(struct svc_httpc *c, const struct svc_httpc_request *req, struct svc_httpc_response *out) {
    double t0 = now_ms();
    memset(out, 0, sizeof *out);
    struct call k = { .c = c, .req = req };
    k.x.limit = c->cfg.max_response_bytes;
    enum svc_httpc_outcome result = SVC_HTTPC_INVALID;

    if (!request_ok(req) || !(k.u = find_upstream(c, req->upstream))) goto done;
    const char *base = req->target ? req->target->base_url : k.u->base_url;
    if (!base) goto done;   /* a target-only upstream called without a target */
    k.breaker = req->target ? req->target->breaker : k.u->breaker;

    result = SVC_HTTPC_INTERNAL;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/') blen--;
    size_t ulen = blen + strlen(req->path) + 1;
    k.url = malloc(ulen);
    if (!k.url) goto done;
    snprintf(k.url, ulen, "%.*s%s", (int)blen, base, req->path);

    if (c->cfg.token_fn && !req->no_auth && !fetch_token(&k, false)) {
        result = SVC_HTTPC_NO_TOKEN;
        goto done;
    }
    k.h = handle_get(c);
    if (!k.h) goto done;

    bool safe = is_idempotent(req->method) || req->idempotency_key != NULL;
    bool refreshed = false;
    int retries = 0;
    for (int n = 1;; n++) {
        struct svc_breaker_permit permit;
        if (!svc_breaker_allow(k.breaker, &permit)) {
            atomic_fetch_add_explicit(&k.u->attempts[K_BREAKER_OPEN], 1, memory_order_relaxed);
            xfer_reset(&k.x);
            k.status = 0;
            log_attempt(&k, K_BREAKER_OPEN, n, 0.0, SVC_BREAKER_OPEN);
            result = SVC_HTTPC_BREAKER_OPEN;
            break;
        }
        double ta = now_ms();
        enum attempt_kind kind = attempt(&k);
        double ms = now_ms() - ta;
        out->attempts++;
        svc_breaker_record(k.breaker, &permit, verdict(kind));
        if (kind < K_COUNT) atomic_fetch_add_explicit(&k.u->attempts[kind], 1, memory_order_relaxed);
        log_attempt(&k, kind, n, ms, svc_breaker_state(k.breaker));
        result = outcome_of(kind);

        if (k.status == 401 && k.token && !refreshed) {
            refreshed = true;
            if (!fetch_token(&k, true)) {
                result = SVC_HTTPC_NO_TOKEN;
                break;
            }
            atomic_fetch_add_explicit(&k.u->retries, 1, memory_order_relaxed);
            continue;   /* the refresh retry does not use up a backoff attempt */
        }
        if (!retryable(kind, k.status) || !(safe || kind == K_CONNECT_ERROR)) break;
        if (retries + 1 >= c->cfg.max_attempts) break;

        uint32_t wait;
        uint32_t ra;
        if ((k.status == 429 || k.status == 503) && k.x.retry_after[0] &&
            svc_backoff_parse_retry_after(k.x.retry_after, time(NULL), &ra) == 0) {
            if (ra > c->cfg.retry_after_max_ms) break;   /* not worth holding the caller that long */
            wait = ra;
        } else {
            wait = svc_backoff_delay_ms(&c->cfg.backoff, (unsigned)retries, svc_backoff_splitmix64, &k.h->rng);
        }
        retries++;
        atomic_fetch_add_explicit(&k.u->retries, 1, memory_order_relaxed);
        if (wait) sleep_ms(wait);
    }

    if (k.x.retry_after[0] && svc_backoff_parse_retry_after(k.x.retry_after, time(NULL), &out->retry_after_ms) == 0)
        out->has_retry_after = true;
    handle_put(c, k.h);

done:
    finish(out, &k, result, t0);
    xfer_reset(&k.x);
    if (k.token) {
        explicit_bzero(k.token, strlen(k.token));
        free(k.token);
    }
    free(k.url);
    return result;
}

void svc_httpc_response_free(struct svc_httpc_response *r) {
    if (!r) return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

/* ---------- metrics ---------- */

void svc_httpc_metrics_render_all(struct svc_httpc *const *cs, int ncs, struct svc_buf *out) {
    svc_buf_puts(out, "# HELP http_client_requests_total Outbound HTTP attempts by upstream and outcome.\n"
                      "# TYPE http_client_requests_total counter\n");
    for (int k = 0; k < ncs; k++) {
        struct svc_httpc *c = cs[k];
        int n = c ? atomic_load_explicit(&c->nupstreams, memory_order_acquire) : 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < K_COUNT; j++)
                svc_buf_printf(out, "http_client_requests_total{upstream=\"%s\",outcome=\"%s\"} %lu\n",
                               c->upstreams[i].name, kind_label[j],
                               atomic_load_explicit(&c->upstreams[i].attempts[j], memory_order_relaxed));
    }
    svc_buf_puts(out, "# HELP http_client_retries_total Outbound HTTP attempts after the first one of a call.\n"
                      "# TYPE http_client_retries_total counter\n");
    for (int k = 0; k < ncs; k++) {
        struct svc_httpc *c = cs[k];
        int n = c ? atomic_load_explicit(&c->nupstreams, memory_order_acquire) : 0;
        for (int i = 0; i < n; i++)
            svc_buf_printf(out, "http_client_retries_total{upstream=\"%s\"} %lu\n", c->upstreams[i].name,
                           atomic_load_explicit(&c->upstreams[i].retries, memory_order_relaxed));
    }
    svc_buf_puts(out, "# HELP circuit_breaker_state Circuit breaker state per upstream (0 closed, 1 half-open, 2 open).\n"
                      "# TYPE circuit_breaker_state gauge\n");
    for (int k = 0; k < ncs; k++) {
        struct svc_httpc *c = cs[k];
        int n = c ? atomic_load_explicit(&c->nupstreams, memory_order_acquire) : 0;
        for (int i = 0; i < n; i++) {
            if (!c->upstreams[i].base_url) continue;   /* target-only: each target has its own breaker */
            svc_buf_printf(out, "circuit_breaker_state{upstream=\"%s\"} %d\n", c->upstreams[i].name,
                           (int)svc_breaker_state(c->upstreams[i].breaker));
        }
    }
}

void svc_httpc_metrics_render(struct svc_httpc *c, struct svc_buf *out) {
    svc_httpc_metrics_render_all(&c, 1, out);
}
