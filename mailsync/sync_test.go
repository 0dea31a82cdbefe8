package mailsync

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// after_processing (seen, move, delete) touches a message only once its
// outcome is committed: a run that downloaded and queued it leaves it as it
// was; the first run after the commit flags, moves or deletes it.
func TestAfterProcessingHappensOnlyAfterCommit(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		for _, mode := range []string{"seen", "move", "delete"} {
			t.Run(backend+"/"+mode, func(t *testing.T) {
				t.Parallel()
				d := setup(t, backend, config.IMAP{AfterProcessing: mode, ProcessedFolder: "Done"}, Options{})
				d.deliver(mail(1, 0), mail(2, 0), mail(3, 0))

				d.run()
				if n := len(d.queue.queued()); n != 3 {
					t.Fatalf("after the first run %d messages are queued; want 3", n)
				}
				d.run() // a second run before processing changes nothing either
				if seen, unseen := d.seen(folder); seen != 0 || unseen != 3 {
					t.Fatalf("before commit: %s has %d seen, %d unseen; want all 3 untouched", folder, seen, unseen)
				}
				if _, ok := d.inFolder("Done"); ok {
					t.Fatalf("before commit: folder Done exists; want nothing moved yet")
				}

				d.queue.drain(t) // commit: three tickets
				d.run()
				seen, unseen := d.seen(folder)
				done, _ := d.inFolder("Done")
				switch mode {
				case "seen":
					if seen != 3 || unseen != 0 {
						t.Errorf("after commit: %s has %d seen, %d unseen; want all 3 seen", folder, seen, unseen)
					}
				case "move":
					if seen+unseen != 0 || len(done) != 3 {
						t.Errorf("after commit: %s holds %d, Done %d; want all 3 moved to Done", folder, seen+unseen, len(done))
					}
				case "delete":
					if seen+unseen != 0 || len(done) != 0 {
						t.Errorf("after commit: %s holds %d, Done %d; want all 3 deleted", folder, seen+unseen, len(done))
					}
				}
				for _, r := range d.ledger() {
					if !r.Applied {
						t.Errorf("ledger row UID %d not marked applied after the run that applied it", r.UID)
					}
				}
				d.wantEachOnce(3)
			})
		}
	}
}

// Mail whose processing failed for good, and mail refused for its size,
// stays in the mailbox untouched, for a person to see.
func TestFailedAndRejectedMailIsNeverTouched(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{AfterProcessing: "delete"}, Options{MaxMessageSize: 2000})
		d.deliver(mail(1, 0), mail(2, 5000), mail(3, 0))
		d.run()
		ids := d.queue.queued()
		if len(ids) != 2 {
			t.Fatalf("%d messages queued; want 2 (the one too large is not)", len(ids))
		}
		if err := d.st.FailInbound(t.Context(), ids[1], "failed by the test"); err != nil {
			t.Fatalf("fail inbound: %v", err)
		}
		d.queue.drain(t)
		d.run()
		left, _ := d.inFolder(folder)
		if len(left) != 2 {
			t.Fatalf("%s holds %d messages after delete; want the failed and the too-large one", folder, len(left))
		}
	})
}

// When the server renumbers the folder (a new UIDVALIDITY), the sync
// rescans it from the start: mail already ingested is recognised and opens
// no second ticket, new mail is ingested, and all of it is flagged.
func TestUIDValidityChangeRescansWithoutDuplicates(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{}, Options{})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0))
		first := d.run()
		d.queue.drain(t)
		d.run()

		// The folder is recreated with the same mail and one more.
		if err := d.user.Delete(folder); err != nil {
			t.Fatalf("delete folder: %v", err)
		}
		if err := d.user.Create(folder, nil); err != nil {
			t.Fatalf("recreate folder: %v", err)
		}
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0), mail(4, 0))
		res := d.run()
		if res.UIDValidity == first.UIDValidity || res.Listed != 4 {
			t.Fatalf("run after renumbering = %+v (before: UIDVALIDITY %d); want a new UIDVALIDITY and all 4 messages rescanned", res, first.UIDValidity)
		}
		d.queue.drain(t)
		d.run()

		d.wantEachOnce(4)
		outcomes := map[ticket.Outcome]int{}
		for _, r := range d.ledger() {
			if r.UIDValidity == res.UIDValidity {
				outcomes[r.Outcome]++
			}
		}
		if outcomes[ticket.OutcomeDuplicate] != 3 || outcomes[ticket.OutcomeTicketCreated] != 1 {
			t.Errorf("ledger rows of the new UIDVALIDITY by outcome = %v; want 3 duplicate, 1 ticket_created", outcomes)
		}
		d.wantAllSeen(4)
	})
}

