// Package notify renders outbound notifications (the thank-you for a new
// ticket, agents' notes, status notices) from templates and sends them
// through each project's own SMTP server with go-mail, classifying every
// failure as temporary or permanent.
//
// Standards: RFC 5322 (message format; Message-ID, In-Reply-To and
// References for threading), RFC 2045-2049 (MIME, a text/plain part with a
// text/html alternative), RFC 2183 and RFC 2231 (attachment filenames, with
// an RFC 2047 fallback), RFC 3834 (Auto-Submitted), RFC 6376 and RFC 8463
// (DKIM), RFC 5321 (SMTP), RFC 3207 (STARTTLS), RFC 8314 (implicit TLS),
// RFC 4954 (SMTP AUTH).
//
// Headers of every notification:
//   - From: "Project Name" <desk address>; Reply-To: the desk address with
//     the ticket's reply key as sub-address (support+r1-...@example.test).
//   - Message-ID: the notification's MailID, fixed when it was queued, so a
//     retry is recognisably the same mail.
//   - In-Reply-To: the customer's Message-ID; References: the reply key
//     reference <r1-...@domain> first (for clients that drop Reply-To), then
//     the customer's References and Message-ID, so the customer's mail
//     stays the direct parent as RFC 5322 3.6.4 wants.
//   - Auto-Submitted: auto-replied for the thank-you, auto-generated for the
//     others; X-Auto-Response-Suppress: All (no Exchange out-of-office).
//   - Precedence: bulk only on status notices (closed, reopened,
//     new_participant), never on mail that answers a person.
//   - X-Loop: the desk address, so mail of ours that comes back (forwarding
//     loops, auto-responders that copy headers) is recognisable on ingest.
//   - DKIM-Signature when the project has a DKIMConfig.
//
// A note's attachments travel with it when they total at most
// Options.MaxAttachmentsSize (10 MB by default); above that the mail lists
// download links (AttachmentURL) instead.
//
// What is never mailed: Deliver suppresses a notification, with the reason
// in the store and without an error, when its recipient is Unmailable (a
// no-reply, system or bounce address, or any project's desk address), when
// the recipient bounces on the ticket, and when automatic mail (thank_you,
// closed, reopened, new_participant, relay; never an agent's note) to the
// recipient within the project has reached a Cap. Notices to agents
// (agent_notice) are not capped per recipient; the project's hourly
// ceiling counts them with the automatic mail.
//
// The subject and text of each mail, as first rendered, are kept on the
// ticket message that records it when the Store is a TextRecorder. DefaultCaps: at most 3
// in 10 minutes, 10 in an hour, 30 in a day, counting every automatic
// notification queued for the recipient, suppressed ones included, so an
// auto-responder that answers each mail gets 3 and the loop stays cut
// until it has been quiet for the window.
//
// notify imports neither store nor mailbox nor asynq: it declares the Store
// it needs, and jobs maps Permanent errors to dead letters.
package notify

import (
	"cmp"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/servicedesk/servicedesk/ticket"
)

// Project is what notify needs of a project.
type Project struct {
	ID      int64
	Key     string // e.g. "acme"
	Name    string // display name in From
	Address string // the desk address: From, and the base of Reply-To
	SMTP    SMTPConfig
	// PublicURL is the base of links in mails, e.g. https://desk.example.com;
	// may be empty (no links).
	PublicURL string
	// DKIM signs the project's mail when set (RFC 6376).
	DKIM *DKIMConfig

	// Links signs the recipient's links (TICKET_URL, UNSUBSCRIBE_URL,
	// attachments too large to mail) and the List-Unsubscribe header. nil:
	// no ticket link, no List-Unsubscribe, attachment links to the API.
	Links *ticket.CustomerLinks
	// SystemHeader, SystemFooter and AdditionalText fill GitLab's
	// placeholders of the same names; empty drops their lines.
	SystemHeader, SystemFooter, AdditionalText string
}

