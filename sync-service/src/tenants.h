/* Tenants admin API use cases: validation, the SSRF check of the ERP URL, sealing the API key.
 * No HTTP here (routes_tenants.c translates), no SQL (tenants_repo.c).
 *
 * Rules:
 *  - admins only (403 otherwise);
 *  - body fields: name (1-200 characters, no control characters), erpBaseUrl (string), apiKey
 *    (1-512 printable ASCII characters, no spaces: it becomes a header value), isActive (boolean);
 *    unknown fields are refused; every bad field is listed at once (400 validation_failed);
 *  - then erpBaseUrl must pass erp_url_check (422 erp_url_refused, the reason in details);
 *    a trailing '/' is dropped;
 *  - apiKey is sealed (svc/aead.h) with the tenant id as associated data, never returned or
 *    logged; the answer is the tenant without it (sync.tenant_json).
 * A database failure is logged once here with the correlation id and answered 503/500.
 *
 * Ownership: body is borrowed; results follow svc_result's rules. */
#ifndef TENANTS_H
#define TENANTS_H

#include "svc/auth.h"
#include "svc/paging.h"
#include "sync_ctx.h"

#define TENANT_API_KEY_MAX 512
#define TENANT_NAME_MAX 200

struct svc_result tenants_create(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                                 const json_t *body, char id_out[SVC_UUID_LEN + 1]);
struct svc_result tenants_list(struct sync_ctx *cx, const char *cid, const struct svc_principal *who,
                               const struct svc_page_params *params);
struct svc_result tenants_get(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id);
struct svc_result tenants_patch(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id,
                                const json_t *body);
struct svc_result tenants_delete(struct sync_ctx *cx, const char *cid, const struct svc_principal *who, const char *id);

/* Field validation alone (exposed for tests): adds a reason per bad field to fields. create:
 * name, erpBaseUrl and apiKey are required. */
void tenants_validate(const json_t *body, bool create, json_t *fields);

#endif
