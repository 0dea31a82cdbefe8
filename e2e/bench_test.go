package e2e

// The ingest benchmark (issue 2). One run prints, for SQLite and for
// PostgreSQL, the end-to-end ingest rate of a 2,000-message corpus in
// Dovecot (IMAP fetch -> MIME parse -> persist -> thank-you enqueued) beside
// the ceiling, the bare fetch + parse of the same mail in the same run, and
// the arrival -> processed latency at poll_interval 2s. Only ratios compare:
// these machines are noisy.
//
// Run it with deploy/bench.sh, or:
//
//	go test -run '^$' -bench Ingest -benchtime 1x -timeout 30m ./e2e

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"mime/quotedprintable"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// The knobs of the benchmark, printed with the figures.
const (
	benchCorpusSize  = 2000
	benchBatchSize   = 200 // imap.batch_size of the end-to-end run and the bare fetch's batches
	benchConcurrency = 32  // worker.concurrency (the default)
	benchPoll        = "1s"
	benchLatencyPoll = "2s"
	benchLatencyMsgs = 200
	benchLatencyRate = 10                    // deliveries per second
	benchRedisDB     = 6                     // away from the e2e tests' 8..15 and the jobs tests' 2, 3
	benchIngestLimit = 3 * time.Minute       // a healthy run takes well under a minute
	benchMinRate     = 20 * time.Millisecond // per message: larger backlogs get longer (50 msg/s)
)

// benchBackend is a database for one end-to-end run.
type benchBackend struct {
	name string
	url  func(tb testing.TB) string
}

var allBenchBackends = []benchBackend{
	{"sqlite", func(tb testing.TB) string { return "sqlite://" + filepath.Join(tb.TempDir(), "desk.db") }},
	{"postgres", benchPostgresURL},
}

// benchBackends returns the databases a benchmark runs on: both, or those
// named in BENCH_BACKENDS (comma-separated, e.g. "postgres" while
// profiling one of them).
func benchBackends(tb testing.TB) []benchBackend {
	spec := os.Getenv("BENCH_BACKENDS")
	if spec == "" {
		return allBenchBackends
	}
	var out []benchBackend
	for name := range strings.SplitSeq(spec, ",") {
		i := slices.IndexFunc(allBenchBackends, func(b benchBackend) bool { return b.name == strings.TrimSpace(name) })
		if i < 0 {
			tb.Fatalf("BENCH_BACKENDS=%q: %q is neither sqlite nor postgres", spec, name)
		}
		out = append(out, allBenchBackends[i])
	}
	return out
}

// BenchmarkIngest is issue 2's benchmark. b.N is ignored: one iteration is
// the whole corpus (run it with -benchtime 1x).
func BenchmarkIngest(b *testing.B) {
	if bin := os.Getenv("SERVICEDESK_BENCH_BINARY"); bin != "" {
		binary = bin // e.g. a build with pprof, for profiling serve
	}
	stack := mailstack.Start(b)
	deskAddr := "bench@example.test"
	stack.AddUser(b, deskAddr, deskPass)
	corpus := benchCorpus(benchCorpusSize, deskAddr, "e2e")
	started := time.Now()
	appendCorpus(b, stack, deskAddr, corpus)
	fmt.Printf("setup: %d messages (%.1f MB, %d with an attachment) appended to %s in %s\n",
		len(corpus), float64(corpusBytes(corpus))/1e6, countAttachments(corpus), deskAddr, time.Since(started).Round(time.Millisecond))
	fmt.Printf("knobs: serve --roles scheduler,ingest, imap.batch_size %d, worker.concurrency %d, poll_interval %s, scheduler.tick 200ms, log.level warn\n",
		benchBatchSize, benchConcurrency, benchPoll)
	fmt.Println("end to end = fetch -> parse -> persist -> thank-you enqueued (no notify process runs: sends are not measured)")

	for _, be := range benchBackends(b) {
		b.Run(be.name, func(b *testing.B) {
			// The ceiling first, on the same mailbox, right before the
			// figure it is compared with.
			bare := bareFetchParse(b, stack, deskAddr, len(corpus))
			e2e := endToEnd(b, stack, deskAddr, be, corpus, benchRedisDB)
			ratio := e2e.rate / bare
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(e2e.rate, "msgs/s")
			b.ReportMetric(e2e.ledgerRate, "ledger_msgs/s")
			b.ReportMetric(bare, "bare_msgs/s")
			b.ReportMetric(ratio, "ratio")
			verdict := "meets the aim (>= 0.5)"
			if ratio < 0.5 {
				verdict = "BELOW the aim of 0.5"
			}
			fmt.Printf("ingest %-8s end-to-end %6.0f msg/s | bare fetch+parse %6.0f msg/s | ratio %.2f (%s)\n",
				be.name+":", e2e.rate, bare, ratio, verdict)
			fmt.Printf("ingest %-8s ledger first received -> last processed %6.0f msg/s (%s, excludes start-up; wall %s; serve used %.1f s CPU = %.2f cores)\n",
				be.name+":", e2e.ledgerRate, e2e.ledgerSpan.Round(time.Millisecond), e2e.wall.Round(time.Millisecond),
				e2e.serveCPU.Seconds(), e2e.serveCPU.Seconds()/e2e.wall.Seconds())
			b.ReportMetric(e2e.serveCPU.Seconds()/e2e.wall.Seconds(), "serve_cores")
		})
	}
	for _, be := range benchBackends(b) {
		b.Run("latency-"+be.name, func(b *testing.B) {
			l := arrivalLatency(b, stack, be)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(l.p50.Milliseconds()), "p50_ms")
			b.ReportMetric(float64(l.p99.Milliseconds()), "p99_ms")
			b.ReportMetric(float64(l.max.Milliseconds()), "max_ms")
			fmt.Printf("latency %-8s arrival -> processed at poll_interval %s, %d msgs at %d/s: p50 %s | p99 %s | max %s\n",
				be.name+":", benchLatencyPoll, benchLatencyMsgs, benchLatencyRate,
				l.p50.Round(time.Millisecond), l.p99.Round(time.Millisecond), l.max.Round(time.Millisecond))
		})
	}
}

