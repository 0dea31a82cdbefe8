// Package imaptest starts in-process IMAP servers (go-imap's
// imapmemserver) for fast tests of code that speaks IMAP.
package imaptest

import (
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/servicedesk/servicedesk/mailbox"
)

// MemServer starts an imapmemserver (IMAP4rev1 and IMAP4rev2, with IDLE)
// with one user, user@example.test, whose INBOX exists and is empty, and
// returns the config to log in as that user. It stops when the test ends.
func MemServer(t testing.TB) mailbox.Config {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("user@example.test", "pass")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatalf("create INBOX: %v", err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		InsecureAuth: true,
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return mailbox.Config{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: mailbox.SecurityNone,
		Username: "user@example.test", Password: "pass",
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
	}
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
