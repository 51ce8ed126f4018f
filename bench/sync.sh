#!/usr/bin/env bash
# Legacy user import benchmark (issue: streaming import through the job queue):
#   SYNC_BENCH_USERS (1000000) users from the stack's legacy simulator at full speed, end to end
#   through the real services: POST /api/sync → sync-service streams and validates → batch jobs on
#   the Redis queue → sync workers → customers-service POST /internal/users/bulk-upsert. Timed
#   from the trigger to the run's COMPLETED; peak RSS (VmHWM) of both sync and both customers
#   instances, restarted just before so the peak belongs to this run. A first run of
#   SYNC_BENCH_SMALL_USERS (100000; 0 skips it) shows whether sync-service's memory grows with N.
#   Each import starts from a customers.users without legacy rows (deleted, then VACUUM FULL, as
#   the peer starts from an empty table). Then, one after the other (never at once): a raw COPY
#   of the same N rows into a copy of customers.users (same columns and indexes), and the
#   reference peer ../shared/peers/bullmq-sync/run.sh (BENCH_PEER_SYNC) with the same N.
# Line:
#   bench sync records=… seconds=… records_per_s=… peer_records_per_s=… peer_ratio=… copy_ratio=…
#       sync_peak_rss_mb=… customers_peak_rss_mb=… small_records=… small_sync_peak_rss_mb=…
#   (no peer fields when ../shared is absent).
# Needs the stack's facts in the environment (bench/run-all exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=sync
# shellcheck source=bench/lib.bash
source bench/lib.bash

NGINX_URL=${NGINX_URL:?run through bench/run-all}
RUN_DIR=${RUN_DIR:?}
LEGACY=${LEGACY_API_URL:?run through bench/run-all}
PG_CONNINFO=${PG_CONNINFO:?}
N=${SYNC_BENCH_USERS:-1000000}
SMALL=${SYNC_BENCH_SMALL_USERS:-100000}
COPY_TOO=${SYNC_BENCH_COPY:-1}   # 0 skips the raw COPY baseline (quick iterations only)
PEER=${BENCH_PEER_SYNC:-../shared/peers/bullmq-sync/run.sh}
TIMEOUT_S=${SYNC_BENCH_TIMEOUT_S:-900}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-sync.XXXXXX")
SYNC_INSTANCES=(sync-1 sync-2)
CUSTOMERS_INSTANCES=(customers-1 customers-2)

psql_su() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -d "$PG_CONNINFO" "$@"; }

