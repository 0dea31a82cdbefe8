package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"golang.org/x/sync/errgroup"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// Mailbox is the IMAP session a fetch needs (mailbox.Client).
type Mailbox interface {
	Select(ctx context.Context, folder string) (mailbox.Status, error)
	List(ctx context.Context, afterUID uint32, limit int) ([]mailbox.Entry, error)
	Fetch(ctx context.Context, uids []uint32, fn func(uid uint32, raw []byte) error) error
	MarkSeen(ctx context.Context, uids []uint32) error
	Move(ctx context.Context, uids []uint32, folder string) error
	Delete(ctx context.Context, uids []uint32) error
	Close() error
}

var _ Mailbox = (*mailbox.Client)(nil)

// Dialer opens an IMAP session to a project's mailbox.
type Dialer func(ctx context.Context, p config.Project) (Mailbox, error)

// FetchStore is what a fetch needs of the store.
type FetchStore interface {
	AcquireMailbox(ctx context.Context, projectID int64, owner string, ttl time.Duration) (store.MailboxState, bool, error)
	RenewMailbox(ctx context.Context, projectID int64, owner string, ttl time.Duration) error
	ReleaseMailbox(ctx context.Context, projectID int64, owner string) error
	SetMailboxCursor(ctx context.Context, projectID int64, uidValidity, lastUID uint32) error
	RecordMailboxRun(ctx context.Context, projectID int64, at time.Time, runErr string) error
	RecordFetched(ctx context.Context, in ticket.Inbound, raw []byte) (int64, bool, error)
	RecordFetchedBatch(ctx context.Context, projectID int64, uidValidity uint32, msgs []store.Fetched) ([]int64, error)
	AttachRaw(ctx context.Context, inboundID int64, raw []byte) error
	RejectInbound(ctx context.Context, inboundID int64, reason string) error
	UnprocessedInbound(ctx context.Context, projectID int64, fetchedBefore time.Time, limit int) ([]int64, error)
	UnappliedInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error)
	MarkApplied(ctx context.Context, ids []int64) error
	RefetchInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error)
}

// Desk is a configured project with its store ID.
type Desk struct {
	ID     int64
	Config config.Project
}

// Fetcher runs fetch jobs: one bounded pass over one mailbox.
type Fetcher struct {
	store   FetchStore
	dial    Dialer
	enqueue *Enqueuer
	desks   map[string]Desk
	maxSize int64
	owner   string       // this process; each run leases as owner:<run>
	runs    atomic.Int64 // numbers the runs for their lease owner
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	// LeaseTTL bounds how long a crashed fetcher keeps others off its
	// mailbox. Defaults to 30s; renewed every third of it while running.
	LeaseTTL time.Duration
	// Handoff, when set, receives the mail just stored, for the process
	// jobs of this process.
	Handoff *Handoff
	// Again, when set, makes a fetch that finds its mailbox busy leave a
	// mark, and the busy one queue one more fetch when it is done (IMAP
	// IDLE asks for fetches at any moment). Nil: a busy mailbox is
	// skipped until the next poll.
	Again FetchAgain
}

// NewFetcher wires a fetcher. maxSize is limits.max_message_size.
func NewFetcher(st FetchStore, dial Dialer, enq *Enqueuer, desks []Desk, maxSize int64, m *Metrics, logger *slog.Logger) *Fetcher {
	host, _ := os.Hostname()
	f := &Fetcher{store: st, dial: dial, enqueue: enq, desks: map[string]Desk{}, maxSize: maxSize,
		owner: fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano()), log: logger.With("component", "fetch"),
		metrics: m, now: time.Now, LeaseTTL: 30 * time.Second}
	for _, d := range desks {
		f.desks[d.Config.Key] = d
	}
	return f
}

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

