// Package watch owns the IMAP IDLE watchers (RFC 2177) of the mailboxes
// configured with imap.idle: one watcher per mailbox across all replicas,
// which queues a fetch as soon as the server reports new mail.
//
// A watcher is an assist, never the guarantee: the scheduler polls every
// mailbox every poll_interval whatever the watchers do, so a watcher that
// dies, loses its lease or never connects costs latency, not mail.
//
//   - One per mailbox: a watcher runs only while it holds its mailbox's lease
//     in Redis (SET NX PX, renewed every third of the TTL by a compare-and-
//     extend script, deleted on stop by a compare-and-delete script). A
//     lost lease stops the watcher; another replica takes over within the
//     TTL plus a sixth of it.
//   - Liveness: each IDLE lasts at most Options.Check (30 s) and is ended
//     with DONE and preceded by NOOP, both answered within 15 s, so a dead
//     connection (a server gone without a word, half-open TCP) is noticed
//     within 45 s, and a connection the server closes at once. The same
//     cycle re-IDLEs long before RFC 2177's 29 minutes.
//   - Reconnects back off exponentially with jitter, from MinBackoff to
//     MaxBackoff; a permanent failure (login refused, no IDLE) waits
//     MaxBackoff at once. Every (re)connect queues one fetch: mail that
//     arrived while nobody watched.
//   - No flood: a burst of EXISTS is one wake-up, and a mailbox's fetches
//     are queued at most once per Options.Coalesce, the task ID named after
//     that window, with a last one after the window for what arrived in it.
//     A fetch asked for while one runs is followed by one more
//     (jobs.FetchAgain).
package watch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Conn is one IDLE connection to a mailbox (mailbox.IdleConn).
type Conn interface {
	// Wait waits in IDLE at most d and reports whether new mail arrived;
	// a nil error says the server answered.
	Wait(ctx context.Context, d time.Duration) (bool, error)
	Close() error
}

// Dialer opens an IDLE connection to project's mailbox.
type Dialer func(ctx context.Context, project string) (Conn, error)

// Enqueuer queues a fetch of project's mailbox; task IDs named after slot
// make a second enqueue of the same slot a no-op (jobs.Enqueuer).
type Enqueuer interface {
	Fetch(ctx context.Context, project, slot string, retain time.Duration) (bool, error)
}

// Mailbox is one mailbox to watch.
type Mailbox struct {
	Project string
	// PollInterval is the mailbox's poll_interval; the fetch tasks a
	// watcher queues are kept that long after they ran, as the scheduler's.
	PollInterval time.Duration
}

// Options tune the watchers; the zero value means the defaults.
type Options struct {
	// LeaseTTL is how long a watcher's lease outlives the last renewal: a
	// crashed replica's mailboxes are watched again by another within it.
	// Defaults to 30s.
	LeaseTTL time.Duration
	// Check is the longest one IDLE lasts before NOOP, DONE and a new IDLE
	// check that the server still answers. Defaults to 30s; at most 28m
	// (RFC 2177: servers may log out a client idle for 30 minutes).
	Check time.Duration
	// MinBackoff and MaxBackoff bound the wait before a reconnect, which
	// doubles from MinBackoff with every failure in a row, with jitter.
	// Default to 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// Coalesce is the shortest time between two fetches one watcher
	// queues. Defaults to 100ms.
	Coalesce time.Duration
	// Temporary says whether a dial or IDLE error can heal by itself; a
	// permanent one waits MaxBackoff before the next try. Defaults to
	// everything temporary.
	Temporary func(error) bool
	// Owner names this process in the leases. Defaults to host:pid:start.
	Owner   string
	Logger  *slog.Logger
	Metrics *Metrics
}

// WithDefaults returns a copy of o with the documented defaults filled in.
func (o *Options) WithDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	out.LeaseTTL = cmp.Or(out.LeaseTTL, 30*time.Second)
	out.Check = cmp.Or(out.Check, 30*time.Second)
	out.MinBackoff = cmp.Or(out.MinBackoff, time.Second)
	out.MaxBackoff = cmp.Or(out.MaxBackoff, 5*time.Minute)
	out.Coalesce = cmp.Or(out.Coalesce, 100*time.Millisecond)
	if out.Temporary == nil {
		out.Temporary = func(error) bool { return true }
	}
	if out.Owner == "" {
		host, _ := os.Hostname()
		out.Owner = fmt.Sprintf("%s:%d:%d", host, os.Getpid(), time.Now().UnixNano())
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return out
}

