package store

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

var mailIDPattern = regexp.MustCompile(`^<sd\.[0-9]+\.[0-9a-f]{16}@desk\.test>$`)

func TestCommitDeliveryNewTickets(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		tests := []struct {
			name       string
			project    ticket.Project
			uid        uint32
			wantNumber int64
		}{
			{"first of acme", ps[0], 1, 1},
			{"second of acme", ps[0], 2, 2},
			{"first of beta has its own counter", ps[1], 1, 1},
			{"third of acme", ps[0], 3, 3},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				mid := fmt.Sprintf("%s-%d@customer.test", tt.project.Key, tt.uid)
				id := mustFetch(t, e.s, tt.project.ID, tt.uid, mid)
				c := mustCommit(t, e.s, newTicketDelivery(tt.project, id, "<"+mid+">"))
				if c.Outcome != ticket.OutcomeTicketCreated || c.TicketNumber != tt.wantNumber || c.TicketID == 0 || len(c.Notifications) != 1 {
					t.Fatalf("Committed = %+v, want ticket_created number %d with one notification", c, tt.wantNumber)
				}
			})
		}

		t.Run("ticket content", func(t *testing.T) {
			raw := "att@customer.test"
			id := mustFetch(t, e.s, ps[1].ID, 9, raw)
			d := newTicketDelivery(ps[1], id, "<"+raw+">")
			d.Message.Attachments = []ticket.Attachment{{Filename: "log.txt", ContentType: "text/plain", Data: []byte("boom")}}
			d.Message.References = []string{"<x@a>", "<y@b>"}
			c := mustCommit(t, e.s, d)
			got, err := e.s.TicketByNumber(ctx, "beta", c.TicketNumber)
			if err != nil {
				t.Fatalf("TicketByNumber(beta, %d): %v", c.TicketNumber, err)
			}
			if got.Ref != "beta#2" || got.Status != ticket.StatusOpen || got.Subject != "Printer on fire" || got.Requester != "alice@customer.test" {
				t.Fatalf("ticket = %+v, want beta#2, open, the subject and the lower-cased requester", got)
			}
			if want := []string{"alice@customer.test", "bob@customer.test"}; !slices.Equal(got.Participants, want) {
				t.Fatalf("participants = %v, want %v (lower-cased, deduplicated, no desk address)", got.Participants, want)
			}
			byPeople := written(got.Messages)
			if len(byPeople) != 1 {
				t.Fatalf("ticket has %d messages written by people, want 1", len(byPeople))
			}
			m := byPeople[0]
			if m.MessageID != "<"+raw+">" || m.InboundID != id || m.Text != "It burns." || !slices.Equal(m.Cc, []string{"bob@customer.test"}) ||
				!slices.Equal(m.References, []string{"<x@a>", "<y@b>"}) || len(m.Attachments) != 1 {
				t.Fatalf("message = %+v, want the delivered message with its references and one attachment", m)
			}
			a := m.Attachments[0]
			meta, data, err := e.s.Attachment(ctx, "beta", c.TicketNumber, a.ID)
			if err != nil || string(data) != "boom" || meta.Filename != "log.txt" || meta.Size != 4 || meta.SHA256 != a.SHA256 {
				t.Fatalf("Attachment = %+v, %q, %v; want log.txt with content boom", meta, data, err)
			}
			_, _, err = e.s.Attachment(ctx, "beta", 1, a.ID)
			wantErr(t, "Attachment on another ticket", err, ErrNotFound)

			n, err := e.s.Notification(ctx, c.Notifications[0])
			if err != nil {
				t.Fatalf("Notification(%d): %v", c.Notifications[0], err)
			}
			if n.State != ticket.NotificationPending || n.Kind != ticket.NotifyThankYou || n.To != "alice@customer.test" ||
				n.TicketID != c.TicketID || n.MessageID != m.ID || n.Project != "beta" || !mailIDPattern.MatchString(n.MailID) ||
				!strings.HasPrefix(n.MailID, fmt.Sprintf("<sd.%d.", c.TicketID)) {
				t.Fatalf("notification = %+v, want a pending thank-you to alice about message %d with a MailID like %s naming ticket %d", n, m.ID, mailIDPattern, c.TicketID)
			}
			in, err := e.s.Inbound(ctx, id)
			if err != nil || in.Outcome != ticket.OutcomeTicketCreated || in.TicketID != c.TicketID || in.TicketNumber != 2 || in.ProcessedAt.IsZero() {
				t.Fatalf("ledger row = %+v, %v; want ticket_created on ticket beta#2 with processed_at", in, err)
			}
			byID, err := e.s.TicketByID(ctx, c.TicketID)
			if err != nil || byID.Ref != "beta#2" || len(written(byID.Messages)) != 1 {
				t.Fatalf("TicketByID(%d) = %+v, %v; want beta#2 with its message", c.TicketID, byID, err)
			}
		})

		t.Run("committing the same inbound twice changes nothing", func(t *testing.T) {
			id := mustFetch(t, e.s, ps[0].ID, 20, "twice@x")
			d := newTicketDelivery(ps[0], id, "<twice@x>")
			first := mustCommit(t, e.s, d)
			before := countRows(t, e.s, "messages")
			second := mustCommit(t, e.s, d)
			if second.Outcome != first.Outcome || second.TicketID != first.TicketID || second.TicketNumber != first.TicketNumber ||
				!slices.Equal(second.Notifications, first.Notifications) {
				t.Fatalf("second commit = %+v, want the first result %+v", second, first)
			}
			if after := countRows(t, e.s, "messages"); after != before {
				t.Fatalf("messages went from %d to %d on a repeated commit", before, after)
			}
		})

		t.Run("failed outcome opens a dead letter", func(t *testing.T) {
			id := mustFetch(t, e.s, ps[0].ID, 30, "bad@x")
			c := mustCommit(t, e.s, ticket.Delivery{InboundID: id, ProjectID: ps[0].ID, Outcome: ticket.OutcomeFailed, Reason: "parse: no header"})
			if c.Outcome != ticket.OutcomeFailed || c.TicketID != 0 {
				t.Fatalf("Committed = %+v, want failed without ticket", c)
			}
			dls, _, _ := e.s.DeadLetters(ctx, Page{})
			if len(dls) != 1 || dls[0].InboundID != id || dls[0].Reason != "parse: no header" {
				t.Fatalf("dead letters = %+v, want one for inbound %d with the reason", dls, id)
			}
		})
	})
}

