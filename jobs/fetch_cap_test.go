package jobs

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// lyingMailbox announces every message at 100 bytes and sends bodies of
// the sizes it was given (as a mailbox.Client capped at the limit would:
// the limit and one byte). Flag changes are refused: nothing may touch
// mail that was not stored.
type lyingMailbox struct {
	bodies map[uint32][]byte
}

func (m *lyingMailbox) Select(context.Context, string) (mailbox.Status, error) {
	return mailbox.Status{UIDValidity: 7}, nil
}

func (m *lyingMailbox) List(_ context.Context, after uint32, limit int) ([]mailbox.Entry, error) {
	var out []mailbox.Entry
	for uid := after + 1; uid <= uint32(len(m.bodies)) && len(out) < limit; uid++ {
		out = append(out, mailbox.Entry{UID: uid, Size: 100})
	}
	return out, nil
}

func (m *lyingMailbox) Fetch(_ context.Context, uids []uint32, fn func(uint32, []byte) error) error {
	for _, uid := range uids {
		if err := fn(uid, m.bodies[uid]); err != nil {
			return err
		}
	}
	return nil
}

func (m *lyingMailbox) MarkSeen(context.Context, []uint32) error {
	panic("MarkSeen of mail that was never stored")
}
func (m *lyingMailbox) Move(context.Context, []uint32, string) error {
	panic("Move of mail that was never stored")
}
func (m *lyingMailbox) Delete(context.Context, []uint32) error {
	panic("Delete of mail that was never stored")
}
func (m *lyingMailbox) Close() error { return nil }

// A server that announces a small RFC822.SIZE and sends more than
// limits.max_message_size gets the same answer as an honest large message:
// a rejected ledger row with the reason, the raw bytes not stored, the
// mail left in the mailbox, and the cursor past it.
func TestFetchRefusesMailLargerThanAnnounced(t *testing.T) {
	ctx := t.Context()
	st, err := store.Open(ctx, "sqlite://"+t.TempDir()+"/desk.db", nil)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	ps, err := st.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme", Address: "support@acme.test"}})
	if err != nil {
		t.Fatalf("sync projects: %v", err)
	}
	const limit = 1000
	mb := &lyingMailbox{bodies: map[uint32][]byte{1: bytes.Repeat([]byte("x"), limit+1)}}
	dial := func(context.Context, config.Project) (Mailbox, error) { return mb, nil }
	f := NewFetcher(st, dial, nil, nil, limit, nil, discard())
	d := Desk{ID: ps[0].ID, Config: config.Project{Key: "acme", IMAP: config.IMAP{Folder: "INBOX", BatchSize: 10}}}

	if _, err := f.Run(ctx, d); err != nil {
		t.Fatalf("fetch run: %v", err)
	}
	rows, _, err := st.ListInbound(ctx, store.InboundFilter{Project: "acme"}, store.Page{})
	if err != nil {
		t.Fatalf("list inbound: %v", err)
	}
	if len(rows) != 1 {
		t.Fatalf("ledger has %d rows, want the one refused message", len(rows))
	}
	r := rows[0]
	if r.UID != 1 || r.Outcome != ticket.OutcomeRejected || r.RawSHA256 != "" ||
		!strings.Contains(r.Reason, "announced 100 bytes but sent more than limits.max_message_size (1000 bytes)") {
		t.Fatalf("ledger row = %+v; want UID 1 rejected, no raw bytes, the reason naming both sizes", r)
	}
	// A second run neither downloads it again nor touches it.
	if _, err := f.Run(ctx, d); err != nil {
		t.Fatalf("second fetch run: %v", err)
	}
	if rows, _, _ := st.ListInbound(ctx, store.InboundFilter{Project: "acme"}, store.Page{}); len(rows) != 1 {
		t.Fatalf("ledger has %d rows after a second run, want still 1", len(rows))
	}
}
