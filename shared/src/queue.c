/* Job queue: the queue handle, its Lua scripts, producing, stats and dead-letter administration
 * (see svc/queue.h for the contract; queue_worker.c runs the consumers).
 *
 * Every state change of a job is one Lua script, so it is atomic on the server whatever happens to
 * the client between two commands: enqueue (idempotency marker + XADD or ZADD), finish (ownership
 * check + XACK + XDEL + counter + reschedule or dead-letter), promote (ZRANGEBYSCORE + XADD +
 * ZREM), reclaim (XAUTOCLAIM + re-add or dead-letter + XACK + XDEL), heartbeat (ownership check +
 * XCLAIM JUSTID), forget (delete consumers without pending entries). A client that loses the
 * reply of a script may run it again: each script checks the state it changes.
 *
 * A job travels with all its data: stream entries and dead entries carry the fields
 *   j (job id)  a (attempts made before this delivery)  m (max attempts)  t (enqueue ms)
 *   p (payload) e (last error, optional)  u (unique key, optional)  f (dead only: when it failed, ms)
 *   tp (optional: the W3C traceparent of a child span of whoever enqueued it, svc/trace.h;
 *       the worker continues that trace, so a job's log lines carry its request's trace id)
 * and a delayed job is one sorted-set member, cmsgpack.pack{j, a, m, t, e, p, tp, u}. Completions and
 * dead letters are also counted per minute in q:{name}:stats:m:<unix minute> (fields c, f; kept
 * two hours), in the same script: the dashboard's chart (queue_admin.c reads them). So a delivery is
 * one XREADGROUP (no second read of a job hash) and nothing is left behind once a job is done.
 * Scripts are sent with EVALSHA (SHA1 computed here) and re-sent with EVAL after a NOSCRIPT. */
#include "queue_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "svc/cid.h"
#include "svc/trace.h"

/* ---- scripts ---- */

#define LUA_PRELUDE                                                                               \
    "local function now_ms() local t = redis.call('TIME') "                                       \
    "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end\n"                      \
    "local function ms(x) return string.format('%d', x) end\n"                                    \
    "local function fields(arr) local f = {} for i = 1, #arr, 2 do f[arr[i]] = arr[i + 1] end "   \
    "return f end\n"                                                                              \
    "local function job_fields(j, a, m, t, e, p, tp, u) local x = {'j', j, 'a', a, 'm', m, 't', t, " \
    "'p', p} if e and e ~= '' then x[#x + 1] = 'e' x[#x + 1] = e end "                           \
    "if tp and tp ~= '' then x[#x + 1] = 'tp' x[#x + 1] = tp end "                                \
    "if u and u ~= '' then x[#x + 1] = 'u' x[#x + 1] = u end return x end\n"                       \
    "local function unique_done(prefix, u, j) if u and u ~= '' then local k = prefix .. u "       \
    "if redis.call('GET', k) == j then redis.call('DEL', k) end end end\n"                        \
    "local function tick(stats, field, now) local k = stats .. ':m:' .. string.format('%d', "     \
    "math.floor(now / 60000)) redis.call('HINCRBY', k, field, 1) "                                \
    "redis.call('PEXPIRE', k, " QUEUE_MINUTE_TTL_MS ") end\n"

/* KEYS: stream, delayed[, marker[, unique marker]]
 * ARGV: id, max, payload, delay_ms, dedupe_ttl_ms, traceparent[, unique key, unique ttl_ms]
 * → 1 created, 0 duplicate id, or the id of the live job holding the unique key */
static const char LUA_ENQUEUE[] = LUA_PRELUDE
    "if KEYS[4] then local cur = redis.call('GET', KEYS[4]) if cur then return cur end end\n"
    "if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[5]) then return 0 end\n"
    "if KEYS[4] then redis.call('SET', KEYS[4], ARGV[1], 'PX', ARGV[8]) end\n"
    "local u = ARGV[7] or ''\n"
    "local now = now_ms()\n"
    "local delay = tonumber(ARGV[4])\n"
    "if delay > 0 then\n"
    "  redis.call('ZADD', KEYS[2], ms(now + delay), cmsgpack.pack({ARGV[1], '0', ARGV[2], ms(now), '', ARGV[3], ARGV[6], u}))\n"
    "else\n"
    "  redis.call('XADD', KEYS[1], '*', unpack(job_fields(ARGV[1], '0', ARGV[2], ms(now), nil, ARGV[3], ARGV[6], u)))\n"
    "end\n"
    "return 1\n";

/* KEYS: stream, delayed  ARGV: limit  → number moved */
static const char LUA_PROMOTE[] = LUA_PRELUDE
    "local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ms(now_ms()), 'LIMIT', 0, tonumber(ARGV[1]))\n"
    "for _, m in ipairs(due) do\n"
    "  local ok, x = pcall(cmsgpack.unpack, m)\n"
    "  if ok and type(x) == 'table' and x[1] then\n"
    "    redis.call('XADD', KEYS[1], '*', unpack(job_fields(x[1], x[2], x[3], x[4], x[5], x[6] or '', x[7], x[8])))\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[2], m)\n"
    "end\n"
    "return #due\n";

