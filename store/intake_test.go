package store

import (
	"context"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/ticket"
)

// intakeBundle is a store with two desks and the intake mailbox's project
// row, and the real processor routing the intake's rows.
type intakeBundle struct {
	e      *env
	acme   ticket.Project
	beta   ticket.Project
	intake ticket.Project
	proc   *ingest.Processor
	uid    uint32
}

func setupIntake(t *testing.T, e *env) *intakeBundle {
	t.Helper()
	ps := mustProjects(t, e.s, "acme", "beta")
	in, err := e.s.SyncProjects(t.Context(), []ticket.Project{{Key: ticket.IntakeKey, Name: "intake", Address: "incoming@intake.test"}})
	if err != nil {
		t.Fatalf("sync the intake's project row: %v", err)
	}
	keys, _ := ticket.NewReplyKeys([]byte("0123456789abcdef-store-intake"))
	desks := []ingest.Project{
		{ID: ps[0].ID, Key: "acme", Address: ps[0].Address},
		{ID: ps[1].ID, Key: "beta", Address: ps[1].Address, Aliases: []string{"billing@beta.test"}},
	}
	proc := ingest.NewProcessor(e.s, keys, desks, &ingest.Options{
		Intake: &ingest.Intake{ID: in[0].ID, Address: in[0].Address},
	})
	return &intakeBundle{e: e, acme: ps[0], beta: ps[1], intake: in[0], proc: proc}
}

// fetch records raw as fetched from the mailbox of project p (UIDVALIDITY
// 7, the next UID) and processes it.
func (b *intakeBundle) fetch(t *testing.T, p ticket.Project, raw string) (int64, ticket.Committed) {
	t.Helper()
	b.uid++
	ids, err := b.e.s.RecordFetchedBatch(t.Context(), p.ID, 7, []Fetched{{UID: b.uid, Raw: []byte(strings.ReplaceAll(raw, "\n", "\r\n"))}})
	if err != nil {
		t.Fatalf("RecordFetchedBatch: %v", err)
	}
	c, err := b.proc.Process(t.Context(), ids[0])
	if err != nil {
		t.Fatalf("Process(inbound %d): %v", ids[0], err)
	}
	return ids[0], c
}

func ledgerOf(t *testing.T, s *Store, key string) []ticket.Inbound {
	t.Helper()
	rows, _, err := s.ListInbound(t.Context(), InboundFilter{Project: key}, Page{Page: 1, PerPage: 100})
	if err != nil {
		t.Fatalf("ListInbound(%s): %v", key, err)
	}
	return rows
}

