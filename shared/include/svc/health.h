/* Built-in operational endpoints every service serves: GET /health/live, GET /health/ready
 * (application/health+json, IETF draft "Health Check Response Format for HTTP APIs") and
 * GET /metrics (Prometheus text). Readiness checks PostgreSQL and Redis with their round-trip
 * latency plus the service's own hook (e.g. circuit breakers, reported as "warn"). */
#ifndef SVC_HEALTH_H
#define SVC_HEALTH_H

#include "svc/http.h"

void svc_health_live(struct svc_req *r);
void svc_health_ready(struct svc_req *r);
void svc_metrics_endpoint(struct svc_req *r);

#endif
