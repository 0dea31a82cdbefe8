package store

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

func TestOpenRejectsBadURLs(t *testing.T) {
	tests := []struct {
		name, url, want string
	}{
		{"unknown scheme", "mysql://root@localhost/db", `unknown scheme "mysql"`},
		{"no scheme", "servicedesk.db", "not a URL"},
		{"sqlite without path", "sqlite://", "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.url, nil)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q) succeeded, want error containing %q", tt.url, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open(%q) error = %q, want it to contain %q", tt.url, err, tt.want)
			}
		})
	}
}

func TestOpenURLForms(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	tests := []struct {
		name, url, wantFile string
	}{
		{"relative sqlite path", "sqlite://./rel.db", filepath.Join(dir, "rel.db")},
		{"absolute sqlite path", "sqlite://" + filepath.Join(dir, "abs.db"), filepath.Join(dir, "abs.db")},
		{"postgresql scheme", strings.Replace(postgresURL(), "postgres://", "postgresql://", 1), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(t.Context(), tt.url, nil)
			if err != nil {
				t.Fatalf("Open(%q): %v", redactURL(tt.url), err)
			}
			defer s.Close()
			if err := s.Ping(t.Context()); err != nil {
				t.Fatalf("Ping: %v", err)
			}
			if tt.wantFile == "" {
				return
			}
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatalf("Migrate: %v", err)
			}
			if _, err := os.Stat(tt.wantFile); err != nil {
				t.Fatalf("database file %s: %v", tt.wantFile, err)
			}
			var mode string
			if err := s.db.Raw("PRAGMA journal_mode").Scan(&mode).Error; err != nil || mode != "wal" {
				t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
			}
			for pragma, want := range map[string]int{"foreign_keys": 1, "busy_timeout": 10000} {
				var got int
				if err := s.db.Raw("PRAGMA " + pragma).Scan(&got).Error; err != nil || got != want {
					t.Fatalf("PRAGMA %s = %d, %v; want %d", pragma, got, err, want)
				}
			}
		})
	}
}

func TestOpenSQLiteMemory(t *testing.T) {
	s, err := Open(t.Context(), "sqlite://:memory:", nil)
	if err != nil {
		t.Fatalf("Open(sqlite://:memory:): %v", err)
	}
	defer s.Close()
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate in memory: %v", err)
	}
	if _, err := s.Projects(t.Context()); err != nil {
		t.Fatalf("Projects after migrate: %v", err)
	}
}

func TestMigrate(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		t.Run("twice is a no-op", func(t *testing.T) {
			if err := e.s.Migrate(t.Context()); err != nil {
				t.Fatalf("second Migrate: %v", err)
			}
			v, err := e.s.SchemaVersion(t.Context())
			if err != nil || v != migrations[len(migrations)-1].version {
				t.Fatalf("SchemaVersion = %d, %v; want %d", v, err, migrations[len(migrations)-1].version)
			}
			if n := countRows(t, e.s, "schema_migrations"); n != int64(len(migrations)) {
				t.Fatalf("schema_migrations has %d rows, want %d", n, len(migrations))
			}
		})
		if e.s.dialect == dialectPostgres {
			t.Run("raw mail and bodies are compressed with lz4", func(t *testing.T) {
				for _, col := range []struct{ table, column string }{{"blobs", "data"}, {"messages", "text"}, {"messages", "html"}} {
					var method string
					err := e.s.db.WithContext(t.Context()).Raw(`SELECT attcompression::text FROM pg_attribute
						WHERE attrelid = to_regclass(?) AND attname = ?`, col.table, col.column).Scan(&method).Error
					if err != nil || method != "l" {
						t.Errorf("%s.%s compression = %q, %v; want l (lz4)", col.table, col.column, method, err)
					}
				}
			})
		}
		t.Run("concurrent from two stores", func(t *testing.T) {
			// A fresh database: drop everything by reopening a new env.
			fresh := setupUnmigrated(t, e)
			other := fresh.open(t)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, s := range []*Store{fresh.s, other} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = s.Migrate(t.Context())
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("Migrate in store %d: %v", i, err)
				}
			}
			if n := countRows(t, fresh.s, "schema_migrations"); n != int64(len(migrations)) {
				t.Fatalf("schema_migrations has %d rows after concurrent migrate, want %d", n, len(migrations))
			}
		})
	})
}

