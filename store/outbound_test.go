package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

var noteIDPattern = regexp.MustCompile(`^<sd-note\.[0-9a-z]+\.[0-9a-f]{8}@desk\.test>$`)

// mustTicket opens a ticket in p (requester alice, participant bob) and
// returns what the commit did.
func mustTicket(t *testing.T, s *Store, p ticket.Project, uid uint32, mid string) ticket.Committed {
	t.Helper()
	id := mustFetch(t, s, p.ID, uid, mid)
	return mustCommit(t, s, newTicketDelivery(p, id, "<"+mid+">"))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestAddNote(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")

		t.Run("note with two attachments round-trips", func(t *testing.T) {
			before, err := e.s.TicketByID(ctx, c.TicketID)
			if err != nil {
				t.Fatalf("TicketByID: %v", err)
			}
			blobsBefore := countRows(t, e.s, "blobs")
			e.clock.Advance(time.Minute)
			atts := []ticket.Attachment{
				{Filename: "fix.txt", ContentType: "text/plain", Data: []byte("unplug it")},
				{Filename: "photo.png", ContentType: "image/png", Data: []byte("\x89PNG fake")},
			}
			msg, ids, err := e.s.AddNote(ctx, "acme", c.TicketNumber, NoteInput{
				Author: "Dana", Text: "Try this.", HTML: "<p>Try this.</p>", Attachments: atts, MailDomain: "desk.test",
				Recipients: []string{"Alice@Customer.test", "bob@customer.test", "alice@customer.test", " "},
			})
			if err != nil {
				t.Fatalf("AddNote: %v", err)
			}
			if msg.ID == 0 || msg.TicketID != c.TicketID || msg.Direction != ticket.DirectionOutbound || msg.Kind != ticket.KindNote ||
				msg.From != "Dana" || msg.Internal || msg.Text != "Try this." || msg.HTML != "<p>Try this.</p>" ||
				!slices.Equal(msg.To, []string{"alice@customer.test", "bob@customer.test"}) || msg.Subject != "Printer on fire" {
				t.Fatalf("note = %+v, want an outbound note from Dana to alice and bob on ticket %d", msg, c.TicketID)
			}
			if !noteIDPattern.MatchString(msg.MessageID) {
				t.Fatalf("note Message-ID = %q, want one like %s", msg.MessageID, noteIDPattern)
			}
			if len(msg.Attachments) != 2 {
				t.Fatalf("note has %d attachments, want 2", len(msg.Attachments))
			}
			for i, a := range msg.Attachments {
				want := atts[i]
				if a.ID == 0 || a.Filename != want.Filename || a.ContentType != want.ContentType || a.Size != int64(len(want.Data)) ||
					a.SHA256 != sha256Hex(want.Data) || a.Data != nil {
					t.Fatalf("attachment %d = %+v, want metadata of %s (%d bytes, sha256 %s) without data", i, a, want.Filename, len(want.Data), sha256Hex(want.Data))
				}
				data, err := e.s.AttachmentData(ctx, a.SHA256)
				if err != nil || string(data) != string(want.Data) {
					t.Fatalf("AttachmentData(%s) = %q, %v; want %q", a.SHA256, data, err, want.Data)
				}
				_, data, err = e.s.Attachment(ctx, "acme", c.TicketNumber, a.ID)
				if err != nil || string(data) != string(want.Data) {
					t.Fatalf("Attachment(acme, %d, %d) = %q, %v; want %q", c.TicketNumber, a.ID, data, err, want.Data)
				}
			}
			if got := countRows(t, e.s, "blobs"); got != blobsBefore+2 {
				t.Fatalf("blobs went from %d to %d, want two more", blobsBefore, got)
			}

			got, err := e.s.TicketByNumber(ctx, "acme", c.TicketNumber)
			if err != nil {
				t.Fatalf("TicketByNumber: %v", err)
			}
			if len(got.Messages) != 2 {
				t.Fatalf("ticket has %d messages, want the inbound mail and the note", len(got.Messages))
			}
			if last := got.Messages[1]; last.ID != msg.ID || last.MessageID != msg.MessageID || len(last.Attachments) != 2 ||
				last.Attachments[1].Filename != "photo.png" {
				t.Fatalf("last message = %+v, want the note %d with its two attachments", last, msg.ID)
			}
			if !got.UpdatedAt.After(before.UpdatedAt) {
				t.Fatalf("updated_at = %v, want it bumped past %v", got.UpdatedAt, before.UpdatedAt)
			}
			byID, err := e.s.MessageByID(ctx, msg.ID)
			if err != nil || byID.ID != msg.ID || len(byID.Attachments) != 2 || byID.Attachments[0].SHA256 != msg.Attachments[0].SHA256 {
				t.Fatalf("MessageByID(%d) = %+v, %v; want the note with its attachments", msg.ID, byID, err)
			}

			if len(ids) != 2 {
				t.Fatalf("AddNote queued %d notifications, want one per distinct recipient (2)", len(ids))
			}
			for i, want := range []string{"alice@customer.test", "bob@customer.test"} {
				n, err := e.s.Notification(ctx, ids[i])
				if err != nil {
					t.Fatalf("Notification(%d): %v", ids[i], err)
				}
				if n.Kind != ticket.NotifyNote || n.To != want || n.MessageID != msg.ID || n.TicketID != c.TicketID ||
					n.State != ticket.NotificationPending || !mailIDPattern.MatchString(n.MailID) {
					t.Fatalf("notification %d = %+v, want a pending note mail to %s about message %d", i, n, want, msg.ID)
				}
				// A customer's reply to the note threads back to the ticket.
				got, err := e.s.ThreadMatches(ctx, p.ID, []string{"<unknown@x>", n.MailID})
				if err != nil || len(got) != 1 || got[0] != (ticket.ThreadMatch{TicketID: c.TicketID, Ours: true}) {
					t.Fatalf("ThreadMatches(%s) = %+v, %v; want ticket %d, ours", n.MailID, got, err, c.TicketID)
				}
			}
			matches, err := e.s.ThreadMatches(ctx, p.ID, []string{msg.MessageID})
			if err != nil || len(matches) != 1 || matches[0] != (ticket.ThreadMatch{TicketID: c.TicketID, Ours: true}) {
				t.Fatalf("ThreadMatches(note Message-ID %s) = %+v, %v; want ticket %d, ours", msg.MessageID, matches, err, c.TicketID)
			}
		})

		t.Run("internal note queues nothing", func(t *testing.T) {
			before := countRows(t, e.s, "notifications")
			msg, ids, err := e.s.AddNote(ctx, "acme", c.TicketNumber, NoteInput{
				Author: "Dana", Text: "Customer is grumpy.", Internal: true, Recipients: []string{"alice@customer.test"},
			})
			if err != nil {
				t.Fatalf("AddNote(internal): %v", err)
			}
			if len(ids) != 0 || !msg.Internal || len(msg.To) != 0 || msg.Kind != ticket.KindNote {
				t.Fatalf("internal note = %+v with notifications %v, want an internal note to nobody and none queued", msg, ids)
			}
			if after := countRows(t, e.s, "notifications"); after != before {
				t.Fatalf("notifications went from %d to %d on an internal note", before, after)
			}
			// Without MailDomain the project address gives the domain.
			if want := regexp.MustCompile(`^<sd-note\.[0-9a-z]+\.[0-9a-f]{8}@acme\.test>$`); !want.MatchString(msg.MessageID) {
				t.Fatalf("note Message-ID = %q, want one like %s", msg.MessageID, want)
			}
		})

		t.Run("rejected", func(t *testing.T) {
			before := countRows(t, e.s, "messages")
			tests := []struct {
				name     string
				project  string
				number   int64
				in       NoteInput
				notFound bool
			}{
				{"unknown project", "nope", c.TicketNumber, NoteInput{Author: "Dana", Text: "x"}, true},
				{"unknown ticket", "acme", 999, NoteInput{Author: "Dana", Text: "x"}, true},
				{"empty note", "acme", c.TicketNumber, NoteInput{Author: "Dana", Text: "  "}, false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, _, err := e.s.AddNote(ctx, tt.project, tt.number, tt.in)
					if err == nil {
						t.Fatalf("AddNote(%s#%d) succeeded, want an error", tt.project, tt.number)
					}
					if errors.Is(err, ErrNotFound) != tt.notFound {
						t.Fatalf("AddNote(%s#%d) error = %v; want ErrNotFound: %v", tt.project, tt.number, err, tt.notFound)
					}
				})
			}
			if after := countRows(t, e.s, "messages"); after != before {
				t.Fatalf("messages went from %d to %d after rejected notes", before, after)
			}
		})

		t.Run("MessageByID of an unknown message", func(t *testing.T) {
			_, err := e.s.MessageByID(ctx, 99999)
			wantErr(t, "MessageByID(99999)", err, ErrNotFound)
		})
	})
}

