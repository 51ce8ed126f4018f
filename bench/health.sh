#!/usr/bin/env bash
# Throughput of the cheapest request through the whole front door, against Nginx alone.
#
#   NGINX_URL=http://127.0.0.1:48080 bench/health.sh       (bench/run-all sets NGINX_URL)
#
# Measures with wrk (BENCH_THREADS=2, BENCH_CONNECTIONS=64, BENCH_DURATION=10s, after a
# BENCH_WARMUP=3s run that fills the keep-alive pools and caches):
#   baseline  GET /__nginx_baseline  answered by Nginx itself (`return 200`): the ceiling
#   health    GET /health/live       proxied by Nginx to a service instance (JSON, no I/O);
#             BENCH_HEALTH_PATH overrides the path (e.g. /health/customers: readiness, which
#             also pings PostgreSQL and Redis)
# and prints both rates, their p99 latency and ratio = health/baseline: the share of Nginx's own
# capacity the service path keeps. Both runs must answer 2xx only, otherwise the figures would
# describe error pages and the benchmark fails. The last line is the machine-readable summary:
#   bench health rps=<n> baseline_rps=<n> ratio=<r> p99_ms=<n>
set -euo pipefail

NGINX_URL=${NGINX_URL:-http://127.0.0.1:${NGINX_PORT:-8080}}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
HEALTH_PATH=${BENCH_HEALTH_PATH:-/health/live}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-health.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

die() { echo "bench health: $*" >&2; exit 1; }
command -v wrk >/dev/null 2>&1 || die "wrk not installed (scripts/install-deps)"

# The endpoint must answer 200 before it is worth measuring.
precheck() {
    local path=$1 code
    code=$(curl -s -o "$TMP/precheck.body" -w '%{http_code}' --max-time 5 "$NGINX_URL$path") || code=000
    [[ $code == 200 ]] ||
        die "GET $NGINX_URL$path answered $code, not 200: $(head -c 200 "$TMP/precheck.body" 2>/dev/null | tr -s "\n\t " " ")"
}

# shellcheck source=bench/lib.bash
source "$(dirname "${BASH_SOURCE[0]}")/lib.bash"

declare -A RPS P99
# run NAME PATH → sets RPS[NAME], P99[NAME]
run() {
    local name=$1 path=$2 out=$TMP/$1.out parsed rps p99 non2xx errs
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$NGINX_URL$path" >/dev/null 2>&1 ||
        die "wrk warm-up of $path failed"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$NGINX_URL$path" >"$out" 2>&1 ||
        { cat "$out" >&2; die "wrk on $path failed"; }
    parsed=$(parse_wrk "$out") || { cat "$out" >&2; die "cannot parse wrk output for $path"; }
    read -r rps p99 non2xx errs <<<"$parsed"
    if ((non2xx > 0)); then
        cat "$out" >&2
        die "$path: $non2xx responses were not 2xx/3xx"
    fi
    printf '  %-10s GET %-20s %12.0f req/s   p99 %8.3f ms   socket errors: %s\n' \
        "$name" "$path" "$rps" "$p99" "$errs"
    RPS[$name]=$rps
    P99[$name]=$p99
}

precheck /__nginx_baseline
precheck "$HEALTH_PATH"

echo "bench health: wrk -t$THREADS -c$CONNECTIONS -d$DURATION (warm-up $WARMUP) against $NGINX_URL"
run baseline /__nginx_baseline
run health "$HEALTH_PATH"

ratio=$(awk -v a="${RPS[health]}" -v b="${RPS[baseline]}" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
echo "  ratio health/baseline: $ratio"
printf 'bench health rps=%.0f baseline_rps=%.0f ratio=%s p99_ms=%.3f\n' \
    "${RPS[health]}" "${RPS[baseline]}" "$ratio" "${P99[health]}"
