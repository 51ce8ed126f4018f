/* The resilient HTTP client every service-to-service call goes through (libcurl).
 *
 * One struct svc_httpc per process, shared by all threads. Each named upstream (base URL) has its own
 * circuit breaker (breaker.h) and counters. A call:
 *   1. asks the upstream's breaker; when OPEN it fails at once with SVC_HTTPC_BREAKER_OPEN (no network);
 *   2. sends the request with X-Correlation-ID, User-Agent "<service> svc-httpc/1",
 *      Authorization: Bearer <token> (from the token callback), Content-Type (bodies),
 *      Idempotency-Key (when given);
 *   3. retries with exponential backoff and full jitter (backoff.h), but only where repeating is
 *      safe: idempotent methods (GET HEAD PUT DELETE OPTIONS) or a request carrying an
 *      Idempotency-Key. Retried: connect errors, timeouts, dropped connections, 502/503/504, 429.
 *      A connect error is retried for every method (nothing was sent). 500 is NOT retried: it
 *      usually means a bug in the upstream, which a second try will meet again. Other 4xx are never
 *      retried. A Retry-After (seconds or date) on 429/503 replaces the backoff wait; one longer
 *      than retry_after_max_ms is not waited for: the 429/503 is returned to the caller;
 *   4. on a 401, when a token callback is set, fetches a fresh token once (force_refresh = true)
 *      and repeats the call once (for any method: a 401 means the request was not processed).
 *
 * Breaker verdicts: connect errors, timeouts, dropped connections, 5xx and 429 are failures; 2xx,
 * 3xx and other 4xx are successes (the upstream is up and answering); local errors and an
 * over-limit response body give no verdict.
 *
 * Connection reuse: libcurl keeps live connections (and DNS results) in each easy handle, so
 * httpc keeps a small LIFO pool of easy handles: a call borrows one for its whole life (all its
 * attempts) and gives it back. A thread making sequential calls gets the same handle back each
 * time and so the same keep-alive connection; N concurrent calls use N handles. At most
 * max_idle_handles idle handles are kept, extra ones are closed. (A pool rather than a pthread key
 * so that handles never outlive the client and thread exit needs no destructor.) Every transfer
 * sets CURLOPT_NOSIGNAL and TCP keepalive; environment proxies are ignored; redirects are not
 * followed; only http and https are allowed.
 *
 * Logs (svc_log, one line per attempt): upstream, method, path WITHOUT the query string, status,
 * latency_ms, attempt, breaker state, outcome — never bodies, tokens or query strings. Levels:
 * info for 2xx-4xx, warn for failures, debug for calls rejected by an open breaker (they are
 * counted in the metrics; the state change itself is logged at warn, closing at info).
 *
 * Metrics (svc_httpc_metrics_render), counted per attempt:
 *   http_client_requests_total{upstream,outcome}  outcome: success client_error rate_limited
 *       server_error timeout connect_error network_error too_large svc_breaker_open
 *   http_client_retries_total{upstream}           attempts after the first (incl. a 401 refresh)
 *   circuit_breaker_state{upstream}               0 closed, 1 half-open, 2 open (not for an upstream
 *                                                 added without a base URL: its calls' breakers are
 *                                                 their targets', which the caller reports)
 *
 * Synchronisation: upstreams live in a fixed table; svc_httpc_add_upstream is serialised by a mutex
 * and publishes the new entry with a release store, so it may run while other threads call.
 * Counters are relaxed atomics, each breaker has its own mutex, the handle pool has a mutex.
 * svc_httpc_request is safe from any number of threads; svc_httpc_free only when no call is in flight.
 *
 * Targets: a call may name a target instead of using its upstream's base URL and breaker — for
 * hosts not known in advance, such as each tenant's ERP. The target gives the base URL, its own
 * breaker (the caller keeps one per target), one extra header that may hold a secret (wiped after
 * use, never logged), and a check of every address libcurl is about to connect to (after name
 * resolution, for each address tried), which refuses the connection with SVC_HTTPC_REFUSED: the
 * connect-time half of an SSRF guard. The upstream then only names the call in logs and metrics
 * (an upstream added with base_url NULL serves only such calls).
 *
 * Ownership: svc_httpc_new and svc_httpc_add_upstream copy every string and struct they are given, except
 * cfg->logger and callback args, which are borrowed and must outlive the client. Request fields
 * are borrowed for the duration of the call. A response's body belongs to the response: release
 * it with svc_httpc_response_free (safe on a zeroed or already-freed response). */
#ifndef SVC_HTTPC_H
#define SVC_HTTPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "svc/backoff.h"
#include "svc/breaker.h"
#include "svc/buf.h"
#include "svc/log.h"

#define SVC_HTTPC_MAX_UPSTREAMS 16
#define SVC_HTTPC_NAME_MAX 48

/* Returns the service's bearer token, or NULL when none can be had (the call then fails with
 * SVC_HTTPC_NO_TOKEN). force_refresh is true after the upstream answered 401. The string is copied at
 * once; it only has to stay valid until the callback is next called. Called with no lock held. */
typedef const char *(*svc_httpc_token_fn)(void *arg, bool force_refresh);

