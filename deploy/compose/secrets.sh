#!/bin/sh
# Writes the secret files docker-compose.yml reads, once: random values for
# the PostgreSQL password (and the database URL that carries it), the reply
# key secret and the admin API token; the mail passwords from their
# .example files (those of the dev mail stack: replace them for real
# mailboxes). Existing files are kept, so it is safe to run again.
#
#   sh deploy/compose/secrets.sh
#
# Compose (without Swarm) bind-mounts secret files as they are, so they must
# be readable by the container user 65532: they are written 0644 in a 0700
# directory, which keeps them from other users of this machine.
set -eu
dir=$(cd "$(dirname "$0")" && pwd)/secrets
chmod 0700 "$dir"
rand() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
put() { # name value
  [ -s "$dir/$1" ] && return 0
  printf '%s\n' "$2" >"$dir/$1.new" && chmod 0644 "$dir/$1.new" && mv "$dir/$1.new" "$dir/$1"
  echo "wrote deploy/compose/secrets/$1"
}
put postgres_password "$(rand 24)"
put database_url "postgres://servicedesk:$(cat "$dir/postgres_password")@postgres:5432/servicedesk?sslmode=disable"
put reply_key_secret "$(rand 32)"
put admin_token "$(rand 20)"
put imap_password "$(cat "$dir/imap_password.example")"
put smtp_password "$(cat "$dir/smtp_password.example")"
