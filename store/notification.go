package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

type notificationView struct {
	Row        notificationRow `gorm:"embedded"`
	ProjectKey string
}

func (v notificationView) toTicket() ticket.Notification {
	return ticket.Notification{
		ID: v.Row.ID, ProjectID: v.Row.ProjectID, Project: v.ProjectKey, TicketID: v.Row.TicketID, MessageID: v.Row.MessageID,
		OutboundID: v.Row.OutboundID,
		Kind:       ticket.NotificationKind(v.Row.Kind), To: v.Row.Recipient, MailID: v.Row.MailID,
		State: ticket.NotificationState(v.Row.State), Attempts: v.Row.Attempts, LastError: v.Row.LastError,
		SentAt: fromNullTime(v.Row.SentAt), CreatedAt: v.Row.CreatedAt,
	}
}

// Notification returns one outbound mail, or ErrNotFound.
func (s *Store) Notification(ctx context.Context, id int64) (ticket.Notification, error) {
	var v notificationView
	err := s.db.WithContext(ctx).Table("notifications").Select(`notifications.*, projects."key" AS project_key`).
		Joins("JOIN projects ON projects.id = notifications.project_id").
		Where("notifications.id = ?", id).Take(&v).Error
	if err != nil {
		return ticket.Notification{}, fmt.Errorf("notification %d: %w", id, notFound(err))
	}
	return v.toTicket(), nil
}

// MarkNotificationSent records that the mail was accepted by the SMTP server
// at at.
func (s *Store) MarkNotificationSent(ctx context.Context, id int64, at time.Time) error {
	return s.updateNotification(ctx, id, "mark sent", map[string]any{
		"state": string(ticket.NotificationSent), "sent_at": at.UTC(), "last_error": "",
	})
}

// RecordNotificationAttempt counts a failed delivery attempt and keeps its
// error text; the notification stays pending.
func (s *Store) RecordNotificationAttempt(ctx context.Context, id int64, errText string) error {
	return s.updateNotification(ctx, id, "record attempt", map[string]any{
		"attempts": gorm.Expr("attempts + 1"), "last_error": errText,
	})
}

func (s *Store) updateNotification(ctx context.Context, id int64, step string, upd map[string]any) error {
	res := s.db.WithContext(ctx).Model(&notificationRow{}).Where("id = ?", id).Updates(upd)
	if res.Error != nil {
		return fmt.Errorf("notification %d: %s: %w", id, step, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("notification %d: %s: %w", id, step, ErrNotFound)
	}
	return nil
}

// FailNotification records that the mail failed for good: state failed,
// reason as last error, and an open outbound dead letter (no second one
// while one is open).
func (s *Store) FailNotification(ctx context.Context, id int64, reason string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var n notificationRow
		if err := lockForUpdate(tx, s.dialect).Where("id = ?", id).Take(&n).Error; err != nil {
			return fmt.Errorf("fail notification %d: %w", id, notFound(err))
		}
		err := tx.Model(&notificationRow{}).Where("id = ?", id).Updates(map[string]any{
			"state": string(ticket.NotificationFailed), "last_error": reason,
		}).Error
		if err != nil {
			return fmt.Errorf("fail notification %d: %w", id, err)
		}
		var t ticketRow
		if err := tx.Select("subject").Where("id = ?", n.TicketID).Take(&t).Error; err != nil {
			return fmt.Errorf("fail notification %d: read ticket: %w", id, notFound(err))
		}
		err = addDeadLetter(tx, deadLetterRow{
			Kind: string(ticket.DeadOutbound), ProjectID: n.ProjectID, NotificationID: n.ID,
			MessageID: n.MailID, Address: n.Recipient, Subject: t.Subject, Reason: reason,
		})
		if err != nil {
			return fmt.Errorf("fail notification %d: %w", id, err)
		}
		return nil
	})
}

// PendingNotifications returns the IDs of pending notifications created
// before createdBefore, oldest first: the sweeper re-enqueues them when a
// job was lost.
func (s *Store) PendingNotifications(ctx context.Context, createdBefore time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&notificationRow{}).
		Where("state = ? AND created_at < ?", string(ticket.NotificationPending), createdBefore.UTC()).
		Order("id").Limit(limitOr(limit)).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("list pending notifications: %w", err)
	}
	return ids, nil
}
