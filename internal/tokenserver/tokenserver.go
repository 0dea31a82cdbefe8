// Package tokenserver is an OAuth2 authorization server for tests, run
// in-process on loopback: a token endpoint (RFC 6749: the
// client_credentials and refresh_token grants, refresh token rotation on
// demand) and a token introspection endpoint (RFC 7662, POST token=...)
// that Dovecot's oauth2 passdb asks whether an access token is valid. The
// test controls it: expire every access token, revoke a refresh token,
// take the token endpoint down.
package tokenserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Server is one running token server.
type Server struct {
	// URL is the base: URL+"/token" is the token endpoint,
	// URL+"/introspect" the introspection endpoint.
	URL string
	// ClientID and ClientSecret are the one client it knows.
	ClientID, ClientSecret string

	srv *httptest.Server

	mu       sync.Mutex
	lifetime time.Duration
	appUser  string
	rotate   bool
	down     bool
	access   map[string]grant  // access token -> its grant
	refresh  map[string]string // live refresh token -> user
	issued   map[string]int    // token requests answered with a token, by grant type
	refused  map[string]int    // token requests refused, by error code
	checked  int               // introspection requests
}

type grant struct {
	user    string
	expires time.Time
}

// Start runs a server until the test ends. Access tokens live an hour
// unless SetLifetime says otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{ClientID: "servicedesk-test", ClientSecret: "client-secret-" + random(),
		lifetime: time.Hour, access: map[string]grant{}, refresh: map[string]string{},
		issued: map[string]int{}, refused: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("/introspect", s.introspect)
	s.srv = httptest.NewServer(mux)
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// TokenURL is the token endpoint.
func (s *Server) TokenURL() string { return s.URL + "/token" }

// IntrospectionURL is the introspection endpoint for Dovecot.
func (s *Server) IntrospectionURL() string { return s.URL + "/introspect" }

// NewRefreshToken issues a refresh token for user, as a consent would.
func (s *Server) NewRefreshToken(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := "rt-" + random()
	s.refresh[rt] = user
	return rt
}

// SetAppUser names the mailbox that client credentials tokens give
// access to (app-only access is granted per mailbox, as Exchange's
// application access policies do).
func (s *Server) SetAppUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.appUser = user
}

// SetLifetime sets the expires_in of the access tokens issued from now on.
func (s *Server) SetLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// SetRotation makes every refresh grant answer with a new refresh token
// and revoke the one used (as Microsoft's and many providers' rotation).
func (s *Server) SetRotation(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate = on
}

// ExpireAccessTokens makes every access token issued so far invalid at
// introspection, whatever its expires_in said.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, g := range s.access {
		g.expires = time.Now().Add(-time.Second)
		s.access[k] = g
	}
}

// RevokeRefreshTokens revokes every refresh token and access token: the
// next refresh grant gets invalid_grant.
func (s *Server) RevokeRefreshTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh = map[string]string{}
	s.access = map[string]grant{}
}

// SetDown makes the token endpoint answer 503 (introspection still works).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Issued returns how many tokens were issued with grantType.
func (s *Server) Issued(grantType string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[grantType]
}

// Refused returns how many token requests were refused with code.
func (s *Server) Refused(code string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused[code]
}

// Introspections returns how many introspection requests were answered.
func (s *Server) Introspections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checked
}

// LiveRefreshTokens returns the refresh tokens not revoked or rotated away.
func (s *Server) LiveRefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for rt := range s.refresh {
		out = append(out, rt)
	}
	return out
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if err := r.ParseForm(); err != nil {
		s.fail(w, http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	gt := r.PostForm.Get("grant_type")
	switch {
	case id != s.ClientID || (secret != s.ClientSecret && !(gt == "refresh_token" && secret == "")):
		s.fail(w, http.StatusUnauthorized, "invalid_client")
		return
	case gt == "client_credentials":
		s.issue(w, gt, s.appUser, "")
	case gt == "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		user, ok := s.refresh[rt]
		if !ok {
			s.fail(w, http.StatusBadRequest, "invalid_grant")
			return
		}
		next := ""
		if s.rotate {
			delete(s.refresh, rt)
			next = "rt-" + random()
			s.refresh[next] = user
		}
		s.issue(w, gt, user, next)
	default:
		s.fail(w, http.StatusBadRequest, "unsupported_grant_type")
	}
}

// issue answers with a new access token for user; s.mu is held.
func (s *Server) issue(w http.ResponseWriter, gt, user, refresh string) {
	at := "at-" + random()
	s.access[at] = grant{user: user, expires: time.Now().Add(s.lifetime)}
	s.issued[gt]++
	body := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int(s.lifetime.Seconds())}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (s *Server) fail(w http.ResponseWriter, status int, code string) {
	s.refused[code]++
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": "test server says " + code})
}

// introspect answers RFC 7662 (POST token=...) and the tokeninfo GET
// (?token=...) Dovecot asks first: {"active": true, "username": user} for a
// live token, {"active": false} for any other.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checked++
	g, ok := s.access[r.FormValue("token")]
	w.Header().Set("Content-Type", "application/json")
	if !ok || time.Now().After(g.expires) {
		_ = json.NewEncoder(w).Encode(map[string]any{"active": false})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "username": g.user})
}

func random() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ClientCredentials gets an access token for the app user directly, for
// tests that bypass package oauth.
func ClientCredentials(ctx context.Context, s *Server) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {s.ClientID}, "client_secret": {s.ClientSecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	return body.AccessToken, nil
}
