package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const tokenKey = "0123456789abcdef0123456789abcdef-token-key"

// oauthConfig is minimal with project acme's IMAP and SMTP on OAuth2:
// imap and smtp are the YAML flow mappings of each mailbox.
func oauthConfig(mail, imap, smtp string) string {
	return "mail: {reply_key_secret: 0123456789abcdef0123" + mail + "}\n" +
		"projects:\n  - key: acme\n    address: support@example.test\n" +
		"    imap: " + imap + "\n    smtp: " + smtp + "\n"
}

func TestOAuth2MailboxesParse(t *testing.T) {
	t.Parallel()
	t.Run("Microsoft 365 with client credentials needs no token key", func(t *testing.T) {
		c, err := Parse([]byte(oauthConfig("",
			`{host: outlook.office365.com, auth: xoauth2, oauth2: {token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token", client_id: app, client_secret: s3cr3t, scopes: ["https://outlook.office365.com/.default"]}}`,
			`{host: smtp.office365.com, username: support@example.test, auth: xoauth2, oauth2: {token_url: "https://login.microsoftonline.com/t1/oauth2/v2.0/token", client_id: app, client_secret: s3cr3t, scopes: ["https://outlook.office365.com/.default"]}}`,
		)), nil)
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		p := c.Projects[0]
		if p.IMAP.Auth != AuthXOAUTH2 || p.IMAP.OAuth2.Scopes[0] != "https://outlook.office365.com/.default" || p.IMAP.Password != "" {
			t.Fatalf("imap = %+v", p.IMAP)
		}
	})
	t.Run("Gmail with a refresh token from files and the token key from a file", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, v string) string {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return f
		}
		rt, key := write("rt", "1//refresh"), write("key", tokenKey)
		c, err := Parse([]byte(oauthConfig(", token_key_file: "+key,
			`{host: imap.gmail.com, auth: oauthbearer, oauth2: {token_url: "https://oauth2.googleapis.com/token", client_id: app, refresh_token_file: `+rt+`, scopes: ["https://mail.google.com/"]}}`,
			`{host: smtp.gmail.com}`,
		)), []string{"SERVICEDESK_PROJECTS_0_IMAP_OAUTH2_CLIENT_SECRET=from-env"})
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		o := c.Projects[0].IMAP.OAuth2
		if o.RefreshToken != "1//refresh" || c.Mail.TokenKey != tokenKey || o.ClientSecret != "from-env" {
			t.Fatalf("refresh token %q, token key %q, client secret %q: files or env not applied", o.RefreshToken, c.Mail.TokenKey, o.ClientSecret)
		}
		if c.Projects[0].SMTP.Auth != AuthPassword {
			t.Fatalf("smtp auth defaults to %q, want password", c.Projects[0].SMTP.Auth)
		}
	})
	t.Run("the client secret can be set from the environment", func(t *testing.T) {
		if !IsEnvKey("SERVICEDESK_PROJECTS_0_SMTP_OAUTH2_CLIENT_SECRET_FILE") || !IsEnvKey("SERVICEDESK_MAIL_TOKEN_KEY_FILE") {
			t.Fatal("oauth2 secrets are not environment keys")
		}
	})
}