func TestSetTicketStatus(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")
		recipients := []string{"Alice@Customer.test", "bob@customer.test", "alice@customer.test"}

		// Steps run in order on the same ticket.
		steps := []struct {
			name        string
			status      ticket.Status
			wantChanged bool
			wantKind    ticket.NotificationKind // "" = no notifications
		}{
			{"close an open ticket", ticket.StatusClosed, true, ticket.NotifyClosed},
			{"close it again changes nothing", ticket.StatusClosed, false, ""},
			{"reopen", ticket.StatusOpen, true, ticket.NotifyReopened},
			{"reopen an open ticket changes nothing", ticket.StatusOpen, false, ""},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				before, _ := e.s.TicketByID(ctx, c.TicketID)
				e.clock.Advance(time.Minute)
				got, ids, changed, err := e.s.SetTicketStatus(ctx, "acme", c.TicketNumber, st.status, recipients, "desk.test")
				if err != nil {
					t.Fatalf("SetTicketStatus(%s): %v", st.status, err)
				}
				if changed != st.wantChanged || got.Status != st.status || got.ID != c.TicketID || len(got.Messages) != 1 {
					t.Fatalf("SetTicketStatus(%s) = %+v, changed %v; want status %s, changed %v, the ticket with its message",
						st.status, got, changed, st.status, st.wantChanged)
				}
				if bumped := got.UpdatedAt.After(before.UpdatedAt); bumped != st.wantChanged {
					t.Fatalf("updated_at %v -> %v; want bumped: %v", before.UpdatedAt, got.UpdatedAt, st.wantChanged)
				}
				if st.wantKind == "" {
					if len(ids) != 0 {
						t.Fatalf("queued %v, want no notifications without a change", ids)
					}
					return
				}
				if len(ids) != 2 {
					t.Fatalf("queued %d notifications, want one per distinct recipient (2)", len(ids))
				}
				for i, want := range []string{"alice@customer.test", "bob@customer.test"} {
					n, err := e.s.Notification(ctx, ids[i])
					if err != nil || n.Kind != st.wantKind || n.To != want || n.MessageID != 0 || n.TicketID != c.TicketID ||
						n.State != ticket.NotificationPending || !mailIDPattern.MatchString(n.MailID) {
						t.Fatalf("notification %d = %+v, %v; want a pending %s mail to %s with MessageID 0", i, n, err, st.wantKind, want)
					}
				}
				stored, _ := e.s.TicketByID(ctx, c.TicketID)
				if stored.Status != st.status {
					t.Fatalf("stored status = %s, want %s", stored.Status, st.status)
				}
			})
		}

		t.Run("rejected", func(t *testing.T) {
			tests := []struct {
				name     string
				project  string
				number   int64
				status   ticket.Status
				notFound bool
			}{
				{"unknown project", "nope", c.TicketNumber, ticket.StatusClosed, true},
				{"unknown ticket", "acme", 999, ticket.StatusClosed, true},
				{"unknown status", "acme", c.TicketNumber, ticket.Status("pending"), false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					_, ids, changed, err := e.s.SetTicketStatus(ctx, tt.project, tt.number, tt.status, recipients, "")
					if err == nil || errors.Is(err, ErrNotFound) != tt.notFound || changed || len(ids) != 0 {
						t.Fatalf("SetTicketStatus(%s#%d, %s) = changed %v, %v, %v; want an error (ErrNotFound: %v)",
							tt.project, tt.number, tt.status, changed, ids, err, tt.notFound)
					}
				})
			}
		})
	})
}