func TestCommitDeliveryReply(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		first := mustFetch(t, e.s, p.ID, 1, "q@customer.test")
		c := mustCommit(t, e.s, newTicketDelivery(p, first, "<q@customer.test>"))
		if err := e.s.db.Model(&ticketRow{}).Where("id = ?", c.TicketID).Update("status", "closed").Error; err != nil {
			t.Fatalf("close ticket: %v", err)
		}

		reply := mustFetch(t, e.s, p.ID, 2, "r@customer.test")
		rc := mustCommit(t, e.s, ticket.Delivery{
			InboundID: reply, ProjectID: p.ID, Outcome: ticket.OutcomeReplyAdded, DedupKey: "mid:<r@customer.test>",
			TicketID: c.TicketID, Reopen: true, Participants: []string{"Carol@Customer.test", "support+r1-x@acme.test"},
			Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, From: "alice@customer.test",
				Subject: "Re: Printer on fire", Text: "Still burning", FullText: "Still burning\n\n> Printer on fire",
				MessageID: "<r@customer.test>", InReplyTo: "<q@customer.test>"},
		})
		if rc.Outcome != ticket.OutcomeReplyAdded || rc.TicketID != c.TicketID || rc.TicketNumber != 1 {
			t.Fatalf("reply Committed = %+v, want reply_added on ticket %d", rc, c.TicketID)
		}
		got, err := e.s.TicketByID(ctx, c.TicketID)
		if err != nil {
			t.Fatalf("TicketByID: %v", err)
		}
		if got.Status != ticket.StatusOpen {
			t.Fatalf("status after reply = %s, want reopened", got.Status)
		}
		if w := written(got.Messages); len(w) != 2 || w[1].Text != "Still burning" {
			t.Fatalf("messages = %+v, want the reply second", got.Messages)
		}
		if w := written(got.Messages); w[1].FullText != "Still burning\n\n> Printer on fire" || w[0].FullText != "" {
			t.Fatalf("full texts = %q, %q; want the reply's whole text kept beside its new part, none on the first mail",
				w[0].FullText, w[1].FullText)
		}
		if !slices.Contains(got.Participants, "carol@customer.test") || slices.ContainsFunc(got.Participants, func(s string) bool { return strings.Contains(s, "acme.test") }) {
			t.Fatalf("participants = %v, want carol added and no desk sub-address", got.Participants)
		}
		if !got.UpdatedAt.After(got.CreatedAt) && !got.UpdatedAt.Equal(got.CreatedAt) {
			t.Fatalf("updated_at %v before created_at %v", got.UpdatedAt, got.CreatedAt)
		}

		t.Run("ThreadMatches", func(t *testing.T) {
			other := mustFetch(t, e.s, p.ID, 3, "other@customer.test")
			oc := mustCommit(t, e.s, newTicketDelivery(p, other, "<other@customer.test>"))
			n, _ := e.s.Notification(ctx, c.Notifications[0])
			mine := ticket.ThreadMatch{TicketID: c.TicketID, Ours: true}
			customers := ticket.ThreadMatch{TicketID: c.TicketID}
			tests := []struct {
				name string
				ids  []string
				want []ticket.ThreadMatch
			}{
				{"by a customer's Message-ID: not ours", []string{"<nope@x>", "<r@customer.test>"}, []ticket.ThreadMatch{customers}},
				{"by our outbound MailID: ours", []string{n.MailID}, []ticket.ThreadMatch{mine}},
				{"ours wins on the same ticket", []string{"<r@customer.test>", n.MailID}, []ticket.ThreadMatch{mine}},
				{"newest ticket first", []string{"<q@customer.test>", "<other@customer.test>"},
					[]ticket.ThreadMatch{{TicketID: oc.TicketID}, customers}},
				{"none matches", []string{"<nope@x>"}, nil},
				{"empty list", nil, nil},
				{"thousands of IDs in bounded statements", append(manyIDs(5000), "<r@customer.test>"), []ticket.ThreadMatch{customers}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					got, err := e.s.ThreadMatches(ctx, p.ID, tt.ids)
					if err != nil || !slices.Equal(got, tt.want) {
						t.Fatalf("ThreadMatches(%d ids) = %+v, %v; want %+v", len(tt.ids), got, err, tt.want)
					}
				})
			}
			q := mustProjects(t, e.s, "beta")[0]
			if got, err := e.s.ThreadMatches(ctx, q.ID, []string{"<r@customer.test>"}); err != nil || len(got) != 0 {
				t.Fatalf("ThreadMatches in another project = %+v, %v; want none", got, err)
			}
		})
	})
}

