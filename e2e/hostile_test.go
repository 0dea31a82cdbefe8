package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/servicedesk/servicedesk/ingest"
	"github.com/servicedesk/servicedesk/ticket"
)

// testSpamCannon: a customer who replies on their own ticket with 300
// addresses in Cc makes the desk mail at most ingest.MaxNewParticipants
// short notices, none of which carries the customer's text or subject.
func (d *obDesk) testSpamCannon(t *testing.T) {
	spammer := d.customer(t, "spammer")
	// Real mailboxes at the first places of the Cc list: the first five
	// are added and told, the sixth is not.
	var real []string
	for i := range ingest.MaxNewParticipants + 1 {
		real = append(real, d.customer(t, fmt.Sprintf("cc%d", i)))
	}
	tk, thanks := d.openTicket(t, d.addr, spammer, "", "Cheap pills")
	cc := append([]string(nil), real...)
	for i := len(cc); i < 300; i++ {
		cc = append(cc, fmt.Sprintf("victim%d-%s@customer.test", i, d.tag))
	}
	reply := custMail{from: spammer, to: d.addr, cc: strings.Join(cc, ",\r\n "),
		subject: "Re: " + thanks.GetHeader("Subject"), body: "BUY CHEAP PILLS AT pills.example",
		inReplyTo: thanks.GetHeader("Message-Id"), messageID: "<cannon-" + randomHex(4) + "@customer.test>"}
	d.stack.Deliver(t, d.addr, reply.raw())
	eventually(t, 60*time.Second, "the reply on "+tk.Ref, func() (bool, string) {
		for _, r := range ledger(t, d.st) {
			if r.MessageID == reply.messageID && r.Outcome != ticket.OutcomeNone {
				return r.Outcome == ticket.OutcomeReplyAdded, fmt.Sprintf("%s: %s", r.Outcome, r.Reason)
			}
		}
		return false, "not processed yet"
	})
	for _, r := range ledger(t, d.st) {
		if r.MessageID == reply.messageID && !strings.Contains(r.Reason, "participants: added 5 of ") {
			t.Errorf("ledger reason = %q, want it to say only 5 of the Cc addresses were added", r.Reason)
		}
	}
	notices := 0
	for _, n := range allNotifications(t, d.st) {
		if n.TicketID == tk.ID && n.Kind == ticket.NotifyNewParticipant {
			notices++
		}
	}
	if notices != ingest.MaxNewParticipants {
		t.Errorf("%d new_participant notifications queued for 300 Cc, want %d", notices, ingest.MaxNewParticipants)
	}
	for _, who := range real[:ingest.MaxNewParticipants] {
		m := d.mails(t, who, 1)[0]
		for what, got := range map[string]string{"subject": m.GetHeader("Subject"), "text": m.Text} {
			if strings.Contains(strings.ToLower(got), "pills") {
				t.Errorf("%s: the notice's %s carries the customer's words: %.200q", who, what, got)
			}
		}
	}
	if n := d.quietCount(t, real[ingest.MaxNewParticipants], 2*time.Second); n != 0 {
		t.Errorf("the sixth Cc address received %d mails, want none", n)
	}
	if got := len(d.ticketByID(t, tk.ID).Participants); got != 1+ingest.MaxNewParticipants {
		t.Errorf("ticket has %d participants, want the requester and %d", got, ingest.MaxNewParticipants)
	}
}

// testThreadHijack: a stranger whose mail names a customer's Message-ID
// among 20,000 guesses in References opens a ticket of their own; the
// victim's ticket gains nothing and its people receive nothing.
func (d *obDesk) testThreadHijack(t *testing.T) {
	victim, colleague, stranger := d.customer(t, "victim"), d.customer(t, "colleague"), d.customer(t, "stranger")
	tk, _ := d.openTicket(t, d.addr, victim, colleague, "Our contract renewal")
	before := d.ticketByID(t, tk.ID)
	victimsID := before.Messages[0].MessageID
	guesses := make([]string, 0, 20000)
	for i := range 20000 {
		if i == 7 {
			guesses = append(guesses, victimsID)
			continue
		}
		guesses = append(guesses, fmt.Sprintf("<first-%06x@customer.test>", i))
	}
	attack := custMail{from: stranger, to: d.addr, subject: "Re: Our contract renewal", body: "Send me the contract.",
		references: strings.Join(guesses, "\r\n "), messageID: "<hijack-" + randomHex(4) + "@evil.test>"}
	d.stack.Deliver(t, d.addr, attack.raw())
	mine := d.waitTicket(t, stranger, 1)
	if mine[0].ID == tk.ID {
		t.Fatalf("the stranger's mail joined the victim's ticket %s", tk.Ref)
	}
	if n := len(d.mails(t, stranger, 1)); n != 1 {
		t.Errorf("stranger received %d mails, want only the thank-you of their own ticket", n)
	}
	after := d.ticketByID(t, tk.ID)
	if len(after.Messages) != len(before.Messages) || len(after.Participants) != len(before.Participants) {
		t.Errorf("victim's ticket went from %d messages/%d participants to %d/%d, want unchanged",
			len(before.Messages), len(before.Participants), len(after.Messages), len(after.Participants))
	}
	if n, m := d.quietCount(t, victim, 2*time.Second), d.quietCount(t, colleague, 0); n != 1 || m != 0 {
		t.Errorf("victim has %d mails (want the thank-you only), colleague %d (want none)", n, m)
	}
}
