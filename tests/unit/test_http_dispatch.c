/* Specification of svc_http_dispatch (shared/src/http.c) driven with in-memory Ulfius requests:
 * no socket, no server. Covers what a client sees for bodies over a route's limit, malformed JSON,
 * handlers that forget to answer, and response headers built from request data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/app.h"
#include "svc/http.h"
#include "svc/json_text.h"

#define BODY_LIMIT 1024
#define BULK_LIMIT 4096

static struct svc_app app;

static void h_echo(struct svc_req *r) { svc_respond_json(r, 200, json_incref(r->body)); }

static void h_silent(struct svc_req *r) { (void)r; }

/* Sets X-Echo from the query parameter v: stands for any header built from request data. */
static void h_header(struct svc_req *r) {
    const char *v = svc_query(r, "v");
    if (v) svc_set_header(r, "X-Echo", v);
    svc_respond_json(r, 204, NULL);
}

/* A use case reporting a dependency outage, with and without its own Retry-After. */
static void h_unavailable(struct svc_req *r) {
    struct svc_result res = SVC_RESULT_ERR(SVC_UNAVAILABLE, "dependency_down", "try later");
    if (svc_query(r, "after")) res.retry_after_s = (unsigned)atoi(svc_query(r, "after"));
    svc_respond_result(r, &res);
}

/* Results carrying their own headers: a replayed success, a 409 to retry in 2 s, a plain 404. */
static void h_result_headers(struct svc_req *r) {
    const char *kind = svc_query(r, "kind");
    struct svc_result res;
    if (!strcmp(kind, "replayed")) {
        res = (struct svc_result){.st = SVC_CREATED, .body = json_pack("{s:s}", "id", "t1")};
        assert_int_equal(svc_result_header(&res, "Idempotent-Replayed", "true"), 0);
        assert_int_equal(svc_result_header(&res, "X-Second", "2"), 0);
        assert_int_equal(svc_result_header(&res, "X-Third", "3"), -1);
    } else if (!strcmp(kind, "busy")) {
        res = SVC_RESULT_ERR(SVC_CONFLICT, "in_progress", "still running");
        res.retry_after_s = 2;
    } else {
        res = SVC_RESULT_ERR(SVC_NOT_FOUND, "nothing", "no such thing");
    }
    svc_respond_result(r, &res);
}

static const struct svc_route routes[] = {
    {"POST", "/echo", h_echo, SVC_ROUTE_JSON, 0},
    {"POST", "/bulk", h_echo, SVC_ROUTE_JSON | SVC_ROUTE_BULK, 0},
    {"GET", "/silent", h_silent, 0, 0},
    {"GET", "/header", h_header, 0, 0},
    {"GET", "/unavailable", h_unavailable, 0, 0},
    {"GET", "/result", h_result_headers, 0, 0},
};

static int setup(void **state) {
    (void)state;
    memset(&app, 0, sizeof app);
    int devnull = open("/dev/null", O_WRONLY);
    assert_true(devnull >= 0);
    svc_log_init(&app.log, "test", "test-1", "error", devnull);
    app.service = "test";
    app.max_body_bytes = BODY_LIMIT;
    app.max_bulk_body_bytes = BULK_LIMIT;
    svc_metrics_init(&app.metrics, "test");
    app.unmatched_metrics_idx = svc_metrics_route(&app.metrics, "ANY", "unmatched");
    assert_int_equal(svc_app_routes(&app, routes, (int)(sizeof routes / sizeof routes[0])), 0);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    close(app.log.fd);
    return 0;
}

struct exchange {
    struct _u_request req;
    struct _u_response res;
    json_t *json; /* parsed response body or NULL */
};

/* Runs one request through the dispatcher. body may be NULL; content_length (when not NULL) is
 * sent as the Content-Length header verbatim. */
static void run(struct exchange *x, const char *method, const char *path, const char *body, size_t len,
                const char *content_length) {
    memset(x, 0, sizeof *x);
    assert_int_equal(ulfius_init_request(&x->req), U_OK);
    assert_int_equal(ulfius_init_response(&x->res), U_OK);
    x->req.http_verb = strdup(method);
    x->req.url_path = strdup(path);
    u_map_put(x->req.map_header, "Content-Type", "application/json");
    if (content_length) u_map_put(x->req.map_header, "Content-Length", content_length);
    if (body) {
        x->req.binary_body = malloc(len ? len : 1);
        assert_non_null(x->req.binary_body);
        memcpy(x->req.binary_body, body, len);
        x->req.binary_body_length = len;
    }
}

