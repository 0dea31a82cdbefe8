#!/usr/bin/env bash
# The ingest benchmark of issue 2: a 2,000-message corpus in a private
# Dovecot is ingested end to end (fetch -> parse -> persist -> thank-you
# enqueued) by `servicedesk serve` on SQLite and on PostgreSQL, each beside
# its ceiling (a bare fetch + parse of the same mail in the same run), then
# the arrival -> ticket latency at poll_interval 2s. Only the ratios compare
# across machines. Takes about 3 minutes on 2 cores; the full go test output
# is kept in /tmp/servicedesk-bench.log.
#
# `deploy/bench.sh backlog` runs issue 12's backlog series instead: for
# each size in BACKLOG (default 2000,10000; e.g. BACKLOG=2000,10000,100000)
# a fresh mailbox of that many waiting mails, drained end to end to the
# last ticket on SQLite and PostgreSQL with serve's peak RSS, beside the
# bare fetch+parse ceiling and, with MAILROOM=<dir of tpitale/mail_room's
# source> (never committed here; Debian's ruby, ruby-redis, ruby-net-imap,
# ruby-oauth2, ruby-jwt, ruby-charlock-holmes), mail_room's hand-off of the
# same mailbox to a Redis list, all in the same run. 100,000 takes about
# half an hour. SERVICEDESK_PPROF=127.0.0.1:6060 SERVICEDESK_PPROF_BLOCK=1
# let you take CPU, block and mutex profiles of serve while it drains.
set -euo pipefail
cd "$(dirname "$0")/.."
. deploy/bench-report.sh
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
log=/tmp/servicedesk-bench.log
bench=Ingest lines='^(setup|knobs|end to end =|ingest |latency )'
if [ "${1:-}" = backlog ]; then
  bench=Backlog lines='^(knobs|backlog )'
  export BACKLOG="${BACKLOG:-2000,10000}" MAILROOM="${MAILROOM:-}"
fi

echo "== go test -bench $bench (log: $log)"
set +e
go test -count=1 -run '^$' -bench "$bench" -benchtime 1x -timeout 120m ./e2e >"$log" 2>&1
status=$?
set -e

bench_report "$bench" "$lines" "$log" "$status"
