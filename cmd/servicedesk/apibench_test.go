package main

// The API benchmark of issue 4: throughput and latency of
// GET /api/v1/projects/{key}/tickets on a store of 100,000 tickets, served by
// the real handler (api.New over apiBackend over *store.Store) on SQLite and
// on PostgreSQL, each beside its ceiling: a bare handler that writes the same
// JSON bytes from memory, driven by the same client harness in the same run.
// Machines are noisy; only the ratios compare.
//
// Run it with deploy/bench-api.sh, or:
//
//	go test -run '^$' -bench TicketsAPI -benchtime 1x -timeout 20m ./cmd/servicedesk
//
// SERVICEDESK_BENCH_API_DURATION (a Go duration, default 5s) sets how long
// each measurement runs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"       // database/sql driver "pgx", the one the store uses
	_ "github.com/ncruces/go-sqlite3/driver" // database/sql driver "sqlite3", the one the store uses

	"github.com/servicedesk/servicedesk/api"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// The knobs of the benchmark, printed with the figures.
const (
	apiBenchTickets    = 100_000
	apiBenchClients    = 16
	apiBenchWarmup     = time.Second
	apiBenchDuration   = 5 * time.Second // per endpoint and page, split into apiBenchRounds
	apiBenchRounds     = 5
	apiBenchProject    = "acme"
	apiBenchToken      = "bench-agent-token"
	apiBenchBatch      = 5_000 // rows per transaction while populating
	apiBenchPerInsert  = 500   // rows per INSERT statement
	apiBenchDeepPage   = 1000
	apiBenchPerPage    = api.DefaultPerPage
	apiBenchParticipts = 2 // participants per ticket: the requester and one Cc
)

// benchTime0 is when the first generated ticket was created; ticket n is
// created n minutes later, so newest first is highest number first.
var benchTime0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkTicketsAPI is issue 4's benchmark. b.N is ignored: each leaf is
// one fixed-duration measurement (run it with -benchtime 1x).
func BenchmarkTicketsAPI(b *testing.B) {
	dur := apiBenchDuration
	if v := os.Getenv("SERVICEDESK_BENCH_API_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("SERVICEDESK_BENCH_API_DURATION=%q: want a positive Go duration such as 5s", v)
		}
		dur = d
	}
	fmt.Printf("knobs: %d tickets (%d participants each) in one project, %d clients with keep-alive, "+
		"%s warm-up + %s per measurement in %d alternating rounds with the ceiling, per_page %d, agent token (no redaction); PostgreSQL ANALYZEd after the load, SQLite not (as in production)\n",
		apiBenchTickets, apiBenchParticipts, apiBenchClients, apiBenchWarmup, dur, apiBenchRounds, apiBenchPerPage)

	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			ctx := b.Context()
			st, url := benchStore(b, backend)
			started := time.Now()
			nparts, err := populateTickets(ctx, backend, url, st, apiBenchTickets)
			if err != nil {
				b.Fatalf("populate %s with %d tickets: %v", backend, apiBenchTickets, err)
			}
			fmt.Printf("populate %-8s: %d tickets, %d participants in %s\n",
				backend, apiBenchTickets, nparts, time.Since(started).Round(time.Millisecond))

			srv := httptest.NewServer(benchHandler(st))
			b.Cleanup(srv.Close)

			for _, pg := range []struct {
				name   string
				page   int
				cursor bool // the same page asked for by its keyset cursor
			}{
				{"page1", 1, false},
				{"page" + strconv.Itoa(apiBenchDeepPage), apiBenchDeepPage, false},
				{"page" + strconv.Itoa(apiBenchDeepPage) + "-after", apiBenchDeepPage, true},
			} {
				b.Run(pg.name, func(b *testing.B) {
					path := "/api/v1/projects/" + apiBenchProject + "/tickets"
					switch {
					case pg.cursor:
						path += "?after=" + nextAfter(b, fetchOnce(b, srv.URL+path+"?page="+strconv.Itoa(pg.page-1)))
					case pg.page != 1:
						path += "?page=" + strconv.Itoa(pg.page)
					}
					body := fetchOnce(b, srv.URL+path)
					checkTicketPage(b, body, pg.page, apiBenchTickets, pg.cursor)

					bare := httptest.NewServer(bareHandler(body))
					defer bare.Close()

					got, ceil := measure(b, srv.URL+path, bare.URL+path, len(body), dur)
					ratio := got.rate / ceil.rate
					how := "page"
					if pg.cursor {
						how = "after"
					}
					fmt.Printf("tickets API %-8s %-5s %-4d: %6.0f req/s p50 %6.2f ms p99 %6.2f ms | bare %6.0f req/s p50 %5.2f ms p99 %5.2f ms | ratio %.4f\n",
						backend, how, pg.page, got.rate, ms(got.p50), ms(got.p99), ceil.rate, ms(ceil.p50), ms(ceil.p99), ratio)
					b.ReportMetric(0, "ns/op")
					b.ReportMetric(got.rate, "req/s")
					b.ReportMetric(ms(got.p50), "p50-ms")
					b.ReportMetric(ms(got.p99), "p99-ms")
					b.ReportMetric(ceil.rate, "bare-req/s")
					b.ReportMetric(ms(ceil.p99), "bare-p99-ms")
					b.ReportMetric(ratio, "ratio")
				})
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchHandler is the real API handler over the real store adapter, with
// one agent token.
func benchHandler(st *store.Store) http.Handler {
	return api.New(apiBackend{st: st}, []api.Token{{Name: "bench", Token: apiBenchToken, Role: api.RoleAgent}}, nil)
}

// bareHandler is the ceiling: the same answer from memory.
func bareHandler(body []byte) http.Handler {
	n := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json; charset=utf-8")
		h.Set("Content-Length", n)
		_, _ = w.Write(body)
	})
}

