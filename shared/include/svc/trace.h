/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the `traceparent` and `tracestate`
 * headers, so one trace id ties Nginx, every service a request reaches and the queue workers that
 * run its jobs.
 *
 *   traceparent: 00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>
 *
 * Model: each hop is a span. A request arriving at a service continues the caller's trace (or
 * starts one when the header is absent or malformed) with a new span id of its own, whose parent
 * is the caller's; every call the service makes (httpc) and every job it enqueues (svc_queue)
 * carries a new child span id in the caller's trace; a queue worker running a job continues the
 * job's trace with a new span. Log lines carry `trace_id` and `span_id` of the span they belong to.
 *
 * State: the span being served lives in thread-local storage (svc_trace_current), set by the HTTP
 * dispatcher for the duration of a request and by a queue worker for the duration of a job, and
 * cleared after. This is the one piece of per-thread state of the library: passing it as an
 * argument would mean a parameter on every log call and client call of every service, and a
 * handler runs on one thread from start to end (both HTTP thread modes, queue consumers), so the
 * thread identifies the span. Code that hands work to another thread (a batch leader running
 * others' postings) logs under its own span. Never shared between threads: no locking. */
#ifndef SVC_TRACE_H
#define SVC_TRACE_H

#include <stdbool.h>
#include <stddef.h>

#define SVC_TRACE_ID_HEX 32
#define SVC_SPAN_ID_HEX 16
#define SVC_TRACEPARENT_LEN 55           /* 2 + 1 + 32 + 1 + 16 + 1 + 2 */
#define SVC_TRACESTATE_MAX 512           /* W3C: at most 32 list members, 512 characters kept */

struct svc_trace {
    char trace_id[SVC_TRACE_ID_HEX + 1];     /* lower-case hex; "" = no trace */
    char span_id[SVC_SPAN_ID_HEX + 1];       /* this hop's span */
    char parent_id[SVC_SPAN_ID_HEX + 1];     /* the caller's span, "" when this hop started the trace */
    unsigned char flags;                     /* trace-flags (bit 0: sampled) */
    char tracestate[SVC_TRACESTATE_MAX + 1]; /* propagated as received ("" = none) */
};

/* Parses a traceparent header value into trace_id, parent_id (the header's parent-id) and flags.
 * Version 00 exactly as the specification writes it (lower-case hex, trace-id and parent-id not
 * all zeros, nothing after the flags); a higher version (not ff) is read by its first four fields
 * when followed by end or '-'. Returns false for anything else (then *t is unchanged). */
bool svc_traceparent_parse(const char *header, struct svc_trace *t);

/* A tracestate header worth propagating: 1..512 characters, printable ASCII without '=' trouble
 * checked loosely (list members of key=value separated by commas, at most 32). */
bool svc_tracestate_is_valid(const char *header);

/* The span of a server hop: continues the trace of traceparent/tracestate (either may be NULL)
 * when traceparent parses, else starts a new trace (random trace id, no parent, sampled flag set)
 * and drops tracestate. Always draws a new random span id. */
void svc_trace_begin(struct svc_trace *t, const char *traceparent, const char *tracestate);

/* A child of t for an outgoing call or an enqueued job: the same trace and state, a new span id,
 * parent = t's span. t must hold a trace. */
void svc_trace_child(const struct svc_trace *t, struct svc_trace *child);

/* Formats t's trace id, span id and flags as a traceparent header value ("00-…"); out holds
 * SVC_TRACEPARENT_LEN + 1 bytes. */
void svc_traceparent_format(const struct svc_trace *t, char out[SVC_TRACEPARENT_LEN + 1]);

/* The calling thread's current span, or NULL when it serves no request or job. Valid until the
 * thread sets or clears it. */
const struct svc_trace *svc_trace_current(void);
/* Makes *t (copied) the calling thread's current span; NULL clears it. */
void svc_trace_set(const struct svc_trace *t);

#endif
