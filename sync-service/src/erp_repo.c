/* SQL of the ERP synchronisation's data (see erp_repo.h). */
#include "erp_repo.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_sql.h"

#define COPY_CHUNK (256u * 1024u)

const struct svc_list ERP_CUSTOMERS_LIST = {.kind = 'C', .timed = false, .id = SVC_CURSOR_TEXT};
const struct svc_list ERP_PRODUCTS_LIST = {.kind = 'P', .timed = false, .id = SVC_CURSOR_TEXT};

/* Per kind: the table, its COPY column list (the order erp_page.h writes rows in), the staging
 * table, and the upsert. */
struct kind_sql {
    const char *table, *copy_direct, *stage, *copy_stage, *upsert, *has_rows, *list;
};

#define CUSTOMER_COLS "tenant_id, external_id, name, email, document, source_updated_at, deleted"
#define PRODUCT_COLS "tenant_id, external_id, sku, name, price, stock, source_updated_at, deleted"

static const struct kind_sql SQL[2] = {
    [ERP_CUSTOMERS] = {
        .table = "sync.erp_customers",
        .copy_direct = "COPY sync.erp_customers (" CUSTOMER_COLS ") FROM STDIN",
        .stage = "CREATE TEMP TABLE erp_stage (tenant_id uuid, external_id text, name text, email text,"
                 " document text, source_updated_at timestamptz, deleted boolean) ON COMMIT DROP",
        .copy_stage = "COPY pg_temp.erp_stage (" CUSTOMER_COLS ") FROM STDIN",
        .upsert =
            "WITH s AS (SELECT DISTINCT ON (external_id) * FROM pg_temp.erp_stage"
            "           ORDER BY external_id, source_updated_at DESC),"
            " up AS (INSERT INTO sync.erp_customers AS t (" CUSTOMER_COLS ", deleted_at)"
            "        SELECT $1, s.external_id, s.name, s.email, s.document, s.source_updated_at, s.deleted,"
            "               CASE WHEN s.deleted THEN now() END FROM s"
            "        ON CONFLICT (tenant_id, external_id) DO UPDATE SET name = EXCLUDED.name,"
            "          email = EXCLUDED.email, document = EXCLUDED.document,"
            "          source_updated_at = EXCLUDED.source_updated_at, deleted = EXCLUDED.deleted,"
            "          deleted_at = CASE WHEN EXCLUDED.deleted THEN coalesce(t.deleted_at, now()) END,"
            "          synced_at = now()"
            "        WHERE t.source_updated_at <= EXCLUDED.source_updated_at"
            "          AND (t.name, t.email, t.document, t.source_updated_at, t.deleted) IS DISTINCT FROM"
            "              (EXCLUDED.name, EXCLUDED.email, EXCLUDED.document, EXCLUDED.source_updated_at,"
            "               EXCLUDED.deleted)"
            "        RETURNING 1)"
            " SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM s)",
        .has_rows = "SELECT EXISTS (SELECT 1 FROM sync.erp_customers WHERE tenant_id = $1)",
        .list = "SELECT sync.erp_customer_json(r)::text, NULL, r.external_id, NULL FROM sync.erp_customers r",
    },
    [ERP_PRODUCTS] = {
        .table = "sync.erp_products",
        .copy_direct = "COPY sync.erp_products (" PRODUCT_COLS ") FROM STDIN",
        .stage = "CREATE TEMP TABLE erp_stage (tenant_id uuid, external_id text, sku text, name text,"
                 " price numeric, stock bigint, source_updated_at timestamptz, deleted boolean) ON COMMIT DROP",
        .copy_stage = "COPY pg_temp.erp_stage (" PRODUCT_COLS ") FROM STDIN",
        .upsert =
            "WITH s AS (SELECT DISTINCT ON (external_id) * FROM pg_temp.erp_stage"
            "           ORDER BY external_id, source_updated_at DESC),"
            " up AS (INSERT INTO sync.erp_products AS t (" PRODUCT_COLS ", deleted_at)"
            "        SELECT $1, s.external_id, s.sku, s.name, s.price, s.stock, s.source_updated_at, s.deleted,"
            "               CASE WHEN s.deleted THEN now() END FROM s"
            "        ON CONFLICT (tenant_id, external_id) DO UPDATE SET sku = EXCLUDED.sku, name = EXCLUDED.name,"
            "          price = EXCLUDED.price, stock = EXCLUDED.stock,"
            "          source_updated_at = EXCLUDED.source_updated_at, deleted = EXCLUDED.deleted,"
            "          deleted_at = CASE WHEN EXCLUDED.deleted THEN coalesce(t.deleted_at, now()) END,"
            "          synced_at = now()"
            "        WHERE t.source_updated_at <= EXCLUDED.source_updated_at"
            "          AND (t.sku, t.name, t.price, t.stock, t.source_updated_at, t.deleted) IS DISTINCT FROM"
            "              (EXCLUDED.sku, EXCLUDED.name, EXCLUDED.price, EXCLUDED.stock,"
            "               EXCLUDED.source_updated_at, EXCLUDED.deleted)"
            "        RETURNING 1)"
            " SELECT (SELECT count(*) FROM up), (SELECT count(*) FROM s)",
        .has_rows = "SELECT EXISTS (SELECT 1 FROM sync.erp_products WHERE tenant_id = $1)",
        .list = "SELECT sync.erp_product_json(r)::text, NULL, r.external_id, NULL FROM sync.erp_products r",
    },
};

