package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// Every address in the fake data; a guest must see none of them in full.
var knownAddresses = []string{
	"support@example.test", "alice@customer.test", "carol@partner.test",
	"dave@customer.test", "bounce-owner@customer.test", "r.eve@mail.partner.test",
}

// fakeBackend is an in-memory Backend; err, when set, fails every call.
type fakeBackend struct {
	mu          sync.Mutex
	projects    []ticket.Project
	tickets     []ticket.Ticket // by project, newest first
	attachments map[int64][]byte
	inbound     []ticket.Inbound
	dead        []ticket.DeadLetter
	err         error
	pingErr     error

	lastTickets TicketQuery
	lastInbound InboundQuery
	lastPage    Page
	retried     []int64
	discarded   []int64
	notes       []noteCall
	statusCalls int
}

// noteCall is one AddNote the backend received.
type noteCall struct {
	project string
	number  int64
	note    NoteRequest
}

func newFakeBackend() *fakeBackend {
	at := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	f := &fakeBackend{
		projects: []ticket.Project{
			{ID: 1, Key: "acme", Name: "Acme Support", Address: "support@example.test"},
			{ID: 2, Key: "empty", Name: "Nothing Here", Address: "empty@example.test"},
		},
		attachments: map[int64][]byte{3: []byte("%PDF-1.4 fake"), 4: []byte("name,mail\nalice,alice@customer.test\n")},
	}
	// Ticket 1 has everything; ticket 2 has nil slices everywhere; 3 no messages.
	f.tickets = []ticket.Ticket{
		{
			ID: 13, Project: "acme", Number: 3, Ref: "acme#3", Subject: "Quiet one", Status: ticket.StatusClosed,
			Requester: "dave@customer.test", CreatedAt: at.Add(2 * time.Hour), UpdatedAt: at.Add(2 * time.Hour),
		},
		{
			ID: 12, Project: "acme", Number: 2, Ref: "acme#2", Subject: "Nil slices", Status: ticket.StatusOpen,
			Requester: "dave@customer.test", CreatedAt: at.Add(time.Hour), UpdatedAt: at.Add(time.Hour),
			Messages: []ticket.Message{{ID: 5, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
				From: "dave@customer.test", Subject: "Nil slices", Text: "hello", MessageID: "<d1@customer.test>", CreatedAt: at}},
		},
		{
			ID: 11, Project: "acme", Number: 1, Ref: "acme#1", Subject: "Printer on fire (alice@customer.test)",
			Status: ticket.StatusOpen, Requester: "alice@customer.test",
			Participants: []string{"carol@partner.test", "r.eve@mail.partner.test"},
			CreatedAt:    at, UpdatedAt: at.Add(time.Minute),
			Messages: []ticket.Message{
				{
					ID: 1, Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
					From: "Alice <alice@customer.test>", To: []string{"support@example.test"}, Cc: []string{"carol@partner.test"},
					Subject: "Printer on fire", Text: "Hi,\nplease also write to \"r.eve@mail.partner.test\".\n-- alice@customer.test",
					HTML:      `<p>Hi, <a href="mailto:alice@customer.test">me</a></p>`,
					MessageID: "<abc123@customer.test>", CreatedAt: at,
					Attachments: []ticket.Attachment{
						{ID: 3, Filename: "report.pdf", ContentType: "application/pdf", Size: 13, SHA256: "aa"},
						{ID: 4, Filename: "Übersicht alice@customer.test.csv", ContentType: "text/csv; charset=utf-8", Size: 36, SHA256: "bb"},
					},
				},
				{
					ID: 2, Direction: ticket.DirectionOutbound, Kind: ticket.KindThankYou,
					From: "support@example.test", To: []string{"alice@customer.test"}, Subject: "[acme#1] Printer on fire",
					Text: "We got it.", MessageID: "<t1@example.test>", CreatedAt: at.Add(time.Minute),
				},
			},
		},
	}
	f.inbound = []ticket.Inbound{
		{ID: 2, Project: "acme", UIDValidity: 7, UID: 2, MessageID: "<b1@customer.test>", From: "bounce-owner@customer.test",
			Subject: "Undelivered", ReceivedAt: at, Outcome: ticket.OutcomeBounce, Reason: "delivery to dave@customer.test failed"},
		{ID: 1, Project: "acme", UIDValidity: 7, UID: 1, MessageID: "<abc123@customer.test>", From: "alice@customer.test",
			Subject: "Printer on fire", ReceivedAt: at, Outcome: ticket.OutcomeTicketCreated, TicketNumber: 1},
	}
	f.dead = []ticket.DeadLetter{
		{ID: 9, Kind: ticket.DeadOutbound, Project: "acme", NotificationID: 4, MessageID: "<n4@example.test>",
			Address: "carol@partner.test", Subject: "[acme#1] Printer on fire", Reason: "550 5.1.1 <carol@partner.test>: no such user", CreatedAt: at},
	}
	return f
}

