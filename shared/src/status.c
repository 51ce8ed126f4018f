/* The single mapping from domain status to HTTP status and default error code. */
#include "svc/status.h"

#include <jansson.h>
#include <stdlib.h>

void svc_result_clear(struct svc_result *r) {
    json_decref(r->body);
    json_decref(r->details);
    free(r->raw);
    r->body = r->details = NULL;
    r->raw = NULL;
}

int svc_result_header(struct svc_result *r, const char *name, const char *value) {
    for (int i = 0; i < SVC_RESULT_MAX_HEADERS; i++) {
        if (r->headers[i].name) continue;
        r->headers[i].name = name;
        r->headers[i].value = value;
        return 0;
    }
    return -1;
}

int svc_status_http(svc_status s) {
    switch (s) {
    case SVC_OK: return 200;
    case SVC_CREATED: return 201;
    case SVC_NO_CONTENT: return 204;
    case SVC_INVALID: return 400;
    case SVC_UNAUTHORIZED: return 401;
    case SVC_FORBIDDEN: return 403;
    case SVC_NOT_FOUND: return 404;
    case SVC_CONFLICT: return 409;
    case SVC_TOO_LARGE: return 413;
    case SVC_UNSUPPORTED: return 415;
    case SVC_UNPROCESSABLE: return 422;
    case SVC_RATE_LIMITED: return 429;
    case SVC_UNAVAILABLE: return 503;
    case SVC_TIMEOUT: return 503;
    case SVC_INTERNAL: return 500;
    }
    return 500;
}

const char *svc_status_code(svc_status s) {
    switch (s) {
    case SVC_OK: return "ok";
    case SVC_CREATED: return "created";
    case SVC_NO_CONTENT: return "no_content";
    case SVC_INVALID: return "invalid_request";
    case SVC_UNAUTHORIZED: return "unauthorized";
    case SVC_FORBIDDEN: return "forbidden";
    case SVC_NOT_FOUND: return "not_found";
    case SVC_CONFLICT: return "conflict";
    case SVC_TOO_LARGE: return "payload_too_large";
    case SVC_UNSUPPORTED: return "unsupported_media_type";
    case SVC_UNPROCESSABLE: return "unprocessable_entity";
    case SVC_RATE_LIMITED: return "rate_limited";
    case SVC_UNAVAILABLE: return "service_unavailable";
    case SVC_TIMEOUT: return "dependency_timeout";
    case SVC_INTERNAL: return "internal_error";
    }
    return "internal_error";
}
