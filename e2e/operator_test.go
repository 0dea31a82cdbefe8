package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// opSecrets are the credentials the operator test configures: none of them
// may ever show up anywhere but in the config file.
type opSecrets struct {
	imapPass, smtpPass, replyKey, admin, agent, guest string
}

func newOpSecrets() opSecrets {
	return opSecrets{
		imapPass: "imap-pw-" + randomHex(12),
		smtpPass: "smtp-pw-" + randomHex(12),
		replyKey: "reply-key-" + randomHex(20),
		admin:    "admin-tok-" + randomHex(12),
		agent:    "agent-tok-" + randomHex(12),
		guest:    "guest-tok-" + randomHex(12),
	}
}

// forms returns every secret, and the encodings in which it travels (basic
// auth, SASL PLAIN), by a name for failure messages.
func (s opSecrets) forms(user string) map[string]string {
	b64 := base64.StdEncoding.EncodeToString
	out := map[string]string{
		"IMAP password":              s.imapPass,
		"SMTP password":              s.smtpPass,
		"SMTP password (AUTH PLAIN)": b64([]byte("\x00" + user + "\x00" + s.smtpPass)),
		"reply_key_secret":           s.replyKey,
	}
	for role, tok := range map[string]string{"admin": s.admin, "agent": s.agent, "guest": s.guest} {
		out[role+" token"] = tok
		out[role+" token (basic auth)"] = basicAuth(tok)[len("Basic "):]
	}
	return out
}

// opDesk is a running servicedesk with real mail in it: a ticket with a Cc,
// an attachment and an address in its text, a thank-you and a note mailed
// through an SMTP server that demands AUTH, and a dead letter.
type opDesk struct {
	env     *deskEnv
	proc    *proc
	redis   *privateRedis
	smtp    *smtpSink
	http    *client
	secrets opSecrets
	desk    string
	// known are the full addresses that real mail put into the store.
	known []string
}

const (
	opAlice    = "alice-ops@customer.test"
	opBob      = "bob-ops@customer.test"
	opCarol    = "carol-ops@customer.test" // only named in the mail's text
	opDave     = "dave-ops@customer.test"  // sender of the oversized mail
	opDeskAddr = "ops@example.test"
)

func startOpDesk(t *testing.T) *opDesk {
	t.Helper()
	stack := mailstack.Start(t)
	sec := newOpSecrets()
	d := &opDesk{secrets: sec, desk: opDeskAddr, known: []string{opAlice, opBob, opCarol, opDave, opDeskAddr}}
	stack.AddUser(t, d.desk, sec.imapPass)
	d.redis = startPrivateRedis(t)
	d.smtp = startSMTPSink(t, d.desk, sec.smtpPass)

	imapHost, imapPort, _ := strings.Cut(stack.IMAPAddr, ":")
	smtpHost, smtpPort, _ := strings.Cut(d.smtp.addr, ":")
	httpAddr := freeAddr(t)
	dbURL := "sqlite://" + filepath.Join(t.TempDir(), "desk.db")
	cfg := fmt.Sprintf(`
redis: {url: %q}
database: {url: %q}
http:
  listen: %s
  public_url: http://%s
  tokens:
    - {name: ops, token: %s, role: admin}
    - {name: desk-agent, token: %s, role: agent}
    - {name: viewer, token: %s, role: guest}
limits: {max_message_size: 64KB}
mail: {reply_key_secret: %s}
scheduler: {tick: 200ms}
worker: {shutdown_timeout: 10s}
log: {level: debug, format: json}
projects:
  - key: acme
    name: Acme Support
    address: %s
    imap: {host: %s, port: %s, security: none, username: %s, password: %s, poll_interval: 1s}
    smtp: {host: %s, port: %s, security: none, username: %s, password: %s}
`, d.redis.url(0), dbURL, httpAddr, httpAddr, sec.admin, sec.agent, sec.guest, sec.replyKey,
		d.desk, imapHost, imapPort, d.desk, sec.imapPass, smtpHost, smtpPort, d.desk, sec.smtpPass)
	config := filepath.Join(t.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	d.env = &deskEnv{t: t, stack: stack, dbURL: dbURL, config: config, httpAddr: httpAddr}
	d.http = newClient(t, httpAddr)
	d.proc = d.env.serve()

	stack.Deliver(t, d.desk, mailWithAttachment(opAlice, d.desk, opBob))
	big := custMail{from: opDave, to: d.desk, subject: "Huge", messageID: "<huge-ops@customer.test>",
		body: strings.Repeat(strings.Repeat("y", 998)+"\n", 100)}
	stack.Deliver(t, d.desk, big.raw())

	eventually(t, 60*time.Second, "ticket acme#1 and alice's thank-you through the authenticating SMTP server", func() (bool, string) {
		n := len(d.smtp.to(opAlice))
		return n >= 1, fmt.Sprintf("%d mails to alice, %d in all", n, len(d.smtp.messages()))
	})
	note := d.http.do("POST", "/api/v1/projects/acme/tickets/1/notes", sec.agent, "application/json",
		[]byte(`{"text": "We are on it.", "internal": false}`))
	if note.status != http.StatusAccepted {
		t.Fatalf("agent's note: status %d, want 202; body: %s", note.status, note.body)
	}
	eventually(t, 60*time.Second, "the agent's note mailed to the Cc participant", func() (bool, string) {
		n := len(d.smtp.to(opBob))
		return n >= 1, fmt.Sprintf("%d mails to bob", n)
	})
	eventually(t, 30*time.Second, "the oversized mail as a dead letter", func() (bool, string) {
		var dls struct {
			Deadletters []map[string]any `json:"deadletters"`
		}
		d.http.getJSON("/api/v1/deadletters", sec.agent, &dls)
		return len(dls.Deadletters) >= 1, fmt.Sprintf("%v", dls.Deadletters)
	})
	return d
}

// mailWithAttachment is a customer's first mail: a Cc, an address in the
// text and a small attachment.
func mailWithAttachment(from, to, cc string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Alice <%s>\r\nTo: %s\r\nCc: %s\r\nSubject: VPN down\r\n", from, to, cc)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <vpn-ops@customer.test>\r\nMIME-Version: 1.0\r\n", time.Now().Format(time.RFC1123Z))
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	fmt.Fprintf(&b, "The VPN is down. Please also keep %s informed.\r\n", opCarol)
	b.WriteString("--b1\r\nContent-Type: text/plain; name=\"vpn.log\"\r\nContent-Disposition: attachment; filename=\"vpn.log\"\r\n\r\n")
	b.WriteString("tunnel timeout after 30s\r\n--b1--\r\n")
	return []byte(b.String())
}

