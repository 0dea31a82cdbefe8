package store

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/servicedesk/servicedesk/ticket"
)

// commitMany commits a group of deliveries in tx and returns their results
// in order. Deliveries that open a ticket are written together: on SQLite
// one multi-row statement per table (commitNewTickets), on PostgreSQL one
// statement each (commitNewTicketsPostgres); the rest, and any that turn
// out to be duplicates or already committed, one by one.
func (s *Store) commitMany(tx *gorm.DB, ds []ticket.Delivery) ([]ticket.Committed, error) {
	out := make([]ticket.Committed, len(ds))
	var fresh []int
	for _, i := range lockOrder(ds) {
		d := ds[i]
		if opensTicket(d) {
			fresh = append(fresh, i)
			continue
		}
		c, err := s.commitDelivery(tx, d)
		if err != nil {
			return nil, fmt.Errorf("inbound %d: %w", d.InboundID, err)
		}
		out[i] = c
	}
	if len(fresh) == 0 {
		return out, nil
	}
	group := make([]ticket.Delivery, len(fresh))
	for j, i := range fresh {
		group[j] = ds[i]
	}
	var cs []ticket.Committed
	var left []int // of group: duplicates and rows with an outcome
	var err error
	if s.dialect == dialectPostgres {
		cs, left, err = s.commitNewTicketsPostgres(tx, group)
	} else {
		cs, left, err = s.commitNewTickets(tx, group)
	}
	if err != nil {
		return nil, err
	}
	// After the group's tickets are numbered: one of them may be what a
	// left delivery duplicates.
	for _, j := range left {
		if cs[j], err = s.commitDelivery(tx, group[j]); err != nil {
			return nil, fmt.Errorf("inbound %d: %w", group[j].InboundID, err)
		}
	}
	for j, i := range fresh {
		out[i] = cs[j]
	}
	return out, nil
}

// lockOrder is the order in which a group's deliveries are written: by
// project, ticket and dedup key, so that two groups committing at once
// (PostgreSQL) take the rows both touch in the same order and do not
// deadlock.
func lockOrder(ds []ticket.Delivery) []int {
	order := make([]int, len(ds))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(ds[a].ProjectID, ds[b].ProjectID), cmp.Compare(ds[a].TicketID, ds[b].TicketID),
			cmp.Compare(ds[a].DedupKey, ds[b].DedupKey))
	})
	return order
}

// opensTicket reports whether d is the plain case commitNewTickets
// handles: a first message that opens a ticket.
func opensTicket(d ticket.Delivery) bool {
	return d.Outcome == ticket.OutcomeTicketCreated && d.TicketID == 0 && d.NewTicket != nil &&
		d.Message != nil && d.DedupKey != "" && d.ProjectID != 0 && len(d.Bouncing) == 0 && !d.Routed
}

