#!/usr/bin/env bash
# Event ingestion benchmark (issue 16), in one run, one load after the other (never at once):
#   baseline  POST /__nginx_baseline_202 through the platform's Nginx: Nginx answering 202 itself,
#             with the same wrk script (the ceiling on this machine at this moment)
#   events    POST /api/events through Nginx, wrk -t2 -c64 for EVENTS_BENCH_DURATION (30) s with
#             200 prebuilt bodies per thread (5 event types, each with its userId, as the peer's
#             events.lua sends them; a service token, as a storefront's backend would hold); each
#             202's id is written to a file. Then the consumers drain (the stream empty and the
#             row count still), and:
#               lost        ids answered 202 that are not in sync.events (exact, by anti-join)
#               commit_*    per event, from its acceptance (the 202) to its batch's COMMIT: the
#                           delta of both instances' events_commit_latency_seconds histograms over
#                           this load, p50/p99 interpolated within their buckets
#               rows_per_s  rows committed while the load ran / its duration
#   batch     POST /api/events/batch with 100 events per request, wrk -t2 -c8 for
#             EVENTS_BENCH_BATCH_DURATION (10) s: batch_events_per_s = events accepted / s
#   peer      ../shared/peers/events-rabbitmq/run.sh (BENCH_PEER_EVENTS), when present: the
#             previous system's design (Fastify + RabbitMQ with publisher confirms + node-postgres),
#             the same load and duration against its own Nginx baseline
# The sync instances are restarted with the rate limit out of the way (EVENTS_RATE_PER_S and
# _BURST very high: one client sends everything) and restored on exit; their peak RSS (VmHWM)
# over the whole run is reported, as is the share of CPU the host took (steal).
# Line (the peer fields are left out when ../shared is absent, as in the other benchmarks):
#   bench events accepted_per_s=… baseline_rps=… peer_accepted_per_s=… peer_ratio=… batch_events_per_s=…
#       commit_p50_ms=… commit_p99_ms=… rows_per_s=… lost=…
# then an indented details line (RSS, ratios to each baseline, HTTP latency, CPU).
# Needs the stack's facts in the environment (bench/run-all exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=events
# shellcheck source=bench/lib.bash
source bench/lib.bash

NGINX_URL=${NGINX_URL:?run through bench/run-all}
RUN_DIR=${RUN_DIR:?}
PG_SOCKET_DIR=${PG_SOCKET_DIR:?}
PG_PORT=${PG_PORT:?}
REDIS_PORT=${REDIS_PORT:?}
D=${EVENTS_BENCH_DURATION:-30}
BD=${EVENTS_BENCH_BATCH_DURATION:-10}
BASE_D=${EVENTS_BENCH_BASELINE_DURATION:-10}
THREADS=${BENCH_THREADS:-2}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
DRAIN_TIMEOUT=${EVENTS_BENCH_DRAIN_TIMEOUT:-300}
PEER=${BENCH_PEER_EVENTS:-../shared/peers/events-rabbitmq/run.sh}
SYNC_INSTANCES=(sync-1 sync-2)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-events.XXXXXX")
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d platform)
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3

bench_env_save "$TMP" "${SYNC_INSTANCES[@]}"
restore() {
    bench_env_restore
    rm -rf "$TMP"
}
trap restore EXIT

for i in "${SYNC_INSTANCES[@]}"; do
    grep -v -E '^EVENTS_RATE_(PER_S|BURST)=' "$TMP/$i.env.orig" >"$RUN_DIR/env/$i.env"
    printf 'EVENTS_RATE_PER_S=10000000\nEVENTS_RATE_BURST=100000000\n' >>"$RUN_DIR/env/$i.env"
    scripts/stack stop-one "$i" >/dev/null
    scripts/stack start-one "$i" >/dev/null
done

