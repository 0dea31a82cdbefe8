package e2e

// The backlog benchmark (issue 12). For each size of BACKLOG (default
// 2000,10000; 100000 on request) a fresh Dovecot mailbox is filled with
// the benchmark corpus, and one run prints, beside the bare ceiling (one
// IMAP session fetching and parsing it all, no database, no queue) and,
// with MAILROOM=<a copy of tpitale/mail_room's source>, mail_room's
// hand-off of the same mailbox to a Redis list: servicedesk's end-to-end
// rate (serve started -> last ticket committed), its durable hand-off
// rate (serve started -> every message in the ledger) and its peak RSS,
// on SQLite and on PostgreSQL.
//
//	BACKLOG=2000,10000,100000 MAILROOM=/tmp/mail_room deploy/bench.sh backlog

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
)

// Redis databases of this benchmark on the machine's Redis, away from the
// ingest bench's 6, the outbound and watch benches' 7, the jobs tests' 2, 3,
// 4 and 7, the watch tests' 5 and the graph tests' 13..15: a test or
// benchmark running at the same time must not flush or take our queues.
const (
	backlogRedisDB  = 11
	mailRoomRedisDB = 12
)

// backlogSizes reads BACKLOG, a comma-separated list of mail counts.
func backlogSizes(tb testing.TB) []int {
	spec := os.Getenv("BACKLOG")
	if spec == "" {
		spec = "2000,10000"
	}
	var out []int
	for f := range strings.SplitSeq(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			tb.Fatalf("BACKLOG=%q: %q is not a positive count", spec, f)
		}
		out = append(out, n)
	}
	return out
}

