// Package mailsync keeps the inbound ledger in step with a project's
// mailbox: it is the code that makes "no mail lost, none ingested twice"
// true on the fetch side. One run takes the mailbox's lease, checks
// UIDVALIDITY (RFC 3501 2.3.1.1) against the stored cursor, applies
// after_processing (flag, move or delete) to mail whose outcome is
// committed, downloads mail an operator asked to refetch, then drains the
// new mail in batches on one connection: the size gate, the download, the
// ledger write, the process queue, the cursor. The cursor and the ledger
// are the only state; each step can fail and be repeated by the next run
// without losing or doubling mail, because every write is idempotent on
// (project, UIDVALIDITY, UID) and the cursor moves only past mail that is
// in the ledger and queued.
//
// The package knows neither asynq nor gorm nor go-imap: it talks to the
// mailbox, the store and the queue through the small interfaces below.
package mailsync

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// Mailbox is the IMAP session a sync needs (mailbox.Client; another
// provider, such as Microsoft Graph, implements the same methods).
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

// EnvelopeReader is an optional capability of a Mailbox: the envelope
// (From, Subject, Message-ID) of messages, without their bodies. A sync
// uses it to name mail refused for its size in the ledger and the dead
// letter; a mailbox without it leaves those fields empty.
type EnvelopeReader interface {
	Envelopes(ctx context.Context, uids []uint32) (map[uint32]mailbox.Envelope, error)
}

var _ EnvelopeReader = (*mailbox.Client)(nil)

// Dialer opens a session to a project's mailbox.
type Dialer func(ctx context.Context, p config.Project) (Mailbox, error)

