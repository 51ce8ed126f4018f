#!/usr/bin/env bash
# transactions-service benchmarks (issue: transactions and the resilient client):
#   tx_post  POST /api/transactions per second through Nginx at BENCH_CONNECTIONS (64): every
#            request authenticated (a user's Bearer token), with its own Idempotency-Key,
#            validated (the user check, cached) and committed. BENCH_TX_KIND=deposit (default:
#            0.01 to the caller's own account) or transfer (0.01 to a partner user; every user is
#            funded first). Right before and right after it, one after the other, pgbench on the
#            same PostgreSQL with the same connection count and duration, each transaction
#            inserting one row into a scratch table (schema bench_tx, created and dropped here as
#            the superuser): the floor cost of one durable write. ratio = tx_post rps / the mean
#            of the two pgbench tps.
#   tx_list  GET /api/transactions?limit=20 (the newest page, by cursor) per second through
#            Nginx, same users, each first brought to BENCH_TX_LIST_POSTINGS (5000) postings:
#            the tx_post run's, plus deposits written straight into the ledger as the service
#            writes them (dated over the preceding days, balances credited to match). Measured
#            between two users_get runs (GET /api/users/{own id}, the same users' tokens) of the
#            same stack: ratio = tx_list rps / the mean of the two users_get rps.
# Users (BENCH_TX_USERS, 128) are registered and logged in straight at customers-1 (Nginx
# rate-limits /api/auth per address); requests rotate over them so 64 connections do not all
# queue on one balance row.
# Lines:
#   bench tx_post rps=… pgbench_tps=… ratio=… p99_ms=…
#   bench tx_list rps=… users_get_rps=… ratio=… p99_ms=… postings_per_user=…
# Needs the stack's facts in the environment (bench/run-all exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=tx
# shellcheck source=bench/lib.bash
source bench/lib.bash
declare -A RPS P99

NGINX_URL=${NGINX_URL:?run through bench/run-all}
RUN_DIR=${RUN_DIR:?}
PG_SOCKET_DIR=${PG_SOCKET_DIR:?}
PG_PORT=${PG_PORT:?}
USERS=${BENCH_TX_USERS:-128}
LIST_POSTINGS=${BENCH_TX_LIST_POSTINGS:-5000}
KIND=${BENCH_TX_KIND:-deposit}
CONNECTIONS=${BENCH_CONNECTIONS:-64}
DURATION=${BENCH_DURATION:-10s}
[[ $KIND == deposit || $KIND == transfer ]] || bench_die "BENCH_TX_KIND must be deposit or transfer"
[[ $LIST_POSTINGS =~ ^[0-9]+$ ]] || bench_die "BENCH_TX_LIST_POSTINGS must be a number"
((USERS >= 2 && USERS % 2 == 0)) || bench_die "BENCH_TX_USERS must be an even number >= 2"
command -v pgbench >/dev/null 2>&1 || bench_die "pgbench not installed (postgresql)"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-tx.XXXXXX")
export PGOPTIONS="-c client_min_messages=warning"
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -d platform)
cleanup() {
    "${PSQL[@]}" -c 'DROP SCHEMA IF EXISTS bench_tx CASCADE' >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# wrk's -d and pgbench's -T: the same duration in whole seconds.
case $DURATION in
    *s) SECONDS_T=${DURATION%s} ;;
    *m) SECONDS_T=$((${DURATION%m} * 60)) ;;
    *) SECONDS_T=$DURATION ;;
esac
[[ $SECONDS_T =~ ^[0-9]+$ ]] && ((SECONDS_T > 0)) || bench_die "BENCH_DURATION $DURATION is not whole seconds or minutes"

# --- users, tokens and (transfers) funds ---------------------------------------------------------
c1_port=$(awk -F= '/^HTTP_PORT=/ { print $2 }' "$RUN_DIR/env/customers-1.env")
[[ -n $c1_port ]] || bench_die "no HTTP_PORT in $RUN_DIR/env/customers-1.env"
echo "bench tx: registering $USERS users at customers-1 (:$c1_port), kind=$KIND"
python3 - "http://127.0.0.1:$c1_port" "$NGINX_URL" "$USERS" "$KIND" >"$TMP/users" <<'PY'
"""Registers and logs in N users in parallel; funds them for transfers; prints
'token user_id partner_id' lines (partners are pairs 0-1, 2-3, ...)."""
import concurrent.futures
import json
import os
import sys
import urllib.error
import urllib.request

