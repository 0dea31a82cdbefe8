package notify

import (
	"bytes"
	"context"
	"errors"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(); leaked != "" {
			os.Stderr.WriteString("goroutines leaked by the tests:\n" + leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits a little for goroutines of this package or of the
// SMTP libraries to end, and returns the stacks of those that did not.
func leakedGoroutines() string {
	var leaked string
	for range 50 {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		leaked = ""
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "TestMain") || strings.Contains(g, "leakedGoroutines") {
				continue
			}
			if strings.Contains(g, "servicedesk/notify.") || strings.Contains(g, "go-smtp") || strings.Contains(g, "go-mail") {
				leaked += g + "\n\n"
			}
		}
		if leaked == "" {
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
	return leaked
}

const (
	testSecret   = "0123456789abcdef0123456789abcdef"
	testPassword = "s3cret-Passw0rd"
	customerMID  = "<cust-1@customer.test>"
	olderMID     = "<older@customer.test>"
	thankYouMID  = "<n1.x7k2@example.test>"
)

var testNow = time.Date(2026, 3, 4, 10, 30, 0, 0, time.UTC)

type bundle struct {
	sink    *sink
	store   *memStore
	keys    *ticket.ReplyKeys
	project Project
	d       *Deliverer
}

// setup starts a sink, seeds ticket acme#12 (id 7) with the customer's
// mail (message 100) and a pending thank-you (notification 1), and returns
// a Deliverer for project acme that authenticates against the sink.
func setup(t *testing.T, tweak ...func(*Project, *Options)) *bundle {
	t.Helper()
	s := newSink(t)
	s.requireAuth("support@example.test", testPassword)
	keys, err := ticket.NewReplyKeys([]byte(testSecret))
	if err != nil {
		t.Fatalf("NewReplyKeys: %v", err)
	}
	cfg := s.config()
	cfg.Username, cfg.Password = "support@example.test", testPassword
	links, err := ticket.NewCustomerLinks([]byte(testSecret), "https://desk.example.com/",
		ticket.LinkOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	p := Project{ID: 1, Key: "acme", Name: "Acme Support", Address: "support@example.test", SMTP: cfg,
		PublicURL: "https://desk.example.com/", Links: links}
	opts := &Options{Now: func() time.Time { return testNow }}
	for _, f := range tweak {
		f(&p, opts)
	}
	st := newMemStore()
	st.tickets[7] = ticket.Ticket{
		ID: 7, ProjectID: 1, Project: "acme", Number: 12, Ref: "acme#12",
		Subject: "Re: Printer on fire", Status: ticket.StatusOpen, Requester: "alice@customer.test",
		Participants: []string{"alice@customer.test", "bob@customer.test"},
		Messages: []ticket.Message{{
			ID: 100, TicketID: 7, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
			From: "alice@customer.test", To: []string{"support@example.test"}, Subject: "Re: Printer on fire",
			Text:      "My printer is on fire.\nPlease help <now> & fast!",
			MessageID: customerMID, References: []string{olderMID}, CreatedAt: testNow.Add(-time.Hour),
		}},
	}
	st.put(ticket.Notification{ID: 1, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 100,
		Kind: ticket.NotifyThankYou, To: "alice@customer.test", MailID: thankYouMID, State: ticket.NotificationPending})
	d := NewDeliverer(st, keys, []Project{p}, opts)
	t.Cleanup(func() { _ = d.Close() })
	return &bundle{sink: s, store: st, keys: keys, project: p, d: d}
}

// parsed is a received mail, parsed.
type parsed struct {
	msg   *mail.Message
	parts map[string]string // media type -> decoded body
}

func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("received mail does not parse: %v\n%s", err, data)
	}
	p := parsed{msg: msg, parts: map[string]string{}}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read MIME part: %v", err)
		}
		var r io.Reader = part // multipart decodes quoted-printable itself
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			t.Fatalf("unexpected base64 part")
		}
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(part)
		}
		body, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read MIME part: %v", err)
		}
		pmt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		p.parts[pmt] = strings.ReplaceAll(string(body), "\r\n", "\n")
	}
	return p
}

