#!/usr/bin/env bash
# A real mail stack on loopback for development and tests, with no system
# configuration touched: Dovecot (IMAP, IMAPS, LMTP) and OpenSMTPD (SMTP,
# delivering every domain to Dovecot over LMTP), all state under DIR.
#
#   bash deploy/mailstack.sh install             install what is missing (idempotent, under a lock)
#   bash deploy/mailstack.sh up DIR              start (idempotent), print the ports
#   bash deploy/mailstack.sh adduser DIR ADDR PASS
#   bash deploy/mailstack.sh addsmtpuser DIR USER PASS   SMTP AUTH credentials (no mailbox use)
#   bash deploy/mailstack.sh stopsmtp DIR        stop OpenSMTPD only ("up" starts it again)
#   bash deploy/mailstack.sh down DIR            stop (safe to call twice)
#
# Ports come from IMAP_PORT (14143), IMAPS_PORT (14993), LMTP_PORT (14024),
# SMTP_PORT (14025) and SMTP_AUTH_PORT (14587); users from MAILSTACK_USERS
# ("addr:password ...") and SMTP AUTH users from MAILSTACK_SMTP_USERS
# ("user:password ...", default desk-auth@example.test:sekret). Missing
# binaries are installed with apt-get. Runs as root.
#
# OAUTH2_INTROSPECTION_URL, when set, adds Dovecot's oauth2 passdb: IMAP
# and submission then also accept SASL XOAUTH2 and OAUTHBEARER, and
# Dovecot asks that URL (RFC 7662 token introspection, POST token=...)
# whether the access token is valid and whose it is: the answer must be
# {"active": true, "username": "<the login user>"}. The token server is the
# caller's (a test runs one in-process).
#
# SMTP_PORT is OpenSMTPD, taking mail from loopback without authentication
# (RFC 5321). SMTP_AUTH_PORT is a submission listener (RFC 6409) that offers
# STARTTLS (RFC 3207, the self-signed certificate) and requires SMTP AUTH
# (RFC 4954), then relays through OpenSMTPD. It is Dovecot's submission
# service, not OpenSMTPD: OpenSMTPD 6.8 as packaged for Debian 12 cannot do
# TLS at all with OpenSSL 3 (its privilege-separated key engine fails every
# handshake: "rsa routines::missing private key", OpenSMTPD issue #1171).
# SMTP AUTH users are Dovecot users, so they could also log in over IMAP.
# OpenSMTPD refuses every recipient in the domain reject.test with a 5xx
# reply at RCPT (through either port); everything else goes to Dovecot over
# LMTP. "stopsmtp" stops OpenSMTPD only: both SMTP ports then fail (the
# submission listener answers but cannot relay), and the queue survives.
#
# OpenSMTPD has its queue (/var/spool/smtpd) and control socket
# (/var/run/smtpd.sock) compiled in, so two instances would clash. Each
# instance therefore runs in its own mount namespace (unshare -m) with
# DIR/smtpd-spool bind-mounted over /var/spool and DIR/smtpd-run over /run:
# any number of stacks can run side by side, one per DIR.
set -euo pipefail

IMAP_PORT=${IMAP_PORT:-14143}
IMAPS_PORT=${IMAPS_PORT:-14993}
LMTP_PORT=${LMTP_PORT:-14024}
SMTP_PORT=${SMTP_PORT:-14025}
SMTP_AUTH_PORT=${SMTP_AUTH_PORT:-14587}
MAILSTACK_SMTP_USERS=${MAILSTACK_SMTP_USERS:-desk-auth@example.test:sekret}
MAILSTACK_USERS=${MAILSTACK_USERS:-support@example.test:secret help@example.test:secret alice@customer.test:secret bob@customer.test:secret carol@customer.test:secret}

