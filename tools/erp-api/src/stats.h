/* erp-api: global request counters, so tests can prove a rate limit from the ERP's side.
 *
 * Per second (a ring of the last hour): requests and "starts" — a start is a request for page 1
 * of a kind, i.e. the beginning of one sync job. Every start is also logged with its tenant, kind
 * and time in milliseconds (the newest STATS_MAX_STARTS), so a test can slide any window over
 * them. Per-tenant counters live in the tenant entries (tenants.h).
 *
 * Synchronisation: one mutex guards the ring and the start log. Time is the wall clock (Unix
 * milliseconds), the same clock the tests read. */
#ifndef ERP_STATS_H
#define ERP_STATS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "tenants.h"

#define STATS_SECONDS 3600
#define STATS_MAX_STARTS 262144

struct stats;

struct stats *stats_new(void);
void stats_free(struct stats *s);

int64_t stats_now_ms(void);
/* One request for a tenant's kind (t may be NULL for unknown tenants); start = page 1. */
void stats_request(struct stats *s, struct sim_tenant *t, int kind, bool start, int64_t now_ms);
/* Zeroes the global counters, the start log and every tenant's counters. */
void stats_reset(struct stats *s, struct registry *r);
/* GET /stats: {"since_ms","total","starts","max_requests_per_second","max_starts_per_second",
 * "max_starts_per_minute","seconds":[[unix_s,requests,starts]…],"tenants":{name:{…}}} */
json_t *stats_json(struct stats *s, struct registry *r);
/* GET /stats/starts: {"starts":[{"tenant","kind","at_ms"}…]} at or after since_ms, oldest first. */
json_t *stats_starts_json(struct stats *s, int64_t since_ms);

#endif