func TestBouncing(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")
		other := mustTicket(t, e.s, p, 2, "other@customer.test")
		base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		until := base.Add(24 * time.Hour)

		mark := func(email string, until time.Time) {
			t.Helper()
			if err := e.s.MarkBouncing(ctx, c.TicketID, email, until); err != nil {
				t.Fatalf("MarkBouncing(%s, %v): %v", email, until, err)
			}
		}
		mark("Bob@Customer.test", until)
		mark("carol@customer.test", base.Add(time.Hour))

		tests := []struct {
			name     string
			ticketID int64
			at       time.Time
			want     []string
		}{
			{"both while bouncing, lower-cased and sorted", c.TicketID, base, []string{"bob@customer.test", "carol@customer.test"}},
			{"carol's mark expired", c.TicketID, base.Add(2 * time.Hour), []string{"bob@customer.test"}},
			{"a millisecond before expiry", c.TicketID, until.Add(-time.Millisecond), []string{"bob@customer.test"}},
			{"at expiry", c.TicketID, until, nil},
			{"another ticket", other.TicketID, base, nil},
			{"unknown ticket", 99999, base, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.s.BouncingRecipients(ctx, tt.ticketID, tt.at)
				if err != nil || !slices.Equal(got, tt.want) {
					t.Fatalf("BouncingRecipients(ticket %d, %v) = %v, %v; want %v", tt.ticketID, tt.at, got, err, tt.want)
				}
			})
		}

		t.Run("a new bounce replaces the time", func(t *testing.T) {
			mark("bob@customer.test", until.Add(time.Hour))
			got, _ := e.s.BouncingRecipients(ctx, c.TicketID, until)
			if !slices.Equal(got, []string{"bob@customer.test"}) {
				t.Fatalf("after extending, BouncingRecipients at the old expiry = %v, want bob", got)
			}
			mark("BOB@customer.test", base.Add(-time.Hour))
			got, _ = e.s.BouncingRecipients(ctx, c.TicketID, base)
			if !slices.Equal(got, []string{"carol@customer.test"}) {
				t.Fatalf("after a past until, BouncingRecipients = %v, want only carol", got)
			}
			if n := countRows(t, e.s, "bounces"); n != 2 {
				t.Fatalf("bounces has %d rows, want one per ticket and address (2)", n)
			}
		})

		t.Run("rejected", func(t *testing.T) {
			wantErr(t, "MarkBouncing(unknown ticket)", e.s.MarkBouncing(ctx, 99999, "bob@customer.test", until), ErrNotFound)
			if err := e.s.MarkBouncing(ctx, c.TicketID, " ", until); err == nil {
				t.Fatal("MarkBouncing(empty address) succeeded, want an error")
			}
		})
	})
}

