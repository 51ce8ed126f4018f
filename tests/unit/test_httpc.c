/* httpc against a real HTTP upstream started inside the test process (libmicrohttpd on an
 * ephemeral loopback port) that answers from a script: statuses, delays, Retry-After, dropped
 * connections, large bodies. Backoff is scaled down to milliseconds so the suite stays fast. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "svc/buf.h"
#include "svc/httpc.h"
#include "svc/log.h"

/* ---------- scripted upstream ---------- */

struct step {
    int status;              /* 0 = 200 */
    int delay_ms;
    bool drop;               /* close the connection without answering */
    const char *retry_after;
    size_t body_size;        /* body of 'x' * body_size; 0 = "ok" */
    bool chunked;            /* send the body without Content-Length */
};

struct seen {
    char method[16];
    char path[128];
    char query_q[64];
    char cid[128];
    char auth[128];
    char idem[64];
    char ua[128];
    char ctype[64];
    char apikey[64];
    size_t body_len;
};

#define MAX_STEPS 32
#define MAX_SEEN 256

struct server {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    struct step script[MAX_STEPS];
    int nsteps, next;
    int hits;
    int connections;
    struct seen seen[MAX_SEEN];
};

struct req_ctx {
    size_t body_len;
};

static void copy_hdr(struct MHD_Connection *conn, enum MHD_ValueKind kind, const char *name, char *dst, size_t n) {
    const char *v = MHD_lookup_connection_value(conn, kind, name);
    snprintf(dst, n, "%s", v ? v : "");
}

static ssize_t chunk_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    size_t total = (size_t)(uintptr_t)cls;
    if (pos >= total) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = total - (size_t)pos < max ? total - (size_t)pos : max;
    memset(buf, 'x', n);
    return (ssize_t)n;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    struct server *s = cls;
    if (!*con_cls) {
        struct req_ctx *rc = calloc(1, sizeof *rc);
        if (!rc) return MHD_NO;
        *con_cls = rc;
        return MHD_YES;
    }
    struct req_ctx *rc = *con_cls;
    if (*upload_size) {
        rc->body_len += *upload_size;
        *upload_size = 0;
        return MHD_YES;
    }

    struct step st = { 0 };
    pthread_mutex_lock(&s->mu);
    if (s->next < s->nsteps) st = s->script[s->next++];
    if (s->hits < MAX_SEEN) {
        struct seen *w = &s->seen[s->hits];
        snprintf(w->method, sizeof w->method, "%s", method);
        snprintf(w->path, sizeof w->path, "%s", url);
        copy_hdr(conn, MHD_GET_ARGUMENT_KIND, "q", w->query_q, sizeof w->query_q);
        copy_hdr(conn, MHD_HEADER_KIND, "X-Correlation-ID", w->cid, sizeof w->cid);
        copy_hdr(conn, MHD_HEADER_KIND, "Authorization", w->auth, sizeof w->auth);
        copy_hdr(conn, MHD_HEADER_KIND, "Idempotency-Key", w->idem, sizeof w->idem);
        copy_hdr(conn, MHD_HEADER_KIND, "User-Agent", w->ua, sizeof w->ua);
        copy_hdr(conn, MHD_HEADER_KIND, "Content-Type", w->ctype, sizeof w->ctype);
        copy_hdr(conn, MHD_HEADER_KIND, "X-Api-Key", w->apikey, sizeof w->apikey);
        w->body_len = rc->body_len;
    }
    s->hits++;
    pthread_mutex_unlock(&s->mu);

    if (st.delay_ms) usleep((useconds_t)st.delay_ms * 1000);
    if (st.drop) return MHD_NO;

    struct MHD_Response *resp;
    if (st.chunked) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, chunk_reader,
                                                 (void *)(uintptr_t)st.body_size, NULL);
    } else if (st.body_size) {
        char *body = malloc(st.body_size);
        if (!body) return MHD_NO;
        memset(body, 'x', st.body_size);
        resp = MHD_create_response_from_buffer(st.body_size, body, MHD_RESPMEM_MUST_FREE);
    } else {
        resp = MHD_create_response_from_buffer(2, (void *)"ok", MHD_RESPMEM_PERSISTENT);
    }
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/plain");
    if (st.retry_after) MHD_add_response_header(resp, "Retry-After", st.retry_after);
    enum MHD_Result r = MHD_queue_response(conn, st.status ? (unsigned)st.status : 200, resp);
    MHD_destroy_response(resp);
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
    free(*con_cls);
    *con_cls = NULL;
}