/* ------------------------------------------------------------------ transaction steps */

/* Rolls back whatever is open and returns st. */
static svc_status abort_tx(PGconn *c, svc_status st) {
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) PQclear(PQexec(c, "ROLLBACK"));
    return st;
}

static svc_status simple(PGconn *c, const char *sql) {
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
    svc_status st = r && PQresultStatus(r) == PGRES_COMMAND_OK ? SVC_OK : sql_status(c, r);
    PQclear(r);
    return st;
}

/* Sends data with COPY; *state gets the SQLSTATE of a failure. */
static svc_status copy_in(PGconn *c, const char *sql, const char *data, size_t len, char state[6]) {
    state[0] = '\0';
    PGresult *r = PQexec(c, sql);
    if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
        snprintf(state, 6, "%s", sql_state(r));
        svc_status st = sql_status(c, r);
        PQclear(r);
        return st;
    }
    PQclear(r);
    bool sent = true;
    for (size_t off = 0; off < len && sent; off += COPY_CHUNK) {
        size_t n = len - off < COPY_CHUNK ? len - off : COPY_CHUNK;
        sent = PQputCopyData(c, data + off, (int)n) == 1;
    }
    int end = PQputCopyEnd(c, sent ? NULL : "client failed to send COPY data");
    r = PQgetResult(c);
    bool ok = sent && end == 1 && r && PQresultStatus(r) == PGRES_COMMAND_OK;
    svc_status st = SVC_OK;
    if (!ok) {
        snprintf(state, 6, "%s", sql_state(r));
        st = sql_status(c, r);
    }
    PQclear(r);
    PGresult *extra;
    while ((extra = PQgetResult(c)) != NULL) PQclear(extra);
    return st;
}

/* The fencing check (see erp_repo.h). */
static svc_status fence_check(PGconn *c, const char *tenant_id, int64_t fence) {
    char f[24];
    snprintf(f, sizeof f, "%" PRId64, fence);
    const char *v[2] = {tenant_id, f};
    PGresult *r;
    svc_status st = sql_run(c,
                            "WITH cur AS (SELECT fence_token FROM sync.tenants WHERE id = $1 FOR UPDATE),"
                            " upd AS (UPDATE sync.tenants t SET fence_token = $2 FROM cur"
                            "         WHERE t.id = $1 AND cur.fence_token < $2 RETURNING 1)"
                            " SELECT cur.fence_token FROM cur",
                            2, v, &r, NULL);
    if (st != SVC_OK) return st;
    if (PQntuples(r) != 1) st = SVC_NOT_FOUND;
    else if (sql_ll(r, 0, 0) > fence) st = SVC_CONFLICT;
    PQclear(r);
    return st;
}

