package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a token may do; each role includes the ones below it.
type Role int

const (
	RoleNone  Role = iota // no or invalid token
	RoleGuest             // read projects, tickets and attachments; addresses obfuscated
	RoleAgent             // also the inbound ledger and dead letters; addresses in full
	RoleAdmin             // also the asynq monitor
)

// ParseRole parses "guest", "agent" or "admin" (any case).
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "guest":
		return RoleGuest, nil
	case "agent":
		return RoleAgent, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("role %q: want admin, agent or guest", s)
}

// String gives the role's name as configured.
func (r Role) String() string {
	switch r {
	case RoleGuest:
		return "guest"
	case RoleAgent:
		return "agent"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Token is a configured API token. Set either Token or SHA256, the hex
// SHA-256 of the token, so that the token itself need not be stored.
type Token struct {
	Name   string // for logs; never the secret
	Token  string
	SHA256 string
	Role   Role
}

type credential struct {
	name string
	hash [sha256.Size]byte
	role Role
}

// credentials turns configured tokens into hashes; unusable entries are
// returned as problems for the caller to log, and left out.
func credentials(tokens []Token) ([]credential, []string) {
	var out []credential
	var problems []string
	for i, t := range tokens {
		c := credential{name: t.Name, role: t.Role}
		if c.name == "" {
			c.name = fmt.Sprintf("token%d", i+1)
		}
		switch {
		case t.Role <= RoleNone || t.Role > RoleAdmin:
			problems = append(problems, fmt.Sprintf("token %q: no valid role", c.name))
			continue
		case t.Token != "":
			c.hash = sha256.Sum256([]byte(t.Token))
		case t.SHA256 != "":
			b, err := hex.DecodeString(strings.TrimSpace(t.SHA256))
			if err != nil || len(b) != sha256.Size {
				problems = append(problems, fmt.Sprintf("token %q: sha256 must be 64 hex digits", c.name))
				continue
			}
			copy(c.hash[:], b)
		default:
			problems = append(problems, fmt.Sprintf("token %q: neither token nor sha256 set", c.name))
			continue
		}
		out = append(out, c)
	}
	return out, problems
}

// presented returns the token a request carries: "Authorization: Bearer T"
// or basic authentication with T as the password (any user name).
func presented(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if scheme, rest, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
		tok := strings.TrimSpace(rest)
		return tok, tok != ""
	}
	if _, pass, ok := r.BasicAuth(); ok && pass != "" {
		return pass, true
	}
	return "", false
}

// authenticate compares the presented token with every credential in
// constant time and returns the matching one.
func authenticate(creds []credential, token string) (credential, bool) {
	h := sha256.Sum256([]byte(token))
	var found credential
	ok := false
	for _, c := range creds {
		if subtle.ConstantTimeCompare(h[:], c.hash[:]) == 1 && !ok {
			found, ok = c, true
		}
	}
	return found, ok
}

// TokenName returns the configured name of the token that authenticated the
// request whose context ctx is ("token2" for an unnamed second token), or ""
// when there was none. Handlers behind New use it as the author of what the
// request writes; the secret itself is never passed on.
func TokenName(ctx context.Context) string {
	return infoFrom(ctx).token
}
