#!/usr/bin/env bash
# Legacy bulk upsert benchmark (customers-service users_bulk_upsert, without HTTP):
#   BENCH_BULK_ROWS (1000000) users in BENCH_BULK_BATCH (2000)-row batches over BENCH_BULK_THREADS (2)
#   sessions, as the sync workers send them: new users, the same batches again (all unchanged),
#   every user with a newer record (all updated); then a raw COPY of the same rows into a plain
#   table with a primary key, in the same run, for the ratio.
# It runs the bench mode of build/tests/test_customers_bulk in a throwaway database
# (bulk_test_<pid>, dropped at the end) of the stack's PostgreSQL.
# Line: bench bulk_upsert rows_per_s=… unchanged_rows_per_s=… updated_rows_per_s=…
#       copy_rows_per_s=… ratio=… rows=… batch=… threads=…
# Needs the stack's facts in the environment (bench/run-all exports them), or TEST_PG_CONNINFO
# (superuser conninfo) and TEST_PG_PASSWORD set by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

B=${B:-build}
BIN=$B/tests/test_customers_bulk
make --no-print-directory B="$B" "$BIN" >/dev/null

if [[ -z ${TEST_PG_CONNINFO:-} ]]; then
    : "${PG_CONNINFO:?run through bench/run-all, or set TEST_PG_CONNINFO and TEST_PG_PASSWORD}"
    export TEST_PG_CONNINFO=$PG_CONNINFO
    TEST_PG_PASSWORD=""
    if [[ -n ${PG_SUPERUSER_PASSWORD_FILE:-} && -r $PG_SUPERUSER_PASSWORD_FILE ]]; then
        TEST_PG_PASSWORD=$(<"$PG_SUPERUSER_PASSWORD_FILE")
    fi
    export TEST_PG_PASSWORD
fi
export TEST_PG_PASSWORD=${TEST_PG_PASSWORD:-}

export BULK_BENCH_ROWS=${BENCH_BULK_ROWS:-1000000}
export BULK_BENCH_BATCH=${BENCH_BULK_BATCH:-2000}
export BULK_BENCH_THREADS=${BENCH_BULK_THREADS:-2}

echo "bulk_upsert: $BULK_BENCH_ROWS users, batches of $BULK_BENCH_BATCH, $BULK_BENCH_THREADS sessions"
"$BIN"