// Run fetches one batch of new mail from the desk's mailbox. It returns a
// slot name for a follow-up run when more mail is waiting than one batch
// takes. Another run already holding the mailbox makes it return at once.
func (f *Fetcher) Run(ctx context.Context, d Desk) (more string, err error) {
	cfg := d.Config.Polling()
	// Each run is its own lease owner: the store extends a lease for the
	// owner that holds it, so a per-process owner would let this process's
	// overlapping fetch tasks (a scheduled slot and a backlog follow-up)
	// run the same mailbox at once, downloading the same batch twice.
	owner := f.owner + ":" + strconv.FormatInt(f.runs.Add(1), 10)
	state, ok, err := f.acquire(ctx, d, owner)
	if err != nil || !ok {
		return "", err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go f.renew(ctx, cancel, d.ID, owner)
	defer func() {
		if err := f.store.ReleaseMailbox(context.WithoutCancel(ctx), d.ID, owner); err != nil {
			taskLog(ctx, f.log).Warn("release mailbox lease", "project", d.Config.Key, "err", err)
		}
		f.again(context.WithoutCancel(ctx), d)
	}()

	c, err := f.dial(ctx, d.Config)
	if err != nil {
		return "", fmt.Errorf("connect to mailbox: %w", err)
	}
	defer c.Close()
	st, err := c.Select(ctx, cfg.Folder)
	if err != nil {
		return "", fmt.Errorf("select %q: %w", cfg.Folder, err)
	}
	lastUID := state.LastUID
	if state.UIDValidity != st.UIDValidity {
		if state.UIDValidity != 0 {
			taskLog(ctx, f.log).Warn("UIDVALIDITY changed: rescanning the whole folder; already ingested mail is recognised as duplicate",
				"project", d.Config.Key, "old", state.UIDValidity, "new", st.UIDValidity)
		}
		lastUID = 0
		if err := f.store.SetMailboxCursor(ctx, d.ID, st.UIDValidity, 0); err != nil {
			return "", fmt.Errorf("reset cursor: %w", err)
		}
	}

	if err := f.applyProcessed(ctx, c, d, st.UIDValidity); err != nil {
		return "", err
	}
	if err := f.refetch(ctx, c, d, st.UIDValidity); err != nil {
		return "", err
	}

	entries, err := c.List(ctx, lastUID, cfg.BatchSize)
	if err != nil {
		return "", fmt.Errorf("list new mail after UID %d: %w", lastUID, err)
	}
	var wanted []uint32
	sizes := map[uint32]int64{}
	for _, e := range entries {
		sizes[e.UID] = e.Size
		if f.maxSize > 0 && e.Size > f.maxSize {
			in := ticket.Inbound{ProjectID: d.ID, UIDValidity: st.UIDValidity, UID: e.UID, Size: e.Size,
				ReceivedAt: f.now(), Outcome: ticket.OutcomeRejected, Reason: tooLarge(e.Size, f.maxSize)}
			if _, _, err := f.store.RecordFetched(ctx, in, nil); err != nil {
				return "", fmt.Errorf("record too-large UID %d: %w", e.UID, err)
			}
			f.metrics.outcome(d.Config.Key, ticket.OutcomeRejected)
			taskLog(ctx, f.log).Warn("message too large: dead letter, left in the mailbox", "project", d.Config.Key, "uid", e.UID, "size", e.Size)
			continue
		}
		wanted = append(wanted, e.UID)
	}
	// Downloaded messages are stored in batches, one transaction each, and
	// queued; a batch is written while the next one downloads. The cursor
	// only moves once all of them are done.
	rec := newRecorder(ctx, func(ctx context.Context, batch []store.Fetched) error {
		ids, err := f.store.RecordFetchedBatch(ctx, d.ID, st.UIDValidity, batch)
		if err != nil {
			return err
		}
		for i, m := range batch {
			f.Handoff.put(ticket.Inbound{ID: ids[i], ProjectID: d.ID, Project: d.Config.Key, UIDValidity: st.UIDValidity,
				UID: m.UID, ReceivedAt: m.ReceivedAt}, m.Raw)
		}
		return f.enqueueProcess(ctx, ids)
	})
	now := f.now
	err = c.Fetch(ctx, wanted, func(uid uint32, raw []byte) error {
		if f.maxSize > 0 && int64(len(raw)) > f.maxSize {
			// The server announced less than it sent (the mailbox reads
			// only the limit and a byte): refused like any mail too large.
			in := ticket.Inbound{ProjectID: d.ID, UIDValidity: st.UIDValidity, UID: uid, Size: sizes[uid],
				ReceivedAt: now(), Outcome: ticket.OutcomeRejected,
				Reason: fmt.Sprintf("the server announced %d bytes but sent more than limits.max_message_size (%d bytes); not stored, left in the mailbox", sizes[uid], f.maxSize)}
			if _, _, err := f.store.RecordFetched(ctx, in, nil); err != nil {
				return fmt.Errorf("record too-large UID %d: %w", uid, err)
			}
			f.metrics.outcome(d.Config.Key, ticket.OutcomeRejected)
			taskLog(ctx, f.log).Warn("message larger than announced and than the limit: dead letter, left in the mailbox",
				"project", d.Config.Key, "uid", uid, "announced", sizes[uid])
			return nil
		}
		return rec.add(store.Fetched{UID: uid, Raw: raw, ReceivedAt: now()})
	})
	if werr := rec.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return "", fmt.Errorf("fetch messages: %w", err)
	}
	if n := len(entries); n > 0 {
		last := entries[n-1].UID
		if err := f.store.SetMailboxCursor(ctx, d.ID, st.UIDValidity, last); err != nil {
			return "", fmt.Errorf("advance cursor to UID %d: %w", last, err)
		}
		f.metrics.fetched(d.Config.Key, n)
		if n >= cfg.BatchSize {
			more = "more:" + strconv.FormatUint(uint64(st.UIDValidity), 10) + ":" + strconv.FormatUint(uint64(last), 10)
		}
	}
	if more == "" {
		// The sweep: ledger rows whose process task was lost (Redis
		// flushed, crash between commit and enqueue) are queued again;
		// task IDs make this a no-op for the ones still queued. Only rows
		// a minute old: a fresh backlog is in the queue already.
		ids, err := f.store.UnprocessedInbound(ctx, d.ID, f.now().Add(-time.Minute), 500)
		if err != nil {
			return "", fmt.Errorf("list unprocessed mail: %w", err)
		}
		if err := f.enqueueProcess(ctx, ids); err != nil {
			return "", err
		}
	}
	if err := context.Cause(ctx); err != nil {
		return "", err
	}
	if err := f.store.RecordMailboxRun(ctx, d.ID, f.now(), ""); err != nil {
		return "", fmt.Errorf("record mailbox run: %w", err)
	}
	f.metrics.fetchSucceeded(d.Config.Key, f.now())
	return more, nil
}

