/* Reaper and scheduler thread (see sync_maint.h), and the interruptible sleep every background
 * loop of the service uses so that a stop request is seen at once. */
#include "sync_maint.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync_repo.h"
#include "sync_runs.h"

#define REAP_MAX 16

bool sync_sleep(struct sync_ctx *cx, long ms) {
    if (atomic_load(&cx->stopping)) return true;
    if (ms <= 0) return false;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&cx->stop_mu);
    while (!atomic_load(&cx->stopping)) {
        if (pthread_cond_timedwait(&cx->stop_cv, &cx->stop_mu, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&cx->stop_mu);
    return atomic_load(&cx->stopping);
}

static void resume(struct sync_ctx *cx, PGconn *c, const struct sync_repo_expired *e) {
    int resumes = 0;
    svc_status st = sync_repo_run_resume(c, e->id, cx->set.lease_ttl_ms, (int)cx->set.max_resumes, &resumes);
    if (st == SVC_UNPROCESSABLE) {
        atomic_fetch_add_explicit(cx->m.runs_failed, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, e->cid, "sync: run failed: its lease expired too often", "{s:s,s:i}",
                 "run_id", e->id, "max_resumes", (int)cx->set.max_resumes);
        return;
    }
    if (st != SVC_OK) return;   /* taken over meanwhile, or the database is away: next pass */
    char job_id[SVC_QUEUE_JOB_ID_MAX + 1];
    snprintf(job_id, sizeof job_id, "run:%s:resume:%d", e->id, resumes);
    struct svc_job_options opt = {.id = job_id};
    svc_status qs = svc_queue_enqueue(cx->q_runs, e->id, strlen(e->id), &opt, NULL, NULL);
    atomic_fetch_add_explicit(cx->m.runs_resumed, 1, memory_order_relaxed);
    svc_logf(&cx->app.log, qs == SVC_OK ? SVC_LOG_WARN : SVC_LOG_ERROR, e->cid,
             qs == SVC_OK ? "sync: run resumed after its lease expired" : "sync: cannot enqueue a resumed run",
             "{s:s,s:s,s:i}", "run_id", e->id, "status", e->status, "resume", resumes);
}

static void check_processing(struct sync_ctx *cx, PGconn *c, const struct sync_repo_expired *e) {
    char status[SYNC_STATUS_MAX];
    if (e->queued_batches == 0) {
        if (sync_repo_run_settle(c, e->id, status) == SVC_OK)
            svc_logf(&cx->app.log, SVC_LOG_INFO, e->cid, "sync: run settled", "{s:s,s:s}", "run_id", e->id, "status",
                     status);
        return;
    }
    struct svc_queue_stats qs;
    if (svc_queue_stats(cx->q_batches, &qs) != SVC_OK || qs.waiting + qs.active + qs.delayed > 0) {
        sync_repo_lease_extend(c, e->id, cx->set.lease_ttl_ms);   /* still working (or cannot tell) */
        return;
    }
    char reason[160];
    snprintf(reason, sizeof reason, "%lld batches were lost from the queue", e->queued_batches);
    if (sync_repo_run_fail(c, e->id, NULL, reason) == SVC_OK) {
        atomic_fetch_add_explicit(cx->m.runs_failed, 1, memory_order_relaxed);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, e->cid, "sync: run failed", "{s:s,s:s}", "run_id", e->id, "reason",
                 reason);
    }
}

void sync_reap(struct sync_ctx *cx) {
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return;
    struct sync_repo_expired list[REAP_MAX];
    int n = 0;
    if (sync_repo_expired_runs(c, list, REAP_MAX, &n) == SVC_OK) {
        for (int i = 0; i < n; i++) {
            if (strcmp(list[i].status, "PROCESSING") == 0) check_processing(cx, c, &list[i]);
            else resume(cx, c, &list[i]);
        }
    }
    svc_pg_release(cx->app.pg, c);
}

/* Triggers the scheduled run of minute `slot` unless another instance already did. */
static void scheduled(struct sync_ctx *cx, int64_t slot) {
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SET sync:cron:%" PRId64 " %s NX EX 86400", slot,
                                      cx->app.instance);
    if (!r) {
        svc_logf(&cx->app.log, SVC_LOG_WARN, NULL, "sync: scheduled run skipped: Redis unavailable", NULL);
        return;
    }
    bool won = r->type == REDIS_REPLY_STATUS;
    freeReplyObject(r);
    if (!won) return;
    char cid[SVC_UUID_LEN + 1];
    svc_uuid4(cid);
    char *json = NULL;
    bool created = false, queue_failed;
    st = sync_trigger_run(cx, "schedule", NULL, cid, &json, &created, &queue_failed);
    free(json);
    svc_logf(&cx->app.log, st == SVC_OK ? SVC_LOG_INFO : SVC_LOG_ERROR, cid,
             st != SVC_OK ? "sync: scheduled run could not be created"
                          : created ? "sync: scheduled run created" : "sync: scheduled run skipped: a run is active",
             NULL);
}

static void *maint_main(void *arg) {
    struct sync_ctx *cx = arg;
    int64_t next = sync_cron_next(&cx->set.cron, (int64_t)time(NULL));
    long next_reap = svc_now_ms();
    while (!atomic_load(&cx->stopping)) {
        long now_ms = svc_now_ms();
        if (now_ms >= next_reap) {
            sync_reap(cx);
            next_reap = now_ms + cx->set.reaper_interval_ms;
        }
        int64_t now = (int64_t)time(NULL);
        if (next >= 0 && now >= next) {
            scheduled(cx, next);
            next = sync_cron_next(&cx->set.cron, now);
        }
        long wait = next_reap - svc_now_ms();
        if (next >= 0 && (next - (int64_t)time(NULL)) * 1000 < wait) wait = (long)(next - (int64_t)time(NULL)) * 1000;
        if (wait < 10) wait = 10;
        sync_sleep(cx, wait);
    }
    return NULL;
}

int sync_maint_start(struct sync_ctx *cx) {
    if (pthread_create(&cx->maint, NULL, maint_main, cx) != 0) return -1;
    cx->maint_started = true;
    return 0;
}

void sync_maint_stop(struct sync_ctx *cx) {
    pthread_mutex_lock(&cx->stop_mu);
    atomic_store(&cx->stopping, true);
    pthread_cond_broadcast(&cx->stop_cv);
    pthread_mutex_unlock(&cx->stop_mu);
    if (cx->maint_started) {
        pthread_join(cx->maint, NULL);
        cx->maint_started = false;
    }
}
