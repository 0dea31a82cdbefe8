package mailbox_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/servicedesk/servicedesk/internal/imaptest"
	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
)

// newConfigFunc returns the config of a fresh user whose INBOX exists and is
// empty.
type newConfigFunc func(t *testing.T) mailbox.Config

// memServer starts an in-process imapmemserver with one user.
func memServer(t *testing.T) mailbox.Config { return imaptest.MemServer(t) }

func dial(t *testing.T, cfg mailbox.Config) *mailbox.Client {
	t.Helper()
	c, err := mailbox.Dial(t.Context(), cfg, nil)
	if err != nil {
		t.Fatalf("Dial(%s:%d) = %v, want a logged-in client", cfg.Host, cfg.Port, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func rawMessage(i int) []byte {
	return fmt.Appendf(nil, "From: <customer%d@customer.test>\r\nTo: <support@example.test>\r\nSubject: message %d\r\nMessage-ID: <m%d@customer.test>\r\n\r\nbody %d\r\n", i, i, i, i)
}

// appendN appends n messages to folder and returns their UIDs.
func appendN(t *testing.T, c *mailbox.Client, folder string, n int) []uint32 {
	t.Helper()
	var uids []uint32
	for i := range n {
		uid, err := c.Append(t.Context(), folder, rawMessage(i))
		if err != nil {
			t.Fatalf("Append message %d to %q: %v", i, folder, err)
		}
		if uid == 0 {
			t.Fatalf("Append message %d to %q returned UID 0, want APPENDUID", i, folder)
		}
		uids = append(uids, uid)
	}
	return uids
}

func listUIDs(t *testing.T, c *mailbox.Client, after uint32, limit int) []uint32 {
	t.Helper()
	entries, err := c.List(t.Context(), after, limit)
	if err != nil {
		t.Fatalf("List(after %d, limit %d): %v", after, limit, err)
	}
	uids := []uint32{}
	for _, e := range entries {
		if e.Size <= 0 {
			t.Errorf("List: UID %d has size %d, want > 0", e.UID, e.Size)
		}
		uids = append(uids, e.UID)
	}
	return uids
}

// flags reads the flags of every message in folder with a separate
// connection, so the client under test is not involved.
func flags(t *testing.T, cfg mailbox.Config, folder string) map[uint32][]imap.Flag {
	t.Helper()
	ic, err := imapclient.DialInsecure(net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), nil)
	if err != nil {
		t.Fatalf("flags: dial: %v", err)
	}
	defer ic.Close()
	if err := ic.Login(cfg.Username, cfg.Password).Wait(); err != nil {
		t.Fatalf("flags: login: %v", err)
	}
	if _, err := ic.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("flags: select %q: %v", folder, err)
	}
	msgs, err := ic.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("flags: fetch: %v", err)
	}
	out := map[uint32][]imap.Flag{}
	for _, m := range msgs {
		out[uint32(m.UID)] = m.Flags
	}
	return out
}

func hasFlag(fs []imap.Flag, f imap.Flag) bool {
	return slices.ContainsFunc(fs, func(x imap.Flag) bool { return strings.EqualFold(string(x), string(f)) })
}

