package main

import (
	"context"
	"log/slog"
	"sync"
)

// lifecycle owns the order in which serve starts its parts and stops them:
// each part that has started is recorded with its stop, and stop runs them
// in reverse order, once, whether the process ends on a signal, on a part
// failing while it runs, or on a later part failing to start (a port in
// use, say): nothing that started is left running.
type lifecycle struct {
	log   *slog.Logger
	mu    sync.Mutex
	parts []part
	done  bool
	wg    sync.WaitGroup
	errc  chan error // the first failure of a running part
}

type part struct {
	name string
	stop func(context.Context)
}

func newLifecycle(log *slog.Logger) *lifecycle {
	return &lifecycle{log: log, errc: make(chan error, 1)}
}

// started records a part that is running; stop is called on the way down.
func (l *lifecycle) started(name string, stop func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts = append(l.parts, part{name, stop})
}

// run runs fn in the background as part name; an error it returns while
// the process is up ends the process (see failed). stop is how to ask it to
// return; stop waits for it.
func (l *lifecycle) run(name string, fn func() error, stop func(context.Context)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := fn(); err != nil {
			select {
			case l.errc <- err:
			default:
			}
		}
	}()
	l.started(name, stop)
}

// failed delivers the first failure of a part started with run.
func (l *lifecycle) failed() <-chan error { return l.errc }

// stop stops every started part, newest first, then waits for the
// background ones. Later calls do nothing.
func (l *lifecycle) stop(ctx context.Context) {
	l.mu.Lock()
	if l.done {
		l.mu.Unlock()
		return
	}
	l.done = true
	parts := l.parts
	l.mu.Unlock()
	for i := len(parts) - 1; i >= 0; i-- {
		l.log.Debug("stopping", "part", parts[i].name)
		parts[i].stop(ctx)
	}
	l.wg.Wait()
}
