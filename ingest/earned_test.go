package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/servicedesk/servicedesk/ticket"
)

// Ticket 12 of the test setup belongs to anna.meyer@customer.test with bob
// as participant. Its Message-IDs: the customer's first mail (an Outlook
// ID, not ours) and two of our own mails.
const (
	customersMessageID = "<am0pr07mb4456a1b2c3d4e5f6@am0pr07mb4456.eurprd07.prod.outlook.test>"
	ourMessageID       = "<thank-you-12@acme.test>"
)

// TestThreadingIsEarned: In-Reply-To and References thread a mail onto a
// ticket only through a Message-ID we sent, or when the sender is already
// on the ticket; a stranger who knows or guesses a customer's Message-ID
// opens a ticket of their own and reaches nobody on the victim's.
func TestThreadingIsEarned(t *testing.T) {
	t.Parallel()
	guesses := func(n int, at int, id string) string {
		var b strings.Builder
		for i := range n {
			if i == at {
				b.WriteString(id + " ")
				continue
			}
			fmt.Fprintf(&b, "<guess-%d@eurprd07.prod.outlook.test> ", i)
		}
		return b.String()
	}
	tests := []struct {
		name       string
		from       string
		headers    string
		wantTicket int64
		wantReason string
	}{
		{"stranger naming the customer's Message-ID opens a new ticket", "mallory@evil.test",
			"In-Reply-To: " + customersMessageID + "\n", 0, "sender is not on that ticket"},
		{"stranger's 20,000 guesses in References open a new ticket", "mallory@evil.test",
			"References: " + guesses(20000, 3, customersMessageID) + "\n", 0, "sender is not on that ticket"},
		{"a participant naming the customer's Message-ID is threaded", "Bob <bob@customer.test>",
			"In-Reply-To: " + customersMessageID + "\n", 12, "sender is on the ticket"},
		{"the requester's follow-up to their own mail is threaded", "anna.meyer@customer.test",
			"References: " + customersMessageID + "\n", 12, "sender is on the ticket"},
		{"a stranger naming a participant in Reply-To is not", "mallory@evil.test\nReply-To: bob@customer.test",
			"In-Reply-To: " + customersMessageID + "\n", 0, "sender is not on that ticket"},
		{"a stranger naming a participant in Sender is not", "mallory@evil.test\nSender: anna.meyer@customer.test",
			"In-Reply-To: " + customersMessageID + "\n", 0, "sender is not on that ticket"},
		{"anyone answering a mail of ours is threaded", "someone@else.test",
			"In-Reply-To: " + ourMessageID + "\n", 12, "our Message-ID"},
		{"our Message-ID among the first 50 References is read", "someone@else.test",
			"References: " + guesses(200, 49, ourMessageID) + "\n", 12, "our Message-ID"},
		{"References past the first 50 are not read", "someone@else.test",
			"References: " + guesses(200, 50, ourMessageID) + "\n", 0, "new ticket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			raw := "From: " + tt.from + "\nTo: support@acme.test\n" + tt.headers +
				"Subject: Re: printer\nMessage-ID: <m-" + fmt.Sprint(len(tt.name)) + "@x.test>\n\nhello\n"
			_, d := b.process(t, []byte(raw))
			wantContains(t, "Reason", d.Reason, tt.wantReason)
			wantEqual(t, "TicketID", d.TicketID, tt.wantTicket)
			if tt.wantTicket == 0 {
				wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
				for _, n := range d.Notify {
					if n.Kind != ticket.NotifyThankYou || n.To != d.NewTicket.Requester {
						t.Errorf("notification %+v: a stranger's new ticket mails only its own requester", n)
					}
				}
				return
			}
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
		})
	}
}

