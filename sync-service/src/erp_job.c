/* One ERP sync job (see erp_job.h). */
#include "erp_job.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erp_lock.h"
#include "erp_ratelimit.h"
#include "erp_repo.h"
#include "erp_runs_repo.h"
#include "svc/backoff.h"
#include "sync_ctx.h"
#include "tenants_repo.h"

/* ------------------------------------------------------------------ payload and ids */

static bool slot_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > ERP_SLOT_MAX) return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return false;
    return true;
}

int erp_job_payload(const struct erp_job_spec *s, char *out, size_t n) {
    if (!svc_uuid_is_valid(s->tenant) || !slot_ok(s->slot)) return -1;
    int w = snprintf(out, n, "erp1 %s %s %s %d", erp_kind_name(s->kind), s->tenant, s->slot, s->full ? 1 : 0);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

int erp_job_parse(const char *payload, size_t len, struct erp_job_spec *out) {
    memset(out, 0, sizeof *out);
    char buf[160], kind[16];
    int full = 0;
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, payload, len);
    buf[len] = '\0';
    char extra;
    if (sscanf(buf, "erp1 %15s %36s %40s %d %c", kind, out->tenant, out->slot, &full, &extra) != 4) return -1;
    if (erp_kind_parse(kind, &out->kind) != 0 || !svc_uuid_is_valid(out->tenant) || !slot_ok(out->slot) ||
        (full != 0 && full != 1))
        return -1;
    out->full = full == 1;
    return 0;
}

void erp_job_id(const struct erp_job_spec *s, char out[SVC_QUEUE_JOB_ID_MAX + 1]) {
    snprintf(out, SVC_QUEUE_JOB_ID_MAX + 1, "%s:%s:%s", erp_kind_name(s->kind), s->tenant, s->slot);
}

void erp_job_unique_key(enum erp_kind kind, const char *tenant, char out[SVC_QUEUE_JOB_ID_MAX + 1]) {
    snprintf(out, SVC_QUEUE_JOB_ID_MAX + 1, "%s:%s", erp_kind_name(kind), tenant);
}

/* ------------------------------------------------------------------ thread context */

struct erp_thread {
    struct erp_batch batch;
    uint64_t rng;
};

void *erp_job_thread_init(void *arg, int index) {
    struct erp_thread *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    erp_batch_init(&t->batch);
    if (svc_random_bytes(&t->rng, sizeof t->rng) != 0) t->rng = (uint64_t)(uintptr_t)t ^ (uint64_t)index;
    return t;
}

void erp_job_thread_fini(void *thread_ctx, void *arg) {
    struct erp_thread *t = thread_ctx;
    if (!t) return;
    erp_batch_free(&t->batch);
    free(t);
}

/* ------------------------------------------------------------------ the sync */

enum run_end {
    RUN_OK = 0,
    RUN_TRANSIENT,    /* retry after the backoff */
    RUN_THROTTLED,    /* retry after the ERP's Retry-After */
    RUN_AUTH,         /* 401: dead at once */
    RUN_PERMANENT,    /* dead at once */
    RUN_SUPERSEDED,   /* a newer lock holder writes this tenant: stop, no retry */
    RUN_GONE,         /* the tenant was deleted meanwhile */
    RUN_STOPPING      /* this instance is stopping: hand the job back at once, no attempt spent */
};

struct run {
    enum run_end end;
    struct erp_run_counts n;
    long retry_after_ms;
    char error[200];
};

struct job_ctx {
    struct sync_ctx *cx;
    struct erp_thread *t;
    const struct erp_job_spec *spec;
    const struct tenant_secret *tenant;
    const char *api_key;
    struct erp_lock *lock;
    const char *cid;
};

static enum run_end set_end(struct run *r, enum run_end e, const char *error) {
    r->end = e;
    snprintf(r->error, sizeof r->error, "%s", error ? error : "");
    return e;
}

static enum run_end db_failure(struct run *r, const char *what, svc_status st) {
    char e[160];
    snprintf(e, sizeof e, "database: %s failed (%s)", what, svc_status_code(st));
    return set_end(r, RUN_TRANSIENT, e);
}

