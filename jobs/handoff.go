package jobs

import (
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"sync"

	"github.com/servicedesk/servicedesk/ticket"
)

// Handoff passes mail that a fetch has just stored to the process jobs of
// the same process, so that they do not read it back from the database.
// Process tasks still carry only the ledger ID, and a task that runs in
// another process, or after the entry is gone, reads the database as
// before: a hand-off is only ever a shortcut. An entry is taken once (a
// retried task reads the database) and the oldest are dropped beyond
// maxBytes of raw mail.
type Handoff struct {
	mu         sync.Mutex
	maxBytes   int
	maxMessage int
	bytes      int
	byID       map[int64]*list.Element
	order      *list.List // of *handoffEntry, oldest first
}

type handoffEntry struct {
	in  ticket.Inbound
	raw []byte
}

// NewHandoff returns a Handoff that holds at most maxBytes of raw mail, in
// messages of at most maxMessage bytes (larger ones are left to the
// database: pass the size up to which the process jobs take a message
// with its ledger row, ingest.InlineReadSize).
func NewHandoff(maxBytes, maxMessage int) *Handoff {
	return &Handoff{maxBytes: maxBytes, maxMessage: min(maxMessage, maxBytes), byID: map[int64]*list.Element{}, order: list.New()}
}

// put hands over the message just stored as ledger row in (no outcome).
func (h *Handoff) put(in ticket.Inbound, raw []byte) {
	if h == nil || len(raw) > h.maxMessage {
		return
	}
	sum := sha256.Sum256(raw)
	in.RawSHA256 = hex.EncodeToString(sum[:])
	in.Size = int64(len(raw))
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.byID[in.ID]; ok {
		h.remove(old)
	}
	h.byID[in.ID] = h.order.PushBack(&handoffEntry{in: in, raw: raw})
	h.bytes += len(raw)
	for h.bytes > h.maxBytes {
		h.remove(h.order.Front())
	}
}

// Take returns and forgets ledger row id and its raw message, if a fetch
// of this process handed it over and it is still held.
func (h *Handoff) Take(id int64) (ticket.Inbound, []byte, bool) {
	if h == nil {
		return ticket.Inbound{}, nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	el, ok := h.byID[id]
	if !ok {
		return ticket.Inbound{}, nil, false
	}
	e := h.remove(el)
	return e.in, e.raw, true
}

func (h *Handoff) remove(el *list.Element) *handoffEntry {
	e := h.order.Remove(el).(*handoffEntry)
	delete(h.byID, e.in.ID)
	h.bytes -= len(e.raw)
	return e
}
