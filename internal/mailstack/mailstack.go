// Package mailstack starts a real mail stack for tests: Dovecot (IMAP, IMAPS,
// LMTP, submission) and OpenSMTPD (SMTP, RFC 5321) on loopback ports,
// through deploy/mailstack.sh, one private instance per Start, stopped by
// t.Cleanup. It delivers mail over LMTP (RFC 2033) or SMTP and waits for it
// over IMAP.
//
// The submission listener (SMTPAuthAddr, RFC 6409) offers STARTTLS (RFC
// 3207) and requires SMTP AUTH (RFC 4954), then relays through OpenSMTPD.
// OpenSMTPD refuses every recipient in RejectDomain with a 5xx reply at
// RCPT. StopSMTP and StartSMTP take OpenSMTPD down and up again, its queue
// kept.
//
// The stack needs root (the script installs missing packages with apt-get
// and runs the daemons). Tests that need it fail when it cannot start; they
// do not skip.
package mailstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/servicedesk/servicedesk/mailbox"
)

// Password is the password of every default user.
const Password = "secret"

// SMTPUser and SMTPPassword are the SMTP AUTH credentials every stack
// starts with on SMTPAuthAddr.
const (
	SMTPUser     = "desk-auth@example.test"
	SMTPPassword = "sekret"
)

// RejectDomain is the domain whose recipients OpenSMTPD refuses at RCPT
// with "550 Invalid recipient", on both SMTP ports.
const RejectDomain = "reject.test"

// DefaultUsers returns the addresses every stack starts with, all with
// Password.
func DefaultUsers() []string {
	return []string{
		"support@example.test", "help@example.test",
		"alice@customer.test", "bob@customer.test", "carol@customer.test",
	}
}

// Stack is one running Dovecot + OpenSMTPD pair.
type Stack struct {
	// Dir holds the configs, logs, mail and queue of this stack.
	Dir string
	// IMAPAddr (plain IMAP, STARTTLS offered), IMAPSAddr (implicit TLS,
	// self-signed certificate), SMTPAddr (OpenSMTPD, delivers every domain
	// to Dovecot) and LMTPAddr (Dovecot) are host:port on 127.0.0.1.
	IMAPAddr, IMAPSAddr, SMTPAddr, LMTPAddr string
	// SMTPAuthAddr is the submission listener: STARTTLS with the
	// self-signed certificate, SMTP AUTH (PLAIN, LOGIN) required, relayed
	// through OpenSMTPD.
	SMTPAuthAddr string

	script string
	env    []string // the ports, for every later "up"
}

// Option changes the stack Start starts.
type Option func(env []string) []string

// WithOAuth2 adds Dovecot's oauth2 passdb: IMAP and the submission
// listener also accept SASL XOAUTH2 and OAUTHBEARER for every user, and
// Dovecot decides whether a token is valid by asking introspectionURL
// (RFC 7662, POST token=...; see deploy/mailstack.sh and
// internal/tokenserver).
func WithOAuth2(introspectionURL string) Option {
	return func(env []string) []string { return append(env, "OAUTH2_INTROSPECTION_URL="+introspectionURL) }
}

// Start runs `deploy/mailstack.sh up` on free ports in a fresh directory and
// registers `down` with t.Cleanup. It fails the test, with the script's
// output, when the stack does not come up.
func Start(t testing.TB, opts ...Option) *Stack {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("mailstack: %v", err)
	}
	// A short path: Dovecot's unix sockets live under Dir and are limited to
	// 108 bytes.
	dir, err := os.MkdirTemp("", "mailstack")
	if err != nil {
		t.Fatalf("mailstack: create dir: %v", err)
	}
	s := &Stack{Dir: dir, script: filepath.Join(root, "deploy", "mailstack.sh")}
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(filepath.Join(s.Dir, "dovecot.log")); err == nil {
				t.Logf("mailstack: the test failed; end of %s/dovecot.log:\n%s", s.Dir, tail(log, 40))
			}
		}
		if out, err := s.run(nil, "down"); err != nil {
			t.Errorf("mailstack down %s: %v\n%s", s.Dir, err, out)
			return
		}
		if err := os.RemoveAll(s.Dir); err != nil {
			t.Errorf("mailstack: remove %s: %v", s.Dir, err)
		}
	})

	// Free ports can be taken by someone else before the daemons bind
	// them: try again with new ones.
	var out []byte
	for attempt := 1; attempt <= 3; attempt++ {
		var ports []int
		ports, err = freePorts(5)
		if err != nil {
			t.Fatalf("mailstack: %v", err)
		}
		env := []string{
			"IMAP_PORT=" + strconv.Itoa(ports[0]), "IMAPS_PORT=" + strconv.Itoa(ports[1]),
			"LMTP_PORT=" + strconv.Itoa(ports[2]), "SMTP_PORT=" + strconv.Itoa(ports[3]),
			"SMTP_AUTH_PORT=" + strconv.Itoa(ports[4]),
			"MAILSTACK_SMTP_USERS=" + SMTPUser + ":" + SMTPPassword,
		}
		for _, o := range opts {
			env = o(env)
		}
		out, err = s.run(env, "up")
		if err == nil {
			s.env = env
			s.IMAPAddr = addr(ports[0])
			s.IMAPSAddr = addr(ports[1])
			s.LMTPAddr = addr(ports[2])
			s.SMTPAddr = addr(ports[3])
			s.SMTPAuthAddr = addr(ports[4])
			return s
		}
		_, _ = s.run(nil, "down")
	}
	t.Fatalf("mailstack up %s: %v\n%s", dir, err, out)
	return nil
}

