package store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/servicedesk/servicedesk/ticket"
)

// InboundFilter selects ledger rows; zero fields match all.
type InboundFilter struct {
	Project string         // project key
	Outcome ticket.Outcome // "" = any
}

// inboundView is an inbound row joined with its project key and ticket number.
type inboundView struct {
	Row          inboundRow `gorm:"embedded"`
	ProjectKey   string
	TicketNumber int64
}

const inboundSelect = "inbound.*, projects.\"key\" AS project_key, COALESCE(tickets.number, 0) AS ticket_number"

// inboundQuery joins a row with the desk whose ledger shows it (desk_id;
// a row some insert left without one shows under its mailbox).
func inboundQuery(tx *gorm.DB) *gorm.DB {
	return tx.Table("inbound").Select(inboundSelect).
		Joins("JOIN projects ON projects.id = CASE WHEN inbound.desk_id = 0 THEN inbound.project_id ELSE inbound.desk_id END").
		Joins("LEFT JOIN tickets ON tickets.id = inbound.ticket_id")
}

func (v inboundView) toTicket() ticket.Inbound {
	in := ticket.Inbound{
		ID:           v.Row.ID,
		ProjectID:    v.Row.ProjectID,
		Project:      v.ProjectKey,
		UIDValidity:  uint32(v.Row.UIDValidity),
		UID:          uint32(v.Row.UID),
		Size:         v.Row.Size,
		MessageID:    v.Row.MessageID,
		From:         v.Row.FromAddr,
		Subject:      v.Row.Subject,
		ReceivedAt:   v.Row.ReceivedAt,
		Outcome:      ticket.Outcome(v.Row.Outcome),
		TicketID:     v.Row.TicketID,
		TicketNumber: v.TicketNumber,
		Reason:       v.Row.Reason,
		Applied:      v.Row.Applied,
		ProcessedAt:  fromNullTime(v.Row.ProcessedAt),

		Answer: v.Row.AnswerState, AnswerReason: v.Row.AnswerReason, AnswerMessageID: v.Row.AnswerMailID,
	}
	if v.Row.RawSHA256 != nil {
		in.RawSHA256 = *v.Row.RawSHA256
	}
	return in
}

// putBlob stores data content-addressed (insert if absent) and returns its
// SHA-256 in hex.
func putBlob(tx *gorm.DB, data []byte) (string, error) {
	b := newBlob(data)
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "sha256"}}, DoNothing: true}).Create(&b).Error
	if err != nil {
		return "", fmt.Errorf("store blob %s: %w", b.SHA256[:12], err)
	}
	return b.SHA256, nil
}

// newBlob is the content-addressed row of data.
func newBlob(data []byte) blobRow {
	sum := sha256.Sum256(data)
	if data == nil {
		data = []byte{}
	}
	return blobRow{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Data: data}
}

// addDeadLetter records an open dead letter unless one is already open for
// the same inbound row or notification.
func addDeadLetter(tx *gorm.DB, d deadLetterRow) error {
	q := tx.Model(&deadLetterRow{}).Where("kind = ? AND resolved_at IS NULL", d.Kind)
	if d.Kind == string(ticket.DeadInbound) {
		q = q.Where("inbound_id = ?", d.InboundID)
	} else {
		q = q.Where("notification_id = ?", d.NotificationID)
	}
	var n int64
	if err := q.Count(&n).Error; err != nil {
		return fmt.Errorf("look up dead letter: %w", err)
	}
	if n > 0 {
		return nil
	}
	if err := tx.Create(&d).Error; err != nil {
		return fmt.Errorf("create dead letter: %w", err)
	}
	return nil
}

func inboundDeadLetter(row inboundRow, reason string) deadLetterRow {
	return deadLetterRow{
		Kind: string(ticket.DeadInbound), ProjectID: cmp.Or(row.DeskID, row.ProjectID), InboundID: row.ID,
		MessageID: row.MessageID, Address: row.FromAddr, Subject: row.Subject, Reason: reason,
	}
}