// TestOperatorSurface runs the built binary with every role against real
// mail and checks what an operator relies on: the role matrix of every
// endpoint, redaction for guests, metrics, the monitor in a browser, and
// that no configured secret leaks anywhere.
func TestOperatorSurface(t *testing.T) {
	t.Parallel()
	d := startOpDesk(t)
	t.Run("every endpoint answers each role as the contract says", d.testRoles)
	t.Run("a guest's answers carry no full address in any field", d.testGuestRedaction)
	t.Run("metrics show asynq's queues and the pipeline's counters", d.testMetrics)
	t.Run("the monitor in headless Chromium: queues with admin credentials, 401 without", d.testBrowser)
	// Last: it stops the server to read its whole log.
	t.Run("no secret in logs, answers, Redis or the monitor", d.testNoSecrets)
}

// attachmentPath finds the attachment of ticket 1.
func (d *opDesk) attachmentPath(t *testing.T) string {
	t.Helper()
	var tk struct {
		Messages []struct {
			Attachments []struct {
				ID       int64  `json:"id"`
				Filename string `json:"filename"`
			} `json:"attachments"`
		} `json:"messages"`
	}
	d.http.getJSON("/api/v1/projects/acme/tickets/1", d.secrets.agent, &tk)
	for _, m := range tk.Messages {
		for _, a := range m.Attachments {
			if a.Filename == "vpn.log" {
				return fmt.Sprintf("/api/v1/projects/acme/tickets/1/attachments/%d", a.ID)
			}
		}
	}
	t.Fatalf("ticket acme#1 has no attachment vpn.log: %+v", tk)
	return ""
}

