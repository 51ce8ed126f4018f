/* svctoken against a real token endpoint started in the test process (libmicrohttpd on an
 * ephemeral loopback port), through a real httpc client: caching, refresh before expiry on an
 * injected clock, keeping a still-valid token when a refresh fails, one network call for many
 * concurrent callers, the 401 → forced refresh path of httpc, and the shape of the token
 * request (client credentials in a JSON body, no Authorization header). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "svc/httpc.h"
#include "svc/svctoken.h"

/* ---------- token endpoint ---------- */

struct issuer {
    struct MHD_Daemon *d;
    uint16_t port;
    pthread_mutex_t mu;
    int status;              /* answer of the token endpoint (200 normally) */
    int delay_ms;
    int expires_in;
    bool malformed;
    int issued;              /* tokens handed out: "tok-1", "tok-2", ... */
    int valid_from;          /* GET /thing accepts tok-N only for N >= valid_from */
    int token_calls;
    char last_auth[128];
    char last_body[512];
    char last_ctype[64];
    char last_thing_auth[128];
};

struct upload { char buf[512]; size_t len; };

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *data, size_t *size, void **con_cls) {
    struct issuer *s = cls;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(struct upload));
        return *con_cls ? MHD_YES : MHD_NO;
    }
    struct upload *up = *con_cls;
    if (*size) {
        size_t n = *size < sizeof up->buf - 1 - up->len ? *size : sizeof up->buf - 1 - up->len;
        memcpy(up->buf + up->len, data, n);
        up->len += n;
        *size = 0;
        return MHD_YES;
    }
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    char text[256];
    int status = 200;
    if (!strcmp(url, "/api/auth/token") && !strcmp(method, "POST")) {
        pthread_mutex_lock(&s->mu);
        s->token_calls++;
        snprintf(s->last_auth, sizeof s->last_auth, "%s", auth ? auth : "");
        snprintf(s->last_body, sizeof s->last_body, "%s", up->buf);
        const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
        snprintf(s->last_ctype, sizeof s->last_ctype, "%s", ct ? ct : "");
        int delay = s->delay_ms;
        status = s->status;
        if (status == 200 && s->malformed) snprintf(text, sizeof text, "{\"token\":\"x\"}");
        else if (status == 200)
            snprintf(text, sizeof text, "{\"access_token\":\"tok-%d\",\"token_type\":\"Bearer\",\"expires_in\":%d}",
                     ++s->issued, s->expires_in);
        else snprintf(text, sizeof text, "{\"error\":{\"code\":\"invalid_client\"}}");
        pthread_mutex_unlock(&s->mu);
        if (delay) usleep((useconds_t)delay * 1000);
    } else {
        int n = -1;
        if (auth) sscanf(auth, "Bearer tok-%d", &n);
        pthread_mutex_lock(&s->mu);
        snprintf(s->last_thing_auth, sizeof s->last_thing_auth, "%s", auth ? auth : "");
        status = n >= s->valid_from && n <= s->issued && n > 0 ? 200 : 401;
        pthread_mutex_unlock(&s->mu);
        snprintf(text, sizeof text, "{}");
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode t) {
    free(*con_cls);
    *con_cls = NULL;
}

static void issuer_start(struct issuer *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->status = 200;
    s->expires_in = 300;
    s->valid_from = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                            MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    s->port = info->port;
}

static int token_calls(struct issuer *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->token_calls;
    pthread_mutex_unlock(&s->mu);
    return n;
}

static void set_issuer(struct issuer *s, int status, int delay_ms, bool malformed) {
    pthread_mutex_lock(&s->mu);
    s->status = status;
    s->delay_ms = delay_ms;
    s->malformed = malformed;
    pthread_mutex_unlock(&s->mu);
}

/* ---------- fixture: issuer + httpc + svctoken on a fake clock ---------- */

struct fixture {
    struct issuer srv;
    struct svc_httpc *http;
    struct svc_svctoken *tok;
    atomic_ulong now_ms;
};

static uint64_t fake_clock(void *arg) { return atomic_load(&((struct fixture *)arg)->now_ms); }

