/* Legacy bulk upsert use case; see bulk_upsert.h (rules) and bulk_repo.h (transaction).
 *
 * Everything that needs no database happens before a connection is borrowed: the body is walked
 * once, records are validated into a flat array (strings stay borrowed from the JSON), duplicates
 * are resolved with one sort, and the COPY text is built into one buffer. The connection is held
 * only for the transaction itself.
 *
 * A unique violation that slips past the in-transaction email check (a registration racing the
 * batch) makes the whole transaction retry once; a second failure answers 503 so the importer
 * retries the batch later. After commit, cached copies of rewritten users are dropped with one
 * multi-key DEL (the key names are the ones user_cache.h documents), and users soft-deleted while
 * able to log in lose their sessions. Logs carry counts only, never names or emails. */
#include "bulk_upsert.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc/utf8.h"

#include "sessions.h"
#include "svc/tcache.h"
#include "user_cache.h"
#include "users.h"

/* ---- timestamps ---- */

static int64_t days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m) {
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

/* Reads exactly n digits at *p; advances *p. Returns -1 when they are not all digits. */
static int digits(const char **p, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        char ch = (*p)[i];
        if (ch < '0' || ch > '9') return -1;
        v = v * 10 + (ch - '0');
    }
    *p += n;
    return v;
}

int bulk_parse_timestamp(const char *s, int64_t *us_out) {
    if (!s) return -1;
    const char *p = s;
    int y = digits(&p, 4);
    if (y < 1 || *p++ != '-') return -1;
    int mo = digits(&p, 2);
    if (mo < 1 || mo > 12 || *p++ != '-') return -1;
    int d = digits(&p, 2);
    if (d < 1 || d > days_in_month(y, mo) || (*p != 'T' && *p != 't')) return -1;
    p++;
    int h = digits(&p, 2);
    if (h < 0 || h > 23 || *p++ != ':') return -1;
    int mi = digits(&p, 2);
    if (mi < 0 || mi > 59 || *p++ != ':') return -1;
    int sec = digits(&p, 2);
    if (sec < 0 || sec > 59) return -1;
    int64_t frac_us = 0;
    if (*p == '.' || *p == ',') {
        p++;
        int nd = 0;
        int64_t scale = 100000;
        while (*p >= '0' && *p <= '9') {
            if (nd < 6) { frac_us += (*p - '0') * scale; scale /= 10; }
            nd++;
            p++;
        }
        if (nd < 1 || nd > 9) return -1;
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1;
        int oh = digits(&p, 2);
        if (oh < 0 || oh > 18) return -1;
        if (*p == ':') p++;
        int om = digits(&p, 2);
        if (om < 0 || om > 59 || oh * 60 + om > 18 * 60) return -1;
        off_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    if (*p) return -1;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - (int64_t)off_min * 60;
    static const int64_t min_secs = -62135596800LL;    /* 0001-01-01T00:00:00Z */
    static const int64_t max_secs = 253402300799LL;    /* 9999-12-31T23:59:59Z */
    if (secs < min_secs || secs > max_secs) return -1;
    *us_out = secs * 1000000 + frac_us;
    return 0;
}

/* ---- one record ---- */

/* A JSON string as C string, or NULL when v is not a string or embeds NUL. */
static const char *str_of(const json_t *v) {
    const char *s = json_string_value(v);
    if (s && strlen(s) != json_string_length(v)) return NULL;
    return s;
}

const char *bulk_check_strings(const char *un, const char *em, const char *name, struct bulk_row *out) {
    if (!un || users_check_user_name(un)) return "invalid_user_name";
    out->user_name = un;
    size_t i = 0;
    for (; un[i]; i++) out->key[i] = (char)(un[i] >= 'A' && un[i] <= 'Z' ? un[i] + 32 : un[i]);
    out->key[i] = '\0';
    if (em) {
        if (users_check_email(em)) return "invalid_email";
        out->email = em;
    }
    long chars = name ? svc_utf8_count(name, strlen(name)) : -1;
    if (chars < 0 || chars > 200) return "invalid_name";
    out->name = name;
    return NULL;
}

const char *bulk_check_row(const json_t *row, struct bulk_row *out) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(row)) return "not_an_object";
    const json_t *jun = NULL, *jem = NULL, *jname = NULL, *jlid = NULL, *jdel = NULL, *jts = NULL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)row, key, v) {
        if (!strcmp(key, "user_name")) jun = v;
        else if (!strcmp(key, "email")) jem = v;
        else if (!strcmp(key, "name")) jname = v;
        else if (!strcmp(key, "legacy_id")) jlid = v;
        else if (!strcmp(key, "deleted")) jdel = v;
        else if (!strcmp(key, "updated_at")) jts = v;
        else return "unknown_field";
    }
    const char *un = str_of(jun);
    if (!un) return "invalid_user_name";
    const char *em = NULL;
    if (jem && !json_is_null(jem) && !(em = str_of(jem))) {
        if (users_check_user_name(un)) return "invalid_user_name";   /* the order of the checks */
        return "invalid_email";
    }
    const char *reason = bulk_check_strings(un, em, str_of(jname), out);
    if (reason) return reason;
    if (!json_is_integer(jlid) || json_integer_value(jlid) < 0) return "invalid_legacy_id";
    out->legacy_id = (long long)json_integer_value(jlid);
    if (!json_is_boolean(jdel)) return "invalid_deleted";
    out->deleted = json_is_true(jdel);
    if (bulk_parse_timestamp(str_of(jts), &out->updated_us) != 0) return "invalid_updated_at";
    return NULL;
}

