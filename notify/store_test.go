package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
	blobs         map[string][]byte    // attachment content by SHA-256 hex
	bounces       map[string]time.Time // "ticketID/address" -> bouncing until
	reasons       map[int64]string     // suppression reasons by notification
	countErr      error
}

var _ Store = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{
		notifications: map[int64]ticket.Notification{},
		tickets:       map[int64]ticket.Ticket{},
		attempts:      map[int64][]string{},
		blobs:         map[string][]byte{},
		bounces:       map[string]time.Time{},
		reasons:       map[int64]string{},
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

// SuppressNotification behaves like the store's: pending -> suppressed with
// the reason, again a no-op, anything else an error.
func (s *memStore) SuppressNotification(_ context.Context, id int64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.notifications[id]
	switch {
	case !ok:
		return fmt.Errorf("notification %d: %w", id, errNotFound)
	case n.State == stateSuppressed:
		return nil
	case n.State != ticket.NotificationPending:
		return fmt.Errorf("suppress notification %d: it is %s, not pending", id, n.State)
	}
	n.State, n.LastError = stateSuppressed, reason
	s.notifications[id] = n
	s.reasons[id] = reason
	return nil
}

func (s *memStore) BouncingRecipients(_ context.Context, ticketID int64, at time.Time) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	prefix := strconv.FormatInt(ticketID, 10) + "/"
	for k, until := range s.bounces {
		if addr, ok := strings.CutPrefix(k, prefix); ok && until.After(at) {
			out = append(out, addr)
		}
	}
	slices.Sort(out)
	return out, nil
}

// CountNotifications counts like the store: the project's notifications of
// the kinds to recipient created at or after since, in any state but failed.
func (s *memStore) CountNotifications(_ context.Context, projectID int64, recipient string, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error) {
	return s.count(projectID, kinds, since, before, func(n ticket.Notification) bool {
		return strings.EqualFold(n.To, recipient) && n.State != ticket.NotificationFailed
	})
}

// CountProjectMail counts like the store: the project's pending and sent
// notifications of the kinds created at or after since, to anyone.
func (s *memStore) CountProjectMail(_ context.Context, projectID int64, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error) {
	return s.count(projectID, kinds, since, before, func(n ticket.Notification) bool {
		return n.State == ticket.NotificationPending || n.State == ticket.NotificationSent
	})
}

// count counts the project's notifications of the kinds (any when empty)
// created at or after since, queued before before (by CreatedAt, then ID;
// any when zero), for which keep holds.
func (s *memStore) count(projectID int64, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification, keep func(ticket.Notification) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.countErr != nil {
		return 0, s.countErr
	}
	c := 0
	for _, n := range s.notifications {
		earlier := before.CreatedAt.IsZero() || n.CreatedAt.Before(before.CreatedAt) ||
			(n.CreatedAt.Equal(before.CreatedAt) && before.ID != 0 && n.ID < before.ID)
		if n.ProjectID == projectID && !n.CreatedAt.Before(since) && earlier && keep(n) &&
			(len(kinds) == 0 || slices.Contains(kinds, n.Kind)) {
			c++
		}
	}
	return c, nil
}

func (s *memStore) AttachmentData(_ context.Context, sha256hex string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.blobs[sha256hex]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", sha256hex, errNotFound)
	}
	return data, nil
}

// putBlob stores data and returns its attachment metadata.
func (s *memStore) putBlob(id int64, filename, contentType string, data []byte) ticket.Attachment {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	s.blobs[h] = data
	return ticket.Attachment{ID: id, Filename: filename, ContentType: contentType, Size: int64(len(data)), SHA256: h}
}

func (s *memStore) markBouncing(ticketID int64, addr string, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bounces[strconv.FormatInt(ticketID, 10)+"/"+addr] = until
}

func (s *memStore) reason(id int64) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reasons[id]
}
