/* The newest-page cache of transactions-service; see txlist_cache.h. */
#include "txlist_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/cid.h"
#include "svc/combiner.h"
#include "svc/redisx.h"
#include "svc/tcache.h"

#define VERSION_KEY "txver:"
#define PAGE_KEY "txpage:"
#define VERSION_TTL_S 86400

static void count(atomic_ulong *c) {
    if (c) atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

/* The version in r (a string of TXLIST_VERSION_LEN hex digits) into out; false for anything else
 * (nil: the user has no version yet). */
static void random_version(char out[TXLIST_VERSION_LEN + 1]);

static bool version_of(const redisReply *r, char out[TXLIST_VERSION_LEN + 1]) {
    if (r->type != REDIS_REPLY_STRING || r->len != TXLIST_VERSION_LEN) return false;
    memcpy(out, r->str, TXLIST_VERSION_LEN);
    out[TXLIST_VERSION_LEN] = '\0';
    return true;
}

/* The local layer's key (the version key: its pushes drop the entry) and value ("{limit}\n{page}"). */
static void local_key(char out[64], const char *owner) { snprintf(out, 64, VERSION_KEY "%s", owner); }

static bool local_get(struct tx_ctx *cx, const char *owner, int limit, char **page) {
    if (!cx->list_l1) return false;
    char key[64];
    local_key(key, owner);
    char *v = svc_tcache_get(cx->list_l1, key);
    if (!v) return false;
    char *nl = strchr(v, '\n');
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    if (!nl || (size_t)(nl - v) != strlen(lim) || memcmp(v, lim, strlen(lim))) {
        free(v);
        return false;
    }
    memmove(v, nl + 1, strlen(nl + 1) + 1);
    *page = v;
    return true;
}

static void local_put(struct tx_ctx *cx, const char *owner, int limit, const char *page, unsigned long epoch) {
    if (!cx->list_l1) return;
    size_t n = strlen(page);
    if (n > TXLIST_PAGE_MAX) return;
    char key[64];
    local_key(key, owner);
    char *v = malloc(n + 16);
    if (!v) return;
    snprintf(v, n + 16, "%d\n%s", limit, page);
    svc_tcache_put(cx->list_l1, key, v, epoch);
    free(v);
}

bool txlist_cache_get(struct tx_ctx *cx, const char *owner, int limit, char **page,
                      char version[TXLIST_VERSION_LEN + 1], unsigned long *epoch) {
    *page = NULL;
    version[0] = '\0';
    *epoch = svc_tcache_epoch(cx->list_l1);
    if (cx->list_cache_ttl_s <= 0) return false;
    if (local_get(cx, owner, limit, page)) {
        count(cx->list_cache_hit);
        return true;
    }
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "MGET " VERSION_KEY "%s " PAGE_KEY "%s:%d", owner, owner,
                                      limit);
    if (!r) {
        count(cx->list_cache_miss);
        return false;
    }
    bool hit = false, unversioned = r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                                   r->element[0]->type == REDIS_REPLY_NIL;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && version_of(r->element[0], version)) {
        const redisReply *p = r->element[1];
        size_t vlen = strlen(version);
        if (p->type == REDIS_REPLY_STRING && p->len > vlen + 1 && !memcmp(p->str, version, vlen) &&
            p->str[vlen] == '\n') {
            size_t n = p->len - vlen - 1;
            if ((*page = malloc(n + 1))) {
                memcpy(*page, p->str + vlen + 1, n);
                (*page)[n] = '\0';
                hit = true;
            }
        }
    } else {
        version[0] = '\0';
    }
    freeReplyObject(r);
    if (unversioned) {
        /* The user's first version, made before the caller reads the page: postings bump only
         * existing versions (SET XX), so a posting committed before this SET is in that read,
         * and one committed after it replaces this version. NX: another reader's stands. */
        char mine[TXLIST_VERSION_LEN + 1];
        random_version(mine);
        redisReply *v = svc_redis_command(cx->app.redis, &st, "SET " VERSION_KEY "%s %s NX GET EX %d", owner, mine,
                                          VERSION_TTL_S);
        if (v && v->type == REDIS_REPLY_NIL && mine[0]) snprintf(version, TXLIST_VERSION_LEN + 1, "%s", mine);
        else if (!v || !version_of(v, version)) version[0] = '\0';
        if (v) freeReplyObject(v);
        /* the version's push (dropping every instance's "no version" mark) reaches every instance
         * before the page is read: a posting after that read is bumped (NO_VERSION below) */
        if (version[0] && cx->list_l1 && !svc_tcache_barrier(cx->app.redis)) version[0] = '\0';
    }
    if (hit) local_put(cx, owner, limit, *page, *epoch);
    count(hit ? cx->list_cache_hit : cx->list_cache_miss);
    return hit;
}

void txlist_cache_put(struct tx_ctx *cx, const char *owner, int limit, const char *version, const char *page,
                      unsigned long epoch) {
    if (cx->list_cache_ttl_s <= 0 || !version[0]) return;
    size_t n = strlen(page);
    if (n > TXLIST_PAGE_MAX) return;
    local_put(cx, owner, limit, page, epoch);
    svc_status st;
    redisReply *r = svc_redis_command(cx->app.redis, &st, "SET " PAGE_KEY "%s:%d %s\n%b EX %ld", owner, limit,
                                      version, page, n, cx->list_cache_ttl_s);
    if (r) freeReplyObject(r);
}

