package e2e

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/jhillyerd/enmime/v2"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/ticket"
)

// TestOutbound is issue 3 on the real stack: agents' replies with
// attachments (native up to 10 MB, links above), threading of customers'
// replies in the shapes real clients send, internal notes, close and
// reopen, per-project SMTP credentials, a 5xx recipient, an auto-responder
// loop and an SMTP server that goes down and comes back.
//
// The attachment and threading cases run on PostgreSQL too; the rest on
// SQLite. Subtests run one after another: the last one stops OpenSMTPD.
func TestOutbound(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	for _, b := range []backend{backends[1], backends[0]} { // postgres first: sqlite's run ends with SMTP down and up
		full := b.name == "sqlite"
		t.Run(b.name, func(t *testing.T) {
			d := startOutboundDesk(t, stack, b, full)
			t.Run("attachments", d.testAttachments)
			t.Run("customer replies from real clients thread onto the ticket", d.testClientThreading)
			if !full {
				return
			}
			t.Run("an internal note is not mailed; close and reopen are", d.testNotesAndStatus)
			t.Run("a 5xx recipient is a dead letter after one attempt", d.testRejectedRecipient)
			t.Run("an auto-responder loop stops at the cap", d.testAutoResponderLoop)
			t.Run("a reply with 300 Cc sends at most 5 short notices", d.testSpamCannon)
			t.Run("a stranger naming a customer's Message-ID reaches nobody on that ticket", d.testThreadHijack)
			t.Run("a project sends through its own SMTP credentials", d.testBrandedProject)
			t.Run("SMTP down, then up: the mail arrives exactly once", d.testSMTPDownThenUp)
		})
	}
}

func (d *obDesk) testAttachments(t *testing.T) {
	dave, erin := d.customer(t, "dave"), d.customer(t, "erin")
	tk, _ := d.openTicket(t, d.addr, dave, erin, "Logs attached")
	ref := tk.Ref

	t.Run("a 9 MB attachment reaches every participant intact", func(t *testing.T) {
		path, sum := randomFile(t, "trace.bin", 9<<20)
		out, err := d.run("tickets", "reply", ref, "--text", "Here is the trace.", "--attach", path, "--author", "Dana")
		if err != nil {
			t.Fatalf("tickets reply %s --attach 9 MB: %v (%s)", ref, err, out)
		}
		for _, who := range []struct {
			addr string
			n    int // the note is mail n in the INBOX (the requester has the thank-you first)
		}{{dave, 2}, {erin, 1}} {
			notes := withSubject(d.mails(t, who.addr, who.n), "["+ref+"]")
			if len(notes) < who.n {
				t.Fatalf("%s: %d mails with [%s] in the subject, want %d", who.addr, len(notes), ref, who.n)
			}
			note := notes[len(notes)-1]
			if len(note.Attachments) != 1 {
				t.Fatalf("%s: note has %d attachments, want the 9 MB trace.bin; text: %.300s", who.addr, len(note.Attachments), note.Text)
			}
			a := note.Attachments[0]
			if a.FileName != "trace.bin" || sha256Hex(a.Content) != sum {
				t.Fatalf("%s: attachment %q (%d bytes, sha256 %s), want trace.bin of %d bytes with sha256 %s",
					who.addr, a.FileName, len(a.Content), sha256Hex(a.Content), 9<<20, sum)
			}
			if !strings.Contains(note.Text, "Here is the trace.") {
				t.Errorf("%s: note text = %.300q, want the agent's reply", who.addr, note.Text)
			}
		}
	})

	t.Run("a 12 MB attachment set is sent as links that serve the files", func(t *testing.T) {
		p1, sum1 := randomFile(t, "part1.bin", 6<<20)
		p2, sum2 := randomFile(t, "part2.bin", 6<<20)
		out, err := d.run("tickets", "reply", ref, "--text", "Two big files.", "--attach", p1, "--attach", p2, "--author", "Dana")
		if err != nil {
			t.Fatalf("tickets reply %s with 12 MB: %v (%s)", ref, err, out)
		}
		mails := d.mails(t, erin, 2)
		note := mails[len(mails)-1]
		if len(note.Attachments) != 0 {
			t.Fatalf("12 MB note carries %d attachments, want links only", len(note.Attachments))
		}
		links := linkPattern.FindAllString(note.Text, -1)
		if len(links) != 2 {
			t.Fatalf("note text has links %v, want 2 to %s/...; text:\n%s", links, "http://"+d.httpAddr, note.Text)
		}
		want := map[string]bool{sum1: true, sum2: true}
		for _, link := range links {
			if !strings.HasPrefix(link, "http://"+d.httpAddr+"/") {
				t.Errorf("link %s is not under http.public_url http://%s", link, d.httpAddr)
			}
			sum, n := download(t, link)
			if !want[sum] {
				t.Errorf("GET %s: %d bytes with sha256 %s, want one of the two 6 MB files", link, n, sum)
			}
			delete(want, sum)
		}
	})
}

