/* Domain status codes shared by every layer.
 *
 * Use cases and repositories return one of these; only http.c maps them to an HTTP status
 * (svc_status_http), so the mapping lives in exactly one place. */
#ifndef SVC_STATUS_H
#define SVC_STATUS_H

typedef enum {
    SVC_OK = 0,
    SVC_CREATED,
    SVC_NO_CONTENT,
    SVC_INVALID,        /* 400: malformed input */
    SVC_UNAUTHORIZED,   /* 401 */
    SVC_FORBIDDEN,      /* 403 */
    SVC_NOT_FOUND,      /* 404 */
    SVC_CONFLICT,       /* 409 */
    SVC_TOO_LARGE,      /* 413 */
    SVC_UNSUPPORTED,    /* 415 */
    SVC_UNPROCESSABLE,  /* 422: well-formed but violates a rule */
    SVC_RATE_LIMITED,   /* 429 */
    SVC_UNAVAILABLE,    /* 503: a dependency is down */
    SVC_TIMEOUT,        /* 504/503: a dependency timed out */
    SVC_INTERNAL        /* 500: a bug or an unexpected failure */
} svc_status;

/* What a use case returns: a status and either a body (success) or an error code/message, plus
 * the response headers that go with it. A result is the ONE way a use case asks for Retry-After
 * (retry_after_s) or another header (svc_result_header): handlers never set them by hand.
 * Ownership: body and details are owned by the result until handed to svc_respond_result (or
 * released with svc_result_clear). code/message and header names/values point to static strings. */
typedef struct json_t json_t;

#define SVC_RESULT_MAX_HEADERS 2

struct svc_result {
    svc_status st;
    const char *code;      /* NULL: the status's default code */
    const char *message;
    json_t *body;          /* success body (NULL for 204) */
    json_t *details;       /* error details, may be NULL */
    char *raw;             /* alternatively a success body as JSON text (malloc'd) */
    unsigned retry_after_s; /* errors only: Retry-After in seconds; 0 = none, except that every 503
                             * gets "Retry-After: 1" */
    struct { const char *name, *value; } headers[SVC_RESULT_MAX_HEADERS]; /* extra headers, static */
};

/* Adds a response header (static name and value, e.g. "Idempotent-Replayed", "true"). Returns 0,
 * or -1 when the result already carries SVC_RESULT_MAX_HEADERS (a programming error). */
int svc_result_header(struct svc_result *r, const char *name, const char *value);

#define SVC_RESULT_ERR(s, c, m) ((struct svc_result){.st = (s), .code = (c), .message = (m)})
void svc_result_clear(struct svc_result *r);

/* HTTP status for a domain status. */
int svc_status_http(svc_status s);
/* Stable machine-readable default code ("not_found", ...) for a domain status. */
const char *svc_status_code(svc_status s);

#endif
