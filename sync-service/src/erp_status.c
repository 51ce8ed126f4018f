/* A tenant's synchronisation status (see erp_status.h). */
#include "erp_status.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "erp_jitter.h"
#include "erp_job.h"
#include "erp_lock.h"
#include "erp_repo.h"
#include "erp_runs_repo.h"
#include "svc/pg.h"
#include "tenants_repo.h"

static json_t *iso(int64_t unix_ms) {
    time_t s = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char b[40], out[48];
    strftime(b, sizeof b, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, sizeof out, "%s.%03dZ", b, (int)(unix_ms % 1000));
    return json_string(out);
}

static int64_t wall_ms(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

struct kind_view {
    json_t *last_run;   /* owned */
    struct erp_state state;
};

struct svc_result erp_tenant_status(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                    const char *tenant_id) {
    if (!who->is_admin) return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required");
    if (!tenant_id || !svc_uuid_is_valid(tenant_id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
    struct kind_view kv[2] = {{0}};
    bool active = false;
    long long seq = 0;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (c) {
        st = tenants_repo_brief(c, tenant_id, &active, &seq);
        for (int k = 0; k < 2 && st == SVC_OK; k++) {
            char *json = NULL;
            svc_status one = erp_runs_last(c, tenant_id, (enum erp_kind)k, &json);
            if (one == SVC_OK) kv[k].last_run = json_loads(json, 0, NULL);
            else if (one != SVC_NOT_FOUND) st = one;
            free(json);
            if (st == SVC_OK) st = erp_repo_state(c, (enum erp_kind)k, tenant_id, &kv[k].state);
        }
        svc_pg_release(cx->app.pg, c);
    }
    if (st != SVC_OK) {
        for (int k = 0; k < 2; k++) json_decref(kv[k].last_run);
        if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant");
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "erp: status read failed", "{s:s}", "status", svc_status_code(st));
        return svc_pg_result(st);
    }
    struct erp_lock_info lock;
    svc_status lst = erp_lock_peek(cx->app.redis, tenant_id, &lock);
    bool auth_failed = false, failing = false;
    json_t *kinds = json_object();
    int64_t now_s = (int64_t)time(NULL), now_ms = wall_ms();
    for (int k = 0; k < 2; k++) {
        const char *status = json_string_value(json_object_get(kv[k].last_run, "status"));
        if (kv[k].state.auth_failed) auth_failed = true;
        if (status && (!strcmp(status, "failed") || !strcmp(status, "dead"))) failing = true;
        char unique[SVC_QUEUE_JOB_ID_MAX + 1], job[SVC_QUEUE_JOB_ID_MAX + 1] = "";
        erp_job_unique_key((enum erp_kind)k, tenant_id, unique);
        bool waiting = svc_queue_unique_get(cx->erp.q, unique, job) == SVC_OK;
        bool running = lst == SVC_OK && lock.held && !strcmp(lock.kind, erp_kind_name((enum erp_kind)k));
        int64_t next = sync_cron_next(&cx->erp.set.cron[k], now_s);
        json_t *o = json_pack("{s:o,s:o,s:o,s:b,s:b,s:b}", "last_run", kv[k].last_run ? kv[k].last_run : json_null(),
                              "next_slot", next >= 0 ? iso(next * 1000) : json_null(), "next_start",
                              next >= 0 ? iso(next * 1000 + erp_jitter_offset_ms(seq, cx->erp.set.delay_max_ms[k],
                                                                                 cx->erp.set.delay_step_ms))
                                        : json_null(),
                              "queued", waiting && !(running && strstr(lock.holder, job)), "running", running,
                              "auth_failed", kv[k].state.auth_failed);
        json_object_set_new(o, "watermark",
                            kv[k].state.has_watermark ? iso(kv[k].state.watermark_us / 1000) : json_null());
        json_object_set_new(kinds, erp_kind_name((enum erp_kind)k), o);
    }
    const char *state = !active ? "inactive" : auth_failed ? "auth_failed" : failing ? "failing" : "ok";
    json_t *lock_json = lst != SVC_OK ? json_null()
                                      : json_pack("{s:b,s:s?,s:o}", "held", lock.held, "holder",
                                                  lock.held ? lock.holder : NULL, "expires_at",
                                                  lock.held ? iso(now_ms + lock.expires_in_ms) : json_null());
    int bs = erp_client_breaker_state(&cx->erp.client, tenant_id);
    json_t *body = json_pack("{s:s,s:s,s:o,s:o,s:s?}", "tenant_id", tenant_id, "state", state, "kinds", kinds, "lock",
                             lock_json, "breaker", bs < 0 ? NULL : svc_breaker_state_str((svc_breaker_state_t)bs));
    if (!body) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    struct svc_result r = {.st = SVC_OK, .body = body};
    return r;
}
