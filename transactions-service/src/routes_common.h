/* Helpers shared by the route files: authentication and answering a use case's result. */
#ifndef TX_ROUTES_COMMON_H
#define TX_ROUTES_COMMON_H

#include "ctx.h"
#include "transactions.h"

static inline struct tx_ctx *tx_cx(struct svc_req *r) { return tx_ctx_of(r->app); }

/* Declares `who` and returns from the handler when authentication failed (already answered). */
#define TX_AUTHENTICATED(r, who) SVC_AUTHENTICATED(&tx_cx(r)->auth, r, who)

/* Answers a use case's result (its headers included) and releases the principal. */
static inline void tx_send(struct svc_req *r, struct svc_principal *who, struct svc_result res) {
    svc_respond_as(r, who, &res);
}

#endif