static int setup(void **state) {
    struct fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    issuer_start(&f->srv);
    atomic_store(&f->now_ms, 1000000);
    f->tok = svc_svctoken_new(&(struct svc_svctoken_config){.upstream = "customers", .client_id = "transactions",
                                                    .client_secret = "s3cret-s3cret-s3cret", .refresh_margin_ms = 60000,
                                                    .wait_ms = 5000, .clock = fake_clock, .clock_arg = f});
    assert_non_null(f->tok);
    struct svc_httpc_config hc = {.service_name = "test", .connect_timeout_ms = 1000, .timeout_ms = 3000, .max_attempts = 1,
                              .token_fn = svc_svctoken_get, .token_arg = f->tok};
    f->http = svc_httpc_new(&hc);
    assert_non_null(f->http);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u", f->srv.port);
    assert_int_equal(svc_httpc_add_upstream(f->http, "customers", url, NULL), 0);
    svc_svctoken_attach(f->tok, f->http);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    struct fixture *f = *state;
    svc_httpc_free(f->http);
    svc_svctoken_free(f->tok);
    MHD_stop_daemon(f->srv.d);
    pthread_mutex_destroy(&f->srv.mu);
    free(f);
    return 0;
}

static void advance(struct fixture *f, uint64_t ms) { atomic_fetch_add(&f->now_ms, ms); }

/* ---------- tests ---------- */

static void test_token_is_fetched_once_and_cached(void **state) {
    struct fixture *f = *state;
    const char *t = svc_svctoken_get(f->tok, false);
    assert_non_null(t);
    assert_string_equal(t, "tok-1");
    advance(f, 200000);                       /* 200 s of a 300 s token: still fresh */
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    assert_int_equal(token_calls(&f->srv), 1);
}

static void test_token_request_carries_client_credentials_and_no_bearer(void **state) {
    struct fixture *f = *state;
    assert_non_null(svc_svctoken_get(f->tok, false));
    assert_string_equal(f->srv.last_auth, "");
    assert_string_equal(f->srv.last_ctype, "application/json");
    json_error_t e;
    json_t *b = json_loads(f->srv.last_body, 0, &e);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "client_id")), "transactions");
    assert_string_equal(json_string_value(json_object_get(b, "client_secret")), "s3cret-s3cret-s3cret");
    json_decref(b);
}

static void test_refreshes_inside_the_margin_before_expiry(void **state) {
    struct fixture *f = *state;
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 239000);                       /* refresh at 300 - 60 = 240 s */
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 1000);
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-2");
    assert_int_equal(token_calls(&f->srv), 2);
}

static void test_short_lived_token_margin_is_a_quarter_of_its_life(void **state) {
    struct fixture *f = *state;
    f->srv.expires_in = 40;                   /* margin min(60 s, 10 s) = 10 s */
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 29000);
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 1000);
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-2");
}

static void test_failed_refresh_keeps_the_valid_token_then_gives_up_after_expiry(void **state) {
    struct fixture *f = *state;
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    set_issuer(&f->srv, 503, 0, false);
    advance(f, 250000);                       /* inside the margin, not expired */
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 60000);                        /* expired */
    assert_null(svc_svctoken_get(f->tok, false));
    unsigned long fetches, failures;
    svc_svctoken_stats(f->tok, &fetches, &failures);
    assert_int_equal(fetches, 3);
    assert_int_equal(failures, 2);
    set_issuer(&f->srv, 200, 0, false);
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-2");
}

static void test_refused_credentials_and_malformed_answers_give_no_token(void **state) {
    struct fixture *f = *state;
    set_issuer(&f->srv, 401, 0, false);
    assert_null(svc_svctoken_get(f->tok, false));
    set_issuer(&f->srv, 200, 0, true);
    assert_null(svc_svctoken_get(f->tok, false));
    assert_int_equal(token_calls(&f->srv), 2);
}

static void test_forced_refresh_is_debounced(void **state) {
    struct fixture *f = *state;
    assert_string_equal(svc_svctoken_get(f->tok, false), "tok-1");
    advance(f, 500);
    assert_string_equal(svc_svctoken_get(f->tok, true), "tok-1");   /* obtained < 1 s ago: kept */
    assert_int_equal(token_calls(&f->srv), 1);
    advance(f, 1000);
    assert_string_equal(svc_svctoken_get(f->tok, true), "tok-2");
    assert_int_equal(token_calls(&f->srv), 2);
}