func TestCountNotifications(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		acme, beta := ps[0], ps[1]

		t0 := e.clock.Now()
		first := mustTicket(t, e.s, acme, 1, "one@customer.test") // thank_you to alice at t0
		e.clock.Advance(time.Hour)
		t1 := e.clock.Now()
		_, noteIDs, err := e.s.AddNote(ctx, "acme", first.TicketNumber, NoteInput{
			Author: "Dana", Text: "On it.", Recipients: []string{"alice@customer.test", "bob@customer.test"},
		})
		if err != nil {
			t.Fatalf("AddNote: %v", err)
		}
		e.clock.Advance(time.Hour)
		t2 := e.clock.Now()
		second := mustTicket(t, e.s, acme, 2, "two@customer.test") // thank_you to alice at t2, fails below
		if _, _, _, err := e.s.SetTicketStatus(ctx, "acme", first.TicketNumber, ticket.StatusClosed, []string{"ALICE@customer.test"}, ""); err != nil {
			t.Fatalf("SetTicketStatus: %v", err)
		}
		if err := e.s.FailNotification(ctx, second.Notifications[0], "550 no such user"); err != nil {
			t.Fatalf("FailNotification: %v", err)
		}
		if err := e.s.SuppressNotification(ctx, noteIDs[0], "cap reached"); err != nil {
			t.Fatalf("SuppressNotification: %v", err)
		}
		mustTicket(t, e.s, beta, 1, "beta@customer.test") // thank_you to alice in beta

		thankYou := []ticket.NotificationKind{ticket.NotifyThankYou}
		tests := []struct {
			name      string
			projectID int64
			recipient string
			kinds     []ticket.NotificationKind
			since     time.Time
			want      int
		}{
			{"every kind since the start, failed excluded", acme.ID, "alice@customer.test", nil, t0.Add(-time.Second), 3},
			{"thank-yous since the start", acme.ID, "alice@customer.test", thankYou, t0.Add(-time.Second), 1},
			{"two kinds", acme.ID, "alice@customer.test", []ticket.NotificationKind{ticket.NotifyThankYou, ticket.NotifyClosed}, t0.Add(-time.Second), 2},
			{"window from the note on", acme.ID, "alice@customer.test", nil, t1.Add(-time.Second), 2},
			{"window from the close on", acme.ID, "alice@customer.test", nil, t2.Add(-time.Second), 1},
			{"window after everything", acme.ID, "alice@customer.test", nil, t2.Add(time.Minute), 0},
			{"recipient is case-insensitive, suppressed counts", acme.ID, "ALICE@Customer.TEST", []ticket.NotificationKind{ticket.NotifyNote}, t0, 1},
			{"another recipient", acme.ID, "bob@customer.test", nil, t0, 1},
			{"unknown recipient", acme.ID, "nobody@customer.test", nil, t0, 0},
			{"another project", beta.ID, "alice@customer.test", thankYou, t0.Add(-time.Second), 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.s.CountNotifications(ctx, tt.projectID, tt.recipient, tt.kinds, tt.since, ticket.Notification{})
				if err != nil || got != tt.want {
					t.Fatalf("CountNotifications(project %d, %s, %v, since %v) = %d, %v; want %d",
						tt.projectID, tt.recipient, tt.kinds, tt.since, got, err, tt.want)
				}
			})
		}
	})
}

