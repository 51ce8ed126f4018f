/* HTTP in/out for /api/events: authenticate, check the body's size, call the use case, answer.
 * The rules live in events_ingest.c, events_list.c, events_stats.c and events_dead.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "events_dead.h"
#include "events_ingest.h"
#include "events_list.h"
#include "events_stats.h"
#include "sync_ctx.h"
#include "routes.h"

static struct sync_ctx *cx_of(struct svc_req *r) { return sync_ctx_of(r->app); }

#define AUTHENTICATED(r, who) SVC_AUTHENTICATED(&cx_of(r)->auth, r, who)

/* The router's limit is HTTP_MAX_BODY_BYTES; these routes have their own, smaller ones. */
static bool body_fits(struct svc_req *r, size_t max) {
    size_t len;
    svc_raw_body(r, &len);
    if (len <= max) return true;
    svc_respond_error(r, 413, "payload_too_large", "request body exceeds the size limit",
                      json_pack("{s:I}", "max_bytes", (json_int_t)max));
    return false;
}

/* 202 for a success, the envelope otherwise (Retry-After from the result). */
static void answer_accepted(struct svc_req *r, struct svc_principal *who, struct svc_result res) {
    if (res.st == SVC_OK) {
        svc_principal_clear(who);
        if (res.raw) {
            svc_respond_raw(r, 202, "application/json", res.raw, strlen(res.raw));
        } else {
            svc_respond_json(r, 202, res.body);
            res.body = NULL;
        }
        svc_result_clear(&res);
        return;
    }
    svc_respond_as(r, who, &res);
}

static void h_post(struct svc_req *r) {
    AUTHENTICATED(r, who);
    if (!body_fits(r, EVENTS_BODY_MAX)) {
        svc_principal_clear(&who);
        return;
    }
    answer_accepted(r, &who, events_ingest_one(cx_of(r), r->cid, &who, r->body));
}

static void h_batch(struct svc_req *r) {
    AUTHENTICATED(r, who);
    if (!body_fits(r, EVENTS_BATCH_BODY_MAX)) {
        svc_principal_clear(&who);
        return;
    }
    answer_accepted(r, &who, events_ingest_batch(cx_of(r), r->cid, &who, r->body));
}

static void h_list(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct events_list_query q = {.type = svc_query(r, "type"),
                                  .user_id = svc_query(r, "userId"),
                                  .session_id = svc_query(r, "sessionId"),
                                  .from = svc_query(r, "from"),
                                  .to = svc_query(r, "to"),
                                  .page = SVC_PAGE_PARAMS(r)};
    struct svc_result res = events_list(cx_of(r), r->cid, &who, &q);
    svc_respond_as(r, &who, &res);
}

static void h_stats(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = events_stats(cx_of(r), r->cid, &who);
    svc_respond_as(r, &who, &res);
}

static void h_dead(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct events_dead_query q = {.type = svc_query(r, "type"),
                                  .from = svc_query(r, "from"),
                                  .to = svc_query(r, "to"),
                                  .status = svc_query(r, "status"),
                                  .page = SVC_PAGE_PARAMS(r)};
    struct svc_result res = events_dead_list(cx_of(r), r->cid, &who, &q);
    svc_respond_as(r, &who, &res);
}

static void h_replay(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct svc_result res = events_dead_replay(cx_of(r), r->cid, &who, r->body);
    svc_respond_as(r, &who, &res);
}

const struct svc_route routes_events[] = {
    {"POST", "/api/events", h_post, SVC_ROUTE_JSON, 0},
    {"POST", "/api/events/batch", h_batch, SVC_ROUTE_JSON, 0},
    {"GET", "/api/events", h_list, 0, 0},
    {"GET", "/api/events/stats", h_stats, 0, 0},
    {"GET", "/api/events/dead", h_dead, 0, 0},
    {"POST", "/api/events/dead/replay", h_replay, SVC_ROUTE_JSON, 0},
};
const int routes_events_count = (int)(sizeof routes_events / sizeof routes_events[0]);
