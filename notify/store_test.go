package notify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

var errNotFound = errors.New("not found")

// memStore is an in-memory Store.
type memStore struct {
	mu            sync.Mutex
	notifications map[int64]ticket.Notification
	tickets       map[int64]ticket.Ticket
	attempts      map[int64][]string
	markErr       error
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		notifications: map[int64]ticket.Notification{},
		tickets:       map[int64]ticket.Ticket{},
		attempts:      map[int64][]string{},
	}
}

func (s *memStore) Notification(_ context.Context, id int64) (ticket.Notification, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.notifications[id]
	if !ok {
		return n, fmt.Errorf("notification %d: %w", id, errNotFound)
	}
	return n, nil
}

func (s *memStore) TicketByID(_ context.Context, id int64) (ticket.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tickets[id]
	if !ok {
		return t, fmt.Errorf("ticket %d: %w", id, errNotFound)
	}
	return t, nil
}

func (s *memStore) MarkNotificationSent(_ context.Context, id int64, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.markErr != nil {
		return s.markErr
	}
	n := s.notifications[id]
	n.State, n.SentAt, n.LastError = ticket.NotificationSent, at, ""
	s.notifications[id] = n
	return nil
}

func (s *memStore) RecordNotificationAttempt(_ context.Context, id int64, errText string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.notifications[id]
	n.Attempts++
	n.LastError = errText
	s.notifications[id] = n
	s.attempts[id] = append(s.attempts[id], errText)
	return nil
}

func (s *memStore) put(n ticket.Notification) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notifications[n.ID] = n
}

func (s *memStore) get(id int64) ticket.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notifications[id]
}
