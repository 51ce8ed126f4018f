/* Use cases of the dead letters: GET /api/events/dead and POST /api/events/dead/replay (admin).
 * No HTTP, no SQL.
 *
 * List: newest first, keyset-paged (svc/paging.h, limit 1..500, default 50), filters type, from/to (on the failure time)
 * and status (outstanding — the default —, replayed, all). Each item carries the reason
 * (PostgreSQL's message and SQLSTATE) and the event as it was accepted.
 *
 * Replay: {"ids": [event ids]} (1..500), or a filter {"type", "from", "to"} (at least one of
 * them; "limit" 1..500, default 500). The chosen outstanding dead letters are marked replayed
 * and their stream entries appended again in one database transaction that commits only after
 * Redis took the entries (a failure undoes the marks: 503). The entry is the one first accepted
 * (same id, day and times), so a replayed event that meanwhile got written, or a replay run
 * twice, stores nothing twice; one that fails again becomes a new outstanding dead letter.
 * Answer: {"replayed": n, "ids": [event ids], "has_more": bool}.
 *
 * Borrowed: cx, cid, who, q/body. Result raw/body as svc_respond_result expects. */
#ifndef EVENTS_DEAD_H
#define EVENTS_DEAD_H

#include <jansson.h>

#include "svc/auth.h"
#include "svc/paging.h"
#include "svc/status.h"

struct sync_ctx;

struct events_dead_query {
    const char *type, *from, *to, *status;
    struct svc_page_params page;
};

struct svc_result events_dead_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                   const struct events_dead_query *q);
struct svc_result events_dead_replay(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                     const json_t *body);

#endif