func (d *obDesk) testClientThreading(t *testing.T) {
	frank := d.customer(t, "frank")
	tk, thanks := d.openTicket(t, d.addr, frank, "", "VPN drops every hour")
	ourID := thanks.GetHeader("Message-Id")
	replyTo := thanks.GetHeader("Reply-To")
	if a, err := mail.ParseAddress(replyTo); err == nil {
		replyTo = a.Address
	}
	refs := thanks.GetHeader("References")
	if ourID == "" || len(ticket.FindReplyKeys(replyTo)) != 1 || len(ticket.FindReplyKeys(refs)) != 1 {
		t.Fatalf("thank-you: Message-Id %q, Reply-To %q, References %q; want our id and a reply key in both", ourID, replyTo, refs)
	}
	tests := []struct {
		name string
		mail custMail
	}{
		{"Outlook: In-Reply-To rewritten to an unknown id, References kept", custMail{
			to: d.addr, inReplyTo: "<AM0PR07MB1234ABCD@AM0PR07MB1234.eurprd07.prod.outlook.test>",
			references: refs + " " + ourID}},
		{"Gmail: to the Reply-To address, no threading headers", custMail{to: replyTo}},
		{"Apple Mail: References only, trimmed to our Message-ID", custMail{to: d.addr, references: ourID}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.mail
			m.from, m.subject, m.body = frank, "Re: "+thanks.GetHeader("Subject"), "Still broken, shape "+fmt.Sprint(i)
			m.messageID = fmt.Sprintf("<client-%d-%s@customer.test>", i, randomHex(4))
			d.stack.SendSMTP(t, frank, []string{m.to}, m.raw())
			eventually(t, 60*time.Second, "the reply on "+tk.Ref, func() (bool, string) {
				for _, msg := range d.ticketByID(t, tk.ID).Messages {
					if msg.MessageID == m.messageID {
						return true, ""
					}
				}
				for _, r := range ledger(t, d.st) {
					if r.MessageID == m.messageID && r.Outcome != ticket.OutcomeNone {
						return false, fmt.Sprintf("ledger says %s (ticket %d): %s", r.Outcome, r.TicketNumber, r.Reason)
					}
				}
				return false, "not processed yet"
			})
			if mine := d.waitTicket(t, frank, 1); len(mine) != 1 {
				t.Fatalf("frank has %d tickets after the reply, want 1", len(mine))
			}
		})
	}
}

func (d *obDesk) testNotesAndStatus(t *testing.T) {
	gina, hank := d.customer(t, "gina"), d.customer(t, "hank")
	tk, _ := d.openTicket(t, d.addr, gina, hank, "Invoice wrong")
	const secret = "customer seems confused, check billing"
	if out, err := d.run("tickets", "reply", tk.Ref, "--text", secret, "--internal"); err != nil {
		t.Fatalf("internal note: %v (%s)", err, out)
	}
	if out, err := d.run("tickets", "close", tk.Ref); err != nil || !strings.Contains(out, "closed") {
		t.Fatalf("tickets close %s = %q, %v; want it closed", tk.Ref, out, err)
	}
	// The close is queued after the internal note: once it arrived, a
	// mailed note would have too.
	g, h := d.mails(t, gina, 2), d.mails(t, hank, 1)
	for who, mails := range map[string][]string{gina: texts(g), hank: texts(h)} {
		for _, text := range mails {
			if strings.Contains(text, secret) {
				t.Errorf("%s received the internal note: %.200q", who, text)
			}
		}
	}
	if !strings.Contains(g[len(g)-1].Text, "has been closed") || !strings.Contains(h[len(h)-1].Text, "has been closed") {
		t.Errorf("after close, last mails = %.120q and %.120q; want the closed notice to both participants", g[len(g)-1].Text, h[len(h)-1].Text)
	}
	if out, err := d.run("tickets", "reopen", tk.Ref); err != nil || !strings.Contains(out, "open") {
		t.Fatalf("tickets reopen %s = %q, %v; want it open", tk.Ref, out, err)
	}
	g, h = d.mails(t, gina, 3), d.mails(t, hank, 2)
	if !strings.Contains(g[len(g)-1].Text, "reopened") || !strings.Contains(h[len(h)-1].Text, "reopened") {
		t.Errorf("after reopen, last mails = %.120q and %.120q; want the reopened notice to both", g[len(g)-1].Text, h[len(h)-1].Text)
	}
	if n, m := d.quietCount(t, gina, 2*time.Second), d.quietCount(t, hank, 0); n != 3 || m != 2 {
		t.Errorf("gina has %d mails (want thank-you, closed, reopened: 3), hank %d (want closed, reopened: 2)", n, m)
	}
}

