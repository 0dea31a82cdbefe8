package notify

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestSubject(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, original, want string }{
		{"plain", "Printer on fire", "[acme#12] Printer on fire"},
		{"reply prefix dropped", "Re: Printer on fire", "[acme#12] Printer on fire"},
		{"stacked prefixes dropped", "RE: Fwd: AW: re[2]: Printer on fire", "[acme#12] Printer on fire"},
		{"tag not doubled", "Re: [acme#12] Printer on fire", "[acme#12] Printer on fire"},
		{"tag elsewhere removed", "Printer on fire [ACME#12]", "[acme#12] Printer on fire"},
		{"prefix after tag dropped", "[acme#12] Re: Printer on fire", "[acme#12] Printer on fire"},
		{"other ticket's tag kept", "[acme#11] Printer on fire", "[acme#12] [acme#11] Printer on fire"},
		{"word starting like a prefix kept", "Reminder: pay", "[acme#12] Reminder: pay"},
		{"whitespace collapsed", "  Printer \t on   fire ", "[acme#12] Printer on fire"},
		{"empty", "", "[acme#12] (no subject)"},
		{"only a prefix", "Re:", "[acme#12] (no subject)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Subject("acme#12", tc.original); got != tc.want {
				t.Errorf("Subject(%q) = %q, want %q", tc.original, got, tc.want)
			}
		})
	}
}

func ExampleSubject() {
	fmt.Println(Subject("acme#12", "Re: [acme#12] Printer on fire"))
	// Output: [acme#12] Printer on fire
}

func TestExpand(t *testing.T) {
	t.Parallel()
	v := values{
		"TICKET_REF": "acme#12", "TICKET_ID": "12", "TICKET_URL": "", "TICKET_DESCRIPTION": "a <b> & c",
		"NOTE_TEXT": "", "PROJECT_NAME": "Acme", "UNSUBSCRIBE_URL": "",
	}
	tests := []struct {
		name, tmpl string
		mode       expandMode
		want       string
		wantErr    string
	}{
		{name: "placeholders", tmpl: "%{TICKET_REF} is #%{TICKET_ID} of %{PROJECT_NAME}", want: "acme#12 is #12 of Acme\n"},
		{name: "spaces inside braces", tmpl: "%{ TICKET_REF } and %{TICKET_ID }", want: "acme#12 and 12\n"},
		{name: "line with only empty placeholders dropped", tmpl: "a\nFollow at %{TICKET_URL}\nb", want: "a\nb\n"},
		{name: "line with one non-empty placeholder kept", tmpl: "%{TICKET_URL}%{TICKET_REF}", want: "acme#12\n"},
		{name: "blank lines collapsed after a drop", tmpl: "a\n\n%{NOTE_TEXT}\n\nb\n\n", want: "a\n\nb\n"},
		{name: "text keeps values raw", tmpl: "%{TICKET_DESCRIPTION}", want: "a <b> & c\n"},
		{name: "html escapes values, not the template", tmpl: "<p>%{TICKET_DESCRIPTION}</p>", mode: modeHTML,
			want: "<p>a &lt;b&gt; &amp; c</p>\n"},
		{name: "derived html escapes template and values", tmpl: "<%{TICKET_DESCRIPTION}>", mode: modeDerivedHTML,
			want: "&lt;a &lt;b&gt; &amp; c&gt;\n"},
		{name: "unknown placeholder", tmpl: "Hi %{CUSTOMER_NAME}", wantErr: `unknown placeholder "%{CUSTOMER_NAME}"`},
		{name: "not a placeholder", tmpl: "100% {sure} %TICKET_REF", want: "100% {sure} %TICKET_REF\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := expand(tc.tmpl, v, tc.mode)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("expand(%q) error = %v, want %q", tc.tmpl, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("expand(%q): %v", tc.tmpl, err)
			}
			if got != tc.want {
				t.Errorf("expand(%q) = %q, want %q", tc.tmpl, got, tc.want)
			}
		})
	}
}

