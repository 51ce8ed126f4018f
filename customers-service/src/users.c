/* User use cases; see users.h.
 *
 * Validation collects every bad field into details.fields so a client fixes all of them at once.
 * A non-admin request naming role or permissions is refused as a whole (403 forbidden_fields)
 * before anything is written: mass assignment never half-applies. */
#include "users.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "svc/utf8.h"

#include "login_guard.h"
#include "sessions.h"
#include "user_cache.h"
#include "users_repo.h"

const char *users_check_user_name(const char *s) {
    if (!s) return "required";
    size_t n = strlen(s);
    if (n < 3 || n > 64) return "must be 3 to 64 characters";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '.' || c == '_' || c == '-')) return "may contain only letters, digits, '.', '_' and '-'";
    }
    return NULL;
}

const char *users_check_email(const char *s) {
    if (!s) return "required";
    size_t n = strlen(s);
    if (n < 3 || n > 254) return "must be a valid email address";
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@') || (size_t)(at - s) > 64) return "must be a valid email address";
    for (const char *p = s; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 32 || c >= 127 || strchr("()<>,;:\\\"[]", c)) return "must be a valid email address";
    }
    if (s[0] == '.' || at[-1] == '.' || strstr(s, "..")) return "must be a valid email address";
    const char *d = at + 1;
    const char *dot = strrchr(d, '.');
    if (!*d || !dot || dot == d || !dot[1] || strlen(dot + 1) < 2) return "must be a valid email address";
    for (const char *p = d; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!(isalnum(c) || c == '-' || c == '.')) return "must be a valid email address";
        if (c == '.' && (p == d || p[1] == '.' || p[1] == '\0' || p[-1] == '-' || p[1] == '-'))
            return "must be a valid email address";
    }
    return NULL;
}

const char *users_check_name(const char *s) {
    if (!s) return "required";
    size_t n = 0;
    enum svc_text_verdict v = svc_text_check(s, strlen(s), 0, &n);   /* no control character at all */
    if (v == SVC_TEXT_NOT_UTF8) return svc_text_reason(v);
    if (n < 1 || n > 200) return "must be 1 to 200 characters";
    if (v != SVC_TEXT_OK) return svc_text_reason(v);
    return NULL;
}

const char *users_check_role(const char *s) {
    if (!s) return "required";
    if (strcmp(s, "user") != 0 && strcmp(s, "admin") != 0) return "must be \"user\" or \"admin\"";
    return NULL;
}

const char *users_check_permissions(const json_t *perms) {
    if (!json_is_array(perms)) return "must be an array of strings";
    if (json_array_size(perms) > 32) return "at most 32 permissions";
    size_t i;
    json_t *v;
    json_array_foreach(perms, i, v) {
        const char *p = json_string_value(v);
        size_t n = p ? strlen(p) : 0;
        if (!p || n < 1 || n > 64) return "each permission must be a 1-64 character string";
        for (size_t k = 0; k < n; k++) {
            unsigned char c = (unsigned char)p[k];
            if (!(islower(c) || isdigit(c) || strchr(":._-", c)))
                return "permissions may contain only a-z, 0-9, ':', '.', '_' and '-'";
        }
    }
    return NULL;
}

/* ---- helpers ---- */

static struct svc_result validation_failed(json_t *fields) {
    struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
    r.details = json_pack("{s:o}", "fields", fields);
    return r;
}

void users_reject_unknown(const json_t *body, const char *const *allowed, json_t *fields) {
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)body, key, val) {
        bool ok = false;
        for (int i = 0; allowed[i]; i++)
            if (!strcmp(key, allowed[i])) ok = true;
        if (!ok) json_object_set_new(fields, key, json_string("unknown field"));
    }
}

/* Optional string field: absent → NULL; present but not a string → error. */
static const char *opt_str(const json_t *body, const char *key, json_t *fields, bool *present) {
    json_t *v = json_object_get(body, key);
    if (present) *present = v != NULL;
    if (!v) return NULL;
    if (!json_is_string(v)) {
        json_object_set_new(fields, key, json_string("must be a string"));
        return NULL;
    }
    return json_string_value(v);
}

static void check(json_t *fields, const char *key, const char *reason) {
    if (reason && !json_object_get(fields, key)) json_object_set_new(fields, key, json_string(reason));
}

static struct svc_result internal(struct customers_ctx *cx, const char *cid, const char *what) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "user operation failed", "{s:s}", "operation", what);
    return SVC_RESULT_ERR(SVC_INTERNAL, "internal_error", "internal error");
}

