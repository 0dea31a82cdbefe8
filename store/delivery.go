package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/servicedesk/servicedesk/ticket"
)

// maxThreadMatches bounds how many tickets ThreadMatches returns: the
// newest ones, enough for a caller to pick the first it may thread onto.
const maxThreadMatches = 10

// threadLookupChunk bounds the Message-IDs of one lookup statement, far
// below SQLite's and PostgreSQL's limits on bound parameters.
const threadLookupChunk = 100

// ThreadMatches returns the tickets of a project that hold a message whose
// Message-ID is one of messageIDs (with angle brackets), or whose outbound
// notification was sent with one of them: newest ticket first, at most
// maxThreadMatches, one entry per ticket, Ours set when a matched ID is an
// outbound message or notification of ours. None matching is an empty
// list, not an error. Any number of IDs is looked up in bounded
// statements; callers should still bound what they ask for.
func (s *Store) ThreadMatches(ctx context.Context, projectID int64, messageIDs []string) ([]ticket.ThreadMatch, error) {
	ours := map[int64]bool{}
	db := s.db.WithContext(ctx)
	for chunk := range slices.Chunk(messageIDs, threadLookupChunk) {
		var rows []struct {
			TicketID  int64
			Direction string
		}
		err := db.Model(&messageRow{}).Select("messages.ticket_id, messages.direction").
			Joins("JOIN tickets ON tickets.id = messages.ticket_id").
			Where("tickets.project_id = ? AND messages.message_id IN ?", projectID, chunk).
			Order("messages.ticket_id DESC").Limit(4 * maxThreadMatches).Scan(&rows).Error
		if err != nil {
			return nil, fmt.Errorf("find tickets by message-id: %w", err)
		}
		for _, r := range rows {
			ours[r.TicketID] = ours[r.TicketID] || r.Direction == string(ticket.DirectionOutbound)
		}
		var viaMail []int64
		err = db.Model(&notificationRow{}).
			Where("project_id = ? AND mail_id IN ?", projectID, chunk).
			Order("ticket_id DESC").Limit(maxThreadMatches).Pluck("ticket_id", &viaMail).Error
		if err != nil {
			return nil, fmt.Errorf("find tickets by notification message-id: %w", err)
		}
		for _, id := range viaMail {
			ours[id] = true
		}
	}
	out := make([]ticket.ThreadMatch, 0, len(ours))
	for id, o := range ours {
		out = append(out, ticket.ThreadMatch{TicketID: id, Ours: o})
	}
	slices.SortFunc(out, func(a, b ticket.ThreadMatch) int { return cmp.Compare(b.TicketID, a.TicketID) })
	if len(out) > maxThreadMatches {
		out = out[:maxThreadMatches]
	}
	return out, nil
}

// CommitDelivery applies what processing decided for one inbound message,
// in one transaction. It is idempotent: when the ledger row already has an
// outcome, that outcome is returned and nothing changes. A message whose
// DedupKey was seen before in the project becomes a duplicate (the reason
// names the first inbound row) and changes nothing else. Two workers
// committing the same Message-ID at once end with one delivery and one
// duplicate.
func (s *Store) CommitDelivery(ctx context.Context, d ticket.Delivery) (ticket.Committed, error) {
	return s.commitGrouped(ctx, d)
}

// commitOne commits one delivery in its own transaction. Its caller, a
// group's leader, holds the gate (on SQLite the write gate: so not s.tx).
func (s *Store) commitOne(ctx context.Context, d ticket.Delivery) (ticket.Committed, error) {
	if s.dialect == dialectPostgres && opensTicket(d) {
		c, ok, err := s.commitNewTicketPostgres(ctx, d)
		if err != nil {
			return ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: %w", d.InboundID, err)
		}
		if ok {
			return c, nil
		}
	}
	var c ticket.Committed
	err := s.retry(ctx, func() error {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			var err error
			c, err = s.commitDelivery(tx, d)
			return err
		})
	})
	if err != nil {
		return ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: %w", d.InboundID, err)
	}
	return c, nil
}