static void conn_notify(void *cls, struct MHD_Connection *conn, void **socket_ctx, enum MHD_ConnectionNotificationCode c) {
    struct server *s = cls;
    if (c != MHD_CONNECTION_NOTIFY_STARTED) return;
    pthread_mutex_lock(&s->mu);
    s->connections++;
    pthread_mutex_unlock(&s->mu);
}

static void server_start(struct server *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                            handle, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
    assert_true(s->port > 0);
}

static void server_stop(struct server *s) {
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
}

static void script(struct server *s, int n, const struct step *steps) {
    pthread_mutex_lock(&s->mu);
    memcpy(s->script, steps, (size_t)n * sizeof *steps);
    s->nsteps = n;
    s->next = 0;
    pthread_mutex_unlock(&s->mu);
}

static int hits(struct server *s) {
    pthread_mutex_lock(&s->mu);
    int h = s->hits;
    pthread_mutex_unlock(&s->mu);
    return h;
}

static int connections(struct server *s) {
    pthread_mutex_lock(&s->mu);
    int h = s->connections;
    pthread_mutex_unlock(&s->mu);
    return h;
}

/* ---------- fixture ---------- */

struct token_src {
    atomic_int calls, forced;
};

static const char *token_fn(void *arg, bool force) {
    struct token_src *t = arg;
    atomic_fetch_add(&t->calls, 1);
    if (force) atomic_fetch_add(&t->forced, 1);
    return atomic_load(&t->forced) ? "tok-2" : "tok-1";
}

static atomic_uint_fast64_t fake_now;
static uint64_t fake_clock(void *arg) { return atomic_load(&fake_now); }

struct fx {
    struct server srv;
    struct svc_httpc *c;
    struct token_src tok;
    struct svc_logger log;
    FILE *logf;
};

static struct svc_httpc_config test_config(struct fx *f) {
    return (struct svc_httpc_config){
        .service_name = "test-svc",
        .connect_timeout_ms = 1000,
        .timeout_ms = 2000,
        .backoff = { .base_ms = 2, .cap_ms = 8 },
        .retry_after_max_ms = 1500,
        .logger = &f->log,
    };
}

static void fx_client(struct fx *f, const struct svc_httpc_config *cfg, const struct svc_breaker_config *bc) {
    f->c = svc_httpc_new(cfg);
    assert_non_null(f->c);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", (unsigned)f->srv.port);
    assert_int_equal(svc_httpc_add_upstream(f->c, "api", url, bc), 0);
}

static int setup(void **state) {
    struct fx *f = calloc(1, sizeof *f);
    if (!f) return -1;
    server_start(&f->srv);
    f->logf = tmpfile();
    if (!f->logf) return -1;
    svc_log_init(&f->log, "test", "t1", "debug", fileno(f->logf));
    struct svc_httpc_config cfg = test_config(f);
    fx_client(f, &cfg, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fx *f = *state;
    svc_httpc_free(f->c);
    server_stop(&f->srv);
    fclose(f->logf);
    free(f);
    return 0;
}

/* Replaces the default client (e.g. to add a token callback or breaker settings). */
static void fx_reclient(struct fx *f, const struct svc_httpc_config *cfg, const struct svc_breaker_config *bc) {
    svc_httpc_free(f->c);
    fx_client(f, cfg, bc);
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static enum svc_httpc_outcome do_call(struct fx *f, const char *method, const char *path, const char *idem,
                                  struct svc_httpc_response *r) {
    struct svc_httpc_request req = {
        .upstream = "api", .method = method, .path = path, .correlation_id = "cid-1", .idempotency_key = idem,
    };
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        req.body = "{\"a\":1}";
        req.body_len = 7;
    }
    return svc_httpc_request(f->c, &req, r);
}

/* The metric line's value, or -1 when absent. */
static long metric(struct fx *f, const char *line_prefix) {
    struct svc_buf b;
    svc_buf_init(&b);
    svc_httpc_metrics_render(f->c, &b);
    assert_false(b.oom);
    long v = -1;
    const char *p = strstr(b.data, line_prefix);
    if (p) v = strtol(p + strlen(line_prefix), NULL, 10);
    svc_buf_free(&b);
    return v;
}

static char *read_log(struct fx *f) {
    fflush(f->logf);
    long n = lseek(fileno(f->logf), 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fileno(f->logf), buf, (size_t)n, 0), n);
    return buf;
}

