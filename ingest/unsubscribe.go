package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/servicedesk/servicedesk/ticket"
)

// unsubscribe decides a mail to one of the project's unsubscribe
// addresses (desk+unsubscribe-{ticket}-{MAC}@, the mailto of our
// List-Unsubscribe header): ok is false when m is addressed to none, or
// when it is our own mail or a bounce (those are about mail we sent, not
// requests). Otherwise the mail is never a message on a ticket and never
// answered:
//   - a token signed for the sender (From, which DMARC protects) on a
//     ticket of the project: OutcomeUnsubscribed, the sender gets no more
//     mail on that ticket;
//   - any other token: ledger only (OutcomeAutoReply, no ticket), with
//     the reason. The From alone never unsubscribes anyone.
func (p *Processor) unsubscribe(ctx context.Context, proj Project, m *Mail, class Class, d *ticket.Delivery) (bool, error) {
	if p.links == nil || class == ClassOwn || class == ClassBounce {
		return false, nil
	}
	var (
		id    int64
		mac   string
		found bool
	)
	for _, list := range [][]string{m.To, m.Cc, m.Forwarded} {
		for _, a := range list {
			if found = MatchesAddress(a, proj.Address); found {
				if id, mac, found = ticket.FindUnsubscribeToken(a); found {
					break
				}
			}
		}
		if found {
			break
		}
	}
	if !found {
		return false, nil
	}
	refuse := func(why string) (bool, error) {
		d.Outcome, d.TicketID = ticket.OutcomeAutoReply, 0
		d.Message.Kind = ticket.KindAutoReply
		d.Reason = "unsubscribe address: " + why + "; nothing changed, not answered"
		return true, nil
	}
	sender := strings.ToLower(strings.TrimSpace(m.From))
	if sender == "" || !p.links.VerifyUnsubscribeToken(proj.Key, id, mac, sender) {
		return refuse(fmt.Sprintf("its token was not signed for the sender %q", sender))
	}
	t, err := p.st.TicketByID(ctx, id)
	switch {
	case err != nil && errors.Is(err, ticket.ErrNotFound):
		return refuse("its ticket does not exist")
	case err != nil:
		return false, fmt.Errorf("load ticket %d of an unsubscribe address: %w", id, err)
	case t.ID == 0 || t.ProjectID != proj.ID:
		return refuse("its ticket does not exist")
	}
	d.Outcome, d.TicketID, d.Unsubscribe = ticket.OutcomeUnsubscribed, t.ID, sender
	d.Message.TicketID = t.ID
	d.Reason = fmt.Sprintf("unsubscribe: %s asked for no more mail on %s (mailto)", sender,
		ticket.FormatRef(proj.Key, t.Number))
	return true, nil
}
