package store

import (
	"slices"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// TestCommitBounceMarksBouncing: a bounce committed onto a ticket marks its
// failed recipients bouncing there until BouncingUntil, in the same
// transaction; a bounce that belongs to no ticket, or a duplicate of one,
// marks nobody.
func TestCommitBounceMarksBouncing(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")
		until := time.Date(2026, 5, 8, 12, 0, 0, 0, time.UTC)
		bounce := func(uid uint32, mid string, ticketID int64, rcpts ...string) ticket.Delivery {
			return ticket.Delivery{
				InboundID: mustFetch(t, e.s, p.ID, uid, mid), ProjectID: p.ID, Outcome: ticket.OutcomeBounce,
				Reason: "bounce", DedupKey: "mid:<" + mid + ">", TicketID: ticketID,
				Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindBounce,
					From: "mailer-daemon@mx.test", Subject: "Undelivered", MessageID: "<" + mid + ">"},
				Bouncing: rcpts, BouncingUntil: until,
			}
		}

		tests := []struct {
			name    string
			d       ticket.Delivery
			ticket  int64
			at      time.Time
			want    []string
			outcome ticket.Outcome
		}{
			{"threaded bounce marks its recipients, lower-cased", bounce(2, "b1@mx.test", c.TicketID, "Bob@Customer.test", " ", "carol@customer.test"),
				c.TicketID, until.Add(-time.Second), []string{"bob@customer.test", "carol@customer.test"}, ticket.OutcomeBounce},
			{"until is exclusive", bounce(3, "b2@mx.test", c.TicketID, "bob@customer.test"),
				c.TicketID, until, nil, ticket.OutcomeBounce},
			{"a duplicate bounce changes nothing", bounce(4, "b1@mx.test", c.TicketID, "dave@customer.test"),
				c.TicketID, until.Add(-time.Second), []string{"bob@customer.test", "carol@customer.test"}, ticket.OutcomeDuplicate},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := mustCommit(t, e.s, tt.d)
				if got.Outcome != tt.outcome {
					t.Fatalf("outcome = %s, want %s", got.Outcome, tt.outcome)
				}
				bouncing, err := e.s.BouncingRecipients(ctx, tt.ticket, tt.at)
				if err != nil || !slices.Equal(bouncing, tt.want) {
					t.Fatalf("BouncingRecipients(ticket %d, %v) = %v, %v; want %v", tt.ticket, tt.at, bouncing, err, tt.want)
				}
			})
		}

		t.Run("a bounce on no ticket marks nobody", func(t *testing.T) {
			before := countRows(t, e.s, "bounces")
			if got := mustCommit(t, e.s, bounce(5, "b3@mx.test", 0, "erin@customer.test")); got.TicketID != 0 {
				t.Fatalf("unthreaded bounce committed onto ticket %d, want none", got.TicketID)
			}
			if n := countRows(t, e.s, "bounces"); n != before {
				t.Fatalf("bounces has %d rows after an unthreaded bounce, want still %d", n, before)
			}
		})

		t.Run("a bounce onto an unknown ticket commits nothing", func(t *testing.T) {
			d := bounce(6, "b4@mx.test", 99999, "frank@customer.test")
			messages := countRows(t, e.s, "messages")
			if _, err := e.s.CommitDelivery(ctx, d); err == nil {
				t.Fatal("CommitDelivery onto an unknown ticket succeeded, want an error")
			}
			if n := countRows(t, e.s, "messages"); n != messages {
				t.Fatalf("messages = %d after a failed commit, want %d", n, messages)
			}
			if got, _ := e.s.BouncingRecipients(ctx, 99999, time.Time{}); len(got) != 0 {
				t.Fatalf("BouncingRecipients(unknown ticket) = %v after a failed commit, want none", got)
			}
		})
	})
}
