package store

import (
	"database/sql"
	"time"
)

// The gorm models are private: callers speak in ticket.* types. Column names
// avoid SQL keywords (from, to, references) so raw SQL needs no quoting
// beyond "key".

type projectRow struct {
	ID        int64  `gorm:"primaryKey"`
	Key       string `gorm:"size:64;not null;uniqueIndex"`
	Name      string `gorm:"not null;default:''"`
	Address   string `gorm:"not null;default:''"`
	TicketSeq int64  `gorm:"not null;default:0"`
}

func (projectRow) TableName() string { return "projects" }

type mailboxStateRow struct {
	ID            int64       `gorm:"primaryKey"`
	ProjectID     int64       `gorm:"not null;uniqueIndex"`
	Project       *projectRow `gorm:"constraint:OnDelete:CASCADE"`
	UIDValidity   int64       `gorm:"not null;default:0"`
	LastUID       int64       `gorm:"not null;default:0"`
	LeaseOwner    string      `gorm:"not null;default:''"`
	LeaseUntil    int64       `gorm:"not null;default:0"` // Unix milliseconds
	LastSuccessAt sql.NullTime
	LastError     string `gorm:"not null;default:''"`
	LastErrorAt   sql.NullTime
}

func (mailboxStateRow) TableName() string { return "mailbox_states" }

type blobRow struct {
	SHA256 string `gorm:"column:sha256;primaryKey;size:64"`
	Size   int64  `gorm:"not null"`
	Data   []byte `gorm:"not null"`
}

func (blobRow) TableName() string { return "blobs" }

type inboundRow struct {
	ID          int64       `gorm:"primaryKey"`
	ProjectID   int64       `gorm:"not null;uniqueIndex:inbound_uid,priority:1"`
	Project     *projectRow `gorm:"constraint:OnDelete:CASCADE"`
	UIDValidity int64       `gorm:"not null;uniqueIndex:inbound_uid,priority:2"`
	UID         int64       `gorm:"not null;uniqueIndex:inbound_uid,priority:3"`
	Size        int64       `gorm:"not null;default:0"`
	RawSHA256   *string     `gorm:"column:raw_sha256;size:64"`
	Raw         *blobRow    `gorm:"foreignKey:RawSHA256;references:SHA256"`
	MessageID   string      `gorm:"not null;default:''"`
	FromAddr    string      `gorm:"not null;default:''"`
	Subject     string      `gorm:"not null;default:''"`
	ReceivedAt  time.Time   `gorm:"not null"`
	Outcome     string      `gorm:"size:32;not null;default:''"` // indexed by idx_inbound_answer (migrations 10, 15)
	TicketID    int64       `gorm:"not null;default:0"`
	Reason      string      `gorm:"not null;default:''"`
	Applied     bool        `gorm:"not null;default:false"`
	Refetch     bool        `gorm:"not null;default:false"`
	ProcessedAt sql.NullTime
	// DeskID is the project whose ledger shows the row: ProjectID (the
	// mailbox's) when fetched, the desk a row of the intake mailbox is
	// routed to once committed. Every insert sets it (migration 12).
	DeskID int64 `gorm:"not null;default:0"`
	// The answer to the sender of a rejected mail (migration 10): state
	// '' (none yet), queued, sent, suppressed or failed, with its reason,
	// our Message-ID and when it was queued.
	AnswerState    string `gorm:"size:16;not null;default:''"`
	AnswerReason   string `gorm:"not null;default:''"`
	AnswerMailID   string `gorm:"not null;default:''"`
	AnswerQueuedAt sql.NullTime
}

func (inboundRow) TableName() string { return "inbound" }

type dedupKeyRow struct {
	ID        int64       `gorm:"primaryKey"`
	ProjectID int64       `gorm:"not null;uniqueIndex:dedup_key,priority:1"`
	Key       string      `gorm:"not null;uniqueIndex:dedup_key,priority:2"`
	InboundID int64       `gorm:"not null"`
	Inbound   *inboundRow `gorm:"constraint:OnDelete:CASCADE"`
}

func (dedupKeyRow) TableName() string { return "dedup_keys" }

type ticketRow struct {
	ID        int64       `gorm:"primaryKey"`
	ProjectID int64       `gorm:"not null;uniqueIndex:ticket_number,priority:1"`
	Project   *projectRow `gorm:"constraint:OnDelete:CASCADE"`
	Number    int64       `gorm:"not null;uniqueIndex:ticket_number,priority:2"`
	Subject   string      `gorm:"not null;default:''"`
	Status    string      `gorm:"size:16;not null;default:'open'"`
	Requester string      `gorm:"not null;default:''"`
	CreatedAt time.Time   `gorm:"not null;index"`
	UpdatedAt time.Time   `gorm:"not null"`
}

func (ticketRow) TableName() string { return "tickets" }