/* ---------- retries ---------- */

static void test_get_retries_503_then_succeeds(void **state) {
    struct fx *f = *state;
    script(&f->srv, 3, (struct step[]){ { .status = 503 }, { .status = 503 }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/items/1", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 2);
    assert_string_equal(r.body, "ok");
    assert_string_equal(r.content_type, "text/plain");
    assert_int_equal(r.attempts, 3);
    assert_int_equal(hits(&f->srv), 3);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"server_error\"} "), 2);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"success\"} "), 1);
    assert_int_equal(metric(f, "http_client_retries_total{upstream=\"api\"} "), 2);
    assert_int_equal(metric(f, "circuit_breaker_state{upstream=\"api\"} "), 0);
    svc_httpc_response_free(&r);
    svc_httpc_response_free(&r);   /* idempotent */
}

static void test_gives_up_after_max_attempts(void **state) {
    struct fx *f = *state;
    script(&f->srv, 4, (struct step[]){ { .status = 502 }, { .status = 504 }, { .status = 503 }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "DELETE", "/items/1", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 3);
    assert_int_equal(hits(&f->srv), 3);
    svc_httpc_response_free(&r);
}

static void test_post_without_idempotency_key_is_not_retried(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .status = 503 }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "POST", "/items", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 503);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(hits(&f->srv), 1);
    svc_httpc_response_free(&r);
}

static void test_post_with_idempotency_key_is_retried(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .status = 503 }, { .status = 201 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "POST", "/items", "idem-42", &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 201);
    assert_int_equal(hits(&f->srv), 2);
    assert_string_equal(f->srv.seen[0].idem, "idem-42");
    assert_string_equal(f->srv.seen[1].idem, "idem-42");
    assert_int_equal(f->srv.seen[1].body_len, 7);
    svc_httpc_response_free(&r);
}

static void test_404_is_not_retried_and_does_not_trip_breaker(void **state) {
    struct fx *f = *state;
    struct step s404[MAX_STEPS];
    for (int i = 0; i < MAX_STEPS; i++) s404[i] = (struct step){ .status = 404 };
    script(&f->srv, MAX_STEPS, s404);
    for (int i = 0; i < 12; i++) {
        struct svc_httpc_response r;
        assert_int_equal(do_call(f, "GET", "/missing", NULL, &r), SVC_HTTPC_OK);
        assert_int_equal(r.status, 404);
        assert_int_equal(r.attempts, 1);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(hits(&f->srv), 12);
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_CLOSED);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"client_error\"} "), 12);
}

static void test_500_is_not_retried(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .status = 500 }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/boom", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 500);
    assert_int_equal(hits(&f->srv), 1);
    svc_httpc_response_free(&r);
}

static void test_429_retry_after_is_honoured(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .status = 429, .retry_after = "1" }, { .status = 200 } });
    struct svc_httpc_response r;
    double t0 = mono_ms();
    assert_int_equal(do_call(f, "GET", "/limited", NULL, &r), SVC_HTTPC_OK);
    double ms = mono_ms() - t0;
    assert_int_equal(r.status, 200);
    assert_int_equal(hits(&f->srv), 2);
    /* The backoff alone would wait at most 8 ms; the server asked for 1 s. */
    assert_true(ms >= 990.0);
    assert_true(ms < 1500.0);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"rate_limited\"} "), 1);
    svc_httpc_response_free(&r);
}