func (o Options) validate() error {
	switch {
	case o.LeaseTTL < 300*time.Millisecond:
		return fmt.Errorf("lease TTL %v: at least 300ms", o.LeaseTTL)
	case o.Check <= 0 || o.Check > 28*time.Minute:
		return fmt.Errorf("check %v: want more than 0 and at most 28m (RFC 2177)", o.Check)
	case o.MinBackoff <= 0 || o.MaxBackoff < o.MinBackoff:
		return fmt.Errorf("backoff %v..%v: want 0 < min <= max", o.MinBackoff, o.MaxBackoff)
	case o.Coalesce <= 0:
		return fmt.Errorf("coalesce %v: want more than 0", o.Coalesce)
	}
	return nil
}

// Watchers runs a watcher for each mailbox, while it holds that mailbox's
// lease.
type Watchers struct {
	rdb     redis.UniversalClient
	dial    Dialer
	enqueue Enqueuer
	boxes   []Mailbox
	opts    Options
	log     *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New checks the options and prepares the watchers of boxes; Start starts
// them.
func New(rdb redis.UniversalClient, dial Dialer, enq Enqueuer, boxes []Mailbox, opts *Options) (*Watchers, error) {
	o := opts.WithDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("idle watchers: %w", err)
	}
	for _, b := range boxes {
		o.Metrics.init(b.Project)
	}
	return &Watchers{rdb: rdb, dial: dial, enqueue: enq, boxes: boxes, opts: o,
		log: o.Logger.With("component", "idle")}, nil
}

// Start starts one goroutine per mailbox; they run until Stop.
func (w *Watchers) Start(ctx context.Context) {
	ctx, w.cancel = context.WithCancel(context.WithoutCancel(ctx))
	// Spread the first dials (10ms a mailbox, at most TTL/6): a thousand
	// logins at once can trip a server's rate limits.
	spread := min(time.Duration(len(w.boxes))*10*time.Millisecond, w.opts.LeaseTTL/6)
	for _, b := range w.boxes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			if sleep(ctx, rand.N(spread+1)) {
				w.run(ctx, b)
			}
		}()
	}
}

// Stop ends every watcher, releases the leases held and waits for that, or
// for ctx to end.
func (w *Watchers) Stop(ctx context.Context) {
	if w.cancel == nil {
		return
	}
	w.cancel()
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		w.log.Warn("idle watchers did not stop in time; their leases expire by themselves", "ttl", w.opts.LeaseTTL)
	}
}

// errLeaseLost ends a watch whose lease another replica may hold now.
var errLeaseLost = errors.New("watcher lease lost")

// run competes for b's lease until ctx ends, and watches while it holds it.
func (w *Watchers) run(ctx context.Context, b Mailbox) {
	l := lease{rdb: w.rdb, key: leaseKey(b.Project), owner: w.opts.Owner, ttl: w.opts.LeaseTTL}
	log := w.log.With("project", b.Project)
	redisDown := false // said once per outage, not every look
	for {
		ok, err := l.acquire(ctx)
		if err != nil && ctx.Err() == nil && !redisDown {
			log.Warn("idle watcher: lease unavailable; polling still fetches", "err", err)
		}
		redisDown = err != nil
		if ok {
			log.Debug("idle watcher: lease acquired")
			err := w.hold(ctx, l, b, log)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if rerr := l.release(rctx); rerr != nil {
				log.Warn("idle watcher: release lease (it expires by itself)", "err", rerr)
			}
			cancel()
			if errors.Is(err, errLeaseLost) {
				log.Info("idle watcher: lease lost; another replica may watch now")
			}
		}
		// Not ours (or just lost): look again a sixth of the TTL later,
		// so a lease left by a crash is taken over within TTL + TTL/6.
		if !sleep(ctx, jitter(w.opts.LeaseTTL/6)) {
			return
		}
	}
}