/* KEYS: stream, delayed, dead, stats
 * ARGV: group, consumer, entry id, outcome (ok|retry|defer|fail), delay_ms, error, dead_max_len,
 *       unique prefix, unique ttl_ms
 * → 'ok' | 'retry' | 'deferred' | 'dead' | 'lost' (the entry is no longer this consumer's: do nothing)
 * A deferred job goes back to the delayed set with the same attempt count and last error. */
static const char LUA_FINISH[] = LUA_PRELUDE
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
    "if #p == 0 or p[1][2] ~= ARGV[2] then return 'lost' end\n"
    "local e = redis.call('XRANGE', KEYS[1], ARGV[3], ARGV[3])\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])\n"
    "redis.call('XDEL', KEYS[1], ARGV[3])\n"
    "local f = #e > 0 and fields(e[1][2]) or {}\n"
    "if ARGV[4] == 'ok' then\n"
    "  unique_done(ARGV[8], f.u, f.j)\n"
    "  redis.call('HINCRBY', KEYS[4], 'completed', 1) tick(KEYS[4], 'c', now_ms()) return 'ok'\n"
    "end\n"
    "if #e == 0 then return 'lost' end\n"
    "local now = now_ms()\n"
    "local m = tonumber(f.m) or 1\n"
    "if ARGV[4] == 'defer' then\n"
    "  redis.call('ZADD', KEYS[2], ms(now + tonumber(ARGV[5])),\n"
    "             cmsgpack.pack({f.j or '', f.a or '0', ms(m), f.t or '0', f.e or '', f.p or '', f.tp or '', f.u or ''}))\n"
    "  if f.u and f.u ~= '' then redis.call('PEXPIRE', ARGV[8] .. f.u, ARGV[9]) end\n"
    "  redis.call('HINCRBY', KEYS[4], 'deferred', 1)\n"
    "  return 'deferred'\n"
    "end\n"
    "local a = (tonumber(f.a) or 0) + 1\n"
    "if ARGV[4] == 'retry' and a < m then\n"
    "  redis.call('ZADD', KEYS[2], ms(now + tonumber(ARGV[5])),\n"
    "             cmsgpack.pack({f.j or '', ms(a), ms(m), f.t or '0', ARGV[6], f.p or '', f.tp or '', f.u or ''}))\n"
    "  if f.u and f.u ~= '' then redis.call('PEXPIRE', ARGV[8] .. f.u, ARGV[9]) end\n"
    "  redis.call('HINCRBY', KEYS[4], 'retried', 1)\n"
    "  return 'retry'\n"
    "end\n"
    "unique_done(ARGV[8], f.u, f.j)\n"
    "redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'j', f.j or '', 'a', ms(a), 'm', ms(m),\n"
    "           't', f.t or '0', 'f', ms(now), 'e', ARGV[6], 'p', f.p or '', 'tp', f.tp or '')\n"
    "redis.call('HINCRBY', KEYS[4], 'failed', 1)\n"
    "tick(KEYS[4], 'f', now)\n"
    "return 'dead'\n";

/* KEYS: stream, dead, stats
 * ARGV: group, reaper consumer, min idle ms, count, cursor, dead_max_len, error, unique prefix
 * → {reclaimed, dead-lettered, next cursor} */
static const char LUA_RECLAIM[] = LUA_PRELUDE
    "local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[5], 'COUNT', tonumber(ARGV[4]))\n"
    "local requeued, dead = 0, 0\n"
    "local now = now_ms()\n"
    "for _, ent in ipairs(r[2]) do\n"
    "  if type(ent) == 'table' and type(ent[2]) == 'table' then\n"
    "    local f = fields(ent[2])\n"
    "    local a = (tonumber(f.a) or 0) + 1\n"
    "    local m = tonumber(f.m) or 1\n"
    "    if a < m then\n"
    "      redis.call('XADD', KEYS[1], '*', unpack(job_fields(f.j or '', ms(a), ms(m), f.t or '0', ARGV[7], f.p or '', f.tp, f.u)))\n"
    "      redis.call('HINCRBY', KEYS[3], 'reclaimed', 1)\n"
    "      requeued = requeued + 1\n"
    "    else\n"
    "      unique_done(ARGV[8], f.u, f.j)\n"
    "      redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*', 'j', f.j or '', 'a', ms(a), 'm', ms(m),\n"
    "                 't', f.t or '0', 'f', ms(now), 'e', ARGV[7], 'p', f.p or '', 'tp', f.tp or '')\n"
    "      redis.call('HINCRBY', KEYS[3], 'failed', 1)\n"
    "      tick(KEYS[3], 'f', now)\n"
    "      dead = dead + 1\n"
    "    end\n"
    "    redis.call('XACK', KEYS[1], ARGV[1], ent[1])\n"
    "    redis.call('XDEL', KEYS[1], ent[1])\n"
    "  end\n"
    "end\n"
    "return {requeued, dead, r[1]}\n";

