package notify

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
)

// SMTP security modes.
const (
	SecurityTLS      = "tls"      // implicit TLS (RFC 8314), port 465
	SecurityStartTLS = "starttls" // STARTTLS required (RFC 3207), port 587
	SecurityNone     = "none"     // plain text, port 25; test setups only
)

// SMTPConfig is a project's outbound SMTP server.
type SMTPConfig struct {
	Host string
	// Port defaults to 465 for tls, 587 for starttls, 25 for none.
	Port int
	// Security is "tls", "starttls" or "none". Defaults to starttls, which
	// fails when the server does not offer STARTTLS.
	Security string
	// Username empty means no SMTP AUTH (RFC 4954).
	Username string
	Password string
	// Tokens, when set, authenticates Username with an OAuth2 access token
	// (SASL XOAUTH2 or OAUTHBEARER) instead of the password: see
	// smtpoauth.go.
	Tokens TokenSource
	// Mechanism is the SASL mechanism to prefer with Tokens: "XOAUTH2"
	// (default) or "OAUTHBEARER"; the other is used when the server offers
	// only that.
	Mechanism string
	// Timeout bounds the dial and every SMTP command. Defaults to 30s.
	Timeout time.Duration
	// InsecureSkipVerify accepts any TLS certificate (test servers only).
	InsecureSkipVerify bool
}

// withDefaults fills the documented defaults.
func (c SMTPConfig) withDefaults() SMTPConfig {
	c.Security = cmp.Or(strings.ToLower(c.Security), SecurityStartTLS)
	c.Timeout = cmp.Or(c.Timeout, 30*time.Second)
	if c.Port == 0 {
		switch c.Security {
		case SecurityTLS:
			c.Port = 465
		case SecurityNone:
			c.Port = 25
		default:
			c.Port = 587
		}
	}
	return c
}

func (c SMTPConfig) validate() error {
	switch {
	case c.Host == "":
		return errors.New("smtp host is empty")
	case c.Port < 1 || c.Port > 65535:
		return fmt.Errorf("smtp port %d out of range", c.Port)
	case c.Security != SecurityTLS && c.Security != SecurityStartTLS && c.Security != SecurityNone:
		return fmt.Errorf("smtp security %q is not tls, starttls or none", c.Security)
	}
	return nil
}

// session is a live, authenticated SMTP connection.
type session struct {
	mc  *mail.Client // go-mail's settings and send logic
	sc  *gosmtp.Client
	raw net.Conn // underlying connection, closed to abort on ctx cancellation
}

// dialOnce connects, greets, secures and authenticates. The returned error is
// an *Error with step "connect", "token" or "auth". It never contains the
// password or the token.
func dialOnce(ctx context.Context, cfg SMTPConfig) (*session, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, &Error{Step: "connect", Permanent: true, Err: err}
	}
	token, err := accessToken(ctx, cfg)
	if err != nil {
		return nil, err
	}
	tlsConf := &tls.Config{ServerName: cfg.Host, InsecureSkipVerify: cfg.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // operator's choice for test servers
	var (
		abortMu sync.Mutex
		raw     net.Conn
	)
	dialFn := func(dctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{}
		var (
			c   net.Conn
			err error
		)
		if cfg.Security == SecurityTLS {
			c, err = (&tls.Dialer{NetDialer: d, Config: tlsConf}).DialContext(dctx, network, addr)
		} else {
			c, err = d.DialContext(dctx, network, addr)
		}
		abortMu.Lock()
		raw = c
		abortMu.Unlock()
		return c, err
	}
	policy := mail.TLSMandatory
	if cfg.Security != SecurityStartTLS {
		policy = mail.NoTLS // tls: already encrypted by dialFn; none: plain
	}
	mc, err := mail.NewClient(cfg.Host,
		mail.WithPort(cfg.Port),
		mail.WithTimeout(cfg.Timeout),
		mail.WithTLSPolicy(policy),
		mail.WithTLSConfig(tlsConf),
		mail.WithDialContextFunc(dialFn),
	)
	if err != nil {
		return nil, &Error{Step: "connect", Permanent: true, Err: err}
	}
	// go-mail only honours ctx while dialing; close the connection when ctx
	// ends during the greeting, STARTTLS or AUTH.
	stop := context.AfterFunc(ctx, func() {
		abortMu.Lock()
		defer abortMu.Unlock()
		if raw != nil {
			_ = raw.Close()
		}
	})
	defer stop()
	sc, err := mc.DialToSMTPClientWithContext(ctx)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, connectError(fmt.Errorf("%s:%d: %w", cfg.Host, cfg.Port, err))
	}
	if err := authenticate(sc, cfg, token); err != nil {
		_ = sc.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return nil, authError(fmt.Errorf("as %q: %w", cfg.Username, err))
	}
	return &session{mc: mc, sc: sc, raw: raw}, nil
}

