package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

const (
	guestToken = "guest-secret-token"
	agentToken = "agent-secret-token" // configured by its sha256 only
	adminToken = "admin-secret-token"
)

type bundle struct {
	backend *fakeBackend
	handler http.Handler
	logs    *syncBuffer
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func setup(t *testing.T, opts *Options) *bundle {
	t.Helper()
	b := &bundle{backend: newFakeBackend(), logs: &syncBuffer{}}
	sum := sha256.Sum256([]byte(agentToken))
	tokens := []Token{
		{Name: "viewer", Token: guestToken, Role: RoleGuest},
		{Name: "helpdesk", SHA256: hex.EncodeToString(sum[:]), Role: RoleAgent},
		{Name: "ops", Token: adminToken, Role: RoleAdmin},
		{Name: "broken", SHA256: "not-hex", Role: RoleAdmin}, // ignored, logged
	}
	if opts == nil {
		opts = &Options{}
	}
	opts.Logger = slog.New(slog.NewJSONHandler(b.logs, nil))
	if opts.Monitor == nil {
		opts.Monitor = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "monitor at "+r.URL.Path)
		})
	}
	if opts.Metrics == nil {
		opts.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "# metrics\n")
		})
	}
	b.handler = New(b.backend, tokens, opts)
	return b
}

func tokenFor(r Role) string {
	switch r {
	case RoleGuest:
		return guestToken
	case RoleAgent:
		return agentToken
	case RoleAdmin:
		return adminToken
	}
	return ""
}

// do sends a request as role (RoleNone sends no credentials).
func (b *bundle) do(t *testing.T, role Role, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	if tok := tokenFor(role); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	return rec
}

// decode parses a JSON answer into a generic value.
func decode(t *testing.T, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want application/json; body %s", ct, rec.Body)
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, rec.Body)
	}
	return v
}