static void test_retry_after_beyond_max_returns_429(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .status = 429, .retry_after = "120" }, { .status = 200 } });
    struct svc_httpc_response r;
    double t0 = mono_ms();
    assert_int_equal(do_call(f, "GET", "/limited", NULL, &r), SVC_HTTPC_OK);
    assert_true(mono_ms() - t0 < 500.0);
    assert_int_equal(r.status, 429);
    assert_true(r.has_retry_after);
    assert_int_equal(r.retry_after_ms, 120000);
    assert_int_equal(hits(&f->srv), 1);
    svc_httpc_response_free(&r);
}

static void test_timeout_is_retried(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .delay_ms = 400 }, { .status = 200 } });
    struct svc_httpc_request req = { .upstream = "api", .method = "GET", .path = "/slow", .timeout_ms = 100 };
    struct svc_httpc_response r;
    double t0 = mono_ms();
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_OK);
    double ms = mono_ms() - t0;
    assert_int_equal(r.status, 200);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(hits(&f->srv), 2);
    assert_true(ms >= 95.0 && ms < 380.0);   /* did not wait for the slow answer */
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"timeout\"} "), 1);
    svc_httpc_response_free(&r);
}

static void test_timeout_everywhere_reports_timeout(void **state) {
    struct fx *f = *state;
    script(&f->srv, 3, (struct step[]){ { .delay_ms = 200 }, { .delay_ms = 200 }, { .delay_ms = 200 } });
    struct svc_httpc_request req = { .upstream = "api", .method = "GET", .path = "/slow", .timeout_ms = 50 };
    struct svc_httpc_response r;
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_TIMEOUT);
    assert_int_equal(r.outcome, SVC_HTTPC_TIMEOUT);
    assert_int_equal(r.status, 0);
    assert_null(r.body);
    assert_int_equal(r.attempts, 3);
    svc_httpc_response_free(&r);
}

static void test_dropped_connection_is_retried_for_get(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .drop = true }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/flaky", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 200);
    assert_int_equal(hits(&f->srv), 2);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"network_error\"} "), 1);
    svc_httpc_response_free(&r);
}

static void test_dropped_connection_is_not_retried_for_post(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .drop = true }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "POST", "/pay", NULL, &r), SVC_HTTPC_NETWORK_ERROR);
    assert_int_equal(hits(&f->srv), 1);
    svc_httpc_response_free(&r);
}

static uint16_t closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0 };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);   /* nothing listens there now */
    return ntohs(sa.sin_port);
}

static void collect_upstream(void *arg, const char *name, svc_breaker_state_t st) {
    svc_buf_printf(arg, "%s=%s;", name, svc_breaker_state_str(st));
}

static void test_connect_error_is_retried_even_for_post(void **state) {
    struct fx *f = *state;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", (unsigned)closed_port());
    assert_int_equal(svc_httpc_add_upstream(f->c, "down", url, NULL), 0);
    struct svc_httpc_request req = { .upstream = "down", .method = "POST", .path = "/x", .body = "{}", .body_len = 2 };
    struct svc_httpc_response r;
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_CONNECT_ERROR);
    assert_int_equal(r.attempts, 3);   /* nothing was sent, so repeating is safe */
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"down\",outcome=\"connect_error\"} "), 3);
    assert_int_equal(metric(f, "http_client_retries_total{upstream=\"down\"} "), 2);
    svc_httpc_response_free(&r);
    struct svc_buf names;
    svc_buf_init(&names);
    svc_httpc_each_upstream(f->c, collect_upstream, &names);
    assert_string_equal(names.data, "api=closed;down=closed;");
    svc_buf_free(&names);
}

/* ---------- circuit breaker ---------- */

static void test_breaker_opens_and_then_fails_fast_without_network(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.max_attempts = 1;
    struct svc_breaker_config bc = { .failure_threshold = 3, .open_timeout_ms = 60000 };
    fx_reclient(f, &cfg, &bc);
    script(&f->srv, 3, (struct step[]){ { .status = 503 }, { .status = 503 }, { .status = 503 } });
    for (int i = 0; i < 3; i++) {
        struct svc_httpc_response r;
        assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_OK);
        assert_int_equal(r.status, 503);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_OPEN);
    int before = hits(&f->srv);
    for (int i = 0; i < 5; i++) {
        struct svc_httpc_response r;
        double t0 = mono_ms();
        assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_BREAKER_OPEN);
        assert_true(mono_ms() - t0 < 5.0);
        assert_int_equal(r.attempts, 0);
        assert_int_equal(r.status, 0);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(hits(&f->srv), before);
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"breaker_open\"} "), 5);
    assert_int_equal(metric(f, "circuit_breaker_state{upstream=\"api\"} "), 2);
    char *log = read_log(f);
    assert_non_null(strstr(log, "\"circuit breaker state change\""));
    assert_non_null(strstr(log, "\"to\":\"open\""));
    free(log);
}

