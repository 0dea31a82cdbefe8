// Package oauth owns the OAuth2 access tokens mailboxes log in with (SASL
// XOAUTH2 and OAUTHBEARER, RFC 7628): it gets them from the provider's
// token endpoint (RFC 6749) with the client credentials grant (section
// 4.4, Microsoft 365 app-only) or the refresh token grant (section 6,
// Gmail and Microsoft 365 delegated), over golang.org/x/oauth2.
//
// A Tokens holds one Source per (token URL, client, user, scopes), shared by every
// fetch and send of the process. A Source refreshes its access token a
// margin ahead of its expiry; concurrent callers wait for one refresh.
// A refresh token the provider rotates is stored through the Store,
// sealed with AES-256-GCM under the configured key, and preferred to the
// configured one from then on (until the configured one changes), so a
// restart never needs a new consent.
//
// Errors are *Error and say which step failed: the token endpoint
// (unreachable or failing: temporary), the grant (refused: permanent, new
// consent or a configuration fix needed), or the token store.
package oauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Step names the part of getting a token, or logging in with it, that
// failed.
type Step string

// The steps, as `check` lines and the metric's step label name them.
const (
	// StepEndpoint: the token endpoint did not answer, or answered 5xx or
	// 429. Temporary.
	StepEndpoint Step = "token_endpoint"
	// StepGrant: the provider refused the grant (invalid_grant: a revoked
	// or expired refresh token, consent needed again; invalid_client: a
	// wrong client ID or secret). Permanent.
	StepGrant Step = "grant"
	// StepLogin: the IMAP or SMTP server refused the access token.
	StepLogin Step = "login"
	// StepStore: the stored refresh token could not be read or written.
	StepStore Step = "token_store"
)

