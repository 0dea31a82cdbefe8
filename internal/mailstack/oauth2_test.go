package mailstack_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/internal/tokenserver"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/notify"
)

// fixedToken is a TokenSource that always gives the same token and
// remembers refusals.
type fixedToken struct {
	token   string
	refused int
}

func (f *fixedToken) Token(context.Context) (string, error) { return f.token, nil }
func (f *fixedToken) Refused(string)                        { f.refused++ }

// TestOAuth2Passdb: with WithOAuth2, Dovecot (not the client) decides
// whether an access token is valid, by asking the token server.
func TestOAuth2Passdb(t *testing.T) {
	ts := tokenserver.Start(t)
	s := mailstack.Start(t, mailstack.WithOAuth2(ts.IntrospectionURL()))
	const user = "support@example.test"
	ts.SetAppUser(user)
	good := func(t *testing.T) string { return issue(t, ts) } // a client credentials token for user

	for _, mech := range []string{mailbox.MechXOAUTH2, mailbox.MechOAuthBearer} {
		t.Run(mech+": a live token logs in", func(t *testing.T) {
			cfg := s.IMAPTokenConfig(user, &fixedToken{token: good(t)})
			cfg.Mechanism = mech
			c, err := mailbox.Dial(t.Context(), cfg, nil)
			if err != nil {
				t.Fatalf("Dial with a live token: %v (dovecot log in %s)", err, s.Dir)
			}
			c.Close()
		})
		t.Run(mech+": an expired token is refused, after one retry, as ErrAuth", func(t *testing.T) {
			tok := good(t)
			ts.ExpireAccessTokens()
			src := &fixedToken{token: tok}
			cfg := s.IMAPTokenConfig(user, src)
			cfg.Mechanism = mech
			_, err := mailbox.Dial(t.Context(), cfg, nil)
			if !errors.Is(err, mailbox.ErrAuth) || src.refused != 2 {
				t.Fatalf("Dial with an expired token = %v, %d refusals reported; want ErrAuth after 2", err, src.refused)
			}
		})
	}
	smtpConfig := func(src notify.TokenSource, mech string) notify.SMTPConfig {
		host, port, _ := net.SplitHostPort(s.SMTPAuthAddr)
		p, _ := strconv.Atoi(port)
		return notify.SMTPConfig{Host: host, Port: p, Security: notify.SecurityStartTLS, InsecureSkipVerify: true,
			Username: user, Tokens: src, Mechanism: mech, Timeout: 10 * time.Second}
	}
	for _, mech := range []string{"XOAUTH2", "OAUTHBEARER"} {
		t.Run("submission "+mech+": a live token authenticates", func(t *testing.T) {
			if err := notify.Check(t.Context(), smtpConfig(&fixedToken{token: good(t)}, mech)); err != nil {
				t.Fatalf("SMTP AUTH %s with a live token: %v", mech, err)
			}
		})
		t.Run("submission "+mech+": an expired token is refused, after one retry, as ErrAuth", func(t *testing.T) {
			tok := good(t)
			ts.ExpireAccessTokens()
			src := &fixedToken{token: tok}
			err := notify.Check(t.Context(), smtpConfig(src, mech))
			if !errors.Is(err, notify.ErrAuth) || !notify.Permanent(err) || src.refused != 2 {
				t.Fatalf("SMTP AUTH with an expired token = %v, %d refusals; want a permanent ErrAuth after 2", err, src.refused)
			}
		})
	}
	t.Run("a token for another user is refused", func(t *testing.T) {
		cfg := s.IMAPTokenConfig("help@example.test", &fixedToken{token: good(t)})
		if _, err := mailbox.Dial(t.Context(), cfg, nil); !errors.Is(err, mailbox.ErrAuth) {
			t.Fatalf("Dial as another user = %v; want ErrAuth", err)
		}
	})
	t.Run("passwords still work beside tokens", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		c, err := mailbox.Dial(ctx, s.IMAPConfig(user, mailstack.Password), nil)
		if err != nil {
			t.Fatalf("password login: %v", err)
		}
		c.Close()
	})
	if ts.Introspections() == 0 {
		t.Fatal("Dovecot never asked the token server")
	}
}

func issue(t *testing.T, ts *tokenserver.Server) string {
	t.Helper()
	tok, err := tokenserver.ClientCredentials(t.Context(), ts)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
