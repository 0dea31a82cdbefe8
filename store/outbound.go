package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// NotificationSuppressed is the state of a notification that was not sent on
// purpose (the recipient bounces, a per-recipient cap was reached); the
// reason is in LastError. Package ticket has no constant for it.
const NotificationSuppressed = ticket.NotificationState("suppressed")

// NoteInput is an agent's reply or internal note.
type NoteInput struct {
	// Author is the agent or API token name, shown as From of the message.
	Author     string
	Text, HTML string
	// Internal notes are never mailed; Recipients is ignored for them.
	Internal bool
	// Attachments have Data set; they are stored as content-addressed blobs
	// like inbound attachments.
	Attachments []ticket.Attachment
	// MailDomain is the domain of the notifications' Message-IDs, as in
	// ticket.Delivery. Defaults to the domain of the project address.
	MailDomain string
	// Recipients get one notification each (lower-cased, deduplicated). The
	// caller leaves out no-reply, bouncing and desk addresses.
	Recipients []string
}

// AddNote adds an outbound message of kind note to a project's ticket and,
// unless the note is internal, queues one notification of kind note about it
// per recipient, in one transaction. It bumps the ticket's updated_at but
// leaves its status alone. The message gets a Message-ID of its own
// ("<sd-note.{id base 36}.{8 hex}@{domain}>") that the mailer may put in
// References; each notification keeps its own MailID, and both thread a
// customer's reply back (ThreadMatches). It returns the stored
// message with attachment metadata and the IDs of the queued notifications,
// to enqueue. ErrNotFound for an unknown project or ticket.
func (s *Store) AddNote(ctx context.Context, projectKey string, number int64, in NoteInput) (ticket.Message, []int64, error) {
	ref := ticket.FormatRef(projectKey, number)
	if strings.TrimSpace(in.Text) == "" && strings.TrimSpace(in.HTML) == "" && len(in.Attachments) == 0 {
		return ticket.Message{}, nil, fmt.Errorf("add note to %s: note has no text, html or attachments", ref)
	}
	var (
		msg ticket.Message
		ids []int64
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ids = nil
		now := s.now().UTC()
		t, project, err := s.lockTicket(tx, projectKey, number)
		if err != nil {
			return err
		}
		domain := mailDomain(in.MailDomain, project.Address)
		var recipients []string
		if !in.Internal {
			recipients = normalizeAddresses(in.Recipients)
		}
		mid, err := randomHex(4)
		if err != nil {
			return err
		}
		m := ticket.Message{
			Direction: ticket.DirectionOutbound, Kind: ticket.KindNote, From: in.Author, To: recipients,
			Subject: t.Subject, Text: in.Text, HTML: in.HTML, Internal: in.Internal, CreatedAt: now,
			// Unique placeholder until the row has its ID (message_id is not
			// unique, but a fixed value would match other notes in lookups).
			MessageID: "<sd-note.pending." + mid + "@" + domain + ">", Attachments: in.Attachments,
		}
		msgID, err := insertMessage(tx, t.ID, m)
		if err != nil {
			return err
		}
		final := "<sd-note." + strconv.FormatInt(msgID, 36) + "." + mid + "@" + domain + ">"
		if err := tx.Model(&messageRow{}).Where("id = ?", msgID).Update("message_id", final).Error; err != nil {
			return fmt.Errorf("set message-id of note %d: %w", msgID, err)
		}
		if err := tx.Model(&ticketRow{}).Where("id = ?", t.ID).Update("updated_at", now).Error; err != nil {
			return fmt.Errorf("bump updated_at: %w", err)
		}
		for _, r := range recipients {
			id, err := queueNotification(tx, t.ProjectID, t.ID,
				ticket.Notification{Kind: ticket.NotifyNote, To: r, MessageID: msgID, OutboundID: msgID}, domain, now)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		msg, err = loadMessage(tx, msgID)
		return err
	})
	if err != nil {
		return ticket.Message{}, nil, fmt.Errorf("add note to %s: %w", ref, err)
	}
	return msg, ids, nil
}

