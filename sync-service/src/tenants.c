/* Tenants admin API use cases (see tenants.h). */
#include "tenants.h"

#include <stdlib.h>
#include <string.h>

#include "svc/aead.h"
#include "svc/cid.h"
#include "svc/pg.h"
#include "svc/utf8.h"
#include "tenants_repo.h"

#define FORBIDDEN SVC_RESULT_ERR(SVC_FORBIDDEN, "forbidden", "admin role required")
#define NOT_FOUND SVC_RESULT_ERR(SVC_NOT_FOUND, "tenant_not_found", "no such tenant")

static struct svc_result db_error(struct sync_ctx *cx, const char *cid, const char *what, svc_status st) {
    svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "tenants: database call failed", "{s:s,s:s}", "call", what, "status",
             svc_status_code(st));
    return svc_pg_result(st);
}

static struct svc_result raw(svc_status st, char *json) {
    struct svc_result r = {.st = st, .raw = json};
    return r;
}

static void reason(json_t *fields, const char *name, const char *why) {
    if (!json_object_get(fields, name)) json_object_set_new(fields, name, json_string(why));
}

static bool name_ok(const char *s) {
    size_t chars = 0;
    if (svc_text_check(s, strlen(s), 0, &chars) != SVC_TEXT_OK || chars == 0 || chars > TENANT_NAME_MAX) return false;
    return strspn(s, " ") < strlen(s);   /* not only spaces */
}

static bool api_key_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > TENANT_API_KEY_MAX) return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f) return false;
    return true;
}

void tenants_validate(const json_t *body, bool create, json_t *fields) {
    static const char *const known[] = {"name", "erpBaseUrl", "apiKey", "isActive", NULL};
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)body, key, v) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++) ok = strcmp(*k, key) == 0;
        if (!ok) reason(fields, key, "unknown field");
    }
    const char *names[3] = {"name", "erpBaseUrl", "apiKey"};
    for (int i = 0; i < 3; i++) {
        v = json_object_get(body, names[i]);
        if (!v) {
            if (create) reason(fields, names[i], "required");
        } else if (!json_is_string(v)) {
            reason(fields, names[i], "must be a string");
        }
    }
    v = json_object_get(body, "name");
    if (json_is_string(v) && !name_ok(json_string_value(v)))
        reason(fields, "name", "must be 1-200 characters, not only spaces, without control characters");
    v = json_object_get(body, "erpBaseUrl");
    if (json_is_string(v) && (json_string_length(v) == 0 || json_string_length(v) > ERP_URL_MAX))
        reason(fields, "erpBaseUrl", "must be a URL of 1-2048 characters");
    v = json_object_get(body, "apiKey");
    if (json_is_string(v) && !api_key_ok(json_string_value(v)))
        reason(fields, "apiKey", "must be 1-512 printable ASCII characters without spaces");
    v = json_object_get(body, "isActive");
    if (v && !json_is_boolean(v)) reason(fields, "isActive", "must be a boolean");
}

/* 400 for bad fields, 422 for a refused URL; SVC_OK when the body may be used. *url_out gets the
 * URL to store (trailing '/' dropped; malloc'd) when one is given. */
static struct svc_result check_body(struct sync_ctx *cx, const json_t *body, bool create, char **url_out) {
    *url_out = NULL;
    json_t *fields = json_object();
    if (!fields) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    tenants_validate(body, create, fields);
    if (json_object_size(fields) > 0) {
        struct svc_result r = SVC_RESULT_ERR(SVC_INVALID, "validation_failed", "some fields are invalid");
        r.details = json_pack("{s:o}", "fields", fields);
        return r;
    }
    json_decref(fields);
    const char *url = json_string_value(json_object_get(body, "erpBaseUrl"));
    if (!url) return (struct svc_result){.st = SVC_OK};
    char *copy = strdup(url);
    if (!copy) return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    size_t n = strlen(copy);
    const char *sep = strstr(copy, "://");
    size_t keep = sep ? (size_t)(sep - copy) + 4 : n;   /* never the host's first character */
    while (n > keep && copy[n - 1] == '/') copy[--n] = '\0';
    const char *why = NULL;
    if (erp_url_check(copy, &cx->erp.allow, cx->erp.resolver, cx->erp.resolver_arg, &why) != 0) {
        free(copy);
        struct svc_result r = SVC_RESULT_ERR(SVC_UNPROCESSABLE, "erp_url_refused", "erpBaseUrl is not allowed");
        r.details = json_pack("{s:s,s:s}", "field", "erpBaseUrl", "reason", why);
        return r;
    }
    *url_out = copy;
    return (struct svc_result){.st = SVC_OK};
}

/* Seals the API key of body (if any) for tenant id into *sealed (malloc'd). */
static bool seal_key(struct sync_ctx *cx, const json_t *body, const char *id, unsigned char **sealed, size_t *len) {
    *sealed = NULL;
    *len = 0;
    const char *key = json_string_value(json_object_get(body, "apiKey"));
    if (!key) return true;
    size_t n = strlen(key);
    *sealed = malloc(n + SVC_AEAD_OVERHEAD);
    if (!*sealed) return false;
    *len = svc_aead_seal(&cx->erp.keys, id, strlen(id), key, n, *sealed);
    if (*len == 0) {
        free(*sealed);
        *sealed = NULL;
        return false;
    }
    return true;
}

