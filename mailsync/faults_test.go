package mailsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// errCrash is the failure a test injects: the process dies at that step.
var errCrash = errors.New("crash injected by the test")

// faults counts the steps a sync takes through its interfaces (each call
// to the mailbox, the store or the queue, and each message a Fetch hands
// over) and makes step number failAt fail with errCrash, and every step
// after it too, as a process that died would take none. failAt 0 fails
// nothing and only records the steps.
type faults struct {
	mu     sync.Mutex
	failAt int
	steps  []string
}

func (f *faults) step(name string) error {
	if f == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.steps = append(f.steps, name)
	if f.failAt > 0 && len(f.steps) >= f.failAt {
		return fmt.Errorf("%s: %w", name, errCrash)
	}
	return nil
}

// faultyMailbox is a Mailbox with faults between the sync and the server.
type faultyMailbox struct {
	Mailbox
	f *faults
}

func (m *faultyMailbox) Select(ctx context.Context, folder string) (mailbox.Status, error) {
	if err := m.f.step("Select"); err != nil {
		return mailbox.Status{}, err
	}
	return m.Mailbox.Select(ctx, folder)
}

func (m *faultyMailbox) List(ctx context.Context, after uint32, limit int) ([]mailbox.Entry, error) {
	if err := m.f.step("List"); err != nil {
		return nil, err
	}
	return m.Mailbox.List(ctx, after, limit)
}

func (m *faultyMailbox) Fetch(ctx context.Context, uids []uint32, fn func(uint32, []byte) error) error {
	if err := m.f.step("Fetch"); err != nil {
		return err
	}
	return m.Mailbox.Fetch(ctx, uids, func(uid uint32, raw []byte) error {
		if err := m.f.step(fmt.Sprintf("Fetch: message UID %d", uid)); err != nil {
			return err
		}
		return fn(uid, raw)
	})
}

func (m *faultyMailbox) MarkSeen(ctx context.Context, uids []uint32) error {
	if err := m.f.step("MarkSeen"); err != nil {
		return err
	}
	return m.Mailbox.MarkSeen(ctx, uids)
}

func (m *faultyMailbox) Move(ctx context.Context, uids []uint32, folder string) error {
	if err := m.f.step("Move"); err != nil {
		return err
	}
	return m.Mailbox.Move(ctx, uids, folder)
}

func (m *faultyMailbox) Delete(ctx context.Context, uids []uint32) error {
	if err := m.f.step("Delete"); err != nil {
		return err
	}
	return m.Mailbox.Delete(ctx, uids)
}

func (m *faultyMailbox) Envelopes(ctx context.Context, uids []uint32) (map[uint32]mailbox.Envelope, error) {
	if err := m.f.step("Envelopes"); err != nil {
		return nil, err
	}
	return m.Mailbox.(EnvelopeReader).Envelopes(ctx, uids)
}

// faultyStore is a Store with faults between the sync and the database.
// The lease calls are not steps: a crashed process holds no lease once
// its TTL passes.
type faultyStore struct {
	Store
	f *faults
}

func (s *faultyStore) SetMailboxCursor(ctx context.Context, projectID int64, uidValidity, lastUID uint32) error {
	if err := s.f.step("SetMailboxCursor"); err != nil {
		return err
	}
	return s.Store.SetMailboxCursor(ctx, projectID, uidValidity, lastUID)
}

func (s *faultyStore) RecordMailboxRun(ctx context.Context, projectID int64, at time.Time, runErr string) error {
	if err := s.f.step("RecordMailboxRun"); err != nil {
		return err
	}
	return s.Store.RecordMailboxRun(ctx, projectID, at, runErr)
}

func (s *faultyStore) RecordFetched(ctx context.Context, in ticket.Inbound, raw []byte) (int64, bool, error) {
	if err := s.f.step("RecordFetched"); err != nil {
		return 0, false, err
	}
	return s.Store.RecordFetched(ctx, in, raw)
}

func (s *faultyStore) RecordFetchedBatch(ctx context.Context, projectID int64, uidValidity uint32, msgs []store.Fetched) ([]int64, error) {
	if err := s.f.step("RecordFetchedBatch"); err != nil {
		return nil, err
	}
	return s.Store.RecordFetchedBatch(ctx, projectID, uidValidity, msgs)
}

func (s *faultyStore) AttachRaw(ctx context.Context, inboundID int64, raw []byte) error {
	if err := s.f.step("AttachRaw"); err != nil {
		return err
	}
	return s.Store.AttachRaw(ctx, inboundID, raw)
}

func (s *faultyStore) RejectInbound(ctx context.Context, inboundID int64, reason string) error {
	if err := s.f.step("RejectInbound"); err != nil {
		return err
	}
	return s.Store.RejectInbound(ctx, inboundID, reason)
}

func (s *faultyStore) UnprocessedInbound(ctx context.Context, projectID int64, before time.Time, limit int) ([]int64, error) {
	if err := s.f.step("UnprocessedInbound"); err != nil {
		return nil, err
	}
	return s.Store.UnprocessedInbound(ctx, projectID, before, limit)
}

func (s *faultyStore) UnappliedInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error) {
	if err := s.f.step("UnappliedInbound"); err != nil {
		return nil, err
	}
	return s.Store.UnappliedInbound(ctx, projectID, uidValidity, limit)
}

func (s *faultyStore) MarkApplied(ctx context.Context, ids []int64) error {
	if err := s.f.step("MarkApplied"); err != nil {
		return err
	}
	return s.Store.MarkApplied(ctx, ids)
}

func (s *faultyStore) RefetchInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error) {
	if err := s.f.step("RefetchInbound"); err != nil {
		return nil, err
	}
	return s.Store.RefetchInbound(ctx, projectID, uidValidity, limit)
}