static void test_breaker_half_open_closes_after_recovery(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.max_attempts = 1;
    atomic_store(&fake_now, 5000);
    struct svc_breaker_config bc = { .failure_threshold = 2, .open_timeout_ms = 1000, .clock = fake_clock };
    fx_reclient(f, &cfg, &bc);
    script(&f->srv, 2, (struct step[]){ { .status = 502 }, { .status = 502 } });
    struct svc_httpc_response r;
    for (int i = 0; i < 2; i++) {
        do_call(f, "GET", "/x", NULL, &r);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_OPEN);
    assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_BREAKER_OPEN);
    svc_httpc_response_free(&r);

    atomic_store(&fake_now, 6000);   /* the open timeout has passed; the upstream has recovered */
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_HALF_OPEN);
    assert_int_equal(metric(f, "circuit_breaker_state{upstream=\"api\"} "), 1);
    int before = hits(&f->srv);
    assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 200);
    svc_httpc_response_free(&r);
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_HALF_OPEN);
    assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_OK);
    svc_httpc_response_free(&r);
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_CLOSED);
    assert_int_equal(hits(&f->srv), before + 2);
}

static void test_breaker_open_stops_retries_midway(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.max_attempts = 5;
    struct svc_breaker_config bc = { .failure_threshold = 2, .open_timeout_ms = 60000 };
    fx_reclient(f, &cfg, &bc);
    script(&f->srv, 5, (struct step[]){ { .status = 503 }, { .status = 503 }, { .status = 503 }, { .status = 503 }, { .status = 503 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/x", NULL, &r), SVC_HTTPC_BREAKER_OPEN);
    assert_int_equal(r.attempts, 2);
    assert_int_equal(hits(&f->srv), 2);
    svc_httpc_response_free(&r);
}

/* ---------- headers, auth, logs ---------- */

static void test_headers_reach_the_upstream(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.token_fn = token_fn;
    cfg.token_arg = &f->tok;
    fx_reclient(f, &cfg, NULL);
    struct svc_httpc_request req = {
        .upstream = "api", .method = "PUT", .path = "/accounts/7?q=secret-query", .body = "{\"x\":true}",
        .body_len = 10, .content_type = "application/merge-patch+json", .correlation_id = "cid-abc-123",
        .idempotency_key = "k-1", .accept = "application/json",
    };
    struct svc_httpc_response r;
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_OK);
    svc_httpc_response_free(&r);
    struct seen *w = &f->srv.seen[0];
    assert_string_equal(w->method, "PUT");
    assert_string_equal(w->path, "/accounts/7");
    assert_string_equal(w->query_q, "secret-query");
    assert_string_equal(w->cid, "cid-abc-123");
    assert_string_equal(w->auth, "Bearer tok-1");
    assert_string_equal(w->idem, "k-1");
    assert_string_equal(w->ctype, "application/merge-patch+json");
    assert_string_equal(w->ua, "test-svc svc-httpc/1");
    assert_int_equal(w->body_len, 10);

    /* The log names upstream, method and path but never the query string or the token. */
    char *log = read_log(f);
    assert_non_null(strstr(log, "\"upstream call\""));
    assert_non_null(strstr(log, "\"path\":\"/accounts/7\""));
    assert_non_null(strstr(log, "\"method\":\"PUT\""));
    assert_non_null(strstr(log, "\"upstream\":\"api\""));
    assert_non_null(strstr(log, "\"correlation_id\":\"cid-abc-123\""));
    assert_non_null(strstr(log, "\"breaker\":\"closed\""));
    assert_non_null(strstr(log, "\"latency_ms\":"));
    assert_null(strstr(log, "secret-query"));
    assert_null(strstr(log, "tok-1"));
    assert_null(strstr(log, "{\\\"x\\\""));
    free(log);
}

static void test_methods_and_empty_bodies(void **state) {
    struct fx *f = *state;
    const char *methods[] = { "GET", "HEAD", "DELETE", "OPTIONS", "PATCH", "POST", "PUT" };
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        struct svc_httpc_request req = { .upstream = "api", .method = methods[i], .path = "/m" };
        struct svc_httpc_response r;
        assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_OK);
        assert_int_equal(r.status, 200);
        if (strcmp(methods[i], "HEAD") == 0) assert_null(r.body);
        else assert_string_equal(r.body, "ok");
        svc_httpc_response_free(&r);
        assert_string_equal(f->srv.seen[i].method, methods[i]);
        assert_int_equal(f->srv.seen[i].body_len, 0);
    }
}

