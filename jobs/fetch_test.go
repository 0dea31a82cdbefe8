package jobs

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/store"
)

// leaseStore is a FetchStore with the lease semantics of store.Store: a
// lease is granted when free, expired or already the caller's. Every other
// method panics (through the nil embedded interface) if a test reaches it.
type leaseStore struct {
	FetchStore
	mu    sync.Mutex
	owner string
}

func (s *leaseStore) AcquireMailbox(_ context.Context, _ int64, owner string, _ time.Duration) (store.MailboxState, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner != "" && s.owner != owner {
		return store.MailboxState{}, false, nil
	}
	s.owner = owner
	return store.MailboxState{}, true, nil
}

func (s *leaseStore) RenewMailbox(context.Context, int64, string, time.Duration) error { return nil }

func (s *leaseStore) ReleaseMailbox(_ context.Context, _ int64, owner string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.owner == owner {
		s.owner = ""
	}
	return nil
}

// Two fetch tasks of one mailbox in the same process (a scheduled slot and
// a backlog follow-up) never run at once: the second returns without
// connecting, and once the first ends the mailbox is free again.
func TestFetchRunsOfOneProcessNeverOverlap(t *testing.T) {
	st := &leaseStore{}
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	dials := 0
	count := func() int { mu.Lock(); defer mu.Unlock(); return dials }
	errDial := errors.New("dial refused by the test")
	// The first dial waits for release; later ones fail at once.
	dial := func(ctx context.Context, _ config.Project) (Mailbox, error) {
		mu.Lock()
		dials++
		n := dials
		mu.Unlock()
		if n == 1 {
			entered <- struct{}{}
			<-release
		}
		return nil, errDial
	}
	f := NewFetcher(st, dial, nil, nil, 0, nil, discard())
	d := Desk{ID: 1, Config: config.Project{Key: "acme"}}

	first := make(chan error, 1)
	go func() {
		_, err := f.Run(context.Background(), d)
		first <- err
	}()
	<-entered // the first run holds the lease and is connecting

	more, err := f.Run(context.Background(), d)
	if more != "" || err != nil || count() != 1 {
		close(release)
		t.Fatalf("second run while the first holds the mailbox = (%q, %v) after %d dials; want (\"\", nil) without dialing", more, err, count())
	}

	close(release)
	if err := <-first; !errors.Is(err, errDial) {
		t.Fatalf("first run = %v; want the dial error", err)
	}
	if st.owner != "" {
		t.Fatalf("lease still held by %q after the run ended; want it released", st.owner)
	}

	// The mailbox is free again: the next run connects.
	if _, err := f.Run(context.Background(), d); !errors.Is(err, errDial) || count() != 2 {
		t.Fatalf("run after the first ended = %v after %d dials; want it to connect (2 dials) and get the dial error", err, count())
	}
}
