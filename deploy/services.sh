#!/usr/bin/env bash
# Makes sure Redis and PostgreSQL answer on loopback, installing them from
# Debian's packages and starting them when they are missing. Idempotent.
# With the argument "redis", only Redis. Prints the PostgreSQL URL the tests use as SERVICEDESK_TEST_POSTGRES=...
set -euo pipefail

log() { printf 'services: %s\n' "$*" >&2; }
apt_updated=
# apt_install takes the lock deploy/mailstack.sh takes: two installers at
# once would fail on dpkg's own lock. An apt-get of somebody else's (a
# fresh cloud machine's unattended-upgrades) is waited for, up to 10 min,
# instead of failing the set-up.
apt_install() {
  mkdir -p /var/lock
  (
    flock 9
    if [ -z "$apt_updated" ]; then
      log "apt-get update"
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    fi
    log "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
  ) 9>/var/lock/servicedesk-install.lock
  apt_updated=1
}

wait_for() { # name, command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  log "$name did not come up"; return 1
}

ensure_redis() {
  if command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  command -v redis-server >/dev/null || apt_install redis-server
  log "starting redis-server on 127.0.0.1:6379"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/servicedesk.log
  wait_for redis redis-cli -h 127.0.0.1 -p 6379 ping
}

ensure_postgres() {
  if ! command -v pg_ctlcluster >/dev/null; then apt_install postgresql; fi
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    local ver
    ver=$(ls /etc/postgresql | sort -V | tail -1)
    log "starting PostgreSQL $ver"
    pg_ctlcluster --skip-systemctl-redirect "$ver" main start
    wait_for postgres pg_isready -h 127.0.0.1 -p 5432 -q
  fi
  # The tests log in as postgres/postgres over TCP; a stock cluster needs the
  # password set, a trust-auth one ignores it. The database "test" holds one
  # schema per test.
  if ! PGPASSWORD=postgres psql -h 127.0.0.1 -U postgres -d test -Atc 'select 1' >/dev/null 2>&1; then
    log "preparing role postgres and database test"
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    su postgres -c "psql -Atc \"SELECT 1 FROM pg_database WHERE datname='test'\"" | grep -q 1 ||
      su postgres -c "createdb test"
  fi
}

ensure_redis
[ "${1:-all}" = redis ] || ensure_postgres
# Headless Chromium for the browser test of the monitor (e2e/operator_test.go).
[ "${1:-all}" = redis ] || command -v chromium >/dev/null || apt_install chromium
echo "SERVICEDESK_TEST_POSTGRES=postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable"
