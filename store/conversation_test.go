package store

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// written keeps of msgs what people wrote (customers' mail, agents'
// notes), leaving out the records of automatic outbound mail.
func written(msgs []ticket.Message) []ticket.Message {
	var out []ticket.Message
	for _, m := range msgs {
		if m.Direction == ticket.DirectionInbound || m.Kind == ticket.KindNote {
			out = append(out, m)
		}
	}
	return out
}

// outboundOf returns the ticket's outbound messages of kind.
func outboundOf(t *testing.T, s *Store, ticketID int64, kind ticket.Kind) []ticket.Message {
	t.Helper()
	tk, err := s.TicketByID(t.Context(), ticketID)
	if err != nil {
		t.Fatalf("TicketByID(%d): %v", ticketID, err)
	}
	var out []ticket.Message
	for _, m := range tk.Messages {
		if m.Direction == ticket.DirectionOutbound && m.Kind == kind {
			out = append(out, m)
		}
	}
	return out
}

func statuses(rs []ticket.Recipient) map[string]string {
	out := map[string]string{}
	for _, r := range rs {
		out[r.To] = r.Status
	}
	return out
}

func TestOutboundMailIsOnItsTicket(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		withNotices := func(d ticket.Delivery) ticket.Delivery {
			d.Notify = append(d.Notify,
				ticket.Notification{Kind: ticket.NotifyNewParticipant, To: "bob@customer.test"},
				ticket.Notification{Kind: ticket.NotifyNewParticipant, To: "carol@customer.test"},
				ticket.Notification{Kind: ticket.NotifyAgent, To: "agent@acme.test"},
			)
			return d
		}

		// Every path that opens a ticket writes the same records: one
		// transaction, a group (SQLite: multi-row statements; PostgreSQL:
		// one statement per ticket).
		one := mustCommit(t, e.s, withNotices(newTicketDelivery(p, mustFetch(t, e.s, p.ID, 1, "one@customer.test"), "<one@customer.test>")))
		group := mustCommitMany(t, e.s, []ticket.Delivery{
			withNotices(newTicketDelivery(p, mustFetch(t, e.s, p.ID, 2, "two@customer.test"), "<two@customer.test>")),
			withNotices(newTicketDelivery(p, mustFetch(t, e.s, p.ID, 3, "three@customer.test"), "<three@customer.test>")),
		})
		for _, c := range append([]ticket.Committed{one}, group...) {
			t.Run("the thank-you of a new ticket is one outbound message, queued", func(t *testing.T) {
				recs := outboundOf(t, e.s, c.TicketID, ticket.KindThankYou)
				if len(recs) != 1 {
					t.Fatalf("ticket %d has %d thank_you messages, want 1", c.TicketID, len(recs))
				}
				r := recs[0]
				if !slices.Equal(r.To, []string{"alice@customer.test"}) || r.From != "support@acme.test" || r.Subject != "Printer on fire" ||
					r.Internal || len(r.Delivery) != 1 || r.Delivery[0].Status != ticket.DeliveryQueued || r.Delivery[0].To != "alice@customer.test" {
					t.Fatalf("thank_you message = %+v; want from the desk to alice, queued", r)
				}
			})
			t.Run("notices of one kind share one message, one delivery per recipient", func(t *testing.T) {
				recs := outboundOf(t, e.s, c.TicketID, ticket.Kind(ticket.NotifyNewParticipant))
				if len(recs) != 1 || !slices.Equal(recs[0].To, []string{"bob@customer.test", "carol@customer.test"}) || len(recs[0].Delivery) != 2 {
					t.Fatalf("new_participant messages = %+v; want one to bob and carol with two deliveries", recs)
				}
			})
			t.Run("an agent's notice is internal", func(t *testing.T) {
				recs := outboundOf(t, e.s, c.TicketID, ticket.Kind(ticket.NotifyAgent))
				if len(recs) != 1 || !recs[0].Internal {
					t.Fatalf("agent_notice messages = %+v; want one, internal", recs)
				}
			})
			t.Run("each notification names its record and still the customer's mail", func(t *testing.T) {
				tk, _ := e.s.TicketByID(ctx, c.TicketID)
				for _, id := range c.Notifications {
					n, err := e.s.Notification(ctx, id)
					if err != nil {
						t.Fatalf("Notification(%d): %v", id, err)
					}
					i := slices.IndexFunc(tk.Messages, func(m ticket.Message) bool { return m.ID == n.OutboundID })
					if i < 0 || tk.Messages[i].Kind != ticket.Kind(n.Kind) || n.MessageID != tk.Messages[0].ID {
						t.Fatalf("notification %+v; want outbound_id naming its %s record and message_id the customer's mail %d", n, n.Kind, tk.Messages[0].ID)
					}
				}
			})
		}

		t.Run("committing again writes no second record", func(t *testing.T) {
			d := withNotices(newTicketDelivery(p, mustFetch(t, e.s, p.ID, 4, "four@customer.test"), "<four@customer.test>"))
			c := mustCommit(t, e.s, d)
			again := mustCommit(t, e.s, d)
			if again.TicketID != c.TicketID {
				t.Fatalf("second commit = %+v; want the first's ticket %d", again, c.TicketID)
			}
			if recs := outboundOf(t, e.s, c.TicketID, ticket.KindThankYou); len(recs) != 1 {
				t.Fatalf("%d thank_you messages after committing twice, want 1", len(recs))
			}
		})

		t.Run("the delivery follows the send job", func(t *testing.T) {
			ids := one.Notifications // thank-you, bob, carol, agent
			if err := e.s.MarkNotificationSent(ctx, ids[0], e.clock.Now()); err != nil {
				t.Fatal(err)
			}
			if err := e.s.RecordNotificationAttempt(ctx, ids[1], "421 try again later"); err != nil {
				t.Fatal(err)
			}
			if err := e.s.FailNotification(ctx, ids[2], "550 no such user"); err != nil {
				t.Fatal(err)
			}
			if err := e.s.SuppressNotification(ctx, ids[3], "rate cap: 3 automatic mails"); err != nil {
				t.Fatal(err)
			}
			tk, _ := e.s.TicketByID(ctx, one.TicketID)
			var got []ticket.Recipient
			for _, m := range tk.Messages {
				got = append(got, m.Delivery...)
			}
			want := []ticket.Recipient{
				{To: "alice@customer.test", Status: ticket.DeliverySent},
				{To: "bob@customer.test", Status: ticket.DeliveryQueued, Reason: "421 try again later"},
				{To: "carol@customer.test", Status: ticket.DeliveryFailed, Reason: "550 no such user"},
				{To: "agent@acme.test", Status: ticket.DeliverySuppressed, Reason: "rate cap: 3 automatic mails"},
			}
			if len(got) != len(want) {
				t.Fatalf("deliveries = %+v; want %+v", got, want)
			}
			for i, w := range want {
				g := got[i]
				if g.To != w.To || g.Status != w.Status || g.Reason != w.Reason || g.MessageID == "" {
					t.Errorf("delivery %d = %+v; want %+v with its Message-ID", i, g, w)
				}
			}
			if got[0].SentAt.IsZero() {
				t.Errorf("sent delivery has no sent_at")
			}
		})

		t.Run("the text of the mail is kept once, as first rendered", func(t *testing.T) {
			rec := outboundOf(t, e.s, one.TicketID, ticket.KindThankYou)[0]
			if err := e.s.RecordOutboundText(ctx, rec.ID, "[acme#1] Printer on fire", "Thank you."); err != nil {
				t.Fatal(err)
			}
			if err := e.s.RecordOutboundText(ctx, rec.ID, "[acme#1] other", "Something else."); err != nil {
				t.Fatal(err)
			}
			rec = outboundOf(t, e.s, one.TicketID, ticket.KindThankYou)[0]
			if rec.Text != "Thank you." || rec.Subject != "[acme#1] Printer on fire" {
				t.Fatalf("record = %q / %q; want the first rendering kept", rec.Subject, rec.Text)
			}
		})

		t.Run("an agent's note is its own record: its mails link to it", func(t *testing.T) {
			msg, ids, err := e.s.AddNote(ctx, "acme", one.TicketNumber, NoteInput{
				Author: "ops", Text: "We are on it.", Recipients: []string{"alice@customer.test", "bob@customer.test"},
			})
			if err != nil {
				t.Fatal(err)
			}
			notes := outboundOf(t, e.s, one.TicketID, ticket.KindNote)
			if len(notes) != 1 || notes[0].ID != msg.ID || len(notes[0].Delivery) != 2 || notes[0].Text != "We are on it." {
				t.Fatalf("notes = %+v; want the note alone, with two deliveries", notes)
			}
			for _, id := range ids {
				if n, _ := e.s.Notification(ctx, id); n.OutboundID != msg.ID || n.MessageID != msg.ID {
					t.Fatalf("note notification %+v; want it to name the note %d", n, msg.ID)
				}
			}
			if err := e.s.RecordOutboundText(ctx, msg.ID, "x", "rendered"); err != nil {
				t.Fatal(err)
			}
			if m, _ := e.s.MessageByID(ctx, msg.ID); m.Text != "We are on it." {
				t.Fatalf("note text = %q after RecordOutboundText; want the agent's text", m.Text)
			}
		})

		t.Run("closing and reopening are recorded with their recipients", func(t *testing.T) {
			e.clock.Advance(time.Second)
			rcpts := []string{"alice@customer.test", "bob@customer.test"}
			if _, _, _, err := e.s.SetTicketStatus(ctx, "acme", one.TicketNumber, ticket.StatusClosed, rcpts, "desk.test"); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := e.s.SetTicketStatus(ctx, "acme", one.TicketNumber, ticket.StatusClosed, rcpts, "desk.test"); err != nil {
				t.Fatal(err)
			}
			closed := outboundOf(t, e.s, one.TicketID, ticket.Kind(ticket.NotifyClosed))
			if len(closed) != 1 || !slices.Equal(closed[0].To, rcpts) ||
				!maps.Equal(statuses(closed[0].Delivery), map[string]string{"alice@customer.test": "queued", "bob@customer.test": "queued"}) {
				t.Fatalf("closed messages = %+v; want one (closing twice mails once) to alice and bob, queued", closed)
			}
		})
	})
}
