package store

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestTicketsPages(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		for i := range 5 {
			id := mustFetch(t, e.s, ps[0].ID, uint32(i+1), fmt.Sprintf("t%d@x", i))
			mustCommit(t, e.s, newTicketDelivery(ps[0], id, fmt.Sprintf("<t%d@x>", i)))
		}
		id := mustFetch(t, e.s, ps[1].ID, 1, "b@x")
		mustCommit(t, e.s, newTicketDelivery(ps[1], id, "<b@x>"))
		if err := e.s.db.Model(&ticketRow{}).Where("project_id = ? AND number = 2", ps[0].ID).Update("status", "closed").Error; err != nil {
			t.Fatalf("close acme#2: %v", err)
		}

		tests := []struct {
			name     string
			filter   TicketFilter
			page     Page
			want     []string
			wantMore bool
		}{
			{"first page newest first", TicketFilter{Project: "acme"}, Page{Page: 1, PerPage: 2}, []string{"acme#5", "acme#4"}, true},
			{"second page", TicketFilter{Project: "acme"}, Page{Page: 2, PerPage: 2}, []string{"acme#3", "acme#2"}, true},
			{"last page", TicketFilter{Project: "acme"}, Page{Page: 3, PerPage: 2}, []string{"acme#1"}, false},
			{"past the end", TicketFilter{Project: "acme"}, Page{Page: 4, PerPage: 2}, nil, false},
			{"closed only", TicketFilter{Status: ticket.StatusClosed}, Page{}, []string{"acme#2"}, false},
			{"other project", TicketFilter{Project: "beta", Status: ticket.StatusOpen}, Page{}, []string{"beta#1"}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, more, err := e.s.Tickets(ctx, tt.filter, tt.page)
				if err != nil {
					t.Fatalf("Tickets: %v", err)
				}
				var refs []string
				for _, tk := range got {
					refs = append(refs, tk.Ref)
					if len(tk.Participants) != 2 || tk.Messages != nil {
						t.Fatalf("%s: participants %v, messages %d; want 2 participants and no messages", tk.Ref, tk.Participants, len(tk.Messages))
					}
				}
				if !slices.Equal(refs, tt.want) || more != tt.wantMore {
					t.Fatalf("Tickets(%+v, %+v) = %v, more %v; want %v, more %v", tt.filter, tt.page, refs, more, tt.want, tt.wantMore)
				}
			})
		}
		_, err := e.s.TicketByNumber(ctx, "acme", 99)
		wantErr(t, "TicketByNumber(acme, 99)", err, ErrNotFound)
		_, err = e.s.TicketByID(ctx, 99999)
		wantErr(t, "TicketByID(99999)", err, ErrNotFound)
	})
}

func TestNotificationLifecycle(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		id := mustFetch(t, e.s, p.ID, 1, "n@x")
		nid := mustCommit(t, e.s, newTicketDelivery(p, id, "<n@x>")).Notifications[0]

		pending := func(before time.Time) []int64 {
			t.Helper()
			ids, err := e.s.PendingNotifications(ctx, before, 10)
			if err != nil {
				t.Fatalf("PendingNotifications: %v", err)
			}
			return ids
		}
		if ids := pending(e.clock.Now().Add(-time.Hour)); len(ids) != 0 {
			t.Fatalf("PendingNotifications(an hour ago) = %v, want none (created later)", ids)
		}
		if ids := pending(e.clock.Now().Add(time.Second)); !slices.Equal(ids, []int64{nid}) {
			t.Fatalf("PendingNotifications(now) = %v, want [%d]", ids, nid)
		}
		for i := 1; i <= 2; i++ {
			if err := e.s.RecordNotificationAttempt(ctx, nid, fmt.Sprintf("451 try later (%d)", i)); err != nil {
				t.Fatalf("RecordNotificationAttempt %d: %v", i, err)
			}
		}
		n, err := e.s.Notification(ctx, nid)
		if err != nil || n.Attempts != 2 || n.LastError != "451 try later (2)" || n.State != ticket.NotificationPending {
			t.Fatalf("after two attempts = %+v, %v; want pending, 2 attempts, the last error", n, err)
		}
		sentAt := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
		if err := e.s.MarkNotificationSent(ctx, nid, sentAt); err != nil {
			t.Fatalf("MarkNotificationSent: %v", err)
		}
		n, _ = e.s.Notification(ctx, nid)
		if n.State != ticket.NotificationSent || !n.SentAt.Equal(sentAt) {
			t.Fatalf("after send = %+v, want sent at %v", n, sentAt)
		}
		if ids := pending(e.clock.Now().Add(time.Second)); len(ids) != 0 {
			t.Fatalf("PendingNotifications after send = %v, want none", ids)
		}
		wantErr(t, "MarkNotificationSent(unknown)", e.s.MarkNotificationSent(ctx, nid+100, sentAt), ErrNotFound)
		_, err = e.s.Notification(ctx, nid+100)
		wantErr(t, "Notification(unknown)", err, ErrNotFound)
	})
}