/* ---- the batch ---- */

/* key ascending, then newest first; on equal timestamps the later record first */
static int cmp_rows(const void *a, const void *b) {
    const struct bulk_row *x = *(const struct bulk_row *const *)a;
    const struct bulk_row *y = *(const struct bulk_row *const *)b;
    int c = strcmp(x->key, y->key);
    if (c) return c;
    if (x->updated_us != y->updated_us) return x->updated_us > y->updated_us ? -1 : 1;
    return x->index > y->index ? -1 : x->index < y->index;
}

void bulk_plan_free(struct bulk_plan *plan) {
    free(plan->text);
    free(plan->rows);
    free(plan->winners);
    free(plan->invalid);
    memset(plan, 0, sizeof *plan);
}

bool bulk_plan_note(struct bulk_plan *plan, size_t n, int index, const char *reason) {
    if (!reason) {
        plan->rows[plan->n_valid++].index = index;
        return true;
    }
    if (!plan->invalid && !(plan->invalid = malloc(n * sizeof *plan->invalid))) return false;
    plan->invalid[plan->n_invalid++] = (struct bulk_invalid){index, reason};
    return true;
}

void bulk_plan_pick_winners(struct bulk_plan *plan) {
    for (size_t i = 0; i < plan->n_valid; i++) plan->winners[i] = &plan->rows[i];
    qsort(plan->winners, plan->n_valid, sizeof *plan->winners, cmp_rows);
    size_t w = 0;
    for (size_t i = 0; i < plan->n_valid; i++)
        if (w == 0 || strcmp(plan->winners[w - 1]->key, plan->winners[i]->key) != 0)
            plan->winners[w++] = plan->winners[i];
    plan->n_winners = w;
}

svc_status bulk_plan_build(const json_t *body, long max_rows, struct bulk_plan *plan, json_t **fields_out) {
    memset(plan, 0, sizeof *plan);
    *fields_out = NULL;
    if (max_rows <= 0) max_rows = BULK_DEFAULT_MAX_ROWS;
    json_t *fields = json_object();
    if (!fields) return SVC_INTERNAL;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        if (strcmp(key, "users") != 0) json_object_set_new(fields, key, json_string("unknown field"));
    }
    const json_t *users = json_object_get(body, "users");
    if (!json_is_array(users)) {
        json_object_set_new(fields, "users", json_string(users ? "must be an array" : "required"));
    } else if (json_array_size(users) > (size_t)max_rows) {
        char msg[64];
        snprintf(msg, sizeof msg, "at most %ld users per request", max_rows);
        json_object_set_new(fields, "users", json_string(msg));
    }
    if (json_object_size(fields)) {
        *fields_out = fields;
        return SVC_INVALID;
    }
    json_decref(fields);

    size_t n = json_array_size(users);
    plan->n_total = n;
    if (n == 0) return SVC_OK;
    plan->rows = malloc(n * sizeof *plan->rows);
    plan->winners = malloc(n * sizeof *plan->winners);
    if (!plan->rows || !plan->winners) goto oom;
    for (size_t i = 0; i < n; i++) {
        struct bulk_row *r = &plan->rows[plan->n_valid];
        if (!bulk_plan_note(plan, n, (int)i, bulk_check_row(json_array_get(users, i), r))) goto oom;
    }

    bulk_plan_pick_winners(plan);
    return SVC_OK;
