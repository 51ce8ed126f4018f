/* HTTP in/out for /api/accounts. */
#include "routes.h"
#include "routes_common.h"

static void h_balance(struct svc_req *r) {
    TX_AUTHENTICATED(r, who);
    tx_send(r, &who, tx_balance(tx_cx(r), r->cid, &who));
}

const struct svc_route routes_accounts[] = {
    {"GET", "/api/accounts/me/balance", h_balance, 0, 0},
};
const int routes_accounts_count = (int)(sizeof routes_accounts / sizeof routes_accounts[0]);