svc_status erp_repo_write(PGconn *c, enum erp_kind kind, const char *tenant_id, int64_t fence,
                          const struct erp_batch *b, bool direct, struct erp_write_result *out) {
    memset(out, 0, sizeof *out);
    const struct kind_sql *q = &SQL[kind];
    char state[6];
    svc_status st = simple(c, "BEGIN");
    if (st != SVC_OK) return abort_tx(c, st);
    if ((st = fence_check(c, tenant_id, fence)) != SVC_OK) return abort_tx(c, st);
    if (b->records == 0) return abort_tx(c, simple(c, "COMMIT"));
    if (direct) {
        if ((st = simple(c, "SAVEPOINT direct")) != SVC_OK) return abort_tx(c, st);
        st = copy_in(c, q->copy_direct, b->rows.data, b->rows.len, state);
        if (st == SVC_OK) {
            if ((st = simple(c, "COMMIT")) != SVC_OK) return abort_tx(c, st);
            out->upserted = b->records;
            out->direct = true;
            return SVC_OK;
        }
        if (strcmp(state, "23505") != 0) return abort_tx(c, st);
        if ((st = simple(c, "ROLLBACK TO SAVEPOINT direct")) != SVC_OK) return abort_tx(c, st);
    }
    if ((st = simple(c, q->stage)) != SVC_OK) return abort_tx(c, st);
    if ((st = copy_in(c, q->copy_stage, b->rows.data, b->rows.len, state)) != SVC_OK) return abort_tx(c, st);
    const char *v[1] = {tenant_id};
    PGresult *r;
    if ((st = sql_run(c, q->upsert, 1, v, &r, NULL)) != SVC_OK) return abort_tx(c, st);
    out->upserted = sql_ll(r, 0, 0);
    out->unchanged = sql_ll(r, 0, 1) - out->upserted;
    PQclear(r);
    if ((st = simple(c, "COMMIT")) != SVC_OK) return abort_tx(c, st);
    return SVC_OK;
}

svc_status erp_repo_has_rows(PGconn *c, enum erp_kind kind, const char *tenant_id, bool *has) {
    const char *v[1] = {tenant_id};
    PGresult *r;
    svc_status st = sql_run(c, SQL[kind].has_rows, 1, v, &r, NULL);
    if (st != SVC_OK) return st;
    *has = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return SVC_OK;
}

svc_status erp_repo_state(PGconn *c, enum erp_kind kind, const char *tenant_id, struct erp_state *out) {
    memset(out, 0, sizeof *out);
    const char *v[2] = {tenant_id, erp_kind_name(kind)};
    PGresult *r;
    svc_status st = sql_run(c,
                            "SELECT (extract(epoch FROM watermark) * 1000000)::bigint, auth_failed"
                            " FROM sync.erp_sync_state WHERE tenant_id = $1 AND kind = $2",
                            2, v, &r, NULL);
    if (st != SVC_OK) return st;
    if (PQntuples(r) == 1) {
        out->has_watermark = !PQgetisnull(r, 0, 0);
        out->watermark_us = sql_ll(r, 0, 0);
        out->auth_failed = PQgetvalue(r, 0, 1)[0] == 't';
    }
    PQclear(r);
    return SVC_OK;
}

svc_status erp_repo_sync_done(PGconn *c, enum erp_kind kind, const char *tenant_id, int64_t fence,
                              int64_t watermark_us) {
    svc_status st = simple(c, "BEGIN");
    if (st != SVC_OK) return abort_tx(c, st);
    if ((st = fence_check(c, tenant_id, fence)) != SVC_OK) return abort_tx(c, st);
    char wm[24];
    snprintf(wm, sizeof wm, "%" PRId64, watermark_us);
    const char *v[3] = {tenant_id, erp_kind_name(kind), watermark_us > 0 ? wm : NULL};
    PGresult *r;
    st = sql_run(c,
                 "INSERT INTO sync.erp_sync_state AS s (tenant_id, kind, watermark, synced_at, auth_failed)"
                 " VALUES ($1, $2, 'epoch'::timestamptz + $3::bigint * interval '1 microsecond', now(), false)"
                 " ON CONFLICT (tenant_id, kind) DO UPDATE SET"
                 "   watermark = greatest(s.watermark, EXCLUDED.watermark), synced_at = now(), auth_failed = false",
                 3, v, &r, NULL);
    PQclear(r);
    if (st != SVC_OK) return abort_tx(c, st);
    if ((st = simple(c, "COMMIT")) != SVC_OK) return abort_tx(c, st);
    return SVC_OK;
}

