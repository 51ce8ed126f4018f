/* SQL for sync.tenants (see tenants_repo.h). */
#include "tenants_repo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_sql.h"

const struct svc_list TENANTS_LIST = {.kind = 'N', .timed = true, .id = SVC_CURSOR_UUID, .legacy_page = false};

/* Runs a statement with text parameters except one binary bytea parameter (index bin, < 0: none)
 * and returns the single JSON column of its single row. */
static svc_status exec_json(PGconn *c, const char *sql, int n, const char *const *v, int bin, size_t bin_len,
                            char **json) {
    int lens[8] = {0}, fmts[8] = {0};
    if (bin >= 0) {
        lens[bin] = (int)bin_len;
        fmts[bin] = 1;
    }
    PGresult *r = PQexecParams(c, sql, n, NULL, v, lens, fmts, 0);
    svc_status st;
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) st = sql_status(c, r);
    else if (PQntuples(r) != 1 || PQgetisnull(r, 0, 0)) st = SVC_NOT_FOUND;
    else st = (*json = sql_dup(r, 0, 0)) ? SVC_OK : SVC_INTERNAL;
    PQclear(r);
    return st;
}

svc_status tenants_repo_insert(PGconn *c, const char *id, const struct tenant_fields *f, char **json) {
    const char *v[5] = {id, f->name, f->erp_base_url, (const char *)f->sealed_key, f->is_active ? "t" : "f"};
    return exec_json(c,
                     "INSERT INTO sync.tenants AS t (id, name, erp_base_url, api_key_sealed, is_active)"
                     " VALUES ($1, $2, $3, $4, $5) RETURNING sync.tenant_json(t)::text",
                     5, v, 3, f->sealed_len, json);
}

svc_status tenants_repo_get(PGconn *c, const char *id, char **json) {
    const char *v[1] = {id};
    return sql_one_text(c, "SELECT sync.tenant_json(t)::text FROM sync.tenants t WHERE t.id = $1", 1, v, json);
}

svc_status tenants_repo_exists(PGconn *c, const char *id) {
    const char *v[1] = {id};
    char *one = NULL;
    svc_status st = sql_one_text(c, "SELECT 1 FROM sync.tenants WHERE id = $1", 1, v, &one);
    free(one);
    return st;
}

svc_status tenants_repo_list(PGconn *c, const struct svc_page *p, char **json) {
    struct svc_page_sql q;
    svc_page_sql(p, &q);
    const char *v[5] = {q.fetch, q.offset, q.time, q.id, q.total};
    PGresult *r;
    svc_status st = sql_run(c,
                            "SELECT NULL, NULL, NULL, n::text FROM (SELECT count(*) AS n FROM sync.tenants) x WHERE $5::boolean"
                            " UNION ALL (SELECT sync.tenant_json(t)::text,"
                            "  (extract(epoch FROM t.created_at) * 1000000)::bigint::text, t.id::text, NULL"
                            "  FROM sync.tenants t"
                            "  WHERE $3::timestamptz IS NULL OR (t.created_at, t.id) < ($3::timestamptz, $4::uuid)"
                            "  ORDER BY t.created_at DESC, t.id DESC LIMIT $1::int OFFSET $2::bigint)",
                            5, v, &r, NULL);
    if (st != SVC_OK) return st;
    st = svc_page_render_pg(&TENANTS_LIST, p, r, json);
    PQclear(r);
    return st;
}

svc_status tenants_repo_update(PGconn *c, const char *id, const struct tenant_fields *f, char **json) {
    const char *active = f->is_active < 0 ? NULL : f->is_active ? "t" : "f";
    const char *v[5] = {id, f->name, f->erp_base_url, (const char *)f->sealed_key, active};
    return exec_json(c,
                     "UPDATE sync.tenants AS t SET name = coalesce($2, t.name),"
                     " erp_base_url = coalesce($3, t.erp_base_url), api_key_sealed = coalesce($4, t.api_key_sealed),"
                     " is_active = coalesce($5::boolean, t.is_active), updated_at = now()"
                     " WHERE t.id = $1 RETURNING sync.tenant_json(t)::text",
                     5, v, f->sealed_key ? 3 : -1, f->sealed_len, json);
}

