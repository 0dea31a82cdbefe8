package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
mail:
  reply_key_secret: 0123456789abcdef0123
projects:
  - key: acme
    address: Support@Example.test
    imap: {host: 127.0.0.1, password: imap-secret}
    smtp: {host: 127.0.0.1}
`

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatalf("Parse(minimal) = %v", err)
	}
	p := c.Projects[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"redis url", c.Redis.URL, "redis://127.0.0.1:6379/0"},
		{"database url", c.Database.URL, "sqlite://./servicedesk.db"},
		{"listen", c.HTTP.Listen, "127.0.0.1:8080"},
		{"max message size", c.Limits.MaxMessageSize, Size(25 << 20)},
		{"max attachments", c.Limits.MaxAttachmentsSize, Size(10 << 20)},
		{"address lower-cased", p.Address, "support@example.test"},
		{"name from key", p.Name, "acme"},
		{"imap security", p.IMAP.Security, "tls"},
		{"imap port for tls", p.IMAP.Port, 993},
		{"imap username from address", p.IMAP.Username, "support@example.test"},
		{"folder", p.IMAP.Folder, "INBOX"},
		{"poll interval", p.IMAP.PollInterval.D(), 30 * time.Second},
		{"after processing", p.IMAP.AfterProcessing, "seen"},
		{"smtp security", p.SMTP.Security, "starttls"},
		{"smtp port for starttls", p.SMTP.Port, 587},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v; want %v", c.name, c.got, c.want)
		}
	}
}

func TestEnvOverridesAndSecretFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "smtp-pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{
		"SERVICEDESK_REDIS_URL=redis://10.0.0.9:6380/2",
		"SERVICEDESK_HTTP_PUBLIC_URL=https://desk.example.com/",
		"SERVICEDESK_PROJECTS_0_IMAP_POLL_INTERVAL=5s",
		"SERVICEDESK_PROJECTS_0_SMTP_USERNAME=sender",
		"SERVICEDESK_PROJECTS_0_SMTP_PASSWORD_FILE=" + pwFile,
		"SERVICEDESK_LIMITS_MAX_MESSAGE_SIZE=1MB",
		"UNRELATED=1",
	}
	c, err := Parse([]byte(minimal), env)
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	p := c.Projects[0]
	if c.Redis.URL != "redis://10.0.0.9:6380/2" || c.HTTP.PublicURL != "https://desk.example.com" ||
		p.IMAP.PollInterval.D() != 5*time.Second || p.SMTP.Username != "sender" ||
		p.SMTP.Password != "from-file" || c.Limits.MaxMessageSize != 1<<20 {
		t.Fatalf("overrides not applied: redis=%q public=%q poll=%s smtp user=%q pw=%q max=%d",
			c.Redis.URL, c.HTTP.PublicURL, p.IMAP.PollInterval, p.SMTP.Username, p.SMTP.Password, c.Limits.MaxMessageSize)
	}
}

func TestInvalidConfigSaysWhatIsWrong(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", minimal + "\nbogus: 1\n", "field bogus not found"},
		{"missing secret", strings.Replace(minimal, "reply_key_secret: 0123456789abcdef0123", "reply_key_secret: short", 1), "mail.reply_key_secret"},
		{"bad key", strings.Replace(minimal, "key: acme", "key: Acme!", 1), `projects[0].key "Acme!"`},
		{"bad security", strings.Replace(minimal, "host: 127.0.0.1, password", "host: 127.0.0.1, security: ssl, password", 1), "imap.security"},
		{"bad duration", strings.Replace(minimal, "password: imap-secret}", "password: imap-secret, poll_interval: often}", 1), "duration"},
		{"no projects", "mail: {reply_key_secret: 0123456789abcdef0123}\n", "at least one project"},
		{"bad token role", minimal + "http:\n  tokens: [{name: x, token: t, role: root}]\n", `role "root"`},
		{"unknown template kind", minimal + "    templates: {thanks: {text: hi}}\n", "templates.thanks: unknown kind"},
		{"template without text", minimal + "    templates: {thank_you: {html: <p>hi</p>}}\n", "templates.thank_you.text: required"},
		{"dkim without key", minimal + "    dkim: {domain: example.test, selector: s1}\n", ".dkim: domain, selector and private_key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.yaml), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v; want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"1234": 1234, "512KB": 512 << 10, "25MB": 25 << 20, "1 GiB": 1 << 30, "10mb": 10 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := ParseSize("lots"); err == nil {
		t.Error(`ParseSize("lots") accepted`)
	}
}
