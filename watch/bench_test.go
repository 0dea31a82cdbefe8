package watch_test

// The scheduler round over idle mailboxes (issue 11, item 4): the wall time
// of one round of the scheduler queuing a fetch for each of N mailboxes
// configured with imap.idle while their N watchers hold IDLE connections
// (to an in-process imapmemserver), for N = 100 and 1,000, beside the
// ceiling (the same N enqueues done bare in a loop, in the same run) and
// the same round with no watcher running. Not part of the normal test run:
//
//	go test -run '^$' -bench SchedulerRound -benchtime 1x ./watch

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/watch"
)

const (
	benchRedisDB    = 7 // flushed by the benchmark: away from the tests' 2..6
	benchRoundAim   = 5 * time.Second
	benchRoundLimit = 2 * time.Minute
)

type noOutbox struct{}

func (noOutbox) PendingNotifications(context.Context, time.Time, int) ([]int64, error) {
	return nil, nil
}

// BenchmarkSchedulerRound: b.N is ignored (run it with -benchtime 1x).
func BenchmarkSchedulerRound(b *testing.B) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: benchRedisDB})
	b.Cleanup(func() { rdb.FlushDB(context.Background()); rdb.Close() })
	client := asynq.NewClientFromRedisClient(rdb)
	b.Cleanup(func() { client.Close() })
	fmt.Printf("knobs: %d cores, Redis 127.0.0.1:6379, scheduler.tick 1s, poll_interval 60s, one imapmemserver for every watcher\n", runtime.NumCPU())
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			flush(b, rdb)
			bare := bareEnqueues(b, client, n)
			flush(b, rdb)
			alone := schedulerRound(b, rdb, client, n, 0)
			flush(b, rdb)
			cfg := imaptest.MemServer(b)
			upIn, stop := startWatchers(b, rdb, client, cfg, n)
			withWatchers := schedulerRound(b, rdb, client, n, n) // each watcher queued one fetch on connect
			stop()
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(withWatchers.Seconds(), "round_s")
			b.ReportMetric(bare.Seconds(), "bare_s")
			verdict := "meets the aim"
			if withWatchers >= benchRoundAim {
				verdict = "MISSES the aim"
			}
			fmt.Printf("scheduler-round %4d idle mailboxes: %8s with %d watchers up (%s per mailbox) | %8s with none | bare enqueues %8s | aim < %s: %s; watchers all up in %s\n",
				n, withWatchers.Round(time.Microsecond), n, (withWatchers / time.Duration(n)).Round(time.Microsecond),
				alone.Round(time.Microsecond), bare.Round(time.Microsecond), benchRoundAim, verdict, upIn.Round(time.Millisecond))
		})
	}
}

func flush(tb testing.TB, rdb *redis.Client) {
	tb.Helper()
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		tb.Fatalf("redis at 127.0.0.1:6379 (db %d) unreachable: %v", benchRedisDB, err)
	}
}

func boxKey(i int) string { return "box-" + strconv.Itoa(i) }

// bareEnqueues is the ceiling: n fetch tasks queued in a loop by the same
// enqueuer, nothing else.
func bareEnqueues(tb testing.TB, client *asynq.Client, n int) time.Duration {
	tb.Helper()
	enq := jobs.NewEnqueuer(client, jobs.Retries{})
	start := time.Now()
	for i := range n {
		if _, err := enq.Fetch(context.Background(), boxKey(i), "bare", time.Minute); err != nil {
			tb.Fatalf("bare enqueue: %v", err)
		}
	}
	return time.Since(start)
}

// schedulerRound starts a scheduler over n idle mailboxes and returns how
// long its first round took to queue their n fetches (already: tasks in
// the queue before it started).
func schedulerRound(tb testing.TB, rdb *redis.Client, client *asynq.Client, n, already int) time.Duration {
	tb.Helper()
	desks := make([]jobs.Desk, n)
	for i := range desks {
		desks[i] = jobs.Desk{ID: int64(i + 1), Config: config.Project{Key: boxKey(i),
			IMAP: config.IMAP{PollInterval: config.Duration(time.Minute), Idle: true}}}
	}
	s := jobs.NewScheduler(jobs.NewEnqueuer(client, jobs.Retries{}), desks, noOutbox{}, time.Second, jobs.OutboxSweep{Every: time.Hour}, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	go func() { _ = s.Run(ctx) }()
	for {
		pending, err := rdb.LLen(context.Background(), "asynq:{"+jobs.QueueFetch+"}:pending").Result()
		if err != nil {
			tb.Fatalf("count pending fetches: %v", err)
		}
		if int(pending) >= already+n {
			return time.Since(start)
		}
		if time.Since(start) > benchRoundLimit {
			tb.Fatalf("after %s: %d fetches pending; want %d", benchRoundLimit, pending, already+n)
		}
		time.Sleep(5 * time.Millisecond) // a look costs Redis little: the figure is +-5ms
	}
}

// startWatchers starts the watchers of n mailboxes (all on cfg's INBOX)
// and returns once every one is up, with how long that took.
func startWatchers(tb testing.TB, rdb *redis.Client, client *asynq.Client, cfg mailbox.Config, n int) (time.Duration, func()) {
	tb.Helper()
	boxes := make([]watch.Mailbox, n)
	for i := range boxes {
		boxes[i] = watch.Mailbox{Project: boxKey(i), PollInterval: time.Minute}
	}
	reg := prometheus.NewRegistry()
	dial := func(ctx context.Context, _ string) (watch.Conn, error) { return mailbox.DialIdle(ctx, cfg, nil) }
	w, err := watch.New(rdb, dial, jobs.NewEnqueuer(client, jobs.Retries{}), boxes,
		&watch.Options{Owner: "bench", Temporary: mailbox.Temporary, Metrics: watch.NewMetrics(reg)})
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	w.Start(context.Background())
	for up := 0; up < n; {
		if time.Since(start) > benchRoundLimit {
			w.Stop(context.Background())
			tb.Fatalf("after %s: %d of %d watchers up", benchRoundLimit, up, n)
		}
		time.Sleep(10 * time.Millisecond)
		up = int(sumGauge(reg, "servicedesk_idle_watchers_up"))
	}
	upIn := time.Since(start)
	// Every watcher's fetch of its connect is queued before the round.
	for {
		pending, _ := rdb.LLen(context.Background(), "asynq:{"+jobs.QueueFetch+"}:pending").Result()
		if int(pending) >= n || time.Since(start) > benchRoundLimit {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return upIn, func() { w.Stop(context.Background()) }
}

// sumGauge sums the named gauge over its labels.
func sumGauge(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}
