package jobs

import (
	"bytes"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestHandoff(t *testing.T) {
	raw := func(n int) []byte { return bytes.Repeat([]byte("x"), n) }
	h := NewHandoff(1000, 100)
	h.put(ticket.Inbound{ID: 1, ProjectID: 7, Project: "acme", UID: 11}, raw(100))

	in, got, ok := h.Take(1)
	if !ok || in.ID != 1 || in.ProjectID != 7 || in.Project != "acme" || in.UID != 11 || len(got) != 100 ||
		in.Size != 100 || len(in.RawSHA256) != 64 || in.Outcome != ticket.OutcomeNone {
		t.Fatalf("Take(1) = %+v, %d bytes, %v; want the row with its size and raw hash, and the 100 bytes", in, len(got), ok)
	}
	if _, _, ok := h.Take(1); ok {
		t.Error("second Take(1) found it again; want it taken once (a retried task reads the database)")
	}

	for id := int64(10); id < 20; id++ { // 10 x 100 bytes fill it
		h.put(ticket.Inbound{ID: id}, raw(100))
	}
	h.put(ticket.Inbound{ID: 20}, raw(100))
	if _, _, ok := h.Take(10); ok {
		t.Error("Take(10) found the oldest entry; want it dropped when the 11th came beyond 1000 bytes")
	}
	if _, _, ok := h.Take(20); !ok {
		t.Error("Take(20) found nothing; want the newest entry held")
	}
	h.put(ticket.Inbound{ID: 30}, raw(101))
	if _, _, ok := h.Take(30); ok {
		t.Error("Take(30) found a message above the per-message limit; want such messages left to the database")
	}

	var none *Handoff
	none.put(ticket.Inbound{ID: 1}, raw(1))
	if _, _, ok := none.Take(1); ok {
		t.Error("a nil Handoff handed something over")
	}
}
