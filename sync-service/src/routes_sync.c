/* HTTP in/out for /api/sync, /api/job-runs and /admin/queues. Every route authenticates first;
 * sync_runs.c decides who may do what (admins only). */
#include <stdlib.h>
#include <string.h>

#include "sync_ctx.h"
#include "routes.h"
#include "sync_runs.h"

static struct sync_ctx *cx_of(struct svc_req *r) { return sync_ctx_of(r->app); }

#define AUTHENTICATED(r, who) SVC_AUTHENTICATED(&cx_of(r)->auth, r, who)

static void answer(struct svc_req *r, struct svc_principal *who, struct svc_result res) {
    svc_respond_as(r, who, &res);
}

/* POST /api/sync: 202 with a new run, 200 with the one already active. */
static void h_trigger(struct svc_req *r) {
    AUTHENTICATED(r, who);
    bool created = false;
    struct svc_result res = sync_trigger(cx_of(r), r->cid, &who, &created);
    if (res.st == SVC_OK && created && res.raw) {
        svc_principal_clear(&who);
        svc_respond_raw(r, 202, "application/json", res.raw, strlen(res.raw));
        svc_result_clear(&res);
        return;
    }
    answer(r, &who, res);
}

static void h_status(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, sync_status(cx_of(r), r->cid, &who));
}

static void h_history(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, sync_history(cx_of(r), r->cid, &who, &SVC_PAGE_PARAMS(r)));
}

static void h_get(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, sync_get(cx_of(r), r->cid, &who, svc_param(r, "id")));
}

static void h_errors(struct svc_req *r) {
    AUTHENTICATED(r, who);
    answer(r, &who, sync_errors(cx_of(r), r->cid, &who, svc_param(r, "id"), &SVC_PAGE_PARAMS(r)));
}

static void h_job_runs(struct svc_req *r) {
    AUTHENTICATED(r, who);
    struct sync_job_runs_query q = {.queue = svc_query(r, "queue"),
                                    .run_id = svc_query(r, "run_id"),
                                    .tenant = svc_query(r, "tenant"),
                                    .status = svc_query(r, "status"),
                                    .from = svc_query(r, "from"),
                                    .to = svc_query(r, "to")};
    answer(r, &who, sync_job_runs(cx_of(r), r->cid, &who, &SVC_PAGE_PARAMS(r), &q));
}

/* GET /admin/queues: JSON for API clients; a browser asking for HTML (the previous system's
 * Bull Board lived here) is sent to the dashboard when it is on. */
static void h_queues(struct svc_req *r) {
    const char *accept = svc_header(r, "Accept");
    if (cx_of(r)->dash.enabled && accept && strstr(accept, "text/html")) {
        svc_set_header(r, "Location", "/admin/dashboard");
        svc_respond_json(r, 303, NULL);
        return;
    }
    AUTHENTICATED(r, who);
    answer(r, &who, sync_queues(cx_of(r), r->cid, &who));
}

const struct svc_route routes_sync[] = {
    {"POST", "/api/sync", h_trigger, 0, 0},
    {"GET", "/api/sync/status", h_status, 0, 0},
    {"GET", "/api/sync/history", h_history, 0, 0},
    {"GET", "/api/sync/{id}", h_get, 0, 0},
    {"GET", "/api/sync/{id}/errors", h_errors, 0, 0},
    {"GET", "/api/job-runs", h_job_runs, 0, 0},
    {"GET", "/admin/queues", h_queues, 0, 0},
};
const int routes_sync_count = (int)(sizeof routes_sync / sizeof routes_sync[0]);