log() { printf 'mailstack: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
usage() { die "usage: $0 up DIR | down DIR | stopsmtp DIR | adduser DIR ADDR PASS | addsmtpuser DIR USER PASS"; }

# installed: every binary, module, user and group the stack needs is there.
# Debian's postinst creates the users and groups after it unpacks the
# binaries, so "dovecot is on PATH" alone is not "installed".
installed() {
  local bin st
  for bin in dovecot smtpd openssl unshare flock; do
    command -v "$bin" >/dev/null || return 1
  done
  for bin in imap lmtp submission; do
    [ -x "/usr/lib/dovecot/$bin" ] || return 1
  done
  getent group dovecot >/dev/null && getent passwd dovenull >/dev/null &&
    getent passwd opensmtpd >/dev/null && getent passwd opensmtpq >/dev/null || return 1
  # Every package configured to the end (its postinst has run).
  st=$(dpkg-query -W -f='${db:Status-Abbrev}\n' dovecot-imapd dovecot-lmtpd dovecot-submissiond opensmtpd 2>/dev/null) || return 1
  ! grep -qv '^ii' <<<"$st"
}

# install_lock is the one lock every installer of this project takes
# (deploy/services.sh too): apt-get run twice at once fails on dpkg's lock,
# and a test must not start a half-configured package.
install_lock=/var/lock/servicedesk-install.lock

# ensure_installed installs what is missing, once, under install_lock:
# callers that race wait for the first, then find everything installed.
ensure_installed() {
  installed && return 0
  mkdir -p "$(dirname "$install_lock")"
  exec 9>"$install_lock"
  flock 9
  if ! installed; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    log "installing dovecot-imapd dovecot-lmtpd dovecot-submissiond opensmtpd openssl util-linux"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
      dovecot-imapd dovecot-lmtpd dovecot-submissiond opensmtpd openssl util-linux >/dev/null
    installed || die "installed the mail stack's packages, but they are not complete (users, groups, modules)"
  fi
  flock -u 9
  exec 9>&-
}

# alive PIDFILE: the process named in PIDFILE runs and is ours (its command
# line names the directory of PIDFILE's stack, so a reused pid is not).
alive() {
  local pid
  [ -s "$1" ] && pid=$(cat "$1") && kill -0 "$pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$stackdir/"
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port logfile
  for _ in $(seq 1 100); do
    port_open "$2" && return 0
    sleep 0.1
  done
  log "$1 did not answer on 127.0.0.1:$2; last log lines:"
  tail -n 20 "$3" >&2 2>/dev/null || true
  return 1
}

add_user() { # dir addr pass
  local users=$1/users
  case $2 in *:*|*' '*|'') die "bad address ${2@Q}" ;; esac
  case $3 in *:*|'') die "password for $2 must be non-empty and have no ':'" ;; esac
  [ -e "$users" ] || : >"$users"
  local before
  before=$(stat -c %Y "$users")
  grep -v "^$2:" "$users" >"$users.new" || true
  printf '%s:{PLAIN}%s::::::\n' "$2" "$3" >>"$users.new"
  chmod 0640 "$users.new"
  chgrp dovecot "$users.new"
  mv "$users.new" "$users"
  # Dovecot rereads the file when its mtime (in seconds) or size changed:
  # make sure the mtime did, even within the same second.
  if [ "$(stat -c %Y "$users")" -le "$before" ]; then
    touch -d "@$((before + 1))" "$users"
  fi
}

write_dovecot_conf() { # dir
  local d=$1
  local mechs="plain login" oauth2_passdb=
  if [ -n "${OAUTH2_INTROSPECTION_URL:-}" ]; then
    mechs="plain login xoauth2 oauthbearer"
    cat >"$d/dovecot-oauth2.conf.ext" <<EOF
# Written by deploy/mailstack.sh: tokens are checked by introspection.
introspection_mode = post
introspection_url = $OAUTH2_INTROSPECTION_URL
tokeninfo_url = $OAUTH2_INTROSPECTION_URL?token=
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
EOF
    # Tests refuse tokens on purpose: no growing delay (auth penalty, up
    # to 15s per address) for the logins after.
    oauth2_passdb="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $d/dovecot-oauth2.conf.ext
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}"
  fi
  cat >"$d/dovecot.conf" <<EOF
