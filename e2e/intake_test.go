package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/store"
	"github.com/servicedesk/servicedesk/ticket"
)

// intakeEnv is a desk configuration in GitLab's shape: one intake mailbox
// serving three desks that have no mailbox of their own.
//   - acme has no custom address: its address is incoming+acme@ (mail
//     reaches the intake by sub-address);
//   - beta's custom address support@beta.test is forwarded to the intake
//     by Microsoft 365;
//   - gamma's custom address help@gamma.test has an alias,
//     sales@gamma.test, forwarded to the intake by a Postfix virtual alias.
type intakeEnv struct {
	*deskEnv
	intake string // the intake address and IMAP user
}

const (
	betaDesk   = "support@beta.test"
	gammaDesk  = "help@gamma.test"
	gammaAlias = "sales@gamma.test"
	deltaDesk  = "support@delta.test"
)

// extra is appended to the projects list.
func newIntakeEnv(t *testing.T, stack *mailstack.Stack, b backend, intake, extra string) *intakeEnv {
	t.Helper()
	stack.AddUser(t, intake, deskPass)
	imapHost, imapPort, _ := net.SplitHostPort(stack.IMAPAddr)
	smtpHost, smtpPort, _ := net.SplitHostPort(stack.SMTPAddr)
	e := &deskEnv{t: t, stack: stack, dbURL: b.url(t), httpAddr: freeAddr(t)}
	local, domain, _ := strings.Cut(intake, "@")
	smtp := fmt.Sprintf("{host: %s, port: %s, security: none}", smtpHost, smtpPort)
	cfg := configHead(t, e) + fmt.Sprintf(`intake:
  address: %s
  imap: {host: %s, port: %s, security: none, password: %s, poll_interval: 1s, batch_size: 40,
         after_processing: move, processed_folder: Routed}
projects:
  - key: acme
    address: %s+acme@%s
    smtp: %s
  - key: beta
    address: %s
    smtp: %s
  - key: gamma
    address: %s
    aliases: [%s]
    smtp: %s
%s`, intake, imapHost, imapPort, deskPass,
		local, domain, smtp, betaDesk, smtp, gammaDesk, gammaAlias, smtp, extra)
	e.config = filepath.Join(t.TempDir(), "servicedesk.yaml")
	if err := os.WriteFile(e.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &intakeEnv{deskEnv: e, intake: intake}
}

// subAddress is the intake address with tag: incoming+acme@....
func (e *intakeEnv) subAddress(tag string) string {
	local, domain, _ := strings.Cut(e.intake, "@")
	return local + "+" + tag + "@" + domain
}

// viaMicrosoft365 is m as Microsoft 365 forwards it from beta's mailbox
// (the customer Bcc'd the desk, so To names only the customer's team).
func (e *intakeEnv) viaMicrosoft365(m custMail) custMail {
	m.headers = append(m.headers,
		"X-MS-Exchange-ForwardingLoop: "+betaDesk+";72f988bf-86f1-41af-91ab-2d7cd011db47",
		"X-MS-Exchange-Inbox-Rules-Loop: "+betaDesk,
		"X-MS-Exchange-CrossTenant-OriginalArrivalTime: 03 Dec 2026 10:00:01.0000 (UTC)",
		"X-MS-Exchange-CrossTenant-Network-Message-Id: 5c1d2e3f-0000-4000-8000-000000000002",
		"X-MS-Exchange-Transport-CrossTenantHeadersStamped: AM6PR05MB1234",
		"X-Forwarded-To: "+e.intake)
	return m
}

// viaPostfixAlias is m as a Postfix virtual alias of gamma's alias
// delivers it into the intake mailbox.
func (e *intakeEnv) viaPostfixAlias(m custMail) custMail {
	m.headers = append(m.headers, "X-Original-To: "+gammaAlias, "Delivered-To: "+e.intake)
	return m
}

// TestIntakeRoutesMailToItsDesks drives GitLab's model on each database:
// one intake mailbox, three desks reached by sub-address, by Microsoft 365
// forwarding and by a forwarded alias; replies come back by reply key; a
// mail naming no desk is a dead letter, never answered and left in the
// intake mailbox, while routed mail is moved out of it.
func TestIntakeRoutesMailToItsDesks(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			user := func(name string) string { return name + "-intake-" + b.name + "@customer.test" }
			alice, bob, carol, dave := user("alice"), user("bob"), user("carol"), user("dave")
			for _, u := range []string{alice, bob, carol, dave} {
				stack.AddUser(t, u, "pw")
			}
			// delta sends through a sink: the test plays its forward.
			sink := startSMTPSink(t, "delta", "delta-pw")
			sinkHost, sinkPort := splitHostPort(t, sink.addr)
			env := newIntakeEnv(t, stack, b, "incoming-"+b.name+"@intake.test", fmt.Sprintf(`
  - key: delta
    address: %s
    smtp: {host: %s, port: %d, security: none, username: delta, password: delta-pw}
`, deltaDesk, sinkHost, sinkPort))
			st := env.openStore()

			t.Run("check logs in to the intake mailbox and leaves the desks without one alone", func(t *testing.T) {
				out, err := env.run("check")
				if err != nil {
					t.Fatalf("check: %v\n%s", err, out)
				}
				if !strings.Contains(out, "ok    intake "+env.intake+" imap") || strings.Contains(out, "project acme imap") {
					t.Fatalf("check printed:\n%s\nwant an ok line for the intake's imap and none for a desk without a mailbox", out)
				}
			})

			env.serve()
			acmeMail := custMail{from: "Alice <" + alice + ">", to: env.subAddress("acme"), subject: "Printer on fire",
				body: "Help.", messageID: "<acme-1-" + b.name + "@customer.test>"}
			stack.SendSMTP(t, alice, []string{env.subAddress("acme")}, acmeMail.raw())
			betaMail := env.viaMicrosoft365(custMail{from: bob, to: "team@customer.test", subject: "VPN down",
				body: "No VPN.", messageID: "<beta-1-" + b.name + "@customer.test>"})
			stack.Deliver(t, env.intake, betaMail.raw())
			gammaMail := env.viaPostfixAlias(custMail{from: carol, to: gammaAlias, subject: "Quote please",
				body: "How much?", messageID: "<gamma-1-" + b.name + "@customer.test>"})
			stack.Deliver(t, env.intake, gammaMail.raw())
			lost := custMail{from: dave, to: "nobody@elsewhere.test", subject: "Lost", body: "Where am I?",
				messageID: "<lost-" + b.name + "@customer.test>", headers: []string{"Delivered-To: " + env.intake}}
			stack.Deliver(t, env.intake, lost.raw())

			thanks := map[string]*mail.Message{}
			t.Run("each desk gets its ticket and thanks its customer from its own address", func(t *testing.T) {
				for _, c := range []struct{ desk, customer, from, subject string }{
					{"acme", alice, env.subAddress("acme"), acmeMail.subject},
					{"beta", bob, betaDesk, betaMail.subject},
					{"gamma", carol, gammaDesk, gammaMail.subject},
				} {
					eventually(t, 60*time.Second, c.desk+"#1", func() (bool, string) {
						var tk ticket.Ticket
						if err := env.api("/api/v1/projects/"+c.desk+"/tickets/1", &tk); err != nil {
							return false, err.Error()
						}
						return tk.Subject == c.subject && tk.Requester == c.customer, fmt.Sprintf("%q by %q", tk.Subject, tk.Requester)
					})
					m, err := mail.ReadMessage(bytes.NewReader(stack.WaitForMail(t, c.customer, "pw", 1, 60*time.Second)[0]))
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(m.Header.Get("From"), c.from) || !strings.Contains(m.Header.Get("Subject"), "["+c.desk+"#1]") {
						t.Errorf("%s's thank-you: From %q, Subject %q; want from %s about [%s#1]", c.desk, m.Header.Get("From"), m.Header.Get("Subject"), c.from, c.desk)
					}
					thanks[c.desk] = m
				}
				if ts := tickets(t, st); len(ts) != 3 {
					t.Errorf("%d tickets; want 3, one per desk", len(ts))
				}
			})
			if len(thanks) != 3 {
				t.FailNow()
			}

			t.Run("replies come back through the intake by their reply key", func(t *testing.T) {
				// acme's Reply-To is incoming+<key>@: the real path, through OpenSMTPD.
				replyTo, err := mail.ParseAddress(thanks["acme"].Header.Get("Reply-To"))
				if err != nil {
					t.Fatalf("acme's Reply-To: %v", err)
				}
				if !strings.HasPrefix(replyTo.Address, strings.TrimSuffix(env.subAddress("r1-"), "@intake.test")) {
					t.Fatalf("acme's Reply-To %s; want %s with the reply key as sub-address", replyTo.Address, env.intake)
				}
				reply := custMail{from: alice, to: replyTo.Address, subject: "Re: " + thanks["acme"].Header.Get("Subject"),
					body: "Out now.", messageID: "<acme-2-" + b.name + "@customer.test>"}
				stack.SendSMTP(t, alice, []string{replyTo.Address}, reply.raw())
				// beta's is support+<key>@beta.test, which beta's server forwards;
				// the reply quotes nothing else that names beta.
				stack.Deliver(t, env.intake, env.viaMicrosoft365(custMail{from: bob, to: thanks["beta"].Header.Get("Reply-To"),
					subject: "Re: VPN down", body: "Works.", messageID: "<beta-2-" + b.name + "@customer.test>"}).raw())
				for _, desk := range []string{"acme", "beta"} {
					eventually(t, 60*time.Second, "a reply on "+desk+"#1", func() (bool, string) {
						var tk ticket.Ticket
						if err := env.api("/api/v1/projects/"+desk+"/tickets/1", &tk); err != nil {
							return false, err.Error()
						}
						in := 0
						for _, m := range tk.Messages {
							if m.Direction == ticket.DirectionInbound {
								in++
							}
						}
						return in == 2, fmt.Sprintf("%d inbound messages", in)
					})
				}
				for _, r := range ledger(t, st) {
					if strings.Contains(r.MessageID, "-2-") && (r.Outcome != ticket.OutcomeReplyAdded || !strings.Contains(r.Reason, "routed from the intake by reply key")) {
						t.Errorf("reply %s: %s (%s); want reply_added, routed by reply key", r.MessageID, r.Outcome, r.Reason)
					}
				}
				if ts := tickets(t, st); len(ts) != 3 {
					t.Errorf("%d tickets; want still 3: replies open none", len(ts))
				}
			})

			t.Run("a mail naming no desk is a dead letter listing its addresses, never answered, left in the intake", func(t *testing.T) {
				var row ticket.Inbound
				eventually(t, 30*time.Second, "the lost mail's outcome", func() (bool, string) {
					for _, r := range ledger(t, st) {
						if r.MessageID == lost.messageID {
							row = r
						}
					}
					return row.Outcome != ticket.OutcomeNone, fmt.Sprintf("outcome %q", row.Outcome)
				})
				if row.Outcome != ticket.OutcomeUnroutable || row.Project != ticket.IntakeKey ||
					!strings.Contains(row.Reason, "nobody@elsewhere.test (To)") || !strings.Contains(row.Reason, env.intake+" (Delivered-To") {
					t.Fatalf("ledger row %+v; want unroutable on the intake, listing To and Delivered-To", row)
				}
				var dls struct{ Deadletters []ticket.DeadLetter }
				if err := env.api("/api/v1/deadletters", &dls); err != nil {
					t.Fatal(err)
				}
				if len(dls.Deadletters) != 1 || dls.Deadletters[0].InboundID != row.ID || dls.Deadletters[0].Address != dave {
					t.Fatalf("dead letters %+v; want the lost mail's, from %s", dls.Deadletters, dave)
				}
				out, err := env.run("inbound", "list", "--outcome", "unroutable")
				if err != nil || !strings.Contains(out, ticket.IntakeKey) || !strings.Contains(out, "unroutable") {
					t.Fatalf("inbound list --outcome unroutable: %v\n%s", err, out)
				}
				// Routed mail is moved to Routed once committed; the lost
				// mail stays where it arrived, and dave got nothing.
				eventually(t, 30*time.Second, "the intake's INBOX to hold the lost mail only", func() (bool, string) {
					n := countMessages(t, stack, env.intake, "INBOX")
					return n == 1, fmt.Sprintf("%d messages in INBOX, %d in Routed", n, countMessages(t, stack, env.intake, "Routed"))
				})
				if n := countMessages(t, stack, dave, "INBOX"); n != 0 {
					t.Fatalf("%d mails in %s's mailbox; want no answer to an unroutable mail", n, dave)
				}
			})

			t.Run("projects verify follows the forwarding path through the intake", func(t *testing.T) {
				out, err := env.run("projects", "verify", "acme", "--timeout", "60s")
				if err != nil || !strings.Contains(out, "acme: ok (") || !strings.Contains(out, "fetched from the intake mailbox and routed to the desk") {
					t.Fatalf("projects verify acme = %q, %v; want ok, routed from the intake", out, err)
				}
				// delta's forward drops the desk's address: the mail reaches
				// the intake addressed to the staff list only.
				type result struct {
					out string
					err error
				}
				done := make(chan result, 1)
				go func() {
					out, err := env.run("projects", "verify", "delta", "--timeout", "60s")
					done <- result{out, err}
				}()
				var sent []sunkMail
				eventually(t, 30*time.Second, "delta's verification mail at its SMTP server", func() (bool, string) {
					sent = sink.to(deltaDesk)
					return len(sent) == 1, fmt.Sprintf("%d mails", len(sent))
				})
				head, body, _ := bytes.Cut(sent[0].raw, []byte("\r\n\r\n"))
				var forwarded []string
				for _, line := range strings.Split(string(head), "\r\n") {
					if strings.HasPrefix(strings.ToLower(line), "to:") {
						line = "To: staff@delta-team.test"
					}
					forwarded = append(forwarded, line)
				}
				stack.Deliver(t, env.intake, []byte(strings.Join(forwarded, "\r\n")+"\r\n\r\n"+string(body)))
				r := <-done
				if r.err == nil || !strings.Contains(r.out, "delta: incorrect_forwarding_target") || !strings.Contains(r.out, "staff@delta-team.test (To)") {
					t.Fatalf("projects verify delta = %q, %v; want incorrect_forwarding_target naming what the mail carried", r.out, r.err)
				}
			})
		})
	}
}