static void dispatch(struct exchange *x) {
    assert_int_equal(svc_http_dispatch(&x->req, &x->res, &app), U_CALLBACK_COMPLETE);
    if (x->res.binary_body_length)
        x->json = json_loadb(x->res.binary_body, x->res.binary_body_length, 0, NULL);
}

static void done(struct exchange *x) {
    json_decref(x->json);
    ulfius_clean_request(&x->req);
    ulfius_clean_response(&x->res);
}

static const json_t *error_of(const struct exchange *x, const char *code) {
    const json_t *e = json_object_get(x->json, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    const char *cid = u_map_get(x->res.map_header, "X-Correlation-ID");
    assert_non_null(cid);
    assert_string_equal(json_string_value(json_object_get(e, "correlation_id")), cid);
    return e;
}

static char *filled_object(size_t len) {
    /* {"k":"xxxx...x"} of exactly len bytes */
    assert_true(len >= 8);
    char *s = malloc(len + 1);
    assert_non_null(s);
    memset(s, 'x', len);
    memcpy(s, "{\"k\":\"", 6);
    memcpy(s + len - 2, "\"}", 2);
    s[len] = '\0';
    return s;
}

static void test_bulk_route_over_its_limit_reports_the_bulk_limit(void **state) {
    (void)state;
    struct exchange x;
    char *big = filled_object(BULK_LIMIT + 1);
    run(&x, "POST", "/bulk", big, BULK_LIMIT + 1, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 413);
    const json_t *e = error_of(&x, "payload_too_large");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "details"), "max_bytes")), BULK_LIMIT);
    done(&x);

    free(big);

    /* within the bulk limit it is served, though over the ordinary limit */
    big = filled_object(BODY_LIMIT + 1);
    run(&x, "POST", "/bulk", big, BODY_LIMIT + 1, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 200);
    assert_int_equal(strlen(json_string_value(json_object_get(x.json, "k"))), BODY_LIMIT + 1 - 8);
    done(&x);
    free(big);
}

static void test_ordinary_route_and_unknown_route_report_the_ordinary_limit(void **state) {
    (void)state;
    struct exchange x;
    char *big = filled_object(BULK_LIMIT + 1);
    run(&x, "POST", "/echo", big, BODY_LIMIT + 1, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 413);
    const json_t *e = error_of(&x, "payload_too_large");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "details"), "max_bytes")), BODY_LIMIT);
    done(&x);

    run(&x, "POST", "/nowhere", big, BULK_LIMIT + 1, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 413);
    e = error_of(&x, "payload_too_large");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "details"), "max_bytes")), BODY_LIMIT);
    done(&x);
    free(big);
}

static void test_content_length_beyond_any_integer_is_413(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "POST", "/echo", "{}", 2, "99999999999999999999999999");
    dispatch(&x);
    assert_int_equal(x.res.status, 413);
    error_of(&x, "payload_too_large");
    done(&x);
    run(&x, "POST", "/echo", "{}", 2, "-1");
    dispatch(&x);
    assert_int_equal(x.res.status, 413);
    done(&x);
}

/* Found by fuzz/fuzz_http.c: strtoull read "", "abc" and "2x" as 0 and 2, so a small body with
 * an unparsable Content-Length went on to the handler (and no route answered 404 instead). */
static void test_unparsable_content_length_is_413_whatever_the_body(void **state) {
    (void)state;
    const char *bad[] = {"", "abc", "2x", " 2", "+2", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct exchange x;
        run(&x, "POST", "/echo", "{}", 2, bad[i]);
        dispatch(&x);
        assert_int_equal(x.res.status, 413);
        error_of(&x, "payload_too_large");
        done(&x);
        run(&x, "GET", "/no/such/route", NULL, 0, bad[i]);
        dispatch(&x);
        assert_int_equal(x.res.status, 413);
        done(&x);
    }
    struct exchange x;
    run(&x, "POST", "/echo", "{}", 2, "2");
    dispatch(&x);
    assert_int_equal(x.res.status, 200);
    done(&x);
}

static void test_malformed_json_details_always_carry_line_column_and_reason(void **state) {
    (void)state;
    /* jansson quotes the text near the error; here it ends inside a UTF-8 sequence */
    static const char *bodies[] = {"{\"a\": \"\\u00\xc3\xa9\"}", "{\"a\": \"\xc3\xa9\xc3", "{\"a\": tru}", "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        struct exchange x;
        run(&x, "POST", "/echo", bodies[i], strlen(bodies[i]), NULL);
        dispatch(&x);
        assert_int_equal(x.res.status, 400);
        const json_t *d = json_object_get(error_of(&x, "malformed_json"), "details");
        if (!json_is_string(json_object_get(d, "reason"))) fail_msg("body %zu: details without a reason", i);
        assert_true(json_is_integer(json_object_get(d, "line")));
        assert_true(json_is_integer(json_object_get(d, "column")));
        done(&x);
    }
}

