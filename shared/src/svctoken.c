/* Cached client-credentials token for service-to-service calls; see svctoken.h.
 *
 * State machine under the mutex: a cached token with obtained/refresh/expiry times, and a
 * "refreshing" flag owned by the one thread doing the network call (made without the lock).
 * Expiry comes from expires_in on our own monotonic clock, read when the answer arrived, so a
 * skewed wall clock on either side does not matter. */
#include "svc/svctoken.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "svc/cid.h"
#include "svc/json_text.h"

#define FORCE_MIN_AGE_MS 1000

struct svc_svctoken {
    struct svc_httpc *http;
    char *upstream;
    char *path;
    char *client_id;
    char *secret;
    long margin_ms;
    long wait_ms;
    svc_svctoken_clock_fn clock;
    void *clock_arg;
    const struct svc_logger *log;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool refreshing;
    char token[SVC_SVCTOKEN_MAX + 1];   /* "" when none */
    uint64_t obtained_at, refresh_at, expires_at;
    unsigned long fetches, failures;
};

/* Per-thread copy handed to httpc (see the header: a concurrent refresh must not change the
 * string a caller is reading). Every svctoken shares it; httpc copies the value at once. */
static __thread char tls_token[SVC_SVCTOKEN_MAX + 1];

static uint64_t mono_ms(void *unused) {
    (void)unused;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void free_strings(struct svc_svctoken *t) {
    if (t->secret) {
        explicit_bzero(t->secret, strlen(t->secret));
        free(t->secret);
    }
    free(t->upstream);
    free(t->path);
    free(t->client_id);
}

static char *dup_or_default(const char *s, const char *def) { return strdup(s && *s ? s : def); }

struct svc_svctoken *svc_svctoken_new(const struct svc_svctoken_config *cfg) {
    if (!cfg || !cfg->upstream || !cfg->client_id || !cfg->client_secret || !*cfg->client_id ||
        !*cfg->client_secret)
        return NULL;
    struct svc_svctoken *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->upstream = strdup(cfg->upstream);
    t->path = dup_or_default(cfg->path, "/api/auth/token");
    t->client_id = strdup(cfg->client_id);
    t->secret = strdup(cfg->client_secret);
    t->margin_ms = cfg->refresh_margin_ms > 0 ? cfg->refresh_margin_ms : 60000;
    t->wait_ms = cfg->wait_ms > 0 ? cfg->wait_ms : 10000;
    t->clock = cfg->clock ? cfg->clock : mono_ms;
    t->clock_arg = cfg->clock_arg;
    t->log = cfg->logger;
    if (!t->upstream || !t->path || !t->client_id || !t->secret) goto fail;
    if (pthread_mutex_init(&t->mu, NULL) != 0) goto fail;
    if (pthread_cond_init(&t->cv, NULL) != 0) {
        pthread_mutex_destroy(&t->mu);
        goto fail;
    }
    return t;
fail:
    free_strings(t);
    free(t);
    return NULL;
}

void svc_svctoken_attach(struct svc_svctoken *t, struct svc_httpc *http) { t->http = http; }

void svc_svctoken_free(struct svc_svctoken *t) {
    if (!t) return;
    free_strings(t);
    explicit_bzero(t->token, sizeof t->token);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

void svc_svctoken_stats(struct svc_svctoken *t, unsigned long *fetches, unsigned long *failures) {
    pthread_mutex_lock(&t->mu);
    if (fetches) *fetches = t->fetches;
    if (failures) *failures = t->failures;
    pthread_mutex_unlock(&t->mu);
}

static void logw(struct svc_svctoken *t, const char *msg, const char *outcome, long status) {
    if (t->log)
        svc_logf(t->log, SVC_LOG_WARN, NULL, msg, "{s:s,s:s,s:i}", "upstream", t->upstream, "outcome",
                 outcome, "status", (int)status);
}

static bool printable_token(const char *s, size_t n) {
    if (n == 0 || n > SVC_SVCTOKEN_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= 0x20 || s[i] >= 0x7f) return false;
    return true;
}

/* The network call, made without the lock. On success copies the token into out and its
 * lifetime into *ttl_ms. */
static bool fetch(struct svc_svctoken *t, char out[SVC_SVCTOKEN_MAX + 1], uint64_t *ttl_ms) {
    if (!t->http) {
        logw(t, "service token unavailable", "not_attached", 0);
        return false;
    }
    json_t *req_body = json_pack("{s:s,s:s}", "client_id", t->client_id, "client_secret", t->secret);
    char *text = req_body ? json_dumps(req_body, JSON_COMPACT) : NULL;
    json_decref(req_body);
    if (!text) return false;
    char idem[SVC_UUID_LEN + 1];
    svc_uuid4(idem);
    struct svc_httpc_request rq = {
        .upstream = t->upstream, .method = "POST", .path = t->path, .body = text,
        .body_len = strlen(text), .content_type = "application/json", .accept = "application/json",
        .idempotency_key = idem, .no_auth = true,
    };
    struct svc_httpc_response rs;
    svc_httpc_request(t->http, &rq, &rs);
    explicit_bzero(text, strlen(text));
    free(text);

    bool ok = false;
    if (rs.outcome != SVC_HTTPC_OK || rs.status != 200 || !rs.body) {
        logw(t, "service token request failed", svc_httpc_outcome_str(rs.outcome), rs.status);
    } else {
        json_error_t jerr;
        json_t *doc = svc_json_load(rs.body, rs.len, 0, &jerr);
        json_t *tok = json_object_get(doc, "access_token");
        json_t *exp = json_object_get(doc, "expires_in");
        const char *s = json_string_value(tok);
        size_t n = s ? json_string_length(tok) : 0;
        if (!s || !printable_token(s, n) || !json_is_integer(exp) || json_integer_value(exp) < 1 ||
            json_integer_value(exp) > 86400 * 30) {
            logw(t, "service token response malformed", "malformed", rs.status);
        } else {
            memcpy(out, s, n);
            out[n] = '\0';
            *ttl_ms = (uint64_t)json_integer_value(exp) * 1000u;
            ok = true;
        }
        json_decref(doc);
    }
    if (rs.body) explicit_bzero(rs.body, rs.len);
    svc_httpc_response_free(&rs);
    return ok;
}

/* Copies the cached token into this thread's buffer. Caller holds the lock. */
static const char *hand_out(struct svc_svctoken *t) {
    memcpy(tls_token, t->token, strlen(t->token) + 1);
    return tls_token;
}

static void deadline_in(struct timespec *ts, long ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

const char *svc_svctoken_get(void *arg, bool force_refresh) {
    struct svc_svctoken *t = arg;
    const char *result = NULL;
    pthread_mutex_lock(&t->mu);
    uint64_t now = t->clock(t->clock_arg);
    bool have = t->token[0] && now < t->expires_at;
    if (force_refresh && have && now - t->obtained_at < FORCE_MIN_AGE_MS) force_refresh = false;
    if (have && !force_refresh && now < t->refresh_at) {
        result = hand_out(t);
        goto out;
    }
    if (t->refreshing) {
        if (have && !force_refresh) {   /* still valid: use it while the other thread refreshes */
            result = hand_out(t);
            goto out;
        }
        struct timespec until;
        deadline_in(&until, t->wait_ms);
        while (t->refreshing)
            if (pthread_cond_timedwait(&t->cv, &t->mu, &until) == ETIMEDOUT) break;
        now = t->clock(t->clock_arg);
        if (t->token[0] && now < t->expires_at) result = hand_out(t);
        goto out;   /* the refresher failed (or is stuck): do not pile more calls on the upstream */
    }

    t->refreshing = true;
    t->fetches++;
    pthread_mutex_unlock(&t->mu);
    char fresh[SVC_SVCTOKEN_MAX + 1];
    uint64_t ttl = 0;
    bool ok = fetch(t, fresh, &ttl);
    pthread_mutex_lock(&t->mu);
    t->refreshing = false;
    now = t->clock(t->clock_arg);
    if (ok) {
        memcpy(t->token, fresh, strlen(fresh) + 1);
        t->obtained_at = now;
        t->expires_at = now + ttl;
        uint64_t margin = (uint64_t)t->margin_ms;
        if (margin > ttl / 4) margin = ttl / 4;
        t->refresh_at = t->expires_at - margin;
        result = hand_out(t);
    } else {
        t->failures++;
        if (force_refresh) t->token[0] = '\0';     /* the upstream refused it: do not offer it again */
        else if (t->token[0] && now < t->expires_at) result = hand_out(t);
    }
    explicit_bzero(fresh, sizeof fresh);
    pthread_cond_broadcast(&t->cv);
out:
    pthread_mutex_unlock(&t->mu);
    return result;
}