func (s *Store) commitDelivery(tx *gorm.DB, d ticket.Delivery) (ticket.Committed, error) {
	now := s.now().UTC()
	var in inboundRow
	if err := lockForUpdate(tx, s.dialect).Where("id = ?", d.InboundID).Take(&in).Error; err != nil {
		return ticket.Committed{}, fmt.Errorf("lock ledger row: %w", notFound(err))
	}
	if d.ProjectID == 0 {
		d.ProjectID = in.ProjectID
	}
	if in.Outcome != "" {
		return s.previousCommit(tx, in)
	}
	ledger := map[string]any{"processed_at": now, "desk_id": d.ProjectID}
	if d.ProjectID != in.ProjectID {
		if err := routable(tx, d, in); err != nil {
			return ticket.Committed{}, err
		}
	}
	if m := d.Message; m != nil {
		ledger["message_id"] = m.MessageID
		ledger["from_addr"] = m.From
		ledger["subject"] = m.Subject
	}
	finish := func(outcome ticket.Outcome, ticketID int64, reason string) error {
		ledger["outcome"] = string(outcome)
		ledger["ticket_id"] = ticketID
		ledger["reason"] = reason
		if err := tx.Model(&inboundRow{}).Where("id = ?", in.ID).Updates(ledger).Error; err != nil {
			return fmt.Errorf("update ledger row: %w", err)
		}
		return nil
	}

	switch d.Outcome {
	case ticket.OutcomeFailed, ticket.OutcomeUnroutable:
		if err := finish(d.Outcome, 0, d.Reason); err != nil {
			return ticket.Committed{}, err
		}
		if m := d.Message; m != nil {
			in.MessageID, in.FromAddr, in.Subject = m.MessageID, m.From, m.Subject
		}
		in.DeskID = d.ProjectID
		if err := addDeadLetter(tx, inboundDeadLetter(in, d.Reason)); err != nil {
			return ticket.Committed{}, err
		}
		return ticket.Committed{Outcome: d.Outcome}, nil
	case ticket.OutcomeTicketCreated, ticket.OutcomeReplyAdded, ticket.OutcomeAutoReply, ticket.OutcomeBounce,
		ticket.OutcomeUnsubscribed:
	default:
		return ticket.Committed{}, fmt.Errorf("outcome %q cannot be committed", d.Outcome)
	}

	if d.DedupKey != "" {
		first, dup, err := claimDedupKey(tx, d.ProjectID, d.DedupKey, in.ID)
		if err != nil {
			return ticket.Committed{}, err
		}
		if dup {
			reason := "duplicate of inbound " + strconv.FormatInt(first, 10)
			var firstRow inboundRow
			if err := tx.Select("ticket_id").Where("id = ?", first).Take(&firstRow).Error; err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
				return ticket.Committed{}, fmt.Errorf("read first inbound %d: %w", first, err)
			}
			if err := finish(ticket.OutcomeDuplicate, firstRow.TicketID, reason); err != nil {
				return ticket.Committed{}, err
			}
			c := ticket.Committed{Outcome: ticket.OutcomeDuplicate, TicketID: firstRow.TicketID}
			c.TicketNumber, _ = ticketNumber(tx, firstRow.TicketID)
			return c, nil
		}
	}

	if d.Outcome == ticket.OutcomeUnsubscribed {
		return commitUnsubscribe(tx, d, now.UnixMilli(), finish)
	}
	desk, err := deskAddress(tx, d)
	if err != nil {
		return ticket.Committed{}, err
	}

	c := ticket.Committed{Outcome: d.Outcome, TicketID: d.TicketID}
	var t ticketRow
	switch {
	case d.TicketID == 0 && d.Outcome == ticket.OutcomeTicketCreated:
		if d.NewTicket == nil {
			return ticket.Committed{}, errors.New("ticket_created without NewTicket")
		}
		// The ticket is numbered last, just before commit (numberTicket):
		// the project's counter row stays locked from then to commit, and
		// every new ticket of the project waits for it. Until then its
		// number is the ledger row's ID, negated: unique and never a real
		// number.
		t = ticketRow{
			ProjectID: d.ProjectID, Number: -in.ID, Subject: d.NewTicket.Subject, Status: string(ticket.StatusOpen),
			Requester: strings.ToLower(strings.TrimSpace(d.NewTicket.Requester)), CreatedAt: now, UpdatedAt: now,
		}
		if err := tx.Create(&t).Error; err != nil {
			return ticket.Committed{}, fmt.Errorf("create ticket: %w", err)
		}
		c.TicketID = t.ID
		d.Participants = append([]string{t.Requester}, d.Participants...)
	case d.TicketID != 0:
		if err := lockForUpdate(tx, s.dialect).Where("id = ? AND project_id = ?", d.TicketID, d.ProjectID).Take(&t).Error; err != nil {
			return ticket.Committed{}, fmt.Errorf("read ticket %d: %w", d.TicketID, notFound(err))
		}
		upd := map[string]any{"updated_at": now}
		if d.Reopen && t.Status == string(ticket.StatusClosed) {
			upd["status"] = string(ticket.StatusOpen)
		}
		if err := tx.Model(&ticketRow{}).Where("id = ?", t.ID).Updates(upd).Error; err != nil {
			return ticket.Committed{}, fmt.Errorf("update ticket %d: %w", t.ID, err)
		}
		if d.MaxParticipants > 0 && len(d.Participants) > 0 {
			// The ticket row is locked: concurrent replies to it take
			// turns here, so together they cannot overfill it.
			var err error
			if d, err = fitParticipants(tx, t.ID, desk, d); err != nil {
				return ticket.Committed{}, err
			}
		}
	default:
		// An auto-reply or bounce that belongs to no ticket: ledger only.
		if d.Outcome == ticket.OutcomeReplyAdded {
			return ticket.Committed{}, errors.New("reply_added without TicketID")
		}
		if err := finish(d.Outcome, 0, d.Reason); err != nil {
			return ticket.Committed{}, err
		}
		return c, nil
	}
	c.TicketNumber = t.Number

	var messageID int64
	if d.Message != nil {
		m := *d.Message
		m.InboundID = in.ID
		if m.CreatedAt.IsZero() {
			m.CreatedAt = now
		}
		id, err := insertMessage(tx, t.ID, m)
		if err != nil {
			return ticket.Committed{}, err
		}
		messageID = id
	}
	if err := addParticipants(tx, t.ID, desk, d.Participants); err != nil {
		return ticket.Committed{}, err
	}
	for _, email := range d.Bouncing {
		email = strings.ToLower(strings.TrimSpace(email))
		if email == "" {
			continue
		}
		if err := markBouncing(tx, t.ID, email, d.BouncingUntil); err != nil {
			return ticket.Committed{}, fmt.Errorf("mark %s bouncing on ticket %d: %w", email, t.ID, err)
		}
	}
	domain := notifyDomain(d, desk)
	notify := slices.Clone(d.Notify)
	for i := range notify {
		if notify[i].MessageID == 0 {
			notify[i].MessageID = messageID
		}
	}
	if notify, err = recordOutbound(tx, t.ID, desk, t.Subject, notify, now); err != nil {
		return ticket.Committed{}, err
	}
	for _, n := range notify {
		id, err := queueNotification(tx, d.ProjectID, t.ID, n, domain, now)
		if err != nil {
			return ticket.Committed{}, err
		}
		c.Notifications = append(c.Notifications, id)
	}
	if err := finish(d.Outcome, t.ID, d.Reason); err != nil {
		return ticket.Committed{}, err
	}
	if t.Number < 0 {
		n, err := s.numberTicket(tx, d.ProjectID, t.ID)
		if err != nil {
			return ticket.Committed{}, err
		}
		c.TicketNumber = n
	}
	return c, nil
}

