package main

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/graph"
	"github.com/servicedesk/servicedesk/internal/fakegraph"
	"github.com/servicedesk/servicedesk/jobs"
)

// check prints a line for the token and a line for the mailbox of a Graph
// desk, each failing with its own reason, and never the client secret.
func TestCheckGraphMailbox(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		secret  string // "" is the right one
		prepare func(*fakegraph.Server)
		want    []string
	}{
		{"all good", "", nil,
			[]string{"ok    project acme graph token (tenant contoso.onmicrosoft.com)", "ok    project acme graph mailbox support@contoso.test Inbox"}},
		{"a wrong secret", "wrong-hunter2", nil,
			[]string{"FAIL  project acme graph token (tenant contoso.onmicrosoft.com)", "401 invalid_client: AADSTS7000215: Invalid client secret provided.",
				"FAIL  project acme graph mailbox support@contoso.test Inbox not checked: no access token"}},
		{"no access to the mailbox", "", func(f *fakegraph.Server) {
			f.FailNext("GET", "/mailFolders/inbox", 1, http.StatusForbidden, "", "ErrorAccessDenied")
		}, []string{"ok    project acme graph token", "FAIL  project acme graph mailbox", "403 ErrorAccessDenied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fake := fakegraph.New(t)
			if tt.prepare != nil {
				tt.prepare(fake)
			}
			secret := fake.Secret
			if tt.secret != "" {
				secret = tt.secret
			}
			path := filepath.Join(t.TempDir(), "servicedesk.yaml")
			cfg := "database: {url: 'sqlite://" + filepath.Join(t.TempDir(), "desk.db") + "'}\n" +
				"redis: {url: 'redis://127.0.0.1:1/0'}\n" +
				`mail: {reply_key_secret: 0123456789abcdef0123456789abcdef}
log: {format: text}
projects:
  - key: acme
    address: ` + fake.User + `
    graph: {tenant_id: ` + fake.Tenant + `, client_id: ` + fake.ClientID + `, client_secret: ` + secret + `,
            authority_url: '` + fake.URL + `', api_url: '` + fake.URL + `/v1.0'}
    smtp: {host: 127.0.0.1, port: 1, security: none}
`
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			run(t.Context(), []string{"--config", path, "check"}, nil, &stdout, &stderr)
			out := stdout.String() + stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("check output does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "hunter2") || strings.Contains(out, fake.Secret) || strings.Contains(out, "project acme imap") {
				t.Errorf("check output shows a secret or checks IMAP:\n%s", out)
			}
		})
	}
}

// The fetcher's dialer opens a Graph mailbox for a project with graph:,
// and IMAP for one without.
func TestDialerChoosesGraphOrIMAP(t *testing.T) {
	t.Parallel()
	fake := fakegraph.New(t)
	c := &cli{cfg: &config.Config{}, log: slog.New(slog.DiscardHandler)}
	dial := c.dialer(nil, nil)

	g := config.Graph{TenantID: fake.Tenant, ClientID: fake.ClientID, ClientSecret: fake.Secret,
		User: fake.User, AuthorityURL: fake.URL, APIURL: fake.URL + "/v1.0"}
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

// A Graph desk's throttling is counted by project and status in
// servicedesk_graph_throttled_total: an operator sees Microsoft holding a
// mailbox back before fetches start failing.
func TestDialerCountsGraphThrottling(t *testing.T) {
	t.Parallel()
	fake := fakegraph.New(t)
	reg := prometheus.NewRegistry()
	c := &cli{cfg: &config.Config{}, log: slog.New(slog.DiscardHandler)}
	dial := c.dialer(nil, jobs.NewMetrics(reg))
	g := config.Graph{TenantID: fake.Tenant, ClientID: fake.ClientID, ClientSecret: fake.Secret,
		User: fake.User, AuthorityURL: fake.URL, APIURL: fake.URL + "/v1.0"}
	mb, err := dial(t.Context(), config.Project{Key: "acme", Graph: g})
	if err != nil {
		t.Fatalf("dial a graph desk: %v", err)
	}
	fake.FailNext("GET", "/mailFolders", 1, http.StatusTooManyRequests, "0", "TooManyRequests")
	if _, err := mb.Select(t.Context(), "Inbox"); err != nil {
		t.Fatalf("select Inbox after one 429: %v", err)
	}
	if got := counterValue(t, reg, "servicedesk_graph_throttled_total", "acme", "429"); got != 1 {
		t.Fatalf(`servicedesk_graph_throttled_total{project="acme",status="429"} = %v; want 1`, got)
	}
}

// counterValue is the value of a counter on reg by its label values, in
// the order of the labels' names.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, values ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, l := range m.GetLabel() {
				got = append(got, l.GetValue())
			}
			if slices.Equal(got, values) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v on the registry", name, values)
	return 0
}