// commitNewTickets is commitDelivery for many deliveries that each open a
// ticket, with the same result, in a fixed number of statements whatever
// their number: lock the ledger rows, claim the dedup keys, insert the
// tickets, messages, attachments, participants and notifications, close
// the ledger rows and number the tickets (last, as commitDelivery does).
// A delivery whose ledger row already has an outcome, or whose dedup key
// another row holds, is left (its index in left) for commitDelivery, after
// the others.
func (s *Store) commitNewTickets(tx *gorm.DB, ds []ticket.Delivery) (out []ticket.Committed, left []int, err error) {
	now := s.now().UTC()
	out = make([]ticket.Committed, len(ds))
	ids := make([]int64, len(ds))
	for i, d := range ds {
		ids[i] = d.InboundID
	}
	var rows []inboundRow
	if err := lockForUpdate(tx, s.dialect).Select("id", "project_id", "outcome").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, nil, fmt.Errorf("lock ledger rows: %w", err)
	}
	ledger := make(map[int64]inboundRow, len(rows))
	for _, r := range rows {
		ledger[r.ID] = r
	}
	var todo, later []int // indexes of ds: written here; left to commitDelivery
	for i, d := range ds {
		r, ok := ledger[d.InboundID]
		switch {
		case !ok:
			return nil, nil, fmt.Errorf("lock ledger row %d: %w", d.InboundID, ErrNotFound)
		case r.ProjectID != d.ProjectID:
			return nil, nil, fmt.Errorf("delivery is for project %d but inbound row %d for project %d", d.ProjectID, r.ID, r.ProjectID)
		case r.Outcome != "":
			later = append(later, i)
		default:
			todo = append(todo, i)
		}
	}

	// Dedup keys: the rows that claim theirs go on; the others (a key seen
	// before, or twice in this group) are duplicates for commitDelivery.
	if len(todo) > 0 {
		keys := make([]dedupKeyRow, len(todo))
		names := make([]string, len(todo))
		for j, i := range todo {
			keys[j] = dedupKeyRow{ProjectID: ds[i].ProjectID, Key: ds[i].DedupKey, InboundID: ds[i].InboundID}
			names[j] = ds[i].DedupKey
		}
		err := tx.Clauses(clause.OnConflict{
			Columns: []clause.Column{{Name: "project_id"}, {Name: "key"}}, DoNothing: true,
		}).Create(&keys).Error
		if err != nil {
			return nil, nil, fmt.Errorf("claim dedup keys: %w", err)
		}
		var owners []dedupKeyRow
		// With project_id the unique index (project_id, key) finds the
		// rows; "key" alone read every dedup key ever stored.
		if err := tx.Select("project_id", "key", "inbound_id").Where(`project_id IN ? AND "key" IN ?`, projectIDs(ds, todo), names).Find(&owners).Error; err != nil {
			return nil, nil, fmt.Errorf("read dedup keys: %w", err)
		}
		owner := make(map[string]int64, len(owners))
		for _, o := range owners {
			owner[fmt.Sprint(o.ProjectID, " ", o.Key)] = o.InboundID
		}
		claimed := todo[:0:0]
		for _, i := range todo {
			if owner[fmt.Sprint(ds[i].ProjectID, " ", ds[i].DedupKey)] == ds[i].InboundID {
				claimed = append(claimed, i)
			} else {
				later = append(later, i)
			}
		}
		todo = claimed
	}

	if len(todo) > 0 {
		if err := s.insertNewTickets(tx, ds, todo, out, now); err != nil {
			return nil, nil, err
		}
	}
	return out, later, nil
}

// projectIDs returns the distinct projects of ds[todo...].
func projectIDs(ds []ticket.Delivery, todo []int) []int64 {
	var ids []int64
	for _, i := range todo {
		if !slices.Contains(ids, ds[i].ProjectID) {
			ids = append(ids, ds[i].ProjectID)
		}
	}
	return ids
}

