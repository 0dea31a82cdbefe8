package store

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// A group of deliveries committed together ends exactly as the same
// deliveries committed one by one: numbered tickets, messages,
// attachments, participants, notifications and ledger rows; duplicates
// and already committed rows are recognised inside the group too.
func TestCommitManyMatchesOneByOne(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		earlier := mustCommit(t, e.s, newTicketDelivery(p, mustFetch(t, e.s, p.ID, 1, "earlier"), "<earlier@customer.test>"))

		var ds []ticket.Delivery
		for i := range 4 {
			id := mustFetch(t, e.s, p.ID, uint32(10+i), fmt.Sprint("new", i))
			d := newTicketDelivery(p, id, fmt.Sprintf("<new%d@customer.test>", i))
			d.DeskAddress = p.Address
			ds = append(ds, d)
		}
		ds[1].Message.Attachments = []ticket.Attachment{{Filename: "a.txt", ContentType: "text/plain", Data: []byte("attached")}}
		ds[2].Notify = append(ds[2].Notify, ticket.Notification{Kind: ticket.NotifyThankYou, To: "bob@customer.test"})
		dupInGroup := newTicketDelivery(p, mustFetch(t, e.s, p.ID, 20, "dup-in-group"), "<new0@customer.test>")
		dupOfEarlier := newTicketDelivery(p, mustFetch(t, e.s, p.ID, 21, "dup-of-earlier"), "<earlier@customer.test>")
		reply := ticket.Delivery{
			InboundID: mustFetch(t, e.s, p.ID, 22, "reply"), ProjectID: p.ID, Outcome: ticket.OutcomeReplyAdded,
			TicketID: earlier.TicketID, DedupKey: "mid:<reply@customer.test>",
			Message: &ticket.Message{From: "alice@customer.test", Subject: "Re: Printer on fire", Text: "still", MessageID: "<reply@customer.test>"},
		}
		committed := newTicketDelivery(p, mustFetch(t, e.s, p.ID, 23, "committed"), "<committed@customer.test>")
		first := mustCommit(t, e.s, committed)
		ds = append(ds, dupInGroup, dupOfEarlier, reply, committed)

		got := mustCommitMany(t, e.s, ds)
		var numbers []int64
		for i := range 4 {
			c := got[i]
			if c.Outcome != ticket.OutcomeTicketCreated || c.TicketID == 0 || len(c.Notifications) != len(ds[i].Notify) {
				t.Fatalf("delivery %d: %+v; want a new ticket with %d notifications", i, c, len(ds[i].Notify))
			}
			numbers = append(numbers, c.TicketNumber)
			tk, err := e.s.TicketByID(ctx, c.TicketID)
			if err != nil || tk.Number != c.TicketNumber || len(written(tk.Messages)) != 1 || tk.Messages[0].MessageID != ds[i].Message.MessageID {
				t.Fatalf("delivery %d: ticket %d = %+v, %v; want number %d with its message", i, c.TicketID, tk, err, c.TicketNumber)
			}
			if !slices.Equal(tk.Participants, []string{"alice@customer.test", "bob@customer.test"}) {
				t.Errorf("delivery %d: participants %v; want alice and bob, never the desk", i, tk.Participants)
			}
			if i == 1 && (len(tk.Messages[0].Attachments) != 1 || tk.Messages[0].Attachments[0].Filename != "a.txt") {
				t.Errorf("delivery 1: attachments %+v; want a.txt", tk.Messages[0].Attachments)
			}
			for k, id := range c.Notifications {
				n, err := e.s.Notification(ctx, id)
				if err != nil || n.TicketID != c.TicketID || n.To != ds[i].Notify[k].To || n.State != ticket.NotificationPending ||
					n.MessageID != tk.Messages[0].ID || !mailIDPattern.MatchString(n.MailID) {
					t.Errorf("delivery %d notification %d = %+v, %v; want pending to %s for message %d", i, k, n, err, ds[i].Notify[k].To, tk.Messages[0].ID)
				}
			}
			in, err := e.s.Inbound(ctx, ds[i].InboundID)
			if err != nil || in.Outcome != ticket.OutcomeTicketCreated || in.TicketID != c.TicketID || in.TicketNumber != c.TicketNumber ||
				in.MessageID != ds[i].Message.MessageID || in.ProcessedAt.IsZero() {
				t.Errorf("delivery %d: ledger %+v, %v; want ticket_created on ticket %d", i, in, err, c.TicketNumber)
			}
		}
		slices.Sort(numbers)
		if want := []int64{first.TicketNumber + 1, first.TicketNumber + 2, first.TicketNumber + 3, first.TicketNumber + 4}; !slices.Equal(numbers, want) {
			t.Errorf("ticket numbers %v; want %v (after the earlier tickets, no gaps)", numbers, want)
		}
		if c := got[4]; c.Outcome != ticket.OutcomeDuplicate || c.TicketID != got[0].TicketID || c.TicketNumber != got[0].TicketNumber {
			t.Errorf("duplicate inside the group: %+v; want a duplicate of ticket %d", c, got[0].TicketNumber)
		}
		if c := got[5]; c.Outcome != ticket.OutcomeDuplicate || c.TicketID != earlier.TicketID {
			t.Errorf("duplicate of an earlier message: %+v; want a duplicate of ticket %d", c, earlier.TicketNumber)
		}
		if c := got[6]; c.Outcome != ticket.OutcomeReplyAdded || c.TicketID != earlier.TicketID {
			t.Errorf("reply: %+v; want reply_added to ticket %d", c, earlier.TicketNumber)
		}
		if c := got[7]; c.Outcome != ticket.OutcomeTicketCreated || c.TicketID != first.TicketID || c.TicketNumber != first.TicketNumber {
			t.Errorf("already committed: %+v; want its first result %+v", c, first)
		}
		if n := countRows(t, e.s, "tickets"); n != 6 {
			t.Errorf("%d tickets; want 6 (earlier, committed, 4 new)", n)
		}
	})
}

// Deliveries committed at once (grouped on SQLite) each get their own
// result: one that cannot be committed fails alone.
func TestConcurrentCommitsFailAlone(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ps := mustProjects(t, e.s, "acme", "other")
		var ds []ticket.Delivery
		for i := range 8 {
			ds = append(ds, newTicketDelivery(ps[0], mustFetch(t, e.s, ps[0].ID, uint32(i+1), fmt.Sprint("m", i)), fmt.Sprintf("<m%d@customer.test>", i)))
		}
		ds[5].ProjectID = ps[1].ID // the ledger row is acme's
		errs := make([]error, len(ds))
		results := make([]ticket.Committed, len(ds))
		var wg sync.WaitGroup
		for i, d := range ds {
			wg.Go(func() { results[i], errs[i] = e.s.CommitDelivery(t.Context(), d) })
		}
		wg.Wait()
		for i := range ds {
			switch {
			case i == 5 && errs[i] == nil:
				t.Errorf("delivery 5 (wrong project) committed: %+v; want an error", results[i])
			case i != 5 && (errs[i] != nil || results[i].Outcome != ticket.OutcomeTicketCreated):
				t.Errorf("delivery %d = %+v, %v; want a new ticket", i, results[i], errs[i])
			}
		}
		if n := countRows(t, e.s, "tickets"); n != 7 {
			t.Errorf("%d tickets; want 7", n)
		}
	})
}
