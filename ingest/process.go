package ingest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/servicedesk/servicedesk/ticket"
)

// Store is what processing needs from the ticket store.
//
// Lookups that find nothing may answer either (0/zero, nil) or an error
// that wraps ticket.ErrNotFound; both mean "none". Any other error is treated as
// temporary and returned from Process so that the job retries.
type Store interface {
	// InboundMessage returns a ledger row and its raw message, or a nil
	// raw message when none is stored or the row's size is above maxSize
	// (then the message is not read).
	InboundMessage(ctx context.Context, id, maxSize int64) (ticket.Inbound, []byte, error)
	Blob(ctx context.Context, sha256hex string) ([]byte, error)
	// ThreadMatches gives the tickets of the project that hold a message
	// (inbound or outbound) or sent a notification with one of the
	// Message-IDs, newest first, each saying whether a matched ID is ours.
	ThreadMatches(ctx context.Context, projectID int64, messageIDs []string) ([]ticket.ThreadMatch, error)
	TicketByID(ctx context.Context, id int64) (ticket.Ticket, error)
	CommitDelivery(ctx context.Context, d ticket.Delivery) (ticket.Committed, error)
}

// Project is a desk: the project's ID, key (signs reply keys), address
// and aliases (more addresses of the same desk).
type Project struct {
	ID      int64
	Key     string
	Address string
	Aliases []string
	// NotifyAgents are told of each new ticket and each customer's reply
	// (ticket.NotifyAgent). They are never participants.
	NotifyAgents []string
}

// Options tunes a Processor; nil means defaults.
type Options struct {
	// Logger receives one line per decision. Defaults to discarding.
	Logger *slog.Logger
	// MaxMessageSize in bytes; larger messages fail for good. Defaults to
	// 25 MB.
	MaxMessageSize int64
	// Now is the clock for message timestamps. Defaults to time.Now.
	Now func() time.Time
	// MaxInFlightBytes caps the raw size of the messages a Processor
	// parses and commits at once (parsing takes a few times the raw size):
	// a message waits for room, so many small messages run side by side
	// while large ones take turns. Defaults to 8 x MaxMessageSize.
	MaxInFlightBytes int64
	// Limits bounds the parse of one message (header sizes, entries, MIME
	// parts and depth, subject, deadline); zero fields take DefaultLimits.
	Limits Limits
	// Intake, when set, is the mailbox that serves many desks: its ledger
	// rows are routed to their desk (Router.Route), and a row that names
	// none is committed as unroutable.
	Intake *Intake

	// Links verifies the tokens of unsubscribe addresses
	// (desk+unsubscribe-...@); nil: such mail is processed like any other.
	Links *ticket.CustomerLinks
}

// Intake is the intake mailbox: its project row's ID (ticket.IntakeKey)
// and its address (incoming+<desk key>@ routes to a desk).
type Intake struct {
	ID      int64
	Address string
}

// MaxCarried is how many of the addresses an unroutable mail carried its
// ledger reason lists.
const MaxCarried = 20

// InlineReadSize is the size up to which a message is read with its
// ledger row, in one query, before it has room in the in-flight budget:
// most mail is far smaller. Larger messages are read once they have room.
const InlineReadSize = 1 << 20

// DefaultMaxMessageSize is the default of Options.MaxMessageSize.
const DefaultMaxMessageSize = 25 << 20

// Who receives a ticket's mail is earned, not claimed: these bound how many
// addresses one inbound message can put on a ticket.
const (
	// MaxParticipants bounds a ticket's participants, its requester
	// included (GitLab's number). Addresses past it are not added.
	MaxParticipants = 10
	// MaxNewParticipants bounds the participants one inbound message adds
	// besides its requester; each one a reply adds gets a short notice.
	MaxNewParticipants = 5
	// MaxThreadReferences is how many References entries threading reads:
	// the first ones, where the thread's root and our own mail sit (a reply
	// key reference is the first entry of every mail we send).
	MaxThreadReferences = 50
)

