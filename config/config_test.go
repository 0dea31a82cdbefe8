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
		{"automatic mail per project and hour", c.Limits.AutomaticMailPerHour, 1000},
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
		{"bad token role", minimal + "http:\n  tokens: [{name: x, token: 0123456789abcdef0123, role: root}]\n", `role "root"`},
		{"unknown template kind", minimal + "    templates: {thanks: {text: hi}}\n", "templates.thanks: unknown kind"},
		{"template without text", minimal + "    templates: {thank_you: {html: <p>hi</p>}}\n", "templates.thank_you.text: required"},
		{"negative mail ceiling", minimal + "limits: {automatic_mail_per_hour: -5}\n", "limits.automatic_mail_per_hour"},
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

// TestURLErrorsNeverEchoTheURL feeds database and Redis URLs that carry the
// password hunter2 and are wrong in every way the config can see: the
// error names the field and the problem, and holds no part of the value
// but a scheme.
func TestURLErrorsNeverEchoTheURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, field, url, want string
	}{
		{"libpq key=value string", "database", "host=db user=desk password=hunter2 dbname=desk",
			"database.url: not a URL (want sqlite://… or postgres://…)"},
		{"libpq string with ://", "database", "host=db password=hunter2://x", "database.url: not a URL"},
		{"unsupported scheme", "database", "mysql://desk:hunter2@db/desk", `database.url: unsupported scheme "mysql"`},
		{"password that breaks the URL", "database", "postgres://desk:hun/ter2@db/desk", "database.url: not a valid URL: invalid port after host"},
		{"bad escape", "database", "postgres://desk:hunter2%zz@db/desk", "database.url: not a valid URL: invalid %-escape"},
		{"bad host", "database", "postgres://desk:hunter2@d b/desk", "database.url: not a valid URL: invalid character in host name"},
		{"redis bad port", "redis", "redis://:hunter2@host:bad", "redis.url: not a valid URL: invalid port after host"},
		{"redis password that breaks the URL", "redis", "redis://u:hun/ter2@host", "redis.url: not a valid URL: invalid port after host"},
		{"redis without scheme", "redis", "hunter2@127.0.0.1:6379", "redis.url: not a URL"},
		{"redis unsupported scheme", "redis", "memcached://:hunter2@host", `redis.url: unsupported scheme "memcached"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for _, how := range []string{"yaml", "env"} {
				yml, env := minimal+tt.field+": {url: '"+tt.url+"'}\n", []string(nil)
				if how == "env" {
					yml, env = minimal, []string{"SERVICEDESK_" + strings.ToUpper(tt.field) + "_URL=" + tt.url}
				}
				_, err := Parse([]byte(yml), env)
				if err == nil {
					t.Fatalf("%s: Parse accepted %s.url", how, tt.field)
				}
				if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun/") || strings.Contains(err.Error(), "ter2") {
					t.Errorf("%s: error %q holds the password", how, err)
				}
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: error %q; want it to say %q", how, err, tt.want)
				}
			}
		})
	}
}

func TestURLsAccepted(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"database: {url: 'sqlite://./servicedesk.db'}",
		"database: {url: 'sqlite:///var/lib/desk/100%.db'}",
		"database: {url: 'sqlite://:memory:'}",
		"database: {url: 'postgres://desk:p%40ss@db:5432/desk?sslmode=disable'}",
		"database: {url: 'postgresql://db1,db2/desk'}",
		"redis: {url: 'rediss://user:pw@redis:6380/1'}",
		"redis: {url: 'redis-sentinel://:pw@h1:26379,h2:26379/0?master=m'}",
		"redis: {url: 'redis-cluster://h1:6379,h2:6379'}",
	} {
		if _, err := Parse([]byte(minimal+u+"\n"), nil); err != nil {
			t.Errorf("Parse(%s) = %v; want it accepted", u, err)
		}
	}
}

// TestYAMLErrorsDropValues: yaml.v3 quotes the start of a value it cannot
// decode; the message keeps the line and the types.
func TestYAMLErrorsDropValues(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(minimal+"http: {tokens: hunter2hunter2}\n"), nil)
	if err == nil || strings.Contains(err.Error(), "hunter") || !strings.Contains(err.Error(), "cannot unmarshal !!str into") {
		t.Fatalf("Parse error = %v; want the type error without the value", err)
	}
	_, err = Parse([]byte(minimal), []string{"SERVICEDESK_WORKER_CONCURRENCY=hunter2"})
	if err == nil || strings.Contains(err.Error(), "hunter") || !strings.Contains(err.Error(), "SERVICEDESK_WORKER_CONCURRENCY") {
		t.Fatalf("Parse error = %v; want the variable named without its value", err)
	}
}

func TestTokenLength(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("t0ken-in-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, tokens, want string // want "" means accepted
	}{
		{"short token", "[{name: ops, token: change-me, role: admin}]",
			"http.tokens[0] (ops): token is 9 characters; use at least 20 (e.g. openssl rand -hex 16)"},
		{"one character", "[{name: ops, token: x, role: admin}]", "token is 1 characters"},
		{"second token short", "[{name: ops, token: 0123456789abcdef0123, role: admin}, {name: bot, token: secret, role: agent}]",
			"http.tokens[1] (bot): token is 6 characters"},
		{"short token from a file", "[{name: ops, token_file: " + short + ", role: admin}]", "token is 15 characters"},
		{"19 characters", "[{name: ops, token: 0123456789abcdef012, role: admin}]", "token is 19 characters"},
		{"counted in characters, not bytes", "[{name: ops, token: ééééééééééééééé, role: admin}]", "token is 15 characters"},
		{"20 characters", "[{name: ops, token: 0123456789abcdef0123, role: admin}]", ""},
		{"sha256 of a token", "[{name: ops, sha256: " + strings.Repeat("ab", 32) + ", role: admin}]", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(minimal+"http: {tokens: "+tt.tokens+"}\n"), nil)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse = %v; want it accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse error = %v; want it to say %q", err, tt.want)
			}
			for _, secret := range []string{"change-me", "secret", "t0ken", "ééé"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows the token", err)
				}
			}
		})
	}
}

func TestNotifyAgents(t *testing.T) {
	t.Parallel()
	t.Run("addresses are kept lower-cased", func(t *testing.T) {
		c, err := Parse([]byte(minimal+"    notify_agents: [Agent@Example.org, lead@example.org]\n"), nil)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if got := c.Projects[0].NotifyAgents; len(got) != 2 || got[0] != "agent@example.org" || got[1] != "lead@example.org" {
			t.Fatalf("notify_agents = %q; want both, lower-cased", got)
		}
	})
	for name, bad := range map[string]string{"not an address": "Agent Smith", "the desk itself": "support@example.test"} {
		t.Run("refused: "+name, func(t *testing.T) {
			_, err := Parse([]byte(minimal+"    notify_agents: ['"+bad+"']\n"), nil)
			if err == nil || !strings.Contains(err.Error(), "notify_agents") {
				t.Fatalf("Parse error = %v; want it to name notify_agents", err)
			}
		})
	}
}