func (d *obDesk) testRejectedRecipient(t *testing.T) {
	ivan := "ivan-" + d.tag + "@" + mailstack.RejectDomain
	m := custMail{from: ivan, to: d.addr, subject: "From a domain that refuses mail", body: "hi",
		messageID: "<ivan-" + randomHex(4) + "@reject.test>"}
	d.stack.Deliver(t, d.addr, m.raw())
	dl := d.deadLetterFor(t, ivan)
	if !strings.Contains(dl.Reason, "550") || !strings.Contains(dl.Reason, "permanent") {
		t.Errorf("dead letter reason = %q, want the server's 550 answer, classified permanent", dl.Reason)
	}
	time.Sleep(3 * time.Second) // three backoff steps: a retry would show
	n, err := d.st.Notification(t.Context(), dl.NotificationID)
	if err != nil {
		t.Fatalf("notification %d: %v", dl.NotificationID, err)
	}
	if n.Attempts != 1 || n.State != ticket.NotificationFailed {
		t.Fatalf("notification to %s: %d attempts, state %s; want 1 attempt and failed (no retry storm)", ivan, n.Attempts, n.State)
	}
}

func (d *obDesk) testAutoResponderLoop(t *testing.T) {
	robot := d.customer(t, "robot")
	// A badly behaved auto-responder: it answers every mail it gets with a
	// fresh mail, no Auto-Submitted, no threading headers, a new subject.
	send := func(i int) {
		m := custMail{from: robot, to: d.addr, subject: fmt.Sprintf("Your message has been received (%d)", i),
			body: "Thank you for your email.", messageID: fmt.Sprintf("<robot-%d-%s@customer.test>", i, randomHex(4))}
		d.stack.SendSMTP(t, robot, []string{d.addr}, m.raw())
	}
	// thankYou waits until the thank-you to robot on its n-th ticket is
	// sent or suppressed, and says which: the cap is applied at send
	// time, so the database, not a quiet spell, tells when the loop ended.
	thankYou := func(n int) string {
		t.Helper()
		tk := d.waitTicket(t, robot, n)[n-1]
		var status string
		eventually(t, 60*time.Second, "the thank-you on ticket "+ticket.FormatRef("acme", tk.Number)+" sent or suppressed", func() (bool, string) {
			var seen []string
			for _, m := range d.ticketByID(t, tk.ID).Messages {
				for _, r := range m.Delivery {
					if strings.EqualFold(r.To, robot) && r.Status != ticket.DeliveryQueued {
						status = r.Status
						return true, r.Status
					}
					seen = append(seen, r.To+": "+r.Status)
				}
			}
			return false, fmt.Sprintf("deliveries %v", seen)
		})
		return status
	}
	answered := 0
	for i := 0; i < 10; i++ {
		send(i)
		if s := thankYou(i + 1); s != ticket.DeliverySent {
			if s != ticket.DeliverySuppressed {
				t.Fatalf("the thank-you for the robot's mail %d is %s; want sent or suppressed", i, s)
			}
			break
		}
		answered++
		d.mails(t, robot, answered) // the thank-you arrived: the robot answers it
	}
	caps := 3 // notify.DefaultCaps: 3 automatic mails per recipient in 10 minutes
	if answered != caps {
		t.Fatalf("the auto-responder received %d thank-yous, want exactly the cap of %d, then none", answered, caps)
	}
	if mine := d.waitTicket(t, robot, caps+1); len(mine) != caps+1 {
		t.Fatalf("the loop made %d tickets, want %d (the first mail and one per thank-you)", len(mine), caps+1)
	}
	if n := d.quietCount(t, robot, 3*time.Second); n != caps {
		t.Fatalf("after the loop stopped, the auto-responder has %d mails, want still %d", n, caps)
	}
}

