package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

type deadLetterView struct {
	Row        deadLetterRow `gorm:"embedded"`
	ProjectKey string
}

func (v deadLetterView) toTicket() ticket.DeadLetter {
	return ticket.DeadLetter{
		ID: v.Row.ID, Kind: ticket.DeadLetterKind(v.Row.Kind), Project: v.ProjectKey, InboundID: v.Row.InboundID,
		NotificationID: v.Row.NotificationID, MessageID: v.Row.MessageID, Address: v.Row.Address, Subject: v.Row.Subject,
		Reason: v.Row.Reason, CreatedAt: v.Row.CreatedAt,
	}
}

func deadLetterQuery(tx *gorm.DB) *gorm.DB {
	return tx.Table("dead_letters").Select(`dead_letters.*, COALESCE(projects."key", '') AS project_key`).
		Joins("LEFT JOIN projects ON projects.id = dead_letters.project_id")
}

// DeadLetters returns a page of open (unresolved) dead letters, newest
// first, and whether more pages follow.
func (s *Store) DeadLetters(ctx context.Context, p Page) ([]ticket.DeadLetter, bool, error) {
	p = p.Normalize()
	var rows []deadLetterView
	err := newestFirst(deadLetterQuery(s.db.WithContext(ctx)).Where("dead_letters.resolved_at IS NULL"),
		"dead_letters", "created_at", p).Find(&rows).Error
	if err != nil {
		return nil, false, fmt.Errorf("list dead letters: %w", err)
	}
	more := len(rows) > p.PerPage
	if more {
		rows = rows[:p.PerPage]
	}
	out := make([]ticket.DeadLetter, len(rows))
	for i, r := range rows {
		out[i] = r.toTicket()
	}
	return out, more, nil
}

// DeadLetter returns one dead letter, open or resolved, or ErrNotFound.
func (s *Store) DeadLetter(ctx context.Context, id int64) (ticket.DeadLetter, error) {
	var v deadLetterView
	if err := deadLetterQuery(s.db.WithContext(ctx)).Where("dead_letters.id = ?", id).Take(&v).Error; err != nil {
		return ticket.DeadLetter{}, fmt.Errorf("dead letter %d: %w", id, notFound(err))
	}
	return v.toTicket(), nil
}

// RetryDeadLetter resolves an open dead letter as retried and re-arms its
// work: an inbound message with its raw bytes goes back to outcome ” (the
// reason is kept until it is reprocessed); one that was never downloaded
// (rejected) is flagged for refetch; an outbound notification goes back to
// pending with no attempts. The caller enqueues the job. ErrNotFound when
// no such open letter exists.
func (s *Store) RetryDeadLetter(ctx context.Context, id int64) (ticket.DeadLetter, error) {
	var dl ticket.DeadLetter
	err := s.tx(ctx, func(tx *gorm.DB) error {
		var err error
		dl, err = s.resolveDeadLetter(tx, id, "retried")
		if err != nil {
			return err
		}
		switch dl.Kind {
		case ticket.DeadInbound:
			var in inboundRow
			if err := tx.Select("id", "raw_sha256").Where("id = ?", dl.InboundID).Take(&in).Error; err != nil {
				return fmt.Errorf("retry dead letter %d: read inbound %d: %w", id, dl.InboundID, notFound(err))
			}
			upd := map[string]any{"outcome": "", "processed_at": nil, "applied": false}
			if in.RawSHA256 == nil {
				upd["refetch"] = true
			}
			if err := tx.Model(&inboundRow{}).Where("id = ?", in.ID).Updates(upd).Error; err != nil {
				return fmt.Errorf("retry dead letter %d: re-arm inbound %d: %w", id, in.ID, err)
			}
		case ticket.DeadOutbound:
			res := tx.Model(&notificationRow{}).Where("id = ?", dl.NotificationID).Updates(map[string]any{
				"state": string(ticket.NotificationPending), "attempts": 0,
			})
			if res.Error != nil {
				return fmt.Errorf("retry dead letter %d: re-arm notification %d: %w", id, dl.NotificationID, res.Error)
			}
			if res.RowsAffected == 0 {
				return fmt.Errorf("retry dead letter %d: notification %d: %w", id, dl.NotificationID, ErrNotFound)
			}
		}
		return nil
	})
	if err != nil {
		return ticket.DeadLetter{}, err
	}
	return dl, nil
}

// DiscardDeadLetter resolves an open dead letter as discarded: the message
// or mail stays as it is. ErrNotFound when no such open letter exists.
func (s *Store) DiscardDeadLetter(ctx context.Context, id int64) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		_, err := s.resolveDeadLetter(tx, id, "discarded")
		return err
	})
}

func (s *Store) resolveDeadLetter(tx *gorm.DB, id int64, resolution string) (ticket.DeadLetter, error) {
	var v deadLetterView
	if err := deadLetterQuery(tx).Where("dead_letters.id = ? AND dead_letters.resolved_at IS NULL", id).Take(&v).Error; err != nil {
		return ticket.DeadLetter{}, fmt.Errorf("%s dead letter %d: %w", verbOf(resolution), id, notFound(err))
	}
	res := tx.Model(&deadLetterRow{}).Where("id = ? AND resolved_at IS NULL", id).
		Updates(map[string]any{"resolved_at": s.now().UTC(), "resolution": resolution})
	if res.Error != nil {
		return ticket.DeadLetter{}, fmt.Errorf("%s dead letter %d: %w", verbOf(resolution), id, res.Error)
	}
	if res.RowsAffected == 0 { // resolved concurrently
		return ticket.DeadLetter{}, fmt.Errorf("%s dead letter %d: %w", verbOf(resolution), id, ErrNotFound)
	}
	return v.toTicket(), nil
}

func verbOf(resolution string) string {
	if resolution == "retried" {
		return "retry"
	}
	return "discard"
}
