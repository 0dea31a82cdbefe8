package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// Ways an address unsubscribed, kept in unsubscribes.via.
const (
	UnsubscribedViaLink   = "link"   // the https link (RFC 8058 one-click or the page's button)
	UnsubscribedViaMailto = "mailto" // a mail to the ticket's unsubscribe address
)

// migrateUnsubscribes adds the unsubscribes table: an address that asked
// for no more mail on a ticket, when (Unix milliseconds) and how. Plain SQL
// that SQLite and PostgreSQL both accept; IF NOT EXISTS keeps it
// idempotent.
func migrateUnsubscribes(tx *gorm.DB) error {
	return tx.Exec(`CREATE TABLE IF NOT EXISTS unsubscribes (
		ticket_id BIGINT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
		email TEXT NOT NULL,
		via TEXT NOT NULL,
		created_ms BIGINT NOT NULL,
		PRIMARY KEY (ticket_id, email)
	)`).Error
}

// reasonUnsubscribed is the reason a notification to an unsubscribed
// address is suppressed with.
const reasonUnsubscribed = "unsubscribed: the recipient asked for no more mail on this ticket"

// Unsubscribe records that email wants no more mail on a project's ticket
// and suppresses the notifications to it there that are still pending;
// notifications queued later are suppressed as they are queued. Doing it
// again changes nothing. ErrNotFound for an unknown project or ticket.
func (s *Store) Unsubscribe(ctx context.Context, projectKey string, number int64, email, via string) error {
	ref := ticket.FormatRef(projectKey, number)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		t, _, err := s.lockTicket(tx, projectKey, number)
		if err != nil {
			return err
		}
		return unsubscribe(tx, t.ID, email, via, s.now().UnixMilli())
	})
	if err != nil {
		return fmt.Errorf("unsubscribe from %s: %w", ref, err)
	}
	return nil
}

func unsubscribe(tx *gorm.DB, ticketID int64, email, via string, nowMS int64) error {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return errors.New("empty address")
	}
	err := tx.Exec(`INSERT INTO unsubscribes (ticket_id, email, via, created_ms) VALUES (?, ?, ?, ?)
		ON CONFLICT (ticket_id, email) DO NOTHING`, ticketID, email, via, nowMS).Error
	if err != nil {
		return fmt.Errorf("insert unsubscribe: %w", err)
	}
	err = tx.Model(&notificationRow{}).
		Where("ticket_id = ? AND LOWER(recipient) = ? AND state = ?", ticketID, email, string(ticket.NotificationPending)).
		Updates(map[string]any{"state": string(NotificationSuppressed), "last_error": reasonUnsubscribed}).Error
	if err != nil {
		return fmt.Errorf("suppress pending notifications: %w", err)
	}
	return nil
}

// isUnsubscribed reports whether email unsubscribed from the ticket.
func isUnsubscribed(tx *gorm.DB, ticketID int64, email string) (bool, error) {
	var n int64
	err := tx.Raw(`SELECT COUNT(*) FROM unsubscribes WHERE ticket_id = ? AND email = ?`,
		ticketID, strings.ToLower(strings.TrimSpace(email))).Scan(&n).Error
	if err != nil {
		return false, fmt.Errorf("read unsubscribes: %w", err)
	}
	return n > 0, nil
}

// unsubscribedOf lists the addresses unsubscribed from the ticket, sorted.
func unsubscribedOf(db *gorm.DB, ticketID int64) ([]string, error) {
	var out []string
	if err := db.Raw(`SELECT email FROM unsubscribes WHERE ticket_id = ? ORDER BY email`, ticketID).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("read unsubscribes: %w", err)
	}
	return out, nil
}

// commitUnsubscribe commits a delivery with OutcomeUnsubscribed: the
// address unsubscribes from the ticket and the ledger row gets the
// outcome, the ticket and the reason; no message is added.
func commitUnsubscribe(tx *gorm.DB, d ticket.Delivery, nowMS int64, finish func(ticket.Outcome, int64, string) error) (ticket.Committed, error) {
	if d.TicketID == 0 || d.Unsubscribe == "" {
		return ticket.Committed{}, errors.New("unsubscribed without TicketID or address")
	}
	var t ticketRow
	if err := tx.Select("id", "number").Where("id = ? AND project_id = ?", d.TicketID, d.ProjectID).Take(&t).Error; err != nil {
		return ticket.Committed{}, fmt.Errorf("read ticket %d: %w", d.TicketID, notFound(err))
	}
	if err := unsubscribe(tx, t.ID, d.Unsubscribe, UnsubscribedViaMailto, nowMS); err != nil {
		return ticket.Committed{}, fmt.Errorf("unsubscribe %s from ticket %d: %w", d.Unsubscribe, t.ID, err)
	}
	if err := finish(ticket.OutcomeUnsubscribed, t.ID, d.Reason); err != nil {
		return ticket.Committed{}, err
	}
	return ticket.Committed{Outcome: ticket.OutcomeUnsubscribed, TicketID: t.ID, TicketNumber: t.Number}, nil
}