// Store is what a sync needs of the store (store.Store).
type Store interface {
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

var _ Store = (*store.Store)(nil)

// Queue queues the processing of ledger rows. Queuing a row that is
// already queued must be a no-op (asynq task IDs make it one).
type Queue interface {
	Process(ctx context.Context, inboundIDs []int64) error
}

// QueueFunc adapts a function to Queue.
type QueueFunc func(ctx context.Context, inboundIDs []int64) error

// Process calls f.
func (f QueueFunc) Process(ctx context.Context, ids []int64) error { return f(ctx, ids) }

// Desk is a configured project with its store ID.
type Desk struct {
	ID     int64
	Config config.Project
}

// Options tunes a Syncer; the zero value means the defaults.
type Options struct {
	// MaxMessageSize is limits.max_message_size in bytes: larger mail is
	// not downloaded but recorded as rejected. 0 means no limit.
	MaxMessageSize int64
	// LeaseTTL bounds how long a crashed sync keeps others off its
	// mailbox; renewed every third of it while running. Defaults to 30s.
	LeaseTTL time.Duration
	// MaxRun is how long one run drains a backlog before it hands the
	// rest to a follow-up run (Result.More). Defaults to 2m.
	MaxRun time.Duration
	// MaxAhead is how many ledger rows may wait for processing before a
	// run pauses its download: flow control, so that a backlog moves from
	// the mailbox to the ledger no faster than it is processed, and the
	// mail in between stays in the hand-off's memory rather than being
	// read back from the database. Mail not yet downloaded is as safe in
	// the mailbox. Defaults to 500: at the benchmark's 17 KB a mail, about
	// 9 MB of raw mail held, which Go's collector lets grow to twice that
	// (1000 cost a 100,000 backlog 28 MB of peak RSS over a 2,000 one).
	// At 900 mails a second that is still half a second of work ahead of
	// the process jobs, longer than a batch of 200 takes to download.
	MaxAhead int
	// SweepAfter is how old a ledger row without an outcome must be
	// before the lost-task sweep queues it again. Defaults to 1m.
	SweepAfter time.Duration
	// Stored, when set, is told of each message just written to the
	// ledger (for the in-process hand-off to the process jobs).
	Stored func(in ticket.Inbound, raw []byte)
	// Rejected and Fetched, when set, count refused and listed mail.
	Rejected func(project string)
	Fetched  func(project string, n int)
	// Logger defaults to a discarding one.
	Logger *slog.Logger
	// Now is the clock; defaults to time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	o.LeaseTTL = cmp.Or(o.LeaseTTL, 30*time.Second)
	o.MaxRun = cmp.Or(o.MaxRun, 2*time.Minute)
	o.SweepAfter = cmp.Or(o.SweepAfter, time.Minute)
	o.MaxAhead = cmp.Or(o.MaxAhead, 500)
	if o.Stored == nil {
		o.Stored = func(ticket.Inbound, []byte) {}
	}
	if o.Rejected == nil {
		o.Rejected = func(string) {}
	}
	if o.Fetched == nil {
		o.Fetched = func(string, int) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Syncer runs syncs of mailboxes. It is safe for concurrent use; two runs
// of one mailbox never overlap (the store's lease).
type Syncer struct {
	store Store
	dial  Dialer
	queue Queue
	o     Options
	owner string       // this process; each run leases as owner:<run>
	runs  atomic.Int64 // numbers the runs for their lease owner
	log   *slog.Logger
	// stopping makes runs end after the batch in hand (Stop).
	stopping atomic.Bool
}

// Stop makes every run end after the batch it is working on, with
// Result.More set, so that a process shutting down does not wait for a
// long backlog run (nor cut it off mid-batch). It does not wait.
func (s *Syncer) Stop() { s.stopping.Store(true) }

// New returns a Syncer.
func New(st Store, dial Dialer, q Queue, o *Options) *Syncer {
	var opts Options
	if o != nil {
		opts = *o
	}
	opts = opts.withDefaults()
	host, _ := os.Hostname()
	return &Syncer{store: st, dial: dial, queue: q, o: opts,
		owner: fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano()),
		log:   opts.Logger.With("component", "mailsync")}
}

// Result is what one run did.
type Result struct {
	// Listed is how many new messages the run took past the cursor.
	Listed int
	// More is true when the run stopped at MaxRun with mail still waiting:
	// the caller should run again at once.
	More bool
	// UIDValidity and LastUID are the cursor the run left.
	UIDValidity, LastUID uint32
	// Busy is true when another run held the mailbox: nothing was done.
	Busy bool
}

// Batch limits of a run: the ledger rows after_processing reads at once,
// the rows refetch reads per run, the rows the lost-task sweep queues per
// run.
const (
	applyRows   = 1000
	refetchRows = 100
	sweepRows   = 500
)

// Run syncs the desk's mailbox: it drains the new mail in batches of
// imap.batch_size on one connection until none is left or MaxRun has
// passed. Another run already holding the mailbox makes it return at once
// with Result.Busy.
func (s *Syncer) Run(ctx context.Context, d Desk) (Result, error) {
	// Each run is its own lease owner: the store extends a lease for the
	// owner that holds it, so a per-process owner would let this process's
	// overlapping runs (a scheduled slot and a follow-up) run the same
	// mailbox at once, downloading the same batch twice.
	owner := s.owner + ":" + strconv.FormatInt(s.runs.Add(1), 10)
	state, ok, err := s.store.AcquireMailbox(ctx, d.ID, owner, s.o.LeaseTTL)
	if err != nil {
		return Result{}, fmt.Errorf("acquire mailbox lease: %w", err)
	}
	if !ok {
		s.log.DebugContext(ctx, "mailbox busy, skipping", "project", d.Config.Key)
		return Result{Busy: true}, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go s.renew(ctx, cancel, d.ID, owner)
	defer func() {
		if err := s.store.ReleaseMailbox(context.WithoutCancel(ctx), d.ID, owner); err != nil {
			s.log.WarnContext(ctx, "release mailbox lease", "project", d.Config.Key, "err", err)
		}
	}()

	c, err := s.dial(ctx, d.Config)
	if err != nil {
		return Result{}, fmt.Errorf("connect to mailbox: %w", err)
	}
	defer c.Close()
	r := &run{Syncer: s, c: c, d: d, batch: cmp.Or(d.Config.Polling().BatchSize, 100)}
	res, err := r.sync(ctx, state)
	if err == nil {
		err = context.Cause(ctx) // a lost lease ends the run as failed
	}
	if err != nil {
		return Result{}, err
	}
	if err := s.store.RecordMailboxRun(ctx, d.ID, s.o.Now(), ""); err != nil {
		return Result{}, fmt.Errorf("record mailbox run: %w", err)
	}
	return res, nil
}

func (s *Syncer) renew(ctx context.Context, cancel context.CancelCauseFunc, projectID int64, owner string) {
	t := time.NewTicker(s.o.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.store.RenewMailbox(ctx, projectID, owner, s.o.LeaseTTL); err != nil {
				if ctx.Err() == nil {
					cancel(fmt.Errorf("renew mailbox lease: %w", err))
				}
				return
			}
		}
	}
}

// run is one session with one mailbox.
type run struct {
	*Syncer
	c     Mailbox
	d     Desk
	batch int
	uidv  uint32
}

func (r *run) sync(ctx context.Context, state store.MailboxState) (Result, error) {
	cfg := r.d.Config.Polling()
	st, err := r.c.Select(ctx, cfg.Folder)
	if err != nil {
		return Result{}, fmt.Errorf("select %q: %w", cfg.Folder, err)
	}
	r.uidv = st.UIDValidity
	last := state.LastUID
	if state.UIDValidity != st.UIDValidity {
		if state.UIDValidity != 0 {
			r.log.WarnContext(ctx, "UIDVALIDITY changed: rescanning the whole folder; already ingested mail is recognised as duplicate",
				"project", r.d.Config.Key, "old", state.UIDValidity, "new", st.UIDValidity)
		}
		last = 0
		if err := r.store.SetMailboxCursor(ctx, r.d.ID, st.UIDValidity, 0); err != nil {
			return Result{}, fmt.Errorf("reset cursor: %w", err)
		}
	}
	if err := r.applyProcessed(ctx); err != nil {
		return Result{}, err
	}
	if err := r.refetch(ctx); err != nil {
		return Result{}, err
	}
	res := Result{UIDValidity: st.UIDValidity, LastUID: last}
	deadline := r.o.Now().Add(r.o.MaxRun)
	for {
		room, err := r.waitForRoom(ctx, deadline)
		if err != nil {
			return Result{}, err
		}
		if !room {
			res.More = true
			break
		}
		n, next, err := r.drainBatch(ctx, res.LastUID)
		if err != nil {
			return Result{}, err
		}
		res.Listed += n
		res.LastUID = next
		if n < r.batch {
			break
		}
		if r.stopping.Load() || r.o.Now().After(deadline) {
			res.More = true
			break
		}
		// Mail processed while this batch downloaded is flagged between
		// batches, in ranges, on the same connection.
		if err := r.applyProcessed(ctx); err != nil {
			return Result{}, err
		}
	}
	// Also when the run hands on: a run paused because rows whose tasks
	// were lost wait for processing would otherwise never reach the end
	// of the mailbox and never sweep.
	if err := r.sweep(ctx); err != nil {
		return Result{}, err
	}
	return res, nil
}

// waitForRoom waits while MaxAhead or more ledger rows of the desk wait
// for processing, applying after_processing meanwhile. It reports false
// when the deadline passed first.
func (r *run) waitForRoom(ctx context.Context, deadline time.Time) (bool, error) {
	tick := time.NewTicker(aheadPoll)
	defer tick.Stop()
	for {
		ids, err := r.store.UnprocessedInbound(ctx, r.d.ID, r.o.Now().Add(time.Hour), r.o.MaxAhead)
		if err != nil {
			return false, fmt.Errorf("count mail waiting for processing: %w", err)
		}
		if len(ids) < r.o.MaxAhead {
			return true, nil
		}
		if r.stopping.Load() || r.o.Now().After(deadline) {
			return false, nil
		}
		if err := r.applyProcessed(ctx); err != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, context.Cause(ctx)
		case <-tick.C:
		}
	}
}

// aheadPoll is how often a paused run looks whether processing caught up.
const aheadPoll = 100 * time.Millisecond

// drainBatch takes up to one batch of mail after UID after into the
// ledger and the queue, then moves the cursor past it. It returns how many
// messages it listed and the new cursor.
func (r *run) drainBatch(ctx context.Context, after uint32) (int, uint32, error) {
	entries, err := r.c.List(ctx, after, r.batch)
	if err != nil {
		return 0, after, fmt.Errorf("list new mail after UID %d: %w", after, err)
	}
	if len(entries) == 0 {
		return 0, after, nil
	}
	var wanted, large []uint32
	sizes := make(map[uint32]int64, len(entries))
	for _, e := range entries {
		sizes[e.UID] = e.Size
		if r.o.MaxMessageSize > 0 && e.Size > r.o.MaxMessageSize {
			large = append(large, e.UID)
			continue
		}
		wanted = append(wanted, e.UID)
	}
	if err := r.rejectLarge(ctx, large, sizes); err != nil {
		return 0, after, err
	}
	if err := r.download(ctx, wanted, sizes); err != nil {
		return 0, after, err
	}
	last := entries[len(entries)-1].UID
	if err := r.store.SetMailboxCursor(ctx, r.d.ID, r.uidv, last); err != nil {
		return 0, after, fmt.Errorf("advance cursor to UID %d: %w", last, err)
	}
	r.o.Fetched(r.d.Config.Key, len(entries))
	return len(entries), last, nil
}

// rejectLarge records mail over limits.max_message_size as rejected, with
// its envelope when the mailbox can read it, and leaves it in the mailbox.
func (r *run) rejectLarge(ctx context.Context, uids []uint32, sizes map[uint32]int64) error {
	if len(uids) == 0 {
		return nil
	}
	envs, err := r.envelopes(ctx, uids)
	if err != nil {
		return err
	}
	for _, uid := range uids {
		size := sizes[uid]
		if err := r.reject(ctx, uid, size, envs[uid], tooLarge(size, r.o.MaxMessageSize)); err != nil {
			return err
		}
		r.log.WarnContext(ctx, "message too large: dead letter, left in the mailbox", "project", r.d.Config.Key, "uid", uid, "size", size)
	}
	return nil
}

// envelopes reads the envelopes of uids if the mailbox can. A temporary
// failure fails the run (the next one asks again); a permanent one costs
// only the names in the ledger.
func (r *run) envelopes(ctx context.Context, uids []uint32) (map[uint32]mailbox.Envelope, error) {
	er, ok := r.c.(EnvelopeReader)
	if !ok {
		return nil, nil
	}
	envs, err := er.Envelopes(ctx, uids)
	if err != nil {
		if ctx.Err() != nil || mailbox.Temporary(err) {
			return nil, fmt.Errorf("read envelopes of mail too large: %w", err)
		}
		r.log.WarnContext(ctx, "read envelopes of mail too large: recorded without sender and subject", "project", r.d.Config.Key, "err", err)
	}
	return envs, nil
}

func tooLarge(size, limit int64) string {
	return fmt.Sprintf("message is %d bytes, larger than limits.max_message_size (%d bytes); not downloaded, left in the mailbox", size, limit)
}

func (r *run) reject(ctx context.Context, uid uint32, size int64, env mailbox.Envelope, reason string) error {
	in := ticket.Inbound{ProjectID: r.d.ID, UIDValidity: r.uidv, UID: uid, Size: size,
		MessageID: env.MessageID, From: env.From, Subject: env.Subject,
		ReceivedAt: r.o.Now(), Outcome: ticket.OutcomeRejected, Reason: reason}
	if _, _, err := r.store.RecordFetched(ctx, in, nil); err != nil {
		return fmt.Errorf("record too-large UID %d: %w", uid, err)
	}
	r.o.Rejected(r.d.Config.Key)
	return nil
}

// download fetches uids and writes them to the ledger in batches, one
// transaction each, queuing each batch once it is committed; a batch is
// written while the next one downloads.
func (r *run) download(ctx context.Context, uids []uint32, sizes map[uint32]int64) error {
	if len(uids) == 0 {
		return nil
	}
	rec := newRecorder(ctx, func(ctx context.Context, batch []store.Fetched) error {
		ids, err := r.store.RecordFetchedBatch(ctx, r.d.ID, r.uidv, batch)
		if err != nil {
			return err
		}
		for i, m := range batch {
			r.o.Stored(ticket.Inbound{ID: ids[i], ProjectID: r.d.ID, Project: r.d.Config.Key, UIDValidity: r.uidv,
				UID: m.UID, ReceivedAt: m.ReceivedAt}, m.Raw)
		}
		if err := r.queue.Process(ctx, ids); err != nil {
			return fmt.Errorf("queue %d stored messages: %w", len(ids), err)
		}
		return nil
	})
	max := r.o.MaxMessageSize
	err := r.c.Fetch(ctx, uids, func(uid uint32, raw []byte) error {
		if max > 0 && int64(len(raw)) > max {
			// The server announced less than it sent (the mailbox reads
			// only the limit and a byte): refused like any mail too large.
			reason := fmt.Sprintf("the server announced %d bytes but sent more than limits.max_message_size (%d bytes); not stored, left in the mailbox", sizes[uid], max)
			r.log.WarnContext(ctx, "message larger than announced and than the limit: dead letter, left in the mailbox",
				"project", r.d.Config.Key, "uid", uid, "announced", sizes[uid])
			envs, err := r.envelopes(ctx, []uint32{uid})
			if err != nil {
				return err
			}
			return r.reject(ctx, uid, sizes[uid], envs[uid], reason)
		}
		return rec.add(store.Fetched{UID: uid, Raw: raw, ReceivedAt: r.o.Now()})
	})
	if werr := rec.wait(); err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("fetch messages: %w", err)
	}
	return nil
}

