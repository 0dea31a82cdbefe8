package e2e

// The outbound benchmark (issue 3). One run prints:
//
//   - throughput: mails/s of notify.Deliverer.Deliver, on a real SQLite
//     store, sending 1,000 queued note notifications to the local OpenSMTPD
//     sequentially and from 4 goroutines (worker.notify_concurrency's
//     default), each beside the ceiling: a bare go-mail loop sending the
//     same rendered mails on one connection to the same server, in the same
//     run.
//   - peak RSS: the VmHWM of a real `servicedesk serve --roles worker`
//     process after it sent ten notes with a 10 MB attachment each, queued
//     at once, beside the idle RSS of the same process before the sends.
//
// Only ratios compare across machines. Run it with deploy/bench-outbound.sh,
// or:
//
//	go test -run '^$' -bench Outbound -benchtime 1x -timeout 15m ./e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	mail "github.com/wneessen/go-mail"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/jobs"
	"github.com/servicedesk/servicedesk/notify"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// The knobs of the outbound benchmark, printed with the figures.
const (
	outbMails       = 1000 // notifications per throughput figure
	outbRecipients  = 10   // stack users the mails go to, every note to all of them
	outbTickets     = 10   // tickets per throughput run; the notes are spread over them
	outbConcurrency = 4    // goroutines of the concurrent run: worker.notify_concurrency's default
	outbAttachments = 10   // notes of the peak-RSS run, one ticket and one recipient each
	outbAttachSize  = 10 << 20
	outbMaxAttach   = "20MB" // limits.max_attachments_size: the 10 MB files travel natively
	outbRedisDB     = 7      // away from the e2e tests' 8..15, the ingest bench's 6, the jobs tests' 2, 3
	outbDeskAddr    = "support@example.test"
)

// outbRSSConcurrencies are the worker.notify_concurrency values of the
// peak-RSS runs: the default, and all ten attachments in flight at once.
var outbRSSConcurrencies = []int{4, outbAttachments}

// BenchmarkOutbound is issue 3's benchmark. b.N is ignored: one iteration
// is the whole workload (run it with -benchtime 1x).
func BenchmarkOutbound(b *testing.B) {
	stack := mailstack.Start(b)
	b.Run("throughput", func(b *testing.B) {
		rcpts := outbUsers(b, stack, "outb-rcpt", outbRecipients)
		r := outbThroughput(b, stack, rcpts)
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(r.seq, "seq_mails/s")
		b.ReportMetric(r.conc, "conc_mails/s")
		b.ReportMetric(r.bare, "bare_mails/s")
		b.ReportMetric(r.seq/r.bare, "seq_ratio")
		b.ReportMetric(r.conc/r.bare, "conc_ratio")
	})
	for _, conc := range outbRSSConcurrencies {
		b.Run(fmt.Sprintf("peak-rss-notify-concurrency-%d", conc), func(b *testing.B) {
			rcpts := outbUsers(b, stack, fmt.Sprintf("outb-rss%d", conc), outbAttachments)
			r := outbPeakRSS(b, stack, rcpts, conc)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(r.idleRSS)/(1<<20), "idle_rss_MiB")
			b.ReportMetric(float64(r.peak)/(1<<20), "peak_rss_MiB")
			b.ReportMetric(float64(r.inFlight)/(1<<20), "in_flight_MiB")
		})
	}
}

// --- throughput ------------------------------------------------------------

type outbRates struct{ seq, conc, bare float64 }