# Written by deploy/mailstack.sh; rewritten on every "up".
instance_name = mailstack-$IMAP_PORT
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
protocols = imap lmtp submission
listen = 127.0.0.1
ssl = yes
ssl_cert = <$d/tls/cert.pem
ssl_key = <$d/tls/key.pem
auth_mechanisms = $mechs
disable_plaintext_auth = no
# Refused logins answer at once (the default waits 2s): tests try bad passwords.
auth_failure_delay = 0
first_valid_uid = 8
mail_location = maildir:$d/mail/%u
mail_max_userip_connections = 100
postmaster_address = postmaster@example.test
passdb {
  driver = passwd-file
  args = $d/users
}
$oauth2_passdb
userdb {
  driver = static
  args = uid=mail gid=mail home=$d/mail/%u
}
namespace inbox {
  inbox = yes
  separator = /
}
protocol imap {
  mail_max_userip_connections = 100
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
# Submission (RFC 6409): STARTTLS, AUTH against the users above, relayed
# through OpenSMTPD.
hostname = mailstack.test
submission_relay_host = 127.0.0.1
submission_relay_port = $SMTP_PORT
submission_relay_trusted = yes
submission_max_mail_size = 40M
service submission-login {
  inet_listener submission {
    address = 127.0.0.1
    port = $SMTP_AUTH_PORT
  }
}
EOF
}

write_smtpd_conf() { # dir
  local d=$1
  cat >"$d/smtpd.conf" <<EOF
# Written by deploy/mailstack.sh; rewritten on every "up".
table t { "@" = "mail" }
listen on 127.0.0.1 port $SMTP_PORT hostname mailstack.test
action "x" lmtp "127.0.0.1:$LMTP_PORT" rcpt-to virtual <t>
match from any for domain "reject.test" reject
match from local for any action "x"
EOF
}

ensure_cert() { # dir
  local d=$1
  [ -s "$d/tls/cert.pem" ] && return
  mkdir -p "$d/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
    -keyout "$d/tls/key.pem" -out "$d/tls/cert.pem" 2>/dev/null
  chmod 0600 "$d/tls/key.pem"
}

up() { # dir
  local d=$1
  ensure_installed
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  stackdir=$d
  local started_dovecot=
  # Dovecot's unprivileged processes (mail, dovecot, dovenull) must reach DIR.
  chmod 0755 "$d"
  mkdir -p "$d/run" "$d/state" "$d/mail" "$d/smtpd-spool" "$d/smtpd-run"
  chown mail:mail "$d/mail"
  ensure_cert "$d"
  local u
  for u in $MAILSTACK_USERS $MAILSTACK_SMTP_USERS; do
    grep -q "^${u%%:*}:" "$d/users" 2>/dev/null || add_user "$d" "${u%%:*}" "${u#*:}"
  done
  [ -e "$d/users" ] || : >"$d/users"
  chgrp dovecot "$d/users"; chmod 0640 "$d/users"
  [ -s "$d/run/master.pid" ] && ! alive "$d/run/master.pid" && rm -f "$d/run/master.pid"

  if alive "$d/run/master.pid"; then
    log "dovecot already running (pid $(cat "$d/run/master.pid"))"
  else
    write_dovecot_conf "$d"
    started_dovecot=1
    log "starting dovecot: imap 127.0.0.1:$IMAP_PORT imaps :$IMAPS_PORT lmtp :$LMTP_PORT submission :$SMTP_AUTH_PORT"
    # Detached from our stdio: a caller reading our output until EOF must
    # not wait for the daemons.
    dovecot -c "$d/dovecot.conf" </dev/null >>"$d/dovecot.log" 2>&1 || { tail -n 20 "$d/dovecot.log" >&2 2>/dev/null; die "dovecot failed to start"; }
  fi

  if alive "$d/smtpd.pid"; then
    log "smtpd already running (pid $(cat "$d/smtpd.pid"))"
  else
    write_smtpd_conf "$d"
    smtpd -n -f "$d/smtpd.conf" >/dev/null 2>"$d/smtpd.log" || { cat "$d/smtpd.log" >&2; die "invalid $d/smtpd.conf"; }
    log "starting smtpd: smtp 127.0.0.1:$SMTP_PORT"
    # unshare execs sh, which execs smtpd: $! is smtpd's own pid.
    setsid unshare --mount --propagation private sh -c '
      mount --bind "$1/smtpd-spool" /var/spool &&
      mount --bind "$1/smtpd-run" /run &&
      exec smtpd -d -f "$1/smtpd.conf"' sh "$d" </dev/null >>"$d/smtpd.log" 2>&1 &
    echo $! >"$d/smtpd.pid"
  fi

  wait_port IMAP "$IMAP_PORT" "$d/dovecot.log"
  wait_port IMAPS "$IMAPS_PORT" "$d/dovecot.log"
  wait_port LMTP "$LMTP_PORT" "$d/dovecot.log"
  wait_port SMTP "$SMTP_PORT" "$d/smtpd.log"
  if [ -n "$started_dovecot" ]; then
    wait_port SUBMISSION "$SMTP_AUTH_PORT" "$d/dovecot.log"
  elif ! port_open "$SMTP_AUTH_PORT"; then
    log "warning: the running dovecot has no submission listener on :$SMTP_AUTH_PORT (started by an older mailstack.sh?); run down, then up"
  fi
  printf 'IMAP_PORT=%s\nIMAPS_PORT=%s\nLMTP_PORT=%s\nSMTP_PORT=%s\nSMTP_AUTH_PORT=%s\n' "$IMAP_PORT" "$IMAPS_PORT" "$LMTP_PORT" "$SMTP_PORT" "$SMTP_AUTH_PORT"
}

