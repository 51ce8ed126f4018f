/* sync-service event ingestion, the parts without I/O: validation of an event, the stream entry
 * (encode → decode → columns), the batcher's size and time triggers, the per-client rate limit,
 * the lists' paging parameters and the in-batch duplicate check. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events_batcher.h"
#include "events_codec.h"
#include "events_consumer.h"
#include "events_ratelimit.h"
#include "events_validate.h"

/* 2026-12-07T13:00:00Z */
#define NOW_MS 1796648400000LL
#define DAY_MS 86400000LL

static struct svc_principal user(const char *sub) {
    struct svc_principal p;
    memset(&p, 0, sizeof p);
    snprintf(p.sub, sizeof p.sub, "%s", sub);
    snprintf(p.role, sizeof p.role, "user");
    return p;
}

static const struct events_rules RULES = {.now_ms = NOW_MS, .retention_days = 90, .max_data_bytes = EVENTS_DATA_MAX};

#define KEPT_MAX 256
static json_t *kept[KEPT_MAX];
static int nkept;

/* Validates JSON text as user u; returns the status and leaves fields (or NULL) in *fields. */
static svc_status validate(const char *text, const struct svc_principal *who, struct event_rec *rec, json_t **fields) {
    json_error_t e;
    json_t *ev = json_loads(text, 0, &e);
    assert_non_null(ev);
    svc_status st = events_validate(ev, who, &RULES, rec, fields);
    /* rec borrows from ev: it lives until the group's teardown */
    assert_true(nkept < KEPT_MAX);
    kept[nkept++] = ev;
    return st;
}

static int free_kept(void **state) {
    for (int i = 0; i < nkept; i++) json_decref(kept[i]);
    nkept = 0;
    return 0;
}

static const char *reason_of(json_t *fields, const char *name) {
    return json_string_value(json_object_get(fields, name));
}

/* ------------------------------------------------------------------ validation */

static void test_valid_event_gets_defaults(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s-1\"}", &u, &rec, &f), SVC_OK);
    assert_null(f);
    assert_string_equal(events_type_names[rec.type], "view");
    assert_string_equal(rec.user_id, "user-1");
    assert_string_equal(rec.data, "{}");
    assert_int_equal(rec.occurred_ms, NOW_MS);
    assert_int_equal(rec.received_ms, NOW_MS);
    assert_false(rec.client_id);
    assert_false(rec.client_time);
    assert_true(svc_uuid_is_valid(rec.id));
    assert_int_equal(rec.id[14], '7');   /* a UUIDv7: ids the service makes sort by time */
    events_rec_clear(&rec);
}

static void test_every_type_is_accepted(void **state) {
    struct svc_principal u = user("user-1");
    for (int t = 0; t < EVENTS_NTYPES; t++) {
        char text[128];
        snprintf(text, sizeof text, "{\"eventType\":\"%s\",\"sessionId\":\"s\"}", events_type_names[t]);
        struct event_rec rec;
        json_t *f = NULL;
        assert_int_equal(validate(text, &u, &rec, &f), SVC_OK);
        assert_int_equal(rec.type, t);
        events_rec_clear(&rec);
    }
}

static void test_every_bad_field_is_reported_at_once(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    assert_int_equal(validate("{\"eventType\":\"click\",\"eventData\":[1],\"sessionId\":\"\",\"userId\":7,"
                              "\"eventId\":\"not-a-uuid\",\"occurredAt\":\"yesterday\",\"color\":\"red\"}",
                              &u, &rec, &f),
                     SVC_UNPROCESSABLE);
    assert_non_null(f);
    assert_int_equal(json_object_size(f), 7);
    assert_non_null(strstr(reason_of(f, "eventType"), "view"));
    assert_string_equal(reason_of(f, "eventData"), "must be a JSON object");
    assert_non_null(reason_of(f, "sessionId"));
    assert_non_null(reason_of(f, "userId"));
    assert_string_equal(reason_of(f, "eventId"), "must be a UUID");
    assert_non_null(reason_of(f, "occurredAt"));
    assert_string_equal(reason_of(f, "color"), "unknown field");
    assert_null(rec.data);
    json_decref(f);
}