// outbThroughput measures, on one fresh SQLite store and the stack's
// OpenSMTPD, each figure on a quiet server (the previous run's mail fully
// delivered to Dovecot before the next starts): the sequential Deliverer,
// the bare go-mail loop over the mails the sequential run produced, then
// the Deliverer from outbConcurrency goroutines.
func outbThroughput(b *testing.B, stack *mailstack.Stack, rcpts []string) outbRates {
	ctx := b.Context()
	st := outbStore(b, "sqlite://"+filepath.Join(b.TempDir(), "desk.db"))
	projects, err := st.SyncProjects(ctx, []ticket.Project{{Key: "acme", Name: "Acme Support", Address: outbDeskAddr}})
	if err != nil {
		b.Fatalf("sync project acme: %v", err)
	}
	p := projects[0]
	keys, err := ticket.NewReplyKeys([]byte(replySecret))
	if err != nil {
		b.Fatalf("reply keys: %v", err)
	}
	host, port := outbHostPort(b, stack.SMTPAddr)
	np := notify.Project{ID: p.ID, Key: p.Key, Name: p.Name, Address: p.Address, PublicURL: "http://desk.example.test",
		SMTP: notify.SMTPConfig{Host: host, Port: port, Security: notify.SecurityNone}}
	fmt.Printf("knobs: %d note notifications per figure = %d tickets x %d notes x %d recipients (stack users); "+
		"SQLite store in a temp file; OpenSMTPD %s, security none; concurrent run %d goroutines on one Deliverer\n",
		outbMails, outbTickets, outbMails/outbTickets/outbRecipients, outbRecipients, stack.SMTPAddr, outbConcurrency)

	uid := uint32(0)
	seqIDs := outbQueueNotes(b, st, p, rcpts, "seq", &uid)
	seq := outbDeliver(b, st, keys, np, seqIDs, 1)
	sent := outbWaitDelivered(b, stack, rcpts, outbMails/outbRecipients)
	if len(sent) != outbMails {
		b.Fatalf("after the sequential run the recipients hold %d mails; want exactly the %d it sent", len(sent), outbMails)
	}

	var sentBytes int
	for _, raw := range sent {
		sentBytes += len(raw)
	}
	seq.avgBytes = float64(sentBytes) / float64(len(sent))

	bare := outbBareLoop(b, host, port, sent)
	outbWaitDelivered(b, stack, rcpts, 2*outbMails/outbRecipients)

	concIDs := outbQueueNotes(b, st, p, rcpts, "conc", &uid)
	conc := outbDeliver(b, st, keys, np, concIDs, outbConcurrency)
	outbWaitDelivered(b, stack, rcpts, 3*outbMails/outbRecipients)

	fmt.Printf("mail size: Deliverer %.0f bytes on average (as delivered, trace headers removed) | bare loop %.0f bytes\n",
		seq.avgBytes, bare.avgBytes)
	for _, r := range []struct {
		name string
		run  outbRun
	}{{"sequential:", seq}, {fmt.Sprintf("%d goroutines:", outbConcurrency), conc}} {
		fmt.Printf("outbound %-14s Deliverer %6.1f mails/s (%d in %s) | bare go-mail loop %6.1f mails/s (%d in %s) | ratio %.2f\n",
			r.name, r.run.rate, r.run.n, r.run.took.Round(time.Millisecond), bare.rate, bare.n, bare.took.Round(time.Millisecond),
			r.run.rate/bare.rate)
	}
	fmt.Printf("server refusals retried: Deliverer sequential %d, %d goroutines %d, bare loop %d (redials); first: %s\n",
		seq.retries, outbConcurrency, conc.retries, bare.retries, cmp.Or(seq.firstRetry, conc.firstRetry, bare.firstRetry, "none"))
	return outbRates{seq: seq.rate, conc: conc.rate, bare: bare.rate}
}

// outbRun is one timed batch of sends.
type outbRun struct {
	n        int
	took     time.Duration
	rate     float64 // mails per second
	avgBytes float64
	// retries counts sends that failed temporarily and were retried at
	// once (the Deliverer) or redialed (the bare loop); firstRetry is the
	// first such error.
	retries    int
	firstRetry string
}

