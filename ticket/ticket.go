// Package ticket is the domain of servicedesk: tickets, their messages and
// attachments, the inbound ledger, outbound notifications, dead letters and
// the reply keys that thread customer mail back onto a ticket.
//
// It imports the standard library only; every adapter (store, mailbox,
// notify, api) speaks in these types.
package ticket

import (
	"fmt"
	"time"
)

// Status is the state of a ticket.
type Status string

const (
	StatusOpen   Status = "open"
	StatusClosed Status = "closed"
)

// Direction says whether a message came from a customer or went to one.
type Direction string

const (
	DirectionInbound  Direction = "inbound"
	DirectionOutbound Direction = "outbound"
)

// Kind is what a message on a ticket is.
type Kind string

const (
	KindEmail     Kind = "email"
	KindNote      Kind = "note"
	KindAutoReply Kind = "auto_reply"
	KindBounce    Kind = "bounce"
	KindThankYou  Kind = "thank_you"
	// Outbound mail other than notes is recorded under the kind of its
	// notification: closed, reopened, new_participant, relay, agent_notice
	// (Kind(NotificationKind)).
)

// Outcome is where a fetched message ended up, as the inbound ledger says it.
type Outcome string

const (
	OutcomeNone          Outcome = "" // fetched, not yet processed
	OutcomeTicketCreated Outcome = "ticket_created"
	OutcomeReplyAdded    Outcome = "reply_added"
	OutcomeAutoReply     Outcome = "auto_reply"
	OutcomeBounce        Outcome = "bounce"
	OutcomeDuplicate     Outcome = "duplicate"
	OutcomeRejected      Outcome = "rejected" // refused before download (too large); stays in the mailbox
	OutcomeFailed        Outcome = "failed"   // failed for good; stays in the mailbox
	// OutcomeUnroutable: fetched from the intake mailbox but naming no
	// desk; a dead letter that lists the addresses it carried, never
	// answered, left in the intake mailbox.
	OutcomeUnroutable Outcome = "unroutable"
)

// IntakeKey is the key of the project row that stands for the intake
// mailbox (config intake:), which serves many desks: a mailbox with a
// lease, a cursor and a ledger like a desk's own, but no desk. The
// underscore keeps it apart from every configured key ([a-z0-9-]+), and
// lists of projects leave it out.
const IntakeKey = "_intake"

// OutcomeUnsubscribed is the outcome of a mail to a ticket's unsubscribe
// address whose token verified for its sender: the sender gets no more
// mail on the ticket. It is never a message on the ticket, never answered.
const OutcomeUnsubscribed Outcome = "unsubscribed"

// Final reports whether the outcome lets the message be flagged, moved or
// deleted in the IMAP mailbox (after_processing). Rejected and failed mail
// stays untouched so nothing is lost.
func (o Outcome) Final() bool {
	switch o {
	case OutcomeTicketCreated, OutcomeReplyAdded, OutcomeAutoReply, OutcomeBounce, OutcomeDuplicate, OutcomeUnsubscribed:
		return true
	}
	return false
}