// bareFetchParse is the ceiling: one IMAP session lists every message,
// fetches them in batches of benchBatchSize and parses and classifies each,
// with no database and no queue. It returns messages per second.
func bareFetchParse(tb testing.TB, stack *mailstack.Stack, deskAddr string, want int) float64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	own := []string{deskAddr}
	start := time.Now()
	cfg := stack.IMAPConfig(deskAddr, deskPass)
	cfg.CommandTimeout = max(cfg.CommandTimeout, 2*time.Minute) // one UID FETCH RFC822.SIZE of the whole backlog
	c, err := mailbox.Dial(ctx, cfg, nil)
	if err != nil {
		tb.Fatalf("bare: dial %s: %v", stack.IMAPAddr, err)
	}
	defer c.Close()
	if _, err := c.Select(ctx, "INBOX"); err != nil {
		tb.Fatalf("bare: select INBOX: %v", err)
	}
	entries, err := c.List(ctx, 0, want)
	if err != nil {
		tb.Fatalf("bare: list: %v", err)
	}
	if len(entries) != want {
		tb.Fatalf("bare: INBOX lists %d messages; want the %d of the corpus", len(entries), want)
	}
	parsed, normal := 0, 0
	for batch := range slices.Chunk(entries, benchBatchSize) {
		uids := make([]uint32, len(batch))
		for i, e := range batch {
			uids[i] = e.UID
		}
		err := c.Fetch(ctx, uids, func(uid uint32, raw []byte) error {
			m, err := ingest.Parse(raw)
			if err != nil {
				return fmt.Errorf("parse UID %d: %w", uid, err)
			}
			parsed++
			if class, _ := ingest.Classify(m, own); class == ingest.ClassNormal {
				normal++
			}
			return nil
		})
		if err != nil {
			tb.Fatalf("bare: fetch: %v", err)
		}
	}
	elapsed := time.Since(start)
	if parsed != want || normal != want {
		tb.Fatalf("bare: parsed %d messages, %d classified normal; want %d of each", parsed, normal, want)
	}
	return float64(want) / elapsed.Seconds()
}

type e2eResult struct {
	rate       float64       // corpus size / wall
	wall       time.Duration // process start -> every ledger row has an outcome
	ledgerRate float64       // corpus size / ledgerSpan
	ledgerSpan time.Duration // first received_at -> last processed_at
	serveCPU   time.Duration // CPU time (user + system) serve used until then
	// handoffRate is corpus size / (process start -> every message in the
	// ledger): the durable hand-off, what mail_room's rate compares with.
	handoffRate float64
	peakRSS     int64 // bytes, serve's VmHWM at the end of the run
}

