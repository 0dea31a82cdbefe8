package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/mailbox"
	"github.com/servicedesk/servicedesk/ticket"
)

// TestPipeline drives the whole promise on each database: customer mail
// delivered to Dovecot becomes a ticket and a thank-you in the customer's
// own mailbox (through OpenSMTPD), a reply threads, a duplicate is ingested
// once, an auto-reply is never answered, and oversized mail is a dead
// letter that stays in the mailbox.
func TestPipeline(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			user := func(name string) string { return name + "-" + b.name + "@customer.test" }
			alice, bob, carol := user("alice"), user("bob"), user("carol")
			for _, u := range []string{alice, bob, carol} {
				stack.AddUser(t, u, "pw")
			}
			// Each backend gets its own desk mailbox.
			deskAddr := "desk-" + b.name + "@example.test"
			stack.AddUser(t, deskAddr, deskPass)
			env := newDesk(t, stack, b, envOptions{desk: deskAddr})
			env.serve()
			st := env.openStore()

			first := custMail{from: "Alice <" + alice + ">", to: deskAddr, cc: bob + ", " + deskAddr,
				subject: "Printer on fire", body: "Help, the printer is on fire.",
				messageID: "<first-" + b.name + "@customer.test>"}
			stack.SendSMTP(t, alice, []string{deskAddr}, first.raw())

			var thanks *mail.Message
			t.Run("new mail opens a ticket and thanks the requester", func(t *testing.T) {
				eventually(t, 60*time.Second, "ticket acme#1", func() (bool, string) {
					ts := tickets(t, st)
					return len(ts) == 1, fmt.Sprintf("%d tickets", len(ts))
				})
				var tk ticket.Ticket
				if err := env.api("/api/v1/projects/acme/tickets/1", &tk); err != nil {
					t.Fatal(err)
				}
				if tk.Subject != "Printer on fire" || tk.Requester != alice || tk.Status != ticket.StatusOpen {
					t.Errorf("ticket = %q by %q (%s); want \"Printer on fire\" by %s, open", tk.Subject, tk.Requester, tk.Status, alice)
				}
				if !contains(tk.Participants, bob) || contains(tk.Participants, deskAddr) {
					t.Errorf("participants = %v; want %s (Cc) and never the desk %s", tk.Participants, bob, deskAddr)
				}
				raws := stack.WaitForMail(t, alice, "pw", 1, 60*time.Second)
				m, err := mail.ReadMessage(bytes.NewReader(raws[0]))
				if err != nil {
					t.Fatal(err)
				}
				thanks = m
				h := m.Header
				checks := map[string]bool{
					"From is the desk":              strings.Contains(h.Get("From"), deskAddr),
					"subject carries [acme#1]":      strings.Contains(h.Get("Subject"), "[acme#1]"),
					"Auto-Submitted: auto-replied":  h.Get("Auto-Submitted") == "auto-replied",
					"In-Reply-To is the customer's": h.Get("In-Reply-To") == first.messageID,
					"References has the customer's": strings.Contains(h.Get("References"), first.messageID),
					"Reply-To carries a reply key":  len(ticket.FindReplyKeys(h.Get("Reply-To"))) == 1,
					"Message-ID on our domain":      strings.HasSuffix(h.Get("Message-Id"), "@example.test>"),
				}
				for what, ok := range checks {
					if !ok {
						t.Errorf("thank-you: want %s; headers: %v", what, h)
					}
				}
			})
			if thanks == nil {
				t.FailNow()
			}

			t.Run("a reply threads onto the ticket and reopens nothing new", func(t *testing.T) {
				reply := custMail{from: alice, to: thanks.Header.Get("Reply-To"), subject: "Re: " + thanks.Header.Get("Subject"),
					body: "It is out now.\n\n> Help", messageID: "<reply-" + b.name + "@customer.test>",
					inReplyTo: thanks.Header.Get("Message-Id"), references: first.messageID + " " + thanks.Header.Get("Message-Id")}
				stack.SendSMTP(t, alice, []string{deskAddr}, reply.raw())
				var tk ticket.Ticket
				eventually(t, 60*time.Second, "reply on acme#1", func() (bool, string) {
					if err := env.api("/api/v1/projects/acme/tickets/1", &tk); err != nil {
						return false, err.Error()
					}
					// The ticket also holds our thank-you: wait for the reply itself.
					for _, m := range tk.Messages {
						if m.MessageID == reply.messageID {
							return true, ""
						}
					}
					return false, fmt.Sprintf("%d messages, none the reply", len(tk.Messages))
				})
				i := slices.IndexFunc(tk.Messages, func(m ticket.Message) bool { return m.MessageID == reply.messageID })
				if i < 0 {
					t.Fatalf("no message %s on acme#1", reply.messageID)
				}
				if m := tk.Messages[i]; strings.TrimSpace(m.Text) != "It is out now." || !strings.Contains(m.FullText, "> Help") {
					t.Errorf("reply stored with text %q, full_text %q; want the new part in text and the quote kept in full_text", m.Text, m.FullText)
				}
				if ts := tickets(t, st); len(ts) != 1 {
					t.Fatalf("a reply opened a new ticket: %d tickets", len(ts))
				}
			})

			t.Run("the same message twice is ingested once", func(t *testing.T) {
				dup := custMail{from: carol, to: deskAddr, subject: "Twice", body: "Sent twice.", messageID: "<twice-" + b.name + "@customer.test>"}
				stack.Deliver(t, deskAddr, dup.raw())
				stack.Deliver(t, deskAddr, dup.raw())
				eventually(t, 60*time.Second, "both copies in the ledger", func() (bool, string) {
					n := map[ticket.Outcome]int{}
					for _, r := range ledger(t, st) {
						if r.MessageID == dup.messageID {
							n[r.Outcome]++
						}
					}
					return n[ticket.OutcomeTicketCreated] == 1 && n[ticket.OutcomeDuplicate] == 1, fmt.Sprint(n)
				})
			})

			t.Run("an auto-reply is recorded, never answered", func(t *testing.T) {
				ooo := custMail{from: bob, to: deskAddr, subject: "Automatic reply: Printer on fire", body: "I am away.",
					messageID: "<ooo-" + b.name + "@customer.test>", headers: []string{"Auto-Submitted: auto-replied"}}
				stack.SendSMTP(t, bob, []string{deskAddr}, ooo.raw())
				eventually(t, 60*time.Second, "auto-reply in the ledger", func() (bool, string) {
					for _, r := range ledger(t, st) {
						if r.MessageID == ooo.messageID {
							return r.Outcome == ticket.OutcomeAutoReply, string(r.Outcome)
						}
					}
					return false, "not fetched yet"
				})
				// Carol's duplicate-test mail was thanked: once hers has
				// arrived, the queue is past the auto-reply too.
				stack.WaitForMail(t, carol, "pw", 1, 60*time.Second)
				time.Sleep(2 * time.Second)
				// Bob, in Cc, has alice's reply relayed to him; nothing else.
				for _, raw := range stack.WaitForMail(t, bob, "pw", 0, 15*time.Second) {
					m, err := mail.ReadMessage(bytes.NewReader(raw))
					if err != nil {
						t.Fatal(err)
					}
					if irt := m.Header.Get("In-Reply-To"); irt != "<reply-"+b.name+"@customer.test>" {
						t.Fatalf("bob got %q (In-Reply-To %s); an auto-reply must never be answered, and only alice's reply relayed",
							m.Header.Get("Subject"), irt)
					}
				}
			})

			t.Run("a 30 MB mail is a dead letter and stays in the mailbox", func(t *testing.T) {
				big := custMail{from: carol, to: deskAddr, subject: "Huge", messageID: "<huge-" + b.name + "@customer.test>",
					body: strings.Repeat(strings.Repeat("x", 998)+"\n", 30<<10)}
				stack.Deliver(t, deskAddr, big.raw())
				var dls struct {
					Deadletters []ticket.DeadLetter `json:"deadletters"`
				}
				eventually(t, 60*time.Second, "a dead letter for the huge mail", func() (bool, string) {
					if err := env.api("/api/v1/deadletters", &dls); err != nil {
						return false, err.Error()
					}
					for _, d := range dls.Deadletters {
						if d.Kind == ticket.DeadInbound && strings.Contains(d.Reason, "max_message_size") {
							return true, ""
						}
					}
					return false, fmt.Sprintf("%+v", dls.Deadletters)
				})
				out, err := env.run("deadletters", "list")
				if err != nil || !strings.Contains(out, "max_message_size") {
					t.Errorf("deadletters list = %q, %v; want the huge mail with its reason", out, err)
				}
				assertStillInMailbox(t, stack, deskAddr, len(big.raw()))
			})
		})
	}
}

// assertStillInMailbox checks that a message of about size bytes is still
// in the desk's INBOX: refused mail is never deleted or moved.
func assertStillInMailbox(t *testing.T, stack *mailstack.Stack, user string, size int) {
	t.Helper()
	ctx := context.Background()
	host, port := splitHostPort(t, stack.IMAPAddr)
	c, err := mailbox.Dial(ctx, mailbox.Config{Host: host, Port: port, Security: "none", Username: user, Password: deskPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	entries, err := c.List(ctx, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Size >= int64(size) {
			return
		}
	}
	t.Fatalf("no message of %d bytes left in %s's INBOX: %+v", size, user, entries)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
