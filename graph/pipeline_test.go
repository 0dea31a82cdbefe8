package graph

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/config"
	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/internal/fakegraph"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// openStore gives a fresh, migrated store: a temp-file SQLite database or
// a new PostgreSQL schema, dropped at cleanup. A PostgreSQL server that
// cannot be reached fails the test.
func openStore(t *testing.T, backend string) *store.Store {
	t.Helper()
	ctx := t.Context()
	url := "sqlite://" + t.TempDir() + "/desk.db"
	if backend == "postgres" {
		base := os.Getenv("SERVICEDESK_TEST_POSTGRES")
		if base == "" {
			base = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatalf("PostgreSQL must be reachable (set SERVICEDESK_TEST_POSTGRES): %v", err)
		}
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		schema := "test_graph_" + hex.EncodeToString(b)
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			t.Fatalf("create schema: %v", err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				t.Errorf("drop schema %s: %v", schema, err)
			}
			_ = conn.Close(ctx)
		})
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		url = base + sep + "search_path=" + schema
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		t.Fatalf("open %s store: %v", backend, err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatalf("migrate %s store: %v", backend, err)
	}
	return st
}

// enqueuer queues on a flushed Redis database of this test (the fetcher
// queues a process task per message; the test processes the ledger
// itself).
func enqueuer(t *testing.T, db int) *jobs.Enqueuer {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
	if err := rdb.FlushDB(t.Context()).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379 (db %d) unreachable: %v", db, err)
	}
	client := asynq.NewClientFromRedisClient(rdb)
	t.Cleanup(func() { rdb.FlushDB(context.Background()); client.Close(); rdb.Close() })
	return jobs.NewEnqueuer(client, jobs.Retries{})
}

