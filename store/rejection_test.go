package store

import (
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestRejectionAnswers(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		reject := func(uid uint32, from string) int64 {
			id, _, err := e.s.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 1, UID: uid, Size: 30 << 20,
				From: from, Subject: "Scans", Outcome: ticket.OutcomeRejected, Reason: "too large"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		alice, unknown, bob := reject(1, "alice@customer.test"), reject(2, ""), reject(3, "Bob@Customer.test")
		mustFetch(t, e.s, p.ID, 4, "downloaded@customer.test") // not rejected

		t.Run("rows to answer are rejected ones whose sender is known", func(t *testing.T) {
			rows, err := e.s.RejectionsToAnswer(ctx, 10)
			if err != nil || len(rows) != 2 || rows[0].ID != alice || rows[1].ID != bob {
				t.Fatalf("RejectionsToAnswer = %+v, %v; want alice's and bob's rows (%d, %d), not %d", rows, err, alice, bob, unknown)
			}
		})
		t.Run("of stores claiming at once, one wins", func(t *testing.T) {
			stores := []*Store{e.s, e.open(t), e.open(t)}
			var mu sync.Mutex
			won := 0
			var wg sync.WaitGroup
			for i, s := range stores {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := s.ClaimRejectionAnswer(ctx, alice, "<sd-reject."+string(rune('a'+i))+"@acme.test>")
					if err != nil {
						t.Errorf("claim: %v", err)
					}
					if ok {
						mu.Lock()
						won++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			in, _ := e.s.Inbound(ctx, alice)
			if won != 1 || in.Answer != ticket.DeliveryQueued || in.AnswerMessageID == "" {
				t.Fatalf("%d claims won, row answer %q %q; want one, queued with its Message-ID", won, in.Answer, in.AnswerMessageID)
			}
			if rows, _ := e.s.RejectionsToAnswer(ctx, 10); len(rows) != 1 || rows[0].ID != bob {
				t.Fatalf("RejectionsToAnswer after the claim = %+v; want bob's row only", rows)
			}
		})
		t.Run("a claimed answer never settled is found again after the grace", func(t *testing.T) {
			if ids, _ := e.s.QueuedRejectionAnswers(ctx, e.clock.Now().Add(-time.Minute), 10); len(ids) != 0 {
				t.Fatalf("QueuedRejectionAnswers within the grace = %v; want none", ids)
			}
			if ids, _ := e.s.QueuedRejectionAnswers(ctx, e.clock.Now().Add(time.Minute), 10); len(ids) != 1 || ids[0] != alice {
				t.Fatalf("QueuedRejectionAnswers after the grace = %v; want alice's row", ids)
			}
		})
		t.Run("answers count towards the sender's and the project's caps", func(t *testing.T) {
			if ok, err := e.s.ClaimRejectionAnswer(ctx, bob, "<sd-reject.b@acme.test>"); !ok || err != nil {
				t.Fatalf("claim bob: %v %v", ok, err)
			}
			since := e.clock.Now().Add(-time.Hour)
			for _, c := range []struct {
				to     string
				before int64
				want   int
			}{{"bob@customer.test", 0, 1}, {"alice@customer.test", 0, 1}, {"", 0, 2}, {"", bob, 1}, {"carol@customer.test", 0, 0}} {
				if n, err := e.s.CountRejectionAnswers(ctx, p.ID, c.to, since, c.before); err != nil || n != c.want {
					t.Errorf("CountRejectionAnswers(%q, before %d) = %d, %v; want %d", c.to, c.before, n, err, c.want)
				}
			}
		})
		t.Run("settled once: a late retry cannot undo it", func(t *testing.T) {
			if err := e.s.SettleRejectionAnswer(ctx, alice, ticket.DeliverySent, ""); err != nil {
				t.Fatal(err)
			}
			if err := e.s.SettleRejectionAnswer(ctx, alice, ticket.DeliveryFailed, "timeout"); err != nil {
				t.Fatal(err)
			}
			if in, _ := e.s.Inbound(ctx, alice); in.Answer != ticket.DeliverySent {
				t.Fatalf("answer %q after a late failure; want sent kept", in.Answer)
			}
			if err := e.s.SettleRejectionAnswer(ctx, alice, ticket.DeliveryQueued, ""); err == nil {
				t.Fatal("settling as queued: no error; want one")
			}
		})
	})
}
