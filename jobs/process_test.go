package jobs

import (
	"errors"
	"fmt"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/servicedesk/servicedesk/ingest"
)

// A process error is retried unless the attempt is the last, the error
// says SkipRetry, or a parse ran past its deadline a second time.
func TestProcessErrorsGiveUp(t *testing.T) {
	t.Parallel()
	store := errors.New("database is locked")
	deadline := fmt.Errorf("parse inbound 7: %w", ingest.ErrParseDeadline)
	tests := []struct {
		name    string
		err     error
		attempt int
		final   bool
		want    bool
	}{
		{"a store error is retried", store, 1, false, false},
		{"on the final attempt it is a dead letter", store, 9, true, true},
		{"SkipRetry is a dead letter at once", fmt.Errorf("bad: %w", asynq.SkipRetry), 1, false, true},
		{"a parse past its deadline is tried once more", deadline, 1, false, false},
		{"and then is a dead letter", deadline, MaxDeadlineAttempts, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := giveUp(tt.err, tt.attempt, tt.final); got != tt.want {
				t.Errorf("giveUp(%v, attempt %d, final %v) = %v, want %v", tt.err, tt.attempt, tt.final, got, tt.want)
			}
		})
	}
}