// applyProcessed flags, moves or deletes mail whose outcome is committed,
// a thousand ledger rows at a time, in UID ranges. Rejected and failed
// mail is never touched: it stays for a person to see.
func (r *run) applyProcessed(ctx context.Context) error {
	imapCfg := r.d.Config.Polling()
	for {
		rows, err := r.store.UnappliedInbound(ctx, r.d.ID, r.uidv, applyRows)
		if err != nil {
			return fmt.Errorf("list processed mail: %w", err)
		}
		if len(rows) == 0 {
			return nil
		}
		uids := make([]uint32, 0, len(rows))
		ids := make([]int64, 0, len(rows))
		for _, row := range rows {
			uids = append(uids, row.UID)
			ids = append(ids, row.ID)
		}
		switch imapCfg.AfterProcessing {
		case "move":
			err = r.c.Move(ctx, uids, cmp.Or(imapCfg.ProcessedFolder, "Processed"))
		case "delete":
			err = r.c.Delete(ctx, uids)
		default:
			err = r.c.MarkSeen(ctx, uids)
		}
		if err != nil {
			return fmt.Errorf("after_processing %s of %d messages: %w", cmp.Or(imapCfg.AfterProcessing, "seen"), len(uids), err)
		}
		if err := r.store.MarkApplied(ctx, ids); err != nil {
			return fmt.Errorf("mark processed mail applied: %w", err)
		}
		if len(rows) < applyRows {
			return nil
		}
	}
}