/* A raw NUL is never part of a JSON text (svc/json_text.h); jansson 2.14 skipped one after a
 * number, so this body was read as {"a":1,"b":2}. */
static void test_a_nul_byte_in_a_json_body_is_malformed_wherever_it_stands(void **state) {
    (void)state;
    static const char after_number[] = "{\"a\":1\0,\"b\":2}";
    static const char two_lines[] = "{\"a\":\n 1\0}";
    struct exchange x;
    run(&x, "POST", "/echo", after_number, sizeof after_number - 1, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 400);
    const json_t *d = json_object_get(error_of(&x, "malformed_json"), "details");
    assert_string_equal(json_string_value(json_object_get(d, "reason")), "NUL byte in the text");
    assert_int_equal(json_integer_value(json_object_get(d, "column")), 7);
    done(&x);
    json_error_t e;
    assert_null(svc_json_load(two_lines, sizeof two_lines - 1, 0, &e));
    assert_int_equal(e.line, 2);
    assert_int_equal(e.column, 3);
    assert_int_equal(e.position, 8);
    static const char clean[] = "{\"a\":1,\"b\":2}";   /* the same text without the NUL */
    json_t *ok = svc_json_load(clean, sizeof clean - 1, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(ok, "b")), 2);
    json_decref(ok);
}

static void test_handler_that_answers_nothing_becomes_a_500_envelope(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "GET", "/silent", NULL, 0, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 500);
    error_of(&x, "internal_error");
    done(&x);
}

static void test_header_values_with_control_characters_are_never_sent(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "GET", "/header", NULL, 0, NULL);
    u_map_put(x.req.map_url, "v", "fine value");
    dispatch(&x);
    assert_int_equal(x.res.status, 204);
    assert_string_equal(u_map_get(x.res.map_header, "X-Echo"), "fine value");
    done(&x);

    static const char *bad[] = {"a\r\nSet-Cookie: session=stolen", "a\nb", "a\rb", "a\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run(&x, "GET", "/header", NULL, 0, NULL);
        u_map_put(x.req.map_url, "v", bad[i]);
        dispatch(&x);
        assert_int_equal(x.res.status, 204);
        assert_null(u_map_get(x.res.map_header, "X-Echo"));
        done(&x);
    }
}

static void test_sane_incoming_correlation_id_is_echoed_in_header_and_envelope(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "GET", "/nowhere", NULL, 0, NULL);
    u_map_put(x.req.map_header, "X-Correlation-ID", "abc-123");
    dispatch(&x);
    assert_int_equal(x.res.status, 404);
    error_of(&x, "not_found");
    assert_string_equal(u_map_get(x.res.map_header, "X-Correlation-ID"), "abc-123");
    done(&x);
}

static void test_a_result_carries_its_own_headers(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "GET", "/result", NULL, 0, NULL);
    u_map_put(x.req.map_url, "kind", "replayed");
    dispatch(&x);
    assert_int_equal(x.res.status, 201);
    assert_string_equal(u_map_get_case(x.res.map_header, "Idempotent-Replayed"), "true");
    assert_string_equal(u_map_get_case(x.res.map_header, "X-Second"), "2");
    assert_null(u_map_get_case(x.res.map_header, "X-Third"));
    assert_null(u_map_get_case(x.res.map_header, "Retry-After"));
    done(&x);
    run(&x, "GET", "/result", NULL, 0, NULL);
    u_map_put(x.req.map_url, "kind", "busy");
    dispatch(&x);
    assert_int_equal(x.res.status, 409);
    error_of(&x, "in_progress");
    assert_string_equal(u_map_get_case(x.res.map_header, "Retry-After"), "2");
    done(&x);
    run(&x, "GET", "/result", NULL, 0, NULL);
    u_map_put(x.req.map_url, "kind", "missing");
    dispatch(&x);
    assert_int_equal(x.res.status, 404);
    assert_null(u_map_get_case(x.res.map_header, "Retry-After"));
    done(&x);
}

