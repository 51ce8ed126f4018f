/* SQL for customers.users; see users_repo.h.
 *
 * Lookups by user_name/email use lower(...) so they hit the case-insensitive unique indexes. */
#include "users_repo.h"

#include "svc/pg.h"
#include "svc/pg_array.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLS "customers.user_json(u)::text"

PGconn *users_repo_open(struct svc_pg_pool *pool, svc_status *st) { return svc_pg_acquire(pool, -1, st); }

void users_repo_close(struct svc_pg_pool *pool, PGconn *c) { svc_pg_release(pool, c); }

/* The shared classification (svc/pg.h); a unique violation also names what was taken. */
static svc_status failure(PGconn *c, PGresult *res, const char **conflict) {
    struct svc_pg_error e;
    svc_status st = svc_pg_status(c, res, &e);
    if (st == SVC_CONFLICT && conflict && !strcmp(e.sqlstate, "23505"))
        *conflict = strstr(e.constraint, "email") ? "email_taken" : "user_name_taken";
    return st;
}

static svc_status one_text(PGconn *c, const char *sql, int n, const char *const *vals, char **out,
                           const char **conflict) {
    *out = NULL;
    PGresult *res = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, 0);
    svc_status st;
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_TUPLES_OK && es != PGRES_COMMAND_OK) {
        st = failure(c, res, conflict);
    } else if (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) {
        st = SVC_NOT_FOUND;
    } else {
        *out = strdup(PQgetvalue(res, 0, 0));
        st = *out ? SVC_OK : SVC_INTERNAL;
    }
    PQclear(res);
    return st;
}

svc_status users_repo_get_json(PGconn *c, const char *id, bool include_deleted, char **json_out) {
    const char *v[2] = {id, include_deleted ? "t" : "f"};
    return one_text(c, "SELECT " USER_COLS " FROM customers.users u WHERE u.id = $1::uuid AND ($2::bool OR NOT u.deleted)",
                    2, v, json_out, NULL);
}

svc_status users_repo_get_json_by_name(PGconn *c, const char *user_name, char **json_out) {
    const char *v[1] = {user_name};
    return one_text(c, "SELECT " USER_COLS " FROM customers.users u WHERE lower(u.user_name) = lower($1) AND NOT u.deleted",
                    1, v, json_out, NULL);
}

svc_status users_repo_get_status_json(PGconn *c, const char *id, char **json_out) {
    const char *v[1] = {id};
    return one_text(c, "SELECT json_build_object('id', id, 'deleted', deleted, 'role', role)::text "
                       "FROM customers.users WHERE id = $1::uuid",
                    1, v, json_out, NULL);
}

void user_auth_row_free(struct user_auth_row *r) {
    free(r->password_hash);
    free(r->permissions_json);
    r->password_hash = NULL;
    r->permissions_json = NULL;
}

static svc_status auth_row(PGconn *c, const char *sql, const char *param, struct user_auth_row *out) {
    memset(out, 0, sizeof *out);
    const char *v[1] = {param};
    PGresult *res = PQexecParams(c, sql, 1, NULL, v, NULL, NULL, 0);
    svc_status st = SVC_OK;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        st = failure(c, res, NULL);
    } else if (PQntuples(res) == 0) {
        st = SVC_NOT_FOUND;
    } else {
        snprintf(out->id, sizeof out->id, "%s", PQgetvalue(res, 0, 0));
        snprintf(out->role, sizeof out->role, "%s", PQgetvalue(res, 0, 1));
        out->password_hash = PQgetisnull(res, 0, 2) ? NULL : strdup(PQgetvalue(res, 0, 2));
        out->permissions_json = strdup(PQgetvalue(res, 0, 3));
        out->deleted = PQgetvalue(res, 0, 4)[0] == 't';
        if (!out->permissions_json) st = SVC_INTERNAL;
    }
    PQclear(res);
    return st;
}

