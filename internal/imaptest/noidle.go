package imaptest

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/mailbox"
)

// NoIdle starts a scripted IMAP4rev1 server that offers no IDLE (as some
// hosted and older servers do): it answers LOGIN (any user, any password),
// CAPABILITY and LOGOUT, and BAD to anything else. It stops when the test
// ends.
func NoIdle(t testing.TB) mailbox.Config {
	t.Helper()
	return Scripted(t, serveNoIdle)
}

// Scripted serves every connection to a loopback port with serve (which
// speaks IMAP, or fails to, as the test needs) until the test ends, and
// returns the config to reach it as user "u", password "p".
func Scripted(t testing.TB, serve func(conn net.Conn)) mailbox.Config {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("imaptest: listen: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	return mailbox.Config{
		Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, Security: mailbox.SecurityNone,
		Username: "u", Password: "p", DialTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
	}
}

func serveNoIdle(conn net.Conn) {
	fmt.Fprint(conn, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] no idle here\r\n")
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
		cmd, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(cmd) {
		case "LOGIN":
			fmt.Fprintf(conn, "%s OK [CAPABILITY IMAP4rev1] logged in\r\n", tag)
		case "CAPABILITY":
			fmt.Fprintf(conn, "* CAPABILITY IMAP4rev1\r\n%s OK done\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(conn, "* BYE bye\r\n%s OK done\r\n", tag)
			return
		default:
			fmt.Fprintf(conn, "%s BAD unknown\r\n", tag)
		}
	}
}
