package mailstack_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

func message(from, to, subject string) []byte {
	return fmt.Appendf(nil, "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@mailstack.test>\r\n\r\nbody of %s\r\n",
		from, to, subject, subject, subject)
}

func TestStack(t *testing.T) {
	s := mailstack.Start(t)
	for name, addr := range map[string]string{"IMAP": s.IMAPAddr, "IMAPS": s.IMAPSAddr, "LMTP": s.LMTPAddr, "SMTP": s.SMTPAddr} {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatalf("%s at %s does not answer: %v", name, addr, err)
		}
		conn.Close()
	}

	t.Run("SMTP through OpenSMTPD reaches the IMAP inbox", func(t *testing.T) {
		s.SendSMTP(t, "bob@customer.test", []string{"alice@customer.test", "carol@customer.test"},
			message("bob@customer.test", "alice@customer.test", "via-smtp"))
		for _, user := range []string{"alice@customer.test", "carol@customer.test"} {
			msgs := s.WaitForMail(t, user, mailstack.Password, 1, 15*time.Second)
			if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte("Subject: via-smtp")) {
				t.Fatalf("INBOX of %s = %q, want the one message with Subject: via-smtp", user, msgs)
			}
			if !bytes.Contains(msgs[0], []byte("by mailstack.test (OpenSMTPD)")) {
				t.Errorf("message to %s has no OpenSMTPD Received header:\n%s", user, msgs[0])
			}
		}
	})

	t.Run("LMTP delivers straight to Dovecot, in order", func(t *testing.T) {
		for i := range 3 {
			s.Deliver(t, "support@example.test", message("alice@customer.test", "support@example.test", fmt.Sprint("lmtp-", i)))
		}
		msgs := s.WaitForMail(t, "support@example.test", mailstack.Password, 3, 5*time.Second)
		if len(msgs) != 3 {
			t.Fatalf("got %d messages, want 3", len(msgs))
		}
		for i, m := range msgs {
			if want := fmt.Sprint("Subject: lmtp-", i); !bytes.Contains(m, []byte(want)) {
				t.Errorf("message %d lacks %q:\n%s", i, want, m)
			}
		}
	})

	t.Run("AddUser on a running stack", func(t *testing.T) {
		s.AddUser(t, "dave@new.test", "pw-dave")
		s.Deliver(t, "dave@new.test", message("alice@customer.test", "dave@new.test", "hello-dave"))
		msgs := s.WaitForMail(t, "dave@new.test", "pw-dave", 1, 5*time.Second)
		if len(msgs) != 1 || !bytes.Contains(msgs[0], []byte("hello-dave")) {
			t.Fatalf("INBOX of dave = %q, want hello-dave", msgs)
		}
	})

	t.Run("second stack runs beside the first", func(t *testing.T) {
		s2 := mailstack.Start(t)
		if s2.SMTPAddr == s.SMTPAddr || s2.Dir == s.Dir {
			t.Fatalf("second stack shares %s / %s with the first", s2.SMTPAddr, s2.Dir)
		}
		s2.SendSMTP(t, "alice@customer.test", []string{"bob@customer.test"}, message("alice@customer.test", "bob@customer.test", "second"))
		if msgs := s2.WaitForMail(t, "bob@customer.test", mailstack.Password, 1, 15*time.Second); len(msgs) != 1 {
			t.Fatalf("second stack: bob has %d messages, want 1", len(msgs))
		}
		if _, err := os.Stat(filepath.Join(s.Dir, "mail", "bob@customer.test")); err == nil {
			t.Errorf("mail for the second stack landed in the first one's %s", s.Dir)
		}
	})
}