static void test_missing_required_fields(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    assert_int_equal(validate("{}", &u, &rec, &f), SVC_UNPROCESSABLE);
    assert_string_equal(reason_of(f, "eventType"), "is required");
    assert_string_equal(reason_of(f, "sessionId"), "is required");
    json_decref(f);
    assert_int_equal(validate("[1,2]", &u, &rec, &f), SVC_UNPROCESSABLE);
    assert_string_equal(reason_of(f, "event"), "must be a JSON object");
    json_decref(f);
}

static void test_session_id_length_counts_characters(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    char text[1024], s[600];
    /* 128 two-byte characters (256 bytes) is fine, 129 is not */
    s[0] = '\0';
    for (int i = 0; i < 128; i++) strcat(s, "\xc3\xa9");
    snprintf(text, sizeof text, "{\"eventType\":\"view\",\"sessionId\":\"%s\"}", s);
    assert_int_equal(validate(text, &u, &rec, &f), SVC_OK);
    events_rec_clear(&rec);
    strcat(s, "x");
    snprintf(text, sizeof text, "{\"eventType\":\"view\",\"sessionId\":\"%s\"}", s);
    assert_int_equal(validate(text, &u, &rec, &f), SVC_UNPROCESSABLE);
    assert_non_null(reason_of(f, "sessionId"));
    json_decref(f);
    /* a control character (a tab; a C1 NEXT LINE) is refused: no field ever carries one into the
     * COPY line or a log */
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"a\\tb\"}", &u, &rec, &f), SVC_UNPROCESSABLE);
    json_decref(f);
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"a\\u0085b\"}", &u, &rec, &f),
                     SVC_UNPROCESSABLE);
    json_decref(f);
}

static void test_event_data_over_16_kib_is_refused(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    /* {"k":"xxx…"} compact: 8 bytes of framing */
    size_t fill = EVENTS_DATA_MAX - 8;
    char *text = malloc(fill + 128);
    int n = snprintf(text, 128, "{\"eventType\":\"view\",\"sessionId\":\"s\",\"eventData\":{\"k\":\"");
    memset(text + n, 'x', fill);
    strcpy(text + n + fill, "\"}}");
    assert_int_equal(validate(text, &u, &rec, &f), SVC_OK);   /* exactly 16384 bytes */
    assert_int_equal(rec.data_len, EVENTS_DATA_MAX);
    events_rec_clear(&rec);
    memset(text + n, 'x', fill + 1);
    strcpy(text + n + fill + 1, "\"}}");
    assert_int_equal(validate(text, &u, &rec, &f), SVC_UNPROCESSABLE);
    assert_string_equal(reason_of(f, "eventData"), "must be at most 16384 bytes as JSON");
    json_decref(f);
    free(text);
}

static void test_user_id_of_another_user_needs_admin_or_service(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    const char *text = "{\"eventType\":\"login\",\"sessionId\":\"s\",\"userId\":\"user-2\"}";
    assert_int_equal(validate(text, &u, &rec, &f), SVC_FORBIDDEN);
    assert_null(f);
    assert_int_equal(validate("{\"eventType\":\"login\",\"sessionId\":\"s\",\"userId\":\"user-1\"}", &u, &rec, &f),
                     SVC_OK);
    events_rec_clear(&rec);
    struct svc_principal admin = user("adm");
    admin.is_admin = true;
    assert_int_equal(validate(text, &admin, &rec, &f), SVC_OK);
    assert_string_equal(rec.user_id, "user-2");
    events_rec_clear(&rec);
    struct svc_principal svc = user("storefront");
    svc.is_service = true;
    assert_int_equal(validate(text, &svc, &rec, &f), SVC_OK);
    events_rec_clear(&rec);
    /* invalid fields are reported before the permission is looked at */
    assert_int_equal(validate("{\"eventType\":\"nope\",\"sessionId\":\"s\",\"userId\":\"user-2\"}", &u, &rec, &f),
                     SVC_UNPROCESSABLE);
    json_decref(f);
}

