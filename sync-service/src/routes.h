/* Route tables of sync-service, one routes_*.c each (thin HTTP handlers; the rules live in
 * sync_runs.c, dash_*.c and events_*.c). */
#ifndef SYNC_ROUTES_H
#define SYNC_ROUTES_H

#include "svc/http.h"
#include "sync_ctx.h"

extern const struct svc_route routes_sync[];
extern const int routes_sync_count;
/* The operator dashboard (routes_dashboard.c), registered only when it is on. */
extern const struct svc_route routes_dashboard[];
extern const int routes_dashboard_count;
extern const struct svc_route routes_events[];
extern const int routes_events_count;
/* /api/tenants (routes_tenants.c) */
extern const struct svc_route routes_tenants[];
extern const int routes_tenants_count;

#endif
