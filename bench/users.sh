#!/usr/bin/env bash
# customers-service benchmarks (issue: identity and users):
#   users_get  authenticated GET /api/users/{id} through the platform's Nginx (token verified,
#              session checked, user from the Redis cache) at BENCH_CONNECTIONS (64), against the
#              same Nginx's own `return 200`; then, one after the other, the reference peer
#              ../shared/peers/fastify-users/run.sh (the same read path on Fastify behind its own
#              Nginx) for its ratio. Also the idle RSS of a customers instance.
#   login      logins per second straight to one instance (Argon2id at the configured cost).
# Lines:
#   bench users_get rps=… baseline_rps=… ratio=… peer_ratio=… vs_peer=… p99_ms=… idle_rss_mb=…
#   bench login per_s=…
# Needs the stack's facts in the environment (bench/run-all exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=users
# shellcheck source=bench/lib.bash
source bench/lib.bash
declare -A RPS P99

NGINX_URL=${NGINX_URL:?run through bench/run-all}
RUN_DIR=${RUN_DIR:?}
PEER=${BENCH_PEER_USERS:-../shared/peers/fastify-users/run.sh}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-users.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

json_field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# --- a user and a token --------------------------------------------------------------------------
suffix=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
user="bench_$suffix"
pw="bench-password-$suffix"
code=$(curl -s -o "$TMP/reg" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"user_name\":\"$user\",\"email\":\"$user@bench.example\",\"name\":\"Bench\",\"password\":\"$pw\"}" \
    "$NGINX_URL/api/auth/register")
[[ $code == 201 ]] || bench_die "register answered $code: $(cat "$TMP/reg")"
uid=$(json_field id <"$TMP/reg")
curl -s -H 'Content-Type: application/json' -d "{\"login\":\"$user\",\"password\":\"$pw\"}" \
    "$NGINX_URL/api/auth/login" >"$TMP/login"
token=$(json_field access_token <"$TMP/login") || bench_die "login failed: $(cat "$TMP/login")"
path="/api/users/$uid"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$NGINX_URL$path")
[[ $code == 200 ]] || bench_die "GET $path answered $code"

c1_pid=$(cat "$RUN_DIR/pids/customers-1.pid")
idle_rss=$(rss_mb "$c1_pid")

echo "bench users: wrk -t${BENCH_THREADS:-2} -c${BENCH_CONNECTIONS:-64} -d${BENCH_DURATION:-10s} against $NGINX_URL"
wrk_measure baseline "$NGINX_URL/__nginx_baseline"
wrk_measure users_get "$NGINX_URL$path" -H "Authorization: Bearer $token"
busy_rss=$(rss_mb "$c1_pid")
ours=$(ratio "${RPS[users_get]}" "${RPS[baseline]}")
echo "  ratio users_get/baseline: $ours   customers-1 RSS idle ${idle_rss} MB, after load ${busy_rss} MB"

peer_fields=""
if [[ -x $PEER ]]; then
    echo "bench users: reference peer $PEER (one after the other, never at once)"
    peer_line=$("$PEER" 2>&1 | tee "$TMP/peer.out" | grep -E '^peer fastify_users ' | tail -n 1 || true)
    if [[ -n $peer_line ]]; then
        echo "  $peer_line"
        peer_ratio=$(sed -E 's/.*ratio_via_nginx=([0-9.]+).*/\1/' <<<"$peer_line")
        vs=$(ratio "$ours" "$peer_ratio")
        peer_fields=" peer_ratio=$peer_ratio vs_peer=$vs"
    else
        echo "  peer did not report a result:"; tail -n 5 "$TMP/peer.out"
    fi
else
    echo "bench users: reference peer not found at $PEER (../shared absent): no peer fields"
fi

# --- login/s, straight to one instance (Nginx rate-limits /api/auth per address) ----------------
c1_port=$(awk -F= '/^HTTP_PORT=/ { print $2 }' "$RUN_DIR/env/customers-1.env")
cat >"$TMP/login.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"login":"$user","password":"$pw"}'
LUA
BENCH_CONNECTIONS=${BENCH_LOGIN_CONNECTIONS:-4} BENCH_DURATION=${BENCH_LOGIN_DURATION:-5s} BENCH_WARMUP=1s \
    wrk_measure login "http://127.0.0.1:$c1_port/api/auth/login" -s "$TMP/login.lua"

printf 'bench users_get rps=%.0f baseline_rps=%.0f ratio=%s%s p99_ms=%.3f idle_rss_mb=%s\n' \
    "${RPS[users_get]}" "${RPS[baseline]}" "$ours" "$peer_fields" "${P99[users_get]}" "$idle_rss"
printf 'bench login per_s=%.0f\n' "${RPS[login]}"