svc_status users_repo_find_login(PGconn *c, const char *login, struct user_auth_row *out) {
    /* a login containing '@' is an email, otherwise a user name: each hits its own index */
    if (strchr(login, '@'))
        return auth_row(c, "SELECT id, role, password_hash, to_json(permissions)::text, deleted "
                           "FROM customers.users WHERE lower(email) = lower($1)", login, out);
    return auth_row(c, "SELECT id, role, password_hash, to_json(permissions)::text, deleted "
                       "FROM customers.users WHERE lower(user_name) = lower($1)", login, out);
}

svc_status users_repo_get_auth(PGconn *c, const char *id, struct user_auth_row *out) {
    return auth_row(c, "SELECT id, role, password_hash, to_json(permissions)::text, deleted "
                       "FROM customers.users WHERE id = $1::uuid", id, out);
}

/* The text[] literal of a validated permissions array (NULL: none), malloc'd; NULL when out of
 * memory. */
static char *permissions_literal(const json_t *perms) {
    struct svc_buf b;
    svc_buf_init(&b);
    svc_pg_array_open(&b);
    size_t i;
    json_t *v;
    json_array_foreach(perms, i, v) svc_pg_array_text(&b, json_string_value(v));
    svc_pg_array_close(&b);
    svc_buf_append(&b, "", 1);
    if (b.oom) {
        svc_buf_free(&b);
        return NULL;
    }
    return svc_buf_steal(&b);
}

svc_status users_repo_insert(PGconn *c, const struct user_new *u, char **json_out, const char **conflict) {
    *json_out = NULL;
    char *perms = permissions_literal(u->permissions);
    if (!perms) return SVC_INTERNAL;
    const char *v[6] = {u->user_name, u->email, u->name, u->password_hash, u->role, perms};
    svc_status st = one_text(c,
                             "INSERT INTO customers.users AS u (user_name, email, name, password_hash, role, permissions) "
                             "VALUES ($1, $2, $3, $4, $5, $6::text[]) RETURNING " USER_COLS,
                             6, v, json_out, conflict);
    free(perms);
    return st;
}

svc_status users_repo_insert_if_absent(PGconn *c, const struct user_new *u, bool *inserted) {
    char *perms = permissions_literal(u->permissions);
    if (!perms) return SVC_INTERNAL;
    const char *v[6] = {u->user_name, u->email, u->name, u->password_hash, u->role, perms};
    PGresult *res = PQexecParams(c,
                                 "INSERT INTO customers.users (user_name, email, name, password_hash, role, permissions) "
                                 "VALUES ($1, $2, $3, $4, $5, $6::text[]) ON CONFLICT DO NOTHING",
                                 6, NULL, v, NULL, NULL, 0);
    free(perms);
    svc_status st = SVC_OK;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) st = failure(c, res, NULL);
    else *inserted = atoi(PQcmdTuples(res)) == 1;
    PQclear(res);
    return st;
}

svc_status users_repo_update(PGconn *c, const char *id, const struct user_patch *p, char **json_out,
                             const char **conflict) {
    *json_out = NULL;
    char *perms = p->permissions ? permissions_literal(p->permissions) : NULL;
    if (p->permissions && !perms) return SVC_INTERNAL;
    const char *v[6] = {id, p->name, p->email, p->password_hash, p->role, perms};
    svc_status st = one_text(c,
                             "UPDATE customers.users AS u SET "
                             "name = COALESCE($2, u.name), email = COALESCE($3, u.email), "
                             "password_hash = COALESCE($4, u.password_hash), role = COALESCE($5, u.role), "
                             "permissions = COALESCE($6::text[], u.permissions), updated_at = now() "
                             "WHERE u.id = $1::uuid AND NOT u.deleted RETURNING " USER_COLS,
                             6, v, json_out, conflict);
    free(perms);
    return st;
}

