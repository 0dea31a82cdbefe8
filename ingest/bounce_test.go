package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// TestProcessBounceMarksRecipientsBouncing: a delivery-status bounce that
// threads onto a ticket names the failed recipients as bouncing there for
// BounceSuppression; one that threads nowhere marks nobody.
func TestProcessBounceMarksRecipientsBouncing(t *testing.T) {
	t.Parallel()
	if BounceSuppression != 7*24*time.Hour {
		t.Fatalf("BounceSuppression = %v, want the documented 7 days", BounceSuppression)
	}
	dsn := string(readCorpus(t, "dsn-bounce.eml"))
	tests := []struct {
		name         string
		raw          string
		wantTicket   int64
		wantBouncing []string
		wantUntil    time.Time
	}{
		{"threaded by the original's Message-ID", dsn, 12, []string{"gone@customer.test"}, testNow.Add(BounceSuppression)},
		{"threaded, failed recipient also in X-Failed-Recipients",
			strings.Replace(dsn, "Auto-Submitted: auto-replied\n", "Auto-Submitted: auto-replied\nX-Failed-Recipients: Gone@Customer.test, other@customer.test\n", 1),
			12, []string{"gone@customer.test", "other@customer.test"}, testNow.Add(BounceSuppression)},
		{"original unknown: no ticket, nobody marked",
			strings.NewReplacer("<notify-42@acme.test>", "<notify-unknown@acme.test>", "r1-c-abcdefghijklmnopqrst", "r1-c-zzzzzzzzzzzzzzzzzzzz").Replace(dsn),
			0, nil, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			_, d := b.process(t, []byte(tt.raw))
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeBounce)
			wantEqual(t, "TicketID", d.TicketID, tt.wantTicket)
			wantList(t, "Bouncing", d.Bouncing, tt.wantBouncing...)
			wantEqual(t, "BouncingUntil", d.BouncingUntil, tt.wantUntil)
			wantEqual(t, "never notified", len(d.Notify), 0)
		})
	}
}