func (p parsed) header(name string) string {
	v := p.msg.Header.Get(name)
	dec, err := new(mime.WordDecoder).DecodeHeader(v)
	if err != nil {
		return v
	}
	return dec
}

func onlyAccepted(t *testing.T, s *sink, want int) []received {
	t.Helper()
	got := s.accepted()
	if len(got) != want {
		t.Fatalf("SMTP server accepted %d messages, want %d", len(got), want)
	}
	return got
}

func TestDeliverThankYou(t *testing.T) {
	t.Parallel()
	b := setup(t)
	if err := b.d.Deliver(context.Background(), 1); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	got := onlyAccepted(t, b.sink, 1)[0]
	if got.From != "support@example.test" || len(got.To) != 1 || got.To[0] != "alice@customer.test" {
		t.Errorf("envelope = MAIL FROM %q RCPT TO %q, want support@example.test -> alice@customer.test", got.From, got.To)
	}
	m := parse(t, got.Data)
	key := b.keys.Sign("acme", 7)
	wantHeaders := []struct{ name, want string }{
		{"From", `"Acme Support" <support@example.test>`},
		{"To", "<alice@customer.test>"},
		{"Reply-To", "<support+" + key + "@example.test>"},
		{"Subject", "[acme#12] Printer on fire"},
		{"Message-ID", thankYouMID},
		{"In-Reply-To", customerMID},
		{"References", "<" + key + "@example.test> " + olderMID + " " + customerMID},
		{"Auto-Submitted", "auto-replied"},
		{"X-Auto-Response-Suppress", "All"},
		{"X-Loop", "support@example.test"},
		{"Precedence", ""},
		{"Date", testNow.Format(time.RFC1123Z)},
		{"List-Unsubscribe", "<" + b.project.Links.UnsubscribeURL("acme", 12, "alice@customer.test") + ">, <mailto:" +
			b.project.Links.UnsubscribeAddress("support@example.test", "acme", 7, "alice@customer.test") + "?subject=unsubscribe%2012>"},
		{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"},
	}
	for _, h := range wantHeaders {
		t.Run(h.name, func(t *testing.T) {
			if got := m.header(h.name); got != h.want {
				t.Errorf("%s = %q, want %q", h.name, got, h.want)
			}
		})
	}
	t.Run("Reply-To carries a key that verifies for the ticket", func(t *testing.T) {
		keys := ticket.FindReplyKeys(m.header("Reply-To"))
		if len(keys) != 1 {
			t.Fatalf("reply keys in Reply-To = %q, want one", keys)
		}
		if id, err := b.keys.Verify("acme", keys[0]); err != nil || id != 7 {
			t.Errorf("Verify(Reply-To key) = %d, %v; want ticket 7", id, err)
		}
	})
	t.Run("text part", func(t *testing.T) {
		text := m.parts["text/plain"]
		for _, want := range []string{"Acme Support", "acme#12", b.project.Links.TicketURL("acme", 12, "alice@customer.test"),
			"My printer is on fire.\nPlease help <now> & fast!"} {
			if !strings.Contains(text, want) {
				t.Errorf("text part lacks %q:\n%s", want, text)
			}
		}
	})
	t.Run("html part escapes values", func(t *testing.T) {
		h := m.parts["text/html"]
		link := html.EscapeString(b.project.Links.TicketURL("acme", 12, "alice@customer.test"))
		for _, want := range []string{"Please help &lt;now&gt; &amp; fast!", `<a href="` + link + `">`} {
			if !strings.Contains(h, want) {
				t.Errorf("html part lacks %q:\n%s", want, h)
			}
		}
		if strings.Contains(h, "<now>") {
			t.Errorf("html part contains the unescaped customer text:\n%s", h)
		}
	})
	t.Run("marked sent at the clock's time", func(t *testing.T) {
		n := b.store.get(1)
		if n.State != ticket.NotificationSent || !n.SentAt.Equal(testNow) {
			t.Errorf("notification state %q sent at %v, want sent at %v", n.State, n.SentAt, testNow)
		}
	})
}

func TestDeliverNote(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tk := b.store.tickets[7]
	tk.Messages = append(tk.Messages, ticket.Message{
		ID: 101, TicketID: 7, Direction: ticket.DirectionOutbound, Kind: ticket.KindNote,
		Text: "We sent a fire fighter.", MessageID: "<note-101@example.test>", CreatedAt: testNow,
	})
	b.store.tickets[7] = tk
	b.store.put(ticket.Notification{ID: 2, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101,
		Kind: ticket.NotifyNote, To: "bob@customer.test", MailID: "<n2@example.test>", State: ticket.NotificationPending})

	if err := b.d.Deliver(context.Background(), 2); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	m := parse(t, onlyAccepted(t, b.sink, 1)[0].Data)
	for _, h := range []struct{ name, want string }{
		{"Auto-Submitted", "auto-generated"},
		{"In-Reply-To", customerMID}, // answers the latest customer mail
		{"Message-ID", "<n2@example.test>"},
		{"Precedence", ""},
		{"Subject", "[acme#12] Printer on fire"},
	} {
		if got := m.header(h.name); got != h.want {
			t.Errorf("%s = %q, want %q", h.name, got, h.want)
		}
	}
	if text := m.parts["text/plain"]; !strings.HasPrefix(text, "We sent a fire fighter.\n") {
		t.Errorf("text part does not start with the note:\n%s", text)
	}
}

func TestDeliverNeverTwice(t *testing.T) {
	t.Parallel()
	t.Run("a second Deliver of a sent notification sends nothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for i := range 2 {
			if err := b.d.Deliver(context.Background(), 1); err != nil {
				t.Fatalf("Deliver #%d: %v", i+1, err)
			}
		}
		onlyAccepted(t, b.sink, 1)
	})
	t.Run("a notification stored as sent is not sent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		n := b.store.get(1)
		n.State = ticket.NotificationSent
		b.store.put(n)
		if err := b.d.Deliver(context.Background(), 1); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if got := b.sink.all(); len(got) != 0 {
			t.Errorf("SMTP server got %d messages, want none", len(got))
		}
	})
}

