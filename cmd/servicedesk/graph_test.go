package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/graph"
)

// miniGraph answers the two requests check makes of a Graph mailbox: the
// client credentials token
// (https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow)
// and the folder (https://learn.microsoft.com/en-us/graph/api/mailfolder-get).
func miniGraph(t *testing.T, folderStatus int) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/contoso.test/oauth2/v2.0/token":
			if r.FormValue("client_secret") != "right-hunter2" {
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(map[string]any{"error": "invalid_client",
					"error_description": "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 1"})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": "tok"})
		case r.URL.Path == "/v1.0/users/support@example.test/mailFolders/inbox" && r.Header.Get("Authorization") == "Bearer tok":
			w.WriteHeader(folderStatus)
			if folderStatus == http.StatusOK {
				_ = json.NewEncoder(w).Encode(map[string]any{"id": "AAMkInbox=", "displayName": "Inbox", "totalItemCount": 3})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": "ErrorAccessDenied",
				"message": "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."}})
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// check prints a line for the token and a line for the mailbox of a Graph
// desk, each failing with its own reason, and never the client secret.
func TestCheckGraphMailbox(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		secret       string
		folderStatus int
		want         []string
	}{
		{"all good", "right-hunter2", http.StatusOK,
			[]string{"ok    project acme graph token (tenant contoso.test)", "ok    project acme graph mailbox support@example.test Inbox"}},
		{"a wrong secret", "wrong-hunter2", http.StatusOK,
			[]string{"FAIL  project acme graph token (tenant contoso.test)", "401 invalid_client: AADSTS7000215: Invalid client secret provided.",
				"FAIL  project acme graph mailbox support@example.test Inbox not checked: no access token"}},
		{"no access to the mailbox", "right-hunter2", http.StatusForbidden,
			[]string{"ok    project acme graph token", "FAIL  project acme graph mailbox", "403 ErrorAccessDenied: Access to OData is disabled"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := miniGraph(t, tt.folderStatus)
			path := filepath.Join(t.TempDir(), "servicedesk.yaml")
			cfg := "database: {url: 'sqlite://" + filepath.Join(t.TempDir(), "desk.db") + "'}\n" +
				"redis: {url: 'redis://127.0.0.1:1/0'}\n" +
				`mail: {reply_key_secret: 0123456789abcdef0123456789abcdef}
log: {format: text}
projects:
  - key: acme
    address: support@example.test
    graph: {tenant_id: contoso.test, client_id: app-1, client_secret: ` + tt.secret + `,
            authority_url: '` + srv.URL + `', api_url: '` + srv.URL + `/v1.0'}
    smtp: {host: 127.0.0.1, port: 1, security: none}
`
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			run(t.Context(), []string{"--config", path, "check"}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			t.Logf("check:\n%s", stdout.String())
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("check output does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "hunter2") || strings.Contains(out, "project acme imap") {
				t.Errorf("check output shows the secret or checks IMAP:\n%s", out)
			}
		})
	}
}

// The fetcher's dialer opens a Graph mailbox for a project with graph:,
// and IMAP for one without.
func TestDialerChoosesGraphOrIMAP(t *testing.T) {
	t.Parallel()
	srv := miniGraph(t, http.StatusOK)
	c := &cli{cfg: &config.Config{}, log: slog.New(slog.DiscardHandler)}
	dial := c.dialer(nil)

	g := config.Graph{TenantID: "contoso.test", ClientID: "app-1", ClientSecret: "right-hunter2",
		User: "support@example.test", AuthorityURL: srv.URL, APIURL: srv.URL + "/v1.0"}
	mb, err := dial(t.Context(), config.Project{Key: "acme", Graph: g})
	if err != nil {
		t.Fatalf("dial a graph desk: %v", err)
	}
	if _, ok := mb.(*graph.Client); !ok {
		t.Fatalf("dial a graph desk = %T; want *graph.Client", mb)
	}
	if _, err := mb.Select(t.Context(), "Inbox"); err != nil {
		t.Fatalf("select Inbox: %v", err)
	}

	g.ClientSecret = "wrong-hunter2"
	if mb, err := dial(t.Context(), config.Project{Key: "acme", Graph: g}); err == nil || mb != nil {
		t.Fatalf("dial with a wrong secret = (%v, %v); want no mailbox and the error", mb, err)
	}

	imap := config.IMAP{Host: "127.0.0.1", Port: 1, Security: "none", Username: "support@example.test", Password: "pw"}
	_, err = dial(t.Context(), config.Project{Key: "acme", IMAP: imap})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("dial an imap desk = %v; want the IMAP connection error", err)
	}
}