// runSuite runs the behaviour every IMAP server must show, against the
// server newConfig sets up.
func runSuite(t *testing.T, newConfig newConfigFunc) {
	t.Run("Select reports UIDVALIDITY, UIDNEXT and the count", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		uids := appendN(t, c, "INBOX", 3)
		st, err := c.Select(t.Context(), "INBOX")
		if err != nil {
			t.Fatalf("Select(INBOX): %v", err)
		}
		if st.Messages != 3 || st.UIDValidity == 0 || st.UIDNext != uids[2]+1 {
			t.Fatalf("Select(INBOX) = %+v, want 3 messages, UIDValidity != 0, UIDNext %d", st, uids[2]+1)
		}
	})

	t.Run("List filters by UID, including the n:* quirk", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 5)
		tests := []struct {
			name  string
			after uint32
			limit int
			want  []uint32
		}{
			{"all", 0, 0, u},
			{"after the second", u[1], 0, u[2:]},
			{"limit keeps the lowest", 0, 2, u[:2]},
			{"after and limit", u[0], 3, u[1:4]},
			{"after the last: n:* would match the last, must be empty", u[4], 0, []uint32{}},
			{"far beyond the last", u[4] + 1000, 10, []uint32{}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if got := listUIDs(t, c, tt.after, tt.limit); !slices.Equal(got, tt.want) {
					t.Fatalf("List(after %d, limit %d) = %v, want %v", tt.after, tt.limit, got, tt.want)
				}
			})
		}
	})

	t.Run("Fetch returns bodies in UID order, skips gone UIDs, leaves \\Seen unset", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 3)
		var got []uint32
		err := c.Fetch(t.Context(), []uint32{u[2], 9999, u[0], u[2]}, func(uid uint32, raw []byte) error {
			i := slices.Index(u, uid)
			if want := fmt.Sprintf("Subject: message %d\r\n", i); !strings.Contains(string(raw), want) {
				t.Errorf("UID %d: body lacks %q:\n%s", uid, want, raw)
			}
			got = append(got, uid)
			return nil
		})
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if want := []uint32{u[0], u[2]}; !slices.Equal(got, want) {
			t.Fatalf("Fetch called fn for %v, want %v (ascending, once each, missing UID skipped)", got, want)
		}
		for uid, fs := range flags(t, cfg, "INBOX") {
			if hasFlag(fs, imap.FlagSeen) {
				t.Errorf("UID %d has \\Seen after Fetch, want BODY.PEEK to leave it unset", uid)
			}
		}
	})

	t.Run("Fetch of more than one batch", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 120)
		var got []uint32
		if err := c.Fetch(t.Context(), u, func(uid uint32, _ []byte) error { got = append(got, uid); return nil }); err != nil {
			t.Fatalf("Fetch(120 UIDs): %v", err)
		}
		if !slices.Equal(got, u) {
			t.Fatalf("Fetch(120 UIDs) delivered %d UIDs %v, want all in order", len(got), got)
		}
	})

	t.Run("Fetch stops at the first error from fn", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 3)
		stop := errors.New("stop")
		calls := 0
		err := c.Fetch(t.Context(), u, func(uint32, []byte) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Fatalf("Fetch = %v after %d calls, want the fn's error after 1 call", err, calls)
		}
	})

	t.Run("MarkSeen flags only the given UIDs", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 3)
		if err := c.MarkSeen(t.Context(), []uint32{u[0], u[2]}); err != nil {
			t.Fatalf("MarkSeen: %v", err)
		}
		fs := flags(t, cfg, "INBOX")
		for i, uid := range u {
			if want := i != 1; hasFlag(fs[uid], imap.FlagSeen) != want {
				t.Errorf("UID %d: \\Seen = %v, want %v (flags %v)", uid, !want, want, fs[uid])
			}
		}
	})

	t.Run("Move creates the folder and moves only the given UIDs", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 3)
		if err := c.Move(t.Context(), []uint32{u[0], u[1]}, "Processed"); err != nil {
			t.Fatalf("Move to a missing folder: %v", err)
		}
		if err := c.Move(t.Context(), []uint32{u[2]}, "Processed"); err != nil {
			t.Fatalf("Move to the existing folder: %v", err)
		}
		if got := listUIDs(t, c, 0, 0); len(got) != 0 {
			t.Errorf("INBOX after Move = %v, want empty", got)
		}
		if got := flags(t, cfg, "Processed"); len(got) != 3 {
			t.Errorf("Processed holds %d messages, want 3", len(got))
		}
	})

	t.Run("Delete expunges exactly the given UIDs", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		u := appendN(t, c, "INBOX", 4)
		if err := c.Delete(t.Context(), []uint32{u[1], u[3]}); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got, want := listUIDs(t, c, 0, 0), []uint32{u[0], u[2]}; !slices.Equal(got, want) {
			t.Fatalf("INBOX after Delete = %v, want %v", got, want)
		}
	})

	t.Run("bad password is ErrAuth and permanent", func(t *testing.T) {
		cfg := newConfig(t)
		cfg.Password = "wrong"
		c, err := mailbox.Dial(t.Context(), cfg, nil)
		if err == nil {
			c.Close()
			t.Fatal("Dial with a wrong password succeeded, want ErrAuth")
		}
		if !errors.Is(err, mailbox.ErrAuth) || mailbox.Temporary(err) {
			t.Fatalf("Dial with a wrong password = %v (temporary %v), want ErrAuth, not temporary", err, mailbox.Temporary(err))
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error %q contains the password", err)
		}
	})

	t.Run("missing folder is ErrNoMailbox and permanent", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		_, err := c.Select(t.Context(), "No/Such/Folder")
		if !errors.Is(err, mailbox.ErrNoMailbox) || mailbox.Temporary(err) {
			t.Fatalf("Select(missing) = %v, want ErrNoMailbox, not temporary", err)
		}
		if _, err := c.List(t.Context(), 0, 0); err == nil {
			t.Fatal("List after a failed Select succeeded, want an error (no silent fallback to INBOX)")
		}
		cfg.Folder = "Missing"
		c2 := dial(t, cfg)
		if _, err := c2.List(t.Context(), 0, 0); !errors.Is(err, mailbox.ErrNoMailbox) {
			t.Fatalf("List with Config.Folder missing = %v, want ErrNoMailbox", err)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		cfg := newConfig(t)
		c := dial(t, cfg)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := c.List(ctx, 0, 0); !errors.Is(err, context.Canceled) || mailbox.Temporary(err) {
			t.Fatalf("List(cancelled ctx) = %v, want context.Canceled, not temporary", err)
		}
	})
}

