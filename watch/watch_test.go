package watch_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/internal/tcpproxy"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/watch"
)

// testRedis is database 5 of the machine's Redis. Tests use keys of their
// own (a fresh project name each), so nothing is flushed.
func testRedis(t *testing.T) redis.UniversalClient {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: 5})
	if err := rdb.Ping(t.Context()).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379 unreachable: %v", err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func freshProject(t *testing.T) string {
	return "idle-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

func leaseKey(project string) string { return "servicedesk:idle-watch:{" + project + "}" }

// queue records the fetches queued, with asynq's task-ID rule: a second
// enqueue of the same project and slot is a no-op.
type queue struct {
	mu     sync.Mutex
	seen   map[string]bool
	queued []time.Time
	ch     chan time.Time
}

func newQueue() *queue { return &queue{seen: map[string]bool{}, ch: make(chan time.Time, 1000)} }

func (q *queue) Fetch(_ context.Context, project, slot string, _ time.Duration) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen[project+":"+slot] {
		return false, nil
	}
	q.seen[project+":"+slot] = true
	now := time.Now()
	q.queued = append(q.queued, now)
	q.ch <- now
	return true, nil
}

// times returns when each fetch was queued.
func (q *queue) times() []time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.queued)
}

func (q *queue) count() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queued)
}

// drain forgets the fetches queued so far (the one of each connect).
func (q *queue) drain() {
	for {
		select {
		case <-q.ch:
		default:
			return
		}
	}
}

// next waits for the next queued fetch and returns when it came.
func (q *queue) next(t *testing.T, within time.Duration, what string) time.Time {
	t.Helper()
	select {
	case at := <-q.ch:
		return at
	case <-time.After(within):
		t.Fatalf("no fetch queued within %v %s", within, what)
		return time.Time{}
	}
}

// dialCounter dials cfg's mailbox over IDLE and counts the dials.
type dialCounter struct {
	mu  sync.Mutex
	cfg mailbox.Config
	n   int
}

func (d *dialCounter) dial(ctx context.Context, _ string) (watch.Conn, error) {
	d.mu.Lock()
	d.n++
	d.mu.Unlock()
	return mailbox.DialIdle(ctx, d.cfg, nil)
}

func (d *dialCounter) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// noticed bounds how long after mail arrives its fetch is queued: the poll
// is a minute away, so seconds prove the watcher. Dovecot holds IDLE
// notices 0.5 s; the rest is room for a loaded machine. The latency itself
// is a figure (deploy/bench-idle.sh), not asserted here.
const noticed = 3 * time.Second

// fastOptions are the defaults scaled down so that a test takes seconds.
func fastOptions(owner string, reg prometheus.Registerer) *watch.Options {
	return &watch.Options{LeaseTTL: 600 * time.Millisecond, Check: 300 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Coalesce: 100 * time.Millisecond,
		Owner: owner, Temporary: mailbox.Temporary, Metrics: watch.NewMetrics(reg)}
}

// started is a running Watchers of one mailbox.
type started struct {
	w    *watch.Watchers
	reg  *prometheus.Registry
	q    *queue
	dial *dialCounter
}

func (s *started) up(project string) float64 {
	return gauge(s.reg, "servicedesk_idle_watchers_up", project)
}

