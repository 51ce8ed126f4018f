/* In-process cache kept coherent by Redis invalidation pushes; see tcache.h. */
#include "svc/tcache.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TCACHE_STRIPES 16

struct tentry {
    char *key;
    char *value;
    long expires_ms;
};

struct svc_tcache {
    struct tentry *slots;
    int nslots;
    long max_age_ms;
    char *prefix;
    char *host;
    char *password;
    int port, db, connect_timeout_ms;
    const struct svc_logger *log;
    pthread_mutex_t mu[TCACHE_STRIPES];
    atomic_ulong epoch;
    atomic_bool enabled;
    atomic_bool stop;
    atomic_int fd;               /* socket of the live invalidation connection, -1 when none */
    atomic_bool busy;            /* the thread is not parked in poll(): it may hold pushes not yet applied */
    atomic_ulong hits, misses, invalidations, resyncs;
    pthread_t thread;
};

static long mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static unsigned long hash_key(const char *k) {
    unsigned long h = 1469598103934665603UL;
    for (const unsigned char *s = (const unsigned char *)k; *s; s++) h = (h ^ *s) * 1099511628211UL;
    return h;
}

static void entry_clear(struct tentry *e) {
    free(e->key);
    free(e->value);
    e->key = e->value = NULL;
}

static void flush_all(struct svc_tcache *c) {
    atomic_fetch_add(&c->epoch, 1);
    for (int s = 0; s < TCACHE_STRIPES; s++) {
        pthread_mutex_lock(&c->mu[s]);
        for (int i = s; i < c->nslots; i += TCACHE_STRIPES) entry_clear(&c->slots[i]);
        pthread_mutex_unlock(&c->mu[s]);
    }
}

void svc_tcache_drop(struct svc_tcache *c, const char *key) {
    if (!c) return;
    atomic_fetch_add(&c->epoch, 1);
    unsigned long h = hash_key(key);
    int i = (int)(h % (unsigned long)c->nslots);
    pthread_mutex_t *mu = &c->mu[i % TCACHE_STRIPES];
    pthread_mutex_lock(mu);
    if (c->slots[i].key && !strcmp(c->slots[i].key, key)) entry_clear(&c->slots[i]);
    pthread_mutex_unlock(mu);
}

/* No push has reached this process that is not applied yet: the thread is parked in poll() and
 * its socket holds no unread byte. busy is read on both sides of the byte count: a push the
 * thread took off the socket before the count is either applied (busy false again) or still
 * being applied (busy true). */
static bool settled(struct svc_tcache *c) {
    if (atomic_load(&c->busy)) return false;
    int fd = atomic_load(&c->fd), unread = 0;
    if (fd < 0 || ioctl(fd, FIONREAD, &unread) != 0 || unread > 0) return false;
    return !atomic_load(&c->busy);
}

char *svc_tcache_get(struct svc_tcache *c, const char *key) {
    if (!c || !atomic_load(&c->enabled)) return NULL;
    if (!settled(c)) {
        atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
        return NULL;
    }
    unsigned long h = hash_key(key);
    int i = (int)(h % (unsigned long)c->nslots);
    pthread_mutex_t *mu = &c->mu[i % TCACHE_STRIPES];
    char *out = NULL;
    long now = mono_ms();
    pthread_mutex_lock(mu);
    struct tentry *e = &c->slots[i];
    if (e->key && e->expires_ms > now && !strcmp(e->key, key)) out = strdup(e->value);
    pthread_mutex_unlock(mu);
    atomic_fetch_add_explicit(out ? &c->hits : &c->misses, 1, memory_order_relaxed);
    return out;
}

unsigned long svc_tcache_epoch(struct svc_tcache *c) { return c ? atomic_load(&c->epoch) : 0; }

