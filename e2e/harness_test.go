// Package e2e runs the servicedesk binary against real servers: Redis,
// SQLite or PostgreSQL, Dovecot (IMAP + LMTP) and OpenSMTPD, started on
// loopback by internal/mailstack. Nothing here is mocked.
//
// Every test calls t.Parallel: it owns its mail stack, its Redis database
// (redisURL) or redis-server, its SQLite file or PostgreSQL schema, and its
// HTTP port, so a new test must take nothing shared either.
package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

var binary string // built once by TestMain

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "servicedesk-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "servicedesk")
	build := exec.Command("go", "build", "-o", binary, "../cmd/servicedesk")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build servicedesk: %v\n%s", err, out)
		os.Exit(1)
	}
	stopRedis, err := startPackageRedis(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "start redis-server for e2e: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	stopRedis()
	os.RemoveAll(dir)
	os.Exit(code)
}

const (
	desk        = "support@example.test"
	deskPass    = "secret"
	adminToken  = "e2e-admin-token-0123456789"
	replySecret = "e2e-reply-key-secret-0123456789"
)

// backend is one database the whole pipeline runs on.
type backend struct {
	name string
	url  func(t *testing.T) string
}

var backends = []backend{
	{"sqlite", func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "desk.db") }},
	{"postgres", postgresURL},
}

