package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// With imap.idle a mailbox polled once an hour still turns mail into a
// ticket within seconds: the scheduler's IDLE watcher queues the fetch,
// and /metrics shows the watcher up and its last event.
func TestIdleMailboxTurnsMailIntoATicketWithinSecondsThoughPolledHourly(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	e := newDesk(t, stack, backends[0], envOptions{pollInterval: "1h"})
	setIdle(t, e.config)
	e.serve("--roles", "scheduler,worker,web")
	st := e.openStore()

	metric := func(name string) string {
		resp, err := http.Get("http://" + e.httpAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, name+`{project="acme"}`) {
				return strings.TrimSpace(strings.TrimPrefix(line, name+`{project="acme"}`))
			}
		}
		return ""
	}
	eventually(t, 30*time.Second, "the IDLE watcher of acme up", func() (bool, string) {
		v := metric("servicedesk_idle_watchers_up")
		return v == "1", "servicedesk_idle_watchers_up = " + v
	})
	// The first scheduled fetch (at start) has passed; the next is an hour
	// away: only the watcher can fetch now.
	time.Sleep(2 * time.Second)
	for i := 1; i <= 3; i++ {
		stack.Deliver(t, desk, custMail{from: "alice@customer.test", to: desk,
			subject: fmt.Sprintf("idle %d", i), body: "hello", messageID: fmt.Sprintf("<idle-%d@customer.test>", i)}.raw())
		delivered := time.Now()
		eventually(t, 30*time.Second, fmt.Sprintf("ticket %d", i), func() (bool, string) {
			n := len(tickets(t, st))
			return n == i, fmt.Sprintf("%d tickets", n)
		})
		t.Logf("mail %d: a ticket %v after delivery", i, time.Since(delivered).Round(time.Millisecond))
	}
	if v := metric("servicedesk_idle_last_event_timestamp_seconds"); v == "" || v == "0" {
		t.Fatalf("servicedesk_idle_last_event_timestamp_seconds = %q after three mails; want the time of the last", v)
	}
}