void svc_tcache_put(struct svc_tcache *c, const char *key, const char *value, unsigned long epoch) {
    if (!c || !atomic_load(&c->enabled)) return;
    char *k = strdup(key), *v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return;
    }
    unsigned long h = hash_key(key);
    int i = (int)(h % (unsigned long)c->nslots);
    pthread_mutex_t *mu = &c->mu[i % TCACHE_STRIPES];
    pthread_mutex_lock(mu);
    /* checked under the stripe lock: an invalidation after this point drops the entry again */
    if (atomic_load(&c->epoch) == epoch && atomic_load(&c->enabled)) {
        entry_clear(&c->slots[i]);
        c->slots[i].key = k;
        c->slots[i].value = v;
        c->slots[i].expires_ms = mono_ms() + c->max_age_ms;
        k = v = NULL;
    }
    pthread_mutex_unlock(mu);
    free(k);
    free(v);
}

bool svc_tcache_enabled(struct svc_tcache *c) { return c && atomic_load(&c->enabled); }

bool svc_tcache_barrier(struct svc_redis_pool *pool) {
    svc_status st;
    redisReply *r = svc_redis_command(pool, &st, "PING");
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (r) freeReplyObject(r);
    return ok;
}

void svc_tcache_stats(struct svc_tcache *c, struct svc_tcache_stats *out) {
    memset(out, 0, sizeof *out);
    if (!c) return;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->invalidations = atomic_load(&c->invalidations);
    out->resyncs = atomic_load(&c->resyncs);
    out->enabled = atomic_load(&c->enabled);
}

static bool reply_ok(redisReply *r, int type) {
    bool ok = r && r->type == type;
    if (r) freeReplyObject(r);
    return ok;
}

/* Opens the connection, enables tracking redirected to itself and subscribes. NULL on failure. */
static redisContext *tracking_connect(struct svc_tcache *c) {
    struct timeval tv = {c->connect_timeout_ms / 1000, (c->connect_timeout_ms % 1000) * 1000};
    redisContext *r = redisConnectWithTimeout(c->host, c->port, tv);
    if (!r || r->err) goto fail;
    if (redisSetTimeout(r, tv) != REDIS_OK) goto fail;
    if (c->password && !reply_ok(redisCommand(r, "AUTH %s", c->password), REDIS_REPLY_STATUS)) goto fail;
    if (c->db && !reply_ok(redisCommand(r, "SELECT %d", c->db), REDIS_REPLY_STATUS)) goto fail;
    redisReply *id = redisCommand(r, "CLIENT ID");
    if (!id || id->type != REDIS_REPLY_INTEGER) {
        if (id) freeReplyObject(id);
        goto fail;
    }
    long long cid = id->integer;
    freeReplyObject(id);
    if (!reply_ok(redisCommand(r, "CLIENT TRACKING on REDIRECT %lld BCAST PREFIX %s", cid, c->prefix),
                  REDIS_REPLY_STATUS))
        goto fail;
    if (!reply_ok(redisCommand(r, "SUBSCRIBE __redis__:invalidate"), REDIS_REPLY_ARRAY)) goto fail;
    /* from now on block on reads: pushes come whenever they come; free() shuts the socket */
    struct timeval none = {0, 0};
    if (redisSetTimeout(r, none) != REDIS_OK) goto fail;
    return r;
fail:
    if (r) redisFree(r);
    return NULL;
}

static void handle_push(struct svc_tcache *c, redisReply *m) {
    /* ["message", "__redis__:invalidate", [keys...] | nil] */
    if (m->type != REDIS_REPLY_ARRAY || m->elements != 3) return;
    redisReply *payload = m->element[2];
    atomic_fetch_add_explicit(&c->invalidations, 1, memory_order_relaxed);
    if (payload->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < payload->elements; i++)
            if (payload->element[i]->type == REDIS_REPLY_STRING) svc_tcache_drop(c, payload->element[i]->str);
    } else {
        flush_all(c); /* nil: FLUSHALL/FLUSHDB */
    }
}

