#!/usr/bin/env bash
# The ingest benchmark of issue 2: a 2,000-message corpus in a private
# Dovecot is ingested end to end (fetch -> parse -> persist -> thank-you
# enqueued) by `servicedesk serve` on SQLite and on PostgreSQL, each beside
# its ceiling (a bare fetch + parse of the same mail in the same run), then
# the arrival -> ticket latency at poll_interval 2s. Only the ratios compare
# across machines. Takes about 3 minutes on 2 cores; the full go test output
# is kept in /tmp/servicedesk-bench.log.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench.log

echo "== go test -bench Ingest (log: $log)"
set +e
go test -count=1 -run '^$' -bench Ingest -benchtime 1x -timeout 30m ./e2e >"$log" 2>&1
status=$?
set -e

echo
echo "== ingest benchmark ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
grep -E '^(setup|knobs|end to end =|ingest |latency )' "$log" || true
echo
echo "== go test metrics"
grep -E '^Benchmark' "$log" || true
if [ "$status" -ne 0 ]; then
  echo
  echo "== FAILED (exit $status); the failures:"
  grep -E -A8 -e '--- FAIL|^panic|bench_test.go:[0-9]+:' "$log" | head -80
fi
exit "$status"