# A service token (client credentials of sync-service, from its environment).
client_id=$(awk -F= '/^SERVICE_CLIENT_ID=/ { print $2 }' "$RUN_DIR/env/sync-1.env")
secret_file=$(awk -F= '/^SERVICE_CLIENT_SECRET_FILE=/ { print $2 }' "$RUN_DIR/env/sync-1.env")
token=$(curl -s -H 'Content-Type: application/json' \
    -d "{\"client_id\":\"$client_id\",\"client_secret\":\"$(<"$secret_file")\"}" "$NGINX_URL/api/auth/token" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || bench_die "no service token"

cat >"$TMP/events.lua" <<'LUA'
-- POST one event per request from 200 prebuilt bodies per thread; counts the 202s and, given a
-- folder (wrk … -- TOKEN DIR), writes the id of every 202 there, one file per thread.
local threads, count = {}, 0
function setup(thread) count = count + 1; thread:set("tid", count); table.insert(threads, thread) end
function init(args)
  accepted, other, n = 0, 0, 0
  local token, dir = args[1], args[2]
  if dir and dir ~= "" then out = io.open(dir .. "/ids-" .. tid .. ".txt", "w"); out:setvbuf("full", 65536) end
  local types = {"view", "add_to_cart", "search", "purchase", "login"}
  reqs = {}
  for i = 1, 200 do
    local body = string.format('{"eventType":"%s","eventData":{"path":"/products/%d","referrer":"https://shop.example/c/%d","durationMs":%d,"tags":["promo","mobile"]},"sessionId":"sess-%d-%04d","userId":"user-%05d"}',
      types[(i % #types) + 1], i * 37, i % 11, i * 7, tid, i, (i * 13) % 5000)
    reqs[i] = wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
  end
end
function request() n = n + 1; if n > 200 then n = 1 end; return reqs[n] end
function response(status, headers, body)
  if status == 202 then
    accepted = accepted + 1
    if out then local i = string.find(body, '"id":"', 1, true); if i then out:write(string.sub(body, i + 6, i + 41), "\n") end end
  else other = other + 1 end
end
function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); o = o + t:get("other") end
  io.write(string.format("lua accepted=%d other=%d duration_us=%d\n", a, o, summary.duration))
end
LUA

cat >"$TMP/batch.lua" <<'LUA'
-- POST /api/events/batch with 100 events per request; counts the events accepted.
local threads, count = {}, 0
function setup(thread) count = count + 1; thread:set("tid", count); table.insert(threads, thread) end
function init(args)
  events, other, n = 0, 0, 0
  local types = {"view", "add_to_cart", "search", "purchase", "login"}
  reqs = {}
  for b = 1, 20 do
    local items = {}
    for i = 1, 100 do
      items[i] = string.format('{"eventType":"%s","eventData":{"path":"/products/%d","durationMs":%d},"sessionId":"bsess-%d-%d","userId":"user-%05d"}',
        types[(i % #types) + 1], i * 37, i * 7, tid, b, (i * 13 + b) % 5000)
    end
    reqs[b] = wrk.format("POST", nil, {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. args[1]},
      '{"events":[' .. table.concat(items, ",") .. ']}')
  end
end
function request() n = n + 1; if n > 20 then n = 1 end; return reqs[n] end
function response(status, headers, body)
  if status == 202 then local a = string.match(body, '"accepted":(%d+)'); events = events + tonumber(a or 0) else other = other + 1 end
end
function done(summary, latency, requests)
  local e, o = 0, 0
  for _, t in ipairs(threads) do e = e + t:get("events"); o = o + t:get("other") end
  io.write(string.format("lua events=%d other=%d duration_us=%d\n", e, o, summary.duration))
end
LUA

lua_field() { sed -n "s/^lua .*$1=\\([0-9]*\\).*/\\1/p" "$2" | tail -n 1; }
per_s() { awk -v n="$1" -v us="$2" 'BEGIN { printf "%.0f", (us > 0 ? n / (us / 1e6) : 0) }'; }
rows_now() { "${PSQL[@]}" -c "SELECT count(*) FROM sync.events"; }
xlen() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" XLEN 'ev:{events}:stream'; }
# Cumulative commit-latency buckets of both instances: "le count" lines.
hist() {
    local i port
    for i in "${SYNC_INSTANCES[@]}"; do
        port=$(awk -F= '/^HTTP_PORT=/ { print $2 }' "$RUN_DIR/env/$i.env")
        curl -s "http://127.0.0.1:$port/metrics" |
            sed -n 's/^events_commit_latency_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
    done | awk '{ c[$1] += $2 } END { for (k in c) print k, c[k] }'
}
# quantile Q BEFORE AFTER → ms, interpolated within the bucket (cumulative buckets subtracted)
quantile_ms() {
    awk -v q="$1" 'NR == FNR { b[$1] = $2; next } { d[$1] = $2 - b[$1] }
        END {
            n = 0; for (k in d) if (k != "+Inf") le[++n] = k + 0
            for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (le[j] < le[i]) { t = le[i]; le[i] = le[j]; le[j] = t }
            total = d["+Inf"]; if (total <= 0) { print "NA"; exit }
            rank = q * total; lo = 0; prev = 0
            for (i = 1; i <= n; i++) {
                c = d[sprintf("%g", le[i])]
                if (c >= rank) { w = c - prev; printf "%.1f", 1000 * (lo + (le[i] - lo) * (w > 0 ? (rank - prev) / w : 1)); exit }
                prev = c; lo = le[i]
            }
            printf "%.1f", 1000 * le[n]
        }' "$2" "$3"
}
peak_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$(cat "$RUN_DIR/pids/$1.pid")/status"; }
max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }

# --- baseline: Nginx answering 202 itself ---------------------------------------------------------
echo "bench events: baseline (Nginx return 202, ${BASE_D}s)"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${BASE_D}s" -s "$TMP/events.lua" "$NGINX_URL/__nginx_baseline_202" -- "$token" \
    >"$TMP/wrk-base.out" 2>&1 || { cat "$TMP/wrk-base.out" >&2; bench_die "baseline wrk failed"; }
baseline=$(per_s "$(lua_field accepted "$TMP/wrk-base.out")" "$(lua_field duration_us "$TMP/wrk-base.out")")
[[ $(lua_field other "$TMP/wrk-base.out") == 0 ]] || bench_die "the baseline answered something else than 202"
echo "  baseline_rps=$baseline"

# --- events through the platform -----------------------------------------------------------------
echo "bench events: POST /api/events (${D}s, -t$THREADS -c$CONNECTIONS)"
curl -s -o /dev/null -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"eventType":"view","sessionId":"warm-up"}' "$NGINX_URL/api/events"
sleep 1.5
hist >"$TMP/hist.before"
mkdir -p "$TMP/ids"
rows0=$(rows_now)
ticks0=$(cpu_ticks)
cpu_by_comm >"$TMP/cpu.before"
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${D}s" --timeout 10s --latency -s "$TMP/events.lua" "$NGINX_URL/api/events" \
    -- "$token" "$TMP/ids" >"$TMP/wrk.out" 2>&1 || { cat "$TMP/wrk.out" >&2; bench_die "wrk failed"; }
rows1=$(rows_now)
cpu_by_comm >"$TMP/cpu.after"
steal=$(steal_pct "$ticks0" "$(cpu_ticks)")
accepted=$(lua_field accepted "$TMP/wrk.out")
other=$(lua_field other "$TMP/wrk.out")
accepted_per_s=$(per_s "$accepted" "$(lua_field duration_us "$TMP/wrk.out")")
rows_per_s=$(per_s $((rows1 - rows0)) $((D * 1000000)))
http_p99=$(parse_wrk "$TMP/wrk.out" | awk '{ print $2 }')
echo "  accepted=$accepted other=$other accepted_per_s=$accepted_per_s rows_per_s=$rows_per_s http_p99_ms=$http_p99 steal=${steal}%"

# drain: the stream empty and the row count unchanged for 2 s
t_drain=$SECONDS
last=-1
stable=0
while :; do
    n=$(rows_now)
    if [[ $(xlen) == 0 && $n == "$last" ]]; then stable=$((stable + 1)); else stable=0; fi
    last=$n
    ((stable >= 4)) && break
    ((SECONDS - t_drain < DRAIN_TIMEOUT)) || bench_die "not drained after ${DRAIN_TIMEOUT}s (stream $(xlen))"
    sleep 0.5
done
drain_s=$((SECONDS - t_drain))
hist >"$TMP/hist.after"
p50=$(quantile_ms 0.50 "$TMP/hist.before" "$TMP/hist.after")
p99=$(quantile_ms 0.99 "$TMP/hist.before" "$TMP/hist.after")
cat "$TMP"/ids/ids-*.txt >"$TMP/ids.txt"
nids=$(wc -l <"$TMP/ids.txt")
lost=$("${PSQL[@]}" -c "CREATE TEMP TABLE accepted (id uuid)" -c "\\copy accepted FROM '$TMP/ids.txt'" \
    -c "SELECT count(*) FROM accepted a WHERE NOT EXISTS (SELECT 1 FROM sync.events e WHERE e.event_id = a.id)" | tail -n 1)
echo "  drained in ~${drain_s}s; ids=$nids lost=$lost commit_p50_ms=$p50 commit_p99_ms=$p99"
((nids == accepted)) || bench_die "$accepted 202s but $nids ids recorded"

# --- the batch endpoint ----------------------------------------------------------------------------
echo "bench events: POST /api/events/batch, 100 events per request (${BD}s, -t$THREADS -c8)"
wrk -t"$THREADS" -c8 -d"${BD}s" --timeout 10s -s "$TMP/batch.lua" "$NGINX_URL/api/events/batch" -- "$token" \
    >"$TMP/wrk-batch.out" 2>&1 || { cat "$TMP/wrk-batch.out" >&2; bench_die "batch wrk failed"; }
batch_per_s=$(per_s "$(lua_field events "$TMP/wrk-batch.out")" "$(lua_field duration_us "$TMP/wrk-batch.out")")
[[ $(lua_field other "$TMP/wrk-batch.out") == 0 ]] || bench_die "a batch was not accepted: $(tail -n 3 "$TMP/wrk-batch.out")"
echo "  batch_events_per_s=$batch_per_s"
rss=$(max_of "$(peak_mb sync-1)" "$(peak_mb sync-2)")

# --- the peer ----------------------------------------------------------------------------------------
peer_rate="" peer_ratio="" peer_line=""
if [[ -x $PEER ]]; then
    echo "bench events: peer $PEER (DURATION=$D)"
    if DURATION=$D THREADS=$THREADS CONNECTIONS=$CONNECTIONS "$PEER" >"$TMP/peer.out" 2>&1; then
        peer_line=$(grep '^peer events ' "$TMP/peer.out" | tail -n 1)
        peer_rate=$(sed -n 's/.* accepted_per_s=\([0-9]*\).*/\1/p' <<<"$peer_line")
        [[ -n $peer_rate && $peer_rate -gt 0 ]] && peer_ratio=$(ratio "$accepted_per_s" "$peer_rate")
        echo "  $peer_line"
    else
        tail -n 15 "$TMP/peer.out" >&2
        bench_die "the peer failed"
    fi
else
    echo "bench events: no peer at $PEER (its fields are left out)"
fi

peer_fields=""
[[ -n $peer_rate ]] && peer_fields=" peer_accepted_per_s=$peer_rate peer_ratio=$peer_ratio"
echo "bench events accepted_per_s=$accepted_per_s baseline_rps=$baseline$peer_fields batch_events_per_s=$batch_per_s commit_p50_ms=$p50 commit_p99_ms=$p99 rows_per_s=$rows_per_s lost=$lost"
peer_base_ratio=$(sed -n 's/.* ratio=\([0-9.]*\).*/\1/p' <<<"$peer_line")
echo "  details: sync_rss_mb=$rss ratio_to_baseline=$(ratio "$accepted_per_s" "$baseline") peer_ratio_to_its_baseline=${peer_base_ratio:-NA} http_p99_ms=$http_p99 non202=$other drain_s=$drain_s steal_pct=$steal cpu: $(cpu_diff "$TMP/cpu.before" "$TMP/cpu.after")"
