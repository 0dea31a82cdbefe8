package notify

import (
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// sink is an in-process SMTP server that records what it receives and
// answers with errors on demand.
type sink struct {
	host string
	port int

	mu       sync.Mutex
	user     string // AUTH PLAIN required when set
	pass     string
	rcptErr  error // answer to RCPT TO, until cleared
	perConn  int   // MAIL FROM per connection before a 452; 0 = no limit
	dataErr  error // answer after DATA, until cleared
	received []received
	sessions int
	logouts  int
	conns    []*smtp.Conn
}

// received is one DATA transaction, accepted or not.
type received struct {
	From     string
	To       []string
	Data     []byte
	Accepted bool
}

func newSink(t *testing.T) *sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for test SMTP server: %v", err)
	}
	s := &sink{host: "127.0.0.1", port: l.Addr().(*net.TCPAddr).Port}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "sink.test"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = l.Close() // Close misses the listener when Serve has not registered it yet
		<-done
	})
	return s
}

// requireAuth makes the server offer AUTH PLAIN and refuse MAIL without it.
func (s *sink) requireAuth(user, pass string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.user, s.pass = user, pass
}

func (s *sink) limitPerConnection(n int) { s.mu.Lock(); s.perConn = n; s.mu.Unlock() }
func (s *sink) failRcpt(err error)       { s.mu.Lock(); s.rcptErr = err; s.mu.Unlock() }
func (s *sink) failData(err error)       { s.mu.Lock(); s.dataErr = err; s.mu.Unlock() }

// accepted returns the messages the server accepted.
func (s *sink) accepted() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, r := range s.received {
		if r.Accepted {
			out = append(out, r)
		}
	}
	return out
}

func (s *sink) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.received...)
}

func (s *sink) counts() (sessions, logouts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions, s.logouts
}

// dropConnections closes every client connection, as a server restart or
// its own idle timeout would.
func (s *sink) dropConnections() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (s *sink) config() SMTPConfig {
	return SMTPConfig{Host: s.host, Port: s.port, Security: SecurityNone, Timeout: 5 * time.Second}
}

func (s *sink) addr() string { return net.JoinHostPort(s.host, strconv.Itoa(s.port)) }

func (s *sink) newSession(c *smtp.Conn) (smtp.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions++
	s.conns = append(s.conns, c)
	return &sinkSession{sink: s}, nil
}

type sinkSession struct {
	sink   *sink
	mails  int
	authed bool
	from   string
	to     []string
}

var _ smtp.AuthSession = (*sinkSession)(nil)

func (ss *sinkSession) AuthMechanisms() []string {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *sinkSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		ss.sink.mu.Lock()
		defer ss.sink.mu.Unlock()
		if user != ss.sink.user || pass != ss.sink.pass {
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.user != "" && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if ss.sink.perConn > 0 && ss.mails >= ss.sink.perConn {
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "Too many messages sent"}
	}
	ss.mails++
	ss.from = from
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	if ss.sink.rcptErr != nil {
		return ss.sink.rcptErr
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	derr := ss.sink.dataErr
	ss.sink.received = append(ss.sink.received, received{From: ss.from, To: ss.to, Data: data, Accepted: derr == nil})
	return derr
}

func (ss *sinkSession) Reset() { ss.from, ss.to = "", nil }

func (ss *sinkSession) Logout() error {
	ss.sink.mu.Lock()
	defer ss.sink.mu.Unlock()
	ss.sink.logouts++
	return nil
}

// smtpErr builds a reply with the given code, e.g. 451 or 550.
func smtpErr(code int, msg string) error {
	class := code / 100
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, 0, 0}, Message: msg}
}

// downAddr is a port on which nothing listens.
func downAddr() (string, int) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("listen: " + err.Error())
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return "127.0.0.1", port
}