// acquire takes the mailbox's lease. When another fetch holds it, the
// Again mark is set and the lease tried once more: either this fetch runs
// after all, or the holder (the one now, which releases after the mark
// was set) takes the mark when it is done.
func (f *Fetcher) acquire(ctx context.Context, d Desk, owner string) (store.MailboxState, bool, error) {
	state, ok, err := f.store.AcquireMailbox(ctx, d.ID, owner, f.LeaseTTL)
	if err == nil && !ok && f.Again != nil {
		if err := f.Again.Mark(ctx, d.Config.Key); err != nil {
			return state, false, err
		}
		state, ok, err = f.store.AcquireMailbox(ctx, d.ID, owner, f.LeaseTTL)
	}
	if err != nil {
		return state, false, fmt.Errorf("acquire mailbox lease: %w", err)
	}
	if !ok {
		taskLog(ctx, f.log).Debug("mailbox busy, skipping", "project", d.Config.Key)
	}
	return state, ok, nil
}

// again queues one more fetch when one was asked for while this one ran.
// A failure costs latency, not mail: the next poll fetches.
func (f *Fetcher) again(ctx context.Context, d Desk) {
	if f.Again == nil {
		return
	}
	taken, err := f.Again.Take(ctx, d.Config.Key)
	if err == nil && taken {
		_, err = f.enqueue.Fetch(ctx, d.Config.Key, "again:"+strconv.FormatInt(f.now().UnixNano(), 10), d.Config.IMAP.PollInterval.D())
	}
	if err != nil {
		taskLog(ctx, f.log).Warn("queue the fetch asked for while this one ran; the next poll fetches", "project", d.Config.Key, "err", err)
	}
}

func tooLarge(size, limit int64) string {
	return fmt.Sprintf("message is %d bytes, larger than limits.max_message_size (%d bytes); not downloaded, left in the mailbox", size, limit)
}

func (f *Fetcher) renew(ctx context.Context, cancel context.CancelCauseFunc, projectID int64, owner string) {
	t := time.NewTicker(f.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.store.RenewMailbox(ctx, projectID, owner, f.LeaseTTL); err != nil {
				if ctx.Err() == nil {
					cancel(fmt.Errorf("renew mailbox lease: %w", err))
				}
				return
			}
		}
	}
}