// TestCountProjectMail: the project's ceiling counts mail that went out or
// may still go out, to anyone, in a window; suppressed and failed mail and
// other projects' mail do not count.
func TestCountProjectMail(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		acme, beta := ps[0], ps[1]

		t0 := e.clock.Now()
		first := mustTicket(t, e.s, acme, 1, "one@customer.test") // thank_you, pending
		second := mustTicket(t, e.s, acme, 2, "two@customer.test")
		third := mustTicket(t, e.s, acme, 3, "three@customer.test")
		e.clock.Advance(time.Hour)
		t1 := e.clock.Now()
		mustTicket(t, e.s, acme, 4, "four@customer.test")
		mustTicket(t, e.s, beta, 1, "beta@customer.test")
		if err := e.s.MarkNotificationSent(ctx, first.Notifications[0], t1); err != nil {
			t.Fatalf("MarkNotificationSent: %v", err)
		}
		if err := e.s.FailNotification(ctx, second.Notifications[0], "550 no such user"); err != nil {
			t.Fatalf("FailNotification: %v", err)
		}
		if err := e.s.SuppressNotification(ctx, third.Notifications[0], "rate cap"); err != nil {
			t.Fatalf("SuppressNotification: %v", err)
		}
		thankYou := []ticket.NotificationKind{ticket.NotifyThankYou}
		tests := []struct {
			name      string
			projectID int64
			kinds     []ticket.NotificationKind
			since     time.Time
			want      int
		}{
			{"sent and pending since the start; failed and suppressed left out", acme.ID, thankYou, t0, 2},
			{"every kind", acme.ID, nil, t0, 2},
			{"the last window only", acme.ID, thankYou, t1, 1},
			{"another kind", acme.ID, []ticket.NotificationKind{ticket.NotifyClosed}, t0, 0},
			{"another project", beta.ID, thankYou, t0, 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.s.CountProjectMail(ctx, tt.projectID, tt.kinds, tt.since, ticket.Notification{})
				if err != nil || got != tt.want {
					t.Fatalf("CountProjectMail(project %d, %v, since %v) = %d, %v; want %d", tt.projectID, tt.kinds, tt.since, got, err, tt.want)
				}
			})
		}
	})
}

