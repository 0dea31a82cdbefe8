package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/mailbox"
)

// deskConfig is a config whose servers are all unreachable (port 1), with
// the given database and Redis URLs and http.tokens.
func deskConfig(t *testing.T, dbURL, redisURL, tokens string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "servicedesk.yaml")
	cfg := "redis: {url: '" + redisURL + "'}\n" +
		"database: {url: '" + dbURL + "'}\n" +
		"http: {tokens: " + tokens + "}\n" +
		`mail: {reply_key_secret: 0123456789abcdef0123456789abcdef}
log: {format: text}
projects:
  - key: acme
    address: support@example.test
    imap: {host: 127.0.0.1, port: 1, security: none, password: imap-pw}
    smtp: {host: 127.0.0.1, port: 1, security: none}
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const goodTokens = "[{name: ops, token: 0123456789abcdef0123, role: admin}]"

// TestCheckNeverPrintsTheURLs runs check on database and Redis URLs that
// carry the password hunter2, wrong in the ways config sees and the ways
// only a connection does: no line of its output, nor of its log, holds it.
func TestCheckNeverPrintsTheURLs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, db, redis string
		want            []string
	}{
		{"libpq string and a bad Redis port", "host=db user=desk password=hunter2 dbname=desk", "redis://:hunter2@host:bad",
			[]string{"FAIL  config", "database.url: not a URL (want sqlite://… or postgres://…)", "redis.url: not a valid URL: invalid port after host"}},
		{"passwords with slashes", "postgres://desk:hun/ter2@db/desk", "redis://u:hun/ter2@host",
			[]string{"database.url: not a valid URL", "redis.url: not a valid URL"}},
		{"well-formed, nothing answers", "postgres://desk:hunter2@127.0.0.1:1/desk?sslmode=disable&connect_timeout=2&password=hunter2",
			"redis://:hunter2@127.0.0.1:1/0", []string{"ok    config", "FAIL  redis", "FAIL  database"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := deskConfig(t, tt.db, tt.redis, goodTokens)
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"--config", path, "check"}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != 1 {
				t.Errorf("check exited %d; want 1:\n%s", code, out)
			}
			for _, secret := range []string{"hunter2", "hun/", "ter2"} {
				if strings.Contains(out, secret) {
					t.Errorf("check output holds %q:\n%s", secret, out)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("check output does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestShortTokensRefused: check and serve refuse a token under 20
// characters, saying how long it is and never what it is.
func TestShortTokensRefused(t *testing.T) {
	t.Parallel()
	path := deskConfig(t, "sqlite://"+filepath.Join(t.TempDir(), "desk.db"), "redis://127.0.0.1:1/0",
		"[{name: ops, token: t0ken-change-me, role: admin}]")
	const want = "http.tokens[0] (ops): token is 15 characters; use at least 20 (e.g. openssl rand -hex 16)"
	for _, cmd := range []string{"check", "serve"} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), []string{"--config", path, cmd}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != 1 || !strings.Contains(out, want) {
				t.Errorf("%s exited %d; want 1 saying %q:\n%s", cmd, code, want, out)
			}
			if strings.Contains(out, "t0ken") {
				t.Errorf("%s output shows the token:\n%s", cmd, out)
			}
		})
	}
}

// TestCheckSaysWhetherTheServerOffersIdle: with imap.idle on, the mailbox's
// check line says whether the server can IDLE; one that cannot fails the
// line, saying that new mail then waits for the poll.
func TestCheckSaysWhetherTheServerOffersIdle(t *testing.T) {
	t.Parallel()
	withIdle, _ := imaptest.Start(t, "support@example.test", "imap-pw")
	for _, tc := range []struct {
		name string
		imap mailbox.Config
		want string
	}{
		{"a server with IDLE", withIdle, "ok    project acme imap 127.0.0.1:%d with idle\n"},
		{"a server without", imaptest.NoIdle(t), "FAIL  project acme imap 127.0.0.1:%d with idle"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "servicedesk.yaml")
			cfg := fmt.Sprintf(`redis: {url: 'redis://127.0.0.1:1/0'}
database: {url: 'sqlite://%s'}
http: {tokens: %s}
mail: {reply_key_secret: 0123456789abcdef0123456789abcdef}
log: {format: text}
projects:
  - key: acme
    address: support@example.test
    imap: {host: 127.0.0.1, port: %d, security: none, username: %s, password: %s, idle: true, poll_interval: 45s}
    smtp: {host: 127.0.0.1, port: 1, security: none}
`, filepath.Join(t.TempDir(), "desk.db"), goodTokens, tc.imap.Port, tc.imap.Username, tc.imap.Password)
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			run(t.Context(), []string{"--config", path, "check"}, nil, &stdout, &stderr)
			out := stdout.String()
			if !strings.Contains(out, fmt.Sprintf(tc.want, tc.imap.Port)) {
				t.Fatalf("check does not say %q:\n%s%s", fmt.Sprintf(tc.want, tc.imap.Port), out, stderr.String())
			}
			if strings.HasPrefix(tc.want, "FAIL") && !strings.Contains(out, "neither IDLE nor IMAP4rev2") ||
				strings.HasPrefix(tc.want, "FAIL") && !strings.Contains(out, "imap.poll_interval (45s)") {
				t.Fatalf("the failed line does not say why and what follows:\n%s", out)
			}
		})
	}
}
