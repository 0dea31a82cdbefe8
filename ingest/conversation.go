package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/servicedesk/servicedesk/ticket"
)

// relay passes a reply from one of the ticket's people on to the others,
// as GitLab relays external participants' replies: one relay notification
// to the requester and each participant already on the ticket, never to
// the sender (From or Reply-To), a desk, an agent or a no-reply address.
// People this reply adds (Cc) get their new_participant notice instead.
// A reply whose From is not on the ticket (a forward through a reply key)
// is relayed to no one. Bouncing and unsubscribed recipients, the caps and
// the project's ceiling are the sender's (notify) to apply: what they stop
// shows on the ticket as suppressed, with the cause.
func (p *Processor) relay(ctx context.Context, d *ticket.Delivery, m *Mail) error {
	if m.From == "" {
		return nil
	}
	t, err := p.st.TicketByID(ctx, d.TicketID)
	switch {
	case err != nil && errors.Is(err, ticket.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("load ticket %d to relay a reply: %w", d.TicketID, err)
	}
	people := append([]string{t.Requester}, t.Participants...)
	if !slices.ContainsFunc(people, func(a string) bool { return strings.EqualFold(a, m.From) }) {
		return nil
	}
	senders := append([]string{m.From, m.Sender}, m.ReplyTo...)
	var to []string
	for _, a := range people {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "" || slices.Contains(to, a) || slices.ContainsFunc(senders, func(s string) bool { return strings.EqualFold(s, a) }) ||
			p.isDesk(a) || p.isAgent(a) || NoReply(a) {
			continue
		}
		to = append(to, a)
	}
	for _, a := range to {
		d.Notify = append(d.Notify, ticket.Notification{Kind: ticket.NotifyRelay, To: a})
	}
	if len(to) > 0 {
		d.Reason += fmt.Sprintf("; relayed to %d participants", len(to))
	}
	return nil
}

// tellAgents is one agent_notice to each of the project's NotifyAgents
// about message m (a new ticket or a customer's reply), unless an agent
// wrote it.
func tellAgents(proj Project, m *Mail) []ticket.Notification {
	if slices.ContainsFunc(proj.NotifyAgents, func(a string) bool { return strings.EqualFold(a, m.From) }) {
		return nil
	}
	var out []ticket.Notification
	for _, a := range proj.NotifyAgents {
		out = append(out, ticket.Notification{Kind: ticket.NotifyAgent, To: a})
	}
	return out
}

// isAgent reports whether addr is one of any project's NotifyAgents.
func (p *Processor) isAgent(addr string) bool {
	return slices.ContainsFunc(p.agents, func(a string) bool { return MatchesAddress(addr, a) })
}