svc_status tenants_repo_delete(PGconn *c, const char *id) {
    const char *v[1] = {id};
    PGresult *r;
    svc_status st = sql_run(c,
                            "WITH c AS (DELETE FROM sync.erp_customers WHERE tenant_id = $1),"
                            " p AS (DELETE FROM sync.erp_products WHERE tenant_id = $1),"
                            " s AS (DELETE FROM sync.erp_sync_state WHERE tenant_id = $1)"
                            " DELETE FROM sync.tenants WHERE id = $1",
                            1, v, &r, NULL);
    if (st != SVC_OK) return st;
    st = strcmp(PQcmdTuples(r), "1") == 0 ? SVC_OK : SVC_NOT_FOUND;
    PQclear(r);
    return st;
}

svc_status tenants_repo_secret(PGconn *c, const char *id, struct tenant_secret *out) {
    memset(out, 0, sizeof *out);
    const char *v[1] = {id};
    PGresult *r;
    svc_status st = sql_run(c, "SELECT erp_base_url, api_key_sealed, is_active, seq FROM sync.tenants WHERE id = $1",
                            1, v, &r, NULL);
    if (st != SVC_OK) return st;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return SVC_NOT_FOUND;
    }
    snprintf(out->id, sizeof out->id, "%s", id);
    out->erp_base_url = sql_dup(r, 0, 0);
    out->sealed_key = PQunescapeBytea((const unsigned char *)PQgetvalue(r, 0, 1), &out->sealed_len);
    out->is_active = PQgetvalue(r, 0, 2)[0] == 't';
    out->seq = sql_ll(r, 0, 3);
    PQclear(r);
    if (!out->erp_base_url || !out->sealed_key) {
        tenants_repo_secret_free(out);
        return SVC_INTERNAL;
    }
    return SVC_OK;
}

void tenants_repo_secret_free(struct tenant_secret *s) {
    free(s->erp_base_url);
    if (s->sealed_key) PQfreemem(s->sealed_key);
    s->erp_base_url = NULL;
    s->sealed_key = NULL;
}

svc_status tenants_repo_active_page(PGconn *c, long long after_seq, int max, struct tenant_ref *out, int *n) {
    char a[24], m[16];
    snprintf(a, sizeof a, "%lld", after_seq);
    snprintf(m, sizeof m, "%d", max);
    const char *v[2] = {a, m};
    PGresult *r;
    *n = 0;
    svc_status st = sql_run(c, "SELECT id::text, seq FROM sync.tenants WHERE is_active AND seq > $1 ORDER BY seq LIMIT $2",
                            2, v, &r, NULL);
    if (st != SVC_OK) return st;
    for (int i = 0; i < PQntuples(r) && i < max; i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", PQgetvalue(r, i, 0));
        out[i].seq = sql_ll(r, i, 1);
        (*n)++;
    }
    PQclear(r);
    return SVC_OK;
}

svc_status tenants_repo_brief(PGconn *c, const char *id, bool *is_active, long long *seq) {
    const char *v[1] = {id};
    PGresult *r;
    svc_status st = sql_run(c, "SELECT is_active, seq FROM sync.tenants WHERE id = $1", 1, v, &r, NULL);
    if (st != SVC_OK) return st;
    if (PQntuples(r) != 1) st = SVC_NOT_FOUND;
    else {
        *is_active = PQgetvalue(r, 0, 0)[0] == 't';
        *seq = sql_ll(r, 0, 1);
    }
    PQclear(r);
    return st;
}

svc_status tenants_repo_reseal(PGconn *c, const char *id, const unsigned char *old, size_t old_len,
                               const unsigned char *sealed, size_t len) {
    const char *v[3] = {id, (const char *)old, (const char *)sealed};
    int lens[3] = {0, (int)old_len, (int)len}, fmts[3] = {0, 1, 1};
    PGresult *r = PQexecParams(c,
                               "UPDATE sync.tenants SET api_key_sealed = $3 WHERE id = $1 AND api_key_sealed = $2",
                               3, NULL, v, lens, fmts, 0);
    svc_status st = r && PQresultStatus(r) == PGRES_COMMAND_OK ? SVC_OK : sql_status(c, r);
    PQclear(r);
    return st;
}