svc_status erp_repo_auth_failed(PGconn *c, enum erp_kind kind, const char *tenant_id) {
    const char *v[2] = {tenant_id, erp_kind_name(kind)};
    PGresult *r;
    svc_status st = sql_run(c,
                            "INSERT INTO sync.erp_sync_state (tenant_id, kind, auth_failed) VALUES ($1, $2, true)"
                            " ON CONFLICT (tenant_id, kind) DO UPDATE SET auth_failed = true",
                            2, v, &r, NULL);
    PQclear(r);
    return st;
}

svc_status erp_repo_tenant_states(PGconn *c, long long counts[4]) {
    PGresult *r;
    svc_status st = sql_run(
        c,
        "SELECT count(*) FILTER (WHERE s = 0), count(*) FILTER (WHERE s = 1), count(*) FILTER (WHERE s = 2),"
        "       count(*) FILTER (WHERE s = 3)"
        " FROM (SELECT CASE WHEN NOT t.is_active THEN 3"
        "   WHEN EXISTS (SELECT 1 FROM sync.erp_sync_state e WHERE e.tenant_id = t.id AND e.auth_failed) THEN 2"
        "   WHEN EXISTS (SELECT 1 FROM (VALUES ('customers'), ('products')) k(kind)"
        "                WHERE (SELECT j.status FROM sync.job_runs j WHERE j.tenant_id = t.id AND j.kind = k.kind"
        "                       ORDER BY j.started_at DESC, j.id DESC LIMIT 1) IN ('failed', 'dead')) THEN 1"
        "   ELSE 0 END AS s FROM sync.tenants t) x",
        0, NULL, &r, NULL);
    if (st != SVC_OK) return st;
    for (int i = 0; i < 4; i++) counts[i] = sql_ll(r, 0, i);
    PQclear(r);
    return SVC_OK;
}

svc_status erp_repo_list(PGconn *c, enum erp_kind kind, const char *tenant_id, const struct svc_page *p,
                         int64_t updated_since_us, bool include_deleted, char **json) {
    struct svc_page_sql q;
    svc_page_sql(p, &q);
    char since[24];
    snprintf(since, sizeof since, "%" PRId64, updated_since_us);
    const char *v[6] = {tenant_id, q.fetch, q.id, updated_since_us >= 0 ? since : NULL, include_deleted ? "t" : "f",
                        q.total};
#define FILTER                                                                                                     \
    " WHERE r.tenant_id = $1"                                                                                      \
    " AND ($4::bigint IS NULL OR r.source_updated_at >= 'epoch'::timestamptz + $4::bigint * interval '1 microsecond')" \
    " AND ($5::boolean OR NOT r.deleted)"
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT NULL, NULL, NULL, n::text FROM (SELECT count(*) AS n FROM %s r" FILTER ") x WHERE $6::boolean"
             " UNION ALL (%s" FILTER " AND ($3::text IS NULL OR r.external_id > $3)"
             " ORDER BY r.external_id LIMIT $2::int)",
             SQL[kind].table, SQL[kind].list);
#undef FILTER
    PGresult *r;
    svc_status st = sql_run(c, sql, 6, v, &r, NULL);
    if (st != SVC_OK) return st;
    st = svc_page_render_pg(kind == ERP_CUSTOMERS ? &ERP_CUSTOMERS_LIST : &ERP_PRODUCTS_LIST, p, r, json);
    PQclear(r);
    return st;
}