/* KEYS: stream  ARGV: group, consumer, entry ids...  → ids no longer owned by consumer */
static const char LUA_HEARTBEAT[] = LUA_PRELUDE
    "local lost = {}\n"
    "for i = 3, #ARGV do\n"
    "  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)\n"
    "  if #p == 1 and p[1][2] == ARGV[2] then\n"
    "    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')\n"
    "  else\n"
    "    lost[#lost + 1] = ARGV[i]\n"
    "  end\n"
    "end\n"
    "return lost\n";

/* KEYS: stream, delayed, dead, stats  ARGV: group
 * → {waiting, active, delayed, dead, completed, failed, retried, reclaimed, deferred} */
static const char LUA_STATS[] =
    "local len = redis.call('XLEN', KEYS[1])\n"
    "local active = 0\n"
    "if len > 0 then\n"
    "  local p = redis.pcall('XPENDING', KEYS[1], ARGV[1])\n"
    "  if type(p) == 'table' and p.err == nil then active = p[1] end\n"
    "end\n"
    "local c = redis.call('HMGET', KEYS[4], 'completed', 'failed', 'retried', 'reclaimed', 'deferred')\n"
    "return {len - active, active, redis.call('ZCARD', KEYS[2]), redis.call('XLEN', KEYS[3]),\n"
    "        tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0,\n"
    "        tonumber(c[5]) or 0}\n";

/* KEYS: dead  ARGV: max age ms  → entries removed (dead longer than max age, by entry id time) */
static const char LUA_PRUNE_DEAD[] = LUA_PRELUDE
    "return redis.call('XTRIM', KEYS[1], 'MINID', ms(now_ms() - tonumber(ARGV[1])) .. '-0')\n";

/* KEYS: stream, dead  ARGV: dead entry id  → 1 moved, 0 not found */
static const char LUA_REQUEUE[] = LUA_PRELUDE
    "local e = redis.call('XRANGE', KEYS[2], ARGV[1], ARGV[1])\n"
    "if #e == 0 then return 0 end\n"
    "local f = fields(e[1][2])\n"
    "redis.call('XADD', KEYS[1], '*', unpack(job_fields(f.j or '', '0', f.m or '1', f.t or '0', f.e, f.p or '', f.tp)))\n"
    "redis.call('XDEL', KEYS[2], ARGV[1])\n"
    "return 1\n";

/* KEYS: stream, dead  ARGV: max  → number moved back to the stream (oldest dead first), each
 * with a fresh attempt budget, as LUA_REQUEUE does for one. */
static const char LUA_REQUEUE_ALL[] = LUA_PRELUDE
    "local e = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', tonumber(ARGV[1]))\n"
    "for _, ent in ipairs(e) do\n"
    "  local f = fields(ent[2])\n"
    "  redis.call('XADD', KEYS[1], '*', unpack(job_fields(f.j or '', '0', f.m or '1', f.t or '0', f.e, f.p or '', f.tp)))\n"
    "  redis.call('XDEL', KEYS[2], ent[1])\n"
    "end\n"
    "return #e\n";

/* KEYS: stream  ARGV: group, min idle ms, consumer names... (none: every consumer)
 * Deletes consumers holding no pending entry (idle >= min idle), atomically with the check so a
 * consumer that just took a job is never deleted with it. → number deleted */
static const char LUA_FORGET[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
    "local ok, list = pcall(redis.call, 'XINFO', 'CONSUMERS', KEYS[1], ARGV[1])\n"
    "if not ok then return 0 end\n"
    "local only = nil\n"
    "if #ARGV > 2 then only = {} for i = 3, #ARGV do only[ARGV[i]] = true end end\n"
    "local n = 0\n"
    "for _, c in ipairs(list) do\n"
    "  local f = {}\n"
    "  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end\n"
    "  if f.pending == 0 and f.idle >= tonumber(ARGV[2]) and (only == nil or only[f.name]) then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f.name)\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char *const queue_scripts[QS_COUNT] = {
    [QS_ENQUEUE] = LUA_ENQUEUE, [QS_PROMOTE] = LUA_PROMOTE,     [QS_FINISH] = LUA_FINISH,
    [QS_RECLAIM] = LUA_RECLAIM, [QS_HEARTBEAT] = LUA_HEARTBEAT, [QS_STATS] = LUA_STATS,
    [QS_REQUEUE] = LUA_REQUEUE, [QS_FORGET] = LUA_FORGET,       [QS_REQUEUE_ALL] = LUA_REQUEUE_ALL,
    [QS_PRUNE_DEAD] = LUA_PRUNE_DEAD,
};

static int queue_sha1_hex(const char *text, char out[41]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20) return -1;
    for (unsigned i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- helpers shared with queue_worker.c ---- */

int64_t svcq_mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

svc_status svcq_io_status(const redisContext *c, int saved_errno) {
    if (c && c->err == REDIS_ERR_IO &&
        (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK || saved_errno == ETIMEDOUT))
        return SVC_TIMEOUT;
    return SVC_UNAVAILABLE;
}

svc_status svcq_reply_error_status(const redisReply *r) {
    static const char *const transient[] = {"OOM", "LOADING", "BUSY", "READONLY", "MASTERDOWN",
                                            "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS"};
    if (!r || !r->str) return SVC_INTERNAL;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        size_t n = strlen(transient[i]);
        if (strncmp(r->str, transient[i], n) == 0 && (r->str[n] == ' ' || r->str[n] == '\0'))
            return SVC_UNAVAILABLE;
    }
    return SVC_INTERNAL;
}

