/* ERP schedule, triggers and retention (see erp_sched.h). */
#include "erp_sched.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "erp_jitter.h"
#include "erp_job.h"
#include "erp_metrics.h"
#include "erp_repo.h"
#include "erp_runs_repo.h"
#include "tenants_repo.h"

#define PAGE 100
#define WATCH_MAX 16
#define WATCH_FOR_MS (3600 * 1000L)

static int64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ------------------------------------------------------------------ enqueueing a slot */

static void renew_lease(struct sync_ctx *cx, const char *lease) {
    if (!lease) return;
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "PEXPIRE %s %ld", lease, cx->erp.set.slot_lease_ms);
    if (r) freeReplyObject(r);
}

svc_status erp_slot_enqueue(struct sync_ctx *cx, enum erp_kind kind, const char *slot, int64_t slot_unix_ms,
                            int64_t window_ms, bool full, const char *lease, const char *cid,
                            struct erp_slot_counts *out) {
    memset(out, 0, sizeof *out);
    struct tenant_ref refs[PAGE];
    struct svc_job_spec jobs[PAGE];
    struct erp_job_spec specs[PAGE];
    char payloads[PAGE][160], ids[PAGE][SVC_QUEUE_JOB_ID_MAX + 1], uniques[PAGE][SVC_QUEUE_JOB_ID_MAX + 1];
    long long after = 0;
    for (;;) {
        svc_status st;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) return st;
        int n = 0;
        st = tenants_repo_active_page(c, after, PAGE, refs, &n);
        svc_pg_release(cx->app.pg, c);
        if (st != SVC_OK) return st;
        if (n == 0) break;
        int64_t now = wall_ms();
        for (int i = 0; i < n; i++) {
            specs[i] = (struct erp_job_spec){.kind = kind, .full = full};
            memcpy(specs[i].tenant, refs[i].id, sizeof specs[i].tenant);
            snprintf(specs[i].slot, sizeof specs[i].slot, "%s", slot);
            if (erp_job_payload(&specs[i], payloads[i], sizeof payloads[i]) != 0) return SVC_INTERNAL;
            erp_job_id(&specs[i], ids[i]);
            erp_job_unique_key(kind, refs[i].id, uniques[i]);
            int64_t due = slot_unix_ms + erp_jitter_offset_ms(refs[i].seq, window_ms, cx->erp.set.delay_step_ms);
            jobs[i] = (struct svc_job_spec){.payload = payloads[i],
                                            .len = strlen(payloads[i]),
                                            .opt = {.id = ids[i],
                                                    .unique_key = uniques[i],
                                                    .delay_ms = due > now ? due - now : 0}};
        }
        st = svc_queue_enqueue_many(cx->erp.q, jobs, (size_t)n);
        if (st != SVC_OK) return st;
        for (int i = 0; i < n; i++) {
            if (jobs[i].created) out->enqueued++;
            else out->skipped++;
        }
        out->tenants += n;
        after = refs[n - 1].seq;
        renew_lease(cx, lease);
        if (n < PAGE) break;
    }
    atomic_fetch_add_explicit(cx->erp.m.jobs_enqueued, (unsigned long)out->enqueued, memory_order_relaxed);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "erp: slot enqueued", "{s:s,s:s,s:I,s:I,s:I,s:I}", "kind",
             erp_kind_name(kind), "slot", slot, "window_ms", (json_int_t)window_ms, "tenants", (json_int_t)out->tenants,
             "enqueued", (json_int_t)out->enqueued, "skipped", (json_int_t)out->skipped);
    return SVC_OK;
}

/* ------------------------------------------------------------------ cron slots, once across instances */

struct watch {
    enum erp_kind kind;
    int64_t slot;          /* Unix seconds of the slot's minute */
    int64_t until_ms;      /* stop watching then */
};

struct sched_state {
    int64_t next[2];       /* next slot per kind (Unix seconds), -1: off */
    struct watch watch[WATCH_MAX];
    int nwatch;
    int64_t next_retention_ms;
    int64_t next_sample_ms;   /* next count of the tenants' states */
    bool sample_failed;       /* the last count failed (logged once until one succeeds) */
};

