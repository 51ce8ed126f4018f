# Helpers shared by bench/*.sh (sourced). Needs: wrk, curl, awk.

bench_die() { echo "bench ${BENCH_NAME:-?}: $*" >&2; exit 1; }

# parse_wrk FILE → "rps p99_ms non2xx socket_errors" from `wrk --latency` output.
parse_wrk() {
    awk '
        function to_ms(v,   n, u) {
            n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
            if (u == "us") return n / 1000
            if (u == "ms") return n
            if (u == "s")  return n * 1000
            if (u == "m")  return n * 60000
            return -1
        }
        /^Requests\/sec:/                { rps = $2 }
        /^[ \t]+99(\.0+)?%[ \t]/         { p99 = to_ms($2) }
        /Non-2xx or 3xx responses:/      { non2xx = $NF }
        /Socket errors:/                 { sub(/^[ \t]*Socket errors:[ \t]*/, ""); gsub(/,/, ""); errs = $0 }
        END {
            if (rps == "" || p99 == "" || p99 < 0) exit 1
            printf "%s %.3f %d %s\n", rps, p99, non2xx + 0, (errs == "" ? "none" : errs)
        }' "$1"
}

# wrk_measure NAME URL [extra wrk args...]: warm-up then a measured run; sets RPS[NAME] and
# P99[NAME] (callers declare -A RPS P99). Fails when any response was not 2xx/3xx.
wrk_measure() {
    local name=$1 url=$2 out parsed rps p99 non2xx errs
    shift 2
    out=$(mktemp "${TMPDIR:-/tmp}/wrk-$name.XXXXXX")
    wrk -t"${BENCH_THREADS:-2}" -c"${BENCH_CONNECTIONS:-64}" -d"${BENCH_WARMUP:-3s}" "$@" "$url" >/dev/null 2>&1 ||
        bench_die "wrk warm-up of $url failed"
    wrk -t"${BENCH_THREADS:-2}" -c"${BENCH_CONNECTIONS:-64}" -d"${BENCH_DURATION:-10s}" --latency "$@" "$url" >"$out" 2>&1 ||
        { cat "$out" >&2; bench_die "wrk on $url failed"; }
    parsed=$(parse_wrk "$out") || { cat "$out" >&2; bench_die "cannot parse wrk output for $url"; }
    read -r rps p99 non2xx errs <<<"$parsed"
    if ((non2xx > 0)); then cat "$out" >&2; rm -f "$out"; bench_die "$url: $non2xx responses were not 2xx/3xx"; fi
    grep -E '^latency tail' "$out" | sed 's/^/  /' || true
    rm -f "$out"
    printf '  %-12s %-44s %10.0f req/s   p99 %8.3f ms   socket errors: %s\n' "$name" "${url#http://}" "$rps" "$p99" "$errs"
    RPS[$name]=$rps
    P99[$name]=$p99
}

# rss_mb PID → resident set size in MB (one decimal).
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }

# cpu_by_comm → "command ticks" lines: user+system CPU ticks of every live process, summed per
# command name (postgres backends add up under "postgres"). Two snapshots subtracted with
# cpu_diff show where a run's CPU went; a process that exits between them is not counted.
cpu_by_comm() {
    local f comm rest
    for f in /proc/[0-9]*/stat; do
        read -r rest <"$f" 2>/dev/null || continue
        comm=${rest#*(}; comm=${comm%%)*}; rest=${rest##*) }
        # shellcheck disable=SC2086
        set -- $rest
        echo "${comm// /_} $((${12} + ${13}))"
    done | awk '{ t[$1] += $2 } END { for (c in t) print c, t[c] }'
}

# cpu_diff BEFORE_FILE AFTER_FILE → "name=seconds" for the commands that used ≥ 0.1 s, busiest first.
cpu_diff() {
    awk -v hz="$(getconf CLK_TCK)" 'NR == FNR { b[$1] = $2; next }
        { d = ($2 - b[$1]) / hz; if (d >= 0.1) printf "%s %.1f\n", $1, d }' "$1" "$2" |
        sort -k2 -g -r | awk '{ printf "%s%s=%ss", (NR > 1 ? " " : ""), $1, $2 } END { print "" }'
}

# cpu_ticks → "total steal" from /proc/stat: all CPU ticks so far and those stolen by the
# hypervisor. steal_pct BEFORE AFTER → the share of the interval's CPU time the host took away
# (on a shared virtual machine a run with a large share is slower for reasons outside the code).
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t, $9 }' /proc/stat; }
steal_pct() {
    awk -v b="$1" -v a="$2" 'BEGIN { split(b, x, " "); split(a, y, " "); d = y[1] - x[1]
        printf "%.1f", (d > 0 ? 100 * (y[2] - x[2]) / d : 0) }'
}

# bench_env_save DIR INSTANCE...: copies each instance's environment file ($RUN_DIR/env/<i>.env) to
# DIR/<i>.env.orig, so a benchmark can start the instances with other settings;
# bench_env_restore (for the EXIT trap) puts the files back and restarts those instances.
BENCH_ENV_DIR=
BENCH_ENV_INSTANCES=()
bench_env_save() {
    local i
    BENCH_ENV_DIR=$1
    shift
    BENCH_ENV_INSTANCES=("$@")
    for i in "$@"; do cp "$RUN_DIR/env/$i.env" "$BENCH_ENV_DIR/$i.env.orig"; done
}
bench_env_restore() {
    local i
    for i in "${BENCH_ENV_INSTANCES[@]}"; do
        [[ -f $BENCH_ENV_DIR/$i.env.orig ]] && cp "$BENCH_ENV_DIR/$i.env.orig" "$RUN_DIR/env/$i.env"
        scripts/stack stop-one "$i" >/dev/null 2>&1 || true
        scripts/stack start-one "$i" >/dev/null 2>&1 || true
    done
}
