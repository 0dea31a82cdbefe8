package store

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// helperEnv names the SQLite file a re-executed test binary works on; see
// TestMain and TestSQLiteSeveralProcesses.
const helperEnv = "STORE_TEST_HELPER_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(helperEnv); path != "" {
		if err := helperWorker(path); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// helperWorker is one "process" of TestSQLiteSeveralProcesses: migrate, sync
// the project, record the same eight fetched messages, and commit them all
// with one Message-ID, from four goroutines.
func helperWorker(path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, "sqlite://"+path, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Migrate(ctx); err != nil {
		return err
	}
	ps, err := s.SyncProjects(ctx, []ticket.Project{{Key: "acme", Address: "support@acme.test"}})
	if err != nil {
		return err
	}
	p := ps[0]
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, _, err := s.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 1, UID: uint32(i + 1)}, []byte("raw"))
			if err != nil {
				errs <- err
				return
			}
			if _, err := s.CommitDelivery(ctx, newTicketDelivery(p, id, "<multi@x>")); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return nil
}

func TestSQLiteSeveralProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	const procs = 3
	cmds := make([]*exec.Cmd, procs)
	for i := range cmds {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+path)
		cmds[i] = cmd
	}
	outs := make([][]byte, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i, cmd := range cmds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("process %d failed: %v\n%s", i, err, outs[i])
		}
	}

	s, err := Open(t.Context(), "sqlite://"+path, nil)
	if err != nil {
		t.Fatalf("open shared database: %v", err)
	}
	defer s.Close()
	tests := []struct {
		name  string
		table string
		where string
		want  int64
	}{
		{"one schema version", "schema_migrations", "1=1", int64(len(migrations))},
		{"one project", "projects", "1=1", 1},
		{"one ledger row per UID", "inbound", "1=1", 8},
		{"one ticket", "tickets", "1=1", 1},
		{"one ticket_created", "inbound", "outcome = 'ticket_created'", 1},
		{"seven duplicates", "inbound", "outcome = 'duplicate'", 7},
		{"one thank-you", "notifications", "1=1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int64
			if err := s.db.Table(tt.table).Where(tt.where).Count(&n).Error; err != nil {
				t.Fatalf("count %s: %v", tt.table, err)
			}
			if n != tt.want {
				t.Fatalf("%s where %s: %d rows, want %d", tt.table, tt.where, n, tt.want)
			}
		})
	}
}