// routable checks that a delivery for another project than its ledger
// row's is a row of the intake mailbox routed to a desk: only then may
// the commit make the row name another desk.
func routable(tx *gorm.DB, d ticket.Delivery, in inboundRow) error {
	if !d.Routed {
		return fmt.Errorf("delivery is for project %d but inbound row for project %d", d.ProjectID, in.ProjectID)
	}
	var mailbox projectRow
	if err := tx.Select(`"key"`).Where("id = ?", in.ProjectID).Take(&mailbox).Error; err != nil {
		return fmt.Errorf("read the mailbox project %d of inbound %d: %w", in.ProjectID, in.ID, notFound(err))
	}
	if mailbox.Key != ticket.IntakeKey {
		return fmt.Errorf("delivery routed to project %d but inbound %d is of project %s's own mailbox, not the intake's",
			d.ProjectID, in.ID, mailbox.Key)
	}
	return nil
}

// numberTicket gives a new ticket the project's next number. It locks the
// project's counter until the transaction ends, so it is the last write of
// a delivery: on PostgreSQL one statement, so that concurrent deliveries
// to one project wait for a commit rather than for a whole delivery.
func (s *Store) numberTicket(tx *gorm.DB, projectID, ticketID int64) (int64, error) {
	var n int64
	var err error
	if s.dialect == dialectPostgres {
		err = tx.Raw(`WITH seq AS (UPDATE projects SET ticket_seq = ticket_seq + 1 WHERE id = ? RETURNING ticket_seq)
			UPDATE tickets SET number = (SELECT ticket_seq FROM seq) WHERE id = ? RETURNING number`, projectID, ticketID).
			Scan(&n).Error
	} else {
		err = tx.Raw("UPDATE projects SET ticket_seq = ticket_seq + 1 WHERE id = ? RETURNING ticket_seq", projectID).Scan(&n).Error
		if err == nil && n != 0 {
			err = tx.Exec("UPDATE tickets SET number = ? WHERE id = ?", n, ticketID).Error
		}
	}
	if err != nil || n == 0 {
		return 0, fmt.Errorf("number ticket %d of project %d: %w", ticketID, projectID, errors.Join(err, errIfZero(n)))
	}
	return n, nil
}