// TestOAuth2ConfigErrors: every problem names its field and what is wanted;
// none echoes a secret (hunter2 is in every secret and in the URLs).
func TestOAuth2ConfigErrors(t *testing.T) {
	t.Parallel()
	const good = `token_url: "https://login.example/token", client_id: app, client_secret: hunter2`
	cases := []struct {
		name, mail, imap, smtp, want string
	}{
		{"unknown auth", "", `{host: h, auth: oauth}`, `{host: h}`, `imap.auth "oauth": want password, xoauth2 or oauthbearer`},
		{"no token url", "", `{host: h, auth: xoauth2, oauth2: {client_id: app, client_secret: hunter2}}`, `{host: h}`, "imap.oauth2.token_url: required"},
		{"http token url to a remote host", "", `{host: h, auth: xoauth2, oauth2: {token_url: "http://u:hunter2@login.example/t", client_id: app, client_secret: hunter2}}`, `{host: h}`,
			"imap.oauth2.token_url: http is allowed to a loopback address only"},
		{"unparsable token url", "", `{host: h, auth: xoauth2, oauth2: {token_url: "https://login.example:hunter2/t", client_id: app, client_secret: hunter2}}`, `{host: h}`,
			"imap.oauth2.token_url: not a valid URL"},
		{"no client id", "", `{host: h, auth: xoauth2, oauth2: {token_url: "https://login.example/t", client_secret: hunter2}}`, `{host: h}`, "imap.oauth2.client_id: required"},
		{"client credentials without a secret", "", `{host: h, auth: xoauth2, oauth2: {token_url: "https://login.example/t", client_id: app}}`, `{host: h}`,
			"imap.oauth2: client_secret (or client_secret_file) is required"},
		{"refresh token without a token key", "", `{host: h, auth: xoauth2, oauth2: {` + good + `, refresh_token: hunter2}}`, `{host: h}`,
			"imap.oauth2.refresh_token: needs mail.token_key"},
		{"refresh token with a short token key", ", token_key: hunter2-short", `{host: h, auth: xoauth2, oauth2: {` + good + `, refresh_token: hunter2}}`, `{host: h}`,
			"mail.token_key: is 13 characters; use at least 32"},
		{"smtp xoauth2 without a username", "", `{host: h, password: hunter2}`, `{host: h, auth: xoauth2, oauth2: {` + good + `}}`, "smtp.username: required with auth xoauth2"},
		{"a scope with spaces", "", `{host: h, auth: xoauth2, oauth2: {` + good + `, scopes: ["a b"]}}`, `{host: h}`, "imap.oauth2.scopes[0]: one scope per item"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(oauthConfig(tc.mail, tc.imap, tc.smtp)), nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v; want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "ter2") {
				t.Fatalf("error echoes a secret: %v", err)
			}
		})
	}
}

// The intake's imap takes the same auth and oauth2 keys as a desk's.
func TestIntakeMailboxWithOAuth2(t *testing.T) {
	t.Parallel()
	gmail := `{host: imap.gmail.com, auth: xoauth2, oauth2: {token_url: "https://oauth2.googleapis.com/token", client_id: app, client_secret: hunter2, refresh_token_file: RT}}`
	config := func(mail, rtFile string) string {
		return "mail: {reply_key_secret: 0123456789abcdef0123" + mail + "}\n" +
			"intake:\n  address: incoming@intake.test\n  imap: " + strings.Replace(gmail, "RT", rtFile, 1) + "\n" +
			"projects:\n  - key: acme\n    address: support@acme.test\n    smtp: {host: 127.0.0.1}\n"
	}
	rt := filepath.Join(t.TempDir(), "rt")
	if err := os.WriteFile(rt, []byte("1//intake-refresh\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("needs no password and reads the refresh token file", func(t *testing.T) {
		c, err := Parse([]byte(config(", token_key: "+tokenKey, rt)), nil)
		if err != nil {
			t.Fatalf("Parse = %v", err)
		}
		if in := c.Intake.IMAP; in.Auth != AuthXOAUTH2 || in.OAuth2.RefreshToken != "1//intake-refresh" || in.Username != "incoming@intake.test" {
			t.Fatalf("intake imap = %+v", in)
		}
	})
	t.Run("refuses a refresh token without a token key", func(t *testing.T) {
		_, err := Parse([]byte(config("", rt)), nil)
		if err == nil || !strings.Contains(err.Error(), "intake.imap.oauth2.refresh_token: needs mail.token_key") || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("Parse = %v; want the intake's refresh token refused without a key, no secret echoed", err)
		}
	})
}
