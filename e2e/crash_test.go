package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/ticket"
)

const backlog = 500

// appendBacklog puts n distinct customer mails into the desk's INBOX.
func appendBacklog(t *testing.T, stack *mailstack.Stack, deskAddr, tag string, n int) {
	t.Helper()
	ctx := context.Background()
	host, port := splitHostPort(t, stack.IMAPAddr)
	c, err := mailbox.Dial(ctx, mailbox.Config{Host: host, Port: port, Security: "none", Username: deskAddr, Password: deskPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	senders := []string{"alice", "bob", "carol"}
	for i := range n {
		from := fmt.Sprintf("%s-%s@customer.test", senders[i%len(senders)], tag)
		m := custMail{from: from, to: deskAddr, subject: fmt.Sprintf("Backlog %d", i),
			body: fmt.Sprintf("Message %d of the backlog.", i), messageID: fmt.Sprintf("<backlog-%s-%d@customer.test>", tag, i)}
		if _, err := c.Append(ctx, "INBOX", m.raw()); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

// assertExactlyOnce waits until all n messages have an outcome, then checks
// that each became exactly one ticket and one ledger row.
func assertExactlyOnce(t *testing.T, env *deskEnv, n int, timeout time.Duration) {
	t.Helper()
	st := env.openStore()
	rows := waitProcessed(t, st, n, timeout)
	perMessage := map[string]int{}
	for _, r := range rows {
		if r.Outcome != ticket.OutcomeTicketCreated {
			t.Errorf("ledger row %d (%s): outcome %q (%s); want ticket_created", r.ID, r.MessageID, r.Outcome, r.Reason)
		}
		perMessage[r.MessageID]++
	}
	if len(rows) != n || len(perMessage) != n {
		t.Errorf("ledger has %d rows for %d distinct messages; want exactly %d of each", len(rows), len(perMessage), n)
	}
	ts := tickets(t, st)
	subjects := map[string]int{}
	for _, tk := range ts {
		subjects[tk.Subject]++
	}
	if len(ts) != n || len(subjects) != n {
		t.Errorf("%d tickets for %d distinct subjects; want exactly %d of each", len(ts), len(subjects), n)
	}
}

// TestCrashMidBacklog kills a worker with SIGKILL in the middle of a
// 500-message backlog and starts it again: every message still becomes
// exactly one ticket and one ledger row.
func TestCrashMidBacklog(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			deskAddr := "crash-" + b.name + "@example.test"
			stack.AddUser(t, deskAddr, deskPass)
			for _, s := range []string{"alice", "bob", "carol"} {
				stack.AddUser(t, s+"-crash"+b.name+"@customer.test", "pw")
			}
			appendBacklog(t, stack, deskAddr, "crash"+b.name, backlog)
			env := newDesk(t, stack, b, envOptions{desk: deskAddr, extra: ""})
			st := env.openStore()
			env.serve("--roles", "scheduler")
			worker := env.serve("--roles", "worker")
			eventually(t, 120*time.Second, "the worker to be mid-backlog", func() (bool, string) {
				n := len(tickets(t, st))
				return n >= 50, fmt.Sprintf("%d tickets", n)
			})
			worker.kill()
			t.Logf("killed the worker at %d tickets", len(tickets(t, st)))
			env.serve("--roles", "worker")
			assertExactlyOnce(t, env, backlog, 4*time.Minute)
		})
	}
}

// TestTwoServersOneMailbox runs two full servers against the same mailbox,
// Redis and database: no message is ingested twice.
func TestTwoServersOneMailbox(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			deskAddr := "twin-" + b.name + "@example.test"
			stack.AddUser(t, deskAddr, deskPass)
			for _, s := range []string{"alice", "bob", "carol"} {
				stack.AddUser(t, s+"-twin"+b.name+"@customer.test", "pw")
			}
			appendBacklog(t, stack, deskAddr, "twin"+b.name, backlog)
			env := newDesk(t, stack, b, envOptions{desk: deskAddr})
			env.serve("--roles", "scheduler,worker")
			env.serve("--roles", "scheduler,worker")
			assertExactlyOnce(t, env, backlog, 4*time.Minute)
		})
	}
}