// endToEnd runs `servicedesk serve --roles scheduler,worker` on a fresh
// database against the corpus mailbox and times it until every message has
// an outcome. It checks that every message became one ticket with its
// thank-you committed and enqueued.
func endToEnd(tb testing.TB, stack *mailstack.Stack, deskAddr string, be benchBackend, corpus []benchMail, redisDB int) e2eResult {
	tb.Helper()
	ctx := context.Background()
	dbURL := be.url(tb)
	rdb := benchRedis(tb, redisDB)
	cfg := writeBenchConfig(tb, stack, deskAddr, dbURL, benchPoll, redisDB)
	st := openBenchStore(tb, dbURL)

	start := time.Now()
	p := startServe(tb, cfg, "--roles", "scheduler,ingest")
	var projectID int64
	limit := max(benchIngestLimit, time.Duration(len(corpus))*benchMinRate)
	deadline := start.Add(limit)
	var handedOff time.Duration // start -> every message in the ledger
	state := "nothing yet"
	for {
		if time.Now().After(deadline) {
			dump := dumpGoroutines(p, be.name)
			tb.Fatalf("%s: timed out after %s waiting for %d messages to have an outcome; last state: %s\nserve's goroutines: %s\nserve log:\n%s",
				be.name, limit, len(corpus), state, dump, tail(p.out.String(), 40))
		}
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("%s: serve exited early (%v):\n%s", be.name, err, tail(p.out.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
		if projectID == 0 {
			proj, err := st.ProjectByKey(ctx, "acme")
			if err != nil {
				continue // serve has not synced its projects yet
			}
			projectID = proj.ID
		}
		if handedOff == 0 && cursorPast(tb, st, projectID, len(corpus)) {
			handedOff = time.Since(start)
		}
		done, s, err := allProcessed(ctx, st, projectID, len(corpus))
		if err != nil {
			tb.Fatalf("%s: poll the ledger: %v", be.name, err)
		}
		state = s
		if done {
			break
		}
	}
	wall := time.Since(start)
	cpu := processCPU(tb, p.cmd.Process.Pid)
	rss := peakRSS(tb, p.cmd.Process.Pid)
	if handedOff == 0 {
		handedOff = wall
	}

	rows := allInbound(tb, st)
	var first, last time.Time
	byMessageID := map[string]int{}
	for _, r := range rows {
		if r.Outcome != ticket.OutcomeTicketCreated {
			tb.Errorf("%s: ledger row %d (%s): outcome %q (%s); want ticket_created", be.name, r.ID, r.MessageID, r.Outcome, r.Reason)
		}
		byMessageID[r.MessageID]++
		if first.IsZero() || r.ReceivedAt.Before(first) {
			first = r.ReceivedAt
		}
		if r.ProcessedAt.After(last) {
			last = r.ProcessedAt
		}
	}
	for _, m := range corpus {
		if byMessageID[m.messageID] != 1 {
			tb.Errorf("%s: message %s has %d ledger rows; want exactly 1", be.name, m.messageID, byMessageID[m.messageID])
		}
	}
	if len(rows) != len(corpus) {
		tb.Errorf("%s: ledger has %d rows; want %d", be.name, len(rows), len(corpus))
	}
	// "Thank-you enqueued": every customer's thank-you is in the outbox,
	// still pending (the SMTP port is closed), and every notification has
	// its send task in Redis (pending, retrying or active).
	notes := allNotifications(tb, st)
	thanked := map[string]int{}
	for _, n := range notes {
		if n.Kind == ticket.NotifyThankYou && n.State == ticket.NotificationPending {
			thanked[n.To]++
		}
	}
	for _, m := range corpus {
		if thanked[m.from] != 1 {
			tb.Errorf("%s: %s has %d pending thank-you notifications; want 1", be.name, m.from, thanked[m.from])
		}
	}
	if n := countSendTasks(tb, rdb); n != len(notes) {
		tb.Errorf("%s: %d send tasks in Redis queue notify for %d notifications in the outbox; want one each", be.name, n, len(notes))
	}
	if err := stopServe(p); err != nil {
		tb.Errorf("%s: serve did not stop cleanly: %v\n%s", be.name, err, tail(p.out.String(), 40))
	}
	span := last.Sub(first)
	if span <= 0 {
		tb.Errorf("%s: ledger timestamps span %s (first received %s, last processed %s); want a positive span", be.name, span, first, last)
		span = time.Nanosecond
	}
	n := float64(len(corpus))
	return e2eResult{rate: n / wall.Seconds(), wall: wall, ledgerRate: n / span.Seconds(), ledgerSpan: span, serveCPU: cpu,
		handoffRate: n / handedOff.Seconds(), peakRSS: rss}
}

// processCPU returns the CPU time (user + system) process pid has used,
// from /proc/<pid>/stat (in clock ticks of 1/100 s, Linux's USER_HZ).
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatalf("read CPU time of serve: %v", err)
	}
	// The fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	var utime, stime int64
	if _, err := fmt.Sscan(fields[11], &utime); err != nil {
		tb.Fatalf("parse utime of /proc/%d/stat: %v", pid, err)
	}
	if _, err := fmt.Sscan(fields[12], &stime); err != nil {
		tb.Fatalf("parse stime of /proc/%d/stat: %v", pid, err)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// allNotifications returns every notification of a fresh database: IDs
// count from 1, with gaps where a transaction was retried, so the scan ends
// after 100 missing IDs in a row.
func allNotifications(tb testing.TB, st *store.Store) []ticket.Notification {
	tb.Helper()
	var all []ticket.Notification
	for id, missing := int64(1), 0; missing < 100; id++ {
		n, err := st.Notification(context.Background(), id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			missing++
		case err != nil:
			tb.Fatalf("read notification %d: %v", id, err)
		default:
			missing = 0
			all = append(all, n)
		}
	}
	return all
}

// dumpGoroutines makes serve print its goroutines and exit (SIGQUIT), saves
// its output to a file and returns the file's name: the evidence of a
// stall.
func dumpGoroutines(p *proc, name string) string {
	_ = p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
		return "none (serve did not exit on SIGQUIT)"
	}
	f, err := os.CreateTemp("", "servicedesk-bench-"+name+"-*.txt")
	if err != nil {
		return fmt.Sprintf("none (%v)", err)
	}
	defer f.Close()
	if _, err := f.WriteString(p.out.String()); err != nil {
		return fmt.Sprintf("none (%v)", err)
	}
	return f.Name()
}

// allProcessed reports whether the ledger of the project holds at least n
// rows and none is waiting for its outcome, and says how far it got.
func allProcessed(ctx context.Context, st *store.Store, projectID int64, n int) (bool, string, error) {
	waiting, err := st.UnprocessedInbound(ctx, projectID, time.Now().Add(time.Hour), 1)
	if err != nil {
		return false, "", err
	}
	if len(waiting) > 0 {
		return false, fmt.Sprintf("inbound %d and maybe more wait for their outcome", waiting[0]), nil
	}
	full, err := ledgerHolds(ctx, st, n)
	if err != nil || !full {
		return false, fmt.Sprintf("fewer than %d ledger rows, all processed", n), err
	}
	return true, "", nil
}

// ledgerHolds reports whether the ledger has at least n rows: its n-th row
// exists.
func ledgerHolds(ctx context.Context, st *store.Store, n int) (bool, error) {
	rows, _, err := st.ListInbound(ctx, store.InboundFilter{}, store.Page{Page: n, PerPage: 1})
	return len(rows) > 0, err
}

// cursorPast reports whether the mailbox cursor of a fresh mailbox of n
// mails (UIDs 1 to n) has reached UID n: the cursor moves only past mail
// that is in the ledger, so then all of it is. A cheap query, unlike
// counting the ledger.
func cursorPast(tb testing.TB, st *store.Store, projectID int64, n int) bool {
	states, err := st.MailboxStates(context.Background())
	if err != nil {
		tb.Fatalf("read mailbox cursors: %v", err)
	}
	for _, s := range states {
		if s.ProjectID == projectID && s.LastUID >= uint32(n) {
			return true
		}
	}
	return false
}

// peakRSS returns the peak resident set size of process pid (VmHWM of
// /proc/<pid>/status) in bytes.
func peakRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	rss := vmHWM(pid)
	if rss == 0 {
		tb.Fatalf("no VmHWM in /proc/%d/status", pid)
	}
	return rss
}

