package store

import (
	"context"
	"fmt"
	"sync"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// groupCommit commits concurrent deliveries together on SQLite. SQLite
// writes one transaction at a time, and most of a small transaction's cost
// is fixed (taking the lock, writing each touched page to the WAL once per
// commit), so the process jobs that wait for the write gate hand their
// deliveries to whichever of them gets it first (the leader), which
// commits every waiting delivery in one transaction. Each caller still
// learns its own result, and a batch that fails is redone one delivery
// per transaction, so one bad delivery never fails the others.
type groupCommit struct {
	mu      sync.Mutex
	pending []*commitRequest
}

// maxGroup bounds the deliveries of one transaction.
const maxGroup = 32

type commitRequest struct {
	d    ticket.Delivery
	c    ticket.Committed
	err  error
	done chan struct{}
}

// commitGrouped is CommitDelivery on a store with a write gate.
func (s *Store) commitGrouped(ctx context.Context, d ticket.Delivery) (ticket.Committed, error) {
	req := &commitRequest{d: d, done: make(chan struct{})}
	s.group.mu.Lock()
	s.group.pending = append(s.group.pending, req)
	s.group.mu.Unlock()
	for {
		select {
		case <-req.done:
			return req.c, req.err
		case <-ctx.Done():
			// The delivery may still be committed by a leader: commits are
			// idempotent, and a retried job finds its outcome.
			return ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: %w", d.InboundID, ctx.Err())
		case s.writers <- struct{}{}:
			// The leader holds the gate until the batch is done, so a
			// request is either still pending here or done already.
			s.group.mu.Lock()
			n := min(len(s.group.pending), maxGroup)
			batch := s.group.pending[:n:n]
			s.group.pending = s.group.pending[n:]
			s.group.mu.Unlock()
			s.commitBatch(context.WithoutCancel(ctx), batch)
			<-s.writers
		}
	}
}

// commitBatch commits batch in one transaction, holding the write gate,
// and closes every request's done.
func (s *Store) commitBatch(ctx context.Context, batch []*commitRequest) {
	if len(batch) == 0 {
		return
	}
	defer func() {
		for _, r := range batch {
			close(r.done)
		}
	}()
	if len(batch) > 1 {
		var results []ticket.Committed
		ds := make([]ticket.Delivery, len(batch))
		for i, r := range batch {
			ds[i] = r.d
		}
		err := s.retry(ctx, func() error {
			return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				var err error
				results, err = s.commitMany(tx, ds)
				return err
			})
		})
		if err == nil {
			for i, r := range batch {
				r.c = results[i]
			}
			return
		}
		s.log.Warn("grouped commit failed; committing its deliveries one by one", "deliveries", len(batch), "err", err)
	}
	for _, r := range batch {
		r.err = s.retry(ctx, func() error {
			return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				var err error
				r.c, err = s.commitDelivery(tx, r.d)
				return err
			})
		})
		if r.err != nil {
			r.c = ticket.Committed{}
			r.err = fmt.Errorf("commit delivery of inbound %d: %w", r.d.InboundID, r.err)
		}
	}
}
