package jobs

import (
	"cmp"
	"context"
	"log/slog"
	"strconv"
	"time"
)

// OutboxStore lists notifications committed but possibly never enqueued.
type OutboxStore interface {
	PendingNotifications(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error)
}

// Scheduler makes every mailbox due once per poll_interval. Any number of
// schedulers may run: each names the fetch after the interval slot it falls
// in (unix time / poll_interval), so all of them enqueue the same task ID and
// Redis keeps exactly one. A slow or broken mailbox never delays another:
// each fetch is its own task.
type Scheduler struct {
	enqueue *Enqueuer
	desks   []Desk
	outbox  OutboxStore
	tick    time.Duration
	sweep   OutboxSweep
	log     *slog.Logger
	now     func() time.Time

	rejections RejectionStore // nil: rejected mail is not answered
}

// NewScheduler wires a scheduler. tick is how often it looks (scheduler.tick).
func NewScheduler(enq *Enqueuer, desks []Desk, outbox OutboxStore, tick time.Duration, sweep OutboxSweep, logger *slog.Logger) *Scheduler {
	return &Scheduler{enqueue: enq, desks: desks, outbox: outbox, tick: tick, sweep: sweep.withDefaults(),
		log: logger.With("component", "scheduler"), now: time.Now}
}

// OutboxSweep tunes how lost send tasks are found again: every Every, the
// notifications pending for longer than After are queued again (task IDs
// make that a no-op for those still queued).
type OutboxSweep struct {
	Every time.Duration // defaults to 30s
	After time.Duration // defaults to 1m
}

func (o OutboxSweep) withDefaults() OutboxSweep {
	return OutboxSweep{Every: cmp.Or(o.Every, 30*time.Second), After: cmp.Or(o.After, time.Minute)}
}

// Run schedules until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(s.tick)
	defer t.Stop()
	last := map[string]int64{}
	var lastSweep time.Time
	for {
		now := s.now()
		for _, d := range s.desks {
			iv := d.Config.Polling().PollInterval.D()
			slot := now.UnixNano() / int64(iv)
			if last[d.Config.Key] == slot {
				continue
			}
			if _, err := s.enqueue.Fetch(ctx, d.Config.Key, strconv.FormatInt(slot, 10), iv); err != nil {
				s.log.Warn("enqueue fetch", "project", d.Config.Key, "err", err)
				continue // try again next tick
			}
			last[d.Config.Key] = slot
		}
		if now.Sub(lastSweep) >= s.sweep.Every {
			lastSweep = now
			s.sweepOutbox(ctx, now)
			s.sweepRejections(ctx, now)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sweepOutbox enqueues notifications whose enqueue after commit was lost.
func (s *Scheduler) sweepOutbox(ctx context.Context, now time.Time) {
	ids, err := s.outbox.PendingNotifications(ctx, now.Add(-s.sweep.After), 500)
	if err != nil {
		s.log.Warn("outbox sweep", "err", err)
		return
	}
	for _, id := range ids {
		if _, err := s.enqueue.Send(ctx, id); err != nil {
			s.log.Warn("outbox sweep enqueue", "notification", id, "err", err)
			return
		}
	}
}
