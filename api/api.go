// Package api is the HTTP surface of servicedesk: the read side of the JSON
// API under /api/v1 (projects, tickets, attachments, the inbound ledger,
// dead letters and their retry/discard), bearer-token authentication with
// roles, redaction of email addresses for guests, health and readiness
// probes, and the mount points for the asynq monitor and Prometheus metrics.
//
// Standards: HTTP semantics (RFC 9110), bearer tokens (RFC 6750), basic
// authentication (RFC 7617), JSON (RFC 8259), Content-Disposition filenames
// (RFC 6266 with RFC 8187/5987 encoding) and, for what an address looks like,
// RFC 5322 and RFC 6531.
//
// The package imports neither the store nor the queue: it declares the
// Backend it needs, and the caller adapts the concrete store and job client.
package api

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/servicedesk/servicedesk/ticket"
)

// ErrNotFound is what a Backend returns for a project, ticket, attachment or
// dead letter that does not exist; the API answers 404 not_found.
var ErrNotFound = errors.New("not found")

// Page selects one page of a list: Page counts from 1, PerPage is at most
// MaxPerPage. The API validates both before calling the Backend.
type Page struct{ Page, PerPage int }

// Pagination limits.
const (
	DefaultPerPage = 50
	MaxPerPage     = 1000
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
}

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
	return out
}
