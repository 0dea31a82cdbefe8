package store

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// BenchmarkIngestPath is the store's share of ingesting one message, as the
// fetch and process jobs call it: record the fetched raw message, load it
// back, look for a thread, commit a new ticket with its thank-you, and
// read the ledger row. One op is one message; 8 goroutines run at once
// (the worker's default concurrency), on each backend.
//
//	go test -run '^$' -bench IngestPath ./store
func BenchmarkIngestPath(b *testing.B) {
	for _, backend := range backends {
		b.Run(backend, func(b *testing.B) {
			e := setup(b, backend)
			p := mustProjects(b, e.s, "acme")[0]
			var uid atomic.Uint32
			b.SetParallelism(4) // x GOMAXPROCS (2 here) = 8
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := ingestOne(b, e.s, p, uid.Add(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

var (
	benchRaw  = []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do.\r\n", 260)) // ~17 KB
	benchText = strings.Repeat("Since this morning none of us can log in to the customer portal. ", 30)
)

func ingestOne(b *testing.B, s *Store, p ticket.Project, uid uint32) error {
	ctx := b.Context()
	raw := append([]byte(fmt.Sprintf("Message-ID: <%d@bench>\r\n", uid)), benchRaw...)
	id, _, err := s.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 1, UID: uid, Size: int64(len(raw))}, raw)
	if err != nil {
		return err
	}
	in, err := s.Inbound(ctx, id)
	if err != nil {
		return err
	}
	if _, err := s.Blob(ctx, in.RawSHA256); err != nil {
		return err
	}
	mid := fmt.Sprintf("<%d@bench>", uid)
	from := fmt.Sprintf("customer.%d@example.test", uid)
	d := ticket.Delivery{
		InboundID: id, ProjectID: p.ID, Outcome: ticket.OutcomeTicketCreated, DedupKey: "mid:" + mid,
		NewTicket: &ticket.Ticket{Subject: "Cannot log in", Requester: from},
		Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, From: from,
			To: []string{p.Address}, Subject: "Cannot log in", Text: benchText, HTML: "<p>" + benchText + "</p>", MessageID: mid},
		Participants: []string{from},
		Notify:       []ticket.Notification{{Kind: ticket.NotifyThankYou, To: from}},
		MailDomain:   "acme.test",
	}
	if _, err := s.CommitDelivery(ctx, d); err != nil {
		return err
	}
	_, err = s.Inbound(ctx, id)
	return err
}
