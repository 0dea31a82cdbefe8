package ingest

import (
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// recipients are the addresses of the notifications of kind, in order.
func recipients(ns []ticket.Notification, kind ticket.NotificationKind) []string {
	var out []string
	for _, n := range ns {
		if n.Kind == kind {
			out = append(out, n.To)
		}
	}
	return out
}

// withAgents is a processor whose project acme tells agents of its mail.
func withAgents(t *testing.T, agents ...string) *bundle {
	t.Helper()
	b := setup(t, nil)
	projects := append([]Project(nil), testProjects...)
	projects[0].NotifyAgents = agents
	b.proc = NewProcessor(b.st, b.keys, projects, &Options{Now: b.proc.now})
	// Ticket 12: Anna asked, Bob and Carol are on it.
	tk := b.st.tickets[12]
	tk.Participants = []string{"anna.meyer@customer.test", "bob@customer.test", "carol@customer.test", "noreply@customer.test"}
	b.st.tickets[12] = tk
	return b
}

func TestProcessRelaysAReplyToTheOtherParticipants(t *testing.T) {
	t.Parallel()
	reply := func(from, extra string) string {
		return "From: " + from + "\nTo: support@acme.test\n" + extra +
			"In-Reply-To: <thank-you-12@acme.test>\nSubject: RE: [acme#12] printer\nMessage-ID: <r-" + from + "@customer.test>\n\nIt works again.\n"
	}
	tests := []struct {
		name      string
		raw       string
		wantRelay []string
	}{
		{"the requester's reply goes to the participants, not back to her",
			reply("Anna <anna.meyer@customer.test>", ""), []string{"bob@customer.test", "carol@customer.test"}},
		{"a participant's reply goes to the requester and the others",
			reply("bob@customer.test", ""), []string{"anna.meyer@customer.test", "carol@customer.test"}},
		{"never to the address it asks replies to",
			reply("bob@customer.test", "Reply-To: Carol <carol@customer.test>\n"), []string{"anna.meyer@customer.test"}},
		{"people it adds by Cc get their notice, not the relay",
			reply("Anna <anna.meyer@customer.test>", "Cc: dave@customer.test\n"), []string{"bob@customer.test", "carol@customer.test"}},
		{"a reply from someone not on the ticket is relayed to no one",
			reply("mallory@elsewhere.test", ""), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := withAgents(t)
			_, d := b.process(t, []byte(tt.raw))
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
			wantList(t, "relayed to", recipients(d.Notify, ticket.NotifyRelay), tt.wantRelay...)
		})
	}
	t.Run("automatic mail on the ticket is relayed to no one", func(t *testing.T) {
		t.Parallel()
		b := withAgents(t, "agent@acme-staff.test")
		_, d := b.process(t, []byte("From: bob@customer.test\nTo: support@acme.test\nAuto-Submitted: auto-replied\n"+
			"In-Reply-To: <thank-you-12@acme.test>\nSubject: Out of office\nMessage-ID: <oof-bob@customer.test>\n\nAway.\n"))
		wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeAutoReply)
		wantEqual(t, "notifications", len(d.Notify), 0)
	})
}

func TestProcessTellsAgents(t *testing.T) {
	t.Parallel()
	t.Run("of a new ticket, never making them participants", func(t *testing.T) {
		t.Parallel()
		b := withAgents(t, "agent@acme-staff.test", "lead@acme-staff.test")
		_, d := b.process(t, []byte("From: Erin <erin@customer.test>\nTo: support@acme.test\nCc: agent@acme-staff.test, frank@customer.test\n"+
			"Subject: Help\nMessage-ID: <new-erin@customer.test>\n\nPlease.\n"))
		wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
		wantList(t, "thank-you", recipients(d.Notify, ticket.NotifyThankYou), "erin@customer.test")
		wantList(t, "agents told", recipients(d.Notify, ticket.NotifyAgent), "agent@acme-staff.test", "lead@acme-staff.test")
		wantList(t, "participants", d.Participants, "erin@customer.test", "frank@customer.test")
	})
	t.Run("of a customer's reply, and the relay never reaches them", func(t *testing.T) {
		t.Parallel()
		b := withAgents(t, "agent@acme-staff.test")
		tk := b.st.tickets[12]
		tk.Participants = append(tk.Participants, "agent@acme-staff.test") // put there before it was an agent
		b.st.tickets[12] = tk
		_, d := b.process(t, []byte("From: bob@customer.test\nTo: support@acme.test\nIn-Reply-To: <thank-you-12@acme.test>\n"+
			"Subject: RE: [acme#12] printer\nMessage-ID: <r2-bob@customer.test>\n\nStill works.\n"))
		wantList(t, "agents told", recipients(d.Notify, ticket.NotifyAgent), "agent@acme-staff.test")
		wantList(t, "relayed to", recipients(d.Notify, ticket.NotifyRelay), "anna.meyer@customer.test", "carol@customer.test")
	})
	t.Run("not of what an agent wrote", func(t *testing.T) {
		t.Parallel()
		b := withAgents(t, "agent@acme-staff.test")
		_, d := b.process(t, []byte("From: agent@acme-staff.test\nTo: support@acme.test\n"+
			"Subject: Internal test\nMessage-ID: <new-agent@acme-staff.test>\n\nTest.\n"))
		wantList(t, "agents told", recipients(d.Notify, ticket.NotifyAgent))
	})
	t.Run("no one when the project has no agents", func(t *testing.T) {
		t.Parallel()
		b := withAgents(t)
		_, d := b.process(t, []byte("From: Erin <erin@customer.test>\nTo: support@acme.test\nSubject: Help\nMessage-ID: <new-erin2@customer.test>\n\nPlease.\n"))
		wantList(t, "agents told", recipients(d.Notify, ticket.NotifyAgent))
	})
}

func TestEnvelopeAutomatic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, subject string
		automatic     bool
	}{
		{"alice@customer.test", "Scans of the contract", false},
		{"alice@customer.test", "Re: [acme#12] the video", false},
		{"", "Scans", true},
		{"noreply@shop.test", "Your invoice", true},
		{"MAILER-DAEMON@mx.test", "Scans", true},
		{"alice@customer.test", "Automatic reply: Scans", true},
		{"alice@customer.test", "Out of Office: back Monday", true},
		{"postmaster@mx.test", "Undeliverable: Scans", true},
		{"bob@customer.test", "Delivery Status Notification (Failure)", true},
		{"bob@customer.test", "Mail delivery failed: returning message to sender", true},
	}
	for _, tt := range tests {
		t.Run(tt.from+" "+tt.subject, func(t *testing.T) {
			t.Parallel()
			if got := EnvelopeAutomatic(tt.from, tt.subject); (got != "") != tt.automatic {
				t.Errorf("EnvelopeAutomatic(%q, %q) = %q; want automatic %v", tt.from, tt.subject, got, tt.automatic)
			}
		})
	}
}