static void slot_key(enum erp_kind kind, int64_t slot, char out[96]) {
    snprintf(out, 96, "erp:slot:%s:%" PRId64, erp_kind_name(kind), slot);
}

/* Tries to take the slot; true when this instance enqueues it. *done: someone finished it. */
static bool slot_take(struct sync_ctx *cx, const char *key, bool *done) {
    *done = false;
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SET %s %s NX PX %ld GET", key, cx->app.instance,
                                      cx->erp.set.slot_lease_ms);
    if (!r) return false;
    bool won = r->type == REDIS_REPLY_NIL;
    if (r->type == REDIS_REPLY_STRING && r->str && strcmp(r->str, "done") == 0) *done = true;
    freeReplyObject(r);
    return won;
}

static void slot_done(struct sync_ctx *cx, const char *key) {
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SET %s done EX 172800", key);
    if (r) freeReplyObject(r);
}

/* Returns true when the slot needs no more attention here (enqueued by us, or done elsewhere). */
static bool fire(struct sync_ctx *cx, enum erp_kind kind, int64_t slot) {
    char key[96];
    slot_key(kind, slot, key);
    bool done;
    if (!slot_take(cx, key, &done)) return done;
    char cid[SVC_UUID_LEN + 1], name[ERP_SLOT_MAX + 1];
    svc_uuid4(cid);
    snprintf(name, sizeof name, "s%" PRId64, slot / 60);
    atomic_fetch_add_explicit(cx->erp.m.slots_fired, 1, memory_order_relaxed);
    struct erp_slot_counts n;
    svc_status st = erp_slot_enqueue(cx, kind, name, slot * 1000, cx->erp.set.delay_max_ms[kind], false, key, cid, &n);
    if (st != SVC_OK) {
        /* The lease expires and another instance (or this one) takes the slot over. */
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "erp: slot could not be enqueued", "{s:s,s:s,s:s}", "kind",
                 erp_kind_name(kind), "slot", name, "status", svc_status_code(st));
        return false;
    }
    slot_done(cx, key);
    return true;
}

static void watch_add(struct sched_state *s, enum erp_kind kind, int64_t slot) {
    if (s->nwatch == WATCH_MAX) {
        memmove(&s->watch[0], &s->watch[1], (WATCH_MAX - 1) * sizeof s->watch[0]);
        s->nwatch--;
    }
    s->watch[s->nwatch++] = (struct watch){kind, slot, wall_ms() + WATCH_FOR_MS};
}

static void check_slots(struct sync_ctx *cx, struct sched_state *s) {
    int64_t now = (int64_t)time(NULL);
    for (int k = 0; k < 2; k++) {
        if (s->next[k] < 0 || now < s->next[k]) continue;
        int64_t slot = s->next[k];
        s->next[k] = sync_cron_next(&cx->erp.set.cron[k], now);
        if (!fire(cx, (enum erp_kind)k, slot)) watch_add(s, (enum erp_kind)k, slot);
    }
    for (int i = 0; i < s->nwatch;) {
        if (fire(cx, s->watch[i].kind, s->watch[i].slot) || wall_ms() > s->watch[i].until_ms) {
            s->watch[i] = s->watch[--s->nwatch];
            continue;
        }
        i++;
    }
}

/* ------------------------------------------------------------------ retention */

long long erp_retention_run(struct sync_ctx *cx) {
    long long total = 0;
    for (;;) {
        svc_status st;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (!c) break;
        long long n = 0;
        st = erp_runs_retention(c, cx->erp.set.retention_days, cx->erp.set.retention_chunk, &n);
        svc_pg_release(cx->app.pg, c);
        if (st != SVC_OK) {
            svc_logf(&cx->app.log, SVC_LOG_ERROR, NULL, "erp: job_runs retention failed", "{s:s}", "status",
                     svc_status_code(st));
            break;
        }
        total += n;
        if (n < cx->erp.set.retention_chunk || atomic_load(&cx->stopping)) break;
    }
    svc_logf(&cx->app.log, SVC_LOG_INFO, NULL, "erp: job_runs retention", "{s:I,s:I}", "deleted", (json_int_t)total,
             "days", (json_int_t)cx->erp.set.retention_days);
    return total;
}

