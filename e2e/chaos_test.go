//go:build chaos

package e2e

// The chaos run (issue 13, part 7): not part of the quick suite. Run it with
// deploy/chaos.sh, or:
//
//	go test -tags chaos -count=1 -run TestChaos -v -timeout 20m ./e2e/
//
// SERVICEDESK_CHAOS_MAILS changes the number of mails (default 10,000).

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

const (
	chaosWorkers   = 3
	chaosKillEvery = 2 * time.Second
	// chaosKillCap: the kills stop at the drain or this long after the
	// processes started, whichever comes first.
	chaosKillCap = 4 * time.Minute
	// The bounds of the two drains; the whole run stays under about 12
	// minutes on 2 cores.
	calmLimit  = 4 * time.Minute
	chaosLimit = 7 * time.Minute
	// How long Redis and Dovecot stay down when restarted.
	chaosDown = 2 * time.Second
)

// TestChaos ingests the same number of mails (10,000) twice on PostgreSQL
// with the same processes, one `serve --roles scheduler,web` and three
// `serve --roles worker`, each run on a fresh schema, mailbox and Redis:
// first undisturbed, then while it SIGKILLs a worker every 2 s (starting a
// new one at once), restarts Redis with its data, restarts Dovecot, and
// restarts Redis empty. Every mail must become exactly one ticket with one
// thank-you; it prints what was lost or doubled (all 0) and both drain
// times.
func TestChaos(t *testing.T) {
	t.Parallel()
	n := 10000
	if s := os.Getenv("SERVICEDESK_CHAOS_MAILS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			t.Fatalf("SERVICEDESK_CHAOS_MAILS=%q: want a positive number", s)
		}
		n = v
	}
	logDir, err := os.MkdirTemp("", "servicedesk-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	stack := mailstack.Start(t)
	calm := chaosRun(t, stack, logDir, "calm", n, false)
	wild := chaosRun(t, stack, logDir, "chaos", n, true)

	var b strings.Builder
	fmt.Fprintf(&b, "== chaos summary: %d mails, PostgreSQL, 1 x serve --roles scheduler,web + %d x serve --roles worker, "+
		"poll_interval 1s, outbox_sweep 2s, outbox_grace 5s\n", n, chaosWorkers)
	for _, r := range []*chaosResult{calm, wild} {
		fmt.Fprintf(&b, "%-11s %s\n", r.name+":", r.drainText())
		fmt.Fprintf(&b, "%-11s %s\n", "", r.counts)
		fmt.Fprintf(&b, "%-11s %s\n", "", r.counts.detail())
	}
	fmt.Fprintf(&b, "chaos events (t = since the processes started):\n")
	for _, e := range wild.events {
		fmt.Fprintf(&b, "  t+%6.1fs %s\n", e.at.Seconds(), e.text)
	}
	fmt.Fprintf(&b, "RESULT lost %d | duplicate tickets %d | duplicate thank-yous %d | drain undisturbed %s, chaos %s, ratio %s\n",
		wild.counts.lost, wild.counts.dupTickets, wild.counts.dupThankYous+wild.counts.dupMailboxIDs,
		calm.drainShort(), wild.drainShort(), ratio(calm, wild))
	fmt.Fprintf(&b, "logs of every process: %s\n== end of chaos summary\n", logDir)
	fmt.Print(b.String())

	for _, r := range []*chaosResult{calm, wild} {
		if !r.drained {
			t.Errorf("%s: not drained within %s: %s", r.name, r.limit, r.last)
		}
		if bad := r.counts.bad(); len(bad) > 0 {
			t.Errorf("%s: %s", r.name, strings.Join(bad, "; "))
		}
		for _, e := range r.errs {
			t.Errorf("%s: %s", r.name, e)
		}
	}
}

func ratio(calm, wild *chaosResult) string {
	if !calm.drained || !wild.drained {
		return "n/a (a run did not drain)"
	}
	return fmt.Sprintf("%.2f", wild.drain.Seconds()/calm.drain.Seconds())
}

