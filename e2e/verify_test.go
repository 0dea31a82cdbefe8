package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// TestVerifyProjectAddress runs `servicedesk projects verify` against the
// real stack: a desk whose mail comes back through its mailbox is ok; bad
// SMTP credentials, an unreachable SMTP host and a mail that never comes
// back each give their own code, and check shows the last result.
func TestVerifyProjectAddress(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	b := backends[0] // sqlite: the flow is the same on both databases
	deskAddr := "verify-desk@example.test"
	stack.AddUser(t, deskAddr, deskPass)
	for _, a := range []string{"badauth@example.test", "nohost@example.test", "lost@example.test"} {
		stack.AddUser(t, a, deskPass)
	}
	imapHost, imapPort := splitHostPort(t, stack.IMAPAddr)
	authHost, authPort := splitHostPort(t, stack.SMTPAuthAddr)
	project := func(key, addr, imapUser, smtp string) string {
		return fmt.Sprintf("  - key: %s\n    address: %s\n    imap: {host: %s, port: %d, security: none, username: %s, password: %s, poll_interval: 1s}\n    smtp: %s\n",
			key, addr, imapHost, imapPort, imapUser, deskPass, smtp)
	}
	// Port 1 (tcpmux) is closed on a test machine; a port freeAddr let go
	// of could be bound meanwhile by a test running in parallel.
	closedHost, closedPort := "127.0.0.1", 1
	extra := project("badauth", "badauth@example.test", "badauth@example.test",
		fmt.Sprintf("{host: %s, port: %d, security: starttls, insecure_skip_verify: true, username: %q, password: wrong}", authHost, authPort, mailstack.SMTPUser)) +
		project("nohost", "nohost@example.test", "nohost@example.test",
			fmt.Sprintf("{host: %s, port: %d, security: none}", closedHost, closedPort))
	env := newDesk(t, stack, b, envOptions{desk: deskAddr, extra: extra})
	env.serve("--roles", "scheduler,worker")

	cases := []struct {
		project, timeout, want string
		ok                     bool
	}{
		{"acme", "60s", "acme: ok", true},
		{"badauth", "30s", "badauth: invalid_credentials", false},
		{"nohost", "30s", "nohost: smtp_host_issue", false},
	}
	for _, tc := range cases {
		t.Run(tc.project, func(t *testing.T) {
			out, err := env.run("projects", "verify", tc.project, "--timeout", tc.timeout)
			if (err == nil) != tc.ok || !strings.Contains(out, tc.want) {
				t.Fatalf("projects verify %s = %q, err %v; want %q (success %v)", tc.project, out, err, tc.want, tc.ok)
			}
		})
	}

	t.Run("a mail that never comes back", func(t *testing.T) {
		// Nobody fetches this desk's mailbox: the serve above only knows
		// the config it started with, so give the verifier a config where
		// acme's mailbox is one no worker reads.
		lost := newDesk(t, stack, b, envOptions{desk: "lost@example.test"})
		out, err := lost.run("projects", "verify", "acme", "--timeout", "3s")
		if err == nil || !strings.Contains(out, "mail_not_received_within_timeframe") {
			t.Fatalf("projects verify without a worker = %q, %v; want mail_not_received_within_timeframe", out, err)
		}
	})

	t.Run("check shows the last result", func(t *testing.T) {
		out, _ := env.run("check")
		for _, want := range []string{"ok    project acme verification", "FAIL  project badauth verification", "FAIL  project nohost verification"} {
			if !strings.Contains(out, want) {
				t.Errorf("check output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "wrong") {
			t.Errorf("check printed the SMTP password:\n%s", out)
		}
	})
}
