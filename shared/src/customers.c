/* The client of customers-service; see svc/customers.h. transactions-service and sync-service
 * used to build it each in their own main.c, with different defaults and minimums for the same
 * variables (a retry base of 1000 ms, minimum 0, in one; 200 ms, minimum 1, in the other) and
 * different /health/ready entries for the same breaker. */
#include "svc/customers.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void svc_customers_config(struct svc_customers *cc, struct svc_config *cfg) {
    memset(cc, 0, sizeof *cc);
    cc->url = svc_config_str(cfg, "CUSTOMERS_URL", NULL);
    if (cc->url && strncmp(cc->url, "http://", 7) && strncmp(cc->url, "https://", 8))
        svc_config_error(cfg, "CUSTOMERS_URL", "must be an http:// or https:// URL");
    cc->client_id = svc_config_str(cfg, "SERVICE_CLIENT_ID", NULL);
    cc->client_secret = svc_config_str(cfg, "SERVICE_CLIENT_SECRET", NULL);
    cc->connect_timeout_ms = svc_config_int(cfg, "CUSTOMERS_CONNECT_TIMEOUT_MS", 1000, 10, 60000);
    cc->timeout_ms = svc_config_int(cfg, "CUSTOMERS_TIMEOUT_MS", 2000, 10, 120000);
    cc->retry_attempts = svc_config_int(cfg, "CUSTOMERS_RETRY_ATTEMPTS", 3, 1, 10);
    cc->retry_base_ms = svc_config_int(cfg, "CUSTOMERS_RETRY_BASE_MS", 200, 1, 60000);
    cc->retry_cap_ms = svc_config_int(cfg, "CUSTOMERS_RETRY_CAP_MS", 2000, 1, 600000);
    if (cc->retry_cap_ms < cc->retry_base_ms) cc->retry_cap_ms = cc->retry_base_ms;
    cc->svc_breaker_failures = svc_config_int(cfg, "CUSTOMERS_BREAKER_FAILURES", 5, 1, 1000);
    cc->svc_breaker_open_ms = svc_config_int(cfg, "CUSTOMERS_BREAKER_OPEN_MS", 10000, 100, 3600000);
}

int svc_customers_open(struct svc_customers *cc, const char *service_name, const struct svc_logger *log) {
    cc->token = svc_svctoken_new(&(struct svc_svctoken_config){.upstream = SVC_CUSTOMERS_UPSTREAM,
                                                       .client_id = cc->client_id,
                                                       .client_secret = cc->client_secret,
                                                       .logger = log});
    struct svc_httpc_config hc = {
        .service_name = service_name,
        .connect_timeout_ms = cc->connect_timeout_ms,
        .timeout_ms = cc->timeout_ms,
        .max_attempts = (int)cc->retry_attempts,
        .backoff = {.base_ms = (uint32_t)cc->retry_base_ms, .cap_ms = (uint32_t)cc->retry_cap_ms},
        .token_fn = svc_svctoken_get,
        .token_arg = cc->token,
        .logger = log,
    };
    cc->http = cc->token ? svc_httpc_new(&hc) : NULL;
    struct svc_breaker_config bc = {.failure_threshold = (int)cc->svc_breaker_failures,
                                .open_timeout_ms = (uint32_t)cc->svc_breaker_open_ms};
    if (!cc->http || svc_httpc_add_upstream(cc->http, SVC_CUSTOMERS_UPSTREAM, cc->url, &bc) != 0) {
        fprintf(stderr, "%s: cannot set up the customers-service client (CUSTOMERS_URL?)\n", service_name);
        return -1;
    }
    svc_svctoken_attach(cc->token, cc->http);
    return 0;
}

void svc_customers_close(struct svc_customers *cc) {
    svc_httpc_free(cc->http);
    svc_svctoken_free(cc->token);
    cc->http = NULL;
    cc->token = NULL;
}

int svc_customers_ready(struct svc_customers *cc, json_t *checks) {
    int st = cc->http ? svc_httpc_upstream_state(cc->http, SVC_CUSTOMERS_UPSTREAM) : -1;
    svc_breaker_state_t bs = st < 0 ? SVC_BREAKER_OPEN : (svc_breaker_state_t)st;
    char now[32];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%SZ", &tm);
    int warn = bs == SVC_BREAKER_CLOSED ? 0 : 1;   /* open or probing: degraded, still ready */
    json_t *c = json_pack("{s:s,s:s,s:s,s:s}", "componentType", "component", "status", warn ? "warn" : "pass",
                          "observedValue", svc_breaker_state_str(bs), "time", now);
    if (c && bs == SVC_BREAKER_OPEN)
        json_object_set_new(c, "output", json_string("circuit breaker open: calls fail fast"));
    if (c) json_object_set_new(checks, SVC_CUSTOMERS_UPSTREAM ":circuitBreaker", json_pack("[o]", c));
    return warn;
}

void svc_customers_metrics(struct svc_customers *cc, struct svc_buf *out) {
    if (cc->http) svc_httpc_metrics_render(cc->http, out);
}

unsigned svc_customers_retry_after_s(const struct svc_customers *cc, const struct svc_httpc_response *rs) {
    if (rs->outcome == SVC_HTTPC_BREAKER_OPEN) return (unsigned)((cc->svc_breaker_open_ms + 999) / 1000);
    if (rs->has_retry_after) {
        uint32_t s = (rs->retry_after_ms + 999) / 1000;
        return s < 1 ? 1 : s > 3600 ? 3600 : s;
    }
    return 1;
}
