/* Starting and stopping the ERP synchronisation's machinery (see erp_ctx.h): the ERP client, the
 * "erp-sync" queue and its workers (ERP_SYNC_CONCURRENCY per instance; 0 = this instance only
 * schedules and serves the API), the lock keeper and the scheduler thread. */
#include "erp_ctx.h"
#include "erp_job.h"
#include "erp_sched.h"
#include "sync_ctx.h"

int erp_start(struct sync_ctx *cx) {
    struct erp *e = &cx->erp;
    e->set.client.log = &cx->app.log;
    if (erp_client_init(&e->client, &e->set.client) != 0) return -1;
    e->client_ready = true;
    svc_status st;
    struct svc_queue_options q = {.name = ERP_QUEUE,
                                  .max_payload = 1024,
                                  .max_attempts = (int)e->set.retries + 1,
                                  .backoff = {.base_ms = (uint32_t)e->set.retry_base_ms,
                                              .cap_ms = (uint32_t)e->set.retry_base_ms * 64},
                                  .visibility_timeout_ms = (int)e->set.visibility_ms,
                                  .dead_max_age_ms = e->set.queue_prune_ms};
    e->q = svc_queue_new(cx->app.redis, &q, &cx->app.log, &st);
    if (!e->q) return -1;
    if (erp_keeper_start(&e->keeper, cx->app.redis, &cx->app.log) != 0) return -1;
    if (e->set.concurrency > 0) {
        struct svc_queue_worker_config wc = {.concurrency = (int)e->set.concurrency,
                                             .handler = erp_job_handle,
                                             .arg = cx,
                                             .thread_init = erp_job_thread_init,
                                             .thread_fini = erp_job_thread_fini,
                                             .redis = &cx->app.redis_cfg,
                                             .consumer_prefix = cx->app.instance,
                                             .maintenance_ms = 100};
        if (svc_queue_worker_start(e->q, &wc, &e->w) != SVC_OK) return -1;
    }
    return erp_sched_start(cx);
}

void erp_stop(struct sync_ctx *cx) {
    struct erp *e = &cx->erp;
    erp_sched_stop(cx);          /* cx->stopping is already set: the thread ends within a second */
    if (e->w) svc_queue_worker_request_stop(e->w);
    svc_queue_worker_free(e->w); /* waits for the jobs in hand */
    e->w = NULL;
    erp_keeper_stop(&e->keeper);
}
