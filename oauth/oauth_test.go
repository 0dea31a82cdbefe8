package oauth

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/tokenserver"
)

const key = "0123456789abcdef0123456789abcdef-key"

// memStore is a Store in memory that counts its writes.
type memStore struct {
	mu    sync.Mutex
	rows  map[string][2]string
	saves int
}

func (m *memStore) LoadOAuthToken(_ context.Context, id string) (string, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.rows[id]
	return r[0], r[1], nil
}

func (m *memStore) SaveOAuthToken(_ context.Context, id, sealed, seed string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rows == nil {
		m.rows = map[string][2]string{}
	}
	m.rows[id] = [2]string{sealed, seed}
	m.saves++
	return nil
}

type bundle struct {
	srv   *tokenserver.Server
	store *memStore
	now   time.Time
	mu    sync.Mutex
}

func (b *bundle) clock() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.now
}

func (b *bundle) advance(d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = b.now.Add(d)
}

func setup(t *testing.T) *bundle {
	t.Helper()
	return &bundle{srv: tokenserver.Start(t), store: &memStore{}, now: time.Now()}
}

// tokens is a fresh process's Tokens on b's store.
func (b *bundle) tokens(t *testing.T) *Tokens {
	t.Helper()
	tk, err := New(&Options{Store: b.store, Key: key, Now: b.clock, Margin: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func (b *bundle) refreshConfig(rt string) Config {
	return Config{TokenURL: b.srv.TokenURL(), ClientID: b.srv.ClientID, ClientSecret: b.srv.ClientSecret,
		Scopes: []string{"https://mail.google.com/"}, RefreshToken: rt, User: "desk@example.test"}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tk := b.tokens(t)
	cfg := Config{TokenURL: b.srv.TokenURL(), ClientID: b.srv.ClientID, ClientSecret: b.srv.ClientSecret,
		Scopes: []string{"https://outlook.office365.com/.default"}, User: "desk@example.test"}
	src := tk.Source(cfg)
	t.Run("gives a token and reuses it until the margin before its expiry", func(t *testing.T) {
		a, err := src.Token(t.Context())
		if err != nil || a == "" {
			t.Fatalf("Token = %q, %v", a, err)
		}
		again, _ := src.Token(t.Context())
		if again != a || b.srv.Issued("client_credentials") != 1 {
			t.Fatalf("second Token = %q (first %q), %d issued; want the same token, one request", again, a, b.srv.Issued("client_credentials"))
		}
		b.advance(time.Hour - 30*time.Second) // within the minute's margin
		fresh, err := src.Token(t.Context())
		if err != nil || fresh == a || b.srv.Issued("client_credentials") != 2 {
			t.Fatalf("Token near expiry = %q, %v (%d issued); want a new token", fresh, err, b.srv.Issued("client_credentials"))
		}
	})
	t.Run("the same mailbox identity gets the same source", func(t *testing.T) {
		if tk.Source(cfg) != src {
			t.Fatal("Source(cfg) twice gave two sources")
		}
		other := cfg
		other.User = "other@example.test"
		if tk.Source(other) == src {
			t.Fatal("another user shares the source")
		}
		smtp := cfg
		smtp.Scopes = []string{"https://outlook.office365.com/SMTP.Send"}
		if tk.Source(smtp) == src {
			t.Fatal("a mailbox asking for other scopes shares the source (its token would lack them)")
		}
	})
	t.Run("a refused token is replaced once, however many callers report it", func(t *testing.T) {
		a, _ := src.Token(t.Context())
		before := b.srv.Issued("client_credentials")
		src.Refused(a)
		src.Refused(a)
		n, err := src.Token(t.Context())
		if err != nil || n == a {
			t.Fatalf("Token after Refused = %q, %v; want a new token", n, err)
		}
		src.Refused(a) // late report of the old token: ignored
		if m, _ := src.Token(t.Context()); m != n || b.srv.Issued("client_credentials") != before+1 {
			t.Fatalf("after a late refusal: %q (want %q), %d issued (want %d)", m, n, b.srv.Issued("client_credentials"), before+1)
		}
	})
}

func TestConcurrentCallersShareOneRefresh(t *testing.T) {
	t.Parallel()
	b := setup(t)
	src := b.tokens(t).Source(b.refreshConfig(b.srv.NewRefreshToken("desk@example.test")))
	var wg sync.WaitGroup
	got := make([]string, 32)
	for i := range got {
		wg.Go(func() {
			tok, err := src.Token(t.Context())
			if err != nil {
				t.Errorf("caller %d: %v", i, err)
			}
			got[i] = tok
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] != got[0] {
			t.Fatalf("caller %d got %q, caller 0 %q: want one token for all", i, got[i], got[0])
		}
	}
	if n := b.srv.Issued("refresh_token"); n != 1 {
		t.Fatalf("%d refresh requests for 32 concurrent callers; want 1", n)
	}
}

func TestRotatedRefreshTokenIsStoredSealedAndSurvivesARestart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.srv.SetRotation(true)
	configured := b.srv.NewRefreshToken("desk@example.test")
	cfg := b.refreshConfig(configured)

	if _, err := b.tokens(t).Source(cfg).Token(t.Context()); err != nil {
		t.Fatalf("first process: %v", err)
	}
	live := b.srv.LiveRefreshTokens()
	if len(live) != 1 || live[0] == configured {
		t.Fatalf("live refresh tokens %v; want one, rotated from the configured", live)
	}
	t.Run("the store holds it sealed, never in clear", func(t *testing.T) {
		for _, r := range b.store.rows {
			if strings.Contains(r[0]+r[1], live[0]) || strings.Contains(r[0]+r[1], configured) || !strings.HasPrefix(r[0], sealPrefix) {
				t.Fatalf("stored row %q holds a refresh token in clear", r)
			}
		}
		if len(b.store.rows) != 1 {
			t.Fatalf("%d stored rows; want 1", len(b.store.rows))
		}
	})
	t.Run("a restarted process uses the stored token, not the revoked configured one", func(t *testing.T) {
		if _, err := b.tokens(t).Source(cfg).Token(t.Context()); err != nil {
			t.Fatalf("second process: %v (the configured refresh token was rotated away)", err)
		}
		if b.srv.Refused("invalid_grant") != 0 {
			t.Fatalf("%d invalid_grant answers: the restart used the configured token", b.srv.Refused("invalid_grant"))
		}
	})
	t.Run("another process's rotation is picked up from the store on invalid_grant", func(t *testing.T) {
		p1 := b.tokens(t).Source(cfg)
		if _, err := p1.Token(t.Context()); err != nil {
			t.Fatal(err)
		}
		p2 := b.tokens(t).Source(cfg)
		if _, err := p2.Token(t.Context()); err != nil { // rotates p1's refresh token away
			t.Fatal(err)
		}
		b.advance(2 * time.Hour)
		if _, err := p1.Token(t.Context()); err != nil {
			t.Fatalf("p1 after p2 rotated: %v", err)
		}
	})
	t.Run("a new configured refresh token (a new consent) wins over the stored one", func(t *testing.T) {
		b.srv.RevokeRefreshTokens()
		fresh := b.refreshConfig(b.srv.NewRefreshToken("desk@example.test"))
		if _, err := b.tokens(t).Source(fresh).Token(t.Context()); err != nil {
			t.Fatalf("with the new consent: %v", err)
		}
	})
	t.Run("another key cannot open the stored token: the configured one is used", func(t *testing.T) {
		tk, err := New(&Options{Store: b.store, Key: strings.Repeat("k", 32), Now: b.clock})
		if err != nil {
			t.Fatal(err)
		}
		_, err = tk.Source(cfg).Token(t.Context())
		if step, _ := StepOf(err); step != StepGrant {
			t.Fatalf("with another key = %v; want the configured (revoked) token refused at the grant", err)
		}
	})
}

func TestErrorsSayWhichStepFailed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/token"
	ln.Close()
	cases := []struct {
		name      string
		cfg       func() Config
		before    func()
		step      Step
		temporary bool
		want      string
	}{
		{"a revoked refresh token is a permanent grant error that asks for consent",
			func() Config { return b.refreshConfig("rt-revoked-hunter2") }, nil, StepGrant, false, "invalid_grant"},
		{"a wrong client secret is a permanent grant error",
			func() Config { c := b.refreshConfig(""); c.ClientSecret = "hunter2"; return c }, nil, StepGrant, false, "invalid_client"},
		{"an unreachable endpoint is temporary",
			func() Config { c := b.refreshConfig(""); c.TokenURL = closed; return c }, nil, StepEndpoint, true, "connection refused"},
		{"a 503 from the endpoint is temporary",
			func() Config { return b.refreshConfig("") }, func() { b.srv.SetDown(true) }, StepEndpoint, true, "HTTP 503"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
				defer b.srv.SetDown(false)
			}
			tk, err := New(&Options{Now: b.clock})
			if err != nil {
				t.Fatal(err)
			}
			_, err = tk.Source(tc.cfg()).Token(t.Context())
			var e *Error
			if !errors.As(err, &e) || e.Step != tc.step || e.Temporary != tc.temporary || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Token = %v; want step %s, temporary %v, mentioning %q", err, tc.step, tc.temporary, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), b.srv.ClientSecret) {
				t.Fatalf("error holds a secret: %v", err)
			}
		})
	}
}
