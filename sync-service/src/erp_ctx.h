/* The ERP synchronisation's part of the sync-service context (struct sync_ctx embeds one):
 * its settings, the tenants' key ring and the SSRF allow list.
 *
 * Filled in main.c before serving (erp_settings_load), read-only afterwards; the key ring is wiped
 * at exit. */
#ifndef ERP_CTX_H
#define ERP_CTX_H

#include "erp_url.h"
#include "svc/aead.h"
#include "svc/config.h"

struct erp {
    struct svc_aead_keyring keys;   /* TENANT_SECRETS_KEY_FILE (seals), _PREVIOUS_KEY_FILE (opens) */
    struct erp_allow allow;         /* ERP_ALLOWED_HOSTS */
    erp_resolver resolver;          /* name resolution of the SSRF check (tests inject their own) */
    void *resolver_arg;
};

/* Reads the ERP settings from c; problems are recorded as config errors. */
void erp_settings_load(struct erp *e, struct svc_config *c);
void erp_free(struct erp *e);

#endif