// Store is what notify reads and writes.
type Store interface {
	Notification(ctx context.Context, id int64) (ticket.Notification, error)
	// TicketByID returns the ticket with its Messages and Participants.
	TicketByID(ctx context.Context, id int64) (ticket.Ticket, error)
	MarkNotificationSent(ctx context.Context, id int64, at time.Time) error
	RecordNotificationAttempt(ctx context.Context, id int64, errText string) error
	// SuppressNotification marks a pending notification as not sent on
	// purpose, with the reason; suppressing it again is a no-op.
	SuppressNotification(ctx context.Context, id int64, reason string) error
	// BouncingRecipients returns the lower-cased addresses of the ticket
	// that are bouncing at at.
	BouncingRecipients(ctx context.Context, ticketID int64, at time.Time) ([]string, error)
	// CountNotifications counts the notifications of the given kinds for
	// recipient (case-insensitive) in the project created at or after
	// since, in any state but failed.
	// since and queued before before (by CreatedAt, then ID; every one
	// when before is zero).
	CountNotifications(ctx context.Context, projectID int64, recipient string, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error)
	// CountProjectMail counts the project's notifications of the given
	// kinds created at or after since that are pending or sent.
	CountProjectMail(ctx context.Context, projectID int64, kinds []ticket.NotificationKind, since time.Time, before ticket.Notification) (int, error)
	// AttachmentData returns an attachment's content by its SHA-256 hex.
	AttachmentData(ctx context.Context, sha256hex string) ([]byte, error)
}

// Options tunes a Deliverer; nil means defaults.
type Options struct {
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Now is the clock for the Date header and the sent time. Defaults to
	// time.Now.
	Now func() time.Time
	// Templates overrides the default templates, by project key and kind.
	// A Template with empty Text keeps the default text.
	Templates map[string]map[ticket.NotificationKind]Template
	// IdleTimeout closes a pooled SMTP connection unused for this long.
	// Defaults to 30s.
	IdleTimeout time.Duration
	// MaxAttachmentsSize is the largest total size, in bytes, of a note's
	// attachments that is mailed natively; above it the mail lists links
	// instead. Defaults to DefaultMaxAttachmentsSize (10 MB); negative
	// means never attach.
	MaxAttachmentsSize int64
	// Caps bound the automatic mail (thank_you, closed, reopened,
	// new_participant) to one recipient within a project. nil means
	// DefaultCaps(); an empty non-nil slice disables the caps.
	Caps []Cap
	// ProjectCeiling bounds the automatic mail of one project, to all
	// recipients together, in any hour. Defaults to DefaultProjectCeiling
	// (1,000); negative disables it.
	ProjectCeiling int
	// OnSuppressed, when set, is called with the project key and the cause
	// of every notification suppressed (for a metric).
	OnSuppressed func(project string, cause Cause)
}

// Deliverer sends notifications. It is safe for concurrent use; sends of
// one project share one SMTP connection, one at a time.
type Deliverer struct {
	store     Store
	keys      *ticket.ReplyKeys
	log       *slog.Logger
	now       func() time.Time
	templates map[string]map[ticket.NotificationKind]Template
	idle      time.Duration
	maxAttach int64
	caps      []Cap
	ceiling   int      // automatic mails per project and hour; 0: none
	desks     []string // every project's desk address, lower-cased

	onSuppressed func(project string, cause Cause)

	byID  map[int64]Project
	byKey map[string]Project

	dkimKeys map[int64]crypto.Signer // parsed DKIM keys by project ID, under mu

	mu    sync.Mutex
	conns map[int64]*conn // by project ID
}