static void test_client_event_id_is_kept_lower_case(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"eventId\":"
                              "\"3F2504E0-4F89-41D3-9A0C-0305E82C3301\"}",
                              &u, &rec, &f),
                     SVC_OK);
    assert_string_equal(rec.id, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_true(rec.client_id);
    events_rec_clear(&rec);
}

static void test_occurred_at_limits(void **state) {
    struct svc_principal u = user("user-1");
    struct event_rec rec;
    json_t *f = NULL;
    /* an offset is applied; the time is kept to the millisecond */
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-12-07T15:30:00.123456+02:00\"}",
                              &u, &rec, &f),
                     SVC_OK);
    assert_int_equal(rec.occurred_ms, NOW_MS + 30 * 60000 + 123);
    assert_true(rec.client_time);
    events_rec_clear(&rec);
    /* 24 h ahead is the limit */
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-12-08T13:00:00Z\"}", &u,
                              &rec, &f),
                     SVC_OK);
    events_rec_clear(&rec);
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-12-08T13:00:00.001Z\"}",
                              &u, &rec, &f),
                     SVC_UNPROCESSABLE);
    assert_string_equal(reason_of(f, "occurredAt"), "must not be more than 24 hours in the future");
    json_decref(f);
    /* the retention window: the last 90 UTC days, today included */
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-09-09T00:00:00Z\"}", &u,
                              &rec, &f),
                     SVC_OK);
    events_rec_clear(&rec);
    assert_int_equal(validate("{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-09-08T23:59:59.999Z\"}",
                              &u, &rec, &f),
                     SVC_UNPROCESSABLE);
    assert_string_equal(reason_of(f, "occurredAt"), "is older than the retention period");
    json_decref(f);
}

