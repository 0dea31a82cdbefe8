package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/servicedesk/servicedesk/ticket"
)

func (r projectRow) toTicket() ticket.Project {
	return ticket.Project{ID: r.ID, Key: r.Key, Name: r.Name, Address: r.Address}
}

// SyncProjects upserts the configured projects by Key (name and address are
// updated; the ticket counter is kept) and returns them with their IDs, in
// the order given. Projects missing from ps are left alone.
func (s *Store) SyncProjects(ctx context.Context, ps []ticket.Project) ([]ticket.Project, error) {
	out := make([]ticket.Project, len(ps))
	err := s.tx(ctx, func(tx *gorm.DB) error {
		for i, p := range ps {
			if p.Key == "" {
				return fmt.Errorf("sync projects: project %d has no key", i)
			}
			row := projectRow{Key: p.Key, Name: p.Name, Address: p.Address}
			err := tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "key"}},
				DoUpdates: clause.AssignmentColumns([]string{"name", "address"}),
			}).Create(&row).Error
			if err != nil {
				return fmt.Errorf("sync projects: upsert %q: %w", p.Key, err)
			}
			// The upsert's returned ID is unreliable on conflict in SQLite;
			// read the row back.
			if err := tx.Where(`"key" = ?`, p.Key).Take(&row).Error; err != nil {
				return fmt.Errorf("sync projects: read %q: %w", p.Key, err)
			}
			out[i] = row.toTicket()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Projects returns every project, ordered by key; the row of the intake
// mailbox (ticket.IntakeKey) is no desk and is left out.
func (s *Store) Projects(ctx context.Context) ([]ticket.Project, error) {
	var rows []projectRow
	if err := s.db.WithContext(ctx).Where(`"key" <> ?`, ticket.IntakeKey).Order(`"key"`).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	out := make([]ticket.Project, len(rows))
	for i, r := range rows {
		out[i] = r.toTicket()
	}
	return out, nil
}

// ProjectByKey returns the project with key, or ErrNotFound.
func (s *Store) ProjectByKey(ctx context.Context, key string) (ticket.Project, error) {
	var row projectRow
	if err := s.db.WithContext(ctx).Where(`"key" = ?`, key).Take(&row).Error; err != nil {
		return ticket.Project{}, fmt.Errorf("project %q: %w", key, notFound(err))
	}
	return row.toTicket(), nil
}

// MailboxState is the fetch cursor and health of one project's mailbox.
type MailboxState struct {
	ProjectID     int64
	UIDValidity   uint32
	LastUID       uint32
	LastSuccessAt time.Time // zero if never
	LastErrorAt   time.Time // zero if never
	LastError     string    // of the last run; "" after a success
}

func (r mailboxStateRow) toState() MailboxState {
	return MailboxState{
		ProjectID:     r.ProjectID,
		UIDValidity:   uint32(r.UIDValidity),
		LastUID:       uint32(r.LastUID),
		LastSuccessAt: fromNullTime(r.LastSuccessAt),
		LastErrorAt:   fromNullTime(r.LastErrorAt),
		LastError:     r.LastError,
	}
}

// ensureMailbox creates the mailbox_states row of a project if missing.
func ensureMailbox(tx *gorm.DB, projectID int64) error {
	err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "project_id"}}, DoNothing: true}).
		Create(&mailboxStateRow{ProjectID: projectID}).Error
	if err != nil {
		return fmt.Errorf("create mailbox state of project %d: %w", projectID, err)
	}
	return nil
}