// Error is a failed step of getting an access token.
type Error struct {
	Step Step
	// Temporary is true when a retry later may help.
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	kind := "permanent"
	if e.Temporary {
		kind = "temporary"
	}
	return fmt.Sprintf("oauth2 %s (%s): %v", strings.ReplaceAll(string(e.Step), "_", " "), kind, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Transient reports whether a retry later may help (mailbox.Temporary and
// notify.Permanent ask).
func (e *Error) Transient() bool { return e.Temporary }

// StepOf returns the step of the *Error in err's chain.
func StepOf(err error) (Step, bool) {
	var e *Error
	if errors.As(err, &e) {
		return e.Step, true
	}
	return "", false
}

// Config is one mailbox's token configuration.
type Config struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scopes       []string
	// RefreshToken empty selects the client credentials grant.
	RefreshToken string
	// User is the mailbox the token logs in to; with the token URL and the
	// client it identifies the Source.
	User string
}

// Store keeps the rotated refresh token of each Source, sealed. Load
// returns "" (and no error) when there is none.
type Store interface {
	LoadOAuthToken(ctx context.Context, id string) (sealed, seed string, err error)
	SaveOAuthToken(ctx context.Context, id, sealed, seed string) error
}

// Options tunes Tokens; nil means defaults.
type Options struct {
	// Store keeps rotated refresh tokens; nil keeps them in memory only.
	Store Store
	// Key seals the stored refresh tokens (mail.token_key). Required with
	// Store.
	Key string
	// Margin is how long before its expiry an access token is refreshed.
	// Defaults to 2m.
	Margin time.Duration
	// Timeout bounds one token request. Defaults to 30s.
	Timeout time.Duration
	// HTTPClient makes the token requests. Defaults to one with Timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	// Now is the clock. Defaults to time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	o.Margin = cmp.Or(o.Margin, 2*time.Minute)
	o.Timeout = cmp.Or(o.Timeout, 30*time.Second)
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: o.Timeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Tokens is the process's set of token sources.
type Tokens struct {
	opts    Options
	sealer  *sealer // nil without a key
	mu      sync.Mutex
	sources map[string]*Source
}

// New returns an empty set of token sources.
func New(opts *Options) (*Tokens, error) {
	o := Options{}
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	t := &Tokens{opts: o, sources: map[string]*Source{}}
	if o.Key != "" {
		t.sealer = newSealer(o.Key)
	}
	if o.Store != nil && t.sealer == nil {
		return nil, errors.New("oauth: a token store needs a key to seal the tokens")
	}
	return t, nil
}

// Source returns the source for cfg's token URL, client, user and scopes,
// the same one on every call: the first call's secrets and refresh token
// are the ones it uses. Sources that differ only in scopes (IMAP and SMTP
// asking for their own) share the stored refresh token, which belongs to
// the client and the user: when one rotates it, the other finds it in the
// store on its next invalid_grant.
func (t *Tokens) Source(cfg Config) *Source {
	id := sourceID(cfg)
	scopes := slices.Clone(cfg.Scopes)
	slices.Sort(scopes)
	key := id + "\x00" + strings.Join(scopes, " ")
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, ok := t.sources[key]; ok {
		return s
	}
	s := &Source{t: t, cfg: cfg, id: id, refresh: cfg.RefreshToken, sem: make(chan struct{}, 1),
		log: t.opts.Logger.With("component", "oauth", "user", cfg.User, "token_host", host(cfg.TokenURL))}
	t.sources[key] = s
	return s
}

// Source is the access token of one mailbox identity.
type Source struct {
	t   *Tokens
	cfg Config
	id  string
	log *slog.Logger
	sem chan struct{} // held while refreshing: concurrent callers share one refresh

	mu      sync.Mutex
	tok     *oauth2.Token
	refresh string // the refresh token in use (rotated ones replace it)
	loaded  bool   // the stored refresh token was looked at
}

// Token returns a valid access token, refreshing it first when it expires
// within the margin (or was refused).
func (s *Source) Token(ctx context.Context) (string, error) {
	if tok, ok := s.current(); ok {
		return tok, nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return "", &Error{Step: StepEndpoint, Temporary: true, Err: fmt.Errorf("waiting for a token refresh: %w", ctx.Err())}
	}
	defer func() { <-s.sem }()
	if tok, ok := s.current(); ok {
		return tok, nil // refreshed by the caller we waited for
	}
	return s.fetch(ctx)
}

// Refused tells the source a server refused token: the next Token call
// gets a new one. A token already replaced is left alone, so that many
// refusals of one token cause one refresh.
func (s *Source) Refused(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok != nil && s.tok.AccessToken == token {
		s.tok = nil
	}
}

func (s *Source) current() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tok == nil || s.tok.AccessToken == "" {
		return "", false
	}
	if !s.tok.Expiry.IsZero() && !s.t.opts.Now().Add(s.t.opts.Margin).Before(s.tok.Expiry) {
		return "", false
	}
	return s.tok.AccessToken, true
}

// fetch asks the token endpoint; s.sem is held.
func (s *Source) fetch(ctx context.Context) (string, error) {
	if s.cfg.RefreshToken != "" {
		if err := s.loadStored(ctx); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	used := s.refresh
	s.mu.Unlock()
	tok, err := s.request(ctx, used)
	if err != nil && used != "" && isStep(err, StepGrant) && s.t.opts.Store != nil {
		// Another process sharing the database may have rotated the
		// refresh token we hold: try the stored one, once.
		s.mu.Lock()
		s.loaded = false
		s.mu.Unlock()
		if lerr := s.loadStored(ctx); lerr == nil {
			s.mu.Lock()
			again := s.refresh
			s.mu.Unlock()
			if again != used {
				s.log.Info("refresh token refused; retrying with the one another process stored")
				used = again
				tok, err = s.request(ctx, used)
			}
		}
	}
	if err != nil {
		return "", err
	}
	if !tok.Expiry.IsZero() {
		// x/oauth2 dates the expiry by the wall clock; ours may be another.
		tok.Expiry = s.t.opts.Now().Add(time.Until(tok.Expiry))
	}
	s.mu.Lock()
	s.tok = tok
	rotated := used != "" && tok.RefreshToken != "" && tok.RefreshToken != used
	if rotated {
		s.refresh = tok.RefreshToken
	}
	s.mu.Unlock()
	if rotated {
		s.store(ctx, tok.RefreshToken)
	}
	s.log.Debug("access token refreshed", "expires", tok.Expiry)
	return tok.AccessToken, nil
}

// request runs one grant: refresh_token when refresh is set, else
// client_credentials. Both send the scopes (Microsoft's v2 endpoint wants
// them on a refresh too).
func (s *Source) request(ctx context.Context, refresh string) (*oauth2.Token, error) {
	cc := clientcredentials.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret,
		TokenURL: s.cfg.TokenURL, Scopes: s.cfg.Scopes}
	if refresh != "" {
		cc.EndpointParams = url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}
	}
	if s.cfg.ClientSecret == "" {
		cc.AuthStyle = oauth2.AuthStyleInParams // a public client: client_id in the form
	}
	rctx, cancel := context.WithTimeout(ctx, s.t.opts.Timeout)
	defer cancel()
	rctx = context.WithValue(rctx, oauth2.HTTPClient, s.t.opts.HTTPClient)
	tok, err := cc.Token(rctx)
	if err != nil {
		return nil, classify(s.cfg.TokenURL, err)
	}
	return tok, nil
}

// classify turns a token request's failure into an *Error, saying what the
// provider answered (its error code and description, bounded) but never
// the request.
func classify(tokenURL string, err error) *Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		what := fmt.Sprintf("HTTP %d", status)
		if re.ErrorCode != "" {
			what += " " + bounded(re.ErrorCode, 64)
		}
		if re.ErrorDescription != "" {
			what += ": " + bounded(re.ErrorDescription, 300)
		}
		if status >= 500 || status == http.StatusTooManyRequests || (re.ErrorCode == "" && status != http.StatusBadRequest && status != http.StatusUnauthorized) {
			return &Error{Step: StepEndpoint, Temporary: true, Err: fmt.Errorf("token endpoint %s answered %s", host(tokenURL), what)}
		}
		if re.ErrorCode == "invalid_grant" {
			what += " (the refresh token was revoked or expired: a new consent is needed)"
		}
		return &Error{Step: StepGrant, Err: fmt.Errorf("token endpoint %s refused the grant: %s", host(tokenURL), what)}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the URL
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Step: StepEndpoint, Err: err}
	}
	return &Error{Step: StepEndpoint, Temporary: true, Err: fmt.Errorf("token endpoint %s: %w", host(tokenURL), err)}
}

