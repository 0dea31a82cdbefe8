package notify

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

const replyMID = "<bob-1@customer.test>"

// textStore is a memStore that keeps the text of outbound mail on its
// record, as store.RecordOutboundText does.
type textStore struct {
	*memStore
	mu    sync.Mutex
	texts map[int64][2]string // record ID -> subject, text
}

func (s *textStore) RecordOutboundText(_ context.Context, id int64, subject, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.texts[id]; !ok {
		s.texts[id] = [2]string{subject, text}
	}
	return nil
}

// conversationSetup is setup with bob's reply (message 101) on ticket
// acme#12 and a Deliverer whose store keeps texts.
func conversationSetup(t *testing.T, tweak ...func(*Project, *Options)) (*bundle, *textStore) {
	t.Helper()
	var opts *Options
	b := setup(t, append(tweak, func(_ *Project, o *Options) { opts = o })...)
	tk := b.store.tickets[7]
	tk.Messages = append(tk.Messages, ticket.Message{
		ID: 101, TicketID: 7, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
		From: "bob@customer.test", Subject: "Re: [acme#12] Printer on fire", Text: "It is out now, thanks.",
		MessageID: replyMID, References: []string{customerMID}, CreatedAt: testNow.Add(-time.Minute),
	})
	b.store.tickets[7] = tk
	ts := &textStore{memStore: b.store, texts: map[int64][2]string{}}
	b.d = NewDeliverer(ts, b.keys, []Project{b.project}, opts)
	t.Cleanup(func() { _ = b.d.Close() })
	return b, ts
}

func TestDeliverRelayedReply(t *testing.T) {
	t.Parallel()
	b, ts := conversationSetup(t)
	b.store.put(ticket.Notification{ID: 2, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101, OutboundID: 500,
		Kind: ticket.NotifyRelay, To: "alice@customer.test", MailID: "<relay-2@example.test>", State: ticket.NotificationPending})
	if err := b.d.Deliver(context.Background(), 2); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	m := parse(t, onlyAccepted(t, b.sink, 1)[0].Data)
	key := b.keys.Sign("acme", 7)
	for _, h := range []struct{ name, want string }{
		{"To", "<alice@customer.test>"},
		{"Reply-To", "<support+" + key + "@example.test>"},
		{"Subject", "[acme#12] Printer on fire"},
		{"In-Reply-To", replyMID},
		{"References", "<" + key + "@example.test> " + customerMID + " " + replyMID},
		{"Auto-Submitted", "auto-generated"},
		{"Precedence", ""},
	} {
		t.Run("it threads like a note: "+h.name, func(t *testing.T) {
			if got := m.header(h.name); got != h.want {
				t.Errorf("%s = %q, want %q", h.name, got, h.want)
			}
		})
	}
	t.Run("it carries the reply and names its sender", func(t *testing.T) {
		if text := m.parts["text/plain"]; !strings.Contains(text, "bob@customer.test wrote:\n\nIt is out now, thanks.") {
			t.Errorf("text part:\n%s\nwant bob's reply after a line naming him", text)
		}
	})
	t.Run("its text is kept on its record", func(t *testing.T) {
		got := ts.texts[500]
		if got[0] != "[acme#12] Printer on fire" || !strings.Contains(got[1], "It is out now, thanks.") {
			t.Errorf("record 500 = %q; want the subject and text as mailed", got)
		}
	})
}

