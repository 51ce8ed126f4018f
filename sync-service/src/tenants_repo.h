/* SQL for sync.tenants and nothing else (db/sync/004_erp_tenants.sql).
 *
 * JSON answers are built in SQL (sync.tenant_json, never holding the API key) and returned as
 * malloc'd text the caller frees. The sealed API key travels as bytea (binary parameter in,
 * unescaped bytes out) and is never logged here or anywhere.
 * Errors: SVC_NOT_FOUND (no such tenant), SVC_UNAVAILABLE / SVC_TIMEOUT (database), SVC_INTERNAL.
 * The PGconn is borrowed. */
#ifndef TENANTS_REPO_H
#define TENANTS_REPO_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "svc/cid.h"
#include "svc/paging.h"
#include "svc/status.h"

/* GET /api/tenants: newest first, keyed by (created_at, id). */
extern const struct svc_list TENANTS_LIST;

struct tenant_fields {
    const char *name;                  /* NULL: unchanged (PATCH) */
    const char *erp_base_url;          /* NULL: unchanged */
    const unsigned char *sealed_key;   /* NULL: unchanged */
    size_t sealed_len;
    int is_active;                     /* -1: unchanged, else 0/1 */
};

svc_status tenants_repo_insert(PGconn *c, const char *id, const struct tenant_fields *f, char **json);
svc_status tenants_repo_get(PGconn *c, const char *id, char **json);
/* SVC_OK when the tenant exists, else SVC_NOT_FOUND. */
svc_status tenants_repo_exists(PGconn *c, const char *id);
svc_status tenants_repo_list(PGconn *c, const struct svc_page *p, char **json);
/* Changes the given fields (and updated_at). */
svc_status tenants_repo_update(PGconn *c, const char *id, const struct tenant_fields *f, char **json);
/* Deletes the tenant with everything synchronised for it, in one transaction. */
svc_status tenants_repo_delete(PGconn *c, const char *id);

/* What a sync job needs: the ERP URL, the sealed key (malloc'd), whether active, the creation
 * sequence number. Release with tenants_repo_secret_free. */
struct tenant_secret {
    char id[SVC_UUID_LEN + 1];
    char *erp_base_url;
    unsigned char *sealed_key;
    size_t sealed_len;
    bool is_active;
    long long seq;
};
svc_status tenants_repo_secret(PGconn *c, const char *id, struct tenant_secret *out);
void tenants_repo_secret_free(struct tenant_secret *s);
/* Active tenants after creation sequence number after_seq, in sequence order, at most max: ids
 * and sequence numbers (a slot pages through them, never holding all in memory). */
struct tenant_ref {
    char id[SVC_UUID_LEN + 1];
    long long seq;
};
svc_status tenants_repo_active_page(PGconn *c, long long after_seq, int max, struct tenant_ref *out, int *n);
/* The tenant's activity and creation sequence number (status API); SVC_NOT_FOUND when absent. */
svc_status tenants_repo_brief(PGconn *c, const char *id, bool *is_active, long long *seq);
/* Re-seals a key (key rotation), only when the stored value is still `old`. */
svc_status tenants_repo_reseal(PGconn *c, const char *id, const unsigned char *old, size_t old_len,
                               const unsigned char *sealed, size_t len);

#endif
