package jobs

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
)

// WorkerOptions tunes the worker role.
type WorkerOptions struct {
	Concurrency       int           // ingest jobs at once; default config.DefaultConcurrency
	NotifyConcurrency int           // sends at once; default config.DefaultNotifyConcurrency
	ShutdownTimeout   time.Duration // default config.DefaultShutdownTimeout
	// SendBackoff is the retry ladder of temporarily failing sends; the
	// last step repeats. Defaults to 30s, 1m, 2m, 5m, 10m, 20m, 30m, 1h,
	// 2h, 4h, 8h, 12h (about 29 hours over the default 12 retries).
	SendBackoff []time.Duration
	// ProcessBackoff is the first retry delay of a failing process job,
	// doubling up to 10m. Defaults to 5s.
	ProcessBackoff time.Duration
	// IngestOnly and NotifyOnly run one of the two servers, so ingestion
	// and outbound mail can be scaled apart (serve --roles ingest|notify).
	IngestOnly, NotifyOnly bool
}

// DefaultSendBackoff is the documented retry ladder for outbound mail.
func DefaultSendBackoff() []time.Duration {
	return []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
		20 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 12 * time.Hour}
}

// Worker runs the ingest and notify servers.
type Worker struct {
	ingest, notify *asynq.Server
	ingestMux      *asynq.ServeMux
	notifyMux      *asynq.ServeMux
	fetch          *Fetcher
}

// NewWorker builds the two asynq servers on one Redis client.
func NewWorker(rdb redis.UniversalClient, fetch *Fetcher, proc *ProcessHandler, send *SendHandler, o WorkerOptions, logger *slog.Logger) *Worker {
	o.Concurrency = cmp.Or(o.Concurrency, config.DefaultConcurrency)
	o.NotifyConcurrency = cmp.Or(o.NotifyConcurrency, config.DefaultNotifyConcurrency)
	o.ShutdownTimeout = cmp.Or(o.ShutdownTimeout, config.DefaultShutdownTimeout)
	if len(o.SendBackoff) == 0 {
		o.SendBackoff = DefaultSendBackoff()
	}
	if o.ProcessBackoff == 0 {
		o.ProcessBackoff = 5 * time.Second
	}
	delay := func(n int, _ error, t *asynq.Task) time.Duration {
		if t.Type() == TypeSend || t.Type() == TypeReject {
			return o.SendBackoff[min(n, len(o.SendBackoff)-1)]
		}
		d := time.Duration(float64(o.ProcessBackoff) * math.Pow(2, float64(min(n, 20))))
		return min(d, 10*time.Minute)
	}
	alog := asynqLogger{logger.With("component", "asynq")}
	w := &Worker{ingestMux: asynq.NewServeMux(), notifyMux: asynq.NewServeMux(), fetch: fetch}
	w.ingest = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: o.Concurrency, Queues: map[string]int{QueueIngest: 6, QueueFetch: 3},
		RetryDelayFunc: delay, ShutdownTimeout: o.ShutdownTimeout, Logger: alog, LogLevel: asynq.WarnLevel,
		TaskCheckInterval: 100 * time.Millisecond, DelayedTaskCheckInterval: time.Second,
	})
	w.notify = asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: o.NotifyConcurrency, Queues: map[string]int{QueueNotify: 1},
		RetryDelayFunc: delay, ShutdownTimeout: o.ShutdownTimeout, Logger: alog, LogLevel: asynq.WarnLevel,
		TaskCheckInterval: 100 * time.Millisecond, DelayedTaskCheckInterval: time.Second,
	})
	w.ingestMux.Handle(TypeFetch, fetch)
	w.ingestMux.Handle(TypeProcess, proc)
	w.notifyMux.Handle(TypeSend, send)
	if o.IngestOnly {
		w.notify = nil
	}
	if o.NotifyOnly {
		w.ingest = nil
	}
	return w
}

// Start begins processing; it returns at once.
func (w *Worker) Start() error {
	if w.ingest != nil {
		if err := w.ingest.Start(w.ingestMux); err != nil {
			return fmt.Errorf("start ingest worker: %w", err)
		}
	}
	if w.notify != nil {
		if err := w.notify.Start(w.notifyMux); err != nil {
			if w.ingest != nil {
				w.ingest.Shutdown()
			}
			return fmt.Errorf("start notify worker: %w", err)
		}
	}
	return nil
}

// Stop stops taking new tasks and waits up to ShutdownTimeout for those in
// flight; unfinished ones go back to their queue for another worker.
func (w *Worker) Stop(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		for _, srv := range []*asynq.Server{w.ingest, w.notify} {
			if srv != nil {
				srv.Stop() // no new tasks on either before draining both
			}
		}
		if w.fetch != nil {
			w.fetch.Stop() // a backlog run ends after its batch
		}
		for _, srv := range []*asynq.Server{w.ingest, w.notify} {
			if srv != nil {
				srv.Shutdown()
			}
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) { a.l.Debug(fmt.Sprint(args...)) }
func (a asynqLogger) Info(args ...any)  { a.l.Info(fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Warn(fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Error(fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error(fmt.Sprint(args...)) }
