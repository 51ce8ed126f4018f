/* User checks against customers-service: GET /internal/users/{id} → {id, deleted, role} or 404,
 * through the resilient client (upstream "customers": breaker, retries, timeouts, service token).
 *
 * Borrowed: cx, cid, id. Thread-safe (httpc is). */
#ifndef TX_CUSTOMERS_CLIENT_H
#define TX_CUSTOMERS_CLIENT_H

#include <stdint.h>

#include "ctx.h"

enum user_state {
    USER_UNKNOWN = 0,   /* not looked up (yet) */
    USER_ACTIVE,        /* exists and not deleted */
    USER_DELETED,       /* exists, soft-deleted */
    USER_MISSING,       /* no such user */
    USER_UNAVAILABLE    /* customers-service could not answer (down, breaker open, refused us) */
};

/* Looks id up. For USER_UNAVAILABLE, *retry_after_s receives the wait to suggest to the client
 * (svc_customers_retry_after_s). */
enum user_state customers_user_state(struct tx_ctx *cx, const char *cid, const char *id, uint32_t *retry_after_s);

#endif