func (d *opDesk) testRoles(t *testing.T) {
	att := d.attachmentPath(t)
	const (
		none = iota
		guest
		agent
		admin
	)
	tokens := []string{none: "", guest: d.secrets.guest, agent: d.secrets.agent, admin: d.secrets.admin}
	names := []string{"no token", "guest", "agent", "admin"}
	note := []byte(`{"text": "internal remark", "internal": true}`)
	cases := []struct {
		method, path string
		body         []byte
		want         [4]int // status for none, guest, agent, admin
	}{
		{"GET", "/healthz", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/readyz", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/metrics", nil, [4]int{200, 200, 200, 200}},
		{"GET", "/api/v1/projects", nil, [4]int{401, 200, 200, 200}},
		{"GET", "/api/v1/projects/acme/tickets", nil, [4]int{401, 200, 200, 200}},
		{"GET", "/api/v1/projects/acme/tickets?status=open", nil, [4]int{401, 200, 200, 200}},
		{"GET", "/api/v1/projects/acme/tickets/1", nil, [4]int{401, 200, 200, 200}},
		{"GET", att, nil, [4]int{401, 403, 200, 200}}, // a text attachment: for agents only
		{"GET", "/api/v1/projects/acme/inbound", nil, [4]int{401, 403, 200, 200}},
		{"GET", "/api/v1/projects/acme/inbound?outcome=rejected", nil, [4]int{401, 403, 200, 200}},
		{"GET", "/api/v1/deadletters", nil, [4]int{401, 403, 200, 200}},
		{"POST", "/api/v1/projects/acme/tickets/1/notes", note, [4]int{401, 403, 202, 202}},
		{"POST", "/api/v1/projects/acme/tickets/1/close", nil, [4]int{401, 403, 200, 200}},
		{"POST", "/api/v1/projects/acme/tickets/1/reopen", nil, [4]int{401, 403, 200, 200}},
		// No such dead letter: 404 shows the role got past authorization.
		{"POST", "/api/v1/deadletters/987654/retry", nil, [4]int{401, 403, 404, 404}},
		{"POST", "/api/v1/deadletters/987654/discard", nil, [4]int{401, 403, 404, 404}},
		{"GET", "/monitor/", nil, [4]int{401, 403, 403, 200}},
		{"GET", "/monitor/api/queues", nil, [4]int{401, 403, 403, 200}},
	}
	for _, c := range cases {
		for role, tok := range tokens {
			t.Run(fmt.Sprintf("%s %s as %s", c.method, c.path, names[role]), func(t *testing.T) {
				ct := ""
				if c.body != nil {
					ct = "application/json"
				}
				a := d.http.do(c.method, c.path, tok, ct, c.body)
				if a.status != c.want[role] {
					t.Fatalf("status %d, want %d; body: %.300s", a.status, c.want[role], a.body)
				}
				if a.status < 400 {
					return
				}
				assertErrorJSON(t, a)
				if a.status == http.StatusUnauthorized && !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("401 without a basic-auth challenge (WWW-Authenticate %q): browsers could not log in",
						a.header.Get("WWW-Authenticate"))
				}
			})
		}
	}
	t.Run("an unknown token is 401, not a role", func(t *testing.T) {
		a := d.http.get("/api/v1/projects", "not-a-configured-token")
		if a.status != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401; body: %s", a.status, a.body)
		}
		assertErrorJSON(t, a)
	})
	t.Run("basic auth with the token as password works like the bearer token", func(t *testing.T) {
		req, _ := http.NewRequest("GET", d.http.base+"/api/v1/projects", nil)
		req.SetBasicAuth("", d.secrets.agent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", resp.StatusCode)
		}
	})
}

// assertErrorJSON checks the contract's error shape:
// {"error": {"code": "...", "message": "..."}} with a JSON content type.
func assertErrorJSON(t *testing.T, a answer) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("status %d answer is not the error JSON {\"error\": {\"code\", \"message\"}} (%v): %s", a.status, err, a.body)
	}
	if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error answer has Content-Type %q, want application/json", ct)
	}
	want := map[int]string{401: "unauthorized", 403: "forbidden", 404: "not_found"}[a.status]
	if want != "" && e.Error.Code != want {
		t.Errorf("status %d has error code %q, want %q", a.status, e.Error.Code, want)
	}
}

// unredacted finds an "@" that is not right after the "***" of an
// obfuscated local part.
var unredacted = regexp.MustCompile(`(^|[^*]|[^*]\*|[^*]\*\*)@`)