oom:
    bulk_plan_free(plan);
    return SVC_INTERNAL;
}

static int add_invalid(json_t *arr, int index, const char *reason) {
    return json_array_append_new(arr, json_pack("{s:i,s:s}", "index", index, "reason", reason));
}

json_t *bulk_result_json(const struct bulk_plan *plan, const struct bulk_outcome *o) {
    json_t *invalid = json_array();
    if (!invalid) return NULL;
    /* both lists are ascending: merge them */
    size_t a = 0, b = 0, nb = o ? o->n_email_taken : 0;
    int rc = 0;
    while (rc == 0 && (a < plan->n_invalid || b < nb)) {
        if (b >= nb || (a < plan->n_invalid && plan->invalid[a].index < o->email_taken[b])) {
            rc = add_invalid(invalid, plan->invalid[a].index, plan->invalid[a].reason);
            a++;
        } else {
            rc = add_invalid(invalid, o->email_taken[b], "email_taken");
            b++;
        }
    }
    if (rc != 0) {
        json_decref(invalid);
        return NULL;
    }
    long written = o ? o->written : 0;
    long unchanged = (long)plan->n_valid - (long)nb - written;
    return json_pack("{s:I,s:I,s:I,s:I,s:o}", "inserted", (json_int_t)(o ? o->inserted : 0),
                     "updated", (json_int_t)(o ? o->updated : 0), "deleted", (json_int_t)(o ? o->deleted : 0),
                     "unchanged", (json_int_t)unchanged, "invalid", invalid);
}

/* ---- after commit ---- */

/* One DEL for every cached key of the rewritten users (keys built by user_cache.h). */
static void invalidate_cache(struct customers_ctx *cx, const char *cid, const struct bulk_outcome *o) {
    if (!o->n_touched || !cx->app.redis) return;
    size_t argc = 1 + 2 * o->n_touched;
    const char **argv = malloc(argc * sizeof *argv);
    size_t *argvlen = malloc(argc * sizeof *argvlen);
    char *keys = malloc(o->n_touched * 2 * USER_CACHE_KEY_MAX);
    bool done = false;
    if (argv && argvlen && keys) {
        argv[0] = "DEL";
        argvlen[0] = 3;
        for (size_t i = 0; i < o->n_touched; i++) {
            char *k1 = keys + i * 2 * USER_CACHE_KEY_MAX, *k2 = k1 + USER_CACHE_KEY_MAX;
            argvlen[1 + 2 * i] = user_cache_key_id(k1, o->touched[i].id);
            argvlen[2 + 2 * i] = user_cache_key_name(k2, o->touched[i].user_name_lower);
            argv[1 + 2 * i] = k1;
            argv[2 + 2 * i] = k2;
        }
        svc_status st;
        redisContext *rc = svc_redis_acquire(cx->app.redis, -1, &st);
        if (rc) {
            redisReply *r = redisCommandArgv(rc, (int)argc, argv, argvlen);
            done = r && r->type != REDIS_REPLY_ERROR;
            if (r) freeReplyObject(r);
            svc_redis_release(cx->app.redis, rc);
            /* the other instances hold the pushes before the batch is answered (svc/tcache.h) */
            if (done && cx->user_l1) done = svc_tcache_barrier(cx->app.redis);
        }
    }
    free(argv);
    free(argvlen);
    free(keys);
    if (!done)
        svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "bulk upsert: user cache invalidation failed", "{s:I}",
                 "users", (json_int_t)o->n_touched);
}