func TestMemServer(t *testing.T) {
	t.Parallel()
	runSuite(t, memServer)
}

// hangingServer accepts IMAP logins and then never answers: it stands for a
// stuck server or network.
func hangingServer(t *testing.T) mailbox.Config {
	t.Helper()
	return scriptedServer(t, func(conn net.Conn) {
		fmt.Fprint(conn, "* OK [CAPABILITY IMAP4rev1] hanging\r\n")
		r := bufio.NewReader(conn)
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, _, _ := strings.Cut(line, " ")
		fmt.Fprintf(conn, "%s OK logged in\r\n", tag)
		_, _ = io.Copy(io.Discard, r) // never answer again
	})
}

// scriptedServer serves every connection with serve, which speaks as much
// IMAP as a test needs, and closes it when serve returns.
func scriptedServer(t *testing.T, serve func(conn net.Conn)) mailbox.Config {
	t.Helper()
	return imaptest.Scripted(t, serve)
}

func TestStuckServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		ctx           func(context.Context) (context.Context, context.CancelFunc)
		timeout       time.Duration
		wantErr       error
		wantTemporary bool
	}{
		{
			name: "cancel unblocks",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			timeout: 10 * time.Second, wantErr: context.Canceled, wantTemporary: false,
		},
		{
			name: "ctx deadline unblocks",
			ctx: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 100*time.Millisecond)
			},
			timeout: 10 * time.Second, wantErr: context.DeadlineExceeded, wantTemporary: true,
		},
		{
			name:    "command timeout unblocks",
			ctx:     func(ctx context.Context) (context.Context, context.CancelFunc) { return ctx, func() {} },
			timeout: 100 * time.Millisecond, wantTemporary: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := hangingServer(t)
			cfg.CommandTimeout = tt.timeout
			c := dial(t, cfg)
			ctx, cancel := tt.ctx(t.Context())
			defer cancel()
			start := time.Now()
			_, err := c.Select(ctx, "INBOX")
			if elapsed := time.Since(start); elapsed > 3*time.Second {
				t.Fatalf("Select on a stuck server returned after %v, want about 100ms", elapsed)
			}
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("Select on a stuck server = %v, want %v", err, tt.wantErr)
			}
			if mailbox.Temporary(err) != tt.wantTemporary {
				t.Fatalf("Temporary(%v) = %v, want %v", err, !tt.wantTemporary, tt.wantTemporary)
			}
			closed := make(chan error, 1)
			go func() { closed <- c.Close() }()
			select {
			case <-closed:
			case <-time.After(3 * time.Second):
				t.Fatal("Close after a stuck command blocks")
			}
		})
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	tests := []struct {
		name          string
		cfg           mailbox.Config
		wantTemporary bool
	}{
		{"connection refused", mailbox.Config{Host: "127.0.0.1", Port: closedPort, Security: "none", Username: "u"}, true},
		{"unknown security", mailbox.Config{Host: "127.0.0.1", Security: "ssl", Username: "u"}, false},
		{"no host", mailbox.Config{Username: "u"}, false},
		{"no username", mailbox.Config{Host: "127.0.0.1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := mailbox.Dial(t.Context(), tt.cfg, nil)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded, want an error")
			}
			if mailbox.Temporary(err) != tt.wantTemporary {
				t.Fatalf("Dial = %v; Temporary = %v, want %v", err, !tt.wantTemporary, tt.wantTemporary)
			}
		})
	}
}