static void test_a_503_result_carries_retry_after_unless_the_use_case_chose_one(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "GET", "/unavailable", NULL, 0, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 503);
    error_of(&x, "dependency_down");
    assert_string_equal(u_map_get_case(x.res.map_header, "Retry-After"), "1");
    done(&x);
    run(&x, "GET", "/unavailable", NULL, 0, NULL);
    u_map_put(x.req.map_url, "after", "7");
    dispatch(&x);
    assert_int_equal(x.res.status, 503);
    assert_string_equal(u_map_get_case(x.res.map_header, "Retry-After"), "7");
    done(&x);
}

static void test_more_query_parameters_than_the_limit_is_a_414_envelope(void **state) {
    (void)state;
    struct exchange x;
    char name[32];
    run(&x, "GET", "/header", NULL, 0, NULL);
    for (int i = 0; i < SVC_MAX_QUERY_PARAMS; i++) {
        snprintf(name, sizeof name, "p%d", i);
        u_map_put(x.req.map_url, name, "1");
    }
    dispatch(&x);
    assert_int_equal(x.res.status, 204); /* at the limit: served */
    done(&x);

    run(&x, "GET", "/header", NULL, 0, NULL);
    for (int i = 0; i <= SVC_MAX_QUERY_PARAMS; i++) {
        snprintf(name, sizeof name, "p%d", i);
        u_map_put(x.req.map_url, name, "1");
    }
    dispatch(&x);
    assert_int_equal(x.res.status, 414);
    const json_t *e = error_of(&x, "uri_too_long");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "details"), "max_parameters")),
                     SVC_MAX_QUERY_PARAMS);
    done(&x);
}

static void test_more_headers_than_the_limit_is_a_431_envelope(void **state) {
    (void)state;
    struct exchange x;
    char name[32];
    run(&x, "GET", "/header", NULL, 0, NULL); /* run() sets Content-Type: one header already */
    for (int i = 0; i < SVC_MAX_HEADERS; i++) {
        snprintf(name, sizeof name, "X-Pad-%d", i);
        u_map_put(x.req.map_header, name, "v");
    }
    dispatch(&x);
    assert_int_equal(x.res.status, 431);
    const json_t *e = error_of(&x, "headers_too_large");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "details"), "max_headers")), SVC_MAX_HEADERS);
    done(&x);
}

static void test_a_path_over_the_limit_is_a_414_envelope_not_a_404(void **state) {
    (void)state;
    struct exchange x;
    char *path = malloc(SVC_PATH_MAX + 1);
    assert_non_null(path);
    path[0] = '/';
    memset(path + 1, 'a', SVC_PATH_MAX - 1);
    path[SVC_PATH_MAX] = '\0';
    run(&x, "GET", path, NULL, 0, NULL);
    dispatch(&x);
    assert_int_equal(x.res.status, 414);
    error_of(&x, "uri_too_long");
    done(&x);
    free(path);
}

static void test_a_form_body_on_a_json_route_is_415(void **state) {
    (void)state;
    struct exchange x;
    run(&x, "POST", "/echo", "a=b", 3, NULL);
    u_map_put(x.req.map_header, "Content-Type", "application/x-www-form-urlencoded");
    dispatch(&x);
    assert_int_equal(x.res.status, 415);
    error_of(&x, "unsupported_media_type");
    done(&x);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bulk_route_over_its_limit_reports_the_bulk_limit),
        cmocka_unit_test(test_ordinary_route_and_unknown_route_report_the_ordinary_limit),
        cmocka_unit_test(test_content_length_beyond_any_integer_is_413),
        cmocka_unit_test(test_unparsable_content_length_is_413_whatever_the_body),
        cmocka_unit_test(test_malformed_json_details_always_carry_line_column_and_reason),
        cmocka_unit_test(test_a_nul_byte_in_a_json_body_is_malformed_wherever_it_stands),
        cmocka_unit_test(test_handler_that_answers_nothing_becomes_a_500_envelope),
        cmocka_unit_test(test_header_values_with_control_characters_are_never_sent),
        cmocka_unit_test(test_sane_incoming_correlation_id_is_echoed_in_header_and_envelope),
        cmocka_unit_test(test_a_503_result_carries_retry_after_unless_the_use_case_chose_one),
        cmocka_unit_test(test_a_result_carries_its_own_headers),
        cmocka_unit_test(test_more_query_parameters_than_the_limit_is_a_414_envelope),
        cmocka_unit_test(test_more_headers_than_the_limit_is_a_431_envelope),
        cmocka_unit_test(test_a_path_over_the_limit_is_a_414_envelope_not_a_404),
        cmocka_unit_test(test_a_form_body_on_a_json_route_is_415),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
