/* HTTP layer shared by every service: routing, the error envelope, body limits, CORS, security
 * headers, correlation ids and per-request metrics/logging.
 *
 * Ulfius sees a single catch-all endpoint; svc_http_dispatch does its own routing over a route
 * table of templates such as "/api/users/{id}". Owning the router lets one place answer 404 and
 * 405 (with Allow) as JSON envelopes and label metrics by route template. A handler is a
 * translator: it reads svc_req, calls a use case, and answers with svc_respond_* exactly once.
 *
 * Ownership: svc_req and everything it points to are borrowed for the duration of the handler;
 * path parameter strings live in the request struct. svc_respond_json takes ownership of the
 * json_t it is given. */
#ifndef SVC_HTTP_H
#define SVC_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <ulfius.h>
#include "svc/cid.h"
#include "svc/status.h"

struct svc_app;
struct svc_req;

typedef void (*svc_handler)(struct svc_req *r);

enum {
    SVC_ROUTE_JSON = 1u << 0,    /* requires Content-Type application/json and a JSON object body */
    SVC_ROUTE_BULK = 1u << 1,    /* body limit HTTP_MAX_BULK_BODY_BYTES instead of HTTP_MAX_BODY_BYTES */
    SVC_ROUTE_TSV = 1u << 2,     /* with SVC_ROUTE_JSON: also takes text/tab-separated-values, left
                                  * unparsed (body NULL; the handler reads svc_raw_body) */
};

struct svc_route {
    const char *method;          /* "GET", "POST", ... */
    const char *tmpl;            /* "/api/users/{id}" ; segments in braces are parameters */
    svc_handler fn;
    unsigned flags;
    int metrics_idx;             /* filled at registration */
};

#define SVC_MAX_PARAMS 4
/* Request limits answered in the envelope: a path of SVC_PATH_MAX bytes or more and more than
 * SVC_MAX_QUERY_PARAMS query parameters are 414 uri_too_long, more than SVC_MAX_HEADERS headers
 * 431 headers_too_large. Nginx refuses larger requests itself and forwards only the headers the
 * services read (nginx/nginx.conf.template), so through it these are rarely reached. */
#define SVC_PATH_MAX 2048
#define SVC_MAX_QUERY_PARAMS 100
#define SVC_MAX_HEADERS 64

struct svc_req {
    struct svc_app *app;
    const struct _u_request *u;
    struct _u_response *res;
    const struct svc_route *route;
    char cid[SVC_CID_MAX + 1];
    json_t *body;                /* parsed JSON object for SVC_ROUTE_JSON routes (NULL for a TSV body
                                  * on an SVC_ROUTE_TSV route); owned by dispatch */
    int nparams;
    const char *pname[SVC_MAX_PARAMS];
    const char *pval[SVC_MAX_PARAMS];
    char pathbuf[SVC_PATH_MAX];
    void *auth;                  /* set by a service's authentication step; borrowed */
    int status;                  /* HTTP status answered, 0 until a respond call */
};

/* Path parameter by name, or NULL. */
const char *svc_param(const struct svc_req *r, const char *name);
/* Query parameter by name, or NULL. */
const char *svc_query(const struct svc_req *r, const char *name);
/* The request body as received (not terminated; *len 0 and an empty string when there is none);
 * borrowed from the request. */
const char *svc_raw_body(const struct svc_req *r, size_t *len);
/* Request header, case-insensitive, or NULL. */
const char *svc_header(const struct svc_req *r, const char *name);
/* Client IP as text: the X-Real-IP header when present (Nginx overwrites it with the peer
 * address; the services are reachable only through Nginx), else the TCP peer address. */
void svc_client_ip(const struct svc_req *r, char *out, size_t n);

/* Answer with JSON (takes ownership of body; NULL body sends no content). */
void svc_respond_json(struct svc_req *r, int status, json_t *body);
/* Answer with the error envelope. details may be NULL; ownership of details is taken. */
void svc_respond_error(struct svc_req *r, int status, const char *code, const char *message,
                       json_t *details);
/* Error envelope from a domain status with the default code. */
void svc_respond_status(struct svc_req *r, svc_status st, const char *message);
/* Answer a use case's result: success statuses send body/raw, errors send the envelope with
 * Retry-After from res->retry_after_s (every 503 gets at least "Retry-After: 1"); res->headers are
 * sent either way. Takes ownership of everything in res. */
void svc_respond_result(struct svc_req *r, struct svc_result *res);
/* Answer with raw bytes (copied). */
void svc_respond_raw(struct svc_req *r, int status, const char *content_type, const char *body,
                     size_t len);
/* Sets a response header. A value containing a control character (CR, LF, ...) is refused and
 * logged, so no request-derived text can split a header. */
void svc_set_header(struct svc_req *r, const char *name, const char *value);

/* The ulfius callback that routes a request through the app's route table. */
int svc_http_dispatch(const struct _u_request *u, struct _u_response *res, void *app);

/* Match a template against a path split into segments; fills params. Exposed for unit tests. */
bool svc_route_match(const char *tmpl, char *path_segments[], int nseg, struct svc_req *r);
/* Split path into segments in place (percent-decoding each). Returns count or -1 if too many. */
int svc_path_split(char *path, char *segs[], int max);
/* Whether a Content-Type header value is application/json (parameters ignored). */
bool svc_is_json_content_type(const char *ct);

#endif
