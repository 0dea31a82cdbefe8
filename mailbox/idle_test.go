package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/internal/tcpproxy"
	"github.com/servicedesk/servicedesk/mailbox"
)

func dialIdle(t *testing.T, cfg mailbox.Config) *mailbox.IdleConn {
	t.Helper()
	w, err := mailbox.DialIdle(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("DialIdle(%s:%d) = %v, want a connection in the folder", cfg.Host, cfg.Port, err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// waitResult is what one Wait returned and how long it took.
type waitResult struct {
	newMail bool
	err     error
	took    time.Duration
}

func waitAsync(ctx context.Context, w *mailbox.IdleConn, d time.Duration) <-chan waitResult {
	out := make(chan waitResult, 1)
	go func() {
		start := time.Now()
		newMail, err := w.Wait(ctx, d)
		out <- waitResult{newMail, err, time.Since(start)}
	}()
	return out
}

// runIdleSuite states what Wait does, against any server with IDLE.
func runIdleSuite(t *testing.T, newConfig newConfigFunc) {
	t.Run("mail appended by another connection wakes Wait long before its timeout", func(t *testing.T) {
		cfg := newConfig(t)
		w := dialIdle(t, cfg)
		got := waitAsync(t.Context(), w, time.Minute)
		time.Sleep(200 * time.Millisecond) // in IDLE by now
		c := dial(t, cfg)
		appended := time.Now()
		appendN(t, c, "INBOX", 1)
		// Wait is given a minute: returning within 10 s can only be the
		// server's push. How soon is a figure (Dovecot holds notices back
		// 0.5 s), measured by deploy/bench-idle.sh, not asserted here.
		select {
		case r := <-got:
			if !r.newMail || r.err != nil {
				t.Fatalf("Wait after an append = (%v, %v); want (true, nil)", r.newMail, r.err)
			}
			t.Logf("Wait returned %v after the append", time.Since(appended).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("Wait did not return within 10s of an append")
		}
	})

	t.Run("without mail Wait returns false after d and the connection stays usable", func(t *testing.T) {
		cfg := newConfig(t)
		w := dialIdle(t, cfg)
		for i := range 3 {
			newMail, err := w.Wait(t.Context(), 100*time.Millisecond)
			if newMail || err != nil {
				t.Fatalf("Wait %d on a quiet folder = (%v, %v); want (false, nil)", i, newMail, err)
			}
		}
		appendN(t, dial(t, cfg), "INBOX", 1)
		if r := <-waitAsync(t.Context(), w, 10*time.Second); !r.newMail || r.err != nil {
			t.Fatalf("Wait after three quiet rounds and an append = (%v, %v); want (true, nil)", r.newMail, r.err)
		}
	})

	t.Run("mail reported while not in IDLE is not lost: the next Wait returns at once", func(t *testing.T) {
		cfg := newConfig(t)
		w := dialIdle(t, cfg)
		r := <-waitAsync(t.Context(), w, 50*time.Millisecond)
		if r.newMail || r.err != nil {
			t.Fatalf("first Wait = (%v, %v); want (false, nil)", r.newMail, r.err)
		}
		// Between two Waits the server has no reason to speak up; the
		// next IDLE (or its DONE) carries the EXISTS.
		appendN(t, dial(t, cfg), "INBOX", 3)
		r = <-waitAsync(t.Context(), w, 10*time.Second)
		if !r.newMail || r.err != nil || r.took > 2*time.Second {
			t.Fatalf("Wait after mail arrived between Waits = (%v, %v) after %v; want (true, nil) at once", r.newMail, r.err, r.took)
		}
	})

	t.Run("cancelling ctx ends Wait quickly with ctx's error", func(t *testing.T) {
		w := dialIdle(t, newConfig(t))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		r := <-waitAsync(ctx, w, time.Minute)
		if !errors.Is(r.err, context.Canceled) || r.took > 3*time.Second {
			t.Fatalf("Wait with a cancelled ctx = (%v, %v) after %v; want context.Canceled within 3s", r.newMail, r.err, r.took)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close after a cancelled Wait = %v; want nil", err)
		}
	})

	t.Run("missing folder is ErrNoMailbox and permanent", func(t *testing.T) {
		cfg := newConfig(t)
		cfg.Folder = "Nope"
		_, err := mailbox.DialIdle(t.Context(), cfg, nil)
		if !errors.Is(err, mailbox.ErrNoMailbox) || mailbox.Temporary(err) {
			t.Fatalf("DialIdle on a missing folder = %v; want ErrNoMailbox, not temporary", err)
		}
	})
}

func TestIdleMemServer(t *testing.T) {
	t.Parallel()
	runIdleSuite(t, memServer)

	t.Run("a server that stops answering is noticed within d and the answer timeout", func(t *testing.T) {
		cfg := memServer(t)
		p := tcpproxy.Start(t, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
		cfg.Port = p.Port()
		cfg.CommandTimeout = 2 * time.Second // the answer to DONE is awaited min(this, 15s)
		w := dialIdle(t, cfg)
		if newMail, err := w.Wait(t.Context(), 50*time.Millisecond); newMail || err != nil {
			t.Fatalf("Wait before the freeze = (%v, %v); want (false, nil)", newMail, err)
		}
		p.Freeze() // the TCP connection stays up; nothing gets through: half-open
		r := <-waitAsync(t.Context(), w, 200*time.Millisecond)
		if r.err == nil || !mailbox.Temporary(r.err) {
			t.Fatalf("Wait through a frozen connection = (%v, %v); want a temporary error", r.newMail, r.err)
		}
		if r.took > 5*time.Second {
			t.Fatalf("Wait noticed the frozen connection after %v; want about d + 2s", r.took)
		}
	})

	t.Run("a server closing the connection ends Wait at once with a temporary error", func(t *testing.T) {
		cfg := memServer(t)
		p := tcpproxy.Start(t, net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port)))
		cfg.Port = p.Port()
		w := dialIdle(t, cfg)
		got := waitAsync(t.Context(), w, time.Minute)
		time.Sleep(200 * time.Millisecond)
		p.Cut()
		select {
		case r := <-got:
			if r.err == nil || !mailbox.Temporary(r.err) {
				t.Fatalf("Wait on a closed connection = (%v, %v); want a temporary error", r.newMail, r.err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Wait did not notice within 5s that the server closed the connection")
		}
	})

	t.Run("CheckIdle says whether the server offers IDLE", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			cfg  mailbox.Config
			want error
		}{{"IMAP4rev2", memServer(t), nil}, {"IMAP4rev1 without IDLE", imaptest.NoIdle(t), mailbox.ErrNoIdle}} {
			c, err := mailbox.Dial(t.Context(), tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.CheckIdle(t.Context()); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("%s: CheckIdle = %v; want %v", tc.name, err, tc.want)
			}
			c.Close()
		}
	})

	t.Run("a server without IDLE is ErrNoIdle and permanent", func(t *testing.T) {
		_, err := mailbox.DialIdle(t.Context(), imaptest.NoIdle(t), nil)
		if !errors.Is(err, mailbox.ErrNoIdle) || mailbox.Temporary(err) {
			t.Fatalf("DialIdle on a server without IDLE = %v; want ErrNoIdle, not temporary", err)
		}
	})
}

// TestIdleDovecot states the same against a real Dovecot, which has IDLE.
func TestIdleDovecot(t *testing.T) {
	stack := mailstack.Start(t)
	n := 0
	runIdleSuite(t, func(t *testing.T) mailbox.Config {
		n++
		user := fmt.Sprintf("idle%d@example.test", n)
		stack.AddUser(t, user, mailstack.Password)
		return stack.IMAPConfig(user, mailstack.Password)
	})
}
