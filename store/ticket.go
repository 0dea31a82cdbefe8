package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// TicketFilter selects tickets; zero fields match all.
type TicketFilter struct {
	Project string        // project key
	Status  ticket.Status // "" = any
}

type ticketView struct {
	Row        ticketRow `gorm:"embedded"`
	ProjectKey string
}

func ticketQuery(tx *gorm.DB) *gorm.DB {
	return tx.Table("tickets").Select(`tickets.*, projects."key" AS project_key`).
		Joins("JOIN projects ON projects.id = tickets.project_id")
}

func (v ticketView) toTicket() ticket.Ticket {
	return ticket.Ticket{
		ID: v.Row.ID, ProjectID: v.Row.ProjectID, Project: v.ProjectKey, Number: v.Row.Number,
		Ref: ticket.FormatRef(v.ProjectKey, v.Row.Number), Subject: v.Row.Subject, Status: ticket.Status(v.Row.Status),
		Requester: v.Row.Requester, Participants: []string{}, CreatedAt: v.Row.CreatedAt, UpdatedAt: v.Row.UpdatedAt,
	}
}

// Tickets returns a page of tickets, newest first (created_at, then id,
// descending), with participants but without messages, and whether more
// pages follow.
func (s *Store) Tickets(ctx context.Context, f TicketFilter, p Page) ([]ticket.Ticket, bool, error) {
	p = p.Normalize()
	db := s.db.WithContext(ctx)
	q := ticketQuery(db)
	if f.Project != "" {
		q = q.Where(`projects."key" = ?`, f.Project)
	}
	if f.Status != "" {
		q = q.Where("tickets.status = ?", string(f.Status))
	}
	var rows []ticketView
	if err := newestFirst(q, "tickets", "created_at", p).Find(&rows).Error; err != nil {
		return nil, false, fmt.Errorf("list tickets: %w", err)
	}
	more := len(rows) > p.PerPage
	if more {
		rows = rows[:p.PerPage]
	}
	out := make([]ticket.Ticket, len(rows))
	ids := make([]int64, len(rows))
	byID := make(map[int64]int, len(rows))
	for i, r := range rows {
		out[i] = r.toTicket()
		ids[i] = r.Row.ID
		byID[r.Row.ID] = i
	}
	if len(ids) > 0 {
		var parts []participantRow
		if err := db.Where("ticket_id IN ?", ids).Order("id").Find(&parts).Error; err != nil {
			return nil, false, fmt.Errorf("list tickets: participants: %w", err)
		}
		for _, pr := range parts {
			i := byID[pr.TicketID]
			out[i].Participants = append(out[i].Participants, pr.Email)
		}
	}
	return out, more, nil
}

// TicketByID returns a ticket with its participants and messages (each with
// attachment metadata), or ErrNotFound.
func (s *Store) TicketByID(ctx context.Context, id int64) (ticket.Ticket, error) {
	return s.loadTicket(ctx, "tickets.id = ?", id)
}

// TicketByNumber returns a project's ticket by number, with participants and
// messages, or ErrNotFound.
func (s *Store) TicketByNumber(ctx context.Context, projectKey string, number int64) (ticket.Ticket, error) {
	return s.loadTicket(ctx, `projects."key" = ? AND tickets.number = ?`, projectKey, number)
}

func (s *Store) loadTicket(ctx context.Context, where string, args ...any) (ticket.Ticket, error) {
	return loadTicket(s.db.WithContext(ctx), where, args...)
}

