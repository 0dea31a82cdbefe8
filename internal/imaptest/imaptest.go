// Package imaptest starts go-imap's in-process IMAP server (imapmemserver)
// for tests: fast, no Dovecot, and with a handle on the user's folders.
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

// MemServer starts an imapmemserver with one user, user@example.test
// (password "pass"), whose INBOX exists and is empty, and returns the
// config to log in as that user. It stops when the test ends.
func MemServer(t testing.TB) mailbox.Config {
	t.Helper()
	cfg, _ := Start(t, "user@example.test", "pass")
	return cfg
}

// Start serves one user with the given folders (INBOX always) on a
// loopback port until the test ends, and returns the mailbox config to
// reach it (plain IMAP, IMAP4rev2: UIDPLUS, MOVE, ESEARCH) and the user,
// whose folders a test may delete and create again.
func Start(t testing.TB, username, password string, folders ...string) (mailbox.Config, *imapmemserver.User) {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(username, password)
	for _, name := range append([]string{"INBOX"}, folders...) {
		if err := user.Create(name, nil); err != nil {
			t.Fatalf("imaptest: create folder %s: %v", name, err)
		}
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
		t.Fatalf("imaptest: listen: %v", err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return mailbox.Config{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: mailbox.SecurityNone,
		Username: username, Password: password,
		DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
	}, user
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
