/* Global request counters of the ERP simulator (see stats.h). */
#include "stats.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct second { int64_t sec; unsigned long requests, starts; };
struct start { int64_t at_ms; const struct sim_tenant *tenant; int kind; };

struct stats {
    pthread_mutex_t mu;
    int64_t since_ms;
    unsigned long total, starts;
    struct second ring[STATS_SECONDS];
    struct start *log;   /* ring of STATS_MAX_STARTS */
    size_t log_next, log_len;
};

int64_t stats_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct stats *stats_new(void) {
    struct stats *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->log = calloc(STATS_MAX_STARTS, sizeof *s->log);
    if (!s->log || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->log);
        free(s);
        return NULL;
    }
    s->since_ms = stats_now_ms();
    return s;
}

void stats_free(struct stats *s) {
    if (!s) return;
    pthread_mutex_destroy(&s->mu);
    free(s->log);
    free(s);
}

void stats_request(struct stats *s, struct sim_tenant *t, int kind, bool start, int64_t now_ms) {
    if (t) {
        atomic_fetch_add(&t->requests, 1);
        if (kind >= 0 && kind < 2) atomic_fetch_add(&t->by_kind[kind], 1);
        if (start) atomic_fetch_add(&t->starts, 1);
    }
    int64_t sec = now_ms / 1000;
    pthread_mutex_lock(&s->mu);
    struct second *b = &s->ring[sec % STATS_SECONDS];
    if (b->sec != sec) *b = (struct second){.sec = sec};
    b->requests++;
    s->total++;
    if (start && t) {
        b->starts++;
        s->starts++;
        s->log[s->log_next] = (struct start){now_ms, t, kind};
        s->log_next = (s->log_next + 1) % STATS_MAX_STARTS;
        if (s->log_len < STATS_MAX_STARTS) s->log_len++;
    }
    pthread_mutex_unlock(&s->mu);
}

static void reset_tenant(void *arg, struct sim_tenant *t) { tenant_reset_counters(t); }

void stats_reset(struct stats *s, struct registry *r) {
    pthread_mutex_lock(&s->mu);
    s->since_ms = stats_now_ms();
    s->total = s->starts = 0;
    memset(s->ring, 0, sizeof s->ring);
    s->log_next = s->log_len = 0;
    pthread_mutex_unlock(&s->mu);
    registry_each(r, reset_tenant, NULL);
}

static const char *const STATUS_NAMES[ST_COUNT] = {"200", "400", "401", "404", "429", "500", "502", "503", "other"};

static void tenant_json(void *arg, struct sim_tenant *t) {
    json_t *by_status = json_object();
    for (int i = 0; by_status && i < ST_COUNT; i++) {
        unsigned long n = atomic_load(&t->by_status[i]);
        if (n) json_object_set_new(by_status, STATUS_NAMES[i], json_integer((json_int_t)n));
    }
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:i,s:i,s:I,s:I,s:o?}", "requests",
                          (json_int_t)atomic_load(&t->requests), "starts", (json_int_t)atomic_load(&t->starts),
                          "customers", (json_int_t)atomic_load(&t->by_kind[0]), "products",
                          (json_int_t)atomic_load(&t->by_kind[1]), "concurrent", atomic_load(&t->concurrent),
                          "max_concurrent", atomic_load(&t->max_concurrent), "hangs",
                          (json_int_t)atomic_load(&t->hangs), "malformed", (json_int_t)atomic_load(&t->malformed),
                          "status", by_status);
    if (o) json_object_set_new(arg, t->name, o);
}

json_t *stats_json(struct stats *s, struct registry *r) {
    json_t *seconds = json_array();
    if (!seconds) return NULL;
    unsigned long max_req = 0, max_starts = 0, max_starts_min = 0;
    pthread_mutex_lock(&s->mu);
    int64_t now = stats_now_ms() / 1000;
    /* Oldest first; per-minute maximum over calendar minutes. */
    int64_t minute = -1;
    unsigned long in_minute = 0;
    for (int64_t sec = now - STATS_SECONDS + 1; sec <= now; sec++) {
        const struct second *b = &s->ring[sec % STATS_SECONDS];
        if (b->sec != sec || (!b->requests && !b->starts)) continue;
        json_array_append_new(seconds, json_pack("[I,I,I]", (json_int_t)sec, (json_int_t)b->requests,
                                                 (json_int_t)b->starts));
        if (b->requests > max_req) max_req = b->requests;
        if (b->starts > max_starts) max_starts = b->starts;
        if (sec / 60 != minute) {
            minute = sec / 60;
            in_minute = 0;
        }
        in_minute += b->starts;
        if (in_minute > max_starts_min) max_starts_min = in_minute;
    }
    json_t *o = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:o}", "since_ms", (json_int_t)s->since_ms, "total",
                          (json_int_t)s->total, "starts", (json_int_t)s->starts, "max_requests_per_second",
                          (json_int_t)max_req, "max_starts_per_second", (json_int_t)max_starts,
                          "max_starts_per_minute", (json_int_t)max_starts_min, "seconds", seconds);
    pthread_mutex_unlock(&s->mu);
    json_t *tenants = json_object();
    if (o && tenants) {
        registry_each(r, tenant_json, tenants);
        json_object_set_new(o, "tenants", tenants);
    } else {
        json_decref(tenants);
    }
    return o;
}

json_t *stats_starts_json(struct stats *s, int64_t since_ms) {
    json_t *list = json_array();
    if (!list) return NULL;
    pthread_mutex_lock(&s->mu);
    size_t first = (s->log_next + STATS_MAX_STARTS - s->log_len) % STATS_MAX_STARTS;
    for (size_t k = 0; k < s->log_len; k++) {
        const struct start *e = &s->log[(first + k) % STATS_MAX_STARTS];
        if (e->at_ms < since_ms) continue;
        json_array_append_new(list, json_pack("{s:s,s:s,s:I}", "tenant", e->tenant->name, "kind",
                                              e->kind == 0 ? "customers" : "products", "at_ms", (json_int_t)e->at_ms));
    }
    pthread_mutex_unlock(&s->mu);
    return json_pack("{s:o}", "starts", list);
}
