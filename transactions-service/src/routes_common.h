/* Helpers shared by the route files: authentication and answering a use case's result with its
 * extra headers (Retry-After, Idempotent-Replayed). */
#ifndef TX_ROUTES_COMMON_H
#define TX_ROUTES_COMMON_H

#include <stdio.h>

#include "ctx.h"
#include "transactions.h"

static inline struct tx_ctx *tx_cx(struct svc_req *r) { return tx_ctx_of(r->app); }

/* Declares `who` and returns from the handler when authentication failed (already answered). */
#define TX_AUTHENTICATED(r, who) SVC_AUTHENTICATED(&tx_cx(r)->auth, r, who)

static inline void tx_answer_send(struct svc_req *r, struct svc_principal *who, struct tx_answer a) {
    if (a.retry_after_s) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", a.retry_after_s);
        svc_set_header(r, "Retry-After", ra);
    }
    if (a.replayed) svc_set_header(r, "Idempotent-Replayed", "true");
    svc_respond_as(r, who, &a.res);
}

#endif