/* A database call (or acquiring a connection) that failed with st: the shared answer for an
 * outage or a timeout (503), else a bug (logged, 500). */
static struct svc_result db_failed(struct customers_ctx *cx, const char *cid, const char *what, svc_status st) {
    if (st != SVC_UNAVAILABLE && st != SVC_TIMEOUT) return internal(cx, cid, what);
    svc_logf(&cx->app.log, SVC_LOG_WARN, cid, "user operation: database unavailable", "{s:s,s:s}", "operation",
             what, "status", svc_status_code(st));
    return svc_pg_result(st);
}

/* A unique violation on insert or update; conflict is NULL when a concurrent change (deadlock,
 * serialization failure) rather than a taken name caused it. */
static struct svc_result taken(const char *conflict) {
    if (!conflict)
        return SVC_RESULT_ERR(SVC_CONFLICT, "conflict", "a concurrent change conflicted with this request; retry");
    return SVC_RESULT_ERR(SVC_CONFLICT, conflict,
                          !strcmp(conflict, "email_taken") ? "email is already registered" : "user_name is already taken");
}

static struct svc_result ok_raw(svc_status st, char *json) {
    struct svc_result r = {.st = st, .raw = json};
    return r;
}

static bool may_access(const struct svc_principal *who, const char *id) {
    return who->is_admin || !strcmp(who->sub, id);
}

/* ---- create ---- */

static struct svc_result create_user(struct customers_ctx *cx, const char *cid, const json_t *body, bool by_admin) {
    static const char *const reg_fields[] = {"user_name", "email", "name", "password", NULL};
    static const char *const admin_fields[] = {"user_name", "email", "name", "password", "role", "permissions", NULL};
    json_t *fields = json_object();
    users_reject_unknown(body, by_admin ? admin_fields : reg_fields, fields);
    const char *user_name = opt_str(body, "user_name", fields, NULL);
    const char *email = opt_str(body, "email", fields, NULL);
    const char *name = opt_str(body, "name", fields, NULL);
    bool has_pw = false;
    const char *password = opt_str(body, "password", fields, &has_pw);
    const char *role = by_admin ? opt_str(body, "role", fields, NULL) : NULL;
    check(fields, "user_name", users_check_user_name(user_name));
    check(fields, "email", users_check_email(email));
    check(fields, "name", users_check_name(name));
    if (!by_admin || has_pw) {
        const char *reason = NULL;
        if (!password) reason = "required";
        else if (!password_policy_check(password, user_name, email, &reason)) { /* reason set */ }
        check(fields, "password", reason);
    }
    if (role) check(fields, "role", users_check_role(role));
    json_t *perms = by_admin ? json_object_get(body, "permissions") : NULL;
    if (perms) check(fields, "permissions", users_check_permissions(perms));
    if (json_object_size(fields) > 0) return validation_failed(fields);
    json_decref(fields);

    char hash[PASSWORD_ENCODED_MAX] = "";
    if (password && password_hash(&cx->pw_params, password, hash, sizeof hash) != 0)
        return internal(cx, cid, "password_hash");
    struct user_new u = {user_name, email, name, password ? hash : NULL, role ? role : "user", perms};
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "insert", st);
    char *json = NULL;
    const char *conflict = NULL;
    st = users_repo_insert(c, &u, &json, &conflict);
    users_repo_close(cx->app.pg, c);
    if (st == SVC_CONFLICT) return taken(conflict);
    if (st != SVC_OK) return db_failed(cx, cid, "insert", st);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "user created", "{s:b}", "by_admin", by_admin);
    return ok_raw(SVC_CREATED, json);
}

struct svc_result users_register(struct customers_ctx *cx, const char *cid, const json_t *body) {
    return create_user(cx, cid, body, false);
}

struct svc_result users_create(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                               const json_t *body) {
    if (!who->is_admin) return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required");
    return create_user(cx, cid, body, true);
}

/* ---- read ---- */

