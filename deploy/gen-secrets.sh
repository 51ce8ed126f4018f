#!/bin/sh
# Create the secret files docker-compose.yml mounts (deploy/secrets/), keeping any that exist.
#
#   deploy/gen-secrets.sh [DIR]      (default: deploy/secrets next to this script)
#
# Passwords, client secrets and the AES-256 key that seals tenants' ERP API keys
# (tenant_secrets_key) are 32 random bytes, hex-encoded (no quoting issues anywhere they are used). The token signing key pair comes from scripts/gen-jwt-key: jwt-private.pem (a compose
# secret, customers-service only) and jwt-public/jwt-private.pub.pem, the directory every service
# loads verification keys from (mounted read-only; keep an old *.pub.pem there after a rotation
# until the tokens it signed have expired).
# The directory is 0700 so no other host user can read it; the files are 0644 because
# docker-compose (without swarm) bind-mounts them as they are and the services run as an
# unprivileged user (uid 10001) inside their containers. deploy/secrets/ is git-ignored.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$here/secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
for name in postgres_password redis_password customers_db_password transactions_db_password \
            sync_db_password admin_password client_transactions_secret client_sync_secret \
            tenant_secrets_key; do
    f="$dir/$name"
    if [ ! -s "$f" ]; then
        openssl rand -hex 32 > "$f.tmp"
        mv "$f.tmp" "$f"
        echo "gen-secrets: created $f"
    fi
    chmod 644 "$f"
done

if [ ! -s "$dir/jwt-private.pem" ]; then
    "$here/../scripts/gen-jwt-key" "$dir/jwt-private.pem" >/dev/null
    echo "gen-secrets: created $dir/jwt-private.pem"
fi
mkdir -p "$dir/jwt-public"
chmod 755 "$dir/jwt-public"
if [ ! -s "$dir/jwt-public/jwt-private.pub.pem" ]; then
    cp "$dir/jwt-private.pub.pem" "$dir/jwt-public/jwt-private.pub.pem"
fi
chmod 644 "$dir/jwt-private.pem" "$dir/jwt-public/jwt-private.pub.pem"