// setupUnmigrated gives an empty database of the same backend as e.
func setupUnmigrated(t *testing.T, e *env) *env {
	t.Helper()
	backend := "sqlite"
	if e.s.dialect == dialectPostgres {
		backend = "postgres"
	}
	fresh := setup(t, backend)
	// Undo setup's migration so the two stores race on an empty database.
	// Tables of later steps (plain SQL, not models) go first.
	for _, table := range []string{"verifications", "bounces"} {
		if err := fresh.s.db.Exec("DROP TABLE IF EXISTS " + table).Error; err != nil {
			t.Fatalf("drop table %s: %v", table, err)
		}
	}
	models := append([]any{&schemaMigration{}}, allModels()...)
	for i := len(models) - 1; i >= 0; i-- {
		if err := fresh.s.db.Migrator().DropTable(models[i]); err != nil {
			t.Fatalf("drop table: %v", err)
		}
	}
	return fresh
}

func TestSyncProjects(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		first := mustProjects(t, e.s, "zeta", "acme")
		if first[0].ID == 0 || first[1].ID == 0 || first[0].ID == first[1].ID {
			t.Fatalf("SyncProjects IDs = %d, %d; want two distinct non-zero IDs", first[0].ID, first[1].ID)
		}
		again, err := e.s.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme Renamed", Address: "help@acme.test"}})
		if err != nil {
			t.Fatalf("SyncProjects update: %v", err)
		}
		if again[0].ID != first[1].ID {
			t.Fatalf("re-synced acme has ID %d, want the same ID %d", again[0].ID, first[1].ID)
		}
		all, err := e.s.Projects(ctx)
		if err != nil {
			t.Fatalf("Projects: %v", err)
		}
		if len(all) != 2 || all[0].Key != "acme" || all[1].Key != "zeta" {
			t.Fatalf("Projects = %+v, want acme then zeta", all)
		}
		if all[0].Name != "Acme Renamed" || all[0].Address != "help@acme.test" {
			t.Fatalf("acme after update = %+v, want the new name and address", all[0])
		}
		got, err := e.s.ProjectByKey(ctx, "zeta")
		if err != nil || got != first[0] {
			t.Fatalf("ProjectByKey(zeta) = %+v, %v; want %+v", got, err, first[0])
		}
		_, err = e.s.ProjectByKey(ctx, "nope")
		wantErr(t, "ProjectByKey(nope)", err, ErrNotFound)
	})
}