// RecordFetched writes a fetched message to the ledger in one transaction:
// the raw bytes as a content-addressed blob and the ledger row. It is
// idempotent on (ProjectID, UIDValidity, UID): a second call returns the
// existing id with created false and changes nothing. With raw nil and
// in.Outcome rejected (too large, not downloaded) the row keeps in.Reason
// and an inbound dead letter is opened.
func (s *Store) RecordFetched(ctx context.Context, in ticket.Inbound, raw []byte) (int64, bool, error) {
	var (
		id      int64
		created bool
	)
	rejected := raw == nil && in.Outcome == ticket.OutcomeRejected
	if raw == nil && !rejected {
		return 0, false, fmt.Errorf("record fetched uid %d: no raw message and not rejected", in.UID)
	}
	err := s.tx(ctx, func(tx *gorm.DB) error {
		id, created = 0, false
		var existing inboundRow
		err := tx.Select("id").Where("project_id = ? AND uid_validity = ? AND uid = ?",
			in.ProjectID, int64(in.UIDValidity), int64(in.UID)).Take(&existing).Error
		if err == nil {
			id = existing.ID
			return nil
		}
		if !errors.Is(err, gorm.ErrRecordNotFound) {
			return fmt.Errorf("record fetched uid %d: look up ledger: %w", in.UID, err)
		}
		row := inboundRow{
			ProjectID: in.ProjectID, UIDValidity: int64(in.UIDValidity), UID: int64(in.UID),
			Size: in.Size, MessageID: in.MessageID, FromAddr: in.From, Subject: in.Subject,
			ReceivedAt: in.ReceivedAt.UTC(), DeskID: in.ProjectID,
		}
		if row.ReceivedAt.IsZero() {
			row.ReceivedAt = s.now().UTC()
		}
		if rejected {
			row.Outcome = string(ticket.OutcomeRejected)
			row.Reason = in.Reason
			row.ProcessedAt = nullTime(s.now())
		} else {
			key, err := putBlob(tx, raw)
			if err != nil {
				return fmt.Errorf("record fetched uid %d: %w", in.UID, err)
			}
			row.RawSHA256 = &key
			if row.Size == 0 {
				row.Size = int64(len(raw))
			}
		}
		// ON CONFLICT DO NOTHING covers a concurrent insert on PostgreSQL.
		res := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "project_id"}, {Name: "uid_validity"}, {Name: "uid"}},
			DoNothing: true,
		}).Create(&row)
		if res.Error != nil {
			return fmt.Errorf("record fetched uid %d: insert ledger row: %w", in.UID, res.Error)
		}
		if res.RowsAffected == 0 {
			err := tx.Select("id").Where("project_id = ? AND uid_validity = ? AND uid = ?",
				in.ProjectID, int64(in.UIDValidity), int64(in.UID)).Take(&existing).Error
			if err != nil {
				return fmt.Errorf("record fetched uid %d: read concurrent ledger row: %w", in.UID, err)
			}
			id = existing.ID
			return nil
		}
		id, created = row.ID, true
		if rejected {
			if err := addDeadLetter(tx, inboundDeadLetter(row, in.Reason)); err != nil {
				return fmt.Errorf("record fetched uid %d: %w", in.UID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return id, created, nil
}

// Fetched is one downloaded message for RecordFetchedBatch.
type Fetched struct {
	UID        uint32
	Raw        []byte
	ReceivedAt time.Time
}

// RecordFetchedBatch writes messages downloaded from one folder of a
// project (one UIDVALIDITY) to the ledger in one transaction, with the raw
// bytes as content-addressed blobs: RecordFetched for many messages at
// once, in a few multi-row statements. It returns the ledger IDs in the
// order of msgs. A message already in the ledger (same UID) keeps its row
// and ID, so a batch downloaded again after a crash changes nothing.
func (s *Store) RecordFetchedBatch(ctx context.Context, projectID int64, uidValidity uint32, msgs []Fetched) ([]int64, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	blobs := make([]blobRow, 0, len(msgs))
	rows := make([]inboundRow, 0, len(msgs))
	uids := make([]int64, 0, len(msgs))
	seen := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		if m.Raw == nil {
			return nil, fmt.Errorf("record fetched uid %d: no raw message", m.UID)
		}
		b := newBlob(m.Raw)
		if !seen[b.SHA256] {
			seen[b.SHA256] = true
			blobs = append(blobs, b)
		}
		key := b.SHA256
		at := m.ReceivedAt
		if at.IsZero() {
			at = s.now()
		}
		rows = append(rows, inboundRow{ProjectID: projectID, UIDValidity: int64(uidValidity), UID: int64(m.UID),
			Size: int64(len(m.Raw)), RawSHA256: &key, ReceivedAt: at.UTC(), DeskID: projectID})
		uids = append(uids, int64(m.UID))
	}
	first, last := msgs[0].UID, msgs[len(msgs)-1].UID
	ids := make([]int64, len(msgs))
	err := s.tx(ctx, func(tx *gorm.DB) error {
		err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "sha256"}}, DoNothing: true}).
			CreateInBatches(blobs, fetchedPerStatement).Error
		if err != nil {
			return fmt.Errorf("store raw messages: %w", err)
		}
		// The inserted rows' IDs are read back by UID rather than taken
		// from RETURNING, which skips the rows that were already there.
		ins := make([]inboundRow, len(rows))
		copy(ins, rows)
		err = tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "project_id"}, {Name: "uid_validity"}, {Name: "uid"}},
			DoNothing: true,
		}).CreateInBatches(ins, fetchedPerStatement).Error
		if err != nil {
			return fmt.Errorf("insert ledger rows: %w", err)
		}
		// The range makes the UID part of the index scan whatever the
		// planner believes: PostgreSQL without statistics (a fresh
		// schema, autovacuum off) read every row of the folder through
		// inbound_uid's first two columns and filtered them by the IN
		// list, once per batch.
		var got []inboundRow
		err = tx.Select("id", "uid").Where("project_id = ? AND uid_validity = ? AND uid BETWEEN ? AND ? AND uid IN ?",
			projectID, int64(uidValidity), slices.Min(uids), slices.Max(uids), uids).Find(&got).Error
		if err != nil {
			return fmt.Errorf("read ledger rows: %w", err)
		}
		byUID := make(map[int64]int64, len(got))
		for _, r := range got {
			byUID[r.UID] = r.ID
		}
		for i, u := range uids {
			if ids[i] = byUID[u]; ids[i] == 0 {
				return fmt.Errorf("ledger row of uid %d missing after insert", u)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record %d fetched messages (uid %d..%d): %w", len(msgs), first, last, err)
	}
	return ids, nil
}

