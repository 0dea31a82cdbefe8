package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPageBoundsOnEveryList(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	lists := []string{
		"/api/v1/projects",
		"/api/v1/projects/acme/tickets",
		"/api/v1/projects/acme/inbound",
		"/api/v1/deadletters",
	}
	tests := []struct {
		name, query string
		status      int
	}{
		{"largest int64", "page=9223372036854775807", 400},
		{"largest int64 with the largest page size", "page=9223372036854775807&per_page=1000", 400},
		{"past int64", "page=9223372036854775808", 400},
		{"page*per_page past int32", "page=2147484&per_page=1000", 400},
		{"one past the largest page", fmt.Sprintf("page=%d", MaxPage+1), 400},
		{"negative", "page=-1", 400},
		{"smallest int64", "page=-9223372036854775808", 400},
		{"zero", "page=0", 400},
		{"not a number", "page=two", 400},
		{"exponent", "page=1e3", 400},
		{"empty per_page is the default", "per_page=", 200},
		{"largest page, largest page size", fmt.Sprintf("page=%d&per_page=%d", MaxPage, MaxPerPage), 200},
		{"first page", "page=1", 200},
	}
	for _, path := range lists {
		for _, tt := range tests {
			t.Run(path+" "+tt.name, func(t *testing.T) {
				t.Parallel()
				rec := b.do(t, RoleAgent, "GET", path+"?"+tt.query)
				if rec.Code != tt.status {
					t.Fatalf("status = %d, want %d: %s", rec.Code, tt.status, rec.Body)
				}
				v := decode(t, rec)
				if tt.status == 400 {
					if e, _ := v["error"].(map[string]any); e["code"] != "bad_request" {
						t.Errorf("error = %v, want code bad_request", v["error"])
					}
					return
				}
				if _, ok := v["next_page"]; !ok {
					t.Errorf("answer has no next_page: %s", rec.Body)
				}
			})
		}
	}
}

// slowBody sends a first part, then waits, then the rest.
type slowBody struct {
	parts []string
	wait  time.Duration
}

func (s *slowBody) Read(p []byte) (int, error) {
	if len(s.parts) == 0 {
		return 0, io.EOF
	}
	if s.wait > 0 && len(s.parts) == 1 {
		time.Sleep(s.wait)
		s.wait = 0
	}
	n := copy(p, s.parts[0])
	s.parts[0] = s.parts[0][n:]
	if s.parts[0] == "" {
		s.parts = s.parts[1:]
	}
	return n, nil
}

// TestSlowRequestsOutliveServerTimeouts runs the handler in a real
// http.Server whose ReadTimeout and WriteTimeout are shorter than a note's
// upload and a monitor call: both still complete, because the handler
// extends their deadlines to SlowTimeout once the token is accepted.
func TestSlowRequestsOutliveServerTimeouts(t *testing.T) {
	t.Parallel()
	// short leaves the server room to reach the handler on a loaded machine;
	// slow is three times it.
	const short, slow = time.Second, 3 * time.Second
	mon := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slow)
		io.WriteString(w, "queues")
	})
	b := setup(t, &Options{Monitor: mon, SlowTimeout: 30 * time.Second})
	srv := httptest.NewUnstartedServer(b.handler)
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = short, short
	srv.Start()
	t.Cleanup(srv.Close)

	t.Run("the monitor holds a call past WriteTimeout", func(t *testing.T) {
		req, _ := http.NewRequest("GET", srv.URL+"/monitor/api/queues", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("monitor call: %v (want the answer after %s despite WriteTimeout %s)", err, slow, short)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "queues" {
			t.Fatalf("monitor call: %d %q %v, want 200 queues", resp.StatusCode, body, err)
		}
	})

	t.Run("a slow note upload passes ReadTimeout", func(t *testing.T) {
		ct, form := form(t, formPart{field: "text", data: "see the file"},
			formPart{field: "attachments", filename: "scan.pdf", contentType: "application/pdf", data: "%PDF-1.7 " + strings.Repeat("x", 1<<16)})
		whole := form.String()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/projects/acme/tickets/1/notes",
			&slowBody{parts: []string{whole[:len(whole)/2], whole[len(whole)/2:]}, wait: slow})
		req.ContentLength = int64(len(whole))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("Authorization", "Bearer "+agentToken)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("note upload: %v (want 202 after %s despite ReadTimeout %s)", err, slow, short)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			body, _ := io.ReadAll(resp.Body)
			t.Fatalf("note upload: status %d, want 202: %s", resp.StatusCode, body)
		}
	})
}