// TestCountQueuedBefore: a group of deliveries commits its notifications
// with one timestamp; the counts order them by ID then, so each one sees
// exactly those queued before it.
func TestCountQueuedBefore(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		var ds []ticket.Delivery
		for i := range 3 {
			mid := "burst" + strconv.Itoa(i) + "@customer.test"
			ds = append(ds, newTicketDelivery(p, mustFetch(t, e.s, p.ID, uint32(i+1), mid), "<"+mid+">"))
		}
		var ns []ticket.Notification
		for _, c := range mustCommitMany(t, e.s, ds) { // one group, one timestamp
			n, err := e.s.Notification(ctx, c.Notifications[0])
			if err != nil {
				t.Fatalf("Notification: %v", err)
			}
			ns = append(ns, n)
		}
		// SQLite commits a group with one timestamp (PostgreSQL commits each
		// new ticket in its own statement): either way each one counts
		// exactly those queued before it.
		if e.s.dialect != dialectPostgres && !ns[0].CreatedAt.Equal(ns[2].CreatedAt) {
			t.Fatalf("created at %v and %v, want one timestamp for the group", ns[0].CreatedAt, ns[2].CreatedAt)
		}
		since := ns[0].CreatedAt.Add(-time.Minute)
		kinds := []ticket.NotificationKind{ticket.NotifyThankYou}
		for i, n := range ns {
			got, err := e.s.CountNotifications(ctx, p.ID, "alice@customer.test", kinds, since, n)
			if err != nil || got != i {
				t.Errorf("CountNotifications before the %d. = %d, %v; want %d", i+1, got, err, i)
			}
			got, err = e.s.CountProjectMail(ctx, p.ID, kinds, since, n)
			if err != nil || got != i {
				t.Errorf("CountProjectMail before the %d. = %d, %v; want %d", i+1, got, err, i)
			}
		}
	})
}

