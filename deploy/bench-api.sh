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
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench-api.log

echo "== go test -bench TicketsAPI (log: $log)"
set +e
go test -count=1 -run '^$' -bench TicketsAPI -benchtime 1x -timeout 20m ./cmd/servicedesk >"$log" 2>&1
status=$?
set -e

echo
echo "== tickets API benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
grep -E '^(knobs|populate|tickets API)' "$log" || true
echo
echo "== go test metrics"
grep -E '^Benchmark' "$log" || true
if [ "$status" -ne 0 ]; then
  echo
  echo "== FAILED (exit $status); the failures:"
  grep -E -A8 -e '--- FAIL|^panic|apibench_test.go:[0-9]+:' "$log" | head -80
fi
exit "$status"
