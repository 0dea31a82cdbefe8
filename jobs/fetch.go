package jobs

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/mailsync"
	"github.com/servicedesk/servicedesk/ticket"
)

// Mailbox is the IMAP session a fetch needs (mailbox.Client).
type Mailbox = mailsync.Mailbox

// Dialer opens an IMAP session to a project's mailbox.
type Dialer = mailsync.Dialer

// FetchStore is what a fetch needs of the store.
type FetchStore = mailsync.Store

// Desk is a configured project with its store ID.
type Desk = mailsync.Desk

// Fetcher runs fetch jobs: each is one mailsync run of one mailbox, which
// drains the waiting mail on one connection; a backlog larger than one run
// takes (mailsync.Options.MaxRun) continues in a follow-up task at once.
type Fetcher struct {
	store   FetchStore
	dial    Dialer
	enqueue *Enqueuer
	desks   map[string]Desk
	maxSize int64
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	once    sync.Once
	syncr   *mailsync.Syncer
	// LeaseTTL bounds how long a crashed fetcher keeps others off its
	// mailbox. Defaults to 30s; renewed every third of it while running.
	// Set it before the first run.
	LeaseTTL time.Duration
	// Handoff, when set, receives the mail just stored, for the process
	// jobs of this process. Set it before the first run.
	Handoff *Handoff
	// Again, when set, makes a fetch that finds its mailbox busy leave a
	// mark, and the busy one queue one more fetch when it is done (IMAP
	// IDLE asks for fetches at any moment). Nil: a busy mailbox is
	// skipped until the next poll.
	Again FetchAgain
}

// NewFetcher wires a fetcher. maxSize is limits.max_message_size.
func NewFetcher(st FetchStore, dial Dialer, enq *Enqueuer, desks []Desk, maxSize int64, m *Metrics, logger *slog.Logger) *Fetcher {
	f := &Fetcher{store: st, dial: dial, enqueue: enq, desks: map[string]Desk{}, maxSize: maxSize,
		log: logger.With("component", "fetch"), metrics: m, now: time.Now, LeaseTTL: 30 * time.Second}
	for _, d := range desks {
		f.desks[d.Config.Key] = d
	}
	return f
}

// syncer builds the mailsync.Syncer on first use, so that LeaseTTL and
// Handoff set after NewFetcher take effect.
func (f *Fetcher) syncer() *mailsync.Syncer {
	f.once.Do(func() {
		f.syncr = mailsync.New(f.store, f.dial, mailsync.QueueFunc(f.enqueueProcess), &mailsync.Options{
			MaxMessageSize: f.maxSize, LeaseTTL: f.LeaseTTL, Logger: slog.New(taskIDHandler{f.log.Handler()}), Now: f.now,
			Stored:   f.Handoff.put,
			Rejected: func(project string) { f.metrics.outcome(project, ticket.OutcomeRejected) },
			Fetched:  f.metrics.fetched,
		})
	})
	return f.syncr
}

// Stop makes running fetches end after the batch in hand; each queues its
// follow-up (mailsync.Syncer.Stop).
func (f *Fetcher) Stop() { f.syncer().Stop() }

// ProcessTask is the asynq handler of TypeFetch.
func (f *Fetcher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p, err := decode[FetchPayload](t)
	if err != nil {
		return err
	}
	d, ok := f.desks[p.Project]
	if !ok {
		return fmt.Errorf("fetch: unknown project %q (config changed?): %w", p.Project, asynq.SkipRetry)
	}
	start := f.now()
	more, err := f.Run(ctx, d)
	f.metrics.fetchDone(d.Config.Key, start, f.now(), err)
	if err != nil {
		if rerr := f.store.RecordMailboxRun(context.WithoutCancel(ctx), d.ID, f.now(), err.Error()); rerr != nil {
			taskLog(ctx, f.log).Error("record mailbox failure", "project", d.Config.Key, "err", rerr)
		}
		taskLog(ctx, f.log).Warn("fetch failed", "project", d.Config.Key, "err", err, "temporary", mailbox.Temporary(err))
		return err
	}
	if more != "" {
		if _, err := f.enqueue.Fetch(ctx, d.Config.Key, more, d.Config.Polling().PollInterval.D()); err != nil {
			return err
		}
	}
	return nil
}

// Run syncs the desk's mailbox once (mailsync.Syncer.Run). It returns a
// slot name for a follow-up run when the run stopped with mail waiting.
// Another run already holding the mailbox makes it return at once.
func (f *Fetcher) Run(ctx context.Context, d Desk) (more string, err error) {
	res, err := f.syncer().Run(ctx, d)
	if err == nil && res.Busy && f.Again != nil {
		// Leave the mark, then try once more: either this fetch runs after
		// all, or the holder (which releases after the mark was set) takes
		// the mark when it is done.
		if err := f.Again.Mark(ctx, d.Config.Key); err != nil {
			return "", err
		}
		res, err = f.syncer().Run(ctx, d)
	}
	if !res.Busy {
		// This run held the mailbox (and has released it): a fetch asked
		// for meanwhile is queued now.
		defer f.again(context.WithoutCancel(ctx), d)
	}
	if err != nil {
		return "", err
	}
	if res.Busy {
		taskLog(ctx, f.log).Debug("mailbox busy, skipping", "project", d.Config.Key)
		return "", nil
	}
	f.metrics.fetchSucceeded(d.Config.Key, f.now())
	if res.More {
		more = "more:" + strconv.FormatUint(uint64(res.UIDValidity), 10) + ":" + strconv.FormatUint(uint64(res.LastUID), 10)
	}
	return more, nil
}

// enqueueProcess queues a process task for each ledger row, a few at a
// time: each is one round trip to Redis.
func (f *Fetcher) enqueueProcess(ctx context.Context, ids []int64) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(enqueueWorkers)
	for _, id := range ids {
		g.Go(func() error {
			_, err := f.enqueue.Process(ctx, id)
			return err
		})
	}
	return g.Wait()
}

// enqueueWorkers is how many process tasks are queued at once.
const enqueueWorkers = 4

// again queues one more fetch when one was asked for while this one ran.
// A failure costs latency, not mail: the next poll fetches.
func (f *Fetcher) again(ctx context.Context, d Desk) {
	if f.Again == nil {
		return
	}
	taken, err := f.Again.Take(ctx, d.Config.Key)
	if err == nil && taken {
		_, err = f.enqueue.Fetch(ctx, d.Config.Key, "again:"+strconv.FormatInt(f.now().UnixNano(), 10), d.Config.Polling().PollInterval.D())
	}
	if err != nil {
		taskLog(ctx, f.log).Warn("queue the fetch asked for while this one ran; the next poll fetches", "project", d.Config.Key, "err", err)
	}
}
