package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
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

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
)

// privateRedis is a redis-server of the test's own on a free loopback port,
// so that a test may stop it (the shared one on 6379 is never touched) and
// scan every key in it.
type privateRedis struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	_, port := splitHostPort(t, freeAddr(t))
	r := &privateRedis{t: t, port: port, dir: t.TempDir(), log: &syncBuffer{}}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *privateRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *privateRedis) url(db int) string { return fmt.Sprintf("redis://%s/%d", r.addr(), db) }

// start runs redis-server on r's port and waits until it answers PING.
func (r *privateRedis) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	r.cmd.Stdout, r.cmd.Stderr = r.log, r.log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server on %s: %v (is the redis-server package installed?)", r.addr(), err)
	}
	done := make(chan struct{})
	r.done = done
	go func() { _ = r.cmd.Wait(); close(done) }()
	rdb := redis.NewClient(&redis.Options{Addr: r.addr()})
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("private redis-server on %s did not answer PING within 10s: %v\n%s", r.addr(), err, r.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop kills the server (SIGKILL: an outage, not a shutdown) and waits for
// it to exit. Safe to call twice.
func (r *privateRedis) stop() { sigkill(r.cmd, r.done) }

// sigkill SIGKILLs the process cmd started (a crash, not a shutdown) and
// waits until done, closed when its Wait returned, is closed. Safe to call
// twice, and before the process started.
func sigkill(cmd *exec.Cmd, done <-chan struct{}) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// dump returns every key of every database of r with its value, whatever
// its type, as text: what the secrets test searches.
func (r *privateRedis) dump(ctx context.Context) (string, error) {
	var out strings.Builder
	for db := 0; db < 16; db++ {
		rdb := redis.NewClient(&redis.Options{Addr: r.addr(), DB: db})
		err := dumpDB(ctx, rdb, db, &out)
		rdb.Close()
		if err != nil {
			return "", fmt.Errorf("dump redis db %d: %w", db, err)
		}
	}
	return out.String(), nil
}

func dumpDB(ctx context.Context, rdb *redis.Client, db int, out *strings.Builder) error {
	iter := rdb.Scan(ctx, 0, "*", 500).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			return fmt.Errorf("type of %q: %w", key, err)
		}
		var val any
		switch typ {
		case "string":
			val, err = rdb.Get(ctx, key).Result()
		case "hash":
			val, err = rdb.HGetAll(ctx, key).Result()
		case "list":
			val, err = rdb.LRange(ctx, key, 0, -1).Result()
		case "set":
			val, err = rdb.SMembers(ctx, key).Result()
		case "zset":
			val, err = rdb.ZRangeWithScores(ctx, key, 0, -1).Result()
		case "stream":
			val, err = rdb.XRange(ctx, key, "-", "+").Result()
		case "none": // expired between SCAN and TYPE
			continue
		default:
			return fmt.Errorf("key %q has unexpected type %q", key, typ)
		}
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read %s %q: %w", typ, key, err)
		}
		fmt.Fprintf(out, "db%d %s %q = %v\n", db, typ, key, val)
	}
	return iter.Err()
}

// smtpSink is an SMTP server that demands AUTH PLAIN with one known user and
// password and keeps every message it accepts.
type smtpSink struct {
	addr     string
	user     string
	password string

	mu    sync.Mutex
	mails []sunkMail
	auths int
}

type sunkMail struct {
	from string
	to   []string
	raw  []byte
}

func startSMTPSink(t *testing.T, user, password string) *smtpSink {
	t.Helper()
	s := &smtpSink{user: user, password: password}
	srv := smtp.NewServer(s)
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true // loopback, and the desk is configured with security: none
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtp sink: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// messages returns a copy of what the sink accepted so far.
func (s *smtpSink) messages() []sunkMail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sunkMail(nil), s.mails...)
}

// to returns the messages addressed (envelope) to rcpt.
func (s *smtpSink) to(rcpt string) []sunkMail {
	var out []sunkMail
	for _, m := range s.messages() {
		for _, r := range m.to {
			if strings.EqualFold(r, rcpt) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

func (s *smtpSink) NewSession(*smtp.Conn) (smtp.Session, error) { return &sinkSession{sink: s}, nil }

type sinkSession struct {
	sink   *smtpSink
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*sinkSession)(nil)

func (s *sinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *sinkSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.sink.user || pass != s.sink.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "bad credentials"}
		}
		s.authed = true
		s.sink.mu.Lock()
		s.sink.auths++
		s.sink.mu.Unlock()
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *sinkSession) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.mu.Lock()
	s.sink.mails = append(s.sink.mails, sunkMail{from: s.from, to: s.to, raw: raw})
	s.sink.mu.Unlock()
	return nil
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }

// answer is one HTTP exchange with the binary.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// client talks to the binary's HTTP listener and keeps every answer body,
// so that the secrets test can search all of them.
type client struct {
	t    *testing.T
	base string
	mu   sync.Mutex
	seen bytes.Buffer
}

func newClient(t *testing.T, addr string) *client {
	return &client{t: t, base: "http://" + addr}
}

// do sends a request with token as a bearer token ("" for none). A
// transport failure fails the test.
func (c *client) do(method, path, token, contentType string, body []byte) answer {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	c.mu.Lock()
	fmt.Fprintf(&c.seen, "%s %s -> %d %v\n%s\n", method, path, resp.StatusCode, resp.Header, b)
	c.mu.Unlock()
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

func (c *client) get(path, token string) answer {
	c.t.Helper()
	return c.do("GET", path, token, "", nil)
}

// getJSON GETs path and decodes a 200 answer into v.
func (c *client) getJSON(path, token string, v any) {
	c.t.Helper()
	a := c.get(path, token)
	if a.status != http.StatusOK {
		c.t.Fatalf("GET %s: status %d, want 200; body: %s", path, a.status, a.body)
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		c.t.Fatalf("GET %s: answer is not JSON: %v; body: %s", path, err, a.body)
	}
}

// answers returns every exchange so far as text.
func (c *client) answers() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen.String()
}

// walkStrings calls fn with the path and value of every string in a
// decoded JSON value, object keys included.
func walkStrings(v any, path string, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case map[string]any:
		for k, e := range x {
			fn(path+"{key}", k)
			walkStrings(e, path+"."+k, fn)
		}
	case []any:
		for i, e := range x {
			walkStrings(e, fmt.Sprintf("%s[%d]", path, i), fn)
		}
	}
}

// basicAuth is the Authorization header a browser sends with token as the
// password and no user name.
func basicAuth(token string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+token))
}

// saveArtifact writes data to dir/name and, when SERVICEDESK_ARTIFACTS is
// set, also there, and returns the first path.
func saveArtifact(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("save artifact %s: %v", p, err)
	}
	if a := os.Getenv("SERVICEDESK_ARTIFACTS"); a != "" {
		if err := os.MkdirAll(a, 0o755); err != nil {
			t.Fatalf("artifacts dir %s: %v", a, err)
		}
		if err := os.WriteFile(filepath.Join(a, name), data, 0o644); err != nil {
			t.Fatalf("save artifact in %s: %v", a, err)
		}
	}
	return p
}