// Mail over limits.max_message_size is not downloaded: its ledger row and
// dead letter name it by its envelope (From, Subject, Message-ID). Retried
// after the limit was raised, it is downloaded, processed and flagged;
// retried while still too large, it is refused again.
func TestRefetchAfterTheLimitWasRaised(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{}, Options{MaxMessageSize: 2000})
		d.deliver(mail(1, 5000), mail(2, 0))
		d.run()
		d.queue.drain(t)
		d.run()

		rows := d.ledger()
		if len(rows) != 2 {
			t.Fatalf("ledger has %d rows; want 2", len(rows))
		}
		big := rows[0]
		if big.Outcome != ticket.OutcomeRejected || big.From != "customer1@customer.test" ||
			big.Subject != "request 1" || big.MessageID != "<m1@customer.test>" ||
			!strings.Contains(big.Reason, "larger than limits.max_message_size (2000 bytes)") {
			t.Fatalf("row of the large mail = %+v; want rejected, named by its envelope, the reason saying the limit", big)
		}
		letters, _, err := d.st.DeadLetters(t.Context(), store.Page{})
		if err != nil || len(letters) != 1 {
			t.Fatalf("dead letters = %v, %v; want the one of the large mail", letters, err)
		}
		dl := letters[0]
		if dl.Address != "customer1@customer.test" || dl.Subject != "request 1" || dl.MessageID != "<m1@customer.test>" {
			t.Fatalf("dead letter = %+v; want it named by the envelope", dl)
		}

		t.Run("retried while still too large, it is refused again", func(t *testing.T) {
			if _, err := d.st.RetryDeadLetter(t.Context(), dl.ID); err != nil {
				t.Fatalf("retry dead letter: %v", err)
			}
			d.run()
			if r := d.ledger()[0]; r.Outcome != ticket.OutcomeRejected || len(d.queue.queued()) != 0 {
				t.Fatalf("row after a retry at the same limit = %+v, queued %v; want rejected again, nothing queued", r, d.queue.queued())
			}
		})

		t.Run("retried after the limit was raised, it becomes a ticket", func(t *testing.T) {
			letters, _, _ := d.st.DeadLetters(t.Context(), store.Page{})
			if len(letters) != 1 {
				t.Fatalf("open dead letters = %d; want the refused one again", len(letters))
			}
			if _, err := d.st.RetryDeadLetter(t.Context(), letters[0].ID); err != nil {
				t.Fatalf("retry dead letter: %v", err)
			}
			d.opts.MaxMessageSize = 10000
			d.run()
			d.queue.drain(t)
			d.run()
			d.wantEachOnce(2)
			d.wantAllSeen(2)
		})
	})
}

// A row whose process task was lost (Redis flushed, a crash between the
// commit and the queue) is queued again by a later run once it is older
// than SweepAfter; a fresh one is left to the queue it is in.
func TestLostProcessTasksAreQueuedAgain(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{}, Options{SweepAfter: time.Minute})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0))
		d.queue.lose = true
		d.run()
		d.queue.lose = false

		d.run()
		if q := d.queue.queued(); len(q) != 0 {
			t.Fatalf("a run right after queued %v again; want nothing while the rows are fresh", q)
		}
		d.clock.Advance(2 * time.Minute)
		d.run()
		if q := d.queue.queued(); len(q) != 3 {
			t.Fatalf("a run two minutes later queued %v; want the 3 lost rows", q)
		}
		d.queue.drain(t)
		d.run()
		d.wantEachOnce(3)
	})
}

// A backlog drains in one run on one connection, batch after batch; a run
// that reaches MaxRun hands the rest to a follow-up run (Result.More).
func TestBacklogDrainsOnOneConnection(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{BatchSize: 2}, Options{})
		for i := 1; i <= 7; i++ {
			d.deliver(mail(i, 0))
		}
		var dials atomic.Int32
		d.faults = &faults{}
		res := d.run()
		for _, s := range d.faults.steps {
			if s == "Dial" {
				dials.Add(1)
			}
		}
		if res.Listed != 7 || res.More || dials.Load() != 1 {
			t.Fatalf("run = %+v after %d dials; want all 7 listed, no follow-up, one connection", res, dials.Load())
		}

		d.deliver(mail(8, 0), mail(9, 0), mail(10, 0))
		d.opts.MaxRun = time.Second
		d.opts.Now = func() time.Time { d.clock.Advance(time.Second); return d.clock.Now() }
		if res := d.run(); res.Listed != 2 || !res.More {
			t.Fatalf("run past MaxRun = %+v; want one batch of 2 and More", res)
		}
		d.opts.MaxRun, d.opts.Now = 0, d.clock.Now
		if res := d.run(); res.Listed != 1 || res.More {
			t.Fatalf("follow-up run = %+v; want the last message and no More", res)
		}
		d.queue.drain(t)
		d.run()
		d.wantEachOnce(10)
	})
}

