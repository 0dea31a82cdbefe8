package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// monitorStub stands in for asynqmon and records the requests it got.
type monitorStub struct {
	mu    sync.Mutex
	calls []string
}

func (m *monitorStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	m.calls = append(m.calls, r.Method+" "+r.URL.Path)
	m.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (m *monitorStub) called() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.calls...)
}

func TestCrossOriginRequests(t *testing.T) {
	t.Parallel()
	const (
		closeTicket = "/api/v1/projects/acme/tickets/1/close"
		pauseQueue  = "/monitor/api/queues/default:pause"
		deleteTask  = "/monitor/api/queues/default/archived_tasks/abc"
		self        = "http://example.com" // httptest.NewRequest's Host
		public      = "https://desk.example.com"
	)
	tests := []struct {
		name         string
		method, path string
		basic        bool // credentials as a browser sends them; else Bearer
		role         Role
		headers      map[string]string
		status       int
		code         string
	}{
		{"cross-site form closes a ticket", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"foreign Origin, old browser without Sec-Fetch-Site", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": "https://evil.test"}, 403, "csrf"},
		{"Sec-Fetch-Site cross-site without Origin", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"same-site but another origin", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": "https://other.example.com", "Sec-Fetch-Site": "same-site"}, 403, "csrf"},
		{"cross-site note", "POST", "/api/v1/projects/acme/tickets/1/notes", true, RoleAgent,
			map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"cross-site dead letter retry", "POST", "/api/v1/deadletters/9/retry", true, RoleAgent,
			map[string]string{"Origin": "https://evil.test"}, 403, "csrf"},
		{"cross-site monitor pause", "POST", pauseQueue, true, RoleAdmin,
			map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"cross-site monitor delete", "DELETE", deleteTask, true, RoleAdmin,
			map[string]string{"Origin": "https://evil.test"}, 403, "csrf"},
		{"cross-site monitor patch", "PATCH", pauseQueue, true, RoleAdmin,
			map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "csrf"},
		{"cross-site without credentials is refused before auth", "POST", closeTicket, false, RoleNone,
			map[string]string{"Origin": "https://evil.test"}, 403, "csrf"},

		{"same-origin browser request", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin"}, 200, ""},
		{"same-origin by Origin only (old browser)", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": self}, 200, ""},
		{"Sec-Fetch-Site none (typed by the user)", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Sec-Fetch-Site": "none"}, 200, ""},
		{"trusted public origin through a proxy", "POST", closeTicket, true, RoleAgent,
			map[string]string{"Origin": public, "Sec-Fetch-Site": "same-site"}, 200, ""},
		{"same-origin monitor pause", "POST", pauseQueue, true, RoleAdmin,
			map[string]string{"Origin": self, "Sec-Fetch-Site": "same-origin"}, 204, ""},
		{"script with Bearer and no browser headers", "POST", closeTicket, false, RoleAgent, nil, 200, ""},
		{"script pausing a queue with Bearer", "POST", pauseQueue, false, RoleAdmin, nil, 204, ""},
		{"cross-site GET is safe", "GET", "/api/v1/projects", true, RoleGuest,
			map[string]string{"Origin": "https://evil.test", "Sec-Fetch-Site": "cross-site"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mon := &monitorStub{}
			b := setup(t, &Options{Monitor: mon, TrustedOrigins: []string{public + "/desk/"}})
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tok := tokenFor(tt.role); tok != "" {
				if tt.basic {
					req.SetBasicAuth("", tok)
				} else {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
			}
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			b.handler.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code == "" {
				return
			}
			e, _ := decode(t, rec)["error"].(map[string]any)
			if e["code"] != tt.code {
				t.Errorf("error = %v, want code %q", e, tt.code)
			}
			if calls := mon.called(); len(calls) > 0 {
				t.Errorf("the monitor was reached: %v", calls)
			}
			b.backend.mu.Lock()
			defer b.backend.mu.Unlock()
			if b.backend.statusCalls+len(b.backend.notes)+len(b.backend.retried) > 0 {
				t.Errorf("the backend was changed by a refused request")
			}
		})
	}
}

func TestTrustedOriginProblemsAreLogged(t *testing.T) {
	t.Parallel()
	b := setup(t, &Options{TrustedOrigins: []string{"desk.example.com", "https://ok.example.com"}})
	if !strings.Contains(b.logs.String(), "ignoring trusted origin") {
		t.Errorf("no log of the unusable origin; logs:\n%s", b.logs)
	}
	req := httptest.NewRequest("POST", "/api/v1/projects/acme/tickets/1/close", nil)
	req.Header.Set("Authorization", "Bearer "+agentToken)
	req.Header.Set("Origin", "https://ok.example.com")
	rec := httptest.NewRecorder()
	b.handler.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Errorf("request from the usable trusted origin: status %d, want 200: %s", rec.Code, rec.Body)
	}
}