customers, nginx, n, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]


def post(url, body, headers=None):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


def user(i):
    name = "bench_tx_%s_%d" % (os.urandom(4).hex(), i)
    pw = "bench-pw-" + os.urandom(6).hex()
    st, u = post(customers + "/api/auth/register",
                 {"user_name": name, "email": name.replace("_", "-") + "@bench.example", "name": "Bench", "password": pw})
    if st != 201:
        raise SystemExit("register -> %d %r" % (st, u))
    st, t = post(customers + "/api/auth/login", {"login": name, "password": pw})
    if st != 200:
        raise SystemExit("login -> %d %r" % (st, t))
    if kind == "transfer":
        st, d = post(nginx + "/api/transactions", {"type": "deposit", "amount": "1000000.00"},
                     {"Authorization": "Bearer " + t["access_token"], "Idempotency-Key": "fund-" + os.urandom(8).hex()})
        if st != 201:
            raise SystemExit("funding deposit -> %d %r" % (st, d))
    return t["access_token"], u["id"]


with concurrent.futures.ThreadPoolExecutor(8) as ex:
    users = list(ex.map(user, range(n)))
for i, (token, uid) in enumerate(users):
    print(token, uid, users[i ^ 1][1])
PY
[[ $(wc -l <"$TMP/users") == "$USERS" ]] || bench_die "user setup failed"

# Every wrk run (warm-up and measured) draws a fresh key prefix from /dev/urandom, so no request
# ever replays an earlier one.
cat >"$TMP/post.lua" <<'LUA'
local users, n, counter, prefix = {}, 0, 0, ""
local kind = os.getenv("TX_KIND")
function setup(thread)
    nthreads = (nthreads or 0) + 1
    thread:set("tid", nthreads)
end
function init(args)
    for line in io.lines(os.getenv("TX_USERS_FILE")) do
        local token, uid, partner = line:match("^(%S+) (%S+) (%S+)$")
        n = n + 1
        users[n] = { token = token, partner = partner }
    end
    local f = assert(io.open("/dev/urandom", "rb"))
    prefix = f:read(8):gsub(".", function(c) return string.format("%02x", c:byte()) end)
    f:close()
end
function request()
    counter = counter + 1
    local u = users[((counter * 7 + tid * 13) % n) + 1]
    local body
    if kind == "transfer" then
        body = '{"type":"transfer","amount":"0.01","to_user_id":"' .. u.partner .. '"}'
    else
        body = '{"type":"deposit","amount":"0.01"}'
    end
    return wrk.format("POST", "/api/transactions", {
        ["Authorization"] = "Bearer " .. u.token,
        ["Content-Type"] = "application/json",
        ["Idempotency-Key"] = "bench-" .. prefix .. "-" .. tid .. "-" .. counter,
    }, body)
end
function done(summary, latency, requests)
    io.write(string.format("latency tail (ms): p90 %.1f p95 %.1f p99 %.1f p99.9 %.1f max %.1f\n",
        latency:percentile(90) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
        latency:percentile(99.9) / 1000, latency.max / 1000))
end
LUA
# The reads: TX_GET=list asks for the newest page of the user's transactions, TX_GET=user for the
# user itself (GET /api/users/{own id}); each request by its own user's token, rotating.
cat >"$TMP/get.lua" <<'LUA'
local users, n, counter = {}, 0, 0
local what = os.getenv("TX_GET")
function setup(thread)
    nthreads = (nthreads or 0) + 1
    thread:set("tid", nthreads)
end
function init(args)
    for line in io.lines(os.getenv("TX_USERS_FILE")) do
        local token, uid = line:match("^(%S+) (%S+)")
        n = n + 1
        users[n] = { token = token, uid = uid }
    end
end
function request()
    counter = counter + 1
    local u = users[((counter * 7 + tid * 13) % n) + 1]
    local path = what == "user" and ("/api/users/" .. u.uid) or "/api/transactions?limit=20"
    return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. u.token })
end
LUA
export TX_USERS_FILE=$TMP/users TX_KIND=$KIND