// countMessages is how many messages folder of user's mailbox holds.
func countMessages(t *testing.T, stack *mailstack.Stack, user, folder string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pw := deskPass
	if strings.HasSuffix(user, "@customer.test") {
		pw = "pw"
	}
	c, err := mailbox.Dial(ctx, stack.IMAPConfig(user, pw), nil)
	if err != nil {
		t.Fatalf("log in as %s: %v", user, err)
	}
	defer c.Close()
	st, err := c.Select(ctx, folder)
	if err != nil {
		return 0 // not created yet
	}
	return int(st.Messages)
}

// TestIntakeExactlyOnceAcrossServersAndACrash routes a backlog in the
// intake mailbox with two servers at once, one of them killed with
// SIGKILL halfway and replaced: every mail is routed to its desk exactly
// once, one ledger row and one ticket each.
func TestIntakeExactlyOnceAcrossServersAndACrash(t *testing.T) {
	t.Parallel()
	const perDesk = 100
	stack := mailstack.Start(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			env := newIntakeEnv(t, stack, b, "crash-"+b.name+"@intake.test", "")
			customer := func(i int) string { return fmt.Sprintf("cust%d-%s@customer.test", i%7, b.name) }
			for i := range 7 {
				stack.AddUser(t, customer(i), "pw") // the thank-yous are delivered, not bounced into the intake
			}
			ctx := context.Background()
			c, err := mailbox.Dial(ctx, stack.IMAPConfig(env.intake, deskPass), nil)
			if err != nil {
				t.Fatal(err)
			}
			routes := map[string]func(custMail) custMail{
				"acme":  func(m custMail) custMail { m.to = env.subAddress("acme"); return m },
				"beta":  env.viaMicrosoft365,
				"gamma": env.viaPostfixAlias,
			}
			for i := range perDesk {
				for _, desk := range []string{"acme", "beta", "gamma"} {
					m := routes[desk](custMail{from: customer(i), to: "team@customer.test",
						subject: fmt.Sprintf("%s backlog %d", desk, i), body: "x", messageID: fmt.Sprintf("<%s-%d-%s@customer.test>", desk, i, b.name)})
					if _, err := c.Append(ctx, "INBOX", m.raw()); err != nil {
						t.Fatalf("append: %v", err)
					}
				}
			}
			c.Close()
			st := env.openStore()
			killed := env.serve("--roles", "scheduler,worker")
			env.serve("--roles", "scheduler,worker")
			eventually(t, 120*time.Second, "the servers to be mid-backlog", func() (bool, string) {
				n := len(tickets(t, st))
				return n >= 40, fmt.Sprintf("%d tickets", n)
			})
			killed.kill()
			t.Logf("killed one server at %d tickets", len(tickets(t, st)))
			env.serve("--roles", "worker")
			assertRoutedOnce(t, st, perDesk, 4*time.Minute)
			eventually(t, 60*time.Second, "the routed backlog moved out of the intake's INBOX", func() (bool, string) {
				n := countMessages(t, stack, env.intake, "INBOX")
				return n == 0, fmt.Sprintf("%d messages left in INBOX", n)
			})
		})
	}
}

