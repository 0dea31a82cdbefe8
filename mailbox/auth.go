package mailbox

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
)

// SASL mechanisms for Config.Mechanism.
const (
	// MechXOAUTH2 is Google's and Microsoft's XOAUTH2.
	MechXOAUTH2 = "XOAUTH2"
	// MechOAuthBearer is OAUTHBEARER (RFC 7628).
	MechOAuthBearer = "OAUTHBEARER"
)

// errToken wraps a TokenSource's failure: no connection problem, the
// token source's error says what failed and whether a retry helps.
var errToken = errors.New("get an access token")

// TokenSource gives the OAuth2 access token a mailbox logs in with
// (oauth.Source).
type TokenSource interface {
	// Token returns a valid access token.
	Token(ctx context.Context) (string, error)
	// Refused reports that the server refused token, so that the next
	// Token call returns a new one.
	Refused(token string)
}

// login authenticates: LOGIN with the password, or AUTHENTICATE with an
// OAuth2 token. A token the server refuses is reported to the source and
// the login retried once with a fresh one; a second refusal returns an
// error matching ErrAuth that says the token was refused.
func (c *Client) login(ctx context.Context) error {
	cfg := c.cfg
	if cfg.Tokens == nil {
		if err := c.ic.Login(cfg.Username, cfg.Password).Wait(); err != nil {
			return loginError("login", err)
		}
		return nil
	}
	mech, err := c.mechanism()
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		token, err := cfg.Tokens.Token(ctx)
		if err != nil {
			return fmt.Errorf("%w: %w", errToken, err)
		}
		err = c.ic.Authenticate(saslClient(mech, cfg, token))
		if err == nil {
			return nil
		}
		if !refused(err) {
			return loginError("authenticate "+mech, err)
		}
		cfg.Tokens.Refused(token)
		if attempt == 2 {
			return fmt.Errorf("authenticate %s: the server refused the access token, also a freshly refreshed one "+
				"(is the mailbox %q granted to this client, with the right scopes?): %w: %w", mech, cfg.Username, ErrAuth, err)
		}
		c.logger.Info("access token refused; retrying with a fresh one", "mechanism", mech)
	}
}

// mechanism picks the SASL mechanism: the configured one if the server
// offers it, else the other token mechanism it offers.
func (c *Client) mechanism() (string, error) {
	want := MechXOAUTH2
	if c.cfg.Mechanism == MechOAuthBearer {
		want = MechOAuthBearer
	}
	offered := c.ic.Caps().AuthMechanisms()
	for _, m := range []string{want, MechXOAUTH2, MechOAuthBearer} {
		if slices.Contains(offered, m) {
			return m, nil
		}
	}
	return "", fmt.Errorf("login: %w: the server offers neither XOAUTH2 nor OAUTHBEARER (AUTH=%v)", ErrAuth, offered)
}

// loginError classifies a refused LOGIN or AUTHENTICATE.
func loginError(step string, err error) error {
	if typ, code := imapCode(err); typ == imap.StatusResponseTypeNo && !temporaryCode(code) {
		return fmt.Errorf("%s: %w: %w", step, ErrAuth, err)
	}
	return fmt.Errorf("%s: %w", step, err)
}

// refused reports a NO to AUTHENTICATE that is not temporary, or a BAD:
// go-imap sends the empty response that ends a failed XOAUTH2 exchange as
// "=", which Dovecot answers with BAD.
func refused(err error) bool {
	typ, code := imapCode(err)
	return typ == imap.StatusResponseTypeBad || (typ == imap.StatusResponseTypeNo && !temporaryCode(code))
}

func saslClient(mech string, cfg Config, token string) sasl.Client {
	if mech == MechOAuthBearer {
		return &oauthBearer{opts: sasl.OAuthBearerOptions{Username: cfg.Username, Token: token, Host: cfg.Host, Port: cfg.Port}}
	}
	return &xoauth2{user: cfg.Username, token: token}
}

// xoauth2 is the XOAUTH2 client (Google's "XOAUTH2 protocol" and
// Microsoft's "Authenticate an IMAP, POP or SMTP connection using OAuth"):
// user=U ^A auth=Bearer T ^A ^A. On failure the server sends a JSON
// challenge, answered with an empty response so that it completes with NO
// (or BAD: see refused).
type xoauth2 struct{ user, token string }

func (a *xoauth2) Start() (string, []byte, error) {
	return MechXOAUTH2, []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2) Next([]byte) ([]byte, error) { return []byte{}, nil }

// oauthBearer is go-sasl's OAUTHBEARER client, except that an error
// challenge is answered with the dummy response RFC 7628 section 3.2.3
// asks for (a single %x01), so the server completes the exchange with NO
// and the connection stays usable for a retry.
type oauthBearer struct{ opts sasl.OAuthBearerOptions }

func (a *oauthBearer) Start() (string, []byte, error) {
	return sasl.NewOAuthBearerClient(&a.opts).Start()
}

func (a *oauthBearer) Next([]byte) ([]byte, error) { return []byte{0x01}, nil }

var (
	_ sasl.Client = (*xoauth2)(nil)
	_ sasl.Client = (*oauthBearer)(nil)
)
