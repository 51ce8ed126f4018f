#!/usr/bin/env bash
# Measure what the Deployments' resource requests and limits in deploy/k8s/ are sized from:
# per service, the peak resident memory (VmHWM, highest of its two instances) and the CPU used
# (cores, both instances together) while idle and under each kind of load a service sees.
#
#   RUN_DIR=.run/dev deploy/k8s/measure-resources.sh      (a running stack: make up)
#
# Phases (each MEASURE_SECONDS, default 10, wrk with MEASURE_CONNECTIONS, default 32):
#   idle       nothing
#   reads      authenticated GET /api/users/{id} through Nginx          (customers)
#   logins     POST /api/auth/login straight to customers-1, 8 at once  (Argon2id: 19 MiB each)
#   deposits   POST /api/transactions deposits through Nginx            (transactions, customers)
#   import     one legacy import (the simulator's default: 1,000,000 users)  (sync, customers)
# Output: one line per phase and service: "phase service cpu_cores=… rss_peak_mb=…".
# Needs wrk, curl, /usr/bin/python3. Measures this machine (2 cores, shared): a ratio to size
# from, not a capacity figure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
RUN_DIR=${RUN_DIR:-.run/dev}
eval "$(RUN_DIR=$RUN_DIR scripts/stack vars | grep -E '^(NGINX_URL|LEGACY_API_URL)=')"
SECS=${MEASURE_SECONDS:-10}
CONNS=${MEASURE_CONNECTIONS:-32}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/measure.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
HZ=$(getconf CLK_TCK)
INSTANCES=(customers-1 customers-2 transactions-1 transactions-2 sync-1 sync-2)

pid_of() { cat "$RUN_DIR/pids/$1.pid"; }
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hwm_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# Resets the peak RSS counter (VmHWM) of a process: writing 5 to clear_refs.
reset_hwm() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }

declare -A T0
phase_begin() {
    local n p
    for n in "${INSTANCES[@]}"; do p=$(pid_of "$n"); reset_hwm "$p"; T0[$n]=$(ticks "$p"); done
    PHASE_START=$(date +%s.%N)
}
phase_end() {
    local phase=$1 svc n p secs cpu rss
    secs=$(awk -v a="$PHASE_START" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    for svc in customers transactions sync; do
        cpu=0 rss=0
        for n in "$svc-1" "$svc-2"; do
            p=$(pid_of "$n")
            cpu=$((cpu + $(ticks "$p") - T0[$n]))
            rss=$(($(hwm_kb "$p") > rss ? $(hwm_kb "$p") : rss))
        done
        awk -v ph="$phase" -v s="$svc" -v c="$cpu" -v hz="$HZ" -v t="$secs" -v r="$rss" \
            'BEGIN { printf "%-9s %-13s cpu_cores=%.2f rss_peak_mb=%.1f\n", ph, s, c / hz / t, r / 1024 }'
    done
}

json() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
admin_token=$(curl -s "$NGINX_URL/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"login\":\"admin\",\"password\":\"$(cat "$RUN_DIR/secrets/admin_password")\"}" | json access_token)
u="measure_$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')"
uid=$(curl -s "$NGINX_URL/api/auth/register" -H 'Content-Type: application/json' \
    -d "{\"user_name\":\"$u\",\"email\":\"$u@example.com\",\"name\":\"M\",\"password\":\"measure-pw-$u\"}" | json id)
token=$(curl -s "$NGINX_URL/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"login\":\"$u\",\"password\":\"measure-pw-$u\"}" | json access_token)

phase_begin; sleep "$SECS"; phase_end idle

phase_begin
wrk -t2 -c"$CONNS" -d"${SECS}s" -H "Authorization: Bearer $token" "$NGINX_URL/api/users/$uid" >/dev/null
phase_end reads

c1=$(awk -F= '/^HTTP_PORT=/ { print $2 }' "$RUN_DIR/env/customers-1.env")
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' \
    "'{\"login\":\"$u\",\"password\":\"measure-pw-$u\"}'" >"$TMP/login.lua"
phase_begin
wrk -t2 -c8 -d"${SECS}s" -s "$TMP/login.lua" "http://127.0.0.1:$c1/api/auth/login" >/dev/null
phase_end logins

cat >"$TMP/deposit.lua" <<LUA
local n, prefix = 0, tostring(math.random(1, 1e9)) .. tostring(os.time())
function request()
    n = n + 1
    return wrk.format("POST", "/api/transactions", {
        ["Authorization"] = "Bearer $token", ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "measure-" .. prefix .. "-" .. n }, '{"type":"deposit","amount":"0.01"}')
end
LUA
phase_begin
wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$TMP/deposit.lua" "$NGINX_URL/api/transactions" >/dev/null
phase_end deposits

phase_begin
code=$(curl -s -o "$TMP/run" -w '%{http_code}' -X POST -H "Authorization: Bearer $admin_token" \
    -H 'Content-Type: application/json' -d '{}' "$NGINX_URL/api/sync")
[[ $code == 202 || $code == 200 ]] || { echo "POST /api/sync answered $code: $(cat "$TMP/run")" >&2; exit 1; }
for _ in $(seq 1 600); do
    st=$(curl -s -H "Authorization: Bearer $admin_token" "$NGINX_URL/api/sync/status" | json status)
    [[ $st == COMPLETED || $st == FAILED ]] && break
    sleep 0.5
done
phase_end "import"
echo "import status $st (legacy API: $LEGACY_API_URL)"
