#!/usr/bin/env bash
# ERP synchronisation benchmark (issue 17): ERP_BENCH_TENANTS (200) tenants of ERP_BENCH_RECORDS
# (5000) customers each at the stack's ERP simulator, synchronised end to end by both sync-service
# instances (ERP_BENCH_CONCURRENCY workers each, default 2; rate limit off): POST /api/tenants/sync
# {"kind":"customers","spreadMs":0} → one job per tenant on the erp-sync queue → workers page the
# simulator (500 per page), parse, and write each tenant's records into sync.erp_customers (the
# first sync of a tenant: one COPY straight into the table). Timed from the trigger until every
# job's job_runs row is completed. Then, in the same run, a raw COPY of the same rows (exported
# first) into the same table, emptied, as the ceiling: psql \copy from a file, one stream.
# Line:
#   bench erp tenants=… records=… tenants_per_min=… records_per_s=… copy_rows_per_s=… ratio=…
#       seconds=… cpu=<process=seconds …> steal_pct=…
#   (ratio = records_per_s / copy_rows_per_s; the bar is 0.5)
# Needs the stack's facts in the environment (bench/run-all exports them).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BENCH_NAME=erp
# shellcheck source=bench/lib.bash
source bench/lib.bash

NGINX_URL=${NGINX_URL:?run through bench/run-all}
RUN_DIR=${RUN_DIR:?}
ERP=${ERP_API_URL:?run through bench/run-all}
PG_CONNINFO=${PG_CONNINFO:?}
TENANTS=${ERP_BENCH_TENANTS:-200}
RECORDS=${ERP_BENCH_RECORDS:-5000}
CONCURRENCY=${ERP_BENCH_CONCURRENCY:-2}
TIMEOUT_S=${ERP_BENCH_TIMEOUT_S:-900}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-erp.XXXXXX")
chmod 755 "$TMP"
SYNC_INSTANCES=(sync-1 sync-2)

psql_su() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -d "$PG_CONNINFO" "$@"; }

bench_env_save "$TMP" "${SYNC_INSTANCES[@]}"
restore() {
    bench_env_restore
    rm -rf "$TMP"
}
trap restore EXIT

# --- both instances: rate limit off, the schedule off, CONCURRENCY workers each ----------------------
for i in "${SYNC_INSTANCES[@]}"; do
    grep -v -E '^(ERP_SYNC_RATE_MAX|ERP_SYNC_CONCURRENCY|ERP_SYNC_CUSTOMERS_CRON|ERP_SYNC_PRODUCTS_CRON)=' \
        "$TMP/$i.env.orig" >"$RUN_DIR/env/$i.env"
    printf 'ERP_SYNC_RATE_MAX=0\nERP_SYNC_CONCURRENCY=%s\nERP_SYNC_CUSTOMERS_CRON=off\nERP_SYNC_PRODUCTS_CRON=off\n' \
        "$CONCURRENCY" >>"$RUN_DIR/env/$i.env"
    scripts/stack stop-one "$i" >/dev/null
    scripts/stack start-one "$i" >/dev/null
done

# --- a clean slate: no tenant, no synced row --------------------------------------------------------
psql_su -c "TRUNCATE sync.erp_customers, sync.erp_products, sync.erp_sync_state; DELETE FROM sync.tenants;
            DELETE FROM sync.job_runs WHERE queue = 'erp-sync'"
psql_su -c "VACUUM FULL sync.erp_customers" >/dev/null

