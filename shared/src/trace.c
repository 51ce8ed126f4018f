/* W3C Trace Context: parsing, span ids and the thread's current span (svc/trace.h).
 * Ids come from the OS CSPRNG in one call per span; a zero id (invalid by the specification) is
 * drawn again. */
#include <stdio.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/trace.h"

static _Thread_local struct svc_trace current;
static _Thread_local bool current_set;

static bool is_lower_hex(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

static bool all_zero(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0') return false;
    return true;
}

static int hexval(char c) { return c >= 'a' ? c - 'a' + 10 : c - '0'; }

bool svc_traceparent_parse(const char *h, struct svc_trace *t) {
    if (!h) return false;
    size_t n = strlen(h);
    /* version "-" trace-id "-" parent-id "-" flags */
    if (n < SVC_TRACEPARENT_LEN || h[2] != '-' || h[35] != '-' || h[52] != '-') return false;
    if (!is_lower_hex(h, 2) || !strncmp(h, "ff", 2)) return false;
    bool v00 = !strncmp(h, "00", 2);
    if (v00 ? n != SVC_TRACEPARENT_LEN : (n > SVC_TRACEPARENT_LEN && h[SVC_TRACEPARENT_LEN] != '-')) return false;
    if (!is_lower_hex(h + 3, SVC_TRACE_ID_HEX) || all_zero(h + 3, SVC_TRACE_ID_HEX)) return false;
    if (!is_lower_hex(h + 36, SVC_SPAN_ID_HEX) || all_zero(h + 36, SVC_SPAN_ID_HEX)) return false;
    if (!is_lower_hex(h + 53, 2)) return false;
    memcpy(t->trace_id, h + 3, SVC_TRACE_ID_HEX);
    t->trace_id[SVC_TRACE_ID_HEX] = '\0';
    memcpy(t->parent_id, h + 36, SVC_SPAN_ID_HEX);
    t->parent_id[SVC_SPAN_ID_HEX] = '\0';
    t->flags = (unsigned char)(hexval(h[53]) * 16 + hexval(h[54]));
    return true;
}

bool svc_tracestate_is_valid(const char *h) {
    if (!h) return false;
    size_t n = strlen(h);
    if (n == 0 || n > SVC_TRACESTATE_MAX) return false;
    int members = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c < 0x20 || c > 0x7e) return false;
        if (c == ',') members++;
    }
    return members <= 32 && strchr(h, '=') != NULL;
}

static void random_hex(char *out, size_t nhex) {
    unsigned char raw[16];
    static const char digits[] = "0123456789abcdef";
    do {
        if (svc_random_bytes(raw, nhex / 2) != 0) memset(raw, 0, sizeof raw);
        for (size_t i = 0; i < nhex / 2; i++) {
            out[2 * i] = digits[raw[i] >> 4];
            out[2 * i + 1] = digits[raw[i] & 15];
        }
        out[nhex] = '\0';
    } while (all_zero(out, nhex));
}

void svc_trace_begin(struct svc_trace *t, const char *traceparent, const char *tracestate) {
    struct svc_trace in;
    memset(&in, 0, sizeof in);
    if (svc_traceparent_parse(traceparent, &in)) {
        *t = in;
        if (svc_tracestate_is_valid(tracestate)) snprintf(t->tracestate, sizeof t->tracestate, "%s", tracestate);
    } else {
        memset(t, 0, sizeof *t);
        random_hex(t->trace_id, SVC_TRACE_ID_HEX);
        t->flags = 1;
    }
    random_hex(t->span_id, SVC_SPAN_ID_HEX);
}

void svc_trace_child(const struct svc_trace *t, struct svc_trace *child) {
    *child = *t;
    memcpy(child->parent_id, t->span_id, sizeof child->parent_id);
    random_hex(child->span_id, SVC_SPAN_ID_HEX);
}

void svc_traceparent_format(const struct svc_trace *t, char out[SVC_TRACEPARENT_LEN + 1]) {
    snprintf(out, SVC_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t->trace_id, t->span_id, t->flags);
}

const struct svc_trace *svc_trace_current(void) { return current_set ? &current : NULL; }

void svc_trace_set(const struct svc_trace *t) {
    if (t && t->trace_id[0]) {
        current = *t;
        current_set = true;
    } else {
        current_set = false;
    }
}
