/* GET /api/events (see events_list.h). */
#include "events_list.h"

#include <stdio.h>
#include <string.h>

#include "events_codec.h"
#include "events_read_repo.h"
#include "events_validate.h"
#include "svc/utf8.h"
#include "sync_ctx.h"

bool events_query_time(const char *s, char *out) {
    int64_t ms;
    if (!events_parse_time(s, &ms)) return false;
    events_format_time(ms, out);
    return true;
}

struct svc_result events_db_error(struct sync_ctx *cx, const char *cid, const char *what, svc_status st) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "events: database call failed", "{s:s,s:s}", "call", what, "status",
             svc_status_code(st));
    if (st == SVC_UNAVAILABLE || st == SVC_TIMEOUT)
        return SVC_RESULT_ERR(SVC_UNAVAILABLE, "database_unavailable", "the database is unavailable; retry later");
    return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
}

static bool text_param_ok(const char *s) {
    size_t chars = 0;
    return svc_text_check(s, strlen(s), 0, &chars) == SVC_TEXT_OK && chars >= 1 && chars <= EVENTS_TEXT_MAX;
}

struct svc_result events_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                              const struct events_list_query *q) {
    json_t *fields = json_object();
    if (!fields) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "out of memory");
    struct svc_page page;
    svc_page_parse(&events_list_kind, &q->page, &page, fields);
    if (q->type && events_type_index(q->type) < 0)
        svc_query_reason(fields, "type", "must be one of view, purchase, add_to_cart, remove_from_cart, login, "
                                         "logout, search");
    if (q->user_id && !text_param_ok(q->user_id)) svc_query_reason(fields, "userId", "must be 1 to 128 characters");
    if (q->session_id && !text_param_ok(q->session_id))
        svc_query_reason(fields, "sessionId", "must be 1 to 128 characters");
    char from[40], to[40];
    if (q->from && !events_query_time(q->from, from))
        svc_query_reason(fields, "from", "must be an RFC 3339 date-time with a time zone");
    if (q->to && !events_query_time(q->to, to))
        svc_query_reason(fields, "to", "must be an RFC 3339 date-time with a time zone");
    if (json_object_size(fields) > 0) return svc_query_invalid(fields);
    json_decref(fields);

    const char *user = q->user_id;
    if (!who->is_admin) {
        if (user && strcmp(user, who->sub) != 0)
            return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "only an admin may list another user's events");
        user = who->sub;
    }
    struct events_filter f = {.type = q->type,
                              .user_id = user,
                              .session_id = q->session_id,
                              .from = q->from ? from : NULL,
                              .to = q->to ? to : NULL};
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return events_db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = events_read_list(c, &f, &page, &json);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return events_db_error(cx, cid, "list events", st);
    return (struct svc_result){.st = SVC_OK, .raw = json};
}