# One request by hand first: the figures must describe 201s.
read -r tok0 _ partner0 <"$TMP/users"
if [[ $KIND == transfer ]]; then body0="{\"type\":\"transfer\",\"amount\":\"0.01\",\"to_user_id\":\"$partner0\"}"
else body0='{"type":"deposit","amount":"0.01"}'; fi
code=$(curl -s -o "$TMP/first" -w '%{http_code}' -H "Authorization: Bearer $tok0" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: bench-first-$$" -d "$body0" "$NGINX_URL/api/transactions") || code=000
[[ $code == 201 ]] || bench_die "POST /api/transactions answered $code: $(head -c 300 "$TMP/first")"

# --- pgbench, tx_post, pgbench ------------------------------------------------------------------------
# The floor is measured right before and right after tx_post and averaged: this machine's speed
# drifts within a minute (pgbench alone has ranged 7.6k-17.5k tx/s between runs), and a single
# measurement on one side made the ratio swing more than either figure.
"${PSQL[@]}" >/dev/null <<'SQL'
DROP SCHEMA IF EXISTS bench_tx CASCADE;
CREATE SCHEMA bench_tx;
CREATE TABLE bench_tx.one_row (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    uuid NOT NULL,
    amount     numeric(20,2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
SQL
echo "INSERT INTO bench_tx.one_row (user_id, amount) VALUES (gen_random_uuid(), 0.01);" >"$TMP/insert.sql"
pgbench_once() {   # pgbench_once LABEL → prints its line; sets PG_TPS
    pgbench -n -h "$PG_SOCKET_DIR" -p "$PG_PORT" -U postgres -c "$CONNECTIONS" -j "${BENCH_THREADS:-2}" \
        -T "$SECONDS_T" -f "$TMP/insert.sql" platform >"$TMP/pgbench.out" 2>&1 ||
        { cat "$TMP/pgbench.out" >&2; bench_die "pgbench failed"; }
    PG_TPS=$(awk '/^tps = / { v = $3 } END { if (v == "") exit 1; print v }' "$TMP/pgbench.out") ||
        { cat "$TMP/pgbench.out" >&2; bench_die "cannot parse pgbench output"; }
    local failed
    failed=$(awk '/number of failed transactions:/ { print $5 }' "$TMP/pgbench.out")
    [[ -z $failed || $failed == 0 ]] || { cat "$TMP/pgbench.out" >&2; bench_die "pgbench: $failed failed transactions"; }
    printf '  %-12s %-44s %10.0f tx/s\n' pgbench "INSERT one row ($1)" "$PG_TPS"
}
echo "bench tx: pgbench -c$CONNECTIONS -j${BENCH_THREADS:-2} -T$SECONDS_T, one INSERT per transaction, before and after tx_post"
pgbench_once before
pg_before=$PG_TPS

# The posting batcher's counters, summed over the transactions instances (before/after tx_post).
batch_counters() {
    local f port
    for f in "$RUN_DIR"/env/transactions-*.env; do
        port=$(awk -F= '/^HTTP_PORT=/ { print $2 }' "$f")
        curl -s "http://127.0.0.1:$port/metrics" || true
    done | awk '/^transactions_post_batches_total/ { b += $2 } /^transactions_post_batched_total/ { i += $2 }
                /^transactions_post_alone_total/ { a += $2 } END { printf "%d %d %d\n", b, i, a }'
}
read -r batches0 batched0 alone0 < <(batch_counters)

echo "bench tx: wrk -t${BENCH_THREADS:-2} -c$CONNECTIONS -d$DURATION (warm-up ${BENCH_WARMUP:-3s}) against $NGINX_URL"
ticks0=$(cpu_ticks)
wrk_measure tx_post "$NGINX_URL/api/transactions" -s "$TMP/post.lua"
echo "  CPU taken by the host (steal) during tx_post: $(steal_pct "$ticks0" "$(cpu_ticks)") %"
read -r batches1 batched1 alone1 < <(batch_counters)
awk -v b=$((batches1 - batches0)) -v i=$((batched1 - batched0)) -v a=$((alone1 - alone0)) 'BEGIN {
    printf "  posting batches: %d statements, %d postings, mean %.2f per statement, %d left to post alone\n",
        b, i, b ? i / b : 0, a }'

pgbench_once after
pg_tps=$(awk -v a="$pg_before" -v b="$PG_TPS" 'BEGIN { printf "%.1f", (a + b) / 2 }')
rows=$("${PSQL[@]}" -tAc 'SELECT count(*) FROM bench_tx.one_row')
echo "  pgbench mean: $pg_tps tx/s ($rows rows in both runs)"

# --- tx_list -----------------------------------------------------------------------------------------
# Every user up to LIST_POSTINGS postings: deposits of 0.01 as the posting paths write them (a
# row with both legs, the external account debited), created one a minute back from two days ago
# so they sort behind the live ones, and the user's balance credited with their sum; then VACUUM
# (ANALYZE) as autovacuum would, and a CHECKPOINT so that the seeding's writes are not flushed
# while the reads are measured.
cut -d' ' -f2 "$TMP/users" | paste -sd, >"$TMP/uids"
t0=$(date +%s.%N)
"${PSQL[@]}" -v uids="{$(cat "$TMP/uids")}" -v target="$LIST_POSTINGS" >/dev/null <<'SQL'
CREATE TEMP TABLE seed AS
SELECT u.uid, greatest(:target - (SELECT count(*) FROM transactions.transactions t WHERE t.user_id = u.uid)
                              - (SELECT count(*) FROM transactions.transactions t WHERE t.to_user_id = u.uid), 0) AS n
  FROM unnest(:'uids'::uuid[]) AS u(uid);
INSERT INTO transactions.transactions (id, type, status, amount, currency, description, user_id, created_by,
                                       created_at, updated_at, debit_account, credit_account)
SELECT gen_random_uuid(), 'deposit', 'completed', 0.01, 'BRL', 'bench seed', s.uid, s.uid, c.at, c.at,
       '00000000-0000-0000-0000-000000000000', s.uid
  FROM seed s, generate_series(1, s.n) g, LATERAL (SELECT now() - interval '2 days' - g * interval '1 minute' AS at) c;
INSERT INTO transactions.balances AS b (user_id, currency, balance)
SELECT uid, 'BRL', n * 0.01 FROM seed WHERE n > 0
    ON CONFLICT (user_id, currency) DO UPDATE SET balance = b.balance + EXCLUDED.balance, updated_at = now();
VACUUM (ANALYZE) transactions.transactions;
CHECKPOINT;
SQL
postings_per_user=$("${PSQL[@]}" -tA -v uids="{$(cat "$TMP/uids")}" <<'SQL'
SELECT min((SELECT count(*) FROM transactions.transactions t WHERE t.user_id = u.uid)
         + (SELECT count(*) FROM transactions.transactions t WHERE t.to_user_id = u.uid))
  FROM unnest(:'uids'::uuid[]) AS u(uid);
SQL
)
[[ $postings_per_user =~ ^[0-9]+$ ]] || bench_die "cannot count the users' postings: $postings_per_user"
awk -v t0="$t0" -v t1="$(date +%s.%N)" -v n="$postings_per_user" -v u="$USERS" \
    'BEGIN { printf "bench tx: every one of %d users holds >= %d postings (seeded in %.1f s)\n", u, n, t1 - t0 }'

# users_get right before and right after tx_list, averaged, as pgbench around tx_post.
TX_GET=user wrk_measure users_get_before "$NGINX_URL/api/users/_own_id_" -s "$TMP/get.lua"
ticks0=$(cpu_ticks)
TX_GET=list wrk_measure tx_list "$NGINX_URL/api/transactions?limit=20" -s "$TMP/get.lua"
echo "  CPU taken by the host (steal) during tx_list: $(steal_pct "$ticks0" "$(cpu_ticks)") %"
TX_GET=user wrk_measure users_get_after "$NGINX_URL/api/users/_own_id_" -s "$TMP/get.lua"
users_get_rps=$(awk -v a="${RPS[users_get_before]}" -v b="${RPS[users_get_after]}" 'BEGIN { printf "%.1f", (a + b) / 2 }')

r=$(ratio "${RPS[tx_post]}" "$pg_tps")
echo "  ratio tx_post/pgbench: $r (bar: >= 0.25, p99 < 50 ms)"
lr=$(ratio "${RPS[tx_list]}" "$users_get_rps")
echo "  ratio tx_list/users_get: $lr (bar: >= 0.5, p99 < 20 ms)"
printf 'bench tx_post rps=%.0f pgbench_tps=%.0f ratio=%s p99_ms=%.3f\n' "${RPS[tx_post]}" "$pg_tps" "$r" "${P99[tx_post]}"
printf 'bench tx_list rps=%.0f users_get_rps=%.0f ratio=%s p99_ms=%.3f postings_per_user=%d\n' \
    "${RPS[tx_list]}" "$users_get_rps" "$lr" "${P99[tx_list]}" "$postings_per_user"
