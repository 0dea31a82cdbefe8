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
	{7, "oauth2 refresh tokens, sealed", migrateOAuthTokens},
	{8, "UIDs of Microsoft Graph messages", migrateGraph},
	{9, "unsubscribes", migrateUnsubscribes},
	{10, "outbound mail recorded on its ticket; answers to rejected mail", migrateConversation},
	{11, "whole text of trimmed replies", migrateFullText},
	{12, "inbound.desk_id: the desk a row of the intake mailbox is routed to", migrateInboundDesk},
	{13, "indexes for the mailbox sync's ledger queries", migrateSyncIndexes},
	{14, "the sync's indexes of pending rows are partial: only those rows", migratePartialSyncIndexes},
	{15, "drop idx_inbound_outcome: idx_inbound_answer (outcome, answer_state) serves its queries", migrateDropOutcomeIndex},
}

// migrateInboundDesk adds inbound.desk_id, the project whose ledger shows
// a row (the mailbox's own, or the desk a row of the intake mailbox was
// routed to), fills it for the rows there are, and indexes it for the
// newest-first ledger of a desk.
func migrateInboundDesk(tx *gorm.DB) error {
	if !tx.Migrator().HasColumn(&inboundRow{}, "desk_id") {
		if err := tx.Exec(`ALTER TABLE inbound ADD COLUMN desk_id BIGINT NOT NULL DEFAULT 0`).Error; err != nil {
			return err
		}
	}
	for _, q := range []string{
		`UPDATE inbound SET desk_id = project_id WHERE desk_id = 0`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_desk_received ON inbound (desk_id, received_at DESC, id DESC)`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateConversation links each notification to the outbound message
// that records it on the ticket (notifications.outbound_id), and gives the
// inbound ledger the state of the answer to a rejected mail's sender.
func migrateConversation(tx *gorm.DB) error {
	timestamp := "DATETIME"
	if tx.Dialector.Name() == dialectPostgres {
		timestamp = "TIMESTAMPTZ"
	}
	columns := []struct{ table, column, ddl string }{
		{"notifications", "outbound_id", "BIGINT NOT NULL DEFAULT 0"},
		{"inbound", "answer_state", "VARCHAR(16) NOT NULL DEFAULT ''"},
		{"inbound", "answer_reason", "TEXT NOT NULL DEFAULT ''"},
		{"inbound", "answer_mail_id", "TEXT NOT NULL DEFAULT ''"},
		{"inbound", "answer_queued_at", timestamp},
	}
	for _, c := range columns {
		if tx.Migrator().HasColumn(c.table, c.column) {
			continue
		}
		if err := tx.Exec("ALTER TABLE " + c.table + " ADD COLUMN " + c.column + " " + c.ddl).Error; err != nil {
			return fmt.Errorf("add %s.%s: %w", c.table, c.column, err)
		}
	}
	for _, q := range []string{
		`CREATE INDEX IF NOT EXISTS idx_notifications_outbound_id ON notifications (outbound_id)`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_answer ON inbound (outcome, answer_state)`,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
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

// migratePartialSyncIndexes replaces two indexes of step 13 by partial
// ones holding only the rows the sync looks for: those whose
// after_processing is not done yet, and those flagged for a refetch. They
// stay small however long the ledger grows, and, above all, the planner
// can no longer take them for the batch's UID lookup (project_id,
// uid_validity, uid IN ...): on PostgreSQL without statistics (a fresh
// schema, or autovacuum off) it took idx_inbound_refetch, whose first two
// columns match too, and filtered every row of the project by UID, once
// per batch: a 100,000 mail backlog drained at two thirds of the rate of
// a 2,000 one. The queries spell the predicates as literals, as the
// indexes do, so that SQLite and a generic PostgreSQL plan can use them.
func migratePartialSyncIndexes(tx *gorm.DB) error {
	for _, q := range []string{
		`DROP INDEX IF EXISTS idx_inbound_unapplied`,
		`DROP INDEX IF EXISTS idx_inbound_refetch`,
		`CREATE INDEX IF NOT EXISTS idx_inbound_pending_apply ON inbound (project_id, uid_validity, id) WHERE ` + pendingApply,
		`CREATE INDEX IF NOT EXISTS idx_inbound_pending_refetch ON inbound (project_id, uid_validity, id) WHERE ` + pendingRefetch,
	} {
		if err := tx.Exec(q).Error; err != nil {
			return err
		}
	}
	return nil
}

// migrateDropOutcomeIndex drops the index on inbound.outcome alone (the
// model's until then): idx_inbound_answer begins with outcome and answers
// every query it did, and each ledger row is written three times (fetched,
// its outcome, after_processing applied), each time into every index.
func migrateDropOutcomeIndex(tx *gorm.DB) error {
	return tx.Exec(`DROP INDEX IF EXISTS idx_inbound_outcome`).Error
}

// The predicates of the partial indexes of step 14, which the queries
// that use them must contain word for word.
const (
	pendingApply   = "applied = false"
	pendingRefetch = "refetch = true"
)

// migrateProjectMailIndex lets the project's ceiling on automatic mail
// count one hour of its notifications from an index rather than every
// notification the project ever sent.
func migrateProjectMailIndex(tx *gorm.DB) error {
	return tx.Exec(`CREATE INDEX IF NOT EXISTS idx_notifications_project_created ON notifications (project_id, created_at)`).Error
}

// migrateFullText adds messages.full_text, the whole text of a reply
// whose text holds only its new part (ticket.Message.FullText), lz4
// compressed on PostgreSQL where migration 5 compressed text and html.
func migrateFullText(tx *gorm.DB) error {
	if !tx.Migrator().HasColumn(&messageRow{}, "full_text") {
		if err := tx.Exec(`ALTER TABLE messages ADD COLUMN full_text TEXT NOT NULL DEFAULT ''`).Error; err != nil {
			return err
		}
	}
	if tx.Dialector.Name() != dialectPostgres {
		return nil
	}
	var lz4 bool
	if err := tx.Raw(`SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'`).Scan(&lz4).Error; err != nil || !lz4 {
		return err
	}
	return tx.Exec(`ALTER TABLE messages ALTER COLUMN full_text SET COMPRESSION lz4`).Error
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
		// Every step not yet recorded runs, also one numbered below the
		// highest recorded: branches developed side by side take numbers
		// with gaps, and a step merged later (7 after 8) must still run.
		var versions []int
		if err := tx.Model(&schemaMigration{}).Pluck("version", &versions).Error; err != nil {
			return fmt.Errorf("migrate: read schema version: %w", err)
		}
		applied := map[int]bool{}
		for _, v := range versions {
			applied[v] = true
		}
		for _, m := range migrations {
			if applied[m.version] {
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