const redisReply *svcq_field(const redisReply *arr, const char *name) {
    if (!arr || arr->type != REDIS_REPLY_ARRAY) return NULL;
    for (size_t i = 0; i + 1 < arr->elements; i += 2) {
        const redisReply *k = arr->element[i];
        if (k->type == REDIS_REPLY_STRING && k->str && strcmp(k->str, name) == 0)
            return arr->element[i + 1];
    }
    return NULL;
}

/* Fills argv for EVALSHA/EVAL script: [cmd, sha|body, numkeys, keys..., args...]. */
static redisReply *queue_eval_once(const struct svc_queue *q, redisContext *c,
                                   enum queue_script_id id, bool by_body, int nkeys,
                                   const char *const *keys, int nargs, const char *const *args,
                                   const size_t *arg_lens, int *saved_errno) {
    int argc = 3 + nkeys + nargs;
    const char **argv = malloc((size_t)argc * sizeof(*argv));
    size_t *lens = malloc((size_t)argc * sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        *saved_errno = ENOMEM;
        return NULL;
    }
    char nk[16];
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[0] = by_body ? "EVAL" : "EVALSHA";
    argv[1] = by_body ? queue_scripts[id] : q->sha[id];
    argv[2] = nk;
    for (int i = 0; i < nkeys; i++) argv[3 + i] = keys[i];
    for (int i = 0; i < nargs; i++) argv[3 + nkeys + i] = args[i];
    for (int i = 0; i < argc; i++) {
        int ai = i - 3 - nkeys;   /* index among args, negative for the command and keys */
        lens[i] = ai >= 0 && arg_lens ? arg_lens[ai] : strlen(argv[i]);
    }
    errno = 0;
    redisReply *r = redisCommandArgv(c, argc, argv, lens);
    *saved_errno = errno;
    free(argv);
    free(lens);
    return r;
}

static bool queue_is_noscript(const redisReply *r) {
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

redisReply *svcq_eval(const struct svc_queue *q, redisContext *c, enum queue_script_id id,
                       int nkeys, const char *const *keys, int nargs, const char *const *args,
                       const size_t *arg_lens, svc_status *st) {
    int saved_errno = 0;
    redisReply *r = queue_eval_once(q, c, id, false, nkeys, keys, nargs, args, arg_lens, &saved_errno);
    if (queue_is_noscript(r)) {
        freeReplyObject(r);
        r = queue_eval_once(q, c, id, true, nkeys, keys, nargs, args, arg_lens, &saved_errno);
    }
    if (!r) {
        *st = saved_errno == ENOMEM && !c->err ? SVC_INTERNAL : svcq_io_status(c, saved_errno);
        return NULL;
    }
    *st = SVC_OK;
    return r;
}

/* ---- handle ---- */

static bool queue_name_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > SVC_QUEUE_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-') return false;
    }
    return true;
}

struct svc_queue *svc_queue_new(struct svc_redis_pool *pool, const struct svc_queue_options *opt,
                                const struct svc_logger *log, svc_status *st) {
    svc_status dummy;
    if (!st) st = &dummy;
    *st = SVC_INVALID;
    if (!pool || !opt || !queue_name_ok(opt->name)) return NULL;
    if (opt->max_payload > SVC_QUEUE_HARD_MAX_PAYLOAD || opt->max_attempts < 0 ||
        opt->visibility_timeout_ms < 0 || opt->dedupe_ttl_ms < 0 || opt->dead_max_len < 0 ||
        opt->dead_max_age_ms < 0 || opt->unique_ttl_ms < 0)
        return NULL;
    struct svc_queue *q = calloc(1, sizeof(*q));
    if (!q) {
        *st = SVC_INTERNAL;
        return NULL;
    }
    snprintf(q->name, sizeof(q->name), "%s", opt->name);
    snprintf(q->k_stream, sizeof(q->k_stream), "q:{%s}:stream", q->name);
    snprintf(q->k_delayed, sizeof(q->k_delayed), "q:{%s}:delayed", q->name);
    snprintf(q->k_dead, sizeof(q->k_dead), "q:{%s}:dead", q->name);
    snprintf(q->k_stats, sizeof(q->k_stats), "q:{%s}:stats", q->name);
    snprintf(q->k_id_prefix, sizeof(q->k_id_prefix), "q:{%s}:id:", q->name);
    snprintf(q->k_unique_prefix, sizeof(q->k_unique_prefix), "q:{%s}:u:", q->name);
    q->max_payload = opt->max_payload ? opt->max_payload : SVC_QUEUE_DEFAULT_MAX_PAYLOAD;
    q->max_attempts = opt->max_attempts ? opt->max_attempts : 5;
    q->backoff = opt->backoff;
    if (q->backoff.base_ms == 0 && q->backoff.cap_ms == 0) {
        q->backoff.base_ms = 1000;
        q->backoff.cap_ms = 300000;
    }
    q->visibility_timeout_ms = opt->visibility_timeout_ms ? opt->visibility_timeout_ms : 30000;
    q->dedupe_ttl_ms = opt->dedupe_ttl_ms ? opt->dedupe_ttl_ms : 86400000;
    q->dead_max_len = opt->dead_max_len ? opt->dead_max_len : 100000;
    q->dead_max_age_ms = opt->dead_max_age_ms;
    q->unique_ttl_ms = opt->unique_ttl_ms ? opt->unique_ttl_ms : 172800000;
    q->pool = pool;
    q->log = log;
    for (int i = 0; i < QS_COUNT; i++) {
        if (queue_sha1_hex(queue_scripts[i], q->sha[i]) != 0) {
            free(q);
            *st = SVC_INTERNAL;
            return NULL;
        }
    }
    *st = SVC_OK;
    return q;
}