// insertNewTickets writes the deliveries ds[todo...], whose ledger rows
// are locked and dedup keys claimed, and fills their results in out.
func (s *Store) insertNewTickets(tx *gorm.DB, ds []ticket.Delivery, todo []int, out []ticket.Committed, now time.Time) error {
	// Tickets, numbered -inbound ID until numberTickets: unique, so the
	// rows are found again by it.
	tickets := make([]ticketRow, len(todo))
	temp := make([]int64, len(todo))
	for j, i := range todo {
		d := ds[i]
		temp[j] = -d.InboundID
		tickets[j] = ticketRow{
			ProjectID: d.ProjectID, Number: temp[j], Subject: d.NewTicket.Subject, Status: string(ticket.StatusOpen),
			Requester: strings.ToLower(strings.TrimSpace(d.NewTicket.Requester)), CreatedAt: now, UpdatedAt: now,
		}
	}
	if err := tx.CreateInBatches(tickets, fetchedPerStatement).Error; err != nil {
		return fmt.Errorf("create tickets: %w", err)
	}
	var got []ticketRow
	// With project_id the unique index (project_id, number) finds the rows;
	// number alone read every ticket (the 100,000-mail backlog benchmark).
	if err := tx.Select("id", "number").Where("project_id IN ? AND number IN ?", projectIDs(ds, todo), temp).Find(&got).Error; err != nil {
		return fmt.Errorf("read new tickets: %w", err)
	}
	ticketOf := make(map[int64]int64, len(got)) // inbound ID -> ticket ID
	for _, t := range got {
		ticketOf[-t.Number] = t.ID
	}
	ticketIDs := make([]int64, len(todo))
	for j, i := range todo {
		if ticketIDs[j] = ticketOf[ds[i].InboundID]; ticketIDs[j] == 0 {
			return fmt.Errorf("ticket of inbound %d missing after insert", ds[i].InboundID)
		}
		out[i] = ticket.Committed{Outcome: ticket.OutcomeTicketCreated, TicketID: ticketIDs[j]}
	}

	// Messages, one per ticket, found again by ticket.
	msgs := make([]messageRow, len(todo))
	for j, i := range todo {
		m := *ds[i].Message
		m.InboundID = ds[i].InboundID
		if m.CreatedAt.IsZero() {
			m.CreatedAt = now
		}
		row, err := newMessageRow(ticketIDs[j], m)
		if err != nil {
			return fmt.Errorf("inbound %d: %w", ds[i].InboundID, err)
		}
		msgs[j] = row
	}
	if err := tx.CreateInBatches(msgs, fetchedPerStatement).Error; err != nil {
		return fmt.Errorf("insert messages: %w", err)
	}
	var gotMsgs []messageRow
	if err := tx.Select("id", "ticket_id").Where("ticket_id IN ?", ticketIDs).Find(&gotMsgs).Error; err != nil {
		return fmt.Errorf("read new messages: %w", err)
	}
	messageOf := make(map[int64]int64, len(gotMsgs)) // ticket ID -> message ID
	for _, m := range gotMsgs {
		messageOf[m.TicketID] = m.ID
	}
	recordOf, err := recordNewTicketsOutbound(tx, ds, todo, ticketIDs, tickets, now)
	if err != nil {
		return err
	}
	atts := map[int64][]ticket.Attachment{}
	var parts []participantRow
	var notes []notificationRow
	var noteOf []int // index in todo of each note
	for j, i := range todo {
		d, tid := ds[i], ticketIDs[j]
		msgID := messageOf[tid]
		if msgID == 0 {
			return fmt.Errorf("message of inbound %d missing after insert", d.InboundID)
		}
		if len(d.Message.Attachments) > 0 {
			atts[msgID] = d.Message.Attachments
		}
		desk, err := deskAddress(tx, d)
		if err != nil {
			return err
		}
		for _, e := range participantEmails(desk, append([]string{tickets[j].Requester}, d.Participants...)) {
			parts = append(parts, participantRow{TicketID: tid, Email: e})
		}
		domain := notifyDomain(d, desk)
		for _, n := range d.Notify {
			if n.MessageID == 0 {
				n.MessageID = msgID
			}
			n.OutboundID = recordOf[outboundKey{tid, n.Kind}]
			row, err := newNotificationRow(d.ProjectID, tid, n, domain, now)
			if err != nil {
				return err
			}
			notes = append(notes, row)
			noteOf = append(noteOf, i)
		}
	}
	if err := insertAttachments(tx, atts); err != nil {
		return err
	}
	if err := insertParticipants(tx, parts); err != nil {
		return err
	}
	if len(notes) > 0 {
		if err := tx.CreateInBatches(notes, fetchedPerStatement).Error; err != nil {
			return fmt.Errorf("queue notifications: %w", err)
		}
		mailIDs := make([]string, len(notes))
		for k, n := range notes {
			mailIDs[k] = n.MailID
		}
		var gotNotes []notificationRow
		if err := tx.Select("id", "mail_id").Where("mail_id IN ?", mailIDs).Find(&gotNotes).Error; err != nil {
			return fmt.Errorf("read new notifications: %w", err)
		}
		noteID := make(map[string]int64, len(gotNotes))
		for _, n := range gotNotes {
			noteID[n.MailID] = n.ID
		}
		for k, n := range notes {
			id := noteID[n.MailID]
			if id == 0 {
				return fmt.Errorf("notification %s missing after insert", n.MailID)
			}
			out[noteOf[k]].Notifications = append(out[noteOf[k]].Notifications, id)
		}
	}

	// The ledger rows, in one statement.
	var set strings.Builder
	var args []any
	column := func(name, cast string, value func(d ticket.Delivery, j int) any) {
		set.WriteString(", " + name + " = CASE id")
		for j, i := range todo {
			set.WriteString(" WHEN ? THEN " + cast)
			args = append(args, ds[i].InboundID, value(ds[i], j))
		}
		set.WriteString(" END")
	}
	args = append(args, string(ticket.OutcomeTicketCreated), now)
	column("ticket_id", "CAST(? AS BIGINT)", func(_ ticket.Delivery, j int) any { return ticketIDs[j] })
	column("message_id", "CAST(? AS TEXT)", func(d ticket.Delivery, _ int) any { return d.Message.MessageID })
	column("from_addr", "CAST(? AS TEXT)", func(d ticket.Delivery, _ int) any { return d.Message.From })
	column("subject", "CAST(? AS TEXT)", func(d ticket.Delivery, _ int) any { return d.Message.Subject })
	column("reason", "CAST(? AS TEXT)", func(d ticket.Delivery, _ int) any { return d.Reason })
	ids := make([]int64, len(todo))
	for j, i := range todo {
		ids[j] = ds[i].InboundID
	}
	args = append(args, ids)
	if err := tx.Exec("UPDATE inbound SET outcome = ?, processed_at = ?"+set.String()+" WHERE id IN ?", args...).Error; err != nil {
		return fmt.Errorf("update ledger rows: %w", err)
	}
	return s.numberTickets(tx, ds, todo, ticketIDs, out)
}

