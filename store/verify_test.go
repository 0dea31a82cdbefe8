package store

import (
	"errors"
	"testing"
	"time"
)

func TestVerifications(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		if _, err := e.s.VerificationOf(ctx, p.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("VerificationOf before any = %v; want ErrNotFound", err)
		}
		start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
		for i, token := range []string{"first-token1", "second-tok2"} {
			if err := e.s.StartVerification(ctx, Verification{ProjectID: p.ID, Token: token, MailID: "<v@x>", StartedAt: start.Add(time.Duration(i) * time.Minute)}); err != nil {
				t.Fatalf("StartVerification %d: %v", i, err)
			}
		}
		v, err := e.s.VerificationOf(ctx, p.ID)
		if err != nil || v.Token != "second-tok2" || v.Status != "started" || !v.StartedAt.Equal(start.Add(time.Minute)) || !v.FinishedAt.IsZero() {
			t.Fatalf("after two starts = %+v, %v; want the second attempt, started, unfinished", v, err)
		}
		if err := e.s.FinishVerification(ctx, p.ID, "incorrect_from", "from x@y", start.Add(2*time.Minute)); err != nil {
			t.Fatalf("FinishVerification: %v", err)
		}
		v, err = e.s.VerificationOf(ctx, p.ID)
		if err != nil || v.Status != "incorrect_from" || v.Detail != "from x@y" || !v.FinishedAt.Equal(start.Add(2*time.Minute)) {
			t.Fatalf("after finish = %+v, %v", v, err)
		}
		if err := e.s.FinishVerification(ctx, p.ID+1000, "ok", "", start); !errors.Is(err, ErrNotFound) {
			t.Fatalf("FinishVerification of unknown project = %v; want ErrNotFound", err)
		}
	})
}
