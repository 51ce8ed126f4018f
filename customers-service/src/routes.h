/* Route tables of customers-service (thin HTTP handlers; the rules live in users.c / sessions.c). */
#ifndef CUSTOMERS_ROUTES_H
#define CUSTOMERS_ROUTES_H

#include "svc/http.h"

extern const struct svc_route routes_auth[];
extern const int routes_auth_count;
extern const struct svc_route routes_users[];
extern const int routes_users_count;
extern const struct svc_route routes_internal[];
extern const int routes_internal_count;

#endif
