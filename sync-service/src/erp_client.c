/* ERP pages over httpc with a breaker per tenant (see erp_client.h). */
#include "erp_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ERP_UPSTREAM "erp"

static void on_breaker_change(void *arg, const char *name, svc_breaker_state_t from, svc_breaker_state_t to) {
    const struct svc_logger *log = arg;
    svc_logf(log, to == SVC_BREAKER_CLOSED ? SVC_LOG_INFO : SVC_LOG_WARN, NULL, "erp: circuit breaker state change",
             "{s:s,s:s,s:s}", "tenant_id", name, "from", svc_breaker_state_str(from), "to", svc_breaker_state_str(to));
}

int erp_client_init(struct erp_client *c, const struct erp_client_config *cfg) {
    memset(c, 0, sizeof *c);
    c->cfg = *cfg;
    struct svc_httpc_config hc = {
        .service_name = "sync-service",
        .connect_timeout_ms = cfg->connect_timeout_ms,
        .timeout_ms = cfg->timeout_ms,
        .max_response_bytes = (size_t)cfg->max_page_bytes,
        .max_attempts = cfg->page_attempts,
        .backoff = {.base_ms = 200, .cap_ms = 1000},
        .retry_after_max_ms = 1,   /* a Retry-After is never waited for here: the job honours it */
        .logger = cfg->log,
    };
    c->http = svc_httpc_new(&hc);
    if (!c->http || svc_httpc_add_upstream(c->http, ERP_UPSTREAM, NULL, NULL) != 0) return -1;
    c->nslots = ERP_BREAKERS_MAX;
    c->slots = calloc((size_t)c->nslots, sizeof *c->slots);
    if (!c->slots || pthread_mutex_init(&c->mu, NULL) != 0) return -1;
    return 0;
}

void erp_client_free(struct erp_client *c) {
    if (c->slots) {
        for (int i = 0; i < c->nslots; i++) svc_breaker_free(c->slots[i].b);
        free(c->slots);
        pthread_mutex_destroy(&c->mu);
    }
    svc_httpc_free(c->http);
    c->slots = NULL;
    c->http = NULL;
}

static unsigned long hash_of(const char *s) {
    unsigned long h = 5381;
    for (; *s; s++) h = h * 33 + (unsigned char)*s;
    return h;
}