func isStep(err error, step Step) bool {
	got, ok := StepOf(err)
	return ok && got == step
}

// loadStored prefers a stored refresh token that was rotated from the
// configured one; s.sem is held.
func (s *Source) loadStored(ctx context.Context) error {
	s.mu.Lock()
	loaded := s.loaded
	s.mu.Unlock()
	if loaded || s.t.opts.Store == nil {
		return nil
	}
	sealed, seed, err := s.t.opts.Store.LoadOAuthToken(ctx, s.id)
	if err != nil {
		return &Error{Step: StepStore, Temporary: true, Err: fmt.Errorf("read the stored refresh token: %w", err)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	if sealed == "" {
		return nil
	}
	if seed != s.t.sealer.seed(s.cfg.RefreshToken) {
		// The configured refresh token changed (a new consent): it wins.
		s.log.Info("ignoring the stored refresh token: the configured one changed since")
		return nil
	}
	rt, err := s.t.sealer.open(sealed, s.id)
	if err != nil {
		s.log.Warn("cannot open the stored refresh token (mail.token_key changed?); using the configured one", "err", err)
		return nil
	}
	s.refresh = rt
	return nil
}

// store saves a rotated refresh token. A failure is logged, not returned:
// the access token is good; the next rotation tries again.
func (s *Source) store(ctx context.Context, refresh string) {
	if s.t.opts.Store == nil {
		s.log.Warn("the provider rotated the refresh token, but there is no token store: a restart will use the configured one")
		return
	}
	sealed, err := s.t.sealer.seal(refresh, s.id)
	if err == nil {
		err = s.t.opts.Store.SaveOAuthToken(context.WithoutCancel(ctx), s.id, sealed, s.t.sealer.seed(s.cfg.RefreshToken))
	}
	if err != nil {
		s.log.Error("store the rotated refresh token", "err", &Error{Step: StepStore, Err: err})
		return
	}
	s.log.Info("stored the rotated refresh token")
}

func host(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return "(token url)"
}

func bounded(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
