#define _GNU_SOURCE
/* Unit tests for the small shared pieces: config (incl. *_FILE secrets), correlation ids, UUIDs,
 * JSON log lines, the growable buffer, crypto helpers and the status mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc/app.h"
#include "svc/buf.h"
#include "svc/cid.h"
#include "svc/config.h"
#include "svc/b64url.h"
#include "svc/crypto.h"
#include "svc/log.h"
#include "svc/metrics.h"
#include "svc/status.h"

static void test_config_reads_plain_values_and_defaults(void **state) {
    (void)state;
    struct svc_config c;
    svc_config_init(&c);
    setenv("T_STR", "hello", 1);
    unsetenv("T_STR_FILE");
    unsetenv("T_MISSING");
    unsetenv("T_MISSING_FILE");
    assert_string_equal(svc_config_str(&c, "T_STR", NULL), "hello");
    assert_string_equal(svc_config_str(&c, "T_MISSING", "dflt"), "dflt");
    assert_int_equal(c.nerrors, 0);
    svc_config_free(&c);
}

static void test_config_missing_required_is_one_error_line(void **state) {
    (void)state;
    struct svc_config c;
    svc_config_init(&c);
    unsetenv("T_REQ_A");
    unsetenv("T_REQ_A_FILE");
    setenv("T_INT_BAD", "12x", 1);
    assert_null(svc_config_str(&c, "T_REQ_A", NULL));
    svc_config_int(&c, "T_INT_BAD", 5, 0, 100);
    assert_int_equal(c.nerrors, 2);
    assert_non_null(strstr(c.errors[0], "T_REQ_A"));
    assert_non_null(strstr(c.errors[1], "not an integer"));
    assert_int_equal(svc_config_check(&c, "unit"), -1);
    svc_config_free(&c);
}

static void test_config_file_variant_wins_and_strips_newline(void **state) {
    (void)state;
    char path[] = "/tmp/svc-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    setenv("T_SECRET", "plain", 1);
    setenv("T_SECRET_FILE", path, 1);
    struct svc_config c;
    svc_config_init(&c);
    assert_string_equal(svc_config_str(&c, "T_SECRET", NULL), "s3cret");
    assert_int_equal(c.nerrors, 0);
    svc_config_free(&c);
    unlink(path);
    svc_config_init(&c);
    assert_null(svc_config_str(&c, "T_SECRET", NULL));  /* unreadable file is an error, not a fallback */
    assert_int_equal(c.nerrors, 1);
    assert_non_null(strstr(c.errors[0], "T_SECRET_FILE"));
    svc_config_free(&c);
    unsetenv("T_SECRET_FILE");
}

static void test_config_int_range_and_bool(void **state) {
    (void)state;
    struct svc_config c;
    svc_config_init(&c);
    setenv("T_INT", "70000", 1);
    assert_int_equal(svc_config_int(&c, "T_INT", 1, 1, 65535), 1);
    assert_int_equal(c.nerrors, 1);
    setenv("T_BOOL", "yes", 1);
    assert_true(svc_config_bool(&c, "T_BOOL", false));
    setenv("T_BOOL", "maybe", 1);
    assert_false(svc_config_bool(&c, "T_BOOL", false));
    assert_int_equal(c.nerrors, 2);
    svc_config_free(&c);
}

static void test_cid_sanity_rules(void **state) {
    (void)state;
    assert_true(svc_cid_is_sane("abc-123_X.y:z"));
    assert_false(svc_cid_is_sane(""));
    assert_false(svc_cid_is_sane(NULL));
    assert_false(svc_cid_is_sane("has space"));
    assert_false(svc_cid_is_sane("quote\""));
    char longid[200];
    memset(longid, 'a', sizeof longid);
    longid[128] = '\0';
    assert_true(svc_cid_is_sane(longid));
    longid[128] = 'a';
    longid[129] = '\0';
    assert_false(svc_cid_is_sane(longid));
}

