package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/jhillyerd/enmime/v2"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/ticket"
)

// TestCustomerLinks follows what a customer sees, on the real stack: the
// thank-you in their Dovecot mailbox links to their ticket's page, which
// opens in headless Chromium without a token, shows the public messages
// and none of the internal ones, and serves the attachment through its
// signed link; a tampered link gets 403. Unsubscribe works both ways (the
// https one-click POST of RFC 8058, and the mailto through the ingest
// path, and the page's button in the browser), and the next note reaches
// only who stayed subscribed.
func TestCustomerLinks(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	d := startOutboundDesk(t, stack, backends[0], false)
	grace, hank, ivy, jack := d.customer(t, "grace"), d.customer(t, "hank"), d.customer(t, "ivy"), d.customer(t, "jack")
	pdf := []byte("%PDF-1.4\n% customer report " + randomHex(8) + "\n%%EOF\n")

	first := mailWithPDF(grace, d.addr, hank+", "+ivy+", "+jack, "Invoice 4711 is wrong", pdf)
	stack.Deliver(t, d.addr, first)
	tk := d.waitTicket(t, grace, 1)[0]
	thanks := d.mails(t, grace, 1)[0]
	link := ticketLink(t, thanks, d.httpAddr)

	t.Run("the thank-you carries List-Unsubscribe, one-click and mailto", func(t *testing.T) {
		lu := thanks.GetHeader("List-Unsubscribe")
		if !strings.Contains(lu, "<http://"+d.httpAddr+"/tickets/acme/") || !strings.Contains(lu, "<mailto:") ||
			thanks.GetHeader("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
			t.Fatalf("List-Unsubscribe %q, List-Unsubscribe-Post %q", lu, thanks.GetHeader("List-Unsubscribe-Post"))
		}
	})

	if out, err := d.run("tickets", "reply", tk.Ref, "--internal", "--text", "INTERNAL: check the refund first", "--author", "Dana"); err != nil {
		t.Fatalf("internal note: %v (%s)", err, out)
	}
	b := newBrowser(t)

	t.Run("the link opens the ticket in Chromium: subject, messages, no internal note", func(t *testing.T) {
		status, text, png := b.open(t, link)
		p := saveArtifact(t, t.TempDir(), "customer-ticket.png", png)
		t.Logf("screenshot of the customer's page: %s (%d bytes)", p, len(png))
		if status != http.StatusOK {
			t.Fatalf("GET %s: %d, want 200; page:\n%s", link, status, text)
		}
		if len(png) < 1000 {
			t.Fatalf("screenshot is %d bytes: an empty page", len(png))
		}
		for _, want := range []string{"Invoice 4711 is wrong", tk.Ref, "Open", "The amount is wrong", "report.pdf"} {
			if !strings.Contains(text, want) {
				t.Errorf("page lacks %q:\n%s", want, text)
			}
		}
		if strings.Contains(text, "INTERNAL") || strings.Contains(text, hank) || strings.Contains(text, ivy) {
			t.Errorf("page shows an internal note or another participant's address:\n%s", text)
		}
	})
	t.Run("the attachment downloads through its signed link, without a token", func(t *testing.T) {
		href := b.eval(t, link, `document.querySelector("ul.files a").href`)
		if !strings.Contains(href, "/attachments/") || !strings.Contains(href, "s=") {
			t.Fatalf("attachment href %q, want a signed /attachments/ link", href)
		}
		status, body := get(t, http.MethodGet, href, "")
		if status != http.StatusOK || sha256Hex(body) != sha256Hex(pdf) {
			t.Fatalf("GET %s: %d, %d bytes (sha256 %s), want the PDF", href, status, len(body), sha256Hex(body))
		}
	})
	t.Run("a tampered link gets 403 and nothing of the ticket", func(t *testing.T) {
		other := strings.Replace(link, fmt.Sprintf("/tickets/acme/%d?", tk.Number), fmt.Sprintf("/tickets/acme/%d?", tk.Number+1), 1)
		forged := regexp.MustCompile(`s=[^&]+`).ReplaceAllString(link, "s=AAAAAAAAAAAAAAAAAAAAAA")
		for _, bad := range []string{other, forged} {
			status, text, _ := b.open(t, bad)
			if status != http.StatusForbidden || strings.Contains(text, "Invoice") || !strings.Contains(text, "not valid") {
				t.Fatalf("GET %s: %d, want 403 saying the link is not valid; page:\n%s", bad, status, text)
			}
		}
	})

	// A public note reaches all three: each mail carries its recipient's
	// own unsubscribe links.
	note := func(text string) {
		t.Helper()
		if out, err := d.run("tickets", "reply", tk.Ref, "--text", text, "--author", "Dana"); err != nil {
			t.Fatalf("reply: %v (%s)", err, out)
		}
	}
	note("We are looking into it.")
	hankNote := lastWithSubject(t, d.mails(t, hank, 1), tk.Ref)
	graceNote := lastWithSubject(t, d.mails(t, grace, 2), tk.Ref)
	jackNote := lastWithSubject(t, d.mails(t, jack, 1), tk.Ref)
	d.mails(t, ivy, 1)

	t.Run("one-click: a POST to the https List-Unsubscribe URL unsubscribes hank", func(t *testing.T) {
		https, _ := unsubscribeTargets(t, hankNote)
		status, body := get(t, http.MethodPost, https, "List-Unsubscribe=One-Click")
		if status != http.StatusOK {
			t.Fatalf("POST %s: %d: %.300s", https, status, body)
		}
	})
	t.Run("in Chromium: jack opens the unsubscribe link and presses the button", func(t *testing.T) {
		https, _ := unsubscribeTargets(t, jackNote)
		tab, cancel := chromedp.NewContext(b.ctx)
		defer cancel()
		if _, err := chromedp.Run(tab, chromedp.NavigateResponse(https)); err != nil {
			t.Fatalf("open %s: %v", https, err)
		}
		if _, err := chromedp.Run(tab, chromedp.Click(chromedp.CSS("button"))); err != nil {
			t.Fatalf("press Unsubscribe: %v", err)
		}
		if _, err := chromedp.Run(tab, chromedp.WaitVisible(chromedp.CSS("h1"))); err != nil {
			t.Fatal(err)
		}
		var text string
		eventually(t, 20*time.Second, "the unsubscribed page", func() (bool, string) {
			text, _ = chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
			return strings.Contains(text, "You are unsubscribed"), text
		})
	})
	t.Run("mailto: grace's mail to her unsubscribe address goes through the ingest path", func(t *testing.T) {
		_, mailto := unsubscribeTargets(t, graceNote)
		raw := custMail{from: grace, to: mailto, subject: "unsubscribe", body: "This message was automatically generated by Gmail.",
			messageID: "<unsub-" + randomHex(6) + "@customer.test>"}.raw()
		stack.Deliver(t, d.addr, raw)
		eventually(t, 60*time.Second, "grace and hank unsubscribed on "+tk.Ref, func() (bool, string) {
			got := d.ticketByID(t, tk.ID).Unsubscribed
			return slices.Equal(got, []string{grace, hank, jack}), fmt.Sprintf("unsubscribed %v", got)
		})
		var rows []ticket.Inbound
		for _, in := range ledger(t, d.st) {
			if in.Outcome == ticket.OutcomeUnsubscribed {
				rows = append(rows, in)
			}
		}
		if len(rows) != 1 || rows[0].TicketNumber != tk.Number {
			t.Fatalf("ledger rows with outcome unsubscribed: %+v, want one on %s", rows, tk.Ref)
		}
		for _, m := range d.ticketByID(t, tk.ID).Messages {
			if strings.Contains(m.Text, "automatically generated by Gmail") {
				t.Fatalf("the unsubscribe mail became a message on the ticket: %+v", m)
			}
		}
	})
	t.Run("the ticket JSON shows who unsubscribed", func(t *testing.T) {
		var got struct {
			Unsubscribed []string `json:"unsubscribed"`
		}
		if err := d.api(fmt.Sprintf("/api/v1/projects/acme/tickets/%d", tk.Number), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Unsubscribed, []string{grace, hank, jack}) {
			t.Fatalf("unsubscribed = %v", got.Unsubscribed)
		}
	})
	t.Run("the next note reaches ivy only", func(t *testing.T) {
		note("Refund issued.")
		ivyMails := d.mails(t, ivy, 2)
		if !strings.Contains(ivyMails[len(ivyMails)-1].Text, "Refund issued.") {
			t.Fatalf("ivy's last mail: %.300s", ivyMails[len(ivyMails)-1].Text)
		}
		if n := d.quietCount(t, grace, 3*time.Second); n != 2 {
			t.Errorf("grace has %d mails, want 2 (thank-you, first note): unsubscribed, and her unsubscribe mail unanswered", n)
		}
		for _, who := range []string{hank, jack} {
			if n := d.quietCount(t, who, 0); n != 1 {
				t.Errorf("%s has %d mails, want 1 (the first note)", who, n)
			}
		}
	})
}

