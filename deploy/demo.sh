#!/usr/bin/env bash
# README command 1: the main job on the embedded default (SQLite).
# Brings up Redis and a local mail stack (Dovecot IMAP+LMTP, OpenSMTPD) on
# loopback under .run/, drops the sample customer mails from deploy/samples/
# into the desk mailbox over SMTP, runs `servicedesk serve` until every mail
# has an outcome, and shows the tickets and the thank-you mails that reached
# the customers' mailboxes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/.run
mkdir -p "$run"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "services: Redis"
bash deploy/services.sh redis >/dev/null

say "mail stack: Dovecot + OpenSMTPD in .run/mail"
bash deploy/mailstack.sh down "$run/mail" >/dev/null 2>&1 || true
rm -rf "$run/mail" "$run/servicedesk.db"*
# Ports of their own, so the demo runs beside a test suite's stacks.
export IMAP_PORT=${IMAP_PORT:-24143} IMAPS_PORT=${IMAPS_PORT:-24993} LMTP_PORT=${LMTP_PORT:-24024} SMTP_PORT=${SMTP_PORT:-24025}
bash deploy/mailstack.sh up "$run/mail" >/dev/null

say "build"
CGO_ENABLED=0 go build -o "$run/servicedesk" ./cmd/servicedesk
"$run/servicedesk" version

cat > "$run/servicedesk.yaml" <<YAML
redis: {url: "redis://127.0.0.1:6379/3"}
database: {url: "sqlite://$run/servicedesk.db"}
http:
  listen: 127.0.0.1:8089
  tokens: [{name: demo, token: demo-admin-token-change-me, role: admin}]
mail: {reply_key_secret: demo-secret-change-me-0123456789}
log: {level: warn, format: text}
projects:
  - key: acme
    name: Acme Support
    address: support@example.test
    imap: {host: 127.0.0.1, port: $IMAP_PORT, security: none, password: secret, poll_interval: 2s}
    smtp: {host: 127.0.0.1, port: $SMTP_PORT, security: none}
YAML
redis-cli -n 3 flushdb >/dev/null
sd() { "$run/servicedesk" --config "$run/servicedesk.yaml" "$@"; }

say "check"
sd check

say "sending $(ls deploy/samples/*.eml | wc -l) sample mails to support@example.test"
smtp_send() { # from, to, file
  exec 3<>"/dev/tcp/127.0.0.1/$SMTP_PORT"
  local line
  read -r line <&3
  for cmd in "EHLO demo.local" "MAIL FROM:<$1>" "RCPT TO:<$2>" "DATA"; do
    printf '%s\r\n' "$cmd" >&3
    while read -r line <&3; do [[ $line =~ ^[0-9]{3}- ]] || break; done
    [[ $line =~ ^[23] ]] || { echo "SMTP $cmd: $line" >&2; return 1; }
  done
  sed 's/$/\r/' "$3" >&3
  printf '.\r\n' >&3
  read -r line <&3
  [[ $line =~ ^2 ]] || { echo "SMTP end of data: $line" >&2; return 1; }
  printf 'QUIT\r\n' >&3
  while read -r line <&3; do :; done
  exec 3>&-
}
for f in deploy/samples/*.eml; do
  from=$(sed -n 's/^From:.*<\(.*\)>.*/\1/p' "$f" | head -1)
  smtp_send "$from" support@example.test "$f"
  echo "  sent $(basename "$f") from $from"
done

say "servicedesk serve (scheduler, worker, web on 127.0.0.1:8089)"
sd serve >"$run/serve.log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
want=$(ls deploy/samples/*.eml | wc -l)
for _ in $(seq 1 120); do
  done_n=$(sd inbound list --json | grep -c '"outcome": "[a-z]' || true)
  [ "$done_n" -ge "$want" ] && break
  sleep 0.5
done
sleep 3 # let the thank-you mails get through OpenSMTPD

say "the inbound ledger"
sd inbound list
say "tickets"
sd tickets list
say "ticket acme#1"
sd tickets show 'acme#1'
say "thank-you mails in the customers' mailboxes"
for user in alice@customer.test bob@customer.test carol@customer.test; do
  dir=$run/mail/mail/$user
  files=$(find "$dir" -type f \( -path '*/new/*' -o -path '*/cur/*' \) 2>/dev/null || true)
  if [ -z "$files" ]; then echo "$user: (no mail)"; continue; fi
  for f in $files; do
    echo "--- $user: $(basename "$f")"
    grep -E '^(From|To|Reply-To|Subject|In-Reply-To|Auto-Submitted|Message-I[dD]):' "$f" | sed 's/^/    /'
  done
done
say "dead letters"
sd deadletters list

kill -TERM $serve_pid; wait $serve_pid || true
trap - EXIT
say "done: the mail stack keeps running in .run/mail (stop: bash deploy/mailstack.sh down .run/mail)"
