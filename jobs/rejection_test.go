package jobs

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// countingClaims counts the claims a store grants.
type countingClaims struct {
	*store.Store
	granted atomic.Int64
}

func (c *countingClaims) ClaimRejectionAnswer(ctx context.Context, id int64, mailID string) (bool, error) {
	ok, err := c.Store.ClaimRejectionAnswer(ctx, id, mailID)
	if ok {
		c.granted.Add(1)
	}
	return ok, err
}

// The senders of mail rejected for its size are answered once, however
// many schedulers sweep at the same time; automatic senders never.
func TestRejectionSweepAnswersEachSenderOnce(t *testing.T) {
	ctx := context.Background()
	rdb := testRedis(t, 7)
	client := asynq.NewClientFromRedisClient(rdb)
	defer client.Close()
	st, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/desk.db", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := st.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme", Address: "support@acme.test"}})
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		from, subject string
		answered      bool
	}{
		{"alice@customer.test", "Scans of the contract", true},
		{"bob@customer.test", "Video of the fault", true},
		{"noreply@shop.test", "Your invoice", false},
		{"carol@customer.test", "Automatic reply: Scans", false},
		{"", "no sender known yet", false},
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i], _, err = st.RecordFetched(ctx, ticket.Inbound{ProjectID: ps[0].ID, UIDValidity: 1, UID: uint32(i + 1), Size: 30 << 20,
			From: r.from, Subject: r.subject, MessageID: "<big-" + string(rune('a'+i)) + "@customer.test>",
			Outcome: ticket.OutcomeRejected, Reason: "message is 31457280 bytes, larger than the limit of 26214400 bytes"}, nil)
		if err != nil {
			t.Fatal(err)
		}
	}

	claims := &countingClaims{Store: st}
	desks := []Desk{{ID: ps[0].ID, Config: config.Project{Key: "acme", Address: "support@acme.test"}}}
	var wg sync.WaitGroup
	for range 4 {
		s := NewScheduler(NewEnqueuer(client, Retries{}), desks, noOutbox{}, time.Second, OutboxSweep{}, discard())
		s.AnswerRejections(claims)
		wg.Add(1)
		go func() { defer wg.Done(); s.sweepRejections(ctx, time.Now()) }()
	}
	wg.Wait()

	t.Run("each human sender's row is claimed once, by one scheduler", func(t *testing.T) {
		if n := claims.granted.Load(); n != 2 {
			t.Fatalf("%d claims granted to 4 schedulers, want 2 (alice and bob)", n)
		}
	})
	t.Run("one answer task each, on the notify queue", func(t *testing.T) {
		tasks, err := asynq.NewInspectorFromRedisClient(rdb).ListPendingTasks(QueueNotify)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, task := range tasks {
			got[task.ID] = true
		}
		if len(tasks) != 2 || !got[rejectTaskID(ids[0])] || !got[rejectTaskID(ids[1])] {
			t.Fatalf("pending notify tasks %v; want reject tasks for alice's and bob's rows", got)
		}
	})
	for i, r := range rows {
		t.Run("ledger: "+r.from+" "+r.subject, func(t *testing.T) {
			in, err := st.Inbound(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r.answered && (in.Answer != ticket.DeliveryQueued || in.AnswerMessageID == ""):
				t.Errorf("answer %q %q; want queued with our Message-ID", in.Answer, in.AnswerMessageID)
			case !r.answered && r.from != "" && (in.Answer != ticket.DeliverySuppressed || in.AnswerReason == ""):
				t.Errorf("answer %q (%q); want suppressed with the reason", in.Answer, in.AnswerReason)
			case r.from == "" && in.Answer != "":
				t.Errorf("answer %q; want none until the sender is known", in.Answer)
			}
		})
	}

	t.Run("an answer that fails for good is settled failed, with the reason", func(t *testing.T) {
		h := NewRejectHandler(rejectFunc(func(context.Context, int64) error { return errors.New("550 no such user") }),
			func(error) bool { return true }, st, discard())
		err := h.ProcessTask(ctx, asynq.NewTask(TypeReject, mustJSON(RejectPayload{InboundID: ids[1]})))
		if !errors.Is(err, asynq.SkipRetry) {
			t.Fatalf("ProcessTask = %v; want SkipRetry", err)
		}
		if in, _ := st.Inbound(ctx, ids[1]); in.Answer != ticket.DeliveryFailed || in.AnswerReason != "550 no such user" {
			t.Fatalf("answer %q (%q); want failed with the server's reason", in.Answer, in.AnswerReason)
		}
	})
}

type rejectFunc func(ctx context.Context, inboundID int64) error

func (f rejectFunc) Deliver(ctx context.Context, id int64) error { return f(ctx, id) }