func (f *fakeBackend) Ping(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

func (f *fakeBackend) Projects(context.Context) ([]ticket.Project, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return append([]ticket.Project(nil), f.projects...), nil
}

// pageOfSlice cuts page p out of n items.
func pageOfSlice(n int, p Page) (start, end int, more bool) {
	start = min((max(p.Page, 1)-1)*p.PerPage, n)
	end = min(start+p.PerPage, n)
	return start, end, end < n
}

func (f *fakeBackend) Tickets(_ context.Context, q TicketQuery) ([]ticket.Ticket, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastTickets = q
	if f.err != nil {
		return nil, false, f.err
	}
	var match []ticket.Ticket
	for _, t := range f.tickets {
		if t.Project == q.Project && (q.Status == "" || t.Status == q.Status) {
			t.Messages = nil // lists carry no messages
			match = append(match, t)
		}
	}
	s, e, more := pageOfSlice(len(match), q.Page)
	return match[s:e], more, nil
}

func (f *fakeBackend) Ticket(_ context.Context, project string, number int64) (ticket.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return ticket.Ticket{}, f.err
	}
	for _, t := range f.tickets {
		if t.Project == project && t.Number == number {
			return t, nil
		}
	}
	return ticket.Ticket{}, fmt.Errorf("ticket %s#%d: %w", project, number, ErrNotFound)
}

func (f *fakeBackend) Attachment(_ context.Context, project string, number, id int64) (ticket.Attachment, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return ticket.Attachment{}, nil, f.err
	}
	for _, t := range f.tickets {
		if t.Project != project || t.Number != number {
			continue
		}
		for _, m := range t.Messages {
			for _, a := range m.Attachments {
				if a.ID == id {
					return a, f.attachments[id], nil
				}
			}
		}
	}
	return ticket.Attachment{}, nil, ErrNotFound
}

func (f *fakeBackend) Inbound(_ context.Context, q InboundQuery) ([]ticket.Inbound, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastInbound = q
	if f.err != nil {
		return nil, false, f.err
	}
	var match []ticket.Inbound
	for _, in := range f.inbound {
		if in.Project == q.Project && (q.Outcome == "" || in.Outcome == q.Outcome) {
			match = append(match, in)
		}
	}
	s, e, more := pageOfSlice(len(match), q.Page)
	return match[s:e], more, nil
}

func (f *fakeBackend) DeadLetters(_ context.Context, p Page) ([]ticket.DeadLetter, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastPage = p
	if f.err != nil {
		return nil, false, f.err
	}
	s, e, more := pageOfSlice(len(f.dead), p)
	return f.dead[s:e], more, nil
}

func (f *fakeBackend) deadLetter(id int64, into *[]int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	for _, d := range f.dead {
		if d.ID == id {
			*into = append(*into, id)
			return nil
		}
	}
	return fmt.Errorf("dead letter %d: %w", id, ErrNotFound)
}

func (f *fakeBackend) RetryDeadLetter(_ context.Context, id int64) error {
	return f.deadLetter(id, &f.retried)
}

func (f *fakeBackend) DiscardDeadLetter(_ context.Context, id int64) error {
	return f.deadLetter(id, &f.discarded)
}

func (f *fakeBackend) AddNote(_ context.Context, project string, number int64, n NoteRequest) (ticket.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notes = append(f.notes, noteCall{project, number, n})
	if f.err != nil {
		return ticket.Message{}, f.err
	}
	for i := range f.tickets {
		t := &f.tickets[i]
		if t.Project != project || t.Number != number {
			continue
		}
		m := ticket.Message{
			ID: 100 + int64(len(f.notes)), Direction: ticket.DirectionOutbound, Kind: ticket.KindNote,
			From: "support@example.test", Subject: "[" + t.Ref + "] " + t.Subject, Text: n.Text,
			MessageID: "<note@example.test>", Internal: n.Internal,
			CreatedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC),
		}
		if !n.Internal {
			m.To = append([]string{t.Requester}, t.Participants...)
		}
		for j, a := range n.Attachments {
			a.ID = 200 + int64(j)
			a.Data = nil
			m.Attachments = append(m.Attachments, a)
		}
		t.Messages = append(t.Messages, m)
		return m, nil
	}
	return ticket.Message{}, fmt.Errorf("ticket %s#%d: %w", project, number, ErrNotFound)
}

func (f *fakeBackend) SetStatus(_ context.Context, project string, number int64, status ticket.Status) (ticket.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.statusCalls++
	if f.err != nil {
		return ticket.Ticket{}, f.err
	}
	for i := range f.tickets {
		if t := &f.tickets[i]; t.Project == project && t.Number == number {
			t.Status = status
			return *t, nil
		}
	}
	return ticket.Ticket{}, fmt.Errorf("ticket %s#%d: %w", project, number, ErrNotFound)
}

var errDatabaseDown = errors.New("dial tcp 10.0.0.5:5432: connect: connection refused (password=hunter2)")

var _ Backend = (*fakeBackend)(nil)