// SetTicketStatus closes or reopens a project's ticket and, when the status
// changes, queues one notification of kind closed or reopened (MessageID 0)
// per recipient in the same transaction and bumps updated_at. A ticket
// already in that status is left as it is: no notifications, changed false.
// It returns the ticket with participants and messages. ErrNotFound for an
// unknown project or ticket.
func (s *Store) SetTicketStatus(ctx context.Context, projectKey string, number int64, status ticket.Status, recipients []string, mailDomainName string) (ticket.Ticket, []int64, bool, error) {
	ref := ticket.FormatRef(projectKey, number)
	var kind ticket.NotificationKind
	switch status {
	case ticket.StatusClosed:
		kind = ticket.NotifyClosed
	case ticket.StatusOpen:
		kind = ticket.NotifyReopened
	default:
		return ticket.Ticket{}, nil, false, fmt.Errorf("set status of %s: unknown status %q (want open or closed)", ref, status)
	}
	var (
		out     ticket.Ticket
		ids     []int64
		changed bool
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		ids, changed = nil, false
		now := s.now().UTC()
		t, project, err := s.lockTicket(tx, projectKey, number)
		if err != nil {
			return err
		}
		if t.Status != string(status) {
			changed = true
			err := tx.Model(&ticketRow{}).Where("id = ?", t.ID).
				Updates(map[string]any{"status": string(status), "updated_at": now}).Error
			if err != nil {
				return fmt.Errorf("update ticket %d: %w", t.ID, err)
			}
			domain := mailDomain(mailDomainName, project.Address)
			var notify []ticket.Notification
			for _, r := range normalizeAddresses(recipients) {
				notify = append(notify, ticket.Notification{Kind: kind, To: r})
			}
			if notify, err = recordOutbound(tx, t.ID, project.Address, t.Subject, notify, now); err != nil {
				return err
			}
			for _, n := range notify {
				id, err := queueNotification(tx, t.ProjectID, t.ID, n, domain, now)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
		}
		out, err = loadTicket(tx, "tickets.id = ?", t.ID)
		return err
	})
	if err != nil {
		return ticket.Ticket{}, nil, false, fmt.Errorf("set status of %s to %s: %w", ref, status, err)
	}
	return out, ids, changed, nil
}

// lockTicket reads (and on PostgreSQL locks) a project's ticket by number.
func (s *Store) lockTicket(tx *gorm.DB, projectKey string, number int64) (ticketRow, projectRow, error) {
	var p projectRow
	if err := tx.Where(`"key" = ?`, projectKey).Take(&p).Error; err != nil {
		return ticketRow{}, projectRow{}, fmt.Errorf("read project %q: %w", projectKey, notFound(err))
	}
	var t ticketRow
	if err := lockForUpdate(tx, s.dialect).Where("project_id = ? AND number = ?", p.ID, number).Take(&t).Error; err != nil {
		return ticketRow{}, projectRow{}, fmt.Errorf("read ticket: %w", notFound(err))
	}
	return t, p, nil
}

// mailDomain is domain, else the domain of the desk address.
func mailDomain(domain, deskAddress string) string {
	if domain != "" {
		return domain
	}
	_, d, _ := strings.Cut(deskAddress, "@")
	return d
}

// normalizeAddresses lower-cases, trims and deduplicates addresses, keeping
// their order and dropping empty ones.
func normalizeAddresses(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		a = strings.ToLower(strings.TrimSpace(a))
		if a != "" && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// MarkBouncing records that mail to email on the ticket bounced (a delivery
// status notification, RFC 3464, for our outbound mail): the address counts
// as bouncing until until (exclusive). A later call replaces the time, so a
// past until clears the mark. ErrNotFound for an unknown ticket.
func (s *Store) MarkBouncing(ctx context.Context, ticketID int64, email string, until time.Time) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return fmt.Errorf("mark bouncing on ticket %d: empty address", ticketID)
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var t ticketRow
		if err := tx.Select("id").Where("id = ?", ticketID).Take(&t).Error; err != nil {
			return fmt.Errorf("read ticket: %w", notFound(err))
		}
		return markBouncing(tx, ticketID, email, until)
	})
	if err != nil {
		return fmt.Errorf("mark %s bouncing on ticket %d: %w", email, ticketID, err)
	}
	return nil
}

// BouncingRecipients returns the lower-cased addresses of the ticket that
// are bouncing at at, sorted. An unknown ticket has none.
func (s *Store) BouncingRecipients(ctx context.Context, ticketID int64, at time.Time) ([]string, error) {
	var out []string
	err := s.db.WithContext(ctx).Model(&bounceRow{}).
		Where("ticket_id = ? AND until_ms > ?", ticketID, at.UnixMilli()).
		Order("email").Pluck("email", &out).Error
	if err != nil {
		return nil, fmt.Errorf("list bouncing recipients of ticket %d: %w", ticketID, err)
	}
	return out, nil
}

// CountNotifications counts the notifications of the given kinds (every
// kind when kinds is empty) created for recipient (case-insensitive) in the
// project at or after since, across all its tickets, in any state but
// failed (pending, sent and suppressed count), and queued before before
// (every one when it is zero): the input to per-recipient caps on
// automatic mail.
func (s *Store) CountNotifications(ctx context.Context, projectID int64, recipient string, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error) {
	q := s.db.WithContext(ctx).Model(&notificationRow{}).
		Where("project_id = ? AND LOWER(recipient) = ? AND created_at >= ? AND state <> ?",
			projectID, strings.ToLower(strings.TrimSpace(recipient)), since.UTC(), string(ticket.NotificationFailed))
	q = queuedBefore(q, before)
	n, err := countOfKinds(q, kinds)
	if err != nil {
		return 0, fmt.Errorf("count notifications to %s in project %d: %w", recipient, projectID, err)
	}
	return n, nil
}

