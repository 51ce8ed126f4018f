#!/bin/sh
# Render nginx/nginx.conf.template for a container (or for `nginx -t` in tests/static/run).
#
#   render.sh TEMPLATE OUTPUT
#
# Environment (defaults in parentheses):
#   RUN_DIR (/var/lib/platform-nginx)   pid, temp dirs and logs; must contain logs/ and nginx/
#   LISTEN_PORT (8080)                  argument of `listen` of the public server
#   INTERNAL_LISTEN (8081)              argument of `listen` of the east-west gateway (service-to-
#                                       service calls, /internal/); never publish this port
#   AUTH_RATE (10r/s), AUTH_BURST (20)  limit_req rate and burst for /api/auth per client address
#   NGINX_USER (www-data)               worker user when the master runs as root; empty: no `user`
#   CUSTOMERS_UPSTREAMS, TRANSACTIONS_UPSTREAMS, SYNC_UPSTREAMS (required)
#                                       space-separated host:port lists, one upstream server each
#   TRANSACTIONS_READ_UPSTREAMS (TRANSACTIONS_UPSTREAMS)  transactions-service's read listeners
#                                       (HTTP_READ_PORT), which get its GET and HEAD requests
# Values are checked against a strict character set before they reach sed, so no input can
# inject configuration or break the substitution.
set -eu

[ $# -eq 2 ] || { echo "usage: render.sh TEMPLATE OUTPUT" >&2; exit 2; }
template=$1
output=$2
RUN_DIR=${RUN_DIR:-/var/lib/platform-nginx}
LISTEN_PORT=${LISTEN_PORT:-8080}
INTERNAL_LISTEN=${INTERNAL_LISTEN:-8081}
AUTH_RATE=${AUTH_RATE:-10r/s}
AUTH_BURST=${AUTH_BURST:-20}
NGINX_USER=${NGINX_USER-www-data}

fail() { echo "render.sh: $*" >&2; exit 1; }
check() { # name value regex
    printf '%s' "$2" | grep -Eqx "$3" || fail "$1 is malformed: '$2'"
}
check RUN_DIR "$RUN_DIR" '/[A-Za-z0-9._/-]*'
check LISTEN_PORT "$LISTEN_PORT" '([0-9.]+:)?[0-9]{1,5}'
check INTERNAL_LISTEN "$INTERNAL_LISTEN" '([0-9.]+:)?[0-9]{1,5}'
check AUTH_RATE "$AUTH_RATE" '[0-9]+r/[sm]'
check AUTH_BURST "$AUTH_BURST" '[0-9]+'
[ -z "$NGINX_USER" ] || check NGINX_USER "$NGINX_USER" '[a-z_][a-z0-9_-]*'

servers() { # name list
    [ -n "$2" ] || fail "$1 is empty"
    out=
    for hp in $2; do
        check "$1" "$hp" '[A-Za-z0-9._-]+:[0-9]{1,5}'
        out="${out}server ${hp} max_fails=2 fail_timeout=5s; "
    done
    printf '%s' "$out"
}
customers=$(servers CUSTOMERS_UPSTREAMS "${CUSTOMERS_UPSTREAMS:-}")
transactions=$(servers TRANSACTIONS_UPSTREAMS "${TRANSACTIONS_UPSTREAMS:-}")
transactions_read=$(servers TRANSACTIONS_READ_UPSTREAMS "${TRANSACTIONS_READ_UPSTREAMS:-${TRANSACTIONS_UPSTREAMS:-}}")
sync=$(servers SYNC_UPSTREAMS "${SYNC_UPSTREAMS:-}")
user_directive=
[ -z "$NGINX_USER" ] || user_directive="user ${NGINX_USER};"

tmp="${output}.tmp.$$"
sed -e "s|@USER_DIRECTIVE@|${user_directive}|" \
    -e "s|@RUN_DIR@|${RUN_DIR}|g" \
    -e "s|@LISTEN_PORT@|${LISTEN_PORT}|g" \
    -e "s|@INTERNAL_LISTEN@|${INTERNAL_LISTEN}|g" \
    -e "s|@AUTH_RATE@|${AUTH_RATE}|g" \
    -e "s|@AUTH_BURST@|${AUTH_BURST}|g" \
    -e "s|@CUSTOMERS_SERVERS@|${customers}|" \
    -e "s|@TRANSACTIONS_SERVERS@|${transactions}|" \
    -e "s|@TRANSACTIONS_READ_SERVERS@|${transactions_read}|" \
    -e "s|@SYNC_SERVERS@|${sync}|" \
    -e "s|@CUSTOMERS_HEALTH_SERVERS@|$(printf '%s' "$customers" | sed 's/max_fails=2 fail_timeout=5s/max_fails=0/g')|g" \
    -e "s|@TRANSACTIONS_HEALTH_SERVERS@|$(printf '%s' "$transactions" | sed 's/max_fails=2 fail_timeout=5s/max_fails=0/g')|g" \
    -e "s|@SYNC_HEALTH_SERVERS@|$(printf '%s' "$sync" | sed 's/max_fails=2 fail_timeout=5s/max_fails=0/g')|g" \
    "$template" > "$tmp"
if grep -q '@[A-Z_]*@' "$tmp"; then
    rm -f "$tmp"
    fail "unrendered placeholder left in $template"
fi
mv "$tmp" "$output"