/* Writes the batch (fenced) and resets it. */
static enum run_end flush(struct job_ctx *j, struct run *r, bool *direct, int64_t *max_us) {
    struct erp_batch *b = &j->t->batch;
    if (b->records == 0) return RUN_OK;
    if (!erp_lock_usable(j->lock)) return set_end(r, RUN_TRANSIENT, "lost the tenant lock before writing");
    svc_status st;
    PGconn *c = svc_pg_acquire(j->cx->app.pg, -1, &st);
    if (!c) return db_failure(r, "acquire", st);
    struct erp_write_result w;
    st = erp_repo_write(c, j->spec->kind, j->tenant->id, j->lock->fence, b, *direct, &w);
    svc_pg_release(j->cx->app.pg, c);
    if (st == SVC_CONFLICT)
        return set_end(r, RUN_SUPERSEDED, "stale fencing token: a newer holder of the tenant lock writes its data");
    if (st == SVC_NOT_FOUND) return set_end(r, RUN_GONE, "the tenant was deleted");
    if (st != SVC_OK) return db_failure(r, "batch write", st);
    *direct = w.direct;
    r->n.upserted += w.upserted;
    r->n.unchanged += w.unchanged;
    if (b->max_updated_us > *max_us) *max_us = b->max_updated_us;
    erp_batch_reset(b);
    return RUN_OK;
}

static enum run_end run_sync(struct job_ctx *j, struct run *r) {
    struct sync_ctx *cx = j->cx;
    const struct erp_settings *s = &cx->erp.set;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return db_failure(r, "acquire", st);
    struct erp_state state;
    bool has_rows = true;
    st = erp_repo_state(c, j->spec->kind, j->tenant->id, &state);
    if (st == SVC_OK) st = erp_repo_has_rows(c, j->spec->kind, j->tenant->id, &has_rows);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return db_failure(r, "read sync state", st);

    int64_t since = j->spec->full || !state.has_watermark ? -1 : state.watermark_us;
    bool direct = !has_rows;
    int64_t max_us = 0;
    erp_batch_reset(&j->t->batch);
    bool more = true;
    for (long page = 1; more; page++) {
        if (page > s->max_pages) return set_end(r, RUN_PERMANENT, "the ERP kept answering has_more past ERP_SYNC_MAX_PAGES");
        if (atomic_load(&cx->stopping)) return set_end(r, RUN_STOPPING, "interrupted: the instance is stopping");
        if (!erp_lock_usable(j->lock)) return set_end(r, RUN_TRANSIENT, "lost the tenant lock");
        struct erp_call call = {.tenant_id = j->tenant->id,
                                .base_url = j->tenant->erp_base_url,
                                .api_key = j->api_key,
                                .kind = j->spec->kind,
                                .page = page,
                                .per_page = s->page_size,
                                .since_us = since,
                                .correlation_id = j->cid};
        struct erp_page_fetch f;
        erp_fetch_page(&cx->erp.client, &call, &f);
        if (f.outcome != ERP_FETCH_OK) {
            enum run_end e = f.outcome == ERP_FETCH_AUTH        ? RUN_AUTH
                             : f.outcome == ERP_FETCH_THROTTLED ? RUN_THROTTLED
                             : f.outcome == ERP_FETCH_TRANSIENT ? RUN_TRANSIENT
                                                                : RUN_PERMANENT;
            r->retry_after_ms = f.retry_after_ms;
            set_end(r, e, f.error);
            erp_fetch_free(&f);
            return e;
        }
        struct erp_page_info info;
        const char *why = NULL;
        int rc = erp_page_parse(f.body, f.len, j->spec->kind, j->tenant->id, &j->t->batch, &info, &why);
        erp_fetch_free(&f);
        if (rc != 0) {
            char e[160];
            snprintf(e, sizeof e, "erp_malformed_page: page %ld: %s", page, why);
            return set_end(r, RUN_TRANSIENT, e);
        }
        r->n.fetched += info.records;
        r->n.invalid += info.invalid;
        more = info.has_more;
        if ((j->t->batch.records >= s->batch_records || !more) && flush(j, r, &direct, &max_us) != RUN_OK)
            return r->end;
    }
    if (!erp_lock_usable(j->lock)) return set_end(r, RUN_TRANSIENT, "lost the tenant lock before finishing");
    c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return db_failure(r, "acquire", st);
    st = erp_repo_sync_done(c, j->spec->kind, j->tenant->id, j->lock->fence, max_us);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_CONFLICT)
        return set_end(r, RUN_SUPERSEDED, "stale fencing token: a newer holder of the tenant lock writes its data");
    if (st == SVC_NOT_FOUND) return set_end(r, RUN_GONE, "the tenant was deleted");
    if (st != SVC_OK) return db_failure(r, "finish", st);
    return set_end(r, RUN_OK, NULL);
}

