/* An event of POST /api/events (sync-service/src/events_validate.c) and the stream entry it
 * becomes (events_codec.c), which a consumer later reads back without parsing it again.
 *
 * Input: the request body (up to the first NUL); the bytes after that NUL, when present, are
 * handed to the entry decoder as a stream value (what Redis could give back after a version
 * skew or corruption) and, up to their first NUL, to the RFC 3339 time parser.
 * Properties: validation never crashes and either accepts (a record whose times are inside the
 * rules' window and whose eventData is a compact JSON object within the limit) or names at least
 * one field, or refuses another user's userId; an accepted event encodes to exactly one line of
 * eight COPY columns (no raw tab, newline or carriage return inside a column) that decodes back to
 * the same id, type, day and flag, whose columns unescape to the same userId, sessionId and
 * eventData; any value the decoder accepts has a valid id and type and ends its line; a time the
 * parser accepts formats back to the same instant. */
#include "fuzz.h"

#include <jansson.h>

#include "events_codec.h"
#include "events_validate.h"

/* 2026-12-07T13:00:00Z, 90 days of retention */
static const struct events_rules RULES = {.now_ms = 1796648400000LL, .retention_days = 90,
                                          .max_data_bytes = EVENTS_DATA_MAX};

static void check_entry(const struct event_rec *rec) {
    struct svc_buf b;
    svc_buf_init(&b);
    events_encode(rec, &b);
    FUZZ_CHECK(!b.oom && b.len > 0 && b.data[b.len - 1] == '\n', "encoding failed or does not end a line");
    FUZZ_CHECK(memchr(b.data, '\n', b.len) == b.data + b.len - 1, "a raw newline inside the entry");
    FUZZ_CHECK(!memchr(b.data, '\r', b.len), "a raw carriage return inside the entry");
    struct event_view v;
    FUZZ_CHECK(events_decode(b.data, b.len, &v), "an encoded event does not decode: %s", b.data);
    FUZZ_CHECK(!strcmp(v.id, rec->id) && v.type == rec->type, "id/type changed: %s", b.data);
    FUZZ_CHECK(v.day == events_day_of(rec->occurred_ms), "day changed: %s", b.data);
    FUZZ_CHECK(v.check == (rec->client_id && !rec->client_time), "flag changed: %s", b.data);
    FUZZ_CHECK(v.received_ms == rec->received_ms, "receipt time changed: %s", b.data);
    size_t tabs = 0;
    for (size_t i = 0; i < v.line_len; i++) tabs += v.line[i] == '\t';
    FUZZ_CHECK(tabs == EVENTS_COPY_NCOLS - 1, "%zu tabs in the COPY line: %s", tabs, b.data);
    char *buf = malloc(v.line_len + EVENTS_COPY_NCOLS);
    const char *cols[EVENTS_COPY_NCOLS];
    FUZZ_CHECK(buf && events_columns(&v, buf, v.line_len + EVENTS_COPY_NCOLS, cols), "columns: %s", b.data);
    FUZZ_CHECK(!strcmp(cols[3], rec->user_id), "userId changed: %s", b.data);
    FUZZ_CHECK(!strcmp(cols[4], rec->session_id), "sessionId changed: %s", b.data);
    FUZZ_CHECK(!strcmp(cols[5], rec->data), "eventData changed: %s", b.data);
    free(buf);
    svc_buf_free(&b);
}

static void check_time(const char *s) {
    int64_t ms;
    if (!events_parse_time(s, &ms)) return;
    FUZZ_CHECK(ms >= 0, "\"%s\" parsed before 1970: %lld", s, (long long)ms);
    char out[30], back[32];
    events_format_time(ms, out);   /* "YYYY-MM-DD HH:MM:SS.mmm+00" */
    snprintf(back, sizeof back, "%.10sT%.12sZ", out, out + 11);
    int64_t again;
    FUZZ_CHECK(events_parse_time(back, &again) && again == ms, "\"%s\" -> %lld -> \"%s\" -> %lld", s, (long long)ms,
               back, (long long)again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *body = fuzz_strndup(data, size);
    size_t n = strlen(body);

    json_error_t e;
    json_t *ev = json_loads(body, JSON_REJECT_DUPLICATES, &e);   /* the router's parse */
    if (ev) {
        struct svc_principal who;
        memset(&who, 0, sizeof who);
        snprintf(who.sub, sizeof who.sub, "user-1");
        snprintf(who.role, sizeof who.role, "user");
        struct event_rec rec;
        json_t *fields = NULL;
        svc_status st = events_validate(ev, &who, &RULES, &rec, &fields);
        if (st == SVC_OK) {
            FUZZ_CHECK(!fields, "accepted with fields");
            FUZZ_CHECK(rec.type >= 0 && rec.type < EVENTS_NTYPES, "type %d", rec.type);
            FUZZ_CHECK(rec.occurred_ms <= RULES.now_ms + EVENTS_MAX_FUTURE_MS, "too far ahead: %lld",
                       (long long)rec.occurred_ms);
            FUZZ_CHECK(events_day_of(rec.occurred_ms) > events_day_of(RULES.now_ms) - RULES.retention_days,
                       "older than the retention: %lld", (long long)rec.occurred_ms);
            FUZZ_CHECK(rec.data && rec.data_len == strlen(rec.data) && rec.data_len <= EVENTS_DATA_MAX &&
                           rec.data[0] == '{',
                       "eventData: %s", rec.data ? rec.data : "(null)");
            FUZZ_CHECK(svc_uuid_is_valid(rec.id), "id %s", rec.id);
            check_entry(&rec);
            events_rec_clear(&rec);
        } else if (st == SVC_UNPROCESSABLE) {
            FUZZ_CHECK(fields && json_object_size(fields) > 0, "refused without a field");
            json_decref(fields);
        } else {
            FUZZ_CHECK(st == SVC_FORBIDDEN && !fields, "status %d", (int)st);
        }
        json_decref(ev);
    }

    if (n + 1 < size) {
        const char *v = (const char *)data + n + 1;
        size_t vlen = size - n - 1;
        struct event_view view;
        if (events_decode(v, vlen, &view)) {
            FUZZ_CHECK(svc_uuid_is_valid(view.id) && view.type >= 0 && view.type < EVENTS_NTYPES, "decoded garbage");
            FUZZ_CHECK(view.line_len > 0 && view.line[view.line_len - 1] == '\n', "line without its end");
            char *buf = malloc(view.line_len + EVENTS_COPY_NCOLS);
            const char *cols[EVENTS_COPY_NCOLS];
            if (buf) events_columns(&view, buf, view.line_len + EVENTS_COPY_NCOLS, cols);
            free(buf);
        }
        char *t = fuzz_strndup((const uint8_t *)v, vlen);
        check_time(t);
        free(t);
    }
    free(body);
    return 0;
}