void svc_queue_free(struct svc_queue *q) {
    free(q);
}

const char *svc_queue_name(const struct svc_queue *q) {
    return q->name;
}

/* ---- producing ---- */

/* Checks a spec against the queue's limits; fills the effective max attempts. */
static svc_status queue_check_job(const struct svc_queue *q, size_t len, const void *payload,
                                  const struct svc_job_options *opt, int *max_attempts) {
    if (len > 0 && !payload) return SVC_INVALID;
    if (len > q->max_payload) return SVC_TOO_LARGE;
    if (opt && opt->id && !svc_cid_is_sane(opt->id)) return SVC_INVALID;
    if (opt && opt->unique_key && (!opt->id || !svc_cid_is_sane(opt->unique_key))) return SVC_INVALID;
    if (opt && (opt->max_attempts < 0 || opt->delay_ms < 0)) return SVC_INVALID;
    *max_attempts = opt && opt->max_attempts ? opt->max_attempts : q->max_attempts;
    return SVC_OK;
}

/* Arguments of one enqueue script call; the strings live in this struct. */
struct queue_enqueue_call {
    char id[SVC_QUEUE_JOB_ID_MAX + 1];
    char marker[QUEUE_KEY_MAX + SVC_QUEUE_JOB_ID_MAX];
    char unique[QUEUE_KEY_MAX + SVC_QUEUE_JOB_ID_MAX];
    char max[16], delay[24], ttl[24], unique_ttl[24];
    char tp[SVC_TRACEPARENT_LEN + 1];   /* a child span of the enqueuer's (svc/trace.h), or "" */
    const char *keys[4];
    const char *args[8];
    size_t lens[8];
    int nkeys, nargs;
};

static void queue_enqueue_prepare(const struct svc_queue *q, struct queue_enqueue_call *k,
                                  const void *payload, size_t len, const struct svc_job_options *opt,
                                  int max_attempts) {
    bool given = opt && opt->id;
    if (given)
        snprintf(k->id, sizeof(k->id), "%s", opt->id);
    else
        svc_uuid4(k->id);
    snprintf(k->marker, sizeof(k->marker), "%s%s", q->k_id_prefix, k->id);
    snprintf(k->max, sizeof(k->max), "%d", max_attempts);
    snprintf(k->delay, sizeof(k->delay), "%lld", (long long)(opt ? opt->delay_ms : 0));
    snprintf(k->ttl, sizeof(k->ttl), "%lld", (long long)q->dedupe_ttl_ms);
    k->keys[0] = q->k_stream;
    k->keys[1] = q->k_delayed;
    k->keys[2] = k->marker;
    k->nkeys = given ? 3 : 2;
    k->args[0] = k->id;
    k->args[1] = k->max;
    k->args[2] = len ? payload : "";
    k->args[3] = k->delay;
    k->args[4] = k->ttl;
    k->tp[0] = '\0';
    const struct svc_trace *cur = svc_trace_current();
    if (cur) {
        struct svc_trace child;
        svc_trace_child(cur, &child);
        svc_traceparent_format(&child, k->tp);
    }
    k->args[5] = k->tp;
    k->nargs = 6;
    if (given && opt->unique_key) {
        snprintf(k->unique, sizeof(k->unique), "%s%s", q->k_unique_prefix, opt->unique_key);
        snprintf(k->unique_ttl, sizeof(k->unique_ttl), "%lld", (long long)q->unique_ttl_ms);
        k->keys[3] = k->unique;
        k->nkeys = 4;
        k->args[6] = opt->unique_key;
        k->args[7] = k->unique_ttl;
        k->nargs = 8;
    }
    for (int i = 0; i < k->nargs; i++) k->lens[i] = i == 2 ? len : strlen(k->args[i]);
}

/* Interprets an enqueue reply (integer 1 created, 0 duplicate, or the id of the live job holding
 * the unique key, copied into held_by when given). */