// manyIDs returns n distinct Message-IDs that match nothing.
func manyIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "<guess-" + strconv.Itoa(i) + "@x.test>"
	}
	return ids
}

func TestCommitDeliveryDuplicates(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]

		t.Run("second inbound with the same Message-ID", func(t *testing.T) {
			a := mustFetch(t, e.s, p.ID, 1, "same@x")
			b := mustFetch(t, e.s, p.ID, 2, "same@x")
			first := mustCommit(t, e.s, newTicketDelivery(p, a, "<same@x>"))
			dup := mustCommit(t, e.s, newTicketDelivery(p, b, "<same@x>"))
			if dup.Outcome != ticket.OutcomeDuplicate || dup.TicketID != first.TicketID || len(dup.Notifications) != 0 {
				t.Fatalf("second Committed = %+v, want duplicate of ticket %d without notifications", dup, first.TicketID)
			}
			in, _ := e.s.Inbound(ctx, b)
			if in.Outcome != ticket.OutcomeDuplicate || in.Reason != fmt.Sprintf("duplicate of inbound %d", a) {
				t.Fatalf("ledger row = %+v, want duplicate naming inbound %d", in, a)
			}
			if n := countRows(t, e.s, "tickets"); n != 1 {
				t.Fatalf("%d tickets, want 1", n)
			}
		})

		t.Run("8 workers commit the same Message-ID at once", func(t *testing.T) {
			other := e.open(t) // half the workers in a "second process"
			var ids []int64
			for i := range 8 {
				ids = append(ids, mustFetch(t, e.s, p.ID, uint32(100+i), "race@x"))
			}
			results := commitConcurrently(t, []*Store{e.s, other}, func(i int) ticket.Delivery {
				return newTicketDelivery(p, ids[i], "<race@x>")
			})
			assertOneWinner(t, results)
			var n int64
			e.s.db.Model(&ticketRow{}).Where("subject = ? AND id IN (SELECT ticket_id FROM messages WHERE message_id = ?)", "Printer on fire", "<race@x>").Count(&n)
			if n != 1 {
				t.Fatalf("%d tickets hold <race@x>, want exactly 1", n)
			}
		})

		t.Run("the same inbound committed by 8 workers at once", func(t *testing.T) {
			other := e.open(t)
			id := mustFetch(t, e.s, p.ID, 200, "once@x")
			before := countRows(t, e.s, "tickets")
			results := commitConcurrently(t, []*Store{e.s, other}, func(int) ticket.Delivery {
				return newTicketDelivery(p, id, "<once@x>")
			})
			for i, c := range results {
				if c.Outcome != ticket.OutcomeTicketCreated || c.TicketID != results[0].TicketID {
					t.Fatalf("worker %d got %+v, want every worker to see the one ticket_created %d", i, c, results[0].TicketID)
				}
			}
			if after := countRows(t, e.s, "tickets"); after != before+1 {
				t.Fatalf("tickets went from %d to %d, want one more", before, after)
			}
		})
	})
}