// TestParticipantsAreBounded: one mail puts at most MaxNewParticipants
// addresses on a ticket and a ticket holds at most MaxParticipants; a
// reply's Cc bomb sends at most MaxNewParticipants notices, and the ledger
// says what was left out.
func TestParticipantsAreBounded(t *testing.T) {
	t.Parallel()
	if MaxParticipants != 10 || MaxNewParticipants != 5 || MaxThreadReferences != 50 {
		t.Fatalf("limits = %d/%d/%d, want the documented 10/5/50", MaxParticipants, MaxNewParticipants, MaxThreadReferences)
	}
	cc := func(n int) string {
		addrs := make([]string, n)
		for i := range addrs {
			addrs[i] = fmt.Sprintf("victim%d@spam.test", i)
		}
		return strings.Join(addrs, ", ")
	}

	t.Run("a reply with 300 Cc adds 5 and notifies 5", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		raw := "From: anna.meyer@customer.test\nTo: support@acme.test\nCc: " + cc(300) +
			"\nIn-Reply-To: " + ourMessageID + "\nSubject: Re: printer\nMessage-ID: <bomb@customer.test>\n\nBuy now!\n"
		_, d := b.process(t, []byte(raw))
		wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
		wantEqual(t, "participants added", len(d.Participants), MaxNewParticipants)
		wantEqual(t, "notices", len(recipients(d.Notify, ticket.NotifyNewParticipant)), MaxNewParticipants)
		wantContains(t, "Reason", d.Reason, "participants: added 5 of ")
	})

	t.Run("a full ticket takes no one more", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		full := b.st.tickets[12]
		for i := len(full.Participants); i < MaxParticipants; i++ {
			full.Participants = append(full.Participants, fmt.Sprintf("p%d@customer.test", i))
		}
		b.st.tickets[12] = full
		raw := "From: anna.meyer@customer.test\nTo: support@acme.test\nCc: " + cc(3) +
			"\nIn-Reply-To: " + ourMessageID + "\nSubject: Re: printer\nMessage-ID: <full@customer.test>\n\nmore\n"
		_, d := b.process(t, []byte(raw))
		wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
		wantEqual(t, "participants added", len(d.Participants), 0)
		wantEqual(t, "notices", len(recipients(d.Notify, ticket.NotifyNewParticipant)), 0)
		wantContains(t, "Reason", d.Reason, "added 0 of 3")
	})

	t.Run("a new ticket with 300 Cc keeps its requester and 5 others", func(t *testing.T) {
		t.Parallel()
		b := setup(t, nil)
		raw := "From: erin@customer.test\nTo: support@acme.test\nCc: " + cc(300) +
			"\nSubject: hello\nMessage-ID: <new-bomb@customer.test>\n\nBuy now!\n"
		_, d := b.process(t, []byte(raw))
		wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeTicketCreated)
		wantEqual(t, "participants", len(d.Participants), 1+MaxNewParticipants)
		wantEqual(t, "first participant", d.Participants[0], "erin@customer.test")
		wantEqual(t, "only the thank-you", len(d.Notify), 1)
		wantEqual(t, "thank-you to", d.Notify[0].To, "erin@customer.test")
		wantContains(t, "Reason", d.Reason, "participants: kept 5 of ")
	})
}

// TestOnlyTrustedRepliesAddPeople: a reply threaded because its From names
// someone on the ticket (which anyone can write) adds its message but none
// of its Cc; a reply through a reply key or a Message-ID of ours adds them,
// and asks the store to hold the ticket's ceiling under its lock.
func TestOnlyTrustedRepliesAddPeople(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		threading  string
		wantAdded  int
		wantReason string
	}{
		{"threaded by From on the ticket: no one added", "In-Reply-To: " + customersMessageID + "\n", 0, "Cc not added"},
		{"threaded by our Message-ID: Cc added", "In-Reply-To: " + ourMessageID + "\n", 2, "our Message-ID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, nil)
			raw := "From: anna.meyer@customer.test\nTo: support@acme.test\nCc: spy1@evil.test, spy2@evil.test\n" + tt.threading +
				"Subject: Re: printer\nMessage-ID: <people@customer.test>\n\nhello\n"
			_, d := b.process(t, []byte(raw))
			wantEqual(t, "Outcome", d.Outcome, ticket.OutcomeReplyAdded)
			wantEqual(t, "participants added", len(d.Participants), tt.wantAdded)
			wantEqual(t, "notices", len(recipients(d.Notify, ticket.NotifyNewParticipant)), tt.wantAdded)
			wantContains(t, "Reason", d.Reason, tt.wantReason)
			if tt.wantAdded > 0 {
				wantEqual(t, "MaxParticipants for the store", d.MaxParticipants, MaxParticipants)
			}
		})
	}
}