// NewDeliverer returns a Deliverer for projects. st and keys are required.
func NewDeliverer(st Store, keys *ticket.ReplyKeys, projects []Project, opts *Options) *Deliverer {
	if st == nil || keys == nil {
		panic("notify.NewDeliverer: nil store or reply keys")
	}
	if opts == nil {
		opts = &Options{}
	}
	d := &Deliverer{
		store:     st,
		keys:      keys,
		log:       opts.Logger,
		now:       opts.Now,
		templates: opts.Templates,
		idle:      opts.IdleTimeout,
		maxAttach: cmp.Or(opts.MaxAttachmentsSize, DefaultMaxAttachmentsSize),
		caps:      opts.Caps,
		ceiling:   cmp.Or(opts.ProjectCeiling, DefaultProjectCeiling),

		onSuppressed: opts.OnSuppressed,
		byID:         make(map[int64]Project, len(projects)),
		byKey:        make(map[string]Project, len(projects)),
		conns:        make(map[int64]*conn),
		dkimKeys:     make(map[int64]crypto.Signer),
	}
	if d.log == nil {
		d.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d.log = d.log.With("component", "notify")
	if d.now == nil {
		d.now = time.Now
	}
	if d.idle <= 0 {
		d.idle = 30 * time.Second
	}
	if d.caps == nil {
		d.caps = DefaultCaps()
	}
	for _, p := range projects {
		d.byID[p.ID] = p
		d.byKey[strings.ToLower(p.Key)] = p
		d.desks = append(d.desks, strings.ToLower(strings.TrimSpace(p.Address)))
	}
	return d
}

// Deliver sends notification notificationID once. A notification already
// sent or suppressed returns nil without sending again.
//
// Before sending, Deliver suppresses the notification (the store records
// the reason; Deliver returns nil, nothing for a retry or a dead letter)
// when the recipient is Unmailable (a no-reply, system or desk address of
// any project), bounces on the ticket, or, for automatic mail, has reached
// a per-recipient Cap.
//
// On success it is marked sent; on failure the attempt is recorded with
// its error and the error returned, which Permanent classifies. Errors of
// the Store are wrapped with %w (so a caller can test for its not-found
// error) and count as temporary.
func (d *Deliverer) Deliver(ctx context.Context, notificationID int64) error {
	n, err := d.store.Notification(ctx, notificationID)
	if err != nil {
		return &Error{Step: "load notification", Err: fmt.Errorf("notification %d: %w", notificationID, err)}
	}
	if n.State == ticket.NotificationSent || n.State == stateSuppressed {
		d.log.Debug("notification already done", "notification", n.ID, "state", n.State)
		return nil
	}
	log := d.log.With("notification", n.ID, "project", n.Project, "kind", n.Kind)

	v, err := d.send(ctx, n)
	// Bookkeeping must survive a cancelled ctx: the mail may be out already.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err != nil {
		log.Warn("notification not sent", "permanent", Permanent(err), "err", err)
		if rerr := d.store.RecordNotificationAttempt(bctx, n.ID, err.Error()); rerr != nil {
			log.Error("record notification attempt", "err", rerr)
			return errors.Join(err, fmt.Errorf("record attempt: %w", rerr))
		}
		return err
	}
	if v.reason != "" {
		if err := d.store.SuppressNotification(bctx, n.ID, v.reason); err != nil {
			return &Error{Step: "suppress", Err: fmt.Errorf("notification %d: %w", n.ID, err)}
		}
		log.Info("notification suppressed", "cause", v.cause, "reason", v.reason)
		if d.onSuppressed != nil {
			d.onSuppressed(n.Project, v.cause)
		}
		return nil
	}
	if err := d.store.MarkNotificationSent(bctx, n.ID, d.now()); err != nil {
		// A retry will send the same mail again, with the same Message-ID.
		log.Error("notification sent but not marked sent", "err", err)
		return &Error{Step: "mark sent", Err: fmt.Errorf("notification %d: %w", n.ID, err)}
	}
	log.Info("notification sent", "message_id", n.MailID)
	return nil
}