// Project is a desk: one address, one mailbox, one SMTP identity.
type Project struct {
	ID      int64  `json:"-"`
	Key     string `json:"key"`
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Ticket is a customer's request and the conversation on it.
type Ticket struct {
	ID           int64     `json:"-"`
	ProjectID    int64     `json:"-"`
	Project      string    `json:"project"`
	Number       int64     `json:"number"`
	Ref          string    `json:"ref"`
	Subject      string    `json:"subject"`
	Status       Status    `json:"status"`
	Requester    string    `json:"requester"`
	Participants []string  `json:"participants"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Messages     []Message `json:"messages,omitempty"`

	// Unsubscribed are the participants who asked for no more mail on the
	// ticket (lower-cased); only a single ticket's read fills it.
	Unsubscribed []string `json:"unsubscribed,omitempty"`
}

// FormatRef gives the human reference of a ticket, e.g. "acme#12".
func FormatRef(projectKey string, number int64) string {
	return fmt.Sprintf("%s#%d", projectKey, number)
}

// Message is one mail or note on a ticket.
type Message struct {
	ID          int64        `json:"id"`
	TicketID    int64        `json:"-"`
	InboundID   int64        `json:"-"`
	Direction   Direction    `json:"direction"`
	Kind        Kind         `json:"kind"`
	From        string       `json:"from"`
	To          []string     `json:"to"`
	Cc          []string     `json:"cc"`
	Subject     string       `json:"subject"`
	Text        string       `json:"text"`
	HTML        string       `json:"html"`
	FullText    string       `json:"full_text,omitempty"` // an inbound reply's whole text when Text holds only its new part; else ""
	MessageID   string       `json:"message_id"`          // with angle brackets, e.g. "<abc@host>"
	InReplyTo   string       `json:"-"`
	References  []string     `json:"-"`
	Internal    bool         `json:"internal"`
	CreatedAt   time.Time    `json:"created_at"`
	Attachments []Attachment `json:"attachments"`
	// Delivery is, for an outbound message that was mailed, each
	// recipient's delivery status, in the order they were queued.
	Delivery []Recipient `json:"delivery,omitempty"`
}

// Delivery statuses of a Recipient.
const (
	DeliveryQueued     = "queued"     // waiting for the SMTP server to accept it (Reason: the last temporary error)
	DeliverySent       = "sent"       // accepted by the SMTP server
	DeliveryFailed     = "failed"     // failed for good (Reason), a dead letter
	DeliverySuppressed = "suppressed" // not sent on purpose (Reason: the cause)
)

// Recipient is one recipient of an outbound message and what became of the
// mail to them.
type Recipient struct {
	To        string    `json:"to"`
	Status    string    `json:"status"` // queued | sent | failed | suppressed
	Reason    string    `json:"reason,omitempty"`
	MessageID string    `json:"message_id"` // of the mail to this recipient, "<...>"
	SentAt    time.Time `json:"sent_at,omitzero"`
}

// Attachment is a file on a message. Data is only set on the way into the
// store; reads give the metadata and fetch content by SHA256.
type Attachment struct {
	ID          int64  `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Inline      bool   `json:"-"`
	ContentID   string `json:"-"`
	Data        []byte `json:"-"`
}

// Inbound is one row of the inbound ledger: a message fetched (or refused)
// from a project's mailbox, keyed by (project, UIDVALIDITY, UID).
type Inbound struct {
	ID int64 `json:"id"`
	// ProjectID is the project row of the mailbox the message was fetched
	// from (the intake's, ticket.IntakeKey, for the intake mailbox).
	ProjectID int64 `json:"-"`
	// Project is the key of the desk whose ledger shows the row: the
	// mailbox's own desk, or the desk a row of the intake was routed to
	// (IntakeKey until then, and for good when unroutable).
	Project      string    `json:"project"`
	UIDValidity  uint32    `json:"uid_validity"`
	UID          uint32    `json:"uid"`
	Size         int64     `json:"size"`
	RawSHA256    string    `json:"raw_sha256,omitempty"`
	MessageID    string    `json:"message_id"`
	From         string    `json:"from"`
	Subject      string    `json:"subject"`
	ReceivedAt   time.Time `json:"received_at"` // when we fetched it
	Outcome      Outcome   `json:"outcome"`
	TicketID     int64     `json:"-"`
	TicketNumber int64     `json:"ticket,omitempty"`
	Reason       string    `json:"reason"`
	Applied      bool      `json:"-"` // after_processing done in the mailbox
	ProcessedAt  time.Time `json:"processed_at,omitzero"`
	// Answer is what became of the one answer to the sender of a rejected
	// (too large) mail: "" (none yet), queued, sent, suppressed or failed
	// (Delivery* statuses), with AnswerReason and our Message-ID.
	Answer          string `json:"answer,omitempty"`
	AnswerReason    string `json:"answer_reason,omitempty"`
	AnswerMessageID string `json:"answer_message_id,omitempty"`
}

// NotificationKind is the kind of an outbound mail.
type NotificationKind string

const (
	NotifyThankYou       NotificationKind = "thank_you"
	NotifyNote           NotificationKind = "note"
	NotifyNewParticipant NotificationKind = "new_participant"
	NotifyClosed         NotificationKind = "closed"
	NotifyReopened       NotificationKind = "reopened"
	// NotifyRelay passes a customer's reply on to the ticket's other
	// participants, as GitLab relays external participants' replies.
	NotifyRelay NotificationKind = "relay"
	// NotifyAgent tells an address of a project's notify_agents of a new
	// ticket or a customer's reply; agents are never participants.
	NotifyAgent NotificationKind = "agent_notice"
)

// NotificationState is the delivery state of an outbound mail.
type NotificationState string

const (
	NotificationPending NotificationState = "pending"
	NotificationSent    NotificationState = "sent"
	NotificationFailed  NotificationState = "failed"
)

// Notification is an outbound mail waiting for, or done with, delivery.
// It holds references only; the notify job renders it at send time, with a
// Message-ID fixed at creation so that a retry is recognisably the same mail.
type Notification struct {
	ID        int64  `json:"id"`
	ProjectID int64  `json:"-"`
	Project   string `json:"project"`
	TicketID  int64  `json:"-"`
	MessageID int64  `json:"-"` // the ticket message this mail is about (inbound mail for a thank-you, the note for a note)
	// OutboundID is the outbound message on the ticket that records this
	// mail (the note itself for a note); 0 for mail queued before
	// records were kept.
	OutboundID int64             `json:"-"`
	Kind       NotificationKind  `json:"kind"`
	To         string            `json:"to"`
	MailID     string            `json:"message_id"` // our Message-ID of the outbound mail, "<...>"
	State      NotificationState `json:"state"`
	Attempts   int               `json:"attempts"`
	LastError  string            `json:"last_error,omitempty"`
	SentAt     time.Time         `json:"sent_at,omitzero"`
	CreatedAt  time.Time         `json:"created_at"`
}

// DeadLetterKind says what failed for good.
type DeadLetterKind string

const (
	DeadInbound  DeadLetterKind = "inbound"
	DeadOutbound DeadLetterKind = "outbound"
)

// DeadLetter is inbound mail or an outbound notification that failed for
// good, with the reason, until an operator retries or discards it.
type DeadLetter struct {
	ID             int64          `json:"id"`
	Kind           DeadLetterKind `json:"kind"`
	Project        string         `json:"project"`
	InboundID      int64          `json:"inbound_id,omitempty"`
	NotificationID int64          `json:"notification_id,omitempty"`
	MessageID      string         `json:"message_id"`
	Address        string         `json:"address"` // sender (inbound) or recipient (outbound)
	Subject        string         `json:"subject"`
	Reason         string         `json:"reason"`
	CreatedAt      time.Time      `json:"created_at"`
}

// Delivery is what processing decided for one inbound message; the store
// commits it in one transaction, so a crash leaves either all of it or none.
type Delivery struct {
	InboundID int64
	ProjectID int64
	Outcome   Outcome // ticket_created, reply_added, auto_reply, bounce or failed
	Reason    string  // for the ledger; required for failed
	// DedupKey identifies the message within the project: "mid:<Message-ID>"
	// or "sha256:<raw hash>". A second message with the same key is recorded
	// as a duplicate and changes nothing else.
	DedupKey string
	// TicketID is the existing ticket a reply, auto-reply or bounce belongs
	// to; 0 with OutcomeTicketCreated opens a new ticket from NewTicket.
	TicketID  int64
	NewTicket *Ticket // Subject, Requester
	Message   *Message
	// Participants are added to the ticket (deduplicated, case-insensitive).
	Participants []string
	// MaxParticipants, when above 0, bounds the ticket's participants as
	// the store finds them in the delivery's transaction: addresses of
	// Participants that do not fit are left out, and so are the
	// new_participant notifications to them.
	MaxParticipants int
	Reopen          bool // reopen the ticket if closed
	// Bouncing lists recipients of our mail that a delivery-status bounce
	// reported failed; automatic mail to them on the ticket is suppressed
	// until BouncingUntil.
	Bouncing      []string
	BouncingUntil time.Time
	// Notify lists outbound mails to queue in the same transaction; the store
	// fills ProjectID, TicketID, MessageID and MailID.
	Notify []Notification
	// MailDomain is the domain for Message-IDs of queued notifications.
	MailDomain string
	// DeskAddress is the project's address, never a participant; empty:
	// the store reads it from the project.
	DeskAddress string
	// Routed says the ledger row belongs to the intake mailbox and was
	// routed to ProjectID: the commit makes the row name that desk. The
	// store refuses a ProjectID other than the row's without it, and
	// refuses it for a row of any mailbox but the intake.
	Routed bool

	// Unsubscribe, with OutcomeUnsubscribed, is the address that asks for
	// no more mail on ticket TicketID; Message is kept for the ledger only.
	Unsubscribe string
}

// Committed is what the store did with a Delivery.
type Committed struct {
	Outcome       Outcome // may be duplicate although another was asked
	TicketID      int64
	TicketNumber  int64
	Notifications []int64 // IDs of queued notifications, to enqueue
	// Project and ReceivedAt describe the inbound message (its project's
	// key, when it was fetched), for metrics; filled by the processor.
	Project    string
	ReceivedAt time.Time
}

// ThreadMatch is a ticket holding a message whose Message-ID an inbound
// mail names in In-Reply-To or References.
type ThreadMatch struct {
	TicketID int64
	// Ours says a matched Message-ID is one this desk sent (an outbound
	// message or notification): random, so only someone who received our
	// mail knows it. A customer's own Message-ID is not ours: anyone the
	// customer wrote to knows it, and it can be guessed.
	Ours bool
}