func (d *obDesk) testBrandedProject(t *testing.T) {
	jack, kate := d.customer(t, "jack"), d.customer(t, "kate")

	t.Run("its own From, sent through the AUTH listener", func(t *testing.T) {
		_, thanks := d.openTicket(t, brandDesk, jack, "", "Branded question")
		from := thanks.GetHeader("From")
		if !strings.Contains(from, brandDesk) || !strings.Contains(from, "Brand Care") {
			t.Errorf("From = %q, want \"Brand Care\" <%s>", from, brandDesk)
		}
		received := strings.Join(thanks.GetHeaderValues("Received"), "\n")
		if !strings.Contains(received, "ESMTPSA") {
			t.Errorf("Received headers do not show an authenticated TLS submission (ESMTPSA):\n%s", received)
		}
		if !strings.Contains(thanks.GetHeader("Reply-To"), "brand+") {
			t.Errorf("Reply-To = %q, want the brand desk's reply address", thanks.GetHeader("Reply-To"))
		}
	})

	t.Run("its DKIM signature verifies as delivered, List-Unsubscribe covered", func(t *testing.T) {
		raw := d.stack.WaitForMail(t, jack, "pw", 1, 90*time.Second)[0]
		der, err := x509.MarshalPKIXPublicKey(d.dkimPub)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
			LookupTXT: func(domain string) ([]string, error) {
				if domain != "desk2026._domainkey.example.test" {
					return nil, fmt.Errorf("no TXT record at %s", domain)
				}
				return []string{"v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)}, nil
			},
		})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.test" {
			t.Fatalf("DKIM verification of the delivered thank-you: %+v, %v; want one valid signature of example.test:\n%s", vs, err, raw)
		}
		for _, h := range []string{"List-Unsubscribe", "List-Unsubscribe-Post", "From", "Subject"} {
			if !slices.ContainsFunc(vs[0].HeaderKeys, func(k string) bool { return strings.EqualFold(k, h) }) {
				t.Errorf("the signature covers %v; want %s among them", vs[0].HeaderKeys, h)
			}
		}
	})

	t.Run("wrong credentials: a dead letter with the reason, check FAIL", func(t *testing.T) {
		m := custMail{from: kate, to: brokenDesk, subject: "Anyone there?", body: "hello", messageID: "<kate-" + randomHex(4) + "@customer.test>"}
		d.stack.Deliver(t, brokenDesk, m.raw())
		dl := d.deadLetterFor(t, kate)
		if dl.Project != "broken" || !strings.Contains(dl.Reason, "auth") || !strings.Contains(dl.Reason, "535") {
			t.Errorf("dead letter = project %q, reason %q; want project broken with the server's 535 authentication answer", dl.Project, dl.Reason)
		}
		n, err := d.st.Notification(t.Context(), dl.NotificationID)
		if err != nil || n.Attempts != 1 {
			t.Errorf("notification %d: %+v, %v; want one attempt (auth failures are not retried)", dl.NotificationID, n, err)
		}
		out, err := d.run("check")
		if err == nil {
			t.Errorf("check succeeded with a broken project; output:\n%s", out)
		}
		lines := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			for _, key := range []string{"acme", "brand", "broken"} {
				if strings.Contains(l, "project "+key+" smtp") {
					lines[key] = l
				}
			}
		}
		for key, want := range map[string]string{"acme": "ok", "brand": "ok", "broken": "FAIL"} {
			if !strings.HasPrefix(lines[key], want) {
				t.Errorf("check line for project %s smtp = %q, want %s; output:\n%s", key, lines[key], want, out)
			}
		}
		if strings.Contains(out, "not-the-password") || strings.Contains(out, mailstack.SMTPPassword) {
			t.Errorf("check printed a password:\n%s", out)
		}
		resp, err := http.Get("http://" + d.httpAddr + "/metrics")
		if err != nil {
			t.Fatalf("GET /metrics: %v", err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), `servicedesk_smtp_broken{project="broken"} 1`) {
			t.Errorf("/metrics does not mark project broken's SMTP as broken:\n%s", grepLines(string(metrics), "servicedesk_smtp_broken"))
		}
	})
}

func (d *obDesk) testSMTPDownThenUp(t *testing.T) {
	lena := d.customer(t, "lena")
	d.stack.StopSMTP(t)
	stopped := true
	t.Cleanup(func() {
		if stopped {
			d.stack.StartSMTP(t)
		}
	})
	before := strings.Count(d.proc.out.String(), "send failed, will retry")
	m := custMail{from: lena, to: d.addr, subject: "While the server is down", body: "hello", messageID: "<lena-" + randomHex(4) + "@customer.test>"}
	d.stack.Deliver(t, d.addr, m.raw())
	d.waitTicket(t, lena, 1)
	eventually(t, 30*time.Second, "two failed send attempts while OpenSMTPD is down", func() (bool, string) {
		n := strings.Count(d.proc.out.String(), "send failed, will retry") - before
		return n >= 2, fmt.Sprintf("%d retries logged", n)
	})
	d.stack.StartSMTP(t)
	stopped = false
	d.mails(t, lena, 1)
	if n := d.quietCount(t, lena, 5*time.Second); n != 1 {
		t.Fatalf("lena has %d thank-yous after SMTP came back, want exactly 1", n)
	}
}

func texts(envs []*enmime.Envelope) []string {
	out := make([]string, len(envs))
	for i, e := range envs {
		out[i] = e.Text + "\n" + e.HTML
	}
	return out
}