func TestMailboxLease(t *testing.T) {
	forEach(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		p := mustProjects(t, e.s, "acme")[0]
		other := e.open(t) // a second process
		const ttl = time.Minute

		steps := []struct {
			name    string
			run     func() (bool, error)
			want    bool
			wantErr error
		}{
			{"a acquires the free lease", func() (bool, error) { _, ok, err := e.s.AcquireMailbox(ctx, p.ID, "a", ttl); return ok, err }, true, nil},
			{"b cannot take a's lease", func() (bool, error) { _, ok, err := other.AcquireMailbox(ctx, p.ID, "b", ttl); return ok, err }, false, nil},
			{"a re-acquires its own lease", func() (bool, error) { _, ok, err := e.s.AcquireMailbox(ctx, p.ID, "a", ttl); return ok, err }, true, nil},
			{"b cannot renew a's lease", func() (bool, error) { return false, other.RenewMailbox(ctx, p.ID, "b", ttl) }, false, ErrLeaseLost},
			{"a renews", func() (bool, error) { return true, e.s.RenewMailbox(ctx, p.ID, "a", ttl) }, true, nil},
			{"after expiry b takes it", func() (bool, error) {
				e.clock.Advance(2 * ttl)
				_, ok, err := other.AcquireMailbox(ctx, p.ID, "b", ttl)
				return ok, err
			}, true, nil},
			{"a's renew then says lease lost", func() (bool, error) { return false, e.s.RenewMailbox(ctx, p.ID, "a", ttl) }, false, ErrLeaseLost},
			{"a's release does not free b's lease", func() (bool, error) {
				if err := e.s.ReleaseMailbox(ctx, p.ID, "a"); err != nil {
					return false, err
				}
				_, ok, err := e.s.AcquireMailbox(ctx, p.ID, "a", ttl)
				return ok, err
			}, false, nil},
			{"after b releases a acquires", func() (bool, error) {
				if err := other.ReleaseMailbox(ctx, p.ID, "b"); err != nil {
					return false, err
				}
				_, ok, err := e.s.AcquireMailbox(ctx, p.ID, "a", ttl)
				return ok, err
			}, true, nil},
		}
		for _, st := range steps {
			got, err := st.run()
			if st.wantErr != nil {
				wantErr(t, st.name, err, st.wantErr)
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if got != st.want {
				t.Fatalf("%s: acquired = %v, want %v", st.name, got, st.want)
			}
		}

		t.Run("only one of many concurrent owners wins", func(t *testing.T) {
			q := mustProjects(t, e.s, "race")[0]
			var mu sync.Mutex
			winners := 0
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := e.s
					if i%2 == 1 {
						s = other
					}
					_, ok, err := s.AcquireMailbox(ctx, q.ID, "owner-"+string(rune('a'+i)), ttl)
					if err != nil {
						t.Errorf("owner %d: AcquireMailbox: %v", i, err)
					}
					if ok {
						mu.Lock()
						winners++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if winners != 1 {
				t.Fatalf("%d owners acquired the lease at once, want exactly 1", winners)
			}
		})

		t.Run("cursor and runs", func(t *testing.T) {
			if err := e.s.SetMailboxCursor(ctx, p.ID, 7, 42); err != nil {
				t.Fatalf("SetMailboxCursor: %v", err)
			}
			failAt := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
			if err := e.s.RecordMailboxRun(ctx, p.ID, failAt, "dial: connection refused"); err != nil {
				t.Fatalf("RecordMailboxRun(error): %v", err)
			}
			st, ok, err := e.s.AcquireMailbox(ctx, p.ID, "a", ttl)
			if err != nil || !ok {
				t.Fatalf("AcquireMailbox(a) = %v, %v; want acquired", ok, err)
			}
			if st.UIDValidity != 7 || st.LastUID != 42 || st.LastError != "dial: connection refused" || !st.LastErrorAt.Equal(failAt) || !st.LastSuccessAt.IsZero() {
				t.Fatalf("state = %+v, want cursor 7/42, the error at %v and no success", st, failAt)
			}
			okAt := failAt.Add(time.Minute)
			if err := e.s.RecordMailboxRun(ctx, p.ID, okAt, ""); err != nil {
				t.Fatalf("RecordMailboxRun(success): %v", err)
			}
			states, err := e.s.MailboxStates(ctx)
			if err != nil {
				t.Fatalf("MailboxStates: %v", err)
			}
			var got MailboxState
			for _, s := range states {
				if s.ProjectID == p.ID {
					got = s
				}
			}
			if !got.LastSuccessAt.Equal(okAt) || got.LastError != "" {
				t.Fatalf("state after success = %+v, want last success %v and no error", got, okAt)
			}
		})
	})
}

func TestPageNormalize(t *testing.T) {
	tests := []struct {
		name string
		in   Page
		want Page
	}{
		{"zero gives defaults", Page{}, Page{1, 50}},
		{"negative page", Page{-3, 10}, Page{1, 10}},
		{"too large per page", Page{2, 5000}, Page{2, 1000}},
		{"kept", Page{3, 20}, Page{3, 20}},
		{"a page past MaxPage is clamped, so the offset cannot overflow", Page{1 << 62, 1 << 62}, Page{MaxPage, 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.Normalize(); got != tt.want {
				t.Fatalf("%+v.Normalize() = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}
