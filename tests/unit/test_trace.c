/* Specification of W3C Trace Context handling (svc/trace.h) and of the trace ids in log lines. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "svc/log.h"
#include "svc/trace.h"

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool parses(const char *h) {
    struct svc_trace t;
    memset(&t, 0, sizeof t);
    return svc_traceparent_parse(h, &t);
}

static void test_a_valid_traceparent_gives_its_trace_parent_and_flags(void **state) {
    struct svc_trace t;
    memset(&t, 0, sizeof t);
    assert_true(svc_traceparent_parse(TP, &t));
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_true(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"));
}

static void test_malformed_traceparents_are_refused(void **state) {
    assert_false(parses(NULL));
    assert_false(parses(""));
    assert_false(parses("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));   /* upper case */
    assert_false(parses("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));   /* zero trace */
    assert_false(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));   /* zero parent */
    assert_false(parses("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));   /* forbidden version */
    assert_false(parses(TP "-extra"));                                                 /* 00 has nothing after */
    assert_false(parses("00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01"));    /* short trace id */
    assert_false(parses("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_false(parses("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"));
}

static void test_a_later_version_is_read_by_its_first_fields(void **state) {
    assert_true(parses("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert_true(parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next"));
    assert_false(parses("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"));
}

static void test_a_server_hop_continues_the_trace_with_a_new_span(void **state) {
    struct svc_trace t;
    svc_trace_begin(&t, TP, "vendor=abc,other=1");
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_int_equal(strlen(t.span_id), 16);
    assert_string_not_equal(t.span_id, "00f067aa0ba902b7");
    assert_string_equal(t.tracestate, "vendor=abc,other=1");
}

static void test_without_a_valid_traceparent_a_new_trace_starts_and_tracestate_is_dropped(void **state) {
    struct svc_trace a, b;
    svc_trace_begin(&a, "garbage", "vendor=abc");
    svc_trace_begin(&b, NULL, NULL);
    assert_int_equal(strlen(a.trace_id), 32);
    assert_string_not_equal(a.trace_id, b.trace_id);
    assert_string_equal(a.parent_id, "");
    assert_string_equal(a.tracestate, "");
    assert_int_equal(a.flags, 1);
    char out[SVC_TRACEPARENT_LEN + 1];
    svc_traceparent_format(&a, out);
    assert_true(parses(out));
}

static void test_a_child_span_keeps_the_trace_and_points_at_its_parent(void **state) {
    struct svc_trace t, c;
    svc_trace_begin(&t, TP, "k=v");
    svc_trace_child(&t, &c);
    assert_string_equal(c.trace_id, t.trace_id);
    assert_string_equal(c.parent_id, t.span_id);
    assert_string_not_equal(c.span_id, t.span_id);
    assert_string_equal(c.tracestate, "k=v");
    char out[SVC_TRACEPARENT_LEN + 1];
    svc_traceparent_format(&c, out);
    char want[SVC_TRACEPARENT_LEN + 1];
    snprintf(want, sizeof want, "00-%s-%s-01", t.trace_id, c.span_id);
    assert_string_equal(out, want);
}

static void test_tracestate_limits(void **state) {
    assert_true(svc_tracestate_is_valid("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_false(svc_tracestate_is_valid(""));
    assert_false(svc_tracestate_is_valid("no-equals-sign"));
    assert_false(svc_tracestate_is_valid("a=b\n"));
    char big[600];
    memset(big, 'a', sizeof big - 1);
    big[0] = 'k';
    big[1] = '=';
    big[sizeof big - 1] = '\0';
    assert_false(svc_tracestate_is_valid(big));
    char many[200] = "";
    for (int i = 0; i < 33; i++) strcat(many, i ? ",a=b" : "a=b");
    assert_false(svc_tracestate_is_valid(many));
}

static void *other_thread(void *arg) {
    *(const struct svc_trace **)arg = svc_trace_current();
    return NULL;
}

static void test_the_current_span_belongs_to_its_thread(void **state) {
    struct svc_trace t;
    svc_trace_begin(&t, TP, NULL);
    svc_trace_set(&t);
    assert_non_null(svc_trace_current());
    assert_string_equal(svc_trace_current()->span_id, t.span_id);
    const struct svc_trace *seen = &t;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread, &seen), 0);
    pthread_join(th, NULL);
    assert_null(seen);
    svc_trace_set(NULL);
    assert_null(svc_trace_current());
}

static void test_log_lines_carry_the_current_trace_and_span(void **state) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct svc_logger l;
    svc_log_init(&l, "unit", "unit-1", "info", fds[1]);
    svc_log(&l, SVC_LOG_INFO, "cid-1", "outside", NULL);
    struct svc_trace t;
    svc_trace_begin(&t, TP, NULL);
    svc_trace_set(&t);
    svc_log(&l, SVC_LOG_INFO, "cid-1", "inside", NULL);
    svc_trace_set(NULL);
    close(fds[1]);
    char buf[2048];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    char *second = strchr(buf, '\n');
    assert_non_null(second);
    *second++ = '\0';
    assert_null(strstr(buf, "trace_id"));
    char want[128];
    snprintf(want, sizeof want, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"span_id\":\"%s\"", t.span_id);
    assert_non_null(strstr(second, want));
    assert_non_null(strstr(second, "\"correlation_id\":\"cid-1\""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_valid_traceparent_gives_its_trace_parent_and_flags),
        cmocka_unit_test(test_malformed_traceparents_are_refused),
        cmocka_unit_test(test_a_later_version_is_read_by_its_first_fields),
        cmocka_unit_test(test_a_server_hop_continues_the_trace_with_a_new_span),
        cmocka_unit_test(test_without_a_valid_traceparent_a_new_trace_starts_and_tracestate_is_dropped),
        cmocka_unit_test(test_a_child_span_keeps_the_trace_and_points_at_its_parent),
        cmocka_unit_test(test_tracestate_limits),
        cmocka_unit_test(test_the_current_span_belongs_to_its_thread),
        cmocka_unit_test(test_log_lines_carry_the_current_trace_and_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