func TestTemporary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"ErrAuth", fmt.Errorf("login: %w", mailbox.ErrAuth), false},
		{"ErrNoMailbox", fmt.Errorf("select: %w", mailbox.ErrNoMailbox), false},
		{"UNAVAILABLE", &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable}, true},
		{"BYE", &imap.Error{Type: imap.StatusResponseTypeBye}, true},
		{"plain NO", &imap.Error{Type: imap.StatusResponseTypeNo}, false},
		{"BAD", &imap.Error{Type: imap.StatusResponseTypeBad}, false},
		{"EOF", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"net timeout", &net.OpError{Op: "read", Err: timeoutErr{}}, true},
		{"ctx deadline", context.DeadlineExceeded, true},
		{"ctx cancelled", context.Canceled, false},
		{"unknown host", &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}, false},
		{"other", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mailbox.Temporary(tt.err); got != tt.want {
				t.Fatalf("Temporary(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestDovecot runs the suite against a real Dovecot from deploy/mailstack.sh,
// plus TLS and delivery through SMTP.
func TestDovecot(t *testing.T) {
	stack := mailstack.Start(t)
	n := 0
	newUser := func(t *testing.T) mailbox.Config {
		n++
		addr := fmt.Sprintf("user%d@example.test", n)
		stack.AddUser(t, addr, "pw")
		return stack.IMAPConfig(addr, "pw")
	}
	runSuite(t, newUser)

	t.Run("mail delivered through SMTP is listed and fetched", func(t *testing.T) {
		cfg := newUser(t)
		stack.SendSMTP(t, "alice@customer.test", []string{cfg.Username}, rawMessage(7))
		stack.WaitForMail(t, cfg.Username, cfg.Password, 1, 15*time.Second)
		c := dial(t, cfg)
		u := listUIDs(t, c, 0, 0)
		var body string
		if err := c.Fetch(t.Context(), u, func(_ uint32, raw []byte) error { body = string(raw); return nil }); err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if len(u) != 1 || !strings.Contains(body, "Subject: message 7") {
			t.Fatalf("INBOX = %v, body %q; want one message with Subject: message 7", u, body)
		}
	})

	host, port, _ := net.SplitHostPort(stack.IMAPSAddr)
	imapsPort, _ := strconv.Atoi(port)
	tlsTests := []struct {
		name     string
		security string
		port     int
		verify   bool
		wantErr  bool
	}{
		{"implicit TLS", mailbox.SecurityTLS, imapsPort, false, false},
		{"STARTTLS", mailbox.SecurityStartTLS, 0, false, false},
		{"self-signed certificate is refused unless told", mailbox.SecurityTLS, imapsPort, true, true},
	}
	for _, tt := range tlsTests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := stack.IMAPConfig("alice@customer.test", mailstack.Password)
			cfg.Host, cfg.Security, cfg.InsecureSkipVerify = host, tt.security, !tt.verify
			if tt.port != 0 {
				cfg.Port = tt.port
			}
			c, err := mailbox.Dial(t.Context(), cfg, nil)
			if tt.wantErr {
				if err == nil {
					c.Close()
					t.Fatal("Dial succeeded, want a certificate error")
				}
				if mailbox.Temporary(err) {
					t.Fatalf("Dial = %v: temporary, want permanent", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer c.Close()
			if _, err := c.Select(t.Context(), "INBOX"); err != nil {
				t.Fatalf("Select over %s: %v", tt.security, err)
			}
		})
	}
}

// Fetch reads at most MaxMessageSize+1 bytes of a message whatever the
// server announced: the caller sees it is over the limit, and a server
// that lies about RFC822.SIZE cannot make us hold more. (imapmemserver
// derives RFC822.SIZE from the literal, so it cannot lie; the cap does not
// look at RFC822.SIZE, so a truthful large message exercises it alike.)
func TestFetchCapsTheReadAtMaxMessageSize(t *testing.T) {
	t.Parallel()
	big := append(rawMessage(1), bytes.Repeat([]byte("x"), 4000)...)
	tests := []struct {
		name    string
		max     int64
		wantLen int
	}{
		{"over the limit: limit+1 bytes", 1000, 1001},
		{"exactly at the limit: whole", int64(len(big)), len(big)},
		{"no limit: whole", 0, len(big)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := memServer(t)
			cfg.MaxMessageSize = tt.max
			c := dial(t, cfg)
			if _, err := c.Select(t.Context(), "INBOX"); err != nil {
				t.Fatalf("Select: %v", err)
			}
			uid, err := c.Append(t.Context(), "INBOX", big)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			small, err := c.Append(t.Context(), "INBOX", rawMessage(2))
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			got := map[uint32][]byte{}
			err = c.Fetch(t.Context(), []uint32{uid, small}, func(u uint32, raw []byte) error {
				got[u] = raw
				return nil
			})
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			if len(got[uid]) != tt.wantLen || !bytes.Equal(got[uid], big[:tt.wantLen]) {
				t.Errorf("large message: got %d bytes, want its first %d", len(got[uid]), tt.wantLen)
			}
			if !bytes.Equal(got[small], rawMessage(2)) {
				t.Errorf("the message after it = %q, want it whole (the connection stays in step)", got[small])
			}
		})
	}
}
