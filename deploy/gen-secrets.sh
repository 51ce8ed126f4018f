#!/bin/sh
# Create the secret files docker-compose.yml mounts (deploy/secrets/), keeping any that exist.
#
#   deploy/gen-secrets.sh [DIR]      (default: deploy/secrets next to this script)
#
# Each secret is 32 random bytes, hex-encoded (no quoting issues anywhere they are used).
# The directory is 0700 so no other host user can read it; the files are 0644 because
# docker-compose (without swarm) bind-mounts them as they are, and the services run as an
# unprivileged user inside their containers. deploy/secrets/ is git-ignored (deploy/.gitignore).
set -eu

dir=${1:-$(dirname "$0")/secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
for name in postgres_password redis_password customers_db_password transactions_db_password \
            sync_db_password; do
    f="$dir/$name"
    if [ ! -s "$f" ]; then
        openssl rand -hex 32 > "$f.tmp"
        mv "$f.tmp" "$f"
        echo "gen-secrets: created $f"
    fi
    chmod 644 "$f"
done
