/* ERP settings of sync-service (see erp_ctx.h; the variables are documented in
 * docs/operations.md, "ERP synchronisation"). */
#include <string.h>

#include "erp_ctx.h"

static void load_key(struct erp *e, struct svc_config *c, const char *var, bool required) {
    const char *path = svc_config_str(c, var, required ? NULL : "");
    if (!path || !*path) return;
    struct svc_aead_key k;
    const char *why = NULL;
    if (svc_aead_key_load(path, &k, &why) != 0) {
        svc_config_error(c, var, why);
        return;
    }
    if (svc_aead_keyring_add(&e->keys, &k) != 0) svc_config_error(c, var, "the same key as TENANT_SECRETS_KEY_FILE");
    memset(&k, 0, sizeof k);
}

void erp_settings_load(struct erp *e, struct svc_config *c) {
    memset(e, 0, sizeof *e);
    /* Paths of key files: a key is never put in the environment itself. */
    load_key(e, c, "TENANT_SECRETS_KEY_FILE", true);
    load_key(e, c, "TENANT_SECRETS_PREVIOUS_KEY_FILE", false);
    const char *why = NULL;
    if (erp_allow_parse(svc_config_str(c, "ERP_ALLOWED_HOSTS", ""), &e->allow, &why) != 0)
        svc_config_error(c, "ERP_ALLOWED_HOSTS", why);
}

void erp_free(struct erp *e) { svc_aead_keyring_wipe(&e->keys); }
