/* HTTP in/out for /api/transactions. Every route authenticates first; transactions.c decides
 * who may see or do what. */
#include "routes.h"
#include "routes_common.h"

static void h_create(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_create(tx_cx(r), r->cid, &who, svc_header(r, "Idempotency-Key"), r->body));
}

static void h_list(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_list(tx_cx(r), r->cid, &who, &SVC_PAGE_PARAMS(r), svc_query(r, "type"), svc_query(r, "status"), svc_query(r, "from"),
                                    svc_query(r, "to"), svc_query(r, "user_id")));
}

static void h_summary(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_summary(tx_cx(r), r->cid, &who, svc_query(r, "group_by"), svc_query(r, "from"),
                                       svc_query(r, "to"), svc_query(r, "user_id"), svc_query(r, "currency")));
}

static void h_get(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_get(tx_cx(r), r->cid, &who, svc_param(r, "id")));
}

static void h_reverse(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_reverse(tx_cx(r), r->cid, &who, svc_header(r, "Idempotency-Key"), svc_param(r, "id")));
}

/* /summary is listed before /{id}: the first matching template wins. */
const struct svc_route routes_transactions[] = {
    {"POST", "/api/transactions", h_create, SVC_ROUTE_JSON, 0},
    {"GET", "/api/transactions", h_list, 0, 0},
    {"GET", "/api/transactions/summary", h_summary, 0, 0},
    {"GET", "/api/transactions/{id}", h_get, 0, 0},
    {"POST", "/api/transactions/{id}/reverse", h_reverse, 0, 0},
};
const int routes_transactions_count = (int)(sizeof routes_transactions / sizeof routes_transactions[0]);