struct svc_result users_get(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                            const char *id) {
    if (!svc_uuid_is_valid(id) || !may_access(who, id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    char *json = user_cache_get_by_id(cx, id);
    if (json) return ok_raw(SVC_OK, json);
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "get", st);
    st = users_repo_get_json(c, id, false, &json);
    users_repo_close(cx->app.pg, c);
    if (st == SVC_NOT_FOUND || st == SVC_INVALID) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    if (st != SVC_OK) return db_failed(cx, cid, "get", st);
    user_cache_put(cx, json);
    return ok_raw(SVC_OK, json);
}

struct svc_result users_get_by_name(struct customers_ctx *cx, const char *cid,
                                    const struct svc_principal *who, const char *user_name) {
    if (users_check_user_name(user_name)) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    char *json = user_cache_get_by_name(cx, user_name);
    if (!json) {
        svc_status st;
        PGconn *c = users_repo_open(cx->app.pg, &st);
        if (!c) return db_failed(cx, cid, "get_by_name", st);
        st = users_repo_get_json_by_name(c, user_name, &json);
        users_repo_close(cx->app.pg, c);
        if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
        if (st != SVC_OK) return db_failed(cx, cid, "get_by_name", st);
        user_cache_put(cx, json);
    }
    if (!who->is_admin) {
        /* self only: compare the id inside the JSON with the caller */
        json_t *u = json_loads(json, 0, NULL);
        const char *id = json_string_value(json_object_get(u, "id"));
        bool self = id && !strcmp(id, who->sub);
        json_decref(u);
        if (!self) {
            free(json);
            return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
        }
    }
    return ok_raw(SVC_OK, json);
}

const char *users_check_search(const char *s) {
    size_t len = strlen(s);
    if (len > 100) return "at most 100 bytes";
    enum svc_text_verdict v = svc_text_check(s, len, 0, NULL);
    return v == SVC_TEXT_OK ? NULL : svc_text_reason(v);
}

struct svc_result users_list(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                             const struct svc_page_params *paging, const char *search,
                             const char *include_deleted) {
    if (!who->is_admin) return SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required");
    json_t *fields = json_object();
    struct svc_page page;
    bool ok = svc_page_parse(&users_list_kind, paging, &page, fields);
    const char *why = search && *search ? users_check_search(search) : NULL;
    if (why) {
        svc_query_reason(fields, "search", why);
        ok = false;
    }
    bool incl = false;
    if (!svc_query_bool(fields, "include_deleted", include_deleted, false, &incl)) ok = false;
    if (!ok) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "list", st);
    char *json = NULL;
    st = users_repo_list(c, &page, search, incl, &json);
    users_repo_close(cx->app.pg, c);
    if (st != SVC_OK) return db_failed(cx, cid, "list", st);
    return ok_raw(SVC_OK, json);
}

/* ---- update / delete ---- */

struct svc_result users_update(struct customers_ctx *cx, const char *cid, const char *client_ip,
                               const struct svc_principal *who, const char *id, const json_t *body) {
    if (!svc_uuid_is_valid(id) || !may_access(who, id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    if (!who->is_admin && (json_object_get(body, "role") || json_object_get(body, "permissions"))) {
        struct svc_result r = SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden_fields", "only an admin may change role or permissions");
        r.details = json_pack("{s:[s,s]}", "fields", "role", "permissions");
        return r;
    }
    static const char *const allowed[] = {"name", "email", "password", "current_password", "role", "permissions", NULL};
    json_t *fields = json_object();
    users_reject_unknown(body, allowed, fields);
    const char *name = opt_str(body, "name", fields, NULL);
    const char *email = opt_str(body, "email", fields, NULL);
    const char *password = opt_str(body, "password", fields, NULL);
    const char *current = opt_str(body, "current_password", fields, NULL);
    const char *role = opt_str(body, "role", fields, NULL);
    if (name) check(fields, "name", users_check_name(name));
    if (email) check(fields, "email", users_check_email(email));
    if (role) check(fields, "role", users_check_role(role));
    json_t *perms = json_object_get(body, "permissions");
    if (perms) check(fields, "permissions", users_check_permissions(perms));
    bool self = !strcmp(who->sub, id);
    if (password) {
        const char *reason = NULL;
        if (!password_policy_check(password, NULL, email, &reason)) check(fields, "password", reason);
        if (self && !current) check(fields, "current_password", "required to change your own password");
    }
    if (json_object_size(fields)) return validation_failed(fields);
    json_decref(fields);
    /* current_password is a password guess: it shares the login guard's counters (this account,
     * this client address), so a stolen access token is no way around the login lockout */
    bool guarded = password && self;
    char account[LOGIN_GUARD_KEY_LEN];
    if (guarded) {
        login_guard_account(id, NULL, account);
        long wait = login_guard_check(cx, cid, account, client_ip);
        if (wait > 0) return login_guard_refusal(wait);
    }

    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "update", st);
    struct svc_result res;
    struct user_auth_row row;
    st = users_repo_get_auth(c, id, &row);
    if (st != SVC_OK || row.deleted) {
        if (st == SVC_OK) user_auth_row_free(&row);
        res = st == SVC_OK || st == SVC_NOT_FOUND || st == SVC_INVALID
                  ? SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found")
                  : db_failed(cx, cid, "update_lookup", st);
        goto out;
    }
    char hash[PASSWORD_ENCODED_MAX];
    if (password) {
        if (guarded) {
            if (!(row.password_hash && password_verify(row.password_hash, current))) {
                user_auth_row_free(&row);
                login_guard_failed(cx, account, client_ip);
                svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "current password wrong", "{s:s}", "user_id", id);
                res = SVC_RESULT_ERR(SVC_FORBIDDEN, "current_password_invalid", "current password is wrong");
                goto out;
            }
            login_guard_succeeded(cx, account);
        }
        if (password_hash(&cx->pw_params, password, hash, sizeof hash) != 0) {
            user_auth_row_free(&row);
            res = internal(cx, cid, "password_hash");
            goto out;
        }
    }
    user_auth_row_free(&row);
    struct user_patch p = {name, email, password ? hash : NULL, role, perms};
    char *json = NULL;
    const char *conflict = NULL;
    st = users_repo_update(c, id, &p, &json, &conflict);
    if (st == SVC_OK) {
        json_t *u = json_loads(json, 0, NULL);
        user_cache_invalidate(cx, id, json_string_value(json_object_get(u, "user_name")));
        json_decref(u);
        if (password || role || perms) sessions_note_user_changed(cx, cid, id, password != NULL);
        res = ok_raw(SVC_OK, json);
    } else if (st == SVC_CONFLICT) {
        res = taken(conflict);
    } else if (st == SVC_NOT_FOUND) {
        res = SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    } else {
        res = db_failed(cx, cid, "update", st);
    }
out:
    users_repo_close(cx->app.pg, c);
    return res;
}