// deskAddress is the address of the delivery's project: the one it
// carries, or the project row's.
func deskAddress(tx *gorm.DB, d ticket.Delivery) (string, error) {
	if d.DeskAddress != "" {
		return d.DeskAddress, nil
	}
	var p projectRow
	if err := tx.Select("address").Where("id = ?", d.ProjectID).Take(&p).Error; err != nil {
		return "", fmt.Errorf("read project %d: %w", d.ProjectID, notFound(err))
	}
	return p.Address, nil
}

// notifyDomain is the domain of the Message-IDs of a delivery's
// notifications: the one it carries, or the desk address's.
func notifyDomain(d ticket.Delivery, desk string) string {
	if d.MailDomain != "" {
		return d.MailDomain
	}
	_, domain, _ := strings.Cut(desk, "@")
	return domain
}

func errIfZero(n int64) error {
	if n == 0 {
		return errors.New("project not found")
	}
	return nil
}

// previousCommit reports what an earlier commit of the row did, with the
// notifications it queued that are still pending (so a retried job can
// enqueue them again).
func (s *Store) previousCommit(tx *gorm.DB, in inboundRow) (ticket.Committed, error) {
	c := ticket.Committed{Outcome: ticket.Outcome(in.Outcome), TicketID: in.TicketID}
	if in.TicketID == 0 {
		return c, nil
	}
	c.TicketNumber, _ = ticketNumber(tx, in.TicketID)
	err := tx.Model(&notificationRow{}).
		Where("state = ? AND message_id IN (?)", string(ticket.NotificationPending),
			tx.Model(&messageRow{}).Select("id").Where("inbound_id = ?", in.ID)).
		Order("id").Pluck("id", &c.Notifications).Error
	if err != nil {
		return ticket.Committed{}, fmt.Errorf("read notifications of inbound %d: %w", in.ID, err)
	}
	return c, nil
}

func ticketNumber(tx *gorm.DB, ticketID int64) (int64, error) {
	if ticketID == 0 {
		return 0, nil
	}
	var t ticketRow
	if err := tx.Select("number").Where("id = ?", ticketID).Take(&t).Error; err != nil {
		return 0, notFound(err)
	}
	return t.Number, nil
}

// claimDedupKey inserts the key for inboundID. If another row holds it,
// dup is true and first names that row. A concurrent claim on PostgreSQL
// waits on the unique index until the other transaction ends.
func claimDedupKey(tx *gorm.DB, projectID int64, key string, inboundID int64) (first int64, dup bool, err error) {
	res := tx.Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "project_id"}, {Name: "key"}}, DoNothing: true,
	}).Create(&dedupKeyRow{ProjectID: projectID, Key: key, InboundID: inboundID})
	if res.Error != nil {
		return 0, false, fmt.Errorf("claim dedup key: %w", res.Error)
	}
	if res.RowsAffected == 1 {
		return inboundID, false, nil
	}
	var row dedupKeyRow
	if err := tx.Where(`project_id = ? AND "key" = ?`, projectID, key).Take(&row).Error; err != nil {
		return 0, false, fmt.Errorf("read dedup key: %w", err)
	}
	if row.InboundID == inboundID {
		return inboundID, false, nil
	}
	return row.InboundID, true, nil
}

