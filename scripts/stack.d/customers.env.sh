# customers-service: signing key, first admin, and the secrets of the services allowed to ask for
# service tokens (POST /api/auth/token).
stack_env JWT_PRIVATE_KEY_FILE "$SECRETS_DIR/jwt-private/current.pem"
stack_env ADMIN_USER_NAME admin
stack_env ADMIN_PASSWORD_FILE "$(ensure_secret admin_password)"
stack_env SERVICE_CLIENTS transactions,sync
stack_env SERVICE_CLIENT_TRANSACTIONS_SECRET_FILE "$(ensure_secret client_transactions.secret)"
stack_env SERVICE_CLIENT_SYNC_SECRET_FILE "$(ensure_secret client_sync.secret)"
# The e2e suite makes many failed logins from 127.0.0.1; it raises the per-IP threshold this way.
stack_env LOGIN_MAX_FAILURES_IP "${LOGIN_MAX_FAILURES_IP:-20}"
