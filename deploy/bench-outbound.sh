#!/usr/bin/env bash
# The outbound benchmark of issue 3, in one run against a private Dovecot +
# OpenSMTPD (internal/mailstack):
#   - mails/s of notify.Deliverer for 1,000 note notifications to OpenSMTPD
#     (SQLite store, connection reuse), sequential and from 4 goroutines,
#     each beside the ceiling: a bare go-mail loop sending the same rendered
#     mails on one connection to the same server, in the same run;
#   - peak RSS (VmHWM) of `servicedesk serve --roles worker` sending ten
#     notes with a 10 MB attachment each, queued at once, beside the idle
#     RSS of the same worker before the sends, at notify_concurrency 4 and 10.
# Only the ratios compare across machines. Takes about 2 minutes on 2 cores;
# the full go test output is kept in /tmp/servicedesk-bench-outbound.log.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/bench-report.sh
eval "export $(bash deploy/services.sh redis | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench-outbound.log

echo "== go test -bench Outbound (log: $log)"
set +e
go test -count=1 -run '^$' -bench Outbound -benchtime 1x -timeout 15m ./e2e >"$log" 2>&1
status=$?
set -e

bench_report "outbound" '^(knobs|mail size|outbound |server refusals|peak RSS)' "$log" "$status"