func TestRolesPerEndpoint(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	endpoints := []struct {
		method, path string
		need         Role
		ok           int
	}{
		{"GET", "/healthz", RoleNone, 200},
		{"GET", "/readyz", RoleNone, 200},
		{"GET", "/metrics", RoleNone, 200},
		{"GET", "/api/v1/projects", RoleGuest, 200},
		{"GET", "/api/v1/projects/acme/tickets", RoleGuest, 200},
		{"GET", "/api/v1/projects/acme/tickets/1", RoleGuest, 200},
		{"GET", "/api/v1/projects/acme/tickets/1/attachments/3", RoleGuest, 200},
		{"GET", "/api/v1/projects/acme/inbound", RoleAgent, 200},
		{"GET", "/api/v1/deadletters", RoleAgent, 200},
		{"POST", "/api/v1/deadletters/9/retry", RoleAgent, 202},
		{"POST", "/api/v1/deadletters/9/discard", RoleAgent, 200},
		{"POST", "/api/v1/projects/acme/tickets/1/close", RoleAgent, 200},
		{"POST", "/api/v1/projects/acme/tickets/1/reopen", RoleAgent, 200},
		{"GET", "/monitor/", RoleAdmin, 200},
		{"GET", "/monitor/queues/default", RoleAdmin, 200},
	}
	for _, ep := range endpoints {
		for _, role := range []Role{RoleNone, RoleGuest, RoleAgent, RoleAdmin} {
			want := ep.ok
			switch {
			case ep.need == RoleNone || role >= ep.need:
			case role == RoleNone:
				want = http.StatusUnauthorized
			default:
				want = http.StatusForbidden
			}
			t.Run(fmt.Sprintf("%s %s as %s", ep.method, ep.path, role), func(t *testing.T) {
				rec := b.do(t, role, ep.method, ep.path)
				if rec.Code != want {
					t.Fatalf("status = %d, want %d; body %s", rec.Code, want, rec.Body)
				}
				if want == http.StatusUnauthorized {
					if got := rec.Header().Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="servicedesk"`) {
						t.Errorf("WWW-Authenticate = %q, want a Basic realm=\"servicedesk\" challenge", got)
					}
				}
			})
		}
	}
}

func TestErrorShape(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		role         Role
		method, path string
		broken       bool // backend fails every call
		status       int
		code         string
	}{
		{"no token", RoleNone, "GET", "/api/v1/projects", false, 401, "unauthorized"},
		{"guest on agent endpoint", RoleGuest, "GET", "/api/v1/deadletters", false, 403, "forbidden"},
		{"unknown ticket", RoleGuest, "GET", "/api/v1/projects/acme/tickets/99", false, 404, "not_found"},
		{"unknown project", RoleGuest, "GET", "/api/v1/projects/nope/tickets", false, 404, "not_found"},
		{"unknown attachment", RoleGuest, "GET", "/api/v1/projects/acme/tickets/1/attachments/77", false, 404, "not_found"},
		{"unknown dead letter", RoleAgent, "POST", "/api/v1/deadletters/77/retry", false, 404, "not_found"},
		{"unknown endpoint", RoleAgent, "GET", "/api/v2/whatever", false, 404, "not_found"},
		{"wrong method", RoleAgent, "DELETE", "/api/v1/deadletters", false, 405, "method_not_allowed"},
		{"ticket number not a number", RoleGuest, "GET", "/api/v1/projects/acme/tickets/abc", false, 400, "bad_request"},
		{"bad status filter", RoleGuest, "GET", "/api/v1/projects/acme/tickets?status=pending", false, 400, "bad_request"},
		{"bad outcome filter", RoleAgent, "GET", "/api/v1/projects/acme/inbound?outcome=lost", false, 400, "bad_request"},
		{"backend failure", RoleAgent, "GET", "/api/v1/deadletters", true, 500, "internal"},
		{"backend failure on ticket", RoleGuest, "GET", "/api/v1/projects/acme/tickets/1", true, 500, "internal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			if tt.broken {
				b.backend.err = errDatabaseDown
			}
			rec := b.do(t, tt.role, tt.method, tt.path)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			v := decode(t, rec)
			if len(v) != 1 {
				t.Errorf("error answer has keys %v, want only \"error\"", keys(v))
			}
			e, ok := v["error"].(map[string]any)
			if !ok {
				t.Fatalf(`answer %s has no "error" object`, rec.Body)
			}
			if e["code"] != tt.code {
				t.Errorf("error.code = %v, want %q", e["code"], tt.code)
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("error.message is empty, want a human-readable reason")
			}
			if tt.broken {
				if strings.Contains(rec.Body.String(), "hunter2") || strings.Contains(rec.Body.String(), "10.0.0.5") {
					t.Errorf("internal error leaks the backend's error text: %s", rec.Body)
				}
				id := rec.Header().Get("X-Request-Id")
				if !strings.Contains(rec.Body.String(), id) {
					t.Errorf("internal error message %s does not name request id %q", rec.Body, id)
				}
				if logs := b.logs.String(); !strings.Contains(logs, "connection refused") || !strings.Contains(logs, id) {
					t.Errorf("backend error not logged with request id %q; logs:\n%s", id, logs)
				}
			}
		})
	}
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestPagination(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		query    string
		wantNums []float64
		wantNext any // float64 page or nil
	}{
		{"default page holds all", "", []float64{3, 2, 1}, nil},
		{"first of two pages", "?per_page=2", []float64{3, 2}, float64(2)},
		{"last page", "?per_page=2&page=2", []float64{1}, nil},
		{"past the end", "?per_page=2&page=5", []float64{}, nil},
		{"filter by status", "?status=closed", []float64{3}, nil},
		{"largest page", "?per_page=1000", []float64{3, 2, 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			rec := b.do(t, RoleGuest, "GET", "/api/v1/projects/acme/tickets"+tt.query)
			if rec.Code != 200 {
				t.Fatalf("status = %d, want 200; body %s", rec.Code, rec.Body)
			}
			v := decode(t, rec)
			next, present := v["next_page"]
			if !present {
				t.Fatalf(`answer %s has no "next_page" (want it even when null)`, rec.Body)
			}
			if next != tt.wantNext {
				t.Errorf("next_page = %v, want %v", next, tt.wantNext)
			}
			list, ok := v["tickets"].([]any)
			if !ok {
				t.Fatalf(`"tickets" = %v, want a list (never null)`, v["tickets"])
			}
			var nums []float64
			for _, it := range list {
				nums = append(nums, it.(map[string]any)["number"].(float64))
			}
			if fmt.Sprint(nums) != fmt.Sprint(tt.wantNums) {
				t.Errorf("ticket numbers = %v, want %v", nums, tt.wantNums)
			}
		})
	}

	t.Run("defaults reach the backend", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		if rec := b.do(t, RoleAgent, "GET", "/api/v1/deadletters"); rec.Code != 200 {
			t.Fatalf("status = %d, want 200", rec.Code)
		}
		if want := (Page{Page: 1, PerPage: 50}); b.backend.lastPage != want {
			t.Errorf("backend got page %+v, want %+v", b.backend.lastPage, want)
		}
	})

	t.Run("every list has next_page", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		for path, name := range map[string]string{
			"/api/v1/projects?per_page=1":                     "projects",
			"/api/v1/projects/acme/inbound?per_page=1":        "inbound",
			"/api/v1/deadletters?per_page=1":                  "deadletters",
			"/api/v1/projects/acme/tickets?per_page=1":        "tickets",
			"/api/v1/projects/acme/inbound?outcome=bounce":    "inbound",
			"/api/v1/projects/empty/tickets?status=open":      "tickets",
			"/api/v1/projects/acme/inbound?page=2&per_page=1": "inbound",
		} {
			rec := b.do(t, RoleAgent, "GET", path)
			v := decode(t, rec)
			if _, ok := v[name].([]any); !ok {
				t.Errorf("%s: %q = %v, want a list", path, name, v[name])
			}
			if _, ok := v["next_page"]; !ok {
				t.Errorf("%s: no next_page in %s", path, rec.Body)
			}
		}
		if rec := b.do(t, RoleAgent, "GET", "/api/v1/projects?per_page=1"); !strings.Contains(rec.Body.String(), `"next_page":2`) {
			t.Errorf("projects page 1 of 2: %s, want next_page 2", rec.Body)
		}
	})
}

func TestPerPageBounds(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		query  string
		status int
	}{
		{"per_page=1", 200},
		{"per_page=1000", 200},
		{"per_page=0", 400},
		{"per_page=1001", 400},
		{"per_page=-5", 400},
		{"per_page=ten", 400},
		{"page=0", 400},
		{"page=-1", 400},
		{"page=x", 400},
		{"page=3", 200},
	}
	for _, tt := range tests {
		for _, path := range []string{"/api/v1/projects", "/api/v1/projects/acme/tickets", "/api/v1/projects/acme/inbound", "/api/v1/deadletters"} {
			t.Run(path+"?"+tt.query, func(t *testing.T) {
				rec := b.do(t, RoleAgent, "GET", path+"?"+tt.query)
				if rec.Code != tt.status {
					t.Errorf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
				}
			})
		}
	}
}

// strings walks a decoded JSON value and calls fn with the path and value
// of every string in it, keys included.
func walkStrings(path string, v any, fn func(path, s string)) {
	switch v := v.(type) {
	case string:
		fn(path, v)
	case []any:
		for i, e := range v {
			walkStrings(fmt.Sprintf("%s[%d]", path, i), e, fn)
		}
	case map[string]any:
		for k, e := range v {
			fn(path+".(key)", k)
			walkStrings(path+"."+k, e, fn)
		}
	}
}

func TestRedactionByRole(t *testing.T) {
	t.Parallel()
	paths := []string{
		"/api/v1/projects",
		"/api/v1/projects/acme/tickets",
		"/api/v1/projects/acme/tickets/1",
		"/api/v1/projects/acme/inbound",
		"/api/v1/deadletters",
	}
	for _, role := range []Role{RoleGuest, RoleAgent, RoleAdmin} {
		for _, path := range paths {
			t.Run(role.String()+" "+path, func(t *testing.T) {
				t.Parallel()
				b := setup(t, nil)
				b.backend.mu.Lock()
				b.backend.inbound = b.backend.inbound[:1] // keep it small and readable
				b.backend.mu.Unlock()
				// Agents may read everything; for a guest, show the
				// ledger and dead letters the same way (as if allowed) by
				// asking as agent and redacting: the one code path.
				rec := b.do(t, max(role, RoleAgent), "GET", path)
				if rec.Code != 200 {
					t.Fatalf("status = %d, want 200: %s", rec.Code, rec.Body)
				}
				body := rec.Body.Bytes()
				if role == RoleGuest {
					if strings.Contains(path, "inbound") || strings.Contains(path, "deadletters") {
						body = Redact(body)
					} else {
						rec = b.do(t, RoleGuest, "GET", path)
						body = rec.Body.Bytes()
					}
				}
				var v any
				if err := json.Unmarshal(body, &v); err != nil {
					t.Fatalf("not JSON: %v: %s", err, body)
				}
				seen := map[string]bool{}
				walkStrings("$", v, func(p, s string) {
					for _, a := range knownAddresses {
						if strings.Contains(s, a) {
							seen[a] = true
							if role == RoleGuest {
								t.Errorf("guest sees full address %q at %s = %q", a, p, s)
							}
						}
					}
				})
				if role != RoleGuest && len(seen) == 0 {
					t.Errorf("%s sees no address at all in %s; want them in full", role, body)
				}
			})
		}
	}

	t.Run("guest ticket fields one by one", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		v := decode(t, b.do(t, RoleGuest, "GET", "/api/v1/projects/acme/tickets/1"))
		msgs := v["messages"].([]any)
		m0 := msgs[0].(map[string]any)
		checks := []struct {
			field string
			got   any
			want  any
		}{
			{"requester", v["requester"], "al***@cu***.test"},
			{"subject", v["subject"], "Printer on fire (al***@cu***.test)"},
			{"participants", fmt.Sprint(v["participants"]), "[ca***@pa***.test r.***@ma***.test]"},
			{"messages[0].from", m0["from"], "Alice <al***@cu***.test>"},
			{"messages[0].to", fmt.Sprint(m0["to"]), "[su***@ex***.test]"},
			{"messages[0].cc", fmt.Sprint(m0["cc"]), "[ca***@pa***.test]"},
			{"messages[0].text", m0["text"], "Hi,\nplease also write to \"r.***@ma***.test\".\n-- al***@cu***.test"},
			{"messages[0].html", m0["html"], `<p>Hi, <a href="mailto:al***@cu***.test">me</a></p>`},
			{"messages[0].message_id", m0["message_id"], "<ab***@cu***.test>"},
			{"messages[0].attachments[1].filename", m0["attachments"].([]any)[1].(map[string]any)["filename"], "Übersicht al***@cu***.csv"},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("guest %s = %q, want %q", c.field, c.got, c.want)
			}
		}
	})

	t.Run("agent sees addresses in full", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		v := decode(t, b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/tickets/1"))
		if v["requester"] != "alice@customer.test" {
			t.Errorf("agent requester = %v, want alice@customer.test", v["requester"])
		}
		if got := fmt.Sprint(v["participants"]); got != "[carol@partner.test r.eve@mail.partner.test]" {
			t.Errorf("agent participants = %s", got)
		}
	})
}

func TestTicketJSONShape(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	ticketKeys := "created_at messages number participants project ref requester status subject updated_at"
	messageKeys := "attachments cc created_at direction from html id internal kind message_id subject text to"
	tests := []struct {
		name   string
		number int
		check  func(t *testing.T, v map[string]any)
	}{
		{"full ticket", 1, func(t *testing.T, v map[string]any) {
			if got := sortedKeys(v); got != ticketKeys {
				t.Errorf("ticket keys = %s, want %s", got, ticketKeys)
			}
			m := v["messages"].([]any)[0].(map[string]any)
			if got := sortedKeys(m); got != messageKeys {
				t.Errorf("message keys = %s, want %s", got, messageKeys)
			}
			a := m["attachments"].([]any)[0].(map[string]any)
			if got, want := sortedKeys(a), "content_type filename id sha256 size"; got != want {
				t.Errorf("attachment keys = %s, want %s", got, want)
			}
			if v["ref"] != "acme#1" || v["status"] != "open" || v["created_at"] != "2026-03-01T10:00:00Z" {
				t.Errorf("ref/status/created_at = %v/%v/%v", v["ref"], v["status"], v["created_at"])
			}
		}},
		{"nil slices become []", 2, func(t *testing.T, v map[string]any) {
			if s, ok := v["participants"].([]any); !ok || len(s) != 0 {
				t.Errorf("participants = %#v, want []", v["participants"])
			}
			m := v["messages"].([]any)[0].(map[string]any)
			for _, f := range []string{"to", "cc", "attachments"} {
				if s, ok := m[f].([]any); !ok || len(s) != 0 {
					t.Errorf("messages[0].%s = %#v, want []", f, m[f])
				}
			}
		}},
		{"no messages gives []", 3, func(t *testing.T, v map[string]any) {
			if s, ok := v["messages"].([]any); !ok || len(s) != 0 {
				t.Errorf("messages = %#v, want []", v["messages"])
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := b.do(t, RoleAgent, "GET", fmt.Sprintf("/api/v1/projects/acme/tickets/%d", tt.number))
			if rec.Code != 200 {
				t.Fatalf("status = %d, want 200: %s", rec.Code, rec.Body)
			}
			tt.check(t, decode(t, rec))
		})
	}

	t.Run("list omits messages, keeps participants", func(t *testing.T) {
		v := decode(t, b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/tickets"))
		for i, it := range v["tickets"].([]any) {
			tk := it.(map[string]any)
			if _, ok := tk["participants"].([]any); !ok {
				t.Errorf("tickets[%d].participants = %#v, want a list", i, tk["participants"])
			}
			if _, ok := tk["messages"]; ok {
				t.Errorf("tickets[%d] has messages in a list answer", i)
			}
		}
	})

	t.Run("projects carry key, name, address only", func(t *testing.T) {
		v := decode(t, b.do(t, RoleAgent, "GET", "/api/v1/projects"))
		p := v["projects"].([]any)[0].(map[string]any)
		if got := sortedKeys(p); got != "address key name" {
			t.Errorf("project keys = %s, want address key name", got)
		}
	})
}

func sortedKeys(m map[string]any) string {
	ks := keys(m)
	for i := range ks {
		for j := i + 1; j < len(ks); j++ {
			if ks[j] < ks[i] {
				ks[i], ks[j] = ks[j], ks[i]
			}
		}
	}
	return strings.Join(ks, " ")
}

func TestCredentials(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		name   string
		set    func(r *http.Request)
		status int
	}{
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+agentToken) }, 200},
		{"bearer scheme any case", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+agentToken) }, 200},
		{"basic with token as password", func(r *http.Request) { r.SetBasicAuth("anyone", agentToken) }, 200},
		{"basic with empty user", func(r *http.Request) { r.SetBasicAuth("", adminToken) }, 200},
		{"sha256-configured token used as itself", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+agentToken) }, 200},
		{"the sha256 is not a token", func(r *http.Request) {
			sum := sha256.Sum256([]byte(agentToken))
			r.Header.Set("Authorization", "Bearer "+hex.EncodeToString(sum[:]))
		}, 401},
		{"basic with token as user name", func(r *http.Request) { r.SetBasicAuth(agentToken, "") }, 401},
		{"wrong bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
		{"token prefix", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+agentToken[:5]) }, 401},
		{"empty bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer ") }, 401},
		{"unknown scheme", func(r *http.Request) { r.Header.Set("Authorization", "Token "+agentToken) }, 401},
		{"broken sha256 entry does not match", func(r *http.Request) { r.Header.Set("Authorization", "Bearer not-hex") }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", "/api/v1/deadletters", nil)
			tt.set(req)
			rec := httptest.NewRecorder()
			b.handler.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
		})
	}
	if logs := b.logs.String(); !strings.Contains(logs, "broken") || !strings.Contains(logs, "ignoring API token") {
		t.Errorf("a token with a bad sha256 was not logged at construction; logs:\n%s", logs)
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Role
		wantErr bool
	}{
		{"guest", RoleGuest, false},
		{"Agent", RoleAgent, false},
		{" admin ", RoleAdmin, false},
		{"", RoleNone, true},
		{"root", RoleNone, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseRole(tt.in)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("ParseRole(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return fmt.Errorf("dial redis 10.0.0.9:6379: refused") }
	tests := []struct {
		name       string
		ready      []func(context.Context) error
		pingErr    error
		hang       bool
		status     int
		wantFailed []any
	}{
		{"all ok", []func(context.Context) error{ok}, nil, false, 200, nil},
		{"redis fails", []func(context.Context) error{fail}, nil, false, 503, []any{"redis"}},
		{"database fails", []func(context.Context) error{ok}, errDatabaseDown, false, 503, []any{"database"}},
		{"redis hangs ignoring ctx", nil, nil, true, 503, []any{"redis"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ready := tt.ready
			if tt.hang {
				release := make(chan struct{})
				t.Cleanup(func() { close(release) })
				ready = []func(context.Context) error{func(context.Context) error { <-release; return nil }}
			}
			b := setup(t, &Options{Ready: ready, ReadyNames: []string{"redis"}})
			b.backend.pingErr = tt.pingErr
			start := time.Now()
			rec := b.do(t, RoleNone, "GET", "/readyz")
			// The checks time out after 1s; 3s leaves a loaded machine
			// room and still catches a probe that waits for the hang.
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("readyz took %v, want at most ~1s (its checks time out after 1s)", took)
			}
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.status, rec.Body)
			}
			v := decode(t, rec)
			if tt.status == 200 {
				if v["status"] != "ok" {
					t.Errorf("status field = %v, want ok", v["status"])
				}
				return
			}
			if fmt.Sprint(v["failed"]) != fmt.Sprint(tt.wantFailed) {
				t.Errorf("failed = %v, want %v", v["failed"], tt.wantFailed)
			}
			if strings.Contains(rec.Body.String(), "10.0.0") {
				t.Errorf("readyz leaks error details to an anonymous caller: %s", rec.Body)
			}
			if tt.hang && v["checks"].(map[string]any)["redis"] != "timeout" {
				t.Errorf("hanging check reported as %v, want timeout", v["checks"])
			}
		})
	}

	t.Run("healthz", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		rec := b.do(t, RoleNone, "GET", "/healthz")
		if rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"ok"}` {
			t.Errorf("healthz = %d %s, want 200 {\"status\":\"ok\"}", rec.Code, rec.Body)
		}
	})
}

func TestAttachmentDownload(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	tests := []struct {
		name        string
		role        Role
		id          int
		contentType string
		disposition string
		body        string
	}{
		{"ascii name", RoleGuest, 3, "application/pdf", `attachment; filename="report.pdf"`, "%PDF-1.4 fake"},
		{"utf-8 name for agent", RoleAgent, 4, "text/csv; charset=utf-8",
			`attachment; filename="_bersicht alice@customer.test.csv"; filename*=UTF-8''%C3%9Cbersicht%20alice%40customer.test.csv`,
			"name,mail\nalice,alice@customer.test\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := b.do(t, tt.role, "GET", fmt.Sprintf("/api/v1/projects/acme/tickets/1/attachments/%d", tt.id))
			if rec.Code != 200 {
				t.Fatalf("status = %d, want 200: %s", rec.Code, rec.Body)
			}
			h := rec.Header()
			for _, c := range []struct{ header, want string }{
				{"Content-Type", tt.contentType},
				{"Content-Disposition", tt.disposition},
				{"X-Content-Type-Options", "nosniff"},
				{"Content-Length", fmt.Sprint(len(tt.body))},
			} {
				if got := h.Get(c.header); got != c.want {
					t.Errorf("%s = %q, want %q", c.header, got, c.want)
				}
			}
			if rec.Body.String() != tt.body {
				t.Errorf("body = %q, want the file %q unchanged", rec.Body, tt.body)
			}
		})
	}
}

func TestContentDisposition(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"plain", "a.txt", `attachment; filename="a.txt"`},
		{"quote and semicolon", `x";y.txt`, `attachment; filename="x_;y.txt"; filename*=UTF-8''x%22%3By.txt`},
		{"path separators", "../../etc/passwd", `attachment; filename=".._.._etc_passwd"`},
		{"control chars", "a\r\nb.txt", `attachment; filename="a__b.txt"`},
		{"empty", "", `attachment; filename="attachment"`},
		{"non-ascii", "résumé.pdf", `attachment; filename="r_sum_.pdf"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ContentDisposition(tt.in); got != tt.want {
				t.Errorf("ContentDisposition(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestDeadLetterActions(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	rec := b.do(t, RoleAgent, "POST", "/api/v1/deadletters/9/retry")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("retry status = %d, want 202: %s", rec.Code, rec.Body)
	}
	rec = b.do(t, RoleAgent, "POST", "/api/v1/deadletters/9/discard")
	if rec.Code != http.StatusOK {
		t.Fatalf("discard status = %d, want 200: %s", rec.Code, rec.Body)
	}
	if fmt.Sprint(b.backend.retried, b.backend.discarded) != "[9] [9]" {
		t.Errorf("backend retried %v, discarded %v; want [9] and [9]", b.backend.retried, b.backend.discarded)
	}
	if rec := b.do(t, RoleAgent, "POST", "/api/v1/deadletters/0/retry"); rec.Code != 400 {
		t.Errorf("retry of id 0: status %d, want 400", rec.Code)
	}
}

func TestFiltersReachBackend(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.do(t, RoleGuest, "GET", "/api/v1/projects/acme/tickets?status=open&page=2&per_page=7")
	if want := (TicketQuery{Project: "acme", Status: "open", Page: Page{Page: 2, PerPage: 7}}); b.backend.lastTickets != want {
		t.Errorf("tickets query = %+v, want %+v", b.backend.lastTickets, want)
	}
	b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/inbound?outcome=failed")
	if want := (InboundQuery{Project: "acme", Outcome: "failed", Page: Page{Page: 1, PerPage: 50}}); b.backend.lastInbound != want {
		t.Errorf("inbound query = %+v, want %+v", b.backend.lastInbound, want)
	}
	b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/inbound?after=41&per_page=10")
	if want := (InboundQuery{Project: "acme", Page: Page{PerPage: 10, After: 41}}); b.backend.lastInbound != want {
		t.Errorf("inbound query by cursor = %+v, want %+v", b.backend.lastInbound, want)
	}
	for _, bad := range []string{"0", "-1", "x", "99999999999999999999"} {
		if rec := b.do(t, RoleAgent, "GET", "/api/v1/projects/acme/inbound?after="+bad); rec.Code != http.StatusBadRequest {
			t.Errorf("after=%s: status %d, want 400", bad, rec.Code)
		}
	}
}

func TestListAnswerCarriesTheKeysetCursor(t *testing.T) {
	t.Parallel()
	ts := []ticket.Ticket{{ID: 7, Number: 3}, {ID: 5, Number: 2}}
	body, err := json.Marshal(ListJSON("tickets", ts, 1, true))
	if err != nil || !strings.Contains(string(body), `"next_after":5`) || !strings.Contains(string(body), `"next_page":2`) {
		t.Errorf("a page with more after it: %s (%v), want next_after 5 and next_page 2", body, err)
	}
	body, _ = json.Marshal(ListJSON("tickets", ts, 1, false))
	if !strings.Contains(string(body), `"next_after":null`) {
		t.Errorf("the last page: %s, want next_after null", body)
	}
}

func TestRequestLog(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	req := httptest.NewRequest("GET", "/api/v1/projects/acme/tickets/1?x=1", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Request-Id", "req-42")
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	if got := rec.Header().Get("X-Request-Id"); got != "req-42" {
		t.Errorf("X-Request-Id = %q, want the caller's req-42", got)
	}
	var entry map[string]any
	for line := range strings.Lines(b.logs.String()) {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == "http request" && e["request_id"] == "req-42" {
			entry = e
		}
	}
	if entry == nil {
		t.Fatalf("no request log line with request_id req-42; logs:\n%s", b.logs)
	}
	for k, want := range map[string]any{"method": "GET", "path": "/api/v1/projects/acme/tickets/1", "status": float64(200), "token": "ops"} {
		if entry[k] != want {
			t.Errorf("log %s = %v, want %v", k, entry[k], want)
		}
	}
	if _, ok := entry["duration"]; !ok {
		t.Errorf("log line has no duration: %v", entry)
	}
	if strings.Contains(b.logs.String(), adminToken) {
		t.Errorf("logs contain the token itself:\n%s", b.logs)
	}

	t.Run("generated id when missing or unsafe", func(t *testing.T) {
		for _, in := range []string{"", "bad id\nwith newline", strings.Repeat("a", 65)} {
			req := httptest.NewRequest("GET", "/healthz", nil)
			req.Header.Set("X-Request-Id", in)
			rec := httptest.NewRecorder()
			b.handler.ServeHTTP(rec, req)
			got := rec.Header().Get("X-Request-Id")
			if got == "" || got == in {
				t.Errorf("X-Request-Id for %q = %q, want a fresh generated id", in, got)
			}
		}
	})
}
