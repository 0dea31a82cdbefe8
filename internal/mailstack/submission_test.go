package mailstack_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/servicedesk/servicedesk/internal/mailstack"
)

// submit sends one message through addr: STARTTLS when startTLS, AUTH
// PLAIN when user is set. It returns the first error, unwrapped.
func submit(addr string, startTLS bool, user, pass, from, to string, raw []byte) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	c := smtp.NewClient(conn)
	if startTLS {
		if c, err = smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true}); err != nil { //nolint:gosec // the stack's self-signed certificate
			conn.Close()
			return err
		}
	}
	defer c.Close()
	if user != "" {
		if err := c.Auth(sasl.NewPlainClient("", user, pass)); err != nil {
			return err
		}
	}
	if err := c.SendMail(from, []string{to}, bytes.NewReader(raw)); err != nil {
		return err
	}
	return c.Quit()
}

func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestSubmissionAndSMTPControl(t *testing.T) {
	s := mailstack.Start(t)
	const alice = "alice@customer.test"

	t.Run("submission listener", func(t *testing.T) {
		tests := []struct {
			name     string
			startTLS bool
			user     string
			pass     string
			to       string
			wantCode int // 0: accepted
		}{
			{"STARTTLS and AUTH with the default user relays the mail", true, mailstack.SMTPUser, mailstack.SMTPPassword, alice, 0},
			{"a wrong password is refused with 535", true, mailstack.SMTPUser, "wrong", alice, 535},
			{"no AUTH: MAIL is refused with 530", true, "", "", alice, 530},
			{"a recipient in the reject domain gets a 5xx at RCPT", true, mailstack.SMTPUser, mailstack.SMTPPassword, "x@" + mailstack.RejectDomain, 550},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := submit(s.SMTPAuthAddr, tt.startTLS, tt.user, tt.pass, mailstack.SMTPUser, tt.to, message(mailstack.SMTPUser, tt.to, "submitted"))
				if got := code(err); got != tt.wantCode || (tt.wantCode == 0 && err != nil) {
					t.Fatalf("submit = %v (code %d), want code %d", err, got, tt.wantCode)
				}
			})
		}
		msgs := s.WaitForMail(t, alice, mailstack.Password, 1, 15*time.Second)
		if !bytes.Contains(msgs[0], []byte("ESMTPSA")) {
			t.Errorf("submitted mail has no Received header saying ESMTPSA (TLS and AUTH):\n%s", msgs[0])
		}
	})

	t.Run("AddSMTPUser gives new credentials", func(t *testing.T) {
		s.AddSMTPUser(t, "brand@example.test", "brand-pw")
		if err := submit(s.SMTPAuthAddr, true, "brand@example.test", "brand-pw", "brand@example.test", "bob@customer.test",
			message("brand@example.test", "bob@customer.test", "brand")); err != nil {
			t.Fatalf("submit as the new user: %v", err)
		}
		s.WaitForMail(t, "bob@customer.test", mailstack.Password, 1, 15*time.Second)
	})

	t.Run("plain SMTP refuses the reject domain with 550", func(t *testing.T) {
		err := submit(s.SMTPAddr, false, "", "", "bob@customer.test", "y@"+mailstack.RejectDomain, message("bob@customer.test", "y@reject.test", "rejected"))
		if code(err) != 550 || !strings.Contains(err.Error(), "Invalid recipient") {
			t.Fatalf("send to the reject domain = %v, want 550 Invalid recipient", err)
		}
	})

	t.Run("StopSMTP takes OpenSMTPD down, StartSMTP up on the same port", func(t *testing.T) {
		s.StopSMTP(t)
		if conn, err := net.DialTimeout("tcp", s.SMTPAddr, time.Second); err == nil {
			conn.Close()
			t.Fatalf("SMTP at %s still answers after StopSMTP", s.SMTPAddr)
		}
		s.StartSMTP(t)
		s.SendSMTP(t, "bob@customer.test", []string{"carol@customer.test"}, message("bob@customer.test", "carol@customer.test", "after-restart"))
		msgs := s.WaitForMail(t, "carol@customer.test", mailstack.Password, 1, 15*time.Second)
		if !bytes.Contains(msgs[0], []byte("after-restart")) {
			t.Fatalf("carol's mail after the restart = %q", msgs[0])
		}
	})
}