# stop NAME PIDFILE ...: SIGTERM to every running one, then wait for all
# (Dovecot takes about 3s, smtpd 2s; in parallel that is 3s), SIGKILL after 10s.
stop() {
  local pids=() name pidfile pid
  while [ $# -gt 0 ]; do
    name=$1 pidfile=$2; shift 2
    if alive "$pidfile"; then
      pid=$(cat "$pidfile")
      log "stopping $name (pid $pid)"
      kill "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$pidfile"
  done
  for _ in $(seq 1 100); do
    local left=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    [ ${#left[@]} -eq 0 ] && return 0
    pids=("${left[@]}")
    sleep 0.1
  done
  log "pids ${pids[*]} ignored SIGTERM; killing"
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

down() { # dir
  local d=$1
  [ -d "$d" ] || return 0
  stop smtpd "$d/smtpd.pid" dovecot "$d/run/master.pid"
}

cmd=${1:-}
if [ "$cmd" = install ]; then
  # Install only: deploy/test.sh runs this once before any test starts a
  # stack, so that tests only start.
  ensure_installed
  log "installed"
  exit 0
fi
dir=${2:-}
[ -n "$dir" ] || usage
stackdir=$(cd "$dir" 2>/dev/null && pwd || printf '%s' "$dir")
case $cmd in
  up) up "$dir" ;;
  down) down "$dir" ;;
  stopsmtp) [ -d "$dir" ] || exit 0; stop smtpd "$dir/smtpd.pid" ;;
  addsmtpuser)
    # SMTP AUTH users are Dovecot users (see the top of this file).
    [ $# -eq 4 ] || usage
    exec bash "$0" adduser "$2" "$3" "$4"
    ;;
  adduser)
    [ $# -eq 4 ] || usage
    [ -d "$dir" ] || die "$dir does not exist: run up first"
    existed=
    grep -q "^$3:" "$dir/users" 2>/dev/null && existed=1
    add_user "$dir" "$3" "$4"
    # Dovecot checks the passwd-file at most once a second: wait until it
    # knows the user (a cheap userdb lookup) or, for a changed password,
    # accepts the new one (slower: each refusal takes about 0.5s).
    if alive "$dir/run/master.pid"; then
      check=(user "$3")
      [ -n "$existed" ] && check=(auth test "$3" "$4")
      for _ in $(seq 1 50); do
        doveadm -c "$dir/dovecot.conf" "${check[@]}" >/dev/null 2>&1 && exit 0
        sleep 0.1
      done
      die "dovecot does not accept $3 after adding it"
    fi
    ;;
  *) usage ;;
esac