// mailWithPDF is a customer's first mail with a PDF attached.
func mailWithPDF(from, to, cc, subject string, pdf []byte) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCc: %s\r\nSubject: %s\r\n", from, to, cc, subject)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <pdf-%s@customer.test>\r\nMIME-Version: 1.0\r\n", time.Now().Format(time.RFC1123Z), randomHex(6))
	b.WriteString("Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe amount is wrong, see the report.\r\n")
	b.WriteString("--b1\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64Lines(pdf))
	b.WriteString("--b1--\r\n")
	return []byte(b.String())
}

// ticketLink finds the link to the ticket's page in a mail's text.
func ticketLink(t *testing.T, m *enmime.Envelope, httpAddr string) string {
	t.Helper()
	re := regexp.MustCompile(`http://` + regexp.QuoteMeta(httpAddr) + `/tickets/acme/[0-9]+\?[^\s<>"]+`)
	link := re.FindString(m.Text)
	if link == "" {
		t.Fatalf("no link to the ticket's page in the mail:\n%s", m.Text)
	}
	return link
}

// unsubscribeTargets reads the https and mailto targets of a mail's
// List-Unsubscribe.
func unsubscribeTargets(t *testing.T, m *enmime.Envelope) (https, mailto string) {
	t.Helper()
	lu := m.GetHeader("List-Unsubscribe")
	for _, part := range regexp.MustCompile(`<([^>]+)>`).FindAllStringSubmatch(lu, -1) {
		switch {
		case strings.HasPrefix(part[1], "http"):
			https = part[1]
		case strings.HasPrefix(part[1], "mailto:"):
			mailto, _, _ = strings.Cut(strings.TrimPrefix(part[1], "mailto:"), "?")
		}
	}
	if https == "" || mailto == "" {
		t.Fatalf("List-Unsubscribe %q: want an http(s) and a mailto target", lu)
	}
	return https, mailto
}

