package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	sqlite3driver "github.com/ncruces/go-sqlite3/driver"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/internal/tokenserver"
	"github.com/servicedesk/servicedesk/store"
)

const tokenKey = "e2e-token-key-0123456789abcdef-0123456789"

// oauthDesk is a desk whose IMAP (XOAUTH2) and SMTP (OAUTHBEARER, through
// Dovecot's submission service) log in with tokens from a refresh token;
// Dovecot's oauth2 passdb asks ts whether each token is valid.
type oauthDesk struct {
	t        *testing.T
	ts       *tokenserver.Server
	stack    *mailstack.Stack
	dbFile   string
	redisURL string
	httpAddr string
	config   string
}

// base is the config above the mailboxes; mail is added to the mail
// section.
func (d *oauthDesk) base(mail string) string {
	return fmt.Sprintf("redis: {url: %q}\ndatabase: {url: \"sqlite://%s\"}\n"+
		"http: {listen: %s, tokens: [{name: e2e, token: %s, role: admin}]}\nmail: {reply_key_secret: %s%s}\n"+
		"scheduler: {tick: 200ms}\nworker: {shutdown_timeout: 10s}\nlog: {level: info, format: text}\n",
		d.redisURL, d.dbFile, d.httpAddr, adminToken, replySecret, mail)
}

// writeConfig writes the desk's config: Gmail's shape with a refresh
// token, XOAUTH2 for IMAP and OAUTHBEARER for SMTP.
func (d *oauthDesk) writeConfig(refreshToken string) {
	d.t.Helper()
	d.writeConfigWith(fmt.Sprintf(`{token_url: %q, client_id: %s, client_secret: %s, refresh_token: %s, scopes: ["https://mail.google.com/"]}`,
		d.ts.TokenURL(), d.ts.ClientID, d.ts.ClientSecret, refreshToken), "oauthbearer")
}