struct racer { struct svc_svctoken *tok; char got[32]; };

static void *race(void *arg) {
    struct racer *r = arg;
    const char *t = svc_svctoken_get(r->tok, false);
    snprintf(r->got, sizeof r->got, "%s", t ? t : "(null)");
    return NULL;
}

static void test_concurrent_callers_share_one_fetch(void **state) {
    struct fixture *f = *state;
    set_issuer(&f->srv, 200, 150, false);     /* a slow issuer: everyone arrives while it works */
    enum { N = 8 };
    pthread_t th[N];
    struct racer r[N];
    for (int i = 0; i < N; i++) {
        r[i].tok = f->tok;
        assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) assert_string_equal(r[i].got, "tok-1");
    assert_int_equal(token_calls(&f->srv), 1);
}

static void test_httpc_presents_the_token_and_refreshes_it_on_401(void **state) {
    struct fixture *f = *state;
    struct svc_httpc_request rq = {.upstream = "customers", .method = "GET", .path = "/thing"};
    struct svc_httpc_response rs;
    assert_int_equal(svc_httpc_request(f->http, &rq, &rs), SVC_HTTPC_OK);
    assert_int_equal(rs.status, 200);
    assert_string_equal(f->srv.last_thing_auth, "Bearer tok-1");
    svc_httpc_response_free(&rs);

    /* the upstream stops accepting tok-1 (e.g. key rotation): one 401, a forced refresh, success */
    pthread_mutex_lock(&f->srv.mu);
    f->srv.valid_from = 2;
    pthread_mutex_unlock(&f->srv.mu);
    advance(f, 5000);
    assert_int_equal(svc_httpc_request(f->http, &rq, &rs), SVC_HTTPC_OK);
    assert_int_equal(rs.status, 200);
    assert_string_equal(f->srv.last_thing_auth, "Bearer tok-2");
    svc_httpc_response_free(&rs);
    assert_int_equal(token_calls(&f->srv), 2);
}

static void test_without_a_token_the_call_is_not_sent(void **state) {
    struct fixture *f = *state;
    set_issuer(&f->srv, 500, 0, false);
    struct svc_httpc_request rq = {.upstream = "customers", .method = "GET", .path = "/thing"};
    struct svc_httpc_response rs;
    assert_int_equal(svc_httpc_request(f->http, &rq, &rs), SVC_HTTPC_NO_TOKEN);
    assert_string_equal(f->srv.last_thing_auth, "");
    svc_httpc_response_free(&rs);
}

static void test_new_refuses_missing_credentials(void **state) {
    assert_null(svc_svctoken_new(&(struct svc_svctoken_config){.upstream = "u", .client_id = "id"}));
    assert_null(svc_svctoken_new(&(struct svc_svctoken_config){.upstream = "u", .client_secret = "s"}));
    assert_null(svc_svctoken_new(&(struct svc_svctoken_config){.client_id = "id", .client_secret = "s"}));
    assert_null(svc_svctoken_new(NULL));
    struct svc_svctoken *t = svc_svctoken_new(&(struct svc_svctoken_config){.upstream = "u", .client_id = "id", .client_secret = "s"});
    assert_non_null(t);
    assert_null(svc_svctoken_get(t, false));      /* not attached to a client yet */
    svc_svctoken_free(t);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_token_is_fetched_once_and_cached),
        T(test_token_request_carries_client_credentials_and_no_bearer),
        T(test_refreshes_inside_the_margin_before_expiry),
        T(test_short_lived_token_margin_is_a_quarter_of_its_life),
        T(test_failed_refresh_keeps_the_valid_token_then_gives_up_after_expiry),
        T(test_refused_credentials_and_malformed_answers_give_no_token),
        T(test_forced_refresh_is_debounced),
        T(test_concurrent_callers_share_one_fetch),
        T(test_httpc_presents_the_token_and_refreshes_it_on_401),
        T(test_without_a_token_the_call_is_not_sent),
        cmocka_unit_test(test_new_refuses_missing_credentials),
    };
    return cmocka_run_group_tests_name("svctoken", tests, NULL, NULL);
}