func TestDeadLetters(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]

		// One of each kind: failed inbound (has raw), rejected inbound (no raw), failed outbound.
		failed := mustFetch(t, e.s, p.ID, 1, "fail@x")
		for range 2 { // idempotent: one letter
			if err := e.s.FailInbound(ctx, failed, "parse: garbage"); err != nil {
				t.Fatalf("FailInbound: %v", err)
			}
		}
		rejected, _, err := e.s.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 7, UID: 2,
			Outcome: ticket.OutcomeRejected, Reason: "too large"}, nil)
		if err != nil {
			t.Fatalf("RecordFetched(rejected): %v", err)
		}
		okIn := mustFetch(t, e.s, p.ID, 3, "ok@x")
		nid := mustCommit(t, e.s, newTicketDelivery(p, okIn, "<ok@x>")).Notifications[0]
		for range 2 {
			if err := e.s.FailNotification(ctx, nid, "550 no such user"); err != nil {
				t.Fatalf("FailNotification: %v", err)
			}
		}

		letters, more, err := e.s.DeadLetters(ctx, Page{PerPage: 2})
		if err != nil || len(letters) != 2 || !more {
			t.Fatalf("DeadLetters(page 1 of 2) = %d letters, more %v, %v; want 2 and more", len(letters), more, err)
		}
		rest, more, _ := e.s.DeadLetters(ctx, Page{Page: 2, PerPage: 2})
		if len(rest) != 1 || more {
			t.Fatalf("DeadLetters(page 2) = %d letters, more %v; want 1 and no more", len(rest), more)
		}
		byKind := map[string]ticket.DeadLetter{}
		for _, dl := range append(letters, rest...) {
			switch {
			case dl.InboundID == failed:
				byKind["failed"] = dl
			case dl.InboundID == rejected:
				byKind["rejected"] = dl
			case dl.NotificationID == nid:
				byKind["outbound"] = dl
			}
		}
		if len(byKind) != 3 || byKind["outbound"].Kind != ticket.DeadOutbound || byKind["outbound"].Address != "alice@customer.test" ||
			byKind["outbound"].Project != "acme" || byKind["outbound"].Reason != "550 no such user" {
			t.Fatalf("dead letters = %+v, want one failed inbound, one rejected inbound, one outbound to alice", byKind)
		}

		t.Run("retry failed inbound re-arms processing", func(t *testing.T) {
			dl, err := e.s.RetryDeadLetter(ctx, byKind["failed"].ID)
			if err != nil || dl.InboundID != failed {
				t.Fatalf("RetryDeadLetter = %+v, %v; want the letter of inbound %d", dl, err, failed)
			}
			in, _ := e.s.Inbound(ctx, failed)
			if in.Outcome != ticket.OutcomeNone || in.Reason != "parse: garbage" {
				t.Fatalf("inbound after retry = %+v, want no outcome and the reason kept", in)
			}
			if ids, _ := e.s.UnprocessedInbound(ctx, p.ID, farFuture, 10); !slices.Contains(ids, failed) {
				t.Fatalf("UnprocessedInbound = %v, want it to include %d", ids, failed)
			}
			_, err = e.s.RetryDeadLetter(ctx, byKind["failed"].ID)
			wantErr(t, "second RetryDeadLetter", err, ErrNotFound)
			if got, err := e.s.DeadLetter(ctx, dl.ID); err != nil || got.ID != dl.ID {
				t.Fatalf("DeadLetter(resolved %d) = %+v, %v; want it still readable", dl.ID, got, err)
			}
		})
		t.Run("retry rejected inbound asks for a refetch", func(t *testing.T) {
			if _, err := e.s.RetryDeadLetter(ctx, byKind["rejected"].ID); err != nil {
				t.Fatalf("RetryDeadLetter: %v", err)
			}
			refetch, err := e.s.RefetchInbound(ctx, p.ID, 7, 10)
			if err != nil || len(refetch) != 1 || refetch[0].ID != rejected || refetch[0].Outcome != ticket.OutcomeNone {
				t.Fatalf("RefetchInbound = %+v, %v; want the rejected row %d with no outcome", refetch, err, rejected)
			}
			if err := e.s.AttachRaw(ctx, rejected, []byte("now small")); err != nil {
				t.Fatalf("AttachRaw: %v", err)
			}
			if again, _ := e.s.RefetchInbound(ctx, p.ID, 7, 10); len(again) != 0 {
				t.Fatalf("RefetchInbound after AttachRaw = %+v, want none", again)
			}
			if ids, _ := e.s.UnprocessedInbound(ctx, p.ID, farFuture, 10); !slices.Contains(ids, rejected) {
				t.Fatalf("UnprocessedInbound = %v, want the refetched row %d", ids, rejected)
			}
			if err := e.s.RejectInbound(ctx, rejected, "still too large"); err != nil {
				t.Fatalf("RejectInbound: %v", err)
			}
			open, _, _ := e.s.DeadLetters(ctx, Page{})
			if !slices.ContainsFunc(open, func(d ticket.DeadLetter) bool { return d.InboundID == rejected && d.Reason == "still too large" }) {
				t.Fatalf("open dead letters = %+v, want a new one for %d", open, rejected)
			}
		})
		t.Run("retry outbound re-arms the notification", func(t *testing.T) {
			dl, err := e.s.RetryDeadLetter(ctx, byKind["outbound"].ID)
			if err != nil || dl.NotificationID != nid {
				t.Fatalf("RetryDeadLetter = %+v, %v; want the letter of notification %d", dl, err, nid)
			}
			n, _ := e.s.Notification(ctx, nid)
			if n.State != ticket.NotificationPending || n.Attempts != 0 {
				t.Fatalf("notification after retry = %+v, want pending with 0 attempts", n)
			}
		})
		t.Run("discard each kind", func(t *testing.T) {
			in2 := mustFetch(t, e.s, p.ID, 10, "fail2@x")
			if err := e.s.FailInbound(ctx, in2, "broken"); err != nil {
				t.Fatalf("FailInbound: %v", err)
			}
			if err := e.s.FailNotification(ctx, nid, "550 again"); err != nil {
				t.Fatalf("FailNotification: %v", err)
			}
			open, _, _ := e.s.DeadLetters(ctx, Page{})
			for _, dl := range open {
				if err := e.s.DiscardDeadLetter(ctx, dl.ID); err != nil {
					t.Fatalf("DiscardDeadLetter(%d, %s): %v", dl.ID, dl.Kind, err)
				}
				wantErr(t, "second DiscardDeadLetter", e.s.DiscardDeadLetter(ctx, dl.ID), ErrNotFound)
			}
			if left, _, _ := e.s.DeadLetters(ctx, Page{}); len(left) != 0 {
				t.Fatalf("open dead letters after discarding = %+v, want none", left)
			}
			in, _ := e.s.Inbound(ctx, in2)
			if in.Outcome != ticket.OutcomeFailed {
				t.Fatalf("discarded inbound outcome = %s, want failed kept", in.Outcome)
			}
		})
		_, err = e.s.DeadLetter(ctx, 99999)
		wantErr(t, "DeadLetter(unknown)", err, ErrNotFound)
		_, err = e.s.RetryDeadLetter(ctx, 99999)
		wantErr(t, "RetryDeadLetter(unknown)", err, ErrNotFound)
	})
}