static void test_uuid4_is_version4_and_unique(void **state) {
    (void)state;
    char a[37], b[37];
    svc_uuid4(a);
    svc_uuid4(b);
    assert_true(svc_uuid_is_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_false(svc_uuid_is_valid("not-a-uuid"));
    assert_false(svc_uuid_is_valid("0123456789abcdef0123456789abcdef0123"));
}

static int cmp16(const void *a, const void *b) { return memcmp(a, b, 16); }

/* Small draws come from a per-thread block (cid.h): across many blocks no draw repeats another
 * and none comes out zeroed by the wipe behind it; odd sizes keep draws straddling block ends;
 * another thread draws its own bytes. */
struct draws { unsigned char (*v)[16]; size_t n; };
static void *draw16(void *arg) {
    struct draws *d = arg;
    unsigned char odd[7];
    for (size_t i = 0; i < d->n; i++) {
        assert_int_equal(svc_random_bytes(d->v[i], 16), 0);
        if (i % 3 == 0) assert_int_equal(svc_random_bytes(odd, 1 + i % 7), 0);
    }
    return NULL;
}

static void test_random_small_draws_never_repeat_across_blocks_and_threads(void **state) {
    (void)state;
    enum { N = 20000 };
    unsigned char (*v)[16] = calloc(2 * N, 16);
    assert_non_null(v);
    struct draws mine = {v, N}, theirs = {v + N, N};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, draw16, &theirs), 0);
    draw16(&mine);
    assert_int_equal(pthread_join(th, NULL), 0);
    static const unsigned char zero[16];
    for (size_t i = 0; i < 2 * N; i++) assert_true(memcmp(v[i], zero, 16) != 0);
    qsort(v, 2 * N, 16, cmp16);
    for (size_t i = 1; i < 2 * N; i++) assert_true(memcmp(v[i - 1], v[i], 16) != 0);
    unsigned char big[100];   /* larger draws go straight to the kernel */
    memset(big, 0, sizeof big);
    assert_int_equal(svc_random_bytes(big, sizeof big), 0);
    assert_true(memcmp(big, zero, 16) != 0 && memcmp(big + 84, zero, 16) != 0);
    free(v);
}

static void test_uuid7_is_version7_time_ordered_and_unique(void **state) {
    (void)state;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long before = (unsigned long long)ts.tv_sec * 1000u + (unsigned long long)ts.tv_nsec / 1000000u;
    char a[37], b[37];
    svc_uuid7(a);
    struct timespec pause = {0, 2 * 1000 * 1000};
    nanosleep(&pause, NULL);
    svc_uuid7(b);
    assert_true(svc_uuid_is_valid(a));
    assert_true(svc_uuid_is_valid(b));
    assert_int_equal(a[14], '7');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_true(strcmp(a, b) < 0);   /* 2 ms later sorts later */
    char hex[13];
    memcpy(hex, a, 8);
    memcpy(hex + 8, a + 9, 4);
    hex[12] = '\0';
    unsigned long long ms = strtoull(hex, NULL, 16);
    assert_true(ms >= before && ms < before + 1000);
    char c[37];
    svc_uuid7(c);
    assert_string_not_equal(b, c);   /* same millisecond or not: the random bits differ */
}

static void test_uuid7_from_keeps_the_given_random_bits(void **state) {
    (void)state;
    unsigned char r[SVC_UUID7_RANDOM_BYTES];
    memset(r, 0xff, sizeof r);
    char a[37];
    svc_uuid7_from(r, a);
    assert_true(svc_uuid_is_valid(a));
    /* time (48 bits), then 7fff (version 7), bfff (variant 10), ffffffffffff */
    assert_string_equal(a + 14, "7fff-bfff-ffffffffffff");
    memset(r, 0, sizeof r);
    svc_uuid7_from(r, a);
    assert_string_equal(a + 14, "7000-8000-000000000000");
}

static void test_log_line_is_json_with_identity_and_cid(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    struct svc_logger l;
    svc_log_init(&l, "svc\"x", "inst-1", "info", fds[1]);
    svc_logf(&l, SVC_LOG_DEBUG, "cid-1", "hidden", NULL);
    svc_logf(&l, SVC_LOG_INFO, "cid-2", "line\nbreak", "{s:i}", "n", 7);
    close(fds[1]);
    char buf[4096] = "";
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_null(strstr(buf, "hidden"));            /* below the level */
    assert_int_equal(strchr(buf, '\n') - buf, n - 1);  /* one line */
    json_error_t e;
    json_t *j = json_loads(buf, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "service")), "svc\"x");
    assert_string_equal(json_string_value(json_object_get(j, "correlation_id")), "cid-2");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "line\nbreak");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "fields"), "n")), 7);
    assert_non_null(json_object_get(j, "ts"));
    json_decref(j);
}

/* Reads what the pipe holds right now (non-blocking) into buf; returns the length. */
static size_t drain_pipe(int fd, char *buf, size_t cap) {
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    return len;
}

/* Buffered: info lines wait for the flush, a warn line writes them first and itself at once,
 * and stopping writes the rest; lines stay whole and in order. */