func TestDeliverRetryKeepsMessageID(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.sink.failData(smtpErr(451, "try again later"))
	err := b.d.Deliver(context.Background(), 1)
	if err == nil || Permanent(err) {
		t.Fatalf("Deliver with 451 after DATA = %v, want a temporary error", err)
	}
	b.sink.failData(nil)
	if err := b.d.Deliver(context.Background(), 1); err != nil {
		t.Fatalf("retry: %v", err)
	}
	all := b.sink.all()
	if len(all) != 2 || all[0].Accepted || !all[1].Accepted {
		t.Fatalf("server saw %d transactions, want a refused one then an accepted one", len(all))
	}
	for i, r := range all {
		if got := parse(t, r.Data).header("Message-ID"); got != thankYouMID {
			t.Errorf("attempt %d Message-ID = %q, want %q", i+1, got, thankYouMID)
		}
	}
	if n := b.store.get(1); n.Attempts != 1 || n.State != ticket.NotificationSent {
		t.Errorf("notification attempts=%d state=%q, want 1 failed attempt then sent", n.Attempts, n.State)
	}
}

func TestDeliverFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		arrange       func(b *bundle) // before NewDeliverer is not needed: these change sink or store
		tweak         func(p *Project, o *Options)
		wantPermanent bool
		wantAuth      bool
		wantStep      string
	}{
		{name: "4xx at RCPT is temporary", arrange: func(b *bundle) { b.sink.failRcpt(smtpErr(450, "mailbox busy")) }, wantStep: "send"},
		{name: "5xx at RCPT is permanent", arrange: func(b *bundle) { b.sink.failRcpt(smtpErr(550, "no such user")) }, wantPermanent: true, wantStep: "send"},
		{name: "4xx after DATA is temporary", arrange: func(b *bundle) { b.sink.failData(smtpErr(452, "insufficient storage")) }, wantStep: "send"},
		{name: "5xx after DATA is permanent", arrange: func(b *bundle) { b.sink.failData(smtpErr(554, "spam")) }, wantPermanent: true, wantStep: "send"},
		{name: "wrong password is a permanent auth failure", tweak: func(p *Project, _ *Options) { p.SMTP.Password = "wrong-" + testPassword },
			wantPermanent: true, wantAuth: true, wantStep: "auth"},
		{name: "server down is temporary", tweak: func(p *Project, _ *Options) { p.SMTP.Host, p.SMTP.Port = downAddr() }, wantStep: "connect"},
		{name: "unknown project is permanent", arrange: func(b *bundle) {
			n := b.store.get(1)
			n.ProjectID, n.Project = 99, "nope"
			b.store.put(n)
		}, wantPermanent: true, wantStep: "find project"},
		{name: "unparsable recipient is permanent", arrange: func(b *bundle) {
			n := b.store.get(1)
			n.To = "alice at customer"
			b.store.put(n)
		}, wantPermanent: true, wantStep: "render"},
		{name: "message missing from the ticket is a permanent rendering error", arrange: func(b *bundle) {
			n := b.store.get(1)
			n.MessageID = 555
			b.store.put(n)
		}, wantPermanent: true, wantStep: "render"},
		{name: "unknown placeholder in a template is a permanent rendering error", tweak: func(p *Project, o *Options) {
			o.Templates = map[string]map[ticket.NotificationKind]Template{"acme": {ticket.NotifyThankYou: {Text: "Hi %{NAME}"}}}
		}, wantPermanent: true, wantStep: "render"},
		{name: "missing ticket is temporary (store error)", arrange: func(b *bundle) { delete(b.store.tickets, 7) }, wantStep: "load ticket"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var tweaks []func(*Project, *Options)
			if tc.tweak != nil {
				tweaks = append(tweaks, tc.tweak)
			}
			b := setup(t, tweaks...)
			if tc.arrange != nil {
				tc.arrange(b)
			}
			err := b.d.Deliver(context.Background(), 1)
			if err == nil {
				t.Fatal("Deliver succeeded, want an error")
			}
			if got := Permanent(err); got != tc.wantPermanent {
				t.Errorf("Permanent(%v) = %v, want %v", err, got, tc.wantPermanent)
			}
			if got := errors.Is(err, ErrAuth); got != tc.wantAuth {
				t.Errorf("errors.Is(%v, ErrAuth) = %v, want %v", err, got, tc.wantAuth)
			}
			var e *Error
			if !errors.As(err, &e) || e.Step != tc.wantStep {
				t.Errorf("error %v: step = %q, want %q", err, stepOf(err), tc.wantStep)
			}
			if strings.Contains(err.Error(), testPassword) {
				t.Errorf("error text reveals the SMTP password: %v", err)
			}
			n := b.store.get(1)
			if n.State == ticket.NotificationSent {
				t.Error("notification marked sent after a failure")
			}
			if n.Attempts != 1 || n.LastError != err.Error() {
				t.Errorf("recorded attempts=%d last_error=%q, want 1 attempt with %q", n.Attempts, n.LastError, err.Error())
			}
			if got := b.sink.accepted(); len(got) != 0 {
				t.Errorf("SMTP server accepted %d messages, want none", len(got))
			}
		})
	}
}

func stepOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Step
	}
	return "<no *Error>"
}

func TestDeliverLoadNotificationError(t *testing.T) {
	t.Parallel()
	b := setup(t)
	err := b.d.Deliver(context.Background(), 42)
	if !errors.Is(err, errNotFound) {
		t.Fatalf("Deliver(unknown id) = %v, want the store's not-found error wrapped", err)
	}
	if Permanent(err) {
		t.Errorf("Permanent(%v) = true, want false (store errors are the caller's to judge)", err)
	}
}

func TestDeliverConnectionReuse(t *testing.T) {
	t.Parallel()
	addSecond := func(b *bundle) {
		n := b.store.get(1)
		n.ID, n.MailID, n.To = 2, "<n2@example.test>", "bob@customer.test"
		b.store.put(n)
	}
	t.Run("two sends share one SMTP session", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		addSecond(b)
		for _, id := range []int64{1, 2} {
			if err := b.d.Deliver(context.Background(), id); err != nil {
				t.Fatalf("Deliver(%d): %v", id, err)
			}
		}
		onlyAccepted(t, b.sink, 2)
		if sessions, _ := b.sink.counts(); sessions != 1 {
			t.Errorf("SMTP sessions = %d, want 1", sessions)
		}
	})
	t.Run("a connection the server dropped is redialed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		addSecond(b)
		if err := b.d.Deliver(context.Background(), 1); err != nil {
			t.Fatalf("Deliver(1): %v", err)
		}
		b.sink.dropConnections()
		if err := b.d.Deliver(context.Background(), 2); err != nil {
			t.Fatalf("Deliver(2) after the server dropped the connection: %v", err)
		}
		onlyAccepted(t, b.sink, 2)
		if sessions, _ := b.sink.counts(); sessions != 2 {
			t.Errorf("SMTP sessions = %d, want 2", sessions)
		}
	})
	t.Run("a connection that has sent its server's limit is redialed", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		addSecond(b)
		b.sink.limitPerConnection(1) // OpenSMTPD: 452 4.5.3 after 100
		for _, id := range []int64{1, 2} {
			if err := b.d.Deliver(context.Background(), id); err != nil {
				t.Fatalf("Deliver(%d) = %v; want a fresh connection, not a temporary failure", id, err)
			}
		}
		onlyAccepted(t, b.sink, 2)
		if sessions, _ := b.sink.counts(); sessions != 2 {
			t.Errorf("SMTP sessions = %d, want 2", sessions)
		}
	})
	t.Run("an idle connection is closed", func(t *testing.T) {
		t.Parallel()
		b := setup(t, func(_ *Project, o *Options) { o.IdleTimeout = 50 * time.Millisecond })
		if err := b.d.Deliver(context.Background(), 1); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			if _, logouts := b.sink.counts(); logouts == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the idle SMTP connection was not closed within 3s of a 50ms idle timeout")
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Run("Close quits the connection and refuses further sends", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		addSecond(b)
		if err := b.d.Deliver(context.Background(), 1); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if err := b.d.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for {
			if _, logouts := b.sink.counts(); logouts == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the SMTP session did not end after Close")
			}
			time.Sleep(10 * time.Millisecond)
		}
		err := b.d.Deliver(context.Background(), 2)
		if err == nil || Permanent(err) {
			t.Errorf("Deliver after Close = %v, want a temporary error", err)
		}
	})
}