/* 16 random hex digits into out; "" when the system's random source failed. */
static void random_version(char out[TXLIST_VERSION_LEN + 1]) {
    unsigned char raw[TXLIST_VERSION_LEN / 2];
    out[0] = '\0';
    if (svc_random_bytes(raw, sizeof raw) != 0) return;
    for (size_t k = 0; k < sizeof raw; k++) snprintf(out + 2 * k, 3, "%02x", raw[k]);
}

/* The local layer's mark of a user without a version ("no list of theirs is cached anywhere"),
 * learnt from a SET XX that found none. Kept like any entry: a reader making the version anywhere
 * changes txver:{user}, whose push drops the mark, and that reader waits for the push to reach
 * every instance (the barrier) before it reads the page. So a posting that finds the mark (with
 * every push that reached the process applied) has nothing to invalidate and skips the round
 * trip. */
#define NO_VERSION "-"

static bool marked_unversioned(struct tx_ctx *cx, const char *user) {
    if (!cx->list_l1) return false;
    char key[64];
    local_key(key, user);
    char *v = svc_tcache_get(cx->list_l1, key);
    bool marked = v && !strcmp(v, NO_VERSION);
    free(v);
    return marked;
}

/* New versions for users[0..n-1] (NULLs skipped): one pipelined round trip, then the barrier.
 * Users found without a version are marked so locally. false when Redis did not take them all. */
static bool bump_now(struct tx_ctx *cx, const char *const *users, int n) {
    svc_status st;
    redisContext *c = NULL;
    int sent = 0;
    bool ok = true;
    const char *asked[SVC_COMBINER_BATCH_CAP * 2];
    for (int i = 0; i < n; i++) {
        if (!users[i]) continue;
        char key[64];
        local_key(key, users[i]);
        svc_tcache_drop(cx->list_l1, key);
    }
    /* after the drops: a push arriving from here on voids the marks put below */
    unsigned long epoch = svc_tcache_epoch(cx->list_l1);
    for (int i = 0; i < n && ok && sent < (int)(sizeof asked / sizeof asked[0]); i++) {
        if (!users[i]) continue;
        char hex[TXLIST_VERSION_LEN + 1];
        random_version(hex);
        if (!hex[0]) {
            ok = false;
            break;
        }
        if (!c && !(c = svc_redis_acquire(cx->app.redis, -1, &st))) {
            ok = false;
            break;
        }
        /* XX: a user whose page nobody has read has no version, and nothing to invalidate */
        ok = redisAppendCommand(c, "SET " VERSION_KEY "%s %s XX EX %d", users[i], hex, VERSION_TTL_S) == REDIS_OK;
        if (ok) asked[sent++] = users[i];
    }
    int changed = 0;
    for (int i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r) {
            ok = false;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) ok = false;
        changed += r->type == REDIS_REPLY_STATUS;
        if (r->type == REDIS_REPLY_NIL && cx->list_l1) {
            char key[64];
            local_key(key, asked[i]);
            svc_tcache_put(cx->list_l1, key, NO_VERSION, epoch);
        }
        freeReplyObject(r);
    }
    if (c) svc_redis_release(cx->app.redis, c);
    /* every instance's local layer holds the pushes before the posting is answered (svc/tcache.h);
     * a SET XX that found no version changed nothing and pushed nothing */
    if (ok && changed && cx->list_l1) ok = svc_tcache_barrier(cx->app.redis);
    return ok;
}

struct bump { const char *const *users; int n; bool ok; };

void txlist_cache_run_bumps(void *ctx, struct svc_combiner_item **items, int n) {
    struct tx_ctx *cx = ctx;
    const char *users[SVC_COMBINER_BATCH_CAP * 2] = {0};
    int m = 0;
    for (int i = 0; i < n; i++) {
        struct bump *b = items[i]->data;
        for (int k = 0; k < b->n && m < (int)(sizeof users / sizeof users[0]); k++) users[m++] = b->users[k];
    }
    bool ok = bump_now(cx, users, m);
    for (int i = 0; i < n; i++) ((struct bump *)items[i]->data)->ok = ok;
}

void txlist_cache_bump(struct tx_ctx *cx, const char *cid, const char *const *users, int n) {
    if (cx->list_cache_ttl_s <= 0) return;
    /* users marked unversioned in process need no bump (NO_VERSION) */
    const char *versioned[2];
    int m = 0;
    if (n <= 2) {
        for (int i = 0; i < n; i++)
            if (users[i] && !marked_unversioned(cx, users[i])) versioned[m++] = users[i];
        if (!m) return;
        users = versioned;
        n = m;
    }
    bool ok;
    if (cx->list_bumper && n <= 2) {
        struct bump b = {users, n, false};
        struct svc_combiner_item it = {.data = &b, .group = NULL};
        svc_combiner_submit(cx->list_bumper, &it);
        ok = b.ok;
    } else {
        ok = bump_now(cx, users, n);
    }
    if (!ok) {
        count(cx->list_cache_bump_failures);
        svc_log(&cx->app.log, SVC_LOG_WARN, cid,
                "redis unavailable: a transactions list page may be stale until TX_LIST_CACHE_TTL_S", NULL);
    }
}
