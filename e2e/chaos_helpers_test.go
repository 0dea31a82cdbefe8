//go:build chaos

package e2e

// Helpers of the chaos run (chaos_test.go, deploy/chaos.sh). Everything
// here may run outside the test's goroutine, so it returns errors instead
// of failing the test.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// chaosLayout is one run's processes: one `serve --roles scheduler,web` and
// three `serve --roles worker`, each logging to its own file in logDir.
type chaosLayout struct {
	cfg, logDir, name string

	mu      sync.Mutex
	sched   *proc
	workers []*proc
	seq     int
	kills   int // SIGKILLs sent to workers
	exited  int // processes found exited that nobody killed
	exits   []string
	born    map[*proc]time.Time
}

func startLayout(t *testing.T, cfg, logDir, name string, workers int) (*chaosLayout, error) {
	l := &chaosLayout{cfg: cfg, logDir: logDir, name: name, born: map[*proc]time.Time{}}
	t.Cleanup(func() { l.stop() })
	var err error
	if l.sched, err = l.start("scheduler,web"); err != nil {
		return l, err
	}
	for range workers {
		w, err := l.start("worker")
		if err != nil {
			return l, err
		}
		l.workers = append(l.workers, w)
	}
	return l, nil
}

// start runs `servicedesk serve --roles roles` with its output in a file of
// its own.
func (l *chaosLayout) start(roles string) (*proc, error) {
	l.seq++
	file := filepath.Join(l.logDir, fmt.Sprintf("%s-%03d-%s.log", l.name, l.seq, strings.ReplaceAll(roles, ",", "+")))
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	p := &proc{out: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "--config", l.cfg, "serve", "--roles", roles)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start serve --roles %s: %w", roles, err)
	}
	go func() { err := p.cmd.Wait(); f.Close(); p.done <- err }()
	l.born[p] = time.Now()
	return p, nil
}

// exitedBy reports whether p has exited (without waiting) and how.
func exitedBy(p *proc) (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// revive starts again every process that exited without being killed (a
// worker started while Redis was down exits at once: "redis unreachable").
func (l *chaosLayout) revive() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gone, err := exitedBy(l.sched); gone {
		l.exited++
		l.exits = append(l.exits, fmt.Sprintf("scheduler,web: %v", err))
		if l.sched, err = l.start("scheduler,web"); err != nil {
			return err
		}
	}
	for i, w := range l.workers {
		if gone, err := exitedBy(w); gone {
			l.exited++
			l.exits = append(l.exits, fmt.Sprintf("worker: %v", err))
			if l.workers[i], err = l.start("worker"); err != nil {
				return err
			}
		}
	}
	return nil
}

// killWorker SIGKILLs worker i and starts a new one in its place.
func (l *chaosLayout) killWorker(i int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.workers[i]
	if gone, _ := exitedBy(w); !gone {
		w.kill()
		l.kills++
	}
	var err error
	l.workers[i], err = l.start("worker")
	return err
}