/* The row's new values from a checked body (create: every field required; PATCH: what it names,
 * is_active -1 when absent), the API key sealed for tenant id. On SVC_OK the caller frees f with
 * fields_free; name borrows from body. */
static struct svc_result body_fields(struct sync_ctx *cx, const char *cid, const json_t *body, bool create,
                                     const char *id, struct tenant_fields *f) {
    char *url;
    struct svc_result r = check_body(cx, body, create, &url);
    if (r.st != SVC_OK) return r;
    unsigned char *sealed;
    size_t sealed_len;
    if (!seal_key(cx, body, id, &sealed, &sealed_len)) {
        free(url);
        svc_logf(&cx->app.log, SVC_LOG_ERROR, cid, "tenants: cannot seal the API key", NULL);
        return SVC_RESULT_ERR(SVC_INTERNAL, NULL, "internal error");
    }
    json_t *active = json_object_get(body, "isActive");
    *f = (struct tenant_fields){.name = json_string_value(json_object_get(body, "name")),
                                .erp_base_url = url,
                                .sealed_key = sealed,
                                .sealed_len = sealed_len,
                                .is_active = active ? json_is_true(active) : create ? 1 : -1};
    return r;
}

static void fields_free(struct tenant_fields *f) {
    free((char *)f->erp_base_url);
    free((unsigned char *)f->sealed_key);
}

struct svc_result tenants_create(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                 const json_t *body, char id_out[SVC_UUID_LEN + 1]) {
    if (!who->is_admin) return FORBIDDEN;
    svc_uuid7(id_out);
    struct tenant_fields f;
    struct svc_result r = body_fields(cx, cid, body, true, id_out, &f);
    if (r.st != SVC_OK) return r;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    char *json = NULL;
    if (c) {
        st = tenants_repo_insert(c, id_out, &f, &json);
        svc_pg_release(cx->app.pg, c);
    }
    fields_free(&f);
    if (st != SVC_OK) return db_error(cx, cid, "insert tenant", st);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "tenants: created", "{s:s,s:b}", "tenant_id", id_out, "is_active",
             f.is_active != 0);
    return raw(SVC_CREATED, json);
}

struct svc_result tenants_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                               const struct svc_page_params *params) {
    if (!who->is_admin) return FORBIDDEN;
    json_t *fields = json_object();
    struct svc_page p;
    if (!svc_page_parse(&TENANTS_LIST, params, &p, fields)) return svc_query_invalid(fields);
    json_decref(fields);
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = tenants_repo_list(c, &p, &json);
    svc_pg_release(cx->app.pg, c);
    if (st != SVC_OK) return db_error(cx, cid, "list tenants", st);
    return raw(SVC_OK, json);
}

struct svc_result tenants_get(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id) {
    if (!who->is_admin) return FORBIDDEN;
    if (!id || !svc_uuid_is_valid(id)) return NOT_FOUND;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    char *json = NULL;
    st = tenants_repo_get(c, id, &json);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return NOT_FOUND;
    if (st != SVC_OK) return db_error(cx, cid, "get tenant", st);
    return raw(SVC_OK, json);
}

struct svc_result tenants_patch(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id,
                                const json_t *body) {
    if (!who->is_admin) return FORBIDDEN;
    if (!id || !svc_uuid_is_valid(id)) return NOT_FOUND;
    struct tenant_fields f;
    struct svc_result r = body_fields(cx, cid, body, false, id, &f);
    if (r.st != SVC_OK) return r;
    bool url_changed = f.erp_base_url != NULL, key_changed = f.sealed_key != NULL;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    char *json = NULL;
    if (c) {
        st = tenants_repo_update(c, id, &f, &json);
        svc_pg_release(cx->app.pg, c);
    }
    fields_free(&f);
    if (st == SVC_NOT_FOUND) return NOT_FOUND;
    if (st != SVC_OK) return db_error(cx, cid, "update tenant", st);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "tenants: updated", "{s:s,s:b,s:b}", "tenant_id", id, "erp_url_changed",
             url_changed, "api_key_changed", key_changed);
    return raw(SVC_OK, json);
}

struct svc_result tenants_delete(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id) {
    if (!who->is_admin) return FORBIDDEN;
    if (!id || !svc_uuid_is_valid(id)) return NOT_FOUND;
    svc_status st;
    PGconn *c = svc_pg_acquire(cx->app.pg, -1, &st);
    if (!c) return db_error(cx, cid, "acquire", st);
    st = tenants_repo_delete(c, id);
    svc_pg_release(cx->app.pg, c);
    if (st == SVC_NOT_FOUND) return NOT_FOUND;
    if (st != SVC_OK) return db_error(cx, cid, "delete tenant", st);
    svc_logf(&cx->app.log, SVC_LOG_INFO, cid, "tenants: deleted", "{s:s}", "tenant_id", id);
    return (struct svc_result){.st = SVC_NO_CONTENT};
}
