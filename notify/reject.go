package notify

import (
	"cmp"
	"context"
	"fmt"
	"html"
	"slices"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// RejectionStore is what answering the sender of a rejected mail reads
// and writes: the ledger row, which carries the answer's state.
type RejectionStore interface {
	Inbound(ctx context.Context, id int64) (ticket.Inbound, error)
	// SettleRejectionAnswer records sent, suppressed or failed, with the
	// reason; an answer already settled keeps its state.
	SettleRejectionAnswer(ctx context.Context, id int64, state, reason string) error
	// CountRejectionAnswers counts the project's answers to rejected mail
	// queued at or after since (queued or sent), to recipient ("": anyone),
	// of rows before row before.
	CountRejectionAnswers(ctx context.Context, projectID int64, recipient string, since time.Time, before int64) (int, error)
}

// Rejecter answers the sender of a mail refused for its size, once, with
// a short mail that says the limit (GitLab's EmailTooLarge), through the
// project's SMTP server. The scheduler decides which rows get an answer
// (never automatic or no-reply senders) and claims each once; Deliver
// sends it.
type Rejecter struct {
	d       *Deliverer
	st      RejectionStore
	maxSize int64
}

// NewRejecter answers rejections through d's projects and connections;
// maxSize is limits.max_message_size in bytes, said in the mail.
func NewRejecter(d *Deliverer, st RejectionStore, maxSize int64) *Rejecter {
	return &Rejecter{d: d, st: st, maxSize: maxSize}
}

// Deliver sends the answer to rejected ledger row inboundID if it is
// queued (claimed) and not yet settled; otherwise it does nothing. The
// answer is suppressed, with the reason, when the sender is Unmailable or
// has reached a Cap, or the project its ceiling: each counts the
// automatic notifications and the answers to rejected mail together. Its
// errors are classified like Deliverer.Deliver's; the caller settles the
// answer as failed when it gives up.
func (r *Rejecter) Deliver(ctx context.Context, inboundID int64) error {
	in, err := r.st.Inbound(ctx, inboundID)
	if err != nil {
		return &Error{Step: "load rejected mail", Err: fmt.Errorf("inbound %d: %w", inboundID, err)}
	}
	if in.Outcome != ticket.OutcomeRejected || in.Answer != ticket.DeliveryQueued {
		return nil
	}
	p, ok := r.d.byID[in.ProjectID]
	if !ok {
		return permanentf("find project", "unknown project %q (id %d)", in.Project, in.ProjectID)
	}
	v, err := r.suppression(ctx, p, in)
	if err != nil {
		return err
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if v.reason != "" {
		if err := r.st.SettleRejectionAnswer(bctx, in.ID, ticket.DeliverySuppressed, v.reason); err != nil {
			return &Error{Step: "suppress", Err: err}
		}
		if r.d.onSuppressed != nil {
			r.d.onSuppressed(p.Key, v.cause)
		}
		r.d.log.Info("answer to rejected mail suppressed", "inbound", in.ID, "cause", v.cause, "reason", v.reason)
		return nil
	}
	out, err := r.render(p, in)
	if err != nil {
		return &Error{Step: "render", Permanent: true, Err: err}
	}
	m, err := r.d.message(out)
	if err != nil {
		return &Error{Step: "render", Permanent: true, Err: err}
	}
	if err := r.d.sign(p, m); err != nil {
		return err
	}
	c, err := r.d.conn(p)
	if err != nil {
		return err
	}
	if err := c.send(ctx, m); err != nil {
		return err
	}
	if err := r.st.SettleRejectionAnswer(bctx, in.ID, ticket.DeliverySent, ""); err != nil {
		return &Error{Step: "mark sent", Err: err}
	}
	r.d.log.Info("rejected mail answered", "inbound", in.ID, "project", p.Key, "message_id", in.AnswerMessageID)
	return nil
}

// suppression applies to an answer what the guard applies to automatic
// notifications, counting both kinds of mail.
func (r *Rejecter) suppression(ctx context.Context, p Project, in ticket.Inbound) (verdict, error) {
	to, ok := bareAddress(in.From)
	switch {
	case !ok:
		return verdict{CauseUnmailable, fmt.Sprintf("sender %q is not an address", in.From)}, nil
	case isDesk(to, r.d.desks):
		return verdict{CauseUnmailable, fmt.Sprintf("sender %s is a desk address", to)}, nil
	case noReply(to):
		return verdict{CauseUnmailable, fmt.Sprintf("sender %s is a no-reply or system address", to)}, nil
	}
	now := r.d.now()
	count := func(recipient string, kinds []ticket.NotificationKind, window time.Duration) (int, error) {
		var notes int
		var err error
		if recipient == "" {
			notes, err = r.d.store.CountProjectMail(ctx, p.ID, kinds, now.Add(-window), ticket.Notification{})
		} else {
			notes, err = r.d.store.CountNotifications(ctx, p.ID, recipient, kinds, now.Add(-window), ticket.Notification{})
		}
		if err != nil {
			return 0, &Error{Step: "check rate caps", Err: err}
		}
		answers, err := r.st.CountRejectionAnswers(ctx, p.ID, recipient, now.Add(-window), in.ID)
		if err != nil {
			return 0, &Error{Step: "check rate caps", Err: err}
		}
		return notes + answers, nil
	}
	caps := slices.Clone(r.d.caps)
	slices.SortFunc(caps, func(a, b Cap) int { return cmp.Compare(a.Window, b.Window) }) // the shortest window names the cap
	for _, c := range caps {
		if c.Window <= 0 {
			continue
		}
		n, err := count(to, automaticKinds, c.Window)
		if err != nil {
			return verdict{}, err
		}
		if n >= c.Max {
			return verdict{CauseRecipientCap, fmt.Sprintf("rate cap: %d automatic mails to %s in the last %s", n, to, formatWindow(c.Window))}, nil
		}
	}
	if r.d.ceiling > 0 {
		n, err := count("", automaticKinds, time.Hour)
		if err != nil {
			return verdict{}, err
		}
		if n >= r.d.ceiling {
			return verdict{CauseProjectCeiling, fmt.Sprintf("project ceiling: %d automatic mails from project %s in the last hour (at most %d)", n, p.Key, r.d.ceiling)}, nil
		}
	}
	return verdict{}, nil
}

// render builds the answer: From the desk, threaded onto the rejected
// mail, automatic (RFC 3834) and without a reply key: there is no ticket.
func (r *Rejecter) render(p Project, in ticket.Inbound) (*outgoing, error) {
	to, _ := bareAddress(in.From)
	from, ok := bareAddress(p.Address)
	if !ok {
		return nil, fmt.Errorf("project address %q is not an address", p.Address)
	}
	if !validMsgID(in.AnswerMessageID) {
		return nil, fmt.Errorf("answer Message-ID %q is not <local@domain>", in.AnswerMessageID)
	}
	subject := cmp.Or(in.Subject, "(no subject)")
	size := "too large"
	if in.Size > 0 {
		size = humanSize(in.Size)
	}
	text := fmt.Sprintf("Hello,\n\nyour message %q to %s could not be accepted: it is %s, and %s accepts messages of at most %s.\n\n"+
		"Please send it again without the large attachments, or share them as a link.\n\n-- \n%s\n",
		subject, from, size, cmp.Or(p.Name, from), humanSize(r.maxSize), cmp.Or(p.Name, from))
	out := &outgoing{
		FromName: p.Name, From: from, To: to, ReplyTo: from,
		Subject:   "Message too large: " + subject,
		MessageID: in.AnswerMessageID,
		Text:      text,
		HTML:      derivedHTML(html.EscapeString(text)),
		Headers: [][2]string{
			{"Auto-Submitted", "auto-replied"},
			{"X-Auto-Response-Suppress", "All"},
			{"X-Loop", from},
		},
	}
	if validMsgID(in.MessageID) {
		out.InReplyTo, out.References = in.MessageID, []string{in.MessageID}
	}
	return out, nil
}