// outbQueueNotes adds outbMails/outbRecipients notes, spread over
// outbTickets new tickets, each note to every recipient, and returns the
// IDs of the queued notifications in the order they were queued.
func outbQueueNotes(b *testing.B, st *store.Store, p ticket.Project, rcpts []string, tag string, uid *uint32) []int64 {
	ctx := b.Context()
	var ids []int64
	notesPerTicket := outbMails / outbTickets / len(rcpts)
	for t := range outbTickets {
		*uid++
		number := outbOpenTicket(b, st, p, rcpts[t%len(rcpts)], rcpts, *uid, tag)
		for n := range notesPerTicket {
			_, queued, err := st.AddNote(ctx, p.Key, number, store.NoteInput{
				Author: "bench-agent", Text: outbNoteText(tag, t, n), Recipients: rcpts,
			})
			if err != nil {
				b.Fatalf("queue note %d on %s: %v", n, ticket.FormatRef(p.Key, number), err)
			}
			if len(queued) != len(rcpts) {
				b.Fatalf("note %d on %s queued %d notifications; want one per recipient (%d)", n, ticket.FormatRef(p.Key, number), len(queued), len(rcpts))
			}
			ids = append(ids, queued...)
		}
	}
	return ids
}

func outbNoteText(tag string, t, n int) string {
	return fmt.Sprintf("Hello,\n\nthanks for your patience (%s run, ticket %d, note %d). We replaced the fuser "+
		"assembly of the printer and ran a hundred test pages without smoke. Please check from your side that "+
		"duplex printing works again and tell us if the paper still jams in tray 2.\n\nIf anything is still "+
		"wrong, simply answer this mail: it goes straight back onto your ticket.\n\nKind regards,\nThe Acme "+
		"support team\n", tag, t, n)
}

// outbOpenTicket records a customer mail and commits it as a new ticket
// with participants, the way ingest would; it returns the ticket number.
func outbOpenTicket(tb testing.TB, st *store.Store, p ticket.Project, requester string, participants []string, uid uint32, tag string) int64 {
	tb.Helper()
	ctx := context.Background()
	mid := fmt.Sprintf("<outb-%s-%d.%s@customer.test>", tag, uid, randomHex(4))
	subject := fmt.Sprintf("Printer on fire (%s %d)", tag, uid)
	raw := custMail{from: requester, to: p.Address, subject: subject, body: "It burns.", messageID: mid}.raw()
	inID, _, err := st.RecordFetched(ctx, ticket.Inbound{ProjectID: p.ID, UIDValidity: 1, UID: uid,
		MessageID: mid, From: requester, Subject: subject, Size: int64(len(raw))}, raw)
	if err != nil {
		tb.Fatalf("record customer mail uid %d: %v", uid, err)
	}
	c, err := st.CommitDelivery(ctx, ticket.Delivery{
		InboundID: inID, ProjectID: p.ID, Outcome: ticket.OutcomeTicketCreated, DedupKey: "mid:" + mid,
		NewTicket: &ticket.Ticket{Subject: subject, Requester: requester},
		Message: &ticket.Message{Direction: ticket.DirectionInbound, Kind: ticket.KindEmail, From: requester,
			To: []string{p.Address}, Subject: subject, Text: "It burns.", MessageID: mid},
		Participants: participants, MailDomain: "example.test",
	})
	if err != nil {
		tb.Fatalf("commit ticket for uid %d: %v", uid, err)
	}
	if c.Outcome != ticket.OutcomeTicketCreated || c.TicketNumber == 0 {
		tb.Fatalf("commit ticket for uid %d: outcome %q, ticket %d; want a new ticket", uid, c.Outcome, c.TicketNumber)
	}
	return c.TicketNumber
}