static svc_status queue_enqueue_result(const struct svc_queue *q, const redisReply *r, bool *created,
                                       bool *unique_held, char *held_by) {
    if (unique_held) *unique_held = false;
    if (r->type == REDIS_REPLY_INTEGER && (r->integer == 0 || r->integer == 1)) {
        *created = r->integer == 1;
        return SVC_OK;
    }
    if (r->type == REDIS_REPLY_STRING && r->str) {
        *created = false;
        if (unique_held) *unique_held = true;
        if (held_by) snprintf(held_by, SVC_QUEUE_JOB_ID_MAX + 1, "%s", r->str);
        return SVC_OK;
    }
    if (q->log)
        svc_logf(q->log, SVC_LOG_ERROR, NULL, "queue enqueue failed", "{s:s,s:s}", "queue", q->name,
                 "error", r->type == REDIS_REPLY_ERROR && r->str ? r->str : "unexpected reply");
    return r->type == REDIS_REPLY_ERROR ? svcq_reply_error_status(r) : SVC_INTERNAL;
}

svc_status svc_queue_enqueue(struct svc_queue *q, const void *payload, size_t len,
                             const struct svc_job_options *opt, char *id_out, bool *created) {
    int max_attempts;
    svc_status st = queue_check_job(q, len, payload, opt, &max_attempts);
    if (st != SVC_OK) return st;
    struct queue_enqueue_call *k = malloc(sizeof(*k));
    if (!k) return SVC_INTERNAL;
    queue_enqueue_prepare(q, k, payload, len, opt, max_attempts);

    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) {
        free(k);
        return st;
    }
    redisReply *r = svcq_eval(q, c, QS_ENQUEUE, k->nkeys, k->keys, k->nargs, k->args, k->lens, &st);
    svc_redis_release(q->pool, c);
    bool made = false, held = false;
    char held_by[SVC_QUEUE_JOB_ID_MAX + 1] = "";
    if (r) {
        st = queue_enqueue_result(q, r, &made, &held, held_by);
        freeReplyObject(r);
    }
    if (st == SVC_OK) {
        if (id_out) snprintf(id_out, SVC_QUEUE_JOB_ID_MAX + 1, "%s", held ? held_by : k->id);
        if (created) *created = made;
    }
    free(k);
    return st;
}

/* Appends an EVALSHA for one prepared enqueue to c's output buffer. */
static int queue_append_enqueue(const struct svc_queue *q, redisContext *c,
                                const struct queue_enqueue_call *k) {
    const char *argv[3 + 4 + 8];
    size_t lens[3 + 4 + 8];
    char nk[4];
    snprintf(nk, sizeof(nk), "%d", k->nkeys);
    int argc = 0;
    argv[argc] = "EVALSHA";
    lens[argc++] = 7;
    argv[argc] = q->sha[QS_ENQUEUE];
    lens[argc++] = 40;
    argv[argc] = nk;
    lens[argc++] = strlen(nk);
    for (int i = 0; i < k->nkeys; i++) {
        argv[argc] = k->keys[i];
        lens[argc++] = strlen(k->keys[i]);
    }
    for (int i = 0; i < k->nargs; i++) {
        argv[argc] = k->args[i];
        lens[argc++] = k->lens[i];
    }
    return redisAppendCommandArgv(c, argc, argv, lens);
}

svc_status svc_queue_enqueue_many(struct svc_queue *q, struct svc_job_spec *jobs, size_t n) {
    if (n == 0) return SVC_OK;
    if (!jobs) return SVC_INVALID;
    struct queue_enqueue_call *calls = malloc(n * sizeof(*calls));
    if (!calls) return SVC_INTERNAL;
    svc_status st = SVC_OK;
    for (size_t i = 0; i < n && st == SVC_OK; i++) {
        int max_attempts;
        st = queue_check_job(q, jobs[i].len, jobs[i].payload, &jobs[i].opt, &max_attempts);
        if (st == SVC_OK) queue_enqueue_prepare(q, &calls[i], jobs[i].payload, jobs[i].len, &jobs[i].opt, max_attempts);
    }
    if (st != SVC_OK) {
        free(calls);
        return st;
    }
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) {
        free(calls);
        return st;
    }
    size_t appended = 0;
    for (; appended < n; appended++)
        if (queue_append_enqueue(q, c, &calls[appended]) != REDIS_OK) break;
    if (appended < n) st = SVC_INTERNAL;
    /* Read every reply that was sent, even after a failure, so the context stays in step; jobs
     * answered NOSCRIPT (script cache flushed) are sent again with EVAL once all are read. */
    bool *again = calloc(appended ? appended : 1, sizeof(*again));
    if (!again) st = SVC_INTERNAL;
    size_t got = 0;
    for (; again && got < appended; got++) {
        void *rv = NULL;
        errno = 0;
        if (redisGetReply(c, &rv) != REDIS_OK || !rv) {
            if (st == SVC_OK) st = svcq_io_status(c, errno);
            break;
        }
        redisReply *r = rv;
        if (queue_is_noscript(r)) {
            again[got] = true;
        } else {
            svc_status one = queue_enqueue_result(q, r, &jobs[got].created, &jobs[got].unique_held, NULL);
            if (one != SVC_OK && st == SVC_OK) st = one;
        }
        freeReplyObject(r);
    }
    if (!again || got < appended) {
        /* Replies still in flight: the context cannot be reused. */
        if (!c->err) c->err = REDIS_ERR_OTHER;
    } else {
        for (size_t i = 0; i < appended && !c->err; i++) {
            if (!again[i]) continue;
            svc_status est;
            redisReply *r = svcq_eval(q, c, QS_ENQUEUE, calls[i].nkeys, calls[i].keys, calls[i].nargs,
                                       calls[i].args, calls[i].lens, &est);
            if (!r) {
                if (st == SVC_OK) st = est;
                break;
            }
            svc_status one = queue_enqueue_result(q, r, &jobs[i].created, &jobs[i].unique_held, NULL);
            if (one != SVC_OK && st == SVC_OK) st = one;
            freeReplyObject(r);
        }
    }
    free(again);
    svc_redis_release(q->pool, c);
    free(calls);
    return st;
}