func commitConcurrently(t *testing.T, stores []*Store, delivery func(i int) ticket.Delivery) []ticket.Committed {
	t.Helper()
	results := make([]ticket.Committed, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = stores[i%len(stores)].CommitDelivery(t.Context(), delivery(i))
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("worker %d: CommitDelivery: %v", i, err)
		}
	}
	return results
}

func assertOneWinner(t *testing.T, results []ticket.Committed) {
	t.Helper()
	created, dups := 0, 0
	var ticketID int64
	for _, c := range results {
		switch c.Outcome {
		case ticket.OutcomeTicketCreated:
			created++
			ticketID = c.TicketID
		case ticket.OutcomeDuplicate:
			dups++
		}
	}
	if created != 1 || dups != len(results)-1 {
		t.Fatalf("outcomes: %d ticket_created, %d duplicate; want 1 and %d", created, dups, len(results)-1)
	}
	for i, c := range results {
		if c.TicketID != ticketID {
			t.Fatalf("worker %d points at ticket %d, want the winner's %d", i, c.TicketID, ticketID)
		}
	}
}

// TestCommitDeliveryParticipantCeiling: replies committed at once, each
// bringing five new Cc addresses, together fill a ticket only up to
// MaxParticipants; the addresses that did not fit get no notice, and the
// ledger says so.
func TestCommitDeliveryParticipantCeiling(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		first := mustFetch(t, e.s, p.ID, 1, "q@customer.test")
		c := mustCommit(t, e.s, newTicketDelivery(p, first, "<q@customer.test>")) // alice and bob
		const replies, perReply, ceiling = 12, 5, 10
		var wg sync.WaitGroup
		errs := make(chan error, replies)
		for i := range replies {
			in := mustFetch(t, e.s, p.ID, uint32(10+i), fmt.Sprintf("r%d@customer.test", i))
			d := ticket.Delivery{
				InboundID: in, ProjectID: p.ID, Outcome: ticket.OutcomeReplyAdded, TicketID: c.TicketID,
				DedupKey: fmt.Sprintf("mid:<r%d@customer.test>", i), MaxParticipants: ceiling, MailDomain: "desk.test",
				Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
					From: "alice@customer.test", Subject: "Re", Text: "more", MessageID: fmt.Sprintf("<r%d@customer.test>", i)},
			}
			for j := range perReply {
				a := fmt.Sprintf("cc%d-%d@customer.test", i, j)
				d.Participants = append(d.Participants, a)
				d.Notify = append(d.Notify, ticket.Notification{Kind: ticket.NotifyNewParticipant, To: a})
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.s.CommitDelivery(ctx, d)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("CommitDelivery: %v", err)
			}
		}
		got, err := e.s.TicketByID(ctx, c.TicketID)
		if err != nil {
			t.Fatalf("TicketByID: %v", err)
		}
		if len(got.Participants) != ceiling {
			t.Fatalf("ticket has %d participants after %d concurrent replies, want exactly %d", len(got.Participants), replies, ceiling)
		}
		on := map[string]bool{}
		for _, a := range got.Participants {
			on[a] = true
		}
		notices := 0
		for _, n := range allNotifications(t, e.s) {
			if n.Kind != ticket.NotifyNewParticipant {
				continue
			}
			notices++
			if !on[n.To] {
				t.Errorf("notice to %s, who is not on the ticket", n.To)
			}
		}
		if notices != ceiling-2 {
			t.Errorf("%d new_participant notices, want one per address added (%d)", notices, ceiling-2)
		}
		full := 0
		for _, r := range listInbound(t, e.s) {
			if strings.Contains(r.Reason, "the ticket is full (10)") {
				full++
			}
		}
		if full == 0 {
			t.Errorf("no ledger reason says addresses were left out of the full ticket")
		}
	})
}

func allNotifications(t *testing.T, s *Store) []ticket.Notification {
	t.Helper()
	var rows []notificationRow
	if err := s.db.Order("id").Find(&rows).Error; err != nil {
		t.Fatalf("read notifications: %v", err)
	}
	out := make([]ticket.Notification, len(rows))
	for i, r := range rows {
		out[i] = ticket.Notification{ID: r.ID, Kind: ticket.NotificationKind(r.Kind), To: r.Recipient}
	}
	return out
}

func listInbound(t *testing.T, s *Store) []ticket.Inbound {
	t.Helper()
	rows, _, err := s.ListInbound(t.Context(), InboundFilter{}, Page{PerPage: 1000})
	if err != nil {
		t.Fatalf("ListInbound: %v", err)
	}
	return rows
}
