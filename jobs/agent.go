package jobs

import (
	"context"
	"fmt"
	"strings"

	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// AgentStore is what an agent's actions need of the store.
type AgentStore interface {
	TicketByNumber(ctx context.Context, projectKey string, number int64) (ticket.Ticket, error)
	AddNote(ctx context.Context, projectKey string, number int64, in store.NoteInput) (ticket.Message, []int64, error)
	SetTicketStatus(ctx context.Context, projectKey string, number int64, status ticket.Status, recipients []string, mailDomain string) (ticket.Ticket, []int64, bool, error)
}

// Agent carries out what an agent does to a ticket, from the CLI or the
// API alike: a note mailed to every participant but its author, close and
// reopen with their notifications. Mail is queued in the same transaction
// as the change and enqueued after the commit (the outbox sweep catches an
// enqueue that fails).
type Agent struct {
	store   AgentStore
	enqueue *Enqueuer
	desks   map[string]Desk
}

// NewAgent wires the agent actions.
func NewAgent(st AgentStore, enq *Enqueuer, desks []Desk) *Agent {
	a := &Agent{store: st, enqueue: enq, desks: map[string]Desk{}}
	for _, d := range desks {
		a.desks[d.Config.Key] = d
	}
	return a
}

// Note is an agent's reply or internal note.
type Note struct {
	Author      string // token or user name; an address here is left out of the recipients
	Text        string
	Internal    bool // recorded, never mailed
	Attachments []ticket.Attachment
}

// AddNote adds the note and queues its mail.
func (a *Agent) AddNote(ctx context.Context, project string, number int64, n Note) (ticket.Message, error) {
	d, err := a.desk(project)
	if err != nil {
		return ticket.Message{}, err
	}
	var rcpts []string
	if !n.Internal {
		t, err := a.store.TicketByNumber(ctx, project, number)
		if err != nil {
			return ticket.Message{}, err
		}
		rcpts = recipients(t, d, n.Author)
	}
	msg, ids, err := a.store.AddNote(ctx, project, number, store.NoteInput{Author: n.Author, Text: n.Text,
		Internal: n.Internal, Attachments: n.Attachments, MailDomain: mailDomain(d), Recipients: rcpts})
	if err != nil {
		return ticket.Message{}, err
	}
	return msg, a.enqueueAll(ctx, ids)
}

// SetStatus closes or reopens a ticket; a change mails the participants.
func (a *Agent) SetStatus(ctx context.Context, project string, number int64, status ticket.Status) (ticket.Ticket, error) {
	d, err := a.desk(project)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t, err := a.store.TicketByNumber(ctx, project, number)
	if err != nil {
		return ticket.Ticket{}, err
	}
	t, ids, _, err := a.store.SetTicketStatus(ctx, project, number, status, recipients(t, d, ""), mailDomain(d))
	if err != nil {
		return ticket.Ticket{}, err
	}
	return t, a.enqueueAll(ctx, ids)
}

func (a *Agent) desk(project string) (Desk, error) {
	d, ok := a.desks[project]
	if !ok {
		return Desk{}, fmt.Errorf("project %q: %w", project, store.ErrNotFound)
	}
	return d, nil
}

func (a *Agent) enqueueAll(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		if _, err := a.enqueue.Send(ctx, id); err != nil {
			return fmt.Errorf("committed, but %w (the outbox sweep retries within a minute)", err)
		}
	}
	return nil
}

// recipients are the ticket's participants (the requester among them) but
// the author and the desk itself. The notifier drops no-reply, bouncing
// and over-cap recipients at send time.
func recipients(t ticket.Ticket, d Desk, author string) []string {
	var out []string
	seen := map[string]bool{strings.ToLower(d.Config.Address): true, strings.ToLower(author): true}
	for _, p := range append([]string{t.Requester}, t.Participants...) {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" || seen[p] {
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out
}

func mailDomain(d Desk) string {
	_, domain, _ := strings.Cut(d.Config.Address, "@")
	return domain
}