/* ---- observing ---- */

/* Runs a script on a pooled context; NULL with *st set on failure (error replies included). */
static redisReply *queue_pool_eval(struct svc_queue *q, enum queue_script_id id, int nkeys,
                                   const char *const *keys, int nargs, const char *const *args,
                                   svc_status *st) {
    redisContext *c = svc_redis_acquire(q->pool, -1, st);
    if (!c) return NULL;
    redisReply *r = svcq_eval(q, c, id, nkeys, keys, nargs, args, NULL, st);
    svc_redis_release(q->pool, c);
    if (r && r->type == REDIS_REPLY_ERROR) {
        if (q->log)
            svc_logf(q->log, SVC_LOG_ERROR, NULL, "queue script failed", "{s:s,s:i,s:s}", "queue",
                     q->name, "script", (int)id, "error", r->str ? r->str : "");
        *st = svcq_reply_error_status(r);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

svc_status svc_queue_stats(struct svc_queue *q, struct svc_queue_stats *out) {
    const char *keys[] = {q->k_stream, q->k_delayed, q->k_dead, q->k_stats};
    const char *args[] = {QUEUE_GROUP};
    svc_status st;
    redisReply *r = queue_pool_eval(q, QS_STATS, 4, keys, 1, args, &st);
    if (!r) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 9) {
        freeReplyObject(r);
        return SVC_INTERNAL;
    }
    long long v[9];
    for (size_t i = 0; i < 9; i++) {
        if (r->element[i]->type != REDIS_REPLY_INTEGER) {
            freeReplyObject(r);
            return SVC_INTERNAL;
        }
        v[i] = r->element[i]->integer;
    }
    freeReplyObject(r);
    *out = (struct svc_queue_stats){.waiting = v[0], .active = v[1], .delayed = v[2], .dead = v[3],
                                    .completed = v[4], .failed = v[5], .retried = v[6], .reclaimed = v[7],
                                    .deferred = v[8]};
    return SVC_OK;
}

svc_status svc_queue_unique_get(struct svc_queue *q, const char *unique_key, char *id_out) {
    if (!unique_key || !svc_cid_is_sane(unique_key)) return SVC_INVALID;
    svc_status st;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return st;
    errno = 0;
    redisReply *r = redisCommand(c, "GET %s%s", q->k_unique_prefix, unique_key);
    if (!r) st = svcq_io_status(c, errno);
    svc_redis_release(q->pool, c);
    if (!r) return st;
    if (r->type == REDIS_REPLY_STRING && r->str) {
        snprintf(id_out, SVC_QUEUE_JOB_ID_MAX + 1, "%s", r->str);
        st = SVC_OK;
    } else {
        st = r->type == REDIS_REPLY_NIL ? SVC_NOT_FOUND : SVC_INTERNAL;
    }
    freeReplyObject(r);
    return st;
}

svc_status svc_queue_prune_dead(struct svc_queue *q, long long *removed) {
    if (removed) *removed = 0;
    if (q->dead_max_age_ms <= 0) return SVC_OK;
    char age[24];
    snprintf(age, sizeof(age), "%lld", (long long)q->dead_max_age_ms);
    const char *keys[] = {q->k_dead};
    const char *args[] = {age};
    svc_status st;
    redisReply *r = queue_pool_eval(q, QS_PRUNE_DEAD, 1, keys, 1, args, &st);
    if (!r) return st;
    if (removed && r->type == REDIS_REPLY_INTEGER) *removed = r->integer;
    freeReplyObject(r);
    return SVC_OK;
}

svc_status svc_queue_promote_due(struct svc_queue *q, int limit, int *moved) {
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 1000);
    const char *keys[] = {q->k_stream, q->k_delayed};
    const char *args[] = {lim};
    svc_status st;
    redisReply *r = queue_pool_eval(q, QS_PROMOTE, 2, keys, 1, args, &st);
    if (!r) return st;
    st = r->type == REDIS_REPLY_INTEGER ? SVC_OK : SVC_INTERNAL;
    if (st == SVC_OK && moved) *moved = (int)r->integer;
    freeReplyObject(r);
    return st;
}

/* ---- dead letters ---- */