// CountProjectMail counts the notifications of the given kinds (every kind
// when kinds is empty) that the project queued at or after since and that
// went out or may still go out (pending and sent; suppressed and failed ones
// are not mail anyone received), queued before before (every one when it
// is zero): the input to the project's ceiling on automatic mail.
func (s *Store) CountProjectMail(ctx context.Context, projectID int64, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error) {
	q := s.db.WithContext(ctx).Model(&notificationRow{}).
		Where("project_id = ? AND created_at >= ? AND state IN ?", projectID, since.UTC(),
			[]string{string(ticket.NotificationPending), string(ticket.NotificationSent)})
	q = queuedBefore(q, before)
	n, err := countOfKinds(q, kinds)
	if err != nil {
		return 0, fmt.Errorf("count mail of project %d: %w", projectID, err)
	}
	return n, nil
}

// queuedBefore keeps of q the notifications queued before n: created
// earlier, or at the same time with a smaller ID (a group of deliveries
// commits its notifications with one timestamp, so time alone cannot order
// them). The zero n keeps everything.
func queuedBefore(q *gorm.DB, n ticket.Notification) *gorm.DB {
	switch {
	case n.CreatedAt.IsZero():
		return q
	case n.ID == 0:
		return q.Where("created_at < ?", n.CreatedAt.UTC())
	}
	at := n.CreatedAt.UTC()
	return q.Where("(created_at < ? OR (created_at = ? AND id < ?))", at, at, n.ID)
}

// countOfKinds counts the notifications q selects of the given kinds
// (every kind when kinds is empty).
func countOfKinds(q *gorm.DB, kinds []ticket.NotificationKind) (int, error) {
	if len(kinds) > 0 {
		ks := make([]string, len(kinds))
		for i, k := range kinds {
			ks[i] = string(k)
		}
		q = q.Where("kind IN ?", ks)
	}
	var n int64
	err := q.Count(&n).Error
	return int(n), err
}

// SuppressNotification marks a pending notification as not sent on purpose:
// state NotificationSuppressed, reason in LastError. Suppressing it again is
// a no-op that keeps the first reason; a notification already sent or failed
// is an error. ErrNotFound for an unknown one.
func (s *Store) SuppressNotification(ctx context.Context, id int64, reason string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var n notificationRow
		if err := lockForUpdate(tx, s.dialect).Select("id", "state").Where("id = ?", id).Take(&n).Error; err != nil {
			return fmt.Errorf("suppress notification %d: %w", id, notFound(err))
		}
		switch n.State {
		case string(NotificationSuppressed):
			return nil
		case string(ticket.NotificationPending):
		default:
			return fmt.Errorf("suppress notification %d: it is %s, not pending", id, n.State)
		}
		err := tx.Model(&notificationRow{}).Where("id = ?", id).
			Updates(map[string]any{"state": string(NotificationSuppressed), "last_error": reason}).Error
		if err != nil {
			return fmt.Errorf("suppress notification %d: %w", id, err)
		}
		return nil
	})
}

// MessageByID returns one ticket message with its attachments' metadata, or
// ErrNotFound.
func (s *Store) MessageByID(ctx context.Context, id int64) (ticket.Message, error) {
	m, err := loadMessage(s.db.WithContext(ctx), id)
	if err != nil {
		return ticket.Message{}, fmt.Errorf("message %d: %w", id, err)
	}
	return m, nil
}

func loadMessage(db *gorm.DB, id int64) (ticket.Message, error) {
	var row messageRow
	if err := db.Where("id = ?", id).Take(&row).Error; err != nil {
		return ticket.Message{}, fmt.Errorf("read message %d: %w", id, notFound(err))
	}
	m, err := row.toTicket()
	if err != nil {
		return ticket.Message{}, fmt.Errorf("read message %d: %w", id, err)
	}
	var atts []attachmentRow
	if err := db.Where("message_id = ?", id).Order("id").Find(&atts).Error; err != nil {
		return ticket.Message{}, fmt.Errorf("read attachments of message %d: %w", id, err)
	}
	for _, a := range atts {
		m.Attachments = append(m.Attachments, a.toTicket())
	}
	return m, nil
}

// AttachmentData returns the content of an attachment by its SHA-256 hex
// (the blob), or ErrNotFound.
func (s *Store) AttachmentData(ctx context.Context, sha256hex string) ([]byte, error) {
	data, err := s.Blob(ctx, sha256hex)
	if err != nil {
		return nil, fmt.Errorf("attachment data: %w", err)
	}
	return data, nil
}
