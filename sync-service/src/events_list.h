/* Use case of GET /api/events: who may list what, the filters, keyset paging. No HTTP, no SQL.
 *
 * An admin lists every event and may filter by userId; anyone else lists their own events only
 * (userId defaults to their subject; another user's id is 403 forbidden). Filters: type (one of
 * the event types), userId, sessionId, from (inclusive) and to (exclusive) on occurredAt (RFC
 * 3339); paging by svc/paging.h (limit 1..500, default 50). A bad parameter is 400
 * validation_failed with {"fields": {name: reason}} (svc_query_invalid).
 *
 * Borrowed: cx, cid, who, q. The result's raw text is new (svc_respond_result frees it). */
#ifndef EVENTS_LIST_H
#define EVENTS_LIST_H

#include "svc/auth.h"
#include "svc/paging.h"
#include "svc/status.h"

struct sync_ctx;

struct events_list_query {
    const char *type, *user_id, *session_id, *from, *to;
    struct svc_page_params page;   /* limit, cursor, include_total (svc/paging.h) */
};

struct svc_result events_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                              const struct events_list_query *q);

/* A query time (RFC 3339) as a timestamptz literal into out (>= 40 bytes); false when malformed.
 * Shared by the lists' filters. */
bool events_query_time(const char *s, char *out);
/* The 503/500 answer for a failed database call (logged here with cid). */
struct svc_result events_db_error(struct sync_ctx *cx, const char *cid, const char *what, svc_status st);

#endif