// A run gets no further ahead of processing than MaxAhead ledger rows: it
// pauses, and hands on to a follow-up run at MaxRun; once the rows are
// processed, the next run goes on.
func TestARunWaitsForProcessingToCatchUp(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{BatchSize: 2}, Options{MaxAhead: 2, MaxRun: time.Second})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0), mail(4, 0), mail(5, 0))
		d.opts.Now = func() time.Time { d.clock.Advance(300 * time.Millisecond); return d.clock.Now() }
		if res := d.run(); res.Listed != 2 || !res.More {
			t.Fatalf("run with nothing processed = %+v; want one batch of 2, then More", res)
		}
		d.queue.drain(t)
		if res := d.run(); res.Listed != 2 || !res.More {
			t.Fatalf("run after processing = %+v; want the next batch of 2, then More", res)
		}
		d.queue.drain(t)
		if res := d.run(); res.Listed != 1 || res.More {
			t.Fatalf("last run = %+v; want the last message and no More", res)
		}
		d.queue.drain(t)
		d.run()
		d.wantEachOnce(5)
	})
}

// A run paused for processing to catch up still sweeps: when the rows it
// waits for lost their process tasks (Redis flushed), the run that hands
// on queues them again, so the pause ends.
func TestAPausedRunSweepsLostTasks(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{BatchSize: 2}, Options{MaxAhead: 2, MaxRun: time.Second, SweepAfter: time.Second})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0))
		d.opts.Now = func() time.Time { d.clock.Advance(300 * time.Millisecond); return d.clock.Now() }
		d.queue.lose = true
		d.run() // the first batch's tasks are lost
		d.queue.lose = false
		if res := d.run(); res.Listed != 0 || !res.More || len(d.queue.queued()) != 2 {
			t.Fatalf("paused run = %+v, queued %v; want nothing listed, More, and the 2 lost rows queued again", res, d.queue.queued())
		}
		d.queue.drain(t)
		d.run()
		d.queue.drain(t)
		d.run()
		d.wantEachOnce(3)
	})
}

// Stop (a process shutting down) ends a backlog run after the batch in
// hand, with More: nothing half done, the rest left to a follow-up run.
func TestStopEndsARunAfterItsBatch(t *testing.T) {
	t.Parallel()
	forEachBackend(t, func(t *testing.T, backend string) {
		d := setup(t, backend, config.IMAP{BatchSize: 2}, Options{})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0), mail(4, 0), mail(5, 0))
		s := d.syncer()
		s.Stop()
		res, err := s.Run(t.Context(), d.desk)
		if err != nil || res.Listed != 2 || !res.More {
			t.Fatalf("run of a stopping syncer = %+v, %v; want one batch of 2, then More", res, err)
		}
		if res := d.run(); res.Listed != 3 || res.More {
			t.Fatalf("follow-up run = %+v; want the other 3", res)
		}
		d.queue.drain(t)
		d.run()
		d.wantEachOnce(5)
	})
}

// A crash at any step of a run (each call to the mailbox, the store or the
// queue, and each message handed over by a download) loses no mail and
// doubles none: the next runs finish the work, every mail becomes exactly
// one ticket, one ledger row per message, and all of it is flagged.
func TestACrashBetweenAnyTwoStepsLosesNothingAndDoublesNothing(t *testing.T) {
	t.Parallel()
	// scenario: three mails already processed (so the faulty run has flags
	// to apply), three new ones in batches of two, then the faulty run.
	scenario := func(t *testing.T, backend string, failAt int) *desk {
		d := setup(t, backend, config.IMAP{BatchSize: 2}, Options{SweepAfter: time.Minute})
		d.deliver(mail(1, 0), mail(2, 0), mail(3, 0))
		d.run()
		d.queue.drain(t)
		d.deliver(mail(4, 0), mail(5, 0), mail(6, 0))
		d.faults = &faults{failAt: failAt}
		_, err := d.syncer().Run(t.Context(), d.desk)
		if failAt > 0 && !errors.Is(err, errCrash) {
			t.Fatalf("run crashing at step %d = %v; want the injected crash", failAt, err)
		}
		if failAt == 0 && err != nil {
			t.Fatalf("run without a crash: %v", err)
		}
		return d
	}
	forEachBackend(t, func(t *testing.T, backend string) {
		steps := scenario(t, backend, 0).faults.steps
		if len(steps) < 10 {
			t.Fatalf("the run took %d steps (%v); want the whole sync", len(steps), steps)
		}
		for i, step := range steps {
			t.Run(fmt.Sprintf("crash at step %d, %s", i+1, step), func(t *testing.T) {
				d := scenario(t, backend, i+1)
				// Recovery: the lease has expired, later runs succeed,
				// the queue is worked off, lost tasks are swept.
				d.faults = nil
				d.clock.Advance(2 * time.Minute)
				for range 3 {
					d.run()
					d.queue.drain(t)
				}
				d.run()
				d.wantEachOnce(6)
				uids := map[uint32]int{}
				for _, r := range d.ledger() {
					uids[r.UID]++
				}
				if len(uids) != 6 {
					t.Errorf("ledger rows by UID = %v; want 6 UIDs", uids)
				}
				for uid, n := range uids {
					if n != 1 {
						t.Errorf("UID %d has %d ledger rows; want 1", uid, n)
					}
				}
				d.wantAllSeen(6)
			})
		}
	})
}
