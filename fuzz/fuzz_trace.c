/* W3C Trace Context headers (shared/src/trace.c): every request's traceparent and tracestate
 * (through Nginx, which passes valid ones on) and the tp field of every queue job.
 *
 * Input: traceparent \0 tracestate (either absent when the input has no such part).
 * Properties: svc_traceparent_parse accepts exactly "vv-<32 hex>-<16 hex>-<2 hex>" in lower-case
 * hex with a version other than ff, ids not all zeros, and for version 00 nothing after the
 * flags (a later version: nothing, or '-' and anything), and then holds those ids and flags; a
 * refused header leaves the struct untouched; svc_tracestate_is_valid accepts exactly 1..512
 * printable ASCII characters with an '=' and at most 32 list members; svc_trace_begin continues
 * the caller's trace (tracestate kept only when valid) or starts a fresh sampled one, always
 * with a fresh non-zero span id; what svc_traceparent_format writes (also for a child span)
 * parses back to the same trace, span and flags. */
#include "fuzz.h"

#include "svc/trace.h"

static bool lower_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool zeros(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return false;
    return true;
}

static bool traceparent_ok(const char *h) {
    size_t n = strlen(h);
    if (n < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
    if (!lower_hex(h, 2) || !strncmp(h, "ff", 2)) return false;
    if (!strncmp(h, "00", 2) ? n != 55 : n > 55 && h[55] != '-') return false;
    return lower_hex(h + 3, 32) && !zeros(h + 3, 32) && lower_hex(h + 36, 16) && !zeros(h + 36, 16) &&
           lower_hex(h + 53, 2);
}

static bool tracestate_ok(const char *h) {
    size_t n = strlen(h), commas = 0;
    bool eq = false;
    if (n < 1 || n > SVC_TRACESTATE_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        if (h[i] < 0x20 || h[i] > 0x7e) return false;
        commas += h[i] == ',';
        eq |= h[i] == '=';
    }
    return eq && commas < 32;
}

static void check_span(const struct svc_trace *t, const char *what) {
    FUZZ_CHECK(strlen(t->trace_id) == 32 && lower_hex(t->trace_id, 32) && !zeros(t->trace_id, 32), "%s: trace id \"%s\"",
               what, t->trace_id);
    FUZZ_CHECK(strlen(t->span_id) == 16 && lower_hex(t->span_id, 16) && !zeros(t->span_id, 16), "%s: span id \"%s\"",
               what, t->span_id);
    char tp[SVC_TRACEPARENT_LEN + 1];
    svc_traceparent_format(t, tp);
    struct svc_trace back;
    memset(&back, 0, sizeof back);
    FUZZ_CHECK(strlen(tp) == SVC_TRACEPARENT_LEN && svc_traceparent_parse(tp, &back), "%s: \"%s\" does not parse", what, tp);
    FUZZ_CHECK(!strcmp(back.trace_id, t->trace_id) && !strcmp(back.parent_id, t->span_id) && back.flags == t->flags,
               "%s: \"%s\" parses to another span", what, tp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *parts[2];
    fuzz_split(data, size, parts, 2);
    const char *tp = parts[0], *ts = parts[1];

    struct svc_trace t, before;
    memset(&t, 0x5a, sizeof t);
    before = t;
    bool ok = svc_traceparent_parse(tp, &t);
    FUZZ_CHECK(ok == traceparent_ok(tp), "svc_traceparent_parse(\"%.80s\") = %d", tp, ok);
    if (ok) {
        unsigned flags = 0;
        sscanf(tp + 53, "%2x", &flags);
        FUZZ_CHECK(!strncmp(t.trace_id, tp + 3, 32) && t.trace_id[32] == '\0' && !strncmp(t.parent_id, tp + 36, 16) &&
                       t.parent_id[16] == '\0' && t.flags == flags,
                   "\"%s\" parsed into other ids", tp);
    } else {
        FUZZ_CHECK(!memcmp(&t, &before, sizeof t), "a refused traceparent changed the struct");
    }
    if (ts) FUZZ_CHECK(svc_tracestate_is_valid(ts) == tracestate_ok(ts), "svc_tracestate_is_valid(\"%.80s\")", ts);
    FUZZ_CHECK(!svc_traceparent_parse(NULL, &t) && !svc_tracestate_is_valid(NULL), "NULL headers accepted");

    struct svc_trace span;
    svc_trace_begin(&span, tp, ts);
    check_span(&span, "begin");
    if (ok) {
        FUZZ_CHECK(!strncmp(span.trace_id, tp + 3, 32) && !strncmp(span.parent_id, tp + 36, 16) && span.flags == t.flags,
                   "begin did not continue \"%s\"", tp);
        FUZZ_CHECK(!strcmp(span.tracestate, ts && tracestate_ok(ts) ? ts : ""), "begin kept tracestate \"%s\"",
                   span.tracestate);
        FUZZ_CHECK(strcmp(span.span_id, span.parent_id) != 0, "begin reused the caller's span id");
    } else {
        FUZZ_CHECK(span.parent_id[0] == '\0' && span.flags == 1 && span.tracestate[0] == '\0',
                   "a fresh trace has a parent, flags %u or a tracestate", span.flags);
    }
    struct svc_trace child;
    svc_trace_child(&span, &child);
    check_span(&child, "child");
    FUZZ_CHECK(!strcmp(child.trace_id, span.trace_id) && !strcmp(child.parent_id, span.span_id) &&
                   !strcmp(child.tracestate, span.tracestate) && child.flags == span.flags,
               "the child left the trace");
    fuzz_free_parts(parts, 2);
    return 0;
}