// stop sends SIGTERM to every running process and waits (stopServe: 30 s,
// then SIGKILL). A process started less than 5 s ago gets the rest of those
// 5 s first: serve stopped during its start-up migration exits 1
// ("migrate: context canceled"), which is not what the run is about. Safe
// to call twice.
func (l *chaosLayout) stop() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, born := range l.born {
		if gone, _ := exitedBy(p); !gone {
			time.Sleep(time.Until(born.Add(5 * time.Second)))
		}
	}
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, p := range append([]*proc{l.sched}, l.workers...) {
		if p == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if gone, _ := exitedBy(p); gone {
				return
			}
			if err := stopServe(p); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// chaosRedis is a redis-server of the run's own on a fixed port and
// directory, so that it can be restarted in place, with its data (SHUTDOWN
// SAVE, then the dump is loaded at start) or empty (SIGKILL, dump removed).
type chaosRedis struct {
	port   int
	dir    string
	logDir string
	starts int
	cmd    *exec.Cmd
	done   chan struct{}
}

func newChaosRedis(t *testing.T, logDir string) (*chaosRedis, error) {
	_, port := splitHostPort(t, freeAddr(t))
	r := &chaosRedis{port: port, dir: t.TempDir(), logDir: logDir}
	t.Cleanup(r.kill)
	return r, r.start()
}

func (r *chaosRedis) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

func (r *chaosRedis) url() string { return fmt.Sprintf("redis://%s/0", r.addr()) }

func (r *chaosRedis) client() *redis.Client {
	return redis.NewClient(&redis.Options{Addr: r.addr(), DialTimeout: time.Second, ReadTimeout: 5 * time.Second, MaxRetries: -1})
}

// start runs redis-server (loading dump.rdb from its directory if there is
// one) and waits up to 10 s for PING.
func (r *chaosRedis) start() error {
	r.starts++
	f, err := os.Create(filepath.Join(r.logDir, fmt.Sprintf("redis-%d-%d.log", r.port, r.starts)))
	if err != nil {
		return err
	}
	r.cmd = exec.Command("redis-server", "--bind", "127.0.0.1", "--port", strconv.Itoa(r.port),
		"--save", "", "--appendonly", "no", "--dir", r.dir)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start redis-server on %s: %w", r.addr(), err)
	}
	done := make(chan struct{})
	r.done = done
	go func() { _ = r.cmd.Wait(); f.Close(); close(done) }()
	rdb := r.client()
	defer rdb.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := rdb.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server on %s exited at start (log in %s)", r.addr(), r.logDir)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING within 10s: %w", r.addr(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill SIGKILLs the server and waits for its exit. Safe to call twice.
func (r *chaosRedis) kill() { sigkill(r.cmd, r.done) }

func (r *chaosRedis) dbsize() (int64, error) {
	rdb := r.client()
	defer rdb.Close()
	return rdb.DBSize(context.Background()).Result()
}

// restartKept stops the server with SHUTDOWN SAVE, waits down, and starts
// it again on the dump: every key comes back. It returns the key counts
// before and after.
func (r *chaosRedis) restartKept(down time.Duration) (before, after int64, err error) {
	if before, err = r.dbsize(); err != nil {
		return 0, 0, fmt.Errorf("DBSIZE before: %w", err)
	}
	rdb := r.client()
	_ = rdb.ShutdownSave(context.Background()).Err() // the connection closes: no reply
	rdb.Close()
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		r.kill()
		return before, 0, errors.New("redis-server did not exit within 15s of SHUTDOWN SAVE")
	}
	if _, err := os.Stat(filepath.Join(r.dir, "dump.rdb")); err != nil {
		return before, 0, fmt.Errorf("no dump after SHUTDOWN SAVE: %w", err)
	}
	time.Sleep(down)
	if err := r.start(); err != nil {
		return before, 0, err
	}
	after, err = r.dbsize()
	return before, after, err
}

// restartEmpty SIGKILLs the server, removes its dump, waits down, and
// starts a fresh one: every queued task is gone. It returns the keys lost
// and the count right after the start (the processes may already have
// written some).
func (r *chaosRedis) restartEmpty(down time.Duration) (lost, after int64, err error) {
	if lost, err = r.dbsize(); err != nil {
		return 0, 0, fmt.Errorf("DBSIZE before: %w", err)
	}
	r.kill()
	if err := os.Remove(filepath.Join(r.dir, "dump.rdb")); err != nil && !errors.Is(err, os.ErrNotExist) {
		return lost, 0, err
	}
	time.Sleep(down)
	if err := r.start(); err != nil {
		return lost, 0, err
	}
	after, err = r.dbsize()
	return lost, after, err
}

// restartDovecot stops the stack's Dovecot alone (SIGTERM to its master,
// as `mailstack.sh down` does), waits down, and starts it again with
// `mailstack.sh up` on the same ports and directory: the mail is kept
// (Maildir under the stack's directory), OpenSMTPD keeps running. It
// returns how long Dovecot took to stop.
func restartDovecot(stack *mailstack.Stack, down time.Duration) (time.Duration, error) {
	pidText, err := os.ReadFile(filepath.Join(stack.Dir, "run", "master.pid"))
	if err != nil {
		return 0, fmt.Errorf("read dovecot's master.pid: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		return 0, fmt.Errorf("dovecot's master.pid: %w", err)
	}
	start := time.Now()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("SIGTERM dovecot (pid %d): %w", pid, err)
	}
	for running(pid) {
		if time.Since(start) > 20*time.Second {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			return 0, fmt.Errorf("dovecot (pid %d) did not exit within 20s of SIGTERM", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := time.Since(start)
	if portOpen(stack.IMAPAddr) {
		return stopped, fmt.Errorf("IMAP %s still answers after dovecot exited", stack.IMAPAddr)
	}
	time.Sleep(down)
	script, err := filepath.Abs(filepath.Join("..", "deploy", "mailstack.sh"))
	if err != nil {
		return stopped, err
	}
	cmd := exec.Command("bash", script, "up", stack.Dir)
	cmd.Env = append(os.Environ(),
		"IMAP_PORT="+portOf(stack.IMAPAddr), "IMAPS_PORT="+portOf(stack.IMAPSAddr), "LMTP_PORT="+portOf(stack.LMTPAddr),
		"SMTP_PORT="+portOf(stack.SMTPAddr), "SMTP_AUTH_PORT="+portOf(stack.SMTPAuthAddr),
		"MAILSTACK_SMTP_USERS="+mailstack.SMTPUser+":"+mailstack.SMTPPassword)
	if out, err := cmd.CombinedOutput(); err != nil {
		return stopped, fmt.Errorf("mailstack.sh up %s: %v\n%s", stack.Dir, err, out)
	}
	return stopped, nil
}

// running: pid exists and is not a zombie.
func running(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func portOpen(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// drainState is how far a run got: ledger rows, rows with an outcome, and
// notifications still pending.
type drainState struct{ rows, done, pending int }

func (s drainState) drained(n int) bool { return s.rows >= n && s.done == s.rows && s.pending == 0 }

func (s drainState) String() string {
	return fmt.Sprintf("%d ledger rows, %d processed, %d notifications pending", s.rows, s.done, s.pending)
}

func readDrain(ctx context.Context, db *sql.DB) (drainState, error) {
	var s drainState
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE outcome <> '') FROM inbound`).Scan(&s.rows, &s.done); err != nil {
		return s, err
	}
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM notifications WHERE state = 'pending'`).Scan(&s.pending)
	return s, err
}

// chaosCounts is what the run is judged by.
type chaosCounts struct {
	mails            int // appended to the mailbox
	lost             int // mails with no ticket_created ledger row pointing at an existing ticket
	ledgerRows       int
	dupLedger        int // ledger rows beyond the first per Message-ID
	tickets          int
	dupTickets       int // tickets beyond the first per subject (each mail has its own)
	thankYous        int
	dupThankYous     int // thank-you notifications beyond the first per ticket
	noThankYou       int // tickets without a thank-you notification
	byState          map[string]int
	deadLetters      int
	mailboxMails     int // thank-yous in the customers' mailboxes
	dupMailboxIDs    int // of those, Message-IDs seen more than once
	mailboxCustomers int
}

// countChaos counts the outcome of a run of n mails tagged tag (appended by
// appendBacklogAtOnce: Message-ID <backlog-TAG-i@customer.test>, subject
// "Backlog i").
func countChaos(ctx context.Context, db *sql.DB, tag string, n int) (chaosCounts, error) {
	c := chaosCounts{mails: n, byState: map[string]int{}}
	q := func(dst *int, query string, args ...any) error {
		if err := db.QueryRowContext(ctx, query, args...).Scan(dst); err != nil {
			return fmt.Errorf("%s: %w", strings.Join(strings.Fields(query), " "), err)
		}
		return nil
	}
	// A mail is there when one of its ledger rows says ticket_created and
	// names a ticket that exists.
	if err := q(&c.lost, `SELECT $1::int - count(DISTINCT i.message_id) FROM inbound i JOIN tickets t ON t.id = i.ticket_id
		WHERE i.outcome = 'ticket_created' AND i.message_id LIKE $2`, n, "<backlog-"+tag+"-%"); err != nil {
		return c, err
	}
	if err := q(&c.ledgerRows, `SELECT count(*) FROM inbound`); err != nil {
		return c, err
	}
	if err := q(&c.dupLedger, `SELECT count(*) - count(DISTINCT message_id) FROM inbound`); err != nil {
		return c, err
	}
	if err := q(&c.tickets, `SELECT count(*) FROM tickets`); err != nil {
		return c, err
	}
	if err := q(&c.dupTickets, `SELECT count(*) - count(DISTINCT subject) FROM tickets`); err != nil {
		return c, err
	}
	if err := q(&c.thankYous, `SELECT count(*) FROM notifications WHERE kind = 'thank_you'`); err != nil {
		return c, err
	}
	if err := q(&c.dupThankYous, `SELECT coalesce(sum(k - 1), 0) FROM (SELECT count(*) AS k FROM notifications
		WHERE kind = 'thank_you' GROUP BY ticket_id HAVING count(*) > 1) AS d`); err != nil {
		return c, err
	}
	if err := q(&c.noThankYou, `SELECT count(*) FROM tickets t WHERE NOT EXISTS
		(SELECT 1 FROM notifications n WHERE n.ticket_id = t.id AND n.kind = 'thank_you')`); err != nil {
		return c, err
	}
	if err := q(&c.deadLetters, `SELECT count(*) FROM dead_letters`); err != nil {
		return c, err
	}
	rows, err := db.QueryContext(ctx, `SELECT state, count(*) FROM notifications GROUP BY state`)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		var k int
		if err := rows.Scan(&s, &k); err != nil {
			return c, err
		}
		c.byState[s] = k
	}
	return c, rows.Err()
}

// countMailboxes reads every customer's INBOX as it is now (OpenSMTPD may
// still hold some thank-yous in its queue) and counts the mails and the
// Message-IDs seen more than once.
func countMailboxes(t *testing.T, stack *mailstack.Stack, customers []string, c *chaosCounts) {
	for _, addr := range customers {
		for _, k := range countIDs(t, stack, addr) {
			c.mailboxMails += k
			if k > 1 {
				c.dupMailboxIDs += k - 1
			}
		}
		c.mailboxCustomers++
	}
}

func countIDs(t *testing.T, stack *mailstack.Stack, addr string) map[string]int {
	ids := map[string]int{}
	for _, raw := range stack.WaitForMail(t, addr, "pw", 0, 30*time.Second) {
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Errorf("a mail to %s does not parse: %v", addr, err)
			continue
		}
		ids[m.Header.Get("Message-ID")]++
	}
	return ids
}

func (c chaosCounts) String() string {
	return fmt.Sprintf("lost %d | duplicate tickets %d | duplicate ledger rows %d | duplicate thank-yous %d (notifications), %d (Message-IDs twice in %d customers' mailboxes, %d mails there)",
		c.lost, c.dupTickets, c.dupLedger, c.dupThankYous, c.dupMailboxIDs, c.mailboxCustomers, c.mailboxMails)
}

func (c chaosCounts) detail() string {
	return fmt.Sprintf("%d mails: %d ledger rows, %d tickets, %d thank-you notifications (%d tickets without one; states %v), %d dead letters",
		c.mails, c.ledgerRows, c.tickets, c.thankYous, c.noThankYou, c.byState, c.deadLetters)
}

// bad lists what must be zero and is not.
func (c chaosCounts) bad() []string {
	var out []string
	for _, f := range []struct {
		name string
		v    int
	}{{"lost", c.lost}, {"duplicate tickets", c.dupTickets}, {"duplicate ledger rows", c.dupLedger},
		{"duplicate thank-you notifications", c.dupThankYous}, {"duplicate Message-IDs in mailboxes", c.dupMailboxIDs},
		{"tickets without a thank-you", c.noThankYou}, {"dead letters", c.deadLetters}} {
		if f.v != 0 {
			out = append(out, fmt.Sprintf("%s: %d", f.name, f.v))
		}
	}
	if c.ledgerRows != c.mails || c.tickets != c.mails {
		out = append(out, fmt.Sprintf("%d ledger rows and %d tickets for %d mails", c.ledgerRows, c.tickets, c.mails))
	}
	return out
}