static void check_retention(struct sync_ctx *cx, struct sched_state *s) {
    int64_t now = wall_ms();
    if (now < s->next_retention_ms) return;
    long interval = cx->erp.set.retention_interval_ms;
    s->next_retention_ms = (now / interval + 1) * interval;
    char key[64];
    snprintf(key, sizeof key, "erp:retention:%" PRId64, now / interval);
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SET %s %s NX PX %ld", key, cx->app.instance, interval);
    if (!r) return;
    bool won = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (won) erp_retention_run(cx);
}

/* ------------------------------------------------------------------ tenant states (erp_metrics.h) */

static void sample_tenants(struct sync_ctx *cx, struct sched_state *s) {
    int64_t now = wall_ms();
    if (now < s->next_sample_ms) return;
    s->next_sample_ms = now + cx->erp.set.tenants_sample_ms;
    long long counts[ERP_NSTATES];
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        st = erp_repo_tenant_states(c, counts);
        svc_pg_release(cx->app.pg, c);
    }
    if (st == SVC_OK) {
        erp_metrics_set_tenants(&cx->erp.m, counts);
        s->sample_failed = false;
        return;
    }
    erp_metrics_set_tenants(&cx->erp.m, NULL);
    if (!s->sample_failed)
        svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "erp: cannot count the tenants' states (the gauges keep their values)",
                 "{s:s}", "status", svc_status_code(st));
    s->sample_failed = true;
}

/* ------------------------------------------------------------------ the thread */

static void *sched_main(void *arg) {
    struct sync_ctx *cx = arg;
    struct sched_state s = {.next_retention_ms = 0};
    int64_t now = (int64_t)time(NULL);
    for (int k = 0; k < 2; k++) s.next[k] = sync_cron_next(&cx->erp.set.cron[k], now);
    while (!atomic_load(&cx->stopping)) {
        check_slots(cx, &s);
        check_retention(cx, &s);
        sample_tenants(cx, &s);
        sync_sleep(cx, 1000 - (long)(wall_ms() % 1000) + 5);   /* just after each second starts */
    }
    return NULL;
}

int erp_sched_start(struct sync_ctx *cx) {
    if (pthread_create(&cx->erp.sched, NULL, sched_main, cx) != 0) return -1;
    cx->erp.sched_started = true;
    return 0;
}

void erp_sched_stop(struct sync_ctx *cx) {
    if (!cx->erp.sched_started) return;
    pthread_join(cx->erp.sched, NULL);
    cx->erp.sched_started = false;
}

/* ------------------------------------------------------------------ triggers */

#define FORBIDDEN SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required")

static struct svc_result invalid(json_t *fields) {
    struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
    r.details = json_pack("{s:o}", "fields", fields);
    return r;
}

/* kind (required), full (optional), spreadMs (only when spread != NULL). */
static bool read_body(const json_t *body, enum erp_kind *kind, bool *full, long long *spread, json_t *fields) {
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "kind") && strcmp(key, "full") && (!spread || strcmp(key, "spreadMs")))
            json_object_set_new(fields, key, json_string("unknown field"));
    }
    v = json_object_get(body, "kind");
    if (!v) json_object_set_new(fields, "kind", json_string("required"));
    else if (!json_is_string(v) || erp_kind_parse(json_string_value(v), kind) != 0)
        json_object_set_new(fields, "kind", json_string("must be customers or products"));
    v = json_object_get(body, "full");
    *full = false;
    if (v && !json_is_boolean(v)) json_object_set_new(fields, "full", json_string("must be a boolean"));
    else if (v) *full = json_is_true(v);
    if (spread) {
        v = json_object_get(body, "spreadMs");
        *spread = -1;
        if (v && (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 86400000))
            json_object_set_new(fields, "spreadMs", json_string("must be an integer from 0 to 86400000"));
        else if (v) *spread = json_integer_value(v);
    }
    return json_object_size(fields) == 0;
}

