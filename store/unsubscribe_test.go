package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestUnsubscribe(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "u@customer.test")

		t.Run("pending mail to the address is suppressed and the ticket shows it", func(t *testing.T) {
			_, ids, err := e.s.AddNote(ctx, "acme", c.TicketNumber, NoteInput{Author: "Dana", Text: "one",
				MailDomain: "desk.test", Recipients: []string{"alice@customer.test", "bob@customer.test"}})
			if err != nil {
				t.Fatal(err)
			}
			if err := e.s.Unsubscribe(ctx, "acme", c.TicketNumber, "Bob@Customer.test", UnsubscribedViaLink); err != nil {
				t.Fatalf("Unsubscribe: %v", err)
			}
			if err := e.s.Unsubscribe(ctx, "acme", c.TicketNumber, "bob@customer.test", UnsubscribedViaLink); err != nil {
				t.Fatalf("Unsubscribe again: %v", err)
			}
			states := map[string]ticket.NotificationState{}
			for _, id := range ids {
				n, err := e.s.Notification(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				states[n.To] = n.State
			}
			if states["bob@customer.test"] != NotificationSuppressed || states["alice@customer.test"] != ticket.NotificationPending {
				t.Fatalf("states after bob unsubscribed = %v; want bob suppressed, alice pending", states)
			}
			tk, err := e.s.TicketByID(ctx, c.TicketID)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(tk.Unsubscribed, []string{"bob@customer.test"}) {
				t.Fatalf("Unsubscribed = %v, want [bob@customer.test]", tk.Unsubscribed)
			}
		})
		t.Run("mail queued later to the address is suppressed as it is queued", func(t *testing.T) {
			e.clock.Advance(time.Minute)
			_, ids, err := e.s.AddNote(ctx, "acme", c.TicketNumber, NoteInput{Author: "Dana", Text: "two",
				MailDomain: "desk.test", Recipients: []string{"bob@customer.test"}})
			if err != nil {
				t.Fatal(err)
			}
			n, err := e.s.Notification(ctx, ids[0])
			if err != nil {
				t.Fatal(err)
			}
			if n.State != NotificationSuppressed || n.LastError != reasonUnsubscribed {
				t.Fatalf("notification to bob = %s (%q), want suppressed as unsubscribed", n.State, n.LastError)
			}
		})
		t.Run("a mailto unsubscribe is a ledger row, not a message", func(t *testing.T) {
			before, _ := e.s.TicketByID(ctx, c.TicketID)
			id := mustFetch(t, e.s, p.ID, 2, "unsub@customer.test")
			got := mustCommit(t, e.s, ticket.Delivery{
				InboundID: id, ProjectID: p.ID, Outcome: ticket.OutcomeUnsubscribed, TicketID: c.TicketID,
				DedupKey: "mid:<unsub@customer.test>", Unsubscribe: "alice@customer.test", Reason: "unsubscribe via mailto",
				Message: &ticket.Message{From: "alice@customer.test", Subject: "unsubscribe", MessageID: "<unsub@customer.test>"},
			})
			if got.Outcome != ticket.OutcomeUnsubscribed || got.TicketNumber != c.TicketNumber {
				t.Fatalf("committed %+v, want unsubscribed on ticket %d", got, c.TicketNumber)
			}
			after, _ := e.s.TicketByID(ctx, c.TicketID)
			if len(after.Messages) != len(before.Messages) {
				t.Fatalf("messages %d -> %d: an unsubscribe must not add one", len(before.Messages), len(after.Messages))
			}
			if !slices.Equal(after.Unsubscribed, []string{"alice@customer.test", "bob@customer.test"}) {
				t.Fatalf("Unsubscribed = %v", after.Unsubscribed)
			}
			in, _, err := e.s.InboundMessage(ctx, id, 0)
			if err != nil || in.Outcome != ticket.OutcomeUnsubscribed || in.TicketNumber != c.TicketNumber {
				t.Fatalf("ledger row = %+v, %v; want outcome unsubscribed with the ticket", in, err)
			}
		})
		t.Run("an unknown ticket is not found", func(t *testing.T) {
			err := e.s.Unsubscribe(ctx, "acme", 999, "bob@customer.test", UnsubscribedViaLink)
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("Unsubscribe of ticket 999 = %v, want ErrNotFound", err)
			}
		})
	})
}