// outbDeliver sends ids through a fresh Deliverer from workers goroutines
// and times it, from the first Deliver to the last return. Every send must
// succeed and every notification end up sent.
func outbDeliver(b *testing.B, st *store.Store, keys *ticket.ReplyKeys, p notify.Project, ids []int64, workers int) outbRun {
	ctx := b.Context()
	d := notify.NewDeliverer(st, keys, []notify.Project{p}, nil)
	defer d.Close()
	var (
		mu      sync.Mutex
		errs    []error
		retried []string
		wg      sync.WaitGroup
	)
	work := make(chan int64)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for id := range work {
				// A temporary failure is retried at once, as the worker
				// would after its backoff: OpenSMTPD refuses the 101st
				// mail of a session ("452 4.5.3 Too many messages sent",
				// smtpd.conf's limit max-mails, 100 by default) and the
				// Deliverer redials only on the next Deliver.
				for attempt := 1; ; attempt++ {
					err := d.Deliver(ctx, id)
					if err == nil {
						break
					}
					mu.Lock()
					if notify.Permanent(err) || attempt == 3 {
						errs = append(errs, fmt.Errorf("notification %d, attempt %d: %w", id, attempt, err))
						mu.Unlock()
						break
					}
					retried = append(retried, err.Error())
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	if len(errs) > 0 {
		b.Fatalf("%d of %d sends failed; want none. First: %v", len(errs), len(ids), errs[0])
	}
	for _, id := range ids {
		n, err := st.Notification(ctx, id)
		if err != nil {
			b.Fatalf("read notification %d: %v", id, err)
		}
		if n.State != ticket.NotificationSent {
			b.Fatalf("notification %d is %q (%s) after Deliver returned nil; want sent", id, n.State, n.LastError)
		}
	}
	return outbRun{n: len(ids), took: took, rate: float64(len(ids)) / took.Seconds(), retries: len(retried), firstRetry: outbFirst(retried)}
}

func outbFirst(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// outbWaitDelivered waits until every recipient holds at least perUser
// mails and returns them all, trace headers removed.
func outbWaitDelivered(b *testing.B, stack *mailstack.Stack, rcpts []string, perUser int) [][]byte {
	var all [][]byte
	for _, r := range rcpts {
		for _, raw := range stack.WaitForMail(b, r, deskPass, perUser, 3*time.Minute) {
			all = append(all, outbStripTrace(raw))
		}
	}
	return all
}

// outbBareLoop is the ceiling: the mails the Deliverer produced, parsed
// back into go-mail messages beforehand, sent in a loop by one go-mail
// client on one connection to the same server. Like the Deliverer, it
// redials when the server refuses a mail for a temporary reason (the
// per-session limit) and sends that mail again.
func outbBareLoop(b *testing.B, host string, port int, raws [][]byte) outbRun {
	ctx := b.Context()
	msgs := make([]*mail.Msg, len(raws))
	var size int64
	for i, raw := range raws {
		m, err := mail.EMLToMsgFromReader(bytes.NewReader(raw))
		if err != nil {
			b.Fatalf("bare loop: parse delivered mail %d back into go-mail: %v\n%s", i, err, raw)
		}
		n, err := m.WriteTo(&outbCounter{})
		if err != nil {
			b.Fatalf("bare loop: render mail %d: %v", i, err)
		}
		size += n
		msgs[i] = m
	}
	c, err := mail.NewClient(host, mail.WithPort(port), mail.WithTLSPolicy(mail.NoTLS), mail.WithTimeout(30*time.Second))
	if err != nil {
		b.Fatalf("bare loop: go-mail client: %v", err)
	}
	var retried []string
	start := time.Now()
	if err := c.DialWithContext(ctx); err != nil {
		b.Fatalf("bare loop: dial %s:%d: %v", host, port, err)
	}
	for i, m := range msgs {
		err := c.Send(m)
		if err != nil && m.SendErrorIsTemp() {
			retried = append(retried, err.Error())
			_ = c.Close()
			if err := c.DialWithContext(ctx); err != nil {
				b.Fatalf("bare loop: redial %s:%d after mail %d: %v", host, port, i, err)
			}
			err = c.Send(m)
		}
		if err != nil {
			b.Fatalf("bare loop: send mail %d of %d to %s:%d: %v", i+1, len(msgs), host, port, err)
		}
	}
	if err := c.Close(); err != nil {
		b.Fatalf("bare loop: quit: %v", err)
	}
	took := time.Since(start)
	return outbRun{n: len(msgs), took: took, rate: float64(len(msgs)) / took.Seconds(), avgBytes: float64(size) / float64(len(msgs)),
		retries: len(retried), firstRetry: outbFirst(retried)}
}

type outbCounter struct{}

func (outbCounter) Write(p []byte) (int, error) { return len(p), nil }

// outbStripTrace removes the headers the servers added on the way
// (Return-Path, Delivered-To, Received), leaving the mail as it was sent.
func outbStripTrace(raw []byte) []byte {
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return raw
	}
	var out bytes.Buffer
	skip := false
	for line := range strings.SplitSeq(string(head), "\r\n") {
		if line != "" && (line[0] == ' ' || line[0] == '\t') {
			if !skip {
				out.WriteString(line + "\r\n")
			}
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "return-path", "delivered-to", "received", "x-original-to":
			skip = true
		default:
			skip = false
			out.WriteString(line + "\r\n")
		}
	}
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes()
}

// --- peak RSS ----------------------------------------------------------------

type outbRSS struct {
	idleRSS, idleHWM, peak, inFlight int64 // bytes
}

// outbPeakRSS starts `servicedesk serve --roles worker` on a fresh SQLite
// database with worker.notify_concurrency conc, opens one ticket per
// recipient and adds a note with a distinct 10 MB attachment to each, reads
// the idle worker's RSS, enqueues all ten sends at once and, when every
// notification is sent and every mail has arrived with its attachment,
// reads the worker's VmHWM.
func outbPeakRSS(b *testing.B, stack *mailstack.Stack, rcpts []string, conc int) outbRSS {
	ctx := b.Context()
	rdb := outbRedis(b)
	dbURL := "sqlite://" + filepath.Join(b.TempDir(), "desk.db")
	cfg := outbWorkerConfig(b, stack, dbURL, conc)
	w := startServe(b, cfg, "--roles", "worker")
	outbWaitLog(b, w, "servicedesk started", 30*time.Second)

	st := outbStore(b, dbURL)
	p, err := st.ProjectByKey(ctx, "acme")
	if err != nil {
		b.Fatalf("project acme after the worker started: %v", err)
	}
	var ids []int64
	for i, r := range rcpts {
		number := outbOpenTicket(b, st, p, r, nil, uint32(i+1), fmt.Sprintf("rss%d", conc))
		data := outbRandom(outbAttachSize, uint64(conc*100+i))
		_, queued, err := st.AddNote(ctx, p.Key, number, store.NoteInput{
			Author: "bench-agent", Text: "The log file you asked for is attached.", Recipients: []string{r},
			Attachments: []ticket.Attachment{{Filename: fmt.Sprintf("printer-%02d.log.bin", i), ContentType: "application/octet-stream", Data: data}},
		})
		if err != nil {
			b.Fatalf("add note with a %d-byte attachment on %s: %v", len(data), ticket.FormatRef(p.Key, number), err)
		}
		if len(queued) != 1 {
			b.Fatalf("note on %s queued %d notifications; want 1 (to %s)", ticket.FormatRef(p.Key, number), len(queued), r)
		}
		ids = append(ids, queued[0])
	}

	time.Sleep(time.Second) // let the worker settle after start-up
	idle := outbProcStatus(b, w.cmd.Process.Pid)
	enq := jobs.NewEnqueuer(asynq.NewClientFromRedisClient(rdb), jobs.Retries{})
	start := time.Now()
	for _, id := range ids {
		if _, err := enq.Send(ctx, id); err != nil {
			b.Fatalf("enqueue send of notification %d: %v", id, err)
		}
	}
	outbWaitSent(b, w, st, ids, 3*time.Minute)
	took := time.Since(start)
	peak := outbProcStatus(b, w.cmd.Process.Pid)

	for i, r := range rcpts {
		msgs := stack.WaitForMail(b, r, deskPass, 1, 2*time.Minute)
		name := fmt.Sprintf("printer-%02d.log.bin", i)
		if len(msgs) != 1 || len(msgs[0]) < outbAttachSize || !bytes.Contains(msgs[0], []byte(name)) {
			b.Fatalf("%s holds %d mail(s), the first %d bytes; want one mail over %d bytes carrying %s natively",
				r, len(msgs), len(msgs[0]), outbAttachSize, name)
		}
	}

	inFlight := int64(min(conc, len(ids))) * outbAttachSize
	fmt.Printf("peak RSS, worker.notify_concurrency %2d: %d notes x %d MiB attachment (%d MiB queued, up to %d MiB in flight at once), "+
		"limits.max_attachments_size %s; all sent in %s\n",
		conc, len(ids), outbAttachSize>>20, int64(len(ids))*outbAttachSize>>20, inFlight>>20, outbMaxAttach, took.Round(time.Millisecond))
	fmt.Printf("peak RSS, worker.notify_concurrency %2d: worker VmHWM %6.1f MiB after the sends | idle VmRSS %5.1f MiB before (start-up VmHWM %5.1f MiB) | growth %6.1f MiB = %.2f x the bytes in flight\n",
		conc, outbMiB(peak.hwm), outbMiB(idle.rss), outbMiB(idle.hwm), outbMiB(peak.hwm-idle.rss), float64(peak.hwm-idle.rss)/float64(inFlight))
	return outbRSS{idleRSS: idle.rss, idleHWM: idle.hwm, peak: peak.hwm, inFlight: inFlight}
}

func outbMiB(n int64) float64 { return float64(n) / (1 << 20) }

// outbRandom returns n incompressible bytes, distinct per seed, so that no
// two attachments share a blob.
func outbRandom(n int, seed uint64) []byte {
	var s [32]byte
	copy(s[:], strconv.FormatUint(seed, 10))
	data := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(data)
	return data
}

// outbWaitSent polls the store until every notification is sent; a failed
// or suppressed one, or the worker exiting, fails at once.
func outbWaitSent(b *testing.B, w *proc, st *store.Store, ids []int64, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		sent, state := 0, ""
		for _, id := range ids {
			n, err := st.Notification(b.Context(), id)
			if err != nil {
				b.Fatalf("read notification %d: %v", id, err)
			}
			switch n.State {
			case ticket.NotificationSent:
				sent++
			case ticket.NotificationPending:
				if n.LastError != "" {
					state = fmt.Sprintf("notification %d: attempt %d failed: %s", id, n.Attempts, n.LastError)
				}
			default:
				b.Fatalf("notification %d is %q (%s); want sent", id, n.State, n.LastError)
			}
		}
		if sent == len(ids) {
			return
		}
		select {
		case err := <-w.done:
			w.done <- err
			b.Fatalf("the worker exited (%v) with %d of %d notifications sent; log:\n%s", err, sent, len(ids), tail(w.out.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d notifications sent after %s; want all. %s\nworker log:\n%s", sent, len(ids), timeout, state, tail(w.out.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type outbMem struct{ rss, hwm int64 } // bytes

// outbProcStatus reads VmRSS and VmHWM of pid from /proc/PID/status.
func outbProcStatus(tb testing.TB, pid int) outbMem {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatalf("read memory of process %d: %v", pid, err)
	}
	defer f.Close()
	var m outbMem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmRSS" && name != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			tb.Fatalf("process %d: parse %s %q: %v", pid, name, value, err)
		}
		if name == "VmRSS" {
			m.rss = kb << 10
		} else {
			m.hwm = kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatalf("read /proc/%d/status: %v", pid, err)
	}
	if m.rss == 0 || m.hwm == 0 {
		tb.Fatalf("/proc/%d/status has no VmRSS or VmHWM (rss %d, hwm %d)", pid, m.rss, m.hwm)
	}
	return m
}

// --- the binary, its config, the stores ----------------------------------------

// outbUsers adds n stack users named prefix-NN@customer.test.
func outbUsers(tb testing.TB, stack *mailstack.Stack, prefix string, n int) []string {
	tb.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("%s-%02d@customer.test", prefix, i)
		stack.AddUser(tb, users[i], deskPass)
	}
	return users
}

// outbWorkerConfig is a one-project config: SMTP the stack's OpenSMTPD,
// IMAP the stack's (the worker role never polls), native attachments up to
// outbMaxAttach, info logs (the start line is waited for).
func outbWorkerConfig(tb testing.TB, stack *mailstack.Stack, dbURL string, notifyConcurrency int) string {
	tb.Helper()
	imapHost, imapPort := outbHostPort(tb, stack.IMAPAddr)
	smtpHost, smtpPort := outbHostPort(tb, stack.SMTPAddr)
	cfg := fmt.Sprintf(`
redis: {url: "redis://127.0.0.1:6379/%d"}
database: {url: %q}
http: {listen: "127.0.0.1:0", public_url: "http://desk.example.test"}
limits: {max_attachments_size: %s}
mail: {reply_key_secret: %s}
worker: {notify_concurrency: %d, shutdown_timeout: 10s}
log: {level: info, format: text}
projects:
  - key: acme
    name: Acme Support
    address: %s
    imap: {host: %s, port: %d, security: none, username: %s, password: %s, poll_interval: 1h}
    smtp: {host: %s, port: %d, security: none}
`, outbRedisDB, dbURL, outbMaxAttach, replySecret, notifyConcurrency, outbDeskAddr,
		imapHost, imapPort, outbDeskAddr, deskPass, smtpHost, smtpPort)
	path := filepath.Join(tb.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		tb.Fatalf("write config: %v", err)
	}
	return path
}

func outbHostPort(tb testing.TB, addr string) (string, int) {
	tb.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		tb.Fatalf("split %q: %v", addr, err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		tb.Fatalf("port of %q: %v", addr, err)
	}
	return host, n
}

// outbRedis flushes the benchmark's Redis database and returns a client for
// it; the database is flushed again when the (sub-)benchmark ends.
func outbRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: outbRedisDB})
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		tb.Fatalf("redis at 127.0.0.1:6379 (db %d) unreachable: %v", outbRedisDB, err)
	}
	tb.Cleanup(func() {
		rdb.FlushDB(context.Background())
		rdb.Close()
	})
	return rdb
}