func (d *opDesk) testGuestRedaction(t *testing.T) {
	// The agent's view proves that the addresses are there to be hidden.
	var full map[string]any
	d.http.getJSON("/api/v1/projects/acme/tickets/1", d.secrets.agent, &full)
	fullText, _ := json.Marshal(full)
	for _, addr := range []string{opAlice, opBob, opCarol} {
		if !strings.Contains(strings.ToLower(string(fullText)), addr) {
			t.Fatalf("the agent's view of acme#1 lacks %s, so the guest check below would prove nothing: %s", addr, fullText)
		}
	}
	paths := []string{
		"/api/v1/projects",
		"/api/v1/projects/acme/tickets",
		"/api/v1/projects/acme/tickets?status=open",
		"/api/v1/projects/acme/tickets/1",
		"/api/v1/projects/acme/inbound",   // 403: the error must not leak either
		"/api/v1/deadletters",             // 403
		"/api/v1/projects/acme/tickets/2", // 404
	}
	for _, p := range paths {
		t.Run(p, func(t *testing.T) {
			a := d.http.get(p, d.secrets.guest)
			var v any
			if err := json.Unmarshal(a.body, &v); err != nil {
				t.Fatalf("status %d answer is not JSON: %v: %s", a.status, err, a.body)
			}
			strs := 0
			walkStrings(v, "$", func(path, s string) {
				strs++
				low := strings.ToLower(s)
				for _, addr := range d.known {
					if strings.Contains(low, addr) {
						t.Errorf("%s = %q: a guest sees the full address %s", path, s, addr)
					}
				}
				if unredacted.MatchString(s) {
					t.Errorf("%s = %q: an address that is not obfuscated (want e.g. al***@cu***.test)", path, s)
				}
			})
			if strs == 0 {
				t.Fatalf("answer has no string at all, nothing was checked: %s", a.body)
			}
		})
	}
	t.Run("the guest sees the obfuscated forms", func(t *testing.T) {
		var tk struct {
			Requester    string   `json:"requester"`
			Participants []string `json:"participants"`
		}
		d.http.getJSON("/api/v1/projects/acme/tickets/1", d.secrets.guest, &tk)
		if tk.Requester != "al***@cu***.test" || !contains(tk.Participants, "bo***@cu***.test") {
			t.Errorf("guest sees requester %q, participants %q; want al***@cu***.test and bo***@cu***.test among the participants",
				tk.Requester, tk.Participants)
		}
	})
}

func (d *opDesk) testMetrics(t *testing.T) {
	a := d.http.get("/metrics", "")
	if a.status != http.StatusOK {
		t.Fatalf("GET /metrics: status %d", a.status)
	}
	samples := parseMetrics(string(a.body))
	for _, name := range []string{
		`asynq_queue_size{queue="fetch"}`,
		`asynq_queue_size{queue="ingest"}`,
		`asynq_queue_size{queue="notify"}`,
		`asynq_tasks_enqueued_total{queue="ingest",state="completed"}`,
		`asynq_tasks_processed_total{queue="ingest"}`,
		`asynq_queue_latency_seconds{queue="fetch"}`,
		`servicedesk_fetch_runs_total{project="acme"}`,
		`servicedesk_inbound_messages_total{outcome="ticket_created",project="acme"}`,
		`servicedesk_inbound_messages_total{outcome="rejected",project="acme"}`,
		`servicedesk_notifications_sent_total{result="ok"}`,
		`servicedesk_ingest_latency_seconds_count{project="acme"}`,
	} {
		if _, ok := samples[name]; !ok {
			t.Errorf("/metrics has no sample %s", name)
		}
	}
	if v := samples[`servicedesk_fetch_runs_total{project="acme"}`]; v < 1 {
		t.Errorf("servicedesk_fetch_runs_total{project=\"acme\"} = %v, want at least 1 after a fetch", v)
	}
	last, ok := samples[`servicedesk_mailbox_last_success_timestamp_seconds{project="acme"}`]
	if age := time.Since(time.Unix(int64(last), 0)); !ok || age < 0 || age > 2*time.Minute {
		t.Errorf("servicedesk_mailbox_last_success_timestamp_seconds{project=\"acme\"} = %v (present %v), want a time within the last 2 minutes", last, ok)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", grepLines(string(a.body), "asynq_", "servicedesk_"))
	}
}

// parseMetrics reads the Prometheus text format into name{labels} -> value.
func parseMetrics(text string) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out
}

func grepLines(text string, prefixes ...string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(l, p) {
				b.WriteString(l + "\n")
				break
			}
		}
	}
	return b.String()
}