func unapplied(t *testing.T, s *Store, projectID int64) []int64 {
	t.Helper()
	rows, err := s.UnappliedInbound(t.Context(), projectID, 7, 100)
	if err != nil {
		t.Fatalf("UnappliedInbound: %v", err)
	}
	var ids []int64
	for _, r := range rows {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestIntakeRouting(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		b := setupIntake(t, e)

		t.Run("a routed row names its desk in the ledger and stays the intake mailbox's for after_processing", func(t *testing.T) {
			id, c := b.fetch(t, b.intake, "From: alice@customer.test\nTo: team@customer.test\nX-Forwarded-To: billing@beta.test\n"+
				"Message-ID: <routed-1@customer.test>\nSubject: Invoice\n\nWrong amount.\n")
			if c.Outcome != ticket.OutcomeTicketCreated || c.Project != "beta" {
				t.Fatalf("Process = %s on %q; want ticket_created on beta", c.Outcome, c.Project)
			}
			in, err := e.s.Inbound(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if in.Project != "beta" || in.ProjectID != b.intake.ID {
				t.Fatalf("ledger row shows project %q of mailbox %d; want beta, fetched from the intake (%d)", in.Project, in.ProjectID, b.intake.ID)
			}
			if !strings.Contains(in.Reason, "routed from the intake by X-Forwarded-To: billing@beta.test") {
				t.Fatalf("reason %q does not say how it was routed", in.Reason)
			}
			if got := ledgerOf(t, e.s, "beta"); len(got) != 1 || got[0].ID != id {
				t.Fatalf("beta's ledger = %+v; want the routed row", got)
			}
			if got := ledgerOf(t, e.s, ticket.IntakeKey); len(got) != 0 {
				t.Fatalf("the intake's ledger = %+v; want nothing once routed", got)
			}
			tk, err := e.s.TicketByID(t.Context(), c.TicketID)
			if err != nil || tk.ProjectID != b.beta.ID {
				t.Fatalf("ticket %d of project %d (%v); want beta's", c.TicketID, tk.ProjectID, err)
			}
			if got := unapplied(t, e.s, b.intake.ID); len(got) != 1 || got[0] != id {
				t.Fatalf("unapplied rows of the intake mailbox = %v; want [%d]: the intake fetcher flags it", got, id)
			}
			if got := unapplied(t, e.s, b.beta.ID); len(got) != 0 {
				t.Fatalf("unapplied rows of beta's mailbox = %v; want none: beta's own mailbox never had it", got)
			}
		})

		t.Run("the same mail through the intake and the desk's own mailbox is one ticket", func(t *testing.T) {
			raw := "From: bob@customer.test\nTo: support@acme.test\nMessage-ID: <twice@customer.test>\nSubject: Twice\n\nx\n"
			_, first := b.fetch(t, b.acme, raw)
			_, second := b.fetch(t, b.intake, raw)
			if first.Outcome != ticket.OutcomeTicketCreated || second.Outcome != ticket.OutcomeDuplicate || second.TicketID != first.TicketID {
				t.Fatalf("outcomes %s, %s (tickets %d, %d); want ticket_created then a duplicate of it", first.Outcome, second.Outcome, first.TicketID, second.TicketID)
			}
		})

		t.Run("an unroutable row is a dead letter of the intake, left in its mailbox, answered by nobody", func(t *testing.T) {
			before := countRows(t, e.s, "notifications")
			id, c := b.fetch(t, b.intake, "From: carol@customer.test\nTo: typo@acme.test\nMessage-ID: <lost@customer.test>\nSubject: Lost\n\nx\n")
			if c.Outcome != ticket.OutcomeUnroutable {
				t.Fatalf("outcome %s; want unroutable", c.Outcome)
			}
			if n := countRows(t, e.s, "notifications"); n != before {
				t.Fatalf("%d notifications queued; want none", n-before)
			}
			for _, got := range unapplied(t, e.s, b.intake.ID) {
				if got == id {
					t.Fatalf("the unroutable row is due for after_processing; want it left in the mailbox")
				}
			}
			rows := ledgerOf(t, e.s, ticket.IntakeKey)
			if len(rows) != 1 || rows[0].ID != id || rows[0].Outcome != ticket.OutcomeUnroutable || rows[0].MessageID != "<lost@customer.test>" {
				t.Fatalf("the intake's ledger = %+v; want the unroutable row with its Message-ID", rows)
			}
			dls, _, err := e.s.DeadLetters(t.Context(), Page{Page: 1, PerPage: 50})
			if err != nil {
				t.Fatal(err)
			}
			var dl *ticket.DeadLetter
			for i := range dls {
				if dls[i].InboundID == id {
					dl = &dls[i]
				}
			}
			if dl == nil || dl.Project != ticket.IntakeKey || !strings.Contains(dl.Reason, "typo@acme.test (To)") || dl.Address != "carol@customer.test" {
				t.Fatalf("dead letter = %+v; want one of the intake naming the addresses it carried", dl)
			}
		})

		t.Run("the intake is no project of the lists", func(t *testing.T) {
			ps, err := e.s.Projects(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range ps {
				if p.Key == ticket.IntakeKey {
					t.Fatalf("Projects() lists the intake's row: %+v", ps)
				}
			}
		})

		t.Run("a delivery is moved to another desk only when routed from the intake", func(t *testing.T) {
			ownID := mustFetch(t, e.s, b.acme.ID, 900, "own-row")
			d := newTicketDelivery(b.beta, ownID, "<own-row@x>")
			if _, err := e.s.CommitDelivery(t.Context(), d); err == nil {
				t.Fatal("a delivery for beta of acme's own row was committed; want refused")
			}
			d.Routed = true
			if _, err := e.s.CommitDelivery(t.Context(), d); err == nil || !strings.Contains(err.Error(), "not the intake's") {
				t.Fatalf("a routed delivery of acme's own row: err %v; want refused, it is no intake row", err)
			}
		})
	})
}

func TestMigrateInboundDeskFillsExistingRows(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		p := mustProjects(t, e.s, "acme")[0]
		id := mustFetch(t, e.s, p.ID, 1, "old-row")
		db := e.s.db.WithContext(context.Background())
		if err := db.Exec("UPDATE inbound SET desk_id = 0").Error; err != nil {
			t.Fatal(err)
		}
		if got := ledgerOf(t, e.s, "acme"); len(got) != 0 {
			t.Fatalf("setup: a row without desk_id is listed by desk: %+v", got)
		}
		if err := migrateInboundDesk(db); err != nil {
			t.Fatalf("migration 12 again: %v", err)
		}
		if got := ledgerOf(t, e.s, "acme"); len(got) != 1 || got[0].ID != id {
			t.Fatalf("acme's ledger after migration 12 = %+v; want its row", got)
		}
	})
}