static void test_token_refreshed_once_on_401(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.token_fn = token_fn;
    cfg.token_arg = &f->tok;
    fx_reclient(f, &cfg, NULL);
    script(&f->srv, 2, (struct step[]){ { .status = 401 }, { .status = 200 } });
    struct svc_httpc_response r;
    /* POST without key: the 401 repeat is still allowed (the request was rejected unprocessed). */
    assert_int_equal(do_call(f, "POST", "/secure", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 200);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 2);
    assert_string_equal(f->srv.seen[0].auth, "Bearer tok-1");
    assert_string_equal(f->srv.seen[1].auth, "Bearer tok-2");
    assert_int_equal(atomic_load(&f->tok.forced), 1);
}

static void test_token_refresh_happens_only_once(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.token_fn = token_fn;
    cfg.token_arg = &f->tok;
    fx_reclient(f, &cfg, NULL);
    script(&f->srv, 3, (struct step[]){ { .status = 401 }, { .status = 401 }, { .status = 200 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/secure", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 401);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 2);
    assert_int_equal(atomic_load(&f->tok.forced), 1);
    assert_int_equal(atomic_load(&f->tok.calls), 2);
}

static const char *no_token(void *arg, bool force) { return NULL; }

static void test_missing_token_fails_without_network(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.token_fn = no_token;
    fx_reclient(f, &cfg, NULL);
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/secure", NULL, &r), SVC_HTTPC_NO_TOKEN);
    svc_httpc_response_free(&r);
    struct svc_httpc_request req = { .upstream = "api", .method = "GET", .path = "/token", .no_auth = true };
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_OK);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 1);
    assert_string_equal(f->srv.seen[0].auth, "");
}

static void test_malformed_requests_are_rejected(void **state) {
    struct fx *f = *state;
    struct svc_httpc_response r;
    struct svc_httpc_request bad[] = {
        { .upstream = "nope", .method = "GET", .path = "/" },
        { .upstream = "api", .method = "get", .path = "/" },
        { .upstream = "api", .method = "GET", .path = "no-slash" },
        { .upstream = "api", .method = "GET", .path = "/a b" },
        { .upstream = "api", .method = "GET", .path = "/", .correlation_id = "x\r\nX-Evil: 1" },
        { .upstream = "api", .method = "GET", .path = "/", .idempotency_key = "k\n" },
        { .upstream = "api", .method = "POST", .path = "/", .body = NULL, .body_len = 3 },
        { .upstream = NULL, .method = "GET", .path = "/" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(svc_httpc_request(f->c, &bad[i], &r), SVC_HTTPC_INVALID);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(hits(&f->srv), 0);
    assert_int_equal(svc_httpc_upstream_state(f->c, "nope"), -1);
    assert_int_equal(svc_httpc_add_upstream(f->c, "api", "http://127.0.0.1:1", NULL), -1);      /* duplicate */
    assert_int_equal(svc_httpc_add_upstream(f->c, "bad name", "http://127.0.0.1:1", NULL), -1);
    assert_int_equal(svc_httpc_add_upstream(f->c, "ftp", "ftp://127.0.0.1:1", NULL), -1);
    assert_string_equal(svc_httpc_outcome_str(SVC_HTTPC_BREAKER_OPEN), "breaker_open");
}

/* ---------- connections and limits ---------- */

static void test_sequential_calls_reuse_one_connection(void **state) {
    struct fx *f = *state;
    for (int i = 0; i < 25; i++) {
        struct svc_httpc_response r;
        assert_int_equal(do_call(f, i % 2 ? "GET" : "POST", "/reuse", NULL, &r), SVC_HTTPC_OK);
        assert_int_equal(r.status, 200);
        svc_httpc_response_free(&r);
    }
    assert_int_equal(hits(&f->srv), 25);
    assert_int_equal(connections(&f->srv), 1);
}

static void test_body_over_limit_is_an_error(void **state) {
    struct fx *f = *state;
    struct svc_httpc_config cfg = test_config(f);
    cfg.max_response_bytes = 1024;
    fx_reclient(f, &cfg, NULL);
    script(&f->srv, 4, (struct step[]){ { .body_size = 1024 }, { .body_size = 1025 },
                                        { .body_size = 100000, .chunked = true }, { .body_size = 1024, .chunked = true } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_OK);           /* exactly at the limit */
    assert_int_equal(r.len, 1024);
    assert_int_equal(r.body[1024], '\0');
    svc_httpc_response_free(&r);
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_TOO_LARGE);    /* Content-Length says too big */
    assert_null(r.body);
    svc_httpc_response_free(&r);
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_TOO_LARGE);    /* chunked, discovered while reading */
    svc_httpc_response_free(&r);
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.len, 1024);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 4);   /* never retried */
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"too_large\"} "), 2);
    assert_int_equal(svc_httpc_upstream_state(f->c, "api"), SVC_BREAKER_CLOSED);
}