// hold renews the lease and watches until the lease is lost or ctx ends.
func (w *Watchers) hold(ctx context.Context, l lease, b Mailbox, log *slog.Logger) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		t := time.NewTicker(l.ttl / 3)
		defer t.Stop()
		lastOK := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ok, err := l.renew(ctx)
			switch {
			case err == nil && ok:
				lastOK = time.Now()
			case err == nil:
				cancel(errLeaseLost)
				return
			case time.Since(lastOK) >= l.ttl*2/3:
				// Redis unreachable long enough that the lease may have
				// expired and been taken: stop rather than watch twice.
				cancel(fmt.Errorf("%w: %w", errLeaseLost, err))
				return
			}
		}
	}()
	kicks := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { defer close(done); w.queueFetches(ctx, b, kicks, log) }()
	w.watch(ctx, b, kicks, log)
	cancel(nil)
	<-done
	return context.Cause(ctx)
}

// watch keeps an IDLE connection to b's mailbox until ctx ends, kicking a
// fetch on every (re)connect and every report of new mail.
func (w *Watchers) watch(ctx context.Context, b Mailbox, kicks chan<- struct{}, log *slog.Logger) {
	kick := func() {
		select {
		case kicks <- struct{}{}:
		default: // one is pending already: the same fetch will see this mail
		}
	}
	failures := 0
	for ctx.Err() == nil {
		c, err := w.dial(ctx, b.Project)
		if err == nil {
			w.opts.Metrics.setUp(b.Project, true)
			log.Debug("idle watcher: watching")
			kick()
			for {
				var newMail bool
				newMail, err = c.Wait(ctx, w.opts.Check)
				if newMail {
					w.opts.Metrics.event(b.Project, time.Now())
					kick()
				}
				if err != nil {
					break
				}
				failures = 0
			}
			w.opts.Metrics.setUp(b.Project, false)
			_ = c.Close()
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		w.opts.Metrics.reconnect(b.Project)
		wait := w.backoff(failures, err)
		log.Warn("idle watcher: connection failed; polling still fetches; reconnecting",
			"err", err, "in", wait.Round(time.Millisecond), "failures", failures)
		if !sleep(ctx, wait) {
			return
		}
	}
}

// backoff is the wait before reconnect number n (from 1): MinBackoff
// doubled n-1 times, at most MaxBackoff, less up to half of it at random
// (so replicas restarted together do not reconnect together); MaxBackoff
// after a permanent error.
func (w *Watchers) backoff(n int, err error) time.Duration {
	if err != nil && !w.opts.Temporary(err) {
		return jitter(w.opts.MaxBackoff)
	}
	d := w.opts.MinBackoff << min(n-1, 30)
	if d <= 0 || d > w.opts.MaxBackoff {
		d = w.opts.MaxBackoff
	}
	return jitter(d)
}

// queueFetches queues a fetch for each kick, at most one per Coalesce: the
// kicks of a burst collapse into the one pending, and the task is named
// after its Coalesce window, so that even two watchers of one mailbox
// (for a moment, around a lease's expiry) queue one fetch per window.
func (w *Watchers) queueFetches(ctx context.Context, b Mailbox, kicks <-chan struct{}, log *slog.Logger) {
	retain := cmp.Or(b.PollInterval, time.Minute)
	for {
		select {
		case <-ctx.Done():
			return
		case <-kicks:
		}
		window := time.Now().UnixNano() / int64(w.opts.Coalesce)
		if _, err := w.enqueue.Fetch(ctx, b.Project, "idle:"+strconv.FormatInt(window, 10), retain); err != nil {
			if ctx.Err() == nil {
				log.Warn("idle watcher: queue fetch; polling still fetches", "err", err)
			}
		} else {
			w.opts.Metrics.queued(b.Project)
		}
		// The next window starts at most Coalesce from now.
		if !sleep(ctx, time.Duration((window+1)*int64(w.opts.Coalesce)-time.Now().UnixNano())) {
			return
		}
	}
}

// jitter returns a duration between d/2 and d.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d or until ctx ends, reporting whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