func insertMessage(tx *gorm.DB, ticketID int64, m ticket.Message) (int64, error) {
	row, err := newMessageRow(ticketID, m)
	if err != nil {
		return 0, err
	}
	if err := tx.Create(&row).Error; err != nil {
		return 0, fmt.Errorf("insert message: %w", err)
	}
	if err := insertAttachments(tx, map[int64][]ticket.Attachment{row.ID: m.Attachments}); err != nil {
		return 0, err
	}
	return row.ID, nil
}

// newMessageRow is the row of message m on a ticket.
func newMessageRow(ticketID int64, m ticket.Message) (messageRow, error) {
	to, err := json.Marshal(nonNil(m.To))
	if err != nil {
		return messageRow{}, fmt.Errorf("encode To: %w", err)
	}
	cc, err := json.Marshal(nonNil(m.Cc))
	if err != nil {
		return messageRow{}, fmt.Errorf("encode Cc: %w", err)
	}
	row := messageRow{
		TicketID: ticketID, InboundID: m.InboundID, Direction: string(m.Direction), Kind: string(m.Kind),
		FromAddr: m.From, ToAddrs: string(to), CcAddrs: string(cc), Subject: m.Subject, Text: m.Text,
		HTML: m.HTML, FullText: m.FullText, MessageID: m.MessageID, InReplyTo: m.InReplyTo, Refs: strings.Join(m.References, " "),
		Internal: m.Internal, CreatedAt: m.CreatedAt.UTC(),
	}
	if row.Direction == "" {
		row.Direction = string(ticket.DirectionInbound)
	}
	if row.Kind == "" {
		row.Kind = string(ticket.KindEmail)
	}
	return row, nil
}

// insertAttachments stores the attachments of messages (by message row
// ID): their contents as content-addressed blobs and their rows, in
// multi-row statements.
func insertAttachments(tx *gorm.DB, byMessage map[int64][]ticket.Attachment) error {
	var blobs []blobRow
	var rows []attachmentRow
	seen := map[string]bool{}
	for msgID, atts := range byMessage {
		for _, a := range atts {
			b := newBlob(a.Data)
			if !seen[b.SHA256] {
				seen[b.SHA256] = true
				blobs = append(blobs, b)
			}
			rows = append(rows, attachmentRow{
				MessageID: msgID, Filename: a.Filename, ContentType: a.ContentType, Size: b.Size,
				BlobSHA256: b.SHA256, Inline: a.Inline, ContentID: a.ContentID,
			})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "sha256"}}, DoNothing: true}).
		CreateInBatches(blobs, fetchedPerStatement).Error
	if err != nil {
		return fmt.Errorf("store attachments: %w", err)
	}
	if err := tx.CreateInBatches(rows, fetchedPerStatement).Error; err != nil {
		return fmt.Errorf("insert attachments: %w", err)
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// fitParticipants keeps of d.Participants the addresses not yet on ticket
// ticketID that fit under d.MaxParticipants, drops the new_participant
// notifications to the others and says so in d.Reason. The caller holds
// the ticket's row lock.
func fitParticipants(tx *gorm.DB, ticketID int64, desk string, d ticket.Delivery) (ticket.Delivery, error) {
	var existing []string
	if err := tx.Model(&participantRow{}).Where("ticket_id = ?", ticketID).Pluck("email", &existing).Error; err != nil {
		return d, fmt.Errorf("read participants of ticket %d: %w", ticketID, err)
	}
	on := make(map[string]bool, len(existing))
	for _, e := range existing {
		on[e] = true
	}
	var fresh []string
	for _, e := range participantEmails(desk, d.Participants) {
		if !on[e] {
			fresh = append(fresh, e)
		}
	}
	room := max(0, d.MaxParticipants-len(existing))
	if len(fresh) <= room {
		return d, nil
	}
	kept := map[string]bool{}
	for _, e := range fresh[:room] {
		kept[e] = true
	}
	d.Reason += fmt.Sprintf("; participants: %d more left out, the ticket is full (%d)", len(fresh)-room, d.MaxParticipants)
	d.Participants = fresh[:room]
	var notify []ticket.Notification
	for _, n := range d.Notify {
		if n.Kind != ticket.NotifyNewParticipant || kept[strings.ToLower(strings.TrimSpace(n.To))] {
			notify = append(notify, n)
		}
	}
	d.Notify = notify
	return d, nil
}

// addParticipants adds addresses to a ticket, lower-cased and deduplicated,
// never the desk address itself.
func addParticipants(tx *gorm.DB, ticketID int64, deskAddress string, emails []string) error {
	var rows []participantRow
	for _, e := range participantEmails(deskAddress, emails) {
		rows = append(rows, participantRow{TicketID: ticketID, Email: e})
	}
	return insertParticipants(tx, rows)
}

func insertParticipants(tx *gorm.DB, rows []participantRow) error {
	if len(rows) == 0 {
		return nil
	}
	err := tx.Clauses(clause.OnConflict{
		Columns: []clause.Column{{Name: "ticket_id"}, {Name: "email"}}, DoNothing: true,
	}).CreateInBatches(rows, fetchedPerStatement).Error
	if err != nil {
		return fmt.Errorf("add participants to ticket %d: %w", rows[0].TicketID, err)
	}
	return nil
}

// participantEmails lower-cases and deduplicates addresses and drops the
// desk's own (with or without a +tag).
func participantEmails(deskAddress string, emails []string) []string {
	desk := strings.ToLower(strings.TrimSpace(deskAddress))
	deskLocal, deskDomain, _ := strings.Cut(desk, "@")
	seen := map[string]bool{}
	var out []string
	for _, e := range emails {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" || seen[e] || e == desk {
			continue
		}
		// A +tag sub-address of the desk is the desk too.
		if local, domain, ok := strings.Cut(e, "@"); ok && domain == deskDomain {
			if base, _, tagged := strings.Cut(local, "+"); tagged && base == deskLocal {
				continue
			}
		}
		seen[e] = true
		out = append(out, e)
	}
	return out
}