static void test_default_limit_is_4_mib(void **state) {
    struct fx *f = *state;
    script(&f->srv, 2, (struct step[]){ { .body_size = 4u << 20 }, { .body_size = (4u << 20) + 1 } });
    struct svc_httpc_response r;
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_OK);
    assert_int_equal(r.len, 4u << 20);
    svc_httpc_response_free(&r);
    assert_int_equal(do_call(f, "GET", "/big", NULL, &r), SVC_HTTPC_TOO_LARGE);
    svc_httpc_response_free(&r);
}

struct worker {
    struct fx *f;
    int ok;
};

static void *worker_run(void *arg) {
    struct worker *w = arg;
    for (int i = 0; i < 50; i++) {
        struct svc_httpc_response r;
        if (do_call(w->f, "GET", "/mt", NULL, &r) == SVC_HTTPC_OK && r.status == 200 && r.len == 2) w->ok++;
        svc_httpc_response_free(&r);
    }
    return NULL;
}

static void test_concurrent_calls_share_the_client(void **state) {
    struct fx *f = *state;
    pthread_t t[4];
    struct worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){ f, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 50);
    }
    assert_int_equal(hits(&f->srv), 200);
    assert_true(connections(&f->srv) <= 4);   /* one pooled handle (and connection) per concurrent caller */
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"api\",outcome=\"success\"} "), 200);
}

/* A target: its own base URL, breaker and secret header, and the connect-time address check. */
struct addr_check {
    int calls;
    bool allow;
    int family;
};

static bool check_address(void *arg, const struct sockaddr *a, socklen_t len) {
    struct addr_check *c = arg;
    c->calls++;
    c->family = a->sa_family;
    return c->allow;
}

