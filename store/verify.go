package store

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Verification is the last address verification of a project: a mail sent
// through the project's SMTP to its own address and looked for in the
// ledger once the fetch picked it up. Status is "started", "ok" or one of
// the failure codes (incorrect_token, incorrect_from,
// mail_not_received_within_timeframe, invalid_credentials, smtp_host_issue,
// read_timeout, incorrect_forwarding_target).
type Verification struct {
	ProjectID  int64
	Token      string
	MailID     string // the Message-ID of the verification mail, "<...>"
	Status     string
	Detail     string
	StartedAt  time.Time
	FinishedAt time.Time
}

// migrateVerifications adds the verifications table: one row per project,
// the latest attempt. Times are Unix milliseconds, as in bounces.
func migrateVerifications(tx *gorm.DB) error {
	return tx.Exec(`CREATE TABLE IF NOT EXISTS verifications (
		project_id BIGINT PRIMARY KEY REFERENCES projects(id) ON DELETE CASCADE,
		token TEXT NOT NULL,
		mail_id TEXT NOT NULL,
		status TEXT NOT NULL,
		detail TEXT NOT NULL DEFAULT '',
		started_ms BIGINT NOT NULL,
		finished_ms BIGINT NOT NULL DEFAULT 0
	)`).Error
}

// StartVerification records a new attempt, replacing the previous one.
func (s *Store) StartVerification(ctx context.Context, v Verification) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Exec(`DELETE FROM verifications WHERE project_id = ?`, v.ProjectID).Error; err != nil {
			return fmt.Errorf("start verification: %w", err)
		}
		if err := tx.Exec(`INSERT INTO verifications (project_id, token, mail_id, status, detail, started_ms) VALUES (?, ?, ?, 'started', '', ?)`,
			v.ProjectID, v.Token, v.MailID, v.StartedAt.UnixMilli()).Error; err != nil {
			return fmt.Errorf("start verification: %w", err)
		}
		return nil
	})
}

// FinishVerification records the outcome of the current attempt.
func (s *Store) FinishVerification(ctx context.Context, projectID int64, status, detail string, at time.Time) error {
	res := s.db.WithContext(ctx).Exec(`UPDATE verifications SET status = ?, detail = ?, finished_ms = ? WHERE project_id = ?`,
		status, detail, at.UnixMilli(), projectID)
	if res.Error != nil {
		return fmt.Errorf("finish verification: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}

// VerificationOf returns the latest verification of a project.
func (s *Store) VerificationOf(ctx context.Context, projectID int64) (Verification, error) {
	var row struct {
		ProjectID  int64
		Token      string
		MailID     string
		Status     string
		Detail     string
		StartedMs  int64
		FinishedMs int64
	}
	res := s.db.WithContext(ctx).Raw(`SELECT project_id, token, mail_id, status, detail, started_ms, finished_ms FROM verifications WHERE project_id = ?`, projectID).Scan(&row)
	if res.Error != nil {
		return Verification{}, fmt.Errorf("load verification: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return Verification{}, ErrNotFound
	}
	v := Verification{ProjectID: row.ProjectID, Token: row.Token, MailID: row.MailID, Status: row.Status, Detail: row.Detail,
		StartedAt: time.UnixMilli(row.StartedMs).UTC()}
	if row.FinishedMs > 0 {
		v.FinishedAt = time.UnixMilli(row.FinishedMs).UTC()
	}
	return v, nil
}
