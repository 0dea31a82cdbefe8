package notify

import (
	"cmp"
	"context"
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// stateSuppressed is the state the store gives a notification that was not
// sent on purpose (store.NotificationSuppressed; package ticket has no
// constant for it). Deliver treats it like sent: nothing more to do.
const stateSuppressed = ticket.NotificationState("suppressed")

// noReplyLocal matches local parts that must never be mailed: system and
// role accounts, no-reply addresses and bounce handlers. It is the rule of
// ingest.NoReply, kept here so that the adapters do not import each other.
var noReplyLocal = regexp.MustCompile(`^(mailer-daemon|postmaster|abuse|root|nobody|daemon|listserv|majordomo|` +
	`(no|do[-_.]?not|dont)[-_.]?reply.*|.*[-_.]no[-_.]?reply|bounces?([-_.].*)?|notifications?[-_.]no[-_.]?reply.*)$`)

// Unmailable reports whether mail to addr must never be sent: anything
// that is not an address, system and role accounts (mailer-daemon,
// postmaster, abuse, root), no-reply and do-not-reply addresses, bounce
// handlers, and any of deskAddresses or their sub-addresses (mail to a desk
// would open a ticket from our own mail). Case is ignored; addr may carry a
// display name ("Alice <alice@example.test>").
func Unmailable(addr string, deskAddresses []string) bool {
	a, ok := bareAddress(addr)
	return !ok || noReply(a) || isDesk(a, deskAddresses)
}

// bareAddress gives the lower-cased address of addr, false when addr is
// not an address.
func bareAddress(addr string) (string, bool) {
	addr = strings.TrimSpace(addr)
	if pa, err := mail.ParseAddress(addr); err == nil {
		addr = pa.Address
	}
	addr = strings.ToLower(addr)
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(addr, " <>\"") {
		return "", false
	}
	return addr, true
}

// noReply reports whether the bare, lower-cased addr is a system, role or
// no-reply address.
func noReply(addr string) bool {
	local, _, _ := strings.Cut(addr, "@")
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	return noReplyLocal.MatchString(local)
}

// isDesk reports whether the bare, lower-cased addr is one of desks or a
// sub-address of one (support+anything@example.test).
func isDesk(addr string, desks []string) bool {
	local, domain, _ := strings.Cut(addr, "@")
	if base, _, tagged := strings.Cut(local, "+"); tagged {
		local = base
	}
	for _, desk := range desks {
		d, ok := bareAddress(desk)
		if !ok {
			continue
		}
		dl, dd, _ := strings.Cut(d, "@")
		if base, _, tagged := strings.Cut(dl, "+"); tagged {
			dl = base
		}
		if dl == local && dd == domain {
			return true
		}
	}
	return false
}

// Cap is one per-recipient limit on automatic mail: at most Max automatic
// notifications to one recipient within one project in any Window. Every
// notification queued in the window counts, whether sent, pending or
// itself suppressed, so a mail loop stays cut until it has been quiet for
// a whole window. Max 0 blocks all automatic mail; a Window of 0 or less
// disables the cap.
type Cap struct {
	Window time.Duration
	Max    int
}

// DefaultCaps are the caps used when Options.Caps is nil: at most 3
// automatic mails to one recipient in 10 minutes (FreeScout's limit), 10 in
// an hour and 30 in a day, per project. A person writing a new ticket every
// few minutes still gets the first thank-yous; an auto-responder that
// answers each of our mails with a new one gets 3 and then nothing.
func DefaultCaps() []Cap {
	return []Cap{
		{Window: 10 * time.Minute, Max: 3},
		{Window: time.Hour, Max: 10},
		{Window: 24 * time.Hour, Max: 30},
	}
}

// automaticKinds are the notifications no agent wrote: they are capped
// per recipient. A note is an agent's reply and is never capped. A relayed
// reply is a customer's words, mailed on by the desk on its own: capped,
// so that two auto-responders on one ticket cannot relay each other.
var automaticKinds = []ticket.NotificationKind{
	ticket.NotifyThankYou, ticket.NotifyClosed, ticket.NotifyReopened, ticket.NotifyNewParticipant,
	ticket.NotifyRelay,
}

// ceilingKinds are the notifications the project's ceiling counts for a
// notice to its agents: the automatic ones and the agents' own. Agents'
// notices are not capped per recipient (an agent of a busy desk gets one
// per ticket), but a flood of new tickets cannot make the desk mail its
// agents without end; customers' mail is counted without them, so that
// the notices never use up the customers' share.
var ceilingKinds = append(slices.Clone(automaticKinds), ticket.NotifyAgent)

// Cause says why a notification was not mailed; it labels
// servicedesk_notifications_suppressed_total.
type Cause string

const (
	CauseUnmailable     Cause = "unmailable"      // a no-reply, system or desk address
	CauseBouncing       Cause = "bouncing"        // the recipient bounces on the ticket
	CauseRecipientCap   Cause = "recipient_cap"   // a per-recipient Cap is reached
	CauseProjectCeiling Cause = "project_ceiling" // the project's hourly ceiling is reached
)

// verdict is why a notification must not be mailed; the zero verdict lets
// it go.
type verdict struct {
	cause  Cause
	reason string // for the store and the log
}

// suppression says why n must not be mailed (the zero verdict when it may
// be). Errors are the store's, temporary.
func (d *Deliverer) suppression(ctx context.Context, p Project, n ticket.Notification) (verdict, error) {
	to, ok := bareAddress(n.To)
	if !ok {
		return verdict{}, nil // render refuses it, permanently: an operator should see it
	}
	switch {
	case isDesk(to, d.desks):
		return verdict{CauseUnmailable, fmt.Sprintf("recipient %s is a desk address", to)}, nil
	case noReply(to):
		return verdict{CauseUnmailable, fmt.Sprintf("recipient %s is a no-reply or system address", to)}, nil
	}
	bouncing, err := d.store.BouncingRecipients(ctx, n.TicketID, d.now())
	if err != nil {
		return verdict{}, &Error{Step: "check bounces", Err: fmt.Errorf("ticket %d: %w", n.TicketID, err)}
	}
	if slices.Contains(bouncing, to) {
		return verdict{CauseBouncing, fmt.Sprintf("recipient %s bounces on this ticket", to)}, nil
	}
	if n.Kind == ticket.NotifyAgent {
		reason, err := d.ceilinged(ctx, p, n)
		return verdict{CauseProjectCeiling, reason}, err
	}
	if !slices.Contains(automaticKinds, n.Kind) {
		return verdict{}, nil
	}
	if reason, err := d.capped(ctx, p, n, to); err != nil || reason != "" {
		return verdict{CauseRecipientCap, reason}, err
	}
	reason, err := d.ceilinged(ctx, p, n)
	return verdict{CauseProjectCeiling, reason}, err
}

// DefaultProjectCeiling is the default of Options.ProjectCeiling: at most
// 1,000 automatic mails from one project in any hour.
const DefaultProjectCeiling = 1000

// ceilinged applies the project's hourly ceiling to an automatic
// notification: the project's automatic mails queued in the hour before
// this one, that went out or may still go out, to anyone. One inbound
// flood (new tickets from a spam run, Cc bombs on many tickets) cannot make
// the desk send more than that; what is over it is suppressed with the
// reason and counted in servicedesk_notifications_suppressed_total.
func (d *Deliverer) ceilinged(ctx context.Context, p Project, n ticket.Notification) (string, error) {
	if d.ceiling <= 0 {
		return "", nil
	}
	n = queuedAt(n, d.now)
	kinds := automaticKinds
	if n.Kind == ticket.NotifyAgent {
		kinds = ceilingKinds
	}
	before, err := d.store.CountProjectMail(ctx, p.ID, kinds, n.CreatedAt.Add(-time.Hour), n)
	if err != nil {
		return "", &Error{Step: "check the project's ceiling", Err: fmt.Errorf("count mail of project %s: %w", p.Key, err)}
	}
	if before >= d.ceiling {
		return fmt.Sprintf("project ceiling: %d automatic mails from project %s in the last hour (at most %d)", before, p.Key, d.ceiling), nil
	}
	return "", nil
}

// queuedAt gives n a CreatedAt, the clock's when it has none, so that
// the counts can place it. With its CreatedAt from the store, a retry
// decides as the first attempt did.
func queuedAt(n ticket.Notification, now func() time.Time) ticket.Notification {
	if n.CreatedAt.IsZero() {
		n.CreatedAt = now()
	}
	return n
}

// capped applies the caps to an automatic notification. It counts the
// automatic notifications to the recipient queued in each window before
// this one: created earlier, or at the same time with a smaller ID (a
// group of deliveries commits with one timestamp), so a burst committed at
// once is capped like one spread out.
func (d *Deliverer) capped(ctx context.Context, p Project, n ticket.Notification, to string) (string, error) {
	caps := slices.Clone(d.caps)
	slices.SortFunc(caps, func(a, b Cap) int { return cmp.Compare(a.Window, b.Window) })
	n = queuedAt(n, d.now)
	for _, c := range caps {
		if c.Window <= 0 {
			continue
		}
		before, err := d.store.CountNotifications(ctx, p.ID, to, automaticKinds, n.CreatedAt.Add(-c.Window), n)
		if err != nil {
			return "", &Error{Step: "check rate caps", Err: fmt.Errorf("count mails to %s: %w", to, err)}
		}
		if before >= c.Max {
			return fmt.Sprintf("rate cap: %d automatic mails to %s in the last %s", before, to, formatWindow(c.Window)), nil
		}
	}
	return "", nil
}

// formatWindow writes a window the way people say it: 10m, 1h, 24h.
func formatWindow(w time.Duration) string {
	switch {
	case w%time.Hour == 0:
		return fmt.Sprintf("%dh", w/time.Hour)
	case w%time.Minute == 0:
		return fmt.Sprintf("%dm", w/time.Minute)
	}
	return w.String()
}