type latencies struct{ p50, p99, max time.Duration }

// arrivalLatency runs serve at poll_interval 2s on a fresh mailbox and
// database, delivers benchLatencyMsgs messages over LMTP at benchLatencyRate
// per second and measures each one's delivery -> ledger processed_at.
func arrivalLatency(tb testing.TB, stack *mailstack.Stack, be benchBackend) latencies {
	return measureLatency(tb, stack, be, latencyRun{name: be.name, poll: benchLatencyPoll})
}

// latencyRun is the mailbox configuration a latency run measures.
type latencyRun struct {
	name string // names the mailbox and the messages
	poll string // imap.poll_interval
	idle bool   // imap.idle
}

// measureLatency is arrivalLatency for the mailbox configuration run.
func measureLatency(tb testing.TB, stack *mailstack.Stack, be benchBackend, run latencyRun) latencies {
	tb.Helper()
	ctx := context.Background()
	deskAddr := "latency-" + run.name + "@example.test"
	stack.AddUser(tb, deskAddr, deskPass)
	dbURL := be.url(tb)
	benchRedis(tb, benchRedisDB)
	cfg := writeBenchConfig(tb, stack, deskAddr, dbURL, run.poll, benchRedisDB)
	if run.idle {
		setIdle(tb, cfg)
	}
	st := openBenchStore(tb, dbURL)
	p := startServe(tb, cfg, "--roles", "scheduler,ingest")
	var projectID int64
	waitFor(tb, p, 30*time.Second, "serve to sync its projects", func() (bool, string) {
		proj, err := st.ProjectByKey(ctx, "acme")
		projectID = proj.ID
		return err == nil, fmt.Sprint(err)
	})
	// Let the first fetch (of an empty mailbox) pass: steady state.
	time.Sleep(time.Second)

	mails := benchCorpus(benchLatencyMsgs, deskAddr, "latency-"+run.name)
	delivered := make(map[string]time.Time, len(mails))
	tick := time.NewTicker(time.Second / benchLatencyRate)
	for _, m := range mails {
		<-tick.C
		stack.Deliver(tb, deskAddr, m.raw)
		delivered[m.messageID] = time.Now()
	}
	tick.Stop()
	waitFor(tb, p, 2*time.Minute, fmt.Sprintf("%d delivered messages to have an outcome", len(mails)), func() (bool, string) {
		done, state, err := allProcessed(ctx, st, projectID, len(mails))
		if err != nil {
			tb.Fatalf("%s: poll the ledger: %v", be.name, err)
		}
		return done, state
	})
	var lat []time.Duration
	for _, r := range allInbound(tb, st) {
		at, ok := delivered[r.MessageID]
		if !ok || r.Outcome != ticket.OutcomeTicketCreated {
			tb.Errorf("%s: ledger row %d: message %q, outcome %q (%s); want one of the delivered messages, ticket_created",
				be.name, r.ID, r.MessageID, r.Outcome, r.Reason)
			continue
		}
		delete(delivered, r.MessageID)
		lat = append(lat, r.ProcessedAt.Sub(at))
	}
	for id := range delivered {
		tb.Errorf("%s: delivered message %s has no ledger row", be.name, id)
	}
	if err := stopServe(p); err != nil {
		tb.Errorf("%s: serve did not stop cleanly: %v", be.name, err)
	}
	if tb.Failed() {
		tb.FailNow()
	}
	slices.Sort(lat)
	return latencies{p50: percentile(lat, 50), p99: percentile(lat, 99), max: lat[len(lat)-1]}
}

