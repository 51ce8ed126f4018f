# Every service verifies access tokens with the public keys in one directory. The signing key pair
# is generated once per stack; only customers-service is given the private half (customers.env.sh).
priv_dir="$SECRETS_DIR/jwt-private"
pub_dir="$SECRETS_DIR/jwt-public"
if [[ ! -s "$priv_dir/current.pem" ]]; then
    mkdir -p "$priv_dir" "$pub_dir"
    chmod 700 "$priv_dir"
    "$ROOT/scripts/gen-jwt-key" "$priv_dir/current.pem" >/dev/null
fi
if [[ ! -s "$pub_dir/current.pub.pem" ]]; then
    mkdir -p "$pub_dir"
    cp "$priv_dir/current.pub.pem" "$pub_dir/current.pub.pem"
fi
stack_env JWT_PUBLIC_KEYS_DIR "$pub_dir"
stack_env JWT_ISSUER platform-customers
stack_env JWT_AUDIENCE platform
# The services calling customers-service (svc/customers.h) share one set of CUSTOMERS_* settings.
# Resilience timings pass through when the caller sets them (scripts/test-all does, so the e2e
# fault and invariant tests see the breaker recover in seconds); unset, the production defaults
# apply (docs/operations.md).
if [[ $SERVICE == transactions || $SERVICE == sync ]]; then
    for v in CUSTOMERS_BREAKER_OPEN_MS CUSTOMERS_BREAKER_FAILURES CUSTOMERS_RETRY_BASE_MS CUSTOMERS_RETRY_CAP_MS; do
        if [[ -n ${!v:-} ]]; then stack_env "$v" "${!v}"; fi
    done
fi