// loadTicket reads a ticket with participants and messages through db (the
// store's connection or a transaction).
func loadTicket(db *gorm.DB, where string, args ...any) (ticket.Ticket, error) {
	var v ticketView
	if err := ticketQuery(db).Where(where, args...).Take(&v).Error; err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket: %w", notFound(err))
	}
	t := v.toTicket()
	if err := db.Model(&participantRow{}).Where("ticket_id = ?", t.ID).Order("id").Pluck("email", &t.Participants).Error; err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket %s: participants: %w", t.Ref, err)
	}
	unsubscribed, err := unsubscribedOf(db, t.ID)
	if err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket %s: %w", t.Ref, err)
	}
	t.Unsubscribed = unsubscribed
	var msgs []messageRow
	if err := db.Where("ticket_id = ?", t.ID).Order("created_at, id").Find(&msgs).Error; err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket %s: messages: %w", t.Ref, err)
	}
	if len(msgs) == 0 {
		return t, nil
	}
	ids := make([]int64, len(msgs))
	byID := make(map[int64]int, len(msgs))
	t.Messages = make([]ticket.Message, len(msgs))
	for i, m := range msgs {
		msg, err := m.toTicket()
		if err != nil {
			return ticket.Ticket{}, fmt.Errorf("ticket %s: message %d: %w", t.Ref, m.ID, err)
		}
		t.Messages[i] = msg
		ids[i] = m.ID
		byID[m.ID] = i
	}
	var atts []attachmentRow
	if err := db.Where("message_id IN ?", ids).Order("id").Find(&atts).Error; err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket %s: attachments: %w", t.Ref, err)
	}
	for _, a := range atts {
		i := byID[a.MessageID]
		t.Messages[i].Attachments = append(t.Messages[i].Attachments, a.toTicket())
	}
	if err := loadDeliveries(db, t.ID, t.Messages, byID); err != nil {
		return ticket.Ticket{}, fmt.Errorf("ticket %s: %w", t.Ref, err)
	}
	return t, nil
}

func (m messageRow) toTicket() (ticket.Message, error) {
	out := ticket.Message{
		ID: m.ID, TicketID: m.TicketID, InboundID: m.InboundID, Direction: ticket.Direction(m.Direction),
		Kind: ticket.Kind(m.Kind), From: m.FromAddr, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
		FullText:  m.FullText,
		MessageID: m.MessageID, InReplyTo: m.InReplyTo, References: strings.Fields(m.Refs),
		Internal: m.Internal, CreatedAt: m.CreatedAt, Attachments: []ticket.Attachment{},
	}
	if err := json.Unmarshal([]byte(m.ToAddrs), &out.To); err != nil {
		return ticket.Message{}, fmt.Errorf("decode To: %w", err)
	}
	if err := json.Unmarshal([]byte(m.CcAddrs), &out.Cc); err != nil {
		return ticket.Message{}, fmt.Errorf("decode Cc: %w", err)
	}
	return out, nil
}

func (a attachmentRow) toTicket() ticket.Attachment {
	return ticket.Attachment{
		ID: a.ID, Filename: a.Filename, ContentType: a.ContentType, Size: a.Size,
		SHA256: a.BlobSHA256, Inline: a.Inline, ContentID: a.ContentID,
	}
}

// Attachment returns an attachment of a project's ticket with its content,
// or ErrNotFound (also when the attachment belongs to another ticket).
func (s *Store) Attachment(ctx context.Context, projectKey string, number, attachmentID int64) (ticket.Attachment, []byte, error) {
	db := s.db.WithContext(ctx)
	var a attachmentRow
	err := db.Table("attachments").Select("attachments.*").
		Joins("JOIN messages ON messages.id = attachments.message_id").
		Joins("JOIN tickets ON tickets.id = messages.ticket_id").
		Joins("JOIN projects ON projects.id = tickets.project_id").
		Where(`attachments.id = ? AND tickets.number = ? AND projects."key" = ?`, attachmentID, number, projectKey).
		Take(&a).Error
	if err != nil {
		return ticket.Attachment{}, nil, fmt.Errorf("attachment %d of %s: %w", attachmentID, ticket.FormatRef(projectKey, number), notFound(err))
	}
	data, err := s.Blob(ctx, a.BlobSHA256)
	if err != nil {
		return ticket.Attachment{}, nil, fmt.Errorf("attachment %d content: %w", attachmentID, err)
	}
	return a.toTicket(), data, nil
}