struct svc_result users_delete(struct customers_ctx *cx, const char *cid, const struct svc_principal *who,
                               const char *id) {
    if (!svc_uuid_is_valid(id) || !may_access(who, id))
        return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    /* Sessions are revoked before the row changes, so a deletion never answers 204 while the
     * user's tokens still work: with Redis unreachable nothing changes and the client retries.
     * A second pass after the update catches a login that raced the first one. */
    if (sessions_revoke_user(cx, cid, id) != 0)
        return SVC_RESULT_ERR(SVC_UNAVAILABLE, "session_store_unavailable",
                              "the user's sessions cannot be revoked right now; nothing was changed");
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "delete", st);
    char *user_name = NULL;
    st = users_repo_soft_delete(c, id, &user_name);
    users_repo_close(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    if (st != SVC_OK) return db_failed(cx, cid, "delete", st);
    user_cache_invalidate(cx, id, user_name);
    free(user_name);
    (void)sessions_revoke_user(cx, cid, id); /* logged on failure */
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "user soft-deleted", "{s:s}", "user_id", id);
    return (struct svc_result){.st = SVC_NO_CONTENT};
}

struct svc_result users_internal_status(struct customers_ctx *cx, const char *cid, const char *id) {
    if (!svc_uuid_is_valid(id)) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return db_failed(cx, cid, "internal_status", st);
    char *json = NULL;
    st = users_repo_get_status_json(c, id, &json);
    users_repo_close(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return SVC_RESULT_ERR(SVC_NOT_FOUND, "user_not_found", "user not found");
    if (st != SVC_OK) return db_failed(cx, cid, "internal_status", st);
    return ok_raw(SVC_OK, json);
}

int users_ensure_admin(struct customers_ctx *cx) {
    if (!cx->admin_user_name || !cx->admin_password) return 0;
    char hash[PASSWORD_ENCODED_MAX];
    if (password_hash(&cx->pw_params, cx->admin_password, hash, sizeof hash) != 0) return -1;
    svc_status st;
    PGconn *c = users_repo_open(cx->app.pg, &st);
    if (!c) return -1;
    struct user_new u = {cx->admin_user_name, NULL, "Administrator", hash, "admin", NULL};
    bool inserted = false;
    st = users_repo_insert_if_absent(c, &u, &inserted);
    users_repo_close(cx->app.pg, c);
    if (st != SVC_OK) {
        svc_log(&cx->app.log, SVC_LOG_ERROR, NULL, "cannot create the first admin", NULL);
        return -1;
    }
    if (inserted) svc_log(&cx->app.log, SVC_LOG_INFO, NULL, "first admin created", NULL);
    return 0;
}
