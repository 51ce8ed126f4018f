#!/bin/sh
# Create or update what the manifests mount but do not contain, in the cluster kubectl points at:
#   Secret    platform-secrets  database, Redis, admin and service-client passwords, the token
#                               signing key, the key sealing tenants' ERP API keys (keys as in
#                               deploy/gen-secrets.sh);
#   ConfigMap jwt-public-keys   every *.pub.pem key the services accept (keep an old key here
#                               until the tokens it signed have expired: rotation).
#
#   deploy/k8s/create-secrets.sh [NAMESPACE]     (default: platform)
#
# Values come from deploy/secrets/, which deploy/gen-secrets.sh fills with random values where a
# file is missing: put your own values there first (e.g. the managed PostgreSQL's admin password
# in postgres_password) to use them. Nothing is printed; kubectl reads the files directly.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ns=${1:-platform}
dir="$here/../secrets"
"$here/../gen-secrets.sh" "$dir" >/dev/null
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
set --
for key in postgres_password redis_password customers_db_password transactions_db_password \
           sync_db_password admin_password client_transactions_secret client_sync_secret \
           tenant_secrets_key jwt-private.pem; do
    set -- "$@" "--from-file=$key=$dir/$key"
done
kubectl -n "$ns" create secret generic platform-secrets "$@" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" create configmap jwt-public-keys --from-file="$dir/jwt-public" --dry-run=client -o yaml | kubectl apply -f -