func TestTemplateValidate(t *testing.T) {
	t.Parallel()
	if err := (Template{Text: "%{ TICKET_REF } %{NOTE_TEXT}", HTML: "<b>%{PROJECT_NAME}</b>"}).Validate(); err != nil {
		t.Errorf("Validate(known placeholders) = %v, want nil", err)
	}
	if err := (Template{HTML: "%{ISSUE_NUMBER}"}).Validate(); err == nil {
		t.Error("Validate(%{ISSUE_NUMBER}) = nil, want an error naming the unknown placeholder")
	}
	for _, k := range []ticket.NotificationKind{ticket.NotifyThankYou, ticket.NotifyNote, ticket.NotifyNewParticipant,
		ticket.NotifyClosed, ticket.NotifyReopened} {
		spec, ok := kindSpecFor(k)
		if !ok {
			t.Errorf("no default template for kind %q", k)
			continue
		}
		if err := spec.tmpl.Validate(); err != nil {
			t.Errorf("default template of %q: %v", k, err)
		}
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	keys, err := ticket.NewReplyKeys([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	p := Project{ID: 1, Key: "acme", Name: "Acme Support", Address: "support@example.test"}
	tk := ticket.Ticket{ID: 7, Number: 12, Subject: "Printer on fire", Messages: []ticket.Message{
		{ID: 100, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, Text: "It burns.", MessageID: customerMID},
	}}
	n := ticket.Notification{ID: 1, TicketID: 7, MessageID: 100, Kind: ticket.NotifyThankYou,
		To: "Alice <alice@customer.test>", MailID: thankYouMID}

	t.Run("without a public URL no link line", func(t *testing.T) {
		out, err := render(p, keys, nil, n, tk)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.Text, "follow") || strings.Contains(out.HTML, "<a ") {
			t.Errorf("text or HTML mention a link without a PublicURL:\n%s\n%s", out.Text, out.HTML)
		}
		if out.To != "alice@customer.test" {
			t.Errorf("To = %q, want the bare address", out.To)
		}
	})
	t.Run("project override with explicit HTML", func(t *testing.T) {
		tmpls := map[ticket.NotificationKind]Template{ticket.NotifyThankYou: {
			Text: "Ticket %{TICKET_REF}: %{TICKET_DESCRIPTION} %{TICKET_URL}",
			HTML: `<a href="%{TICKET_URL}">%{TICKET_REF}</a>`,
		}}
		pp := p
		pp.PublicURL = "https://desk.example.com/d<2>"
		var err error
		pp.Links, err = ticket.NewCustomerLinks([]byte(testSecret), pp.PublicURL, ticket.LinkOptions{Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		out, err := render(pp, keys, tmpls, n, tk)
		if err != nil {
			t.Fatal(err)
		}
		link := pp.Links.TicketURL("acme", 12, "alice@customer.test")
		if want := "Ticket acme#12: It burns. " + link + "\n"; out.Text != want {
			t.Errorf("Text = %q, want %q", out.Text, want)
		}
		if want := `<a href="` + html.EscapeString(link) + `">acme#12</a>` + "\n"; out.HTML != want {
			t.Errorf("HTML = %q, want %q", out.HTML, want)
		}
	})
	t.Run("status notices are bulk, personal mail is not", func(t *testing.T) {
		for kind, wantBulk := range map[ticket.NotificationKind]bool{
			ticket.NotifyThankYou: false, ticket.NotifyClosed: true, ticket.NotifyReopened: true, ticket.NotifyNewParticipant: true,
		} {
			nn := n
			nn.Kind = kind
			out, err := render(p, keys, nil, nn, tk)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			bulk := false
			for _, h := range out.Headers {
				bulk = bulk || (h[0] == "Precedence" && h[1] == "bulk")
			}
			if bulk != wantBulk {
				t.Errorf("%s: Precedence bulk = %v, want %v", kind, bulk, wantBulk)
			}
		}
	})
	t.Run("a new participant's notice carries none of the ticket's text", func(t *testing.T) {
		spam := tk
		spam.Subject = "Cheap pills at spam.example"
		spam.Messages = []ticket.Message{{ID: 100, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
			Text: "Buy cheap pills at spam.example", MessageID: customerMID}}
		nn := n
		nn.Kind, nn.To = ticket.NotifyNewParticipant, "victim@spam.test"
		// An operator's template that asks for the text gets none of it either.
		tmpls := map[ticket.NotificationKind]Template{ticket.NotifyNewParticipant: {Text: "%{TICKET_REF}\n%{TICKET_DESCRIPTION}\n"}}
		for name, tm := range map[string]map[ticket.NotificationKind]Template{"default": nil, "operator's": tmpls} {
			out, err := render(p, keys, tm, nn, spam)
			if err != nil {
				t.Fatalf("%s template: %v", name, err)
			}
			for what, got := range map[string]string{"Subject": out.Subject, "Text": out.Text, "HTML": out.HTML} {
				if strings.Contains(got, "spam.example") {
					t.Errorf("%s template: %s carries the ticket's text: %q", name, what, got)
				}
			}
			if want := "[acme#12] You were added to a request to Acme Support"; out.Subject != want {
				t.Errorf("%s template: Subject = %q, want %q", name, out.Subject, want)
			}
		}
		if err := tmpls[ticket.NotifyNewParticipant].ValidateFor(ticket.NotifyNewParticipant); err == nil ||
			!strings.Contains(err.Error(), "TICKET_DESCRIPTION") {
			t.Errorf("ValidateFor(new_participant with %%{TICKET_DESCRIPTION}) = %v, want an error naming it", err)
		}
		if err := tmpls[ticket.NotifyNewParticipant].ValidateFor(ticket.NotifyThankYou); err != nil {
			t.Errorf("ValidateFor(thank_you with %%{TICKET_DESCRIPTION}) = %v, want nil", err)
		}
	})
	t.Run("rendering errors", func(t *testing.T) {
		for name, mutate := range map[string]func(*ticket.Notification){
			"unknown kind":       func(n *ticket.Notification) { n.Kind = "digest" },
			"no Message-ID":      func(n *ticket.Notification) { n.MailID = "" },
			"Message-ID no @":    func(n *ticket.Notification) { n.MailID = "<abc>" },
			"bad recipient":      func(n *ticket.Notification) { n.To = "@" },
			"message not on it":  func(n *ticket.Notification) { n.MessageID = 9 },
			"note without a msg": func(n *ticket.Notification) { n.Kind, n.MessageID = ticket.NotifyNote, 0 },
		} {
			nn := n
			mutate(&nn)
			if _, err := render(p, keys, nil, nn, tk); err == nil {
				t.Errorf("%s: render succeeded, want an error", name)
			}
		}
	})
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ErrAuth", fmt.Errorf("x: %w", ErrAuth), true},
		{"5xx reply", &textproto.Error{Code: 554, Msg: "no service"}, true},
		{"4xx reply", &textproto.Error{Code: 421, Msg: "busy"}, false},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{"timeout", context.DeadlineExceeded, false},
		{"permanent *Error wins over a wrapped 4xx", &Error{Step: "x", Permanent: true, Err: &textproto.Error{Code: 421}}, true},
		{"temporary *Error wins over a wrapped 5xx", &Error{Step: "x", Err: &textproto.Error{Code: 550}}, false},
		{"joined keeps the first classification", errors.Join(&Error{Step: "send", Permanent: true, Err: errors.New("x")}, errors.New("record attempt")), true},
		{"unknown error", errors.New("boom"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := Permanent(tc.err); got != tc.want {
				t.Errorf("Permanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestAuthErrorClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		err           error
		wantPermanent bool
		wantAuth      bool
	}{
		{"535 refused", &textproto.Error{Code: 535, Msg: "5.7.8 bad"}, true, true},
		{"454 temporary failure", &textproto.Error{Code: 454, Msg: "4.7.0 try later"}, false, false},
		{"no mechanism", errors.New("no supported AUTH mechanism"), true, true},
		{"connection lost", &net.OpError{Op: "read", Err: errors.New("reset")}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := authError(tc.err)
			if Permanent(err) != tc.wantPermanent || errors.Is(err, ErrAuth) != tc.wantAuth {
				t.Errorf("authError(%v): permanent=%v auth=%v, want %v %v", tc.err, Permanent(err), errors.Is(err, ErrAuth), tc.wantPermanent, tc.wantAuth)
			}
		})
	}
}
