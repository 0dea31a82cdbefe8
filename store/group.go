package store

import (
	"context"
	"fmt"
	"sync"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// groupCommit commits concurrent deliveries together. On SQLite, which
// writes one transaction at a time, most of a small transaction's cost is
// fixed (taking the lock, writing each touched page to the WAL once per
// commit). On PostgreSQL, every new ticket of a project waits for the
// project's ticket counter, which a delivery holds until its commit is
// flushed to disk; a group takes it once. So the process jobs that wait
// for the gate hand their deliveries to whichever of them gets it first
// (the leader), which commits every waiting delivery in one transaction.
// Each caller still learns its own result, and a batch that fails is redone
// one delivery per transaction, so one bad delivery never fails the others.
type groupCommit struct {
	// gate admits the leaders: one at a time on SQLite (the store's write
	// gate), a few at once on PostgreSQL.
	gate    chan struct{}
	mu      sync.Mutex
	pending []*commitRequest
}

// maxGroup bounds the deliveries of one transaction.
const maxGroup = 32

type commitRequest struct {
	d     ticket.Delivery
	taken bool // by a leader; guarded by groupCommit.mu
	c     ticket.Committed
	err   error
	done  chan struct{}
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
		case s.group.gate <- struct{}{}:
			s.group.mu.Lock()
			if req.taken {
				// Another leader commits it: wait for that, not the gate.
				s.group.mu.Unlock()
				<-s.group.gate
				select {
				case <-req.done:
					return req.c, req.err
				case <-ctx.Done():
					return ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: %w", d.InboundID, ctx.Err())
				}
			}
			n := min(len(s.group.pending), maxGroup)
			batch := s.group.pending[:n:n]
			s.group.pending = s.group.pending[n:]
			for _, r := range batch {
				r.taken = true
			}
			s.group.mu.Unlock()
			func() {
				defer func() { <-s.group.gate }()
				s.commitBatch(context.WithoutCancel(ctx), batch)
			}()
		}
	}
}

// commitBatch commits batch in one transaction, holding the gate, and
// closes every request's done.
func (s *Store) commitBatch(ctx context.Context, batch []*commitRequest) {
	defer func() {
		p := recover()
		for _, r := range batch {
			if p != nil { // each job retries; commits are idempotent
				r.c, r.err = ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: panic in the group's commit: %v", r.d.InboundID, p)
			}
			close(r.done)
		}
		if p != nil {
			panic(p)
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
		r.c, r.err = s.commitOne(ctx, r.d)
	}
}