// refetch downloads mail an operator asked to retry after it was refused
// for its size (the limit may have been raised since).
func (r *run) refetch(ctx context.Context) error {
	rows, err := r.store.RefetchInbound(ctx, r.d.ID, r.uidv, refetchRows)
	if err != nil {
		return fmt.Errorf("list mail to refetch: %w", err)
	}
	if len(rows) == 0 {
		return nil
	}
	max := r.o.MaxMessageSize
	byUID := map[uint32]ticket.Inbound{}
	var uids []uint32
	for _, row := range rows {
		if max > 0 && row.Size > max {
			if err := r.store.RejectInbound(ctx, row.ID, tooLarge(row.Size, max)); err != nil {
				return fmt.Errorf("reject UID %d again: %w", row.UID, err)
			}
			continue
		}
		byUID[row.UID] = row
		uids = append(uids, row.UID)
	}
	err = r.c.Fetch(ctx, uids, func(uid uint32, raw []byte) error {
		row, ok := byUID[uid]
		if !ok {
			return nil
		}
		delete(byUID, uid)
		if max > 0 && int64(len(raw)) > max {
			return r.store.RejectInbound(ctx, row.ID, fmt.Sprintf("the server sent more than limits.max_message_size (%d bytes); not stored, left in the mailbox", max))
		}
		if err := r.store.AttachRaw(ctx, row.ID, raw); err != nil {
			return fmt.Errorf("store refetched UID %d: %w", uid, err)
		}
		return r.queue.Process(ctx, []int64{row.ID})
	})
	if err != nil {
		return fmt.Errorf("refetch: %w", err)
	}
	for _, row := range byUID {
		if err := r.store.RejectInbound(ctx, row.ID, "message is no longer in the mailbox"); err != nil && !errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("reject vanished UID %d: %w", row.UID, err)
		}
	}
	return nil
}

// sweep queues again the ledger rows whose process task was lost (Redis
// flushed, a crash between commit and queue); the queue makes this a
// no-op for those still queued. Only rows older than SweepAfter: a fresh
// backlog is in the queue already.
func (r *run) sweep(ctx context.Context) error {
	ids, err := r.store.UnprocessedInbound(ctx, r.d.ID, r.o.Now().Add(-r.o.SweepAfter), sweepRows)
	if err != nil {
		return fmt.Errorf("list unprocessed mail: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if err := r.queue.Process(ctx, ids); err != nil {
		return fmt.Errorf("queue %d unprocessed messages again: %w", len(ids), err)
	}
	return nil
}