static struct svc_result unavailable(struct sync_ctx *cx, const char *cid, const char *what, svc_status st) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "erp: trigger failed", "{s:s,s:s}", "step", what, "status",
             svc_status_code(st));
    if (st == SVC_UNAVAILABLE || st == SVC_TIMEOUT)
        return SVC_RESULT_ERR(SVC_UNAVAILABLE, NULL, "database or job queue unavailable, retry later");
    return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
}

struct svc_result erp_trigger_tenant(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                     const char *tenant_id, const json_t *body) {
    if (!who->is_admin) return FORBIDDEN;
    if (!tenant_id || !svc_uuid_is_valid(tenant_id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
    json_t *fields = json_object();
    struct erp_job_spec spec = {0};
    if (!read_body(body, &spec.kind, &spec.full, NULL, fields)) return invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    bool active = false;
    long long seq;
    if (c) {
        st = tenants_repo_brief(c, tenant_id, &active, &seq);
        svc_pg_release(cx->app.pg, c);
    }
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
    if (st != SVC_OK) return unavailable(cx, cid, "read tenant", st);
    if (!active) return SVC_RESULT_ERR(SVC_UNPROCESSABLE, "tenant_inactive", "the tenant is not active");
    snprintf(spec.tenant, sizeof spec.tenant, "%s", tenant_id);
    unsigned char rnd[6];
    if (svc_random_bytes(rnd, sizeof rnd) != 0) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    snprintf(spec.slot, sizeof spec.slot, "m%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    char payload[160], id[SVC_QUEUE_JOB_ID_MAX + 1], unique[SVC_QUEUE_JOB_ID_MAX + 1], got[SVC_QUEUE_JOB_ID_MAX + 1];
    erp_job_payload(&spec, payload, sizeof payload);
    erp_job_id(&spec, id);
    erp_job_unique_key(spec.kind, tenant_id, unique);
    struct svc_job_options opt = {.id = id, .unique_key = unique};
    bool created = false;
    st = svc_queue_enqueue(cx->erp.q, payload, strlen(payload), &opt, got, &created);
    if (st != SVC_OK) return unavailable(cx, cid, "enqueue", st);
    if (!created) {
        struct svc_result r = SVC_RESULT_ERR(SVC_CONFLICT, "job_already_queued",
                                             "a sync of this tenant and kind is already waiting or running");
        r.details = json_pack("{s:s}", "job_id", got);
        return r;
    }
    atomic_fetch_add_explicit(cx->erp.m.jobs_enqueued, 1, memory_order_relaxed);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "erp: sync triggered", "{s:s,s:s,s:s}", "tenant_id", tenant_id, "kind",
             erp_kind_name(spec.kind), "job_id", id);
    struct svc_result r = {.st = SVC_OK,
                           .body = json_pack("{s:s,s:s,s:s,s:b}", "job_id", id, "kind", erp_kind_name(spec.kind),
                                             "tenant_id", tenant_id, "full", spec.full)};
    return r;
}

struct svc_result erp_trigger_all(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                  const json_t *body) {
    if (!who->is_admin) return FORBIDDEN;
    json_t *fields = json_object();
    enum erp_kind kind = ERP_CUSTOMERS;
    bool full;
    long long spread;
    if (!read_body(body, &kind, &full, &spread, fields)) return invalid(fields);
    json_decref(fields);
    int64_t window = cx->erp.set.delay_max_ms[kind];
    if (spread >= 0 && spread < window) window = spread;
    int64_t now = wall_ms();
    char slot[ERP_SLOT_MAX + 1];
    snprintf(slot, sizeof slot, "n%" PRId64, now);
    struct erp_slot_counts n;
    svc_status st = erp_slot_enqueue(cx, kind, slot, now, window, full, NULL, cid, &n);
    if (st != SVC_OK) return unavailable(cx, cid, "enqueue slot", st);
    struct svc_result r = {.st = SVC_OK,
                           .body = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I}", "kind", erp_kind_name(kind), "slot", slot,
                                             "window_ms", (json_int_t)window, "enqueued", (json_int_t)n.enqueued,
                                             "skipped", (json_int_t)n.skipped, "tenants", (json_int_t)n.tenants)};
    return r;
}