// numberTickets gives the new tickets their projects' next numbers, in
// order: per project one statement that takes a range from the counter
// (which stays locked until commit) and one that sets the numbers.
func (s *Store) numberTickets(tx *gorm.DB, ds []ticket.Delivery, todo []int, ticketIDs []int64, out []ticket.Committed) error {
	var projects []int64
	byProject := map[int64][]int{} // project -> positions in todo
	for j, i := range todo {
		p := ds[i].ProjectID
		if _, ok := byProject[p]; !ok {
			projects = append(projects, p)
		}
		byProject[p] = append(byProject[p], j)
	}
	slices.Sort(projects) // one lock order for every group: no deadlock between them
	for _, p := range projects {
		js := byProject[p]
		var last int64
		err := tx.Raw("UPDATE projects SET ticket_seq = ticket_seq + ? WHERE id = ? RETURNING ticket_seq", len(js), p).Scan(&last).Error
		if err != nil || last == 0 {
			return fmt.Errorf("number %d tickets of project %d: %w", len(js), p, errors.Join(err, errIfZero(last)))
		}
		var set strings.Builder
		var args []any
		ids := make([]int64, len(js))
		for k, j := range js {
			n := last - int64(len(js)) + 1 + int64(k)
			set.WriteString(" WHEN ? THEN CAST(? AS BIGINT)")
			args = append(args, ticketIDs[j], n)
			ids[k] = ticketIDs[j]
			out[todo[j]].TicketNumber = n
		}
		args = append(args, ids)
		if err := tx.Exec("UPDATE tickets SET number = CASE id"+set.String()+" END WHERE id IN ?", args...).Error; err != nil {
			return fmt.Errorf("number %d tickets of project %d: %w", len(js), p, err)
		}
	}
	return nil
}

// outboundKey names the outbound message that records a new ticket's mail
// of one kind.
type outboundKey struct {
	ticketID int64
	kind     ticket.NotificationKind
}

// recordNewTicketsOutbound writes, in one multi-row statement, the
// outbound messages that record the notifications of the deliveries
// ds[todo...] (outboundRecords), whose tickets are ticketIDs (rows
// tickets), and returns them by ticket and kind.
func recordNewTicketsOutbound(tx *gorm.DB, ds []ticket.Delivery, todo []int, ticketIDs []int64, tickets []ticketRow, now time.Time) (map[outboundKey]int64, error) {
	var rows []messageRow
	for j, i := range todo {
		desk, err := deskAddress(tx, ds[i])
		if err != nil {
			return nil, err
		}
		recs, _ := outboundRecords(desk, tickets[j].Subject, ds[i].Notify, now)
		for _, m := range recs {
			row, err := newMessageRow(ticketIDs[j], m)
			if err != nil {
				return nil, fmt.Errorf("inbound %d: outbound record: %w", ds[i].InboundID, err)
			}
			rows = append(rows, row)
		}
	}
	out := map[outboundKey]int64{}
	if len(rows) == 0 {
		return out, nil
	}
	if err := tx.CreateInBatches(rows, fetchedPerStatement).Error; err != nil {
		return nil, fmt.Errorf("record outbound mail: %w", err)
	}
	var got []messageRow
	err := tx.Select("id", "ticket_id", "kind").
		Where("ticket_id IN ? AND direction = ?", ticketIDs, string(ticket.DirectionOutbound)).Find(&got).Error
	if err != nil {
		return nil, fmt.Errorf("read outbound records: %w", err)
	}
	for _, m := range got {
		out[outboundKey{m.TicketID, ticket.NotificationKind(m.Kind)}] = m.ID
	}
	return out, nil
}