// applyProcessed flags, moves or deletes mail whose outcome is committed.
// Rejected and failed mail is never touched: it stays for a person to see.
func (f *Fetcher) applyProcessed(ctx context.Context, c Mailbox, d Desk, uidValidity uint32) error {
	for {
		rows, err := f.store.UnappliedInbound(ctx, d.ID, uidValidity, 500)
		if err != nil || len(rows) == 0 {
			if err != nil {
				return fmt.Errorf("list processed mail: %w", err)
			}
			return nil
		}
		uids := make([]uint32, 0, len(rows))
		ids := make([]int64, 0, len(rows))
		for _, r := range rows {
			uids = append(uids, r.UID)
			ids = append(ids, r.ID)
		}
		switch mode := d.Config.Polling().AfterProcessing; mode {
		case "move":
			err = c.Move(ctx, uids, d.Config.Polling().ProcessedFolder)
		case "delete":
			err = c.Delete(ctx, uids)
		default:
			err = c.MarkSeen(ctx, uids)
		}
		if err != nil {
			return fmt.Errorf("after_processing %s of %d messages: %w", d.Config.Polling().AfterProcessing, len(uids), err)
		}
		if err := f.store.MarkApplied(ctx, ids); err != nil {
			return fmt.Errorf("mark processed mail applied: %w", err)
		}
		if len(rows) < 500 {
			return nil
		}
	}
}

// refetch downloads mail an operator asked to retry after it was refused
// for its size (the limit may have been raised since).
func (f *Fetcher) refetch(ctx context.Context, c Mailbox, d Desk, uidValidity uint32) error {
	rows, err := f.store.RefetchInbound(ctx, d.ID, uidValidity, 100)
	if err != nil {
		return fmt.Errorf("list mail to refetch: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	byUID := map[uint32]ticket.Inbound{}
	var uids []uint32
	for _, r := range rows {
		if f.maxSize > 0 && r.Size > f.maxSize {
			if err := f.store.RejectInbound(ctx, r.ID, tooLarge(r.Size, f.maxSize)); err != nil {
				return fmt.Errorf("reject UID %d again: %w", r.UID, err)
			}
			continue
		}
		byUID[r.UID] = r
		uids = append(uids, r.UID)
	}
	err = c.Fetch(ctx, uids, func(uid uint32, raw []byte) error {
		r := byUID[uid]
		delete(byUID, uid)
		if err := f.store.AttachRaw(ctx, r.ID, raw); err != nil {
			return fmt.Errorf("store refetched UID %d: %w", uid, err)
		}
		_, err := f.enqueue.Process(ctx, r.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("refetch: %w", err)
	}
	for _, r := range byUID {
		if err := f.store.RejectInbound(ctx, r.ID, "message is no longer in the mailbox"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
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

const (
	// enqueueWorkers is how many process tasks are queued at once.
	enqueueWorkers = 4
	// A batch of downloaded messages is written when it holds this many
	// messages or bytes, whichever comes first.
	recordBatchMessages = 50
	recordBatchBytes    = 8 << 20
)

// recorder collects downloaded messages into batches and hands each full
// batch to write, in order, on one goroutine, while the next batch fills:
// at most two batches are held in memory. The first error stops further
// adds and is returned by wait.
type recorder struct {
	ctx     context.Context
	cancel  context.CancelCauseFunc
	write   func(ctx context.Context, batch []store.Fetched) error
	batch   []store.Fetched
	bytes   int
	batches chan []store.Fetched
	done    chan struct{}
}

func newRecorder(ctx context.Context, write func(ctx context.Context, batch []store.Fetched) error) *recorder {
	ctx, cancel := context.WithCancelCause(ctx)
	r := &recorder{ctx: ctx, cancel: cancel, write: write, batches: make(chan []store.Fetched), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for b := range r.batches {
			if err := r.write(r.ctx, b); err != nil {
				r.cancel(err)
				for range r.batches { // drain: add sees the cancellation
				}
				return
			}
		}
	}()
	return r
}

// add appends one message, handing the batch over when it is full.
func (r *recorder) add(m store.Fetched) error {
	if err := context.Cause(r.ctx); err != nil {
		return err
	}
	r.batch = append(r.batch, m)
	r.bytes += len(m.Raw)
	if len(r.batch) >= recordBatchMessages || r.bytes >= recordBatchBytes {
		return r.flush()
	}
	return nil
}

func (r *recorder) flush() error {
	if len(r.batch) == 0 {
		return nil
	}
	select {
	case r.batches <- r.batch:
	case <-r.ctx.Done():
		return context.Cause(r.ctx)
	}
	r.batch, r.bytes = nil, 0
	return nil
}

// wait writes what is left and returns once every batch is done, with the
// first error.
func (r *recorder) wait() error {
	_ = r.flush()
	close(r.batches)
	<-r.done
	err := context.Cause(r.ctx)
	r.cancel(nil)
	return err
}
