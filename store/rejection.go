package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// The sender of a mail rejected for its size is answered once (GitLab's
// EmailTooLarge). The ledger row carries the answer: answer_state goes
// from "" to queued (ClaimRejectionAnswer, a conditional UPDATE: one
// scheduler of many wins), then to sent, suppressed or failed, with the
// reason and the Message-ID fixed at the claim.

// RejectionsToAnswer returns ledger rows rejected before download whose
// sender is known and not yet answered (nor decided not to be), oldest
// first, at most limit.
func (s *Store) RejectionsToAnswer(ctx context.Context, limit int) ([]ticket.Inbound, error) {
	var rows []inboundView
	err := inboundQuery(s.db.WithContext(ctx)).
		Where("inbound.outcome = ? AND inbound.answer_state = '' AND inbound.from_addr <> ''", string(ticket.OutcomeRejected)).
		Order("inbound.id").Limit(limitOr(limit)).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list rejected mail to answer: %w", err)
	}
	return viewsToTicket(rows), nil
}

// ClaimRejectionAnswer queues the answer to rejected row id, with our
// Message-ID mailID, if no one has yet: claimed is false when another
// scheduler did, or the row is no rejection waiting for an answer.
func (s *Store) ClaimRejectionAnswer(ctx context.Context, id int64, mailID string) (claimed bool, err error) {
	res := s.db.WithContext(ctx).Model(&inboundRow{}).
		Where("id = ? AND outcome = ? AND answer_state = ''", id, string(ticket.OutcomeRejected)).
		Updates(map[string]any{"answer_state": ticket.DeliveryQueued, "answer_mail_id": mailID, "answer_queued_at": s.now().UTC()})
	if res.Error != nil {
		return false, fmt.Errorf("claim the answer to rejected inbound %d: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// SettleRejectionAnswer records what became of the answer to rejected row
// id: sent, suppressed (never mailed, with the reason) or failed (with the
// reason). Only an answer not yet settled changes: a row already sent,
// suppressed or failed keeps its state, so a late retry cannot undo it.
func (s *Store) SettleRejectionAnswer(ctx context.Context, id int64, state, reason string) error {
	switch state {
	case ticket.DeliverySent, ticket.DeliverySuppressed, ticket.DeliveryFailed:
	default:
		return fmt.Errorf("settle the answer to rejected inbound %d: state %q (want sent, suppressed or failed)", id, state)
	}
	err := s.db.WithContext(ctx).Model(&inboundRow{}).
		Where("id = ? AND outcome = ? AND answer_state IN ?", id, string(ticket.OutcomeRejected), []string{"", ticket.DeliveryQueued}).
		Updates(map[string]any{"answer_state": state, "answer_reason": reason}).Error
	if err != nil {
		return fmt.Errorf("settle the answer to rejected inbound %d as %s: %w", id, state, err)
	}
	return nil
}

// QueuedRejectionAnswers returns the rows whose answer was queued before
// before and is still not settled, oldest first: the scheduler queues them
// again when a task was lost.
func (s *Store) QueuedRejectionAnswers(ctx context.Context, before time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&inboundRow{}).
		Where("outcome = ? AND answer_state = ? AND answer_queued_at < ?", string(ticket.OutcomeRejected), ticket.DeliveryQueued, before.UTC()).
		Order("id").Limit(limitOr(limit)).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("list queued answers to rejected mail: %w", err)
	}
	return ids, nil
}

// CountRejectionAnswers counts the answers to rejected mail of the project
// queued at or after since that went out or may still go out (queued,
// sent), to recipient (case-insensitive) or, when recipient is "", to
// anyone, of rows before row before (by ID, the order the sweep claims
// them in; 0: every row): the rejections' share of the caps.
func (s *Store) CountRejectionAnswers(ctx context.Context, projectID int64, recipient string, since time.Time, before int64) (int, error) {
	q := s.db.WithContext(ctx).Model(&inboundRow{}).
		Where("project_id = ? AND outcome = ? AND answer_state IN ? AND answer_queued_at >= ?",
			projectID, string(ticket.OutcomeRejected), []string{ticket.DeliveryQueued, ticket.DeliverySent}, since.UTC())
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	if recipient != "" {
		q = q.Where("LOWER(from_addr) = ?", strings.ToLower(strings.TrimSpace(recipient)))
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count answers to rejected mail of project %d: %w", projectID, err)
	}
	return int(n), nil
}