// AcquireMailbox takes the fetch lease of a project's mailbox for ttl, so
// that no two fetches of one mailbox overlap, across processes. It succeeds
// when the lease is free, expired, or already owner's (then it is extended),
// and returns the mailbox state with acquired true. When another owner holds
// it, acquired is false and the error nil.
func (s *Store) AcquireMailbox(ctx context.Context, projectID int64, owner string, ttl time.Duration) (MailboxState, bool, error) {
	if owner == "" {
		return MailboxState{}, false, fmt.Errorf("acquire mailbox of project %d: empty owner", projectID)
	}
	var (
		state    MailboxState
		acquired bool
	)
	err := s.tx(ctx, func(tx *gorm.DB) error {
		acquired = false
		if err := ensureMailbox(tx, projectID); err != nil {
			return fmt.Errorf("acquire mailbox: %w", err)
		}
		now := s.now()
		res := tx.Model(&mailboxStateRow{}).
			Where("project_id = ? AND (lease_owner = '' OR lease_owner = ? OR lease_until < ?)", projectID, owner, now.UnixMilli()).
			Updates(map[string]any{"lease_owner": owner, "lease_until": now.Add(ttl).UnixMilli()})
		if res.Error != nil {
			return fmt.Errorf("acquire mailbox of project %d: %w", projectID, res.Error)
		}
		acquired = res.RowsAffected == 1
		var row mailboxStateRow
		if err := tx.Where("project_id = ?", projectID).Take(&row).Error; err != nil {
			return fmt.Errorf("acquire mailbox: read state of project %d: %w", projectID, err)
		}
		state = row.toState()
		return nil
	})
	if err != nil {
		return MailboxState{}, false, err
	}
	return state, acquired, nil
}

// RenewMailbox extends owner's lease by ttl from now. It returns
// ErrLeaseLost when the lease is not owner's any more: stop fetching.
func (s *Store) RenewMailbox(ctx context.Context, projectID int64, owner string, ttl time.Duration) error {
	res := s.db.WithContext(ctx).Model(&mailboxStateRow{}).
		Where("project_id = ? AND lease_owner = ?", projectID, owner).
		Update("lease_until", s.now().Add(ttl).UnixMilli())
	if res.Error != nil {
		return fmt.Errorf("renew lease of project %d: %w", projectID, res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("renew lease of project %d: %w", projectID, ErrLeaseLost)
	}
	return nil
}

// ReleaseMailbox gives up owner's lease. Releasing a lease that is not
// owner's (any more) does nothing.
func (s *Store) ReleaseMailbox(ctx context.Context, projectID int64, owner string) error {
	err := s.db.WithContext(ctx).Model(&mailboxStateRow{}).
		Where("project_id = ? AND lease_owner = ?", projectID, owner).
		Updates(map[string]any{"lease_owner": "", "lease_until": 0}).Error
	if err != nil {
		return fmt.Errorf("release lease of project %d: %w", projectID, err)
	}
	return nil
}

// SetMailboxCursor records the UIDVALIDITY and the highest UID fetched.
func (s *Store) SetMailboxCursor(ctx context.Context, projectID int64, uidValidity, lastUID uint32) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := ensureMailbox(tx, projectID); err != nil {
			return fmt.Errorf("set mailbox cursor: %w", err)
		}
		err := tx.Model(&mailboxStateRow{}).Where("project_id = ?", projectID).
			Updates(map[string]any{"uid_validity": int64(uidValidity), "last_uid": int64(lastUID)}).Error
		if err != nil {
			return fmt.Errorf("set mailbox cursor of project %d: %w", projectID, err)
		}
		return nil
	})
}

// RecordMailboxRun records the end of a fetch run at at: runErr "" is a
// success (sets last_success_at, clears last_error), else the error text.
func (s *Store) RecordMailboxRun(ctx context.Context, projectID int64, at time.Time, runErr string) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := ensureMailbox(tx, projectID); err != nil {
			return fmt.Errorf("record mailbox run: %w", err)
		}
		upd := map[string]any{"last_success_at": at.UTC(), "last_error": ""}
		if runErr != "" {
			upd = map[string]any{"last_error": runErr, "last_error_at": at.UTC()}
		}
		if err := tx.Model(&mailboxStateRow{}).Where("project_id = ?", projectID).Updates(upd).Error; err != nil {
			return fmt.Errorf("record mailbox run of project %d: %w", projectID, err)
		}
		return nil
	})
}

// MailboxStates returns the state of every mailbox that has one, by project.
func (s *Store) MailboxStates(ctx context.Context) ([]MailboxState, error) {
	var rows []mailboxStateRow
	if err := s.db.WithContext(ctx).Order("project_id").Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("list mailbox states: %w", err)
	}
	out := make([]MailboxState, len(rows))
	for i, r := range rows {
		out[i] = r.toState()
	}
	return out, nil
}

func fromNullTime(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time
}

func nullTime(t time.Time) sql.NullTime {
	if t.IsZero() {
		return sql.NullTime{}
	}
	return sql.NullTime{Time: t.UTC(), Valid: true}
}