// authenticate runs SMTP AUTH with the best mechanism both sides know:
// PLAIN or LOGIN on an encrypted connection, challenge-response first on a
// plain one (security none).
func authenticate(sc *gosmtp.Client, cfg SMTPConfig, token string) error {
	if cfg.Username == "" {
		return nil
	}
	if cfg.Tokens != nil {
		return authenticateToken(sc, cfg, token)
	}
	ok, offered := sc.Extension("AUTH")
	if !ok {
		return errors.New("server does not offer AUTH")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	_, encrypted := sc.TLSConnectionState()
	allowPlain := cfg.Security == SecurityNone // the operator chose a plain connection
	prefer := []string{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5"}
	if !encrypted {
		prefer = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"}
	}
	for _, m := range prefer {
		if !slices.Contains(mechs, m) {
			continue
		}
		var a gosmtp.Auth
		switch m {
		case "PLAIN":
			a = gosmtp.PlainAuth("", cfg.Username, cfg.Password, cfg.Host, allowPlain)
		case "LOGIN":
			a = gosmtp.LoginAuth(cfg.Username, cfg.Password, cfg.Host, allowPlain)
		case "SCRAM-SHA-256":
			a = gosmtp.ScramSHA256Auth(cfg.Username, cfg.Password)
		case "SCRAM-SHA-1":
			a = gosmtp.ScramSHA1Auth(cfg.Username, cfg.Password)
		case "CRAM-MD5":
			a = gosmtp.CRAMMD5Auth(cfg.Username, cfg.Password)
		}
		if err := sc.Auth(a); err != nil {
			return fmt.Errorf("AUTH %s: %w", m, err)
		}
		return nil
	}
	return fmt.Errorf("no supported AUTH mechanism among %q", offered)
}

// send transmits one message on the session, aborting when ctx ends.
func (s *session) send(ctx context.Context, m *mail.Msg) error {
	stop := context.AfterFunc(ctx, func() { _ = s.raw.Close() })
	defer stop()
	err := s.mc.SendWithSMTPClient(s.sc, m)
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	return err
}

// quit ends the session politely, within a short deadline.
func (s *session) quit() {
	_ = s.raw.SetDeadline(time.Now().Add(2 * time.Second))
	if err := s.sc.Quit(); err != nil {
		_ = s.sc.Close()
	}
}

// stale reports whether err says the reused connection was already dead
// before anything was sent (go-mail's NOOP check failed).
func stale(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrConnCheck
}

// refusedOnReuse reports a temporary refusal of MAIL FROM, before anything
// was accepted: servers limit the mails per connection (OpenSMTPD: "452
// 4.5.3 Too many messages sent" after 100), so a fresh connection is the
// cure, not a retry half a minute later.
func refusedOnReuse(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrSMTPMailFrom && se.IsTemp()
}

// Check dials cfg, secures the connection, authenticates and quits: the
// `servicedesk check` probe. Errors are classified like Deliver's (an
// *Error, ErrAuth for refused credentials).
func Check(ctx context.Context, cfg SMTPConfig) error {
	s, err := dial(ctx, cfg)
	if err != nil {
		return err
	}
	_ = s.raw.SetDeadline(time.Now().Add(cfg.withDefaults().Timeout))
	if err := s.sc.Quit(); err != nil {
		_ = s.sc.Close()
		return &Error{Step: "quit", Err: err}
	}
	return nil
}

// conn is the pooled session of one project: one at a time, reused between
// sends, closed after it has been idle.
type conn struct {
	cfg  SMTPConfig
	idle time.Duration
	log  *slog.Logger

	mu     sync.Mutex
	s      *session
	gen    uint64 // bumped on every use, so a stale idle timer does nothing
	timer  *time.Timer
	closed bool
}

var errClosed = errors.New("notify: deliverer closed")

// send delivers m on the pooled session, dialing when there is none and
// redialing once when a reused session turns out to be dead.
func (c *conn) send(ctx context.Context, m *mail.Msg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return &Error{Step: "send", Err: errClosed}
	}
	c.gen++
	if c.timer != nil {
		c.timer.Stop()
	}
	for attempt := 0; ; attempt++ {
		reused := c.s != nil
		if !reused {
			s, err := dial(ctx, c.cfg)
			if err != nil {
				return err
			}
			c.s = s
		}
		err := c.s.send(ctx, m)
		if err == nil {
			c.armIdle()
			return nil
		}
		// Never keep a session after an error: its state is unknown.
		c.s.quit()
		c.s = nil
		if reused && attempt == 0 && (stale(err) || refusedOnReuse(err)) && ctx.Err() == nil {
			c.log.Debug("pooled SMTP connection was dead or used up, redialing", "host", c.cfg.Host, "err", err)
			continue
		}
		return sendError(err)
	}
}

// armIdle schedules closing the session after the idle time. c.mu is held.
func (c *conn) armIdle() {
	gen := c.gen
	c.timer = time.AfterFunc(c.idle, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.gen != gen || c.s == nil {
			return
		}
		c.s.quit()
		c.s = nil
		c.log.Debug("closed idle SMTP connection", "host", c.cfg.Host)
	})
}

// close quits the session and refuses further sends.
func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.gen++
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.s != nil {
		c.s.quit()
		c.s = nil
	}
}