/* ------------------------------------------------------------------ the handler */

/* A wait plus up to a tenth of it (at most a second) of jitter, so jobs put back together do not
 * all come back in the same millisecond. */
static int64_t jittered(struct erp_thread *t, long ms) {
    if (ms < 1) ms = 1;
    uint32_t spread = (uint32_t)(ms / 10 < 1000 ? ms / 10 : 1000);
    return ms + (t ? svc_backoff_uniform(svc_backoff_splitmix64(&t->rng), spread) : 0);
}

static svc_job_result defer(struct svc_job *job, struct sync_ctx *cx, long ms, enum erp_defer_reason why) {
    job->retry_delay_ms = jittered(job->thread_ctx, ms);
    atomic_fetch_add_explicit(cx->erp.m.jobs_deferred, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(cx->erp.m.deferrals[why], 1, memory_order_relaxed);
    return SVC_JOB_DEFER;
}

/* Loads the tenant; false with *res set when the job cannot go on. */
static bool load_tenant(struct sync_ctx *cx, struct svc_job *job, const struct erp_job_spec *spec,
                        struct tenant_secret *ten, svc_job_result *res) {
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        st = tenants_repo_secret(c, spec->tenant, ten);
        svc_pg_release(cx->app.pg, c);
    }
    if (st == SVC_OK && ten->is_active) return true;
    if (st == SVC_OK || st == SVC_NOT_FOUND) {
        svc_logf(&cx->app.log, SVC_LOG_INFO, job->id, "erp: job skipped", "{s:s,s:s,s:s}", "tenant_id", spec->tenant,
                 "kind", erp_kind_name(spec->kind), "reason", st == SVC_OK ? "tenant inactive" : "tenant deleted");
        atomic_fetch_add_explicit(cx->erp.m.jobs_skipped, 1, memory_order_relaxed);
        if (st == SVC_OK) tenants_repo_secret_free(ten);
        *res = SVC_JOB_OK;
        return false;
    }
    svc_logf(&cx->app.log, SVC_LOG_WARN, job->id, "erp: database unavailable; job put back", "{s:s}", "status",
             svc_status_code(st));
    *res = defer(job, cx, 2000, ERP_DEFER_UNAVAILABLE);
    return false;
}

/* Takes the tenant's lock and a rate-limit slot; false with *res (a deferral) otherwise. */
static bool admit(struct sync_ctx *cx, struct svc_job *job, const struct erp_job_spec *spec, struct erp_lock *lock,
                  svc_job_result *res) {
    const struct erp_settings *s = &cx->erp.set;
    char holder[ERP_LOCK_HOLDER_MAX];
    snprintf(holder, sizeof holder, "%s %s %s", cx->app.instance, erp_kind_name(spec->kind), job->id);
    enum erp_lock_result lr;
    long wait = 0;
    svc_status st = erp_lock_acquire(cx->app.redis, spec->tenant, s->lock_ttl_ms, holder, lock, &lr, &wait);
    if (st != SVC_OK) {
        *res = defer(job, cx, 1000, ERP_DEFER_UNAVAILABLE);
        return false;
    }
    if (lr != ERP_LOCK_ACQUIRED) {
        if (lr == ERP_LOCK_BUSY && wait > s->lock_retry_ms) wait = s->lock_retry_ms;
        svc_logf(&cx->app.log, SVC_LOG_DEBUG, job->id, "erp: job put back", "{s:s,s:s,s:i}", "tenant_id", spec->tenant,
                 "reason", lr == ERP_LOCK_BUSY ? "tenant locked" : "tenant throttled", "wait_ms", (int)wait);
        *res = defer(job, cx, wait, lr == ERP_LOCK_BUSY ? ERP_DEFER_LOCKED : ERP_DEFER_THROTTLED);
        return false;
    }
    char member[SVC_QUEUE_JOB_ID_MAX + 64];
    snprintf(member, sizeof member, "%s:%d:%s", job->id, job->attempt, lock->token);
    bool admitted = true;
    st = erp_rate_take(cx->app.redis, ERP_RATE_KEY, s->rate_max, s->rate_window_ms, member, &admitted, &wait, NULL);
    if (st != SVC_OK || !admitted) {
        erp_lock_release(cx->app.redis, lock);
        *res = st == SVC_OK ? defer(job, cx, wait, ERP_DEFER_RATE_LIMITED) : defer(job, cx, 1000, ERP_DEFER_UNAVAILABLE);
        return false;
    }
    if (erp_keeper_add(&cx->erp.keeper, lock) != 0) {
        erp_lock_release(cx->app.redis, lock);
        *res = defer(job, cx, 1000, ERP_DEFER_UNAVAILABLE);
        return false;
    }
    return true;
}

