package mailsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// backends are the databases every sync test runs on, as in the store's
// own tests.
var backends = []string{"sqlite", "postgres"}

const (
	deskAddr = "support@acme.test"
	folder   = "Desk"
)

// desk is what a test gets: an in-process IMAP server (imapmemserver) with
// the desk's folder, a migrated store on a fresh database, the real
// ingest processor behind an in-memory queue, and a Syncer joining them.
type desk struct {
	t     *testing.T
	st    *store.Store
	user  *imapmemserver.User
	imap  mailbox.Config
	desk  Desk
	queue *memQueue
	clock *clock
	opts  Options
	// faults, when set, wraps the mailbox, the store and the queue the
	// Syncer sees.
	faults *faults
}

// setup starts the servers for one backend. cfg is the desk's imap
// section (Folder is set to the test folder; BatchSize defaults to 2).
func setup(t *testing.T, backend string, cfg config.IMAP, opts Options) *desk {
	t.Helper()
	ctx := t.Context()
	d := &desk{t: t, clock: &clock{now: time.Now()}}
	d.imap, d.user = imaptest.Start(t, deskAddr, "pass", folder)
	st, err := store.Open(ctx, databaseURL(t, backend), nil)
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s store: %v", backend, err)
	}
	d.st = st
	ps, err := st.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme", Address: deskAddr}})
	if err != nil {
		t.Fatalf("sync projects: %v", err)
	}
	cfg.Folder = folder
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 2
	}
	d.desk = Desk{ID: ps[0].ID, Config: config.Project{Key: "acme", Address: deskAddr, IMAP: cfg}}
	keys, err := ticket.NewReplyKeys([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatalf("reply keys: %v", err)
	}
	proc := ingest.NewProcessor(st, keys, []ingest.Project{{ID: d.desk.ID, Key: "acme", Address: deskAddr}}, nil)
	d.queue = &memQueue{proc: proc, pending: map[int64]bool{}}
	opts.Now = d.clock.Now
	d.opts = opts
	return d
}

// syncer returns a Syncer over the desk's mailbox, store and queue, with
// the desk's faults between them.
func (d *desk) syncer() *Syncer {
	dial := func(ctx context.Context, _ config.Project) (Mailbox, error) {
		if err := d.faults.step("Dial"); err != nil {
			return nil, err
		}
		c, err := mailbox.Dial(ctx, d.imap, nil)
		if err != nil {
			return nil, err
		}
		if d.faults == nil {
			return c, nil
		}
		return &faultyMailbox{Mailbox: c, f: d.faults}, nil
	}
	var st Store = d.st
	var q Queue = d.queue
	if d.faults != nil {
		st = &faultyStore{Store: d.st, f: d.faults}
		q = QueueFunc(func(ctx context.Context, ids []int64) error {
			if err := d.faults.step("Queue.Process"); err != nil {
				return err
			}
			return d.queue.Process(ctx, ids)
		})
	}
	return New(st, dial, q, &d.opts)
}

// run runs one sync and fails the test on an error.
func (d *desk) run() Result {
	d.t.Helper()
	res, err := d.syncer().Run(d.t.Context(), d.desk)
	if err != nil {
		d.t.Fatalf("sync run: %v", err)
	}
	return res
}

// deliver appends mail to the desk's folder, as an MTA would.
func (d *desk) deliver(mails ...[]byte) {
	d.t.Helper()
	c, err := mailbox.Dial(d.t.Context(), d.imap, nil)
	if err != nil {
		d.t.Fatalf("dial to deliver: %v", err)
	}
	defer c.Close()
	for _, m := range mails {
		if _, err := c.Append(d.t.Context(), folder, m); err != nil {
			d.t.Fatalf("deliver: %v", err)
		}
	}
}

// mail is a customer's new request, about size bytes when size > 0.
func mail(n, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Customer %d <customer%d@customer.test>\r\nTo: <%s>\r\nSubject: request %d\r\nMessage-ID: <m%d@customer.test>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nPlease help with %d.\r\n", n, n, deskAddr, n, n, n)
	for b.Len() < size {
		b.WriteString("padding padding padding padding padding padding padding padding\r\n")
	}
	return b.Bytes()
}

// inFolder returns UID -> flags of the messages in name, and false when
// name does not exist.
func (d *desk) inFolder(name string) (map[uint32][]imap.Flag, bool) {
	d.t.Helper()
	c, err := imapclient.DialInsecure(net.JoinHostPort(d.imap.Host, fmt.Sprint(d.imap.Port)), nil)
	if err != nil {
		d.t.Fatalf("dial to inspect: %v", err)
	}
	defer c.Close()
	if err := c.Login(d.imap.Username, d.imap.Password).Wait(); err != nil {
		d.t.Fatalf("login to inspect: %v", err)
	}
	if _, err := c.Select(name, nil).Wait(); err != nil {
		return nil, false
	}
	all, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		// An empty folder answers 1:* with an error on some servers.
		return map[uint32][]imap.Flag{}, true
	}
	out := map[uint32][]imap.Flag{}
	for _, m := range all {
		out[uint32(m.UID)] = m.Flags
	}
	return out, true
}

