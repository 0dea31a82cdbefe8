package store

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// migration is one numbered schema step. Steps run in order, each once, in
// one transaction with the bookkeeping row in schema_migrations.
type migration struct {
	version int
	name    string
	up      func(tx *gorm.DB) error
}

// migrations is the ordered schema history. Append new steps; never edit or
// renumber a released one. Step 1 creates the schema from the models; later
// steps must use explicit, idempotent statements (Migrator().HasColumn ...),
// because on a fresh database step 1 already creates today's models.
var migrations = []migration{
	{1, "initial schema", func(tx *gorm.DB) error { return tx.AutoMigrate(allModels()...) }},
	{2, "bounces and per-recipient notification index", migrateBounces},
	{3, "project address verifications", migrateVerifications},
	{4, "indexes for newest-first lists", migrateListIndexes},
	{5, "lz4 compression of raw mail and message bodies (PostgreSQL)", migrateLZ4},
	{6, "index for counting a project's mail per hour", migrateProjectMailIndex},
	{13, "indexes for the mailbox sync's ledger queries", migrateSyncIndexes},
}

// migrateSyncIndexes lets the mailbox sync find the rows it works on
// (processed but not yet flagged, fetched but not processed, flagged for
// a refetch) from an index rather than by reading every row of the
// project: without them each batch of a backlog cost a scan of the whole
// ledger. (SQLite, which keeps no statistics, otherwise reads the
// unprocessed rows through idx_inbound_project_received: every row
// received before the cutoff.)
func migrateSyncIndexes(tx *gorm.DB) error {
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS idx_inbound_unapplied ON inbound (project_id, uid_validity, applied, id)`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_unprocessed ON inbound (project_id, outcome, received_at)`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_refetch ON inbound (project_id, uid_validity, refetch, id)`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateProjectMailIndex lets the project's ceiling on automatic mail
// count one hour of its notifications from an index rather than every
// notification the project ever sent.
func migrateProjectMailIndex(tx *gorm.DB) error {
	return tx.Exec(`CREATE INDEX IF NOT EXISTS idx_notifications_project_created ON notifications (project_id, created_at)`).Error
}

// migrateBounces adds the bounces table (a recipient of a ticket whose mail
// bounced, suppressed until until_ms, Unix milliseconds) and an index for
// counting a recipient's notifications. Plain SQL that SQLite and
// PostgreSQL both accept; IF NOT EXISTS keeps it idempotent.
func migrateBounces(tx *gorm.DB) error {
	stmts := []string{
		`CREATE TABLE IF NOT EXISTS bounces (
			ticket_id BIGINT NOT NULL REFERENCES tickets(id) ON DELETE CASCADE,
			email TEXT NOT NULL,
			until_ms BIGINT NOT NULL,
			PRIMARY KEY (ticket_id, email)
		)`,
		`CREATE INDEX IF NOT EXISTS idx_notifications_recipient ON notifications (project_id, LOWER(recipient), created_at)`,
	}
	for _, q := range stmts {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateListIndexes lets the newest-first lists of the API and the CLI
// read a page from an index instead of sorting every row of a project
// (the API benchmark measured 4 requests/s on 100,000 SQLite tickets
// before, hundreds after).
func migrateListIndexes(tx *gorm.DB) error {
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS idx_tickets_project_created ON tickets (project_id, created_at DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS idx_tickets_project_status_created ON tickets (project_id, status, created_at DESC, id DESC)`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_project_received ON inbound (project_id, received_at DESC, id DESC)`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateLZ4 has PostgreSQL compress raw mail and message bodies with lz4
// rather than pglz: the ingest benchmark found pglz_compress a seventh of
// the server's CPU. lz4 compresses text somewhat less and several times
// faster. Values already stored keep their compression. A server built
// without lz4, and SQLite, are left as they are.
func migrateLZ4(tx *gorm.DB) error {
	if tx.Dialector.Name() != dialectPostgres {
		return nil
	}
	var lz4 bool
	err := tx.Raw(`SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'`).Scan(&lz4).Error
	if err != nil || !lz4 {
		return err
	}
	for _, q := range []string{
		`ALTER TABLE blobs ALTER COLUMN data SET COMPRESSION lz4`,
		`ALTER TABLE messages ALTER COLUMN text SET COMPRESSION lz4`,
		`ALTER TABLE messages ALTER COLUMN html SET COMPRESSION lz4`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// advisoryLockKey identifies the migration lock in pg_advisory_xact_lock.
const advisoryLockKey = 0x5e7d_e5c0

// Migrate brings the schema up to date. It is safe when several processes
// run it at once: on PostgreSQL a transaction-scoped advisory lock
// serialises them, on SQLite the immediate transaction does.
func (s *Store) Migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *gorm.DB) error {
		if s.dialect == dialectPostgres {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", advisoryLockKey).Error; err != nil {
				return fmt.Errorf("migrate: take advisory lock: %w", err)
			}
		}
		if err := tx.AutoMigrate(&schemaMigration{}); err != nil {
			return fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		var current int
		if err := tx.Model(&schemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&current).Error; err != nil {
			return fmt.Errorf("migrate: read schema version: %w", err)
		}
		for _, m := range migrations {
			if m.version <= current {
				continue
			}
			if err := m.up(tx); err != nil {
				return fmt.Errorf("migrate: step %d (%s): %w", m.version, m.name, err)
			}
			if err := tx.Create(&schemaMigration{Version: m.version, AppliedAt: s.now().UTC()}).Error; err != nil {
				return fmt.Errorf("migrate: record step %d: %w", m.version, err)
			}
			s.log.InfoContext(ctx, "schema migrated", "version", m.version, "name", m.name)
		}
		return nil
	})
}

// SchemaVersion returns the highest applied migration (0 before Migrate).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	if !s.db.WithContext(ctx).Migrator().HasTable(&schemaMigration{}) {
		return 0, nil
	}
	var v int
	if err := s.db.WithContext(ctx).Model(&schemaMigration{}).Select("COALESCE(MAX(version), 0)").Scan(&v).Error; err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}