static void test_log_buffer_keeps_order_and_flushes_on_warn_and_stop(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    struct svc_logger l;
    svc_log_init(&l, "svc", "inst-1", "info", fds[1]);
    assert_int_equal(svc_log_buffer_start(&l, 60000), 0);   /* the timer never fires here */
    char buf[8192];
    svc_log(&l, SVC_LOG_INFO, NULL, "first", NULL);
    svc_log(&l, SVC_LOG_INFO, NULL, "second", NULL);
    assert_int_equal(drain_pipe(fds[0], buf, sizeof buf), 0);   /* collected, not written */
    svc_log(&l, SVC_LOG_WARN, NULL, "third", NULL);
    drain_pipe(fds[0], buf, sizeof buf);
    const char *a = strstr(buf, "\"first\""), *b = strstr(buf, "\"second\""), *c = strstr(buf, "\"third\"");
    assert_true(a && b && c && a < b && b < c);
    svc_log(&l, SVC_LOG_INFO, NULL, "fourth", NULL);
    assert_int_equal(drain_pipe(fds[0], buf, sizeof buf), 0);
    svc_log_buffer_stop(&l);
    assert_null(l.buffer);
    drain_pipe(fds[0], buf, sizeof buf);
    assert_non_null(strstr(buf, "\"fourth\""));
    svc_log(&l, SVC_LOG_INFO, NULL, "fifth", NULL);          /* unbuffered again */
    drain_pipe(fds[0], buf, sizeof buf);
    assert_non_null(strstr(buf, "\"fifth\""));
    close(fds[0]);
    close(fds[1]);
}

/* The flusher writes collected lines within flush_ms, and a full buffer is written at once. */
static void test_log_buffer_flushes_on_its_timer_and_when_full(void **state) {
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);
    assert_true(fcntl(fds[1], F_SETPIPE_SZ, 1 << 20) > 0);
    struct svc_logger l;
    svc_log_init(&l, "svc", "inst-1", "info", fds[1]);
    assert_int_equal(svc_log_buffer_start(&l, 20), 0);
    svc_log(&l, SVC_LOG_INFO, NULL, "timed", NULL);
    static char buf[1 << 20];
    size_t got = 0;
    for (int i = 0; i < 200 && !strstr(buf, "\"timed\""); i++) {
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        got += drain_pipe(fds[0], buf + got, sizeof buf - got);
    }
    assert_non_null(strstr(buf, "\"timed\""));
    svc_log_buffer_stop(&l);

    /* 64 KiB of lines with a timer that never fires: all but the last part are written as the
     * buffer fills, each line whole */
    assert_int_equal(svc_log_buffer_start(&l, 60000), 0);
    drain_pipe(fds[0], buf, sizeof buf);
    for (int i = 0; i < 2000; i++) svc_logf(&l, SVC_LOG_INFO, "cid", "filler", "{s:i}", "i", i);
    got = drain_pipe(fds[0], buf, sizeof buf);
    assert_true(got > 32 * 1024);
    assert_int_equal(buf[got - 1], '\n');
    svc_log_buffer_stop(&l);
    got += drain_pipe(fds[0], buf + got, sizeof buf - got);
    size_t lines = 0;
    for (size_t i = 0; i < got; i++) lines += buf[i] == '\n';
    assert_int_equal(lines, 2000);
    assert_non_null(strstr(buf, "\"i\":1999}"));
    close(fds[0]);
    close(fds[1]);
}

static void test_buf_grows_and_formats(void **state) {
    (void)state;
    struct svc_buf b;
    svc_buf_init(&b);
    for (int i = 0; i < 1000; i++) svc_buf_printf(&b, "%d,", i);
    assert_false(b.oom);
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_int_equal(b.len, strlen(b.data));
    char *s = svc_buf_steal(&b);
    assert_non_null(s);
    assert_null(b.data);
    free(s);
}

static void test_crypto_helpers(void **state) {
    (void)state;
    char hex[65];
    svc_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const EVP_MD *md = svc_sha256_md();                  /* fetched once, the same every time */
    assert_non_null(md);
    assert_ptr_equal(md, svc_sha256_md());
    assert_int_equal(EVP_MD_get_size(md), 32);
    char out[16];
    assert_int_equal(svc_b64url_encode((const unsigned char *)"\xfb\xff", 2, out, sizeof out), 3);
    assert_string_equal(out, "-_8");
    assert_true(svc_const_eq("same", "same"));
    assert_false(svc_const_eq("same", "sama"));
    assert_false(svc_const_eq("same", "samee"));
    char t1[64], t2[64];
    assert_int_equal(svc_random_token(32, t1, sizeof t1), 0);
    assert_int_equal(svc_random_token(32, t2, sizeof t2), 0);
    assert_int_equal(strlen(t1), 43);
    assert_string_not_equal(t1, t2);
}

static void test_status_mapping_is_total(void **state) {
    (void)state;
    assert_int_equal(svc_status_http(SVC_NOT_FOUND), 404);
    assert_int_equal(svc_status_http(SVC_UNPROCESSABLE), 422);
    assert_int_equal(svc_status_http(SVC_UNAVAILABLE), 503);
    assert_string_equal(svc_status_code(SVC_CONFLICT), "conflict");
    for (int s = SVC_OK; s <= SVC_INTERNAL; s++) assert_true(svc_status_http((svc_status)s) >= 200);
}