// assertRoutedOnce waits until every mail of the backlog has an outcome,
// then checks each became exactly one ledger row and one ticket, on the
// desk its subject names.
func assertRoutedOnce(t *testing.T, st *store.Store, perDesk int, timeout time.Duration) {
	t.Helper()
	n := 3 * perDesk
	rows := waitProcessed(t, st, n, timeout)
	perMessage := map[string]int{}
	for _, r := range rows {
		desk, _, _ := strings.Cut(strings.TrimPrefix(r.MessageID, "<"), "-")
		if r.Outcome != ticket.OutcomeTicketCreated || r.Project != desk {
			t.Errorf("ledger row %d (%s): %s on %q (%s); want ticket_created on %s", r.ID, r.MessageID, r.Outcome, r.Project, r.Reason, desk)
		}
		perMessage[r.MessageID]++
	}
	if len(rows) != n || len(perMessage) != n {
		t.Errorf("ledger has %d rows for %d distinct mails; want exactly %d of each", len(rows), len(perMessage), n)
	}
	perDeskTickets := map[string]int{}
	subjects := map[string]int{}
	for _, tk := range tickets(t, st) {
		perDeskTickets[tk.Project]++
		subjects[tk.Subject]++
		if !strings.HasPrefix(tk.Subject, tk.Project+" ") {
			t.Errorf("ticket %s#%d %q is on the wrong desk", tk.Project, tk.Number, tk.Subject)
		}
	}
	if len(subjects) != n || perDeskTickets["acme"] != perDesk || perDeskTickets["beta"] != perDesk || perDeskTickets["gamma"] != perDesk {
		t.Errorf("tickets per desk %v for %d distinct subjects; want %d each, %d in all", perDeskTickets, len(subjects), perDesk, n)
	}
}

// waitProcessed waits until n ledger rows have an outcome and returns the
// whole ledger.
func waitProcessed(t *testing.T, st *store.Store, n int, timeout time.Duration) []ticket.Inbound {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%d processed messages", n), func() (bool, string) {
		done := 0
		rows := ledger(t, st)
		for _, r := range rows {
			if r.Outcome != ticket.OutcomeNone {
				done++
			}
		}
		return done >= n, fmt.Sprintf("%d ledger rows, %d processed", len(rows), done)
	})
	return ledger(t, st)
}
