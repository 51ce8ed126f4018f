# sync-service authenticates to customers-service with client credentials.
stack_env SERVICE_CLIENT_ID sync
stack_env SERVICE_CLIENT_SECRET_FILE "$(ensure_secret client_sync.secret)"
stack_env CUSTOMERS_URL "http://127.0.0.1:$INTERNAL_PORT"
stack_env LEGACY_API_URL "http://127.0.0.1:$LEGACY_PORT/users"
stack_env SYNC_CRON "${SYNC_CRON:-off}"   # the local stack imports on demand (POST /api/sync) unless SYNC_CRON is exported
# The operator dashboard is on for the local stack (off by default elsewhere): basic auth as
# "operator" with a generated password (secrets/dashboard.password; `make up` prints where).
stack_env ENABLE_QUEUE_DASHBOARD "${ENABLE_QUEUE_DASHBOARD:-true}"
stack_env QUEUE_DASHBOARD_USER operator
stack_env QUEUE_DASHBOARD_PASSWORD_FILE "$(ensure_secret dashboard.password)"
# Tenants' ERP API keys are sealed at rest with this AES-256-GCM key (64 hex characters), made once
# per stack. The local stack's ERPs (the erp-api simulator, test ERPs) run on this machine, which
# the SSRF guard refuses unless allowed: allow loopback by name and address.
tenant_key="$SECRETS_DIR/tenant_secrets.key"
if [[ ! -s "$tenant_key" ]]; then
    (umask 077 && openssl rand -hex 32 >"$tenant_key.tmp" && mv "$tenant_key.tmp" "$tenant_key")
fi
stack_env TENANT_SECRETS_KEY_FILE "$tenant_key"
stack_env ERP_ALLOWED_HOSTS "${ERP_ALLOWED_HOSTS:-127.0.0.1,localhost}"
# The ERP schedule is off in the local stack (syncs on demand: POST /api/tenants/{id}/sync) unless
# ERP_SYNC_CUSTOMERS_CRON / ERP_SYNC_PRODUCTS_CRON are exported.
stack_env ERP_SYNC_CUSTOMERS_CRON "${ERP_SYNC_CUSTOMERS_CRON:-off}"
stack_env ERP_SYNC_PRODUCTS_CRON "${ERP_SYNC_PRODUCTS_CRON:-off}"