func TestDeliverCancelledContext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.d.Deliver(ctx, 1)
	if err == nil || Permanent(err) {
		t.Fatalf("Deliver with a cancelled context = %v, want a temporary error", err)
	}
	if n := b.store.get(1); n.Attempts != 1 {
		t.Errorf("attempts = %d, want the failure recorded despite the cancelled context", n.Attempts)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	s := newSink(t)
	s.requireAuth("desk", testPassword)
	downHost, downPort := downAddr()
	tests := []struct {
		name          string
		cfg           func() SMTPConfig
		wantErr       bool
		wantPermanent bool
		wantAuth      bool
	}{
		{name: "good credentials", cfg: func() SMTPConfig {
			c := s.config()
			c.Username, c.Password = "desk", testPassword
			return c
		}},
		{name: "bad credentials", cfg: func() SMTPConfig {
			c := s.config()
			c.Username, c.Password = "desk", "nope"
			return c
		}, wantErr: true, wantPermanent: true, wantAuth: true},
		{name: "starttls required but not offered", cfg: func() SMTPConfig {
			c := s.config()
			c.Security = SecurityStartTLS
			return c
		}, wantErr: true},
		{name: "server down", cfg: func() SMTPConfig {
			c := s.config()
			c.Host, c.Port = downHost, downPort
			return c
		}, wantErr: true},
		{name: "invalid security", cfg: func() SMTPConfig {
			c := s.config()
			c.Security = "ssl"
			return c
		}, wantErr: true, wantPermanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := Check(context.Background(), tc.cfg())
			if (err != nil) != tc.wantErr {
				t.Fatalf("Check = %v, want error %v", err, tc.wantErr)
			}
			if Permanent(err) != tc.wantPermanent {
				t.Errorf("Permanent(%v) = %v, want %v", err, Permanent(err), tc.wantPermanent)
			}
			if errors.Is(err, ErrAuth) != tc.wantAuth {
				t.Errorf("errors.Is(%v, ErrAuth) = %v, want %v", err, !tc.wantAuth, tc.wantAuth)
			}
			if err != nil && strings.Contains(err.Error(), testPassword) {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
}
