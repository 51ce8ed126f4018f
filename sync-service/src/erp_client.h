/* The ERP client: one page of a tenant's customers or products, over the resilient HTTP client
 * (httpc, upstream "erp", calls with a target per tenant) and classified by what the job does
 * next. Speaks the ERP contract (docs/operations.md):
 *
 *   GET {erpBaseUrl}/{kind}?page=N&per_page=M[&updated_since=…]   X-Api-Key: <the tenant's key>
 *
 * Each tenant has its own circuit breaker (created on first use, kept for the process), so a dead
 * ERP fails its jobs at once instead of holding workers through timeouts, and other tenants are
 * not affected. Answers are size-capped (ERP_MAX_PAGE_BYTES) and time-limited
 * (ERP_TIMEOUT_MS, ERP_CONNECT_TIMEOUT_MS); a short retry of a transient page failure happens
 * inside httpc (ERP_PAGE_ATTEMPTS), never a wait for a Retry-After (that is the job's business:
 * other instances must honour it too). Redirects are never followed. Unless the URL's host is
 * allowed by ERP_ALLOWED_HOSTS, every address connected to passes the SSRF rule (erp_url.h) and
 * such calls never reuse a connection.
 *
 * The API key goes only into the X-Api-Key header (httpc wipes its copy); nothing here logs it or
 * the query string.
 *
 * Synchronisation: the breaker table is guarded by a mutex; httpc is thread-safe; a fetch uses
 * only its caller's memory. Ownership: a struct erp_page_fetch owns its body (erp_fetch_free). */
#ifndef ERP_CLIENT_H
#define ERP_CLIENT_H

#include <pthread.h>
#include <stdint.h>

#include "erp_page.h"
#include "erp_url.h"
#include "svc/breaker.h"
#include "svc/httpc.h"
#include "svc/log.h"

#define ERP_BREAKERS_MAX 16384

struct erp_client_config {
    long connect_timeout_ms;     /* ERP_CONNECT_TIMEOUT_MS [5000] */
    long timeout_ms;             /* ERP_TIMEOUT_MS [30000], per attempt */
    long max_page_bytes;         /* ERP_MAX_PAGE_BYTES [8 MiB] */
    int page_attempts;           /* ERP_PAGE_ATTEMPTS [2] */
    int breaker_failures;        /* ERP_BREAKER_FAILURES [5] */
    long breaker_open_ms;        /* ERP_BREAKER_OPEN_MS [60000] */
    const struct erp_allow *allow;
    const struct svc_logger *log;
};

struct erp_client {
    struct erp_client_config cfg;
    struct svc_httpc *http;
    pthread_mutex_t mu;
    struct erp_breaker_slot { char tenant[40]; struct svc_breaker *b; } *slots;   /* open addressing */
    int nslots;
};

int erp_client_init(struct erp_client *c, const struct erp_client_config *cfg);
void erp_client_free(struct erp_client *c);

enum erp_fetch_outcome {
    ERP_FETCH_OK = 0,      /* a 200 body to parse */
    ERP_FETCH_AUTH,        /* 401: the key is wrong (permanent) */
    ERP_FETCH_THROTTLED,   /* 429: retry_after_ms */
    ERP_FETCH_TRANSIENT,   /* 5xx, timeout, network, breaker open, too large: retry later */
    ERP_FETCH_REFUSED,     /* the address is not allowed (SSRF, permanent) */
    ERP_FETCH_PERMANENT    /* any other answer (4xx, 3xx, a bad URL): retrying will not help */
};

struct erp_page_fetch {
    enum erp_fetch_outcome outcome;
    long status;                 /* HTTP status, 0 when none arrived */
    char *body;
    size_t len;
    long retry_after_ms;         /* THROTTLED: the ERP's Retry-After (0 when absent) */
    char error[160];             /* why, for the job's audit row (no URL, no key) */
};

struct erp_call {
    const char *tenant_id;
    const char *base_url;
    const char *api_key;
    enum erp_kind kind;
    long page, per_page;
    int64_t since_us;            /* < 0: no updated_since */
    const char *correlation_id;
};

void erp_fetch_page(struct erp_client *c, const struct erp_call *call, struct erp_page_fetch *out);
void erp_fetch_free(struct erp_page_fetch *f);

/* The tenant's breaker state (for the status API), or -1 when it has none yet. */
int erp_client_breaker_state(struct erp_client *c, const char *tenant_id);
/* How many of this instance's tenant breakers are closed, half-open and open (indexed by
 * svc_breaker_state_t), for /metrics; all 0 before the first call. */
void erp_client_breaker_counts(struct erp_client *c, long counts[3]);

#endif
