#!/bin/sh
# One-shot database bootstrap for docker-compose (service db-bootstrap, postgres:15 image).
#
# Creates the `platform` database when absent, then runs db/bootstrap.sql as the superuser with
# the three service-role passwords read from the compose secrets. The passwords reach psql on
# stdin as \set lines, never on a command line (visible in ps). Idempotent, like bootstrap.sql:
# running it again resets the role passwords to the current secret files.
#
# Environment: PGHOST (postgres), PGPORT (5432), PGUSER (postgres), SECRETS_DIR (/run/secrets),
# BOOTSTRAP_SQL (/bootstrap/bootstrap.sql).
set -eu

SECRETS_DIR=${SECRETS_DIR:-/run/secrets}
BOOTSTRAP_SQL=${BOOTSTRAP_SQL:-/bootstrap/bootstrap.sql}
export PGHOST="${PGHOST:-postgres}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"

secret() {
    [ -r "$SECRETS_DIR/$1" ] || { echo "db-bootstrap: secret $1 is missing" >&2; exit 1; }
    # psql single-quoted \set argument: double backslashes and quotes, drop a trailing newline.
    tr -d '\n' < "$SECRETS_DIR/$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g"
}

PGPASSWORD=$(tr -d '\n' < "$SECRETS_DIR/postgres_password")
export PGPASSWORD

tries=0
until pg_isready -q; do
    tries=$((tries + 1))
    [ "$tries" -lt 60 ] || { echo "db-bootstrap: postgres not ready after 60 s" >&2; exit 1; }
    sleep 1
done

exists=$(psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'platform'")
if [ "$exists" != "1" ]; then
    psql -X -v ON_ERROR_STOP=1 -d postgres -c 'CREATE DATABASE platform'
fi

{
    printf "\\\\set customers_password '%s'\n" "$(secret customers_db_password)"
    printf "\\\\set transactions_password '%s'\n" "$(secret transactions_db_password)"
    printf "\\\\set sync_password '%s'\n" "$(secret sync_db_password)"
    cat "$BOOTSTRAP_SQL"
} | psql -X -q -v ON_ERROR_STOP=1 -d platform -f -
echo "db-bootstrap: database platform ready"