// gauge is the value of the named gauge for project, -1 when not exported.
func gauge(reg *prometheus.Registry, name, project string) float64 {
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == project {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}

func start(t *testing.T, rdb redis.UniversalClient, cfg mailbox.Config, project, owner string) *started {
	t.Helper()
	return startWith(t, rdb, cfg, project, owner, func(*watch.Options) {})
}

// startWith is start with fastOptions changed by set.
func startWith(t *testing.T, rdb redis.UniversalClient, cfg mailbox.Config, project, owner string, set func(*watch.Options)) *started {
	t.Helper()
	s := &started{reg: prometheus.NewRegistry(), q: newQueue(), dial: &dialCounter{cfg: cfg}}
	o := fastOptions(owner, s.reg)
	set(o)
	w, err := watch.New(rdb, s.dial.dial, s.q, []watch.Mailbox{{Project: project, PollInterval: time.Minute}}, o)
	if err != nil {
		t.Fatalf("watch.New: %v", err)
	}
	s.w = w
	w.Start(t.Context())
	t.Cleanup(func() { w.Stop(context.Background()) })
	return s
}

// appendMail appends n mails, one every gap, and returns when the last was
// appended.
func appendMail(t *testing.T, cfg mailbox.Config, n int, gap time.Duration) time.Time {
	t.Helper()
	c, err := mailbox.Dial(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("dial to append: %v", err)
	}
	defer c.Close()
	for i := range n {
		raw := fmt.Appendf(nil, "From: <c@customer.test>\r\nTo: <user@example.test>\r\nSubject: %d\r\nMessage-ID: <%d.%d@customer.test>\r\n\r\nbody\r\n", i, time.Now().UnixNano(), i)
		if _, err := c.Append(t.Context(), "INBOX", raw); err != nil {
			t.Fatalf("append: %v", err)
		}
		time.Sleep(gap)
	}
	return time.Now()
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestWatcher(t *testing.T) {
	t.Parallel()
	rdb := testRedis(t)

	t.Run("mail appended while watching queues a fetch within seconds, not at the poll", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		s := start(t, rdb, cfg, project, "a")
		s.q.next(t, 10*time.Second, "on connect (mail that came while nobody watched)")
		time.Sleep(200 * time.Millisecond)
		appended := appendMail(t, cfg, 1, 0)
		if took := s.q.next(t, 10*time.Second, "after an append").Sub(appended); took > noticed {
			t.Fatalf("fetch queued %v after the append; want within %v", took, noticed)
		}
		if got := gauge(s.reg, "servicedesk_idle_last_event_timestamp_seconds", project); got < float64(appended.Unix()-1) {
			t.Fatalf("servicedesk_idle_last_event_timestamp_seconds = %v; want the time of the append (%d)", got, appended.Unix())
		}
	})

	t.Run("a burst of 50 mails over half a second queues one fetch per 100ms window, not 50", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		s := start(t, rdb, cfg, project, "a")
		s.q.next(t, 10*time.Second, "on connect")
		s.q.drain()
		before := s.q.count()
		start := time.Now()
		appendMail(t, cfg, 50, 10*time.Millisecond)
		burst := time.Since(start)
		time.Sleep(500 * time.Millisecond) // the trailing fetch of the last window
		ts := s.q.times()[before:]
		if len(ts) == 0 {
			t.Fatal("a burst of 50 mails queued no fetch")
		}
		// At most one per 100ms window from the burst's start to the last
		// fetch queued, however late a loaded machine ran it.
		spanned := ts[len(ts)-1].Sub(start)
		t.Logf("a burst of 50 mails over %v queued %d fetches, the last %v after it began", burst, len(ts), spanned)
		if limit := int(spanned/(100*time.Millisecond)) + 2; len(ts) > limit || len(ts) >= 50 {
			t.Fatalf("a burst of 50 mails queued %d fetches over %v; want at most %d, one per 100ms window", len(ts), spanned, limit)
		}
	})

	t.Run("a connection the server closes is dialled again and the next mail noticed", func(t *testing.T) {
		mem, project := imaptest.MemServer(t), freshProject(t)
		p := tcpproxy.Start(t, net.JoinHostPort(mem.Host, strconv.Itoa(mem.Port)))
		cfg := mem
		cfg.Port = p.Port()
		s := start(t, rdb, cfg, project, "a")
		s.q.next(t, 10*time.Second, "on connect")
		p.Cut()
		s.q.next(t, 10*time.Second, "on reconnect after the server hung up")
		if s.dial.count() < 2 {
			t.Fatalf("%d dials after the server hung up; want a second one", s.dial.count())
		}
		time.Sleep(200 * time.Millisecond)
		appended := appendMail(t, mem, 1, 0)
		if took := s.q.next(t, 10*time.Second, "for mail after the reconnect").Sub(appended); took > noticed {
			t.Fatalf("fetch queued %v after the append on the new connection; want within %v", took, noticed)
		}
	})

	t.Run("a connection that stops answering is noticed within Check and the answer timeout, and replaced", func(t *testing.T) {
		mem, project := imaptest.MemServer(t), freshProject(t)
		p := tcpproxy.Start(t, net.JoinHostPort(mem.Host, strconv.Itoa(mem.Port)))
		cfg := mem
		cfg.Port = p.Port()
		cfg.CommandTimeout = time.Second // the answer timeout: min(this, 15s)
		s := start(t, rdb, cfg, project, "a")
		s.q.next(t, 10*time.Second, "on connect")
		p.Freeze() // half-open: the TCP connection stays, nothing passes
		frozen := time.Now()
		s.q.next(t, 10*time.Second, "on reconnect after the connection went silent")
		// Check 300ms + answer 1s + backoff <= 50ms, and slack.
		if took := time.Since(frozen); took > 8*time.Second {
			t.Fatalf("a silent connection was replaced after %v; want within about 1.5s", took)
		}
	})

	t.Run("of two watchers of one mailbox only one watches", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		// A 3 s lease renewed every second: with 600ms a stall of 400ms
		// on a loaded machine let the lease lapse and the other take it,
		// which is right, but not what this states.
		long := func(o *watch.Options) { o.LeaseTTL = 3 * time.Second }
		a := startWith(t, rdb, cfg, project, "a", long)
		b := startWith(t, rdb, cfg, project, "b", long)
		eventually(t, 5*time.Second, "one watcher up", func() bool { return a.up(project)+b.up(project) == 1 })
		time.Sleep(2 * time.Second) // several looks of the one waiting (every TTL/6): still only one
		if a.up(project)+b.up(project) != 1 || (a.dial.count() > 0) == (b.dial.count() > 0) {
			t.Fatalf("watchers up a=%v b=%v, dials a=%d b=%d; want exactly one watching, the other never dialling",
				a.up(project), b.up(project), a.dial.count(), b.dial.count())
		}
	})

	t.Run("a stopped watcher releases its lease and the other takes over", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		a := start(t, rdb, cfg, project, "a")
		eventually(t, 5*time.Second, "a watches", func() bool { return a.up(project) == 1 })
		b := start(t, rdb, cfg, project, "b")
		a.w.Stop(context.Background())
		if n, err := rdb.Exists(t.Context(), leaseKey(project)).Result(); err != nil || n != 0 {
			if owner, _ := rdb.Get(t.Context(), leaseKey(project)).Result(); owner != "b" {
				t.Fatalf("lease after Stop: exists=%d owner=%q (%v); want it released (or already b's)", n, owner, err)
			}
		}
		// b looks every TTL/6 = 100ms.
		took := eventually(t, 3*time.Second, "b takes over", func() bool { return b.up(project) == 1 })
		t.Logf("b watched %v after a stopped", took)
	})

	t.Run("a watcher whose lease is taken stops watching", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		a := start(t, rdb, cfg, project, "a")
		eventually(t, 5*time.Second, "a watches", func() bool { return a.up(project) == 1 })
		// Another owner has the key now (a's renewal was too late, say).
		if err := rdb.Set(t.Context(), leaseKey(project), "someone-else", time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "a stops (renewal every TTL/3 = 200ms)", func() bool { return a.up(project) == 0 })
		time.Sleep(500 * time.Millisecond)
		if a.up(project) != 0 {
			t.Fatal("a watches again while someone else holds the lease")
		}
		if owner, _ := rdb.Get(t.Context(), leaseKey(project)).Result(); owner != "someone-else" {
			t.Fatalf("lease owner %q after a stopped; want the other owner's lease untouched", owner)
		}
		rdb.Del(t.Context(), leaseKey(project))
	})

	t.Run("a lease left by a crashed replica is taken over within the TTL", func(t *testing.T) {
		cfg, project := imaptest.MemServer(t), freshProject(t)
		// The crashed replica's lease: nobody renews it.
		if err := rdb.Set(t.Context(), leaseKey(project), "crashed", 600*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		set := time.Now()
		b := start(t, rdb, cfg, project, "b")
		eventually(t, 5*time.Second, "b takes over", func() bool { return b.up(project) == 1 })
		// Not before the lease expired: b waited for it, not stole it.
		// How soon after (TTL + TTL/6 and a dial) is not asserted: a
		// loaded machine only makes it later.
		took := time.Since(set)
		t.Logf("b watched %v after the crashed replica's lease was set (TTL 600ms)", took)
		if took < 550*time.Millisecond {
			t.Fatalf("b watched %v after the lease was set; want after its TTL of 600ms", took)
		}
	})
}