static void revoke_sessions(struct customers_ctx *cx, const char *cid, const struct bulk_outcome *o) {
    if (!cx->app.redis) return;
    for (size_t i = 0; i < o->n_touched; i++)
        if (o->touched[i].revoke_sessions) sessions_revoke_user(cx, cid, o->touched[i].id);
}

/* ---- the use case ---- */

static struct svc_result db_error(struct customers_ctx *cx, const char *cid, svc_status st,
                                  const struct bulk_outcome *o, size_t rows) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "bulk upsert failed", "{s:s,s:s,s:s,s:I}", "step",
             o->step ? o->step : "acquire", "sqlstate", o->sqlstate, "status", svc_status_code(st),
             "rows", (json_int_t)rows);
    /* a conflict left after the retry under the lock is as transient as an outage: 503, retry */
    return svc_pg_result(st == SVC_CONFLICT ? SVC_UNAVAILABLE : st);
}

/* Applies a built plan and answers; frees the plan. */
static struct svc_result apply_plan(struct customers_ctx *cx, const char *cid, struct bulk_plan *plan, long t0) {
    struct bulk_outcome out;
    memset(&out, 0, sizeof out);
    bool applied = false;
    struct svc_result res;
    svc_status st;
    if (plan->n_winners > 0) {
        const struct bulk_row *const *rows = (const struct bulk_row *const *)plan->winners;
        PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
        if (c) {
            st = bulk_repo_apply(c, rows, plan->n_winners, false, &out);
            if (st == SVC_CONFLICT) {
                svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "bulk upsert met a conflict; retrying row by row",
                         "{s:s,s:s}", "step", out.step ? out.step : "", "sqlstate", out.sqlstate);
                st = bulk_repo_apply(c, rows, plan->n_winners, true, &out);
            }
            svc_pg_release(cx->app.pg, c);
        }
        if (st != SVC_OK) {
            res = db_error(cx, cid, st, &out, plan->n_winners);
            bulk_outcome_free(&out);
            bulk_plan_free(plan);
            return res;
        }
        applied = true;
        invalidate_cache(cx, cid, &out);
        revoke_sessions(cx, cid, &out);
    }

    json_t *json = bulk_result_json(plan, applied ? &out : NULL);
    if (json) {
        svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "bulk upsert applied", "{s:I,s:O,s:O,s:O,s:O,s:I,s:I,s:I}",
                 "records", (json_int_t)plan->n_total, "inserted", json_object_get(json, "inserted"),
                 "updated", json_object_get(json, "updated"), "deleted", json_object_get(json, "deleted"),
                 "unchanged", json_object_get(json, "unchanged"), "invalid",
                 (json_int_t)(plan->n_invalid + out.n_email_taken), "superseded",
                 (json_int_t)(plan->n_valid - plan->n_winners), "ms", (json_int_t)(svc_now_ms() - t0));
        res = (struct svc_result){.st = SVC_OK, .body = json};
    } else {
        res = SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "internal error");
    }
    bulk_outcome_free(&out);
    bulk_plan_free(plan);
    return res;
}

/* The answer for a plan that could not be built. */
static struct svc_result refused(svc_status st, json_t *fields) {
    if (st == SVC_INVALID) {
        struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
        r.details = json_pack("{s:o}", "fields", fields);
        return r;
    }
    json_decref(fields);
    return SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "internal error");
}

struct svc_result users_bulk_upsert(struct customers_ctx *cx, const char *cid, const json_t *body) {
    long t0 = svc_now_ms();
    struct bulk_plan plan;
    json_t *fields = NULL;
    svc_status st = bulk_plan_build(body, cx->bulk_max_rows, &plan, &fields);
    if (st != SVC_OK) return refused(st, fields);
    return apply_plan(cx, cid, &plan, t0);
}

struct svc_result users_bulk_upsert_tsv(struct customers_ctx *cx, const char *cid, const char *body, size_t len) {
    long t0 = svc_now_ms();
    struct bulk_plan plan;
    json_t *fields = NULL;
    svc_status st = bulk_plan_build_tsv(body, len, cx->bulk_max_rows, &plan, &fields);
    if (st != SVC_OK) return refused(st, fields);
    return apply_plan(cx, cid, &plan, t0);
}