static void *tracking_thread(void *arg) {
    struct svc_tcache *c = arg;
    bool was_up = false;
    while (!atomic_load(&c->stop)) {
        redisContext *r = tracking_connect(c);
        if (!r) {
            if (was_up) svc_log(c->log, SVC_LOG_WARN, NULL, "local cache disabled: invalidation connection down", NULL);
            was_up = false;
            for (int i = 0; i < 10 && !atomic_load(&c->stop); i++) usleep(100 * 1000);
            continue;
        }
        atomic_store(&c->fd, r->fd);
        flush_all(c); /* anything cached before this subscription may have missed its push */
        atomic_store(&c->enabled, true);
        atomic_fetch_add(&c->resyncs, 1);
        if (!was_up) svc_logf(c->log, SVC_LOG_INFO, NULL, "local cache enabled", "{s:s}", "prefix", c->prefix);
        was_up = true;
        /* apply every push parsed so far, park in poll() (not busy), read what came */
        bool ok = true;
        while (ok && !atomic_load(&c->stop)) {
            redisReply *m = NULL;
            while ((ok = redisGetReplyFromReader(r, (void **)&m) == REDIS_OK) && m) {
                handle_push(c, m);
                freeReplyObject(m);
                m = NULL;
            }
            if (!ok) break;
            atomic_store(&c->busy, false);
            struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
            int n = poll(&pfd, 1, -1);
            atomic_store(&c->busy, true);
            if (n < 0 && errno == EINTR) continue;
            ok = n > 0 && redisBufferRead(r) == REDIS_OK;
        }
        atomic_store(&c->enabled, false);
        flush_all(c);
        atomic_store(&c->fd, -1);
        redisFree(r);
    }
    return NULL;
}

struct svc_tcache *svc_tcache_new(const struct svc_redis_config *redis, const char *prefix, int slots,
                                  long max_age_ms, const struct svc_logger *log) {
    struct svc_tcache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->nslots = slots > 0 ? slots : 4096;
    c->slots = calloc((size_t)c->nslots, sizeof *c->slots);
    c->prefix = strdup(prefix);
    c->host = strdup(redis->host ? redis->host : "127.0.0.1");
    c->password = redis->password && *redis->password ? strdup(redis->password) : NULL;
    c->port = redis->port;
    c->db = redis->db;
    c->connect_timeout_ms = redis->connect_timeout_ms > 0 ? redis->connect_timeout_ms : 500;
    c->max_age_ms = max_age_ms <= 0 || max_age_ms > 1000 ? 1000 : max_age_ms;
    c->log = log;
    atomic_init(&c->epoch, 1);
    atomic_init(&c->enabled, false);
    atomic_init(&c->stop, false);
    atomic_init(&c->fd, -1);
    atomic_init(&c->busy, true);
    for (int i = 0; i < TCACHE_STRIPES; i++) pthread_mutex_init(&c->mu[i], NULL);
    if (!c->slots || !c->prefix || !c->host || (redis->password && *redis->password && !c->password) ||
        pthread_create(&c->thread, NULL, tracking_thread, c) != 0) {
        for (int i = 0; i < TCACHE_STRIPES; i++) pthread_mutex_destroy(&c->mu[i]);
        free(c->slots);
        free(c->prefix);
        free(c->host);
        free(c->password);
        free(c);
        return NULL;
    }
    return c;
}

void svc_tcache_free(struct svc_tcache *c) {
    if (!c) return;
    atomic_store(&c->stop, true);
    int fd = atomic_load(&c->fd);
    if (fd >= 0) shutdown(fd, SHUT_RDWR); /* wakes the blocked read */
    pthread_join(c->thread, NULL);
    for (int i = 0; i < c->nslots; i++) entry_clear(&c->slots[i]);
    for (int i = 0; i < TCACHE_STRIPES; i++) pthread_mutex_destroy(&c->mu[i]);
    free(c->slots);
    free(c->prefix);
    free(c->host);
    free(c->password);
    free(c);
}
