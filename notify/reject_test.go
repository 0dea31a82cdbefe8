package notify

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// rejections is an in-memory RejectionStore.
type rejections struct {
	mu      sync.Mutex
	rows    map[int64]ticket.Inbound
	answers int // CountRejectionAnswers' answer
}

func (r *rejections) Inbound(_ context.Context, id int64) (ticket.Inbound, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rows[id], nil
}

func (r *rejections) SettleRejectionAnswer(_ context.Context, id int64, state, reason string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	in := r.rows[id]
	in.Answer, in.AnswerReason = state, reason
	r.rows[id] = in
	return nil
}

func (r *rejections) CountRejectionAnswers(context.Context, int64, string, time.Time, int64) (int, error) {
	return r.answers, nil
}

func rejectedRow(from string) ticket.Inbound {
	return ticket.Inbound{ID: 9, ProjectID: 1, Project: "acme", Size: 31 << 20, From: from, Subject: "Scans of the contract",
		MessageID: "<big-1@customer.test>", Outcome: ticket.OutcomeRejected, Answer: ticket.DeliveryQueued,
		AnswerMessageID: "<sd-reject.9.abc@example.test>"}
}

func TestRejecterAnswersOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	rs := &rejections{rows: map[int64]ticket.Inbound{9: rejectedRow("alice@customer.test")}}
	r := NewRejecter(b.d, rs, 25<<20)
	for range 2 {
		if err := r.Deliver(context.Background(), 9); err != nil {
			t.Fatalf("Deliver: %v", err)
		}
	}
	got := onlyAccepted(t, b.sink, 1)[0]
	m := parse(t, got.Data)
	for _, h := range []struct{ name, want string }{
		{"To", "<alice@customer.test>"},
		{"Subject", "Message too large: Scans of the contract"},
		{"Message-ID", "<sd-reject.9.abc@example.test>"},
		{"In-Reply-To", "<big-1@customer.test>"},
		{"Auto-Submitted", "auto-replied"},
		{"X-Loop", "support@example.test"},
	} {
		t.Run(h.name, func(t *testing.T) {
			if v := m.header(h.name); v != h.want {
				t.Errorf("%s = %q, want %q", h.name, v, h.want)
			}
		})
	}
	t.Run("it says the size and the limit", func(t *testing.T) {
		text := m.parts["text/plain"]
		if !strings.Contains(text, "it is 31.0 MB") || !strings.Contains(text, "at most 25.0 MB") {
			t.Errorf("text:\n%s\nwant the message's size and the limit", text)
		}
	})
	if in := rs.rows[9]; in.Answer != ticket.DeliverySent {
		t.Errorf("answer %q after sending; want sent (and the second Deliver a no-op)", in.Answer)
	}
}

func TestRejecterSuppresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, from string
		answers    int
		want       string
	}{
		{"a no-reply sender", "no-reply@shop.test", 0, "no-reply or system address"},
		{"a desk", "support+x@example.test", 0, "desk address"},
		{"a sender at the cap", "alice@customer.test", 3, "rate cap: 3 automatic mails to alice@customer.test in the last 10m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			rs := &rejections{rows: map[int64]ticket.Inbound{9: rejectedRow(tt.from)}, answers: tt.answers}
			if err := NewRejecter(b.d, rs, 25<<20).Deliver(context.Background(), 9); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			onlyAccepted(t, b.sink, 0)
			if in := rs.rows[9]; in.Answer != ticket.DeliverySuppressed || !strings.Contains(in.AnswerReason, tt.want) {
				t.Errorf("answer %q (%q); want suppressed, %q", in.Answer, in.AnswerReason, tt.want)
			}
		})
	}
}