static void test_metrics_render_counts_and_cumulative_buckets(void **state) {
    (void)state;
    static struct svc_metrics m;
    svc_metrics_init(&m, "unit");
    int r = svc_metrics_route(&m, "GET", "/api/users/{id}");
    assert_int_equal(svc_metrics_route(&m, "GET", "/api/users/{id}"), r);
    svc_metrics_observe(&m, r, 200, 0.0004);
    svc_metrics_observe(&m, r, 200, 0.003);
    svc_metrics_observe(&m, r, 404, 2.0);
    atomic_ulong *c = svc_metrics_counter(&m, "cache_requests_total", "result=\"hit\"", "help");
    atomic_fetch_add(c, 3);
    struct svc_buf b;
    svc_buf_init(&b);
    svc_metrics_render(&m, &b);
    assert_non_null(strstr(b.data, "http_requests_total{service=\"unit\",method=\"GET\",route=\"/api/users/{id}\",status=\"200\"} 2"));
    assert_non_null(strstr(b.data, "status=\"404\"} 1"));
    assert_non_null(strstr(b.data, "le=\"0.0005\"} 1"));
    assert_non_null(strstr(b.data, "le=\"0.005\"} 2"));
    assert_non_null(strstr(b.data, "le=\"+Inf\"} 3"));
    assert_non_null(strstr(b.data, "cache_requests_total{result=\"hit\"} 3"));
    svc_buf_free(&b);
}

/* HTTP_THREAD_MODE: "pool" by default, "connection" for services that prefer it unless the
 * setting says pool; anything else is a configuration error. */
static bool thread_mode_after_init(const char *mode, bool prefer, int *config_rc) {
    setenv("HTTP_PORT", "18999", 1);
    setenv("LOG_FLUSH_MS", "0", 1);
    setenv("LOG_LEVEL", "error", 1);
    const char *required[] = {"DB_HOST", "DB_NAME", "DB_USER", "DB_PASSWORD", "REDIS_HOST"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++) setenv(required[i], "x", 1);
    if (mode) setenv("HTTP_THREAD_MODE", mode, 1);
    else unsetenv("HTTP_THREAD_MODE");
    static struct svc_app app;
    svc_app_init(&app, "test", "test");
    if (prefer) svc_app_prefer_thread_per_connection(&app);
    int devnull = open("/dev/null", O_WRONLY);
    int saved = dup(STDERR_FILENO);
    dup2(devnull, STDERR_FILENO);              /* svc_config_check reports on stderr */
    *config_rc = svc_config_check(&app.cfg, "test-service");
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(devnull);
    bool per_connection = app.http_thread_per_connection;
    svc_app_close(&app);
    unsetenv("HTTP_THREAD_MODE");
    return per_connection;
}

static void test_http_thread_mode_defaults_and_choices(void **state) {
    int rc;
    assert_false(thread_mode_after_init(NULL, false, &rc));
    assert_int_equal(rc, 0);
    assert_true(thread_mode_after_init(NULL, true, &rc));
    assert_int_equal(rc, 0);
    assert_false(thread_mode_after_init("pool", true, &rc));
    assert_int_equal(rc, 0);
    assert_true(thread_mode_after_init("connection", false, &rc));
    assert_int_equal(rc, 0);
    thread_mode_after_init("threads", false, &rc);
    assert_int_not_equal(rc, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_small_draws_never_repeat_across_blocks_and_threads),
        cmocka_unit_test(test_config_reads_plain_values_and_defaults),
        cmocka_unit_test(test_config_missing_required_is_one_error_line),
        cmocka_unit_test(test_config_file_variant_wins_and_strips_newline),
        cmocka_unit_test(test_config_int_range_and_bool),
        cmocka_unit_test(test_cid_sanity_rules),
        cmocka_unit_test(test_uuid4_is_version4_and_unique),
        cmocka_unit_test(test_uuid7_is_version7_time_ordered_and_unique),
        cmocka_unit_test(test_uuid7_from_keeps_the_given_random_bits),
        cmocka_unit_test(test_log_line_is_json_with_identity_and_cid),
        cmocka_unit_test(test_log_buffer_keeps_order_and_flushes_on_warn_and_stop),
        cmocka_unit_test(test_log_buffer_flushes_on_its_timer_and_when_full),
        cmocka_unit_test(test_buf_grows_and_formats),
        cmocka_unit_test(test_crypto_helpers),
        cmocka_unit_test(test_http_thread_mode_defaults_and_choices),
        cmocka_unit_test(test_status_mapping_is_total),
        cmocka_unit_test(test_metrics_render_counts_and_cumulative_buckets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
