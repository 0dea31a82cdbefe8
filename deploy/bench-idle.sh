#!/usr/bin/env bash
# The IMAP IDLE benchmarks of issue 11: arrival -> ticket latency of 200
# mails delivered one by one over LMTP to a private Dovecot, with imap.idle
# and poll_interval 60s, beside polling only (poll_interval 2s) and beside
# the floor (a bare IDLE connection hearing of each delivery); then the wall
# time of one scheduler round over 100 and 1,000 idle mailboxes with their
# watchers up, beside the same enqueues done bare. Takes about 2 minutes on
# 2 cores; the full go test output is kept in /tmp/servicedesk-bench-idle.log.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/bench-report.sh
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench-idle.log

echo "== go test -bench IdleLatency ./e2e, -bench SchedulerRound ./watch (log: $log)"
set +e
(
  go test -count=1 -run '^$' -bench IdleLatency -benchtime 1x -timeout 20m ./e2e
  e2e=$?
  go test -count=1 -run '^$' -bench SchedulerRound -benchtime 1x -timeout 10m ./watch
  exit $((e2e | $?))
) >"$log" 2>&1
status=$?
set -e

bench_report "idle" '^(knobs|idle-latency|scheduler-round)' "$log" "$status"
