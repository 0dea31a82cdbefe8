package notify

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// GitLab Service Desk's own template texts: the default thank-you (GitLab's
// mailer spec), the placeholder examples of its service desk spec and the
// documented placeholders of .gitlab/service_desk_templates/thank_you.md
// and new_note.md.
const (
	gitlabDefaultThankYou = "Thank you for your support request! We are tracking your request as ticket %{ISSUE_ID}, " +
		"and will respond as soon as we can."
	gitlabPathAndUnsubscribe = "thank you, **your new issue:** %{ISSUE_ID}, path: %{ISSUE_PATH}" +
		"[Unsubscribe](%{UNSUBSCRIBE_URL})"
	gitlabHeaderFooter = "%{SYSTEM_HEADER}" + "thank you, **your new issue** has been created." + "%{SYSTEM_FOOTER}"
	gitlabWhitespace   = "thank you, **your new issue:** %{  ISSUE_ID}"
	gitlabThankYouFile = `%{SYSTEM_HEADER}

Hello,

we received your request and are tracking it as %{ISSUE_PATH}: %{ISSUE_URL}

> %{ISSUE_DESCRIPTION}

%{ADDITIONAL_TEXT}

[Unsubscribe](%{UNSUBSCRIBE_URL})

%{SYSTEM_FOOTER}
`
	gitlabNewNoteFile = `%{SYSTEM_HEADER}
%{NOTE_TEXT}

---
Your request %{ISSUE_ID}: %{ISSUE_DESCRIPTION}
%{ADDITIONAL_TEXT}
%{SYSTEM_FOOTER}
`
)