// percentile returns the nearest-rank p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}

// The corpus is what the benchmark claims: distinct Message-IDs and
// senders, every message parses and is ordinary customer mail, the charsets
// decode, and every tenth message carries a 20-200 KB attachment.
func TestBenchCorpus(t *testing.T) {
	t.Parallel()
	const n = 200
	corpus := benchCorpus(n, "bench@example.test", "unit")
	ids, senders := map[string]bool{}, map[string]bool{}
	parts := map[string]int{}
	for i, m := range corpus {
		ids[m.messageID], senders[m.from] = true, true
		parsed, err := ingest.Parse(m.raw)
		if err != nil {
			t.Fatalf("message %d does not parse: %v\n%s", i, err, m.raw)
		}
		if class, why := ingest.Classify(parsed, []string{"bench@example.test"}); class != ingest.ClassNormal {
			t.Errorf("message %d classified %s (%s); want normal", i, class, why)
		}
		if parsed.MessageID != m.messageID || parsed.From != m.from {
			t.Errorf("message %d parsed as %s from %s; want %s from %s", i, parsed.MessageID, parsed.From, m.messageID, m.from)
		}
		if !strings.Contains(parsed.Text, "Hello support team") || strings.Contains(parsed.Subject, "=?") {
			t.Errorf("message %d: subject %q, text %.60q; want decoded text", i, parsed.Subject, parsed.Text)
		}
		switch {
		case m.attachment:
			if len(parsed.Attachments) != 1 || parsed.Attachments[0].Size < 20<<10 || parsed.Attachments[0].Size > 200<<10 {
				t.Errorf("message %d: %d attachments; want one of 20-200 KB", i, len(parsed.Attachments))
			}
			parts["attachment"]++
		case parsed.HTML != "":
			parts["alternative"]++
		default:
			parts["plain"]++
		}
	}
	if len(ids) != n || len(senders) != n {
		t.Errorf("%d distinct Message-IDs and %d distinct senders in %d messages; want all distinct", len(ids), len(senders), n)
	}
	if parts["attachment"] != n/10 || parts["alternative"] == 0 || parts["plain"] == 0 {
		t.Errorf("kinds of message = %v; want %d with an attachment and some of each other kind", parts, n/10)
	}
	for _, want := range []string{"Grüße", "facture reçue", "Jürgen", "Здравствуйте"} {
		found := false
		for _, m := range corpus {
			if parsed, _ := ingest.Parse(m.raw); parsed != nil && strings.Contains(parsed.Text, want) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no message decodes to text containing %q; want every charset represented", want)
		}
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	cases := []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value is every percentile", []time.Duration{7}, 99, 7},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 is the max", hundred, 100, 100 * time.Millisecond},
		{"p99 of 10 values is the max", hundred[:10], 99, 10 * time.Millisecond},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.sorted, c.p); got != c.want {
				t.Errorf("percentile(%d values, p%d) = %s; want %s", len(c.sorted), c.p, got, c.want)
			}
		})
	}
}

