/* The per-tenant lock of the ERP synchronisation: whatever the number of instances and workers,
 * one job at a time calls a tenant's ERP and writes its data.
 *
 *   erp:lock:{<tenant>}      "<token> <fence> <instance> <kind> <job id>", PX = the lock's TTL
 *   erp:fence:{<tenant>}     counter, INCRed on every acquisition: the fencing token
 *   erp:throttle:{<tenant>}  present while the tenant's ERP asked us to wait (429 Retry-After)
 * (one hash tag per tenant: each script touches one Redis Cluster slot)
 *
 * Acquire (one Lua script): refused while the tenant is throttled (with the time left) or locked
 * (with the lock's time left); else SET the lock with a random 128-bit token and the next fencing
 * token. Renew and release (Lua) act only when the stored token is still ours, so a holder whose
 * lock expired and was taken by another can neither extend nor delete the new holder's lock.
 *
 * A holder must stop writing before its lock may have expired: erp_lock_usable is false once the
 * lock was found lost, or when no renewal has succeeded for TTL − TTL/10 (measured from the moment
 * the last successful renewal was sent, so it errs early). The keeper renews every held lock at
 * least every TTL/3 from its own thread, so a job that is slow inside one call still keeps its
 * lock; a process that is paused or partitioned keeps nothing. Writes also carry the fencing token
 * (erp_repo.h), which the database compares with the newest token that wrote: the last line of
 * defence when a paused holder wakes up after its lock was taken over.
 *
 * Synchronisation: struct erp_lock's lost/valid_until are atomics (written by the keeper, read by
 * the job's thread); the keeper's list is guarded by its mutex. Ownership: a struct erp_lock is the
 * caller's (usually on the job thread's stack) and must be removed from the keeper before it goes
 * away. */
#ifndef ERP_LOCK_H
#define ERP_LOCK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "svc/log.h"
#include "svc/redisx.h"

#define ERP_LOCK_TOKEN_LEN 32
#define ERP_LOCK_HOLDER_MAX 200

struct erp_lock {
    char tenant[40];
    char token[ERP_LOCK_TOKEN_LEN + 1];
    int64_t fence;
    long ttl_ms;
    atomic_bool lost;
    _Atomic int64_t renewed_ms;      /* monotonic time the last successful renewal was sent */
};

enum erp_lock_result {
    ERP_LOCK_ACQUIRED = 0,
    ERP_LOCK_BUSY,        /* another job holds it: *wait_ms is its time left */
    ERP_LOCK_THROTTLED    /* the ERP asked us to wait: *wait_ms until it may be called */
};

/* holder: "<instance> <kind> <job id>" (no secrets: the status API shows it). */
svc_status erp_lock_acquire(struct svc_redis_pool *pool, const char *tenant, long ttl_ms, const char *holder,
                            struct erp_lock *out, enum erp_lock_result *res, long *wait_ms);
/* SVC_OK when renewed; SVC_CONFLICT when the lock is no longer ours (then l->lost is set);
 * a Redis status otherwise (the lock may still be ours). */
svc_status erp_lock_renew(struct svc_redis_pool *pool, struct erp_lock *l);
/* Deletes the lock if it is still ours. */
svc_status erp_lock_release(struct svc_redis_pool *pool, struct erp_lock *l);
/* May the holder still write? (see above) */
bool erp_lock_usable(struct erp_lock *l);

/* Marks the tenant's ERP as not to be called for ms (429 Retry-After). */
svc_status erp_throttle_set(struct svc_redis_pool *pool, const char *tenant, long ms);

/* The lock as the status API shows it. */
struct erp_lock_info {
    bool held;
    char holder[ERP_LOCK_HOLDER_MAX];   /* "<instance> <kind> <job id>" */
    char kind[16];
    long long expires_in_ms;
};
svc_status erp_lock_peek(struct svc_redis_pool *pool, const char *tenant, struct erp_lock_info *out);

/* The keeper thread: renews every lock added to it at least every ttl/3. */
#define ERP_KEEPER_MAX 64
struct erp_keeper {
    struct svc_redis_pool *pool;
    const struct svc_logger *log;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct erp_lock *held[ERP_KEEPER_MAX];
    pthread_t th;
    bool started;
    bool stop;
};
int erp_keeper_start(struct erp_keeper *k, struct svc_redis_pool *pool, const struct svc_logger *log);
void erp_keeper_stop(struct erp_keeper *k);
/* -1 when full (then the caller must not rely on renewals: it does not run the job). */
int erp_keeper_add(struct erp_keeper *k, struct erp_lock *l);
void erp_keeper_remove(struct erp_keeper *k, struct erp_lock *l);

/* Monotonic milliseconds. */
int64_t erp_mono_ms(void);

#endif