static void test_target_calls_use_their_own_url_breaker_header_and_address_check(void **state) {
    struct fx *f = *state;
    assert_int_equal(svc_httpc_add_upstream(f->c, "ext", NULL, NULL), 0);
    struct svc_breaker *b = svc_breaker_new("tenant-1", &(struct svc_breaker_config){.failure_threshold = 2, .open_timeout_ms = 60000});
    assert_non_null(b);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%u/tenants/t1/", (unsigned)f->srv.port);
    struct addr_check chk = {.allow = true};
    struct svc_httpc_target t = {.base_url = base, .breaker = b, .header_name = "X-Api-Key", .header_value = "sk-secret-42",
                             .allow_address = check_address, .allow_arg = &chk};
    struct svc_httpc_request req = {.upstream = "ext", .method = "GET", .path = "/customers?page=1", .target = &t};
    struct svc_httpc_response r;
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_OK);
    assert_int_equal(r.status, 200);
    svc_httpc_response_free(&r);
    assert_string_equal(f->srv.seen[0].path, "/tenants/t1/customers");
    assert_string_equal(f->srv.seen[0].apikey, "sk-secret-42");
    assert_int_equal(chk.calls, 1);
    assert_int_equal(chk.family, AF_INET);
    /* Refused at connect time: nothing reaches the server, no retry, no breaker verdict. */
    chk.allow = false;
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_REFUSED);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 1);
    assert_int_equal(r.attempts, 1);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_CLOSED);
    /* The target's breaker opens on its failures; the upstream's own stays closed. */
    chk.allow = true;
    struct step fail[] = {{.status = 503}, {.status = 503}, {.status = 503}, {.status = 503}};
    script(&f->srv, 4, fail);
    /* Two 503s open it (threshold 2); the third attempt meets the open breaker. */
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_BREAKER_OPEN);
    svc_httpc_response_free(&r);
    assert_int_equal(hits(&f->srv), 3);
    assert_int_equal(svc_breaker_state(b), SVC_BREAKER_OPEN);
    assert_int_equal(svc_httpc_upstream_state(f->c, "ext"), SVC_BREAKER_CLOSED);
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_BREAKER_OPEN);
    svc_httpc_response_free(&r);
    /* A target-only upstream without a target, and a header value with CR/LF, are refused. */
    struct svc_httpc_request bare = {.upstream = "ext", .method = "GET", .path = "/x"};
    assert_int_equal(svc_httpc_request(f->c, &bare, &r), SVC_HTTPC_INVALID);
    svc_httpc_response_free(&r);
    t.header_value = "a\r\nX-Evil: 1";
    assert_int_equal(svc_httpc_request(f->c, &req, &r), SVC_HTTPC_INVALID);
    svc_httpc_response_free(&r);
    /* Metrics: the target-only upstream's calls are counted; it has no breaker line of its own
     * (its targets' breakers are the caller's to report). */
    assert_int_equal(metric(f, "http_client_requests_total{upstream=\"ext\",outcome=\"success\"} "), 1);
    assert_int_equal(metric(f, "circuit_breaker_state{upstream=\"ext\"}"), -1);
    assert_int_equal(metric(f, "circuit_breaker_state{upstream=\"api\"} "), 0);
    /* Several clients in one /metrics: each family's HELP/TYPE once, every client's lines. */
    struct svc_buf all;
    svc_buf_init(&all);
    svc_httpc_metrics_render_all((struct svc_httpc *[]){f->c, NULL, f->c}, 3, &all);
    svc_buf_append(&all, "", 1);
    int types = 0, ext = 0;
    for (const char *p = all.data; (p = strstr(p, "# TYPE http_client_requests_total")); p++) types++;
    for (const char *p = all.data; (p = strstr(p, "http_client_retries_total{upstream=\"ext\"}")); p++) ext++;
    assert_int_equal(types, 1);
    assert_int_equal(ext, 2);
    svc_buf_free(&all);
    /* The secret is never logged. */
    fflush(f->logf);
    rewind(f->logf);
    char line[4096];
    while (fgets(line, sizeof line, f->logf)) assert_null(strstr(line, "sk-secret-42"));
    svc_breaker_free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_retries_503_then_succeeds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gives_up_after_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_without_idempotency_key_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_post_with_idempotency_key_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_404_is_not_retried_and_does_not_trip_breaker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_500_is_not_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_429_retry_after_is_honoured, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_after_beyond_max_returns_429, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_is_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_everywhere_reports_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_connection_is_retried_for_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dropped_connection_is_not_retried_for_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_error_is_retried_even_for_post, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_opens_and_then_fails_fast_without_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_half_open_closes_after_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_open_stops_retries_midway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_reach_the_upstream, setup, teardown),
        cmocka_unit_test_setup_teardown(test_methods_and_empty_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_refreshed_once_on_401, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_refresh_happens_only_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_token_fails_without_network, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_requests_are_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequential_calls_reuse_one_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_over_limit_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_limit_is_4_mib, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_calls_share_the_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_target_calls_use_their_own_url_breaker_header_and_address_check, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("httpc", tests, NULL, NULL);
}
