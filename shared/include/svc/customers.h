/* The client of customers-service that the other services use (transactions-service's user
 * checks, sync-service's bulk upserts): one set of CUSTOMERS_* settings with one set of defaults
 * and limits, the resilient client (svc/httpc.h: breaker, retries, timeouts) with the service
 * token (svc/svctoken.h), and the same /health/ready entry and Retry-After rule everywhere.
 *
 * Settings (docs/operations.md, "Calling other services"), read by svc_customers_config:
 *   CUSTOMERS_URL (required), SERVICE_CLIENT_ID, SERVICE_CLIENT_SECRET / _FILE (required),
 *   CUSTOMERS_CONNECT_TIMEOUT_MS 1000 [10, 60000], CUSTOMERS_TIMEOUT_MS 2000 [10, 120000]
 *   (one attempt; a call may ask for longer, as the bulk upsert does), CUSTOMERS_RETRY_ATTEMPTS 3
 *   [1, 10], CUSTOMERS_RETRY_BASE_MS 200 [1, 60000], CUSTOMERS_RETRY_CAP_MS 2000 [1, 600000]
 *   (raised to the base when below it), CUSTOMERS_BREAKER_FAILURES 5 [1, 1000],
 *   CUSTOMERS_BREAKER_OPEN_MS 10000 [100, 3600000].
 *
 * Lifecycle (main.c): svc_customers_config before svc_app_check_config, svc_customers_open after
 * it, svc_customers_close at the end. Synchronisation: after open, the struct is read-only and
 * the client is thread-safe (httpc.h). Ownership: the struct owns the client and the token; the
 * strings come from the svc_config (valid until it is freed); the logger is borrowed and must
 * outlive the client. */
#ifndef SVC_CUSTOMERS_H
#define SVC_CUSTOMERS_H

#include <jansson.h>

#include "svc/buf.h"
#include "svc/config.h"
#include "svc/httpc.h"
#include "svc/log.h"
#include "svc/svctoken.h"

/* The httpc upstream name of customers-service (metrics label, health check name). */
#define SVC_CUSTOMERS_UPSTREAM "customers"

struct svc_customers {
    struct svc_httpc *http;          /* owned; calls go to upstream SVC_CUSTOMERS_UPSTREAM */
    struct svc_svctoken *token;      /* owned */
    const char *url;             /* CUSTOMERS_URL */
    const char *client_id;       /* SERVICE_CLIENT_ID */
    const char *client_secret;   /* SERVICE_CLIENT_SECRET */
    long connect_timeout_ms, timeout_ms, retry_attempts, retry_base_ms, retry_cap_ms;
    long svc_breaker_failures, svc_breaker_open_ms;
};

/* Reads the settings into cc (zeroing it first); problems are recorded in cfg as config errors. */
void svc_customers_config(struct svc_customers *cc, struct svc_config *cfg);
/* Builds the client (service_name goes into User-Agent). Returns 0, or -1 with a line on stderr. */
int svc_customers_open(struct svc_customers *cc, const char *service_name, const struct svc_logger *log);
/* Frees the client and the token (safe on a config-only or zeroed struct). */
void svc_customers_close(struct svc_customers *cc);

/* For a service's ready hook: adds "customers:circuitBreaker" to checks (health+json: "pass"
 * while closed; "warn" while open or half-open, the instance stays ready; "output" says calls
 * fail fast while open). Returns 0 (pass) or 1 (warn). */
int svc_customers_ready(struct svc_customers *cc, json_t *checks);
/* The client's metrics (http_client_*, circuit_breaker_state), for a metrics hook. */
void svc_customers_metrics(struct svc_customers *cc, struct svc_buf *out);
/* Seconds a client of ours should wait before retrying after a call to customers-service that
 * failed with rs: the breaker's open period while it rejects calls, the upstream's Retry-After
 * (1..3600), else 1. */
unsigned svc_customers_retry_after_s(const struct svc_customers *cc, const struct svc_httpc_response *rs);

#endif
