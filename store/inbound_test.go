package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestRecordFetched(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		raw := []byte("From: alice@customer.test\r\nSubject: hi\r\n\r\nhello\r\n")
		in := ticket.Inbound{ProjectID: p.ID, UIDValidity: 7, UID: 1, MessageID: "<m1@customer.test>", From: "alice@customer.test", Subject: "hi"}

		id, created, err := e.s.RecordFetched(ctx, in, raw)
		if err != nil || !created || id == 0 {
			t.Fatalf("first RecordFetched = %d, %v, %v; want a new id", id, created, err)
		}
		t.Run("second call returns the same row", func(t *testing.T) {
			again, created, err := e.s.RecordFetched(ctx, in, raw)
			if err != nil || created || again != id {
				t.Fatalf("second RecordFetched = %d, %v, %v; want %d, false, nil", again, created, err, id)
			}
			if n := countRows(t, e.s, "inbound"); n != 1 {
				t.Fatalf("inbound has %d rows, want 1", n)
			}
		})
		t.Run("row and blob are readable", func(t *testing.T) {
			got, err := e.s.Inbound(ctx, id)
			if err != nil {
				t.Fatalf("Inbound(%d): %v", id, err)
			}
			sum := sha256.Sum256(raw)
			if got.Project != "acme" || got.UID != 1 || got.UIDValidity != 7 || got.Outcome != ticket.OutcomeNone ||
				got.RawSHA256 != hex.EncodeToString(sum[:]) || got.Size != int64(len(raw)) || got.ReceivedAt.IsZero() {
				t.Fatalf("Inbound(%d) = %+v, want project acme, uid 7/1, no outcome, raw hash and size", id, got)
			}
			data, err := e.s.Blob(ctx, got.RawSHA256)
			if err != nil || string(data) != string(raw) {
				t.Fatalf("Blob(%s) = %q, %v; want the raw message", got.RawSHA256, data, err)
			}
			_, err = e.s.Blob(ctx, "00")
			wantErr(t, "Blob(unknown)", err, ErrNotFound)
			_, err = e.s.Inbound(ctx, id+1000)
			wantErr(t, "Inbound(unknown)", err, ErrNotFound)
		})
		t.Run("a process job reads row and raw message at once", func(t *testing.T) {
			got, data, err := e.s.InboundMessage(ctx, id, int64(len(raw)))
			if err != nil || got.ID != id || got.Project != "acme" || string(data) != string(raw) {
				t.Fatalf("InboundMessage(%d, size limit) = %+v, %q, %v; want the row and its raw message", id, got, data, err)
			}
			got, data, err = e.s.InboundMessage(ctx, id, int64(len(raw))-1)
			if err != nil || got.ID != id || data != nil {
				t.Fatalf("InboundMessage(%d, limit below its size) = %+v, %q, %v; want the row and no raw message", id, got, data, err)
			}
			_, _, err = e.s.InboundMessage(ctx, id+1000, 1<<20)
			wantErr(t, "InboundMessage(unknown)", err, ErrNotFound)
		})
		t.Run("same bytes under another UID share the blob", func(t *testing.T) {
			in2 := in
			in2.UID = 2
			if _, created, err := e.s.RecordFetched(ctx, in2, raw); err != nil || !created {
				t.Fatalf("RecordFetched(uid 2) = %v, %v; want a new row", created, err)
			}
			if n := countRows(t, e.s, "blobs"); n != 1 {
				t.Fatalf("blobs has %d rows, want 1 (content-addressed)", n)
			}
			ids, err := e.s.UnprocessedInbound(ctx, p.ID, farFuture, 10)
			if err != nil || len(ids) != 2 || ids[0] != id {
				t.Fatalf("UnprocessedInbound = %v, %v; want two ids, %d first", ids, err, id)
			}
		})
		t.Run("only rows fetched before the cut-off are swept", func(t *testing.T) {
			fetched, err := e.s.Inbound(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if ids, _ := e.s.UnprocessedInbound(ctx, p.ID, fetched.ReceivedAt.Add(-time.Minute), 10); len(ids) != 0 {
				t.Fatalf("UnprocessedInbound(a minute before the fetch) = %v; want none", ids)
			}
			if ids, _ := e.s.UnprocessedInbound(ctx, p.ID, fetched.ReceivedAt.Add(time.Minute), 10); len(ids) != 2 {
				t.Fatalf("UnprocessedInbound(a minute after the fetch) = %v; want both rows", ids)
			}
		})
		t.Run("rejected without raw opens a dead letter", func(t *testing.T) {
			rej := ticket.Inbound{ProjectID: p.ID, UIDValidity: 7, UID: 3, Size: 99 << 20, Outcome: ticket.OutcomeRejected,
				Reason: "message too large: 99 MiB > 25 MiB", MessageID: "<big@customer.test>", From: "carol@customer.test", Subject: "huge"}
			rid, created, err := e.s.RecordFetched(ctx, rej, nil)
			if err != nil || !created {
				t.Fatalf("RecordFetched(rejected) = %v, %v; want a new row", created, err)
			}
			got, err := e.s.Inbound(ctx, rid)
			if err != nil || got.Outcome != ticket.OutcomeRejected || got.Reason != rej.Reason || got.RawSHA256 != "" {
				t.Fatalf("Inbound(rejected) = %+v, %v; want outcome rejected with the reason and no raw", got, err)
			}
			dls, _, err := e.s.DeadLetters(ctx, Page{})
			if err != nil || len(dls) != 1 {
				t.Fatalf("DeadLetters = %+v, %v; want one letter", dls, err)
			}
			want := ticket.DeadLetter{ID: dls[0].ID, Kind: ticket.DeadInbound, Project: "acme", InboundID: rid,
				MessageID: "<big@customer.test>", Address: "carol@customer.test", Subject: "huge", Reason: rej.Reason, CreatedAt: dls[0].CreatedAt}
			if dls[0] != want {
				t.Fatalf("dead letter = %+v, want %+v", dls[0], want)
			}
			ids, _ := e.s.UnprocessedInbound(ctx, p.ID, farFuture, 10)
			if slices.Contains(ids, rid) {
				t.Fatalf("UnprocessedInbound = %v includes the rejected row %d", ids, rid)
			}
			if _, _, err := e.s.RecordFetched(ctx, rej, nil); err != nil {
				t.Fatalf("RecordFetched(rejected) again: %v", err)
			}
			if n := countRows(t, e.s, "dead_letters"); n != 1 {
				t.Fatalf("dead_letters has %d rows after re-recording, want 1", n)
			}
		})
		t.Run("raw nil is refused unless rejected", func(t *testing.T) {
			in4 := in
			in4.UID = 4
			if _, _, err := e.s.RecordFetched(ctx, in4, nil); err == nil {
				t.Fatal("RecordFetched(raw nil, no outcome) succeeded, want an error")
			}
		})
	})
}

