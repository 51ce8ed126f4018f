/* Service access tokens for service-to-service calls (client-credentials grant).
 *
 * Owner: transactions-service team (h10); reused by sync-service. One struct svc_svctoken per
 * process, shared by all threads, plugged into the resilient client as its token callback:
 *
 *   struct svc_svctoken *tok = svc_svctoken_new(&(struct svc_svctoken_config){ .upstream = "customers",
 *                                       .client_id = id, .client_secret = secret, .logger = log });
 *   cfg.token_fn = svc_svctoken_get; cfg.token_arg = tok;
 *   struct svc_httpc *http = svc_httpc_new(&cfg);
 *   svc_httpc_add_upstream(http, "customers", customers_url, &bc);
 *   svc_svctoken_attach(tok, http);              (before the first call)
 *
 * The token comes from POST {upstream}/api/auth/token {client_id, client_secret} →
 * {access_token, expires_in}, made through the same httpc client (so it has the upstream's
 * breaker, timeouts and metrics) with no Authorization header (req.no_auth). It is cached and
 * refreshed when less than refresh_margin_ms (at most a quarter of its lifetime) remains, by one
 * thread at a time: others keep using the still-valid token meanwhile, or wait for the refresh
 * when there is none. A forced refresh (httpc saw a 401) is skipped when a token was obtained
 * less than a second ago, so a burst of 401s costs one token call. The call carries a fresh
 * Idempotency-Key so httpc may retry it (issuing a token twice is harmless).
 *
 * Synchronisation: a mutex and a condition variable guard the cached token. svc_svctoken_get copies
 * the token into a per-thread buffer before returning it (httpc copies it at once), so a
 * concurrent refresh on another thread never changes the string a caller is reading.
 *
 * Ownership: svc_svctoken_new copies every string of the config except logger (borrowed, must
 * outlive the struct). The httpc given to svc_svctoken_attach is borrowed. The secret is wiped on
 * svc_svctoken_free. Never logs the secret or the token. */
#ifndef SVC_SVCTOKEN_H
#define SVC_SVCTOKEN_H

#include <stdbool.h>
#include <stdint.h>

#include "svc/httpc.h"
#include "svc/log.h"

#define SVC_SVCTOKEN_MAX 4096

/* Monotonic milliseconds (injected in tests). */
typedef uint64_t (*svc_svctoken_clock_fn)(void *arg);

struct svc_svctoken_config {
    const char *upstream;          /* httpc upstream name (required) */
    const char *path;              /* ["/api/auth/token"] */
    const char *client_id;         /* required */
    const char *client_secret;     /* required */
    long refresh_margin_ms;        /* refresh this long before expiry, capped at lifetime/4 [60000] */
    long wait_ms;                  /* longest wait for another thread's refresh [10000] */
    svc_svctoken_clock_fn clock;       /* [CLOCK_MONOTONIC] */
    void *clock_arg;
    const struct svc_logger *logger; /* may be NULL */
};

/* NULL on a missing required field or no memory. */
struct svc_svctoken *svc_svctoken_new(const struct svc_svctoken_config *cfg);
void svc_svctoken_attach(struct svc_svctoken *t, struct svc_httpc *http);
void svc_svctoken_free(struct svc_svctoken *t);

/* svc_httpc_token_fn: the current token (valid until this thread's next call), or NULL when none can
 * be had (upstream down, breaker open, credentials refused). arg is the struct svc_svctoken. */
const char *svc_svctoken_get(void *arg, bool force_refresh);

/* Token calls made and failed so far (for metrics/tests). */
void svc_svctoken_stats(struct svc_svctoken *t, unsigned long *fetches, unsigned long *failures);

#endif