static void test_parse_time_is_strict(void **state) {
    int64_t ms;
    assert_true(events_parse_time("1970-01-01T00:00:00Z", &ms));
    assert_int_equal(ms, 0);
    assert_true(events_parse_time("2024-02-29t12:00:00.5z", &ms));
    assert_true(events_parse_time("2026-12-07T13:00:00-00:30", &ms));
    assert_int_equal(ms, NOW_MS + 30 * 60000);
    const char *bad[] = {"2026-12-07", "2026-12-07T13:00:00", "2026-12-07 13:00:00Z", "2023-02-29T00:00:00Z",
                         "2026-13-01T00:00:00Z", "2026-12-07T24:00:00Z", "2026-12-07T13:00:00.Z",
                         "2026-12-07T13:00:00+0100", "2026-12-07T13:00:00Z ", "1969-12-31T23:59:59Z",
                         "2026-12-07T13:00:00.1234567890Z", "+2026-12-07T13:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(events_parse_time(bad[i], &ms));
}

/* ------------------------------------------------------------------ the stream entry */

static void test_entry_round_trip_with_escapes(void **state) {
    struct svc_principal u = user("u\\1");
    struct event_rec rec;
    json_t *f = NULL;
    assert_int_equal(validate("{\"eventType\":\"search\",\"sessionId\":\"s\\\\x\",\"eventId\":"
                              "\"3f2504e0-4f89-41d3-9a0c-0305e82c3301\",\"eventData\":{\"q\":\"a\\tb\\nc\\\\d\"}}",
                              &u, &rec, &f),
                     SVC_OK);
    struct svc_buf b;
    svc_buf_init(&b);
    events_encode(&rec, &b);
    assert_false(b.oom);
    /* one line: no raw tab inside a field, no raw newline before the end */
    assert_int_equal(strchr(b.data, '\n') - b.data, (long)b.len - 1);
    struct event_view v;
    assert_true(events_decode(b.data, b.len, &v));
    assert_true(v.check);   /* the client's id without the client's time */
    assert_int_equal(v.received_ms, NOW_MS);
    assert_string_equal(v.id, "3f2504e0-4f89-41d3-9a0c-0305e82c3301");
    assert_int_equal(v.day, NOW_MS / DAY_MS);
    assert_string_equal(events_type_names[v.type], "search");
    char buf[1024];
    const char *cols[EVENTS_COPY_NCOLS];
    assert_true(events_columns(&v, buf, sizeof buf, cols));
    assert_string_equal(cols[1], "2026-12-07");
    assert_string_equal(cols[3], "u\\1");
    assert_string_equal(cols[4], "s\\x");
    assert_string_equal(cols[5], "{\"q\":\"a\\tb\\nc\\\\d\"}");   /* the JSON text itself */
    assert_string_equal(cols[6], "2026-12-07 13:00:00.000+00");
    svc_buf_free(&b);
    events_rec_clear(&rec);
}

static void test_entry_flag_only_for_client_id_without_time(void **state) {
    struct svc_principal u = user("u");
    const char *texts[] = {"{\"eventType\":\"view\",\"sessionId\":\"s\"}",
                           "{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-12-07T01:00:00Z\"}",
                           "{\"eventType\":\"view\",\"sessionId\":\"s\",\"occurredAt\":\"2026-12-07T01:00:00Z\","
                           "\"eventId\":\"3f2504e0-4f89-41d3-9a0c-0305e82c3301\"}"};
    for (int i = 0; i < 3; i++) {
        struct event_rec rec;
        json_t *f = NULL;
        assert_int_equal(validate(texts[i], &u, &rec, &f), SVC_OK);
        struct svc_buf b;
        svc_buf_init(&b);
        events_encode(&rec, &b);
        struct event_view v;
        assert_true(events_decode(b.data, b.len, &v));
        assert_false(v.check);
        svc_buf_free(&b);
        events_rec_clear(&rec);
    }
}

static void test_decode_refuses_malformed_entries(void **state) {
    struct event_view v;
    const char *bad[] = {"", "2n1\t", "1x1\t", "1n\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tview\t\n",
                         "1n5\tnot-a-uuid-not-a-uuid-not-a-uuid-xxx\t2026-12-07\tview\tu\ts\t{}\ta\tb\n",
                         "1n5\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-13-07\tview\tu\ts\t{}\ta\tb\n",
                         "1n5\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tclick\tu\ts\t{}\ta\tb\n",
                         "1n5\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tview\tu\ts\t{}\ta\tb",
                         /* a receipt time that would overflow (found by fuzzing: signed overflow) */
                         "1c1795555555555555555555\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tview\tu\ts\t{}\ta\tb\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_false(events_decode(bad[i], strlen(bad[i]), &v));
    const char *good = "1n5\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tview\tu\ts\t{}\ta\tb\n";
    assert_true(events_decode(good, strlen(good), &v));
    char buf[256];
    const char *cols[EVENTS_COPY_NCOLS];
    assert_true(events_columns(&v, buf, sizeof buf, cols));
    const char *short_line = "1n5\t3f2504e0-4f89-41d3-9a0c-0305e82c3301\t2026-12-07\tview\tu\ts\n";
    assert_true(events_decode(short_line, strlen(short_line), &v));
    assert_false(events_columns(&v, buf, sizeof buf, cols));   /* too few columns */
}

static void test_format_day_and_time(void **state) {
    char d[11], t[30];
    events_format_day(0, d);
    assert_string_equal(d, "1970-01-01");
    events_format_day(20065, d);   /* 2024-12-08 */
    assert_string_equal(d, "2024-12-08");
    events_format_time(951782400000LL + 86399999, t);   /* 2000-02-29, last millisecond */
    assert_string_equal(t, "2000-02-29 23:59:59.999+00");
}

/* ------------------------------------------------------------------ batcher */

static void test_batcher_size_trigger(void **state) {
    struct events_batcher b;
    events_batcher_init(&b, 1000, 1000);
    assert_false(events_batcher_due(&b, 0));
    assert_int_equal(events_batcher_wait_ms(&b, 0, 1000), 1000);   /* empty: block the idle time */
    events_batcher_add(&b, 600, 10);
    assert_int_equal(events_batcher_room(&b), 400);
    assert_false(events_batcher_due(&b, 20));
    events_batcher_add(&b, 400, 30);
    assert_true(events_batcher_due(&b, 30));   /* 1000 events: at once, long before the timer */
    assert_int_equal(events_batcher_trigger(&b, 30), EVENTS_TRIGGER_SIZE);
    assert_int_equal(events_batcher_room(&b), 0);
    assert_int_equal(events_batcher_wait_ms(&b, 30, 1000), 0);
    events_batcher_reset(&b);
    assert_false(events_batcher_due(&b, 40));
    assert_int_equal(events_batcher_room(&b), 1000);
}

static void test_batcher_time_trigger_counts_from_the_first_event(void **state) {
    struct events_batcher b;
    events_batcher_init(&b, 1000, 1000);
    events_batcher_add(&b, 0, 5);   /* nothing arrived: no clock */
    assert_false(events_batcher_due(&b, 5000));
    events_batcher_add(&b, 1, 100);
    assert_int_equal(events_batcher_wait_ms(&b, 100, 1000), 1000);
    events_batcher_add(&b, 5, 900);   /* later events do not restart the clock */
    assert_int_equal(events_batcher_wait_ms(&b, 900, 1000), 200);
    assert_false(events_batcher_due(&b, 1099));
    assert_int_equal(events_batcher_wait_ms(&b, 1099, 1000), 1);
    assert_true(events_batcher_due(&b, 1100));
    assert_int_equal(events_batcher_trigger(&b, 1100), EVENTS_TRIGGER_TIME);
    assert_int_equal(events_batcher_wait_ms(&b, 1100, 1000), 0);
    events_batcher_reset(&b);
    events_batcher_add(&b, 1, 2000);   /* the next batch has its own clock */
    assert_int_equal(events_batcher_trigger(&b, 2500), EVENTS_TRIGGER_STOP);   /* written early: shutdown */
    assert_false(events_batcher_due(&b, 2999));
    assert_true(events_batcher_due(&b, 3000));
}

/* A read that left the batch open is followed by a pause that lets events gather, never past the
 * time trigger; no pause for an empty or due batch, or with gathering off. */
static void test_batcher_gathers_between_short_reads_within_the_time_trigger(void **state) {
    (void)state;
    struct events_batcher b;
    events_batcher_init(&b, 1000, 1000);
    assert_int_equal(events_batcher_gather_ms(&b, 0, 50), 0);     /* empty: the read blocks instead */
    events_batcher_add(&b, 2, 100);
    assert_int_equal(events_batcher_gather_ms(&b, 100, 50), 50);
    assert_int_equal(events_batcher_gather_ms(&b, 100, 0), 0);    /* off */
    assert_int_equal(events_batcher_gather_ms(&b, 1070, 50), 30); /* cut to the time trigger */
    assert_int_equal(events_batcher_gather_ms(&b, 1100, 50), 0);  /* due by time */
    events_batcher_add(&b, 998, 200);
    assert_int_equal(events_batcher_gather_ms(&b, 200, 50), 0);   /* due by size */
}

/* ------------------------------------------------------------------ rate limit */

static void test_rate_limit_allows_a_burst_then_the_rate(void **state) {
    struct events_ratelimit *rl = malloc(sizeof *rl);
    assert_int_equal(events_rl_init(rl, 10, 20), 0);   /* 10/s, burst 20 */
    int64_t t = 1000000000, wait = 0;
    for (int i = 0; i < 20; i++) assert_true(events_rl_take(rl, "alice", 1, t, &wait));
    assert_false(events_rl_take(rl, "alice", 1, t, &wait));
    assert_int_equal(wait, 100000);   /* one event's interval */
    assert_true(events_rl_take(rl, "bob", 20, t, &wait));   /* clients are separate */
    assert_true(events_rl_take(rl, "alice", 1, t + 100000, &wait));
    assert_false(events_rl_take(rl, "alice", 1, t + 100000, &wait));
    /* a batch costs one unit per event, all or nothing */
    assert_false(events_rl_take(rl, "alice", 5, t + 300000, &wait));   /* 2 units back, 3 missing */
    assert_int_equal(wait, 300000);
    assert_false(events_rl_take(rl, "alice", 5, t + 599999, &wait));
    assert_true(events_rl_take(rl, "alice", 5, t + 600000, &wait));
    /* after a quiet period the whole burst is there again */
    for (int i = 0; i < 20; i++) assert_true(events_rl_take(rl, "alice", 1, t + 10000000, &wait));
    assert_false(events_rl_take(rl, "alice", 1, t + 10000000, &wait));
    events_rl_free(rl);
    free(rl);
}

static void test_rate_limit_fails_open_when_the_table_is_full(void **state) {
    struct events_ratelimit *rl = malloc(sizeof *rl);
    assert_int_equal(events_rl_init(rl, 1, 1), 0);
    int64_t wait = 0;
    char key[32];
    for (int i = 0; i < 3 * EVENTS_RL_SLOTS; i++) {
        snprintf(key, sizeof key, "client-%d", i);
        assert_true(events_rl_take(rl, key, 1, 5000000, &wait));
    }
    assert_true(atomic_load(&rl->table_full) > 0);
    events_rl_free(rl);
    free(rl);
}

/* ------------------------------------------------------------------ in-batch duplicates */

static struct event_view view(const char *id, int64_t day, bool check) {
    struct event_view v;
    memset(&v, 0, sizeof v);
    snprintf(v.id, sizeof v.id, "%s", id);
    v.day = day;
    v.check = check;
    return v;
}

static void test_batch_duplicates(void **state) {
    const char *a = "3f2504e0-4f89-41d3-9a0c-0305e82c3301", *b = "3f2504e0-4f89-41d3-9a0c-0305e82c3302";
    struct event_view v[6] = {view(a, 100, false), view(b, 100, true), view(a, 100, false),
                              view(b, 101, true),  view(a, 101, false), view(b, 103, true)};
    const struct event_view *rows[6];
    for (int i = 0; i < 6; i++) rows[i] = &v[i];
    bool dup[6];
    assert_int_equal(events_batch_duplicates(rows, 6, dup), 2);
    assert_false(dup[0]);
    assert_false(dup[1]);
    assert_true(dup[2]);    /* same id, same day */
    assert_true(dup[3]);    /* a checked row on the next day: a retry across midnight */
    assert_false(dup[4]);   /* same id, other day, neither checked: the client gave two times */
    assert_false(dup[5]);   /* two days apart */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_event_gets_defaults),
        cmocka_unit_test(test_every_type_is_accepted),
        cmocka_unit_test(test_every_bad_field_is_reported_at_once),
        cmocka_unit_test(test_missing_required_fields),
        cmocka_unit_test(test_session_id_length_counts_characters),
        cmocka_unit_test(test_event_data_over_16_kib_is_refused),
        cmocka_unit_test(test_user_id_of_another_user_needs_admin_or_service),
        cmocka_unit_test(test_client_event_id_is_kept_lower_case),
        cmocka_unit_test(test_occurred_at_limits),
        cmocka_unit_test(test_parse_time_is_strict),
        cmocka_unit_test(test_entry_round_trip_with_escapes),
        cmocka_unit_test(test_entry_flag_only_for_client_id_without_time),
        cmocka_unit_test(test_decode_refuses_malformed_entries),
        cmocka_unit_test(test_format_day_and_time),
        cmocka_unit_test(test_batcher_size_trigger),
        cmocka_unit_test(test_batcher_time_trigger_counts_from_the_first_event),
        cmocka_unit_test(test_batcher_gathers_between_short_reads_within_the_time_trigger),
        cmocka_unit_test(test_rate_limit_allows_a_burst_then_the_rate),
        cmocka_unit_test(test_rate_limit_fails_open_when_the_table_is_full),
        cmocka_unit_test(test_batch_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, free_kept);
}
