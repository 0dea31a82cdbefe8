#!/usr/bin/env bash
# The whole test suite, from a fresh clone: starts what the tests need
# (Redis, PostgreSQL; Dovecot and OpenSMTPD are started per test package by
# internal/mailstack through deploy/mailstack.sh), then vets and tests
# everything on SQLite and PostgreSQL against the real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "export $(bash deploy/services.sh | tail -1)"
export CGO_ENABLED=0
echo "== go vet"
go vet ./...
echo "== go test"
go test -count=1 -timeout 25m -p 2 ./... 2>&1 | tee /tmp/servicedesk-test.log
status=${PIPESTATUS[0]}
echo "== go test -fuzz FuzzIngest (30s)"
fuzz=0
go test -run '^$' -fuzz '^FuzzIngest$' -fuzztime 30s ./ingest || fuzz=$?
if [ "$fuzz" -ne 0 ] && [ "$status" -eq 0 ]; then status=$fuzz; fi
passed=$(grep -c '^ok ' /tmp/servicedesk-test.log || true)
failed=$(grep -c $'^FAIL\t' /tmp/servicedesk-test.log || true)
echo "packages: $passed passed, $failed failed"
exit "$status"