// postgresURL makes a fresh schema for the test and drops it afterwards.
func postgresURL(t *testing.T) string {
	base := os.Getenv("SERVICEDESK_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	schema := "e2e_" + randomHex(6)
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("postgres at %s: create schema: %v", base, err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	return base + "&search_path=" + schema
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// The package runs its own redis-server with many databases, and hands each
// test its own database, so that tests never share asynq queues, with each
// other or with other packages' tests on the machine's Redis.
var (
	redisAddr string
	redisMu   sync.Mutex
	redisNext = 1
)

const redisDatabases = 128

func startPackageRedis(dir string) (stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	redisAddr = ln.Addr().String()
	_, port, _ := net.SplitHostPort(redisAddr)
	ln.Close()
	cmd := exec.Command("redis-server", "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--databases", strconv.Itoa(redisDatabases), "--dir", dir)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redis-server (installed by deploy/services.sh): %w", err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	defer rdb.Close()
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			break
		}
		if i > 100 {
			cmd.Process.Kill()
			return nil, fmt.Errorf("redis-server on %s did not answer", redisAddr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return func() { cmd.Process.Kill(); cmd.Wait() }, nil
}

func redisURL(t *testing.T) string {
	redisMu.Lock()
	db := redisNext
	redisNext++
	redisMu.Unlock()
	if db >= redisDatabases {
		t.Fatal("out of Redis databases for e2e tests")
	}
	return fmt.Sprintf("redis://%s/%d", redisAddr, db)
}

// desk is a running configuration: the mail stack, a database, Redis and a
// config file for the binary.
type deskEnv struct {
	t        *testing.T
	stack    *mailstack.Stack
	dbURL    string
	config   string
	httpAddr string
}

type envOptions struct {
	desk         string // the desk address and IMAP user; default support@example.test
	pollInterval string
	maxSize      string
	redisURL     string // default: a database of the package's Redis
	// outboxSweep and outboxGrace are scheduler.outbox_sweep and
	// outbox_grace; default: the config's (30s, 1m).
	outboxSweep, outboxGrace string
	extra                    string
}

func newDesk(t *testing.T, stack *mailstack.Stack, b backend, o envOptions) *deskEnv {
	t.Helper()
	if o.pollInterval == "" {
		o.pollInterval = "1s"
	}
	if o.desk == "" {
		o.desk = desk
	}
	if o.maxSize == "" {
		o.maxSize = "25MB"
	}
	if o.redisURL == "" {
		o.redisURL = redisURL(t)
	}
	o.outboxSweep = cmp.Or(o.outboxSweep, "30s")
	o.outboxGrace = cmp.Or(o.outboxGrace, "1m")
	imapHost, imapPort, _ := net.SplitHostPort(stack.IMAPAddr)
	smtpHost, smtpPort, _ := net.SplitHostPort(stack.SMTPAddr)
	e := &deskEnv{t: t, stack: stack, dbURL: b.url(t), httpAddr: freeAddr(t)}
	cfg := fmt.Sprintf(`
redis: {url: %q}
database: {url: %q}
http:
  listen: %s
  public_url: http://%s
  tokens: [{name: e2e, token: %s, role: admin}]
limits: {max_message_size: %s}
mail: {reply_key_secret: %s}
scheduler: {tick: 200ms, outbox_sweep: %s, outbox_grace: %s}
worker: {shutdown_timeout: 10s}
log: {level: info, format: text}
projects:
  - key: acme
    name: Acme Support
    address: %s
    imap: {host: %s, port: %s, security: none, username: %s, password: %s, poll_interval: %s}
    smtp: {host: %s, port: %s, security: none}
%s`, o.redisURL, e.dbURL, e.httpAddr, e.httpAddr, adminToken, o.maxSize, replySecret,
		o.outboxSweep, o.outboxGrace, o.desk, imapHost, imapPort, o.desk, deskPass, o.pollInterval, smtpHost, smtpPort, o.extra)
	e.config = filepath.Join(t.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a running servicedesk process.
type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve starts `servicedesk serve` with the given arguments; the process is
// stopped (SIGTERM, then SIGKILL) when the test ends, and its log is shown
// if the test failed.
func (e *deskEnv) serve(args ...string) *proc {
	e.t.Helper()
	return startServe(e.t, e.config, args...)
}

// startServe starts `servicedesk --config cfg serve args...`; it is stopped
// when the test or benchmark ends (it must exit 0 on SIGTERM, as the
// contract says), and its log is shown if it failed.
func startServe(tb testing.TB, cfg string, args ...string) *proc {
	tb.Helper()
	p := &proc{out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, append([]string{"--config", cfg, "serve"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("start serve: %v", err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	tb.Cleanup(func() {
		if err := stopServe(p); err != nil {
			tb.Errorf("stop serve: %v", err)
		}
		if tb.Failed() {
			tb.Logf("serve %v log:\n%s", args, tail(p.out.String(), 60))
		}
	})
	return p
}

// stopServe sends SIGTERM and waits up to 30 s for a clean exit, then kills.
func stopServe(p *proc) error {
	select {
	case err := <-p.done:
		p.done <- err
		return err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		err := <-p.done
		p.done <- err
		return fmt.Errorf("no exit within 30s of SIGTERM; killed (%v)", err)
	}
}

func tail(s string, lines int) string {
	l := strings.Split(s, "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) error {
	t.Helper()
	err := stopServe(p)
	if err != nil && strings.Contains(err.Error(), "no exit within") {
		t.Errorf("serve: %v", err)
	}
	return err
}

// kill sends SIGKILL: the crash.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.done <- nil
}

// run runs a CLI command and returns its stdout.
func (e *deskEnv) run(args ...string) (string, error) {
	cmd := exec.Command(binary, append([]string{"--config", e.config}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%v: %s", err, stderr.String())
	}
	return stdout.String(), nil
}

// api GETs a path with the admin token and decodes the JSON answer.
func (e *deskEnv) api(path string, v any) error {
	req, _ := http.NewRequest("GET", "http://"+e.httpAddr+path, nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, body)
	}
	return json.Unmarshal(body, v)
}

// openStore opens the test's database directly, to count what landed.
func (e *deskEnv) openStore() *store.Store {
	e.t.Helper()
	st, err := store.Open(context.Background(), e.dbURL, nil)
	if err != nil {
		e.t.Fatalf("open store: %v", err)
	}
	if err := st.Migrate(context.Background()); err != nil {
		e.t.Fatalf("migrate: %v", err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

// ledger returns every row of the inbound ledger.
func ledger(t *testing.T, st *store.Store) []ticket.Inbound {
	t.Helper()
	// By the keyset cursor: rows a fetch adds meanwhile are newer than the
	// cursor and cannot push a row seen on one page onto the next, as
	// they do with page numbers (which counted rows twice).
	var all []ticket.Inbound
	var after int64
	for {
		rows, more, err := st.ListInbound(context.Background(), store.InboundFilter{}, store.Page{PerPage: 1000, After: after})
		if err != nil {
			t.Fatalf("list ledger: %v", err)
		}
		all = append(all, rows...)
		if !more {
			return all
		}
		after = rows[len(rows)-1].ID
	}
}

func tickets(t *testing.T, st *store.Store) []ticket.Ticket {
	t.Helper()
	var all []ticket.Ticket
	var after int64
	for {
		ts, more, err := st.Tickets(context.Background(), store.TicketFilter{}, store.Page{PerPage: 1000, After: after})
		if err != nil {
			t.Fatalf("list tickets: %v", err)
		}
		all = append(all, ts...)
		if !more {
			return all
		}
		after = ts[len(ts)-1].ID
	}
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		// The condition is checked at least once, and once more after
		// the deadline passed: a wait that began late still looks.
		ok, state := cond()
		if ok {
			return
		}
		if !time.Now().Before(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last state: %s", timeout, what, state)
		}
		time.Sleep(min(200*time.Millisecond, time.Until(deadline)+time.Millisecond))
	}
}

// custMail builds a customer mail.
type custMail struct {
	from, to, cc, subject, body, messageID, inReplyTo, references string
	headers                                                       []string
}

func (m custMail) raw() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\n", m.from, m.to)
	if m.cc != "" {
		fmt.Fprintf(&b, "Cc: %s\r\n", m.cc)
	}
	fmt.Fprintf(&b, "Subject: %s\r\nDate: %s\r\n", m.subject, time.Now().Format(time.RFC1123Z))
	if m.messageID != "" {
		fmt.Fprintf(&b, "Message-ID: %s\r\n", m.messageID)
	}
	if m.inReplyTo != "" {
		fmt.Fprintf(&b, "In-Reply-To: %s\r\n", m.inReplyTo)
	}
	if m.references != "" {
		fmt.Fprintf(&b, "References: %s\r\n", m.references)
	}
	for _, h := range m.headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(m.body, "\n", "\r\n") + "\r\n")
	return []byte(b.String())
}

func splitHostPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return host, n
}

// configHead is the top of a test's config, above its mailboxes: e's Redis
// (the test's own database), database and listener, the admin token, the
// reply key secret, a fast scheduler and text logs.
func configHead(t *testing.T, e *deskEnv) string {
	return fmt.Sprintf(`
redis: {url: %q}
database: {url: %q}
http:
  listen: %s
  tokens: [{name: e2e, token: %s, role: admin}]
mail: {reply_key_secret: %s}
scheduler: {tick: 200ms}
worker: {shutdown_timeout: 10s}
log: {level: info, format: text}
`, redisURL(t), e.dbURL, e.httpAddr, adminToken, replySecret)
}
