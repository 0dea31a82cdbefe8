#!/usr/bin/env bash
# The chaos run (not part of deploy/test.sh): 10,000 mails on PostgreSQL,
# one `serve --roles scheduler,web` and three `serve --roles worker`, first
# undisturbed, then while a worker is SIGKILLed every 2 s (and a new one
# started), Redis is restarted with its data, Dovecot is restarted, and
# Redis is restarted empty. Prints lost mails, duplicate tickets and
# duplicate thank-yous (all must be 0) and both drain times with their
# ratio; exits non-zero if any is not 0 or a run does not drain in time.
# Takes about 10 minutes on 2 cores. SERVICEDESK_CHAOS_MAILS changes the
# number of mails.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "export $(bash deploy/services.sh | tail -1)"
bash deploy/mailstack.sh install
export CGO_ENABLED=0

log=$(mktemp /tmp/servicedesk-chaos.XXXXXX.log)
echo "== go test -tags chaos -run TestChaos ./e2e/ (full output: $log)"
set +e
go test -tags chaos -count=1 -run '^TestChaos$' -v -timeout 20m ./e2e/ 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
echo
if grep -q '^== chaos summary' "$log"; then
  sed -n '/^== chaos summary/,/^== end of chaos summary/p' "$log"
else
  echo "no summary: the run stopped before it (see $log)"
fi
if [ "$status" -eq 0 ]; then
  echo "chaos run: PASS"
else
  echo "chaos run: FAIL (exit $status); failures:"
  grep -E '^\s+chaos_test\.go:[0-9]+:|^--- FAIL|^FAIL|panic:' "$log" | head -20 || true
fi
exit "$status"
