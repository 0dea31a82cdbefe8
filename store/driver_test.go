package store

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// A SQLite file written before the store moved from glebarez/go-sqlite to
// ncruces/go-sqlite3 (testdata/sqlite-glebarez.db, made by the program in
// testdata/sqlite-glebarez.go.txt at commit 349fa1e) opens, reads back its
// times to the nanosecond, compares them with times the new driver writes,
// and takes new deliveries.
func TestOpensFilesOfTheEarlierDriver(t *testing.T) {
	ctx := t.Context()
	data, err := os.ReadFile(filepath.Join("testdata", "sqlite-glebarez.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "desk.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	written := time.Date(2026, 11, 1, 10, 0, 0, 123456789, time.UTC)
	var mu sync.Mutex
	now := written.Add(30 * time.Second)
	s, err := Open(ctx, "sqlite://"+path, &Options{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate: %v", err)
	}

	in, err := s.Inbound(ctx, 1)
	if err != nil || !in.ReceivedAt.Equal(written) || !in.ProcessedAt.Equal(written) || in.Outcome != ticket.OutcomeTicketCreated {
		t.Fatalf("Inbound(1) = %+v, %v; want ticket_created, received and processed at %s", in, err, written)
	}
	tk, err := s.TicketByNumber(ctx, "acme", 1)
	if err != nil || !tk.CreatedAt.Equal(written) || len(tk.Messages) != 1 {
		t.Fatalf("TicketByNumber(acme, 1) = %+v, %v; want the ticket created at %s with its message", tk, err, written)
	}

	// Times the new driver binds compare with the ones the old one wrote.
	ids, err := s.UnprocessedInbound(ctx, in.ProjectID, written.Add(time.Nanosecond), 10)
	if err != nil || len(ids) != 1 || ids[0] != 2 {
		t.Errorf("UnprocessedInbound(a nanosecond after the fetch) = %v, %v; want [2]", ids, err)
	}
	if ids, _ := s.UnprocessedInbound(ctx, in.ProjectID, written, 10); len(ids) != 0 {
		t.Errorf("UnprocessedInbound(at the fetch) = %v; want none", ids)
	}
	if _, ok, err := s.AcquireMailbox(ctx, in.ProjectID, "new-worker", time.Minute); err != nil || ok {
		t.Errorf("AcquireMailbox 30s into the old worker's minute = %v, %v; want still held", ok, err)
	}
	mu.Lock()
	now = written.Add(2 * time.Minute)
	mu.Unlock()
	if _, ok, err := s.AcquireMailbox(ctx, in.ProjectID, "new-worker", time.Minute); err != nil || !ok {
		t.Errorf("AcquireMailbox after the old lease ran out = %v, %v; want it taken", ok, err)
	}

	c, err := s.CommitDelivery(ctx, ticket.Delivery{InboundID: 2, ProjectID: in.ProjectID, Outcome: ticket.OutcomeTicketCreated,
		DedupKey: "mid:<two@customer.test>", DeskAddress: "support@acme.test", MailDomain: "acme.test",
		NewTicket: &ticket.Ticket{Subject: "Still waiting", Requester: "bob@customer.test"},
		Message:   &ticket.Message{From: "bob@customer.test", Subject: "Still waiting", Text: "Still waiting.", MessageID: "<two@customer.test>"},
		Notify:    []ticket.Notification{{Kind: ticket.NotifyThankYou, To: "bob@customer.test"}}})
	if err != nil || c.TicketNumber != 2 {
		t.Fatalf("CommitDelivery(inbound 2) = %+v, %v; want ticket acme#2", c, err)
	}
	two, err := s.Inbound(ctx, 2)
	if err != nil || !two.ProcessedAt.Equal(now) || !two.ReceivedAt.Equal(written) {
		t.Errorf("Inbound(2) = %+v, %v; want received at %s (old driver) and processed at %s (new)", two, err, written, now)
	}
}