// markBouncing records, within tx, that the lower-cased email bounces on
// the ticket until until; a later mark replaces the time (MarkBouncing and
// CommitDelivery of a bounce share it).
func markBouncing(tx *gorm.DB, ticketID int64, email string, until time.Time) error {
	err := tx.Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ticket_id"}, {Name: "email"}},
		DoUpdates: clause.AssignmentColumns([]string{"until_ms"}),
	}).Create(&bounceRow{TicketID: ticketID, Email: email, UntilMS: until.UnixMilli()}).Error
	if err != nil {
		return fmt.Errorf("upsert bounce: %w", err)
	}
	return nil
}

// queueNotification inserts a pending notification with its Message-ID,
// "<sd.{ticket id}.{16 random hex}@{domain}>", in one statement
// (commitNewTicketSQL makes the same in SQL).
func queueNotification(tx *gorm.DB, projectID, ticketID int64, n ticket.Notification, domain string, now time.Time) (int64, error) {
	row, err := newNotificationRow(projectID, ticketID, n, domain, now)
	if err != nil {
		return 0, err
	}
	if off, err := isUnsubscribed(tx, ticketID, n.To); err != nil {
		return 0, err
	} else if off {
		row.State, row.LastError = string(NotificationSuppressed), reasonUnsubscribed
	}
	if err := tx.Create(&row).Error; err != nil {
		return 0, fmt.Errorf("queue %s notification: %w", n.Kind, err)
	}
	return row.ID, nil
}

func newNotificationRow(projectID, ticketID int64, n ticket.Notification, domain string, now time.Time) (notificationRow, error) {
	suffix, err := randomHex(8)
	if err != nil {
		return notificationRow{}, err
	}
	if domain == "" {
		domain = "localhost"
	}
	return notificationRow{
		ProjectID: projectID, TicketID: ticketID, MessageID: n.MessageID, OutboundID: n.OutboundID, Kind: string(n.Kind),
		Recipient: n.To, MailID: "<sd." + strconv.FormatInt(ticketID, 10) + "." + suffix + "@" + domain + ">",
		State: string(ticket.NotificationPending), CreatedAt: now,
	}, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return hex.EncodeToString(b), nil
}
