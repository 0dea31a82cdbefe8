package mailsync

import (
	"context"

	"github.com/servicedesk/servicedesk/store"
)

const (
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
