# transactions-service authenticates to customers-service with client credentials.
stack_env SERVICE_CLIENT_ID transactions
stack_env SERVICE_CLIENT_SECRET_FILE "$(ensure_secret client_transactions.secret)"
stack_env CUSTOMERS_URL "http://127.0.0.1:$INTERNAL_PORT"
# Resilience timings pass through when the caller sets them (scripts/test-all does, so the e2e
# fault and invariant tests see the breaker recover in seconds); unset, the service's production
# defaults apply (docs/operations.md).
for v in CUSTOMERS_BREAKER_OPEN_MS CUSTOMERS_BREAKER_FAILURES CUSTOMERS_RETRY_BASE_MS CUSTOMERS_RETRY_CAP_MS; do
    if [[ -n ${!v:-} ]]; then stack_env "$v" "${!v}"; fi
done