# --- the sync instances read the simulator at full speed, no faults; restored on exit ---------------
bench_env_save "$TMP" "${SYNC_INSTANCES[@]}"
restore() {
    bench_env_restore
    psql_su -c "DROP TABLE IF EXISTS customers.bench_users_copy" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap restore EXIT

configure() {   # configure N: LEGACY_API_URL for N users, then restart sync and customers instances
    local i
    for i in "${SYNC_INSTANCES[@]}"; do
        grep -v -E '^(LEGACY_API_URL|SYNC_CRON)=' "$TMP/$i.env.orig" >"$RUN_DIR/env/$i.env"
        printf 'LEGACY_API_URL=%s/users?count=%s\nSYNC_CRON=off\n' "$LEGACY" "$1" >>"$RUN_DIR/env/$i.env"
        if [[ -n ${SYNC_BENCH_WORKERS:-} ]]; then echo "SYNC_WORKERS=$SYNC_BENCH_WORKERS" >>"$RUN_DIR/env/$i.env"; fi
    done
    for i in "${SYNC_INSTANCES[@]}" "${CUSTOMERS_INSTANCES[@]}"; do
        scripts/stack stop-one "$i" >/dev/null
        scripts/stack start-one "$i" >/dev/null
    done
}

peak_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$(cat "$RUN_DIR/pids/$1.pid")/status"; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }

admin_token() {
    local pw
    pw=$(<"$RUN_DIR/secrets/admin_password")
    curl -s -H 'Content-Type: application/json' -d "{\"login\":\"admin\",\"password\":\"$pw\"}" \
        "$NGINX_URL/api/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' ||
        bench_die "admin login failed"
}

# import N → sets SECONDS_TAKEN, SYNC_PEAK, CUSTOMERS_PEAK; the run must end COMPLETED with N users
import_users() {
    local n=$1 token code run_id status t0 t1 deadline
    psql_su -c "DELETE FROM customers.users WHERE source = 'legacy'" -c "VACUUM FULL ANALYZE customers.users" >/dev/null
    configure "$n"
    token=$(admin_token)
    cpu_by_comm >"$TMP/cpu.before"
    local ticks0
    ticks0=$(cpu_ticks)
    t0=$(date +%s.%N)
    code=$(curl -s -o "$TMP/run" -w '%{http_code}' -X POST -H "Authorization: Bearer $token" "$NGINX_URL/api/sync")
    [[ $code == 202 ]] || bench_die "POST /api/sync answered $code: $(cat "$TMP/run")"
    run_id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <"$TMP/run")
    deadline=$((SECONDS + TIMEOUT_S))
    # The poll must cost next to nothing while the import uses every core: one curl and a bash
    # match twice a second, no interpreter (a python3 per poll took ~10 % of the machine here,
    # where python3 is a pyenv shim; curl ten times a second took ~3 %). The end of the import is
    # the run's own finished_at (same machine, same clock), so the poll interval does not blur it.
    local body finished=""
    while :; do
        curl -s -H "Authorization: Bearer $token" "$NGINX_URL/api/sync/$run_id" >"$TMP/run" || true
        body=$(<"$TMP/run")
        status="?"
        [[ $body =~ \"status\"[[:space:]]*:[[:space:]]*\"([A-Z]+)\" ]] && status=${BASH_REMATCH[1]}
        [[ $status == COMPLETED || $status == FAILED ]] && break
        ((SECONDS < deadline)) || bench_die "run $run_id still $status after ${TIMEOUT_S}s"
        sleep 0.5
    done
    [[ $body =~ \"finished_at\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]] && finished=${BASH_REMATCH[1]}
    t1=$(date -d "${finished:-now}" +%s.%N)
    cpu_by_comm >"$TMP/cpu.after"
    CPU_USED=$(cpu_diff "$TMP/cpu.before" "$TMP/cpu.after")
    STEAL=$(steal_pct "$ticks0" "$(cpu_ticks)")
    [[ $status == COMPLETED ]] || bench_die "run $run_id FAILED: $(cat "$TMP/run")"
    python3 - "$TMP/run" "$n" <<'PY' || bench_die "the run's counters are wrong"
import json, sys
r = json.load(open(sys.argv[1])); n = int(sys.argv[2])
ok = r["valid"] == n and r["invalid"] == 0 and r["batches"]["failed"] == 0
ok = ok and r["inserted"] + r["updated"] + r["unchanged"] + r["deleted"] + r["rejected"] == n
print("  run %s: %d attempt(s), %d valid, %d inserted, %d batches, %s records/s by its own clock"
      % (r["id"], r["attempts"], r["valid"], r["inserted"], r["batches"]["total"], r["records_per_s"]))
sys.exit(0 if ok else 1)
PY
    local rows
    rows=$(psql_su -c "SELECT count(*) FROM customers.users WHERE source = 'legacy'")
    [[ $rows == "$n" ]] || bench_die "customers.users holds $rows legacy users, want $n"
    SECONDS_TAKEN=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    SYNC_PEAK=$(max_of "$(peak_mb sync-1)" "$(peak_mb sync-2)")
    CUSTOMERS_PEAK=$(max_of "$(peak_mb customers-1)" "$(peak_mb customers-2)")
}

small_fields=""
if ((SMALL > 0)); then
    echo "bench sync: $SMALL users (memory check)"
    import_users "$SMALL"
    echo "  $SMALL users in ${SECONDS_TAKEN}s; sync peak RSS ${SYNC_PEAK} MB, customers ${CUSTOMERS_PEAK} MB"
    small_fields=" small_records=$SMALL small_sync_peak_rss_mb=$SYNC_PEAK"
fi

echo "bench sync: $N users end to end (simulator -> sync-service -> queue -> workers -> customers-service)"
import_users "$N"
ours=$(awk -v n="$N" -v s="$SECONDS_TAKEN" 'BEGIN { printf "%.0f", n / s }')
echo "  $N users in ${SECONDS_TAKEN}s = $ours records/s; sync peak RSS ${SYNC_PEAK} MB, customers ${CUSTOMERS_PEAK} MB"
echo "  CPU used during the import (all processes, by command): $CPU_USED; taken by the host (steal): $STEAL %"
psql_su -c "DELETE FROM customers.users WHERE source = 'legacy'" -c "VACUUM FULL ANALYZE customers.users" >/dev/null

# --- raw COPY of the same rows into a table shaped like customers.users ----------------------------
copy_fields=""
if ((COPY_TOO)); then
    echo "bench sync: raw COPY of $N rows into a copy of customers.users"
    curl -s "$LEGACY/users?count=$N&format=ndjson" | python3 -c '
import json, os, sys, time, uuid
out = sys.stdout
ms = int(time.time() * 1000)
for i, line in enumerate(sys.stdin):
    r = json.loads(line)
    esc = lambda s: s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    # ids made by the client as the import makes them (UUIDv7: time-ordered), not by the
    # column default (a SQL function per row would slow the baseline down)
    rnd = int.from_bytes(os.urandom(10), "big")
    v7 = ((ms + i // 1000) << 80) | (0x7 << 76) | ((rnd >> 62) & 0xFFF) << 64 | (0x2 << 62) | (rnd & ((1 << 62) - 1))
    out.write("%s\t%s\t%s\t%s\tlegacy\t%d\t%s\t%s\n" % (uuid.UUID(int=v7), esc(r["userName"]), esc(r["email"]),
              esc(r["name"]), r["id"], r["updatedAt"], "t" if r["deleted"] else "f"))
' >"$TMP/users.tsv"
    psql_su -c "DROP TABLE IF EXISTS customers.bench_users_copy" \
        -c "CREATE TABLE customers.bench_users_copy (LIKE customers.users INCLUDING ALL)" >/dev/null
    c0=$(date +%s.%N)
    psql_su -c "\\copy customers.bench_users_copy (id, user_name, email, name, source, legacy_id, source_updated_at, deleted) FROM '$TMP/users.tsv'" \
        -c "UPDATE customers.bench_users_copy SET deleted_at = now() WHERE deleted" >/dev/null
    c1=$(date +%s.%N)
    psql_su -c "DROP TABLE customers.bench_users_copy" >/dev/null
    copy_rate=$(awk -v n="$N" -v a="$c0" -v b="$c1" 'BEGIN { printf "%.0f", n / (b - a) }')
    copy_ratio=$(ratio "$ours" "$copy_rate")
    echo "  raw COPY: $copy_rate rows/s (import/COPY = $copy_ratio)"
    copy_fields=" copy_ratio=$copy_ratio"
fi

# --- the reference peer, after ours --------------------------------------------------------------
peer_fields=""
if [[ -x $PEER ]]; then
    echo "bench sync: reference peer $PEER (N=$N; one after the other, never at once)"
    peer_line=$(N=$N "$PEER" 2>&1 | tee "$TMP/peer.out" | grep -E '^peer bullmq_sync ' | tail -n 1 || true)
    if [[ -n $peer_line ]]; then
        echo "  $peer_line"
        peer_rate=$(sed -E 's/.* records_per_s=([0-9.]+).*/\1/' <<<"$peer_line")
        peer_fields=" peer_records_per_s=$peer_rate peer_ratio=$(ratio "$ours" "$peer_rate")"
    else
        echo "  peer did not report a result:"
        tail -n 5 "$TMP/peer.out"
    fi
else
    echo "bench sync: reference peer not found at $PEER (../shared absent): no peer fields"
fi

echo "bench sync records=$N seconds=$SECONDS_TAKEN records_per_s=$ours$peer_fields$copy_fields" \
    "sync_peak_rss_mb=$SYNC_PEAK customers_peak_rss_mb=$CUSTOMERS_PEAK$small_fields"
