package mailstack

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// RestartDovecot stops Dovecot alone (SIGTERM to its master, then SIGKILL
// to what is left of its processes: an imap process in IDLE outlives its
// master for about 30 s), waits down, and starts it again on the same
// ports with the same mail; OpenSMTPD keeps running. Every IMAP
// connection to the stack is closed by then. It returns once IMAP answers
// again.
func (s *Stack) RestartDovecot(t testing.TB, down time.Duration) {
	t.Helper()
	pidText, err := os.ReadFile(filepath.Join(s.Dir, "run", "master.pid"))
	if err != nil {
		t.Fatalf("mailstack: read dovecot's master.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(pidText)))
	if err != nil {
		t.Fatalf("mailstack: dovecot's master.pid: %v", err)
	}
	children := childrenOf(pid)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("mailstack: SIGTERM dovecot (pid %d): %v", pid, err)
	}
	for deadline := time.Now().Add(20 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("mailstack: dovecot (pid %d) still runs 20s after SIGTERM", pid)
		}
	}
	for _, child := range children {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	time.Sleep(down)
	if out, err := s.run(s.env, "up"); err != nil {
		t.Fatalf("mailstack up (start dovecot) %s: %v\n%s", s.Dir, err, out)
	}
}

// childrenOf lists the processes whose parent is pid, from /proc.
func childrenOf(pid int) []int {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var out []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after ")".
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 || fields[1] != strconv.Itoa(pid) {
			continue
		}
		if child, err := strconv.Atoi(filepath.Base(filepath.Dir(path))); err == nil {
			out = append(out, child)
		}
	}
	return out
}
