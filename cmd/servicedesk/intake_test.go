package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ticket"
)

// The fetcher and the scheduler get the intake mailbox and the desks that
// have a mailbox of their own; a desk the intake serves is never fetched.
func TestMailboxesAreTheIntakeAndTheDesksOwn(t *testing.T) {
	t.Parallel()
	cfg, err := config.Parse([]byte(`
database: {url: 'sqlite://`+filepath.Join(t.TempDir(), "desk.db")+`'}
mail: {reply_key_secret: 0123456789abcdef0123456789abcdef}
intake:
  address: incoming@intake.test
  imap: {host: 127.0.0.1, password: pw, after_processing: move}
projects:
  - key: acme
    address: incoming+acme@intake.test
    smtp: {host: 127.0.0.1}
  - key: beta
    address: support@beta.test
    aliases: [help@beta.test]
    imap: {host: 127.0.0.1, password: pw}
    smtp: {host: 127.0.0.1}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &cli{cfg: cfg, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	st, err := c.openStore(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	desks, err := c.desks(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	mailboxes, intake, err := c.mailboxes(t.Context(), st, desks)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, m := range mailboxes {
		keys = append(keys, m.Config.Key)
	}
	if !slices.Equal(keys, []string{ticket.IntakeKey, "beta"}) {
		t.Fatalf("mailboxes = %v; want the intake's and beta's own", keys)
	}
	if in := mailboxes[0]; intake == nil || intake.ID != in.ID || in.Config.IMAP.AfterProcessing != "move" || in.Config.IMAP.Username != "incoming@intake.test" {
		t.Fatalf("intake mailbox %+v (processor's %+v); want the intake's row with its own imap settings", in, intake)
	}
	if got := ingestProjects(desks); len(got[1].Aliases) != 1 {
		t.Fatalf("ingest projects %+v; want beta's alias passed on", got)
	}
	ps, err := st.Projects(t.Context())
	if err != nil || len(ps) != 2 {
		t.Fatalf("Projects = %v, %v; want the two desks, not the intake's row", ps, err)
	}
}