// benchStore gives a fresh, migrated store with the one project: a temp-file
// SQLite database, or a new PostgreSQL schema on SERVICEDESK_TEST_POSTGRES
// dropped at cleanup. It returns the store and its URL.
func benchStore(tb testing.TB, backend string) (*store.Store, string) {
	tb.Helper()
	ctx := tb.Context()
	var url string
	switch backend {
	case "sqlite":
		url = "sqlite://" + filepath.Join(tb.TempDir(), "bench.db")
	case "postgres":
		base := os.Getenv("SERVICEDESK_TEST_POSTGRES")
		if base == "" {
			base = "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable"
		}
		admin, err := sql.Open("pgx", base)
		if err != nil {
			tb.Fatalf("open PostgreSQL (set SERVICEDESK_TEST_POSTGRES): %v", err)
		}
		tb.Cleanup(func() { _ = admin.Close() })
		var rnd [6]byte
		_, _ = rand.Read(rnd[:])
		schema := "apibench_" + hex.EncodeToString(rnd[:])
		if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
			tb.Fatalf("PostgreSQL must be reachable (set SERVICEDESK_TEST_POSTGRES): create schema %s: %v", schema, err)
		}
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := admin.ExecContext(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				tb.Errorf("drop schema %s: %v", schema, err)
			}
		})
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		url = base + sep + "search_path=" + schema
	default:
		tb.Fatalf("unknown backend %q", backend)
	}
	st, err := store.Open(ctx, url, nil)
	if err != nil {
		tb.Fatalf("open %s store: %v", backend, err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	if err := st.Migrate(ctx); err != nil {
		tb.Fatalf("migrate %s store: %v", backend, err)
	}
	if _, err := st.SyncProjects(ctx, []ticket.Project{{Key: apiBenchProject, Name: "Acme Support", Address: "support@acme.test"}}); err != nil {
		tb.Fatalf("sync project %s: %v", apiBenchProject, err)
	}
	return st, url
}

// populateTickets inserts n tickets numbered 1..n into the project
// apiBenchProject of the empty store at url, with apiBenchParticipts
// participants each, by multi-row INSERTs into the store's tables in
// transactions of apiBenchBatch tickets (the store's public API, one
// transaction per message, would take minutes). Ticket n is the newest. It
// advances the project's ticket counter (and PostgreSQL's id sequences) so
// the store goes on numbering after them, and returns how many participants
// it wrote.
func populateTickets(ctx context.Context, backend, url string, st *store.Store, n int) (int, error) {
	p, err := st.ProjectByKey(ctx, apiBenchProject)
	if err != nil {
		return 0, fmt.Errorf("look up project %q: %w", apiBenchProject, err)
	}
	driver, dsn := "pgx", url
	if backend == "sqlite" {
		// Times in the store's format (store.sqliteTimeFormat).
		driver, dsn = "sqlite3", "file:"+strings.TrimPrefix(url, "sqlite://")+"?_pragma=busy_timeout(10000)&_timefmt="+
			neturl.QueryEscape("2006-01-02 15:04:05.999999999-07:00")
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return 0, fmt.Errorf("open %s for bulk insert: %w", backend, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var existing int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tickets").Scan(&existing); err != nil {
		return 0, fmt.Errorf("count tickets: %w", err)
	}
	if existing != 0 {
		return 0, fmt.Errorf("store already has %d tickets; populate wants an empty one", existing)
	}

	ph := placeholders(backend)
	nparts := 0
	for first := 1; first <= n; first += apiBenchBatch {
		last := min(first+apiBenchBatch-1, n)
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return 0, fmt.Errorf("tickets %d-%d: begin: %w", first, last, err)
		}
		for lo := first; lo <= last; lo += apiBenchPerInsert {
			hi := min(lo+apiBenchPerInsert-1, last)
			var tq, pq strings.Builder
			tq.WriteString("INSERT INTO tickets (id, project_id, number, subject, status, requester, created_at, updated_at) VALUES ")
			pq.WriteString("INSERT INTO participants (ticket_id, email) VALUES ")
			targs := make([]any, 0, 8*(hi-lo+1))
			pargs := make([]any, 0, 2*apiBenchParticipts*(hi-lo+1))
			next := ph()
			pnext := ph()
			for i := lo; i <= hi; i++ {
				if i > lo {
					tq.WriteString(", ")
					pq.WriteString(", ")
				}
				tq.WriteString("(" + next() + ", " + next() + ", " + next() + ", " + next() + ", " +
					next() + ", " + next() + ", " + next() + ", " + next() + ")")
				created := benchTime0.Add(time.Duration(i) * time.Minute)
				status := ticket.StatusOpen
				if i%3 == 0 {
					status = ticket.StatusClosed
				}
				requester := fmt.Sprintf("customer%d@example%d.test", i%5000, i%50)
				targs = append(targs, int64(i), p.ID, int64(i),
					fmt.Sprintf("Printer on floor %d does not print (case %d)", i%40, i),
					string(status), requester, created, created.Add(time.Duration(i%90)*time.Minute))
				pq.WriteString("(" + pnext() + ", " + pnext() + "), (" + pnext() + ", " + pnext() + ")")
				pargs = append(pargs, int64(i), requester, int64(i), fmt.Sprintf("colleague%d@example%d.test", i%777, i%50))
				nparts += apiBenchParticipts
			}
			if _, err := tx.ExecContext(ctx, tq.String(), targs...); err != nil {
				_ = tx.Rollback()
				return 0, fmt.Errorf("insert tickets %d-%d: %w", lo, hi, err)
			}
			if _, err := tx.ExecContext(ctx, pq.String(), pargs...); err != nil {
				_ = tx.Rollback()
				return 0, fmt.Errorf("insert participants of tickets %d-%d: %w", lo, hi, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("tickets %d-%d: commit: %w", first, last, err)
		}
	}

	finish := []string{"UPDATE projects SET ticket_seq = " + strconv.Itoa(n) + " WHERE id = " + strconv.FormatInt(p.ID, 10)}
	if backend == "postgres" {
		finish = append(finish,
			"SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT MAX(id) FROM tickets))",
			"SELECT setval(pg_get_serial_sequence('participants', 'id'), (SELECT MAX(id) FROM participants))",
			"ANALYZE tickets", "ANALYZE participants", "ANALYZE projects")
	}
	for _, q := range finish {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return 0, fmt.Errorf("after the load: %s: %w", q, err)
		}
	}
	return nparts, nil
}

// placeholders returns a factory of bind-parameter sequences: ?, ?, ... for
// SQLite, $1, $2, ... for PostgreSQL.
func placeholders(backend string) func() func() string {
	return func() func() string {
		i := 0
		return func() string {
			i++
			if backend == "postgres" {
				return "$" + strconv.Itoa(i)
			}
			return "?"
		}
	}
}

// fetchOnce GETs url with the agent token and returns the body of a 200.
func fetchOnce(tb testing.TB, url string) []byte {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, url, nil)
	if err != nil {
		tb.Fatalf("request %s: %v", url, err)
	}
	req.Header.Set("Authorization", "Bearer "+apiBenchToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET %s: status %d, want 200; body %s", url, resp.StatusCode, body)
	}
	return body
}

// checkTicketPage fails tb unless body is page of a list of total
// generated tickets, newest (highest number) first, with their participants.
func checkTicketPage(tb testing.TB, body []byte, page, total int, byCursor bool) {
	tb.Helper()
	var got struct {
		Tickets  []ticket.Ticket `json:"tickets"`
		NextPage *int            `json:"next_page"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		tb.Fatalf("page %d: decode %q: %v", page, truncateBytes(body, 200), err)
	}
	first := total - (page-1)*apiBenchPerPage
	want := min(apiBenchPerPage, first)
	if len(got.Tickets) != want {
		tb.Fatalf("page %d: %d tickets, want %d", page, len(got.Tickets), want)
	}
	for i, t := range got.Tickets {
		if wantNum := int64(first - i); t.Number != wantNum {
			tb.Fatalf("page %d: ticket %d has number %d, want %d (newest first)", page, i, t.Number, wantNum)
		}
		if len(t.Participants) != apiBenchParticipts || t.Participants[0] != t.Requester {
			tb.Fatalf("page %d: ticket %s participants %q, want %d starting with the requester %q",
				page, t.Ref, t.Participants, apiBenchParticipts, t.Requester)
		}
	}
	wantNext := first-apiBenchPerPage > 0
	if byCursor {
		wantNext = false // a page asked for by its cursor has no number
	}
	if (got.NextPage != nil) != wantNext || (wantNext && *got.NextPage != page+1) {
		tb.Fatalf("page %d: next_page %v, want %d (or null on the last page)", page, got.NextPage, page+1)
	}
}

func truncateBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return b[:n]
}

// loadResult is one measurement.
type loadResult struct {
	requests int
	rate     float64 // requests per second
	p50, p99 time.Duration
}

// measure drives the real endpoint and the ceiling with apiBenchClients
// keep-alive clients each: apiBenchWarmup of each (not counted), then
// apiBenchRounds alternating slices of dur/apiBenchRounds, so that the noise
// of a shared machine falls on both alike. Every answer must be a 200 of
// wantLen bytes.
func measure(b *testing.B, realURL, bareURL string, wantLen int, dur time.Duration) (got, ceiling loadResult) {
	b.Helper()
	type target struct {
		name    string
		url     string
		client  *http.Client
		lat     []time.Duration
		elapsed time.Duration
	}
	targets := []*target{{name: "api", url: realURL}, {name: "bare", url: bareURL}}
	for _, t := range targets {
		tr := &http.Transport{MaxIdleConnsPerHost: apiBenchClients, MaxConnsPerHost: apiBenchClients, DisableCompression: true}
		defer tr.CloseIdleConnections()
		t.client = &http.Client{Transport: tr}
		if _, err := drive(b.Context(), t.client, t.url, wantLen, apiBenchWarmup); err != nil {
			b.Fatalf("warm-up of %s (%s): %v", t.name, t.url, err)
		}
	}
	for round := range apiBenchRounds {
		for _, t := range targets {
			started := time.Now()
			lat, err := drive(b.Context(), t.client, t.url, wantLen, dur/apiBenchRounds)
			t.elapsed += time.Since(started)
			if err != nil {
				b.Fatalf("load on %s (%s), round %d: %v", t.name, t.url, round+1, err)
			}
			t.lat = append(t.lat, lat...)
		}
	}
	results := make([]loadResult, len(targets))
	for i, t := range targets {
		if len(t.lat) == 0 {
			b.Fatalf("load on %s (%s): no request completed in %s", t.name, t.url, dur)
		}
		slices.Sort(t.lat)
		results[i] = loadResult{
			requests: len(t.lat),
			rate:     float64(len(t.lat)) / t.elapsed.Seconds(),
			p50:      percentile(t.lat, 0.50),
			p99:      percentile(t.lat, 0.99),
		}
	}
	return results[0], results[1]
}

// drive runs apiBenchClients goroutines GETting url until dur has passed
// and returns every request's latency, or the first failure.
func drive(ctx context.Context, client *http.Client, url string, wantLen int, dur time.Duration) ([]time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Now().Add(dur)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		all      []time.Duration
		firstErr error
	)
	for range apiBenchClients {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			err := func() error {
				var buf bytes.Buffer
				for time.Now().Before(deadline) {
					req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
					if err != nil {
						return err
					}
					req.Header.Set("Authorization", "Bearer "+apiBenchToken)
					start := time.Now()
					resp, err := client.Do(req)
					if err != nil {
						return fmt.Errorf("GET: %w", err)
					}
					buf.Reset()
					_, err = buf.ReadFrom(resp.Body)
					resp.Body.Close()
					lat = append(lat, time.Since(start))
					if err != nil {
						return fmt.Errorf("read body: %w", err)
					}
					if resp.StatusCode != http.StatusOK || buf.Len() != wantLen {
						return fmt.Errorf("status %d with %d bytes, want 200 with %d: %q",
							resp.StatusCode, buf.Len(), wantLen, truncateBytes(buf.Bytes(), 200))
					}
				}
				return nil
			}()
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat...)
			if err != nil && firstErr == nil {
				firstErr = err
				cancel()
			}
		})
	}
	wg.Wait()
	return all, firstErr
}

// percentile returns the q-quantile (0..1) of sorted latencies, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// TestPopulateTickets checks the benchmark's bulk loader against the store
// and the API: the rows it writes read back as the store's own, pagination
// sees them newest first, and the store goes on numbering (and, on
// PostgreSQL, allocating ids) after them.
func TestPopulateTickets(t *testing.T) {
	const n = 1234 // crosses several multi-row INSERTs; the last page is partial
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := t.Context()
			st, url := benchStore(t, backend)
			nparts, err := populateTickets(ctx, backend, url, st, n)
			if err != nil {
				t.Fatalf("populateTickets(%d): %v", n, err)
			}
			if nparts != n*apiBenchParticipts {
				t.Fatalf("populateTickets(%d) wrote %d participants, want %d", n, nparts, n*apiBenchParticipts)
			}
			srv := httptest.NewServer(benchHandler(st))
			defer srv.Close()
			list := srv.URL + "/api/v1/projects/" + apiBenchProject + "/tickets"

			for _, page := range []int{1, 2, 24, 25} {
				t.Run("page "+strconv.Itoa(page), func(t *testing.T) {
					checkTicketPage(t, fetchOnce(t, list+"?page="+strconv.Itoa(page)), page, n, false)
				})
			}

			t.Run("ticket 3 reads back in full", func(t *testing.T) {
				got, err := st.TicketByNumber(ctx, apiBenchProject, 3)
				if err != nil {
					t.Fatalf("TicketByNumber(3): %v", err)
				}
				created := benchTime0.Add(3 * time.Minute)
				if got.Status != ticket.StatusClosed || got.Requester != "customer3@example3.test" ||
					!got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(created.Add(3*time.Minute)) ||
					!slices.Equal(got.Participants, []string{"customer3@example3.test", "colleague3@example3.test"}) {
					t.Fatalf("TicketByNumber(3) = %+v, want closed, requester customer3@example3.test, created %s, updated 3m later, two participants", got, created)
				}
			})

			t.Run("the next ticket is numbered after them", func(t *testing.T) {
				p, err := st.ProjectByKey(ctx, apiBenchProject)
				if err != nil {
					t.Fatalf("ProjectByKey: %v", err)
				}
				in, _, err := st.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 1, UID: 1,
					MessageID: "<new@customer.test>", From: "new@customer.test", Subject: "New"}, []byte("raw"))
				if err != nil {
					t.Fatalf("RecordFetched: %v", err)
				}
				c, err := st.CommitDelivery(ctx, ticket.Delivery{
					InboundID: in, ProjectID: p.ID, Outcome: ticket.OutcomeTicketCreated, DedupKey: "mid:<new@customer.test>",
					NewTicket: &ticket.Ticket{Subject: "New", Requester: "new@customer.test"},
					Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindEmail,
						From: "new@customer.test", Subject: "New", MessageID: "<new@customer.test>"},
					Participants: []string{"new@customer.test"},
				})
				if err != nil {
					t.Fatalf("CommitDelivery of a new ticket after the load: %v", err)
				}
				if c.TicketNumber != n+1 || c.TicketID <= n {
					t.Fatalf("new ticket: number %d id %d, want number %d and an id above %d", c.TicketNumber, c.TicketID, n+1, n)
				}
			})
		})
	}
}

// nextAfter is the keyset cursor of the page after the list answer body.
func nextAfter(tb testing.TB, body []byte) string {
	var v struct {
		NextAfter *int64 `json:"next_after"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.NextAfter == nil {
		tb.Fatalf("next_after of %q: %v (want a cursor)", truncateBytes(body, 200), err)
	}
	return strconv.FormatInt(*v.NextAfter, 10)
}