/* Digits [s, end) as a number Redis accepts in a stream id: at most 2^64 - 1. */
static bool queue_u64_ok(const char *s, const char *end) {
    if (s == end) return false;
    unsigned long long v = 0;
    for (; s < end; s++) {
        if (!isdigit((unsigned char)*s)) return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (ULLONG_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    return true;
}

/* A stream entry id "<ms>-<seq>" as Redis reads it: both parts 64-bit (a larger number made
 * Redis refuse the command, answered as a 500). */
static bool queue_entry_id_ok(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= sizeof(((struct svc_dead_job *)0)->entry_id)) return false;
    const char *dash = strchr(s, '-');
    return dash && queue_u64_ok(s, dash) && queue_u64_ok(dash + 1, s + n);
}

void svcq_copy_field(char *dst, size_t cap, const redisReply *v) {
    if (v && v->type == REDIS_REPLY_STRING && v->str) {
        size_t n = v->len < cap - 1 ? v->len : cap - 1;
        memcpy(dst, v->str, n);
        dst[n] = '\0';
    } else {
        dst[0] = '\0';
    }
}

long long svcq_int_field(const redisReply *v) {
    return v && v->type == REDIS_REPLY_STRING && v->str ? strtoll(v->str, NULL, 10) : 0;
}

svc_status svc_queue_dead_list(struct svc_queue *q, const char *after, int count,
                               struct svc_dead_job **out, size_t *n) {
    if (count <= 0 || count > 10000) return SVC_INVALID;
    if (after && *after && !queue_entry_id_ok(after)) return SVC_INVALID;
    char start[64];
    if (after && *after)
        snprintf(start, sizeof(start), "(%s", after);
    else
        snprintf(start, sizeof(start), "-");
    svc_status st;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return st;
    errno = 0;
    redisReply *r = redisCommand(c, "XRANGE %s %s + COUNT %d", q->k_dead, start, count);
    if (!r) st = svcq_io_status(c, errno);
    svc_redis_release(q->pool, c);
    if (!r) return st;
    if (r->type != REDIS_REPLY_ARRAY) {
        st = r->type == REDIS_REPLY_ERROR ? svcq_reply_error_status(r) : SVC_INTERNAL;
        freeReplyObject(r);
        return st;
    }
    struct svc_dead_job *list = calloc(r->elements ? r->elements : 1, sizeof(*list));
    if (!list) {
        freeReplyObject(r);
        return SVC_INTERNAL;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) continue;
        struct svc_dead_job *d = &list[i];
        svcq_copy_field(d->entry_id, sizeof(d->entry_id), e->element[0]);
        const redisReply *f = e->element[1];
        svcq_copy_field(d->id, sizeof(d->id), svcq_field(f, "j"));
        svcq_copy_field(d->error, sizeof(d->error), svcq_field(f, "e"));
        d->attempts = (int)svcq_int_field(svcq_field(f, "a"));
        d->failed_ms = svcq_int_field(svcq_field(f, "f"));
        const redisReply *p = svcq_field(f, "p");
        d->payload_len = p && p->type == REDIS_REPLY_STRING ? p->len : 0;
    }
    *n = r->elements;
    *out = list;
    freeReplyObject(r);
    return SVC_OK;
}

void svc_queue_dead_list_free(struct svc_dead_job *list) {
    free(list);
}

svc_status svc_queue_dead_requeue(struct svc_queue *q, const char *entry_id) {
    if (!queue_entry_id_ok(entry_id)) return SVC_INVALID;
    const char *keys[] = {q->k_stream, q->k_dead};
    const char *args[] = {entry_id};
    svc_status st;
    redisReply *r = queue_pool_eval(q, QS_REQUEUE, 2, keys, 1, args, &st);
    if (!r) return st;
    st = r->type != REDIS_REPLY_INTEGER ? SVC_INTERNAL : r->integer == 1 ? SVC_OK : SVC_NOT_FOUND;
    freeReplyObject(r);
    return st;
}

svc_status svc_queue_dead_requeue_all(struct svc_queue *q, int max, int *moved) {
    if (max <= 0 || max > 10000) return SVC_INVALID;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", max);
    const char *keys[] = {q->k_stream, q->k_dead};
    const char *args[] = {lim};
    svc_status st;
    redisReply *r = queue_pool_eval(q, QS_REQUEUE_ALL, 2, keys, 1, args, &st);
    if (!r) return st;
    st = r->type == REDIS_REPLY_INTEGER ? SVC_OK : SVC_INTERNAL;
    if (st == SVC_OK && moved) *moved = (int)r->integer;
    freeReplyObject(r);
    return st;
}

svc_status svc_queue_dead_remove(struct svc_queue *q, const char *entry_id) {
    if (!queue_entry_id_ok(entry_id)) return SVC_INVALID;
    svc_status st;
    redisContext *c = svc_redis_acquire(q->pool, -1, &st);
    if (!c) return st;
    errno = 0;
    redisReply *r = redisCommand(c, "XDEL %s %s", q->k_dead, entry_id);
    if (!r) st = svcq_io_status(c, errno);
    svc_redis_release(q->pool, c);
    if (!r) return st;
    st = r->type != REDIS_REPLY_INTEGER ? svcq_reply_error_status(r) : r->integer == 1 ? SVC_OK : SVC_NOT_FOUND;
    freeReplyObject(r);
    return st;
}