// send mails n, or returns why it must not be mailed.
func (d *Deliverer) send(ctx context.Context, n ticket.Notification) (suppressed verdict, err error) {
	p, ok := d.project(n)
	if !ok {
		return verdict{}, permanentf("find project", "unknown project %q (id %d)", n.Project, n.ProjectID)
	}
	if v, err := d.suppression(ctx, p, n); err != nil || v.reason != "" {
		return v, err
	}
	t, err := d.store.TicketByID(ctx, n.TicketID)
	if err != nil {
		return verdict{}, &Error{Step: "load ticket", Err: fmt.Errorf("ticket %d: %w", n.TicketID, err)}
	}
	if v := unsubscribed(t, n); v.reason != "" {
		return v, nil
	}
	out, err := render(p, d.keys, d.templates[p.Key], n, t)
	if err != nil {
		return verdict{}, &Error{Step: "render", Permanent: true, Err: err}
	}
	d.recordText(ctx, n, out)
	files, err := d.attachments(ctx, p, t, n, out)
	if err != nil {
		return verdict{}, err
	}
	m, err := d.message(out)
	if err != nil {
		return verdict{}, &Error{Step: "render", Permanent: true, Err: err}
	}
	attach(m, files)
	if err := d.sign(p, m); err != nil {
		return verdict{}, err
	}
	c, err := d.conn(p)
	if err != nil {
		return verdict{}, err
	}
	return verdict{}, c.send(ctx, m)
}

// TextRecorder keeps the text of an outbound mail on the ticket message
// that records it (store.RecordOutboundText): what the customer was told.
// A Store that implements it gets the text of each mail as first rendered.
type TextRecorder interface {
	RecordOutboundText(ctx context.Context, messageID int64, subject, text string) error
}

// recordText keeps the rendered subject and text of n on its record. A
// failure is logged, never fatal: the mail matters more than its copy.
func (d *Deliverer) recordText(ctx context.Context, n ticket.Notification, out *outgoing) {
	r, ok := d.store.(TextRecorder)
	if !ok || n.OutboundID == 0 {
		return
	}
	if err := r.RecordOutboundText(ctx, n.OutboundID, out.Subject, out.Text); err != nil {
		d.log.Warn("keep the text of outbound mail on its ticket", "notification", n.ID, "err", err)
	}
}

func (d *Deliverer) project(n ticket.Notification) (Project, bool) {
	if p, ok := d.byID[n.ProjectID]; ok && n.ProjectID != 0 {
		return p, true
	}
	p, ok := d.byKey[strings.ToLower(n.Project)]
	return p, ok && n.Project != ""
}

// message turns a rendered notification into a go-mail message.
func (d *Deliverer) message(o *outgoing) (*mail.Msg, error) {
	m := mail.NewMsg(mail.WithNoDefaultUserAgent())
	var err error
	if o.FromName != "" {
		err = m.FromFormat(o.FromName, o.From)
	} else {
		err = m.From(o.From)
	}
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", o.From, err)
	}
	if err := m.To(o.To); err != nil {
		return nil, fmt.Errorf("recipient %q: %w", o.To, err)
	}
	if err := m.ReplyTo(o.ReplyTo); err != nil {
		return nil, fmt.Errorf("reply-to %q: %w", o.ReplyTo, err)
	}
	m.Subject(o.Subject)
	m.SetMessageIDWithValue(strings.TrimSuffix(strings.TrimPrefix(o.MessageID, "<"), ">"))
	m.SetDateWithValue(d.now())
	if o.InReplyTo != "" {
		m.SetGenHeader(mail.HeaderInReplyTo, o.InReplyTo)
	}
	if len(o.References) > 0 {
		m.SetGenHeader(mail.HeaderReferences, strings.Join(o.References, " "))
	}
	for _, h := range o.Headers {
		m.SetGenHeader(mail.Header(h[0]), h[1])
	}
	m.SetGenHeader(mail.HeaderXMailer, "servicedesk")
	m.SetBodyString(mail.TypeTextPlain, o.Text)
	m.AddAlternativeString(mail.TypeTextHTML, o.HTML)
	return m, nil
}

func (d *Deliverer) conn(p Project) (*conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		return nil, &Error{Step: "send", Err: errClosed}
	}
	c, ok := d.conns[p.ID]
	if !ok {
		c = &conn{cfg: p.SMTP, idle: d.idle, log: d.log.With("project", p.Key)}
		d.conns[p.ID] = c
	}
	return c, nil
}

// Close quits the pooled SMTP connections; Deliver fails afterwards.
func (d *Deliverer) Close() error {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	return nil
}