svc_status users_repo_set_password_hash(PGconn *c, const char *id, const char *hash) {
    const char *v[2] = {id, hash};
    PGresult *res = PQexecParams(c, "UPDATE customers.users SET password_hash = $2 WHERE id = $1::uuid",
                                 2, NULL, v, NULL, NULL, 0);
    svc_status st = PQresultStatus(res) == PGRES_COMMAND_OK ? SVC_OK : failure(c, res, NULL);
    PQclear(res);
    return st;
}

svc_status users_repo_soft_delete(PGconn *c, const char *id, char **user_name_out) {
    const char *v[1] = {id};
    return one_text(c,
                    "UPDATE customers.users SET deleted = true, deleted_at = now(), updated_at = now() "
                    "WHERE id = $1::uuid AND NOT deleted RETURNING user_name",
                    1, v, user_name_out, NULL);
}

/* search is matched as a literal prefix: LIKE metacharacters are escaped here. */
static char *like_pattern(const char *search) {
    size_t n = strlen(search);
    char *p = malloc(n * 2 + 2);
    if (!p) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (search[i] == '%' || search[i] == '_' || search[i] == '\\') p[o++] = '\\';
        p[o++] = search[i];
    }
    p[o++] = '%';
    p[o] = '\0';
    return p;
}

/* A search is a case-insensitive prefix ($3: the escaped prefix and '%') of the user name or the
 * e-mail, each answered by its unique lower() B-tree index (db/customers/001_users.sql): in the
 * database's C collation `lower(col) LIKE 'p%'` is an index range. The expressions must stay
 * exactly those of the indexes. Not the name: an index on it cost the import a fifth of its
 * throughput (006_search_without_name.sql). */
#define USERS_SEARCH_MATCH "(lower(u.user_name) LIKE lower($3) OR lower(u.email) LIKE lower($3))"

/* Keyset pages scan the primary key backwards from the cursor's id (newest first: ids are
 * UUIDv7); the deprecated page= keeps its old order, oldest first, by offset. The filter is
 * written out twice rather than shared through a CTE, which PostgreSQL would materialise whole
 * (every matching id) because the count refers to it too. */
#define LIST_FILTER                                                                                \
    "($4::bool OR NOT u.deleted) AND ($3::text IS NULL OR " USERS_SEARCH_MATCH ")"
#define LIST_SQL(order, after)                                                                     \
    "WITH n AS (SELECT CASE WHEN $5::bool THEN (SELECT count(*) FROM customers.users u WHERE " LIST_FILTER ") END AS total),"\
    " pg AS (SELECT u.id FROM customers.users u WHERE " LIST_FILTER " AND " after                  \
    "        ORDER BY u.id " order " LIMIT $1::bigint OFFSET $2::bigint) "                           \
    "SELECT CASE WHEN u.id IS NOT NULL THEN " USER_COLS " END, NULL, u.id, n.total"                                                     \
    "  FROM n LEFT JOIN (pg JOIN customers.users u USING (id)) ON true ORDER BY u.id " order

const struct svc_list users_list_kind = {.kind = 'U', .timed = false, .id = SVC_CURSOR_UUID, .legacy_page = true};

svc_status users_repo_list(PGconn *c, const struct svc_page *page, const char *search, bool include_deleted,
                           char **json_out) {
    *json_out = NULL;
    char *pattern = NULL;
    if (search && *search && !(pattern = like_pattern(search))) return SVC_INTERNAL;
    struct svc_page_sql p;
    svc_page_sql(page, &p);
    const char *v[6] = {p.fetch, p.offset, pattern, include_deleted ? "t" : "f", p.total, p.id};
    const char *sql = page->page > 0 ? LIST_SQL("ASC", "true")
                                     : LIST_SQL("DESC", "($6::uuid IS NULL OR u.id < $6::uuid)");
    PGresult *res = PQexecParams(c, sql, page->page > 0 ? 5 : 6, NULL, v, NULL, NULL, 0);
    svc_status st = PQresultStatus(res) == PGRES_TUPLES_OK ? svc_page_render_pg(&users_list_kind, page, res, json_out)
                                                          : failure(c, res, NULL);
    PQclear(res);
    free(pattern);
    return st;
}