func TestGitLabTemplates(t *testing.T) {
	t.Parallel()
	keys, err := ticket.NewReplyKeys([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	links, err := ticket.NewCustomerLinks([]byte(testSecret), "https://desk.example.com", ticket.LinkOptions{Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	p := Project{ID: 1, Key: "acme", Name: "Acme Support", Address: "support@example.test", Links: links,
		PublicURL: "https://desk.example.com", SystemHeader: "ACME INTERNAL MAIL SYSTEM",
		SystemFooter: "Acme Corp, 1 Road", AdditionalText: "Do not share this link."}
	tk := ticket.Ticket{ID: 7, Number: 12, Subject: "Printer on fire", Messages: []ticket.Message{
		{ID: 100, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, Text: "It burns.", MessageID: customerMID},
		{ID: 101, Direction: ticket.DirectionOutbound, Kind: ticket.KindNote, Text: "Unplug it."},
	}}
	thanks := ticket.Notification{ID: 1, TicketID: 7, MessageID: 100, Kind: ticket.NotifyThankYou,
		To: "alice@customer.test", MailID: thankYouMID}
	note := thanks
	note.Kind, note.MessageID = ticket.NotifyNote, 101
	ticketURL := links.TicketURL("acme", 12, "alice@customer.test")
	unsubscribeURL := links.UnsubscribeURL("acme", 12, "alice@customer.test")

	cases := []struct {
		name     string
		n        ticket.Notification
		tmpl     string
		p        Project
		want     []string
		wantNone []string
	}{
		{name: "GitLab's default thank-you names the ticket as GitLab does", n: thanks, tmpl: gitlabDefaultThankYou, p: p,
			want: []string{"We are tracking your request as ticket #12, and will respond as soon as we can."}},
		{name: "ISSUE_PATH and UNSUBSCRIBE_URL", n: thanks, tmpl: gitlabPathAndUnsubscribe, p: p,
			want: []string{"your new issue:** #12, path: acme#12[Unsubscribe](" + unsubscribeURL + ")"}},
		{name: "SYSTEM_HEADER and SYSTEM_FOOTER from the configuration", n: thanks, tmpl: gitlabHeaderFooter, p: p,
			want: []string{"ACME INTERNAL MAIL SYSTEMthank you, **your new issue** has been created.Acme Corp, 1 Road"}},
		{name: "an unset header and footer render empty", n: thanks, tmpl: gitlabHeaderFooter,
			p:    func() Project { q := p; q.SystemHeader, q.SystemFooter = "", ""; return q }(),
			want: []string{"thank you, **your new issue** has been created.\n"}, wantNone: []string{"ACME"}},
		{name: "spaces inside the braces", n: thanks, tmpl: gitlabWhitespace, p: p,
			want: []string{"thank you, **your new issue:** #12\n"}},
		{name: "a whole thank_you.md", n: thanks, tmpl: gitlabThankYouFile, p: p,
			want: []string{"ACME INTERNAL MAIL SYSTEM\n", "tracking it as acme#12: " + ticketURL, "> It burns.",
				"Do not share this link.", "[Unsubscribe](" + unsubscribeURL + ")", "Acme Corp, 1 Road"}},
		{name: "a whole new_note.md", n: note, tmpl: gitlabNewNoteFile, p: p,
			want: []string{"Unplug it.", "Your request #12: It burns.", "Do not share this link."}},
		{name: "ADDITIONAL_TEXT unset drops its line", n: note, tmpl: gitlabNewNoteFile,
			p:    func() Project { q := p; q.AdditionalText = ""; return q }(),
			want: []string{"Your request #12: It burns.\nAcme Corp, 1 Road\n"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tm := Template{Text: tc.tmpl}
			if err := tm.ValidateFor(tc.n.Kind); err != nil {
				t.Fatalf("ValidateFor(%s): %v", tc.n.Kind, err)
			}
			out, err := render(tc.p, keys, map[ticket.NotificationKind]Template{tc.n.Kind: tm}, tc.n, tk)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, out.Text)
				}
			}
			for _, w := range tc.wantNone {
				if strings.Contains(out.Text, w) {
					t.Errorf("text has %q:\n%s", w, out.Text)
				}
			}
			if strings.Contains(out.Text, "%{") {
				t.Errorf("text keeps a placeholder:\n%s", out.Text)
			}
		})
	}
	t.Run("ISSUE_DESCRIPTION is refused in new_participant like TICKET_DESCRIPTION", func(t *testing.T) {
		t.Parallel()
		err := Template{Text: "%{ISSUE_DESCRIPTION}"}.ValidateFor(ticket.NotifyNewParticipant)
		if err == nil || !strings.Contains(err.Error(), "ISSUE_DESCRIPTION") {
			t.Fatalf("ValidateFor = %v, want an error naming ISSUE_DESCRIPTION", err)
		}
	})
	t.Run("a new participant gets an unsubscribe link but no link to the ticket", func(t *testing.T) {
		t.Parallel()
		n := thanks
		n.Kind, n.To = ticket.NotifyNewParticipant, "carol@customer.test"
		tm := Template{Text: "%{ISSUE_PATH} %{ISSUE_URL}\nstop: %{UNSUBSCRIBE_URL}\n"}
		out, err := render(p, keys, map[ticket.NotificationKind]Template{n.Kind: tm}, n, tk)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out.Text, "/tickets/acme/12?") ||
			!strings.Contains(out.Text, "stop: "+links.UnsubscribeURL("acme", 12, "carol@customer.test")) {
			t.Fatalf("text = %q: want the unsubscribe link only", out.Text)
		}
	})
	t.Run("every mail carries List-Unsubscribe for its recipient", func(t *testing.T) {
		t.Parallel()
		out, err := render(p, keys, nil, thanks, tk)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, kv := range out.Headers {
			h[kv[0]] = kv[1]
		}
		lu := h["List-Unsubscribe"]
		if !strings.HasPrefix(lu, "<https://desk.example.com/tickets/acme/12/unsubscribe?") ||
			!strings.Contains(lu, ", <mailto:support+unsubscribe-7-") || h["List-Unsubscribe-Post"] != "List-Unsubscribe=One-Click" {
			t.Fatalf("List-Unsubscribe = %q, -Post = %q", lu, h["List-Unsubscribe-Post"])
		}
		link := strings.TrimPrefix(lu[:strings.Index(lu, ">")], "<")
		u, _ := url.Parse(link)
		if rcpt, err := links.VerifyUnsubscribe("acme", 12, u.Query()); err != nil || rcpt != "alice@customer.test" {
			t.Fatalf("one-click link verifies as %q, %v", rcpt, err)
		}
		addr := lu[strings.Index(lu, "mailto:")+7 : strings.Index(lu, "?subject")]
		n, mac, ok := ticket.FindUnsubscribeToken(addr)
		if !ok || n != 7 || !links.VerifyUnsubscribeToken("acme", 7, mac, "alice@customer.test") {
			t.Fatalf("mailto %q does not verify for alice", addr)
		}
	})
}

func TestDeliverToUnsubscribed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.store.mu.Lock()
	tk := b.store.tickets[7]
	tk.Unsubscribed = []string{"alice@customer.test"}
	b.store.tickets[7] = tk
	b.store.mu.Unlock()
	if err := b.d.Deliver(t.Context(), 1); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	onlyAccepted(t, b.sink, 0)
	if n := b.store.get(1); n.State != stateSuppressed || !strings.Contains(n.LastError, "unsubscribed") {
		t.Fatalf("notification = %s (%q), want suppressed as unsubscribed", n.State, n.LastError)
	}
}
