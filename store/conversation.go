package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/servicedesk/servicedesk/ticket"
)

// Outbound mail is part of its ticket: every event that mails someone (a
// thank-you, a status notice, a relayed reply, an agent's notice) writes
// one outbound message of the notification's kind, To its recipients, in
// the transaction that queues the notifications, and each notification
// names it (notifications.outbound_id). An agent's note is already that
// message. The message's delivery is read from its notifications, so the
// send job keeps it current by updating them; its text is the mail as
// first rendered (RecordOutboundText).

// outboundRecords groups notifications of one event by kind into the
// outbound messages that record them, sent From the desk: recs, and of[i]
// the index in recs of ns[i], -1 for a notification that already names
// its record (a note's).
func outboundRecords(desk, subject string, ns []ticket.Notification, now time.Time) (recs []ticket.Message, of []int) {
	of = make([]int, len(ns))
	byKind := map[ticket.NotificationKind]int{}
	for i, n := range ns {
		if n.OutboundID != 0 {
			of[i] = -1
			continue
		}
		j, ok := byKind[n.Kind]
		if !ok {
			j = len(recs)
			byKind[n.Kind] = j
			recs = append(recs, ticket.Message{
				Direction: ticket.DirectionOutbound, Kind: ticket.Kind(n.Kind), From: strings.ToLower(desk),
				To: []string{}, Subject: subject, CreatedAt: now,
				// An agent's notice is about the desk's work, not the
				// customer's conversation: guests never see it.
				Internal: n.Kind == ticket.NotifyAgent,
			})
		}
		if to := strings.ToLower(strings.TrimSpace(n.To)); !slices.Contains(recs[j].To, to) {
			recs[j].To = append(recs[j].To, to)
		}
		of[i] = j
	}
	return recs, of
}

// recordOutbound writes the outbound messages that record notifications ns
// of ticket ticketID (outboundRecords) and returns ns naming them.
func recordOutbound(tx *gorm.DB, ticketID int64, desk, subject string, ns []ticket.Notification, now time.Time) ([]ticket.Notification, error) {
	recs, of := outboundRecords(desk, subject, ns, now)
	ids := make([]int64, len(recs))
	for j, m := range recs {
		id, err := insertMessage(tx, ticketID, m)
		if err != nil {
			return nil, fmt.Errorf("record outbound %s mail: %w", m.Kind, err)
		}
		ids[j] = id
	}
	out := slices.Clone(ns)
	for i := range out {
		if of[i] >= 0 {
			out[i].OutboundID = ids[of[i]]
		}
	}
	return out, nil
}

// deliveryOf is what became of the mail a notification row stands for.
func deliveryOf(n notificationRow) ticket.Recipient {
	r := ticket.Recipient{To: n.Recipient, MessageID: n.MailID, Reason: n.LastError, SentAt: fromNullTime(n.SentAt)}
	switch ticket.NotificationState(n.State) {
	case ticket.NotificationSent:
		r.Status, r.Reason = ticket.DeliverySent, ""
	case ticket.NotificationFailed:
		r.Status = ticket.DeliveryFailed
	case NotificationSuppressed:
		r.Status = ticket.DeliverySuppressed
	default:
		r.Status = ticket.DeliveryQueued
	}
	return r
}

// loadDeliveries fills the Delivery of the outbound messages of ticket
// ticketID (msgs, found by ID through byID) from their notifications.
func loadDeliveries(db *gorm.DB, ticketID int64, msgs []ticket.Message, byID map[int64]int) error {
	var ns []notificationRow
	err := db.Select("id", "outbound_id", "recipient", "mail_id", "state", "last_error", "sent_at").
		Where("ticket_id = ? AND outbound_id <> 0", ticketID).Order("id").Find(&ns).Error
	if err != nil {
		return fmt.Errorf("deliveries: %w", err)
	}
	for _, n := range ns {
		if i, ok := byID[n.OutboundID]; ok {
			msgs[i].Delivery = append(msgs[i].Delivery, deliveryOf(n))
		}
	}
	return nil
}

// RecordOutboundText keeps on the outbound message id the subject and text
// of the mail that records it, as rendered for its first recipient: what
// the customer was told. A message that has a text already (a note, or a
// record rendered before) keeps it; an unknown one is no error.
func (s *Store) RecordOutboundText(ctx context.Context, id int64, subject, text string) error {
	if id == 0 || strings.TrimSpace(text) == "" {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&messageRow{}).
		Where("id = ? AND direction = ? AND kind <> ? AND text = ''", id, string(ticket.DirectionOutbound), string(ticket.KindNote)).
		Updates(map[string]any{"subject": subject, "text": text}).Error
	if err != nil {
		return fmt.Errorf("record text of outbound message %d: %w", id, err)
	}
	return nil
}