type chaosEvent struct {
	at   time.Duration
	text string
}

type chaosResult struct {
	name          string
	limit         time.Duration
	appendTook    time.Duration
	drained       bool
	drain         time.Duration // processes started -> every mail processed and no notification pending
	ingested      time.Duration // processes started -> every ledger row processed
	last          drainState
	counts        chaosCounts
	events        []chaosEvent
	errs          []string
	kills, exited int
	exits         []string
}

func (r *chaosResult) drainText() string {
	if !r.drained {
		return fmt.Sprintf("NOT drained within %s (%s); appended in %s", r.limit, r.last, r.appendTook.Round(100*time.Millisecond))
	}
	return fmt.Sprintf("drained in %s (every mail processed after %s; the rest is the outbox); mailbox filled in %s before the start",
		r.drain.Round(100*time.Millisecond), r.ingested.Round(100*time.Millisecond), r.appendTook.Round(100*time.Millisecond))
}

func (r *chaosResult) drainShort() string {
	if !r.drained {
		return "not drained in " + r.limit.String()
	}
	return r.drain.Round(100 * time.Millisecond).String()
}

// chaosRun fills a fresh mailbox with n mails, starts the processes on a
// fresh schema and Redis, disturbs them if chaos, and waits (bounded) for
// the drain.
func chaosRun(t *testing.T, stack *mailstack.Stack, logDir, tag string, n int, chaos bool) *chaosResult {
	ctx := context.Background()
	r := &chaosResult{name: map[bool]string{false: "undisturbed", true: "chaos"}[chaos], limit: calmLimit}
	if chaos {
		r.limit = chaosLimit
	}
	deskAddr := "chaos-" + tag + "@example.test"
	stack.AddUser(t, deskAddr, deskPass)
	var customers []string
	for _, s := range []string{"alice", "bob", "carol"} {
		customers = append(customers, s+"-"+tag+"@customer.test")
		stack.AddUser(t, customers[len(customers)-1], "pw")
	}
	started := time.Now()
	if err := appendBacklogAtOnce(stack, deskAddr, tag, n, 8); err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	r.appendTook = time.Since(started)
	t.Logf("%s: appended %d mails to %s in %s", r.name, n, deskAddr, r.appendTook.Round(time.Millisecond))

	rds, err := newChaosRedis(t, logDir)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	env := newDesk(t, stack, backend{"postgres", postgresURL}, envOptions{desk: deskAddr, redisURL: rds.url(),
		outboxSweep: "2s", outboxGrace: "5s"})
	openBenchStore(t, env.dbURL) // migrated before the clock starts
	db, err := sql.Open("pgx", env.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	start := time.Now()
	layout, err := startLayout(t, env.config, logDir, tag, chaosWorkers)
	if err != nil {
		t.Fatalf("%s: %v", r.name, err)
	}
	var (
		mu       sync.Mutex
		done     atomic.Int64 // processed ledger rows, for the event triggers
		backlog  atomic.Int64 // ledger rows not processed yet + notifications pending
		finished = make(chan struct{})
		wg       sync.WaitGroup
		// The empty restart: when, and the work it left behind.
		emptyAt             time.Time
		recoveredRows       time.Duration
		recoveredNotes      time.Duration
		rowsAt, notesAt     int
		rowsSeen, notesSeen bool
	)
	note := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		r.events = append(r.events, chaosEvent{time.Since(start), fmt.Sprintf(format, args...)})
	}
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		r.errs = append(r.errs, fmt.Sprintf(format, args...))
	}
	eventsDone := make(chan struct{})
	if !chaos {
		close(eventsDone)
	} else {
		// A worker is SIGKILLed every 2 s, round robin, and a new one
		// started at once, until the drain (or chaosKillCap).
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(chaosKillEvery)
			defer tick.Stop()
			first := time.Duration(0)
			for i := 0; ; i++ {
				select {
				case <-finished:
					layout.mu.Lock()
					k := layout.kills
					layout.mu.Unlock()
					note("kills stopped at the drain: %d SIGKILLs of a worker, every %s from t+%.1fs, each followed at once by a new worker", k, chaosKillEvery, first.Seconds())
					return
				case <-tick.C:
				}
				if time.Since(start) > chaosKillCap {
					layout.mu.Lock()
					k := layout.kills
					layout.mu.Unlock()
					note("kills stopped at the cap of %s, before the drain: %d SIGKILLs of a worker", chaosKillCap, k)
					return
				}
				if err := layout.revive(); err != nil {
					fail("revive: %v", err)
				}
				if i == 0 {
					first = time.Since(start)
				}
				if err := layout.killWorker(i % chaosWorkers); err != nil {
					fail("kill and restart worker %d: %v", i%chaosWorkers, err)
				}
			}
		}()
		// Redis with its data, Dovecot, Redis empty: each at a share of
		// the mail processed, or at a time, whichever comes first.
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(eventsDone)
			await := func(share float64, queued int64, at time.Duration) bool {
				for {
					if float64(done.Load()) >= share*float64(n) && backlog.Load() >= queued || time.Since(start) >= at {
						return true
					}
					select {
					case <-finished:
						return false
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
			if !await(0.2, 0, 25*time.Second) {
				return
			}
			p := done.Load()
			t0 := time.Now()
			before, after, err := rds.restartKept(chaosDown)
			if err != nil {
				fail("restart Redis with its data: %v", err)
			}
			note("Redis restarted with its data (SHUTDOWN SAVE, %s down, back after %s): %d keys before, %d after; %d/%d processed then",
				chaosDown, time.Since(t0).Round(100*time.Millisecond), before, after, p, n)

			if !await(0.4, 0, 50*time.Second) {
				return
			}
			p = done.Load()
			t0 = time.Now()
			stopped, err := restartDovecot(stack, chaosDown)
			if err != nil {
				fail("restart Dovecot: %v", err)
			}
			note("Dovecot restarted (SIGTERM took %s, %s down, back after %s); %d/%d processed then",
				stopped.Round(100*time.Millisecond), chaosDown, time.Since(t0).Round(100*time.Millisecond), p, n)

			// Empty, when there is queued work to lose: ledger rows
			// waiting for their process task, notifications for their
			// send task.
			if !await(0.5, int64(min(200, n/10)), 90*time.Second) {
				return
			}
			s, err := readDrain(ctx, db)
			if err != nil {
				fail("read the ledger before the empty restart: %v", err)
			}
			t0 = time.Now()
			mu.Lock()
			emptyAt, rowsAt, notesAt = t0, s.rows-s.done, s.pending
			mu.Unlock()
			lost, after, err := rds.restartEmpty(chaosDown)
			if err != nil {
				fail("restart Redis empty: %v", err)
			}
			note("Redis restarted EMPTY (SIGKILL, dump removed, %s down, back after %s): %d keys lost, %d right after; then %d ledger rows, %d processed, %d notifications pending",
				chaosDown, time.Since(t0).Round(100*time.Millisecond), lost, after, s.rows, s.done, s.pending)
		}()
	}

	deadline := start.Add(r.limit)
	for {
		s, err := readDrain(ctx, db)
		if err == nil {
			r.last = s
			done.Store(int64(s.done))
			backlog.Store(int64(s.rows - s.done + s.pending))
			if r.ingested == 0 && s.rows >= n && s.done == s.rows {
				r.ingested = time.Since(start)
			}
			mu.Lock()
			since := emptyAt
			mu.Unlock()
			if !since.IsZero() && (!rowsSeen || !notesSeen) {
				// The work the empty restart left behind: ledger rows
				// received before it still unprocessed, notifications
				// created before it still pending.
				var rows, notes int
				e1 := db.QueryRowContext(ctx, `SELECT count(*) FROM inbound WHERE outcome = '' AND received_at <= $1`, since).Scan(&rows)
				e2 := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE state = 'pending' AND created_at <= $1`, since).Scan(&notes)
				if e1 == nil && e2 == nil {
					if !rowsSeen && rows == 0 {
						rowsSeen, recoveredRows = true, time.Since(since)
					}
					if !notesSeen && notes == 0 {
						notesSeen, recoveredNotes = true, time.Since(since)
					}
				}
			}
		}
		select {
		case <-eventsDone:
			if s.drained(n) {
				r.drained = true
				r.drain = time.Since(start)
			}
		default:
		}
		if r.drained || time.Now().After(deadline) {
			break
		}
		if !chaos {
			if err := layout.revive(); err != nil {
				r.errs = append(r.errs, err.Error())
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	close(finished)
	wg.Wait()
	if chaos && !emptyAt.IsZero() {
		what := "fetch's lost-task sweep: rows unprocessed for over a minute are queued again by a fetch that reaches the end of the mailbox"
		rowsText := fmt.Sprintf("of the %d unprocessed at the restart, not all processed within the run", rowsAt)
		if rowsSeen {
			rowsText = fmt.Sprintf("the %d unprocessed at the restart all processed %s after it", rowsAt, recoveredRows.Round(100*time.Millisecond))
		}
		notesText := fmt.Sprintf("of the %d pending at the restart, not all out of pending within the run", notesAt)
		if notesSeen {
			notesText = fmt.Sprintf("the %d pending at the restart all out of pending %s after it", notesAt, recoveredNotes.Round(100*time.Millisecond))
		}
		r.events = append(r.events, chaosEvent{time.Since(start), fmt.Sprintf("recovery from the empty restart: ledger rows: %s (%s); notifications: %s (outbox sweep every 2s, pending over 5s)",
			rowsText, what, notesText)})
	}
	for _, err := range layout.stop() {
		r.errs = append(r.errs, fmt.Sprintf("stop serve: %v", err))
	}
	r.kills, r.exited, r.exits = layout.kills, layout.exited, layout.exits
	if r.exited > 0 {
		r.events = append(r.events, chaosEvent{time.Since(start), fmt.Sprintf("%d processes exited by themselves and were started again: %s",
			r.exited, strings.Join(firstN(r.exits, 5), "; "))})
	}
	if !chaos && r.exited > 0 {
		r.errs = append(r.errs, fmt.Sprintf("%d processes exited in the undisturbed run", r.exited))
	}
	r.counts, err = countChaos(ctx, db, tag, n)
	if err != nil {
		t.Fatalf("%s: count: %v", r.name, err)
	}
	countMailboxes(t, stack, customers, &r.counts)
	if gaps, err := processingGaps(ctx, db, start, 5*time.Second); err != nil {
		r.errs = append(r.errs, fmt.Sprintf("processing gaps: %v", err))
	} else if len(gaps) > 0 {
		r.events = append(r.events, chaosEvent{time.Since(start), "gaps of over 5s with no mail processed: " + strings.Join(firstN(gaps, 8), ", ")})
	}
	sortEvents(r.events)
	t.Logf("%s: %s", r.name, r.drainText())
	return r
}

func firstN(s []string, n int) []string { return s[:min(n, len(s))] }

func sortEvents(e []chaosEvent) {
	for i := 1; i < len(e); i++ {
		for j := i; j > 0 && e[j].at < e[j-1].at; j-- {
			e[j], e[j-1] = e[j-1], e[j]
		}
	}
}

// processingGaps lists the stretches longer than min in which no ledger row
// got its outcome, as "from t+A for B".
func processingGaps(ctx context.Context, db *sql.DB, start time.Time, minGap time.Duration) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT processed_at FROM inbound WHERE processed_at IS NOT NULL ORDER BY processed_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var gaps []string
	prev := start
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			return nil, err
		}
		if d := at.Sub(prev); d > minGap {
			gaps = append(gaps, fmt.Sprintf("from t+%.1fs for %.1fs", prev.Sub(start).Seconds(), d.Seconds()))
		}
		prev = at
	}
	return gaps, rows.Err()
}
