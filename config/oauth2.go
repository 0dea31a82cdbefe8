package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// Mailbox authentication methods (IMAP.Auth, SMTP.Auth).
const (
	// AuthPassword logs in with the username and password (IMAP LOGIN,
	// SMTP AUTH PLAIN/LOGIN/...). The default.
	AuthPassword = "password"
	// AuthXOAUTH2 logs in with an OAuth2 access token over SASL XOAUTH2
	// (Google's and Microsoft's mechanism), or OAUTHBEARER (RFC 7628)
	// when the server offers only that.
	AuthXOAUTH2 = "xoauth2"
	// AuthOAuthBearer is AuthXOAUTH2 preferring OAUTHBEARER (RFC 7628).
	AuthOAuthBearer = "oauthbearer"
)

// MinTokenKeyLength is the fewest characters mail.token_key may have.
const MinTokenKeyLength = 32

// OAuth2 says how a mailbox gets its access tokens, for auth: xoauth2. Two
// grants (RFC 6749):
//   - client credentials (section 4.4) when RefreshToken is empty: the
//     application's own identity (Microsoft 365 with an app registration
//     granted IMAP.AccessAsApp / SMTP.SendAsApp; scope
//     https://outlook.office365.com/.default);
//   - refresh token (section 6) when RefreshToken is set: a user's
//     one-time consent (Gmail, scope https://mail.google.com/; Microsoft
//     365 delegated, scopes https://outlook.office365.com/IMAP.AccessAsUser.All
//     and offline_access). A refresh token the provider rotates is stored
//     in the database encrypted with mail.token_key and preferred to this
//     one from then on, until this one changes.
type OAuth2 struct {
	// TokenURL is the provider's token endpoint, https (http only to a
	// loopback address, for tests). Required.
	TokenURL string `yaml:"token_url"`
	// ClientID is the application (client) ID. Required.
	ClientID string `yaml:"client_id"`
	// ClientSecret is the application's secret: required for client
	// credentials, optional with a refresh token (a public client).
	ClientSecret     string `yaml:"client_secret"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes asked for, in the provider's spelling. Optional.
	Scopes []string `yaml:"scopes"`
	// RefreshToken selects the refresh-token grant.
	RefreshToken     string `yaml:"refresh_token"`
	RefreshTokenFile string `yaml:"refresh_token_file"`
}

// UsesOAuth2 reports whether auth names a token method rather than a
// password.
func UsesOAuth2(auth string) bool { return auth == AuthXOAUTH2 || auth == AuthOAuthBearer }

// readFiles reads the secret files of o; at names o in errors.
func (o *OAuth2) readFiles(at string, read func(field string, dst *string, file string) error) error {
	if err := read(at+".client_secret", &o.ClientSecret, o.ClientSecretFile); err != nil {
		return err
	}
	return read(at+".refresh_token", &o.RefreshToken, o.RefreshTokenFile)
}

// validateAuth checks a mailbox's auth and oauth2 keys; at names the
// mailbox section (projects[0] (acme).imap). Problems name fields, never
// values: a token URL is described, not echoed.
func validateAuth(at, auth string, o OAuth2, tokenKey string) []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch auth {
	case AuthPassword:
		return nil
	case AuthXOAUTH2, AuthOAuthBearer:
	default:
		return []error{fmt.Errorf("%s.auth %q: want password, xoauth2 or oauthbearer", at, auth)}
	}
	if err := checkTokenURL(at+".oauth2.token_url", o.TokenURL); err != nil {
		errs = append(errs, err)
	}
	if o.ClientID == "" {
		bad("%s.oauth2.client_id: required with auth %s", at, auth)
	}
	if o.RefreshToken == "" && o.ClientSecret == "" {
		bad("%s.oauth2: client_secret (or client_secret_file) is required for the client credentials grant; "+
			"set refresh_token (or refresh_token_file) for a user's consent", at)
	}
	if o.RefreshToken != "" && len(tokenKey) < MinTokenKeyLength {
		bad("%s.oauth2.refresh_token: needs mail.token_key (or token_key_file), at least %d characters, "+
			"to store the refresh token the provider rotates (e.g. `openssl rand -hex 32`)", at, MinTokenKeyLength)
	}
	for i, s := range o.Scopes {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n") {
			bad("%s.oauth2.scopes[%d]: one scope per item, without spaces", at, i)
		}
	}
	return errs
}

// checkTokenURL wants an https URL, or http to a loopback host; errors
// never echo the URL.
func checkTokenURL(field, raw string) error {
	if raw == "" {
		return fmt.Errorf("%s: required with an OAuth2 auth", field)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%s: not a valid URL: %s", field, URLProblem(err))
	}
	switch {
	case u.Host == "":
		return fmt.Errorf("%s: not an absolute URL (want https://host/path)", field)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s: http is allowed to a loopback address only; use https", field)
	}
	return fmt.Errorf("%s: want an https:// URL", field)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validateTokenKey checks mail.token_key when it is set.
func (c *Config) validateTokenKey() error {
	if c.Mail.TokenKey != "" && len(c.Mail.TokenKey) < MinTokenKeyLength {
		return fmt.Errorf("mail.token_key: is %d characters; use at least %d (e.g. `openssl rand -hex 32`)",
			len(c.Mail.TokenKey), MinTokenKeyLength)
	}
	return nil
}
