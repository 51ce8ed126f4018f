/* customers-service user lookups; see customers_client.h.
 *
 * A malformed 200 or a 401/403 (our service credentials refused) are reported as
 * USER_UNAVAILABLE, never as "missing": a transaction must not be refused as if the user did not
 * exist because of a fault on our side of the call. */
#include "customers_client.h"

#include <jansson.h>
#include <stdio.h>

#include "svc/json_text.h"

enum user_state customers_user_state(struct tx_ctx *cx, const char *cid, const char *id, uint32_t *retry_after_s) {
    char path[64];
    snprintf(path, sizeof path, "/internal/users/%s", id);
    struct svc_httpc_request rq = {
        .upstream = SVC_CUSTOMERS_UPSTREAM, .method = "GET", .path = path, .correlation_id = cid,
        .accept = "application/json",
    };
    struct svc_httpc_response rs;
    svc_httpc_request(cx->customers.http, &rq, &rs);
    enum user_state st = USER_UNAVAILABLE;
    if (rs.outcome == SVC_HTTPC_OK && rs.status == 200 && rs.body) {
        json_error_t jerr;
        json_t *doc = svc_json_load(rs.body, rs.len, 0, &jerr);
        json_t *deleted = json_object_get(doc, "deleted");
        if (json_is_boolean(deleted)) st = json_is_true(deleted) ? USER_DELETED : USER_ACTIVE;
        else svc_log(&cx->app.log, SVC_LOG_ERROR, cid, "customers-service sent a malformed user status", NULL);
        json_decref(doc);
    } else if (rs.outcome == SVC_HTTPC_OK && rs.status == 404) {
        st = USER_MISSING;
    } else if (rs.outcome == SVC_HTTPC_OK && (rs.status == 401 || rs.status == 403)) {
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "customers-service refused our service token", "{s:i}",
                 "status", (int)rs.status);
    } else if (rs.outcome == SVC_HTTPC_NO_TOKEN) {
        svc_log(&cx->app.log, SVC_LOG_WARN, cid, "no service token for customers-service", NULL);
    }
    *retry_after_s = st == USER_UNAVAILABLE ? svc_customers_retry_after_s(&cx->customers, &rs) : 1;
    svc_httpc_response_free(&rs);
    return st;
}
