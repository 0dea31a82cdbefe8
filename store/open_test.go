package store

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// TestOpenNeverEchoesTheURL opens databases whose URLs carry the password
// hunter2 in every place a URL can, each wrong in a way that reaches a
// different parser (ours, net/url, pgx's, the connection): the error and
// the log say what failed, never the password.
func TestOpenNeverEchoesTheURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, url, want string
	}{
		{"libpq key=value string", "host=db user=desk password=hunter2 dbname=desk", "not a URL"},
		{"libpq string with a colon-slash-slash in it", "host=db password=hunter2://x", "not a URL"},
		{"password that breaks the URL", "postgres://desk:hun/ter2@db/desk", "not a valid URL: invalid port after host"},
		{"invalid escape", "postgres://desk:hunter2%zz@db/desk", "invalid %-escape"},
		{"pgx refuses an option", "postgres://desk:hunter2@127.0.0.1:1/desk?sslmode=bogus", "cannot parse"},
		{"password in the query", "postgres://127.0.0.1:1/desk?password=hunter2&sslmode=bogus", "cannot parse"},
		{"server unreachable", "postgres://desk:hunter2@127.0.0.1:1/desk?sslmode=disable&connect_timeout=2", "127.0.0.1"},
		{"unreachable, password in the query", "postgres://desk@127.0.0.1:1/desk?sslmode=disable&connect_timeout=2&password=hunter2", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			s, err := Open(t.Context(), tt.url, &Options{Logger: log})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded; want an error")
			}
			t.Logf("error: %v", err)
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun/ter2") {
				t.Errorf("Open error = %q; it must not contain the password", err)
			}
			if strings.Contains(logs.String(), "hunter2") {
				t.Errorf("log = %q; it must not contain the password", logs.String())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open error = %q; want it to say %q", err, tt.want)
			}
		})
	}
}

// withUmask runs fn with the process umask set to mask. The umask is
// process-wide: callers must not run in parallel.
func withUmask(t *testing.T, mask int, fn func()) {
	t.Helper()
	old := syscall.Umask(mask)
	defer syscall.Umask(old)
	fn()
}

// TestSQLiteFilesAreOwnerOnly checks the database and its -wal and -shm,
// which hold every mail, are created readable by their owner only however
// permissive the umask (0 would make them world-writable).
func TestSQLiteFilesAreOwnerOnly(t *testing.T) {
	for _, mask := range []int{0o022, 0o002, 0} {
		t.Run(fmt.Sprintf("umask %04o", mask), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "desk.db")
			var s *Store
			withUmask(t, mask, func() {
				var err error
				s, err = Open(t.Context(), "sqlite://"+path, nil)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				t.Cleanup(func() { _ = s.Close() })
				if err := s.Migrate(t.Context()); err != nil {
					t.Fatalf("Migrate: %v", err)
				}
				if _, err := s.SyncProjects(t.Context(), []ticket.Project{{Key: "acme", Name: "Acme", Address: "support@acme.test"}}); err != nil {
					t.Fatalf("write: %v", err)
				}
			})
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				assertOwnerOnly(t, p)
			}
		})
	}
}

// TestSQLiteShmRecreatedOwnerOnly closes every connection, which deletes
// the -wal and -shm, and opens new ones in the same pool: SQLite creates
// them again, and they are 0600 again.
func TestSQLiteShmRecreatedOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "desk.db")
	withUmask(t, 0o022, func() {
		s, err := Open(t.Context(), "sqlite://"+path, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		sqlDB, err := s.db.DB()
		if err != nil {
			t.Fatal(err)
		}
		sqlDB.SetMaxIdleConns(0) // every connection closes when put back
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path + "-shm"); err == nil {
			t.Log("-shm still there after the last connection closed")
		}
		if _, err := s.SyncProjects(t.Context(), []ticket.Project{{Key: "acme", Name: "Acme", Address: "support@acme.test"}}); err != nil {
			t.Fatalf("write: %v", err)
		}
		// Keep a connection open so that the files are there to stat.
		conn, err := sqlDB.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(t.Context(), "SELECT count(*) FROM projects"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			assertOwnerOnly(t, p)
		}
	})
}

// TestSQLiteOpenTightensLooseFiles opens a database whose files anyone
// could read, as the store left them before: they become 0600 and the
// log says so.
func TestSQLiteOpenTightensLooseFiles(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "desk.db")
	s, err := Open(t.Context(), "sqlite://"+path, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	_ = s.Close()
	for _, p := range []string{path + "-wal", path + "-shm"} { // gone with the last connection
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	s, err = Open(t.Context(), "sqlite://"+path, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	defer s.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		assertOwnerOnly(t, p)
	}
	if got := strings.Count(logs.String(), "readable by its owner only"); got != 3 {
		t.Errorf("log has %d lines about tightened files; want 3 (db, -wal, -shm):\n%s", got, logs.String())
	}
}

func assertOwnerOnly(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Errorf("stat %s: %v", filepath.Base(path), err)
		return
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s has mode %s; want no group or other bits (0600)", filepath.Base(path), fi.Mode().Perm())
	}
}