func TestDeliverAgentNotice(t *testing.T) {
	t.Parallel()
	b, _ := conversationSetup(t)
	b.store.put(ticket.Notification{ID: 2, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 100,
		Kind: ticket.NotifyAgent, To: "agent@example.org", MailID: "<agent-2@example.test>", State: ticket.NotificationPending})
	b.store.put(ticket.Notification{ID: 3, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101,
		Kind: ticket.NotifyAgent, To: "agent@example.org", MailID: "<agent-3@example.test>", State: ticket.NotificationPending})
	for _, id := range []int64{2, 3} {
		if err := b.d.Deliver(context.Background(), id); err != nil {
			t.Fatalf("Deliver %d: %v", id, err)
		}
	}
	got := onlyAccepted(t, b.sink, 2)
	tests := []struct {
		name, subject string
		text          []string
	}{
		{"a new ticket", "[acme#12] New ticket from alice@customer.test: Printer on fire",
			[]string{"New ticket acme#12 from alice@customer.test", "My printer is on fire.", "Ticket: https://desk.example.com/api/v1/projects/acme/tickets/12"}},
		{"a customer's reply", "[acme#12] Reply from bob@customer.test: Printer on fire",
			[]string{"Reply on acme#12 from bob@customer.test", "It is out now, thanks.", "/api/v1/projects/acme/tickets/12"}},
	}
	for i, tc := range tests {
		t.Run("an agent is told of "+tc.name, func(t *testing.T) {
			m := parse(t, got[i].Data)
			if s := m.header("Subject"); s != tc.subject {
				t.Errorf("Subject = %q, want %q", s, tc.subject)
			}
			for _, w := range tc.text {
				if text := m.parts["text/plain"]; !strings.Contains(text, w) {
					t.Errorf("text part lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestConversationMailWithinLimits(t *testing.T) {
	t.Parallel()
	t.Run("a relayed reply is capped per recipient", func(t *testing.T) {
		b, _ := conversationSetup(t, func(_ *Project, o *Options) { o.Caps = []Cap{{Window: time.Hour, Max: 0}} })
		queue(b, 2, ticket.NotifyRelay, "alice@customer.test", testNow)
		if err := b.d.Deliver(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		if n := b.store.get(2); n.State != stateSuppressed || !strings.HasPrefix(b.store.reason(2), "rate cap:") {
			t.Errorf("relay: state %q reason %q; want suppressed by the rate cap", n.State, b.store.reason(2))
		}
	})
	t.Run("an agent's notice is not capped per recipient", func(t *testing.T) {
		b, _ := conversationSetup(t, func(_ *Project, o *Options) { o.Caps = []Cap{{Window: time.Hour, Max: 0}} })
		queue(b, 2, ticket.NotifyAgent, "agent@example.org", testNow)
		if err := b.d.Deliver(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		if n := b.store.get(2); n.State != ticket.NotificationSent {
			t.Errorf("agent notice: state %q reason %q; want sent", n.State, b.store.reason(2))
		}
	})
	t.Run("agents' notices never use up the customers' share of the ceiling", func(t *testing.T) {
		b, _ := conversationSetup(t, func(_ *Project, o *Options) { o.ProjectCeiling = 1 })
		queue(b, 20, ticket.NotifyAgent, "agent@example.org", testNow)
		queue(b, 21, ticket.NotifyThankYou, "dave@customer.test", testNow.Add(time.Second))
		for _, id := range []int64{20, 21} {
			if err := b.d.Deliver(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if n := b.store.get(id); n.State != ticket.NotificationSent {
				t.Errorf("%s: state %q reason %q; want sent", n.Kind, n.State, b.store.reason(id))
			}
		}
	})
	t.Run("the project's ceiling holds for relays and agents' notices", func(t *testing.T) {
		b, _ := conversationSetup(t, func(_ *Project, o *Options) { o.ProjectCeiling = 1 })
		queue(b, 10, ticket.NotifyThankYou, "dave@customer.test", testNow)
		queue(b, 11, ticket.NotifyRelay, "alice@customer.test", testNow.Add(time.Second))
		queue(b, 12, ticket.NotifyAgent, "agent@example.org", testNow.Add(2*time.Second))
		queue(b, 13, ticket.NotifyRelay, "carol@customer.test", testNow.Add(3*time.Second))
		for id := int64(10); id <= 13; id++ {
			if err := b.d.Deliver(context.Background(), id); err != nil {
				t.Fatal(err)
			}
		}
		// The thank-you is the one mail of the hour.
		for _, id := range []int64{11, 12, 13} {
			if n := b.store.get(id); n.State != stateSuppressed || !strings.HasPrefix(b.store.reason(id), "project ceiling:") {
				t.Errorf("%s: state %q reason %q; want suppressed by the project's ceiling", n.Kind, n.State, b.store.reason(id))
			}
		}
	})
}

// An operator's relay and agent_notice templates replace the built-in
// texts, as the other kinds' do.
func TestRelayAndAgentNoticeTemplates(t *testing.T) {
	t.Parallel()
	tmpls := map[ticket.NotificationKind]Template{
		ticket.NotifyRelay: {Text: "RELAYED on %{TICKET_REF}:\n%{NOTE_TEXT}\n%{SYSTEM_FOOTER}\n"},
		ticket.NotifyAgent: {Text: "AGENT NOTICE %{ISSUE_PATH}\n%{NOTE_TEXT}\n"},
	}
	for kind, tm := range tmpls {
		if err := tm.ValidateFor(kind); err != nil {
			t.Fatalf("ValidateFor(%s): %v", kind, err)
		}
	}
	b, _ := conversationSetup(t, func(p *Project, o *Options) {
		p.SystemFooter = "Acme Corp"
		o.Templates = map[string]map[ticket.NotificationKind]Template{"acme": tmpls}
	})
	b.store.put(ticket.Notification{ID: 2, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101,
		Kind: ticket.NotifyRelay, To: "alice@customer.test", MailID: "<relay-2@example.test>", State: ticket.NotificationPending})
	b.store.put(ticket.Notification{ID: 3, ProjectID: 1, Project: "acme", TicketID: 7, MessageID: 101,
		Kind: ticket.NotifyAgent, To: "agent@example.org", MailID: "<agent-3@example.test>", State: ticket.NotificationPending})
	for _, id := range []int64{2, 3} {
		if err := b.d.Deliver(context.Background(), id); err != nil {
			t.Fatalf("Deliver %d: %v", id, err)
		}
	}
	got := onlyAccepted(t, b.sink, 2)
	for i, want := range []string{
		"RELAYED on acme#12:\nbob@customer.test wrote:\n\nIt is out now, thanks.\nAcme Corp\n",
		"AGENT NOTICE acme#12\nReply on acme#12 from bob@customer.test\n",
	} {
		if text := parse(t, got[i].Data).parts["text/plain"]; !strings.Contains(text, want) {
			t.Errorf("mail %d text:\n%s\nwant the operator's template: %q", i+1, text, want)
		}
	}
}
