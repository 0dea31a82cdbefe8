#!/usr/bin/env bash
# The API benchmark of issue 4: GET /api/v1/projects/acme/tickets on a store
# of 100,000 tickets (first page and page 1000), 16 keep-alive clients, on
# SQLite and on PostgreSQL, each beside its ceiling (a bare handler writing
# the same JSON from memory, measured in alternating rounds in the same run).
# Only the ratios compare across machines. Takes about 2 minutes on 2 cores;
# the full go test output is kept in /tmp/servicedesk-bench-api.log.
# SERVICEDESK_BENCH_API_DURATION (default 5s) is the time per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/bench-report.sh
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench-api.log

echo "== go test -bench TicketsAPI (log: $log)"
set +e
go test -count=1 -run '^$' -bench TicketsAPI -benchtime 1x -timeout 20m ./cmd/servicedesk >"$log" 2>&1
status=$?
set -e

bench_report "tickets API" '^(knobs|populate|tickets API)' "$log" "$status"