// fetchedPerStatement bounds the rows of one multi-row INSERT (SQLite
// allows 32,766 parameters in a statement, PostgreSQL 65,535).
const fetchedPerStatement = 100

// AttachRaw stores the raw bytes of a row that is being refetched (after a
// dead letter retry) and re-arms it: raw_sha256 set, outcome ”, refetch off.
func (s *Store) AttachRaw(ctx context.Context, inboundID int64, raw []byte) error {
	if raw == nil {
		return fmt.Errorf("attach raw to inbound %d: no data", inboundID)
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		key, err := putBlob(tx, raw)
		if err != nil {
			return fmt.Errorf("attach raw to inbound %d: %w", inboundID, err)
		}
		res := tx.Model(&inboundRow{}).Where("id = ?", inboundID).Updates(map[string]any{
			"raw_sha256": key, "size": int64(len(raw)), "outcome": "", "refetch": false, "processed_at": nil,
		})
		if res.Error != nil {
			return fmt.Errorf("attach raw to inbound %d: %w", inboundID, res.Error)
		}
		if res.RowsAffected == 0 {
			return fmt.Errorf("attach raw to inbound %d: %w", inboundID, ErrNotFound)
		}
		return nil
	})
}

// RejectInbound records that a row is refused (e.g. still too large on a
// refetch): outcome rejected with reason, refetch off, and an open inbound
// dead letter (one at a time per row).
func (s *Store) RejectInbound(ctx context.Context, inboundID int64, reason string) error {
	return s.finishInbound(ctx, inboundID, ticket.OutcomeRejected, reason, "reject")
}