// BenchmarkBacklog is issue 12's benchmark. b.N is ignored: one iteration
// is the whole series (run it with -benchtime 1x).
func BenchmarkBacklog(b *testing.B) {
	if bin := os.Getenv("SERVICEDESK_BENCH_BINARY"); bin != "" {
		binary = bin
	}
	mailRoom := os.Getenv("MAILROOM")
	stack := mailstack.Start(b)
	fmt.Printf("knobs: serve --roles scheduler,ingest, imap.batch_size %d, worker.concurrency %d, poll_interval %s; mail_room: %s\n",
		benchBatchSize, benchConcurrency, benchPoll, cmpOr(mailRoom, "not run (set MAILROOM to a copy of its source)"))
	var base map[string]float64 // rate at the first size, per backend
	var baseRSS map[string]int64
	for _, n := range backlogSizes(b) {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			addr := fmt.Sprintf("backlog%d@example.test", n)
			stack.AddUser(b, addr, deskPass)
			started := time.Now()
			corpus, size := fillBacklog(b, stack, addr, n)
			fmt.Printf("backlog %d: %.1f MB written to the Maildir and indexed in %s\n", n, float64(size)/1e6, time.Since(started).Round(time.Second))

			bare := bareFetchParse(b, stack, addr, n)
			fmt.Printf("backlog %6d  bare fetch+parse         %6.0f msg/s (the ceiling)\n", n, bare)
			b.ReportMetric(bare, "bare_msgs/s")
			if mailRoom != "" {
				rate, rss, err := mailRoomHandoff(b, stack, addr, n, mailRoom)
				if err != nil {
					// A figure of its own: the rest of the series still runs.
					fmt.Printf("backlog %6d  mail_room FAILED: %v\n", n, err)
				} else {
					fmt.Printf("backlog %6d  mail_room hand-off       %6.0f msg/s | peak RSS %4d MB\n", n, rate, rss>>20)
					b.ReportMetric(rate, "mailroom_msgs/s")
				}
			}
			rates, rsss := map[string]float64{}, map[string]int64{}
			for _, be := range benchBackends(b) {
				r := endToEnd(b, stack, addr, be, corpus, backlogRedisDB)
				rates[be.name], rsss[be.name] = r.rate, r.peakRSS
				note := ""
				if base != nil {
					note = fmt.Sprintf(" | %.0f %% of the rate at the first size, RSS %+d MB", 100*r.rate/base[be.name], (r.peakRSS-baseRSS[be.name])>>20)
				}
				fmt.Printf("backlog %6d  %-8s end-to-end %6.0f msg/s, durable hand-off %6.0f msg/s | peak RSS %4d MB | %.2f cores | ratio to bare %.2f%s\n",
					n, be.name, r.rate, r.handoffRate, r.peakRSS>>20, r.serveCPU.Seconds()/r.wall.Seconds(), r.rate/bare, note)
				b.ReportMetric(r.rate, be.name+"_msgs/s")
				b.ReportMetric(r.handoffRate, be.name+"_handoff_msgs/s")
				b.ReportMetric(float64(r.peakRSS>>20), be.name+"_rss_MB")
			}
			b.ReportMetric(0, "ns/op")
			if base == nil {
				base, baseRSS = rates, rsss
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// fillBacklog puts n mails of the benchmark corpus into addr's INBOX and
// returns them without their bodies (what endToEnd checks) and their total
// size. It writes them straight into the Dovecot user's Maildir (new/,
// owned by the mail user), which takes seconds where 100,000 APPENDs take
// most of an hour, then logs in once so that Dovecot gives them their UIDs
// before anything is timed.
func fillBacklog(tb testing.TB, stack *mailstack.Stack, addr string, n int) ([]benchMail, int) {
	tb.Helper()
	mailUser, err := user.Lookup("mail")
	if err != nil {
		tb.Fatalf("fill backlog: look up Dovecot's mail user: %v", err)
	}
	uid, _ := strconv.Atoi(mailUser.Uid)
	gid, _ := strconv.Atoi(mailUser.Gid)
	root := filepath.Join(stack.Dir, "mail", addr)
	for _, dir := range []string{root, filepath.Join(root, "cur"), filepath.Join(root, "new"), filepath.Join(root, "tmp")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			tb.Fatalf("fill backlog: %v", err)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			tb.Fatalf("fill backlog: %v", err)
		}
	}
	corpus := make([]benchMail, 0, n)
	size := 0
	stamp := time.Now().Unix()
	eachBenchMail(n, addr, fmt.Sprintf("backlog%d", n), func(m benchMail) {
		name := filepath.Join(root, "new", fmt.Sprintf("%d.M%dP%d.bench", stamp, len(corpus), os.Getpid()))
		if err := os.WriteFile(name, m.raw, 0o600); err != nil {
			tb.Fatalf("fill backlog: %v", err)
		}
		if err := os.Chown(name, uid, gid); err != nil {
			tb.Fatalf("fill backlog: %v", err)
		}
		size += len(m.raw)
		m.raw = nil
		corpus = append(corpus, m)
	})
	ctx := context.Background()
	cfg := stack.IMAPConfig(addr, deskPass)
	cfg.CommandTimeout = 10 * time.Minute // Dovecot indexes every new file at this SELECT
	c, err := mailbox.Dial(ctx, cfg, nil)
	if err != nil {
		tb.Fatalf("fill backlog: log in as %s: %v", addr, err)
	}
	defer c.Close()
	st, err := c.Select(ctx, "INBOX")
	if err != nil || st.Messages != uint32(n) {
		tb.Fatalf("fill backlog: INBOX of %s = %+v, %v; want %d messages", addr, st, err, n)
	}
	return corpus, size
}

// mailRoomHandoff runs mail_room from the source in dir (Debian's ruby and
// gems) on addr's INBOX, delivery_method sidekiq to a Redis list as GitLab
// runs it, and times it from start until the list holds n mails. It
// returns messages per second and mail_room's peak RSS in bytes, or an
// error with the end of its output when it exits or stalls first. mail_room
// reads UNSEEN mail and its RFC822 fetch sets \Seen, so it must run before
// anything else reads the mailbox; the flags are cleared afterwards.
func mailRoomHandoff(tb testing.TB, stack *mailstack.Stack, addr string, n int, dir string) (float64, int64, error) {
	tb.Helper()
	const db = mailRoomRedisDB
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379", DB: db})
	defer rdb.Close()
	ctx := context.Background()
	if err := rdb.FlushDB(ctx).Err(); err != nil {
		tb.Fatalf("mail_room: flush redis db %d: %v", db, err)
	}
	imapCfg := stack.IMAPConfig(addr, deskPass)
	cfg := filepath.Join(tb.TempDir(), "mail_room.yml")
	err := os.WriteFile(cfg, fmt.Appendf(nil, `---
:mailboxes:
  -
    :host: "%s"
    :port: %d
    :ssl: false
    :start_tls: false
    :email: "%s"
    :password: "%s"
    :name: "INBOX"
    :idle_timeout: 60
    :delivery_method: sidekiq
    :delivery_options:
      :redis_url: "redis://127.0.0.1:6379"
      :redis_db: %d
      :queue: email_receiver
      :worker: EmailReceiverWorker
`, imapCfg.Host, imapCfg.Port, addr, deskPass, db), 0o600)
	if err != nil {
		tb.Fatalf("mail_room: write config: %v", err)
	}
	cmd := exec.Command("ruby", "-I", filepath.Join(dir, "lib"), filepath.Join(dir, "bin", "mail_room"), "-c", cfg)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("mail_room: start ruby: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	deadline := start.Add(max(benchIngestLimit, time.Duration(n)*benchMinRate))
	var rss int64
	for {
		got, err := rdb.LLen(ctx, "queue:email_receiver").Result()
		if err != nil {
			tb.Fatalf("mail_room: read the Redis list: %v", err)
		}
		if cur := vmHWM(cmd.Process.Pid); cur > rss {
			rss = cur
		}
		if got >= int64(n) {
			break
		}
		if time.Now().After(deadline) {
			return 0, rss, fmt.Errorf("%d of %d mails handed off in %s; its output:\n%s", got, n, time.Since(start).Round(time.Second), tail(out.String(), 10))
		}
		select {
		case err := <-exited:
			exited <- err
			return 0, rss, fmt.Errorf("exited (%v) after handing off %d of %d mails in %s, peak RSS %d MB; its output:\n%s",
				err, got, n, time.Since(start).Round(time.Second), rss>>20, tail(out.String(), 10))
		case <-time.After(20 * time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	if cur := vmHWM(cmd.Process.Pid); cur > rss {
		rss = cur
	}
	_ = rdb.FlushDB(ctx).Err()
	return float64(n) / elapsed.Seconds(), rss, nil
}

// vmHWM is peakRSS without failing: 0 once the process is gone.
func vmHWM(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