// run runs `mailstack.sh cmd s.Dir args...` with env added to the
// environment and returns its combined output.
func (s *Stack) run(env []string, cmd string, args ...string) ([]byte, error) {
	c := exec.Command("bash", append([]string{s.script, cmd, s.Dir}, args...)...)
	c.Env = append(os.Environ(), env...)
	return c.CombinedOutput()
}

// AddUser adds (or replaces) a mailbox user; Dovecot sees it at once.
func (s *Stack) AddUser(t testing.TB, addr, password string) {
	t.Helper()
	if out, err := s.run(nil, "adduser", addr, password); err != nil {
		t.Fatalf("mailstack adduser %s: %v\n%s", addr, err, out)
	}
}

// AddSMTPUser adds (or replaces) SMTP AUTH credentials for the submission
// listener. They are Dovecot users, so the user also gets a mailbox.
func (s *Stack) AddSMTPUser(t testing.TB, user, password string) {
	t.Helper()
	if out, err := s.run(nil, "addsmtpuser", user, password); err != nil {
		t.Fatalf("mailstack addsmtpuser %s: %v\n%s", user, err, out)
	}
}

// StopSMTP stops OpenSMTPD: SMTPAddr refuses connections and the
// submission listener cannot relay until StartSMTP. Queued mail stays in
// the queue.
func (s *Stack) StopSMTP(t testing.TB) {
	t.Helper()
	if out, err := s.run(nil, "stopsmtp"); err != nil {
		t.Fatalf("mailstack stopsmtp %s: %v\n%s", s.Dir, err, out)
	}
}

// StartSMTP starts OpenSMTPD again on the same ports, after StopSMTP; it
// returns once SMTPAddr answers.
func (s *Stack) StartSMTP(t testing.TB) {
	t.Helper()
	if out, err := s.run(s.env, "up"); err != nil {
		t.Fatalf("mailstack up (start smtpd) %s: %v\n%s", s.Dir, err, out)
	}
}

// Deliver hands raw to Dovecot over LMTP for rcpt: fast, no queue.
func (s *Stack) Deliver(t testing.TB, rcpt string, raw []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.LMTPAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("mailstack: dial LMTP %s: %v", s.LMTPAddr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.SendMail("mailstack@example.test", []string{rcpt}, bytes.NewReader(raw)); err != nil {
		t.Fatalf("mailstack: deliver to %s over LMTP: %v", rcpt, err)
	}
	_ = c.Quit()
}

// SendSMTP submits raw through OpenSMTPD, which delivers it to Dovecot over
// LMTP shortly after; use WaitForMail to see it arrive.
func (s *Stack) SendSMTP(t testing.TB, from string, to []string, raw []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.SMTPAddr, 5*time.Second)
	if err != nil {
		t.Fatalf("mailstack: dial SMTP %s: %v", s.SMTPAddr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		t.Fatalf("mailstack: send from %s to %v over SMTP: %v", from, to, err)
	}
	_ = c.Quit()
}

// IMAPTokenConfig returns a mailbox.Config for user on the plain IMAP
// port that logs in with tokens (a stack started WithOAuth2).
func (s *Stack) IMAPTokenConfig(user string, tokens mailbox.TokenSource) mailbox.Config {
	cfg := s.IMAPConfig(user, "")
	cfg.Tokens = tokens
	return cfg
}

// IMAPConfig returns a mailbox.Config for user on the plain IMAP port.
func (s *Stack) IMAPConfig(user, password string) mailbox.Config {
	host, port, _ := net.SplitHostPort(s.IMAPAddr)
	p, _ := strconv.Atoi(port)
	return mailbox.Config{
		Host: host, Port: p, Security: mailbox.SecurityNone,
		Username: user, Password: password,
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
	}
}

// WaitForMail polls user's INBOX until at least n messages are there and
// returns all of them, raw, in UID order, without setting \Seen. It fails
// the test after timeout, saying how many arrived.
func (s *Stack) WaitForMail(t testing.TB, user, password string, n int, timeout time.Duration) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := mailbox.Dial(ctx, s.IMAPConfig(user, password), nil)
	if err != nil {
		t.Fatalf("mailstack: log in as %s: %v", user, err)
	}
	defer c.Close()
	have := 0
	for {
		// SELECT again each round: it reports the current message count.
		st, err := c.Select(ctx, "INBOX")
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("mailstack: select INBOX of %s: %v", user, err)
		}
		have = int(st.Messages)
		if err == nil && have >= n {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("mailstack: %d message(s) in INBOX of %s after %v, want >= %d (logs in %s)", have, user, timeout, n, s.Dir)
		case <-time.After(50 * time.Millisecond):
		}
	}
	entries, err := c.List(ctx, 0, 0)
	if err != nil {
		t.Fatalf("mailstack: list INBOX of %s: %v", user, err)
	}
	uids := make([]uint32, len(entries))
	for i, e := range entries {
		uids[i] = e.UID
	}
	var msgs [][]byte
	err = c.Fetch(ctx, uids, func(_ uint32, raw []byte) error {
		msgs = append(msgs, raw)
		return nil
	})
	if err != nil {
		t.Fatalf("mailstack: fetch INBOX of %s: %v", user, err)
	}
	return msgs
}

// tail returns the last n lines of b.
func tail(b []byte, n int) []byte {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return bytes.Join(lines, []byte("\n"))
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// repoRoot walks up from the working directory to the directory with go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repo root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repo root: no go.mod above the working directory")
		}
		dir = parent
	}
}