/* The tenant's breaker, created on first use; NULL when the table is full or out of memory. */
static struct svc_breaker *breaker_of(struct erp_client *c, const char *tenant, bool create) {
    struct svc_breaker *b = NULL;
    pthread_mutex_lock(&c->mu);
    unsigned long h = hash_of(tenant);
    for (int i = 0; i < c->nslots; i++) {
        struct erp_breaker_slot *s = &c->slots[(h + (unsigned long)i) % (unsigned long)c->nslots];
        if (s->b && strcmp(s->tenant, tenant) == 0) {
            b = s->b;
            break;
        }
        if (!s->b) {
            if (create) {
                struct svc_breaker_config bc = {.failure_threshold = c->cfg.breaker_failures,
                                            .open_timeout_ms = (uint32_t)c->cfg.breaker_open_ms,
                                            .on_change = on_breaker_change,
                                            .on_change_arg = (void *)c->cfg.log};
                s->b = svc_breaker_new(tenant, &bc);
                if (s->b) snprintf(s->tenant, sizeof s->tenant, "%s", tenant);
                b = s->b;
            }
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

int erp_client_breaker_state(struct erp_client *c, const char *tenant_id) {
    struct svc_breaker *b = breaker_of(c, tenant_id, false);
    return b ? (int)svc_breaker_state(b) : -1;
}

void erp_client_breaker_counts(struct erp_client *c, long counts[3]) {
    counts[0] = counts[1] = counts[2] = 0;
    if (!c->slots) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nslots; i++) {
        if (!c->slots[i].b) continue;
        int st = (int)svc_breaker_state(c->slots[i].b);
        if (st >= 0 && st < 3) counts[st]++;
    }
    pthread_mutex_unlock(&c->mu);
}

static void fail(struct erp_page_fetch *out, enum erp_fetch_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct erp_page_fetch *out, enum erp_fetch_outcome o, const char *fmt, ...) {
    out->outcome = o;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
}

void erp_fetch_page(struct erp_client *c, const struct erp_call *call, struct erp_page_fetch *out) {
    memset(out, 0, sizeof *out);
    struct erp_url u;
    const char *why = NULL;
    if (erp_url_parse(call->base_url, &u, &why) != 0) {
        fail(out, ERP_FETCH_PERMANENT, "erp_url_invalid: the stored ERP URL does not parse");
        return;
    }
    struct erp_connect_guard guard;
    erp_connect_guard_init(&guard, c->cfg.allow, &u);
    struct svc_breaker *b = breaker_of(c, call->tenant_id, true);
    if (!b) {
        fail(out, ERP_FETCH_TRANSIENT, "internal: no circuit breaker for the tenant");
        return;
    }
    char path[256];
    int n = snprintf(path, sizeof path, "/%s?page=%ld&per_page=%ld", erp_kind_name(call->kind), call->page,
                     call->per_page);
    if (call->since_us >= 0) {
        time_t secs = (time_t)(call->since_us / 1000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char ts[40];
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        n += snprintf(path + n, sizeof path - (size_t)n, "&updated_since=%s.%06lldZ", ts,
                      (long long)(call->since_us % 1000000));
    }
    struct svc_httpc_target t = {.base_url = call->base_url,
                             .breaker = b,
                             .header_name = "X-Api-Key",
                             .header_value = call->api_key,
                             /* an allowed host is exempt: its calls may keep their connection */
                             .allow_address = guard.host_allowed ? NULL : erp_url_connect_ok,
                             .allow_arg = &guard};
    struct svc_httpc_request req = {.upstream = ERP_UPSTREAM,
                                .method = "GET",
                                .path = path,
                                .accept = "application/json",
                                .correlation_id = call->correlation_id,
                                .target = &t};
    struct svc_httpc_response r;
    enum svc_httpc_outcome o = svc_httpc_request(c->http, &req, &r);
    out->status = r.status;
    switch (o) {
    case SVC_HTTPC_OK:
        if (r.status == 200) {
            out->outcome = ERP_FETCH_OK;
            out->body = r.body;
            out->len = r.len;
            r.body = NULL;
        } else if (r.status == 401) {
            fail(out, ERP_FETCH_AUTH, "erp_auth_failed: the ERP refused the API key (401)");
        } else if (r.status == 429) {
            out->retry_after_ms = r.has_retry_after ? (long)r.retry_after_ms : 0;
            fail(out, ERP_FETCH_THROTTLED, "erp_throttled: 429, Retry-After %ld ms", out->retry_after_ms);
        } else if (r.status >= 500) {
            fail(out, ERP_FETCH_TRANSIENT, "erp_server_error: %ld", r.status);
        } else if (r.status >= 300 && r.status < 400) {
            fail(out, ERP_FETCH_PERMANENT, "erp_redirect: %ld (redirects are not followed)", r.status);
        } else {
            fail(out, ERP_FETCH_PERMANENT, "erp_client_error: %ld", r.status);
        }
        break;
    case SVC_HTTPC_REFUSED:
        fail(out, ERP_FETCH_REFUSED, "erp_url_refused: the ERP host resolves to a non-public address");
        break;
    case SVC_HTTPC_INVALID:
        fail(out, ERP_FETCH_PERMANENT, "erp_url_invalid: the ERP URL or key cannot be sent");
        break;
    case SVC_HTTPC_TOO_LARGE:
        fail(out, ERP_FETCH_TRANSIENT, "erp_page_too_large: over %ld bytes", c->cfg.max_page_bytes);
        break;
    case SVC_HTTPC_BREAKER_OPEN:
        fail(out, ERP_FETCH_TRANSIENT, "erp_unavailable: circuit breaker open");
        break;
    case SVC_HTTPC_TIMEOUT:
        fail(out, ERP_FETCH_TRANSIENT, "erp_timeout");
        break;
    case SVC_HTTPC_CONNECT_ERROR:
        fail(out, ERP_FETCH_TRANSIENT, "erp_connect_error");
        break;
    case SVC_HTTPC_NETWORK_ERROR:
        fail(out, ERP_FETCH_TRANSIENT, "erp_network_error");
        break;
    default:
        fail(out, ERP_FETCH_TRANSIENT, "internal: the HTTP client failed");
    }
    svc_httpc_response_free(&r);
}

void erp_fetch_free(struct erp_page_fetch *f) {
    free(f->body);
    f->body = NULL;
}