// TestFetchThroughGraph runs the real fetcher and ingest processing
// against the fake Graph and the real store: every message becomes exactly
// one ticket, the one too large is refused without a download, processed
// mail is marked read, moved or deleted only after its outcome is
// committed, and later runs ingest nothing twice, through throttling and
// a token that expires between runs.
func TestFetchThroughGraph(t *testing.T) {
	const maxSize = 4096
	const distinct = 23 // more than two batches of 10
	redisDB := 13
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, mode := range []string{"seen", "move", "delete"} {
			db := redisDB
			redisDB++
			if redisDB > 15 {
				redisDB = 13
			}
			t.Run(backend+"/"+mode, func(t *testing.T) {
				ctx := t.Context()
				st := openStore(t, backend)
				fake := fakegraph.New(t)
				var ids []string
				for i := 1; i <= distinct; i++ {
					ids = append(ids, fake.Deliver("Inbox", mime(i)))
				}
				dup := fake.Deliver("Inbox", mime(7)) // the same Message-ID again
				big := fake.Deliver("Inbox", mime(99)+strings.Repeat("x", maxSize))

				ps, err := st.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme", Address: "support@contoso.test"}})
				if err != nil {
					t.Fatalf("sync projects: %v", err)
				}
				gcfg := config.Graph{TenantID: fake.Tenant, ClientID: fake.ClientID, ClientSecret: fake.Secret, User: fake.User,
					Folder: "Inbox", AfterProcessing: mode, ProcessedFolder: "Done", BatchSize: 10, PollInterval: config.Duration(time.Minute),
					AuthorityURL: fake.URL, APIURL: fake.URL + "/v1.0"}
				desk := jobs.Desk{ID: ps[0].ID, Config: config.Project{Key: "acme", Address: "support@contoso.test", Graph: gcfg}}
				waits := &sleeps{}
				dialer := NewDialer(storeOf{st}, &Options{MaxMessageSize: maxSize, Sleep: waits.sleep})
				dial := func(ctx context.Context, p config.Project) (jobs.Mailbox, error) {
					c, err := dialer.Dial(ctx, Config{TenantID: p.Graph.TenantID, ClientID: p.Graph.ClientID,
						ClientSecret: p.Graph.ClientSecret, User: p.Graph.User, AuthorityURL: p.Graph.AuthorityURL, APIURL: p.Graph.APIURL})
					if err != nil {
						return nil, err
					}
					return c, nil
				}
				log := slog.New(slog.NewTextHandler(io.Discard, nil))
				f := jobs.NewFetcher(st, dial, enqueuer(t, db), []jobs.Desk{desk}, maxSize, nil, log)
				keys, err := ticket.NewReplyKeys([]byte("0123456789abcdef0123456789abcdef"))
				if err != nil {
					t.Fatal(err)
				}
				proc := ingest.NewProcessor(st, keys, []ingest.Project{{ID: ps[0].ID, Key: "acme", Address: "support@contoso.test"}},
					&ingest.Options{MaxMessageSize: maxSize, Logger: log})

				// fetch runs the fetcher until no follow-up is asked for.
				fetch := func() {
					t.Helper()
					for range 10 {
						more, err := f.Run(ctx, desk)
						if err != nil {
							t.Fatalf("fetch run: %v", err)
						}
						if more == "" {
							return
						}
					}
					t.Fatal("fetch still asks for a follow-up after 10 runs")
				}
				process := func() {
					t.Helper()
					pending, err := st.UnprocessedInbound(ctx, ps[0].ID, time.Now().Add(time.Hour), 1000)
					if err != nil {
						t.Fatal(err)
					}
					for _, id := range pending {
						if _, err := proc.Process(ctx, id); err != nil {
							t.Fatalf("process inbound %d: %v", id, err)
						}
					}
				}
				touched := func() int {
					return fake.Count("PATCH ") + fake.Count("POST /v1.0/users/support@contoso.test/messages/") +
						fake.Count("DELETE ")
				}

				// A throttled download is waited out.
				fake.FailNext("GET", ids[3]+"/$value", 1, http.StatusTooManyRequests, "2", "TooManyRequests")
				fetch()
				if n := touched(); n != 0 {
					t.Fatalf("%d messages marked, moved or deleted before their outcome was committed; want 0", n)
				}
				if got := waits.String(); got != "[2s]" {
					t.Fatalf("waits = %s; want the one Retry-After of 2s", got)
				}
				process()
				fake.ExpireTokens() // the next run's token is refused once
				fetch()             // applies after_processing
				process()

				tickets, _, err := st.Tickets(ctx, store.TicketFilter{Project: "acme"}, store.Page{PerPage: 1000})
				if err != nil {
					t.Fatal(err)
				}
				if len(tickets) != distinct {
					t.Fatalf("%d tickets; want %d, one per distinct message", len(tickets), distinct)
				}
				rows, _, err := st.ListInbound(ctx, store.InboundFilter{Project: "acme"}, store.Page{PerPage: 1000})
				if err != nil {
					t.Fatal(err)
				}
				outcomes := map[ticket.Outcome]int{}
				for _, r := range rows {
					outcomes[r.Outcome]++
					if r.Outcome == ticket.OutcomeRejected && !strings.Contains(r.Reason, "larger than limits.max_message_size") {
						t.Fatalf("rejected row reason %q; want it to name the limit", r.Reason)
					}
				}
				want := map[ticket.Outcome]int{ticket.OutcomeTicketCreated: distinct, ticket.OutcomeDuplicate: 1, ticket.OutcomeRejected: 1}
				if fmt.Sprint(outcomes) != fmt.Sprint(want) {
					t.Fatalf("ledger outcomes %v; want %v", outcomes, want)
				}
				if n := fake.Downloads(big); n != 0 {
					t.Fatalf("the too-large message was downloaded %d times; want never", n)
				}
				if fake.TokenRequests() != 2 {
					t.Fatalf("%d token requests; want 2 (the expired token replaced once)", fake.TokenRequests())
				}

				// after_processing: on every stored message, never on the refused one.
				for _, id := range append(ids, dup) {
					m := fake.Message(id)
					var ok bool
					switch mode {
					case "seen":
						ok = m.IsRead
					case "move":
						ok = m.ID != "" && m.Folder == fake.FolderID("Done")
					case "delete":
						ok = m.ID == ""
					}
					if !ok {
						t.Fatalf("message %s after %s = %+v; want it done", id, mode, m)
					}
				}
				if m := fake.Message(big); m.IsRead || m.Folder != "AAMkInbox=" {
					t.Fatalf("the refused message = %+v; want it left unread in the Inbox", m)
				}

				// More runs ingest nothing twice and download nothing again.
				fetch()
				process()
				again, _, _ := st.ListInbound(ctx, store.InboundFilter{Project: "acme"}, store.Page{PerPage: 1000})
				if len(again) != len(rows) {
					t.Fatalf("%d ledger rows after another run; want still %d", len(again), len(rows))
				}
				for _, id := range append(ids, dup) {
					if n := fake.Downloads(id); n != 1 {
						t.Fatalf("message %s downloaded %d times; want once", id, n)
					}
				}
			})
		}
	}
}