func TestUnappliedAndMarkApplied(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		done := mustFetch(t, e.s, p.ID, 1, "a@x")
		mustCommit(t, e.s, newTicketDelivery(p, done, "<a@x>"))
		pending := mustFetch(t, e.s, p.ID, 2, "b@x")
		failed := mustFetch(t, e.s, p.ID, 3, "c@x")
		if err := e.s.FailInbound(ctx, failed, "parse: broken"); err != nil {
			t.Fatalf("FailInbound: %v", err)
		}
		got, err := e.s.UnappliedInbound(ctx, p.ID, 7, 10)
		if err != nil || len(got) != 1 || got[0].ID != done || got[0].TicketNumber != 1 {
			t.Fatalf("UnappliedInbound = %+v, %v; want only the committed row %d (not pending %d, not failed %d)", got, err, done, pending, failed)
		}
		if other, _ := e.s.UnappliedInbound(ctx, p.ID, 8, 10); len(other) != 0 {
			t.Fatalf("UnappliedInbound(other UIDVALIDITY) = %+v, want none", other)
		}
		if err := e.s.MarkApplied(ctx, []int64{done}); err != nil {
			t.Fatalf("MarkApplied: %v", err)
		}
		if got, _ := e.s.UnappliedInbound(ctx, p.ID, 7, 10); len(got) != 0 {
			t.Fatalf("UnappliedInbound after MarkApplied = %+v, want none", got)
		}
	})
}