// forEachBackend runs fn as parallel subtests, one per database.
func forEachBackend(t *testing.T, fn func(t *testing.T, backend string)) {
	t.Helper()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			fn(t, backend)
		})
	}
}

// wantAllSeen checks that the desk's folder holds n messages, all \Seen.
func (d *desk) wantAllSeen(n int) {
	d.t.Helper()
	if seen, unseen := d.seen(folder); seen != n || unseen != 0 {
		d.t.Errorf("%s has %d seen, %d unseen; want all %d seen", folder, seen, unseen, n)
	}
}

// seen counts the messages of name with and without \Seen.
func (d *desk) seen(name string) (seen, unseen int) {
	d.t.Helper()
	msgs, _ := d.inFolder(name)
	for _, flags := range msgs {
		if slices.Contains(flags, imap.FlagSeen) {
			seen++
		} else {
			unseen++
		}
	}
	return seen, unseen
}

// ledger returns every ledger row of the desk.
func (d *desk) ledger() []ticket.Inbound {
	d.t.Helper()
	var all []ticket.Inbound
	rows, _, err := d.st.ListInbound(d.t.Context(), store.InboundFilter{Project: "acme"}, store.Page{PerPage: 1000})
	if err != nil {
		d.t.Fatalf("list ledger: %v", err)
	}
	all = append(all, rows...)
	slices.SortFunc(all, func(a, b ticket.Inbound) int { return int(a.ID - b.ID) })
	return all
}

// tickets returns the desk's tickets by subject.
func (d *desk) tickets() map[string]int {
	d.t.Helper()
	ts, _, err := d.st.Tickets(d.t.Context(), store.TicketFilter{Project: "acme"}, store.Page{PerPage: 1000})
	if err != nil {
		d.t.Fatalf("list tickets: %v", err)
	}
	out := map[string]int{}
	for _, tk := range ts {
		out[tk.Subject]++
	}
	return out
}

// wantEachOnce checks that mails 1..n each have exactly one ticket, and
// that every ledger row has a final outcome.
func (d *desk) wantEachOnce(n int) {
	d.t.Helper()
	tickets := d.tickets()
	for i := 1; i <= n; i++ {
		if got := tickets[fmt.Sprintf("request %d", i)]; got != 1 {
			d.t.Errorf("request %d has %d tickets; want exactly 1 (tickets: %v)", i, got, tickets)
		}
	}
	if len(tickets) != n {
		d.t.Errorf("%d distinct tickets; want %d", len(tickets), n)
	}
	for _, r := range d.ledger() {
		if !r.Outcome.Final() {
			d.t.Errorf("ledger row %d (UID %d) has outcome %q (%s); want a final one", r.ID, r.UID, r.Outcome, r.Reason)
		}
	}
}

// memQueue stands in for the process queue: it holds each ledger ID once
// while pending (as asynq task IDs do) and runs the real ingest processor
// on drain.
type memQueue struct {
	mu      sync.Mutex
	proc    *ingest.Processor
	pending map[int64]bool
	order   []int64
	// lose, when set, accepts tasks and forgets them (Redis flushed).
	lose bool
}

func (q *memQueue) Process(_ context.Context, ids []int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.lose {
		return nil
	}
	for _, id := range ids {
		if !q.pending[id] {
			q.pending[id] = true
			q.order = append(q.order, id)
		}
	}
	return nil
}

// queued returns the pending ledger IDs, in queue order.
func (q *memQueue) queued() []int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.order)
}

// drain processes every pending row: parse, thread, commit.
func (q *memQueue) drain(t *testing.T) {
	t.Helper()
	for _, id := range q.queued() {
		if _, err := q.proc.Process(t.Context(), id); err != nil {
			t.Fatalf("process inbound %d: %v", id, err)
		}
	}
	q.mu.Lock()
	q.pending, q.order = map[int64]bool{}, nil
	q.mu.Unlock()
}

// clock is the sync's clock, advanced by tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// databaseURL gives a fresh database: a temp-file SQLite one, or a new
// PostgreSQL schema dropped at cleanup. A PostgreSQL server that cannot be
// reached fails the test.
func databaseURL(t *testing.T, backend string) string {
	t.Helper()
	if backend == "sqlite" {
		return "sqlite://" + filepath.Join(t.TempDir(), "desk.db")
	}
	base := os.Getenv("SERVICEDESK_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s: %v", base, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "mailsync_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		_ = admin.Close()
		t.Fatalf("PostgreSQL at %s must be reachable (set SERVICEDESK_TEST_POSTGRES): create schema: %v", base, err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		_ = admin.Close()
	})
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}