/* The queue outcome and audit status of a run. */
static svc_job_result outcome_of(struct sync_ctx *cx, struct svc_job *job, struct run *r, const char **status) {
    bool last = job->attempt >= job->max_attempts;
    snprintf(job->error, sizeof job->error, "%s", r->error);
    switch (r->end) {
    case RUN_OK:
        *status = "completed";
        atomic_fetch_add_explicit(cx->erp.m.jobs_completed, 1, memory_order_relaxed);
        return SVC_JOB_OK;
    case RUN_STOPPING:
        /* Another instance (or this one after its restart) takes it from its watermark. */
        *status = "failed";
        job->retry_delay_ms = 0;
        return SVC_JOB_DEFER;
    case RUN_SUPERSEDED:
    case RUN_GONE:
        *status = "failed";
        atomic_fetch_add_explicit(cx->erp.m.jobs_failed, 1, memory_order_relaxed);
        return SVC_JOB_OK;
    case RUN_TRANSIENT:
    case RUN_THROTTLED: {
        *status = last ? "dead" : "failed";
        atomic_fetch_add_explicit(last ? cx->erp.m.jobs_dead : cx->erp.m.jobs_failed, 1, memory_order_relaxed);
        long long wait = cx->erp.set.retry_base_ms;
        for (int i = 1; i < job->attempt && wait < 86400000LL; i++) wait *= 2;
        if (r->end == RUN_THROTTLED) wait = r->retry_after_ms > 0 ? r->retry_after_ms : 1000;
        job->retry_delay_ms = wait;
        return SVC_JOB_RETRY;
    }
    default:
        *status = "dead";
        atomic_fetch_add_explicit(cx->erp.m.jobs_dead, 1, memory_order_relaxed);
        return SVC_JOB_FAIL;
    }
}

static void audit_start(struct sync_ctx *cx, struct svc_job *job, const struct erp_job_spec *spec, long long *run_id) {
    *run_id = 0;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        st = erp_runs_start(c, job->queue, job->id, spec->kind, spec->tenant, job->attempt, cx->app.instance, run_id);
        svc_pg_release(cx->app.pg, c);
    }
    if (st != SVC_OK)
        svc_logf(&cx->app.log, SVC_LOG_ERROR, job->id, "erp: cannot write the job's audit row", "{s:s}", "status",
                 svc_status_code(st));
}

static void audit_finish(struct sync_ctx *cx, struct svc_job *job, long long run_id, const char *status,
                         const struct run *r) {
    if (!run_id) return;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        st = erp_runs_finish(c, run_id, status, &r->n, r->error[0] ? r->error : NULL);
        svc_pg_release(cx->app.pg, c);
    }
    if (st != SVC_OK)
        svc_logf(&cx->app.log, SVC_LOG_ERROR, job->id, "erp: cannot complete the job's audit row", "{s:s}", "status",
                 svc_status_code(st));
}

/* The key was sealed by the previous key (rotation): seal it again with the current one. */
static void reseal(struct sync_ctx *cx, const struct tenant_secret *ten, const char *key) {
    size_t n = strlen(key);
    unsigned char *sealed = malloc(n + SVC_AEAD_OVERHEAD);
    size_t len = sealed ? svc_aead_seal(&cx->erp.keys, ten->id, strlen(ten->id), key, n, sealed) : 0;
    svc_status st = SVC_INTERNAL;
    if (len) {
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (c) {
            st = tenants_repo_reseal(c, ten->id, ten->sealed_key, ten->sealed_len, sealed, len);
            svc_pg_release(cx->app.pg, c);
        }
    }
    free(sealed);
    svc_logf(&cx->app.log, st == SVC_OK ? SVC_LOG_INFO : SVC_LOG_WARN, NULL, "erp: API key sealed again with the current key",
             "{s:s,s:s}", "tenant_id", ten->id, "status", svc_status_code(st));
}

