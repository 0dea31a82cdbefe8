// Package api is the HTTP surface of servicedesk: the JSON API under
// /api/v1 (projects, tickets, attachments, the inbound ledger, dead letters
// and their retry/discard; notes with uploaded attachments, closing and
// reopening tickets), bearer-token authentication with roles, the guest
// view (no internal notes, every address obfuscated, no text attachments),
// cross-origin protection for browsers, health and readiness probes, and the
// mount points for the asynq monitor and Prometheus metrics.
//
// Standards: HTTP semantics (RFC 9110), bearer tokens (RFC 6750), basic
// authentication (RFC 7617), JSON (RFC 8259), multipart/form-data uploads
// (RFC 7578), Content-Disposition filenames (RFC 6266 with RFC 8187/5987
// encoding), Fetch metadata (Sec-Fetch-Site) and Origin (RFC 6454) and,
// for what an address looks like, RFC 5322 and RFC 6531 (and HTML's
// character references and RFC 3986 percent-encoding, to find one hidden).
//
// The package imports neither the store nor the queue: it declares the
// Backend it needs, and the caller adapts the concrete store and job client.
package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// ErrNotFound is what a Backend returns for a project, ticket, attachment or
// dead letter that does not exist; the API answers 404 not_found.
// It is the domain's one ticket.ErrNotFound, which the store returns too.
var ErrNotFound = ticket.ErrNotFound

// Page selects one page of a list: Page counts from 1 and is at most
// MaxPage, PerPage is at most MaxPerPage. The API validates both before
// calling the Backend.
//
// After, when set, is the cursor of the keyset: the "next_after" of the
// previous answer (the ID of its last item). The page then starts right
// after that item whatever was added since, found through an index where a
// deep page number costs an OFFSET scan; Page is 0 then.
type Page struct {
	Page, PerPage int
	After         int64
}

// Pagination limits. MaxPage times MaxPerPage fits in 32 bits, so no
// offset computed from a valid Page overflows.
const (
	DefaultPerPage = 50
	MaxPerPage     = 1000
	MaxPage        = 1_000_000
)

// TicketQuery selects tickets of a project; a zero Status means any.
type TicketQuery struct {
	Project string
	Status  ticket.Status
	Page    Page
}

// InboundQuery selects inbound ledger rows of a project; a zero Outcome
// means any.
type InboundQuery struct {
	Project string
	Outcome ticket.Outcome
	Page    Page
}

// Backend is what the API reads and changes. Lists return one page, newest
// first, and whether more pages follow. Missing rows are ErrNotFound
// (wrapped or not); any other error is answered 500 and logged.
type Backend interface {
	// Ping checks the database; /readyz calls it.
	Ping(ctx context.Context) error
	Projects(ctx context.Context) ([]ticket.Project, error)
	// Tickets returns tickets without messages.
	Tickets(ctx context.Context, q TicketQuery) ([]ticket.Ticket, bool, error)
	// Ticket returns one ticket with its messages and attachment metadata.
	Ticket(ctx context.Context, project string, number int64) (ticket.Ticket, error)
	// Attachment returns the metadata and content of attachment id on a
	// ticket of a project.
	Attachment(ctx context.Context, project string, number, id int64) (ticket.Attachment, []byte, error)
	Inbound(ctx context.Context, q InboundQuery) ([]ticket.Inbound, bool, error)
	DeadLetters(ctx context.Context, p Page) ([]ticket.DeadLetter, bool, error)
	RetryDeadLetter(ctx context.Context, id int64) error
	DiscardDeadLetter(ctx context.Context, id int64) error
	// AddNote adds an agent's note to a ticket of a project and returns
	// the stored message with its attachment metadata. A note that is not
	// internal is to be mailed to the ticket's participants.
	AddNote(ctx context.Context, project string, number int64, n NoteRequest) (ticket.Message, error)
	// SetStatus closes or reopens a ticket of a project and returns it as
	// Ticket does. Setting the status it already has is not an error.
	SetStatus(ctx context.Context, project string, number int64, status ticket.Status) (ticket.Ticket, error)
}

// NoteRequest is a note as an agent posted it. The API has checked it
// before the Backend sees it: Text (as given, not trimmed) or Attachments
// are not empty, every attachment was read in full within
// Options.MaxUploadSize, and each has Data, Size, SHA256 (hex),
// ContentType (a valid media type, by default application/octet-stream)
// and a safe Filename (base name only, no control characters, at most 255
// bytes).
type NoteRequest struct {
	Author      string // the configured name of the token that posted it
	Text        string
	Internal    bool // for agents only; never mailed
	Attachments []ticket.Attachment
}

// Options tunes the handler; nil means defaults.
type Options struct {
	// Logger receives request logs and internal errors. Defaults to discard.
	Logger *slog.Logger
	// Ready are the readiness checks of /readyz (Redis, ...), run
	// concurrently with Backend.Ping (named "database") under one deadline
	// of ReadyTimeout.
	Ready []func(ctx context.Context) error
	// ReadyNames names Ready by index in the /readyz answer and logs
	// ("redis"). Defaults to "check1", "check2", ...
	ReadyNames []string
	// ReadyTimeout bounds all readiness checks together. Defaults to 1s.
	ReadyTimeout time.Duration
	// Monitor is mounted at /monitor/ for admins only; it is given the
	// request unchanged, so it must be built with root path "/monitor".
	// May be nil.
	Monitor http.Handler
	// Metrics is served at GET /metrics without authentication. May be nil.
	Metrics http.Handler
	// MaxUploadSize bounds the whole body of a note request, attachments
	// and form overhead included, in bytes; a larger one is answered 413
	// too_large and nothing of it is stored. Defaults to 50 MiB.
	MaxUploadSize int64
	// TrustedOrigins are origins (scheme://host[:port]; a URL is cut to
	// its origin) besides the request's own Host from which a browser may
	// send unsafe requests (POST, PUT, PATCH, DELETE): the origin of
	// http.public_url, when a proxy in front changes the Host. Any other
	// cross-origin browser request is refused 403 csrf, whatever its
	// credentials. Malformed entries are logged and ignored.
	TrustedOrigins []string
	// SlowTimeout is the read and write deadline of the requests that may
	// rightly outlast the http.Server's ReadTimeout and WriteTimeout: a
	// note's upload (read and answer), an attachment's download and every
	// /monitor/ request. The handler sets it through
	// http.ResponseController once the token is accepted, so a client
	// without one never gets it. Defaults to 10 minutes.
	SlowTimeout time.Duration

	// Customer, when set, serves the pages that the signed links in our
	// mail open, without a token: a ticket's page, its attachments and
	// unsubscribe (customer.go).
	Customer *Customer
}

// Defaults of Options.
const (
	DefaultMaxUploadSize = 50 << 20
	DefaultSlowTimeout   = 10 * time.Minute
)

func (o *Options) withDefaults() Options {
	var out Options
	if o != nil {
		out = *o
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if out.ReadyTimeout <= 0 {
		out.ReadyTimeout = time.Second
	}
	if out.MaxUploadSize <= 0 {
		out.MaxUploadSize = DefaultMaxUploadSize
	}
	if out.SlowTimeout <= 0 {
		out.SlowTimeout = DefaultSlowTimeout
	}
	return out
}