func TestListInboundPages(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		ps := mustProjects(t, e.s, "acme", "beta")
		var ids []int64
		for i := range 5 {
			ids = append(ids, mustFetch(t, e.s, ps[0].ID, uint32(i+1), fmt.Sprintf("m%d@x", i)))
		}
		mustFetch(t, e.s, ps[1].ID, 1, "other@x")
		mustCommit(t, e.s, newTicketDelivery(ps[0], ids[0], "<m0@x>"))

		tests := []struct {
			name     string
			filter   InboundFilter
			page     Page
			wantIDs  []int64
			wantMore bool
		}{
			{"first page newest first", InboundFilter{Project: "acme"}, Page{Page: 1, PerPage: 2}, []int64{ids[4], ids[3]}, true},
			{"middle page", InboundFilter{Project: "acme"}, Page{Page: 2, PerPage: 2}, []int64{ids[2], ids[1]}, true},
			{"last page", InboundFilter{Project: "acme"}, Page{Page: 3, PerPage: 2}, []int64{ids[0]}, false},
			{"by outcome", InboundFilter{Outcome: ticket.OutcomeTicketCreated}, Page{}, []int64{ids[0]}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, more, err := e.s.ListInbound(ctx, tt.filter, tt.page)
				if err != nil {
					t.Fatalf("ListInbound: %v", err)
				}
				var gotIDs []int64
				for _, in := range got {
					gotIDs = append(gotIDs, in.ID)
				}
				if !slices.Equal(gotIDs, tt.wantIDs) || more != tt.wantMore {
					t.Fatalf("ListInbound(%+v, %+v) = %v, more %v; want %v, more %v", tt.filter, tt.page, gotIDs, more, tt.wantIDs, tt.wantMore)
				}
			})
		}
		all, more, err := e.s.ListInbound(ctx, InboundFilter{}, Page{})
		if err != nil || len(all) != 6 || more {
			t.Fatalf("ListInbound(all) = %d rows, more %v, %v; want 6 and no more", len(all), more, err)
		}
	})
}

// farFuture makes UnprocessedInbound consider every row, however fresh.
var farFuture = time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)

func TestRecordFetchedBatch(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		same := []byte("Subject: same bytes twice\r\n\r\nhello\r\n")
		batch := []Fetched{
			{UID: 10, Raw: []byte("Subject: ten\r\n\r\nten\r\n")},
			{UID: 11, Raw: same},
			{UID: 12, Raw: same},
		}
		ids, err := e.s.RecordFetchedBatch(ctx, p.ID, 7, batch)
		if err != nil || len(ids) != 3 {
			t.Fatalf("RecordFetchedBatch = %v, %v; want 3 ids", ids, err)
		}
		for i, id := range ids {
			in, err := e.s.Inbound(ctx, id)
			if err != nil {
				t.Fatalf("Inbound(%d): %v", id, err)
			}
			raw, err := e.s.Blob(ctx, in.RawSHA256)
			if in.UID != batch[i].UID || in.UIDValidity != 7 || in.Outcome != ticket.OutcomeNone ||
				in.Size != int64(len(batch[i].Raw)) || in.ReceivedAt.IsZero() || err != nil || string(raw) != string(batch[i].Raw) {
				t.Fatalf("message %d: Inbound(%d) = %+v, raw %q, %v; want UID %d with its raw bytes", i, id, in, raw, err, batch[i].UID)
			}
		}
		if n := countRows(t, e.s, "blobs"); n != 2 {
			t.Errorf("blobs has %d rows; want 2 (identical bytes stored once)", n)
		}

		t.Run("a batch downloaded again keeps the rows it already has", func(t *testing.T) {
			again, err := e.s.RecordFetchedBatch(ctx, p.ID, 7, []Fetched{batch[2], {UID: 13, Raw: []byte("Subject: new\r\n\r\n")}})
			if err != nil || len(again) != 2 || again[0] != ids[2] || again[1] == 0 || slices.Contains(ids, again[1]) {
				t.Fatalf("RecordFetchedBatch(12, 13) = %v, %v; want [%d, a new id]", again, err, ids[2])
			}
			if n := countRows(t, e.s, "inbound"); n != 4 {
				t.Errorf("inbound has %d rows; want 4", n)
			}
		})
		t.Run("a message without bytes is refused", func(t *testing.T) {
			if _, err := e.s.RecordFetchedBatch(ctx, p.ID, 7, []Fetched{{UID: 20}}); err == nil {
				t.Fatal("RecordFetchedBatch(no raw) succeeded; want an error")
			}
			if n := countRows(t, e.s, "inbound"); n != 4 {
				t.Errorf("inbound has %d rows after a refused batch; want 4", n)
			}
		})
	})
}
