package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const graphDesk = `
mail:
  reply_key_secret: 0123456789abcdef0123
projects:
  - key: acme
    address: Support@Example.test
    graph: {tenant_id: contoso.onmicrosoft.com, client_id: 11111111-2222-3333-4444-555555555555, client_secret: graph-hunter2}
    smtp: {host: 127.0.0.1}
`

func TestGraphMailboxDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(graphDesk), nil)
	if err != nil {
		t.Fatalf("Parse(graph desk) = %v", err)
	}
	p := c.Projects[0]
	poll := p.Polling()
	checks := []struct {
		name      string
		got, want any
	}{
		{"graph is configured", p.Graph.Configured(), true},
		{"user from the address", p.Graph.User, "support@example.test"},
		{"folder", p.Graph.Folder, "Inbox"},
		{"token endpoint base", p.Graph.AuthorityURL, "https://login.microsoftonline.com"},
		{"api base", p.Graph.APIURL, "https://graph.microsoft.com/v1.0"},
		{"polling folder is graph's", poll.Folder, "Inbox"},
		{"polling interval", poll.PollInterval.D(), 30 * time.Second},
		{"polling after processing", poll.AfterProcessing, "seen"},
		{"polling processed folder", poll.ProcessedFolder, "Processed"},
		{"polling batch size", poll.BatchSize, 100},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
}

func TestIMAPPollingIsTheIMAPSection(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatalf("Parse(minimal) = %v", err)
	}
	p := c.Projects[0]
	if p.Graph.Configured() {
		t.Fatal("an imap desk reports a graph mailbox")
	}
	if got := p.Polling(); got.Folder != "INBOX" || got.BatchSize != 100 || got.AfterProcessing != "seen" {
		t.Fatalf("Polling() = %+v; want the imap section's defaults", got)
	}
}

func TestGraphSecretFromFileAndEnv(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	yaml := strings.Replace(graphDesk, "client_secret: graph-hunter2", "client_secret_file: "+file, 1)
	c, err := Parse([]byte(yaml), []string{"SERVICEDESK_PROJECTS_0_GRAPH_FOLDER=Inbox/Support"})
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	if g := c.Projects[0].Graph; g.ClientSecret != "from-file" || g.Folder != "Inbox/Support" {
		t.Fatalf("graph = secret %q folder %q; want the file's secret and the environment's folder", g.ClientSecret, g.Folder)
	}
	if !IsEnvKey("SERVICEDESK_PROJECTS_0_GRAPH_CLIENT_SECRET") {
		t.Error("SERVICEDESK_PROJECTS_0_GRAPH_CLIENT_SECRET is not an environment key")
	}
}

func TestInvalidGraphMailboxSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, from, to, want string
	}{
		{"imap and graph both", "smtp: {host: 127.0.0.1}", "imap: {host: h, password: p}\n    smtp: {host: 127.0.0.1}",
			"imap and graph are both set"},
		{"no tenant", "tenant_id: contoso.onmicrosoft.com, ", "", "graph.tenant_id: required"},
		{"no client", "client_id: 11111111-2222-3333-4444-555555555555, ", "", "graph.client_id: required"},
		{"no secret", ", client_secret: graph-hunter2", "", "graph.client_secret: required"},
		{"bad after_processing", "client_secret: graph-hunter2", "client_secret: graph-hunter2, after_processing: archive",
			`graph.after_processing "archive": want seen, move or delete`},
		{"bad api url", "client_secret: graph-hunter2", "client_secret: graph-hunter2, api_url: 'ftp://x'",
			`graph.api_url: unsupported scheme "ftp"`},
		{"tenant with a slash", "tenant_id: contoso.onmicrosoft.com", "tenant_id: a/b", "may not contain"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			yaml := strings.Replace(graphDesk, tt.from, tt.to, 1)
			_, err := Parse([]byte(yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse = %v; want an error saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error %q shows the client secret", err)
			}
		})
	}
}
