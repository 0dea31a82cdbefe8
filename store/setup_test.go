package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// backends are the databases every test runs on.
var backends = []string{"sqlite", "postgres"}

func postgresURL() string {
	if u := os.Getenv("SERVICEDESK_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// clock is a test clock: real time shifted by an offset that tests advance.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// env is what a test gets: a migrated store, its clock, and the URL to open
// a second store on the same database (a stand-in for another process).
type env struct {
	s     *Store
	clock *clock
	url   string
}

// open opens another Store on the same database, closed at cleanup.
func (e *env) open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), e.url, &Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("open second store on %s: %v", e.url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// forEach runs fn as the subtests "sqlite" and "postgres", each on a fresh,
// migrated database.
func forEach(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			fn(t, setup(t, b))
		})
	}
}

// setup gives a fresh, migrated store on backend: a temp-file SQLite
// database, or a new PostgreSQL schema dropped at cleanup. A PostgreSQL
// server that cannot be reached fails the test.
func setup(t testing.TB, backend string) *env {
	t.Helper()
	ctx := t.Context()
	e := &env{clock: &clock{}}
	switch backend {
	case "sqlite":
		e.url = "sqlite://" + filepath.Join(t.TempDir(), "test.db")
	case "postgres":
		base := postgresURL()
		admin, err := Open(ctx, base, nil)
		if err != nil {
			t.Fatalf("PostgreSQL at %s must be reachable (set SERVICEDESK_TEST_POSTGRES): %v", redactURL(base), err)
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		schema := "test_" + hex.EncodeToString(b)
		if err := admin.db.WithContext(ctx).Exec("CREATE SCHEMA " + schema).Error; err != nil {
			t.Fatalf("create schema %s: %v", schema, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := admin.db.WithContext(ctx).Exec("DROP SCHEMA " + schema + " CASCADE").Error; err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			_ = admin.Close()
		})
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		e.url = base + sep + "search_path=" + schema
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	s, err := Open(ctx, e.url, &Options{Now: e.clock.Now})
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s store: %v", backend, err)
	}
	e.s = s
	return e
}

// fixtures

func mustProjects(t testing.TB, s *Store, keys ...string) []ticket.Project {
	t.Helper()
	var ps []ticket.Project
	for _, k := range keys {
		ps = append(ps, ticket.Project{Key: k, Name: strings.ToUpper(k), Address: "support@" + k + ".test"})
	}
	out, err := s.SyncProjects(t.Context(), ps)
	if err != nil {
		t.Fatalf("SyncProjects(%v): %v", keys, err)
	}
	return out
}

// mustFetch records a fetched message and returns its ledger id.
func mustFetch(t *testing.T, s *Store, projectID int64, uid uint32, raw string) int64 {
	t.Helper()
	id, created, err := s.RecordFetched(t.Context(), ticket.Inbound{
		ProjectID: projectID, UIDValidity: 7, UID: uid, MessageID: "<" + raw + ">", From: "alice@customer.test",
		Subject: "subject " + raw,
	}, []byte("raw "+raw))
	if err != nil {
		t.Fatalf("RecordFetched(uid %d): %v", uid, err)
	}
	if !created {
		t.Fatalf("RecordFetched(uid %d): created = false, want a new row", uid)
	}
	return id
}

// newTicketDelivery is the delivery of a first message that opens a ticket.
func newTicketDelivery(p ticket.Project, inboundID int64, messageID string) ticket.Delivery {
	return ticket.Delivery{
		InboundID: inboundID, ProjectID: p.ID, Outcome: ticket.OutcomeTicketCreated,
		DedupKey:  "mid:" + messageID,
		NewTicket: &ticket.Ticket{Subject: "Printer on fire", Requester: "Alice@Customer.test"},
		Message: &ticket.Message{
			Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, From: "Alice@Customer.test",
			To: []string{p.Address}, Cc: []string{"bob@customer.test"}, Subject: "Printer on fire",
			Text: "It burns.", MessageID: messageID,
		},
		Participants: []string{"BOB@customer.test", p.Address, "alice@customer.test"},
		Notify:       []ticket.Notification{{Kind: ticket.NotifyThankYou, To: "alice@customer.test"}},
		MailDomain:   "desk.test",
	}
}

func mustCommit(t *testing.T, s *Store, d ticket.Delivery) ticket.Committed {
	t.Helper()
	c, err := s.CommitDelivery(t.Context(), d)
	if err != nil {
		t.Fatalf("CommitDelivery(inbound %d, %s): %v", d.InboundID, d.Outcome, err)
	}
	return c
}

// mustCommitMany commits ds as one group, in one transaction.
func mustCommitMany(t *testing.T, s *Store, ds []ticket.Delivery) []ticket.Committed {
	t.Helper()
	var cs []ticket.Committed
	err := s.db.WithContext(t.Context()).Transaction(func(tx *gorm.DB) error {
		var err error
		cs, err = s.commitMany(tx, ds)
		return err
	})
	if err != nil {
		t.Fatalf("commitMany: %v", err)
	}
	return cs
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

func countRows(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.db.WithContext(t.Context()).Table(table).Count(&n).Error; err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// latestMigration is the version of the last migration step (numbers may
// have gaps).
func latestMigration() int { return migrations[len(migrations)-1].version }