func lastWithSubject(t *testing.T, envs []*enmime.Envelope, ref string) *enmime.Envelope {
	t.Helper()
	got := withSubject(envs, "["+ref+"]")
	if len(got) == 0 {
		t.Fatalf("no mail with [%s] in the subject", ref)
	}
	return got[len(got)-1]
}

// get sends a request without a token and returns the status and body.
func get(t *testing.T, method, url, form string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp.StatusCode, body
}

// browser is a headless Chromium, as the operator test drives it.
type browser struct{ ctx context.Context }

func newBrowser(t *testing.T) *browser {
	t.Helper()
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("headless Chromium is needed at %s (Debian package chromium; deploy/services.sh installs it): %v", chromium, err)
	}
	// The whole browser session: it waits for several mails meanwhile.
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(412, 915), // a phone
	)
	t.Cleanup(cancelAlloc)
	return &browser{ctx: actx}
}

// open loads url in a new tab and returns its status, text and a
// screenshot of the whole page.
func (b *browser) open(t *testing.T, url string) (int64, string, []byte) {
	t.Helper()
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if _, err := chromedp.Call(tab, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network: %v", err)
	}
	resp, err := chromedp.Run(tab, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	text, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		t.Fatalf("read the page text: %v", err)
	}
	png, err := chromedp.Run(tab, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return resp.Status, text, png
}

// eval loads url and evaluates expr on the page.
func (b *browser) eval(t *testing.T, url, expr string) string {
	t.Helper()
	tab, cancel := chromedp.NewContext(b.ctx)
	defer cancel()
	if _, err := chromedp.Run(tab, chromedp.NavigateResponse(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	v, err := chromedp.Run(tab, chromedp.Evaluate[string](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// base64Lines encodes data in base64 lines of 76 characters (RFC 2045).
func base64Lines(data []byte) string {
	s := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}