// BounceSuppression is how long a recipient that a delivery-status bounce
// (RFC 3464) reported failed counts as bouncing on the bounce's ticket:
// automatic mail to it there is suppressed for 7 days from the bounce.
const BounceSuppression = 7 * 24 * time.Hour

// Processor turns inbound ledger rows into committed deliveries.
type Processor struct {
	st       Store
	keys     *ticket.ReplyKeys
	projects []Project
	own      []string
	agents   []string // every project's NotifyAgents: never participants
	log      *slog.Logger
	maxSize  int64
	now      func() time.Time
	inflight *semaphore.Weighted // raw bytes being processed
	budget   int64               // its size
	limits   Limits
	intake   *Intake // nil: no intake mailbox
	router   *Router // of the intake
	links    *ticket.CustomerLinks
}

// NewProcessor returns a Processor for the given desks. keys verifies reply
// keys; without keys no reply key threads anything.
func NewProcessor(st Store, keys *ticket.ReplyKeys, projects []Project, opts *Options) *Processor {
	if opts == nil {
		opts = &Options{}
	}
	p := &Processor{
		st:       st,
		keys:     keys,
		projects: append([]Project(nil), projects...),
		log:      opts.Logger,
		maxSize:  cmp.Or(opts.MaxMessageSize, DefaultMaxMessageSize),
		now:      opts.Now,
		limits:   opts.Limits.WithDefaults(),
		links:    opts.Links,
	}
	p.budget = cmp.Or(opts.MaxInFlightBytes, 8*p.maxSize)
	p.inflight = semaphore.NewWeighted(p.budget)
	if p.log == nil {
		p.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p.log = p.log.With("component", "ingest")
	if p.now == nil {
		p.now = time.Now
	}
	for _, pr := range projects {
		for _, a := range append([]string{pr.Address}, pr.Aliases...) {
			if a != "" {
				p.own = append(p.own, a)
			}
		}
		p.agents = append(p.agents, pr.NotifyAgents...)
	}
	if in := opts.Intake; in != nil {
		p.intake = &Intake{ID: in.ID, Address: in.Address}
		p.router = NewRouter(in.Address, projects)
		if in.Address != "" {
			p.own = append(p.own, in.Address)
		}
	}
	return p
}

// Process decides what inbound message inboundID is and commits that
// decision. It is idempotent: a row that already has an outcome returns it.
//
// A message that can never succeed (raw bytes missing, larger than
// MaxMessageSize, unparseable, unknown project) is committed with
// OutcomeFailed and a human reason, and Process returns no error. Errors
// returned are store errors, wrapped with the step; they are temporary and
// the job should retry.
//
// Auto-replies, bulk mail and our own mail that cannot be threaded are
// committed with OutcomeAutoReply, TicketID 0 and a Message that only
// carries what the ledger shows (from, subject, Message-ID): the store
// records the ledger row and ignores a Message whose TicketID is 0.
//
// Failed deliveries carry no DedupKey, so a later good copy of the same
// message is not taken for a duplicate.
func (p *Processor) Process(ctx context.Context, inboundID int64) (ticket.Committed, error) {
	in, raw, err := p.st.InboundMessage(ctx, inboundID, min(p.maxSize, InlineReadSize))
	if err != nil {
		return ticket.Committed{}, fmt.Errorf("load inbound %d: %w", inboundID, err)
	}
	c, err := p.process(ctx, in, raw)
	c.Project, c.ReceivedAt = cmp.Or(c.Project, in.Project), in.ReceivedAt
	return c, err
}

// process decides and commits; the Committed it returns names the desk
// (Project) when it routed the row to one.
func (p *Processor) process(ctx context.Context, in ticket.Inbound, raw []byte) (ticket.Committed, error) {
	if in.Outcome != ticket.OutcomeNone {
		return ticket.Committed{Outcome: in.Outcome, TicketID: in.TicketID, TicketNumber: in.TicketNumber}, nil
	}
	log := p.log.With("inbound", in.ID, "project", in.Project)

	fail := func(reason string) (ticket.Committed, error) {
		log.Warn("inbound message failed", "reason", reason)
		c, err := p.st.CommitDelivery(ctx, ticket.Delivery{
			InboundID: in.ID, ProjectID: in.ProjectID, Outcome: ticket.OutcomeFailed, Reason: reason,
		})
		if err != nil {
			return ticket.Committed{}, fmt.Errorf("commit failed inbound %d: %w", in.ID, err)
		}
		return c, nil
	}

	fromIntake := p.intake != nil && in.ProjectID == p.intake.ID
	proj, ok := p.project(in.ProjectID)
	if !ok && !fromIntake {
		return fail(fmt.Sprintf("project %d (%s) is not configured", in.ProjectID, in.Project))
	}
	if in.Size > p.maxSize {
		return fail(tooLarge(in.Size, p.maxSize))
	}
	if in.RawSHA256 == "" {
		return fail("raw message was not stored")
	}
	weight := min(max(in.Size, int64(len(raw))), p.budget)
	if err := p.inflight.Acquire(ctx, weight); err != nil {
		return ticket.Committed{}, fmt.Errorf("wait for room to process inbound %d (%d bytes): %w", in.ID, in.Size, err)
	}
	defer p.inflight.Release(weight)
	if raw == nil && in.Size > InlineReadSize {
		var err error
		raw, err = p.st.Blob(ctx, in.RawSHA256)
		switch {
		case err != nil && errors.Is(err, ticket.ErrNotFound):
			raw = nil
		case err != nil:
			return ticket.Committed{}, fmt.Errorf("load raw message %s of inbound %d: %w", in.RawSHA256, in.ID, err)
		}
	}
	if raw == nil {
		return fail("raw message " + in.RawSHA256 + " is missing from the store")
	}
	if int64(len(raw)) > p.maxSize {
		return fail(tooLarge(int64(len(raw)), p.maxSize))
	}
	m, err := ParseContext(ctx, raw, p.limits)
	if err != nil {
		switch {
		case ctx.Err() != nil: // shutting down: parse again later
			return ticket.Committed{}, fmt.Errorf("parse inbound %d: %w", in.ID, err)
		case errors.Is(err, ErrParseDeadline):
			// How long a parse takes depends on the machine's load as much
			// as on the mail: the caller may try once more, then records
			// it for good (jobs: MaxDeadlineAttempts).
			return ticket.Committed{}, fmt.Errorf("parse inbound %d: %w", in.ID, err)
		}
		// Deterministic (the same bytes fail the same way): committed as
		// failed, never retried.
		return fail("cannot parse message: " + err.Error())
	}

	routed := ""
	if fromIntake {
		rt, ok, err := p.router.Route(ctx, m, p.keyOwner)
		if err != nil {
			return ticket.Committed{}, fmt.Errorf("route inbound %d: %w", in.ID, err)
		}
		if !ok {
			return p.unroutable(ctx, in, m)
		}
		proj, routed = rt.Project, rt.Rule
	}
	d, err := p.decide(ctx, in, proj, m, raw, routed != "")
	if err != nil {
		return ticket.Committed{}, err
	}
	if routed != "" {
		d.Routed = true
		d.Reason += "; routed from the intake by " + routed
	}
	if len(m.Cuts) > 0 {
		d.Reason += "; cut: " + strings.Join(m.Cuts, "; ")
	}
	c, err := p.st.CommitDelivery(ctx, d)
	if err != nil {
		return ticket.Committed{}, fmt.Errorf("commit delivery of inbound %d: %w", in.ID, err)
	}
	log.Info("inbound message processed", "outcome", c.Outcome, "ticket", c.TicketNumber,
		"message_id", m.MessageID, "reason", d.Reason)
	c.Project = proj.Key
	return c, nil
}

// unroutable commits a row of the intake mailbox that names no desk: a
// dead letter whose reason lists the addresses the mail carried, never
// answered, left in the intake mailbox.
func (p *Processor) unroutable(ctx context.Context, in ticket.Inbound, m *Mail) (ticket.Committed, error) {
	carried, more := m.Carried(MaxCarried)
	reason := "names no desk: no valid reply key, no incoming+<desk key>@ address, no desk address or alias in its recipient headers"
	if len(carried) == 0 {
		reason += "; it carried no recipient address"
	} else {
		reason += "; it carried: " + strings.Join(carried, ", ")
		if more > 0 {
			reason += fmt.Sprintf(" and %d more", more)
		}
	}
	c, err := p.st.CommitDelivery(ctx, ticket.Delivery{
		InboundID: in.ID, ProjectID: in.ProjectID, Outcome: ticket.OutcomeUnroutable, Reason: reason,
		Message: &ticket.Message{From: m.From, Subject: m.Subject, MessageID: m.MessageID},
	})
	if err != nil {
		return ticket.Committed{}, fmt.Errorf("commit unroutable inbound %d: %w", in.ID, err)
	}
	p.log.Warn("inbound message unroutable: dead letter, left in the intake mailbox", "inbound", in.ID,
		"message_id", m.MessageID, "reason", reason)
	return c, nil
}

// keyOwner is the KeyOwner of routing: the desk of the ticket a reply
// key names, when the key verifies for that desk.
func (p *Processor) keyOwner(ctx context.Context, key string) (Project, bool, error) {
	if p.keys == nil {
		return Project{}, false, nil
	}
	id, ok := ticket.ReplyKeyTicket(key)
	if !ok {
		return Project{}, false, nil
	}
	t, err := p.st.TicketByID(ctx, id)
	switch {
	case err != nil && errors.Is(err, ticket.ErrNotFound):
		return Project{}, false, nil
	case err != nil:
		return Project{}, false, fmt.Errorf("load ticket %d of reply key: %w", id, err)
	case t.ID == 0:
		return Project{}, false, nil
	}
	proj, ok := p.project(t.ProjectID)
	if !ok {
		return Project{}, false, nil
	}
	if _, err := p.keys.Verify(proj.Key, key); err != nil {
		return Project{}, false, nil
	}
	return proj, true, nil
}

func tooLarge(size, limit int64) string {
	return fmt.Sprintf("message is %d bytes, larger than the limit of %d bytes", size, limit)
}

func (p *Processor) project(id int64) (Project, bool) {
	for _, pr := range p.projects {
		if pr.ID == id {
			return pr, true
		}
	}
	return Project{}, false
}

// decide builds the Delivery for a parsed message.
//
// A mail routed from the intake is classified with only the intake's own
// address as a loop marker: the desk address that forwarded it to the
// intake is expected in X-Loop and X-MS-Exchange-Inbox-Rules-Loop.
func (p *Processor) decide(ctx context.Context, in ticket.Inbound, proj Project, m *Mail, raw []byte, routed bool) (ticket.Delivery, error) {
	loops := p.own
	if routed {
		loops = []string{p.intake.Address}
	}
	class, reason := classify(m, p.own, loops)
	d := ticket.Delivery{
		InboundID:   in.ID,
		ProjectID:   proj.ID,
		DedupKey:    DedupKey(m, raw),
		MailDomain:  domainOf(proj.Address),
		DeskAddress: proj.Address,
	}
	msg := &ticket.Message{
		InboundID:   in.ID,
		Direction:   ticket.DirectionInbound,
		Kind:        ticket.KindEmail,
		From:        m.From,
		To:          m.To,
		Cc:          m.Cc,
		Subject:     m.Subject,
		Text:        m.Text,
		HTML:        m.HTML,
		MessageID:   m.MessageID,
		References:  m.References,
		CreatedAt:   p.now(),
		Attachments: m.Attachments,
	}
	if len(m.InReplyTo) > 0 {
		msg.InReplyTo = m.InReplyTo[0]
	}
	d.Message = msg
	if ok, err := p.unsubscribe(ctx, proj, m, class, &d); ok || err != nil {
		return d, err
	}

	th, err := p.thread(ctx, proj, m, class == ClassBounce)
	if err != nil {
		return ticket.Delivery{}, err
	}
	d.TicketID = th.ticketID
	msg.TicketID = th.ticketID
	msg.Text, msg.FullText = replyText(m, th.ticketID != 0)

	switch class {
	case ClassBounce:
		d.Outcome = ticket.OutcomeBounce
		msg.Kind = ticket.KindBounce
		d.Reason = reason
		if _, rcpts := BounceOriginal(m); len(rcpts) > 0 {
			d.Reason += "; failed recipients: " + strings.Join(rcpts, ", ")
			if th.ticketID != 0 {
				d.Bouncing = rcpts
				d.BouncingUntil = p.now().Add(BounceSuppression)
			}
		}
	case ClassAutoReply, ClassBulk, ClassOwn:
		d.Outcome = ticket.OutcomeAutoReply
		msg.Kind = ticket.KindAutoReply
		d.Reason = string(class) + ": " + reason
	default:
		requester := requesterOf(m)
		if th.ticketID != 0 {
			d.Outcome = ticket.OutcomeReplyAdded
			d.Reason = "reply via " + th.how
			d.Reopen = true
			if !th.trusted {
				// Threaded because From names someone on the ticket, which
				// anyone can write: it may add a message, never people.
				if len(m.Cc) > 0 {
					d.Reason += "; Cc not added: only a reply through a reply key or a Message-ID of ours adds participants"
				}
			} else if err := p.addCcParticipants(ctx, &d, m); err != nil {
				return ticket.Delivery{}, err
			}
			if err := p.relay(ctx, &d, m); err != nil {
				return ticket.Delivery{}, err
			}
			d.Notify = append(d.Notify, tellAgents(proj, m)...)
			break
		}
		d.Outcome = ticket.OutcomeTicketCreated
		d.Reason = "new ticket"
		if th.ignored != "" {
			d.Reason += "; " + th.ignored
		}
		subject := m.Subject
		if subject == "" {
			subject = "(no subject)"
		}
		d.NewTicket = &ticket.Ticket{ProjectID: proj.ID, Subject: subject, Requester: requester}
		others := p.participants(append(append([]string(nil), m.To...), m.Cc...), requester)
		// The requester counts towards the ticket's limit.
		room := min(MaxNewParticipants, MaxParticipants-1)
		if len(others) > room {
			d.Reason += fmt.Sprintf("; participants: kept %d of %d To/Cc addresses (at most %d per message, %d per ticket)",
				room, len(others), MaxNewParticipants, MaxParticipants)
			others = others[:room]
		}
		d.Participants = others
		if requester != "" {
			d.Participants = append([]string{requester}, d.Participants...)
		}
		switch {
		case NoReply(requester):
			d.Reason += "; no thank-you: requester is a no-reply address"
		case p.isDesk(requester):
			d.Reason += "; no thank-you: requester is a desk address"
		case suppressesAutoResponse(m):
			d.Reason += "; no thank-you: X-Auto-Response-Suppress"
		default:
			d.Notify = []ticket.Notification{{Kind: ticket.NotifyThankYou, To: requester}}
		}
		d.Notify = append(d.Notify, tellAgents(proj, m)...)
	}
	return d, nil
}

// addCcParticipants adds the Cc addresses of a reply that are not yet on
// the ticket, within MaxNewParticipants for the message and MaxParticipants
// for the ticket, and queues each a new_participant notice (which carries
// none of the ticket's text). What did not fit is said in the reason.
func (p *Processor) addCcParticipants(ctx context.Context, d *ticket.Delivery, m *Mail) error {
	cc := p.participants(m.Cc, "")
	if len(cc) == 0 {
		return nil
	}
	t, err := p.st.TicketByID(ctx, d.TicketID)
	if err != nil {
		return fmt.Errorf("load ticket %d for its participants: %w", d.TicketID, err)
	}
	known := map[string]bool{}
	if t.Requester != "" {
		known[strings.ToLower(t.Requester)] = true
	}
	for _, a := range t.Participants {
		known[strings.ToLower(a)] = true
	}
	var fresh []string
	for _, a := range cc {
		if !known[strings.ToLower(a)] {
			fresh = append(fresh, a)
		}
	}
	room := max(0, min(MaxNewParticipants, MaxParticipants-len(known)))
	if len(fresh) > room {
		d.Reason += fmt.Sprintf("; participants: added %d of %d new Cc addresses (at most %d per message, %d per ticket)",
			room, len(fresh), MaxNewParticipants, MaxParticipants)
		fresh = fresh[:room]
	}
	d.Participants = fresh
	// The store checks again under the ticket's lock: replies committed
	// at once cannot overfill it between this read and their commits.
	d.MaxParticipants = MaxParticipants
	for _, a := range fresh {
		d.Notify = append(d.Notify, ticket.Notification{Kind: ticket.NotifyNewParticipant, To: a})
	}
	return nil
}

// DedupKey identifies a message within its project: "mid:" and the
// lower-cased Message-ID, or "sha256:" and the hex hash of the raw bytes
// when there is none.
func DedupKey(m *Mail, raw []byte) string {
	if m != nil && m.MessageID != "" {
		return "mid:" + strings.ToLower(m.MessageID)
	}
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// requesterOf is the first Reply-To, else From, else Sender.
func requesterOf(m *Mail) string {
	if len(m.ReplyTo) > 0 {
		return m.ReplyTo[0]
	}
	return cmp.Or(m.From, m.Sender)
}

// suppressesAutoResponse reports whether the sender asked for no automatic
// answer (X-Auto-Response-Suppress: All, OOF or AutoReply).
func suppressesAutoResponse(m *Mail) bool {
	for _, v := range m.Header.Values("X-Auto-Response-Suppress") {
		for _, tok := range strings.FieldsFunc(strings.ToLower(v), func(r rune) bool { return r == ',' || r == ' ' }) {
			if tok == "all" || tok == "oof" || tok == "autoreply" {
				return true
			}
		}
	}
	return false
}

// participants keeps addresses that are not desks, not exclude and not
// no-reply, deduplicated.
func (p *Processor) participants(addrs []string, exclude string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range addrs {
		key := strings.ToLower(a)
		if a == "" || seen[key] || strings.EqualFold(a, exclude) || p.isDesk(a) || p.isAgent(a) || NoReply(a) {
			continue
		}
		seen[key] = true
		out = append(out, a)
	}
	return out
}

func (p *Processor) isDesk(addr string) bool {
	for _, desk := range p.own {
		if MatchesAddress(addr, desk) {
			return true
		}
	}
	return false
}

func domainOf(addr string) string {
	_, domain, _ := strings.Cut(addr, "@")
	return strings.ToLower(domain)
}

// threading is what thread found.
type threading struct {
	ticketID int64  // 0: none
	how      string // which rule matched, for the ledger
	// trusted says the match went through something only a recipient of
	// our mail knows: a reply key or a Message-ID we sent.
	trusted bool
	// ignored says why a ticket that matched was not taken (a stranger
	// naming someone else's Message-ID), for the ledger.
	ignored string
}

// maxInReplyTo is how many In-Reply-To entries threading reads: RFC 5322
// gives one per parent, and a reply has one or two.
const maxInReplyTo = 5

// thread finds the ticket a message belongs to, in order: a reply key of
// this project in a recipient address or References/In-Reply-To entry; a
// stored Message-ID among the first entries of In-Reply-To and the first
// MaxThreadReferences entries of References, when it is one of ours or
// From is already on that ticket; for a bounce, the keys and Message-ID
// of the bounced original. The subject is never used: anyone can write
// "[acme#12]".
func (p *Processor) thread(ctx context.Context, proj Project, m *Mail, bounce bool) (threading, error) {
	refs := m.References[:min(len(m.References), MaxThreadReferences)]
	inReplyTo := m.InReplyTo[:min(len(m.InReplyTo), maxInReplyTo)]
	keySources := replyKeySources(m)
	if bounce && m.dsn.original != nil {
		for _, name := range []string{"Reply-To", "References", "In-Reply-To", "From", "Message-Id"} {
			keySources = append(keySources, m.dsn.originalRaw[name])
		}
	}
	if id, err := p.byReplyKey(ctx, proj, keySources); id != 0 || err != nil {
		return threading{ticketID: id, how: "reply key", trusted: true}, err
	}

	ids := appendUnique(nil, append(append([]string(nil), inReplyTo...), refs...)...)
	how := "In-Reply-To/References"
	if bounce {
		if mid, _ := BounceOriginal(m); mid != "" {
			ids = appendUnique(ids, mid)
			how = "bounced Message-ID"
		}
	}
	if len(ids) == 0 {
		return threading{}, nil
	}
	matches, err := p.st.ThreadMatches(ctx, proj.ID, ids)
	switch {
	case err != nil && errors.Is(err, ticket.ErrNotFound):
		return threading{}, nil
	case err != nil:
		return threading{}, fmt.Errorf("look up tickets by Message-ID: %w", err)
	}
	for _, mt := range matches {
		if mt.Ours {
			return threading{ticketID: mt.TicketID, how: how + " (our Message-ID)", trusted: true}, nil
		}
		on, err := p.onTicket(ctx, mt.TicketID, m)
		if err != nil {
			return threading{}, err
		}
		if on {
			return threading{ticketID: mt.TicketID, how: how + " (sender is on the ticket)"}, nil
		}
	}
	if len(matches) > 0 {
		return threading{ignored: fmt.Sprintf("In-Reply-To/References name a customer's message on ticket id %d, "+
			"but the sender is not on that ticket: not threaded", matches[0].TicketID)}, nil
	}
	return threading{}, nil
}

// onTicket reports whether the From address of m is the requester or a
// participant of ticket id. Only From: Sender and Reply-To are not what
// DMARC protects, and naming someone there costs an attacker nothing.
func (p *Processor) onTicket(ctx context.Context, id int64, m *Mail) (bool, error) {
	if m.From == "" {
		return false, nil
	}
	t, err := p.st.TicketByID(ctx, id)
	switch {
	case err != nil && errors.Is(err, ticket.ErrNotFound):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("load ticket %d to check its participants: %w", id, err)
	}
	from := strings.ToLower(m.From)
	if strings.ToLower(t.Requester) == from {
		return true, nil
	}
	for _, a := range t.Participants {
		if strings.ToLower(a) == from {
			return true, nil
		}
	}
	return false, nil
}

// byReplyKey verifies the candidate keys for proj and returns the first
// ticket that exists and belongs to proj. Keys of other projects, forged
// keys and keys of deleted tickets are ignored.
func (p *Processor) byReplyKey(ctx context.Context, proj Project, sources []string) (int64, error) {
	if p.keys == nil {
		return 0, nil
	}
	for _, key := range replyKeys(sources, 0) {
		id, err := p.keys.Verify(proj.Key, key)
		if err != nil {
			p.log.Debug("reply key ignored", "key", key, "err", err)
			continue
		}
		t, err := p.st.TicketByID(ctx, id)
		switch {
		case err != nil && errors.Is(err, ticket.ErrNotFound):
			continue
		case err != nil:
			return 0, fmt.Errorf("load ticket %d of reply key: %w", id, err)
		case t.ID == 0 || t.ProjectID != proj.ID:
			continue
		}
		return t.ID, nil
	}
	return 0, nil
}