// waitFor polls cond every 100 ms until it holds; it fails after timeout or
// when serve exits.
func waitFor(tb testing.TB, p *proc, timeout time.Duration, what string, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s; last state: %s\nserve log:\n%s", timeout, what, last, tail(p.out.String(), 40))
		}
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("serve exited (%v) while waiting for %s:\n%s", err, what, tail(p.out.String(), 40))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// --- the binary, its config, its stores ---------------------------------

// writeBenchConfig writes a config for one desk: the given poll interval,
// the benchmark's knobs, and SMTP at a closed local port so that thank-yous
// are enqueued and their sends fail temporarily and back off.
func writeBenchConfig(tb testing.TB, stack *mailstack.Stack, deskAddr, dbURL, poll string, redisDB int) string {
	tb.Helper()
	imapHost, imapPort, _ := net.SplitHostPort(stack.IMAPAddr)
	cfg := fmt.Sprintf(`
redis: {url: "redis://127.0.0.1:6379/%d"}
database: {url: %q}
http: {listen: 127.0.0.1:0, public_url: "http://desk.example.test"}
mail: {reply_key_secret: %s}
scheduler: {tick: 200ms}
worker: {concurrency: %d, shutdown_timeout: 10s}
log: {level: warn, format: text}
projects:
  - key: acme
    name: Acme Support
    address: %s
    imap: {host: %s, port: %s, security: none, username: %s, password: %s, poll_interval: %s, batch_size: %d}
    smtp: {host: 127.0.0.1, port: %d, security: none}
`, redisDB, dbURL, replySecret, benchConcurrency, deskAddr, imapHost, imapPort, deskAddr, deskPass, poll,
		benchBatchSize, closedPort(tb))
	path := filepath.Join(tb.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatalf("write config: %v", err)
	}
	return path
}

// closedPort returns a loopback port nothing listens on (it was free a
// moment ago): connecting is refused, a temporary failure.
func closedPort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("find a closed port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// benchRedis flushes the benchmark's Redis database and returns a client
// for it; the database is flushed again when the (sub-)benchmark ends.
func benchRedis(tb testing.TB, db int) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		tb.Fatalf("redis at 127.0.0.1:6379 (db %d) unreachable: %v", db, err)
	}
	tb.Cleanup(func() {
		rdb.FlushDB(context.Background())
		rdb.Close()
	})
	return rdb
}

// countSendTasks counts the tasks of asynq's notify queue, whatever their
// state (asynq keeps each task under asynq:{queue}:t:<id>).
func countSendTasks(tb testing.TB, rdb *redis.Client) int {
	tb.Helper()
	n := 0
	iter := rdb.Scan(context.Background(), 0, "asynq:{notify}:t:*", 1000).Iterator()
	for iter.Next(context.Background()) {
		n++
	}
	if err := iter.Err(); err != nil {
		tb.Fatalf("scan the notify queue in Redis: %v", err)
	}
	return n
}

// benchPostgresURL makes a fresh schema and drops it afterwards.
func benchPostgresURL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("SERVICEDESK_TEST_POSTGRES")
	if base == "" {
		base = "postgres://postgres:postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	admin, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("postgres at %s: %v", base, err)
	}
	schema := "bench_" + randomHex(6)
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		admin.Close()
		tb.Fatalf("postgres at %s: create schema: %v", base, err)
	}
	tb.Cleanup(func() {
		_, _ = admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		admin.Close()
	})
	return base + "&search_path=" + schema
}