// TestWatcherDovecot states the same of a real Dovecot (IDLE, LMTP
// delivery, a restart that closes every connection).
func TestWatcherDovecot(t *testing.T) {
	stack := mailstack.Start(t)
	rdb := testRedis(t)
	user := "idle-watch@example.test"
	stack.AddUser(t, user, mailstack.Password)
	cfg := stack.IMAPConfig(user, mailstack.Password)
	project := freshProject(t)
	s := start(t, rdb, cfg, project, "a")
	s.q.next(t, 10*time.Second, "on connect")

	deliver := func(i int) time.Time {
		raw := fmt.Appendf(nil, "From: <c@customer.test>\r\nTo: <%s>\r\nSubject: %d\r\nMessage-ID: <%d.%d@customer.test>\r\n\r\nbody\r\n", user, i, time.Now().UnixNano(), i)
		stack.Deliver(t, user, raw)
		return time.Now()
	}
	t.Run("mail delivered over LMTP queues a fetch within seconds, not at the poll", func(t *testing.T) {
		for i := range 5 {
			time.Sleep(300 * time.Millisecond)
			delivered := deliver(i)
			took := s.q.next(t, 10*time.Second, "after an LMTP delivery").Sub(delivered)
			t.Logf("mail %d: fetch queued %v after its delivery", i, took)
			if took > noticed {
				t.Fatalf("mail %d: fetch queued %v after delivery; want within %v", i, took, noticed)
			}
		}
	})
	t.Run("after a Dovecot restart the watcher reconnects and notices the next mail", func(t *testing.T) {
		dials := s.dial.count()
		stack.RestartDovecot(t, time.Second)
		eventually(t, 10*time.Second, "a new IDLE connection", func() bool { return s.dial.count() > dials && s.up(project) == 1 })
		s.q.next(t, 10*time.Second, "on reconnect")
		time.Sleep(300 * time.Millisecond)
		delivered := deliver(99)
		if took := s.q.next(t, 10*time.Second, "after a delivery to the restarted Dovecot").Sub(delivered); took > noticed {
			t.Fatalf("fetch queued %v after delivery to the restarted Dovecot; want within %v", took, noticed)
		}
	})
	t.Run("a stopped watcher releases its lease", func(t *testing.T) {
		s.w.Stop(context.Background())
		if n, err := rdb.Exists(t.Context(), leaseKey(project)).Result(); err != nil || n != 0 {
			t.Fatalf("lease key exists=%d (%v) after Stop; want it deleted", n, err)
		}
		if s.up(project) != 0 {
			t.Fatal("servicedesk_idle_watchers_up is 1 after Stop; want 0")
		}
	})
}
