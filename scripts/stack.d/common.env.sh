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
