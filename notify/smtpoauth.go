package notify

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	gosmtp "github.com/wneessen/go-mail/smtp"
)

// TokenSource gives the OAuth2 access token SMTP AUTH sends (oauth.Source).
type TokenSource interface {
	// Token returns a valid access token.
	Token(ctx context.Context) (string, error)
	// Refused reports that the server refused token, so that the next
	// Token call returns a new one.
	Refused(token string)
}

// errTokenRefused marks an AUTH that refused the access token.
var errTokenRefused = errors.New("the server refused the access token")

// dial is dialOnce, once more with a fresh token when the server refused
// the first (it expired or was revoked early): go-mail closes the
// connection after a failed AUTH, so the retry is a new connection.
func dial(ctx context.Context, cfg SMTPConfig) (*session, error) {
	s, err := dialOnce(ctx, cfg)
	if err == nil || cfg.Tokens == nil || !errors.Is(err, errTokenRefused) || ctx.Err() != nil {
		return s, err
	}
	s, err = dialOnce(ctx, cfg)
	if err != nil && errors.Is(err, errTokenRefused) {
		err = fmt.Errorf("%w (also a freshly refreshed one: is the mailbox granted to this client, with the right scopes?)", err)
	}
	return s, err
}

// accessToken gets the token for cfg before connecting: none without
// Tokens. A failure says whether the token endpoint (temporary) or the
// grant (permanent) failed.
func accessToken(ctx context.Context, cfg SMTPConfig) (string, error) {
	if cfg.Tokens == nil || cfg.Username == "" {
		return "", nil
	}
	token, err := cfg.Tokens.Token(ctx)
	if err != nil {
		var tr interface{ Transient() bool }
		perm := !errors.As(err, &tr) || !tr.Transient()
		return "", &Error{Step: "token", Permanent: perm, Err: fmt.Errorf("get an access token for %q: %w", cfg.Username, err)}
	}
	return token, nil
}

// authenticateToken runs AUTH XOAUTH2 or OAUTHBEARER with token. A
// refusal (5xx) is reported to the source and wraps errTokenRefused.
func authenticateToken(sc *gosmtp.Client, cfg SMTPConfig, token string) error {
	ok, offered := sc.Extension("AUTH")
	if !ok {
		return errors.New("server does not offer AUTH")
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	want := "XOAUTH2"
	if strings.EqualFold(cfg.Mechanism, "OAUTHBEARER") {
		want = "OAUTHBEARER"
	}
	for _, m := range []string{want, "XOAUTH2", "OAUTHBEARER"} {
		if !slices.Contains(mechs, m) {
			continue
		}
		a := gosmtp.XOAuth2Auth(cfg.Username, token)
		if m == "OAUTHBEARER" {
			a = &oauthBearer{user: cfg.Username, token: token, host: cfg.Host, port: cfg.Port}
		}
		err := sc.Auth(a)
		if err == nil {
			return nil
		}
		if authError(err).Permanent {
			cfg.Tokens.Refused(token)
			return fmt.Errorf("AUTH %s: %w: %w", m, errTokenRefused, err)
		}
		return fmt.Errorf("AUTH %s: %w", m, err)
	}
	return fmt.Errorf("the server offers neither XOAUTH2 nor OAUTHBEARER (AUTH %q)", offered)
}

// oauthBearer is OAUTHBEARER (RFC 7628) for go-mail's SMTP client. An
// error challenge is answered with the dummy response of section 3.2.3, so
// that the server completes the exchange with its 5xx.
type oauthBearer struct {
	user, token, host string
	port              int
}

func (a *oauthBearer) Start(*gosmtp.ServerInfo) (string, []byte, error) {
	ir := fmt.Sprintf("n,a=%s,\x01host=%s\x01port=%d\x01auth=Bearer %s\x01\x01", a.user, a.host, a.port, a.token)
	return "OAUTHBEARER", []byte(ir), nil
}

func (a *oauthBearer) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return []byte{0x01}, nil
	}
	return nil, nil
}
