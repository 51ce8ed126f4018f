/* Route tables of transactions-service (thin HTTP handlers; the rules live in transactions.c). */
#ifndef TX_ROUTES_H
#define TX_ROUTES_H

#include "svc/http.h"

extern const struct svc_route routes_transactions[];
extern const int routes_transactions_count;
extern const struct svc_route routes_accounts[];
extern const int routes_accounts_count;

#endif
