# transactions-service authenticates to customers-service with client credentials.
stack_env SERVICE_CLIENT_ID transactions
stack_env SERVICE_CLIENT_SECRET_FILE "$(ensure_secret client_transactions.secret)"
stack_env CUSTOMERS_URL "http://127.0.0.1:$INTERNAL_PORT"
