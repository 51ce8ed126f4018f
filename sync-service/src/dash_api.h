/* Use cases behind the operator dashboard's JSON calls (/admin/dashboard/api/...) and the
 * queue listing of GET /admin/queues: every queue discovered in Redis with its counts, the
 * per-minute chart, the jobs in a queue and the dead-letter actions. No HTTP here.
 *
 * Queues are named by the caller (path segments): a name that is not a known queue answers
 * 404 queue_not_found, so no request can create keys for an arbitrary name. Job payloads are never
 * returned (they may hold personal data): ids, attempts, errors and times only.
 * Results follow svc/status.h (body owned by the result). cx and strings are borrowed. */
#ifndef DASH_API_H
#define DASH_API_H

#include "svc/status.h"
#include "sync_ctx.h"

#define DASH_CHART_MINUTES 60

/* {"queues":[{"name","waiting","active","delayed","completed","failed","dead",
 *   "chart":[{"minute","completed","failed"}…60, oldest first]}], "generated_at"} */
struct svc_result dash_overview(struct sync_ctx *cx, const char *cid, bool with_chart);
/* {"queue","recent":[job…],"dead":[dead job…]} (newest 50 jobs, oldest 100 dead). */
struct svc_result dash_queue_jobs(struct sync_ctx *cx, const char *cid, const char *queue);
/* action: "retry" | "remove" a dead job, "retry-all" (id NULL). Answers {"queue","moved","counts"}. */
struct svc_result dash_dead_action(struct sync_ctx *cx, const char *cid, const char *queue, const char *action,
                                   const char *id);

#endif