// openBenchStore opens and migrates the database before serve starts, so
// that the timed run does not race serve's own migration.
func openBenchStore(tb testing.TB, dbURL string) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), dbURL, nil)
	if err != nil {
		tb.Fatalf("open store: %v", err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return st
}

// allInbound returns every row of the ledger.
func allInbound(tb testing.TB, st *store.Store) []ticket.Inbound {
	tb.Helper()
	var all []ticket.Inbound
	for p := 1; ; p++ {
		rows, more, err := st.ListInbound(context.Background(), store.InboundFilter{}, store.Page{Page: p, PerPage: 1000})
		if err != nil {
			tb.Fatalf("list ledger: %v", err)
		}
		all = append(all, rows...)
		if !more {
			return all
		}
	}
}

// --- the corpus ----------------------------------------------------------

// benchMail is one message of the corpus.
type benchMail struct {
	messageID  string
	from       string // the requester, who gets the thank-you
	raw        []byte
	attachment bool
}

// appendCorpus appends the corpus to the desk's INBOX over one IMAP session.
func appendCorpus(tb testing.TB, stack *mailstack.Stack, deskAddr string, corpus []benchMail) {
	tb.Helper()
	ctx := context.Background()
	c, err := mailbox.Dial(ctx, stack.IMAPConfig(deskAddr, deskPass), nil)
	if err != nil {
		tb.Fatalf("append corpus: log in as %s: %v", deskAddr, err)
	}
	defer c.Close()
	for i, m := range corpus {
		if _, err := c.Append(ctx, "INBOX", m.raw); err != nil {
			tb.Fatalf("append corpus message %d (%s): %v", i, m.messageID, err)
		}
	}
}

func corpusBytes(corpus []benchMail) int {
	n := 0
	for _, m := range corpus {
		n += len(m.raw)
	}
	return n
}

func countAttachments(corpus []benchMail) int {
	n := 0
	for _, m := range corpus {
		if m.attachment {
			n++
		}
	}
	return n
}

// A charset a customer's mail client may use, with text that needs it.
type benchCharset struct {
	name    string
	enc     encoding.Encoding // nil: UTF-8
	subject string
	body    string
}

var benchCharsets = []benchCharset{
	{"utf-8", nil, "Drucker im 2. Stock druckt nur noch Streifen – bitte um Hilfe",
		"Grüße aus München! Seit dem Update druckt der Drucker nur noch Streifen. Wir haben Tonerkartusche und Trommel gewechselt, ohne Erfolg. 😕"},
	{"iso-8859-1", charmap.ISO8859_1, "Problème de facturation sur la facture n° 2024-118",
		"Bonjour, la facture reçue ce matin comporte un montant erroné. Pourriez-vous vérifier les lignes « frais de port » et me renvoyer une facture corrigée ? Merci d'avance."},
	{"windows-1252", charmap.Windows1252, "Zugang gesperrt – Passwort zurücksetzen",
		"Hallo, mein Zugang ist seit gestern gesperrt. Die E-Mail zum Zurücksetzen kommt nicht an. Können Sie das prüfen? Danke – Jürgen"},
	{"koi8-r", charmap.KOI8R, "Не работает VPN после обновления",
		"Здравствуйте! После обновления клиента VPN не подключается, пишет «ошибка авторизации». Пароль верный. Помогите, пожалуйста."},
}

var benchParagraphs = []string{
	"Since this morning none of us can log in to the customer portal. The page loads, but after entering the password it returns to the login form without an error.",
	"I have attached the screenshot our accountant sent me. The totals on page 2 do not match the order confirmation we received last week.",
	"Could you please tell me when the replacement part will ship? The tracking link in your last mail shows no movement since Tuesday.",
	"We tried restarting the router and the access point as suggested in your knowledge base article, but the connection still drops every ten minutes or so.",
	"Our contract number is 44-1189-203. The account is registered to our old office address; please use the new one for all future invoices.",
	"This is quite urgent for us, as the quarterly close is on Friday and the finance team depends on the export working correctly.",
	"Thanks in advance for your help, and apologies if this is already known: I could not find anything about it on the status page.",
}

var benchNames = []string{"Alice Martin", "Bob Okafor", "Carol Nguyen", "Dmitri Ivanov", "Élodie Lefèvre", "Frank Müller", "Grace Ho", "Hiro Tanaka"}

var benchDomains = []string{"customer.test", "acme-corp.test", "example.org", "mail.example.net", "shop.test"}

// benchCorpus builds n distinct, deterministic customer mails to deskAddr:
// plain text in several charsets, multipart/alternative, and every tenth
// one multipart/mixed with a 20-200 KB attachment. Every sender is
// distinct, so that per-recipient caps on thank-yous never apply.
func benchCorpus(n int, deskAddr, tag string) []benchMail {
	out := make([]benchMail, 0, n)
	eachBenchMail(n, deskAddr, tag, func(m benchMail) { out = append(out, m) })
	return out
}

// eachBenchMail hands the mails of benchCorpus to fn one at a time, so
// that a large corpus need not be held in memory.
func eachBenchMail(n int, deskAddr, tag string, fn func(benchMail)) {
	rng := rand.New(rand.NewPCG(2, 1))
	base := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	for i := range n {
		name := benchNames[i%len(benchNames)]
		domain := benchDomains[(i/len(benchNames))%len(benchDomains)]
		from := fmt.Sprintf("%s.%04d@%s", strings.ToLower(strings.Fields(name)[0]), i, domain)
		from = strings.NewReplacer("é", "e").Replace(from)
		cs := benchCharsets[0]
		if i%4 == 2 {
			cs = benchCharsets[1+(i/4)%(len(benchCharsets)-1)]
		}
		subject := fmt.Sprintf("%s (#%d)", cs.subject, i)
		var body strings.Builder
		body.WriteString("Hello support team,\n\n" + cs.body + "\n\n")
		for range 1 + rng.IntN(4) {
			body.WriteString(benchParagraphs[rng.IntN(len(benchParagraphs))] + "\n\n")
		}
		body.WriteString("Best regards,\n" + name + "\n")
		m := benchMail{messageID: fmt.Sprintf("<%s-%d.%08x@%s>", tag, i, rng.Uint32(), domain), from: from, attachment: i%10 == 3}

		var b strings.Builder
		fmt.Fprintf(&b, "Return-Path: <%s>\r\n", from)
		fmt.Fprintf(&b, "Received: from mx.%s (mx.%s [192.0.2.%d]) by mail.example.test with ESMTPS id %08x; %s\r\n",
			domain, domain, 1+i%250, rng.Uint32(), base.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
		fmt.Fprintf(&b, "From: %s <%s>\r\n", mime.QEncoding.Encode("utf-8", name), from)
		fmt.Fprintf(&b, "To: Acme Support <%s>\r\n", deskAddr)
		if i%7 == 0 {
			fmt.Fprintf(&b, "Cc: colleague.%04d@%s\r\n", i, domain)
		}
		fmt.Fprintf(&b, "Subject: %s\r\n", encodeWord(cs, subject))
		fmt.Fprintf(&b, "Date: %s\r\n", base.Add(time.Duration(i)*time.Minute).Format(time.RFC1123Z))
		fmt.Fprintf(&b, "Message-ID: %s\r\n", m.messageID)
		if i%3 == 0 {
			b.WriteString("User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Thunderbird/128.6.0\r\n")
		}
		b.WriteString("MIME-Version: 1.0\r\n")

		text := body.String()
		switch {
		case m.attachment:
			size := 20<<10 + rng.IntN(180<<10)
			boundary := fmt.Sprintf("mixed-%d-%x", i, rng.Uint64())
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
			b.WriteString("This is a multi-part message in MIME format.\r\n")
			fmt.Fprintf(&b, "--%s\r\n", boundary)
			writeTextPart(&b, cs, text)
			fmt.Fprintf(&b, "--%s\r\n", boundary)
			file, ctype := fmt.Sprintf("screenshot-%d.png", i), "image/png"
			if i%20 == 13 {
				file, ctype = fmt.Sprintf("invoice-%d.pdf", i), "application/pdf"
			}
			fmt.Fprintf(&b, "Content-Type: %s; name=%q\r\nContent-Disposition: attachment; filename=%q\r\nContent-Transfer-Encoding: base64\r\n\r\n",
				ctype, file, file)
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(rng.Uint32())
			}
			writeBase64(&b, data)
			fmt.Fprintf(&b, "--%s--\r\n", boundary)
		case i%2 == 1:
			boundary := fmt.Sprintf("alt-%d-%x", i, rng.Uint64())
			fmt.Fprintf(&b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
			fmt.Fprintf(&b, "--%s\r\n", boundary)
			writeTextPart(&b, cs, text)
			fmt.Fprintf(&b, "--%s\r\n", boundary)
			html := "<html><body><p>" + strings.ReplaceAll(strings.TrimSpace(text), "\n\n", "</p><p>") + "</p></body></html>"
			writePart(&b, "text/html", cs, html)
			fmt.Fprintf(&b, "--%s--\r\n", boundary)
		default:
			writeTextPart(&b, cs, text)
		}
		m.raw = []byte(b.String())
		fn(m)
	}
}

// encodeWord encodes s as an RFC 2047 encoded word in cs.
func encodeWord(cs benchCharset, s string) string {
	if cs.enc == nil {
		return mime.BEncoding.Encode("utf-8", s)
	}
	raw, err := encoding.ReplaceUnsupported(cs.enc.NewEncoder()).String(s)
	if err != nil {
		panic(fmt.Sprintf("encode %q as %s: %v", s, cs.name, err))
	}
	return "=?" + cs.name + "?B?" + base64.StdEncoding.EncodeToString([]byte(raw)) + "?="
}

func writeTextPart(b *strings.Builder, cs benchCharset, text string) {
	writePart(b, "text/plain", cs, text)
}

// writePart writes a part's header and body: quoted-printable in UTF-8,
// 8bit in a legacy charset.
func writePart(b *strings.Builder, ctype string, cs benchCharset, text string) {
	text = strings.ReplaceAll(text, "\n", "\r\n")
	if cs.enc == nil {
		fmt.Fprintf(b, "Content-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", ctype)
		b.WriteString(quotedPrintable(text))
		b.WriteString("\r\n")
		return
	}
	raw, err := encoding.ReplaceUnsupported(cs.enc.NewEncoder()).String(text)
	if err != nil {
		panic(fmt.Sprintf("encode body as %s: %v", cs.name, err))
	}
	fmt.Fprintf(b, "Content-Type: %s; charset=%s\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", ctype, cs.name, raw)
}

func quotedPrintable(s string) string {
	var out strings.Builder
	w := quotedprintable.NewWriter(&out)
	_, _ = w.Write([]byte(s))
	_ = w.Close()
	return out.String()
}

func writeBase64(b *strings.Builder, data []byte) {
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
}
