package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/servicedesk/servicedesk/internal/mailstack"
	"github.com/servicedesk/servicedesk/ticket"
)

// TestConversation is issue 14 item 3 on the real stack (Dovecot,
// OpenSMTPD, the binary, SQLite): every mail the desk sends is on the
// ticket with its delivery status; a participant's reply is relayed to the
// others, never back to its sender; the project's notify_agents hear of
// the new ticket and of the reply; a recipient OpenSMTPD refuses shows as
// failed with the server's reason.
func TestConversation(t *testing.T) {
	t.Parallel()
	stack := mailstack.Start(t)
	d := startOutboundDesk(t, stack, backends[0], false)
	d.tag = "conv"
	agent := d.customer(t, "agent")
	d.withAgents(t, agent)

	alice, bob := d.customer(t, "alice"), d.customer(t, "bob")
	ivan := "ivan-conv@" + mailstack.RejectDomain
	first := custMail{from: alice, to: d.addr, cc: bob + ", " + ivan, subject: "Printer on fire",
		body: "The printer on floor 3 is on fire.", messageID: "<conv-first-" + randomHex(6) + "@customer.test>"}
	d.stack.Deliver(t, d.addr, first.raw())
	tk := d.waitTicket(t, alice, 1)[0]
	thanks := d.mails(t, alice, 1)[0]

	t.Run("the thank-you is on the ticket, sent, with the text the customer got", func(t *testing.T) {
		m := d.waitOutbound(t, tk, ticket.KindThankYou, func(m ticket.Message) bool {
			return len(m.Delivery) == 1 && m.Delivery[0].Status == ticket.DeliverySent
		})
		if !slices.Equal(m.To, []string{alice}) || m.Delivery[0].To != alice || m.Delivery[0].MessageID != thanks.GetHeader("Message-Id") {
			t.Errorf("thank_you message = %+v; want it to alice, with the Message-ID of the mail she got (%s)", m, thanks.GetHeader("Message-Id"))
		}
		if m.Subject != thanks.GetHeader("Subject") || !strings.Contains(m.Text, "The printer on floor 3 is on fire.") {
			t.Errorf("thank_you message says %q / %.200q; want what alice received (%q)", m.Subject, m.Text, thanks.GetHeader("Subject"))
		}
		var api struct {
			Messages []struct {
				Kind     string `json:"kind"`
				Delivery []struct{ To, Status string }
			} `json:"messages"`
		}
		if err := d.api(fmt.Sprintf("/api/v1/projects/acme/tickets/%d", tk.Number), &api); err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(api.Messages, func(m struct {
			Kind     string `json:"kind"`
			Delivery []struct{ To, Status string }
		}) bool {
			return m.Kind == "thank_you"
		})
		if i < 0 || len(api.Messages[i].Delivery) != 1 || api.Messages[i].Delivery[0].Status != "sent" {
			t.Errorf("ticket JSON messages = %+v; want a thank_you with delivery [{to: alice, status: sent}]", api.Messages)
		}
	})

	// Bob, in Cc, answers everyone's mail; he sends it to the desk only.
	reply := custMail{from: bob, to: d.addr, subject: "Re: Printer on fire", body: "It is out now, I used the extinguisher.",
		messageID: "<conv-bob-" + randomHex(6) + "@customer.test>", inReplyTo: first.messageID, references: first.messageID}
	d.stack.Deliver(t, d.addr, reply.raw())

	t.Run("the requester receives the participant's reply, relayed", func(t *testing.T) {
		got := d.mails(t, alice, 2)
		relay := got[len(got)-1]
		if !strings.Contains(relay.Text, bob+" wrote:") || !strings.Contains(relay.Text, "It is out now, I used the extinguisher.") {
			t.Fatalf("alice's second mail: %q\n%.400s\nwant bob's reply, relayed", relay.GetHeader("Subject"), relay.Text)
		}
		if !strings.Contains(relay.GetHeader("Subject"), "["+tk.Ref+"]") || relay.GetHeader("In-Reply-To") != reply.messageID ||
			len(ticket.FindReplyKeys(relay.GetHeader("Reply-To"))) != 1 || !strings.Contains(relay.GetHeader("References"), first.messageID) {
			t.Errorf("relay headers: Subject %q, In-Reply-To %q, Reply-To %q, References %q; want it threaded like a note",
				relay.GetHeader("Subject"), relay.GetHeader("In-Reply-To"), relay.GetHeader("Reply-To"), relay.GetHeader("References"))
		}
	})

	t.Run("an SMTP failure shows as failed, with the server's reason, on the message", func(t *testing.T) {
		m := d.waitOutbound(t, tk, ticket.Kind(ticket.NotifyRelay), func(m ticket.Message) bool {
			st := deliveryStatus(m)
			return st[alice].Status == ticket.DeliverySent && st[ivan].Status == ticket.DeliveryFailed
		})
		if r := deliveryStatus(m)[ivan]; !strings.Contains(r.Reason, "550") {
			t.Errorf("relay to %s: %+v; want failed with OpenSMTPD's 550", ivan, r)
		}
		if _, ok := deliveryStatus(m)[bob]; ok {
			t.Errorf("relay message %+v lists bob, who wrote the reply", m)
		}
		out, err := d.run("tickets", "show", tk.Ref)
		if err != nil || !strings.Contains(out, "[to "+alice+": sent]") || !strings.Contains(out, "[to "+ivan+": failed (") {
			t.Errorf("tickets show %s = %v\n%s\nwant each recipient's delivery", tk.Ref, err, out)
		}
	})

	t.Run("the agent is told of the new ticket and of the reply", func(t *testing.T) {
		got := d.mails(t, agent, 2)
		if len(got) != 2 {
			t.Fatalf("agent has %d mails, want 2", len(got))
		}
		path := fmt.Sprintf("/api/v1/projects/acme/tickets/%d", tk.Number)
		// Two send tasks deliver them: either may arrive first.
		for _, want := range []string{"New ticket " + tk.Ref + " from " + alice, "Reply on " + tk.Ref + " from " + bob} {
			if !slices.ContainsFunc(got, func(m *enmime.Envelope) bool {
				return strings.Contains(m.Text, want) && strings.Contains(m.Text, path)
			}) {
				t.Errorf("no agent's mail says %q with the ticket's API path %s; the mails: %.400q / %.400q", want, path, got[0].Text, got[1].Text)
			}
		}
		m := d.waitOutbound(t, tk, ticket.Kind(ticket.NotifyAgent), func(m ticket.Message) bool { return true })
		if !m.Internal {
			t.Errorf("agent_notice message %+v; want it internal", m)
		}
		if slices.Contains(d.ticketByID(t, tk.ID).Participants, agent) {
			t.Errorf("the agent became a participant of %s", tk.Ref)
		}
	})

	t.Run("the replier gets nothing back", func(t *testing.T) {
		if n := d.quietCount(t, bob, 3*time.Second); n != 0 {
			t.Errorf("bob has %d mails, want none: his own reply is never relayed back", n)
		}
	})

	// Until the fetch records the envelope of mail too large to download,
	// the rejected rows are written here with their From, as it will.
	t.Run("the sender of a too-large mail is answered once, saying the limit", func(t *testing.T) {
		ps, err := d.st.Projects(t.Context())
		if err != nil || len(ps) == 0 {
			t.Fatalf("projects: %v %v", ps, err)
		}
		carol := d.customer(t, "carol")
		reject := func(uid uint32, from, subject string) int64 {
			id, _, err := d.st.RecordFetched(t.Context(), ticket.Inbound{ProjectID: ps[0].ID, UIDValidity: 4242, UID: uid,
				Size: 30 << 20, From: from, Subject: subject, MessageID: fmt.Sprintf("<big-%d-%s@customer.test>", uid, randomHex(4)),
				Outcome: ticket.OutcomeRejected, Reason: "message is 31457280 bytes, larger than the limit of 26214400 bytes"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return id
		}
		human, auto := reject(1, carol, "Video of the fault"), reject(2, carol, "Automatic reply: Video of the fault")
		eventually(t, 60*time.Second, "the answers settled", func() (bool, string) {
			h, _ := d.st.Inbound(t.Context(), human)
			a, _ := d.st.Inbound(t.Context(), auto)
			return h.Answer == ticket.DeliverySent && a.Answer == ticket.DeliverySuppressed, fmt.Sprintf("%q / %q", h.Answer, a.Answer)
		})
		got := d.mails(t, carol, 1)
		if n := d.quietCount(t, carol, 5*time.Second); n != 1 {
			t.Fatalf("carol has %d mails, want the one answer to her human mail", n)
		}
		if s := got[0].GetHeader("Subject"); s != "Message too large: Video of the fault" || !strings.Contains(got[0].Text, "at most 25.0 MB") ||
			got[0].GetHeader("Auto-Submitted") != "auto-replied" {
			t.Errorf("answer %q (Auto-Submitted %q):\n%s\nwant the limit said, marked automatic", s, got[0].GetHeader("Auto-Submitted"), got[0].Text)
		}
	})
}

// withAgents restarts the desk with notify_agents for project acme, and
// the outbox sweep (which also answers rejected mail) every 2 seconds.
func (d *obDesk) withAgents(t *testing.T, agents ...string) {
	t.Helper()
	if err := d.proc.stop(t); err != nil {
		t.Fatalf("stop serve: %v", err)
	}
	cfg, err := os.ReadFile(d.config)
	if err != nil {
		t.Fatal(err)
	}
	smtp := "    smtp: {host: "
	i := strings.Index(string(cfg), smtp)
	if i < 0 {
		t.Fatal("the harness's config has no smtp line for acme")
	}
	patched := string(cfg[:i]) + "    notify_agents: [" + strings.Join(agents, ", ") + "]\n" + string(cfg[i:])
	patched = strings.Replace(patched, "outbox_sweep: 30s", "outbox_sweep: 2s", 1)
	if err := os.WriteFile(d.config, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	d.proc = d.serve()
}

// waitOutbound waits for the ticket's outbound message of kind for which
// ok holds.
func (d *obDesk) waitOutbound(t *testing.T, tk ticket.Ticket, kind ticket.Kind, ok func(ticket.Message) bool) ticket.Message {
	t.Helper()
	var found ticket.Message
	eventually(t, 60*time.Second, fmt.Sprintf("the %s message on %s", kind, tk.Ref), func() (bool, string) {
		var seen []string
		for _, m := range d.ticketByID(t, tk.ID).Messages {
			if m.Direction == ticket.DirectionOutbound && m.Kind == kind {
				if ok(m) {
					found = m
					return true, ""
				}
				seen = append(seen, fmt.Sprintf("%+v", m.Delivery))
			}
		}
		return false, fmt.Sprintf("%s messages with deliveries %v", kind, seen)
	})
	return found
}

// deliveryStatus is a message's delivery by recipient.
func deliveryStatus(m ticket.Message) map[string]ticket.Recipient {
	out := map[string]ticket.Recipient{}
	for _, r := range m.Delivery {
		out[r.To] = r
	}
	return out
}