// writeConfigWith writes the desk's config with oauth2 (a YAML flow
// mapping) for both mailboxes and smtpAuth for SMTP.
func (d *oauthDesk) writeConfigWith(oauth2, smtpAuth string) {
	d.t.Helper()
	imapHost, imapPort := splitHostPort(d.t, d.stack.IMAPAddr)
	subHost, subPort := splitHostPort(d.t, d.stack.SMTPAuthAddr)
	cfg := d.base(", token_key: "+tokenKey) + fmt.Sprintf(`projects:
  - key: acme
    address: %s
    imap: {host: %s, port: %d, security: none, poll_interval: 1s, idle: true, auth: xoauth2, oauth2: %s}
    smtp: {host: %s, port: %d, security: starttls, insecure_skip_verify: true, username: %s, auth: %s, oauth2: %s}
`, desk, imapHost, imapPort, oauth2,
		subHost, subPort, desk, smtpAuth, oauth2)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// metric returns the value of servicedesk_oauth2_token_errors_total for
// acme and step (0 when the series does not exist yet, -1 while the
// server does not answer).
func (d *oauthDesk) metric(step string) float64 {
	return d.series(fmt.Sprintf(`servicedesk_oauth2_token_errors_total{project="acme",step=%q}`, step))
}

// series returns the value of one series of /metrics (0 when it does not
// exist, -1 while the server does not answer).
func (d *oauthDesk) series(name string) float64 {
	resp, err := http.Get("http://" + d.httpAddr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	want := name + " "
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), want); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func (d *oauthDesk) check() string {
	d.t.Helper()
	out, _ := (&deskEnv{config: d.config}).run("check") // exits 1 when a line fails
	return out
}

func newOAuthDesk(t *testing.T) *oauthDesk {
	ts := tokenserver.Start(t)
	stack := mailstack.Start(t, mailstack.WithOAuth2(ts.IntrospectionURL()))
	dir := t.TempDir()
	return &oauthDesk{t: t, ts: ts, stack: stack, dbFile: filepath.Join(dir, "desk.db"), redisURL: redisURL(t),
		httpAddr: freeAddr(t), config: filepath.Join(dir, "servicedesk.yaml")}
}

// oauthMail is customer mail number n to the desk.
func oauthMail(n int) []byte {
	return custMail{from: "alice@customer.test", to: desk, subject: fmt.Sprintf("oauth mail %d", n), body: "hello",
		messageID: fmt.Sprintf("<oauth-%d-%s@customer.test>", n, randomHex(4))}.raw()
}

// waitTickets waits for n tickets in the desk's database.
func (d *oauthDesk) waitTickets(t *testing.T, st *store.Store, n int) {
	t.Helper()
	eventually(t, 60*time.Second, fmt.Sprintf("%d tickets", n), func() (bool, string) {
		got := len(tickets(t, st))
		return got == n, fmt.Sprintf("%d tickets", got)
	})
}

// thankYous waits for n mails to alice, the last a thank-you.
func (d *oauthDesk) thankYous(t *testing.T, n int) {
	t.Helper()
	msgs := d.stack.WaitForMail(t, "alice@customer.test", mailstack.Password, n, 60*time.Second)
	if !bytes.Contains(msgs[n-1], []byte("[acme#")) {
		t.Fatalf("alice's mail %d is not a thank-you:\n%s", n, msgs[n-1])
	}
}

// TestOAuth2ClientCredentialsMailbox runs a Microsoft 365 app-only desk
// (client credentials, scope .default, XOAUTH2 for IMAP and SMTP) against
// Dovecot's oauth2 passdb.
func TestOAuth2ClientCredentialsMailbox(t *testing.T) {
	t.Parallel()
	d := newOAuthDesk(t)
	d.ts.SetAppUser(desk)
	m365 := func(secret string) string {
		return fmt.Sprintf(`{token_url: %q, client_id: %s, client_secret: %s, scopes: ["https://outlook.office365.com/.default"]}`,
			d.ts.TokenURL(), d.ts.ClientID, secret)
	}
	d.writeConfigWith(m365(d.ts.ClientSecret), "xoauth2")
	startServe(t, d.config)
	st := (&deskEnv{t: t, dbURL: "sqlite://" + d.dbFile}).openStore()

	t.Run("fetch and send work, also after the server expired the token", func(t *testing.T) {
		d.stack.Deliver(t, desk, oauthMail(1))
		d.waitTickets(t, st, 1)
		d.thankYous(t, 1)
		d.ts.ExpireAccessTokens()
		d.stack.Deliver(t, desk, oauthMail(2))
		d.waitTickets(t, st, 2)
		d.thankYous(t, 2)
	})
	t.Run("the IMAP IDLE watcher logs in with the token too", func(t *testing.T) {
		eventually(t, 30*time.Second, "an idle watcher up", func() (bool, string) {
			v := d.series(`servicedesk_idle_watchers_up{project="acme"}`)
			return v == 1, fmt.Sprintf("servicedesk_idle_watchers_up = %v", v)
		})
	})
	t.Run("check passes every line", func(t *testing.T) {
		out, err := (&deskEnv{config: d.config}).run("check")
		if err != nil || !strings.Contains(out, "ok    project acme imap oauth2 grant client_credentials") ||
			!strings.Contains(out, "ok    project acme smtp oauth2 grant client_credentials") {
			t.Fatalf("check = %v:\n%s", err, out)
		}
	})
	t.Run("a wrong client secret fails the grant line with invalid_client", func(t *testing.T) {
		d.writeConfigWith(m365("wrong-secret-0123"), "xoauth2")
		out := d.check()
		if !strings.Contains(out, "FAIL  project acme imap oauth2 grant client_credentials") || !strings.Contains(out, "invalid_client") ||
			strings.Contains(out, "wrong-secret-0123") {
			t.Fatalf("check with a wrong secret:\n%s", out)
		}
	})
}

// TestOAuth2Mailbox runs a Gmail-style desk (refresh token, rotated on
// every refresh) against real Dovecot whose oauth2 passdb decides whether
// each token is valid: the server, not our code.
func TestOAuth2Mailbox(t *testing.T) {
	t.Parallel()
	d := newOAuthDesk(t)
	ts, stack := d.ts, d.stack
	ts.SetRotation(true)
	consent := ts.NewRefreshToken(desk)
	d.writeConfig(consent)
	serve := startServe(t, d.config)
	top := t

	mail := oauthMail
	st := (&deskEnv{t: t, dbURL: "sqlite://" + d.dbFile}).openStore()
	waitTickets := func(n int) { t.Helper(); d.waitTickets(t, st, n) }
	thankYous := func(n int) { t.Helper(); d.thankYous(t, n) }

	t.Run("with a good token the fetch (XOAUTH2) and the send (OAUTHBEARER) work", func(t *testing.T) {
		stack.Deliver(t, desk, mail(1))
		waitTickets(1)
		thankYous(1)
	})

	t.Run("the rotated refresh token is stored encrypted: the database never holds it in clear", func(t *testing.T) {
		live := ts.LiveRefreshTokens()
		if len(live) != 1 || live[0] == consent {
			t.Fatalf("live refresh tokens %v: want one, rotated from the consent", live)
		}
		db, err := sqlite3driver.Open("file:" + d.dbFile)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var sealed int
		if err := db.QueryRow(`SELECT COUNT(*) FROM oauth_tokens WHERE sealed LIKE 'v1:%'`).Scan(&sealed); err != nil || sealed != 1 {
			t.Fatalf("sealed rows in oauth_tokens = %d, %v; want 1", sealed, err)
		}
		for _, f := range []string{d.dbFile, d.dbFile + "-wal"} {
			b, _ := os.ReadFile(f)
			if bytes.Contains(b, []byte(live[0])) {
				t.Fatalf("%s holds the live refresh token in clear", f)
			}
		}
	})

	t.Run("a token the server expires mid-run is refreshed on the next fetch and send; nothing is lost", func(t *testing.T) {
		ts.ExpireAccessTokens()
		stack.Deliver(t, desk, mail(2))
		waitTickets(2)
		thankYous(2)
		// The fetch that took mail 2 may have logged in just before the
		// expiry (a fetch queued by IDLE races the test); the next poll,
		// a second later at most, logs in with the expired token.
		eventually(t, 30*time.Second, "the refused token counted", func() (bool, string) {
			v := d.metric("login")
			return v >= 1, fmt.Sprintf("servicedesk_oauth2_token_errors_total{step=login} = %v", v)
		})
	})

	t.Run("after a restart the stored rotated refresh token is used: no new consent", func(t *testing.T) {
		if err := serve.stop(t); err != nil {
			t.Fatalf("stop: %v", err)
		}
		serve = startServe(top, d.config) // lives past this subtest
		stack.Deliver(t, desk, mail(3))
		waitTickets(3)
		if n := ts.Refused("invalid_grant"); n != 0 {
			t.Fatalf("%d invalid_grant answers: the restart used the consent's (rotated away) refresh token", n)
		}
	})

	t.Run("a revoked refresh token fails the fetch with a clear error, a metric and a check line; the mail waits", func(t *testing.T) {
		ts.RevokeRefreshTokens()
		// A fetch logged in before the revocation keeps its session and
		// may still take a mail delivered now, as a real server allows.
		// Fetches of one mailbox run one at a time (the lease is taken
		// before the login), so once one has failed on the revoked grant
		// every later fetch logs in after the revocation.
		refusedFetches := func() int {
			n := 0
			for _, line := range strings.Split(serve.out.String(), "\n") {
				if strings.Contains(line, `msg="fetch failed"`) && strings.Contains(line, "invalid_grant") {
					n++
				}
			}
			return n
		}
		// The metric counts the failure before the fetch logs it.
		eventually(t, 60*time.Second, "a grant failure counted and a fetch failed with invalid_grant", func() (bool, string) {
			v, n := d.metric("grant"), refusedFetches()
			return v >= 1 && n >= 1, fmt.Sprintf("grant errors %v, fetches failed with invalid_grant %d", v, n)
		})
		before := refusedFetches()
		stack.Deliver(t, desk, mail(4))
		eventually(t, 60*time.Second, "a fetch after the delivery failed with invalid_grant", func() (bool, string) {
			n := refusedFetches()
			return n > before, fmt.Sprintf("fetches failed with invalid_grant: %d, %d before the delivery", n, before)
		})
		out := d.check()
		t.Logf("check with the refresh token revoked:\n%s", out)
		for _, want := range []string{
			"ok    project acme imap oauth2 token endpoint 127.0.0.1:",
			"FAIL  project acme imap oauth2 grant refresh_token",
			"invalid_grant",
			"a new consent is needed",
		} {
			if !strings.Contains(out, want) {
				t.Fatalf("check output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "connection failed") {
			t.Fatalf("check blames the connection for a refused grant:\n%s", out)
		}
		if strings.Contains(out, ts.ClientSecret) || strings.Contains(out, consent) {
			t.Fatalf("check prints a secret:\n%s", out)
		}
		if n := len(tickets(t, st)); n != 3 {
			t.Fatalf("%d tickets; want 3 (the fourth mail cannot be fetched)", n)
		}
		// The mail is still in the mailbox (the desk's password still logs in).
		msgs := stack.WaitForMail(t, desk, deskPass, 4, 30*time.Second)
		if !bytes.Contains(msgs[3], []byte("oauth mail 4")) {
			t.Fatalf("the fourth message in the mailbox is %q", msgs[3])
		}
	})

	t.Run("check says when the token endpoint is down", func(t *testing.T) {
		ts.SetDown(true)
		defer ts.SetDown(false)
		out := d.check()
		t.Logf("check with the token endpoint down:\n%s", out)
		for _, want := range []string{"FAIL  project acme imap oauth2 token endpoint", "HTTP 503", "not checked: the token endpoint did not answer"} {
			if !strings.Contains(out, want) {
				t.Fatalf("check output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("a new consent in the config picks the waiting mail up", func(t *testing.T) {
		if err := serve.stop(t); err != nil {
			t.Fatalf("stop: %v", err)
		}
		d.writeConfig(ts.NewRefreshToken(desk))
		serve = startServe(top, d.config) // lives past this subtest
		waitTickets(4)
		out := d.check()
		if !strings.Contains(out, "ok    project acme imap oauth2 grant refresh_token") || !strings.Contains(out, "ok    project acme smtp oauth2 grant refresh_token") {
			t.Fatalf("check after the new consent:\n%s", out)
		}
	})
}

// TestOAuth2IntakeMailbox: a shared intake mailbox on Microsoft 365
// app-only tokens routes mail to its desk, and check shows its token
// lines.
func TestOAuth2IntakeMailbox(t *testing.T) {
	t.Parallel()
	d := newOAuthDesk(t)
	const intake = "incoming@intake.test"
	d.ts.SetAppUser(intake)
	d.stack.AddUser(t, intake, deskPass) // a mailbox LMTP delivers to; the desk logs in with tokens only
	imapHost, imapPort := splitHostPort(t, d.stack.IMAPAddr)
	smtpHost, smtpPort := splitHostPort(t, d.stack.SMTPAddr)
	cfg := d.base("") + fmt.Sprintf(`intake:
  address: %s
  imap: {host: %s, port: %d, security: none, poll_interval: 1s, auth: xoauth2,
         oauth2: {token_url: %q, client_id: %s, client_secret: %s, scopes: ["https://outlook.office365.com/.default"]}}
projects:
  - key: acme
    address: incoming+acme@intake.test
    smtp: {host: %s, port: %d, security: none}
`, intake, imapHost, imapPort,
		d.ts.TokenURL(), d.ts.ClientID, d.ts.ClientSecret, smtpHost, smtpPort)
	if err := os.WriteFile(d.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	startServe(t, d.config)
	st := (&deskEnv{t: t, dbURL: "sqlite://" + d.dbFile}).openStore()

	t.Run("mail to incoming+acme@ is fetched with a token and becomes acme's ticket", func(t *testing.T) {
		d.stack.Deliver(t, intake, custMail{from: "alice@customer.test", to: "incoming+acme@intake.test", subject: "via the intake",
			body: "hello", messageID: "<intake-oauth-" + randomHex(4) + "@customer.test>"}.raw())
		d.waitTickets(t, st, 1)
		d.thankYous(t, 1)
	})
	t.Run("check prints the intake's token lines", func(t *testing.T) {
		out, err := (&deskEnv{config: d.config}).run("check")
		for _, want := range []string{
			"ok    intake " + intake + " imap oauth2 token endpoint 127.0.0.1:",
			"ok    intake " + intake + " imap oauth2 grant client_credentials",
			"ok    intake " + intake + " imap " + d.stack.IMAPAddr,
		} {
			if err != nil || !strings.Contains(out, want) {
				t.Fatalf("check = %v; output lacks %q:\n%s", err, want, out)
			}
		}
	})
}