func (d *opDesk) testBrowser(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("headless Chromium is needed at %s (Debian package chromium; deploy/services.sh installs it): %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute) // a cold Chromium on a loaded machine, then a 30 s wait
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	defer cancelAlloc()
	url := d.http.base + "/monitor/"

	t.Run("without credentials: 401", func(t *testing.T) {
		tab, cancel := chromedp.NewContext(actx)
		defer cancel()
		if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
			t.Fatalf("enable network: %v", err)
		}
		// Headless Chromium has no one to ask for a password: it answers a
		// basic-auth challenge by failing the load. The 401 itself is seen
		// on the network.
		statuses := make(chan int64, 16)
		if err := chromedp.Listen(tab, func(ev any) {
			if r, ok := ev.(*network.EventResponseReceived); ok && r.Type == network.ResourceTypeDocument {
				select {
				case statuses <- r.Response.Status:
				default:
				}
			}
		}); err != nil {
			t.Fatalf("listen to network events: %v", err)
		}
		_, err := chromedp.Run(tab, chromedp.NavigateResponse(url))
		if err == nil || !strings.Contains(err.Error(), "ERR_INVALID_AUTH_CREDENTIALS") {
			t.Errorf("open %s without credentials: error %v, want the browser's net::ERR_INVALID_AUTH_CREDENTIALS", url, err)
		}
		select {
		case st := <-statuses:
			if st != http.StatusUnauthorized {
				t.Fatalf("%s without credentials: status %d, want 401", url, st)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s without credentials: no response seen within 5s", url)
		}
	})

	t.Run("with the admin token: the queues", func(t *testing.T) {
		tab, cancel := chromedp.NewContext(actx)
		defer cancel()
		if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
			t.Fatalf("enable network: %v", err)
		}
		if _, err := chromedp.Call(tab, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Authorization": basicAuth(d.secrets.admin)}}); err != nil {
			t.Fatalf("set the Authorization header: %v", err)
		}
		resp, err := chromedp.Run(tab, chromedp.NavigateResponse(url))
		if err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		if resp.Status != http.StatusOK {
			t.Fatalf("%s as admin: status %d, want 200", url, resp.Status)
		}
		// The dashboard loads the queues with XHRs after the page: wait
		// for them to be drawn.
		var text string
		deadline := time.Now().Add(30 * time.Second)
		for {
			text, err = chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
			if err != nil {
				t.Fatalf("read the page text: %v", err)
			}
			if hasAll(text, "fetch", "ingest", "notify") || time.Now().After(deadline) {
				break
			}
			time.Sleep(250 * time.Millisecond)
		}
		png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		p := saveArtifact(t, t.TempDir(), "monitor.png", png)
		t.Logf("screenshot of the monitor: %s (%d bytes)", p, len(png))
		if !hasAll(text, "fetch", "ingest", "notify") {
			t.Fatalf("the monitor page does not show the queues fetch, ingest and notify within 30s; page text:\n%s", text)
		}
	})
}

// hasAll reports whether text has each word as a whole line or word.
func hasAll(text string, words ...string) bool {
	fields := map[string]bool{}
	for _, f := range strings.Fields(text) {
		fields[f] = true
	}
	for _, w := range words {
		if !fields[w] {
			return false
		}
	}
	return true
}

func (d *opDesk) testNoSecrets(t *testing.T) {
	// Touch everything once more as admin, the monitor's API included, so
	// that all of it is in the answers searched below.
	for _, p := range []string{
		"/api/v1/projects", "/api/v1/projects/acme/tickets", "/api/v1/projects/acme/tickets/1",
		"/api/v1/projects/acme/inbound", "/api/v1/deadletters", "/readyz", "/metrics",
		"/monitor/", "/monitor/api/queues", "/monitor/api/queue_stats", "/monitor/api/servers",
		"/monitor/api/scheduler_entries", "/monitor/api/redis_info",
	} {
		d.http.get(p, d.secrets.admin)
	}
	for _, q := range []string{"fetch", "ingest", "notify"} {
		for _, state := range []string{"active", "pending", "scheduled", "retry", "archived", "completed"} {
			p := "/monitor/api/queues/" + q + "/" + state + "_tasks"
			if a := d.http.get(p, d.secrets.admin); a.status != http.StatusOK {
				t.Errorf("GET %s as admin: status %d, want 200: %s", p, a.status, a.body)
			}
		}
	}
	check, err := d.env.run("check")
	if err != nil {
		t.Errorf("servicedesk check: %v\n%s", err, check)
	}
	dump, err := d.redis.dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dump, "asynq:") {
		t.Fatalf("Redis holds no asynq key, so searching it proves nothing:\n%.2000s", dump)
	}
	if err := d.proc.stop(t); err != nil {
		t.Errorf("serve did not exit cleanly on SIGTERM: %v", err)
	}
	logs := d.proc.out.String()
	if !strings.Contains(logs, "http request") || !strings.Contains(logs, `"task_id"`) {
		t.Errorf("the serve log lacks request or task logs, so searching it proves little:\n%s", tail(logs, 40))
	}
	places := []struct{ name, text string }{
		{"the serve process's log", logs},
		{"an API or monitor answer", d.http.answers()},
		{"a Redis key or value", dump},
		{"the output of servicedesk check", check},
	}
	for _, pl := range places {
		for what, secret := range d.secrets.forms(d.desk) {
			if i := strings.Index(pl.text, secret); i >= 0 {
				lo, hi := max(0, i-120), min(len(pl.text), i+len(secret)+40)
				t.Errorf("the %s appears in %s: ...%s...", what, pl.name, pl.text[lo:hi])
			}
		}
	}
}