type participantRow struct {
	ID       int64      `gorm:"primaryKey"`
	TicketID int64      `gorm:"not null;uniqueIndex:participant_email,priority:1"`
	Ticket   *ticketRow `gorm:"constraint:OnDelete:CASCADE"`
	Email    string     `gorm:"not null;uniqueIndex:participant_email,priority:2"` // lower-cased
}

func (participantRow) TableName() string { return "participants" }

type messageRow struct {
	ID        int64      `gorm:"primaryKey"`
	TicketID  int64      `gorm:"not null;index"`
	Ticket    *ticketRow `gorm:"constraint:OnDelete:CASCADE"`
	InboundID int64      `gorm:"not null;default:0;index"`
	Direction string     `gorm:"size:16;not null"`
	Kind      string     `gorm:"size:16;not null"`
	FromAddr  string     `gorm:"not null;default:''"`
	ToAddrs   string     `gorm:"not null;default:'[]'"` // JSON array
	CcAddrs   string     `gorm:"not null;default:'[]'"` // JSON array
	Subject   string     `gorm:"not null;default:''"`
	Text      string     `gorm:"not null;default:''"`
	HTML      string     `gorm:"column:html;not null;default:''"`
	FullText  string     `gorm:"not null;default:''"`       // ticket.Message.FullText; migration 11
	MessageID string     `gorm:"not null;default:'';index"` // with angle brackets
	InReplyTo string     `gorm:"not null;default:''"`
	Refs      string     `gorm:"not null;default:''"` // space separated
	Internal  bool       `gorm:"not null;default:false"`
	CreatedAt time.Time  `gorm:"not null"`
}

func (messageRow) TableName() string { return "messages" }

type attachmentRow struct {
	ID          int64       `gorm:"primaryKey"`
	MessageID   int64       `gorm:"not null;index"`
	Message     *messageRow `gorm:"constraint:OnDelete:CASCADE"`
	Filename    string      `gorm:"not null;default:''"`
	ContentType string      `gorm:"not null;default:''"`
	Size        int64       `gorm:"not null;default:0"`
	BlobSHA256  string      `gorm:"column:sha256;size:64;not null;index"`
	Blob        *blobRow    `gorm:"foreignKey:BlobSHA256;references:SHA256"`
	Inline      bool        `gorm:"not null;default:false"`
	ContentID   string      `gorm:"not null;default:''"`
}

func (attachmentRow) TableName() string { return "attachments" }

type notificationRow struct {
	ID        int64      `gorm:"primaryKey"`
	ProjectID int64      `gorm:"not null;index"`
	TicketID  int64      `gorm:"not null;index"`
	Ticket    *ticketRow `gorm:"constraint:OnDelete:CASCADE"`
	MessageID int64      `gorm:"not null;default:0"`
	// OutboundID is the outbound message that records this mail
	// (migration 10).
	OutboundID int64  `gorm:"not null;default:0;index"`
	Kind       string `gorm:"size:32;not null"`
	Recipient  string `gorm:"not null"`
	MailID     string `gorm:"not null;uniqueIndex"`
	State      string `gorm:"size:16;not null;index"`
	Attempts   int    `gorm:"not null;default:0"`
	LastError  string `gorm:"not null;default:''"`
	SentAt     sql.NullTime
	CreatedAt  time.Time `gorm:"not null"`
}

func (notificationRow) TableName() string { return "notifications" }

type deadLetterRow struct {
	ID             int64  `gorm:"primaryKey"`
	Kind           string `gorm:"size:16;not null"`
	ProjectID      int64  `gorm:"not null;default:0"`
	InboundID      int64  `gorm:"not null;default:0;index"`
	NotificationID int64  `gorm:"not null;default:0;index"`
	MessageID      string `gorm:"not null;default:''"`
	Address        string `gorm:"not null;default:''"`
	Subject        string `gorm:"not null;default:''"`
	Reason         string `gorm:"not null;default:''"`
	CreatedAt      time.Time
	ResolvedAt     sql.NullTime `gorm:"index"`
	Resolution     string       `gorm:"size:16;not null;default:''"`
}

func (deadLetterRow) TableName() string { return "dead_letters" }

// bounceRow is a recipient of a ticket whose mail bounced: automatic mail
// to it is suppressed until UntilMS (Unix milliseconds). Its table is created
// by migration 2 in plain SQL, so it is not in allModels.
type bounceRow struct {
	TicketID int64  `gorm:"primaryKey;autoIncrement:false"`
	Email    string `gorm:"primaryKey"` // lower-cased
	UntilMS  int64  `gorm:"column:until_ms;not null"`
}

func (bounceRow) TableName() string { return "bounces" }

// allModels is the schema of migration 1, in creation order.
func allModels() []any {
	return []any{
		&projectRow{}, &mailboxStateRow{}, &blobRow{}, &inboundRow{}, &dedupKeyRow{},
		&ticketRow{}, &participantRow{}, &messageRow{}, &attachmentRow{},
		&notificationRow{}, &deadLetterRow{},
	}
}

type schemaMigration struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	AppliedAt time.Time
}

func (schemaMigration) TableName() string { return "schema_migrations" }