// FailInbound records that processing a row failed for good: outcome failed
// with reason and an open inbound dead letter (no second one while open).
func (s *Store) FailInbound(ctx context.Context, inboundID int64, reason string) error {
	return s.finishInbound(ctx, inboundID, ticket.OutcomeFailed, reason, "fail")
}

func (s *Store) finishInbound(ctx context.Context, inboundID int64, outcome ticket.Outcome, reason, verb string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		var row inboundRow
		if err := lockForUpdate(tx, s.dialect).Where("id = ?", inboundID).Take(&row).Error; err != nil {
			return fmt.Errorf("%s inbound %d: %w", verb, inboundID, notFound(err))
		}
		err := tx.Model(&inboundRow{}).Where("id = ?", inboundID).Updates(map[string]any{
			"outcome": string(outcome), "reason": reason, "refetch": false, "processed_at": s.now().UTC(),
		}).Error
		if err != nil {
			return fmt.Errorf("%s inbound %d: %w", verb, inboundID, err)
		}
		if err := addDeadLetter(tx, inboundDeadLetter(row, reason)); err != nil {
			return fmt.Errorf("%s inbound %d: %w", verb, inboundID, err)
		}
		return nil
	})
}

// lockForUpdate adds FOR UPDATE on PostgreSQL; SQLite's immediate
// transactions already hold the write lock.
func lockForUpdate(tx *gorm.DB, dialect string) *gorm.DB {
	if dialect == dialectPostgres {
		return tx.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return tx
}

// Inbound returns one ledger row with its project key and ticket number.
func (s *Store) Inbound(ctx context.Context, id int64) (ticket.Inbound, error) {
	var v inboundView
	if err := inboundQuery(s.db.WithContext(ctx)).Where("inbound.id = ?", id).Take(&v).Error; err != nil {
		return ticket.Inbound{}, fmt.Errorf("inbound %d: %w", id, notFound(err))
	}
	return v.toTicket(), nil
}

// InboundMessage returns ledger row id with its raw message, in one
// query: the work of a process job. raw is nil when the row has no raw
// message stored, when its blob is missing, or when the row's size is
// above maxSize (the message is not read then).
func (s *Store) InboundMessage(ctx context.Context, id, maxSize int64) (ticket.Inbound, []byte, error) {
	var v struct {
		View     inboundView `gorm:"embedded"`
		RawFound bool
		RawData  []byte
	}
	err := inboundQuery(s.db.WithContext(ctx)).
		Select(inboundSelect+", blobs.sha256 IS NOT NULL AS raw_found, blobs.data AS raw_data").
		Joins("LEFT JOIN blobs ON blobs.sha256 = inbound.raw_sha256 AND inbound.size <= ?", maxSize).
		Where("inbound.id = ?", id).Take(&v).Error
	if err != nil {
		return ticket.Inbound{}, nil, fmt.Errorf("inbound %d: %w", id, notFound(err))
	}
	if v.RawFound && v.RawData == nil {
		v.RawData = []byte{}
	}
	return v.View.toTicket(), v.RawData, nil
}

// UnprocessedInbound returns the IDs of rows of a project that have their
// raw message but no outcome yet and were fetched before fetchedBefore,
// oldest first: the work whose process task may have been lost.
func (s *Store) UnprocessedInbound(ctx context.Context, projectID int64, fetchedBefore time.Time, limit int) ([]int64, error) {
	var ids []int64
	err := s.db.WithContext(ctx).Model(&inboundRow{}).
		Where("project_id = ? AND outcome = '' AND raw_sha256 IS NOT NULL AND received_at < ?", projectID, fetchedBefore.UTC()).
		Order("id").Limit(limitOr(limit)).Pluck("id", &ids).Error
	if err != nil {
		return nil, fmt.Errorf("list unprocessed inbound of project %d: %w", projectID, err)
	}
	return ids, nil
}

// UnappliedInbound returns rows of a project and UIDVALIDITY whose outcome is
// final but whose after_processing (flag, move, delete) is not done yet,
// oldest first.
func (s *Store) UnappliedInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error) {
	var final []string
	for _, o := range []ticket.Outcome{ticket.OutcomeTicketCreated, ticket.OutcomeReplyAdded,
		ticket.OutcomeAutoReply, ticket.OutcomeBounce, ticket.OutcomeDuplicate, ticket.OutcomeUnsubscribed} {
		if o.Final() {
			final = append(final, string(o))
		}
	}
	var rows []inboundView
	err := inboundQuery(s.db.WithContext(ctx)).
		Where("inbound.project_id = ? AND inbound.uid_validity = ? AND inbound."+pendingApply+" AND inbound.outcome IN ?",
			projectID, int64(uidValidity), final).
		Order("inbound.id").Limit(limitOr(limit)).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list unapplied inbound of project %d: %w", projectID, err)
	}
	return viewsToTicket(rows), nil
}