svc_job_result erp_job_handle(struct svc_job *job, void *arg) {
    struct sync_ctx *cx = arg;
    struct erp_thread *t = job->thread_ctx;
    struct erp_job_spec spec;
    if (!t) {
        snprintf(job->error, sizeof job->error, "internal: no worker memory");
        return SVC_JOB_RETRY;
    }
    if (erp_job_parse((const char *)job->payload, job->len, &spec) != 0) {
        snprintf(job->error, sizeof job->error, "malformed job payload");
        return SVC_JOB_FAIL;
    }
    svc_job_result res;
    struct tenant_secret ten;
    if (!load_tenant(cx, job, &spec, &ten, &res)) return res;
    struct erp_lock lock;
    if (!admit(cx, job, &spec, &lock, &res)) {
        tenants_repo_secret_free(&ten);
        return res;
    }

    long long run_id;
    audit_start(cx, job, &spec, &run_id);
    struct run r = {0};
    size_t cap = ten.sealed_len > SVC_AEAD_OVERHEAD ? ten.sealed_len - SVC_AEAD_OVERHEAD + 1 : 1;
    char *key = malloc(cap);
    bool by_current = true;
    if (!key || svc_aead_open(&cx->erp.keys, ten.id, strlen(ten.id), ten.sealed_key, ten.sealed_len, key,
                              &by_current) < 0) {
        set_end(&r, RUN_PERMANENT, "cannot open the tenant's API key (sealed with a key not configured)");
    } else {
        if (!by_current) reseal(cx, &ten, key);
        svc_logf(&cx->app.log, SVC_LOG_INFO, job->id, "erp: job started", "{s:s,s:s,s:i,s:I}", "tenant_id", ten.id,
                 "kind", erp_kind_name(spec.kind), "attempt", job->attempt, "fence", (json_int_t)lock.fence);
        struct job_ctx j = {.cx = cx, .t = t, .spec = &spec, .tenant = &ten, .api_key = key, .lock = &lock,
                            .cid = job->id};
        run_sync(&j, &r);
        if (r.end == RUN_AUTH) {
            PGconn *c = svc_pg_acquire(cx->app.pg, -1, &(svc_status){0});
            if (c) {
                erp_repo_auth_failed(c, spec.kind, ten.id);
                svc_pg_release(cx->app.pg, c);
            }
        }
        if (r.end == RUN_THROTTLED)
            erp_throttle_set(cx->app.redis, ten.id, r.retry_after_ms > 0 ? r.retry_after_ms : 1000);
    }
    if (key) {
        OPENSSL_cleanse(key, cap);
        free(key);
    }
    erp_keeper_remove(&cx->erp.keeper, &lock);
    erp_lock_release(cx->app.redis, &lock);

    const char *status;
    res = outcome_of(cx, job, &r, &status);
    audit_finish(cx, job, run_id, status, &r);
    struct erp_metrics *m = &cx->erp.m;
    atomic_fetch_add_explicit(m->records_fetched, (unsigned long)r.n.fetched, memory_order_relaxed);
    atomic_fetch_add_explicit(m->records_upserted, (unsigned long)r.n.upserted, memory_order_relaxed);
    atomic_fetch_add_explicit(m->records_unchanged, (unsigned long)r.n.unchanged, memory_order_relaxed);
    atomic_fetch_add_explicit(m->records_invalid, (unsigned long)r.n.invalid, memory_order_relaxed);
    svc_logf(&cx->app.log, r.end == RUN_OK ? SVC_LOG_INFO : SVC_LOG_WARN, job->id, "erp: job finished",
             "{s:s,s:s,s:i,s:s,s:I,s:I,s:I,s:I,s:s?}", "tenant_id", ten.id, "kind", erp_kind_name(spec.kind),
             "attempt", job->attempt, "status", status, "fetched", (json_int_t)r.n.fetched, "upserted",
             (json_int_t)r.n.upserted, "unchanged", (json_int_t)r.n.unchanged, "invalid", (json_int_t)r.n.invalid,
             "error", r.error[0] ? r.error : NULL);
    tenants_repo_secret_free(&ten);
    return res;
}