func outbStore(tb testing.TB, dbURL string) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), dbURL, nil)
	if err != nil {
		tb.Fatalf("open store %s: %v", dbURL, err)
	}
	tb.Cleanup(func() { st.Close() })
	if err := st.Migrate(context.Background()); err != nil {
		tb.Fatalf("migrate %s: %v", dbURL, err)
	}
	return st
}

// outbWaitLog waits for line to appear in the process's log.
func outbWaitLog(tb testing.TB, p *proc, line string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.out.String(), line) {
		select {
		case err := <-p.done:
			p.done <- err
			tb.Fatalf("serve exited (%v) before logging %q; log:\n%s", err, line, tail(p.out.String(), 40))
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("serve did not log %q within %s; log:\n%s", line, timeout, tail(p.out.String(), 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestOutbStripTrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw, want string
	}{
		{
			name: "trace headers and their continuation lines go, the rest stays in order",
			raw: "Return-Path: <support@example.test>\r\nDelivered-To: alice@customer.test\r\n" +
				"Received: from localhost\r\n\tby mx.test; Mon, 1 Jan 2026 00:00:00 +0000\r\n" +
				"From: \"Acme\" <support@example.test>\r\nSubject: a long\r\n subject\r\nX-Original-To: a@b.test\r\n" +
				"Message-ID: <n1@example.test>\r\n\r\nbody\r\nReceived: not a header\r\n",
			want: "From: \"Acme\" <support@example.test>\r\nSubject: a long\r\n subject\r\n" +
				"Message-ID: <n1@example.test>\r\n\r\nbody\r\nReceived: not a header\r\n",
		},
		{
			name: "a mail without trace headers is unchanged",
			raw:  "From: a@b.test\r\nTo: c@d.test\r\n\r\nhi\r\n",
			want: "From: a@b.test\r\nTo: c@d.test\r\n\r\nhi\r\n",
		},
		{
			name: "no header/body separator: returned as it is",
			raw:  "Received: x\r\nFrom: a@b.test",
			want: "Received: x\r\nFrom: a@b.test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(outbStripTrace([]byte(tt.raw))); got != tt.want {
				t.Errorf("outbStripTrace:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestOutbProcStatusReadsOwnMemory(t *testing.T) {
	t.Parallel()
	m := outbProcStatus(t, os.Getpid())
	if m.rss <= 0 || m.hwm < m.rss {
		t.Fatalf("own VmRSS %d, VmHWM %d; want 0 < VmRSS <= VmHWM", m.rss, m.hwm)
	}
}
