package ingest

import (
	"context"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// intakeID is the project row of the intake mailbox in these tests.
const intakeID = 99

func setupIntake(t *testing.T) *bundle {
	t.Helper()
	return setup(t, &Options{Intake: &Intake{ID: intakeID, Address: "incoming@intake.test"}})
}

func (b *bundle) processIntake(t *testing.T, raw string) (ticket.Committed, ticket.Delivery) {
	t.Helper()
	c, err := b.proc.Process(context.Background(), b.addTo(intakeID, ticket.IntakeKey, []byte(strings.ReplaceAll(raw, "\n", "\r\n"))))
	if err != nil {
		t.Fatalf("Process: %v", err)
	}
	return c, b.st.commits[len(b.st.commits)-1]
}

func TestProcessRoutesIntakeMail(t *testing.T) {
	t.Parallel()

	t.Run("a mail forwarded by Microsoft 365 opens a ticket on its desk and is answered", func(t *testing.T) {
		b := setupIntake(t)
		c, d := b.processIntake(t, "From: Alice <alice@customer.test>\nTo: team@customer.test\n"+
			"X-MS-Exchange-ForwardingLoop: help@other.test;a1b2c3d4\nX-MS-Exchange-Inbox-Rules-Loop: help@other.test\n"+
			"Delivered-To: incoming@intake.test\nMessage-ID: <o365@customer.test>\nSubject: VPN down\n\nHelp.\n")
		wantEqual(t, "outcome", c.Outcome, ticket.OutcomeTicketCreated)
		wantEqual(t, "desk of the delivery", d.ProjectID, int64(2))
		wantEqual(t, "Routed", d.Routed, true)
		wantEqual(t, "project of the result (metrics)", c.Project, "other")
		wantEqual(t, "MailDomain (the desk's)", d.MailDomain, "other.test")
		wantContains(t, "reason", d.Reason, "routed from the intake by X-MS-Exchange-ForwardingLoop: help@other.test")
		if len(d.Notify) != 1 || d.Notify[0].Kind != ticket.NotifyThankYou {
			t.Fatalf("Notify = %+v; want a thank-you: the Inbox-Rules-Loop naming the forwarding desk is no loop", d.Notify)
		}
	})

	t.Run("incoming+key@ opens a ticket on that desk", func(t *testing.T) {
		b := setupIntake(t)
		_, d := b.processIntake(t, "From: bob@customer.test\nTo: incoming+acme@intake.test\nMessage-ID: <sub@customer.test>\nSubject: Hi\n\nx\n")
		wantEqual(t, "desk", d.ProjectID, int64(1))
		wantEqual(t, "outcome", d.Outcome, ticket.OutcomeTicketCreated)
	})

	t.Run("a reply carrying a valid reply key goes to the key's ticket, whatever the headers say", func(t *testing.T) {
		b := setupIntake(t)
		key := b.keys.Sign("other", 13)
		_, d := b.processIntake(t, "From: carol@customer.test\nTo: support@acme.test\nReferences: "+
			ticket.ReplyReference("help@other.test", key)+"\nMessage-ID: <rk@customer.test>\nSubject: Re: x\n\nthanks\n")
		wantEqual(t, "desk", d.ProjectID, int64(2))
		wantEqual(t, "outcome", d.Outcome, ticket.OutcomeReplyAdded)
		wantEqual(t, "ticket", d.TicketID, int64(13))
		wantContains(t, "reason", d.Reason, "routed from the intake by reply key")
	})

	t.Run("a key signed for another desk than its ticket's does not route", func(t *testing.T) {
		b := setupIntake(t)
		forged := b.keys.Sign("acme", 13) // ticket 13 is other's
		c, _ := b.processIntake(t, "From: mallory@evil.test\nTo: someone@evil.test\nReferences: <"+forged+"@acme.test>\nMessage-ID: <f@evil.test>\nSubject: x\n\nx\n")
		wantEqual(t, "outcome", c.Outcome, ticket.OutcomeUnroutable)
	})

	t.Run("a mail that names no desk is unroutable, listing what it carried, and never answered", func(t *testing.T) {
		b := setupIntake(t)
		c, d := b.processIntake(t, "From: dave@customer.test\nTo: typo@acme.test\nCc: incoming@intake.test\n"+
			"Delivered-To: incoming@intake.test\nMessage-ID: <lost@customer.test>\nSubject: Where does this go\n\nx\n")
		wantEqual(t, "outcome", c.Outcome, ticket.OutcomeUnroutable)
		wantEqual(t, "project of the delivery (the intake's)", d.ProjectID, int64(intakeID))
		wantEqual(t, "Routed", d.Routed, false)
		if len(d.Notify) != 0 || d.NewTicket != nil || d.DedupKey != "" {
			t.Fatalf("unroutable delivery notifies %v, opens %v, dedups %q; want none of it", d.Notify, d.NewTicket, d.DedupKey)
		}
		wantContains(t, "reason", d.Reason, "it carried: typo@acme.test (To), incoming@intake.test (Delivered-To, Cc)")
		if d.Message == nil || d.Message.MessageID != "<lost@customer.test>" || d.Message.From != "dave@customer.test" {
			t.Fatalf("Message = %+v; want the ledger's Message-ID and From", d.Message)
		}
		wantEqual(t, "project of the result", c.Project, ticket.IntakeKey)
	})

	t.Run("mail of a desk's own mailbox is never routed elsewhere", func(t *testing.T) {
		b := setupIntake(t)
		_, d := b.process(t, []byte("From: erin@customer.test\r\nTo: help@other.test\r\nMessage-ID: <own@customer.test>\r\nSubject: x\r\n\r\nx\r\n"))
		wantEqual(t, "desk (the mailbox's)", d.ProjectID, int64(1))
		wantEqual(t, "Routed", d.Routed, false)
	})

	t.Run("mail from the intake address itself is our own", func(t *testing.T) {
		b := setupIntake(t)
		c, _ := b.processIntake(t, "From: incoming@intake.test\nTo: support@acme.test\nMessage-ID: <loop@intake.test>\nSubject: x\n\nx\n")
		wantEqual(t, "outcome", c.Outcome, ticket.OutcomeAutoReply)
	})
}