struct svc_httpc_config {
    const char *service_name;      /* in User-Agent ["svc"] */
    long connect_timeout_ms;       /* [3000] */
    long timeout_ms;               /* whole attempt, connect included [5000] */
    size_t max_response_bytes;     /* larger body → SVC_HTTPC_TOO_LARGE [4 MiB] */
    int max_attempts;              /* including the first; 1 = no retries [3] */
    struct svc_backoff_policy backoff; /* both fields 0 → defaults (base 1000 ms, cap 4000 ms) */
    uint32_t retry_after_max_ms;   /* longest Retry-After honoured [10000] */
    int max_idle_handles;          /* idle curl handles kept for reuse [16] */
    svc_httpc_token_fn token_fn;       /* NULL: no Authorization header */
    void *token_arg;
    const struct svc_logger *logger; /* NULL: no logs */
};

enum svc_httpc_outcome {
    SVC_HTTPC_OK = 0,         /* an HTTP response arrived: look at status (may be 4xx/5xx) */
    SVC_HTTPC_BREAKER_OPEN,   /* the upstream's breaker rejected the call; nothing was sent */
    SVC_HTTPC_CONNECT_ERROR,  /* could not resolve, connect or complete TLS */
    SVC_HTTPC_TIMEOUT,        /* connect or total timeout */
    SVC_HTTPC_NETWORK_ERROR,  /* connection dropped or broken response */
    SVC_HTTPC_TOO_LARGE,      /* response body over max_response_bytes */
    SVC_HTTPC_NO_TOKEN,       /* the token callback returned NULL */
    SVC_HTTPC_INVALID,        /* unknown upstream or a malformed request (e.g. CR/LF in a header) */
    SVC_HTTPC_INTERNAL,       /* out of memory or a libcurl setup failure */
    SVC_HTTPC_REFUSED         /* the target's allow_address refused the address to connect to */
};

/* A call to a host not known in advance (see "Targets" above). Borrowed for the call. */
struct svc_httpc_target {
    const char *base_url;             /* http(s)://host[:port][/prefix]; the request path is appended */
    struct svc_breaker *breaker;          /* this target's breaker (required) */
    const char *header_name;          /* one extra header, e.g. "X-Api-Key" (NULL: none) */
    const char *header_value;         /* its value: copied into the request and wiped after use */
    /* Called for every address about to be connected to; false refuses it. NULL: no check. */
    bool (*allow_address)(void *arg, const struct sockaddr *addr, socklen_t len);
    void *allow_arg;
};

struct svc_httpc_request {
    const char *upstream;        /* a name given to svc_httpc_add_upstream */
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* appended to the base URL; starts with '/'; may carry ?query */
    const void *body;            /* may be NULL */
    size_t body_len;
    const char *content_type;    /* sent with a body ["application/json"] */
    const char *correlation_id;  /* X-Correlation-ID; may be NULL */
    const char *idempotency_key; /* Idempotency-Key; makes a non-idempotent method retryable */
    const char *accept;          /* Accept; may be NULL */
    long timeout_ms;             /* per-attempt total timeout; 0 = client default */
    bool no_auth;                /* send no Authorization (e.g. the call that obtains the token) */
    const struct svc_httpc_target *target; /* NULL: the upstream's base URL and breaker */
};

struct svc_httpc_response {
    enum svc_httpc_outcome outcome;
    long status;                 /* HTTP status of the last attempt; 0 when none arrived */
    char *body;                  /* NUL-terminated (body[len] == 0); NULL when empty */
    size_t len;
    char content_type[128];      /* "" when absent */
    bool has_retry_after;
    uint32_t retry_after_ms;     /* parsed Retry-After of the last response */
    int attempts;                /* HTTP exchanges tried (0 when rejected before sending) */
    double elapsed_ms;           /* whole call, waits included */
};

struct svc_httpc;

/* cfg may be NULL (defaults). Calls curl_global_init. NULL on failure. */
struct svc_httpc *svc_httpc_new(const struct svc_httpc_config *cfg);
void svc_httpc_free(struct svc_httpc *c);

/* name: 1..47 chars of [A-Za-z0-9_.-] (it becomes a metric label); base_url: http(s)://host[:port]
 * [/prefix], a trailing '/' is dropped, or NULL for an upstream whose calls all name a target.
 * bc may be NULL (breaker defaults); its on_change, if any, is called after httpc's own log line.
 * Returns 0, or -1 (bad argument, duplicate name, table full, no memory). */
int svc_httpc_add_upstream(struct svc_httpc *c, const char *name, const char *base_url, const struct svc_breaker_config *bc);

/* Performs the call with retries. Always initialises *out (free it with svc_httpc_response_free) and
 * returns out->outcome. */
enum svc_httpc_outcome svc_httpc_request(struct svc_httpc *c, const struct svc_httpc_request *req, struct svc_httpc_response *out);
void svc_httpc_response_free(struct svc_httpc_response *r);

/* Breaker state of an upstream (for /health/ready), or -1 for an unknown name. */
int svc_httpc_upstream_state(struct svc_httpc *c, const char *name);
/* Calls fn for every upstream, in the order added. */
void svc_httpc_each_upstream(struct svc_httpc *c, void (*fn)(void *arg, const char *name, svc_breaker_state_t st), void *arg);

/* Appends the metrics above, HELP/TYPE lines included, in Prometheus text format. */
void svc_httpc_metrics_render(struct svc_httpc *c, struct svc_buf *out);
/* The same for several clients of one process (NULL entries skipped), each family's HELP/TYPE
 * once (a family split over two blocks is not valid exposition text). */
void svc_httpc_metrics_render_all(struct svc_httpc *const *cs, int n, struct svc_buf *out);

/* "ok", "svc_breaker_open", ... */
const char *svc_httpc_outcome_str(enum svc_httpc_outcome o);

#endif
