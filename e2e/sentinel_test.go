package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// TestRedisSentinelFailover runs two servers on redis-sentinel:// (a master,
// a replica and three Sentinels on loopback, PostgreSQL) and SIGKILLs the
// Redis master while they ingest a 2,000-mail backlog. Sentinel promotes the
// replica, the servers follow it, and every mail still becomes exactly one
// ledger row and one ticket with exactly one thank-you, none mailed twice;
// /readyz answers 503 while there is no master and 200 again afterwards.
func TestRedisSentinelFailover(t *testing.T) {
	t.Parallel()
	const mails = 2000
	ctx := context.Background()
	stack := mailstack.Start(t)
	deskAddr := "sentinel@example.test"
	stack.AddUser(t, deskAddr, deskPass)
	var customers []string
	for _, s := range []string{"alice", "bob", "carol"} {
		customers = append(customers, s+"-sentinel@customer.test")
		stack.AddUser(t, customers[len(customers)-1], "pw")
	}
	// The backlog goes in while the topology starts.
	start := time.Now()
	appended := make(chan error, 1)
	go func() { appended <- appendBacklogAtOnce(stack, deskAddr, "sentinel", mails, 8) }()
	topo := startSentinelTopology(t)
	t.Logf("master, replica and 3 Sentinels ready in %s", time.Since(start).Round(time.Millisecond))
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	t.Logf("appended %d mails in %s", mails, time.Since(start).Round(time.Millisecond))

	env := newDesk(t, stack, backend{"postgres", postgresURL}, envOptions{desk: deskAddr, redisURL: topo.url(0),
		// A failover loses the send tasks the replica had not received;
		// the outbox sweep finds them again after outbox_grace.
		outboxSweep: "2s", outboxGrace: "5s"})
	db, err := sql.Open("pgx", env.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	progress := watchLedger(t, db)

	readyz := pollStatus(t, "http://"+env.httpAddr+"/readyz", 100*time.Millisecond)
	env.serve("--roles", "scheduler,worker,web")
	env.serve("--roles", "scheduler,worker")
	eventually(t, 60*time.Second, "200 ledger rows", func() (bool, string) {
		rows, done := progress.last()
		return rows >= 200, fmt.Sprintf("%d ledger rows, %d processed", rows, done)
	})

	repl, err := topo.master.info(ctx, "replication")
	if err != nil {
		t.Fatalf("INFO replication of the master: %v", err)
	}
	killedAt := time.Now()
	topo.master.kill()
	t.Logf("at the kill the master's offset was %s, its replica %s", repl["master_repl_offset"], repl["slave0"])
	rowsAtKill, doneAtKill := progress.last()
	t.Logf("SIGKILLed the Redis master at %d ledger rows, %d processed", rowsAtKill, doneAtKill)
	eventually(t, 30*time.Second, "Sentinel to promote the replica", func() (bool, string) {
		port, err := topo.masterPort(ctx)
		if err != nil {
			return false, err.Error()
		}
		return port == topo.replica.port, fmt.Sprintf("master on port %d (replica %d, old master %d)", port, topo.replica.port, topo.master.port)
	})
	promotedAt := time.Now()
	_, doneAtPromotion := progress.last()
	t.Logf("Sentinel promoted the replica %s after the kill; %d processed by then", promotedAt.Sub(killedAt).Round(time.Millisecond), doneAtPromotion)

	assertExactlyOnce(t, env, mails, 100*time.Second)
	drainedAt := time.Now()
	if resumed, ok := progress.firstAbove(doneAtPromotion, promotedAt); ok {
		t.Logf("processing resumed %s after the kill (%s after the promotion)",
			resumed.Sub(killedAt).Round(time.Millisecond), resumed.Sub(promotedAt).Round(time.Millisecond))
	}
	t.Logf("all %d mails processed %s after the kill, %s after serve started", mails,
		drainedAt.Sub(killedAt).Round(time.Millisecond), drainedAt.Sub(progress.started).Round(time.Millisecond))

	t.Run("one thank-you per ticket, none mailed twice", func(t *testing.T) {
		// Redis replication is asynchronous: the send tasks the replica
		// had not received when the master died are gone, and so are the
		// enqueues that failed during the outage. The scheduler's outbox
		// sweep (here every 2s, notifications pending for over 5s) puts
		// them back.
		assertOneThankYouEach(t, db, stack, customers, mails)
	})
	t.Run("readyz shows the outage and recovers", func(t *testing.T) {
		eventually(t, 10*time.Second, "/readyz 200", func() (bool, string) {
			seen := readyz.seen()
			last := seen[len(seen)-1]
			return last.status == http.StatusOK && last.at.After(promotedAt), fmt.Sprintf("last answer %d", last.status)
		})
		answers := readyz.end()
		var down []statusAt
		for _, a := range answers {
			if a.at.After(killedAt) && a.status != http.StatusOK {
				down = append(down, a)
			}
		}
		// The outage lasts at least down-after-milliseconds (1s): ten polls.
		if len(down) == 0 {
			t.Fatalf("/readyz: %d answers, every one after the kill 200; want 503 while there is no master", len(answers))
		}
		t.Logf("/readyz: %d answers; not 200 from %s to %s after the kill (%d answers: %v ...)", len(answers),
			down[0].at.Sub(killedAt).Round(time.Millisecond), down[len(down)-1].at.Sub(killedAt).Round(time.Millisecond),
			len(down), statuses(down, 5))
	})
}

func statuses(s []statusAt, n int) []int {
	var out []int
	for _, a := range s[:min(n, len(s))] {
		out = append(out, a.status)
	}
	return out
}

// ledgerWatch samples the ledger every 100 ms: how many rows, how many
// processed, and when.
type ledgerWatch struct {
	started time.Time
	mu      sync.Mutex
	samples []ledgerSample
}

type ledgerSample struct {
	at         time.Time
	rows, done int
}

func watchLedger(t *testing.T, db *sql.DB) *ledgerWatch {
	w := &ledgerWatch{started: time.Now()}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	t.Cleanup(func() { cancel(); <-stopped })
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			var s ledgerSample
			// Before serve has migrated, the table is not there: no sample.
			err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome <> '') FROM inbound`).Scan(&s.rows, &s.done)
			if err == nil {
				s.at = time.Now()
				w.mu.Lock()
				w.samples = append(w.samples, s)
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

func (w *ledgerWatch) last() (rows, done int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.samples) == 0 {
		return 0, 0
	}
	s := w.samples[len(w.samples)-1]
	return s.rows, s.done
}

// firstAbove is the time of the first sample after since with more than
// done messages processed.
func (w *ledgerWatch) firstAbove(done int, since time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.at.After(since) && s.done > done {
			return s.at, true
		}
	}
	return time.Time{}, false
}

// assertOneThankYouEach checks that each of the n tickets has exactly one
// thank-you row and no kind of notification twice, waits until none is
// pending (the per-recipient caps suppress most), and then that each
// customer's mailbox holds exactly the thank-yous marked sent to them, no
// Message-ID twice. A notification whose send task was lost with the
// master waits for the outbox sweep, so the wait allows 90 s.
func assertOneThankYouEach(t *testing.T, db *sql.DB, stack *mailstack.Stack, customers []string, n int) {
	t.Helper()
	ctx := context.Background()
	var thanks, ticketsThanked int
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT ticket_id) FROM notifications WHERE kind = 'thank_you'`).
		Scan(&thanks, &ticketsThanked); err != nil {
		t.Fatal(err)
	}
	if thanks != n || ticketsThanked != n {
		t.Errorf("%d thank-you notifications on %d tickets; want exactly %d of each", thanks, ticketsThanked, n)
	}
	var twice int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT ticket_id, kind, recipient FROM notifications
		GROUP BY ticket_id, kind, recipient HAVING count(*) > 1) AS d`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	if twice != 0 {
		t.Errorf("%d (ticket, kind, recipient) have more than one notification; want none", twice)
	}
	start := time.Now()
	var pendingAtStart int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE state = 'pending'`).Scan(&pendingAtStart); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "no pending notification", func() (bool, string) {
		var pending int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE state = 'pending'`).Scan(&pending); err != nil {
			return false, err.Error()
		}
		return pending == 0, fmt.Sprintf("%d pending", pending)
	})
	t.Logf("%d notifications pending when the ingest was done; none after another %s", pendingAtStart, time.Since(start).Round(time.Millisecond))
	for _, c := range customers {
		var sent int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE lower(recipient) LIKE '%' || $1 || '%' AND state = 'sent'`,
			strings.ToLower(c)).Scan(&sent); err != nil {
			t.Fatal(err)
		}
		got := stack.WaitForMail(t, c, "pw", sent, 30*time.Second)
		ids := map[string]int{}
		for _, raw := range got {
			m, err := mail.ReadMessage(strings.NewReader(string(raw)))
			if err != nil {
				t.Fatalf("mail to %s does not parse: %v", c, err)
			}
			ids[m.Header.Get("Message-ID")]++
		}
		t.Logf("%s: %d thank-you(s) sent, %d mail(s) in the mailbox, %d distinct", c, sent, len(got), len(ids))
		if len(got) != sent || len(ids) != sent {
			t.Errorf("%s has %d mails (%d distinct Message-IDs); want exactly the %d sent", c, len(got), len(ids), sent)
		}
	}
}