// MarkApplied records that after_processing was done for these rows.
func (s *Store) MarkApplied(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	err := s.db.WithContext(ctx).Model(&inboundRow{}).Where("id IN ?", ids).Update("applied", true).Error
	if err != nil {
		return fmt.Errorf("mark %d inbound rows applied: %w", len(ids), err)
	}
	return nil
}

// RefetchInbound returns rows of a project and UIDVALIDITY flagged for a
// new download (a retried rejected message), oldest first.
func (s *Store) RefetchInbound(ctx context.Context, projectID int64, uidValidity uint32, limit int) ([]ticket.Inbound, error) {
	var rows []inboundView
	err := inboundQuery(s.db.WithContext(ctx)).
		Where("inbound.project_id = ? AND inbound.uid_validity = ? AND inbound."+pendingRefetch, projectID, int64(uidValidity)).
		Order("inbound.id").Limit(limitOr(limit)).Find(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list inbound to refetch of project %d: %w", projectID, err)
	}
	return viewsToTicket(rows), nil
}

// ListInbound returns a page of the ledger, newest first, and whether more
// pages follow.
func (s *Store) ListInbound(ctx context.Context, f InboundFilter, p Page) ([]ticket.Inbound, bool, error) {
	p = p.Normalize()
	q := inboundQuery(s.db.WithContext(ctx))
	if f.Project != "" {
		// By desk_id, so that the index on (desk_id, received_at) serves
		// the page.
		q = q.Where(`inbound.desk_id = (SELECT id FROM projects WHERE "key" = ?)`, f.Project)
	}
	if f.Outcome != "" {
		q = q.Where("inbound.outcome = ?", string(f.Outcome))
	}
	var rows []inboundView
	err := newestFirst(q, "inbound", "received_at", p).Find(&rows).Error
	if err != nil {
		return nil, false, fmt.Errorf("list inbound: %w", err)
	}
	more := len(rows) > p.PerPage
	if more {
		rows = rows[:p.PerPage]
	}
	return viewsToTicket(rows), more, nil
}

// Blob returns content stored under its SHA-256 hex, or ErrNotFound.
func (s *Store) Blob(ctx context.Context, sha256hex string) ([]byte, error) {
	var b blobRow
	if err := s.db.WithContext(ctx).Where("sha256 = ?", sha256hex).Take(&b).Error; err != nil {
		return nil, fmt.Errorf("blob %s: %w", sha256hex, notFound(err))
	}
	return b.Data, nil
}

func viewsToTicket(rows []inboundView) []ticket.Inbound {
	out := make([]ticket.Inbound, len(rows))
	for i, r := range rows {
		out[i] = r.toTicket()
	}
	return out
}

// limitOr caps list sizes: <= 0 means 100, at most 1000.
func limitOr(limit int) int {
	switch {
	case limit <= 0:
		return 100
	case limit > 1000:
		return 1000
	}
	return limit
}