PW=$(<"$RUN_DIR/secrets/admin_password")
TOKEN=$(curl -sf "$NGINX_URL/api/auth/login" -H 'Content-Type: application/json' \
    -d "{\"login\":\"admin\",\"password\":\"$PW\"}" | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
[[ -n $TOKEN ]] || bench_die "cannot log in as admin"

echo "  creating $TENANTS tenants of $RECORDS customers at the simulator and on the platform"
for n in $(seq 1 "$TENANTS"); do
    name=$(printf 'bench-%04d' "$n")
    key="k-$name-$RANDOM$RANDOM"
    curl -sf -X PUT "$ERP/_sim/tenants/$name" -d "{\"api_key\":\"$key\",\"customers\":$RECORDS,\"products\":0}" \
        >/dev/null || bench_die "simulator PUT $name failed"
    curl -sf -X POST "$NGINX_URL/api/tenants" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        -d "{\"name\":\"$name\",\"erpBaseUrl\":\"$ERP/tenants/$name\",\"apiKey\":\"$key\"}" >/dev/null ||
        bench_die "POST /api/tenants $name failed"
done
TOTAL=$((TENANTS * RECORDS))

# --- the sync ------------------------------------------------------------------------------------
cpu_by_comm >"$TMP/cpu.before"
ticks_before=$(cpu_ticks)
t0=$(date +%s.%N)
curl -sf -X POST "$NGINX_URL/api/tenants/sync" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
    -d '{"kind":"customers","spreadMs":0}' >"$TMP/trigger.json" || bench_die "POST /api/tenants/sync failed"
deadline=$((SECONDS + TIMEOUT_S))
while :; do
    read -r done_n bad_n < <(psql_su -F ' ' -c "SELECT count(*) FILTER (WHERE status = 'completed'),
        count(*) FILTER (WHERE status IN ('failed', 'dead')) FROM sync.job_runs WHERE queue = 'erp-sync'")
    ((bad_n == 0)) || bench_die "$bad_n jobs failed (see sync.job_runs)"
    ((done_n >= TENANTS)) && break
    ((SECONDS < deadline)) || bench_die "timed out after ${TIMEOUT_S}s with $done_n of $TENANTS tenants synced"
    sleep 0.1
done
t1=$(date +%s.%N)
cpu_by_comm >"$TMP/cpu.after"
ticks_after=$(cpu_ticks)
rows=$(psql_su -c "SELECT count(*) FROM sync.erp_customers")
((rows == TOTAL)) || bench_die "$rows rows stored, expected $TOTAL"
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
rps=$(awk -v n="$TOTAL" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
tpm=$(awk -v n="$TENANTS" -v s="$secs" 'BEGIN { printf "%.1f", n * 60 / s }')
cpu=$(cpu_diff "$TMP/cpu.before" "$TMP/cpu.after")
steal=$(steal_pct "$ticks_before" "$ticks_after")
echo "  sync: $TOTAL records of $TENANTS tenants in ${secs}s ($rps records/s, $tpm tenants/min); cpu: $cpu"

# --- the ceiling: a raw COPY of the same rows into the same table --------------------------------
COLS="tenant_id, external_id, name, email, document, source_updated_at, deleted"
psql_su -c "\\copy (SELECT $COLS FROM sync.erp_customers) TO '$TMP/rows.copy'"
psql_su -c "TRUNCATE sync.erp_customers"
psql_su -c "VACUUM FULL sync.erp_customers" >/dev/null
c0=$(date +%s.%N)
psql_su -c "\\copy sync.erp_customers ($COLS) FROM '$TMP/rows.copy'"
c1=$(date +%s.%N)
copied=$(psql_su -c "SELECT count(*) FROM sync.erp_customers")
((copied == TOTAL)) || bench_die "the raw COPY stored $copied rows, expected $TOTAL"
copy_secs=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')
copy_rps=$(awk -v n="$TOTAL" -v s="$copy_secs" 'BEGIN { printf "%.0f", n / s }')
echo "  raw COPY of the same $TOTAL rows: ${copy_secs}s ($copy_rps rows/s)"

echo "bench erp tenants=$TENANTS records=$TOTAL tenants_per_min=$tpm records_per_s=$rps" \
     "copy_rows_per_s=$copy_rps ratio=$(ratio "$rps" "$copy_rps") seconds=$secs cpu=$cpu steal_pct=$steal"