func TestSuppressNotification(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")
		_, ids, err := e.s.AddNote(ctx, "acme", c.TicketNumber, NoteInput{
			Author: "Dana", Text: "Hi", Recipients: []string{"alice@customer.test", "bob@customer.test"},
		})
		if err != nil {
			t.Fatalf("AddNote: %v", err)
		}
		suppressed, sent := ids[0], ids[1]

		if err := e.s.SuppressNotification(ctx, suppressed, "recipient bounces"); err != nil {
			t.Fatalf("SuppressNotification: %v", err)
		}
		n, err := e.s.Notification(ctx, suppressed)
		if err != nil || n.State != ticket.NotificationState("suppressed") || n.LastError != "recipient bounces" {
			t.Fatalf("Notification(%d) = %+v, %v; want state suppressed with the reason", suppressed, n, err)
		}
		pending, err := e.s.PendingNotifications(ctx, e.clock.Now().Add(time.Second), 10)
		if err != nil || slices.Contains(pending, suppressed) {
			t.Fatalf("PendingNotifications = %v, %v; want no suppressed notification %d", pending, err, suppressed)
		}

		t.Run("again is a no-op keeping the first reason", func(t *testing.T) {
			if err := e.s.SuppressNotification(ctx, suppressed, "another reason"); err != nil {
				t.Fatalf("second SuppressNotification: %v", err)
			}
			n, _ := e.s.Notification(ctx, suppressed)
			if n.State != NotificationSuppressed || n.LastError != "recipient bounces" {
				t.Fatalf("after a second suppress = %+v, want the first reason kept", n)
			}
		})
		t.Run("a sent notification cannot be suppressed", func(t *testing.T) {
			if err := e.s.MarkNotificationSent(ctx, sent, e.clock.Now()); err != nil {
				t.Fatalf("MarkNotificationSent: %v", err)
			}
			err := e.s.SuppressNotification(ctx, sent, "too late")
			if err == nil || errors.Is(err, ErrNotFound) {
				t.Fatalf("SuppressNotification(sent) = %v, want an error that is not ErrNotFound", err)
			}
			n, _ := e.s.Notification(ctx, sent)
			if n.State != ticket.NotificationSent {
				t.Fatalf("state = %s, want sent kept", n.State)
			}
		})
		t.Run("unknown", func(t *testing.T) {
			wantErr(t, "SuppressNotification(unknown)", e.s.SuppressNotification(ctx, 99999, "x"), ErrNotFound)
		})
	})
}

func TestMigrateStep2(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		c := mustTicket(t, e.s, p, 1, "q@customer.test")

		t.Run("upgrades a version 1 database", func(t *testing.T) {
			for _, q := range []string{
				"DROP TABLE IF EXISTS verifications", "DROP TABLE bounces", "DROP INDEX idx_notifications_recipient",
				"DELETE FROM schema_migrations WHERE version >= 2",
			} {
				if err := e.s.db.WithContext(ctx).Exec(q).Error; err != nil {
					t.Fatalf("back to version 1: %s: %v", q, err)
				}
			}
			if v, _ := e.s.SchemaVersion(ctx); v != 1 {
				t.Fatalf("SchemaVersion = %d, want 1 before upgrading", v)
			}
			if err := e.s.Migrate(ctx); err != nil {
				t.Fatalf("Migrate from version 1: %v", err)
			}
			if v, _ := e.s.SchemaVersion(ctx); v != migrations[len(migrations)-1].version {
				t.Fatalf("SchemaVersion = %d, want %d (every step)", v, migrations[len(migrations)-1].version)
			}
			if err := e.s.MarkBouncing(ctx, c.TicketID, "bob@customer.test", e.clock.Now().Add(time.Hour)); err != nil {
				t.Fatalf("MarkBouncing after upgrade: %v", err)
			}
			if !e.s.db.Migrator().HasIndex("notifications", "idx_notifications_recipient") {
				t.Fatal("index idx_notifications_recipient missing after upgrade")
			}
		})
		t.Run("step 2 is idempotent", func(t *testing.T) {
			for i := range 2 {
				if err := migrateBounces(e.s.db.WithContext(ctx)); err != nil {
					t.Fatalf("migrateBounces run %d on a migrated database: %v", i+1, err)
				}
			}
			if got, _ := e.s.BouncingRecipients(ctx, c.TicketID, e.clock.Now()); !slices.Equal(got, []string{"bob@customer.test"}) {
				t.Fatalf("BouncingRecipients = %v, want bob kept across re-runs", got)
			}
		})
		t.Run("bounces go with their ticket", func(t *testing.T) {
			if err := e.s.db.WithContext(ctx).Exec("DELETE FROM tickets WHERE id = ?", c.TicketID).Error; err != nil {
				t.Fatalf("delete ticket: %v", err)
			}
			if n := countRows(t, e.s, "bounces"); n != 0 {
				t.Fatalf("bounces has %d rows after its ticket was deleted, want 0 (ON DELETE CASCADE)", n)
			}
		})
	})
}
